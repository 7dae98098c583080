package event

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jobs"
)

// DispatchArgs is the River job that delivers a community's pending events to
// every subscriber. Duplicates are harmless: dispatch is idempotent.
type DispatchArgs struct {
	CommunityID string `json:"community_id"`
}

// Kind names the job in River.
func (DispatchArgs) Kind() string { return "dispatch_events" }

// OutboxDeps is what an Outbox needs. It takes no database: Append writes in
// the caller's transaction.
type OutboxDeps struct {
	Clock clock.Clock
	Queue *jobs.Queue
	// Quiet lists the event types that report activity, never a change of
	// a community's settings, members, roles or channels: they leave
	// Version alone (see Version).
	Quiet []string
}

// Outbox records domain events in the transaction of the change they describe.
type Outbox struct {
	clock clock.Clock
	queue *jobs.Queue
	// On SQLite, once a Dispatcher has set coalesce, the outbox keeps one
	// dispatch job per community alive instead of inserting one per
	// transaction (see Append). active holds the communities with such a
	// job inserted by this process, queued or running; dirty those where
	// events were appended since that job last began to drain.
	mu       sync.Mutex
	active   map[string]bool
	dirty    map[string]bool
	coalesce bool
	// quiet holds OutboxDeps.Quiet; versions each community's Version
	// (communityID -> *atomic.Uint64).
	quiet    map[string]bool
	versions sync.Map
	// committed are told, after commit, which community got new events.
	committed []func(communityID string)
	// appended counts the events of committed transactions.
	appended atomic.Uint64
}

// NotifyChannel is the PostgreSQL NOTIFY channel Append signals on, with the
// community id as payload, when its transaction commits: other Rally nodes
// LISTEN on it to see new events at once (the realtime stream).
const NotifyChannel = "rally_events"

// OnCommit registers f to be called, in this process, after every
// transaction that appended an event commits, with the event's community.
// f must not block: it runs on the committing goroutine.
func (o *Outbox) OnCommit(f func(communityID string)) {
	o.mu.Lock()
	o.committed = append(o.committed, f)
	o.mu.Unlock()
}

// NewOutbox returns an outbox.
func NewOutbox(deps OutboxDeps) *Outbox {
	o := &Outbox{clock: deps.Clock, queue: deps.Queue, active: map[string]bool{}, dirty: map[string]bool{}, quiet: map[string]bool{}}
	for _, t := range deps.Quiet {
		o.quiet[t] = true
	}
	return o
}

// Version counts the transactions committed through this outbox that
// appended an event of communityID other than a quiet one. Every change to
// a community's settings, members, roles or channels records an event in
// its transaction, so a cache of such state that notes the version before
// it reads stays right while the version is unchanged, for changes made in
// this process (other nodes' changes need a time limit).
func (o *Outbox) Version(communityID string) uint64 {
	if v, ok := o.versions.Load(communityID); ok {
		return v.(*atomic.Uint64).Load()
	}
	return 0
}

// changed raises communityID's Version once tx commits.
func (o *Outbox) changed(tx *db.Tx, communityID string) {
	if !tx.First("event.changed:" + communityID) {
		return
	}
	tx.AfterCommit(func() {
		v, _ := o.versions.LoadOrStore(communityID, new(atomic.Uint64))
		v.(*atomic.Uint64).Add(1)
	})
}

// draining is called by a dispatch job of communityID before each pass
// over the community's events: appends made so far are covered by the
// pass, since its transactions begin after theirs end (one writer).
func (o *Outbox) draining(communityID string) {
	o.mu.Lock()
	delete(o.dirty, communityID)
	o.mu.Unlock()
}

// drained is called by a dispatch job of communityID after a pass. It
// reports whether events were appended during the pass, which the job must
// then drain too; otherwise the job is over, and the next append schedules
// a new one.
func (o *Outbox) drained(communityID string) (again bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dirty[communityID] {
		return true
	}
	delete(o.active, communityID)
	return false
}

// abandon is called by a dispatch job of communityID that fails: River
// retries it later, but the next append schedules a new job at once.
func (o *Outbox) abandon(communityID string) {
	o.mu.Lock()
	delete(o.active, communityID)
	o.mu.Unlock()
}

// LockCommunity takes the per-community lock Append takes, held until tx
// ends. A domain that must serialise its own writes in a community before it
// appends (reading a current value, numbering rows) takes this lock first, so
// its transactions and Append never wait on each other in opposite orders.
func LockCommunity(ctx context.Context, tx *db.Tx, communityID string) error {
	return tx.Lock(ctx, "events:"+communityID)
}

// Append records that typ happened in community communityID, with payload
// marshalled to JSON (nil becomes {}; a json.RawMessage is taken as is),
// and schedules its dispatch, all inside tx: if tx rolls back, neither the
// event nor its dispatch exists.
//
// Append first takes a per-community lock held until tx ends, so on
// PostgreSQL a community's events commit in the order of their sequence
// numbers and the dispatcher never passes a number whose transaction is still
// open. Keep transactions that append short.
func (o *Outbox) Append(ctx context.Context, tx *db.Tx, communityID, typ string, payload any) error {
	return o.AppendAll(ctx, tx, communityID, []Pending{{Type: typ, Payload: payload}})
}

// Pending is one event for AppendAll: its type and payload (as Append's).
type Pending struct {
	Type    string
	Payload any
}

// AppendAll records events of community communityID, in order, as Append
// would one after the other, with one statement.
func (o *Outbox) AppendAll(ctx context.Context, tx *db.Tx, communityID string, events []Pending) error {
	if len(events) == 0 {
		return nil
	}
	typ := events[0].Type
	if communityID == "" {
		return errors.New("append event: community is required")
	}
	args := make([]any, 0, 5*len(events))
	now := o.clock.Now()
	for _, e := range events {
		if e.Type == "" {
			return errors.New("append event: type is required")
		}
		body := []byte("{}")
		switch p := e.Payload.(type) {
		case nil:
		case json.RawMessage:
			body = p
		default:
			b, err := json.Marshal(p)
			if err != nil {
				return fmt.Errorf("append event %s: encode payload: %w", e.Type, err)
			}
			body = b
		}
		args = append(args, id.New(now), communityID, e.Type, string(body), now.UnixMilli())
		if !o.quiet[e.Type] {
			o.changed(tx, communityID)
		}
	}
	if err := LockCommunity(ctx, tx, communityID); err != nil {
		return fmt.Errorf("append event %s: %w", typ, err)
	}
	q := "INSERT INTO events (id, community_id, type, payload, occurred_at) VALUES " + db.ValueRows(len(events), 5)
	if _, err := tx.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("append event %s: %w", typ, err)
	}
	if err := o.signal(ctx, tx, communityID, len(events)); err != nil {
		return fmt.Errorf("append event %s: %w", typ, err)
	}
	// One dispatch job per transaction is enough: it is committed with
	// every event of the transaction and runs after the commit.
	if !tx.First("event.dispatch:" + communityID) {
		return nil
	}
	// On SQLite (one process, one writer) a dispatch job of this process
	// that is queued or running covers this event too: it is told (dirty)
	// to make one more pass, whose transactions can only begin after this
	// one ends. So one job serves a burst of appends instead of one job
	// insert per transaction. The sweep re-schedules dispatch should such a
	// job never run.
	sqlite := tx.Dialect() == db.SQLite
	if sqlite {
		o.mu.Lock()
		covered := o.coalesce && o.active[communityID]
		if covered {
			o.dirty[communityID] = true
		}
		o.mu.Unlock()
		if covered {
			return nil
		}
	}
	if err := o.queue.InsertTx(ctx, tx, DispatchArgs{CommunityID: communityID}, nil); err != nil {
		return fmt.Errorf("append event %s: %w", typ, err)
	}
	// The job counts as active from now on, not from the commit: it may
	// start, and finish, before an after-commit hook would run.
	if sqlite {
		o.mu.Lock()
		if o.coalesce {
			o.active[communityID] = true
			tx.AfterRollback(func() {
				o.mu.Lock()
				delete(o.active, communityID)
				o.mu.Unlock()
			})
		}
		o.mu.Unlock()
	}
	return nil
}

// signal arranges for the commit of tx to be announced: to this process's
// OnCommit listeners and, on PostgreSQL, to every node through NOTIFY
// (delivered at commit, never on rollback), once per transaction and
// community; and for the n events just appended to be counted then.
func (o *Outbox) signal(ctx context.Context, tx *db.Tx, communityID string, n int) error {
	if !tx.First("event.signal:" + communityID) {
		// A later append of the transaction (rare: most append once).
		tx.AfterCommit(func() { o.appended.Add(uint64(n)) })
		return nil
	}
	if tx.Dialect() == db.Postgres {
		if _, err := tx.Exec(ctx, "SELECT pg_notify(?, ?)", NotifyChannel, communityID); err != nil {
			return fmt.Errorf("notify: %w", err)
		}
	}
	o.mu.Lock()
	hooks := o.committed
	o.mu.Unlock()
	tx.AfterCommit(func() {
		o.appended.Add(uint64(n))
		for _, f := range hooks {
			f(communityID)
		}
	})
	return nil
}

// Appender records events in the caller's transaction; *Outbox is the
// implementation every domain service is given.
type Appender interface {
	Append(ctx context.Context, tx *db.Tx, communityID, typ string, payload any) error
	AppendAll(ctx context.Context, tx *db.Tx, communityID string, events []Pending) error
}
