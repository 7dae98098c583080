package message_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/app"
	"github.com/rallyhq/rally/internal/channel"
	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/community"
	"github.com/rallyhq/rally/internal/config"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/db/dbtest"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/message"
	"github.com/rallyhq/rally/internal/user"
)

// benchApp opens Rally on a fresh database (PostgreSQL when
// RALLY_TEST_POSTGRES_URL is set) with a community, a channel and members
// called m0..m<members-1>.
func benchApp(b *testing.B, members int) (*app.App, string, string) {
	b.Helper()
	cfg := config.Default()
	cfg.DSN = dbtest.DSN(b)
	cfg.DataDir = b.TempDir()
	ctx := context.Background()
	a, err := app.Open(ctx, cfg, nil, app.Options{Clock: clock.System{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	c, _, _, err := a.Communities.Create(ctx, community.Input{Name: jsonx.Some("Bench"), URI: jsonx.Some("bench")})
	if err != nil {
		b.Fatal(err)
	}
	ch, err := a.Channels.Create(ctx, c.ID, channel.Input{Topic: jsonx.Some("General"), ChannelType: jsonx.Some("open")})
	if err != nil {
		b.Fatal(err)
	}
	for i := range members {
		err := a.DB.Tx(ctx, func(tx *db.Tx) error {
			u, err := a.Users.CreateAccountTx(ctx, tx, user.NewAccount{Email: fmt.Sprintf("m%d@example.com", i), Username: fmt.Sprintf("m%d", i)})
			if err != nil {
				return err
			}
			_, err = a.Users.AddMemberTx(ctx, tx, c.ID, u, user.MemberOptions{Joined: true})
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return a, c.ID, ch.ID
}

// BenchmarkSend measures messages sent per second through the service (the
// whole rule set: sender lookup, permissions, the write with its counters
// and two events), with parallel senders.
func BenchmarkSend(b *testing.B) {
	const members = 32
	a, communityID, channelID := benchApp(b, members)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(benchParallelism())
	meter := apitest.StartMeter()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		n := rand.IntN(members)
		for pb.Next() {
			n = (n + 1) % members
			_, err := a.Messages.Send(ctx, message.Actor{CommunityID: communityID, Sender: "m" + strconv.Itoa(n), Partner: true},
				message.SendInput{ChannelID: channelID, Content: message.Content{Message: "hello there"}})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	meter.Report(b, b.N, "send")
}

// BenchmarkGetMessages measures Get Messages on a channel holding
// RALLY_BENCH_MESSAGES messages (default 1,000,000, seeded with bulk
// inserts): pages of 50 at random cursors, reporting p50 and p99.
func BenchmarkGetMessages(b *testing.B) {
	total := 1_000_000
	if s := os.Getenv("RALLY_BENCH_MESSAGES"); s != "" {
		total, _ = strconv.Atoi(s)
	}
	a, communityID, channelID := benchApp(b, 10)
	ctx := context.Background()
	ids := seed(b, a, communityID, channelID, total)
	actor := message.Actor{CommunityID: communityID, Partner: true}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		q := message.Query{ChannelID: channelID, Count: 50}
		if i%4 != 0 {
			q.Before = ids[rand.IntN(len(ids))]
		}
		t0 := time.Now()
		p, err := a.Messages.List(ctx, actor, q)
		lat = append(lat, time.Since(t0))
		if err != nil || p.Total != int64(total) {
			b.Fatalf("list: %v (total %d)", err, p.Total)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// seed bulk-inserts n messages into the channel and returns a sample of
// their ids (the paging cursors the benchmark uses).
func seed(b *testing.B, a *app.App, communityID, channelID string, n int) []string {
	b.Helper()
	ctx := context.Background()
	var userIDs []string
	rows, err := a.DB.Query(ctx, "SELECT user_id FROM members WHERE community_id = ?", communityID)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var u string
		_ = rows.Scan(&u)
		userIDs = append(userIDs, u)
	}
	rows.Close()
	const batch = 500
	var sample []string
	now := time.Now()
	for done := 0; done < n; {
		err := a.DB.Tx(ctx, func(tx *db.Tx) error {
			for k := 0; k < 20 && done < n; k++ {
				size := min(batch, n-done)
				var sb strings.Builder
				args := make([]any, 0, size*7)
				sb.WriteString("INSERT INTO messages (id, community_id, channel_id, channel_seq, user_id, body, created_at) VALUES ")
				for j := range size {
					if j > 0 {
						sb.WriteString(", ")
					}
					sb.WriteString("(?, ?, ?, ?, ?, ?, ?)")
					mid := id.New(now)
					if (done+j)%1000 == 0 {
						sample = append(sample, mid)
					}
					args = append(args, mid, communityID, channelID, done+j+1, userIDs[(done+j)%len(userIDs)], "seeded message",
						now.UnixMilli())
				}
				if _, err := tx.Exec(ctx, sb.String(), args...); err != nil {
					return err
				}
				done += size
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if _, err := a.DB.Exec(ctx, "UPDATE channels SET last_seq = ?, message_count = ? WHERE id = ?", n, n, channelID); err != nil {
		b.Fatal(err)
	}
	if a.DB.Dialect == db.Postgres {
		if _, err := a.DB.Exec(ctx, "ANALYZE messages"); err != nil {
			b.Fatal(err)
		}
	}
	return sample
}

// benchParallelism is the senders per CPU (RALLY_BENCH_PARALLELISM, default 4).
func benchParallelism() int {
	if n, err := strconv.Atoi(os.Getenv("RALLY_BENCH_PARALLELISM")); err == nil && n > 0 {
		return n
	}
	return 4
}
