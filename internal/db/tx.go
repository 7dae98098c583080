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
	// afterCommit runs, in order, once the transaction has committed.
	afterCommit []func()
}

// AfterCommit registers f to run once this attempt of the transaction has
// committed; it never runs when the attempt rolls back.
func (t *Tx) AfterCommit(f func()) { t.afterCommit = append(t.afterCommit, f) }

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
	defer func() {
		if p := recover(); p != nil {
			_ = stx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = stx.Rollback()
		}
	}()
	tx := &Tx{db: d, SQL: stx}
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
	return t.SQL.ExecContext(ctx, t.db.Rebind(q), args...)
}

// Query runs a read in the transaction.
func (t *Tx) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.SQL.QueryContext(ctx, t.db.Rebind(q), args...)
}

// QueryRow runs a one-row read in the transaction.
func (t *Tx) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return t.SQL.QueryRowContext(ctx, t.db.Rebind(q), args...)
}

// Lock takes a transaction-scoped lock on key, held until commit or
// rollback: a PostgreSQL advisory lock, a no-op on SQLite, whose single
// writer connection already serialises write transactions.
func (t *Tx) Lock(ctx context.Context, key string) error {
	if t.db.Dialect != Postgres {
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
