// Package realtime is Rally's live message stream: clients hold a WebSocket,
// subscribe to channels and receive message, edit, deletion, reaction and
// typing frames as they happen.
//
// Every node tails the event outbox (table events) itself, so a message
// written through any node reaches clients connected to any other. The tail
// is kept per community, because within one community the outbox sequence is
// commit order (Append takes a per-community lock) while across communities
// it is not on PostgreSQL. Wake-ups come from this process's commits
// (event.Outbox.OnCommit), from PostgreSQL NOTIFY (other nodes' commits) and
// from a fallback poll.
//
// Each frame a member receives is checked against its current read
// permission on the channel; the answer is cached per connection for at most
// Config.PermissionTTL and forgotten at once when the community's outbox
// shows a permission change (roles, assignments, channels, membership,
// sessions, keys), which the tail sees before any later message.
package realtime

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/message"
)

// Defaults applied to zero Config fields.
const (
	DefaultPingInterval     = 30 * time.Second
	DefaultSendBuffer       = 256
	DefaultMaxSubscriptions = 500
	DefaultMaxFrameBytes    = 64 << 10
	DefaultPollInterval     = time.Second
	DefaultPermissionTTL    = time.Second
	DefaultWriteTimeout     = 10 * time.Second
	// batchSize bounds the events read from the outbox at once.
	batchSize = 500
)

// Config tunes the hub; zero fields take the defaults.
type Config struct {
	// PingInterval is how often a connection is pinged; one that does not
	// answer within the interval is closed.
	PingInterval time.Duration
	// SendBuffer is how many frames may wait for a slow client before it is
	// dropped (closed with 1013, try again later).
	SendBuffer int
	// MaxSubscriptions bounds one connection's channel subscriptions.
	MaxSubscriptions int
	// MaxFrameBytes bounds a client frame.
	MaxFrameBytes int64
	// PollInterval is the fallback poll of the outbox, for commits no
	// notification announced.
	PollInterval time.Duration
	// PermissionTTL bounds how long a read-permission answer is reused.
	PermissionTTL time.Duration
	// WriteTimeout bounds writing one frame.
	WriteTimeout time.Duration
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.PingInterval, DefaultPingInterval)
	def(&c.PollInterval, DefaultPollInterval)
	def(&c.PermissionTTL, DefaultPermissionTTL)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	if c.SendBuffer <= 0 {
		c.SendBuffer = DefaultSendBuffer
	}
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	return c
}

// Access decides who may read a channel (message.Service implements it).
type Access interface {
	// CanRead returns nil when a may read channelID, an errs NotFound or
	// Forbidden error when it may not.
	CanRead(ctx context.Context, a message.Actor, channelID string) error
}

// Deps is what a Hub needs.
type Deps struct {
	DB *db.DB
	// Outbox announces this process's commits.
	Outbox *event.Outbox
	Access Access
	// Logger receives connection and tail errors; nil discards them.
	Logger *slog.Logger
	Config Config
}

// Hub fans outbox events out to this node's WebSocket connections.
type Hub struct {
	db     *db.DB
	access Access
	log    *slog.Logger
	cfg    Config
	// node tells this node's typing notices from other nodes'.
	node string

	mu          sync.Mutex
	communities map[string]*community
	dirty       map[string]bool
	conns       map[*conn]struct{}
	closing     bool
	wake        chan struct{}

	ctx     context.Context
	cancel  context.CancelFunc
	started bool
	loops   sync.WaitGroup
	clients sync.WaitGroup
	// live counts open connections, opened every connection attached,
	// dropped the slow clients dropped, subscriptions the open connections'
	// channel subscriptions (following every channel counts as one).
	live          atomic.Int64
	opened        atomic.Uint64
	dropped       atomic.Int64
	subscriptions atomic.Int64
	// sentClosed sums the frames written by closed connections, by type;
	// open ones count their own (conn.sent). Both change under mu.
	sentClosed [numFrameKinds]uint64
}

// community is the tail and the subscriptions of one community on this node.
type community struct {
	id string
	// gen changes when a permission-relevant event passes: cached read
	// permissions of an older generation are checked again.
	gen atomic.Uint64

	mu     sync.Mutex
	inited bool
	gone   bool
	// cursor is the last outbox sequence fanned out.
	cursor int64
	// channels maps a channel to its subscribed connections; all holds the
	// community keys watching every channel.
	channels map[string]map[*conn]struct{}
	all      map[*conn]struct{}
	// members are every connection of the community, subscribed or not.
	members map[*conn]struct{}
	// conns counts members under Hub.mu, which decides when to stop
	// tailing the community.
	conns int
}

// New returns a hub; Start runs its tail.
func New(deps Deps) *Hub {
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{
		db: deps.DB, access: deps.Access, log: log, cfg: deps.Config.withDefaults(), node: id.New(time.Now()),
		communities: map[string]*community{}, dirty: map[string]bool{}, conns: map[*conn]struct{}{},
		wake: make(chan struct{}, 1),
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	if deps.Outbox != nil {
		deps.Outbox.OnCommit(h.Notify)
	}
	return h
}

// Start runs the outbox tail (and, on PostgreSQL, the NOTIFY listener) until
// Stop.
func (h *Hub) Start(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started || h.closing {
		return errors.New("start realtime hub: already started or stopped")
	}
	h.started = true
	h.loops.Add(1)
	go h.run()
	if h.db.Dialect == db.Postgres && h.db.Pool != nil {
		h.loops.Add(1)
		go h.listen()
	}
	return nil
}

// Stop closes every connection with 1001 (going away), stops the tail and
// waits, bounded by ctx, for the connections' goroutines to end.
func (h *Hub) Stop(ctx context.Context) error {
	h.mu.Lock()
	h.closing = true
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.kill(statusGoingAway, "server shutting down")
	}
	// The connections' contexts end only once they closed (or ctx ran
	// out): ending them earlier would cut the connections before their
	// close frames go out.
	wait := func(wg *sync.WaitGroup) error {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("stop realtime hub: %w", ctx.Err())
		}
	}
	err := wait(&h.clients)
	h.cancel()
	return errors.Join(err, wait(&h.loops))
}

// Connections returns how many WebSocket connections this node holds.
func (h *Hub) Connections() int { return int(h.live.Load()) }

// Dropped returns how many slow clients this node has dropped.
func (h *Hub) Dropped() int { return int(h.dropped.Load()) }

// Notify tells the hub that communityID has new events in the outbox.
func (h *Hub) Notify(communityID string) {
	h.mu.Lock()
	if _, ok := h.communities[communityID]; ok {
		h.dirty[communityID] = true
	}
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// markAll marks every tracked community for a read of the outbox.
func (h *Hub) markAll() {
	h.mu.Lock()
	for id := range h.communities {
		h.dirty[id] = true
	}
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// run is the tail: on every wake-up or poll it reads each marked
// community's new events and fans them out.
func (h *Hub) run() {
	defer h.loops.Done()
	tick := time.NewTicker(h.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-h.wake:
		case <-tick.C:
			h.markAll()
			continue
		}
		h.mu.Lock()
		var todo []*community
		for cid := range h.dirty {
			if c := h.communities[cid]; c != nil {
				todo = append(todo, c)
			}
		}
		clear(h.dirty)
		h.mu.Unlock()
		for _, c := range todo {
			if err := h.pump(c); err != nil && h.ctx.Err() == nil {
				h.log.Warn("realtime: read outbox", "community", c.id, "error", err)
			}
		}
	}
}

// pump fans out the community's events past its cursor.
func (h *Hub) pump(c *community) error {
	for {
		c.mu.Lock()
		from, ok := c.cursor, c.inited && !c.gone
		c.mu.Unlock()
		if !ok {
			return nil
		}
		events, err := readEvents(h.ctx, h.db, c.id, from, 0, batchSize)
		if err != nil {
			return err
		}
		if len(events) == 0 {
			return nil
		}
		c.mu.Lock()
		for _, e := range events {
			h.fanOut(c, e)
		}
		c.cursor = events[len(events)-1].Seq
		c.mu.Unlock()
		if len(events) < batchSize {
			return nil
		}
	}
}

// fanOut hands e to the community's subscribers of its channel; c.mu is
// held.
func (h *Hub) fanOut(c *community, e event.Event) {
	if permissionEvent(e.Type) {
		c.gen.Add(1)
	}
	if credentialEvent(e.Type) {
		for cn := range c.members {
			cn.requestRecheck()
		}
	}
	f, ok := eventFrameOf(e)
	if !ok {
		return
	}
	it := item{kind: itemEvent, ftype: f.kind, seq: e.Seq, channel: f.channel, frame: f.bytes}
	for cn := range c.channels[f.channel] {
		cn.push(it)
	}
	for cn := range c.all {
		if _, dup := c.channels[f.channel][cn]; !dup {
			cn.push(it)
		}
	}
}

// builtFrame is an event frame encoded once for every recipient.
type builtFrame struct {
	kind    frameKind
	channel string
	bytes   []byte
}

// eventFrameOf encodes e as a stream frame; false for events that are not
// streamed.
func eventFrameOf(e event.Event) (builtFrame, bool) {
	kind, ok := frameTypes[e.Type]
	if !ok {
		return builtFrame{}, false
	}
	ch := channelOf(e.Payload)
	if ch == "" {
		return builtFrame{}, false
	}
	// The payload is JSON the outbox wrote: it is spliced in as it is
	// rather than re-encoded, which would scan every message again.
	head := encode(eventFrame{Type: frameKindNames[kind], EventID: e.Seq, ChannelID: ch, OccurredAt: clock.Format(e.OccurredAt)})
	b := make([]byte, 0, len(head)+len(e.Payload)+10)
	b = append(b, head[:len(head)-1]...)
	b = append(b, `,"data":`...)
	b = append(b, e.Payload...)
	b = append(b, '}')
	return builtFrame{kind: kind, channel: ch, bytes: b}, true
}

// attach registers c with its community, reading the community's head
// first when this node had no connection there, and greets it. It reports
// false when the hub is closing.
func (h *Hub) attach(cn *conn) bool {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return false
	}
	c := h.communities[cn.communityID]
	if c == nil {
		c = &community{id: cn.communityID, channels: map[string]map[*conn]struct{}{}, all: map[*conn]struct{}{},
			members: map[*conn]struct{}{}}
		h.communities[cn.communityID] = c
	}
	c.conns++
	h.conns[cn] = struct{}{}
	h.clients.Add(1)
	h.live.Add(1)
	h.opened.Add(1)
	h.mu.Unlock()
	cn.comm = c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members[cn] = struct{}{}
	if !c.inited {
		head, err := headSeq(h.ctx, h.db, c.id)
		if err != nil {
			h.log.Warn("realtime: read outbox head", "community", c.id, "error", err)
			cn.push(item{kind: itemClose, code: statusInternalError, reason: "cannot read the event stream"})
			return true
		}
		c.cursor, c.inited = head, true
	}
	cn.push(item{kind: itemRaw, ftype: kindReady, frame: encode(readyFrame{Type: FrameReady, CommunityID: c.id, EventID: c.cursor,
		MaxSubscriptions: h.cfg.MaxSubscriptions})})
	return true
}

// detach forgets cn; a community without connections stops being tailed.
func (h *Hub) detach(cn *conn) {
	c := cn.comm
	c.mu.Lock()
	for ch := range cn.subs {
		delete(c.channels[ch], cn)
		if len(c.channels[ch]) == 0 {
			delete(c.channels, ch)
		}
	}
	delete(c.all, cn)
	delete(c.members, cn)
	c.mu.Unlock()
	gone := int64(len(cn.subs))
	if cn.all {
		gone++
	}
	h.subscriptions.Add(-gone)
	h.mu.Lock()
	delete(h.conns, cn)
	for k := range cn.sent {
		h.sentClosed[k] += cn.sent[k].Load()
	}
	c.conns--
	if c.conns == 0 {
		delete(h.communities, c.id)
		delete(h.dirty, c.id)
		c.mu.Lock()
		c.gone = true
		c.mu.Unlock()
	}
	h.mu.Unlock()
	h.live.Add(-1)
	h.clients.Done()
}

// headSeq returns the community's newest committed outbox sequence (0 when
// it has none). Within a community no event can still commit below it.
func headSeq(ctx context.Context, d *db.DB, communityID string) (int64, error) {
	var head sql.NullInt64
	if err := d.QueryRow(ctx, "SELECT MAX(seq) FROM events WHERE community_id = ?", communityID).Scan(&head); err != nil {
		return 0, fmt.Errorf("read outbox head of %s: %w", communityID, err)
	}
	return head.Int64, nil
}

// readEvents returns up to limit of the community's events after seq
// after (and up to seq upTo when upTo > 0), in order.
func readEvents(ctx context.Context, d *db.DB, communityID string, after, upTo int64, limit int) ([]event.Event, error) {
	q := "SELECT seq, id, type, payload, occurred_at FROM events WHERE community_id = ? AND seq > ?"
	args := []any{communityID, after}
	if upTo > 0 {
		q += " AND seq <= ?"
		args = append(args, upTo)
	}
	q += " ORDER BY seq LIMIT ?"
	args = append(args, limit)
	rows, err := d.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read outbox of %s: %w", communityID, err)
	}
	defer rows.Close()
	var out []event.Event
	for rows.Next() {
		var (
			e       event.Event
			payload string
			at      int64
		)
		if err := rows.Scan(&e.Seq, &e.ID, &e.Type, &payload, &at); err != nil {
			return nil, fmt.Errorf("read outbox of %s: %w", communityID, err)
		}
		e.CommunityID, e.Payload, e.OccurredAt = communityID, []byte(payload), time.UnixMilli(at).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox of %s: %w", communityID, err)
	}
	return out, nil
}
