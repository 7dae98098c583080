package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/channel"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/gamification"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/streak"
	"github.com/rallyhq/rally/internal/user"
)

// BenchmarkSendMessage measures Send Message (POST /v1/messages/send)
// through the real HTTP stack: concurrent clients (RALLY_BENCH_CLIENTS,
// default 64, as bench/run.sh's wrk connections) post over keep-alive TCP
// connections to a running server with its background workers, each as
// one of 64 members of one community, into one open channel. It reports
// sends/s, CPU per send (clients included) and how long the outbox
// subscribers (feed, streaks, rewards) took after the last send to deliver
// every event (drain-ms).
func BenchmarkSendMessage(b *testing.B) {
	e := apitest.New(b)
	communityID, key := e.Community("Bench", "bench")
	const members = 64
	for i := range members {
		e.Member(communityID, "m"+strconv.Itoa(i), user.MemberOptions{Joined: true})
	}
	ch, err := e.App.Channels.Create(context.Background(), communityID,
		channel.Input{Topic: jsonx.Some("General"), ChannelType: jsonx.Some("open")})
	if err != nil {
		b.Fatal(err)
	}
	clients := 64
	if n, err := strconv.Atoi(os.Getenv("RALLY_BENCH_CLIENTS")); err == nil && n > 0 {
		clients = n
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}, Timeout: 30 * time.Second}
	url := e.Server.URL + "/v1/messages/send"
	var next atomic.Int64
	b.SetParallelism((clients + 1) / 2)
	b.ReportAllocs()
	meter := apitest.StartMeter()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			body := fmt.Sprintf(`{"channelId":%q,"sender":"m%d","message":"hello number %d"}`, ch.ID, n%members, n)
			req, err := http.NewRequest("POST", url, bytes.NewReader([]byte(body)))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			res, err := hc.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			raw, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Errorf("status %d: %s", res.StatusCode, raw)
				return
			}
		}
	})
	b.StopTimer()
	meter.Report(b, b.N, "send")
	// Delivery to the outbox subscribers, after the last send.
	t0 := time.Now()
	for _, s := range []string{event.FeedSubscriberName, streak.SubscriberName, gamification.RewardSubscriberName} {
		e.Drain(communityID, s)
	}
	b.ReportMetric(float64(time.Since(t0).Milliseconds()), "drain-ms")
}
