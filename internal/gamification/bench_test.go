package gamification_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/gamification"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/user"
)

// BenchmarkRewardSubscriber measures events handled per second by the
// reward subscriber, in transactions of 100 events as the dispatcher hands
// them over: "rewarded" awards every message (XP and coins, no cooldown)
// across 100 members; "cooldown" only counts them (one member, a cooldown
// longer than the run).
func BenchmarkRewardSubscriber(b *testing.B) {
	for _, mode := range []string{"rewarded", "cooldown"} {
		b.Run(mode, func(b *testing.B) {
			e := apitest.New(b)
			ctx := context.Background()
			c, _ := e.Community("Bench", "bench")
			cooldown := int64(0)
			members := 100
			if mode == "cooldown" {
				cooldown, members = 86400, 1
			}
			raw, _ := json.Marshal(map[string]any{"message": map[string]any{"enabled": true, "xp": 10, "coins": 1, "time": cooldown}})
			var in gamification.XPSettingInput
			if err := json.Unmarshal(raw, &in); err != nil {
				b.Fatal(err)
			}
			if _, err := e.App.Gamification.UpdateXPSetting(ctx, c, in); err != nil {
				b.Fatal(err)
			}
			ids := make([]string, members)
			for i := range ids {
				ids[i] = e.Member(c, fmt.Sprintf("m%d", i), user.MemberOptions{Joined: true}).ID
			}
			sub := e.App.Gamification.Subscriber()
			b.ResetTimer()
			for done := 0; done < b.N; {
				n := min(100, b.N-done)
				err := e.App.DB.Tx(ctx, func(tx *db.Tx) error {
					events := make([]event.Event, n)
					for i := range n {
						now := e.Clock.Now()
						payload, _ := json.Marshal(map[string]any{"userId": ids[(done+i)%members]})
						events[i] = event.Event{ID: id.New(now), CommunityID: c, Type: gamification.EventMessagePosted, Payload: payload, OccurredAt: now}
					}
					return sub.HandleBatch(ctx, tx, events)
				})
				if err != nil {
					b.Fatal(err)
				}
				done += n
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
