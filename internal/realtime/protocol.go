package realtime

import (
	"encoding/json"
	"strings"

	"github.com/rallyhq/rally/internal/message"
)

// Frame types the server sends. Event frames carry the outbox sequence as
// eventId; a client keeps the highest eventId it has seen (event frames,
// "ready" and "subscribed" alike) and sends it back as lastEventId to resume.
const (
	FrameReady          = "ready"
	FrameSubscribed     = "subscribed"
	FrameUnsubscribed   = "unsubscribed"
	FrameMessagePosted  = "message.posted"
	FrameMessageEdited  = "message.edited"
	FrameMessageDeleted = "message.deleted"
	FrameReactionAdded  = "reaction.added"
	FrameReactionRemove = "reaction.removed"
	FrameTyping         = "typing"
	FrameResumeExpired  = "resume.expired"
	FrameError          = "error"
	FramePong           = "pong"
)

// Error codes of error frames.
const (
	CodeBadFrame      = "bad_frame"
	CodeForbidden     = "forbidden"
	CodeNotFound      = "not_found"
	CodeTooMany       = "too_many_subscriptions"
	CodeNotSubscribed = "not_subscribed"
)

// frameKind indexes the frame types the server sends, so frames are
// counted per type (Hub.Metrics) without a map lookup or a label lookup.
type frameKind uint8

const (
	kindReady frameKind = iota
	kindSubscribed
	kindUnsubscribed
	kindMessagePosted
	kindMessageEdited
	kindMessageDeleted
	kindReactionAdded
	kindReactionRemoved
	kindTyping
	kindResumeExpired
	kindError
	kindPong
	numFrameKinds
)

// frameKindNames are the frame types by kind.
var frameKindNames = [numFrameKinds]string{
	kindReady: FrameReady, kindSubscribed: FrameSubscribed, kindUnsubscribed: FrameUnsubscribed,
	kindMessagePosted: FrameMessagePosted, kindMessageEdited: FrameMessageEdited, kindMessageDeleted: FrameMessageDeleted,
	kindReactionAdded: FrameReactionAdded, kindReactionRemoved: FrameReactionRemove, kindTyping: FrameTyping,
	kindResumeExpired: FrameResumeExpired, kindError: FrameError, kindPong: FramePong,
}

// frameTypes maps the outbox's message event types to the frames the
// stream sends; other events are not streamed (channel.message.posted
// repeats message.posted).
var frameTypes = map[string]frameKind{
	message.EventPosted:    kindMessagePosted,
	message.EventEdited:    kindMessageEdited,
	message.EventDeleted:   kindMessageDeleted,
	message.EventReacted:   kindReactionAdded,
	message.EventUnreacted: kindReactionRemoved,
}

// permissionEvents are the event types after which every cached read
// permission of the community is checked again before the next frame: role
// changes and assignments, channel changes and deletion, membership changes,
// revoked sessions and changed keys.
func permissionEvent(typ string) bool {
	switch {
	case strings.HasPrefix(typ, "role."), strings.HasPrefix(typ, "member."), strings.HasPrefix(typ, "apikey."):
		return true
	}
	switch typ {
	case "channel.updated", "channel.deleted", "user.deleted", "user.restored", "user.joined", "session.revoked":
		return true
	}
	return false
}

// credentialEvent reports whether typ may have revoked a connection's
// credential, so every connection of the community re-validates it.
func credentialEvent(typ string) bool {
	return strings.HasPrefix(typ, "apikey.") || typ == "session.revoked" || typ == "user.deleted"
}

// clientFrame is any frame a client sends.
type clientFrame struct {
	Type string `json:"type"`
	// Channels are channel ids for subscribe and unsubscribe.
	Channels []string `json:"channels"`
	// All subscribes a community key to every channel (or unsubscribes all).
	All bool `json:"all"`
	// LastEventID resumes a subscribe after this event id.
	LastEventID *int64 `json:"lastEventId"`
	// ChannelID names the channel of a typing notice.
	ChannelID string `json:"channelId"`
}

// eventFrame is the head of a streamed outbox event; the frame ends with
// "data", the event's payload (the message as Get Messages shows it, or the
// reaction).
type eventFrame struct {
	Type       string `json:"type"`
	EventID    int64  `json:"eventId"`
	ChannelID  string `json:"channelId"`
	OccurredAt string `json:"occurredAt"`
}

// readyFrame greets a connection.
type readyFrame struct {
	Type             string `json:"type"`
	CommunityID      string `json:"communityId"`
	EventID          int64  `json:"eventId"`
	MaxSubscriptions int    `json:"maxSubscriptions"`
}

// subscribedFrame acknowledges subscribe and unsubscribe. EventID is where
// the subscription's live frames start; Reason says why the server ended a
// subscription itself.
type subscribedFrame struct {
	Type     string   `json:"type"`
	Channels []string `json:"channels"`
	All      bool     `json:"all,omitempty"`
	EventID  int64    `json:"eventId,omitempty"`
	Reason   string   `json:"reason,omitempty"`
}

// typingFrame tells subscribers of a channel that a member is typing.
type typingFrame struct {
	Type      string         `json:"type"`
	ChannelID string         `json:"channelId"`
	User      message.Author `json:"user"`
	At        string         `json:"at"`
}

// expiredFrame says events after LastEventID are no longer kept.
type expiredFrame struct {
	Type        string   `json:"type"`
	LastEventID int64    `json:"lastEventId"`
	EventID     int64    `json:"eventId"`
	Channels    []string `json:"channels"`
	Message     string   `json:"message"`
}

// errorFrame reports a refused or malformed client frame.
type errorFrame struct {
	Type      string `json:"type"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	ChannelID string `json:"channelId,omitempty"`
}

func encode(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// errItem is an error frame ready to queue.
func errItem(code, msg, channelID string) item {
	return item{kind: itemRaw, ftype: kindError, frame: encode(errorFrame{Type: FrameError, Code: code, Message: msg, ChannelID: channelID})}
}

// channelOf reads the channel id of a message or reaction event payload.
func channelOf(payload []byte) string {
	var p struct {
		Channel struct {
			ID string `json:"channel_id"`
		} `json:"channel"`
		ChannelID string `json:"channelId"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return ""
	}
	if p.Channel.ID != "" {
		return p.Channel.ID
	}
	return p.ChannelID
}
