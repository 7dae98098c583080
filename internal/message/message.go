// Package message holds the messages of a community's channels: sending,
// replying, reacting, editing and deleting, image uploads, paging both ways
// on a per-channel sequence that never skips or repeats, and each member's
// messaging counters. Every write records its events (message.posted,
// channel.message.posted, message.reacted, message.edited, message.deleted)
// in its own transaction.
package message

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/rallyhq/rally/internal/event"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/blob"
	"github.com/rallyhq/rally/internal/channel"
	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/role"
	"github.com/rallyhq/rally/internal/user"
)

// Limits on messages.
const (
	// MaxBodyLen bounds a message's text, in characters.
	MaxBodyLen = 4000
	// MaxAttachments bounds the images one message carries.
	MaxAttachments = 10
	// MaxMentions bounds the members one message mentions.
	MaxMentions = 20
	// MaxEmojiLen bounds a reaction's emoji, in bytes.
	MaxEmojiLen = 64
)

// Message is one message as Get Messages shows it: the documented id,
// message, user {user_id, email}, channel {channel_id, name} and timestamp,
// plus Rally's fields.
type Message struct {
	ID        string     `json:"id"`
	Message   string     `json:"message"`
	User      Author     `json:"user"`
	Channel   ChannelRef `json:"channel"`
	Timestamp jsonx.Time `json:"timestamp"`
	// Sequence numbers the channel's messages from 1 (the paging cursor).
	Sequence     int64   `json:"sequence"`
	ForumTopicID *string `json:"forumTopicId"`
	// ReplyTo is the message this one answers; ThreadID the first message
	// of its thread (which counts the thread's replies in ReplyCount).
	ReplyTo     *string         `json:"replyTo"`
	ThreadID    *string         `json:"threadId"`
	ReplyCount  int64           `json:"replyCount"`
	Attachments []Attachment    `json:"attachments"`
	Mentions    []Mention       `json:"mentions"`
	Reactions   []ReactionCount `json:"reactions"`
	EditedAt    *jsonx.Time     `json:"editedAt"`
	// seq is the community-wide cursor.
	seq int64
}

// Author is who wrote a message: user_id is the numeric id as a string, as
// the docs show it.
type Author struct {
	UserID   string `json:"user_id"`
	Email    string `json:"email"`
	ID       string `json:"_id"`
	Username string `json:"username"`
}

// ChannelRef names a message's channel.
type ChannelRef struct {
	ChannelID string `json:"channel_id"`
	Name      string `json:"name"`
	Type      string `json:"type"`
}

// Attachment is an image uploaded with Upload and attached to a message;
// the same object Upload Image answers.
type Attachment struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	URL  string `json:"url"`
	Type string `json:"type"`
	Size int64  `json:"size"`
}

// Mention is a member a message mentions.
type Mention struct {
	ID       string `json:"_id"`
	UserID   string `json:"user_id"`
	Username string `json:"username"`
}

// ReactionCount is how many members reacted to a message with one emoji.
type ReactionCount struct {
	Emoji string `json:"emoji"`
	Count int64  `json:"count"`
}

// Actor is who acts on a messaging call: a community key acting as the
// member named by Sender, or a user key or session acting as UserID.
type Actor struct {
	CommunityID string
	// UserID is the acting member for user keys and sessions.
	UserID string
	// Sender is the username or email a community key acts as.
	Sender string
	// Partner marks a community key: it reads every channel and may
	// moderate without naming a sender.
	Partner bool
	// Channels limits a user key to these channels (empty: any).
	Channels []string
}

// Deps are what the message service needs.
type Deps struct {
	DB       *db.DB
	Clock    clock.Clock
	Events   event.Appender
	Users    *user.Store
	Roles    *role.Service
	Channels *channel.Service
	Files    *blob.Store
	// Versions, when set, lets the service reuse sender, channel and
	// permission lookups while the community is unchanged (see lookups).
	Versions Versions
}

// Service holds the rules for messages.
type Service struct {
	d      Deps
	commit committer
	// Recent lookups: senders by community and identity, channels by
	// community and id, access by community, member and channel.
	senders  lookups[member]
	channels lookups[chanInfo]
	access   lookups[access]
}

// NewService returns the message service.
func NewService(d Deps) *Service { return &Service{d: d} }

// member is a resolved acting or mentioned member.
type member struct {
	user.User
}

func (m member) author() Author {
	return Author{UserID: strconv.FormatInt(m.NumID, 10), Email: m.Email, ID: m.ID, Username: m.Username}
}

// actor resolves who acts: the key's or session's user, or the member named
// by Sender (a username or email; 400 when missing, 404 when no live member
// of the community has it).
func (s *Service) actor(ctx context.Context, a Actor) (member, error) {
	key := a.CommunityID + "\x00u:" + a.UserID
	if a.UserID == "" {
		key = a.CommunityID + "\x00s:" + strings.TrimSpace(a.Sender)
	}
	version, cached := s.version(a.CommunityID)
	now := s.d.Clock.Now()
	if cached {
		if m, ok := s.senders.get(key, version, now); ok {
			return m, nil
		}
	}
	m, err := s.findActor(ctx, a)
	if err == nil && cached {
		s.senders.put(key, m, version, now)
	}
	return m, err
}

// findActor is actor without the cache.
func (s *Service) findActor(ctx context.Context, a Actor) (member, error) {
	if a.UserID != "" {
		u, _, err := s.d.Users.FindMember(ctx, a.CommunityID, a.UserID, user.ByObjectID)
		if err != nil {
			return member{}, errs.Forbiddenf("The key's owner is no longer a member of this community.")
		}
		return member{u}, nil
	}
	sender := strings.TrimSpace(a.Sender)
	if sender == "" {
		var v errs.Validator
		v.Add("sender", "is required: the username or email of the member to post as")
		return member{}, v.Err()
	}
	u, _, err := s.d.Users.FindMember(ctx, a.CommunityID, sender, user.ByAny)
	if errs.KindOf(err) == errs.NotFound {
		return member{}, errs.NotFoundf("Sender is not a member of this community.")
	}
	if err != nil {
		return member{}, fmt.Errorf("find sender: %w", err)
	}
	return member{u}, nil
}

// chanInfo is what the message rules need of a channel.
type chanInfo struct {
	id, community, topic, typ string
	dmA, dmB                  *string
}

func (c chanInfo) ref() ChannelRef { return ChannelRef{ChannelID: c.id, Name: c.topic, Type: c.typ} }

func (c chanInfo) participant(userID string) bool {
	return c.dmA != nil && (*c.dmA == userID || *c.dmB == userID)
}

// liveChannel reads a live channel of the community (NotFound otherwise).
func (s *Service) liveChannel(ctx context.Context, communityID, channelID string) (chanInfo, error) {
	c := chanInfo{id: strings.ToLower(strings.TrimSpace(channelID)), community: communityID}
	key := communityID + "\x00" + c.id
	version, cached := s.version(communityID)
	now := s.d.Clock.Now()
	if cached {
		if got, ok := s.channels.get(key, version, now); ok {
			return got, nil
		}
	}
	err := s.d.DB.QueryRow(ctx, `SELECT topic, channel_type, dm_user_a, dm_user_b FROM channels
		WHERE community_id = ? AND id = ? AND deleted_at IS NULL`, communityID, c.id).Scan(&c.topic, &c.typ, &c.dmA, &c.dmB)
	if err != nil {
		if isNoRows(err) {
			return chanInfo{}, errs.NotFoundf("Channel not found.")
		}
		return chanInfo{}, fmt.Errorf("read channel: %w", err)
	}
	if cached {
		s.channels.put(key, c, version, now)
	}
	return c, nil
}

// access is what the acting member may do in a channel.
type access struct {
	view, post, attach, mention, manage bool
}

// channelAccess works out what m may do in c: private DMs admit their two
// participants only; other channels follow the member's roles and the
// channel's overrides. A user key limited to some channels may do nothing
// elsewhere.
func (s *Service) channelAccess(ctx context.Context, a Actor, m member, c chanInfo) (access, error) {
	if len(a.Channels) > 0 && !slices.Contains(a.Channels, c.id) {
		return access{}, nil
	}
	key := a.CommunityID + "\x00" + m.ID + "\x00" + c.id
	version, cached := s.version(a.CommunityID)
	now := s.d.Clock.Now()
	if cached {
		if ac, ok := s.access.get(key, version, now); ok {
			return ac, nil
		}
	}
	ac, err := s.memberAccess(ctx, a.CommunityID, m, c)
	if err == nil && cached {
		s.access.put(key, ac, version, now)
	}
	return ac, err
}

// memberAccess is channelAccess for any key, without the cache.
func (s *Service) memberAccess(ctx context.Context, communityID string, m member, c chanInfo) (access, error) {
	p, err := s.d.Roles.ChannelPermissions(ctx, communityID, m.ID, c.id)
	if err != nil {
		return access{}, err
	}
	ac := access{view: p[role.PermViewMessageHistory], post: p[role.PermPostMessages], attach: p[role.PermAttachFiles],
		mention: p[role.PermAllowMentions], manage: p[role.PermManageMessages] || p[role.PermDeleteMessages]}
	if c.typ == channel.TypeDM {
		in := c.participant(m.ID)
		ac.view, ac.post = in, in
		ac.manage = ac.manage && in
	}
	return ac, nil
}

// checkBody validates a message's text: at most MaxBodyLen characters, and
// not empty unless images are attached.
func checkBody(v *errs.Validator, body string, attachments int) string {
	body = strings.TrimSpace(body)
	v.Check(body != "" || attachments > 0, "message", "is required (it may be empty only when images are attached)")
	v.Check(utf8.RuneCountInString(body) <= MaxBodyLen, "message", "must be at most %d characters", MaxBodyLen)
	return body
}

// AttachmentRef names an uploaded image to attach (the id Upload Image
// answered).
type AttachmentRef struct {
	ID string `json:"id"`
}

// Content is what a new message carries, shared by Send and Reply.
type Content struct {
	Message     string          `json:"message"`
	Attachments []AttachmentRef `json:"attachments"`
	// Mentions name members by username, email, numeric id or _id.
	Mentions []string `json:"mentions"`
}

// resolved is validated content.
type resolved struct {
	body        string
	attachments []Attachment
	mentions    []Mention
}

// resolve validates c, naming every offending field: the body, each
// attachment that is not an image uploaded in this community and each
// mention that is not a live member.
func (s *Service) resolve(ctx context.Context, communityID string, c Content, v *errs.Validator) (resolved, error) {
	r := resolved{body: checkBody(v, c.Message, len(c.Attachments)), attachments: []Attachment{}, mentions: []Mention{}}
	v.Check(len(c.Attachments) <= MaxAttachments, "attachments", "may hold at most %d images", MaxAttachments)
	v.Check(len(c.Mentions) <= MaxMentions, "mentions", "may name at most %d members", MaxMentions)
	if len(c.Attachments) > MaxAttachments || len(c.Mentions) > MaxMentions {
		return r, nil
	}
	for i, ref := range c.Attachments {
		var at Attachment
		err := s.d.DB.QueryRow(ctx, "SELECT id, name, url, content_type, size FROM message_files WHERE community_id = ? AND id = ?",
			communityID, strings.TrimSpace(ref.ID)).Scan(&at.ID, &at.Name, &at.URL, &at.Type, &at.Size)
		switch {
		case isNoRows(err):
			v.Add(fmt.Sprintf("attachments[%d].id", i), "is not an image uploaded to this community")
		case err != nil:
			return r, fmt.Errorf("read attachment: %w", err)
		default:
			r.attachments = append(r.attachments, at)
		}
	}
	seen := map[string]bool{}
	for i, ref := range c.Mentions {
		u, _, err := s.d.Users.FindMember(ctx, communityID, ref, user.ByAny)
		switch {
		case errs.KindOf(err) == errs.NotFound:
			v.Add(fmt.Sprintf("mentions[%d]", i), "is not a member of this community")
		case err != nil:
			return r, fmt.Errorf("resolve mention: %w", err)
		case !seen[u.ID]:
			seen[u.ID] = true
			r.mentions = append(r.mentions, Mention{ID: u.ID, UserID: strconv.FormatInt(u.NumID, 10), Username: u.Username})
		}
	}
	return r, nil
}

// allow checks that the actor may post r into a channel with ac.
func (r resolved) allow(ac access) error {
	switch {
	case !ac.view:
		return errs.Forbiddenf("You cannot see this channel.")
	case !ac.post:
		return errs.Forbiddenf("You may not post in this channel.")
	case len(r.attachments) > 0 && !ac.attach:
		return errs.Forbiddenf("You may not attach files in this channel.")
	case len(r.mentions) > 0 && !ac.mention:
		return errs.Forbiddenf("You may not mention members in this channel.")
	}
	return nil
}

// encode marshals v for a JSON column.
func encode(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// counter is an addition to one member's counters.
type counter struct {
	community, user              string
	messages, replies, reactions int
}

// bump adds to a member's counters in tx.
func bump(ctx context.Context, tx *db.Tx, communityID, userID string, messages, replies, reactions int) error {
	return bumpAll(ctx, tx, []counter{{community: communityID, user: userID, messages: messages, replies: replies, reactions: reactions}})
}

// bumpAll adds to members' counters in tx, with one statement; counts must
// name each member once.
func bumpAll(ctx context.Context, tx *db.Tx, counts []counter) error {
	if len(counts) == 0 {
		return nil
	}
	args := make([]any, 0, 5*len(counts))
	for _, c := range counts {
		args = append(args, c.community, c.user, c.messages, c.replies, c.reactions)
	}
	q := "INSERT INTO message_counters (community_id, user_id, total_messages, reply_sent, total_reactions) VALUES " +
		db.ValueRows(len(counts), 5) + ` ON CONFLICT (community_id, user_id) DO UPDATE SET
		total_messages = message_counters.total_messages + excluded.total_messages,
		reply_sent = message_counters.reply_sent + excluded.reply_sent,
		total_reactions = message_counters.total_reactions + excluded.total_reactions`
	if _, err := tx.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("count messaging activity: %w", err)
	}
	return nil
}

// Counters are a member's messaging activity: messages posted (replies
// included), replies posted and reactions given, less what was deleted or
// taken back.
type Counters struct {
	TotalMessages  int64
	ReplySent      int64
	TotalReactions int64
}

// Counters returns userID's messaging counters in the community (zero when
// they never posted).
func (s *Service) Counters(ctx context.Context, communityID, userID string) (Counters, error) {
	var c Counters
	err := s.d.DB.QueryRow(ctx, `SELECT total_messages, reply_sent, total_reactions FROM message_counters
		WHERE community_id = ? AND user_id = ?`, communityID, userID).Scan(&c.TotalMessages, &c.ReplySent, &c.TotalReactions)
	if err != nil && !isNoRows(err) {
		return Counters{}, fmt.Errorf("read messaging counters: %w", err)
	}
	return c, nil
}

// CounterColumn returns a scalar SQL expression for a counter
// (totalMessages, replySent or totalReactions) of the member row aliased m,
// and whether field is one.
func CounterColumn(field string) (string, bool) {
	col, ok := map[string]string{"totalMessages": "total_messages", "replySent": "reply_sent", "totalReactions": "total_reactions"}[field]
	if !ok {
		return "", false
	}
	return "COALESCE((SELECT mc." + col + " FROM message_counters mc WHERE mc.community_id = m.community_id AND mc.user_id = m.user_id), 0)", true
}

// CanRead reports whether the actor may read the messages of channelID: nil
// when it may, a NotFound error when the channel is not a live channel of
// the actor's community, a Forbidden one when the actor may not see it. A
// community key reads every live channel; a member reads what its roles and
// the channel's overrides let it see (a private DM: its two participants
// only), and a user key only the channels it is limited to.
func (s *Service) CanRead(ctx context.Context, a Actor, channelID string) error {
	c, err := s.liveChannel(ctx, a.CommunityID, channelID)
	if err != nil || a.Partner {
		return err
	}
	m, err := s.actor(ctx, a)
	if err != nil {
		return err
	}
	ac, err := s.channelAccess(ctx, a, m, c)
	if err != nil {
		return err
	}
	if !ac.view {
		return errs.Forbiddenf("You cannot see this channel.")
	}
	return nil
}

// Member returns the acting member of a (a user key's or session's owner),
// as messages show their author.
func (s *Service) Member(ctx context.Context, a Actor) (Author, error) {
	m, err := s.actor(ctx, a)
	if err != nil {
		return Author{}, err
	}
	return m.author(), nil
}
