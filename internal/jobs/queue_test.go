package jobs_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/db/dbtest"
	"github.com/rallyhq/rally/internal/jobs"
)

// openDB returns a test database with Rally's and River's schemas.
func openDB(t *testing.T) *db.DB {
	t.Helper()
	d := dbtest.Open(t)
	applied, err := jobs.Migrate(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) == 0 {
		t.Fatal("first jobs.Migrate applied nothing")
	}
	return d
}

func newQueue(t *testing.T, d *db.DB) *jobs.Queue {
	t.Helper()
	q, err := jobs.New(jobs.Config{DB: d, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func startQueue(t *testing.T, q *jobs.Queue) {
	t.Helper()
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := q.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
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

type noteArgs struct {
	Note  string `json:"note"`
	Chain bool   `json:"chain"`
}

func (noteArgs) Kind() string { return "test_note" }

// noteWorker writes each note to the database in its own transaction and,
// for chained notes, enqueues a follow-up in that same transaction: on SQLite
// this proves River never holds the single writer connection while a job
// needs it.
type noteWorker struct {
	river.WorkerDefaults[noteArgs]
	d *db.DB
	q *jobs.Queue
}

func (w *noteWorker) Work(ctx context.Context, job *river.Job[noteArgs]) error {
	return w.d.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO event_offsets (subscriber, community_id, last_seq) VALUES (?, ?, 0)", job.Args.Note, "c"); err != nil {
			return err
		}
		if job.Args.Chain {
			return w.q.InsertTx(ctx, tx, noteArgs{Note: job.Args.Note + "-next"}, nil)
		}
		return nil
	})
}

func noted(t *testing.T, d *db.DB, note string) bool {
	t.Helper()
	var n int
	if err := d.QueryRow(context.Background(), "SELECT COUNT(*) FROM event_offsets WHERE subscriber = ?", note).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestMigrateIsIdempotent(t *testing.T) {
	d := openDB(t)
	applied, err := jobs.Migrate(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Fatalf("second migrate applied %v", applied)
	}
}

func TestInsertTxRunsOnlyCommittedJobs(t *testing.T) {
	d := openDB(t)
	q := newQueue(t, d)
	if err := jobs.AddWorker(q, &noteWorker{d: d, q: q}); err != nil {
		t.Fatal(err)
	}
	startQueue(t, q)
	ctx := context.Background()

	boom := errors.New("boom")
	err := d.Tx(ctx, func(tx *db.Tx) error {
		if err := q.InsertTx(ctx, tx, noteArgs{Note: "rolled-back"}, nil); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	if err := d.Tx(ctx, func(tx *db.Tx) error {
		return q.InsertTx(ctx, tx, noteArgs{Note: "kept", Chain: true}, nil)
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "chained job", func() bool { return noted(t, d, "kept-next") })
	if !noted(t, d, "kept") {
		t.Fatal("committed job did not run")
	}
	var jobsSeen int
	if err := d.QueryRow(ctx, "SELECT COUNT(*) FROM river_job").Scan(&jobsSeen); err != nil {
		t.Fatal(err)
	}
	if jobsSeen != 2 {
		t.Fatalf("river_job holds %d jobs, want 2 (the rolled-back one must not exist)", jobsSeen)
	}
}

type blockArgs struct{}

func (blockArgs) Kind() string { return "test_block" }

// blockWorker signals when it starts, then waits for release or for its
// context to be cancelled.
type blockWorker struct {
	river.WorkerDefaults[blockArgs]
	started  chan struct{}
	release  chan struct{}
	mu       sync.Mutex
	finished string
}

func (w *blockWorker) Work(ctx context.Context, _ *river.Job[blockArgs]) error {
	w.started <- struct{}{}
	select {
	case <-w.release:
		w.set("released")
		return nil
	case <-ctx.Done():
		w.set("cancelled")
		return ctx.Err()
	}
}

func (w *blockWorker) set(s string) {
	w.mu.Lock()
	w.finished = s
	w.mu.Unlock()
}

func (w *blockWorker) get() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.finished
}

func enqueueBlock(t *testing.T, d *db.DB, q *jobs.Queue) {
	t.Helper()
	ctx := context.Background()
	if err := d.Tx(ctx, func(tx *db.Tx) error { return q.InsertTx(ctx, tx, blockArgs{}, nil) }); err != nil {
		t.Fatal(err)
	}
}

func TestStopWaitsForRunningJobs(t *testing.T) {
	d := openDB(t)
	q := newQueue(t, d)
	w := &blockWorker{started: make(chan struct{}, 1), release: make(chan struct{})}
	if err := jobs.AddWorker(q, w); err != nil {
		t.Fatal(err)
	}
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	enqueueBlock(t, d, q)
	select {
	case <-w.started:
	case <-time.After(10 * time.Second):
		t.Fatal("job never started")
	}
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- q.Stop(ctx)
	}()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a job was still running", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(w.release)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("graceful stop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return after the job finished")
	}
	if got := w.get(); got != "released" {
		t.Fatalf("job finished as %q, want released", got)
	}
}

func TestStopIsBoundedByItsContext(t *testing.T) {
	d := openDB(t)
	q := newQueue(t, d)
	w := &blockWorker{started: make(chan struct{}, 1), release: make(chan struct{})}
	if err := jobs.AddWorker(q, w); err != nil {
		t.Fatal(err)
	}
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	enqueueBlock(t, d, q)
	select {
	case <-w.started:
	case <-time.After(10 * time.Second):
		t.Fatal("job never started")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := q.Stop(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop past its deadline returned %v, want deadline exceeded", err)
	}
	if got := w.get(); got != "cancelled" {
		t.Fatalf("job finished as %q, want cancelled", got)
	}
}

func TestAddWorkerAfterStartFails(t *testing.T) {
	d := openDB(t)
	q := newQueue(t, d)
	if err := jobs.AddWorker(q, &noteWorker{d: d, q: q}); err != nil {
		t.Fatal(err)
	}
	startQueue(t, q)
	if err := jobs.AddWorker(q, &blockWorker{}); err == nil {
		t.Fatal("AddWorker after Start succeeded")
	}
}

func TestStopBeforeStartIsNoop(t *testing.T) {
	q := newQueue(t, openDB(t))
	if err := q.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}
