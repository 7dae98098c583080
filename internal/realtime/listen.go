package realtime

import (
	"context"
	"encoding/json"
	"time"

	"github.com/rallyhq/rally/internal/event"
)

// typingChannel is the PostgreSQL NOTIFY channel typing notices cross
// nodes on.
const typingChannel = "rally_typing"

// typingNote is a typing notice on its way to other nodes.
type typingNote struct {
	Node      string          `json:"n"`
	Community string          `json:"c"`
	Channel   string          `json:"ch"`
	Frame     json.RawMessage `json:"f"`
}

// listen holds one PostgreSQL connection LISTENing for other nodes' event
// commits and typing notices, reconnecting after failures; after each
// (re)connect every tracked community is read again, so nothing committed
// while it was not listening waits for the fallback poll.
func (h *Hub) listen() {
	defer h.loops.Done()
	for h.ctx.Err() == nil {
		if err := h.listenOnce(); err != nil && h.ctx.Err() == nil {
			h.log.Warn("realtime: listen for events", "error", err)
			select {
			case <-h.ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (h *Hub) listenOnce() error {
	pc, err := h.db.Pool.Acquire(h.ctx)
	if err != nil {
		return err
	}
	// The connection leaves the pool: LISTEN state must not be handed to
	// other users, and it is closed when listening ends.
	conn := pc.Hijack()
	defer conn.Close(context.Background())
	for _, ch := range []string{event.NotifyChannel, typingChannel} {
		if _, err := conn.Exec(h.ctx, "LISTEN "+ch); err != nil {
			return err
		}
	}
	h.markAll()
	for {
		n, err := conn.WaitForNotification(h.ctx)
		if err != nil {
			return err
		}
		switch n.Channel {
		case event.NotifyChannel:
			h.Notify(n.Payload)
		case typingChannel:
			var note typingNote
			if json.Unmarshal([]byte(n.Payload), &note) != nil || note.Node == h.node {
				continue
			}
			h.mu.Lock()
			comm := h.communities[note.Community]
			h.mu.Unlock()
			if comm != nil {
				h.typingLocal(comm, note.Channel, note.Frame, nil)
			}
		}
	}
}

// publishTyping sends a typing notice to the other nodes (PostgreSQL only;
// SQLite has one node).
func (h *Hub) publishTyping(communityID, channelID string, frame []byte) {
	if h.db.Pool == nil {
		return
	}
	note := encode(typingNote{Node: h.node, Community: communityID, Channel: channelID, Frame: frame})
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.WriteTimeout)
	defer cancel()
	if _, err := h.db.Exec(ctx, "SELECT pg_notify(?, ?)", typingChannel, string(note)); err != nil && h.ctx.Err() == nil {
		h.log.Warn("realtime: publish typing", "error", err)
	}
}
