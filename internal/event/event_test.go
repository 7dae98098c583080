package event_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/db/dbtest"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/jobs"
)

var t0 = time.Date(2026, 4, 28, 10, 0, 0, 0, time.UTC)

// rig is an outbox, feed and dispatcher over a fresh database.
type rig struct {
	d      *db.DB
	clock  *clock.Manual
	queue  *jobs.Queue
	outbox *event.Outbox
	feed   *event.Feed
	disp   *event.Dispatcher
}

// newRig builds the rig with the feed plus extra subscribers; the queue is
// not started.
func newRig(t *testing.T, extra ...event.Subscriber) *rig {
	t.Helper()
	ctx := context.Background()
	d := dbtest.Open(t)
	if _, err := jobs.Migrate(ctx, d); err != nil {
		t.Fatal(err)
	}
	q, err := jobs.New(jobs.Config{DB: d, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewManual(t0)
	feed := event.NewFeed(event.FeedDeps{DB: d})
	disp, err := event.NewDispatcher(event.DispatcherDeps{
		DB: d, Clock: clk, Queue: q,
		Subscribers: append([]event.Subscriber{feed.Subscriber()}, extra...),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{d: d, clock: clk, queue: q, outbox: event.NewOutbox(event.OutboxDeps{Clock: clk, Queue: q}), feed: feed, disp: disp}
}

// start runs the queue until the test ends, checking that it stops cleanly.
func (r *rig) start(t *testing.T) {
	t.Helper()
	if err := r.queue.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.queue.Stop(ctx); err != nil {
			t.Errorf("stop queue: %v", err)
		}
	})
}

func (r *rig) append(t *testing.T, community, typ string, payload any) {
	t.Helper()
	ctx := context.Background()
	if err := r.d.Tx(ctx, func(tx *db.Tx) error { return r.outbox.Append(ctx, tx, community, typ, payload) }); err != nil {
		t.Fatal(err)
	}
}

// all lists a community's whole feed.
func (r *rig) all(t *testing.T, community string) []event.Event {
	t.Helper()
	var out []event.Event
	after := int64(0)
	for {
		items, next, err := r.feed.List(context.Background(), community, event.FeedQuery{After: after, Limit: event.MaxFeedLimit})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, items...)
		if len(items) < event.MaxFeedLimit {
			return out
		}
		after = next
	}
}

func count(t *testing.T, d *db.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := d.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// metric gathers c through a pedantic registry (which checks it describes
// what it collects) and returns the value of the series name whose labels
// are the label-value pairs given; -1 when there is none.
func metric(t *testing.T, c prometheus.Collector, name string, labels ...string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels)/2 {
				continue
			}
			for i, l := range m.GetLabel() {
				if l.GetName() != labels[2*i] || l.GetValue() != labels[2*i+1] {
					continue series
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// waitFor polls cond until it holds or 10s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRolledBackAppendLeavesNothingAndCommittedReachesFeed(t *testing.T) {
	r := newRig(t)
	r.start(t)
	ctx := context.Background()

	boom := errors.New("boom")
	err := r.d.Tx(ctx, func(tx *db.Tx) error {
		if err := r.outbox.Append(ctx, tx, "cA", "user.created", map[string]string{"name": "ghost"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	if n := count(t, r.d, "SELECT COUNT(*) FROM events"); n != 0 {
		t.Fatalf("rolled-back append left %d events", n)
	}
	if n := count(t, r.d, "SELECT COUNT(*) FROM river_job WHERE kind = ?", "dispatch_events"); n != 0 {
		t.Fatalf("rolled-back append left %d dispatch jobs", n)
	}

	if n := metric(t, r.outbox.Metrics(), "rally_events_appended_total"); n != 0 {
		t.Fatalf("rolled-back append counted: %v appended", n)
	}

	r.append(t, "cA", "user.created", map[string]string{"name": "ada"})
	if n := metric(t, r.outbox.Metrics(), "rally_events_appended_total"); n != 1 {
		t.Fatalf("%v appended, want 1", n)
	}
	waitFor(t, "the event in the feed", func() bool { return len(r.all(t, "cA")) == 1 })
	waitFor(t, "the delivery counted", func() bool {
		return metric(t, r.disp.Metrics(), "rally_events_delivered_total", "subscriber", event.FeedSubscriberName) == 1
	})
	got := r.all(t, "cA")[0]
	if got.Type != "user.created" || got.CommunityID != "cA" || string(got.Payload) != `{"name":"ada"}` || !got.OccurredAt.Equal(t0) {
		t.Fatalf("feed item %+v", got)
	}
	var shape map[string]any
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &shape); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"_id": got.ID, "sequence": float64(got.Seq), "type": "user.created", "communityId": "cA",
		"payload": map[string]any{"name": "ada"}, "occurredAt": "2026-04-28T10:00:00.000Z",
	}
	if fmt.Sprint(shape) != fmt.Sprint(want) {
		t.Fatalf("JSON %s, want %v", b, want)
	}
}

func TestConcurrentAppendsKeepPerCommunityOrder(t *testing.T) {
	r := newRig(t)
	r.start(t)
	const goroutines, perG = 8, 12
	communities := []string{"cA", "cB"}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := range perG {
				c := communities[(g+i)%2]
				err := r.d.Tx(ctx, func(tx *db.Tx) error {
					return r.outbox.Append(ctx, tx, c, "test.step", map[string]int{"g": g, "i": i})
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	total := 0
	for _, c := range communities {
		want := count(t, r.d, "SELECT COUNT(*) FROM events WHERE community_id = ?", c)
		total += want
		waitFor(t, "feed of "+c, func() bool { return len(r.all(t, c)) >= want })
		feed := r.all(t, c)
		if len(feed) != want {
			t.Fatalf("feed of %s has %d items, want %d", c, len(feed), want)
		}
		// The feed lists the outbox's events exactly once each, in outbox order.
		rows, err := r.d.Query(context.Background(), "SELECT id FROM events WHERE community_id = ? ORDER BY seq", c)
		if err != nil {
			t.Fatal(err)
		}
		var outbox []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			outbox = append(outbox, id)
		}
		rows.Close()
		lastI := map[int]int{}
		for k, e := range feed {
			if e.CommunityID != c {
				t.Fatalf("feed of %s lists an event of %s", c, e.CommunityID)
			}
			if e.ID != outbox[k] {
				t.Fatalf("feed of %s item %d is %s, outbox order says %s", c, k, e.ID, outbox[k])
			}
			if k > 0 && e.Seq <= feed[k-1].Seq {
				t.Fatalf("feed of %s not in sequence order at item %d", c, k)
			}
			var p struct{ G, I int }
			if err := json.Unmarshal(e.Payload, &p); err != nil {
				t.Fatal(err)
			}
			// Each goroutine commits its appends one after another, so they
			// must appear in the order it made them.
			if prev, ok := lastI[p.G]; ok && p.I <= prev {
				t.Fatalf("feed of %s shows goroutine %d's step %d after step %d", c, p.G, p.I, prev)
			}
			lastI[p.G] = p.I
		}
	}
	if total != goroutines*perG {
		t.Fatalf("outbox holds %d events, want %d", total, goroutines*perG)
	}
}

func TestFailingSubscriberIsRetriedWithoutSkipping(t *testing.T) {
	var (
		mu     sync.Mutex
		calls  []int64
		failed bool
	)
	flaky := event.Subscriber{
		Name: "flaky",
		Handle: func(ctx context.Context, tx *db.Tx, e event.Event) error {
			// A database effect: one marker row per event, which must survive
			// exactly once even though the batch holding it is retried.
			if _, err := tx.Exec(ctx, "INSERT INTO event_offsets (subscriber, community_id, last_seq) VALUES (?, ?, 0)",
				fmt.Sprintf("mark-%d", e.Seq), e.CommunityID); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, e.Seq)
			if len(calls) == 2 && !failed {
				failed = true
				return errors.New("flaky failure")
			}
			return nil
		},
	}
	r := newRig(t, flaky)
	ctx := context.Background()
	// Keep one dispatch job, so the retry after the failure is River's (or the
	// start-up sweep's), not a duplicate's.
	if err := r.d.Tx(ctx, func(tx *db.Tx) error {
		for i := range 4 {
			if err := r.outbox.Append(ctx, tx, "cA", "test.step", map[string]int{"i": i}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.d.Exec(ctx, "DELETE FROM river_job WHERE id <> (SELECT MIN(id) FROM river_job)"); err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	rows, err := r.d.Query(ctx, "SELECT seq FROM events ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, s)
	}
	rows.Close()
	r.start(t)

	offset := func() int64 {
		var last int64
		err := r.d.QueryRow(ctx, "SELECT last_seq FROM event_offsets WHERE subscriber = ? AND community_id = ?", "flaky", "cA").Scan(&last)
		if err != nil {
			return -1
		}
		return last
	}
	waitFor(t, "flaky subscriber to catch up", func() bool { return offset() == seqs[len(seqs)-1] })

	mu.Lock()
	got := slices.Clone(calls)
	mu.Unlock()
	// First attempt: seq1, seq2 (fails, batch rolled back); retry: all four.
	want := append([]int64{seqs[0], seqs[1]}, seqs...)
	if !slices.Equal(got, want) {
		t.Fatalf("flaky saw %v, want %v", got, want)
	}
	for _, s := range seqs {
		if n := count(t, r.d, "SELECT COUNT(*) FROM event_offsets WHERE subscriber = ?", fmt.Sprintf("mark-%d", s)); n != 1 {
			t.Fatalf("event %d's database effect applied %d times, want once", s, n)
		}
	}
	if n := len(r.all(t, "cA")); n != len(seqs) {
		t.Fatalf("feed has %d items, want %d", n, len(seqs))
	}
}

func TestFeedPagingAndValidation(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	types := []string{"a", "b", "a", "b", "a", "b", "a"}
	for i, typ := range types {
		r.append(t, "cA", typ, map[string]int{"i": i})
		r.append(t, "cB", typ, map[string]int{"i": i})
	}
	// Dispatch synchronously: the queue is not running here.
	for _, c := range []string{"cA", "cB"} {
		if err := r.disp.Dispatch(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	all := r.all(t, "cA")
	if len(all) != len(types) {
		t.Fatalf("feed has %d items, want %d", len(all), len(types))
	}

	page, next, err := r.feed.List(ctx, "cA", event.FeedQuery{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 3 || next != all[2].Seq || page[0].ID != all[0].ID {
		t.Fatalf("first page %d items, next %d", len(page), next)
	}
	page, next, err = r.feed.List(ctx, "cA", event.FeedQuery{After: next, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 3 || page[0].ID != all[3].ID || next != all[5].Seq {
		t.Fatalf("second page %d items starting %s, next %d", len(page), page[0].ID, next)
	}
	page, next2, err := r.feed.List(ctx, "cA", event.FeedQuery{After: next, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 1 || next2 != all[6].Seq {
		t.Fatalf("last page %d items, next %d", len(page), next2)
	}
	page, next3, err := r.feed.List(ctx, "cA", event.FeedQuery{After: next2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 0 || next3 != next2 {
		t.Fatalf("empty page %d items, next %d (want %d)", len(page), next3, next2)
	}

	onlyA, _, err := r.feed.List(ctx, "cA", event.FeedQuery{Type: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(onlyA) != 4 {
		t.Fatalf("type filter kept %d items, want 4", len(onlyA))
	}
	for _, e := range onlyA {
		if e.Type != "a" || e.CommunityID != "cA" {
			t.Fatalf("type filter let through %+v", e)
		}
	}
	none, _, err := r.feed.List(ctx, "cA", event.FeedQuery{Type: "A"})
	if err != nil || len(none) != 0 {
		t.Fatalf("type filter is exact: got %d items, err %v", len(none), err)
	}
	other, _, err := r.feed.List(ctx, "nobody", event.FeedQuery{})
	if err != nil || len(other) != 0 {
		t.Fatalf("unknown community: %d items, err %v", len(other), err)
	}

	for _, tc := range []struct {
		q      event.FeedQuery
		fields []string
	}{
		{event.FeedQuery{Limit: -1}, []string{"limit"}},
		{event.FeedQuery{Limit: event.MaxFeedLimit + 1}, []string{"limit"}},
		{event.FeedQuery{After: -1}, []string{"after"}},
		{event.FeedQuery{Limit: 500, After: -5}, []string{"limit", "after"}},
	} {
		_, _, err := r.feed.List(ctx, "cA", tc.q)
		var e *errs.Error
		if !errors.As(err, &e) || e.Kind != errs.Invalid {
			t.Fatalf("%+v: got %v, want an Invalid error", tc.q, err)
		}
		var fields []string
		for _, f := range e.Fields {
			fields = append(fields, f.Field)
		}
		if !slices.Equal(fields, tc.fields) {
			t.Fatalf("%+v: fields %v, want %v", tc.q, fields, tc.fields)
		}
	}
	if _, _, err := r.feed.List(ctx, "cA", event.FeedQuery{Limit: event.MaxFeedLimit}); err != nil {
		t.Fatalf("limit %d rejected: %v", event.MaxFeedLimit, err)
	}
}

func TestSweepRedispatchesAndPrunes(t *testing.T) {
	lagging := true
	var mu sync.Mutex
	slow := event.Subscriber{Name: "slow", Handle: func(context.Context, *db.Tx, event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if lagging {
			return errors.New("not yet")
		}
		return nil
	}}
	r := newRig(t, slow)
	ctx := context.Background()
	r.append(t, "cA", "t", nil)
	r.append(t, "cB", "t", nil)
	// Lose every dispatch job; the sweep must bring them back.
	if _, err := r.d.Exec(ctx, "DELETE FROM river_job"); err != nil {
		t.Fatal(err)
	}
	if err := r.disp.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, r.d, "SELECT COUNT(DISTINCT args) FROM river_job WHERE kind = ?", "dispatch_events"); n != 2 {
		t.Fatalf("sweep enqueued dispatch for %d communities, want 2", n)
	}
	for _, c := range []string{"cA", "cB"} {
		if err := r.disp.Dispatch(ctx, c); err == nil {
			t.Fatal("dispatch with a failing subscriber reported no error")
		}
	}
	if len(r.all(t, "cA")) != 1 {
		t.Fatal("a failing subscriber held the feed back")
	}
	// Each community's dispatch failed once for "slow", which has handled
	// neither community's event; the feed handled both.
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"rally_event_delivery_failures_total", []string{"subscriber", "slow"}, 2},
		{"rally_event_delivery_failures_total", []string{"subscriber", event.FeedSubscriberName}, 0},
		{"rally_events_delivered_total", []string{"subscriber", "slow"}, 0},
		{"rally_events_delivered_total", []string{"subscriber", event.FeedSubscriberName}, 2},
		{"rally_event_delivery_lag_events", nil, 2},
	} {
		if got := metric(t, r.disp.Metrics(), c.name, c.labels...); got != c.want {
			t.Fatalf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	// Old enough, but "slow" has not passed them: kept.
	oldA, oldB := count(t, r.d, "SELECT MAX(seq) FROM events WHERE community_id = ?", "cA"), count(t, r.d, "SELECT MAX(seq) FROM events WHERE community_id = ?", "cB")
	r.clock.Advance(event.DefaultRetention + time.Hour)
	if err := r.disp.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if h, err := event.Horizon(ctx, r.d, "cA"); err != nil || h != 0 {
		t.Fatalf("horizon before any pruning = %d, %v", h, err)
	}
	if n := count(t, r.d, "SELECT COUNT(*) FROM events"); n != 2 {
		t.Fatalf("sweep pruned undelivered events: %d left, want 2", n)
	}

	mu.Lock()
	lagging = false
	mu.Unlock()
	r.append(t, "cA", "t", nil) // recent: kept even once delivered
	if got := metric(t, r.disp.Metrics(), "rally_event_delivery_lag_events"); got != 3 {
		t.Fatalf("lag %v, want 3", got)
	}
	for _, c := range []string{"cA", "cB"} {
		if err := r.disp.Dispatch(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if got := metric(t, r.disp.Metrics(), "rally_event_delivery_lag_events"); got != 0 {
		t.Fatalf("lag %v once every subscriber caught up, want 0", got)
	}
	if got := metric(t, r.disp.Metrics(), "rally_events_delivered_total", "subscriber", "slow"); got != 3 {
		t.Fatalf("slow delivered %v, want 3", got)
	}
	if _, err := r.d.Exec(ctx, "DELETE FROM river_job"); err != nil {
		t.Fatal(err)
	}
	if err := r.disp.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, r.d, "SELECT COUNT(*) FROM events"); n != 1 {
		t.Fatalf("%d events left after pruning, want the recent one", n)
	}
	// The horizons say how far each community was pruned.
	for c, want := range map[string]int64{"cA": int64(oldA), "cB": int64(oldB)} {
		if h, err := event.Horizon(ctx, r.d, c); err != nil || h != want {
			t.Fatalf("horizon of %s = %d, %v; want %d", c, h, err, want)
		}
	}
	if n := count(t, r.d, "SELECT COUNT(*) FROM river_job"); n != 0 {
		t.Fatalf("sweep enqueued %d jobs with nothing pending", n)
	}
	if n := len(r.all(t, "cA")); n != 2 {
		t.Fatalf("pruning the outbox touched the feed: %d items, want 2", n)
	}
}

func TestNewDispatcherRejectsDuplicateSubscribers(t *testing.T) {
	d := dbtest.Open(t)
	q, err := jobs.New(jobs.Config{DB: d})
	if err != nil {
		t.Fatal(err)
	}
	s := event.Subscriber{Name: "x", Handle: func(context.Context, *db.Tx, event.Event) error { return nil }}
	if _, err := event.NewDispatcher(event.DispatcherDeps{DB: d, Clock: clock.NewManual(t0), Queue: q, Subscribers: []event.Subscriber{s, s}}); err == nil {
		t.Fatal("duplicate subscriber accepted")
	}
}

func TestVersionRisesOnCommittedChangesOnly(t *testing.T) {
	r := newRig(t)
	o := event.NewOutbox(event.OutboxDeps{Clock: r.clock, Queue: r.queue, Quiet: []string{"message.posted"}})
	ctx := context.Background()
	appendIn := func(typ string, fail bool) {
		t.Helper()
		err := r.d.Tx(ctx, func(tx *db.Tx) error {
			if err := o.Append(ctx, tx, "c1", typ, nil); err != nil {
				return err
			}
			if err := o.Append(ctx, tx, "c1", typ, nil); err != nil {
				return err
			}
			if fail {
				return errs.Forbiddenf("roll back")
			}
			return nil
		})
		if (err != nil) != fail {
			t.Fatalf("append %s: %v", typ, err)
		}
	}
	if v := o.Version("c1"); v != 0 {
		t.Fatalf("fresh version %d", v)
	}
	appendIn("role.updated", false)
	if v := o.Version("c1"); v != 1 {
		t.Fatalf("after a committed change: version %d, want 1 (once per transaction)", v)
	}
	appendIn("message.posted", false)
	appendIn("role.updated", true)
	if v := o.Version("c1"); v != 1 {
		t.Fatalf("after a quiet event and a rollback: version %d, want 1", v)
	}
	if v := o.Version("c2"); v != 0 {
		t.Fatalf("another community's version %d", v)
	}
}

func TestDispatchDeliversBacklogsInOrderToSubscribersAtDifferentOffsets(t *testing.T) {
	var (
		mu      sync.Mutex
		batched []int64
		sizes   []int
		single  []int64
		failed  bool
	)
	batcher := event.Subscriber{Name: "batcher", HandleBatch: func(_ context.Context, _ *db.Tx, events []event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, len(events))
		for _, e := range events {
			if e.CommunityID != "cA" {
				return fmt.Errorf("event %d of %s", e.Seq, e.CommunityID)
			}
			batched = append(batched, e.Seq)
		}
		return nil
	}}
	one := event.Subscriber{Name: "single", Handle: func(_ context.Context, _ *db.Tx, e event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		single = append(single, e.Seq)
		if len(single) == 10 && !failed {
			failed = true
			return errors.New("single fails once")
		}
		return nil
	}}
	// single comes first: its batch, read from its lagging offset, holds
	// the offset of batcher, which then takes the rest of that batch.
	r := newRig(t, one, batcher)
	ctx := context.Background()
	appendN := func(n int) {
		for i := range n {
			r.append(t, "cA", "test.step", map[string]int{"i": i})
			if i%7 == 0 {
				r.append(t, "cB", "test.other", nil) // gaps in cA's sequence
			}
		}
	}
	// single fails in its first batch and stays behind the others.
	appendN(30)
	if err := r.disp.Dispatch(ctx, "cA"); err == nil {
		t.Fatal("dispatch with a failing subscriber succeeded")
	}
	appendN(220)
	if err := r.disp.Dispatch(ctx, "cA"); err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	for _, e := range r.all(t, "cA") {
		seqs = append(seqs, e.Seq)
	}
	rows, err := r.d.Query(ctx, "SELECT seq FROM events WHERE community_id = ? ORDER BY seq", "cA")
	outbox, err := db.Collect(rows, err, "read events", func(s db.Scanner) (int64, error) {
		var n int64
		return n, s.Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 250 || len(outbox) != 250 {
		t.Fatalf("feed has %d items, outbox %d events, want 250", len(seqs), len(outbox))
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(batched, outbox) {
		t.Fatalf("batcher saw %d events %v..., want each of %d once in order", len(batched), batched[:min(5, len(batched))], len(outbox))
	}
	for _, n := range sizes {
		if n < 1 || n > 100 {
			t.Fatalf("batch sizes %v, want 1 to 100", sizes)
		}
	}
	if want := append(slices.Clone(outbox[:10]), outbox...); !slices.Equal(single, want) {
		t.Fatalf("single saw %d events, want %d: its failed first batch, then every event in order", len(single), len(want))
	}
}
