// Package idem makes value-moving writes idempotent: a client sends an
// Idempotency-Key with a write, and a retry of the same request with the
// same key gets the first answer back instead of being applied again.
//
// The record of a key lives in the SAME transaction as the write it
// protects, so either both commit or neither does:
//
//	err := d.Tx(ctx, func(tx *db.Tx) error {
//		res, err = keeper.Do(ctx, tx, req, func() (int, []byte, error) {
//			// apply the write in tx, return the answer to store
//		})
//		return err
//	})
//
// Do first claims (community, scope, key) with an INSERT on the table's
// primary key. The claim decides who applies the write:
//   - On PostgreSQL a second transaction claiming the same key blocks on the
//     unique index until the first commits (then it finds the stored answer)
//     or rolls back (then it claims the key itself).
//   - On SQLite the single writer connection serialises write transactions.
//
// So of any number of concurrent requests with one key exactly one applies
// the write; the others return its stored answer (Response.Replayed).
//
// Only successful writes are recorded: when fn returns an error the whole
// transaction rolls back, the claim with it, and nothing was applied, so a
// retry is evaluated afresh (a debit refused for insufficient funds may
// succeed once the balance allows). A key reused with a different request
// (method, canonical path or body) is a Conflict. Records expire after TTL;
// a periodic job deletes expired ones, and an expired record still present is
// treated as absent.
package idem

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/jobs"
)

// Header is the request header that carries the key.
const Header = "Idempotency-Key"

// Defaults applied to zero Deps fields.
const (
	// DefaultTTL is how long a key's answer is kept (24 hours).
	DefaultTTL = 24 * time.Hour
	// DefaultPruneInterval is how often expired records are deleted.
	DefaultPruneInterval = time.Hour
	// MaxKeyLength bounds a key's length in characters.
	MaxKeyLength = 255
)

// Request identifies one idempotent write.
type Request struct {
	// CommunityID scopes keys to a community: another community's key
	// never collides.
	CommunityID string
	// Scope separates clients within a community (e.g. "apikey:<id>"), so
	// two integrations choosing the same key do not collide.
	Scope string
	// Key is the client's Idempotency-Key (see CheckKey).
	Key string
	// Fingerprint identifies the request's content (see Fingerprint); the
	// same key with another fingerprint is a Conflict.
	Fingerprint string
}

// Response is the answer of a write: the one just produced, or the stored
// one when Replayed.
type Response struct {
	Status int
	Body   []byte
	// Replayed is true when the answer comes from an earlier request with
	// the same key and the write was not applied again.
	Replayed bool
}

// Deps is what a Keeper needs.
type Deps struct {
	Clock clock.Clock
	DB    *db.DB
	// Queue runs the periodic prune of expired records (registered by New,
	// so call New before the queue starts).
	Queue *jobs.Queue
	// TTL is how long records are kept (default 24h).
	TTL time.Duration
	// PruneInterval is how often expired records are deleted (default 1h).
	PruneInterval time.Duration
}

// Keeper stores idempotency records.
type Keeper struct {
	clock clock.Clock
	db    *db.DB
	ttl   time.Duration
}

// PruneArgs is the periodic River job that deletes expired records.
type PruneArgs struct{}

// Kind names the job in River.
func (PruneArgs) Kind() string { return "prune_idempotency_keys" }

// New returns a Keeper and registers its prune worker and periodic job on
// deps.Queue.
func New(deps Deps) (*Keeper, error) {
	k := &Keeper{clock: deps.Clock, db: deps.DB, ttl: deps.TTL}
	if k.ttl <= 0 {
		k.ttl = DefaultTTL
	}
	interval := deps.PruneInterval
	if interval <= 0 {
		interval = DefaultPruneInterval
	}
	if err := jobs.AddWorker(deps.Queue, &pruneWorker{k: k}); err != nil {
		return nil, fmt.Errorf("new idempotency keeper: %w", err)
	}
	deps.Queue.AddPeriodic(river.NewPeriodicJob(
		river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return PruneArgs{}, nil },
		&river.PeriodicJobOpts{ID: "prune_idempotency_keys", RunOnStart: true},
	))
	return k, nil
}

// CheckKey validates a client's key: 1 to 255 printable ASCII characters.
// The error is Invalid and names the Idempotency-Key header.
func CheckKey(key string) error {
	ok := key != "" && len(key) <= MaxKeyLength
	for i := 0; ok && i < len(key); i++ {
		ok = key[i] >= 0x20 && key[i] < 0x7f
	}
	if ok {
		return nil
	}
	var v errs.Validator
	v.Add(Header, "must be 1 to %d printable ASCII characters", MaxKeyLength)
	return v.Err()
}

// Fingerprint is the SHA-256 (hex) of method, canonical path and body. A
// JSON body is re-encoded first (object keys sorted, insignificant space
// dropped), so the same document sent twice fingerprints the same.
func Fingerprint(method, path string, body []byte) string {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err == nil && !dec.More() {
		if canon, err := json.Marshal(doc); err == nil {
			body = canon
		}
	}
	h := sha256.New()
	h.Write([]byte(method))
	h.Write([]byte{0})
	h.Write([]byte(path))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// Do runs fn under req's key in tx. When the key is new (or its record
// expired), Do claims it, runs fn and stores fn's status and body with the
// claim; when the key holds a stored answer for the same fingerprint, Do
// returns it with Replayed set and fn does not run; a different fingerprint
// is a Conflict. An error from fn is returned as is, and the caller must
// roll tx back (db.Tx does), which releases the claim.
func (k *Keeper) Do(ctx context.Context, tx *db.Tx, req Request, fn func() (status int, body []byte, err error)) (Response, error) {
	if err := CheckKey(req.Key); err != nil {
		return Response{}, err
	}
	now := k.clock.Now()
	res, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (community_id, scope, idem_key, fingerprint, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (community_id, scope, idem_key) DO UPDATE SET fingerprint = excluded.fingerprint, status = 0,
			response = '', created_at = excluded.created_at, expires_at = excluded.expires_at
		WHERE idempotency_keys.expires_at <= ?`,
		req.CommunityID, req.Scope, req.Key, req.Fingerprint, now.UnixMilli(), now.Add(k.ttl).UnixMilli(), now.UnixMilli())
	if err != nil {
		return Response{}, fmt.Errorf("claim idempotency key: %w", err)
	}
	claimed, err := res.RowsAffected()
	if err != nil {
		return Response{}, fmt.Errorf("claim idempotency key: %w", err)
	}
	if claimed == 0 {
		return k.stored(ctx, tx, req)
	}
	status, body, err := fn()
	if err != nil {
		return Response{}, err
	}
	if _, err := tx.Exec(ctx, "UPDATE idempotency_keys SET status = ?, response = ? WHERE community_id = ? AND scope = ? AND idem_key = ?",
		status, string(body), req.CommunityID, req.Scope, req.Key); err != nil {
		return Response{}, fmt.Errorf("store idempotent answer: %w", err)
	}
	return Response{Status: status, Body: body}, nil
}

// stored returns the committed answer recorded for req's key.
func (k *Keeper) stored(ctx context.Context, tx *db.Tx, req Request) (Response, error) {
	var (
		fingerprint, body string
		status            int
	)
	err := tx.QueryRow(ctx, "SELECT fingerprint, status, response FROM idempotency_keys WHERE community_id = ? AND scope = ? AND idem_key = ?",
		req.CommunityID, req.Scope, req.Key).Scan(&fingerprint, &status, &body)
	if errors.Is(err, sql.ErrNoRows) {
		// The record was pruned between the claim and this read: another
		// attempt of the transaction will claim it.
		return Response{}, errs.Conflictf("A request with this Idempotency-Key is being processed; retry it.")
	}
	if err != nil {
		return Response{}, fmt.Errorf("read idempotency key: %w", err)
	}
	if fingerprint != req.Fingerprint {
		return Response{}, errs.Conflictf("This Idempotency-Key was already used with a different request.")
	}
	if status == 0 {
		return Response{}, errs.Conflictf("A request with this Idempotency-Key is being processed; retry it.")
	}
	return Response{Status: status, Body: []byte(body), Replayed: true}, nil
}

// Prune deletes expired records and reports how many it deleted.
func (k *Keeper) Prune(ctx context.Context) (int64, error) {
	res, err := k.db.Exec(ctx, "DELETE FROM idempotency_keys WHERE expires_at <= ?", k.clock.Now().UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	return n, nil
}

// pruneWorker runs Prune for the periodic PruneArgs job.
type pruneWorker struct {
	river.WorkerDefaults[PruneArgs]
	k *Keeper
}

func (w *pruneWorker) Work(ctx context.Context, _ *river.Job[PruneArgs]) error {
	_, err := w.k.Prune(ctx)
	return err
}
