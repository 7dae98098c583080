package httpapi

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/wallet"
)

// Wallet permissions: the catalogue has no wallet permission, so reads reuse
// getUserStats (balances are gamification stats, as coins are in US5) and
// writes reuse bulkUpdateUser (the permission that already moves currency in
// bulk, BO5/BO6).
const (
	permWalletRead  = "getUserStats"
	permWalletWrite = "bulkUpdateUser"
)

// walletView is a member's wallet as the API shows it.
type walletView struct {
	UserID   string           `json:"userId"`
	ID       int64            `json:"id"`
	Balances map[string]int64 `json:"balances"`
}

// walletChange is the answer to a credit or debit: the ledger row and the
// wallet after it.
type walletChange struct {
	Entry  wallet.LedgerRow `json:"entry"`
	Wallet walletView       `json:"wallet"`
}

// walletInput is the body of a credit or debit.
type walletInput struct {
	Currency  string `json:"currency"`
	Amount    *int64 `json:"amount"`
	Reason    string `json:"reason"`
	Reference string `json:"reference"`
}

// walletRoutes serve members' balances and ledgers and the credit and debit
// writes (designed, modern family).
func (s *Server) walletRoutes() {
	s.handle("GET /users/{userId}/wallet", famM, partner(permWalletRead), func(c *call) error {
		u, err := c.walletMember()
		if err != nil {
			return err
		}
		b, err := s.Wallet.Balances(c.r.Context(), c.key.CommunityID, u.ID)
		if err != nil {
			return err
		}
		return c.ok(http.StatusOK, "Read wallet success.", walletView{UserID: u.ID, ID: u.NumID, Balances: b})
	})
	s.handle("GET /users/{userId}/wallet/ledger", famM, partner(permWalletRead), func(c *call) error {
		u, err := c.walletMember()
		if err != nil {
			return err
		}
		q, err := ledgerQuery(c.r)
		if err != nil {
			return err
		}
		rows, next, err := s.Wallet.Ledger(c.r.Context(), c.key.CommunityID, u.ID, q)
		if err != nil {
			return err
		}
		page := Page{Limit: &q.Limit}
		if q.Before > 0 {
			page.Before = &q.Before
		}
		if next > 0 {
			page.Next = &next
		}
		return c.list("Read wallet ledger success.", rows, page)
	})
	s.handle("POST /users/{userId}/wallet/credit", famM, partner(permWalletWrite), s.walletWrite(1))
	s.handle("POST /users/{userId}/wallet/debit", famM, partner(permWalletWrite), s.walletWrite(-1))
}

// walletMember resolves the path's {userId} (_id or numeric id) to a live
// member of the key's community.
func (c *call) walletMember() (user.User, error) {
	communityID, err := c.community()
	if err != nil {
		return user.User{}, err
	}
	return c.s.Wallet.Member(c.r.Context(), communityID, c.r.PathValue("userId"))
}

// walletWrite serves credit (sign 1) and debit (sign -1).
func (s *Server) walletWrite(sign int64) func(*call) error {
	op, reason, message := "credit", wallet.ReasonCredit, "Credit wallet success."
	if sign < 0 {
		op, reason, message = "debit", wallet.ReasonDebit, "Debit wallet success."
	}
	return func(c *call) error {
		u, err := c.walletMember()
		if err != nil {
			return err
		}
		var in walletInput
		raw, err := c.decodeRaw(&in)
		if err != nil {
			return err
		}
		if in.Reason == "" {
			in.Reason = reason
		}
		// The body's amount is positive; anything else becomes 0, which
		// ApplyTx's validation names together with every other bad field.
		var amount int64
		if in.Amount != nil && *in.Amount > 0 {
			amount = sign * *in.Amount
		}
		entry := wallet.Entry{CommunityID: c.key.CommunityID, UserID: u.ID, Currency: in.Currency, Amount: amount,
			Reason: in.Reason, Reference: in.Reference, Actor: wallet.Actor{Kind: wallet.ActorAPIKey, ID: c.key.ID}}
		path := "/v1/users/" + u.ID + "/wallet/" + op
		return c.idempotent(path, raw, func(tx *db.Tx) (int, string, any, error) {
			row, err := s.Wallet.ApplyTx(c.r.Context(), tx, entry)
			if err != nil {
				return 0, "", nil, err
			}
			b, err := s.Wallet.BalancesTx(c.r.Context(), tx, entry.CommunityID, u.ID)
			if err != nil {
				return 0, "", nil, err
			}
			return http.StatusOK, message, walletChange{Entry: row, Wallet: walletView{UserID: u.ID, ID: u.NumID, Balances: b}}, nil
		})
	}
}

// ledgerQuery reads before, limit, currency, from and to, naming every bad
// one.
func ledgerQuery(r *http.Request) (wallet.LedgerQuery, error) {
	q := wallet.LedgerQuery{Limit: wallet.DefaultLedgerLimit}
	var v errs.Validator
	p := r.URL.Query()
	if s := p.Get("before"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		v.Check(err == nil && n >= 1, "before", "must be a whole number of at least 1")
		q.Before = n
	}
	if s := p.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		v.Check(err == nil && n >= 1 && n <= wallet.MaxLedgerLimit, "limit", "must be a whole number from 1 to %d", wallet.MaxLedgerLimit)
		q.Limit = n
	}
	if s := p.Get("currency"); s != "" {
		v.Check(slices.Contains(wallet.Currencies, s), "currency", "must be one of %s", strings.Join(wallet.Currencies, ", "))
		q.Currency = s
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if s := p.Get(f.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			v.Check(err == nil, f.name, "must be an RFC 3339 timestamp")
			*f.dst = t
		}
	}
	v.Check(q.From.IsZero() || q.To.IsZero() || !q.To.Before(q.From), "to", "must not be before from")
	return q, v.Err()
}
