package wallet_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/wallet"
)

// BenchmarkCredit measures credits per second through the service, all
// goroutines on one member (contention on one balance row) or each on its
// own member.
func BenchmarkCredit(b *testing.B) {
	for _, mode := range []string{"one-member", "many-members"} {
		b.Run(mode, func(b *testing.B) {
			e := apitest.New(b)
			ctx := context.Background()
			c, _ := e.Community("Bench", "bench")
			b.SetParallelism(4)
			members := make([]string, 0, 256)
			for i := range cap(members) {
				members = append(members, e.Member(c, fmt.Sprintf("m%d", i), user.MemberOptions{Joined: true}).ID)
			}
			var next atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				userID := members[0]
				if mode == "many-members" {
					userID = members[int(next.Add(1))%len(members)]
				}
				for pb.Next() {
					if _, err := e.App.Wallet.Credit(ctx, entry(c, userID, wallet.Coins, 1, wallet.ReasonCredit)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "credits/s")
		})
	}
}

// BenchmarkLedgerPage measures ledger page latency (p50, p99) for a member
// with 100,000 ledger rows, seeded with bulk inserts.
func BenchmarkLedgerPage(b *testing.B) {
	const rows = 100_000
	e := apitest.New(b)
	ctx := context.Background()
	c, _ := e.Community("Bench", "bench")
	u := e.Member(c, "heavy", user.MemberOptions{Joined: true})
	now := e.Clock.Now()
	const batch = 1000
	var balance int64
	for start := 0; start < rows; start += batch {
		var sb strings.Builder
		sb.WriteString(`INSERT INTO wallet_ledger (id, community_id, user_id, currency, amount, balance_after, reason, reference,
			actor_kind, actor_id, created_at) VALUES `)
		args := make([]any, 0, batch*11)
		for i := start; i < start+batch; i++ {
			if i > start {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			balance += 3
			at := now.Add(time.Duration(i) * time.Second)
			args = append(args, id.New(at), c, u.ID, wallet.Currencies[i%2], int64(3), balance, wallet.ReasonReward, "",
				wallet.ActorSystem, "bench", at.UnixMilli())
		}
		if _, err := e.App.DB.Exec(ctx, sb.String(), args...); err != nil {
			b.Fatalf("seed ledger: %v", err)
		}
	}
	var maxSeq int64
	if err := e.App.DB.QueryRow(ctx, "SELECT MAX(seq) FROM wallet_ledger").Scan(&maxSeq); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	w := e.App.Wallet
	b.Run("first-page", func(b *testing.B) {
		apitest.MeasureLatency(b, func() error {
			_, _, err := w.Ledger(ctx, c, u.ID, wallet.LedgerQuery{Limit: 100})
			return err
		})
	})
	b.Run("random-cursor", func(b *testing.B) {
		apitest.MeasureLatency(b, func() error {
			_, _, err := w.Ledger(ctx, c, u.ID, wallet.LedgerQuery{Limit: 100, Before: 1 + rng.Int64N(maxSeq)})
			return err
		})
	})
	b.Run("random-cursor-currency", func(b *testing.B) {
		apitest.MeasureLatency(b, func() error {
			_, _, err := w.Ledger(ctx, c, u.ID, wallet.LedgerQuery{Limit: 100, Currency: wallet.Premium, Before: 1 + rng.Int64N(maxSeq)})
			return err
		})
	})
}
