package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/config"
)

// BenchmarkRealtimeFanout measures the live stream's latency from one sender
// to 1,000 connected members of one channel, each on its own WebSocket with
// its own session: from the start of the POST that sends a message to each
// client's receipt of its frame. Each iteration sends one message and waits
// until every client has it. Reports p50 and p99 over every receipt.
//
// ttl=1s is the default permission cache (each connection checks its read
// permission again at most a second after the last check, through the
// messaging lookups, which are cached while the community is unchanged);
// ttl=1h0m0s shows the fan-out alone, permissions then being checked again only
// after a recorded permission change.
func BenchmarkRealtimeFanout(b *testing.B) {
	for _, ttl := range []time.Duration{time.Second, time.Hour} {
		b.Run("ttl="+ttl.String(), func(b *testing.B) { benchFanout(b, ttl) })
	}
}

func benchFanout(b *testing.B, ttl time.Duration) {
	const clients = 1000
	e := apitest.NewWith(b, func(c *config.Config) { c.RealtimePermissionTTL = ttl })
	a, key := e.Community("Alpha", "alpha")
	joined(e, a, "sender")
	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/channels", Key: key, Body: map[string]any{"topic": "General", "channelType": "open"}})
	channelID := res.String("body._id")

	var (
		mu       sync.Mutex
		sentAt   = map[string]time.Time{}
		latency  []time.Duration
		received sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range clients {
		name := fmt.Sprintf("m%04d", i)
		joined(e, a, name)
		h := http.Header{"Authorization": {"Bearer " + e.SignIn(a, name+"@example.com")}}
		ws, _, err := websocket.Dial(ctx, wsURL(e, "/v1/realtime"), &websocket.DialOptions{HTTPHeader: h})
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		defer ws.CloseNow()
		sub, _ := json.Marshal(map[string]any{"type": "subscribe", "channels": []string{channelID}})
		if err := ws.Write(ctx, websocket.MessageText, sub); err != nil {
			b.Fatal(err)
		}
		for acked := false; !acked; {
			_, data, err := ws.Read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			var f struct{ Type string }
			_ = json.Unmarshal(data, &f)
			acked = f.Type == "subscribed"
		}
		go func() {
			for {
				_, data, err := ws.Read(ctx)
				if err != nil {
					return
				}
				at := time.Now()
				var f struct {
					Type string
					Data struct{ Message string }
				}
				if json.Unmarshal(data, &f) != nil || f.Type != "message.posted" {
					continue
				}
				mu.Lock()
				latency = append(latency, at.Sub(sentAt[f.Data.Message]))
				mu.Unlock()
				received.Done()
			}
		}()
	}
	// One message first, so every connection has checked its permission
	// once: the figures are the steady state (each connection still checks
	// again whenever its cached answer, at most a second old, expires).
	send := func(i int) {
		text := fmt.Sprintf("bench %d", i)
		received.Add(clients)
		mu.Lock()
		sentAt[text] = time.Now()
		mu.Unlock()
		e.Do(apitest.Request{Method: "POST", Path: "/v1/messages/send", Key: key,
			Body: map[string]any{"channelId": channelID, "message": text, "sender": "sender"}}).Expect(b, 200)
		done := make(chan struct{})
		go func() { received.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.Fatalf("message %d did not reach every client", i)
		}
	}
	send(-1)
	mu.Lock()
	latency = latency[:0]
	mu.Unlock()
	b.ResetTimer()
	for i := range b.N {
		send(i)
	}
	b.StopTimer()
	slices.Sort(latency)
	pct := func(p float64) float64 {
		return float64(latency[int(p*float64(len(latency)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(clients), "clients")
}
