// Package db opens Rally's database, SQLite or PostgreSQL, from one DSN and
// keeps the two dialects' differences (placeholders, locking, error codes) in
// one place. Stores write portable SQL with ? placeholders.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Dialect names the SQL engine behind a DB.
type Dialect string

// The supported engines.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is an open database: a writer and a reader handle (the same pool on
// PostgreSQL; one writer connection plus a read-only pool on SQLite).
type DB struct {
	Dialect Dialect
	// Writer is the handle all writes and transactions go through.
	Writer *sql.DB
	// Reader serves reads outside transactions.
	Reader *sql.DB
	// Pool is the pgx pool behind Writer on PostgreSQL (nil on SQLite); the
	// job queue's PostgreSQL driver needs it.
	Pool *pgxpool.Pool

	rebound sync.Map // query text -> query with $n placeholders
	stmts   sync.Map // query text -> *sql.Stmt prepared on Reader
	// wstmts holds statements prepared on the SQLite writer (query text ->
	// *sql.Stmt), which transactions reuse: see Tx.stmt.
	wstmts writeStmts
}

// Open connects to the database named by dsn: sqlite:///path/to/file.db or
// postgres://... (postgresql:// too). The SQLite file and its folder are
// created when missing.
func Open(ctx context.Context, dsn string) (*DB, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite://"):
		return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite://"))
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(ctx, dsn)
	default:
		return nil, fmt.Errorf("open database: unsupported DSN %q (want sqlite:///path/file.db or postgres://...)", redact(dsn))
	}
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("open sqlite: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open sqlite: create folder: %w", err)
	}
	// busy_timeout comes first so that switching to WAL waits for other
	// openers instead of failing with SQLITE_BUSY.
	base := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	w, err := sql.Open("sqlite", base+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite writer: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite reader: %w", err)
	}
	n := max(4, runtime.NumCPU()*2)
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return &DB{Dialect: SQLite, Writer: w, Reader: r}, nil
}

// PoolSize is the PostgreSQL pool's default size, max(16, 4 x CPUs); a
// DSN's pool_max_conns overrides it. pgxpool's own default, max(4, CPUs),
// starves a server whose requests, job workers, outbox dispatch and the
// realtime LISTEN connection all share the pool and mostly wait on round
// trips rather than CPU.
func PoolSize() int32 { return int32(max(16, 4*runtime.NumCPU())) }

func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: parse DSN: %w", err)
	}
	if !strings.Contains(dsn, "pool_max_conns=") {
		cfg.MaxConns = PoolSize()
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres %s: %w", redact(dsn), err)
	}
	sqldb := stdlib.OpenDBFromPool(pool)
	return &DB{Dialect: Postgres, Writer: sqldb, Reader: sqldb, Pool: pool}, nil
}

// Close closes every handle.
func (d *DB) Close() error {
	var errsOut []error
	d.stmts.Range(func(_, v any) bool {
		errsOut = append(errsOut, v.(*sql.Stmt).Close())
		return true
	})
	errsOut = append(errsOut, d.wstmts.close())
	if d.Reader != d.Writer {
		errsOut = append(errsOut, d.Reader.Close())
	}
	if d.Dialect == SQLite {
		// Fold the WAL back into the main file so a stopped server leaves one file.
		_, _ = d.Writer.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	}
	errsOut = append(errsOut, d.Writer.Close())
	if d.Pool != nil {
		d.Pool.Close()
	}
	return errors.Join(errsOut...)
}

// Ping checks that the database answers.
func (d *DB) Ping(ctx context.Context) error {
	var one int
	if err := d.Reader.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// Query runs a read on the reader handle.
func (d *DB) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := d.readStmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return d.Reader.QueryContext(ctx, d.Rebind(q), args...)
}

// QueryRow runs a one-row read on the reader handle.
func (d *DB) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st := d.readStmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return d.Reader.QueryRowContext(ctx, d.Rebind(q), args...)
}

// readStmt returns q prepared on the reader, preparing it on first use, so
// hot reads skip parsing SQL on every request. Queries come from the code,
// never from input, so the cache is bounded by the program's own text. It
// returns nil when preparing fails; the caller then runs q unprepared and
// reports the error as usual.
func (d *DB) readStmt(ctx context.Context, q string) *sql.Stmt {
	if v, ok := d.stmts.Load(q); ok {
		return v.(*sql.Stmt)
	}
	st, err := d.Reader.PrepareContext(context.WithoutCancel(ctx), d.Rebind(q))
	if err != nil {
		return nil
	}
	if prev, loaded := d.stmts.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sql.Stmt)
	}
	return st
}

// Exec runs one statement on the writer outside an explicit transaction.
func (d *DB) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return d.Writer.ExecContext(ctx, d.Rebind(q), args...)
}

// Rebind turns ? placeholders into the dialect's form ($1, $2... on
// PostgreSQL). Question marks inside quoted strings are left alone.
func (d *DB) Rebind(q string) string {
	if d.Dialect != Postgres {
		return q
	}
	if v, ok := d.rebound.Load(q); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	inQuote := false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			inQuote = !inQuote
			b.WriteByte(c)
		case c == '?' && !inQuote:
			n++
			fmt.Fprintf(&b, "$%d", n)
		default:
			b.WriteByte(c)
		}
	}
	out := b.String()
	d.rebound.Store(q, out)
	return out
}

// ForUpdate is the row-locking suffix for a SELECT inside a transaction:
// FOR UPDATE on PostgreSQL, nothing on SQLite (its single writer already
// serialises write transactions).
func (d *DB) ForUpdate() string {
	if d.Dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
