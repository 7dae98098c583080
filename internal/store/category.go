package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
)

// CategoryI18n holds a category's name translations.
type CategoryI18n struct {
	IsTranslationEnabled bool          `json:"isTranslationEnabled"`
	NameTranslations     []Translation `json:"nameTranslations"`
}

// Category groups products in the store.
type Category struct {
	ID                 string         `json:"_id"`
	CommunityID        string         `json:"communityID"`
	Name               string         `json:"name"`
	CoverImage         string         `json:"coverImage"`
	ShouldShowCover    bool           `json:"shouldShowCover"`
	IsArchived         bool           `json:"isArchived"`
	ViewType           string         `json:"viewType"`
	DisplayOrder       int            `json:"displayOrder"`
	CategoryPermission []CategoryRule `json:"categoryPermission"`
	// DefaultPurchaseStatusID and DefaultPurchaseStatus (its name) are the
	// redemption status new orders in this category start in; both
	// vocabularies are kept as sent.
	DefaultPurchaseStatusID *string      `json:"defaultPurchaseStatusID"`
	DefaultPurchaseStatus   *string      `json:"defaultPurchaseStatus"`
	I18n                    CategoryI18n `json:"i18n"`
	CreatedAt               jsonx.Time   `json:"createdAt"`
	UpdatedAt               jsonx.Time   `json:"updatedAt"`
}

// CategoryInput is a category as sent on create (name required) or update
// (every field optional; categoryPermission and i18n replace whole).
type CategoryInput struct {
	Name                      jsonx.Optional[string]       `json:"name"`
	CoverImage                jsonx.Optional[string]       `json:"coverImage"`
	ShouldShowCover           jsonx.Optional[bool]         `json:"shouldShowCover"`
	IsArchived                jsonx.Optional[bool]         `json:"isArchived"`
	ViewType                  jsonx.Optional[string]       `json:"viewType"`
	DisplayOrder              jsonx.Optional[int]          `json:"displayOrder"`
	CategoryPermission        jsonx.Optional[[]RuleInput]  `json:"categoryPermission"`
	DefaultPurchaseStatusID   jsonx.Optional[string]       `json:"defaultPurchaseStatusID"`
	DefaultPurchaseStatusName jsonx.Optional[string]       `json:"defaultPurchaseStatusName"`
	I18n                      jsonx.Optional[CategoryI18n] `json:"i18n"`
}

// categoryList is what category lists allow.
var categoryList = listSpec{
	sortable:   map[string]string{"name": "name_key", "displayOrder": "display_order", "createdAt": "created_at", "updatedAt": "updated_at"},
	searchable: map[string][]string{"keyword": {"name"}, "name": {"name"}},
	filters:    map[string]filterSpec{"isArchived": {column: "is_archived", value: boolValue, want: "true or false"}},
	selectable: []string{"_id", "communityID", "name", "coverImage", "shouldShowCover", "isArchived", "viewType", "displayOrder",
		"categoryPermission", "defaultPurchaseStatusID", "defaultPurchaseStatus", "i18n", "createdAt", "updatedAt"},
	hidden:       []string{"__v"},
	defaultOrder: "display_order ASC, created_at ASC, id ASC",
}

// apply validates in and writes it into c.
func (in CategoryInput) apply(v *errs.Validator, c *Category, create bool) {
	if in.Name.Set && !in.Name.Null {
		c.Name = strings.TrimSpace(in.Name.Value)
		v.Check(c.Name != "" && len([]rune(c.Name)) <= maxNameLen, "name", "must be 1 to %d characters", maxNameLen)
	} else {
		v.Check(!create && !in.Name.Set, "name", "is required")
	}
	for _, o := range []struct {
		field string
		null  bool
	}{{"shouldShowCover", in.ShouldShowCover.Null}, {"isArchived", in.IsArchived.Null}, {"viewType", in.ViewType.Null},
		{"displayOrder", in.DisplayOrder.Null}, {"i18n", in.I18n.Null}} {
		notNull(v, o.field, o.null)
	}
	if in.CoverImage.Set {
		c.CoverImage = in.CoverImage.Value
		checkURL(v, "coverImage", c.CoverImage)
	}
	setIf(&c.ShouldShowCover, in.ShouldShowCover)
	setIf(&c.IsArchived, in.IsArchived)
	setIf(&c.ViewType, in.ViewType)
	v.Check(c.ViewType == "full" || c.ViewType == "preview", "viewType", "must be full or preview")
	setIf(&c.DisplayOrder, in.DisplayOrder)
	v.Check(c.DisplayOrder >= 0 && c.DisplayOrder <= maxOrderValue, "displayOrder", "must be 0 to %d", maxOrderValue)
	if in.CategoryPermission.Set {
		c.CategoryPermission = categoryRules(v, "categoryPermission", in.CategoryPermission.Value)
	}
	statusRef(v, "defaultPurchaseStatusID", "defaultPurchaseStatusName", in.DefaultPurchaseStatusID, in.DefaultPurchaseStatusName,
		&c.DefaultPurchaseStatusID, &c.DefaultPurchaseStatus)
	if in.I18n.Set && !in.I18n.Null {
		c.I18n = in.I18n.Value
		checkTranslations(v, "i18n.nameTranslations", c.I18n.NameTranslations, maxNameLen)
		c.I18n.NameTranslations = orEmpty(c.I18n.NameTranslations)
	}
}

// statusRef applies a redemption-status reference sent by id or by name;
// null clears both.
func statusRef(v *errs.Validator, idField, nameField string, idIn, nameIn jsonx.Optional[string], idOut, nameOut **string) {
	if idIn.Set {
		*idOut = nil
		if !idIn.Null && idIn.Value != "" {
			s := strings.ToLower(idIn.Value)
			v.Check(id.Valid(s), idField, "must be a 24-hex ObjectId or null")
			*idOut = &s
		}
	}
	if nameIn.Set {
		*nameOut = nil
		if !nameIn.Null && strings.TrimSpace(nameIn.Value) != "" {
			s := strings.TrimSpace(nameIn.Value)
			checkText(v, nameField, s, maxRefLen)
			*nameOut = &s
		}
	}
}

// Localize returns c with its name in lang when translated.
func (c Category) Localize(lang string) Category {
	c.Name = translate(c.I18n.NameTranslations, lang, c.Name)
	return c
}

func scanCategory(r interface{ Scan(...any) error }) (Category, error) {
	var doc string
	if err := r.Scan(&doc); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Category{}, errs.NotFoundf("Category not found.")
		}
		return Category{}, fmt.Errorf("read category: %w", err)
	}
	var c Category
	if err := json.Unmarshal([]byte(doc), &c); err != nil {
		return Category{}, fmt.Errorf("decode category: %w", err)
	}
	return c, nil
}

// categoryConflict turns a duplicate category name into a 409.
func categoryConflict(err error, doing string) error {
	if db.UniqueViolationOn(err, "store_categories_name") || db.UniqueViolationOn(err, "name_key") {
		return errs.Conflictf("A category with this name already exists.")
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// checkID rejects a malformed path id with a 400 naming field.
func checkID(field, s string) error {
	var v errs.Validator
	v.Check(id.Valid(s), field, "must be a 24-hex ObjectId")
	return v.Err()
}

// Category returns one category of the community.
func (s *Service) Category(ctx context.Context, communityID, categoryID string, q Query) (Category, error) {
	if err := categoryList.checkRead(q, "categoryID", categoryID); err != nil {
		return Category{}, err
	}
	c, err := scanCategory(s.d.DB.QueryRow(ctx, "SELECT doc FROM store_categories WHERE community_id = ? AND id = ? AND deleted_at IS NULL",
		communityID, strings.ToLower(categoryID)))
	return c.Localize(q.Lang), err
}

// Categories lists the community's categories by q, with the total.
func (s *Service) Categories(ctx context.Context, communityID string, q Query) ([]Category, int, error) {
	p, err := categoryList.parse(q)
	if err != nil {
		return nil, 0, err
	}
	args := append([]any{communityID}, p.args...)
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM store_categories WHERE community_id = ? AND deleted_at IS NULL"+p.where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count categories: %w", err)
	}
	rows, err := s.d.DB.Query(ctx, "SELECT doc FROM store_categories WHERE community_id = ? AND deleted_at IS NULL"+p.where+
		" ORDER BY "+p.order+" LIMIT ? OFFSET ?", append(args, q.Limit, q.Skip)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list categories: %w", err)
	}
	defer rows.Close()
	out := []Category{}
	for rows.Next() {
		c, err := scanCategory(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, c.Localize(q.Lang))
	}
	return out, total, rows.Err()
}

// writeCategory stores c (insert or update) and records typ.
func (s *Service) writeCategory(ctx context.Context, tx *db.Tx, c Category, insert bool, typ string) error {
	doc, err := encodeDoc(c)
	if err != nil {
		return err
	}
	if insert {
		_, err = tx.Exec(ctx, `INSERT INTO store_categories (id, community_id, name, name_key, is_archived, display_order, doc, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, c.ID, c.CommunityID, c.Name, nameKey(c.Name), c.IsArchived, c.DisplayOrder, doc,
			c.CreatedAt.UnixMilli(), c.UpdatedAt.UnixMilli())
	} else {
		_, err = tx.Exec(ctx, `UPDATE store_categories SET name = ?, name_key = ?, is_archived = ?, display_order = ?, doc = ?, updated_at = ?
			WHERE id = ?`, c.Name, nameKey(c.Name), c.IsArchived, c.DisplayOrder, doc, c.UpdatedAt.UnixMilli(), c.ID)
	}
	if err != nil {
		return categoryConflict(err, "write category")
	}
	return s.appendEvent(ctx, tx, c.CommunityID, typ, c)
}

// CreateCategory adds a category; names are unique per community,
// compared case-insensitively (409 otherwise).
func (s *Service) CreateCategory(ctx context.Context, communityID string, in CategoryInput) (Category, error) {
	now := jsonx.At(s.d.Clock.Now())
	c := Category{ID: id.New(now.Time), CommunityID: communityID, ViewType: "full", CategoryPermission: []CategoryRule{},
		I18n: CategoryI18n{NameTranslations: []Translation{}}, CreatedAt: now, UpdatedAt: now}
	var v errs.Validator
	in.apply(&v, &c, true)
	if err := v.Err(); err != nil {
		return Category{}, err
	}
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		return s.writeCategory(ctx, tx, c, true, "store.category.created")
	})
	return c, err
}

// lockCategory reads a live category for update.
func lockCategory(ctx context.Context, tx *db.Tx, communityID, categoryID string) (Category, error) {
	if err := checkID("categoryID", categoryID); err != nil {
		return Category{}, err
	}
	return scanCategory(tx.QueryRow(ctx, "SELECT doc FROM store_categories WHERE community_id = ? AND id = ? AND deleted_at IS NULL"+
		tx.DB().ForUpdate(), communityID, strings.ToLower(categoryID)))
}

// UpdateCategory applies a partial update.
func (s *Service) UpdateCategory(ctx context.Context, communityID, categoryID string, in CategoryInput) (Category, error) {
	var c Category
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if c, err = lockCategory(ctx, tx, communityID, categoryID); err != nil {
			return err
		}
		var v errs.Validator
		in.apply(&v, &c, false)
		if err := v.Err(); err != nil {
			return err
		}
		c.UpdatedAt = jsonx.At(s.d.Clock.Now())
		return s.writeCategory(ctx, tx, c, false, "store.category.updated")
	})
	return c, err
}

// DeleteCategory removes a category that holds no products (409
// otherwise: move or delete them first, so no product loses its place
// silently). The row is kept, marked deleted, for order history.
func (s *Service) DeleteCategory(ctx context.Context, communityID, categoryID string) (Category, error) {
	var c Category
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if c, err = lockCategory(ctx, tx, communityID, categoryID); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT COUNT(*) FROM store_products WHERE community_id = ? AND category_id = ? AND deleted_at IS NULL",
			communityID, c.ID).Scan(&n); err != nil {
			return fmt.Errorf("count category products: %w", err)
		}
		if n > 0 {
			return errs.Conflictf("The category still holds %d product(s); move or delete them first.", n)
		}
		now := s.d.Clock.Now()
		if _, err := tx.Exec(ctx, "UPDATE store_categories SET deleted_at = ?, updated_at = ? WHERE id = ?", now.UnixMilli(), now.UnixMilli(), c.ID); err != nil {
			return fmt.Errorf("delete category: %w", err)
		}
		return s.appendEvent(ctx, tx, communityID, "store.category.deleted", map[string]string{"_id": c.ID, "name": c.Name})
	})
	return c, err
}
