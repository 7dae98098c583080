package event

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

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
}

// Outbox records domain events in the transaction of the change they describe.
type Outbox struct {
	clock clock.Clock
	queue *jobs.Queue
	// queued holds the communities with a dispatch job committed by this
	// process that has not started yet (SQLite only, and only once a
	// Dispatcher reports job starts: see Append).
	mu       sync.Mutex
	queued   map[string]bool
	coalesce bool
	// committed are told, after commit, which community got new events.
	committed []func(communityID string)
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
	return &Outbox{clock: deps.Clock, queue: deps.Queue, queued: map[string]bool{}}
}

// started forgets that a dispatch job for communityID is waiting: the job
// that is starting now delivers every event committed before its first
// transaction.
func (o *Outbox) started(communityID string) {
	o.mu.Lock()
	delete(o.queued, communityID)
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
// marshalled to JSON (nil becomes {}), and schedules its dispatch, all inside
// tx: if tx rolls back, neither the event nor its dispatch exists.
//
// Append first takes a per-community lock held until tx ends, so on
// PostgreSQL a community's events commit in the order of their sequence
// numbers and the dispatcher never passes a number whose transaction is still
// open. Keep transactions that append short.
func (o *Outbox) Append(ctx context.Context, tx *db.Tx, communityID, typ string, payload any) error {
	if communityID == "" || typ == "" {
		return errors.New("append event: community and type are required")
	}
	body := []byte("{}")
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return fmt.Errorf("append event %s: encode payload: %w", typ, err)
		}
		body = b
	}
	if err := LockCommunity(ctx, tx, communityID); err != nil {
		return fmt.Errorf("append event %s: %w", typ, err)
	}
	now := o.clock.Now()
	if _, err := tx.Exec(ctx, "INSERT INTO events (id, community_id, type, payload, occurred_at) VALUES (?, ?, ?, ?, ?)",
		id.New(now), communityID, typ, string(body), now.UnixMilli()); err != nil {
		return fmt.Errorf("append event %s: %w", typ, err)
	}
	if err := o.signal(ctx, tx, communityID); err != nil {
		return fmt.Errorf("append event %s: %w", typ, err)
	}
	// On SQLite (one process, one writer) a dispatch job that is committed
	// but not started covers this event too: its delivery transaction can
	// only begin after this one commits. So one job serves a burst of
	// appends, instead of one job insert per event. The sweep re-schedules
	// dispatch should such a job never start.
	o.mu.Lock()
	sqlite := o.coalesce && tx.Dialect() == db.SQLite
	o.mu.Unlock()
	if sqlite {
		o.mu.Lock()
		waiting := o.queued[communityID]
		o.mu.Unlock()
		if waiting {
			return nil
		}
	}
	if err := o.queue.InsertTx(ctx, tx, DispatchArgs{CommunityID: communityID}, nil); err != nil {
		return fmt.Errorf("append event %s: %w", typ, err)
	}
	if sqlite {
		tx.AfterCommit(func() {
			o.mu.Lock()
			o.queued[communityID] = true
			o.mu.Unlock()
		})
	}
	return nil
}

// signal arranges for the commit of tx to be announced: to this process's
// OnCommit listeners and, on PostgreSQL, to every node through NOTIFY
// (delivered at commit, never on rollback; repeats within a transaction are
// folded into one by PostgreSQL).
func (o *Outbox) signal(ctx context.Context, tx *db.Tx, communityID string) error {
	if tx.Dialect() == db.Postgres {
		if _, err := tx.Exec(ctx, "SELECT pg_notify(?, ?)", NotifyChannel, communityID); err != nil {
			return fmt.Errorf("notify: %w", err)
		}
	}
	o.mu.Lock()
	hooks := o.committed
	o.mu.Unlock()
	if len(hooks) > 0 {
		tx.AfterCommit(func() {
			for _, f := range hooks {
				f(communityID)
			}
		})
	}
	return nil
}

// Appender records an event in the caller's transaction; *Outbox is the
// implementation every domain service is given.
type Appender interface {
	Append(ctx context.Context, tx *db.Tx, communityID, typ string, payload any) error
}
