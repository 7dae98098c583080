package streak

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/jsonx"
)

// LoginStanding is a member's login streak.
type LoginStanding struct {
	// Current counts consecutive UTC days with a visit, up to today or
	// yesterday (0 once a whole UTC day passed without one).
	Current int64 `json:"current"`
	Longest int64 `json:"longest"`
	// LastDay is the last UTC day with a visit (YYYY-MM-DD), "" if none.
	LastDay string `json:"lastDay"`
}

// Login returns the member's login streak as of now.
func (s *Service) Login(ctx context.Context, communityID, userID string) (LoginStanding, error) {
	var l LoginStanding
	err := s.d.DB.QueryRow(ctx, "SELECT current_count, longest_count, last_day FROM login_streaks WHERE community_id = ? AND user_id = ?",
		communityID, userID).Scan(&l.Current, &l.Longest, &l.LastDay)
	if errors.Is(err, sql.ErrNoRows) {
		return LoginStanding{}, nil
	}
	if err != nil {
		return LoginStanding{}, fmt.Errorf("read login streak: %w", err)
	}
	now := s.d.Clock.Now().UTC()
	if l.LastDay != now.Format(time.DateOnly) && l.LastDay != now.AddDate(0, 0, -1).Format(time.DateOnly) {
		l.Current = 0
	}
	return l, nil
}

// LoginStreak is the member's current login streak in days (Get User
// Data's loginStreak).
func (s *Service) LoginStreak(ctx context.Context, communityID, userID string) (int64, error) {
	l, err := s.Login(ctx, communityID, userID)
	return l.Current, err
}

// Refresh breaks, with a log, every streak of the member whose active
// period went by unqualified, as of now.
func (s *Service) Refresh(ctx context.Context, communityID, userID string) error {
	return s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		streaks, err := all(ctx, tx, communityID)
		if err != nil {
			return err
		}
		now := s.d.Clock.Now()
		for _, st := range streaks {
			sc, err := newSchedule(st)
			if err != nil {
				return err
			}
			var n int
			if err := tx.QueryRow(ctx, "SELECT COUNT(*) FROM streak_members WHERE streak_id = ? AND user_id = ? AND current_count > 0",
				st.ID, userID).Scan(&n); err != nil {
				return fmt.Errorf("read streak standing: %w", err)
			}
			if n == 0 {
				continue
			}
			m, err := lockMember(ctx, tx, st, userID, now)
			if err != nil {
				return err
			}
			if err := s.settle(ctx, tx, st, sc, userID, &m, sc.index(now)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Progress is a condition with the member's count in the current period.
type Progress struct {
	Condition
	Count int64 `json:"count"`
	Met   bool  `json:"met"`
}

// Standing is a member's streak in one definition, as of now.
type Standing struct {
	StreakID string `json:"streakId"`
	Name     string `json:"name"`
	Current  int64  `json:"current"`
	Longest  int64  `json:"longest"`
	// Qualified says the current period already counted.
	Qualified bool `json:"qualified"`
	// PeriodStart and PeriodEnd bound the current period (null before the
	// start date).
	PeriodStart *jsonx.Time `json:"periodStart"`
	PeriodEnd   *jsonx.Time `json:"periodEnd"`
	// LastQualifiedAt is when the last counted period started.
	LastQualifiedAt *jsonx.Time `json:"lastQualifiedAt"`
	Progress        []Progress  `json:"progress"`
}

// Standings returns the member's standing in every streak of the
// community, evaluated at now (a missed period shows as a broken streak).
func (s *Service) Standings(ctx context.Context, communityID, userID string) ([]Standing, error) {
	rows, err := s.d.DB.Query(ctx, "SELECT "+columns+" FROM streaks WHERE community_id = ? ORDER BY sort_order, created_at, id", communityID)
	if err != nil {
		return nil, fmt.Errorf("read streaks: %w", err)
	}
	streaks, err := collect(rows)
	if err != nil {
		return nil, err
	}
	now := s.d.Clock.Now()
	out := make([]Standing, 0, len(streaks))
	for _, st := range streaks {
		sc, err := newSchedule(st)
		if err != nil {
			return nil, err
		}
		var m standing
		err = s.d.DB.QueryRow(ctx, "SELECT current_count, longest_count, last_period_start FROM streak_members WHERE streak_id = ? AND user_id = ?",
			st.ID, userID).Scan(&m.current, &m.longest, &m.last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("read streak standing: %w", err)
		}
		n := sc.index(now)
		q := m.lastIndex(sc)
		if _, missed := sc.firstMissed(q, n); missed {
			m.current = 0
		}
		v := Standing{StreakID: st.ID, Name: st.Name, Current: m.current, Longest: m.longest, Qualified: m.last.Valid && q == n,
			Progress: []Progress{}}
		if m.last.Valid {
			t := jsonx.Millis(m.last.Int64)
			v.LastQualifiedAt = &t
		}
		got := map[string]int64{}
		if n >= 0 {
			from, to := sc.bounds(n)
			f, t := jsonx.At(from), jsonx.At(to)
			v.PeriodStart, v.PeriodEnd = &f, &t
			if got, err = periodCounts(ctx, s.d.DB, st, sc, userID, n); err != nil {
				return nil, err
			}
		}
		for _, c := range st.Action.Conditions {
			v.Progress = append(v.Progress, Progress{Condition: c, Count: got[c.Action], Met: got[c.Action] >= c.Value})
		}
		out = append(out, v)
	}
	return out, nil
}

// LogQuery selects a page of streak logs; Page counts from 1.
type LogQuery struct {
	StreakID string
	Page     int
	Limit    int
}

// Logs pages the member's streak logs, newest first, and returns the total.
func (s *Service) Logs(ctx context.Context, communityID, userID string, q LogQuery) ([]Log, int, error) {
	var v errs.Validator
	v.Check(q.Page >= 1, "page", "must be a whole number of at least 1")
	v.Check(q.Limit >= 1 && q.Limit <= MaxListLimit, "limit", "must be a whole number from 1 to %d", MaxListLimit)
	if err := v.Err(); err != nil {
		return nil, 0, err
	}
	where := " FROM streak_logs WHERE community_id = ? AND user_id = ?"
	args := []any{communityID, userID}
	if q.StreakID != "" {
		where += " AND streak_id = ?"
		args = append(args, q.StreakID)
	}
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*)"+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count streak logs: %w", err)
	}
	rows, err := s.d.DB.Query(ctx, `SELECT seq, id, streak_id, user_id, kind, count_after, count_before, period_start, period_end,
		created_at`+where+" ORDER BY seq DESC LIMIT ? OFFSET ?", append(args, q.Limit, (q.Page-1)*q.Limit)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list streak logs: %w", err)
	}
	defer rows.Close()
	out := []Log{}
	for rows.Next() {
		var (
			l                     Log
			from, to, createdAtMs int64
		)
		if err := rows.Scan(&l.Seq, &l.ID, &l.StreakID, &l.UserID, &l.Type, &l.Count, &l.Previous, &from, &to, &createdAtMs); err != nil {
			return nil, 0, fmt.Errorf("list streak logs: %w", err)
		}
		l.PeriodStart, l.PeriodEnd, l.CreatedAt = jsonx.Millis(from), jsonx.Millis(to), jsonx.Millis(createdAtMs)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list streak logs: %w", err)
	}
	return out, total, nil
}
