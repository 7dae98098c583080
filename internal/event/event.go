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
	"errors"
	"strings"
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

// Member is a member a run of events names, and the first event naming it.
type Member struct {
	UserID  string
	EventID string
}

// Members returns, in order of first mention, the distinct members the
// events that keep accepts name in their payload's userId (or userID,
// user_id, user._id); events naming none are passed over. Subscribers that
// bring a member's state up to date, whichever event prompted it, do so
// once per member of a batch.
func Members(events []Event, keep func(Event) bool) []Member {
	var out []Member
	seen := map[string]bool{}
	for _, e := range events {
		if !keep(e) {
			continue
		}
		if u := MemberOf(e.Payload); u != "" && !seen[u] {
			seen[u] = true
			out = append(out, Member{UserID: u, EventID: e.ID})
		}
	}
	return out
}

// memberFields are the payload fields MemberOf reads. Values are decoded
// as any so that a field of another type is passed over as before, and the
// rest of the payload (a whole message, say) is skipped, not decoded.
type memberFields struct {
	UserID  any `json:"userId"`
	UserID2 any `json:"userID"`
	UserID3 any `json:"user_id"`
	User    *struct {
		ID any `json:"_id"`
	} `json:"user"`
}

// MemberOf returns the member an outbox event is about: its JSON payload's
// userId (or userID, user_id, user._id), "" when it names none or is not a
// JSON object.
func MemberOf(payload []byte) string {
	var p memberFields
	if err := json.Unmarshal(payload, &p); err != nil {
		var mismatch *json.UnmarshalTypeError
		if !errors.As(err, &mismatch) {
			return ""
		}
		// A field of another type (user not an object): the others are
		// decoded all the same.
	}
	for _, v := range []any{p.UserID, p.UserID2, p.UserID3} {
		if s, ok := v.(string); ok && strings.TrimSpace(s) != "" {
			return strings.TrimSpace(s)
		}
	}
	if p.User != nil {
		if s, ok := p.User.ID.(string); ok {
			return strings.TrimSpace(s)
		}
	}
	return ""
}
