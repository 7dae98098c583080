// Package badge holds a community's badges: their definitions (the
// documented legacy badge object), which members hold them and how many
// times, the XP and coins an award grants (through the XP service, exactly
// once per award, in the award's transaction), and custom badges members
// apply for and moderators approve or reject.
package badge

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rallyhq/rally/internal/event"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/blob"
	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/xp"
)

// ActionCustom is the action of badges members apply for and moderators
// approve; badges with any other action are awarded by the partner's system.
const ActionCustom = "custom"

// XPAction is the gamification-log action of the XP and coins a badge
// award grants.
const XPAction = "badge"

// Limits on badge fields and awards.
const (
	maxTitleLen       = 100
	maxActionLen      = 50
	maxDescriptionLen = 2000
	maxURLLen         = 2048
	// MaxQuantity bounds a badge's quantity.
	MaxQuantity = 1_000_000_000
	// MaxRewardQuantity bounds the XP and coins one award of a badge grants.
	MaxRewardQuantity = 1_000_000
	// MaxAwardQuantity bounds how many times one request awards a badge.
	MaxAwardQuantity = 1000
)

// Deps are what the badge service needs.
type Deps struct {
	DB     *db.DB
	Clock  clock.Clock
	Events event.Appender
	Users  *user.Store
	XP     *xp.Service
	// Files keeps applications' proof files.
	Files *blob.Store
}

// Service holds the rules for badges, awards and applications.
type Service struct {
	d Deps
}

// NewService returns the badge service.
func NewService(d Deps) *Service { return &Service{d: d} }

// Badge is a badge definition. It is written as the documented legacy
// badge object, whose numbers and booleans are strings ("quantity":"3",
// "awarded":"true"); see MarshalJSON.
type Badge struct {
	ID                    string
	CommunityID           string
	Title                 string
	Action                string
	Quantity              int64
	Description           string
	Image                 string
	DarkImage             string
	LightImage            string
	EnabledDarkAndLight   bool
	Award                 bool
	AwardCurrency         bool
	AwardXPQuantity       int64
	AwardCurrencyQuantity int64
	AttachRequired        bool
	Applied               bool
	Awarded               bool
	// MultipleAwards lets a member hold the badge more than once.
	MultipleAwards bool
	CreatedAt      jsonx.Time
	UpdatedAt      jsonx.Time
}

// fields is the badge as the API writes it; Held adds to it.
func (b Badge) fields() map[string]any {
	return map[string]any{
		"id": b.ID, "title": b.Title, "action": b.Action, "quantity": strconv.FormatInt(b.Quantity, 10),
		"description": b.Description, "image": b.Image, "darkImage": b.DarkImage, "lightImage": b.LightImage,
		"enabledDarkAndLight": strconv.FormatBool(b.EnabledDarkAndLight), "award": strconv.FormatBool(b.Award),
		"awardCurrency": strconv.FormatBool(b.AwardCurrency), "awardXpQuantity": strconv.FormatInt(b.AwardXPQuantity, 10),
		"awardCurrencyQuantity": strconv.FormatInt(b.AwardCurrencyQuantity, 10),
		"attachRequired":        strconv.FormatBool(b.AttachRequired), "applied": strconv.FormatBool(b.Applied),
		"awarded": strconv.FormatBool(b.Awarded), "multipleAwards": strconv.FormatBool(b.MultipleAwards),
		"createdAt": b.CreatedAt, "updatedAt": b.UpdatedAt,
	}
}

// MarshalJSON writes the legacy badge object: every number and boolean as a
// string, as the docs show them.
func (b Badge) MarshalJSON() ([]byte, error) { return json.Marshal(b.fields()) }

// Rewards are the XP and coins one award of the badge grants.
func (b Badge) Rewards() (xpAmount, coins int64) {
	if b.Award {
		xpAmount = b.AwardXPQuantity
	}
	if b.AwardCurrency {
		coins = b.AwardCurrencyQuantity
	}
	return xpAmount, coins
}

// Input is a badge as a client sends it (create and update). On update an
// absent field is left as it is.
type Input struct {
	Title                 jsonx.Optional[string] `json:"title"`
	Action                jsonx.Optional[string] `json:"action"`
	Quantity              jsonx.Optional[int64]  `json:"quantity"`
	Description           jsonx.Optional[string] `json:"description"`
	Image                 jsonx.Optional[string] `json:"image"`
	DarkImage             jsonx.Optional[string] `json:"darkImage"`
	LightImage            jsonx.Optional[string] `json:"lightImage"`
	EnabledDarkAndLight   jsonx.Optional[bool]   `json:"enabledDarkAndLight"`
	Award                 jsonx.Optional[bool]   `json:"award"`
	AwardCurrency         jsonx.Optional[bool]   `json:"awardCurrency"`
	AwardXPQuantity       jsonx.Optional[int64]  `json:"awardXpQuantity"`
	AwardCurrencyQuantity jsonx.Optional[int64]  `json:"awardCurrencyQuantity"`
	AttachRequired        jsonx.Optional[bool]   `json:"attachRequired"`
	Applied               jsonx.Optional[bool]   `json:"applied"`
	Awarded               jsonx.Optional[bool]   `json:"awarded"`
	MultipleAwards        jsonx.Optional[bool]   `json:"multipleAwards"`
}

// titleKey is the form titles are compared in: case-insensitive, inner
// whitespace folded.
func titleKey(title string) string { return strings.ToLower(strings.Join(strings.Fields(title), " ")) }

// CheckURL reports whether s is empty or an absolute http(s) URL of at most
// 2048 characters.
func CheckURL(s string) bool {
	if s == "" {
		return true
	}
	if len(s) > maxURLLen {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// apply checks in and writes it onto b, naming every offending field.
// create makes title and action required.
func (in *Input) apply(b *Badge, create bool) error {
	var v errs.Validator
	text := func(field string, o jsonx.Optional[string], min, limit int, dst *string) {
		switch {
		case o.Set:
			s := strings.TrimSpace(o.Value)
			if o.Null || utf8.RuneCountInString(s) < min || utf8.RuneCountInString(s) > limit {
				if min > 0 {
					v.Add(field, "must be %d to %d characters", min, limit)
				} else {
					v.Add(field, "must be a string of at most %d characters", limit)
				}
				return
			}
			*dst = s
		case create && min > 0:
			v.Add(field, "is required")
		}
	}
	text("title", in.Title, 1, maxTitleLen, &b.Title)
	text("action", in.Action, 1, maxActionLen, &b.Action)
	text("description", in.Description, 0, maxDescriptionLen, &b.Description)
	for _, f := range []struct {
		name string
		o    jsonx.Optional[string]
		dst  *string
	}{{"image", in.Image, &b.Image}, {"darkImage", in.DarkImage, &b.DarkImage}, {"lightImage", in.LightImage, &b.LightImage}} {
		if !f.o.Set {
			continue
		}
		s := strings.TrimSpace(f.o.Value)
		if f.o.Null || !CheckURL(s) {
			v.Add(f.name, "must be empty or an http(s) URL of at most %d characters", maxURLLen)
			continue
		}
		*f.dst = s
	}
	for _, f := range []struct {
		name  string
		o     jsonx.Optional[int64]
		limit int64
		dst   *int64
	}{{"quantity", in.Quantity, MaxQuantity, &b.Quantity}, {"awardXpQuantity", in.AwardXPQuantity, MaxRewardQuantity, &b.AwardXPQuantity},
		{"awardCurrencyQuantity", in.AwardCurrencyQuantity, MaxRewardQuantity, &b.AwardCurrencyQuantity}} {
		if !f.o.Set {
			continue
		}
		if f.o.Null || f.o.Value < 0 || f.o.Value > f.limit {
			v.Add(f.name, "must be a whole number from 0 to %d", f.limit)
			continue
		}
		*f.dst = f.o.Value
	}
	for _, f := range []struct {
		name string
		o    jsonx.Optional[bool]
		dst  *bool
	}{{"enabledDarkAndLight", in.EnabledDarkAndLight, &b.EnabledDarkAndLight}, {"award", in.Award, &b.Award},
		{"awardCurrency", in.AwardCurrency, &b.AwardCurrency}, {"attachRequired", in.AttachRequired, &b.AttachRequired},
		{"applied", in.Applied, &b.Applied}, {"awarded", in.Awarded, &b.Awarded}, {"multipleAwards", in.MultipleAwards, &b.MultipleAwards}} {
		if !f.o.Set {
			continue
		}
		if f.o.Null {
			v.Add(f.name, "must be a boolean")
			continue
		}
		*f.dst = f.o.Value
	}
	return v.Err()
}

// Create adds a badge to the community. Titles are unique per community,
// compared case-insensitively (409).
func (s *Service) Create(ctx context.Context, communityID string, in Input) (Badge, error) {
	now := s.d.Clock.Now()
	b := Badge{ID: id.New(now), CommunityID: communityID, CreatedAt: jsonx.At(now), UpdatedAt: jsonx.At(now)}
	if err := in.apply(&b, true); err != nil {
		return Badge{}, err
	}
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO badges (id, community_id, title, title_key, action, quantity, description, image,
			dark_image, light_image, enabled_dark_and_light, award, award_currency, award_xp_quantity, award_currency_quantity,
			attach_required, applied, awarded, multiple_awards, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			b.ID, communityID, b.Title, titleKey(b.Title), b.Action, b.Quantity, b.Description, b.Image, b.DarkImage, b.LightImage,
			b.EnabledDarkAndLight, b.Award, b.AwardCurrency, b.AwardXPQuantity, b.AwardCurrencyQuantity, b.AttachRequired,
			b.Applied, b.Awarded, b.MultipleAwards, now.UnixMilli(), now.UnixMilli())
		if err != nil {
			return titleConflict(err, "create badge")
		}
		return s.d.Events.Append(ctx, tx, communityID, "badge.created", b)
	})
	if err != nil {
		return Badge{}, err
	}
	return b, nil
}

// Update changes the fields of in that were sent.
func (s *Service) Update(ctx context.Context, communityID, badgeID string, in Input) (Badge, error) {
	var b Badge
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if b, err = getBadge(ctx, tx, communityID, badgeID, true); err != nil {
			return err
		}
		if err := in.apply(&b, false); err != nil {
			return err
		}
		now := s.d.Clock.Now()
		b.UpdatedAt = jsonx.At(now)
		_, err = tx.Exec(ctx, `UPDATE badges SET title = ?, title_key = ?, action = ?, quantity = ?, description = ?, image = ?,
			dark_image = ?, light_image = ?, enabled_dark_and_light = ?, award = ?, award_currency = ?, award_xp_quantity = ?,
			award_currency_quantity = ?, attach_required = ?, applied = ?, awarded = ?, multiple_awards = ?, updated_at = ?
			WHERE id = ? AND community_id = ?`,
			b.Title, titleKey(b.Title), b.Action, b.Quantity, b.Description, b.Image, b.DarkImage, b.LightImage,
			b.EnabledDarkAndLight, b.Award, b.AwardCurrency, b.AwardXPQuantity, b.AwardCurrencyQuantity, b.AttachRequired,
			b.Applied, b.Awarded, b.MultipleAwards, now.UnixMilli(), b.ID, communityID)
		if err != nil {
			return titleConflict(err, "update badge")
		}
		return s.d.Events.Append(ctx, tx, communityID, "badge.updated", b)
	})
	if err != nil {
		return Badge{}, err
	}
	return b, nil
}

// Delete removes a badge: members holding it lose it and its pending
// applications go with it. XP and coins its awards granted stay (they are in
// the gamification log), and so does the award history.
func (s *Service) Delete(ctx context.Context, communityID, badgeID string) (Badge, error) {
	var b Badge
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if b, err = getBadge(ctx, tx, communityID, badgeID, true); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM badges WHERE id = ? AND community_id = ?", b.ID, communityID); err != nil {
			return fmt.Errorf("delete badge %s: %w", b.ID, err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "badge.deleted", b)
	})
	if err != nil {
		return Badge{}, err
	}
	return b, nil
}

// Get returns one badge of the community.
func (s *Service) Get(ctx context.Context, communityID, badgeID string) (Badge, error) {
	return getBadge(ctx, s.d.DB, communityID, badgeID, false)
}

// ListQuery selects badges: Action filters when not empty.
type ListQuery struct {
	Action      string
	Skip, Limit int
}

// List returns the community's badges, oldest first, skipping q.Skip and at
// most q.Limit, with the total matching.
func (s *Service) List(ctx context.Context, communityID string, q ListQuery) ([]Badge, int, error) {
	where, args := "WHERE community_id = ?", []any{communityID}
	if q.Action != "" {
		where, args = where+" AND action = ?", append(args, q.Action)
	}
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM badges "+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count badges: %w", err)
	}
	rows, err := s.d.DB.Query(ctx, "SELECT "+badgeColumns+" FROM badges "+where+" ORDER BY created_at, id LIMIT ? OFFSET ?",
		append(args, q.Limit, q.Skip)...)
	out, err := db.Collect(rows, err, "list badges", func(r db.Scanner) (Badge, error) { return scanBadge(r) })
	return out, total, err
}

// titleConflict turns a duplicate title into a Conflict.
func titleConflict(err error, what string) error {
	if db.UniqueViolationOn(err, "title") {
		return errs.Conflictf("A badge with this title already exists.")
	}
	return fmt.Errorf("%s: %w", what, err)
}

// querier is what reads need: the database or a transaction.
type querier interface {
	QueryRow(ctx context.Context, q string, args ...any) *sql.Row
}

// badgeColumns qualify the two names badge_holdings shares with badges, so
// they also serve joins.
const badgeColumns = `badges.id, badges.community_id, title, action, quantity, description, image, dark_image, light_image,
	enabled_dark_and_light, award, award_currency, award_xp_quantity, award_currency_quantity, attach_required, applied,
	awarded, multiple_awards, created_at, updated_at`

// scanBadge reads badgeColumns, then the extra columns that follow them
// into extra.
func scanBadge(r interface{ Scan(...any) error }, extra ...any) (Badge, error) {
	var (
		b                Badge
		created, updated int64
	)
	err := r.Scan(append([]any{&b.ID, &b.CommunityID, &b.Title, &b.Action, &b.Quantity, &b.Description, &b.Image, &b.DarkImage,
		&b.LightImage, &b.EnabledDarkAndLight, &b.Award, &b.AwardCurrency, &b.AwardXPQuantity, &b.AwardCurrencyQuantity,
		&b.AttachRequired, &b.Applied, &b.Awarded, &b.MultipleAwards, &created, &updated}, extra...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return Badge{}, errs.NotFoundf("Badge not found.")
	}
	if err != nil {
		return Badge{}, fmt.Errorf("scan badge: %w", err)
	}
	b.CreatedAt, b.UpdatedAt = jsonx.Millis(created), jsonx.Millis(updated)
	return b, nil
}

// getBadge reads one badge of the community; lock locks its row (inside a
// transaction on PostgreSQL). Ids of other communities are NotFound.
func getBadge(ctx context.Context, q querier, communityID, badgeID string, lock bool) (Badge, error) {
	if !id.Valid(badgeID) {
		return Badge{}, errs.NotFoundf("Badge not found.")
	}
	suffix := ""
	if tx, ok := q.(*db.Tx); ok && lock {
		suffix = tx.DB().ForUpdate()
	}
	return scanBadge(q.QueryRow(ctx, "SELECT "+badgeColumns+" FROM badges WHERE badges.id = ? AND badges.community_id = ?"+suffix,
		strings.ToLower(badgeID), communityID))
}
