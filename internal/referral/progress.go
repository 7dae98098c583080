package referral

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/gamification"
	"github.com/rallyhq/rally/internal/metric"
	"github.com/rallyhq/rally/internal/redeem"
	"github.com/rallyhq/rally/internal/wallet"
	"github.com/rallyhq/rally/internal/xp"
)

// SubscriberName names the progress subscriber's outbox offsets.
const SubscriberName = "referral.progress"

// progressEvents are the outbox events that can move a referred member's
// progress (each names the member in userId, userID or user._id).
var progressEvents = map[string]bool{
	gamification.EventUserCreated: true, EventRecorded: true, "user.verified": true, gamification.EventUserVisited: true,
	gamification.EventMessagePosted: true, gamification.EventMessageReacted: true, "xp.awarded": true,
	gamification.EventLevelChanged: true, redeem.EventPurchased: true,
}

// Subscriber returns the outbox subscriber that completes referral stages
// when the member an event names was referred. It brings each member a
// batch of events names up to date once, after reading the community's
// active programs once (none: nothing to do): progress is judged on the
// member's measures as they are, whichever event prompted it.
func (s *Service) Subscriber() event.Subscriber {
	return event.Subscriber{Name: SubscriberName, HandleBatch: s.handleBatch}
}

func (s *Service) handleBatch(ctx context.Context, tx *db.Tx, events []event.Event) error {
	members := event.Members(events, func(e event.Event) bool { return progressEvents[e.Type] })
	if len(members) == 0 {
		return nil
	}
	communityID := events[0].CommunityID
	programs, err := s.activePrograms(ctx, tx, communityID)
	if err != nil || len(programs) == 0 {
		return err
	}
	for _, m := range members {
		if _, err := s.progressTx(ctx, tx, programs, communityID, m.UserID); err != nil {
			return fmt.Errorf("referral progress for event %s: %w", m.EventID, err)
		}
	}
	return nil
}

// Completion is a stage a referred member completed.
type Completion struct {
	ProgramID   string    `json:"programId"`
	StageID     string    `json:"stageId"`
	StageNumber int       `json:"stageNumber"`
	RefereeID   string    `json:"refereeId"`
	ReferrerID  string    `json:"referrerId"`
	Rewards     Rewards   `json:"rewards"`
	CompletedAt time.Time `json:"completedAt"`
	Log         *xp.Log   `json:"-"`
}

// conditionMet reports whether the referee's values reach c.
func conditionMet(c Condition, values map[metric.Key]int64) bool {
	return values[metric.Key{Name: c.Metric}] >= c.Value
}

// combine folds results with operator (and: all, or: any).
func combine(operator string, results []bool) bool {
	if len(results) == 0 {
		return false
	}
	for _, r := range results {
		if operator == OperatorOr && r {
			return true
		}
		if operator != OperatorOr && !r {
			return false
		}
	}
	return operator != OperatorOr
}

func mainMet(mc MainCondition, values map[metric.Key]int64) bool {
	res := make([]bool, len(mc.NestedConditions))
	for i, c := range mc.NestedConditions {
		res[i] = conditionMet(c, values)
	}
	return combine(mc.Operator, res)
}

// stageMet returns how many main conditions hold and whether the stage's
// requirements do.
func stageMet(st Stage, values map[metric.Key]int64) (met int, ok bool) {
	res := make([]bool, len(st.Requirements.MainConditions))
	for i, mc := range st.Requirements.MainConditions {
		if res[i] = mainMet(mc, values); res[i] {
			met++
		}
	}
	return met, combine(st.Requirements.Operator, res)
}

// metricKeys lists the measures programs' conditions read.
func metricKeys(programs []Program) []metric.Key {
	var keys []metric.Key
	for _, p := range programs {
		for _, st := range p.Stages {
			for _, mc := range st.Requirements.MainConditions {
				for _, c := range mc.NestedConditions {
					keys = append(keys, metric.Key{Name: c.Metric})
				}
			}
		}
	}
	return keys
}

// completions returns the stages the referee completed, by program and
// stage id.
func completions(ctx context.Context, q querier, communityID, refereeID string) (map[[2]string]time.Time, error) {
	rows, err := q.Query(ctx, "SELECT program_id, stage_id, completed_at FROM referral_completions WHERE community_id = ? AND referee_id = ?",
		communityID, refereeID)
	if err != nil {
		return nil, fmt.Errorf("read referral completions: %w", err)
	}
	defer rows.Close()
	out := map[[2]string]time.Time{}
	for rows.Next() {
		var (
			p, st string
			at    int64
		)
		if err := rows.Scan(&p, &st, &at); err != nil {
			return nil, fmt.Errorf("scan referral completion: %w", err)
		}
		out[[2]string{p, st}] = time.UnixMilli(at).UTC()
	}
	return out, rows.Err()
}

// ProgressTx completes, in order, every stage of the community's active
// programs whose requirements the referred member refereeID now meets,
// crediting the referrer each stage's rewards once. Members who were not
// referred, or are no longer members, make no progress.
func (s *Service) ProgressTx(ctx context.Context, tx *db.Tx, communityID, refereeID string) ([]Completion, error) {
	return s.progressTx(ctx, tx, nil, communityID, refereeID)
}

// progressTx is ProgressTx with the community's active programs read
// already, or, when programs is nil, read once the referee is locked.
func (s *Service) progressTx(ctx context.Context, tx *db.Tx, programs []Program, communityID, refereeID string) ([]Completion, error) {
	var (
		referrer sql.NullString
		deleted  sql.NullInt64
	)
	err := tx.QueryRow(ctx, "SELECT referred_by, deleted_at FROM members WHERE community_id = ? AND user_id = ?", communityID, refereeID).
		Scan(&referrer, &deleted)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (!referrer.Valid || referrer.String == "" || deleted.Valid)) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read referred member: %w", err)
	}
	// One evaluation per referee at a time: the completion check and the
	// award are one step under concurrent deliveries.
	if err := tx.Lock(ctx, "referral:"+communityID+":"+refereeID); err != nil {
		return nil, err
	}
	if programs == nil {
		if programs, err = s.activePrograms(ctx, tx, communityID); err != nil {
			return nil, err
		}
	}
	if len(programs) == 0 {
		return nil, nil
	}
	done, err := completions(ctx, tx, communityID, refereeID)
	if err != nil {
		return nil, err
	}
	values, err := s.d.Metrics.Values(ctx, tx, communityID, refereeID, metricKeys(programs))
	if err != nil {
		return nil, err
	}
	var referrerLive bool
	var referrerDeleted sql.NullInt64
	err = tx.QueryRow(ctx, "SELECT deleted_at FROM members WHERE community_id = ? AND user_id = ?", communityID, referrer.String).Scan(&referrerDeleted)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read referrer: %w", err)
	}
	referrerLive = err == nil && !referrerDeleted.Valid
	var out []Completion
	for _, p := range programs {
		for _, st := range p.Stages {
			if _, ok := done[[2]string{p.ID, st.ID}]; ok {
				continue
			}
			if _, ok := stageMet(st, values); !ok {
				break // stages complete in order
			}
			c, err := s.completeTx(ctx, tx, p, st, communityID, refereeID, referrer.String, referrerLive)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// completeTx records one stage completion and pays its rewards (nothing
// when the referrer left the community).
func (s *Service) completeTx(ctx context.Context, tx *db.Tx, p Program, st Stage, communityID, refereeID, referrerID string,
	referrerLive bool) (Completion, error) {
	now := s.d.Clock.Now()
	c := Completion{ProgramID: p.ID, StageID: st.ID, StageNumber: st.StageNumber, RefereeID: refereeID, ReferrerID: referrerID,
		CompletedAt: now.UTC()}
	if referrerLive {
		c.Rewards = st.Rewards
	}
	res, err := tx.Exec(ctx, `INSERT INTO referral_completions (community_id, program_id, stage_id, referee_id, referrer_id, xp, coins, completed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, communityID, p.ID, st.ID, refereeID, referrerID, c.Rewards.XP, c.Rewards.Coins,
		now.UnixMilli())
	if err != nil {
		return Completion{}, fmt.Errorf("record referral completion: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return Completion{}, err
	}
	if c.Rewards.XP != 0 || c.Rewards.Coins != 0 {
		l, _, err := s.d.XP.AwardTx(ctx, tx, xp.Award{CommunityID: communityID, UserID: referrerID, Action: ActionStage,
			XP: c.Rewards.XP, Coins: c.Rewards.Coins, SourceEvent: "referral:" + p.ID + ":" + st.ID + ":" + refereeID,
			Reference: refereeID, Actor: wallet.Actor{Kind: wallet.ActorSystem}})
		if err != nil {
			return Completion{}, fmt.Errorf("reward referral stage: %w", err)
		}
		c.Log = &l
	}
	return c, s.d.Events.Append(ctx, tx, communityID, EventStageCompleted, c)
}
