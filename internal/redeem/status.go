package redeem

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
)

// Status categories, derived from a status's flags: orders still moving are
// incomplete; final ones are complete, or cancelled when they refunded.
const (
	CategoryIncomplete = "incomplete"
	CategoryComplete   = "complete"
	CategoryCancelled  = "cancelled"
)

// Status is a redemption status of a community.
type Status struct {
	ID          string `json:"_id"`
	CommunityID string `json:"communityID"`
	Name        string `json:"name"`
	// Category is derived: incomplete, complete or cancelled.
	Category string `json:"category"`
	Color    string `json:"color"`
	// IsFinal statuses cannot be left.
	IsFinal bool `json:"isFinal"`
	// Refunds: moving an order here returns its price and stock (once).
	Refunds bool `json:"refunds"`
	// IsDefault marks the status new orders start in.
	IsDefault bool       `json:"isDefault"`
	Order     int        `json:"order"`
	CreatedAt jsonx.Time `json:"createdAt"`
	UpdatedAt jsonx.Time `json:"updatedAt"`
}

// StatusRef is the short form of a status embedded in orders and history.
type StatusRef struct {
	ID       string `json:"_id"`
	Name     string `json:"name"`
	Category string `json:"category"`
	Color    string `json:"color"`
	IsFinal  bool   `json:"isFinal"`
	Refunds  bool   `json:"refunds"`
}

// Ref returns the short form of s.
func (s Status) Ref() StatusRef {
	return StatusRef{ID: s.ID, Name: s.Name, Category: s.Category, Color: s.Color, IsFinal: s.IsFinal, Refunds: s.Refunds}
}

func category(final, refunds bool) string {
	switch {
	case !final:
		return CategoryIncomplete
	case refunds:
		return CategoryCancelled
	default:
		return CategoryComplete
	}
}

// StatusInput is a status to create: name and color required.
type StatusInput struct {
	Name      *string `json:"name"`
	Color     *string `json:"color"`
	IsFinal   *bool   `json:"isFinal"`
	Refunds   *bool   `json:"refunds"`
	IsDefault *bool   `json:"isDefault"`
	Order     *int    `json:"order"`
}

// Limits on statuses.
const (
	maxStatusName = 64
	maxOrder      = 1_000_000
)

var colorRE = regexp.MustCompile(`^#(?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6}|[0-9A-Fa-f]{8})$`)

// defaultStatuses is the set every community starts with.
var defaultStatuses = []struct {
	name, color               string
	final, refunds, isDefault bool
}{
	{"Pending", "#F5A623", false, false, true},
	{"Processing", "#3EA1FD", false, false, false},
	{"Completed", "#27AE60", true, false, false},
	{"Cancelled", "#9B9B9B", true, true, false},
	{"Rejected", "#E74C3C", true, true, false},
}

func nameKey(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }

const statusColumns = "id, community_id, name, color, is_final, refunds, is_default, display_order, created_at, updated_at"

func scanStatus(r scanner) (Status, error) {
	var (
		s                Status
		created, updated int64
	)
	err := r.Scan(&s.ID, &s.CommunityID, &s.Name, &s.Color, &s.IsFinal, &s.Refunds, &s.IsDefault, &s.Order, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Status{}, errs.NotFoundf("Redemption status not found.")
	}
	if err != nil {
		return Status{}, fmt.Errorf("read redemption status: %w", err)
	}
	s.Category = category(s.IsFinal, s.Refunds)
	s.CreatedAt, s.UpdatedAt = jsonx.Millis(created), jsonx.Millis(updated)
	return s, nil
}

// ensureStatuses creates the community's default statuses the first time
// any status is needed. It is idempotent and safe under concurrency: the
// inserts skip names that exist.
func (s *Service) ensureStatuses(ctx context.Context, tx *db.Tx, communityID string) error {
	var n int
	if err := tx.QueryRow(ctx, "SELECT COUNT(*) FROM redemption_statuses WHERE community_id = ?", communityID).Scan(&n); err != nil {
		return fmt.Errorf("ensure redemption statuses: %w", err)
	}
	if n > 0 {
		return nil
	}
	now := s.d.Clock.Now()
	for i, d := range defaultStatuses {
		if _, err := tx.Exec(ctx, `INSERT INTO redemption_statuses (`+statusColumns+`, name_key)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (community_id, name_key) DO NOTHING`,
			id.New(now), communityID, d.name, d.color, d.final, d.refunds, d.isDefault, i, now.UnixMilli(), now.UnixMilli(),
			nameKey(d.name)); err != nil {
			return fmt.Errorf("ensure redemption statuses: %w", err)
		}
	}
	return nil
}

// readyStatuses makes sure the default set exists, with a write only the
// first time.
func (s *Service) readyStatuses(ctx context.Context, communityID string) error {
	var n int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM redemption_statuses WHERE community_id = ?", communityID).Scan(&n); err != nil {
		return fmt.Errorf("read redemption statuses: %w", err)
	}
	if n > 0 {
		return nil
	}
	return s.d.DB.Tx(ctx, func(tx *db.Tx) error { return s.ensureStatuses(ctx, tx, communityID) })
}

// Statuses lists the community's statuses in display order, paged, with
// the total.
func (s *Service) Statuses(ctx context.Context, communityID string, skip, limit int) ([]Status, int, error) {
	if err := s.readyStatuses(ctx, communityID); err != nil {
		return nil, 0, err
	}
	return db.ListPage(ctx, s.d.DB, "SELECT COUNT(*) FROM redemption_statuses WHERE community_id = ?",
		"SELECT "+statusColumns+" FROM redemption_statuses WHERE community_id = ? ORDER BY display_order, created_at, id",
		[]any{communityID}, skip, limit, scanStatus)
}

// Status returns one status of the community; a bad or unknown id is
// NotFound.
func (s *Service) Status(ctx context.Context, communityID, statusID string) (Status, error) {
	if err := s.readyStatuses(ctx, communityID); err != nil {
		return Status{}, err
	}
	if !id.Valid(statusID) {
		return Status{}, errs.NotFoundf("Redemption status not found.")
	}
	return scanStatus(s.d.DB.QueryRow(ctx, "SELECT "+statusColumns+" FROM redemption_statuses WHERE community_id = ? AND id = ?",
		communityID, strings.ToLower(statusID)))
}

// statusTx reads a status of the community inside tx.
func statusTx(ctx context.Context, tx *db.Tx, communityID, statusID string) (Status, error) {
	return scanStatus(tx.QueryRow(ctx, "SELECT "+statusColumns+" FROM redemption_statuses WHERE community_id = ? AND id = ?",
		communityID, strings.ToLower(statusID)))
}

// CreateStatus adds a status to the community. Names are unique per
// community (case-insensitive; 409). A refunding status must be final. A
// new default status takes the default from the previous one.
func (s *Service) CreateStatus(ctx context.Context, communityID string, in StatusInput) (Status, error) {
	var v errs.Validator
	st := Status{CommunityID: communityID}
	if in.Name != nil {
		st.Name = strings.TrimSpace(*in.Name)
	}
	v.Check(st.Name != "" && utf8.RuneCountInString(st.Name) <= maxStatusName, "name", "is required: 1 to %d characters", maxStatusName)
	if in.Color != nil {
		st.Color = strings.TrimSpace(*in.Color)
	}
	v.Check(colorRE.MatchString(st.Color), "color", "is required: a hex colour such as #3EA1FD")
	st.IsFinal, st.Refunds, st.IsDefault = in.IsFinal != nil && *in.IsFinal, in.Refunds != nil && *in.Refunds, in.IsDefault != nil && *in.IsDefault
	v.Check(!st.Refunds || st.IsFinal, "refunds", "needs isFinal: a refunded order cannot move on")
	v.Check(!st.IsDefault || !st.IsFinal, "isDefault", "cannot be set on a final status: new orders would never move")
	st.Order = -1
	if in.Order != nil {
		st.Order = *in.Order
	}
	v.Check(in.Order == nil || (st.Order >= 0 && st.Order <= maxOrder), "order", "must be 0 to %d", maxOrder)
	if err := v.Err(); err != nil {
		return Status{}, err
	}
	st.Category = category(st.IsFinal, st.Refunds)
	now := s.d.Clock.Now()
	st.ID, st.CreatedAt, st.UpdatedAt = id.New(now), jsonx.At(now), jsonx.At(now)
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := s.ensureStatuses(ctx, tx, communityID); err != nil {
			return err
		}
		if st.Order < 0 {
			if err := tx.QueryRow(ctx, "SELECT COALESCE(MAX(display_order), -1) + 1 FROM redemption_statuses WHERE community_id = ?",
				communityID).Scan(&st.Order); err != nil {
				return fmt.Errorf("create redemption status: %w", err)
			}
		}
		if st.IsDefault {
			if _, err := tx.Exec(ctx, "UPDATE redemption_statuses SET is_default = FALSE, updated_at = ? WHERE community_id = ? AND is_default",
				now.UnixMilli(), communityID); err != nil {
				return fmt.Errorf("create redemption status: %w", err)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO redemption_statuses (`+statusColumns+`, name_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			st.ID, communityID, st.Name, st.Color, st.IsFinal, st.Refunds, st.IsDefault, st.Order, now.UnixMilli(), now.UnixMilli(), nameKey(st.Name))
		if db.IsUniqueViolation(err) {
			return errs.Conflictf("A redemption status named %s already exists.", st.Name)
		}
		if err != nil {
			return fmt.Errorf("create redemption status: %w", err)
		}
		return s.d.Events.Append(ctx, tx, communityID, EventStatusCreated, st)
	})
	return st, err
}
