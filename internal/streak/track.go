package streak

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
)

// The outbox events streaks count. Messaging publishes message.posted and
// message.reacted; the names of their payload fields live here only (see
// actionFields).
const (
	EventMessagePosted  = "message.posted"
	EventMessageReacted = "message.reacted"
	EventUserVisited    = "user.visited"
)

// actionFields are the payload fields streaks read: userId names the member
// who acted; parentId or replyTo, holding a non-empty value, mark a posted
// message as a reply. They are decoded as any, as a generic decode would,
// and the rest of the payload (the whole message) is skipped, not decoded.
type actionFields struct {
	UserID   any `json:"userId"`
	ParentID any `json:"parentId"`
	ReplyTo  any `json:"replyTo"`
}

// SubscriberName is the outbox subscriber that counts streak actions.
const SubscriberName = "streaks"

// Recorded action kinds.
const (
	kindMessage  = "message"
	kindReply    = "reply"
	kindReaction = "reaction"
	kindLogin    = "login"
)

// counts maps a condition action to the recorded kinds it counts.
var counts = map[string][]string{
	ActionMessages:  {kindMessage, kindReply},
	ActionReplies:   {kindReply},
	ActionReactions: {kindReaction},
	ActionLogins:    {kindLogin},
}

// Log kinds.
const (
	LogStarted  = "started"
	LogExtended = "extended"
	LogBroken   = "broken"
)

// Log is one change of a member's streak.
type Log struct {
	ID          string     `json:"_id"`
	Seq         int64      `json:"sequence"`
	StreakID    string     `json:"streakId"`
	UserID      string     `json:"userId"`
	Type        string     `json:"type"`
	Count       int64      `json:"count"`
	Previous    int64      `json:"previousCount"`
	PeriodStart jsonx.Time `json:"periodStart"`
	PeriodEnd   jsonx.Time `json:"periodEnd"`
	CreatedAt   jsonx.Time `json:"createdAt"`
}

// Subscriber returns the outbox subscriber that records members' actions
// and grows their streaks (and the login streak) as they happen. The
// community's streaks are read once per batch of events.
func (s *Service) Subscriber() event.Subscriber {
	return event.Subscriber{Name: SubscriberName, HandleBatch: s.handleBatch}
}

// classify returns the kind of action e records and who acted ("" when e
// counts for nothing).
func classify(e event.Event) (kind, userID string) {
	switch e.Type {
	case EventMessagePosted, EventMessageReacted, EventUserVisited:
	default:
		return "", ""
	}
	var p actionFields
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		return "", ""
	}
	userID, _ = p.UserID.(string)
	switch e.Type {
	case EventMessageReacted:
		return kindReaction, userID
	case EventUserVisited:
		return kindLogin, userID
	}
	for _, v := range []any{p.ParentID, p.ReplyTo} {
		if v != nil && v != "" {
			return kindReply, userID
		}
	}
	return kindMessage, userID
}

func (s *Service) handleBatch(ctx context.Context, tx *db.Tx, events []event.Event) error {
	var (
		streaks []Streak
		read    bool
	)
	for _, e := range events {
		kind, userID := classify(e)
		if kind == "" || userID == "" {
			continue
		}
		res, err := tx.Exec(ctx, `INSERT INTO streak_actions (event_id, community_id, user_id, kind, occurred_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (event_id) DO NOTHING`, e.ID, e.CommunityID, userID, kind, e.OccurredAt.UnixMilli())
		if err != nil {
			return fmt.Errorf("record streak action of event %s: %w", e.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err != nil {
				return fmt.Errorf("record streak action of event %s: %w", e.ID, err)
			}
			continue
		}
		if kind == kindLogin {
			if err := s.visit(ctx, tx, e.CommunityID, userID, e.OccurredAt); err != nil {
				return err
			}
		}
		if !read {
			if streaks, err = all(ctx, tx, e.CommunityID); err != nil {
				return err
			}
			read = true
		}
		for _, st := range streaks {
			if err := s.track(ctx, tx, st, userID, e.OccurredAt); err != nil {
				return fmt.Errorf("streak %s: %w", st.ID, err)
			}
		}
	}
	return nil
}

// standing is a member's row for one streak.
type standing struct {
	current, longest int64
	last             sql.NullInt64 // start of the last qualified period, unix ms
}

// lockMember reads (creating) the member's standing in st, locked for tx.
func lockMember(ctx context.Context, tx *db.Tx, st Streak, userID string, now time.Time) (standing, error) {
	if _, err := tx.Exec(ctx, `INSERT INTO streak_members (streak_id, community_id, user_id, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (streak_id, user_id) DO NOTHING`, st.ID, st.CommunityID, userID, now.UnixMilli()); err != nil {
		return standing{}, fmt.Errorf("create streak standing: %w", err)
	}
	var m standing
	err := tx.QueryRow(ctx, "SELECT current_count, longest_count, last_period_start FROM streak_members WHERE streak_id = ? AND user_id = ?"+
		tx.DB().ForUpdate(), st.ID, userID).Scan(&m.current, &m.longest, &m.last)
	if err != nil {
		return standing{}, fmt.Errorf("read streak standing: %w", err)
	}
	return m, nil
}

// lastIndex is the schedule index of the last qualified period (-1 when
// none).
func (m standing) lastIndex(sc schedule) int64 {
	if !m.last.Valid {
		return -1
	}
	return sc.index(time.UnixMilli(m.last.Int64))
}

// settle breaks the member's streak when an active period between the last
// qualified one and period upTo went by without qualifying.
func (s *Service) settle(ctx context.Context, tx *db.Tx, st Streak, sc schedule, userID string, m *standing, upTo int64) error {
	if m.current == 0 {
		return nil
	}
	p, missed := sc.firstMissed(m.lastIndex(sc), upTo)
	if !missed {
		return nil
	}
	before := m.current
	m.current = 0
	return s.record(ctx, tx, st, sc, userID, m, LogBroken, before, p)
}

// record writes the standing, a log of kind for period p and its event.
func (s *Service) record(ctx context.Context, tx *db.Tx, st Streak, sc schedule, userID string, m *standing, kind string, before, p int64) error {
	now := s.d.Clock.Now()
	if _, err := tx.Exec(ctx, `UPDATE streak_members SET current_count = ?, longest_count = ?, last_period_start = ?, updated_at = ?
		WHERE streak_id = ? AND user_id = ?`, m.current, m.longest, m.last, now.UnixMilli(), st.ID, userID); err != nil {
		return fmt.Errorf("write streak standing: %w", err)
	}
	from, to := sc.bounds(p)
	l := Log{ID: id.New(now), StreakID: st.ID, UserID: userID, Type: kind, Count: m.current, Previous: before,
		PeriodStart: jsonx.At(from), PeriodEnd: jsonx.At(to), CreatedAt: jsonx.At(now)}
	if err := tx.QueryRow(ctx, `INSERT INTO streak_logs (id, community_id, streak_id, user_id, kind, count_after, count_before, period_start,
		period_end, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`, l.ID, st.CommunityID, st.ID, userID, kind, l.Count,
		before, from.UnixMilli(), to.UnixMilli(), now.UnixMilli()).Scan(&l.Seq); err != nil {
		return fmt.Errorf("write streak log: %w", err)
	}
	return s.d.Events.Append(ctx, tx, st.CommunityID, "streak."+kind, l)
}

// track counts an action of the member at t towards st.
func (s *Service) track(ctx context.Context, tx *db.Tx, st Streak, userID string, t time.Time) error {
	sc, err := newSchedule(st)
	if err != nil {
		return err
	}
	i := sc.index(t)
	if i < 0 || !sc.dayActive(t) {
		return nil
	}
	m, err := lockMember(ctx, tx, st, userID, s.d.Clock.Now())
	if err != nil {
		return err
	}
	if err := s.settle(ctx, tx, st, sc, userID, &m, i); err != nil {
		return err
	}
	if m.lastIndex(sc) >= i {
		return nil // this period already counted (or the action is late)
	}
	got, err := periodCounts(ctx, tx, st, sc, userID, i)
	if err != nil {
		return err
	}
	if !qualifies(st.Action, got) {
		return nil
	}
	before := m.current
	m.current++
	m.longest = max(m.longest, m.current)
	from, _ := sc.bounds(i)
	m.last = sql.NullInt64{Int64: from.UnixMilli(), Valid: true}
	kind := LogExtended
	if m.current == 1 {
		kind = LogStarted
	}
	return s.record(ctx, tx, st, sc, userID, &m, kind, before, i)
}

// querier is a *db.DB or a *db.Tx.
type querier interface {
	Query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// periodCounts counts the member's recorded actions in period i that fall
// on active days, per condition action.
func periodCounts(ctx context.Context, q querier, st Streak, sc schedule, userID string, i int64) (map[string]int64, error) {
	from, to := sc.bounds(i)
	rows, err := q.Query(ctx, `SELECT kind, occurred_at FROM streak_actions WHERE community_id = ? AND user_id = ?
		AND occurred_at >= ? AND occurred_at < ?`, st.CommunityID, userID, from.UnixMilli(), to.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("count streak actions: %w", err)
	}
	defer rows.Close()
	kinds := map[string]int64{}
	for rows.Next() {
		var (
			kind string
			at   int64
		)
		if err := rows.Scan(&kind, &at); err != nil {
			return nil, fmt.Errorf("count streak actions: %w", err)
		}
		if sc.dayActive(time.UnixMilli(at)) {
			kinds[kind]++
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count streak actions: %w", err)
	}
	out := make(map[string]int64, len(counts))
	for action, ks := range counts {
		for _, k := range ks {
			out[action] += kinds[k]
		}
	}
	return out, nil
}

// qualifies reports whether counts meet r.
func qualifies(r Rule, got map[string]int64) bool {
	for _, c := range r.Conditions {
		met := got[c.Action] >= c.Value
		if r.Operator == OperatorOr && met {
			return true
		}
		if r.Operator == OperatorAnd && !met {
			return false
		}
	}
	return r.Operator == OperatorAnd
}

// visit grows the member's login streak for a visit at t: consecutive UTC
// days with a visit (user.visited comes at most once per UTC day).
func (s *Service) visit(ctx context.Context, tx *db.Tx, communityID, userID string, t time.Time) error {
	day := t.UTC().Format(time.DateOnly)
	var (
		current, longest int64
		last             string
	)
	err := tx.QueryRow(ctx, "SELECT current_count, longest_count, last_day FROM login_streaks WHERE community_id = ? AND user_id = ?"+
		tx.DB().ForUpdate(), communityID, userID).Scan(&current, &longest, &last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read login streak: %w", err)
	}
	switch {
	case last >= day:
		return nil
	case last == t.UTC().AddDate(0, 0, -1).Format(time.DateOnly):
		current++
	default:
		current = 1
	}
	longest = max(longest, current)
	if _, err := tx.Exec(ctx, `INSERT INTO login_streaks (community_id, user_id, current_count, longest_count, last_day) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (community_id, user_id) DO UPDATE SET current_count = excluded.current_count, longest_count = excluded.longest_count,
		last_day = excluded.last_day`, communityID, userID, current, longest, day); err != nil {
		return fmt.Errorf("write login streak: %w", err)
	}
	return nil
}
