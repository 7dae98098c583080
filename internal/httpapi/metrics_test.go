package httpapi_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/gamification"
	"github.com/rallyhq/rally/internal/milestone"
	"github.com/rallyhq/rally/internal/referral"
	"github.com/rallyhq/rally/internal/streak"
)

// scrape reads GET /metrics and returns every sample's value by its series
// as the text format writes it (name{label="value",...}).
func scrape(t *testing.T, e *apitest.Env) map[string]float64 {
	t.Helper()
	res := e.Do(apitest.Request{Method: "GET", Path: "/metrics"}).Expect(t, 200)
	out := map[string]float64{}
	for _, line := range strings.Split(string(res.Body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// outboxSubscribers are the subscriber names the app registers.
var outboxSubscribers = []string{event.FeedSubscriberName, streak.SubscriberName, gamification.RewardSubscriberName,
	referral.SubscriberName, milestone.SubscriberName}

// TestLiveStreamAndEventMetrics follows a WebSocket and a message through
// GET /metrics: the connection and subscription gauges, the frames sent,
// the events appended and delivered to every subscriber, and the lag.
func TestLiveStreamAndEventMetrics(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	joined(e, a, "ada")
	tok := e.SignIn(a, "ada@example.com")
	general := newChannel(t, e, keyA, map[string]any{"topic": "General", "channelType": "open"})
	want := func(m map[string]float64, series string, v float64) {
		t.Helper()
		if got, ok := m[series]; !ok || got != v {
			t.Fatalf("%s = %v (present %v), want %v", series, got, ok, v)
		}
	}

	m := scrape(t, e)
	want(m, "rally_realtime_connections", 0)
	want(m, "rally_realtime_connections_opened_total", 0)
	want(m, "rally_realtime_subscriptions", 0)
	want(m, "rally_realtime_slow_clients_dropped_total", 0)
	want(m, `rally_realtime_frames_sent_total{type="ready"}`, 0)

	c := dialRT(t, e, "/v1/realtime", tok, true)
	c.expect("ready")
	c.subscribe(general)
	m = scrape(t, e)
	want(m, "rally_realtime_connections", 1)
	want(m, "rally_realtime_connections_opened_total", 1)
	want(m, "rally_realtime_subscriptions", 1)

	post(t, e, keyA, general, "ada", "counted")
	c.expect("message.posted")
	c.send(map[string]any{"type": "ping"})
	c.expect("pong")

	// Every event appended reaches every subscriber, once, and nothing is
	// left behind. The frames were counted once written.
	var appended float64
	apitest.WaitFor(t, "every event delivered and counted", func() bool {
		var rows float64
		if err := e.App.DB.QueryRow(context.Background(), "SELECT COUNT(*) FROM events").Scan(&rows); err != nil {
			t.Fatal(err)
		}
		m = scrape(t, e)
		if m["rally_events_appended_total"] != rows || m["rally_event_delivery_lag_events"] != 0 {
			return false
		}
		for _, s := range outboxSubscribers {
			if m[`rally_events_delivered_total{subscriber="`+s+`"}`] != rows {
				return false
			}
		}
		appended = rows
		return m[`rally_realtime_frames_sent_total{type="pong"}`] == 1
	})
	if appended == 0 {
		t.Fatal("no events appended")
	}
	for _, s := range outboxSubscribers {
		want(m, `rally_event_delivery_failures_total{subscriber="`+s+`"}`, 0)
	}
	for typ, n := range map[string]float64{"ready": 1, "subscribed": 1, "message.posted": 1, "pong": 1, "typing": 0, "error": 0} {
		want(m, `rally_realtime_frames_sent_total{type="`+typ+`"}`, n)
	}

	// Closing the connection brings the gauges back to zero.
	if err := c.ws.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, "the connection gauge to fall", func() bool {
		m = scrape(t, e)
		return m["rally_realtime_connections"] == 0 && m["rally_realtime_subscriptions"] == 0
	})
	want(m, "rally_realtime_connections_opened_total", 1)
	want(m, `rally_realtime_frames_sent_total{type="message.posted"}`, 1)

	// With the dispatcher stopped, a new event is appended but not
	// delivered: the lag shows it.
	ctx, cancel := context.WithTimeout(context.Background(), frameWait)
	defer cancel()
	if err := e.App.Queue.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	e.Emit(a, "test.pending", nil)
	m = scrape(t, e)
	want(m, "rally_events_appended_total", appended+1)
	want(m, "rally_event_delivery_lag_events", 1)
	want(m, `rally_events_delivered_total{subscriber="feed"}`, appended)
}
