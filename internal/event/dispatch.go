package event

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/jobs"
)

// Dispatch defaults applied to zero DispatcherDeps fields.
const (
	DefaultSweepInterval = 30 * time.Second
	DefaultRetention     = 7 * 24 * time.Hour
	// batchSize bounds how many events one subscriber transaction handles.
	batchSize = 100
	// maxPassing bounds how long one dispatch job keeps draining a busy
	// community on SQLite before handing over to a new job (River times
	// jobs out after a minute).
	maxPassing = 10 * time.Second
)

// SweepArgs is the periodic River job that re-schedules dispatch for every
// community with undelivered events and prunes delivered old events.
type SweepArgs struct{}

// Kind names the job in River.
func (SweepArgs) Kind() string { return "sweep_events" }

// DispatcherDeps is what a Dispatcher needs.
type DispatcherDeps struct {
	DB    *db.DB
	Clock clock.Clock
	Queue *jobs.Queue
	// Logger receives sweep reports; nil discards them.
	Logger *slog.Logger
	// Subscribers receive every event, each at its own pace.
	Subscribers []Subscriber
	// SweepInterval is how often the safety-net sweep runs (default 30s).
	SweepInterval time.Duration
	// Retention is how long delivered events stay in the outbox (default
	// 7 days); events some subscriber has not passed are never pruned.
	Retention time.Duration
	// Outbox, when set, is told when a dispatch job starts, so on SQLite it
	// schedules one job per burst of appends rather than one per event.
	Outbox *Outbox
}

// Dispatcher delivers outbox events to subscribers from River jobs.
type Dispatcher struct {
	db        *db.DB
	clock     clock.Clock
	queue     *jobs.Queue
	log       *slog.Logger
	subs      []Subscriber
	retention time.Duration
	outbox    *Outbox
	// delivered and failed count, per subscriber (index of subs), the
	// events handed over in committed batches and the batches that failed.
	delivered []atomic.Uint64
	failed    []atomic.Uint64
	// running holds, where Outbox does not coalesce dispatch jobs
	// (PostgreSQL), the communities a job of this process is dispatching,
	// each with whether another job asked for one more pass meanwhile.
	mu      sync.Mutex
	running map[string]*bool
	// conns bounds the subscriber transactions of this process's dispatch
	// jobs open at once on PostgreSQL to half the pool, so that however
	// many communities are dispatched, requests still get connections.
	conns chan struct{}
}

// NewDispatcher registers the dispatch and sweep workers and the periodic
// sweep (which also runs when the queue starts, catching up on anything left
// from a previous run) on deps.Queue. Call it before the queue starts.
func NewDispatcher(deps DispatcherDeps) (*Dispatcher, error) {
	seen := make(map[string]bool, len(deps.Subscribers))
	for _, s := range deps.Subscribers {
		if s.Name == "" || (s.Handle == nil && s.HandleBatch == nil) {
			return nil, errors.New("new event dispatcher: subscriber needs a name and a handler")
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("new event dispatcher: subscriber %q registered twice", s.Name)
		}
		seen[s.Name] = true
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		db:        deps.DB,
		clock:     deps.Clock,
		queue:     deps.Queue,
		log:       logger,
		subs:      deps.Subscribers,
		retention: orDefault(deps.Retention, DefaultRetention),
		outbox:    deps.Outbox,
		delivered: make([]atomic.Uint64, len(deps.Subscribers)),
		failed:    make([]atomic.Uint64, len(deps.Subscribers)),
		running:   map[string]*bool{},
	}
	if deps.DB.Pool != nil {
		d.conns = make(chan struct{}, max(1, deps.DB.Pool.Config().MaxConns/2))
	}
	if deps.Outbox != nil && deps.DB.Dialect == db.SQLite {
		deps.Outbox.mu.Lock()
		deps.Outbox.coalesce = true
		deps.Outbox.mu.Unlock()
	} else {
		d.outbox = nil
	}
	if err := jobs.AddWorker(deps.Queue, &dispatchWorker{d: d}); err != nil {
		return nil, fmt.Errorf("new event dispatcher: %w", err)
	}
	if err := jobs.AddWorker(deps.Queue, &sweepWorker{d: d}); err != nil {
		return nil, fmt.Errorf("new event dispatcher: %w", err)
	}
	deps.Queue.AddPeriodic(river.NewPeriodicJob(
		river.PeriodicInterval(orDefault(deps.SweepInterval, DefaultSweepInterval)),
		func() (river.JobArgs, *river.InsertOpts) { return SweepArgs{}, nil },
		&river.PeriodicJobOpts{ID: "sweep_events", RunOnStart: true},
	))
	return d, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Dispatch delivers every pending event of communityID to every subscriber,
// in order. A failing subscriber does not hold the others back; its error is
// returned (joined with any others) once they are done, and it resumes at the
// failing event next time.
//
// On SQLite, whose one writer runs one transaction at a time, subscribers
// advance in rounds of one batch each, so those at the same offset (the
// usual case) share one read of the batch: each still handles it in its own
// transaction, past its own locked offset. On PostgreSQL, where a
// subscriber's transactions mostly wait on round trips, each subscriber
// drains on its own connection, side by side (at most half the pool's
// connections serve dispatch at once).
func (d *Dispatcher) Dispatch(ctx context.Context, communityID string) error {
	if d.conns != nil {
		failed := make([]error, len(d.subs))
		var wg sync.WaitGroup
		for i, s := range d.subs {
			wg.Go(func() {
				// A panicking subscriber fails the job, as it would on
				// the job's own goroutine, rather than the process.
				defer func() {
					if p := recover(); p != nil {
						failed[i] = fmt.Errorf("dispatch %s to %s: panic: %v", communityID, s.Name, p)
					}
				}()
				var own batch
				for {
					more, err := d.deliverBounded(ctx, i, communityID, &own)
					if err != nil {
						failed[i] = fmt.Errorf("dispatch %s to %s: %w", communityID, s.Name, err)
						return
					}
					if !more {
						return
					}
				}
			})
		}
		wg.Wait()
		return errors.Join(failed...)
	}
	var (
		failed []error
		shared batch
	)
	pending := make([]int, len(d.subs))
	for i := range pending {
		pending[i] = i
	}
	for len(pending) > 0 {
		var next []int
		for _, i := range pending {
			s := d.subs[i]
			more, err := d.deliver(ctx, i, communityID, &shared)
			if err != nil {
				failed = append(failed, fmt.Errorf("dispatch %s to %s: %w", communityID, s.Name, err))
				continue
			}
			if more {
				next = append(next, i)
			}
		}
		pending = next
	}
	return errors.Join(failed...)
}

// batch is the last run of a community's events read from the outbox: the
// events after sequence from, in order, at most batchSize of them (full when
// there were that many, so more may follow).
type batch struct {
	loaded bool
	from   int64
	events []Event
	full   bool
}

// after returns the events of b past sequence last when b holds all of
// them that were committed when b was read (ok false when b cannot tell:
// nothing read yet, last before b's start, or last at the end of a full b).
// Events committed since b was read are left to the next dispatch pass,
// which every append schedules.
func (b *batch) after(last int64) (events []Event, ok bool) {
	if !b.loaded || last < b.from {
		return nil, false
	}
	i := sort.Search(len(b.events), func(i int) bool { return b.events[i].Seq > last })
	if i == len(b.events) && b.full {
		return nil, false
	}
	return b.events[i:], true
}

// deliverBounded is deliver once one of d.conns is free.
func (d *Dispatcher) deliverBounded(ctx context.Context, i int, communityID string, own *batch) (bool, error) {
	select {
	case d.conns <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-d.conns }()
	return d.deliver(ctx, i, communityID, own)
}

// deliver hands subscriber i, in one transaction, the next batch of the community's
// events past its locked offset (from shared when it holds them, otherwise
// read into shared) and advances the offset past them. more reports
// whether it reached the end of a full batch, so more events may be pending.
// Committed batches count toward d.delivered, failed ones toward d.failed.
func (d *Dispatcher) deliver(ctx context.Context, i int, communityID string, shared *batch) (more bool, err error) {
	s := d.subs[i]
	var handled int
	err = d.db.Tx(ctx, func(tx *db.Tx) error {
		more, handled = false, 0
		if _, err := tx.Exec(ctx, "INSERT INTO event_offsets (subscriber, community_id, last_seq) VALUES (?, ?, 0) ON CONFLICT (subscriber, community_id) DO NOTHING",
			s.Name, communityID); err != nil {
			return fmt.Errorf("create offset: %w", err)
		}
		var last int64
		if err := tx.QueryRow(ctx, "SELECT last_seq FROM event_offsets WHERE subscriber = ? AND community_id = ?"+d.db.ForUpdate(),
			s.Name, communityID).Scan(&last); err != nil {
			return fmt.Errorf("read offset: %w", err)
		}
		events, ok := shared.after(last)
		if !ok {
			read, err := pendingEvents(ctx, tx, communityID, last)
			if err != nil {
				return err
			}
			*shared = batch{loaded: true, from: last, events: read, full: len(read) == batchSize}
			events = read
		}
		if len(events) == 0 {
			return nil
		}
		if s.HandleBatch != nil {
			if err := s.HandleBatch(ctx, tx, events); err != nil {
				return err
			}
		} else {
			for _, e := range events {
				if err := s.Handle(ctx, tx, e); err != nil {
					return fmt.Errorf("event %d (%s): %w", e.Seq, e.Type, err)
				}
			}
		}
		end := events[len(events)-1].Seq
		if _, err := tx.Exec(ctx, "UPDATE event_offsets SET last_seq = ? WHERE subscriber = ? AND community_id = ?",
			end, s.Name, communityID); err != nil {
			return fmt.Errorf("advance offset: %w", err)
		}
		more = shared.full && end == shared.events[len(shared.events)-1].Seq
		handled = len(events)
		return nil
	})
	if err != nil {
		d.failed[i].Add(1)
		return false, err
	}
	d.delivered[i].Add(uint64(handled))
	return more, nil
}

func pendingEvents(ctx context.Context, tx *db.Tx, communityID string, after int64) ([]Event, error) {
	rows, err := tx.Query(ctx, "SELECT seq, id, community_id, type, payload, occurred_at FROM events WHERE community_id = ? AND seq > ? ORDER BY seq LIMIT ?",
		communityID, after, batchSize)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// scanEvent reads seq, id, community_id, type, payload, occurred_at.
func scanEvent(rows interface{ Scan(...any) error }) (Event, error) {
	var (
		e       Event
		payload string
		at      int64
	)
	if err := rows.Scan(&e.Seq, &e.ID, &e.CommunityID, &e.Type, &payload, &at); err != nil {
		return Event{}, err
	}
	e.Payload = []byte(payload)
	e.OccurredAt = time.UnixMilli(at).UTC()
	return e, nil
}

// Sweep enqueues dispatch for every community some subscriber lags behind in
// (a safety net should a dispatch job be lost or exhaust its retries), then
// prunes events older than the retention that every subscriber has passed.
func (d *Dispatcher) Sweep(ctx context.Context) error {
	if len(d.subs) == 0 {
		return nil
	}
	heads, err := d.communityHeads(ctx)
	if err != nil {
		return fmt.Errorf("sweep events: %w", err)
	}
	if len(heads) == 0 {
		return nil
	}
	offsets, err := d.offsets(ctx)
	if err != nil {
		return fmt.Errorf("sweep events: %w", err)
	}
	var lagging []string
	for community, head := range heads {
		for _, s := range d.subs {
			if offsets[offsetKey{s.Name, community}] < head {
				lagging = append(lagging, community)
				break
			}
		}
	}
	if len(lagging) > 0 {
		err := d.db.Tx(ctx, func(tx *db.Tx) error {
			for _, c := range lagging {
				if err := d.queue.InsertTx(ctx, tx, DispatchArgs{CommunityID: c}, nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("sweep events: %w", err)
		}
	}
	cutoff := d.clock.Now().Add(-d.retention).UnixMilli()
	var pruned int64
	for community := range heads {
		passed := int64(-1)
		for _, s := range d.subs {
			off := offsets[offsetKey{s.Name, community}]
			if passed < 0 || off < passed {
				passed = off
			}
		}
		if passed <= 0 {
			continue
		}
		n, err := d.prune(ctx, community, passed, cutoff)
		if err != nil {
			return fmt.Errorf("sweep events: prune %s: %w", community, err)
		}
		pruned += n
	}
	if len(lagging) > 0 || pruned > 0 {
		d.log.InfoContext(ctx, "event sweep", "redispatched", len(lagging), "pruned", pruned)
	}
	return nil
}

// prune deletes the community's events up to seq passed that occurred before
// cutoff, and raises the community's horizon (event_horizons) to the highest
// sequence it deleted, so a reader resuming from an older sequence learns
// that events it missed are gone (see Horizon).
func (d *Dispatcher) prune(ctx context.Context, community string, passed, cutoff int64) (int64, error) {
	var n int64
	err := d.db.Tx(ctx, func(tx *db.Tx) error {
		var top sql.NullInt64
		if err := tx.QueryRow(ctx, "SELECT MAX(seq) FROM events WHERE community_id = ? AND seq <= ? AND occurred_at < ?",
			community, passed, cutoff).Scan(&top); err != nil {
			return fmt.Errorf("find prunable events: %w", err)
		}
		if !top.Valid {
			return nil
		}
		res, err := tx.Exec(ctx, "DELETE FROM events WHERE community_id = ? AND seq <= ? AND occurred_at < ?", community, top.Int64, cutoff)
		if err != nil {
			return fmt.Errorf("delete events: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("delete events: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO event_horizons (community_id, pruned_seq) VALUES (?, ?)
			ON CONFLICT (community_id) DO UPDATE SET pruned_seq = CASE WHEN excluded.pruned_seq > event_horizons.pruned_seq
			THEN excluded.pruned_seq ELSE event_horizons.pruned_seq END`, community, top.Int64); err != nil {
			return fmt.Errorf("raise event horizon: %w", err)
		}
		return nil
	})
	return n, err
}

// Horizon returns the highest outbox sequence of communityID whose event may
// have been pruned (0 when none was): a reader that has seen the community's
// events up to seq s missed nothing that is gone when s >= Horizon.
func Horizon(ctx context.Context, d *db.DB, communityID string) (int64, error) {
	var h int64
	err := d.QueryRow(ctx, "SELECT pruned_seq FROM event_horizons WHERE community_id = ?", communityID).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read event horizon of %s: %w", communityID, err)
	}
	return h, nil
}

// communityHeads returns each community's newest outbox sequence number.
func (d *Dispatcher) communityHeads(ctx context.Context) (map[string]int64, error) {
	rows, err := d.db.Query(ctx, "SELECT community_id, MAX(seq) FROM events GROUP BY community_id")
	if err != nil {
		return nil, fmt.Errorf("read event heads: %w", err)
	}
	defer rows.Close()
	heads := make(map[string]int64)
	for rows.Next() {
		var (
			c    string
			head int64
		)
		if err := rows.Scan(&c, &head); err != nil {
			return nil, fmt.Errorf("read event heads: %w", err)
		}
		heads[c] = head
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read event heads: %w", err)
	}
	return heads, nil
}

type offsetKey struct{ subscriber, community string }

// offsets returns the registered subscribers' offsets; a missing entry means
// the subscriber has seen nothing of that community yet.
func (d *Dispatcher) offsets(ctx context.Context) (map[offsetKey]int64, error) {
	names := make([]any, len(d.subs))
	for i, s := range d.subs {
		names[i] = s.Name
	}
	q := "SELECT subscriber, community_id, last_seq FROM event_offsets WHERE subscriber IN " + db.In(len(names))
	rows, err := d.db.Query(ctx, q, names...)
	if err != nil {
		return nil, fmt.Errorf("read event offsets: %w", err)
	}
	defer rows.Close()
	out := make(map[offsetKey]int64)
	for rows.Next() {
		var (
			k    offsetKey
			last int64
		)
		if err := rows.Scan(&k.subscriber, &k.community, &last); err != nil {
			return nil, fmt.Errorf("read event offsets: %w", err)
		}
		out[k] = last
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read event offsets: %w", err)
	}
	return out, nil
}

// dispatchWorker runs Dispatch for a DispatchArgs job; River retries it with
// back-off while a subscriber fails.
type dispatchWorker struct {
	river.WorkerDefaults[DispatchArgs]
	d *Dispatcher
}

func (w *dispatchWorker) Work(ctx context.Context, job *river.Job[DispatchArgs]) error {
	c, o := job.Args.CommunityID, w.d.outbox
	if o == nil {
		return w.d.dispatchShared(ctx, c)
	}
	// On SQLite the job drains again while events keep coming (see
	// Outbox.Append), for at most maxPassing; then it hands over to a new
	// job, which the community's appends count on as they did on this one.
	until := time.Now().Add(maxPassing)
	for {
		o.draining(c)
		if err := w.d.Dispatch(ctx, c); err != nil {
			o.abandon(c)
			return err
		}
		if !o.drained(c) {
			return nil
		}
		if time.Now().After(until) {
			err := w.d.db.Tx(ctx, func(tx *db.Tx) error { return w.d.queue.InsertTx(ctx, tx, DispatchArgs{CommunityID: c}, nil) })
			if err != nil {
				o.abandon(c)
			}
			return err
		}
	}
}

// dispatchShared runs Dispatch for communityID unless a job of this
// process is already running it, which it then asks for one more pass
// instead: every append inserts a dispatch job (PostgreSQL), and jobs of
// one community running side by side would only queue on the same offset
// locks, each holding a pooled connection. The pass it asks for begins
// after this job was fetched, so after its events committed. A running job
// hands over to a new job after maxPassing (River times jobs out); a
// failing one returns its error and River retries it, covering the passes
// asked of it.
func (d *Dispatcher) dispatchShared(ctx context.Context, communityID string) error {
	d.mu.Lock()
	if again, ok := d.running[communityID]; ok {
		*again = true
		d.mu.Unlock()
		return nil
	}
	again := new(bool)
	d.running[communityID] = again
	d.mu.Unlock()
	until := time.Now().Add(maxPassing)
	for {
		err := d.Dispatch(ctx, communityID)
		d.mu.Lock()
		if err != nil || !*again {
			delete(d.running, communityID)
			d.mu.Unlock()
			return err
		}
		*again = false
		if time.Now().After(until) {
			delete(d.running, communityID)
			d.mu.Unlock()
			return d.db.Tx(ctx, func(tx *db.Tx) error { return d.queue.InsertTx(ctx, tx, DispatchArgs{CommunityID: communityID}, nil) })
		}
		d.mu.Unlock()
	}
}

// sweepWorker runs Sweep for the periodic SweepArgs job.
type sweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	d *Dispatcher
}

func (w *sweepWorker) Work(ctx context.Context, _ *river.Job[SweepArgs]) error {
	return w.d.Sweep(ctx)
}
