package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
)

// UserInformation says what a buyer must tell at purchase.
type UserInformation struct {
	IsEnabled            bool `json:"isEnabled"`
	ShouldCollectName    bool `json:"shouldCollectName"`
	ShouldCollectPhone   bool `json:"shouldCollectPhone"`
	ShouldCollectAddress bool `json:"shouldCollectAddress"`
}

// ExpiringVoucherHighlight flags vouchers that expire within Duration
// Timeframe.
type ExpiringVoucherHighlight struct {
	IsEnabled bool   `json:"isEnabled"`
	Duration  int    `json:"duration"`
	Timeframe string `json:"timeframe"`
}

// ProductI18n holds a product's translations.
type ProductI18n struct {
	IsTranslationEnabled    bool          `json:"isTranslationEnabled"`
	NameTranslations        []Translation `json:"nameTranslations"`
	DescriptionTranslations []Translation `json:"descriptionTranslations"`
}

// StatusOverride replaces the category's default redemption status for
// this product's orders; Status is the status name, StatusID its id.
type StatusOverride struct {
	IsEnabled bool    `json:"isEnabled"`
	Status    *string `json:"status"`
	StatusID  *string `json:"statusID"`
}

// Product is an item of the store.
//
// Stock: a voucher product (type "voucher") has as many in stock as it has
// unassigned, unexpired voucher codes; any other product has a finite
// stock (a number) or an unlimited one (null).
type Product struct {
	ID                               string                   `json:"_id"`
	CommunityID                      string                   `json:"communityID"`
	Name                             string                   `json:"name"`
	Description                      string                   `json:"description"`
	Image                            string                   `json:"image"`
	Images                           []string                 `json:"images"`
	Price                            int64                    `json:"price"`
	Type                             string                   `json:"type"`
	CategoryID                       *string                  `json:"categoryID"`
	Category                         *string                  `json:"category"`
	Stocks                           *int64                   `json:"stocks"`
	DiscountPrice                    int64                    `json:"discountPrice"`
	IsDiscountEnabled                bool                     `json:"isDiscountEnabled"`
	DiscountStartDate                *jsonx.Time              `json:"discountStartDate"`
	DiscountEndDate                  *jsonx.Time              `json:"discountEndDate"`
	AvailableFrom                    *jsonx.Time              `json:"availableFrom"`
	AvailableUntil                   *jsonx.Time              `json:"availableUntil"`
	PurchaseLimit                    PurchaseLimit            `json:"purchaseLimit"`
	UserInformation                  UserInformation          `json:"userInformation"`
	ShouldPrioritiesExpiringVouchers bool                     `json:"shouldPrioritiesExpiringVouchers"`
	ShouldDisplayRemainingQuantity   bool                     `json:"shouldDisplayRemainingQuantity"`
	ExpiringVoucherHighlight         ExpiringVoucherHighlight `json:"expiringVoucherHighlight"`
	IsArchived                       bool                     `json:"isArchived"`
	TotalOrders                      int64                    `json:"totalOrders"`
	DisplayOrder                     int                      `json:"displayOrder"`
	RedemptionInstructions           string                   `json:"redemptionInstructions"`
	I18n                             ProductI18n              `json:"i18n"`
	ProductPermission                []ProductRule            `json:"productPermission"`
	IsProductAccessEnabled           bool                     `json:"isProductAccessEnabled"`
	PurchaseStatusOverride           StatusOverride           `json:"purchaseStatusOverride"`
	CreatedAt                        jsonx.Time               `json:"createdAt"`
	UpdatedAt                        jsonx.Time               `json:"updatedAt"`
}

// UserInformationInput is userInformation as sent: whole, every field.
type UserInformationInput struct {
	IsEnabled            *bool `json:"isEnabled"`
	ShouldCollectName    *bool `json:"shouldCollectName"`
	ShouldCollectPhone   *bool `json:"shouldCollectPhone"`
	ShouldCollectAddress *bool `json:"shouldCollectAddress"`
}

// HighlightInput is expiringVoucherHighlight as sent: whole, every field.
type HighlightInput struct {
	IsEnabled *bool   `json:"isEnabled"`
	Duration  *int    `json:"duration"`
	Timeframe *string `json:"timeframe"`
}

// StatusOverrideInput is purchaseStatusOverride as sent in object form.
type StatusOverrideInput struct {
	IsEnabled bool    `json:"isEnabled"`
	Status    *string `json:"status"`
	StatusID  *string `json:"statusID"`
}

// ProductInput is a product as sent on create (name and price required) or
// update (any subset). userInformation, expiringVoucherHighlight and
// productPermission replace whole and must be complete; vouchers append
// codes (voucherExpireDate required with codes, "" only without).
type ProductInput struct {
	Name                             jsonx.Optional[string]               `json:"name"`
	Description                      jsonx.Optional[string]               `json:"description"`
	Image                            jsonx.Optional[string]               `json:"image"`
	Images                           jsonx.Optional[[]string]             `json:"images"`
	Price                            jsonx.Optional[int64]                `json:"price"`
	Type                             jsonx.Optional[string]               `json:"type"`
	CategoryID                       jsonx.Optional[string]               `json:"categoryID"`
	CategoryName                     jsonx.Optional[string]               `json:"categoryName"`
	Stocks                           jsonx.Optional[int64]                `json:"stocks"`
	DiscountPrice                    jsonx.Optional[int64]                `json:"discountPrice"`
	IsDiscountEnabled                jsonx.Optional[bool]                 `json:"isDiscountEnabled"`
	DiscountStartDate                jsonx.Optional[string]               `json:"discountStartDate"`
	DiscountEndDate                  jsonx.Optional[string]               `json:"discountEndDate"`
	AvailableFrom                    jsonx.Optional[string]               `json:"availableFrom"`
	AvailableUntil                   jsonx.Optional[string]               `json:"availableUntil"`
	PurchaseLimit                    jsonx.Optional[LimitInput]           `json:"purchaseLimit"`
	UserInformation                  jsonx.Optional[UserInformationInput] `json:"userInformation"`
	ShouldPrioritiesExpiringVouchers jsonx.Optional[bool]                 `json:"shouldPrioritiesExpiringVouchers"`
	ShouldDisplayRemainingQuantity   jsonx.Optional[bool]                 `json:"shouldDisplayRemainingQuantity"`
	ExpiringVoucherHighlight         jsonx.Optional[HighlightInput]       `json:"expiringVoucherHighlight"`
	IsArchived                       jsonx.Optional[bool]                 `json:"isArchived"`
	DisplayOrder                     jsonx.Optional[int]                  `json:"displayOrder"`
	RedemptionInstructions           jsonx.Optional[string]               `json:"redemptionInstructions"`
	I18n                             jsonx.Optional[ProductI18n]          `json:"i18n"`
	ProductPermission                jsonx.Optional[[]RuleInput]          `json:"productPermission"`
	IsProductAccessEnabled           jsonx.Optional[bool]                 `json:"isProductAccessEnabled"`
	PurchaseStatusOverride           jsonx.Optional[StatusOverrideInput]  `json:"purchaseStatusOverride"`
	PurchaseStatusOverrideName       jsonx.Optional[string]               `json:"purchaseStatusOverrideName"`
	PurchaseStatusOverrideID         jsonx.Optional[string]               `json:"purchaseStatusOverrideID"`
	Vouchers                         jsonx.Optional[[]string]             `json:"vouchers"`
	VoucherExpireDate                jsonx.Optional[string]               `json:"voucherExpireDate"`
}

// ProductUpdate is one entry of a bulk update: the product's id and the
// fields to change.
type ProductUpdate struct {
	ProductID string `json:"productID"`
	ProductInput
}

// productList is what product lists allow.
var productList = listSpec{
	sortable: map[string]string{"name": "name_key", "price": "price", "displayOrder": "display_order", "totalOrders": "total_orders",
		"createdAt": "created_at", "updatedAt": "updated_at"},
	searchable: map[string][]string{"keyword": {"name", "description"}, "name": {"name"}, "description": {"description"}},
	filters: map[string]filterSpec{
		"categoryID": {column: "category_id", value: idValue, want: "a 24-hex ObjectId"},
		"type":       {column: "type", value: slugValue, want: "a product type such as voucher"},
	},
	selectable: []string{"_id", "communityID", "name", "description", "image", "images", "price", "type", "categoryID", "category",
		"stocks", "discountPrice", "isDiscountEnabled", "discountStartDate", "discountEndDate", "availableFrom", "availableUntil",
		"purchaseLimit", "userInformation", "shouldPrioritiesExpiringVouchers", "shouldDisplayRemainingQuantity",
		"expiringVoucherHighlight", "isArchived", "totalOrders", "displayOrder", "redemptionInstructions", "i18n",
		"isProductAccessEnabled", "purchaseStatusOverride", "createdAt", "updatedAt"},
	hidden:       []string{"productPermission", "__v"},
	defaultOrder: "display_order ASC, created_at ASC, id ASC",
}

var (
	typeRE     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	timeframes = []string{"days", "weeks", "months"}
)

const (
	typeVoucher   = "voucher"
	maxVoucherLen = 200
	maxVouchers   = 10000
	maxImages     = 20
)

// parseTime reads an optional ISO-8601 timestamp field; null and ""
// clear it.
func parseTime(v *errs.Validator, field string, o jsonx.Optional[string], dst **jsonx.Time) {
	if !o.Set {
		return
	}
	if o.Null || o.Value == "" {
		*dst = nil
		return
	}
	t, err := time.Parse(time.RFC3339Nano, o.Value)
	if err != nil {
		v.Add(field, "must be an ISO-8601 timestamp such as 2026-04-28T00:00:00.000Z, or null")
		return
	}
	at := jsonx.At(t)
	*dst = &at
}

// productDraft is a validated product change waiting for the database:
// the category to resolve and the voucher codes to add.
type productDraft struct {
	categoryID   jsonx.Optional[string]
	categoryName jsonx.Optional[string]
	vouchers     []string
	voucherExp   *jsonx.Time
	stocks       jsonx.Optional[int64]
}

// apply validates in and writes the fields it can into p; what needs the
// database goes into the draft.
func (in ProductInput) apply(v *errs.Validator, p *Product, create bool, now time.Time) productDraft {
	d := productDraft{categoryID: in.CategoryID, categoryName: in.CategoryName, stocks: in.Stocks}
	if in.Name.Set && !in.Name.Null {
		p.Name = strings.TrimSpace(in.Name.Value)
		v.Check(p.Name != "" && len([]rune(p.Name)) <= maxNameLen, "name", "must be 1 to %d characters", maxNameLen)
	} else {
		v.Check(!create && !in.Name.Set, "name", "is required")
	}
	if in.Price.Set && !in.Price.Null {
		p.Price = in.Price.Value
		v.Check(p.Price >= 0 && p.Price <= maxPrice, "price", "must be a whole number from 0 to %d", int64(maxPrice))
	} else {
		v.Check(!create && !in.Price.Set, "price", "is required")
	}
	for _, o := range []struct {
		field string
		null  bool
	}{{"description", in.Description.Null}, {"images", in.Images.Null}, {"type", in.Type.Null}, {"discountPrice", in.DiscountPrice.Null},
		{"isDiscountEnabled", in.IsDiscountEnabled.Null}, {"purchaseLimit", in.PurchaseLimit.Null}, {"userInformation", in.UserInformation.Null},
		{"shouldPrioritiesExpiringVouchers", in.ShouldPrioritiesExpiringVouchers.Null},
		{"shouldDisplayRemainingQuantity", in.ShouldDisplayRemainingQuantity.Null},
		{"expiringVoucherHighlight", in.ExpiringVoucherHighlight.Null}, {"isArchived", in.IsArchived.Null},
		{"displayOrder", in.DisplayOrder.Null}, {"redemptionInstructions", in.RedemptionInstructions.Null}, {"i18n", in.I18n.Null},
		{"productPermission", in.ProductPermission.Null}, {"isProductAccessEnabled", in.IsProductAccessEnabled.Null},
		{"purchaseStatusOverride", in.PurchaseStatusOverride.Null}, {"vouchers", in.Vouchers.Null}} {
		notNull(v, o.field, o.null)
	}
	setIf(&p.Description, in.Description)
	checkText(v, "description", p.Description, maxHTMLLen)
	if in.Image.Set {
		p.Image = in.Image.Value
		checkURL(v, "image", p.Image)
	}
	if in.Images.Set && !in.Images.Null {
		p.Images = orEmpty(in.Images.Value)
		v.Check(len(p.Images) <= maxImages, "images", "must hold at most %d images", maxImages)
		for i, u := range p.Images {
			v.Check(validURL(u), fmt.Sprintf("images[%d]", i), "must be an absolute http or https URL")
		}
	}
	if in.Type.Set && !in.Type.Null {
		p.Type = in.Type.Value
	} else if create {
		p.Type = "item"
		if len(in.Vouchers.Value) > 0 {
			p.Type = typeVoucher
		}
	}
	v.Check(typeRE.MatchString(p.Type), "type", "must be a lowercase word such as voucher or item")
	setIf(&p.DiscountPrice, in.DiscountPrice)
	setIf(&p.IsDiscountEnabled, in.IsDiscountEnabled)
	v.Check(p.DiscountPrice >= 0 && p.DiscountPrice <= maxPrice, "discountPrice", "must be a whole number from 0 to %d", int64(maxPrice))
	v.Check(!p.IsDiscountEnabled || p.DiscountPrice <= p.Price, "discountPrice", "must not exceed price while the discount is enabled")
	parseTime(v, "discountStartDate", in.DiscountStartDate, &p.DiscountStartDate)
	parseTime(v, "discountEndDate", in.DiscountEndDate, &p.DiscountEndDate)
	if p.DiscountStartDate != nil && p.DiscountEndDate != nil {
		v.Check(p.DiscountEndDate.After(p.DiscountStartDate.Time), "discountEndDate", "must be after discountStartDate")
	}
	parseTime(v, "availableFrom", in.AvailableFrom, &p.AvailableFrom)
	parseTime(v, "availableUntil", in.AvailableUntil, &p.AvailableUntil)
	if p.AvailableFrom != nil && p.AvailableUntil != nil {
		v.Check(p.AvailableUntil.After(p.AvailableFrom.Time), "availableUntil", "must be after availableFrom")
	}
	if in.PurchaseLimit.Set && !in.PurchaseLimit.Null {
		l := in.PurchaseLimit.Value
		p.PurchaseLimit = l.limit(v, "purchaseLimit")
	}
	if in.UserInformation.Set && !in.UserInformation.Null {
		u := in.UserInformation.Value
		p.UserInformation = UserInformation{
			IsEnabled:            whole(v, "userInformation.isEnabled", u.IsEnabled),
			ShouldCollectName:    whole(v, "userInformation.shouldCollectName", u.ShouldCollectName),
			ShouldCollectPhone:   whole(v, "userInformation.shouldCollectPhone", u.ShouldCollectPhone),
			ShouldCollectAddress: whole(v, "userInformation.shouldCollectAddress", u.ShouldCollectAddress),
		}
	}
	setIf(&p.ShouldPrioritiesExpiringVouchers, in.ShouldPrioritiesExpiringVouchers)
	setIf(&p.ShouldDisplayRemainingQuantity, in.ShouldDisplayRemainingQuantity)
	if in.ExpiringVoucherHighlight.Set && !in.ExpiringVoucherHighlight.Null {
		h := in.ExpiringVoucherHighlight.Value
		p.ExpiringVoucherHighlight = ExpiringVoucherHighlight{
			IsEnabled: whole(v, "expiringVoucherHighlight.isEnabled", h.IsEnabled),
			Duration:  whole(v, "expiringVoucherHighlight.duration", h.Duration),
			Timeframe: whole(v, "expiringVoucherHighlight.timeframe", h.Timeframe),
		}
		if h.Duration != nil {
			v.Check(*h.Duration >= 1 && *h.Duration <= 1000, "expiringVoucherHighlight.duration", "must be 1 to 1000")
		}
		if h.Timeframe != nil {
			v.Check(slices.Contains(timeframes, *h.Timeframe), "expiringVoucherHighlight.timeframe", "must be one of %s", strings.Join(timeframes, ", "))
		}
	}
	setIf(&p.IsArchived, in.IsArchived)
	setIf(&p.DisplayOrder, in.DisplayOrder)
	v.Check(p.DisplayOrder >= 0 && p.DisplayOrder <= maxOrderValue, "displayOrder", "must be 0 to %d", maxOrderValue)
	setIf(&p.RedemptionInstructions, in.RedemptionInstructions)
	checkText(v, "redemptionInstructions", p.RedemptionInstructions, maxHTMLLen)
	if in.I18n.Set && !in.I18n.Null {
		p.I18n = in.I18n.Value
		checkTranslations(v, "i18n.nameTranslations", p.I18n.NameTranslations, maxNameLen)
		checkTranslations(v, "i18n.descriptionTranslations", p.I18n.DescriptionTranslations, maxHTMLLen)
		p.I18n.NameTranslations, p.I18n.DescriptionTranslations = orEmpty(p.I18n.NameTranslations), orEmpty(p.I18n.DescriptionTranslations)
	}
	if in.ProductPermission.Set && !in.ProductPermission.Null {
		p.ProductPermission = productRules(v, "productPermission", in.ProductPermission.Value)
	}
	setIf(&p.IsProductAccessEnabled, in.IsProductAccessEnabled)
	in.applyOverride(v, &p.PurchaseStatusOverride)
	d.vouchers, d.voucherExp = in.voucherCodes(v, p.Type, now)
	return d
}

// whole reads a required part of an object that must be sent complete.
func whole[T any](v *errs.Validator, field string, p *T) T {
	var zero T
	if p == nil {
		v.Add(field, "is required (send the whole object)")
		return zero
	}
	return *p
}

// applyOverride applies the purchase-status override in either form: the
// object, or the flat name/id fields (setting one enables the override;
// null disables it).
func (in ProductInput) applyOverride(v *errs.Validator, o *StatusOverride) {
	if in.PurchaseStatusOverride.Set && !in.PurchaseStatusOverride.Null {
		ov := in.PurchaseStatusOverride.Value
		*o = StatusOverride{IsEnabled: ov.IsEnabled}
		statusRef(v, "purchaseStatusOverride.statusID", "purchaseStatusOverride.status",
			optionalOf(ov.StatusID), optionalOf(ov.Status), &o.StatusID, &o.Status)
	}
	statusRef(v, "purchaseStatusOverrideID", "purchaseStatusOverrideName", in.PurchaseStatusOverrideID, in.PurchaseStatusOverrideName,
		&o.StatusID, &o.Status)
	if in.PurchaseStatusOverrideID.Set || in.PurchaseStatusOverrideName.Set {
		o.IsEnabled = o.StatusID != nil || o.Status != nil
	}
}

// optionalOf turns a pointer into an Optional (nil = absent).
func optionalOf(p *string) jsonx.Optional[string] {
	if p == nil {
		return jsonx.Optional[string]{}
	}
	return jsonx.Some(*p)
}

// voucherCodes validates the codes to append and their expiry.
func (in ProductInput) voucherCodes(v *errs.Validator, typ string, now time.Time) ([]string, *jsonx.Time) {
	codes := in.Vouchers.Value
	if len(codes) == 0 {
		return nil, nil
	}
	v.Check(typ == typeVoucher, "vouchers", "can only be added to a product of type voucher")
	v.Check(len(codes) <= maxVouchers, "vouchers", "must hold at most %d codes per request", maxVouchers)
	out := make([]string, 0, len(codes))
	for i, c := range codes {
		c = strings.TrimSpace(c)
		v.Check(c != "" && len(c) <= maxVoucherLen, fmt.Sprintf("vouchers[%d]", i), "must be 1 to %d characters", maxVoucherLen)
		out = append(out, c)
	}
	var exp *jsonx.Time
	if !in.VoucherExpireDate.Set || in.VoucherExpireDate.Null || in.VoucherExpireDate.Value == "" {
		v.Add("voucherExpireDate", "is required when vouchers holds codes")
	} else {
		parseTime(v, "voucherExpireDate", in.VoucherExpireDate, &exp)
		if exp != nil {
			v.Check(exp.After(now), "voucherExpireDate", "must be in the future")
		}
	}
	return out, exp
}

// Localize returns p with name and description in lang when translated.
func (p Product) Localize(lang string) Product {
	p.Name = translate(p.I18n.NameTranslations, lang, p.Name)
	p.Description = translate(p.I18n.DescriptionTranslations, lang, p.Description)
	return p
}

// productSelect reads a product with its live stock and category name; its
// one argument before the WHERE's is the current time in Unix ms.
const productSelect = `SELECT doc, stock, total_orders,
	(SELECT c.name FROM store_categories c WHERE c.id = store_products.category_id AND c.deleted_at IS NULL),
	(SELECT COUNT(*) FROM store_vouchers v WHERE v.product_id = store_products.id AND v.order_id IS NULL
		AND (v.expires_at IS NULL OR v.expires_at > ?))
	FROM store_products`

func scanProduct(r interface{ Scan(...any) error }) (Product, error) {
	var (
		doc      string
		stock    sql.NullInt64
		orders   int64
		category sql.NullString
		free     int64
	)
	if err := r.Scan(&doc, &stock, &orders, &category, &free); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Product{}, errs.NotFoundf("Product not found.")
		}
		return Product{}, fmt.Errorf("read product: %w", err)
	}
	var p Product
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return Product{}, fmt.Errorf("decode product: %w", err)
	}
	p.TotalOrders = orders
	p.Stocks = nil
	switch {
	case p.Type == typeVoucher:
		p.Stocks = &free
	case stock.Valid:
		p.Stocks = &stock.Int64
	}
	p.Category = nil
	if category.Valid && p.CategoryID != nil {
		p.Category = &category.String
	}
	return p, nil
}

// Product returns one product of the community.
func (s *Service) Product(ctx context.Context, communityID, productID string, q Query) (Product, error) {
	if err := productList.checkRead(q, "productID", productID); err != nil {
		return Product{}, err
	}
	p, err := scanProduct(s.d.DB.QueryRow(ctx, productSelect+" WHERE community_id = ? AND id = ? AND deleted_at IS NULL",
		s.d.Clock.Now().UnixMilli(), communityID, strings.ToLower(productID)))
	return p.Localize(q.Lang), err
}

// Products lists the community's products by q, with the total.
func (s *Service) Products(ctx context.Context, communityID string, q Query) ([]Product, int, error) {
	p, err := productList.parse(q)
	if err != nil {
		return nil, 0, err
	}
	args := append([]any{communityID}, p.args...)
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM store_products WHERE community_id = ? AND deleted_at IS NULL"+p.where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count products: %w", err)
	}
	args = append([]any{s.d.Clock.Now().UnixMilli()}, args...)
	rows, err := s.d.DB.Query(ctx, productSelect+" WHERE community_id = ? AND deleted_at IS NULL"+p.where+" ORDER BY "+p.order+" LIMIT ? OFFSET ?",
		append(args, q.Limit, q.Skip)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list products: %w", err)
	}
	defer rows.Close()
	out := []Product{}
	for rows.Next() {
		pr, err := scanProduct(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, pr.Localize(q.Lang))
	}
	return out, total, rows.Err()
}

// readProductTx reads a live product inside tx, locked for update.
func (s *Service) readProductTx(ctx context.Context, tx *db.Tx, communityID, productID string) (Product, error) {
	if err := checkID("productID", productID); err != nil {
		return Product{}, err
	}
	return scanProduct(tx.QueryRow(ctx, productSelect+" WHERE community_id = ? AND id = ? AND deleted_at IS NULL"+tx.DB().ForUpdate(),
		s.d.Clock.Now().UnixMilli(), communityID, strings.ToLower(productID)))
}

// resolveCategory applies the draft's category reference (by id or by
// name, in the community) to p.
func resolveCategory(ctx context.Context, tx *db.Tx, v *errs.Validator, communityID string, d productDraft, p *Product) error {
	var field, where, arg string
	switch {
	case d.categoryID.Set && (d.categoryID.Null || d.categoryID.Value == ""):
		p.CategoryID = nil
		return nil
	case d.categoryID.Set:
		field, where, arg = "categoryID", "id = ?", strings.ToLower(d.categoryID.Value)
		if !id.Valid(arg) {
			v.Add(field, "must be a 24-hex ObjectId")
			return nil
		}
	case d.categoryName.Set && (d.categoryName.Null || strings.TrimSpace(d.categoryName.Value) == ""):
		p.CategoryID = nil
		return nil
	case d.categoryName.Set:
		field, where, arg = "categoryName", "name_key = ?", nameKey(d.categoryName.Value)
	default:
		return nil
	}
	var cid string
	err := tx.QueryRow(ctx, "SELECT id FROM store_categories WHERE community_id = ? AND deleted_at IS NULL AND "+where, communityID, arg).Scan(&cid)
	if errors.Is(err, sql.ErrNoRows) {
		v.Add(field, "names no category of this community")
		return nil
	}
	if err != nil {
		return fmt.Errorf("resolve category: %w", err)
	}
	p.CategoryID = &cid
	return nil
}

// stockValue applies the draft's stock to p and returns the column value
// (nil = unlimited, or counted from vouchers).
func stockValue(v *errs.Validator, d productDraft, p *Product, prev *int64) *int64 {
	if p.Type == typeVoucher {
		v.Check(!d.stocks.Set, "stocks", "is counted from the voucher codes of a voucher product; upload codes instead")
		return nil
	}
	stock := prev
	if d.stocks.Set {
		stock = nil
		if !d.stocks.Null {
			n := d.stocks.Value
			v.Check(n >= 0 && n <= maxPrice, "stocks", "must be a whole number of at least 0, or null for unlimited")
			stock = &n
		}
	}
	return stock
}

// saveProduct validates in against p inside tx and writes it: insert when
// create, update otherwise. The returned product is read back.
func (s *Service) saveProduct(ctx context.Context, tx *db.Tx, communityID string, p Product, in ProductInput, create bool) (Product, error) {
	now := s.d.Clock.Now()
	var v errs.Validator
	var prevStock *int64
	if !create && p.Type != typeVoucher {
		prevStock = p.Stocks
	}
	d := in.apply(&v, &p, create, now)
	if err := resolveCategory(ctx, tx, &v, communityID, d, &p); err != nil {
		return Product{}, err
	}
	stock := stockValue(&v, d, &p, prevStock)
	if err := v.Err(); err != nil {
		return Product{}, err
	}
	p.UpdatedAt = jsonx.At(now)
	p.Images = orEmpty(p.Images)
	p.ProductPermission = orEmpty(p.ProductPermission)
	doc, err := encodeDoc(p)
	if err != nil {
		return Product{}, err
	}
	if create {
		_, err = tx.Exec(ctx, `INSERT INTO store_products (id, community_id, category_id, name, name_key, description, type, price, stock,
			is_archived, display_order, doc, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.ID, communityID, p.CategoryID, p.Name, nameKey(p.Name), p.Description, p.Type, p.Price, stock, p.IsArchived, p.DisplayOrder,
			doc, p.CreatedAt.UnixMilli(), p.UpdatedAt.UnixMilli())
	} else {
		_, err = tx.Exec(ctx, `UPDATE store_products SET category_id = ?, name = ?, name_key = ?, description = ?, type = ?, price = ?,
			stock = ?, is_archived = ?, display_order = ?, doc = ?, updated_at = ? WHERE id = ?`,
			p.CategoryID, p.Name, nameKey(p.Name), p.Description, p.Type, p.Price, stock, p.IsArchived, p.DisplayOrder, doc,
			p.UpdatedAt.UnixMilli(), p.ID)
	}
	if err != nil {
		return Product{}, fmt.Errorf("write product: %w", err)
	}
	if err := s.addVouchers(ctx, tx, communityID, p.ID, d.vouchers, d.voucherExp, now); err != nil {
		return Product{}, err
	}
	saved, err := s.readProductTx(ctx, tx, communityID, p.ID)
	if err != nil {
		return Product{}, err
	}
	typ := "store.product.updated"
	if create {
		typ = "store.product.created"
	}
	return saved, s.appendEvent(ctx, tx, communityID, typ, saved)
}

// newProduct is a product before its first input.
func newProduct(communityID string, now time.Time) Product {
	return Product{
		ID: id.New(now), CommunityID: communityID, Images: []string{}, ShouldDisplayRemainingQuantity: true,
		PurchaseLimit:            PurchaseLimit{Quantity: 1, IntervalCount: 1, IntervalUnit: "months"},
		ExpiringVoucherHighlight: ExpiringVoucherHighlight{Duration: 7, Timeframe: "days"},
		I18n:                     ProductI18n{NameTranslations: []Translation{}, DescriptionTranslations: []Translation{}},
		ProductPermission:        []ProductRule{}, CreatedAt: jsonx.At(now), UpdatedAt: jsonx.At(now),
	}
}

// CreateProduct adds a product, with its voucher codes when given.
func (s *Service) CreateProduct(ctx context.Context, communityID string, in ProductInput) (Product, error) {
	var p Product
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		p, err = s.saveProduct(ctx, tx, communityID, newProduct(communityID, s.d.Clock.Now()), in, true)
		return err
	})
	return p, err
}

// UpdateProduct applies a partial update; vouchers append.
func (s *Service) UpdateProduct(ctx context.Context, communityID, productID string, in ProductInput) (Product, error) {
	var p Product
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		cur, err := s.readProductTx(ctx, tx, communityID, productID)
		if err != nil {
			return err
		}
		p, err = s.saveProduct(ctx, tx, communityID, cur, in, false)
		return err
	})
	return p, err
}

// DeleteProduct removes a product from the store. The row and its voucher
// codes are kept, marked deleted, so orders that point at them still
// resolve; unassigned codes are never handed out again.
func (s *Service) DeleteProduct(ctx context.Context, communityID, productID string) (Product, error) {
	var p Product
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if p, err = s.readProductTx(ctx, tx, communityID, productID); err != nil {
			return err
		}
		now := s.d.Clock.Now().UnixMilli()
		if _, err := tx.Exec(ctx, "UPDATE store_products SET deleted_at = ?, updated_at = ? WHERE id = ?", now, now, p.ID); err != nil {
			return fmt.Errorf("delete product: %w", err)
		}
		return s.appendEvent(ctx, tx, communityID, "store.product.deleted", map[string]string{"_id": p.ID, "name": p.Name})
	})
	return p, err
}
