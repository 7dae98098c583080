package leaderboard_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/leaderboard"
)

// BenchmarkStandings measures, over 1,000,000 ranked members of the
// default board (seeded with bulk inserts; XP drawn from a long-tailed
// distribution, so low scores are crowded and tie), the latency (p50, p99)
// of one member's rank and of the top 50, after a warm-up of 2,000 random
// rank reads.
func BenchmarkStandings(b *testing.B) {
	const members, batch = 1_000_000, 2000
	e := apitest.New(b)
	ctx := context.Background()
	c, _ := e.Community("Bench", "bench")
	board, err := e.App.Leaderboards.Get(ctx, c, leaderboard.DefaultRef)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	now := e.Clock.Now()
	users := make([]string, members)
	buckets, groups := map[int64]int64{}, map[int64]int64{}
	for start := 0; start < members; start += batch {
		var sb strings.Builder
		sb.WriteString("INSERT INTO leaderboard_scores (leaderboard_id, period, user_id, score, reached_at) VALUES ")
		args := make([]any, 0, batch*5)
		for i := start; i < start+batch; i++ {
			if i > start {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, 'a', ?, ?, ?)")
			at := now.Add(-time.Duration(rng.Int64N(int64(365 * 24 * time.Hour))))
			users[i] = id.New(at)
			score := int64(rng.ExpFloat64() * 5000)
			buckets[leaderboard.Bucket(score)]++
			groups[leaderboard.Group(leaderboard.Bucket(score))]++
			args = append(args, board.ID, users[i], score, at.UnixMilli())
		}
		if _, err := e.App.DB.Exec(ctx, sb.String(), args...); err != nil {
			b.Fatalf("seed scores: %v", err)
		}
	}
	for k, n := range buckets {
		if _, err := e.App.DB.Exec(ctx, "INSERT INTO leaderboard_buckets (leaderboard_id, period, bucket, n) VALUES (?, 'a', ?, ?)", board.ID, k, n); err != nil {
			b.Fatal(err)
		}
	}
	for g, n := range groups {
		if _, err := e.App.DB.Exec(ctx, "INSERT INTO leaderboard_bucket_groups (leaderboard_id, period, grp, n) VALUES (?, 'a', ?, ?)", board.ID, g, n); err != nil {
			b.Fatal(err)
		}
	}
	settle := "PRAGMA wal_checkpoint(TRUNCATE)" // SQLite checkpoints bulk writes
	if e.App.DB.Dialect == "postgres" {
		settle = "VACUUM ANALYZE" // what autovacuum does after a bulk load: statistics and the visibility map
	}
	if _, err := e.App.DB.Exec(ctx, settle); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d scores in %d buckets, %d groups", members, len(buckets), len(groups))
	svc := e.App.Leaderboards
	q := leaderboard.StandingsQuery{TimeFilter: leaderboard.AllTime}
	if os.Getenv("RALLY_BENCH_QUIET") != "" {
		// Measure the reads alone, without the job queue's background polling.
		if err := e.App.Queue.Stop(ctx); err != nil {
			b.Fatal(err)
		}
	}
	// Warm the caches as a serving node's would be.
	for range 2000 {
		if _, err := svc.Position(ctx, c, board.ID, users[rng.IntN(members)], q); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("rank-of-member", func(b *testing.B) {
		apitest.MeasureLatency(b, func() error {
			p, err := svc.Position(ctx, c, board.ID, users[rng.IntN(members)], q)
			if err == nil && !p.Ranked {
				err = fmt.Errorf("member not ranked")
			}
			return err
		})
	})
	b.Run("top-50", func(b *testing.B) {
		top := q
		top.Limit = 50
		apitest.MeasureLatency(b, func() error {
			s, err := svc.Standings(ctx, c, board.ID, top)
			if err == nil && len(s.Entries) != 50 {
				err = fmt.Errorf("top 50 has %d entries", len(s.Entries))
			}
			return err
		})
	})
}
