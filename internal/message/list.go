package message

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/role"
	"github.com/rallyhq/rally/internal/user"
)

// Paging limits of Get Messages (count).
const (
	DefaultCount = 20
	MaxCount     = 100
)

// Query selects messages for Get Messages. Every filter is optional.
type Query struct {
	ChannelID string
	// UserID is a member's numeric id or _id; Email a member's email.
	UserID       string
	Email        string
	ForumTopicID string
	// Count is the page size (0: DefaultCount).
	Count int
	// Before pages to older messages than this message id (newest first);
	// After to newer ones (oldest first). At most one is set.
	Before string
	After  string
}

// Page is one page of messages.
type Page struct {
	// Total counts every message matching the filters, not just this page.
	Total    int64     `json:"total"`
	Messages []Message `json:"messages"`
	// HasMore says whether more messages lie beyond this page in its
	// direction.
	HasMore bool `json:"hasMore"`
}

// List returns a page of live messages of live channels. Pages run newest
// first, or oldest first after a cursor; the cursor is the channel's
// sequence (the community's with no channel), assigned in commit order, so
// paging never skips or repeats a message while new ones arrive. Community
// keys read every channel; members read the channels they may see, and
// without a channel only their own messages.
func (s *Service) List(ctx context.Context, a Actor, q Query) (Page, error) {
	var v errs.Validator
	if q.Count == 0 {
		q.Count = DefaultCount
	}
	v.Check(q.Count >= 1 && q.Count <= MaxCount, "count", "must be a whole number from 1 to %d", MaxCount)
	v.Check(q.Before == "" || q.After == "", "after", "cannot be sent with before")
	v.Check(q.Before == "" || id.Valid(strings.ToLower(q.Before)), "before", "must be a message id")
	v.Check(q.After == "" || id.Valid(strings.ToLower(q.After)), "after", "must be a message id")
	if !a.Partner && len(a.Channels) > 0 && q.ChannelID == "" {
		v.Add("channel_id", "is required with a key limited to some channels")
	}
	if err := v.Err(); err != nil {
		return Page{}, err
	}
	where, args := "", []any{a.CommunityID}
	cursorCol := "m.seq"
	var ch chanInfo
	if q.ChannelID != "" {
		var err error
		if ch, err = s.liveChannel(ctx, a.CommunityID, q.ChannelID); err != nil {
			return Page{}, err
		}
		where += " AND m.channel_id = ?"
		args = append(args, ch.id)
		cursorCol = "m.channel_seq"
	}
	if !a.Partner {
		m, err := s.actor(ctx, a)
		if err != nil {
			return Page{}, err
		}
		if q.ChannelID != "" {
			ac, err := s.channelAccess(ctx, a, m, ch)
			if err != nil {
				return Page{}, err
			}
			if !ac.view {
				return Page{}, errs.Forbiddenf("You cannot see this channel.")
			}
		} else {
			if (q.UserID != "" && q.UserID != m.ID && q.UserID != fmt.Sprint(m.NumID)) || (q.Email != "" && !strings.EqualFold(q.Email, m.Email)) {
				return Page{}, errs.Forbiddenf("Without channel_id a member reads only their own messages.")
			}
			q.UserID, q.Email = m.ID, ""
		}
	}
	for _, f := range []struct{ ref, kind string }{{q.UserID, user.ByAny}, {q.Email, user.ByEmail}} {
		if f.ref == "" {
			continue
		}
		u, err := s.d.Users.Find(ctx, f.ref, f.kind)
		if errs.KindOf(err) == errs.NotFound {
			return Page{Messages: []Message{}}, nil
		}
		if err != nil {
			return Page{}, fmt.Errorf("find user: %w", err)
		}
		where += " AND m.user_id = ?"
		args = append(args, u.ID)
	}
	if q.ForumTopicID != "" {
		where += " AND m.forum_topic_id = ?"
		args = append(args, strings.ToLower(q.ForumTopicID))
	}
	total, err := s.total(ctx, a.CommunityID, where, args, ch.id, q)
	if err != nil {
		return Page{}, err
	}
	order := " DESC"
	if cursor := q.Before + q.After; cursor != "" {
		field := "before"
		if q.After != "" {
			field, order = "after", " ASC"
		}
		var (
			n         int64
			channelID string
		)
		err := s.d.DB.QueryRow(ctx, "SELECT "+strings.TrimPrefix(cursorCol, "m.")+", channel_id FROM messages WHERE community_id = ? AND id = ?",
			a.CommunityID, strings.ToLower(cursor)).Scan(&n, &channelID)
		switch {
		case isNoRows(err):
			v.Add(field, "is not a message of this community")
		case err != nil:
			return Page{}, fmt.Errorf("read cursor: %w", err)
		case ch.id != "" && channelID != ch.id:
			v.Add(field, "is not a message of this channel")
		}
		if err := v.Err(); err != nil {
			return Page{}, err
		}
		if order == " ASC" {
			where += " AND " + cursorCol + " > ?"
		} else {
			where += " AND " + cursorCol + " < ?"
		}
		args = append(args, n)
	}
	list, err := s.query(ctx, s.d.DB, where, args, " ORDER BY "+cursorCol+order, q.Count+1)
	if err != nil {
		return Page{}, err
	}
	p := Page{Total: total, Messages: list, HasMore: len(list) > q.Count}
	if p.HasMore {
		p.Messages = list[:q.Count]
	}
	return p, s.withReactions(ctx, p.Messages)
}

// total counts the messages a List query matches: from the channel's or
// topic's counter when no member filter applies, else by counting.
func (s *Service) total(ctx context.Context, communityID, where string, args []any, channelID string, q Query) (int64, error) {
	var n int64
	var err error
	byMember := q.UserID != "" || q.Email != ""
	switch {
	case !byMember && q.ForumTopicID != "":
		err = s.d.DB.QueryRow(ctx, "SELECT message_count FROM forum_topics WHERE community_id = ? AND id = ? AND (? = '' OR channel_id = ?)",
			communityID, strings.ToLower(q.ForumTopicID), channelID, channelID).Scan(&n)
		if isNoRows(err) {
			return 0, nil
		}
	case !byMember && channelID != "":
		err = s.d.DB.QueryRow(ctx, "SELECT message_count FROM channels WHERE id = ?", channelID).Scan(&n)
	case !byMember:
		err = s.d.DB.QueryRow(ctx, "SELECT CAST(COALESCE(SUM(message_count), 0) AS BIGINT) FROM channels WHERE community_id = ? AND deleted_at IS NULL",
			communityID).Scan(&n)
	default:
		err = s.d.DB.QueryRow(ctx, `SELECT COUNT(*) FROM messages m JOIN channels c ON c.id = m.channel_id
			WHERE m.community_id = ? AND m.deleted_at IS NULL AND c.deleted_at IS NULL`+where, args...).Scan(&n)
	}
	if err != nil {
		return 0, fmt.Errorf("count messages: %w", err)
	}
	return n, nil
}

// querier is what reads need: the database or a transaction.
type querier interface {
	Query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// query reads up to limit live messages of live channels of the community
// (args[0]) matching where, in order.
func (s *Service) query(ctx context.Context, q querier, where string, args []any, order string, limit int) ([]Message, error) {
	rows, err := q.Query(ctx, `SELECT m.id, m.seq, m.channel_seq, m.body, m.forum_topic_id, m.reply_to, m.thread_id, m.reply_count,
		m.attachments, m.mentions, m.created_at, m.edited_at, u.id, u.seq, u.email, u.username, c.id, c.topic, c.channel_type
		FROM messages m JOIN users u ON u.id = m.user_id JOIN channels c ON c.id = m.channel_id
		WHERE m.community_id = ? AND m.deleted_at IS NULL AND c.deleted_at IS NULL`+where+order+" LIMIT ?", append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	defer rows.Close()
	out := []Message{}
	for rows.Next() {
		var (
			m                  Message
			numID              int64
			attached, mention  string
			created            int64
			edited             sql.NullInt64
			topic, reply, thrd sql.NullString
		)
		if err := rows.Scan(&m.ID, &m.seq, &m.Sequence, &m.Message, &topic, &reply, &thrd, &m.ReplyCount, &attached, &mention,
			&created, &edited, &m.User.ID, &numID, &m.User.Email, &m.User.Username,
			&m.Channel.ChannelID, &m.Channel.Name, &m.Channel.Type); err != nil {
			return nil, fmt.Errorf("read messages: %w", err)
		}
		m.User.UserID = fmt.Sprint(numID)
		m.ForumTopicID, m.ReplyTo, m.ThreadID = strPtr(topic), strPtr(reply), strPtr(thrd)
		m.Timestamp = jsonx.Millis(created)
		if edited.Valid {
			t := jsonx.Millis(edited.Int64)
			m.EditedAt = &t
		}
		if err := json.Unmarshal([]byte(attached), &m.Attachments); err != nil {
			return nil, fmt.Errorf("read attachments: %w", err)
		}
		if err := json.Unmarshal([]byte(mention), &m.Mentions); err != nil {
			return nil, fmt.Errorf("read mentions: %w", err)
		}
		m.Reactions = []ReactionCount{}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	return out, nil
}

func strPtr(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	return &s.String
}

// withReactions fills in the reaction counts of list.
func (s *Service) withReactions(ctx context.Context, list []Message) error {
	if len(list) == 0 {
		return nil
	}
	ids := make([]string, len(list))
	for i, m := range list {
		ids[i] = m.ID
	}
	counts, err := reactionCounts(ctx, s.d.DB, ids)
	if err != nil {
		return err
	}
	for i := range list {
		if c := counts[list[i].ID]; c != nil {
			list[i].Reactions = c
		}
	}
	return nil
}

// reactionCounts counts the reactions of each message by emoji, emojis in
// the order first used.
func reactionCounts(ctx context.Context, q querier, ids []string) (map[string][]ReactionCount, error) {
	args := make([]any, len(ids))
	for i, x := range ids {
		args[i] = x
	}
	rows, err := q.Query(ctx, `SELECT message_id, emoji, COUNT(*), MIN(created_at) FROM message_reactions WHERE message_id IN `+
		db.In(len(ids))+` GROUP BY message_id, emoji ORDER BY message_id, MIN(created_at), emoji`, args...)
	if err != nil {
		return nil, fmt.Errorf("count reactions: %w", err)
	}
	defer rows.Close()
	out := map[string][]ReactionCount{}
	for rows.Next() {
		var (
			msgID string
			rc    ReactionCount
			first int64
		)
		if err := rows.Scan(&msgID, &rc.Emoji, &rc.Count, &first); err != nil {
			return nil, fmt.Errorf("count reactions: %w", err)
		}
		out[msgID] = append(out[msgID], rc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count reactions: %w", err)
	}
	return out, nil
}

// Upload is one image to store for messages; Type is its sniffed
// Content-Type.
type Upload struct {
	Name string
	Type string
	Data []byte
}

// MaxUploads bounds the images of one upload.
const MaxUploads = 10

// Upload stores images in the blob store and records them as uploads of
// the community, so messages there can attach them. urlOf turns a stored
// key into the URL the image is served at. A member needs attach_files; a
// community key may upload without a sender.
func (s *Service) Upload(ctx context.Context, a Actor, files []Upload, urlOf func(key string) string) ([]Attachment, error) {
	if !a.Partner || strings.TrimSpace(a.Sender) != "" {
		m, err := s.actor(ctx, a)
		if err != nil {
			return nil, err
		}
		p, err := s.d.Roles.ChannelPermissions(ctx, a.CommunityID, m.ID, "")
		if err != nil {
			return nil, err
		}
		if !p[role.PermAttachFiles] {
			return nil, errs.Forbiddenf("You may not attach files in this community.")
		}
	}
	var out []Attachment
	now := s.d.Clock.Now().UnixMilli()
	// The bytes and the upload records commit together, so a recorded
	// upload always has its bytes.
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		out = make([]Attachment, 0, len(files))
		for _, f := range files {
			key, err := s.d.Files.PutTx(ctx, tx, f.Data, f.Type)
			if err != nil {
				return err
			}
			name := strings.TrimSpace(f.Name)
			if name == "" {
				name = key
			}
			at := Attachment{ID: key, Name: name, URL: urlOf(key), Type: f.Type, Size: int64(len(f.Data))}
			if _, err := tx.Exec(ctx, `INSERT INTO message_files (community_id, id, name, content_type, size, url, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (community_id, id) DO UPDATE SET name = excluded.name, url = excluded.url`,
				a.CommunityID, at.ID, at.Name, at.Type, at.Size, at.URL, now); err != nil {
				return fmt.Errorf("record upload: %w", err)
			}
			out = append(out, at)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
