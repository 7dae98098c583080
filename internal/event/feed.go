package event

import (
	"context"
	"fmt"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
)

// Feed paging bounds.
const (
	DefaultFeedLimit = 50
	MaxFeedLimit     = 200
)

// FeedSubscriberName is the outbox subscriber that fills the events feed.
const FeedSubscriberName = "feed"

// FeedDeps is what a Feed needs.
type FeedDeps struct {
	DB *db.DB
}

// Feed is the per-community events feed integrators poll (GET /v1/events):
// a durable copy of every event, paged by the feed's own sequence.
type Feed struct {
	db *db.DB
}

// NewFeed returns the events feed.
func NewFeed(deps FeedDeps) *Feed {
	return &Feed{db: deps.DB}
}

// Subscriber returns the outbox subscriber that copies each event into the
// feed, a batch of events with one statement. The copy is keyed by event
// id, so a redelivered event is not listed twice.
func (f *Feed) Subscriber() Subscriber {
	return Subscriber{Name: FeedSubscriberName, HandleBatch: f.copy}
}

func (f *Feed) copy(ctx context.Context, tx *db.Tx, events []Event) error {
	args := make([]any, 0, 5*len(events))
	for _, e := range events {
		args = append(args, e.ID, e.CommunityID, e.Type, string(e.Payload), e.OccurredAt.UnixMilli())
	}
	q := "INSERT INTO event_feed (event_id, community_id, type, payload, occurred_at) VALUES " +
		db.ValueRows(len(events), 5) + " ON CONFLICT (event_id) DO NOTHING"
	if _, err := tx.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("copy events %s to %s to feed: %w", events[0].ID, events[len(events)-1].ID, err)
	}
	return nil
}

// FeedQuery selects a page of the feed.
type FeedQuery struct {
	// Type, when set, keeps only events of exactly this type.
	Type string
	// After is the cursor: only items with a greater sequence are listed
	// (0 lists from the start).
	After int64
	// Limit is the page size, 1 to 200; 0 means 50.
	Limit int
}

// List returns the community's feed items after q.After in sequence order
// and the cursor for the next page: the last item's sequence, or q.After when
// the page is empty. Item Seq is the feed's sequence. Invalid paging is an
// errs.Invalid error naming "limit" and/or "after".
func (f *Feed) List(ctx context.Context, communityID string, q FeedQuery) ([]Event, int64, error) {
	var v errs.Validator
	v.Check(q.Limit >= 0 && q.Limit <= MaxFeedLimit, "limit", "must be between 1 and %d", MaxFeedLimit)
	v.Check(q.After >= 0, "after", "must be a sequence number of at least 0")
	if err := v.Err(); err != nil {
		return nil, 0, err
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultFeedLimit
	}
	query := "SELECT seq, event_id, community_id, type, payload, occurred_at FROM event_feed WHERE community_id = ? AND seq > ?"
	args := []any{communityID, q.After}
	if q.Type != "" {
		query += " AND type = ?"
		args = append(args, q.Type)
	}
	query += " ORDER BY seq LIMIT ?"
	args = append(args, limit)
	rows, err := f.db.Query(ctx, query, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list events of %s: %w", communityID, err)
	}
	defer rows.Close()
	var items []Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("list events of %s: %w", communityID, err)
		}
		items = append(items, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list events of %s: %w", communityID, err)
	}
	next := q.After
	if len(items) > 0 {
		next = items[len(items)-1].Seq
	}
	return items, next, nil
}
