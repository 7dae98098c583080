// Package jobs runs Rally's durable background work (webhook delivery, event
// dispatch, bulk jobs, scheduled resets) on River, on both engines.
//
// River is wired through its database/sql drivers so the client is a
// river.Client[*sql.Tx] on SQLite and on PostgreSQL alike, and a job can be
// enqueued inside the same *sql.Tx as the domain change that calls for it
// (db.Tx.SQL): the job exists if and only if the change commits.
//
//   - SQLite: riversqlite.New(d.Writer). River shares Rally's single writer
//     connection (River itself recommends SetMaxOpenConns(1) for SQLite); it
//     borrows the connection only for the length of each statement or short
//     transaction and never needs a second connection while holding it, so job
//     code may open db.Tx freely. Notifications of new jobs go through River's
//     notification table, polled every 50ms, so enqueued work starts quickly.
//   - PostgreSQL: riverdatabasesql.NewWithPgxListener(d.Writer, d.Pool). The
//     database/sql driver can run workers; all queries, job fetches and inserts
//     go through d.Writer (pgx's stdlib adapter over d.Pool), and d.Pool is only
//     asked for one dedicated LISTEN connection, so a job inserted in a
//     committed transaction is fetched at once rather than at the next poll.
//     The riverpgxv5 driver would make the client a river.Client[pgx.Tx],
//     which a *sql.Tx cannot be handed to.
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"

	"github.com/rallyhq/rally/internal/db"
)

// Defaults applied to zero Config fields.
const (
	DefaultPollInterval = time.Second
	DefaultMaxWorkers   = 10
	// hardStopGrace bounds how long Stop waits for cancelled jobs to return
	// once the caller's deadline has passed.
	hardStopGrace = 5 * time.Second
)

// Config is what a Queue needs.
type Config struct {
	// DB is the database jobs live in, next to the domain tables.
	DB *db.DB
	// Logger receives River's logs; nil discards them.
	Logger *slog.Logger
	// PollInterval is how often the queue looks for jobs on its own, besides
	// being woken by new-job notifications (default 1s; tests use ~50ms).
	PollInterval time.Duration
	// MaxWorkers bounds how many jobs run at once (default 10).
	MaxWorkers int
}

// Queue is Rally's job queue: register workers and periodic jobs, Start it,
// enqueue with InsertTx, Stop it on shutdown.
type Queue struct {
	db      *db.DB
	client  *river.Client[*sql.Tx]
	workers *river.Workers

	mu      sync.Mutex
	started bool
}

// New builds a queue over cfg.DB. Workers and periodic jobs are added with
// AddWorker and AddPeriodic before Start; jobs may be inserted at any time.
func New(cfg Config) (*Queue, error) {
	if cfg.DB == nil {
		return nil, errors.New("new job queue: no database")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	poll := cfg.PollInterval
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	maxWorkers := cfg.MaxWorkers
	if maxWorkers <= 0 {
		maxWorkers = DefaultMaxWorkers
	}
	var driver riverdriver.Driver[*sql.Tx]
	switch cfg.DB.Dialect {
	case db.SQLite:
		driver = riversqlite.New(cfg.DB.Writer)
	case db.Postgres:
		if cfg.DB.Pool == nil {
			return nil, errors.New("new job queue: postgres database without a pgx pool")
		}
		driver = riverdatabasesql.NewWithPgxListener(cfg.DB.Writer, cfg.DB.Pool)
	default:
		return nil, fmt.Errorf("new job queue: unsupported dialect %q", cfg.DB.Dialect)
	}
	workers := river.NewWorkers()
	client, err := river.NewClient(driver, &river.Config{
		Logger:            logger,
		FetchPollInterval: poll,
		FetchCooldown:     min(river.FetchCooldownDefault, poll),
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: maxWorkers}},
		Workers:           workers,
	})
	if err != nil {
		return nil, fmt.Errorf("new job queue: %w", err)
	}
	return &Queue{db: cfg.DB, client: client, workers: workers}, nil
}

// AddWorker registers the worker for jobs of kind T. Register every worker
// before Start; River reads the registry from its own goroutines once
// started.
func AddWorker[T river.JobArgs](q *Queue, w river.Worker[T]) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started {
		var args T
		return fmt.Errorf("add worker %s: queue already started", args.Kind())
	}
	if err := river.AddWorkerSafely(q.workers, w); err != nil {
		return fmt.Errorf("add worker: %w", err)
	}
	return nil
}

// AddPeriodic schedules a periodic job. Periodic jobs are enqueued by the
// elected leader only, so with several Rally nodes on one PostgreSQL each
// runs once per period, not once per node.
func (q *Queue) AddPeriodic(job *river.PeriodicJob) {
	q.client.PeriodicJobs().Add(job)
}

// Start begins fetching and working jobs. The queue keeps running until Stop,
// even when ctx is cancelled later, so shutdown can be graceful.
func (q *Queue) Start(ctx context.Context) error {
	q.mu.Lock()
	q.started = true
	q.mu.Unlock()
	if err := q.client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start job queue: %w", err)
	}
	return nil
}

// Stop stops fetching new jobs and waits for running ones to finish. When ctx
// ends first, running jobs' contexts are cancelled and Stop waits a few more
// seconds for them to return before giving up; it then reports ctx's error.
// Stop on a queue that never started returns nil.
func (q *Queue) Stop(ctx context.Context) error {
	q.mu.Lock()
	started := q.started
	q.mu.Unlock()
	if !started {
		return nil
	}
	err := q.client.Stop(ctx)
	if err == nil {
		return nil
	}
	hardCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hardStopGrace)
	defer cancel()
	if hardErr := q.client.StopAndCancel(hardCtx); hardErr != nil {
		return fmt.Errorf("stop job queue: running jobs did not return: %w", errors.Join(err, hardErr))
	}
	return fmt.Errorf("stop job queue: running jobs cancelled: %w", err)
}

// InsertTx enqueues a job inside tx, so the job exists only if tx commits.
// opts may be nil.
func (q *Queue) InsertTx(ctx context.Context, tx *db.Tx, args river.JobArgs, opts *river.InsertOpts) error {
	if _, err := q.client.InsertTx(ctx, tx.SQL, args, opts); err != nil {
		return fmt.Errorf("enqueue %s: %w", args.Kind(), err)
	}
	return nil
}
