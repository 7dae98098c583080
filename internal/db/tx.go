package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Tx is a write transaction; its methods take ? placeholders like DB's.
type Tx struct {
	db *DB
	// SQL is the underlying transaction, for libraries that insert in it
	// (the job queue on SQLite).
	SQL *sql.Tx
	// afterCommit runs, in order, once the transaction has committed;
	// afterRollback once it has rolled back.
	afterCommit, afterRollback []func()
	// firsts holds the keys First has seen.
	firsts map[string]struct{}
	// unprepared lists the statements this transaction ran unprepared on
	// SQLite, to prepare on the writer once it has ended.
	unprepared []string
}

// AfterCommit registers f to run once this attempt of the transaction has
// committed; it never runs when the attempt rolls back.
func (t *Tx) AfterCommit(f func()) { t.afterCommit = append(t.afterCommit, f) }

// AfterRollback registers f to run once this attempt of the transaction has
// rolled back (or failed to commit); it never runs when the attempt commits.
func (t *Tx) AfterRollback(f func()) { t.afterRollback = append(t.afterRollback, f) }

// First reports whether key is new to this attempt of the transaction:
// true the first time, false afterwards. Work that one transaction needs
// once however many changes call for it (one dispatch job for a batch of
// events) uses it.
func (t *Tx) First(key string) bool {
	if _, seen := t.firsts[key]; seen {
		return false
	}
	if t.firsts == nil {
		t.firsts = map[string]struct{}{}
	}
	t.firsts[key] = struct{}{}
	return true
}

// maxAttempts bounds how often a transaction is retried after a
// serialisation failure or deadlock before the error is returned.
const maxAttempts = 10

// Tx runs fn in a write transaction and commits it when fn returns nil.
// PostgreSQL serialisation failures and deadlocks, and SQLite busy errors,
// roll back and run fn again (with jittered back-off), so fn must not have
// effects outside the transaction.
func (d *DB) Tx(ctx context.Context, fn func(*Tx) error) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		err = d.tryTx(ctx, fn)
		if err == nil || !retryable(err) {
			return err
		}
		backoff := time.Duration(attempt*attempt) * time.Millisecond * time.Duration(1+rand.IntN(5))
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(backoff):
		}
	}
	return fmt.Errorf("transaction gave up after %d attempts: %w", maxAttempts, err)
}

func (d *DB) tryTx(ctx context.Context, fn func(*Tx) error) (err error) {
	stx, err := d.Writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	tx := &Tx{db: d, SQL: stx}
	defer func() {
		if p := recover(); p != nil {
			_ = stx.Rollback()
			for _, f := range tx.afterRollback {
				f()
			}
			panic(p)
		}
		if err != nil {
			_ = stx.Rollback()
			for _, f := range tx.afterRollback {
				f()
			}
		}
		// The writer connection is free again: prepare what this
		// transaction ran unprepared.
		d.wstmts.prepare(d.Writer, tx.unprepared)
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = stx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	for _, f := range tx.afterCommit {
		f()
	}
	return nil
}

// Dialect is the engine the transaction runs on.
func (t *Tx) Dialect() Dialect { return t.db.Dialect }

// DB is the database the transaction belongs to.
func (t *Tx) DB() *DB { return t.db }

// Exec runs one statement in the transaction.
func (t *Tx) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.SQL.ExecContext(ctx, t.db.Rebind(q), args...)
}

// Query runs a read in the transaction.
func (t *Tx) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.SQL.QueryContext(ctx, t.db.Rebind(q), args...)
}

// QueryRow runs a one-row read in the transaction.
func (t *Tx) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.SQL.QueryRowContext(ctx, t.db.Rebind(q), args...)
}

// stmt returns q as a statement of this transaction when the SQLite writer
// has it prepared, so a hot write skips compiling its SQL (most of a small
// write's cost on SQLite); nil means run q unprepared. A statement is
// prepared on the writer after the first transaction that runs it has
// ended: the writer's only connection is busy until then. PostgreSQL needs
// none of this: pgx caches prepared statements on each connection.
func (t *Tx) stmt(ctx context.Context, q string) *sql.Stmt {
	if t.db.Dialect != SQLite {
		return nil
	}
	st, ok := t.db.wstmts.get(q)
	if !ok {
		t.unprepared = append(t.unprepared, q)
		return nil
	}
	if st == nil {
		return nil
	}
	return t.SQL.StmtContext(ctx, st)
}

// Lock takes a transaction-scoped lock on key, held until commit or
// rollback: a PostgreSQL advisory lock, a no-op on SQLite, whose single
// writer connection already serialises write transactions.
func (t *Tx) Lock(ctx context.Context, key string) error {
	if t.db.Dialect != Postgres || !t.First("db.lock:"+key) {
		// Held already: an advisory lock is taken once per transaction.
		return nil
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	if _, err := t.SQL.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(h.Sum64())); err != nil {
		return fmt.Errorf("lock %s: %w", key, err)
	}
	return nil
}

// retryable reports whether err is a transient concurrency failure.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40001" || pgErr.Code == "40P01"
	}
	msg := err.Error()
	return strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "database is locked")
}

// IsUniqueViolation reports whether err is a unique-constraint failure on
// either engine.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// UniqueViolationOn reports whether err is a unique-constraint failure whose
// constraint or column list mentions name (an index name on PostgreSQL, a
// column name on SQLite).
func UniqueViolationOn(err error, name string) bool {
	if !IsUniqueViolation(err) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.Contains(pgErr.ConstraintName, name)
	}
	return strings.Contains(err.Error(), name)
}
