// Package blob stores uploaded files (avatars, message images, badge proof
// files) in the database's blobs table, content-addressed: a file's key is
// the SHA-256 of its bytes plus an extension naming its type, so the same
// upload is stored once, a key never changes meaning, and readers may cache
// a key forever. Every node sharing the database serves every file.
//
// Files nothing refers to any more are deleted by a periodic sweep (see
// Sweep) once they are older than a grace period, so an upload whose
// reference is still being written is never collected.
package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/jobs"
)

// types maps the extensions a key may carry to their Content-Type.
var types = map[string]string{
	"png":  "image/png",
	"jpg":  "image/jpeg",
	"gif":  "image/gif",
	"webp": "image/webp",
	"pdf":  "application/pdf",
}

// keyRE is the only shape a key has: 64 hex digits, a dot, an extension.
var keyRE = regexp.MustCompile(`^[0-9a-f]{64}\.(png|jpg|gif|webp|pdf)$`)

// Defaults applied to zero Deps fields.
const (
	// DefaultGrace is how old an unreferenced blob must be before the sweep
	// deletes it. An upload is stored before (or in the same transaction as)
	// the row that refers to it; the grace period covers uploads whose
	// referring row is not written yet, and Put refreshes a blob older than
	// half of it, so a blob handed out by Put survives at least Grace/2.
	DefaultGrace = time.Hour
	// DefaultSweepInterval is how often the sweep runs.
	DefaultSweepInterval = 10 * time.Minute
)

// RejectedProofRetention is how long the proof file of a rejected badge
// application is kept after the decision; after that the application no
// longer holds on to it (and shows no proof file).
const RejectedProofRetention = 30 * 24 * time.Hour

// sweepBatch bounds how many blobs one delete statement removes.
const sweepBatch = 100

// Deps is what a Store needs.
type Deps struct {
	DB    *db.DB
	Clock clock.Clock
	// Queue runs the periodic sweep (registered by New, so call New before
	// the queue starts); nil schedules none.
	Queue *jobs.Queue
	// Logger receives sweep and import reports; nil discards them.
	Logger *slog.Logger
	// Grace is DefaultGrace when zero.
	Grace time.Duration
	// SweepInterval is DefaultSweepInterval when zero.
	SweepInterval time.Duration
}

// Store keeps blobs in the database.
type Store struct {
	db    *db.DB
	clock clock.Clock
	log   *slog.Logger
	grace time.Duration
}

// SweepArgs is the periodic River job that deletes unreferenced blobs.
type SweepArgs struct{}

// Kind names the job in River.
func (SweepArgs) Kind() string { return "sweep_blobs" }

// New returns a store over deps.DB and registers the periodic sweep on
// deps.Queue. Periodic jobs run on the queue's elected leader, so with
// several nodes the sweep runs once per interval, not once per node.
func New(deps Deps) (*Store, error) {
	if deps.DB == nil || deps.Clock == nil {
		return nil, errors.New("new blob store: database and clock are required")
	}
	s := &Store{db: deps.DB, clock: deps.Clock, log: deps.Logger, grace: deps.Grace}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.grace <= 0 {
		s.grace = DefaultGrace
	}
	if deps.Queue != nil {
		if err := jobs.AddWorker(deps.Queue, &sweepWorker{s: s}); err != nil {
			return nil, fmt.Errorf("new blob store: %w", err)
		}
		interval := deps.SweepInterval
		if interval <= 0 {
			interval = DefaultSweepInterval
		}
		deps.Queue.AddPeriodic(river.NewPeriodicJob(
			river.PeriodicInterval(interval),
			func() (river.JobArgs, *river.InsertOpts) { return SweepArgs{}, nil },
			&river.PeriodicJobOpts{ID: "sweep_blobs", RunOnStart: true},
		))
	}
	return s, nil
}

// Extension returns the key extension for a Content-Type the store keeps,
// and whether it keeps it.
func Extension(contentType string) (string, bool) {
	for ext, ct := range types {
		if ct == contentType {
			return ext, true
		}
	}
	return "", false
}

// ContentType returns the Content-Type of key ("" for a malformed key).
func ContentType(key string) string {
	if !keyRE.MatchString(key) {
		return ""
	}
	return types[key[strings.LastIndexByte(key, '.')+1:]]
}

// Key returns the key data of the given Content-Type is stored under, and
// whether the store keeps that type.
func Key(data []byte, contentType string) (string, bool) {
	ext, ok := Extension(contentType)
	if !ok {
		return "", false
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]) + "." + ext, true
}

// Put stores data of the given Content-Type in a transaction of its own
// and returns its key. Prefer PutTx inside the transaction that records
// the key, so a key is never recorded without its bytes.
func (s *Store) Put(ctx context.Context, data []byte, contentType string) (string, error) {
	var key string
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		var err error
		key, err = s.PutTx(ctx, tx, data, contentType)
		return err
	})
	return key, err
}

// PutTx stores data of the given Content-Type inside tx and returns its
// key. It is idempotent: the same bytes give the same key and one row, and
// concurrent puts of the same bytes all succeed (the later ones wait for
// the first to commit or roll back). A blob already stored is not sent to
// the database again; when it is older than half the grace period its
// created_at is refreshed, so the sweep cannot delete it while the caller
// records its key.
func (s *Store) PutTx(ctx context.Context, tx *db.Tx, data []byte, contentType string) (string, error) {
	key, ok := Key(data, contentType)
	if !ok {
		return "", fmt.Errorf("put blob: unsupported type %q", contentType)
	}
	now := s.clock.Now().UnixMilli()
	fresh := now - (s.grace / 2).Milliseconds()
	var created int64
	err := tx.QueryRow(ctx, "SELECT created_at FROM blobs WHERE key = ?", key).Scan(&created)
	switch {
	case err == nil && created >= fresh:
		return key, nil
	case err == nil:
		res, err := tx.Exec(ctx, "UPDATE blobs SET created_at = ? WHERE key = ? AND created_at < ?", now, key, fresh)
		if err != nil {
			return "", fmt.Errorf("put blob %s: refresh: %w", key, err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 1 {
			return key, nil
		}
		// Swept (or refreshed) since the read: store it again below.
	case !errors.Is(err, sql.ErrNoRows):
		return "", fmt.Errorf("put blob %s: %w", key, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO blobs (key, content_type, size, created_at, data) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (key) DO NOTHING`, key, contentType, int64(len(data)), now, data); err != nil {
		return "", fmt.Errorf("put blob %s: %w", key, err)
	}
	return key, nil
}

// File is a stored blob, read into memory (at most the largest upload,
// 10 MiB): a Reader over its bytes plus what serving it needs.
type File struct {
	*bytes.Reader
	// Key names the blob; ContentType is the type it was stored with.
	Key, ContentType string
	// Size is its length in bytes.
	Size int64
	// Created is when it was stored (or last refreshed by a Put).
	Created time.Time
}

// Open reads the blob named key. Unknown or malformed keys are NotFound.
// The bytes are held once, in the returned File; no database connection
// stays busy while the caller sends them.
func (s *Store) Open(ctx context.Context, key string) (*File, error) {
	if !keyRE.MatchString(key) {
		return nil, errs.NotFoundf("File not found.")
	}
	f := &File{Key: key}
	var (
		created int64
		data    []byte
	)
	const q = "SELECT content_type, size, created_at, data FROM blobs WHERE key = ?"
	var err error
	if s.db.Pool != nil {
		// pgx's own Scan hands over one copy of the bytes; database/sql
		// would copy them once more.
		err = s.db.Pool.QueryRow(ctx, s.db.Rebind(q), key).Scan(&f.ContentType, &f.Size, &created, &data)
		if errors.Is(err, pgx.ErrNoRows) {
			err = sql.ErrNoRows
		}
	} else {
		err = s.db.QueryRow(ctx, q, key).Scan(&f.ContentType, &f.Size, &created, &data)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errs.NotFoundf("File not found.")
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", key, err)
	}
	f.Reader, f.Created = bytes.NewReader(data), time.UnixMilli(created).UTC()
	return f, nil
}

// Exists reports whether the blob named key is stored, without reading it
// (a conditional request for a content-addressed key needs nothing more).
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	if !keyRE.MatchString(key) {
		return false, nil
	}
	var one int
	err := s.db.QueryRow(ctx, "SELECT 1 FROM blobs WHERE key = ?", key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("find blob %s: %w", key, err)
	}
	return true, nil
}
