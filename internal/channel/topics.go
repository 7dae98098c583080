package channel

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
)

// Limits on forum topics.
const (
	MaxTopicTitleLen = 200
	// MaxTopicsPerChannel bounds a forum's topics.
	MaxTopicsPerChannel = 10_000
)

// Topic is one topic of a forum channel; forum posts name it in
// forumTopicId.
type Topic struct {
	ID           string     `json:"_id"`
	ChannelID    string     `json:"channelId"`
	Title        string     `json:"title"`
	MessageCount int64      `json:"messageCount"`
	CreatedAt    jsonx.Time `json:"createdAt"`
	UpdatedAt    jsonx.Time `json:"updatedAt"`
}

// TopicInput is a topic as a client sends it.
type TopicInput struct {
	Title string `json:"title"`
}

// CreateTopic adds a topic to a live forum channel and records
// forum.topic.created. Other channel types are a 400 on channelId.
func (s *Service) CreateTopic(ctx context.Context, communityID, channelID string, in TopicInput) (Topic, error) {
	var v errs.Validator
	title := strings.TrimSpace(in.Title)
	v.Check(title != "" && utf8.RuneCountInString(title) <= MaxTopicTitleLen, "title", "must be 1 to %d characters", MaxTopicTitleLen)
	if err := v.Err(); err != nil {
		return Topic{}, err
	}
	now := s.d.Clock.Now()
	t := Topic{ID: id.New(now), Title: title, CreatedAt: jsonx.At(now), UpdatedAt: jsonx.At(now)}
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := event.LockCommunity(ctx, tx, communityID); err != nil {
			return err
		}
		c, err := s.one(ctx, tx, communityID, channelID, false)
		if err != nil {
			return err
		}
		if c.Type != TypeForum {
			return errs.Conflictf("Topics belong to forum channels; this channel is %s.", c.Type)
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT COUNT(*) FROM forum_topics WHERE channel_id = ?", c.ID).Scan(&n); err != nil {
			return fmt.Errorf("count topics: %w", err)
		}
		if n >= MaxTopicsPerChannel {
			return errs.Conflictf("A forum has at most %d topics.", MaxTopicsPerChannel)
		}
		t.ChannelID = c.ID
		if _, err := tx.Exec(ctx, `INSERT INTO forum_topics (id, community_id, channel_id, title, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)`, t.ID, communityID, c.ID, t.Title, now.UnixMilli(), now.UnixMilli()); err != nil {
			return fmt.Errorf("insert topic: %w", err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "forum.topic.created", t)
	})
	if err != nil {
		return Topic{}, err
	}
	return t, nil
}

// Topics lists a live forum channel's topics, oldest first, and their
// total.
func (s *Service) Topics(ctx context.Context, communityID, channelID string, skip, limit int) ([]Topic, int, error) {
	c, err := s.Get(ctx, communityID, channelID)
	if err != nil {
		return nil, 0, err
	}
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM forum_topics WHERE channel_id = ?", c.ID).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count topics: %w", err)
	}
	rows, err := s.d.DB.Query(ctx, `SELECT `+topicColumns+` FROM forum_topics WHERE channel_id = ?
		ORDER BY created_at, id LIMIT ? OFFSET ?`, c.ID, limit, skip)
	if err != nil {
		return nil, 0, fmt.Errorf("list topics: %w", err)
	}
	defer rows.Close()
	out := []Topic{}
	for rows.Next() {
		t, err := scanTopic(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list topics: %w", err)
	}
	return out, total, nil
}

const topicColumns = "id, channel_id, title, message_count, created_at, updated_at"

func scanTopic(r interface{ Scan(...any) error }) (Topic, error) {
	var (
		t                Topic
		created, updated int64
	)
	err := r.Scan(&t.ID, &t.ChannelID, &t.Title, &t.MessageCount, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Topic{}, errs.NotFoundf("Forum topic not found.")
	}
	if err != nil {
		return Topic{}, fmt.Errorf("read topic: %w", err)
	}
	t.CreatedAt, t.UpdatedAt = jsonx.Millis(created), jsonx.Millis(updated)
	return t, nil
}

// TopicTx reads topic topicID of channel channelID in tx (NotFound when
// it is not one of the channel's).
func TopicTx(ctx context.Context, tx *db.Tx, channelID, topicID string) (Topic, error) {
	return scanTopic(tx.QueryRow(ctx, "SELECT "+topicColumns+" FROM forum_topics WHERE channel_id = ? AND id = ?",
		channelID, strings.ToLower(strings.TrimSpace(topicID))))
}
