package message

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/rallyhq/rally/internal/channel"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
)

// maxBatch bounds how many messages share one transaction.
const maxBatch = 64

// committer groups concurrent sends into shared transactions (group
// commit): the first sender to arrive leads, writing every message queued
// behind it in one transaction with one statement per table (see
// insertAll), so a burst pays for one commit, one lock and one writer
// hand-off instead of one each. Leadership passes to the next waiter once
// the leader's own message is written, so no caller serves others for long.
type committer struct {
	mu      sync.Mutex
	queue   []*draft
	leading bool
}

// draft is one message to write: what insertAll needs, and after it the
// message written or why not.
type draft struct {
	c       chanInfo
	m       member
	r       resolved
	topicID string
	parent  *Message

	out  Message
	err  error
	done bool
	// wake is closed when the write is done or the waiter must lead.
	wake chan struct{}
}

// write writes d in a transaction shared with concurrent writes and returns
// the message written.
func (s *Service) write(ctx context.Context, d *draft) (Message, error) {
	c := &s.commit
	d.wake = make(chan struct{})
	c.mu.Lock()
	c.queue = append(c.queue, d)
	lead := !c.leading
	c.leading = true
	c.mu.Unlock()
	if !lead {
		<-d.wake
		c.mu.Lock()
		done := d.done
		c.mu.Unlock()
		if done {
			return d.result()
		}
	}
	// Lead: write batches until this caller's own message is done, then
	// hand over to the next waiter.
	ctx = context.WithoutCancel(ctx)
	for {
		c.mu.Lock()
		n := min(len(c.queue), maxBatch)
		batch := c.queue[:n:n]
		c.queue = c.queue[n:]
		c.mu.Unlock()
		s.runBatch(ctx, batch)
		c.mu.Lock()
		for _, w := range batch {
			w.done = true
			if w != d {
				close(w.wake)
			}
		}
		if d.done {
			if len(c.queue) > 0 {
				close(c.queue[0].wake)
			} else {
				c.leading = false
			}
			c.mu.Unlock()
			return d.result()
		}
		c.mu.Unlock()
	}
}

// result is what writing d came to: the message, or the error alone.
func (d *draft) result() (Message, error) {
	if d.err != nil {
		return Message{}, d.err
	}
	return d.out, nil
}

// runBatch writes batch in one transaction. A message failing with a
// domain error fails alone; any other failure makes each message be
// written on its own.
func (s *Service) runBatch(ctx context.Context, batch []*draft) {
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error { return s.insertAll(ctx, tx, batch) })
	if err == nil {
		return
	}
	if len(batch) == 1 {
		batch[0].err = err
		return
	}
	for _, d := range batch {
		one := []*draft{d}
		if err := s.d.DB.Tx(ctx, func(tx *db.Tx) error { return s.insertAll(ctx, tx, one) }); err != nil {
			d.err = err
		}
	}
}

// insertAll writes drafts in tx: each channel's next sequence numbers, the
// rows, the forum topics' and threads' counts, the authors' counters and
// the two posted events of each message, with one statement per table and
// channel. The community locks come first, in one order, so a community's
// messages commit in sequence order. A draft that breaks a rule (a topic
// not of its forum, a channel deleted meanwhile) gets its domain error and
// writes nothing; any other error is returned, and tx must roll back.
func (s *Service) insertAll(ctx context.Context, tx *db.Tx, drafts []*draft) error {
	communities := make([]string, 0, 1)
	for _, d := range drafts {
		d.err, d.out = nil, Message{}
		if !slices.Contains(communities, d.c.community) {
			communities = append(communities, d.c.community)
		}
	}
	slices.Sort(communities)
	for _, c := range communities {
		if err := event.LockCommunity(ctx, tx, c); err != nil {
			return err
		}
	}
	now := s.d.Clock.Now()
	for _, d := range drafts {
		d.out = Message{
			ID: id.New(now), Message: d.r.body, User: d.m.author(), Channel: d.c.ref(), Timestamp: jsonx.At(now),
			Attachments: d.r.attachments, Mentions: d.r.mentions, Reactions: []ReactionCount{},
		}
		if d.topicID != "" {
			t, err := channel.TopicTx(ctx, tx, d.c.id, d.topicID)
			if errs.KindOf(err) == errs.NotFound {
				var v errs.Validator
				v.Add("forumTopicId", "is not a topic of this forum")
				d.err = v.Err()
				continue
			}
			if err != nil {
				return err
			}
			d.out.ForumTopicID = &t.ID
		}
		if p := d.parent; p != nil {
			thread := p.ID
			if p.ThreadID != nil {
				thread = *p.ThreadID
			}
			d.out.ReplyTo, d.out.ThreadID, d.out.ForumTopicID = &p.ID, &thread, p.ForumTopicID
		}
	}
	// Number each channel's messages, in queue order.
	var channels []string
	for _, d := range drafts {
		if d.err == nil && !slices.Contains(channels, d.c.id) {
			channels = append(channels, d.c.id)
		}
	}
	for _, ch := range channels {
		var mine []*draft
		for _, d := range drafts {
			if d.err == nil && d.c.id == ch {
				mine = append(mine, d)
			}
		}
		var last int64
		err := tx.QueryRow(ctx, `UPDATE channels SET last_seq = last_seq + ?, message_count = message_count + ?
			WHERE id = ? AND deleted_at IS NULL RETURNING last_seq`, len(mine), len(mine), ch).Scan(&last)
		if isNoRows(err) {
			for _, d := range mine {
				d.err = errs.NotFoundf("Channel not found.")
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("number messages: %w", err)
		}
		for i, d := range mine {
			d.out.Sequence = last - int64(len(mine)-1-i)
		}
	}
	var live []*draft
	for _, d := range drafts {
		if d.err == nil {
			live = append(live, d)
		}
	}
	if len(live) == 0 {
		return nil
	}
	if err := addCounts(ctx, tx, "UPDATE forum_topics SET message_count = message_count + ?, updated_at = ? WHERE id = ?", now.UnixMilli(),
		live, func(d *draft) *string {
			if d.parent != nil {
				return nil
			}
			return d.out.ForumTopicID
		}); err != nil {
		return fmt.Errorf("count topic messages: %w", err)
	}
	if err := addCounts(ctx, tx, "UPDATE messages SET reply_count = reply_count + ? WHERE id = ?", nil,
		live, func(d *draft) *string { return d.out.ThreadID }); err != nil {
		return fmt.Errorf("count replies: %w", err)
	}
	if err := insertRows(ctx, tx, live, now.UnixMilli()); err != nil {
		return err
	}
	var counts []counter
	for _, d := range live {
		k := slices.IndexFunc(counts, func(c counter) bool { return c.community == d.c.community && c.user == d.m.ID })
		if k < 0 {
			counts = append(counts, counter{community: d.c.community, user: d.m.ID})
			k = len(counts) - 1
		}
		counts[k].messages++
		if d.parent != nil {
			counts[k].replies++
		}
	}
	if err := bumpAll(ctx, tx, counts); err != nil {
		return err
	}
	for _, c := range communities {
		var events []event.Pending
		for _, d := range live {
			if d.c.community != c {
				continue
			}
			// The same payload for both events, encoded once.
			payload, err := json.Marshal(postedEvent{Message: d.out, UserID: d.m.ID})
			if err != nil {
				return fmt.Errorf("encode posted event: %w", err)
			}
			events = append(events, event.Pending{Type: EventPosted, Payload: json.RawMessage(payload)},
				event.Pending{Type: EventChannelPosted, Payload: json.RawMessage(payload)})
		}
		if err := s.d.Events.AppendAll(ctx, tx, c, events); err != nil {
			return err
		}
	}
	return nil
}

// addCounts runs update once per distinct id key gives (nil: none) among
// drafts, with the number of drafts naming it and then extra (when not
// nil) and the id as arguments.
func addCounts(ctx context.Context, tx *db.Tx, update string, extra any, drafts []*draft, key func(*draft) *string) error {
	var ids []string
	n := map[string]int{}
	for _, d := range drafts {
		if k := key(d); k != nil {
			if n[*k] == 0 {
				ids = append(ids, *k)
			}
			n[*k]++
		}
	}
	for _, k := range ids {
		args := []any{n[k]}
		if extra != nil {
			args = append(args, extra)
		}
		if _, err := tx.Exec(ctx, update, append(args, k)...); err != nil {
			return err
		}
	}
	return nil
}

// insertRows inserts the drafts' rows with one statement and sets each
// message's community-wide cursor.
func insertRows(ctx context.Context, tx *db.Tx, drafts []*draft, createdAt int64) error {
	args := make([]any, 0, 12*len(drafts))
	byID := make(map[string]*draft, len(drafts))
	for _, d := range drafts {
		o := d.out
		args = append(args, o.ID, d.c.community, d.c.id, o.Sequence, d.m.ID, o.Message, o.ForumTopicID, o.ReplyTo, o.ThreadID,
			encode(o.Attachments), encode(o.Mentions), createdAt)
		byID[o.ID] = d
	}
	q := `INSERT INTO messages (id, community_id, channel_id, channel_seq, user_id, body, forum_topic_id,
		reply_to, thread_id, attachments, mentions, created_at) VALUES ` + db.ValueRows(len(drafts), 12) + " RETURNING id, seq"
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("insert messages: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			mid string
			seq int64
		)
		if err := rows.Scan(&mid, &seq); err != nil {
			return fmt.Errorf("insert messages: %w", err)
		}
		if d := byID[mid]; d != nil {
			d.out.seq = seq
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("insert messages: %w", err)
	}
	return nil
}
