package leaderboard

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rallyhq/rally/internal/event"
	"hash/fnv"
	"strings"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/user"
)

// Deps are what the leaderboard service needs.
type Deps struct {
	DB     *db.DB
	Clock  clock.Clock
	Events event.Appender
	Users  *user.Store
}

// Service holds leaderboards, their rules and their standings.
type Service struct {
	d Deps
}

// NewService returns the leaderboard service. Register its XPHook with the
// XP service and its WalletHook with the wallet so scores follow awards.
func NewService(d Deps) *Service { return &Service{d: d} }

// DefaultRef names the community's default leaderboard in place of its id.
const DefaultRef = "default"

// ListQuery is a list request: page from 1, limit 1-100, sort
// field:asc|desc, search keyword:<value> over name and slug.
type ListQuery struct {
	Page, Limit int
	SortField   string
	SortDesc    bool
	Keyword     string
}

// Sortable lists the fields a list may be sorted by.
var Sortable = map[string]string{"createdAt": "created_at", "updatedAt": "updated_at", "name": "name", "slug": "slug"}

// List returns a page of the community's leaderboards (the default one
// included, created on first access) and the count after the search.
func (s *Service) List(ctx context.Context, communityID string, q ListQuery) ([]Leaderboard, int, error) {
	if err := s.ensureDefault(ctx, communityID); err != nil {
		return nil, 0, err
	}
	where := "community_id = ?"
	args := []any{communityID}
	if q.Keyword != "" {
		pattern := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.ToLower(q.Keyword)) + "%"
		where += ` AND (LOWER(name) LIKE ? ESCAPE '\' OR slug LIKE ? ESCAPE '\')`
		args = append(args, pattern, pattern)
	}
	col, ok := Sortable[q.SortField]
	if !ok {
		col = "created_at"
	}
	dir := "ASC"
	if q.SortDesc {
		dir = "DESC"
	}
	out, total, err := db.ListPage(ctx, s.d.DB, "SELECT COUNT(*) FROM leaderboards WHERE "+where,
		"SELECT doc FROM leaderboards WHERE "+where+" ORDER BY "+col+" "+dir+", id "+dir, args, (q.Page-1)*q.Limit, q.Limit, scanBoard)
	if err != nil {
		return nil, 0, fmt.Errorf("list leaderboards: %w", err)
	}
	return out, total, nil
}

func scanBoard(r db.Scanner) (Leaderboard, error) {
	var doc string
	if err := r.Scan(&doc); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Leaderboard{}, errs.NotFoundf("Leaderboard not found.")
		}
		return Leaderboard{}, fmt.Errorf("read leaderboard: %w", err)
	}
	var b Leaderboard
	if err := json.Unmarshal([]byte(doc), &b); err != nil {
		return Leaderboard{}, fmt.Errorf("decode leaderboard: %w", err)
	}
	return b, nil
}

// checkRef validates a path reference: an ObjectId or "default".
func checkRef(ref string) (string, error) {
	ref = strings.ToLower(strings.TrimSpace(ref))
	if ref != DefaultRef && !id.Valid(ref) {
		var v errs.Validator
		v.Add("leaderboardId", "must be a 24-hex ObjectId or %q", DefaultRef)
		return "", v.Err()
	}
	return ref, nil
}

// Get returns one leaderboard of the community by id, or the default one
// for "default". Another community's leaderboard is NotFound.
func (s *Service) Get(ctx context.Context, communityID, ref string) (Leaderboard, error) {
	ref, err := checkRef(ref)
	if err != nil {
		return Leaderboard{}, err
	}
	if err := s.ensureDefault(ctx, communityID); err != nil {
		return Leaderboard{}, err
	}
	if ref == DefaultRef {
		return scanBoard(s.d.DB.QueryRow(ctx, "SELECT doc FROM leaderboards WHERE community_id = ? AND is_default = ?", communityID, true))
	}
	return scanBoard(s.d.DB.QueryRow(ctx, "SELECT doc FROM leaderboards WHERE community_id = ? AND id = ?", communityID, ref))
}

func (s *Service) getTx(ctx context.Context, tx *db.Tx, communityID, ref string) (Leaderboard, error) {
	if ref == DefaultRef {
		return scanBoard(tx.QueryRow(ctx, "SELECT doc FROM leaderboards WHERE community_id = ? AND is_default = ?"+tx.DB().ForUpdate(), communityID, true))
	}
	return scanBoard(tx.QueryRow(ctx, "SELECT doc FROM leaderboards WHERE community_id = ? AND id = ?"+tx.DB().ForUpdate(), communityID, ref))
}

// Create validates in and stores a new leaderboard; its scores are built
// from the awards already made in its run. A slug taken in the community is
// a Conflict.
func (s *Service) Create(ctx context.Context, communityID string, in Input) (Leaderboard, error) {
	now := s.d.Clock.Now()
	b, err := in.apply(Leaderboard{}, true)
	if err != nil {
		return Leaderboard{}, err
	}
	b.ID, b.CommunityID, b.CreatedAt, b.UpdatedAt = id.New(now), communityID, jsonx.At(now), jsonx.At(now)
	if err := s.ensureDefault(ctx, communityID); err != nil {
		return Leaderboard{}, err
	}
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := lockBoards(ctx, tx, communityID, true); err != nil {
			return err
		}
		if err := s.insert(ctx, tx, b); err != nil {
			return err
		}
		if err := s.rebuild(ctx, tx, b); err != nil {
			return err
		}
		return s.d.Events.Append(ctx, tx, communityID, "leaderboard.created", b)
	})
	return b, err
}

func (s *Service) insert(ctx context.Context, tx *db.Tx, b Leaderboard) error {
	doc, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("encode leaderboard: %w", err)
	}
	start, end := b.bounds()
	_, err = tx.Exec(ctx, `INSERT INTO leaderboards (id, community_id, slug, name, rank_by, is_default, start_at, end_at, doc, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, b.ID, b.CommunityID, b.Slug, b.Name, b.RankBy, b.IsDefault, start, end, string(doc),
		b.CreatedAt.UnixMilli(), b.UpdatedAt.UnixMilli())
	if db.UniqueViolationOn(err, "slug") {
		return errs.Conflictf("A leaderboard with slug %q already exists in this community.", b.Slug)
	}
	if err != nil {
		return fmt.Errorf("insert leaderboard: %w", err)
	}
	return nil
}

// bounds returns the run as nullable unix milliseconds.
func (b Leaderboard) bounds() (start, end sql.NullInt64) {
	w := b.Duration.window()
	if !w.from.IsZero() {
		start = sql.NullInt64{Int64: w.from.UnixMilli(), Valid: true}
	}
	if !w.to.IsZero() {
		end = sql.NullInt64{Int64: w.to.UnixMilli(), Valid: true}
	}
	return start, end
}

// Update applies the fields in carries to the leaderboard ref. A change to
// the metric, the run or the time filters rebuilds its scores.
func (s *Service) Update(ctx context.Context, communityID, ref string, in Input) (Leaderboard, error) {
	ref, err := checkRef(ref)
	if err != nil {
		return Leaderboard{}, err
	}
	if err := s.ensureDefault(ctx, communityID); err != nil {
		return Leaderboard{}, err
	}
	var out Leaderboard
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := lockBoards(ctx, tx, communityID, true); err != nil {
			return err
		}
		old, err := s.getTx(ctx, tx, communityID, ref)
		if err != nil {
			return err
		}
		b, err := in.apply(old, false)
		if err != nil {
			return err
		}
		b.UpdatedAt = jsonx.At(s.d.Clock.Now())
		doc, err := json.Marshal(b)
		if err != nil {
			return fmt.Errorf("encode leaderboard: %w", err)
		}
		start, end := b.bounds()
		_, err = tx.Exec(ctx, `UPDATE leaderboards SET slug = ?, name = ?, rank_by = ?, start_at = ?, end_at = ?, doc = ?, updated_at = ?
			WHERE id = ?`, b.Slug, b.Name, b.RankBy, start, end, string(doc), b.UpdatedAt.UnixMilli(), b.ID)
		if db.UniqueViolationOn(err, "slug") {
			return errs.Conflictf("A leaderboard with slug %q already exists in this community.", b.Slug)
		}
		if err != nil {
			return fmt.Errorf("update leaderboard: %w", err)
		}
		if scoringChanged(old, b) {
			if err := s.rebuild(ctx, tx, b); err != nil {
				return err
			}
		}
		out = b
		return s.d.Events.Append(ctx, tx, communityID, "leaderboard.updated", b)
	})
	return out, err
}

// scoringChanged reports whether the scores of b must be rebuilt.
func scoringChanged(old, b Leaderboard) bool {
	ob, oe := old.bounds()
	nb, ne := b.bounds()
	return old.RankBy != b.RankBy || ob != nb || oe != ne || old.Duration.TimeZone != b.Duration.TimeZone ||
		strings.Join(old.TimeFilters, ",") != strings.Join(b.TimeFilters, ",")
}

// Delete removes the leaderboard ref and its scores and returns it as it
// was. The default leaderboard cannot be deleted (Conflict).
func (s *Service) Delete(ctx context.Context, communityID, ref string) (Leaderboard, error) {
	ref, err := checkRef(ref)
	if err != nil {
		return Leaderboard{}, err
	}
	var out Leaderboard
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := lockBoards(ctx, tx, communityID, true); err != nil {
			return err
		}
		b, err := s.getTx(ctx, tx, communityID, ref)
		if err != nil {
			return err
		}
		if b.IsDefault {
			return errs.Conflictf("The default leaderboard cannot be deleted.")
		}
		for _, q := range []string{"DELETE FROM leaderboard_buckets WHERE leaderboard_id = ?", "DELETE FROM leaderboard_bucket_groups WHERE leaderboard_id = ?",
			"DELETE FROM leaderboard_scores WHERE leaderboard_id = ?", "DELETE FROM leaderboards WHERE id = ?"} {
			if _, err := tx.Exec(ctx, q, b.ID); err != nil {
				return fmt.Errorf("delete leaderboard: %w", err)
			}
		}
		out = b
		return s.d.Events.Append(ctx, tx, communityID, "leaderboard.deleted", map[string]string{"_id": b.ID, "slug": b.Slug})
	})
	return out, err
}

// defaultBoard is the community's default leaderboard: members by lifetime
// XP with level, tier and badges shown, every time filter, open-ended.
func defaultBoard(communityID string, now jsonx.Time) Leaderboard {
	cols := []string{"user", "xps", "level", "tier", "badges"}
	b := Leaderboard{ID: id.New(now.Time), CommunityID: communityID, Name: "Leaderboard", Slug: "xp-leaderboard",
		Description: "Members ranked by XP.", RankBy: RankXP, DisplayedFields: cols, DisplayFieldsOrder: cols,
		TimeFilters: []string{AllTime, Monthly, Weekly, Daily}, Duration: Duration{NoEndDate: true},
		PerformanceDisplay: PerformanceDisplay{ShowTop: TopToggle{Value: defaultTopLimit}},
		RankedUserRoles:    Audience{Users: []string{}, Roles: []string{}, Tags: []string{}},
		Widget:             Widget{Size: "dynamic", WhitelistedDomains: []string{}},
		Enabled:            true, IsDefault: true, DummyUsers: []DummyUser{}, CreatedAt: now, UpdatedAt: now}
	b.ViewPermissionUserRoles = b.RankedUserRoles
	for i, c := range cols {
		b.DisplayedColumns = append(b.DisplayedColumns, Column{Column: c, Visible: true, Order: i})
	}
	return b
}

// ensureDefault creates the community's default XP leaderboard on first
// access, once, with scores built from the XP already awarded.
func (s *Service) ensureDefault(ctx context.Context, communityID string) error {
	var n int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM leaderboards WHERE community_id = ? AND is_default = ?", communityID, true).Scan(&n); err != nil {
		return fmt.Errorf("find default leaderboard: %w", err)
	}
	if n > 0 {
		return nil
	}
	return s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := lockBoards(ctx, tx, communityID, true); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT COUNT(*) FROM leaderboards WHERE community_id = ? AND is_default = ?", communityID, true).Scan(&n); err != nil {
			return fmt.Errorf("find default leaderboard: %w", err)
		}
		if n > 0 {
			return nil
		}
		b := defaultBoard(communityID, jsonx.At(s.d.Clock.Now()))
		var taken int
		if err := tx.QueryRow(ctx, "SELECT COUNT(*) FROM leaderboards WHERE community_id = ? AND slug = ?", communityID, b.Slug).Scan(&taken); err != nil {
			return fmt.Errorf("find default leaderboard: %w", err)
		}
		if taken > 0 {
			b.Slug += "-" + b.ID[len(b.ID)-6:]
		}
		if err := s.insert(ctx, tx, b); err != nil {
			return err
		}
		return s.rebuild(ctx, tx, b)
	})
}

// lockBoards orders score maintenance against changes to a community's
// leaderboards on PostgreSQL: every award holds the community's lock shared,
// creating or rescheduling a leaderboard holds it exclusively, so a rebuild
// never misses an award committing beside it. SQLite's single writer
// already serialises both.
func lockBoards(ctx context.Context, tx *db.Tx, communityID string, exclusive bool) error {
	if tx.Dialect() != db.Postgres {
		return nil
	}
	h := fnv.New64a()
	h.Write([]byte("leaderboards:" + communityID))
	fn := "pg_advisory_xact_lock_shared"
	if exclusive {
		fn = "pg_advisory_xact_lock"
	}
	if _, err := tx.Exec(ctx, "SELECT "+fn+"(?)", int64(h.Sum64())); err != nil {
		return fmt.Errorf("lock leaderboards: %w", err)
	}
	return nil
}
