// Package metric reads the measures of a member's progress that referral
// stages and milestones set targets on: messages, replies, reactions, visits,
// lifetime XP, level, purchases, a verified email and the best login or
// community streak. Every value is read from the data the owning domain
// keeps, so a target is judged the same way whichever event prompted it.
package metric

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rallyhq/rally/internal/gamification"
)

// The measures, as conditions and milestones name them.
const (
	// Messages counts the messages the member posted, replies included.
	Messages = "messages"
	// Replies counts the replies the member posted.
	Replies = "replies"
	// Reactions counts the reactions the member added.
	Reactions = "reactions"
	// Visits counts the UTC days the member visited.
	Visits = "visits"
	// XP is the member's lifetime XP.
	XP = "xp"
	// Level is the member's level across all tiers, from 1 (0: below the
	// first level, or no tiers).
	Level = "level"
	// Purchases counts the member's store orders that were not refunded.
	Purchases = "purchases"
	// EmailVerified is 1 once the member's email address is verified.
	EmailVerified = "emailVerified"
	// LoginStreak is the longest run of consecutive UTC days with a visit.
	LoginStreak = "loginStreak"
	// Streak is the longest run the member reached in one of the community's
	// streaks (named by a streak id).
	Streak = "streak"
)

// Names lists every measure.
var Names = []string{Messages, Replies, Reactions, Visits, XP, Level, Purchases, EmailVerified, LoginStreak, Streak}

// Valid reports whether name is a measure.
func Valid(name string) bool { return slices.Contains(Names, name) }

// Querier runs single-row reads: a database or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, q string, args ...any) *sql.Row
}

// Levels places a lifetime XP total in the community's tiers, reading
// through the caller's querier (never a second connection: a caller inside
// a transaction must not wait for another one from a small pool).
type Levels interface {
	LevelOfTx(ctx context.Context, q interface {
		QueryRow(ctx context.Context, q string, args ...any) *sql.Row
	}, communityID string, total int64) (gamification.Level, error)
}

// Reader reads measures.
type Reader struct{ levels Levels }

// NewReader returns a Reader placing XP totals with levels.
func NewReader(levels Levels) *Reader { return &Reader{levels: levels} }

// Key names one measure of one member: Name, and for Streak the streak id.
type Key struct {
	Name     string
	StreakID string
}

// Values reads the measures keys name for the member, through q (a
// transaction when the caller acts on them).
func (r *Reader) Values(ctx context.Context, q Querier, communityID, userID string, keys []Key) (map[Key]int64, error) {
	out := make(map[Key]int64, len(keys))
	for _, k := range keys {
		if _, done := out[k]; done {
			continue
		}
		v, err := r.value(ctx, q, communityID, userID, k, out)
		if err != nil {
			return nil, fmt.Errorf("read %s of %s: %w", k.Name, userID, err)
		}
		out[k] = v
	}
	return out, nil
}

func (r *Reader) value(ctx context.Context, q Querier, communityID, userID string, k Key, known map[Key]int64) (int64, error) {
	one := func(query string, args ...any) (int64, error) {
		var n int64
		err := q.QueryRow(ctx, query, args...).Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil
		}
		return n, err
	}
	switch k.Name {
	case Messages, Replies, Reactions:
		col := map[string]string{Messages: "total_messages", Replies: "reply_sent", Reactions: "total_reactions"}[k.Name]
		return one("SELECT "+col+" FROM message_counters WHERE community_id = ? AND user_id = ?", communityID, userID)
	case Visits:
		return one("SELECT visit_count FROM members WHERE community_id = ? AND user_id = ?", communityID, userID)
	case XP:
		return one("SELECT xp FROM xp_totals WHERE community_id = ? AND user_id = ?", communityID, userID)
	case Level:
		total, ok := known[Key{Name: XP}]
		if !ok {
			var err error
			if total, err = r.value(ctx, q, communityID, userID, Key{Name: XP}, known); err != nil {
				return 0, err
			}
		}
		lv, err := r.levels.LevelOfTx(ctx, q, communityID, total)
		return int64(lv.Index), err
	case Purchases:
		return one("SELECT COUNT(*) FROM redemption_orders WHERE community_id = ? AND user_id = ? AND refunded = ?", communityID, userID, false)
	case EmailVerified:
		var verified bool
		err := q.QueryRow(ctx, "SELECT email_verified FROM users WHERE id = ?", userID).Scan(&verified)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, err
		}
		if verified {
			return 1, nil
		}
		return 0, nil
	case LoginStreak:
		return one("SELECT longest_count FROM login_streaks WHERE community_id = ? AND user_id = ?", communityID, userID)
	case Streak:
		return one("SELECT longest_count FROM streak_members WHERE community_id = ? AND streak_id = ? AND user_id = ?",
			communityID, strings.TrimSpace(k.StreakID), userID)
	}
	return 0, fmt.Errorf("unknown measure %q", k.Name)
}
