package leaderboard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/wallet"
	"github.com/rallyhq/rally/internal/xp"
)

// bucket maps a score to its histogram bucket. Buckets keep the score's
// top 7 bits, so each is at most about 1.5% of the score wide and there are
// at most a few thousand; the map is monotonic, so every score above a
// bucket's scores falls in a higher bucket.
func bucket(s int64) int64 {
	if s < 0 {
		return -bucket(-s) - 1
	}
	if s < 128 {
		return s
	}
	shift := int64(bits.Len64(uint64(s)) - 7)
	return shift*64 + s>>shift
}

// bucketsPerGroup is how many consecutive buckets form one group of the
// histogram's second level: for scores of 128 and more, one group per power
// of two of the score.
const bucketsPerGroup = 64

// group maps a bucket to its group: floor(b / 64), monotonic like bucket.
func group(b int64) int64 { return b >> 6 }

// groupTop is the highest bucket in group g.
func groupTop(g int64) int64 { return g*bucketsPerGroup + bucketsPerGroup - 1 }

// bucketTop is the highest score in bucket b.
func bucketTop(b int64) int64 {
	if b < 0 {
		return -bucketBottom(-b - 1)
	}
	if b < 128 {
		return b
	}
	shift := b/64 - 1
	mant := b - shift*64
	return (mant+1)<<shift - 1
}

// bucketBottom is the lowest score in bucket b.
func bucketBottom(b int64) int64 {
	if b < 0 {
		return -bucketTop(-b - 1)
	}
	if b < 128 {
		return b
	}
	shift := b/64 - 1
	return (b - shift*64) << shift
}

// XPHook keeps XP leaderboards' scores: register it with xp.Service.AddHook.
func (s *Service) XPHook(ctx context.Context, tx *db.Tx, l xp.Log, _, _ int64) error {
	if l.XP == 0 {
		return nil
	}
	return s.score(ctx, tx, RankXP, l.CommunityID, l.UserID, l.XP)
}

// WalletHook keeps coin leaderboards' scores: register it with
// wallet.Service.AddHook.
func (s *Service) WalletHook(ctx context.Context, tx *db.Tx, r wallet.LedgerRow) error {
	if r.Currency != wallet.Coins {
		return nil
	}
	return s.score(ctx, tx, RankCoins, r.CommunityID, r.UserID, r.Amount)
}

// bucketKey names one histogram row: a bucket of a period, or a group of
// buckets when group is set.
type bucketKey struct {
	board, period string
	group         bool
	bucket        int64
}

// histogramDeltas are pending count changes of histogram rows.
type histogramDeltas map[bucketKey]int64

// count adds d scores to the bucket of score, and to its group.
func (m histogramDeltas) count(board, period string, score, d int64) {
	b := bucket(score)
	m[bucketKey{board, period, false, b}] += d
	m[bucketKey{board, period, true, group(b)}] += d
}

// score adds delta to the member's score in every current period of every
// leaderboard of the community ranking by metric whose run covers now. The
// caller's transaction holds the member's lock (XP total row or wallet
// lock), so the member's score rows change one award at a time; bucket
// counts change in one sorted order, so concurrent awards cannot deadlock
// on them.
func (s *Service) score(ctx context.Context, tx *db.Tx, metric, communityID, userID string, delta int64) error {
	if err := lockBoards(ctx, tx, communityID, false); err != nil {
		return err
	}
	boards, err := s.boardsTx(ctx, tx, communityID, metric)
	if err != nil {
		return err
	}
	now := s.d.Clock.Now()
	ms := now.UnixMilli()
	deltas := histogramDeltas{}
	for _, b := range boards {
		if !b.Duration.window().contains(now) {
			continue
		}
		for _, p := range b.periods(now) {
			var old int64
			err := tx.QueryRow(ctx, "SELECT score FROM leaderboard_scores WHERE leaderboard_id = ? AND period = ? AND user_id = ?",
				b.ID, p.Key, userID).Scan(&old)
			existed := err == nil
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("read score: %w", err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO leaderboard_scores (leaderboard_id, period, user_id, score, reached_at) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (leaderboard_id, period, user_id) DO UPDATE SET score = excluded.score, reached_at = excluded.reached_at`,
				b.ID, p.Key, userID, old+delta, ms); err != nil {
				return fmt.Errorf("write score: %w", err)
			}
			if existed {
				deltas.count(b.ID, p.Key, old, -1)
			}
			deltas.count(b.ID, p.Key, old+delta, 1)
		}
	}
	return applyBuckets(ctx, tx, deltas)
}

// applyBuckets writes histogram count changes in key order (every bucket
// row before every group row).
func applyBuckets(ctx context.Context, tx *db.Tx, deltas histogramDeltas) error {
	keys := make([]bucketKey, 0, len(deltas))
	for k, d := range deltas {
		if d != 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b bucketKey) int {
		if a.group != b.group {
			if b.group {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.board, b.board); c != 0 {
			return c
		}
		if c := strings.Compare(a.period, b.period); c != 0 {
			return c
		}
		return int(max(min(a.bucket-b.bucket, 1), -1))
	})
	for _, k := range keys {
		q := `INSERT INTO leaderboard_buckets (leaderboard_id, period, bucket, n) VALUES (?, ?, ?, ?)
			ON CONFLICT (leaderboard_id, period, bucket) DO UPDATE SET n = leaderboard_buckets.n + excluded.n`
		if k.group {
			q = `INSERT INTO leaderboard_bucket_groups (leaderboard_id, period, grp, n) VALUES (?, ?, ?, ?)
			ON CONFLICT (leaderboard_id, period, grp) DO UPDATE SET n = leaderboard_bucket_groups.n + excluded.n`
		}
		if _, err := tx.Exec(ctx, q, k.board, k.period, k.bucket, deltas[k]); err != nil {
			return fmt.Errorf("write score bucket: %w", err)
		}
	}
	return nil
}

// boardsTx returns the community's leaderboards ranking by metric.
func (s *Service) boardsTx(ctx context.Context, tx *db.Tx, communityID, metric string) ([]Leaderboard, error) {
	rows, err := tx.Query(ctx, "SELECT doc FROM leaderboards WHERE community_id = ? AND rank_by = ?", communityID, metric)
	if err != nil {
		return nil, fmt.Errorf("read leaderboards: %w", err)
	}
	defer rows.Close()
	var out []Leaderboard
	for rows.Next() {
		b, err := scanBoard(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read leaderboards: %w", err)
	}
	return out, nil
}

// periods are the scoring periods of b at t: the whole run, and the current
// period of each of its time filters.
func (b Leaderboard) periods(t time.Time) []period {
	out := []period{{Key: "a"}}
	loc := b.Duration.location()
	for _, f := range b.TimeFilters {
		if f != AllTime {
			out = append(out, periodAt(f, t, loc))
		}
	}
	return out
}

// rebuild recomputes b's scores for its run and the current periods from
// the records of the metric: the gamification log for XP, the wallet
// ledger for coins (the lifetime totals when the run is unbounded).
func (s *Service) rebuild(ctx context.Context, tx *db.Tx, b Leaderboard) error {
	for _, q := range []string{"DELETE FROM leaderboard_buckets WHERE leaderboard_id = ?", "DELETE FROM leaderboard_bucket_groups WHERE leaderboard_id = ?",
		"DELETE FROM leaderboard_scores WHERE leaderboard_id = ?"} {
		if _, err := tx.Exec(ctx, q, b.ID); err != nil {
			return fmt.Errorf("clear scores: %w", err)
		}
	}
	now := s.d.Clock.Now()
	w := b.Duration.window()
	for _, p := range b.periods(now) {
		from, till := w.clip(p.From, p.Till)
		if !till.IsZero() && !till.After(from) {
			continue
		}
		var q string
		args := []any{b.ID, p.Key, b.CommunityID}
		switch {
		case from.IsZero() && till.IsZero() && b.RankBy == RankXP:
			q = "SELECT ?, ?, user_id, xp, updated_at FROM xp_totals WHERE community_id = ?"
		case from.IsZero() && till.IsZero():
			q = "SELECT ?, ?, user_id, balance, updated_at FROM wallet_balances WHERE community_id = ? AND currency = '" + wallet.Coins + "'"
		default:
			src := "SELECT ?, ?, user_id, SUM(xp), MAX(created_at) FROM gamification_logs WHERE community_id = ?"
			if b.RankBy == RankCoins {
				src = "SELECT ?, ?, user_id, SUM(amount), MAX(created_at) FROM wallet_ledger WHERE community_id = ? AND currency = '" + wallet.Coins + "'"
			}
			q = src
			if !from.IsZero() {
				q += " AND created_at >= ?"
				args = append(args, from.UnixMilli())
			}
			if !till.IsZero() {
				q += " AND created_at < ?"
				args = append(args, till.UnixMilli())
			}
			q += " GROUP BY user_id"
		}
		if _, err := tx.Exec(ctx, "INSERT INTO leaderboard_scores (leaderboard_id, period, user_id, score, reached_at) "+q, args...); err != nil {
			return fmt.Errorf("rebuild scores: %w", err)
		}
		if err := rebuildBuckets(ctx, tx, b.ID, p.Key); err != nil {
			return err
		}
	}
	return nil
}

// rebuildBuckets recounts the histogram of one period from its scores.
func rebuildBuckets(ctx context.Context, tx *db.Tx, board, periodKey string) error {
	rows, err := tx.Query(ctx, "SELECT score, COUNT(*) FROM leaderboard_scores WHERE leaderboard_id = ? AND period = ? GROUP BY score",
		board, periodKey)
	if err != nil {
		return fmt.Errorf("count scores: %w", err)
	}
	counts := histogramDeltas{}
	for rows.Next() {
		var score, n int64
		if err := rows.Scan(&score, &n); err != nil {
			rows.Close()
			return fmt.Errorf("count scores: %w", err)
		}
		counts.count(board, periodKey, score, n)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return fmt.Errorf("count scores: %w", err)
	}
	rows.Close()
	return applyBuckets(ctx, tx, counts)
}
