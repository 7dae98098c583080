package message

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/rallyhq/rally/internal/channel"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/role"
	"github.com/rallyhq/rally/internal/user"
)

// Event types the message service records.
const (
	EventPosted        = "message.posted"
	EventChannelPosted = "channel.message.posted"
	EventReacted       = "message.reacted"
	EventUnreacted     = "message.unreacted"
	EventEdited        = "message.edited"
	EventDeleted       = "message.deleted"
)

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// postedEvent is the payload of message.posted and channel.message.posted:
// the message as Get Messages shows it, plus the sender's _id at the top
// level, where reward and streak subscribers read the acting member.
type postedEvent struct {
	Message
	UserID string `json:"userId"`
}

// reactedEvent is the payload of message.reacted and message.unreacted,
// with the reacting member's _id at the top level.
type reactedEvent struct {
	Reaction
	UserID string `json:"userId"`
}

// SendInput is Send Message's body: channelId, message, forumTopicId, the
// images from Upload Image and mentions. A private DM starts with recipient
// (a member's username, email or id) instead of channelId.
type SendInput struct {
	ChannelID    string `json:"channelId"`
	Recipient    string `json:"recipient"`
	ForumTopicID string `json:"forumTopicId"`
	Content
}

// Send posts a message as the actor. The actor must be a live member
// allowed to post in the channel (DM participants only); a forum post names
// one of the forum's topics. A message to a recipient goes to the private
// DM between the two, made on the first message (the actor needs allow_dm).
func (s *Service) Send(ctx context.Context, a Actor, in SendInput) (Message, error) {
	m, err := s.actor(ctx, a)
	if err != nil {
		return Message{}, err
	}
	var v errs.Validator
	in.ChannelID, in.Recipient = strings.TrimSpace(in.ChannelID), strings.TrimSpace(in.Recipient)
	switch {
	case in.ChannelID == "" && in.Recipient == "":
		v.Add("channelId", "is required (or recipient, to message a member directly)")
	case in.ChannelID != "" && in.Recipient != "":
		v.Add("recipient", "cannot be sent with channelId")
	}
	var peer user.User
	if in.Recipient != "" && in.ChannelID == "" {
		u, _, err := s.d.Users.FindMember(ctx, a.CommunityID, in.Recipient, user.ByAny)
		switch {
		case errs.KindOf(err) == errs.NotFound:
			v.Add("recipient", "is not a member of this community")
		case err != nil:
			return Message{}, fmt.Errorf("find recipient: %w", err)
		case u.ID == m.ID:
			v.Add("recipient", "must be another member")
		default:
			peer = u
		}
	}
	r, err := s.resolve(ctx, a.CommunityID, in.Content, &v)
	if err != nil {
		return Message{}, err
	}
	if err := v.Err(); err != nil {
		return Message{}, err
	}
	if peer.ID != "" {
		return s.sendDirect(ctx, a, m, peer, r)
	}
	c, err := s.liveChannel(ctx, a.CommunityID, in.ChannelID)
	if err != nil {
		return Message{}, err
	}
	ac, err := s.channelAccess(ctx, a, m, c)
	if err != nil {
		return Message{}, err
	}
	if err := r.allow(ac); err != nil {
		return Message{}, err
	}
	topic := strings.TrimSpace(in.ForumTopicID)
	switch {
	case c.typ == channel.TypeForum && topic == "":
		v.Add("forumTopicId", "is required in a forum channel: the topic to post in")
	case c.typ != channel.TypeForum && topic != "":
		v.Add("forumTopicId", "is only for forum channels")
	}
	if err := v.Err(); err != nil {
		return Message{}, err
	}
	return s.write(ctx, &draft{c: c, m: m, r: r, topicID: topic})
}

// sendDirect posts into the private DM between m and peer, making it first
// when needed.
func (s *Service) sendDirect(ctx context.Context, a Actor, m member, peer user.User, r resolved) (Message, error) {
	perms, err := s.d.Roles.ChannelPermissions(ctx, a.CommunityID, m.ID, "")
	if err != nil {
		return Message{}, err
	}
	switch {
	case !perms[role.PermAllowDM]:
		return Message{}, errs.Forbiddenf("You may not send direct messages in this community.")
	case len(r.attachments) > 0 && !perms[role.PermAttachFiles]:
		return Message{}, errs.Forbiddenf("You may not attach files.")
	case len(r.mentions) > 0 && !perms[role.PermAllowMentions]:
		return Message{}, errs.Forbiddenf("You may not mention members.")
	}
	var out Message
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := event.LockCommunity(ctx, tx, a.CommunityID); err != nil {
			return err
		}
		ch, _, err := s.d.Channels.DirectTx(ctx, tx, a.CommunityID, m.ID, m.ID, peer.ID, m.Username+", "+peer.Username)
		if err != nil {
			return err
		}
		if ch.Deleted {
			return errs.Forbiddenf("This direct conversation was closed.")
		}
		if len(a.Channels) > 0 && !containsFold(a.Channels, ch.ID) {
			return errs.Forbiddenf("This key may not post in that conversation.")
		}
		d := &draft{c: chanInfo{id: ch.ID, community: a.CommunityID, topic: ch.Topic, typ: ch.Type}, m: m, r: r}
		if err := s.insertAll(ctx, tx, []*draft{d}); err != nil {
			return err
		}
		out, err = d.result()
		return err
	})
	return out, err
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// ReplyInput is Reply Message's body: the message answered and the reply.
type ReplyInput struct {
	MessageID string `json:"messageId"`
	// ChannelID, when sent, must be the answered message's channel.
	ChannelID string `json:"channelId"`
	Content
}

// Reply answers a live message in its channel (and forum topic) as the
// actor, under the same rules as Send; the reply links to the message and
// its thread, whose first message counts the reply.
func (s *Service) Reply(ctx context.Context, a Actor, in ReplyInput) (Message, error) {
	m, err := s.actor(ctx, a)
	if err != nil {
		return Message{}, err
	}
	var v errs.Validator
	v.Check(strings.TrimSpace(in.MessageID) != "", "messageId", "is required: the id of the message to reply to")
	r, err := s.resolve(ctx, a.CommunityID, in.Content, &v)
	if err != nil {
		return Message{}, err
	}
	if err := v.Err(); err != nil {
		return Message{}, err
	}
	parent, c, err := s.target(ctx, a.CommunityID, in.MessageID)
	if err != nil {
		return Message{}, err
	}
	if ch := strings.TrimSpace(in.ChannelID); ch != "" && !strings.EqualFold(ch, c.id) {
		v.Add("channelId", "is not the channel of the message replied to")
		return Message{}, v.Err()
	}
	ac, err := s.channelAccess(ctx, a, m, c)
	if err != nil {
		return Message{}, err
	}
	if err := r.allow(ac); err != nil {
		return Message{}, err
	}
	return s.write(ctx, &draft{c: c, m: m, r: r, parent: &parent})
}

// target reads a live message of a live channel of the community.
func (s *Service) target(ctx context.Context, communityID, messageID string) (Message, chanInfo, error) {
	messageID = strings.ToLower(strings.TrimSpace(messageID))
	if !id.Valid(messageID) {
		return Message{}, chanInfo{}, errs.NotFoundf("Message not found.")
	}
	list, err := s.query(ctx, s.d.DB, " AND m.id = ?", []any{communityID, messageID}, "", 1)
	if err != nil {
		return Message{}, chanInfo{}, err
	}
	if len(list) == 0 {
		return Message{}, chanInfo{}, errs.NotFoundf("Message not found.")
	}
	c, err := s.liveChannel(ctx, communityID, list[0].Channel.ChannelID)
	return list[0], c, err
}

// ReactInput is React Message's body.
type ReactInput struct {
	MessageID string `json:"messageId"`
	Emoji     string `json:"emoji"`
}

// Reaction is the outcome of a reaction toggle.
type Reaction struct {
	MessageID string `json:"messageId"`
	ChannelID string `json:"channelId"`
	Emoji     string `json:"emoji"`
	// Reacted is true when the reaction was added, false when taken back.
	Reacted bool `json:"reacted"`
	// Count is how many members now react with Emoji.
	Count     int64           `json:"count"`
	Reactions []ReactionCount `json:"reactions"`
	User      Author          `json:"user"`
}

// React toggles the actor's reaction with an emoji on a message they can
// see: one per member and emoji; reacting again takes it back.
func (s *Service) React(ctx context.Context, a Actor, in ReactInput) (Reaction, error) {
	m, err := s.actor(ctx, a)
	if err != nil {
		return Reaction{}, err
	}
	var v errs.Validator
	v.Check(strings.TrimSpace(in.MessageID) != "", "messageId", "is required: the id of the message to react to")
	emoji := strings.TrimSpace(in.Emoji)
	v.Check(emoji != "" && len(emoji) <= MaxEmojiLen && !strings.ContainsAny(emoji, " \t\r\n"), "emoji",
		"must be one emoji or shortcode of at most %d bytes, without spaces", MaxEmojiLen)
	if err := v.Err(); err != nil {
		return Reaction{}, err
	}
	msg, c, err := s.target(ctx, a.CommunityID, in.MessageID)
	if err != nil {
		return Reaction{}, err
	}
	ac, err := s.channelAccess(ctx, a, m, c)
	if err != nil {
		return Reaction{}, err
	}
	if !ac.view {
		return Reaction{}, errs.Forbiddenf("You cannot see this channel.")
	}
	out := Reaction{MessageID: msg.ID, ChannelID: c.id, Emoji: emoji, User: m.author()}
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := event.LockCommunity(ctx, tx, a.CommunityID); err != nil {
			return err
		}
		res, err := tx.Exec(ctx, "DELETE FROM message_reactions WHERE message_id = ? AND emoji = ? AND user_id = ?", msg.ID, emoji, m.ID)
		if err != nil {
			return fmt.Errorf("remove reaction: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("remove reaction: %w", err)
		}
		out.Reacted = n == 0
		delta := -1
		if out.Reacted {
			delta = 1
			if _, err := tx.Exec(ctx, "INSERT INTO message_reactions (message_id, user_id, emoji, created_at) VALUES (?, ?, ?, ?)",
				msg.ID, m.ID, emoji, s.d.Clock.Now().UnixMilli()); err != nil {
				return fmt.Errorf("add reaction: %w", err)
			}
		}
		if err := bump(ctx, tx, a.CommunityID, m.ID, 0, 0, delta); err != nil {
			return err
		}
		counts, err := reactionCounts(ctx, tx, []string{msg.ID})
		if err != nil {
			return err
		}
		out.Reactions = counts[msg.ID]
		if out.Reactions == nil {
			out.Reactions = []ReactionCount{}
		}
		for _, rc := range out.Reactions {
			if rc.Emoji == emoji {
				out.Count = rc.Count
			}
		}
		typ := EventReacted
		if !out.Reacted {
			typ = EventUnreacted
		}
		return s.d.Events.Append(ctx, tx, a.CommunityID, typ, reactedEvent{Reaction: out, UserID: m.ID})
	})
	return out, err
}

// EditInput is an edit of one's own message.
type EditInput struct {
	Message string `json:"message"`
}

// Edit replaces the text of the actor's own live message and records
// message.edited.
func (s *Service) Edit(ctx context.Context, a Actor, messageID string, in EditInput) (Message, error) {
	m, err := s.actor(ctx, a)
	if err != nil {
		return Message{}, err
	}
	msg, c, err := s.target(ctx, a.CommunityID, messageID)
	if err != nil {
		return Message{}, err
	}
	var v errs.Validator
	body := checkBody(&v, in.Message, len(msg.Attachments))
	if err := v.Err(); err != nil {
		return Message{}, err
	}
	if msg.User.ID != m.ID {
		return Message{}, errs.Forbiddenf("Only the author may edit a message.")
	}
	if ac, err := s.channelAccess(ctx, a, m, c); err != nil || !ac.view {
		if err != nil {
			return Message{}, err
		}
		return Message{}, errs.Forbiddenf("You cannot see this channel.")
	}
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := event.LockCommunity(ctx, tx, a.CommunityID); err != nil {
			return err
		}
		now := s.d.Clock.Now()
		res, err := tx.Exec(ctx, "UPDATE messages SET body = ?, edited_at = ? WHERE id = ? AND deleted_at IS NULL", body, now.UnixMilli(), msg.ID)
		if err != nil {
			return fmt.Errorf("edit message: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.NotFoundf("Message not found.")
		}
		at := jsonx.At(now)
		msg.Message, msg.EditedAt = body, &at
		return s.d.Events.Append(ctx, tx, a.CommunityID, EventEdited, msg)
	})
	return msg, err
}

// deletedEvent is message.deleted's payload: the message as it was and who
// deleted it (null when a community key moderated without a sender).
type deletedEvent struct {
	Message
	DeletedBy *Author `json:"deletedBy"`
}

// Delete removes a live message: the author's own, or any message for a
// member holding manage_messages (or delete_messages) in its channel, or
// for a community key that names no sender. The row is kept for export
// but no longer shown; counters and the thread's reply count drop.
func (s *Service) Delete(ctx context.Context, a Actor, messageID string) (Message, error) {
	var by *Author
	var actor member
	if !a.Partner || strings.TrimSpace(a.Sender) != "" {
		m, err := s.actor(ctx, a)
		if err != nil {
			return Message{}, err
		}
		au := m.author()
		by, actor = &au, m
	}
	msg, c, err := s.target(ctx, a.CommunityID, messageID)
	if err != nil {
		return Message{}, err
	}
	if by != nil {
		ac, err := s.channelAccess(ctx, a, actor, c)
		if err != nil {
			return Message{}, err
		}
		switch {
		case !ac.view:
			return Message{}, errs.Forbiddenf("You cannot see this channel.")
		case msg.User.ID != actor.ID && !ac.manage:
			return Message{}, errs.Forbiddenf("Only the author or a moderator (manage_messages) may delete this message.")
		}
	}
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := event.LockCommunity(ctx, tx, a.CommunityID); err != nil {
			return err
		}
		now := s.d.Clock.Now().UnixMilli()
		res, err := tx.Exec(ctx, "UPDATE messages SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL", now, msg.ID)
		if err != nil {
			return fmt.Errorf("delete message: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.NotFoundf("Message not found.")
		}
		if _, err := tx.Exec(ctx, "UPDATE channels SET message_count = message_count - 1 WHERE id = ?", c.id); err != nil {
			return fmt.Errorf("uncount message: %w", err)
		}
		if msg.ForumTopicID != nil {
			if _, err := tx.Exec(ctx, "UPDATE forum_topics SET message_count = message_count - 1 WHERE id = ?", *msg.ForumTopicID); err != nil {
				return fmt.Errorf("uncount topic message: %w", err)
			}
		}
		replies := 0
		if msg.ThreadID != nil {
			replies = -1
			if _, err := tx.Exec(ctx, "UPDATE messages SET reply_count = reply_count - 1 WHERE id = ?", *msg.ThreadID); err != nil {
				return fmt.Errorf("uncount reply: %w", err)
			}
		}
		if err := bump(ctx, tx, a.CommunityID, msg.User.ID, -1, replies, 0); err != nil {
			return err
		}
		return s.d.Events.Append(ctx, tx, a.CommunityID, EventDeleted, deletedEvent{Message: msg, DeletedBy: by})
	})
	return msg, err
}
