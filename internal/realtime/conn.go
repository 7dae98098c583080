package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/message"
)

// Close statuses the server uses.
const (
	statusGoingAway     = websocket.StatusGoingAway
	statusPolicy        = websocket.StatusPolicyViolation
	statusTryAgain      = websocket.StatusTryAgainLater
	statusInternalError = websocket.StatusInternalError
)

// typingEvery bounds how often one connection's typing notices for a
// channel are passed on.
const typingEvery = time.Second

// replayPage bounds the events read at once while resuming.
const replayPage = 200

// Client is an authenticated connection's identity, as the HTTP layer
// established it before the upgrade.
type Client struct {
	// Actor is who reads: a member (UserID, a user key's Channels) or a
	// community key (Partner).
	Actor message.Actor
	// Author is the member as typing notices name it (zero for a key).
	Author message.Author
	// Recheck validates the connection's credential again (a revoked
	// session or key, a member who left); an errs Unauthenticated,
	// Forbidden or NotFound error closes the connection.
	Recheck func(ctx context.Context) error
	// LastEventID, when set, resumes the connection's first subscribe that
	// names no lastEventId of its own.
	LastEventID *int64
}

type itemKind int

const (
	itemEvent itemKind = iota
	itemRaw
	itemReplay
	itemTyping
	itemRecheck
	itemClose
)

// item is one unit of a connection's send queue, written in order by the
// connection's writer.
type item struct {
	kind    itemKind
	seq     int64
	channel string
	frame   []byte
	// replay: events after after up to upTo, of channels (or all).
	after, upTo int64
	channels    []string
	all         bool
	// ftype is the frame's type (raw and event items); it fills padding
	// after all, so queued items do not grow.
	ftype frameKind
	// close: status and reason.
	code   websocket.StatusCode
	reason string
}

// permEntry is a cached read-permission answer: given at, under the
// community's permission generation gen, due for a refresh after refresh.
type permEntry struct {
	ok      bool
	gen     uint64
	at      time.Time
	refresh time.Duration
}

// conn is one WebSocket connection.
type conn struct {
	h           *Hub
	ws          *websocket.Conn
	cl          Client
	communityID string
	comm        *community
	queue       chan item
	ctx         context.Context
	cancel      context.CancelFunc
	dead        chan struct{}
	killOnce    sync.Once
	dropOnce    sync.Once
	closed      sync.WaitGroup
	recheckSent atomic.Bool
	// sent counts the frames written, by type: the connection's own
	// counters, so writers on many cores never share one (Hub.Metrics sums
	// them).
	sent [numFrameKinds]atomic.Uint64

	// mu guards the subscriptions; with comm.mu, comm.mu comes first.
	mu sync.Mutex
	// subs maps each subscribed channel to the event id its live frames
	// start after; all (community keys) watches every channel after allFrom.
	subs    map[string]int64
	all     bool
	allFrom int64

	// perms is the writer's permission cache.
	perms map[string]permEntry
	// resume and typed belong to the reader.
	resume *int64
	typed  map[string]time.Time
}

// Serve upgrades the request to a WebSocket for cl and runs the connection
// until it ends. The caller has authenticated and authorised the request,
// checked the handshake headers, and checked the browser origin when the
// credential is one a browser sends by itself (a cookie): Serve accepts any
// origin.
func (h *Hub) Serve(w http.ResponseWriter, r *http.Request, cl Client) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	ws.SetReadLimit(h.cfg.MaxFrameBytes)
	c := &conn{
		h: h, ws: ws, cl: cl, communityID: cl.Actor.CommunityID,
		queue: make(chan item, h.cfg.SendBuffer), dead: make(chan struct{}),
		subs: map[string]int64{}, perms: map[string]permEntry{}, typed: map[string]time.Time{}, resume: cl.LastEventID,
	}
	c.ctx, c.cancel = context.WithCancel(h.ctx)
	defer c.cancel()
	if !h.attach(c) {
		ws.Close(statusGoingAway, "server shutting down")
		return
	}
	var loops sync.WaitGroup
	loops.Add(2)
	go func() { defer loops.Done(); c.writeLoop() }()
	go func() { defer loops.Done(); c.pingLoop() }()
	c.readLoop()
	c.kill(websocket.StatusNormalClosure, "")
	loops.Wait()
	c.closed.Wait()
	h.detach(c)
}

// push queues it without waiting; a full queue means the client reads too
// slowly, and it is dropped rather than holding the others back.
func (c *conn) push(it item) {
	select {
	case c.queue <- it:
	default:
		c.dropOnce.Do(func() {
			c.h.dropped.Add(1)
			c.kill(statusTryAgain, "too slow: send buffer full")
		})
	}
}

// kill closes the connection once, with code and reason (sent when the
// client still reads), and stops its goroutines. Code 0 cuts the
// connection without a closing handshake (a peer that stopped answering).
func (c *conn) kill(code websocket.StatusCode, reason string) {
	c.killOnce.Do(func() {
		close(c.dead)
		c.closed.Add(1)
		go func() {
			defer c.closed.Done()
			if code == 0 {
				_ = c.ws.CloseNow()
			} else {
				_ = c.ws.Close(code, reason)
			}
			c.cancel()
		}()
	})
}

// readLoop reads client frames until the connection ends.
func (c *conn) readLoop() {
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			c.push(errItem(CodeBadFrame, "Send JSON text frames.", ""))
			continue
		}
		var f clientFrame
		if err := json.Unmarshal(data, &f); err != nil {
			c.push(errItem(CodeBadFrame, "The frame is not valid JSON: "+err.Error(), ""))
			continue
		}
		switch f.Type {
		case "subscribe":
			c.subscribe(f)
		case "unsubscribe":
			c.unsubscribe(f)
		case "typing":
			c.typing(f)
		case "ping":
			c.push(item{kind: itemRaw, ftype: kindPong, frame: encode(map[string]string{"type": FramePong})})
		default:
			c.push(errItem(CodeBadFrame, "Unknown frame type "+quote(f.Type)+
				": send subscribe, unsubscribe, typing or ping.", ""))
		}
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// channelIDs normalises a frame's channel ids, dropping repeats.
func channelIDs(in []string) ([]string, bool) {
	seen := map[string]bool{}
	out := make([]string, 0, len(in))
	for _, id := range in {
		id = strings.ToLower(strings.TrimSpace(id))
		if id == "" {
			return nil, false
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, true
}

// subscribe adds the frame's channels the client may read, reporting each
// refused one in an error frame, and resumes from lastEventId when given.
func (c *conn) subscribe(f clientFrame) {
	last := f.LastEventID
	if last == nil {
		last = c.resume
	}
	c.resume = nil
	ids, ok := channelIDs(f.Channels)
	switch {
	case !ok:
		c.push(errItem(CodeBadFrame, "channels must hold channel ids.", ""))
		return
	case len(ids) == 0 && !f.All:
		c.push(errItem(CodeBadFrame, "channels is required: the ids of the channels to follow.", ""))
		return
	case last != nil && *last < 0:
		c.push(errItem(CodeBadFrame, "lastEventId must be an event id of at least 0.", ""))
		return
	case f.All && !c.cl.Actor.Partner:
		c.push(errItem(CodeForbidden, "Only a community API key may follow every channel.", ""))
		return
	}
	c.mu.Lock()
	fresh := ids[:0:0]
	for _, id := range ids {
		if _, dup := c.subs[id]; !dup {
			fresh = append(fresh, id)
		}
	}
	count := len(c.subs)
	c.mu.Unlock()
	if count+len(fresh) > c.h.cfg.MaxSubscriptions {
		c.push(errItem(CodeTooMany, "A connection follows at most "+itoa(c.h.cfg.MaxSubscriptions)+
			" channels; nothing in this frame was subscribed.", ""))
		return
	}
	accepted := make([]string, 0, len(fresh))
	for _, id := range fresh {
		err := c.h.access.CanRead(c.ctx, c.cl.Actor, id)
		switch errs.KindOf(err) {
		case errs.Internal:
			if err == nil {
				accepted = append(accepted, id)
				continue
			}
			if c.ctx.Err() == nil {
				c.h.log.Warn("realtime: check channel access", "community", c.communityID, "channel", id, "error", err)
			}
			c.push(item{kind: itemClose, code: statusInternalError, reason: "cannot check channel access"})
			return
		case errs.NotFound:
			c.push(errItem(CodeNotFound, "Channel not found.", id))
		default:
			c.push(errItem(CodeForbidden, "You cannot read this channel.", id))
		}
	}
	c.h.register(c, accepted, f.All, last)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// register records the subscriptions at the community's cursor, so live
// frames follow the acknowledgement with no gap and no repeat, and queues
// the replay of what the client missed after last.
func (h *Hub) register(c *conn, ids []string, all bool, last *int64) {
	comm := c.comm
	comm.mu.Lock()
	defer comm.mu.Unlock()
	head := comm.cursor
	from := head
	if last != nil && *last > head {
		// The client saw events this node has not fanned out yet: skip
		// them rather than send them twice.
		from = *last
	}
	c.mu.Lock()
	added := int64(0)
	for _, id := range ids {
		set := comm.channels[id]
		if set == nil {
			set = map[*conn]struct{}{}
			comm.channels[id] = set
		}
		set[c] = struct{}{}
		if _, dup := c.subs[id]; !dup {
			added++
		}
		c.subs[id] = from
	}
	if all {
		comm.all[c] = struct{}{}
		if !c.all {
			added++
		}
		c.all, c.allFrom = true, from
	}
	c.mu.Unlock()
	h.subscriptions.Add(added)
	c.push(item{kind: itemRaw, ftype: kindSubscribed, frame: encode(subscribedFrame{Type: FrameSubscribed, Channels: ids, All: all, EventID: from})})
	if last != nil && *last < head && (len(ids) > 0 || all) {
		c.push(item{kind: itemReplay, after: *last, upTo: head, channels: ids, all: all})
	}
}

// unsubscribe drops the frame's channels (every subscription with all).
func (c *conn) unsubscribe(f clientFrame) {
	ids, ok := channelIDs(f.Channels)
	if !ok || (len(ids) == 0 && !f.All) {
		c.push(errItem(CodeBadFrame, "channels is required: the ids of the channels to stop following.", ""))
		return
	}
	comm := c.comm
	comm.mu.Lock()
	defer comm.mu.Unlock()
	c.mu.Lock()
	if f.All {
		ids = ids[:0]
		for id := range c.subs {
			ids = append(ids, id)
		}
		delete(comm.all, c)
		if c.all {
			c.h.subscriptions.Add(-1)
		}
		c.all = false
	}
	removed := make([]string, 0, len(ids))
	for _, id := range ids {
		if _, ok := c.subs[id]; ok {
			c.unsubscribeLocked(id)
			removed = append(removed, id)
		}
	}
	c.mu.Unlock()
	c.push(item{kind: itemRaw, ftype: kindUnsubscribed, frame: encode(subscribedFrame{Type: FrameUnsubscribed, Channels: removed, All: f.All})})
}

// unsubscribeLocked drops one channel; comm.mu and c.mu are held.
func (c *conn) unsubscribeLocked(id string) {
	delete(c.subs, id)
	c.h.subscriptions.Add(-1)
	if set := c.comm.channels[id]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(c.comm.channels, id)
		}
	}
}

// typing passes a member's typing notice to the channel's other
// subscribers, at most once a second per channel.
func (c *conn) typing(f clientFrame) {
	id := strings.ToLower(strings.TrimSpace(f.ChannelID))
	if c.cl.Actor.Partner || c.cl.Actor.UserID == "" {
		c.push(errItem(CodeForbidden, "Typing notices come from members, not API keys.", id))
		return
	}
	c.mu.Lock()
	_, subscribed := c.subs[id]
	c.mu.Unlock()
	if !subscribed {
		c.push(errItem(CodeNotSubscribed, "Subscribe to a channel before typing in it.", id))
		return
	}
	now := time.Now()
	if now.Sub(c.typed[id]) < typingEvery {
		return
	}
	c.typed[id] = now
	frame := encode(typingFrame{Type: FrameTyping, ChannelID: id, User: c.cl.Author, At: clock.Format(now)})
	c.h.typingLocal(c.comm, id, frame, c)
	c.h.publishTyping(c.communityID, id, frame)
}

// typingLocal hands a typing frame to this node's subscribers of the
// channel, except its sender.
func (h *Hub) typingLocal(comm *community, channelID string, frame []byte, sender *conn) {
	comm.mu.Lock()
	defer comm.mu.Unlock()
	it := item{kind: itemTyping, channel: channelID, frame: frame}
	for cn := range comm.channels[channelID] {
		if cn != sender {
			cn.push(it)
		}
	}
	for cn := range comm.all {
		if _, dup := comm.channels[channelID][cn]; !dup && cn != sender {
			cn.push(it)
		}
	}
}

// pingLoop pings the client every PingInterval; one that does not answer
// within the interval is cut (it would not answer a closing handshake
// either). Each ping also re-validates the
// credential.
func (c *conn) pingLoop() {
	t := time.NewTicker(c.h.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.dead:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.h.cfg.PingInterval)
		err := c.ws.Ping(ctx)
		cancel()
		if err != nil {
			c.kill(0, "")
			return
		}
		c.requestRecheck()
	}
}

// requestRecheck queues one credential check (repeats fold into one).
func (c *conn) requestRecheck() {
	if c.recheckSent.CompareAndSwap(false, true) {
		c.push(item{kind: itemRecheck})
	}
}

// writeLoop writes the queue in order until the connection ends.
func (c *conn) writeLoop() {
	for {
		select {
		case <-c.dead:
			return
		case it := <-c.queue:
			if err := c.handle(it); err != nil {
				if c.ctx.Err() == nil && !errors.Is(err, errClosing) {
					c.h.log.Warn("realtime: connection failed", "community", c.communityID, "error", err)
				}
				c.kill(statusInternalError, "internal error")
				return
			}
		}
	}
}

// errClosing stops the writer after it queued a close itself.
var errClosing = errors.New("connection closing")

func (c *conn) handle(it item) error {
	switch it.kind {
	case itemRaw:
		return c.write(it.ftype, it.frame)
	case itemEvent:
		return c.deliver(it.seq, it.channel, it.ftype, it.frame, false)
	case itemTyping:
		return c.deliver(0, it.channel, kindTyping, it.frame, true)
	case itemReplay:
		return c.replay(it)
	case itemRecheck:
		return c.recheck(it)
	case itemClose:
		c.kill(it.code, it.reason)
		return errClosing
	}
	return nil
}

// write writes one frame of type k and counts it.
func (c *conn) write(k frameKind, frame []byte) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.h.cfg.WriteTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, frame); err != nil {
		return err
	}
	c.sent[k].Add(1)
	return nil
}

// deliver writes a channel's frame when the connection still follows the
// channel (past the subscription's start, unless replaying or typing) and
// may still read it.
func (c *conn) deliver(seq int64, channelID string, k frameKind, frame []byte, anySeq bool) error {
	c.mu.Lock()
	from, sub := c.subs[channelID]
	viaAll := c.all && (anySeq || seq > c.allFrom)
	c.mu.Unlock()
	if !viaAll && (!sub || (!anySeq && seq <= from)) {
		return nil
	}
	if viaAll {
		return c.write(k, frame)
	}
	ok, aging, err := c.mayRead(channelID)
	if err != nil {
		return err
	}
	if !ok {
		return c.revoke(channelID)
	}
	if err := c.write(k, frame); err != nil {
		return err
	}
	if aging {
		// Refresh an answer past half its life after writing, so a busy
		// channel's frames rarely wait for a check.
		if ok, err = c.check(channelID); err != nil {
			return err
		}
		if !ok {
			return c.revoke(channelID)
		}
	}
	return nil
}

// mayRead tells whether the actor may read the channel, reusing an answer
// for at most PermissionTTL and never across a permission change of the
// community; aging says the answer is old enough to be refreshed.
func (c *conn) mayRead(channelID string) (ok, aging bool, err error) {
	if e, hit := c.perms[channelID]; hit && e.gen == c.comm.gen.Load() {
		age := time.Since(e.at)
		if age < c.h.cfg.PermissionTTL {
			return e.ok, age >= e.refresh, nil
		}
	}
	ok, err = c.check(channelID)
	return ok, false, err
}

// check asks whether the actor may read the channel now and caches the
// answer.
func (c *conn) check(channelID string) (bool, error) {
	gen := c.comm.gen.Load()
	at := time.Now()
	err := c.h.access.CanRead(c.ctx, c.cl.Actor, channelID)
	if k := errs.KindOf(err); err != nil && k != errs.Forbidden && k != errs.NotFound {
		return false, err
	}
	// Refreshes fall at a random point of the answer's second quarter, so
	// many connections do not all check on the same frame.
	ttl := c.h.cfg.PermissionTTL
	c.perms[channelID] = permEntry{ok: err == nil, gen: gen, at: at, refresh: ttl/4 + rand.N(ttl/4+1)}
	return err == nil, nil
}

// revoke ends a subscription the actor may no longer read and tells the
// client.
func (c *conn) revoke(channelID string) error {
	comm := c.comm
	comm.mu.Lock()
	c.mu.Lock()
	_, sub := c.subs[channelID]
	if sub {
		c.unsubscribeLocked(channelID)
	}
	c.mu.Unlock()
	comm.mu.Unlock()
	if !sub {
		return nil
	}
	return c.write(kindUnsubscribed, encode(subscribedFrame{Type: FrameUnsubscribed, Channels: []string{channelID}, Reason: "forbidden"}))
}

// replay writes the events after it.after up to it.upTo of the channels
// just subscribed, or says they are gone when the outbox no longer holds
// them all.
func (c *conn) replay(it item) error {
	want := make(map[string]bool, len(it.channels))
	for _, id := range it.channels {
		want[id] = true
	}
	pos := it.after
	for {
		events, err := readEvents(c.ctx, c.h.db, c.communityID, pos, it.upTo, replayPage)
		if err != nil {
			return err
		}
		// The horizon is read after the page: a prune that committed before
		// the page was read shows here, so no missing event goes unnoticed.
		horizon, err := event.Horizon(c.ctx, c.h.db, c.communityID)
		if err != nil {
			return err
		}
		if pos < horizon {
			return c.write(kindResumeExpired, encode(expiredFrame{Type: FrameResumeExpired, LastEventID: it.after, EventID: it.upTo, Channels: it.channels,
				Message: "Events after lastEventId are no longer kept: fetch the channels' messages again with Get Messages."}))
		}
		if len(events) == 0 {
			return nil
		}
		for _, e := range events {
			f, ok := eventFrameOf(e)
			if !ok || (!it.all && !want[f.channel]) {
				continue
			}
			if err := c.deliver(e.Seq, f.channel, f.kind, f.bytes, true); err != nil {
				return err
			}
		}
		pos = events[len(events)-1].Seq
		if pos >= it.upTo {
			return nil
		}
	}
}

// recheck validates the credential again and closes the connection when it
// no longer holds.
func (c *conn) recheck(item) error {
	c.recheckSent.Store(false)
	if c.cl.Recheck == nil {
		return nil
	}
	err := c.cl.Recheck(c.ctx)
	switch errs.KindOf(err) {
	case errs.Internal:
		if err != nil && c.ctx.Err() == nil {
			c.h.log.Warn("realtime: recheck credential", "community", c.communityID, "error", err)
		}
		return nil
	default:
		c.kill(statusPolicy, "credentials no longer valid")
		return errClosing
	}
}
