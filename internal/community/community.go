// Package community holds communities (the API's "servers") and their
// appearance: name and URI, custom domain, link-preview meta, the community
// bot and the theme colours.
package community

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rallyhq/rally/internal/event"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
)

// Community is one brand's community.
type Community struct {
	ID        string     `json:"_id"`
	Name      string     `json:"name"`
	URI       string     `json:"uri"`
	Domain    *string    `json:"domain"`
	CreatedAt jsonx.Time `json:"createdAt"`
	UpdatedAt jsonx.Time `json:"updatedAt"`
}

// Deps are what the community service needs.
type Deps struct {
	DB     *db.DB
	Clock  clock.Clock
	Events event.Appender
	Keys   *auth.Keys
}

// Service holds the rules for communities and their appearance.
type Service struct {
	d Deps
	// cache holds communities read recently, by id: every partner request
	// reads its community, and communities change rarely. A change on this
	// node replaces the entry at once; other nodes see it within cacheTTL.
	cache sync.Map // id -> *cachedCommunity
}

type cachedCommunity struct {
	c Community
	// json is c encoded as the API shows it, made once per entry so the
	// read path writes bytes instead of encoding the record per request.
	json     json.RawMessage
	loadedAt time.Time
}

// cacheTTL bounds how long a community read from the database is served
// from memory.
const cacheTTL = time.Second

// NewService returns the community service.
func NewService(d Deps) *Service { return &Service{d: d} }

// Input is a community's name, URI and domain as sent by a client; on update
// an absent field is left unchanged and a null domain clears it.
type Input struct {
	Name   jsonx.Optional[string] `json:"name"`
	URI    jsonx.Optional[string] `json:"uri"`
	Domain jsonx.Optional[string] `json:"domain"`
}

var (
	slugRE  = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?$`)
	labelRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)
)

const maxNameLen = 100

// validDomain reports whether s is a lowercase-able DNS host name with at
// least two labels, such as community.example.com.
func validDomain(s string) bool {
	s = strings.ToLower(s)
	if len(s) > 253 || !strings.Contains(s, ".") {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if !labelRE.MatchString(l) {
			return false
		}
	}
	// The top-level label is never all digits (that would be an IP address).
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}

// validate checks in, requiring name and uri when create is true, and
// normalises whitespace.
func (in *Input) validate(create bool) error {
	var v errs.Validator
	if in.Name.Set {
		in.Name.Value = strings.TrimSpace(in.Name.Value)
		v.Check(!in.Name.Null && in.Name.Value != "" && utf8.RuneCountInString(in.Name.Value) <= maxNameLen,
			"name", "must be 1 to %d characters", maxNameLen)
	} else if create {
		v.Add("name", "is required")
	}
	if in.URI.Set {
		in.URI.Value = strings.TrimSpace(in.URI.Value)
		v.Check(!in.URI.Null && slugRE.MatchString(in.URI.Value), "uri",
			"must be 1 to 64 letters, digits or hyphens, not starting or ending with a hyphen")
	} else if create {
		v.Add("uri", "is required")
	}
	if in.Domain.Set && !in.Domain.Null {
		in.Domain.Value = strings.ToLower(strings.TrimSpace(in.Domain.Value))
		if in.Domain.Value == "" {
			in.Domain.Null = true
		} else {
			v.Check(validDomain(in.Domain.Value), "domain", "must be a host name such as community.example.com")
		}
	}
	return v.Err()
}

// Create makes a community with default appearance and its first partner
// key holding every permission. The key's secret is returned once.
func (s *Service) Create(ctx context.Context, in Input) (c Community, key auth.Key, secret string, err error) {
	if err := in.validate(true); err != nil {
		return Community{}, auth.Key{}, "", err
	}
	now := s.d.Clock.Now()
	c = Community{ID: id.New(now), Name: in.Name.Value, URI: in.URI.Value, CreatedAt: jsonx.At(now), UpdatedAt: jsonx.At(now)}
	if in.Domain.Set && !in.Domain.Null {
		c.Domain = &in.Domain.Value
	}
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO communities (id, name, name_key, uri, uri_key, domain, domain_key, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.Name, nameKey(c.Name), c.URI, strings.ToLower(c.URI), c.Domain, c.Domain, now.UnixMilli(), now.UnixMilli())
		if err != nil {
			return uniqueConflict(err, "insert community")
		}
		if err := s.createAppearance(ctx, tx, c); err != nil {
			return err
		}
		if err := s.d.Events.Append(ctx, tx, c.ID, "community.created", c); err != nil {
			return err
		}
		key, secret, err = s.d.Keys.CreateTx(ctx, tx, auth.NewKey{CommunityID: c.ID, Name: "default", Permissions: auth.Permissions})
		if err != nil {
			return fmt.Errorf("create first key: %w", err)
		}
		return nil
	})
	if err != nil {
		return Community{}, auth.Key{}, "", err
	}
	return c, key, secret, nil
}

// nameKey is the form names are compared in: case-insensitive, inner
// whitespace folded.
func nameKey(name string) string {
	return strings.ToLower(strings.Join(strings.Fields(name), " "))
}

// uniqueConflict turns a unique violation on a community column into a 409
// naming the field.
func uniqueConflict(err error, doing string) error {
	for _, f := range []struct{ col, field string }{{"name_key", "name"}, {"uri_key", "uri"}, {"domain_key", "domain"}} {
		if db.UniqueViolationOn(err, f.col) {
			return errs.Conflictf("A community with this %s already exists.", f.field)
		}
	}
	return fmt.Errorf("%s: %w", doing, err)
}

const communityColumns = "id, name, uri, domain, created_at, updated_at"

func scanCommunity(r interface{ Scan(...any) error }) (Community, error) {
	var (
		c                Community
		domain           sql.NullString
		created, updated int64
	)
	if err := r.Scan(&c.ID, &c.Name, &c.URI, &domain, &created, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Community{}, errs.NotFoundf("Community not found.")
		}
		return Community{}, fmt.Errorf("scan community: %w", err)
	}
	if domain.Valid {
		c.Domain = &domain.String
	}
	c.CreatedAt, c.UpdatedAt = jsonx.Millis(created), jsonx.Millis(updated)
	return c, nil
}

// Get returns one community.
func (s *Service) Get(ctx context.Context, communityID string) (Community, error) {
	e, err := s.cached(ctx, communityID)
	return e.c, err
}

// GetJSON returns one community encoded as JSON, exactly as encoding/json
// encodes Get's answer. The bytes are shared between callers and must not
// be modified.
func (s *Service) GetJSON(ctx context.Context, communityID string) (json.RawMessage, error) {
	e, err := s.cached(ctx, communityID)
	return e.json, err
}

// cached returns the community's cache entry, reading and encoding the
// community when the entry is missing or older than cacheTTL.
func (s *Service) cached(ctx context.Context, communityID string) (cachedCommunity, error) {
	now := s.d.Clock.Now()
	if v, ok := s.cache.Load(communityID); ok {
		if age := now.Sub(v.(*cachedCommunity).loadedAt); age >= 0 && age < cacheTTL {
			return *v.(*cachedCommunity), nil
		}
	}
	c, err := scanCommunity(s.d.DB.QueryRow(ctx, "SELECT "+communityColumns+" FROM communities WHERE id = ?", communityID))
	if err != nil {
		return cachedCommunity{}, err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return cachedCommunity{}, fmt.Errorf("encode community: %w", err)
	}
	e := &cachedCommunity{c: c, json: b, loadedAt: now}
	s.cache.Store(communityID, e)
	return *e, nil
}

// List returns communities oldest first, skipping skip and at most limit,
// with the total count.
func (s *Service) List(ctx context.Context, skip, limit int) ([]Community, int, error) {
	return s.list(ctx, "", nil, skip, limit)
}

// ListForMember is List restricted to the communities userID is a live
// (joined, not deleted) member of.
func (s *Service) ListForMember(ctx context.Context, userID string, skip, limit int) ([]Community, int, error) {
	return s.list(ctx, " WHERE id IN (SELECT community_id FROM members WHERE user_id = ? AND joined = ? AND deleted_at IS NULL)",
		[]any{userID, true}, skip, limit)
}

func (s *Service) list(ctx context.Context, where string, args []any, skip, limit int) ([]Community, int, error) {
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM communities"+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count communities: %w", err)
	}
	rows, err := s.d.DB.Query(ctx, "SELECT "+communityColumns+" FROM communities"+where+" ORDER BY created_at, id LIMIT ? OFFSET ?",
		append(args, limit, skip)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list communities: %w", err)
	}
	defer rows.Close()
	out := []Community{}
	for rows.Next() {
		c, err := scanCommunity(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, c)
	}
	return out, total, rows.Err()
}

// HostNames returns the host names a community answers at, lowercase: its
// custom domain, when set, and its uri (Secure Auth checks the partner's
// hostname against them).
func (s *Service) HostNames(ctx context.Context, communityID string) ([]string, error) {
	c, err := s.Get(ctx, communityID)
	if err != nil {
		return nil, err
	}
	hosts := []string{strings.ToLower(c.URI)}
	if c.Domain != nil {
		hosts = append(hosts, strings.ToLower(*c.Domain))
	}
	return hosts, nil
}

// Update applies a partial update of name, uri and domain. Names, URIs and
// domains are unique across communities, compared case-insensitively.
func (s *Service) Update(ctx context.Context, communityID string, in Input) (Community, error) {
	if err := in.validate(false); err != nil {
		return Community{}, err
	}
	var c Community
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		c, err = scanCommunity(tx.QueryRow(ctx, "SELECT "+communityColumns+" FROM communities WHERE id = ?"+tx.DB().ForUpdate(), communityID))
		if err != nil {
			return err
		}
		if in.Name.Set {
			c.Name = in.Name.Value
		}
		if in.URI.Set {
			c.URI = in.URI.Value
		}
		if in.Domain.Set {
			c.Domain = nil
			if !in.Domain.Null {
				c.Domain = &in.Domain.Value
			}
		}
		now := s.d.Clock.Now()
		c.UpdatedAt = jsonx.At(now)
		_, err = tx.Exec(ctx, `UPDATE communities SET name = ?, name_key = ?, uri = ?, uri_key = ?, domain = ?, domain_key = ?, updated_at = ?
			WHERE id = ?`, c.Name, nameKey(c.Name), c.URI, strings.ToLower(c.URI), c.Domain, c.Domain, now.UnixMilli(), c.ID)
		if err != nil {
			return uniqueConflict(err, "update community")
		}
		return s.d.Events.Append(ctx, tx, c.ID, "community.updated", c)
	})
	if err != nil {
		return Community{}, err
	}
	s.cache.Delete(c.ID)
	return c, nil
}
