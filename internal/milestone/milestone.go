// Package milestone keeps the community's milestones (a target on one
// measure of a member's progress: lifetime XP, level, the best login or
// community streak, purchases, messages...) and when each member first
// reached each one (US9). Reaching a milestone can pay XP and coins, once:
// the achievement row and the award (xp.AwardTx keyed by milestone and
// member) are written in one transaction under a per-member lock.
//
// Achievements are recorded by an outbox subscriber as the events that move
// the measures arrive, and by Refresh before a member's milestones are read
// (the login streak moves without an event of its own).
package milestone

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/gamification"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/metric"
	"github.com/rallyhq/rally/internal/redeem"
	"github.com/rallyhq/rally/internal/streak"
	"github.com/rallyhq/rally/internal/wallet"
	"github.com/rallyhq/rally/internal/xp"
)

// Limits of a milestone.
const (
	MaxNameLength        = 100
	MaxDescriptionLength = 500
	MaxTarget            = 1_000_000_000
	MaxReward            = 1_000_000
	DefaultListLimit     = 20
	MaxListLimit         = 100
)

// ActionMilestone is the gamification log action of a milestone reward.
const ActionMilestone = "milestone"

// EventAchieved is emitted when a member first reaches a milestone.
const EventAchieved = "milestone.achieved"

// SubscriberName names the achievement subscriber's outbox offsets.
const SubscriberName = "milestone.progress"

// Rewards are what reaching a milestone pays the member.
type Rewards struct {
	XP    int64 `json:"xp"`
	Coins int64 `json:"coins"`
}

// Milestone is a target on one measure.
type Milestone struct {
	ID          string `json:"_id"`
	CommunityID string `json:"communityId"`
	Name        string `json:"name"`
	Description string `json:"description"`
	// Metric is one of metric.Names; StreakID names the streak of
	// metric.Streak ("" otherwise).
	Metric    string     `json:"metric"`
	StreakID  string     `json:"streakId"`
	Target    int64      `json:"target"`
	Rewards   Rewards    `json:"rewards"`
	Order     int        `json:"order"`
	CreatedAt jsonx.Time `json:"createdAt"`
	UpdatedAt jsonx.Time `json:"updatedAt"`
}

func (m Milestone) key() metric.Key {
	if m.Metric == metric.Streak {
		return metric.Key{Name: m.Metric, StreakID: m.StreakID}
	}
	return metric.Key{Name: m.Metric}
}

// Input creates a milestone or changes the fields it sets.
type Input struct {
	Name        jsonx.Optional[string]  `json:"name"`
	Description jsonx.Optional[string]  `json:"description"`
	Metric      jsonx.Optional[string]  `json:"metric"`
	StreakID    jsonx.Optional[string]  `json:"streakId"`
	Target      jsonx.Optional[int64]   `json:"target"`
	Rewards     jsonx.Optional[Rewards] `json:"rewards"`
	Order       jsonx.Optional[int]     `json:"order"`
}

// Deps are what the milestone service needs.
type Deps struct {
	DB      *db.DB
	Clock   clock.Clock
	Events  event.Appender
	XP      *xp.Service
	Metrics *metric.Reader
}

// Service holds milestones and members' achievements.
type Service struct{ d Deps }

// NewService returns the milestone service.
func NewService(d Deps) *Service { return &Service{d: d} }

// apply sets in's fields on m, naming every offending field; q checks that
// a streak milestone names one of the community's streaks.
func (s *Service) apply(ctx context.Context, q *db.Tx, m *Milestone, in Input, creating bool) error {
	var v errs.Validator
	for _, r := range []struct {
		set   bool
		field string
	}{{in.Name.Set, "name"}, {in.Metric.Set, "metric"}, {in.Target.Set, "target"}} {
		v.Check(!creating || r.set, r.field, "is required")
	}
	if in.Name.Set {
		m.Name = strings.TrimSpace(in.Name.Value)
		n := utf8.RuneCountInString(m.Name)
		v.Check(!in.Name.Null && n >= 1 && n <= MaxNameLength, "name", "must be 1 to %d characters", MaxNameLength)
	}
	if in.Description.Set {
		m.Description = strings.TrimSpace(in.Description.Value)
		v.Check(utf8.RuneCountInString(m.Description) <= MaxDescriptionLength, "description", "must be at most %d characters", MaxDescriptionLength)
	}
	if in.Metric.Set {
		m.Metric = in.Metric.Value
		v.Check(metric.Valid(m.Metric), "metric", "must be one of %s", strings.Join(metric.Names, ", "))
	}
	if in.StreakID.Set {
		m.StreakID = strings.TrimSpace(in.StreakID.Value)
	}
	if m.Metric != metric.Streak {
		v.Check(!in.StreakID.Set || m.StreakID == "", "streakId", "is only for the streak metric")
		m.StreakID = ""
	} else if m.StreakID == "" {
		v.Add("streakId", "is required for the streak metric")
	} else {
		var n int
		if err := q.QueryRow(ctx, "SELECT COUNT(*) FROM streaks WHERE community_id = ? AND id = ?", m.CommunityID, m.StreakID).Scan(&n); err != nil {
			return fmt.Errorf("find streak: %w", err)
		}
		v.Check(n == 1, "streakId", "names no streak of this community")
	}
	if in.Target.Set {
		m.Target = in.Target.Value
		v.Check(!in.Target.Null && m.Target >= 1 && m.Target <= MaxTarget, "target", "must be a whole number from 1 to %d", MaxTarget)
	}
	v.Check(m.Metric != metric.EmailVerified || m.Target == 1, "target", "must be 1 for emailVerified")
	if in.Rewards.Set {
		m.Rewards = in.Rewards.Value
		v.Check(m.Rewards.XP >= 0 && m.Rewards.XP <= MaxReward, "rewards.xp", "must be a whole number from 0 to %d", MaxReward)
		v.Check(m.Rewards.Coins >= 0 && m.Rewards.Coins <= MaxReward, "rewards.coins", "must be a whole number from 0 to %d", MaxReward)
	}
	if in.Order.Set {
		m.Order = in.Order.Value
		v.Check(!in.Order.Null && m.Order >= 0, "order", "must be a whole number of at least 0")
	}
	return v.Err()
}

const columns = `id, community_id, name, description, metric, streak_id, target, reward_xp, reward_coins, sort_order, created_at, updated_at`

func scan(r db.Scanner) (Milestone, error) {
	var (
		m                Milestone
		created, updated int64
	)
	err := r.Scan(&m.ID, &m.CommunityID, &m.Name, &m.Description, &m.Metric, &m.StreakID, &m.Target, &m.Rewards.XP, &m.Rewards.Coins,
		&m.Order, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Milestone{}, errs.NotFoundf("Milestone not found.")
	}
	if err != nil {
		return Milestone{}, fmt.Errorf("scan milestone: %w", err)
	}
	m.CreatedAt, m.UpdatedAt = jsonx.Millis(created), jsonx.Millis(updated)
	return m, nil
}

// Create adds a milestone to the community.
func (s *Service) Create(ctx context.Context, communityID string, in Input) (Milestone, error) {
	now := s.d.Clock.Now()
	m := Milestone{ID: id.New(now), CommunityID: communityID, CreatedAt: jsonx.At(now), UpdatedAt: jsonx.At(now)}
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := s.apply(ctx, tx, &m, in, true); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO milestones (`+columns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ID, communityID, m.Name, m.Description, m.Metric, m.StreakID, m.Target, m.Rewards.XP, m.Rewards.Coins, m.Order,
			now.UnixMilli(), now.UnixMilli()); err != nil {
			return fmt.Errorf("insert milestone: %w", err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "milestone.created", m)
	})
	if err != nil {
		return Milestone{}, err
	}
	return m, nil
}

// Update changes the fields in sets. Achievements already recorded stay.
func (s *Service) Update(ctx context.Context, communityID, milestoneID string, in Input) (Milestone, error) {
	var m Milestone
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if m, err = s.getTx(ctx, tx, communityID, milestoneID); err != nil {
			return err
		}
		if err := s.apply(ctx, tx, &m, in, false); err != nil {
			return err
		}
		now := s.d.Clock.Now()
		m.UpdatedAt = jsonx.At(now)
		if _, err := tx.Exec(ctx, `UPDATE milestones SET name = ?, description = ?, metric = ?, streak_id = ?, target = ?, reward_xp = ?,
			reward_coins = ?, sort_order = ?, updated_at = ? WHERE community_id = ? AND id = ?`, m.Name, m.Description, m.Metric, m.StreakID,
			m.Target, m.Rewards.XP, m.Rewards.Coins, m.Order, now.UnixMilli(), communityID, m.ID); err != nil {
			return fmt.Errorf("update milestone: %w", err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "milestone.updated", m)
	})
	if err != nil {
		return Milestone{}, err
	}
	return m, nil
}

// Delete removes a milestone and its achievements (rewards paid stay).
func (s *Service) Delete(ctx context.Context, communityID, milestoneID string) error {
	return s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		m, err := s.getTx(ctx, tx, communityID, milestoneID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM milestone_achievements WHERE milestone_id = ?", m.ID); err != nil {
			return fmt.Errorf("delete milestone achievements: %w", err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM milestones WHERE community_id = ? AND id = ?", communityID, m.ID); err != nil {
			return fmt.Errorf("delete milestone: %w", err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "milestone.deleted", map[string]string{"_id": m.ID})
	})
}

func (s *Service) getTx(ctx context.Context, tx *db.Tx, communityID, milestoneID string) (Milestone, error) {
	if !id.Valid(milestoneID) {
		return Milestone{}, errs.NotFoundf("Milestone not found.")
	}
	return scan(tx.QueryRow(ctx, "SELECT "+columns+" FROM milestones WHERE community_id = ? AND id = ?"+tx.DB().ForUpdate(),
		communityID, milestoneID))
}

// Get returns one of the community's milestones.
func (s *Service) Get(ctx context.Context, communityID, milestoneID string) (Milestone, error) {
	if !id.Valid(milestoneID) {
		return Milestone{}, errs.NotFoundf("Milestone not found.")
	}
	return scan(s.d.DB.QueryRow(ctx, "SELECT "+columns+" FROM milestones WHERE community_id = ? AND id = ?", communityID, milestoneID))
}

// List pages the community's milestones by order then creation, with the
// total.
func (s *Service) List(ctx context.Context, communityID string, page, limit int) ([]Milestone, int, error) {
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM milestones WHERE community_id = ?", communityID).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count milestones: %w", err)
	}
	out, err := s.all(ctx, s.d.DB, "WHERE community_id = ? ORDER BY sort_order, created_at, id LIMIT ? OFFSET ?", communityID, limit, (page-1)*limit)
	return out, total, err
}

type querier interface {
	Query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func (s *Service) all(ctx context.Context, q querier, tail string, args ...any) ([]Milestone, error) {
	rows, err := q.Query(ctx, "SELECT "+columns+" FROM milestones "+tail, args...)
	return db.Collect(rows, err, "list milestones", scan)
}

// Progress is a member's standing toward one milestone.
type Progress struct {
	Milestone
	Current    int64       `json:"current"`
	Percentage int         `json:"percentage"`
	Achieved   bool        `json:"achieved"`
	AchievedAt *jsonx.Time `json:"achievedAt"`
}

// progressEvents are the events that can move a measure; each names the
// member in userId (or userID, user._id).
var progressEvents = map[string]bool{
	gamification.EventUserCreated: true, "user.verified": true, gamification.EventUserVisited: true,
	gamification.EventMessagePosted: true, gamification.EventMessageReacted: true, "xp.awarded": true,
	gamification.EventLevelChanged: true, redeem.EventPurchased: true,
	"streak." + streak.LogStarted: true, "streak." + streak.LogExtended: true,
}

// Subscriber returns the outbox subscriber that records achievements. It
// refreshes each member a batch of events names once, after reading the
// community's milestones once (none: nothing to do): a refresh reads the
// member's measures as they are, whichever event prompted it.
func (s *Service) Subscriber() event.Subscriber {
	return event.Subscriber{Name: SubscriberName, HandleBatch: func(ctx context.Context, tx *db.Tx, events []event.Event) error {
		members := event.Members(events, func(e event.Event) bool { return progressEvents[e.Type] })
		if len(members) == 0 {
			return nil
		}
		communityID := events[0].CommunityID
		ms, err := s.all(ctx, tx, "WHERE community_id = ? ORDER BY sort_order, created_at, id", communityID)
		if err != nil || len(ms) == 0 {
			return err
		}
		for _, m := range members {
			if _, err := s.refreshTx(ctx, tx, ms, communityID, m.UserID); err != nil {
				return fmt.Errorf("milestones for event %s: %w", m.EventID, err)
			}
		}
		return nil
	}}
}

// achievements returns when the member reached each milestone.
func achievements(ctx context.Context, q querier, communityID, userID string) (map[string]time.Time, error) {
	rows, err := q.Query(ctx, "SELECT milestone_id, achieved_at FROM milestone_achievements WHERE community_id = ? AND user_id = ?",
		communityID, userID)
	if err != nil {
		return nil, fmt.Errorf("read achievements: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var (
			mid string
			at  int64
		)
		if err := rows.Scan(&mid, &at); err != nil {
			return nil, fmt.Errorf("scan achievement: %w", err)
		}
		out[mid] = time.UnixMilli(at).UTC()
	}
	return out, rows.Err()
}

// RefreshTx records every milestone the live member userID has newly
// reached and pays its rewards once; it returns the member's progress in
// every milestone of the community. Non-members get no progress.
func (s *Service) RefreshTx(ctx context.Context, tx *db.Tx, communityID, userID string) ([]Progress, error) {
	ms, err := s.all(ctx, tx, "WHERE community_id = ? ORDER BY sort_order, created_at, id", communityID)
	if err != nil || len(ms) == 0 {
		return []Progress{}, err
	}
	return s.refreshTx(ctx, tx, ms, communityID, userID)
}

// refreshTx is RefreshTx with the community's milestones ms (at least one)
// read.
func (s *Service) refreshTx(ctx context.Context, tx *db.Tx, ms []Milestone, communityID, userID string) ([]Progress, error) {
	var deleted sql.NullInt64
	err := tx.QueryRow(ctx, "SELECT deleted_at FROM members WHERE community_id = ? AND user_id = ?", communityID, userID).Scan(&deleted)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && deleted.Valid) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read member: %w", err)
	}
	if err := tx.Lock(ctx, "milestone:"+communityID+":"+userID); err != nil {
		return nil, err
	}
	done, err := achievements(ctx, tx, communityID, userID)
	if err != nil {
		return nil, err
	}
	keys := make([]metric.Key, len(ms))
	for i, m := range ms {
		keys[i] = m.key()
	}
	values, err := s.d.Metrics.Values(ctx, tx, communityID, userID, keys)
	if err != nil {
		return nil, err
	}
	now := s.d.Clock.Now()
	out := make([]Progress, len(ms))
	for i, m := range ms {
		cur := values[m.key()]
		p := Progress{Milestone: m, Current: cur, Percentage: int(min(cur, m.Target) * 100 / m.Target)}
		at, ok := done[m.ID]
		if !ok && cur >= m.Target {
			if ok, err = s.achieveTx(ctx, tx, m, userID, cur, now); err != nil {
				return nil, err
			}
			at = now.UTC()
		}
		if ok {
			t := jsonx.At(at)
			p.Achieved, p.AchievedAt = true, &t
		}
		out[i] = p
	}
	return out, nil
}

// achieveTx records that userID reached m and pays its rewards, once.
func (s *Service) achieveTx(ctx context.Context, tx *db.Tx, m Milestone, userID string, value int64, now time.Time) (bool, error) {
	res, err := tx.Exec(ctx, `INSERT INTO milestone_achievements (milestone_id, community_id, user_id, value, achieved_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, m.ID, m.CommunityID, userID, value, now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("record achievement: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	if m.Rewards.XP != 0 || m.Rewards.Coins != 0 {
		if _, _, err := s.d.XP.AwardTx(ctx, tx, xp.Award{CommunityID: m.CommunityID, UserID: userID, Action: ActionMilestone,
			XP: m.Rewards.XP, Coins: m.Rewards.Coins, SourceEvent: "milestone:" + m.ID + ":" + userID, Reference: m.ID,
			Actor: wallet.Actor{Kind: wallet.ActorSystem}}); err != nil {
			return false, fmt.Errorf("reward milestone: %w", err)
		}
	}
	return true, s.d.Events.Append(ctx, tx, m.CommunityID, EventAchieved, map[string]any{
		"milestoneId": m.ID, "userId": userID, "metric": m.Metric, "target": m.Target, "value": value,
		"rewards": m.Rewards, "achievedAt": clock.Format(now),
	})
}

// Refresh is RefreshTx in its own transaction: a member's milestones,
// brought up to date.
func (s *Service) Refresh(ctx context.Context, communityID, userID string) ([]Progress, error) {
	var out []Progress
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		out, err = s.RefreshTx(ctx, tx, communityID, userID)
		return err
	})
	return out, err
}
