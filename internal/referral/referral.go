// Package referral keeps who referred whom and what referring earns: each
// member's referral code and invite links, the community's referral mapping
// (which member value a new user's `referral` names), referral programs
// (ordered stages whose requirements the referred member meets, each paying
// the referrer XP and coins once), the progress subscriber that completes
// stages from outbox events, and the referral summary (GA10, GA11).
//
// A stage is completed once per referred member: the completion row and the
// award (xp.AwardTx keyed by program, stage and referee) are written in one
// transaction under a per-referee lock, so redelivered or concurrent events
// credit the referrer exactly once. Stages complete in order: a stage counts
// only after every earlier stage of its program is complete.
package referral

import (
	"context"
	"database/sql"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/metric"
	"github.com/rallyhq/rally/internal/xp"
)

// Deps are what the referral service needs.
type Deps struct {
	DB      *db.DB
	Clock   clock.Clock
	Events  event.Appender
	XP      *xp.Service
	Metrics *metric.Reader
}

// Service holds referral settings, codes, programs and progress.
type Service struct{ d Deps }

// NewService returns the referral service.
func NewService(d Deps) *Service { return &Service{d: d} }

// Events the referral service emits.
const (
	// EventRecorded: a new member was referred {refereeId, referrerId, referral}.
	EventRecorded = "referral.recorded"
	// EventStageCompleted: a referred member completed a stage
	// {programId, stageId, stageNumber, refereeId, referrerId, rewards}.
	EventStageCompleted = "referral.stage.completed"
)

// ActionStage is the gamification log action of a stage reward.
const ActionStage = "referralStage"

// querier is a database or a transaction.
type querier interface {
	QueryRow(ctx context.Context, q string, args ...any) *sql.Row
	Query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}
