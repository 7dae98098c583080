package role

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
)

// EveryoneTitle is the title of the role every member holds implicitly.
const EveryoneTitle = "@all"

// Limits on roles and their fields.
const (
	// MaxRoles bounds a community's roles, @all included, so a member's
	// role list stays short enough to answer whole.
	MaxRoles          = 250
	maxTitleLen       = 100
	maxDescriptionLen = 500
	maxClassLen       = 50
	maxOrder          = 1_000_000
)

// Role is a community role, shaped as the documented legacy role object.
type Role struct {
	ID                 string      `json:"_id"`
	Order              int         `json:"order"`
	Billable           bool        `json:"billable"`
	Title              string      `json:"title"`
	Description        string      `json:"description"`
	ServerPermissions  Permissions `json:"serverPermissions"`
	ChannelPermissions Permissions `json:"channelPermissions"`
	Class              string      `json:"class"`
	// ServerID is the community the role belongs to.
	ServerID  string     `json:"serverId"`
	CreatedAt jsonx.Time `json:"createdAt"`
	UpdatedAt jsonx.Time `json:"updatedAt"`
	// Version is the role's revision; it rises by one on every update.
	Version int `json:"__v"`
	// Everyone marks the community's @all role.
	Everyone bool `json:"-"`
}

// Input is a role as a client sends it. Both documented body shapes are
// accepted: snake_case server_permissions/channel_permissions (older
// edition) and camelCase serverPermissions/channelPermissions (newer); one
// request uses one of them per map. On update an absent field is left as it
// is, and inside a permission map only the keys sent change.
type Input struct {
	Title              jsonx.Optional[string]         `json:"title"`
	Description        jsonx.Optional[string]         `json:"description"`
	Class              jsonx.Optional[string]         `json:"class"`
	Order              jsonx.Optional[int]            `json:"order"`
	Billable           jsonx.Optional[bool]           `json:"billable"`
	ServerPermissions  jsonx.Optional[map[string]any] `json:"serverPermissions"`
	ChannelPermissions jsonx.Optional[map[string]any] `json:"channelPermissions"`
	ServerSnake        jsonx.Optional[map[string]any] `json:"server_permissions"`
	ChannelSnake       jsonx.Optional[map[string]any] `json:"channel_permissions"`
}

// titleKey is the form titles are compared in: case-insensitive, inner
// whitespace folded.
func titleKey(title string) string {
	return strings.ToLower(strings.Join(strings.Fields(title), " "))
}

// apply checks in and writes it onto r, naming every offending field. create
// makes title required.
func (in *Input) apply(r *Role, create bool) error {
	var v errs.Validator
	switch {
	case in.Title.Set:
		t := strings.TrimSpace(in.Title.Value)
		switch {
		case in.Title.Null || t == "" || utf8.RuneCountInString(t) > maxTitleLen:
			v.Add("title", "must be 1 to %d characters", maxTitleLen)
		case r.Everyone && t != EveryoneTitle:
			v.Add("title", "the %s role cannot be renamed", EveryoneTitle)
		default:
			r.Title = t
		}
	case create:
		v.Add("title", "is required")
	}
	text := func(field string, o jsonx.Optional[string], limit int, dst *string) {
		if !o.Set {
			return
		}
		s := strings.TrimSpace(o.Value)
		if utf8.RuneCountInString(s) > limit {
			v.Add(field, "must be at most %d characters", limit)
			return
		}
		*dst = s
	}
	text("description", in.Description, maxDescriptionLen, &r.Description)
	text("class", in.Class, maxClassLen, &r.Class)
	if in.Order.Set {
		switch {
		case in.Order.Null || in.Order.Value < 0 || in.Order.Value > maxOrder:
			v.Add("order", "must be a whole number from 0 to %d", maxOrder)
		case r.Everyone && in.Order.Value != 0:
			v.Add("order", "the %s role always has order 0", EveryoneTitle)
		default:
			r.Order = in.Order.Value
		}
	}
	if in.Billable.Set {
		if in.Billable.Null {
			v.Add("billable", "must be a boolean")
		} else {
			r.Billable = in.Billable.Value
		}
	}
	permissions(&v, r.ServerPermissions, ServerPermissions, in.ServerPermissions, "serverPermissions", in.ServerSnake, "server_permissions")
	permissions(&v, r.ChannelPermissions, ChannelPermissions, in.ChannelPermissions, "channelPermissions", in.ChannelSnake, "channel_permissions")
	return v.Err()
}

// permissions merges whichever of the two spellings of one permission map
// was sent into p.
func permissions(v *errs.Validator, p Permissions, set []string, camel jsonx.Optional[map[string]any], camelField string,
	snake jsonx.Optional[map[string]any], snakeField string) {
	if camel.Set && snake.Set {
		v.Add(snakeField, "send either %s or %s, not both", snakeField, camelField)
		return
	}
	o, field := camel, camelField
	if snake.Set {
		o, field = snake, snakeField
	}
	if !o.Set {
		return
	}
	if o.Null {
		v.Add(field, "must be an object")
		return
	}
	p.merge(v, field, o.Value, set)
}

// Create adds a role to the community. Titles are unique per community,
// compared case-insensitively (409); the community holds at most MaxRoles.
func (s *Service) Create(ctx context.Context, communityID string, in Input) (Role, error) {
	now := s.d.Clock.Now()
	r := Role{ID: id.New(now), ServerID: communityID, CreatedAt: jsonx.At(now), UpdatedAt: jsonx.At(now),
		ServerPermissions: Permissions{}.full(ServerPermissions), ChannelPermissions: Permissions{}.full(ChannelPermissions)}
	if err := in.apply(&r, true); err != nil {
		return Role{}, err
	}
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := tx.Lock(ctx, "roles:"+communityID); err != nil {
			return err
		}
		if err := s.ensureEveryoneTx(ctx, tx, communityID); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT COUNT(*) FROM roles WHERE community_id = ?", communityID).Scan(&n); err != nil {
			return fmt.Errorf("count roles: %w", err)
		}
		if n >= MaxRoles {
			return errs.Conflictf("A community can have at most %d roles.", MaxRoles)
		}
		if _, err := insertRole(ctx, tx, r, false); err != nil {
			return err
		}
		return s.d.Events.Append(ctx, tx, communityID, "role.created", r)
	})
	if err != nil {
		return Role{}, err
	}
	return r, nil
}

// Update changes the fields of in that were sent. The @all role keeps its
// title and order; its other fields, permissions included, may change.
func (s *Service) Update(ctx context.Context, communityID, roleID string, in Input) (Role, error) {
	var r Role
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if r, err = getRoleTx(ctx, tx, communityID, roleID); err != nil {
			return err
		}
		if err := in.apply(&r, false); err != nil {
			return err
		}
		now := s.d.Clock.Now()
		r.UpdatedAt = jsonx.At(now)
		r.Version++
		server, channel, err := r.encodedPermissions()
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE roles SET title = ?, title_key = ?, description = ?, class = ?, sort_order = ?, billable = ?,
			server_permissions = ?, channel_permissions = ?, updated_at = ?, version = ? WHERE id = ? AND community_id = ?`,
			r.Title, titleKey(r.Title), r.Description, r.Class, r.Order, r.Billable, server, channel, now.UnixMilli(), r.Version,
			r.ID, communityID)
		if err != nil {
			return titleConflict(err, "update role")
		}
		return s.d.Events.Append(ctx, tx, communityID, "role.updated", r)
	})
	if err != nil {
		return Role{}, err
	}
	return r, nil
}

// Delete removes a role; the members holding it lose it. The @all role
// cannot be deleted (409).
func (s *Service) Delete(ctx context.Context, communityID, roleID string) (Role, error) {
	var r Role
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if r, err = getRoleTx(ctx, tx, communityID, roleID); err != nil {
			return err
		}
		if r.Everyone {
			return errs.Conflictf("The %s role cannot be deleted.", EveryoneTitle)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM roles WHERE id = ? AND community_id = ?", r.ID, communityID); err != nil {
			return fmt.Errorf("delete role %s: %w", r.ID, err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "role.deleted", r)
	})
	if err != nil {
		return Role{}, err
	}
	return r, nil
}

// List returns the community's roles, @all included, highest order first
// (ties: earliest created), skipping skip and at most limit, with the total.
func (s *Service) List(ctx context.Context, communityID string, skip, limit int) ([]Role, int, error) {
	if err := s.ensureEveryone(ctx, communityID); err != nil {
		return nil, 0, err
	}
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM roles WHERE community_id = ?", communityID).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count roles: %w", err)
	}
	list, err := queryRoles(ctx, s.d.DB, "WHERE community_id = ?"+roleOrder+" LIMIT ? OFFSET ?", communityID, limit, skip)
	return list, total, err
}

// ensureEveryone makes the community's @all role if it does not exist yet.
func (s *Service) ensureEveryone(ctx context.Context, communityID string) error {
	var n int
	err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM roles WHERE community_id = ? AND is_everyone = TRUE", communityID).Scan(&n)
	if err != nil {
		return fmt.Errorf("find %s role: %w", EveryoneTitle, err)
	}
	if n > 0 {
		return nil
	}
	return s.d.DB.Tx(ctx, func(tx *db.Tx) error { return s.ensureEveryoneTx(ctx, tx, communityID) })
}

// ensureEveryoneTx makes the @all role in tx unless it exists; concurrent
// callers insert it once (the title is unique per community).
func (s *Service) ensureEveryoneTx(ctx context.Context, tx *db.Tx, communityID string) error {
	now := s.d.Clock.Now()
	server, channel := everyoneDefaults()
	r := Role{ID: id.New(now), Title: EveryoneTitle, ServerID: communityID, ServerPermissions: server, ChannelPermissions: channel,
		CreatedAt: jsonx.At(now), UpdatedAt: jsonx.At(now), Everyone: true}
	inserted, err := insertRole(ctx, tx, r, true)
	if err != nil || !inserted {
		return err
	}
	return s.d.Events.Append(ctx, tx, communityID, "role.created", r)
}

// querier is what reads need: the database or a transaction.
type querier interface {
	Query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRow(ctx context.Context, q string, args ...any) *sql.Row
}

const roleColumns = `id, community_id, title, description, class, sort_order, billable, is_everyone, server_permissions,
	channel_permissions, created_at, updated_at, version`

// roleOrder sorts roles highest first, ties by creation.
const roleOrder = " ORDER BY sort_order DESC, created_at, id"

func scanRole(r interface{ Scan(...any) error }) (Role, error) {
	var (
		role             Role
		server, channel  string
		created, updated int64
	)
	err := r.Scan(&role.ID, &role.ServerID, &role.Title, &role.Description, &role.Class, &role.Order, &role.Billable,
		&role.Everyone, &server, &channel, &created, &updated, &role.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return Role{}, errs.NotFoundf("Role not found.")
	}
	if err != nil {
		return Role{}, fmt.Errorf("scan role: %w", err)
	}
	if role.ServerPermissions, err = decodePermissions(server, ServerPermissions); err != nil {
		return Role{}, err
	}
	if role.ChannelPermissions, err = decodePermissions(channel, ChannelPermissions); err != nil {
		return Role{}, err
	}
	role.CreatedAt, role.UpdatedAt = jsonx.Millis(created), jsonx.Millis(updated)
	return role, nil
}

// queryRoles reads the roles matched by where (which follows FROM roles).
func queryRoles(ctx context.Context, q querier, where string, args ...any) ([]Role, error) {
	rows, err := q.Query(ctx, "SELECT "+roleColumns+" FROM roles "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	defer rows.Close()
	out := []Role{}
	for rows.Next() {
		r, err := scanRole(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	return out, nil
}

// getRoleTx reads one role of the community in tx, locking it on
// PostgreSQL. Ids are matched case-insensitively; another community's role
// is NotFound.
func getRoleTx(ctx context.Context, tx *db.Tx, communityID, roleID string) (Role, error) {
	if err := checkRoleID(roleID); err != nil {
		return Role{}, err
	}
	return scanRole(tx.QueryRow(ctx, "SELECT "+roleColumns+" FROM roles WHERE id = ? AND community_id = ?"+tx.DB().ForUpdate(),
		strings.ToLower(roleID), communityID))
}

// encodedPermissions returns both permission maps in their stored form.
func (r Role) encodedPermissions() (server, channel string, err error) {
	if server, err = r.ServerPermissions.encode(); err != nil {
		return "", "", err
	}
	if channel, err = r.ChannelPermissions.encode(); err != nil {
		return "", "", err
	}
	return server, channel, nil
}

// insertRole writes a new role. With ignoreClash a role of the same title
// already there is left alone and inserted reports false.
func insertRole(ctx context.Context, tx *db.Tx, r Role, ignoreClash bool) (inserted bool, err error) {
	server, channel, err := r.encodedPermissions()
	if err != nil {
		return false, err
	}
	q := `INSERT INTO roles (id, community_id, title, title_key, description, class, sort_order, billable,
		is_everyone, server_permissions, channel_permissions, created_at, updated_at, version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	if ignoreClash {
		q += " ON CONFLICT (community_id, title_key) DO NOTHING"
	}
	res, err := tx.Exec(ctx, q, r.ID, r.ServerID, r.Title, titleKey(r.Title), r.Description, r.Class, r.Order, r.Billable,
		r.Everyone, server, channel, r.CreatedAt.UnixMilli(), r.UpdatedAt.UnixMilli(), r.Version)
	if err != nil {
		return false, titleConflict(err, "insert role")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("insert role: %w", err)
	}
	return n == 1, nil
}

// checkRoleID names roleId when it is not an ObjectId.
func checkRoleID(roleID string) error {
	if id.Valid(roleID) {
		return nil
	}
	var v errs.Validator
	v.Add("roleId", "must be a 24-hex role id")
	return v.Err()
}

// titleConflict turns a clash on the title into a 409 naming the field.
func titleConflict(err error, doing string) error {
	if db.UniqueViolationOn(err, "title_key") {
		return &errs.Error{Kind: errs.Conflict, Message: "A role with this title already exists in this community.",
			Fields: []errs.FieldError{{Field: "title", Message: "is already taken"}}}
	}
	return fmt.Errorf("%s: %w", doing, err)
}
