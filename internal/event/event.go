// Package event is Rally's transactional outbox. A domain change appends an
// event in the same transaction that makes the change; after commit a River
// job hands every new event, in order, to each registered subscriber (the
// events feed, webhooks, XP for a message, realtime push), so no domain calls
// another to notify it and no event is lost or seen before its change is.
//
// Guarantees: per community, subscribers see events in sequence order, and
// sequence order is commit order (Append serialises appends per community).
// Delivery is at least once. A subscriber's Handle runs in the transaction
// that advances its offset, so effects it writes to Rally's database happen
// exactly once; effects outside the database may repeat after a failure, so
// subscribers with outside effects should rather enqueue a job in tx.
package event

import (
	"context"
	"encoding/json"
	"time"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
)

// Event is one domain event of one community.
type Event struct {
	// ID is the event's ObjectId, stable across the outbox and the feed.
	ID string
	// Seq orders a community's events: the outbox sequence for subscribers,
	// the feed's own sequence (the paging cursor) for feed items.
	Seq int64
	// CommunityID scopes the event: only that community's readers see it.
	CommunityID string
	// Type names what happened, e.g. "user.created".
	Type string
	// Payload is the event's JSON body.
	Payload json.RawMessage
	// OccurredAt is when the change was made, by the injected clock.
	OccurredAt time.Time
}

// eventJSON is the API shape of an Event.
type eventJSON struct {
	ID          string          `json:"_id"`
	Seq         int64           `json:"sequence"`
	Type        string          `json:"type"`
	CommunityID string          `json:"communityId"`
	Payload     json.RawMessage `json:"payload"`
	OccurredAt  string          `json:"occurredAt"`
}

// MarshalJSON writes the API shape:
// {"_id","sequence","type","communityId","payload","occurredAt"}.
func (e Event) MarshalJSON() ([]byte, error) {
	payload := e.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("{}")
	}
	return json.Marshal(eventJSON{
		ID:          e.ID,
		Seq:         e.Seq,
		Type:        e.Type,
		CommunityID: e.CommunityID,
		Payload:     payload,
		OccurredAt:  clock.Format(e.OccurredAt),
	})
}

// Subscriber consumes a community's events in order. Handle runs inside the
// transaction that advances the subscriber's offset: when it returns an
// error, nothing it wrote is kept, the offset stays before the event and the
// dispatch is retried later. Handle must use tx for every database access:
// on SQLite tx holds the only writer connection, so a write outside it would
// wait forever.
//
// A subscriber sets Handle, or HandleBatch when it can do a batch's work
// for less than one event at a time (read what every event needs once,
// skip a batch nothing in it concerns). Events share their Payload bytes
// with other subscribers: never modify them.
type Subscriber struct {
	// Name identifies the subscriber's offsets; never rename a live one.
	Name   string
	Handle func(ctx context.Context, tx *db.Tx, e Event) error
	// HandleBatch, when set, is called instead of Handle with a run of
	// consecutive events (at least one, in sequence order), all in one
	// transaction; its effects must be those of handling them one by one.
	HandleBatch func(ctx context.Context, tx *db.Tx, events []Event) error
}
