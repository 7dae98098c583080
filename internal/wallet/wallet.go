// Package wallet holds members' balances of the community currencies and
// the ledger of every change to them.
//
// Rules: amounts are integers; every change is a ledger row written in the
// transaction that changes the balance; a balance never goes below zero (nor
// above MaxBalance); the sum of a member's ledger for a currency always
// equals the balance; every change emits wallet.credited or wallet.debited
// in the same transaction. Other domains (XP rewards, the spin wheel, store
// purchases and refunds, incoming webhooks, bulk updates) move value with
// ApplyTx inside their own transactions.
package wallet

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rallyhq/rally/internal/event"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/user"
)

// The currencies a member holds.
const (
	// Coins is the community's in-game currency (its display name and
	// symbol come from the store configuration).
	Coins = "coins"
	// Premium is the premium currency.
	Premium = "premium"
)

// Currencies lists every currency, in display order.
var Currencies = []string{Coins, Premium}

// Reasons say why a balance changed.
const (
	ReasonCredit     = "credit"
	ReasonDebit      = "debit"
	ReasonPurchase   = "purchase"
	ReasonRefund     = "refund"
	ReasonReward     = "reward"
	ReasonAdjustment = "adjustment"
)

// Reasons lists every accepted reason.
var Reasons = []string{ReasonCredit, ReasonDebit, ReasonPurchase, ReasonRefund, ReasonReward, ReasonAdjustment}

// earningReasons are the reasons EarnedSince counts: value the member earned,
// not value returned (refunds) or corrected (adjustments).
var earningReasons = []string{ReasonCredit, ReasonReward}

// Limits on amounts.
const (
	// MaxAmount bounds one change (10^12).
	MaxAmount int64 = 1_000_000_000_000
	// MaxBalance bounds a balance (10^15), far from int64 overflow.
	MaxBalance int64 = 1_000_000_000_000_000
	// MaxReferenceLength bounds a reference in characters.
	MaxReferenceLength = 255
)

// Actor kinds: who made a change.
const (
	ActorAPIKey = "apikey"
	ActorUser   = "user"
	ActorSystem = "system"
)

// Actor is who made a change: an API key, a user or Rally itself.
type Actor struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// Entry is a change to apply: Amount is positive for a credit and negative
// for a debit.
type Entry struct {
	CommunityID string
	UserID      string
	Currency    string
	Amount      int64
	Reason      string
	// Reference names what caused the change (an order id, a badge id...).
	Reference string
	Actor     Actor
}

// LedgerRow is one recorded change.
type LedgerRow struct {
	// Seq orders a member's rows in commit order; it is the paging cursor.
	Seq          int64
	ID           string
	CommunityID  string
	UserID       string
	Currency     string
	Amount       int64
	BalanceAfter int64
	Reason       string
	Reference    string
	Actor        Actor
	CreatedAt    time.Time
}

// ledgerJSON is the API shape of a LedgerRow.
type ledgerJSON struct {
	ID           string `json:"_id"`
	Seq          int64  `json:"sequence"`
	UserID       string `json:"userId"`
	Currency     string `json:"currency"`
	Amount       int64  `json:"amount"`
	BalanceAfter int64  `json:"balanceAfter"`
	Reason       string `json:"reason"`
	Reference    string `json:"reference"`
	Actor        Actor  `json:"actor"`
	CreatedAt    string `json:"createdAt"`
}

// MarshalJSON writes the API shape: {_id, sequence, userId, currency,
// amount, balanceAfter, reason, reference, actor:{kind,id}, createdAt}.
func (r LedgerRow) MarshalJSON() ([]byte, error) {
	return json.Marshal(ledgerJSON{ID: r.ID, Seq: r.Seq, UserID: r.UserID, Currency: r.Currency, Amount: r.Amount,
		BalanceAfter: r.BalanceAfter, Reason: r.Reason, Reference: r.Reference, Actor: r.Actor, CreatedAt: clock.Format(r.CreatedAt)})
}

// Deps are what the wallet service needs.
type Deps struct {
	DB     *db.DB
	Clock  clock.Clock
	Events event.Appender
	Users  *user.Store
}

// Service holds the wallet rules.
type Service struct {
	d     Deps
	mu    sync.RWMutex
	hooks []Hook
}

// Hook runs inside the transaction of every balance change, after the
// ledger row is written: leaderboards ranking by coins keep their scores
// with it.
type Hook func(ctx context.Context, tx *db.Tx, row LedgerRow) error

// AddHook registers h for every balance change; register hooks while
// wiring, before serving.
func (s *Service) AddHook(h Hook) {
	s.mu.Lock()
	s.hooks = append(s.hooks, h)
	s.mu.Unlock()
}

// NewService returns the wallet service.
func NewService(d Deps) *Service { return &Service{d: d} }

// Member resolves ref, a member's _id (24 hex) or numeric id, to a live
// member of communityID. Anyone else (unknown, another community's,
// deleted) is NotFound.
func (s *Service) Member(ctx context.Context, communityID, ref string) (user.User, error) {
	kind := user.ByObjectID
	if _, err := strconv.ParseInt(ref, 10, 64); err == nil {
		kind = user.ByID
	} else if !id.Valid(ref) {
		return user.User{}, errs.NotFoundf("User not found.")
	}
	u, _, err := s.d.Users.FindMember(ctx, communityID, strings.ToLower(ref), kind)
	return u, err
}

// validate names every offending field of e (API names).
func validate(e Entry) error {
	var v errs.Validator
	v.Check(slices.Contains(Currencies, e.Currency), "currency", "must be one of %s", strings.Join(Currencies, ", "))
	v.Check(e.Amount != 0 && e.Amount >= -MaxAmount && e.Amount <= MaxAmount, "amount", "must be a positive whole number up to %d", MaxAmount)
	v.Check(slices.Contains(Reasons, e.Reason), "reason", "must be one of %s", strings.Join(Reasons, ", "))
	v.Check(len([]rune(e.Reference)) <= MaxReferenceLength, "reference", "must be at most %d characters", MaxReferenceLength)
	return v.Err()
}

// ApplyTx applies e in the caller's transaction: it checks that the user is
// a live member, changes the balance (a debit beyond the balance is a
// Conflict "Insufficient <currency> balance."), writes the ledger row and
// the wallet.credited/wallet.debited event, and returns the row.
//
// ApplyTx takes a per-member lock held until tx ends (PostgreSQL), so a
// member's ledger sequence follows commit order and cursor paging never
// skips a row. Callers that also append events should call ApplyTx first to
// keep one lock order (deadlocks are retried by db.Tx but cost time).
func (s *Service) ApplyTx(ctx context.Context, tx *db.Tx, e Entry) (LedgerRow, error) {
	e.Reference = strings.TrimSpace(e.Reference)
	if err := validate(e); err != nil {
		return LedgerRow{}, err
	}
	if err := tx.Lock(ctx, "wallet:"+e.CommunityID+":"+e.UserID); err != nil {
		return LedgerRow{}, fmt.Errorf("apply %s %d: %w", e.Currency, e.Amount, err)
	}
	var deleted sql.NullInt64
	err := tx.QueryRow(ctx, "SELECT deleted_at FROM members WHERE community_id = ? AND user_id = ?", e.CommunityID, e.UserID).Scan(&deleted)
	if errors.Is(err, sql.ErrNoRows) || deleted.Valid {
		return LedgerRow{}, errs.NotFoundf("User not found.")
	}
	if err != nil {
		return LedgerRow{}, fmt.Errorf("apply %s %d: read member: %w", e.Currency, e.Amount, err)
	}
	now := s.d.Clock.Now()
	balance, err := s.changeBalance(ctx, tx, e, now)
	if err != nil {
		return LedgerRow{}, err
	}
	row := LedgerRow{ID: id.New(now), CommunityID: e.CommunityID, UserID: e.UserID, Currency: e.Currency, Amount: e.Amount,
		BalanceAfter: balance, Reason: e.Reason, Reference: e.Reference, Actor: e.Actor, CreatedAt: now}
	if err := tx.QueryRow(ctx, `INSERT INTO wallet_ledger (id, community_id, user_id, currency, amount, balance_after, reason, reference,
		actor_kind, actor_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
		row.ID, row.CommunityID, row.UserID, row.Currency, row.Amount, row.BalanceAfter, row.Reason, row.Reference,
		row.Actor.Kind, row.Actor.ID, now.UnixMilli()).Scan(&row.Seq); err != nil {
		return LedgerRow{}, fmt.Errorf("apply %s %d: write ledger: %w", e.Currency, e.Amount, err)
	}
	s.mu.RLock()
	hooks := s.hooks
	s.mu.RUnlock()
	for _, h := range hooks {
		if err := h(ctx, tx, row); err != nil {
			return LedgerRow{}, err
		}
	}
	typ := "wallet.credited"
	if e.Amount < 0 {
		typ = "wallet.debited"
	}
	if err := s.d.Events.Append(ctx, tx, e.CommunityID, typ, row); err != nil {
		return LedgerRow{}, err
	}
	return row, nil
}

// changeBalance adds e.Amount to the balance with one guarded statement and
// returns the new balance. On PostgreSQL the statement locks the balance
// row, and a concurrent change re-checks the guard against the committed
// balance, so the balance can never pass its bounds.
func (s *Service) changeBalance(ctx context.Context, tx *db.Tx, e Entry, now time.Time) (int64, error) {
	var balance int64
	var err error
	if e.Amount > 0 {
		err = tx.QueryRow(ctx, `INSERT INTO wallet_balances (community_id, user_id, currency, balance, updated_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (community_id, user_id, currency) DO UPDATE SET balance = wallet_balances.balance + excluded.balance,
				updated_at = excluded.updated_at
			WHERE wallet_balances.balance + excluded.balance <= ? RETURNING balance`,
			e.CommunityID, e.UserID, e.Currency, e.Amount, now.UnixMilli(), MaxBalance).Scan(&balance)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, errs.Conflictf("The %s balance would exceed the maximum of %d.", e.Currency, MaxBalance)
		}
	} else {
		err = tx.QueryRow(ctx, `UPDATE wallet_balances SET balance = balance + ?, updated_at = ?
			WHERE community_id = ? AND user_id = ? AND currency = ? AND balance + ? >= 0 RETURNING balance`,
			e.Amount, now.UnixMilli(), e.CommunityID, e.UserID, e.Currency, e.Amount).Scan(&balance)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, errs.Conflictf("Insufficient %s balance.", e.Currency)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("apply %s %d: change balance: %w", e.Currency, e.Amount, err)
	}
	return balance, nil
}

// Credit adds amount (positive) in its own transaction.
func (s *Service) Credit(ctx context.Context, e Entry) (LedgerRow, error) {
	return s.apply(ctx, e, 1)
}

// Debit takes e.Amount (positive) away in its own transaction.
func (s *Service) Debit(ctx context.Context, e Entry) (LedgerRow, error) {
	return s.apply(ctx, e, -1)
}

func (s *Service) apply(ctx context.Context, e Entry, sign int64) (LedgerRow, error) {
	if e.Amount <= 0 {
		var v errs.Validator
		v.Add("amount", "must be a positive whole number up to %d", MaxAmount)
		return LedgerRow{}, v.Err()
	}
	e.Amount *= sign
	var row LedgerRow
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		row, err = s.ApplyTx(ctx, tx, e)
		return err
	})
	return row, err
}

// Balances returns the member's balance of every currency (0 for a
// currency never credited).
func (s *Service) Balances(ctx context.Context, communityID, userID string) (map[string]int64, error) {
	return balances(ctx, s.d.DB.Query, communityID, userID)
}

// BalancesTx is Balances read inside tx (seeing its uncommitted changes).
func (s *Service) BalancesTx(ctx context.Context, tx *db.Tx, communityID, userID string) (map[string]int64, error) {
	return balances(ctx, tx.Query, communityID, userID)
}

type queryFunc func(ctx context.Context, q string, args ...any) (*sql.Rows, error)

func balances(ctx context.Context, query queryFunc, communityID, userID string) (map[string]int64, error) {
	out := make(map[string]int64, len(Currencies))
	for _, c := range Currencies {
		out[c] = 0
	}
	rows, err := query(ctx, "SELECT currency, balance FROM wallet_balances WHERE community_id = ? AND user_id = ?", communityID, userID)
	if err != nil {
		return nil, fmt.Errorf("read balances: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			c string
			b int64
		)
		if err := rows.Scan(&c, &b); err != nil {
			return nil, fmt.Errorf("read balances: %w", err)
		}
		out[c] = b
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read balances: %w", err)
	}
	return out, nil
}

// EarnedSince sums what the member earned in currency (credits and rewards;
// not refunds or adjustments) from since on, e.g. coinsEarnedToday.
func (s *Service) EarnedSince(ctx context.Context, communityID, userID, currency string, since time.Time) (int64, error) {
	var sum int64
	err := s.d.DB.QueryRow(ctx, `SELECT COALESCE(SUM(amount), 0) FROM wallet_ledger
		WHERE community_id = ? AND user_id = ? AND currency = ? AND created_at >= ? AND amount > 0 AND reason IN (?, ?)`,
		communityID, userID, currency, since.UnixMilli(), earningReasons[0], earningReasons[1]).Scan(&sum)
	if err != nil {
		return 0, fmt.Errorf("sum earnings: %w", err)
	}
	return sum, nil
}

// BalanceSQL is a scalar SQL expression for the member's balance in
// currency, for a query whose member row is aliased m (m.community_id,
// m.user_id); lists filter and sort on it. currency must be one of
// Currencies (it is written into the SQL).
func BalanceSQL(currency string) string {
	if !slices.Contains(Currencies, currency) {
		return "0"
	}
	return "(SELECT COALESCE(MAX(wb.balance), 0) FROM wallet_balances wb WHERE wb.community_id = m.community_id" +
		" AND wb.user_id = m.user_id AND wb.currency = '" + currency + "')"
}
