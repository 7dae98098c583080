// Package channel holds a community's channels: text (open), forum (with
// topics), iframe (carrying a URL), public direct channels and private DMs
// between two members; their order, category and per-role permission
// overrides. Deleting a channel hides it and stops posting; its messages stay
// for export and analytics.
package channel

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/role"
)

// Channel types. TypeOpen is a text channel ("text" is accepted for it);
// TypeDirect is a public direct channel; TypeDM is a private DM between two
// members, made by the first message between them and never by hand.
const (
	TypeOpen   = "open"
	TypeForum  = "forum"
	TypeIframe = "iframe"
	TypeDirect = "direct"
	TypeDM     = "dm"
)

// Limits on channels and their fields.
const (
	MaxTopicLen    = 100
	MaxCategoryLen = 100
	MaxURLLen      = 2048
	MaxOrder       = 1_000_000
	// MaxChannels bounds a community's live channels, DMs not counted.
	MaxChannels = 1000
)

// Channel is one channel, shaped as the documented legacy channel object
// (topic, permissions, userId, serverId, channelType, _id, createdAt,
// updatedAt, __v) plus Rally's fields.
type Channel struct {
	ID          string `json:"_id"`
	CommunityID string `json:"serverId"`
	Topic       string `json:"topic"`
	// Title repeats Topic: the documented schema table names the field
	// title while its example shows topic.
	Title string `json:"title"`
	Type  string `json:"channelType"`
	// URL is the page an iframe channel shows (null for other types).
	URL      *string `json:"url"`
	Category string  `json:"category"`
	Order    int     `json:"order"`
	// Permissions lists the roles that carry overrides on the channel (the
	// documented array of strings); Overrides holds what they change.
	Permissions []string        `json:"permissions"`
	Overrides   []role.Override `json:"overrides"`
	// UserID is the creator's numeric id (null when an API key made it).
	UserID *string `json:"userId"`
	// Participants are the two members of a private DM (empty otherwise).
	Participants []string   `json:"participants"`
	MessageCount int64      `json:"messageCount"`
	CreatedAt    jsonx.Time `json:"createdAt"`
	UpdatedAt    jsonx.Time `json:"updatedAt"`
	Version      int        `json:"__v"`
	// Deleted is set on a deleted channel (kept for its messages).
	Deleted bool `json:"-"`
}

// Deps are what the channel service needs.
type Deps struct {
	DB     *db.DB
	Clock  clock.Clock
	Events event.Appender
	Roles  *role.Service
}

// Service holds the rules for channels.
type Service struct {
	d Deps
}

// NewService returns the channel service.
func NewService(d Deps) *Service { return &Service{d: d} }

// Input is a channel as a client sends it (CH4, CH5); fields not sent keep
// their value on update.
type Input struct {
	Topic jsonx.Optional[string] `json:"topic"`
	// Title is accepted for topic (the documented schema table's name).
	Title       jsonx.Optional[string]          `json:"title"`
	ChannelType jsonx.Optional[string]          `json:"channelType"`
	URL         jsonx.Optional[string]          `json:"url"`
	Category    jsonx.Optional[string]          `json:"category"`
	Order       jsonx.Optional[int]             `json:"order"`
	Overrides   jsonx.Optional[[]role.Override] `json:"overrides"`
}

// apply validates in and writes it onto c; create requires topic and
// channelType.
func (in *Input) apply(c *Channel, create bool) error {
	var v errs.Validator
	topic, topicField := in.Topic, "topic"
	if !topic.Set && in.Title.Set {
		topic, topicField = in.Title, "title"
	}
	if topic.Set {
		t := strings.TrimSpace(topic.Value)
		v.Check(!topic.Null && t != "" && utf8.RuneCountInString(t) <= MaxTopicLen, topicField, "must be 1 to %d characters", MaxTopicLen)
		c.Topic = t
	} else if create {
		v.Add("topic", "is required")
	}
	if in.ChannelType.Set {
		t := strings.ToLower(strings.TrimSpace(in.ChannelType.Value))
		if t == "text" {
			t = TypeOpen
		}
		switch {
		case c.Type == TypeDM:
			v.Add("channelType", "cannot change on a private DM")
		case !slices.Contains([]string{TypeOpen, TypeForum, TypeIframe, TypeDirect}, t):
			v.Add("channelType", "must be open (or text), forum, iframe or direct; private DMs start with a first message")
		default:
			c.Type = t
		}
	} else if create {
		v.Add("channelType", "is required")
	}
	switch u := strings.TrimSpace(in.URL.Value); {
	case in.URL.Set && u != "" && c.Type != TypeIframe:
		v.Add("url", "is only for iframe channels")
	case in.URL.Set && u != "":
		v.Check(validURL(u), "url", "must be an absolute http or https URL of at most %d characters", MaxURLLen)
		c.URL = &u
	case in.URL.Set || c.Type != TypeIframe:
		c.URL = nil
	}
	if c.Type == TypeIframe && c.URL == nil && !(in.URL.Set && strings.TrimSpace(in.URL.Value) != "") {
		v.Add("url", "is required for an iframe channel")
	}
	if in.Category.Set {
		cat := strings.TrimSpace(in.Category.Value)
		v.Check(utf8.RuneCountInString(cat) <= MaxCategoryLen, "category", "must be at most %d characters", MaxCategoryLen)
		c.Category = cat
	}
	if in.Order.Set {
		v.Check(!in.Order.Null && in.Order.Value >= -MaxOrder && in.Order.Value <= MaxOrder, "order",
			"must be a whole number from %d to %d", -MaxOrder, MaxOrder)
		c.Order = in.Order.Value
	}
	return v.Err()
}

// validURL reports whether s is an absolute http(s) URL with a host.
func validURL(s string) bool {
	if len(s) > MaxURLLen {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil
}

// Create adds a channel to the community and records channel.created.
func (s *Service) Create(ctx context.Context, communityID string, in Input) (Channel, error) {
	now := s.d.Clock.Now()
	c := Channel{ID: id.New(now), CommunityID: communityID, CreatedAt: jsonx.At(now), UpdatedAt: jsonx.At(now)}
	if err := in.apply(&c, true); err != nil {
		return Channel{}, err
	}
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := event.LockCommunity(ctx, tx, communityID); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT COUNT(*) FROM channels WHERE community_id = ? AND deleted_at IS NULL AND channel_type <> ?",
			communityID, TypeDM).Scan(&n); err != nil {
			return fmt.Errorf("count channels: %w", err)
		}
		if n >= MaxChannels {
			return errs.Conflictf("A community has at most %d channels.", MaxChannels)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO channels (id, community_id, topic, channel_type, url, category, sort_order,
			created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, communityID, c.Topic, c.Type, c.URL, c.Category, c.Order, now.UnixMilli(), now.UnixMilli()); err != nil {
			return fmt.Errorf("insert channel: %w", err)
		}
		return s.finish(ctx, tx, &c, in, "channel.created")
	})
	if err != nil {
		return Channel{}, err
	}
	return c, nil
}

// finish stores in's overrides (when sent), reads c back and records typ.
func (s *Service) finish(ctx context.Context, tx *db.Tx, c *Channel, in Input, typ string) error {
	if in.Overrides.Set {
		list := in.Overrides.Value
		if in.Overrides.Null {
			list = nil
		}
		if err := s.d.Roles.SetChannelOverridesTx(ctx, tx, c.CommunityID, c.ID, list); err != nil {
			return err
		}
	}
	got, err := s.one(ctx, tx, c.CommunityID, c.ID, true)
	if err != nil {
		return err
	}
	*c = got
	return s.d.Events.Append(ctx, tx, c.CommunityID, typ, c)
}

// Update changes the fields of in that were sent and records
// channel.updated. Deleted channels and unknown ids are NotFound.
func (s *Service) Update(ctx context.Context, communityID, channelID string, in Input) (Channel, error) {
	return s.change(ctx, communityID, channelID, func(tx *db.Tx, c *Channel, now int64) error {
		if err := in.apply(c, false); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE channels SET topic = ?, channel_type = ?, url = ?, category = ?, sort_order = ?,
			updated_at = ?, version = version + 1 WHERE id = ?`,
			c.Topic, c.Type, c.URL, c.Category, c.Order, now, c.ID); err != nil {
			return fmt.Errorf("update channel: %w", err)
		}
		return s.finish(ctx, tx, c, in, "channel.updated")
	})
}

// Delete hides a channel and stops posting to it; its messages are kept.
// It records channel.deleted and returns the channel as it was.
func (s *Service) Delete(ctx context.Context, communityID, channelID string) (Channel, error) {
	return s.change(ctx, communityID, channelID, func(tx *db.Tx, c *Channel, now int64) error {
		if _, err := tx.Exec(ctx, "UPDATE channels SET deleted_at = ?, updated_at = ?, version = version + 1 WHERE id = ?",
			now, now, c.ID); err != nil {
			return fmt.Errorf("delete channel: %w", err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "channel.deleted", c)
	})
}

// change runs fn on a live channel of the community in a transaction that
// holds the community lock, and returns the channel as fn leaves it.
func (s *Service) change(ctx context.Context, communityID, channelID string, fn func(tx *db.Tx, c *Channel, now int64) error) (Channel, error) {
	var c Channel
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := event.LockCommunity(ctx, tx, communityID); err != nil {
			return err
		}
		var err error
		if c, err = s.one(ctx, tx, communityID, channelID, false); err != nil {
			return err
		}
		return fn(tx, &c, s.d.Clock.Now().UnixMilli())
	})
	if err != nil {
		return Channel{}, err
	}
	return c, nil
}

// Query selects channels to list.
type Query struct {
	// Type keeps one channel type ("" = every type but private DMs; "dm"
	// lists the DMs).
	Type string
	// Category keeps one category (nil = any).
	Category *string
	Skip     int
	Limit    int
}

// List returns the community's live channels matching q, ordered by order,
// then creation, and the total matching.
func (s *Service) List(ctx context.Context, communityID string, q Query) ([]Channel, int, error) {
	where := " WHERE c.community_id = ? AND c.deleted_at IS NULL"
	args := []any{communityID}
	switch t := strings.ToLower(q.Type); t {
	case "":
		where += " AND c.channel_type <> ?"
		args = append(args, TypeDM)
	case "text":
		where += " AND c.channel_type = ?"
		args = append(args, TypeOpen)
	case TypeOpen, TypeForum, TypeIframe, TypeDirect, TypeDM:
		where += " AND c.channel_type = ?"
		args = append(args, t)
	default:
		var v errs.Validator
		v.Add("type", "must be open, text, forum, iframe, direct or dm")
		return nil, 0, v.Err()
	}
	if q.Category != nil {
		where += " AND c.category = ?"
		args = append(args, *q.Category)
	}
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM channels c"+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count channels: %w", err)
	}
	list, err := s.query(ctx, s.d.DB, where+" ORDER BY c.sort_order, c.created_at, c.id LIMIT ? OFFSET ?",
		append(args, q.Limit, q.Skip)...)
	if err != nil {
		return nil, 0, err
	}
	return list, total, nil
}

// Get returns a live channel of the community; deleted channels, other
// communities' channels and malformed ids are NotFound.
func (s *Service) Get(ctx context.Context, communityID, channelID string) (Channel, error) {
	return s.one(ctx, s.d.DB, communityID, channelID, false)
}

// one reads a channel of the community through q (the database, or a
// writer's transaction holding the community lock); withDeleted also finds
// a deleted one.
func (s *Service) one(ctx context.Context, q querier, communityID, channelID string, withDeleted bool) (Channel, error) {
	channelID = strings.ToLower(strings.TrimSpace(channelID))
	if !id.Valid(channelID) {
		return Channel{}, errs.NotFoundf("Channel not found.")
	}
	where := " WHERE c.community_id = ? AND c.id = ?"
	if !withDeleted {
		where += " AND c.deleted_at IS NULL"
	}
	list, err := s.query(ctx, q, where, communityID, channelID)
	if err != nil {
		return Channel{}, err
	}
	if len(list) == 0 {
		return Channel{}, errs.NotFoundf("Channel not found.")
	}
	return list[0], nil
}

// querier is what reads need: the database or a transaction.
type querier interface {
	Query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// query reads the channels matched by where (which follows FROM channels c)
// with their creator's numeric id and their overrides.
func (s *Service) query(ctx context.Context, q querier, where string, args ...any) ([]Channel, error) {
	rows, err := q.Query(ctx, `SELECT c.id, c.community_id, c.topic, c.channel_type, c.url, c.category, c.sort_order, u.seq,
		c.dm_user_a, c.dm_user_b, c.message_count, c.version, c.created_at, c.updated_at, c.deleted_at
		FROM channels c LEFT JOIN users u ON u.id = c.creator_id`+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read channels: %w", err)
	}
	out := []Channel{}
	for rows.Next() {
		var (
			c                Channel
			creator          sql.NullInt64
			dmA, dmB         sql.NullString
			created, updated int64
			deleted          sql.NullInt64
		)
		if err := rows.Scan(&c.ID, &c.CommunityID, &c.Topic, &c.Type, &c.URL, &c.Category, &c.Order, &creator, &dmA, &dmB,
			&c.MessageCount, &c.Version, &created, &updated, &deleted); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read channels: %w", err)
		}
		c.Title = c.Topic
		if creator.Valid {
			n := strconv.FormatInt(creator.Int64, 10)
			c.UserID = &n
		}
		c.Participants = []string{}
		if dmA.Valid {
			c.Participants = []string{dmA.String, dmB.String}
		}
		c.CreatedAt, c.UpdatedAt, c.Deleted = jsonx.Millis(created), jsonx.Millis(updated), deleted.Valid
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read channels: %w", err)
	}
	ids := make([]string, len(out))
	for i, c := range out {
		ids[i] = c.ID
	}
	overrides, err := s.d.Roles.ChannelOverrides(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Overrides = overrides[out[i].ID]
		if out[i].Overrides == nil {
			out[i].Overrides = []role.Override{}
		}
		out[i].Permissions = make([]string, len(out[i].Overrides))
		for j, o := range out[i].Overrides {
			out[i].Permissions[j] = o.RoleID
		}
	}
	return out, nil
}

// DirectTx returns the private DM between members a and b (user _ids),
// making it when it does not exist yet; created says which. by is the
// member who starts it. The caller holds the community lock
// (event.LockCommunity), so two first messages cannot both make one.
func (s *Service) DirectTx(ctx context.Context, tx *db.Tx, communityID, by, a, b string, topic string) (c Channel, created bool, err error) {
	if b < a {
		a, b = b, a
	}
	var existing string
	err = tx.QueryRow(ctx, "SELECT id FROM channels WHERE community_id = ? AND dm_user_a = ? AND dm_user_b = ?", communityID, a, b).Scan(&existing)
	switch {
	case err == nil:
		c, err = s.one(ctx, tx, communityID, existing, true)
		return c, false, err
	case !errors.Is(err, sql.ErrNoRows):
		return Channel{}, false, fmt.Errorf("find dm: %w", err)
	}
	now := s.d.Clock.Now()
	newID := id.New(now)
	if _, err := tx.Exec(ctx, `INSERT INTO channels (id, community_id, topic, channel_type, creator_id, dm_user_a, dm_user_b,
		created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		newID, communityID, topic, TypeDM, by, a, b, now.UnixMilli(), now.UnixMilli()); err != nil {
		return Channel{}, false, fmt.Errorf("insert dm: %w", err)
	}
	c = Channel{ID: newID, CommunityID: communityID}
	if err := s.finish(ctx, tx, &c, Input{}, "channel.created"); err != nil {
		return Channel{}, false, err
	}
	return c, true, nil
}
