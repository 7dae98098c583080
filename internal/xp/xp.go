// Package xp keeps members' experience points: the lifetime XP total that
// levels, tiers and leaderboards follow, and the gamification log of every
// award of XP and coins. Every award goes through AwardTx, so totals always
// equal the sum of the log, coins land in the wallet's ledger, and an award
// caused by an outbox event is applied exactly once.
package xp

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/rallyhq/rally/internal/event"
	"strings"
	"sync"
	"time"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/wallet"
)

// Deps are what the XP service needs.
type Deps struct {
	DB     *db.DB
	Clock  clock.Clock
	Events event.Appender
	Wallet *wallet.Service
}

// Award is XP and/or coins given to a member for an action.
type Award struct {
	CommunityID string
	UserID      string
	// Action names why: message, reply, react, visit, badge, spin... .
	Action string
	// XP may be negative (taking back a badge); the total never goes below 0.
	XP int64
	// Coins are credited (or, when negative, debited) through the wallet.
	Coins int64
	// SourceEvent is the outbox event id that caused the award, when one
	// did: the same (Action, SourceEvent) is applied only once.
	SourceEvent string
	// Reference names what the award is for (a badge id, an order...).
	Reference string
	Actor     wallet.Actor
}

// Log is one recorded award.
type Log struct {
	ID          string       `json:"_id"`
	Seq         int64        `json:"sequence"`
	CommunityID string       `json:"communityId"`
	UserID      string       `json:"userId"`
	Action      string       `json:"action"`
	XP          int64        `json:"xp"`
	Coins       int64        `json:"coins"`
	XPAfter     int64        `json:"xpAfter"`
	SourceEvent string       `json:"sourceEvent,omitempty"`
	Reference   string       `json:"reference,omitempty"`
	Actor       wallet.Actor `json:"actor"`
	CreatedAt   jsonx.Time   `json:"createdAt"`
}

// Hook runs inside the award's transaction after the total changed, with
// the total before and after: leaderboards keep their aggregates with it,
// tiers announce level changes.
type Hook func(ctx context.Context, tx *db.Tx, l Log, before, after int64) error

// Service awards and reads XP.
type Service struct {
	d     Deps
	mu    sync.RWMutex
	hooks []Hook
}

// NewService returns the XP service.
func NewService(d Deps) *Service { return &Service{d: d} }

// AddHook registers h for every award; register hooks while wiring, before
// serving.
func (s *Service) AddHook(h Hook) {
	s.mu.Lock()
	s.hooks = append(s.hooks, h)
	s.mu.Unlock()
}

// maxAward bounds one award's XP or coins.
const maxAward = 1_000_000_000

func (a Award) validate() error {
	var v errs.Validator
	v.Check(strings.TrimSpace(a.Action) != "" && len(a.Action) <= 50, "action", "must be 1 to 50 characters")
	v.Check(a.XP >= -maxAward && a.XP <= maxAward, "xp", "must be between %d and %d", -maxAward, maxAward)
	v.Check(a.Coins >= -maxAward && a.Coins <= maxAward, "coins", "must be between %d and %d", -maxAward, maxAward)
	v.Check(a.XP != 0 || a.Coins != 0, "xp", "an award needs XP or coins")
	return v.Err()
}

// AwardTx applies a inside tx: coins through the wallet (first, keeping the
// wallet's lock order), XP onto the member's total (never below zero), a
// gamification log row, every hook, and an xp.awarded event. When
// a.SourceEvent was already applied for a.Action it returns the earlier log
// and applied == false, changing nothing.
func (s *Service) AwardTx(ctx context.Context, tx *db.Tx, a Award) (l Log, applied bool, err error) {
	if err := a.validate(); err != nil {
		return Log{}, false, err
	}
	if a.SourceEvent != "" {
		// Concurrent deliveries of one event wait here, then find the award.
		if err := tx.Lock(ctx, "award:"+a.CommunityID+":"+a.Action+":"+a.SourceEvent); err != nil {
			return Log{}, false, err
		}
		prev, err := scanLog(tx.QueryRow(ctx, "SELECT "+logColumns+" FROM gamification_logs WHERE community_id = ? AND action = ? AND source_event = ?",
			a.CommunityID, a.Action, a.SourceEvent))
		if err == nil {
			return prev, false, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return Log{}, false, err
		}
	}
	now := s.d.Clock.Now()
	l = Log{ID: id.New(now), CommunityID: a.CommunityID, UserID: a.UserID, Action: a.Action, XP: a.XP, Coins: a.Coins,
		SourceEvent: a.SourceEvent, Reference: a.Reference, Actor: a.Actor, CreatedAt: jsonx.At(now)}
	if a.Coins != 0 {
		if _, err := s.d.Wallet.ApplyTx(ctx, tx, wallet.Entry{CommunityID: a.CommunityID, UserID: a.UserID, Currency: wallet.Coins,
			Amount: a.Coins, Reason: wallet.ReasonReward, Reference: "gamification:" + l.ID, Actor: a.Actor}); err != nil {
			return Log{}, false, fmt.Errorf("award coins: %w", err)
		}
	}
	var before int64
	err = tx.QueryRow(ctx, "SELECT xp FROM xp_totals WHERE community_id = ? AND user_id = ?"+tx.DB().ForUpdate(), a.CommunityID, a.UserID).Scan(&before)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Log{}, false, fmt.Errorf("read xp total: %w", err)
	}
	after := max(before+a.XP, 0)
	l.XP = after - before // what actually changed, so totals equal the sum of the log
	l.XPAfter = after
	if _, err := tx.Exec(ctx, `INSERT INTO xp_totals (community_id, user_id, xp, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (community_id, user_id) DO UPDATE SET xp = excluded.xp, updated_at = excluded.updated_at`,
		a.CommunityID, a.UserID, after, now.UnixMilli()); err != nil {
		return Log{}, false, fmt.Errorf("write xp total: %w", err)
	}
	err = tx.QueryRow(ctx, `INSERT INTO gamification_logs (id, community_id, user_id, action, xp, coins, xp_after, source_event,
		reference, actor_kind, actor_id, day, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
		l.ID, l.CommunityID, l.UserID, l.Action, l.XP, l.Coins, l.XPAfter, l.SourceEvent, l.Reference, a.Actor.Kind, a.Actor.ID,
		now.UTC().Format(time.DateOnly), now.UnixMilli()).Scan(&l.Seq)
	if err != nil {
		return Log{}, false, fmt.Errorf("write gamification log: %w", err)
	}
	s.mu.RLock()
	hooks := s.hooks
	s.mu.RUnlock()
	for _, h := range hooks {
		if err := h(ctx, tx, l, before, after); err != nil {
			return Log{}, false, err
		}
	}
	if err := s.d.Events.Append(ctx, tx, a.CommunityID, "xp.awarded", l); err != nil {
		return Log{}, false, err
	}
	return l, true, nil
}

// Award applies a in its own transaction (see AwardTx).
func (s *Service) Award(ctx context.Context, a Award) (l Log, applied bool, err error) {
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		l, applied, err = s.AwardTx(ctx, tx, a)
		return err
	})
	return l, applied, err
}

// Total returns the member's lifetime XP (0 when nothing was awarded yet).
func (s *Service) Total(ctx context.Context, communityID, userID string) (int64, error) {
	var xp int64
	err := s.d.DB.QueryRow(ctx, "SELECT xp FROM xp_totals WHERE community_id = ? AND user_id = ?", communityID, userID).Scan(&xp)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read xp total: %w", err)
	}
	return xp, nil
}

// EarnedSince sums the XP the member gained from since on (losses are not
// earnings).
func (s *Service) EarnedSince(ctx context.Context, communityID, userID string, since time.Time) (int64, error) {
	var xp int64
	err := s.d.DB.QueryRow(ctx, `SELECT COALESCE(SUM(xp), 0) FROM gamification_logs
		WHERE community_id = ? AND user_id = ? AND created_at >= ? AND xp > 0`, communityID, userID, since.UnixMilli()).Scan(&xp)
	if err != nil {
		return 0, fmt.Errorf("sum earned xp: %w", err)
	}
	return xp, nil
}

// TotalSQL is a scalar SQL expression for the member's lifetime XP in a
// query whose member row is aliased m (m.community_id, m.user_id).
const TotalSQL = "(SELECT COALESCE(MAX(xt.xp), 0) FROM xp_totals xt WHERE xt.community_id = m.community_id AND xt.user_id = m.user_id)"

const logColumns = `id, seq, community_id, user_id, action, xp, coins, xp_after, source_event, reference, actor_kind, actor_id, created_at`

func scanLog(r interface{ Scan(...any) error }) (Log, error) {
	var (
		l       Log
		created int64
	)
	err := r.Scan(&l.ID, &l.Seq, &l.CommunityID, &l.UserID, &l.Action, &l.XP, &l.Coins, &l.XPAfter, &l.SourceEvent, &l.Reference,
		&l.Actor.Kind, &l.Actor.ID, &created)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Log{}, err
		}
		return Log{}, fmt.Errorf("scan gamification log: %w", err)
	}
	l.CreatedAt = jsonx.Millis(created)
	return l, nil
}
