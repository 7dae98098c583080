// Package gamification holds how members earn: the community's XP setting
// per action (XP, coins, on/off, cooldown), its tiers and levels, the reward
// subscriber that turns outbox events (messages, reactions, visits,
// referrals) into awards exactly once, and the history read from the awards
// and the per-day action counters (GA7-GA9, GA12, GA13, US5).
//
// Days are UTC dates throughout: an action counts on the UTC day of its
// event, an award on the UTC day it was applied.
package gamification

import (
	"context"
	"database/sql"
	"github.com/rallyhq/rally/internal/event"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/xp"
)

// Deps are what the gamification service needs.
type Deps struct {
	DB     *db.DB
	Clock  clock.Clock
	Events event.Appender
	XP     *xp.Service
	Users  *user.Store
}

// Service holds the earning rules, the tiers and the activity history.
type Service struct {
	d Deps
}

// NewService returns the gamification service.
func NewService(d Deps) *Service { return &Service{d: d} }

// querier is a database or a transaction: reads that run either way.
type querier interface {
	QueryRow(ctx context.Context, q string, args ...any) *sql.Row
}
