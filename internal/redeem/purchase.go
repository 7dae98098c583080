package redeem

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/store"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/wallet"
)

// Purchase limits.
const (
	// MaxQuantity bounds the units of one purchase.
	MaxQuantity = 100
	// maxInfoLen bounds each user-information answer in characters.
	maxInfoLen = 500
)

// Buyer is a member about to buy, with the roles the product's access
// rules are matched against.
type Buyer struct {
	User       user.User
	RoleIDs    []string
	RoleTitles []string
}

// Buyer resolves identifier (see user.Store.Find; kind "" = any form) to a
// live member of the community with their roles. Anyone else is NotFound.
func (s *Service) Buyer(ctx context.Context, communityID, identifier, kind string) (Buyer, error) {
	u, _, err := s.d.Users.FindMember(ctx, communityID, identifier, kind)
	if err != nil {
		return Buyer{}, err
	}
	roles, err := s.d.Roles.MemberRoles(ctx, communityID, u.ID)
	if err != nil {
		return Buyer{}, err
	}
	b := Buyer{User: u}
	for _, r := range roles {
		b.RoleIDs = append(b.RoleIDs, r.ID)
		b.RoleTitles = append(b.RoleTitles, r.Title)
	}
	return b, nil
}

// ProductCommunity returns the community a product belongs to (for a
// signed-in member, whose request names only the product).
func (s *Service) ProductCommunity(ctx context.Context, productID string) (string, error) {
	return s.d.Store.ProductCommunity(ctx, productID)
}

// PurchaseRequest is one purchase: Buyer buys Quantity units of the product.
type PurchaseRequest struct {
	CommunityID     string
	ProductID       string
	Buyer           Buyer
	Quantity        int
	UserInformation UserInformation
	Actor           Actor
}

// PurchasedEvent is the store.item.purchased payload: the "Purchased store
// item" schema (the order, with the purchase-history fields) and the buyer.
type PurchasedEvent struct {
	Order
	User PurchaseUser `json:"user"`
}

// PurchaseUser names the buyer in a purchase event.
type PurchaseUser struct {
	ID       string `json:"_id"`
	NumID    int64  `json:"id"`
	Email    string `json:"email"`
	Username string `json:"username"`
}

// MarshalJSON writes the order's fields with user beside them.
func (e PurchasedEvent) MarshalJSON() ([]byte, error) {
	b, err := e.Order.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("encode purchase event: %w", err)
	}
	m["user"] = e.User
	return json.Marshal(m)
}

// CheckQuantity validates a purchase's quantity.
func CheckQuantity(v *errs.Validator, qty int) {
	v.Check(qty >= 1 && qty <= MaxQuantity, "quantity", "must be a whole number from 1 to %d", MaxQuantity)
}

// validate names every bad field of the request.
func (r *PurchaseRequest) validate(p store.Product) error {
	var v errs.Validator
	CheckQuantity(&v, r.Quantity)
	info := &r.UserInformation
	info.Name, info.Phone, info.Address = strings.TrimSpace(info.Name), strings.TrimSpace(info.Phone), strings.TrimSpace(info.Address)
	for _, f := range []struct {
		field, value string
		needed       bool
	}{
		{"userInformation.name", info.Name, p.UserInformation.IsEnabled && p.UserInformation.ShouldCollectName},
		{"userInformation.phone", info.Phone, p.UserInformation.IsEnabled && p.UserInformation.ShouldCollectPhone},
		{"userInformation.address", info.Address, p.UserInformation.IsEnabled && p.UserInformation.ShouldCollectAddress},
	} {
		v.Check(!f.needed || f.value != "", f.field, "is required by this product")
		v.Check(utf8.RuneCountInString(f.value) <= maxInfoLen, f.field, "must be at most %d characters", maxInfoLen)
	}
	return v.Err()
}

// PurchaseTx buys in the caller's transaction: it debits the price from the
// buyer's wallet, checks that the product can be bought now by this buyer
// (archived, availability window, access rules, purchase limits), takes
// the stock and one voucher per unit of a voucher product, writes the order
// in its first status with its history row, and emits
// store.item.purchased. Any refusal rolls everything back.
//
// Prices are in the community's in-game currency (coins); the order records
// the currency. Insufficient balance, out of stock, limits reached and a
// product not on sale are Conflicts; no access is Forbidden.
func (s *Service) PurchaseTx(ctx context.Context, tx *db.Tx, r PurchaseRequest) (Order, error) {
	now := s.d.Clock.Now()
	// Statuses first, so the first purchase of a community and a status
	// created at the same moment take locks in one order.
	if err := s.ensureStatuses(ctx, tx, r.CommunityID); err != nil {
		return Order{}, err
	}
	p, err := s.d.Store.ProductTx(ctx, tx, r.CommunityID, r.ProductID)
	if err != nil {
		return Order{}, err
	}
	if err := r.validate(p); err != nil {
		return Order{}, err
	}
	if err := onSale(p, now); err != nil {
		return Order{}, err
	}
	rules, err := access(p, r.Buyer)
	if err != nil {
		return Order{}, err
	}
	unit := unitPrice(p, rules, now)
	total := unit * int64(r.Quantity)
	if total > wallet.MaxAmount {
		var v errs.Validator
		v.Add("quantity", "makes the total price exceed %d", wallet.MaxAmount)
		return Order{}, v.Err()
	}
	orderID := id.New(now)
	orderNo, err := newOrderNumber(now)
	if err != nil {
		return Order{}, err
	}
	// The wallet first: it takes the member's lock, which also serialises
	// the purchase-limit count below.
	if total > 0 {
		if _, err := s.d.Wallet.ApplyTx(ctx, tx, wallet.Entry{CommunityID: r.CommunityID, UserID: r.Buyer.User.ID, Currency: wallet.Coins,
			Amount: -total, Reason: wallet.ReasonPurchase, Reference: orderNo, Actor: r.Actor}); err != nil {
			return Order{}, err
		}
	}
	if err := s.checkLimits(ctx, tx, r, p, rules, now); err != nil {
		return Order{}, err
	}
	if err := s.d.Store.ReserveStockTx(ctx, tx, r.CommunityID, p.ID, r.Quantity); err != nil {
		return Order{}, err
	}
	vouchers := []Voucher{}
	if p.Type == "voucher" {
		for range r.Quantity {
			if _, err := s.d.Store.AssignVoucherTx(ctx, tx, r.CommunityID, p.ID, orderID); err != nil {
				return Order{}, err
			}
		}
		assigned, err := s.d.Store.OrderVouchersTx(ctx, tx, r.CommunityID, orderID)
		if err != nil {
			return Order{}, err
		}
		for _, a := range assigned {
			v := Voucher{Code: a.Code}
			if a.ExpiresAt != nil {
				t := jsonx.At(*a.ExpiresAt)
				v.ExpiryDate = &t
			}
			vouchers = append(vouchers, v)
		}
	}
	st, err := s.firstStatus(ctx, tx, r.CommunityID, p)
	if err != nil {
		return Order{}, err
	}
	o := Order{ID: orderID, OrderID: orderNo, TransactionID: orderNo, CommunityID: r.CommunityID, UserID: r.Buyer.User.ID,
		Product:  OrderProduct{ID: p.ID, Name: p.Name, Type: p.Type, RedemptionInstructions: p.RedemptionInstructions},
		Quantity: r.Quantity, UnitPrice: unit, Price: total, Currency: wallet.Coins, Vouchers: vouchers,
		UserInformation: r.UserInformation, StatusID: st.ID, Status: st.Ref(), CreatedAt: jsonx.At(now), UpdatedAt: jsonx.At(now)}
	if err := s.insertOrder(ctx, tx, o); err != nil {
		return Order{}, err
	}
	if err := s.writeHistory(ctx, tx, o, nil, false, r.Actor, now); err != nil {
		return Order{}, err
	}
	u := r.Buyer.User
	ev := PurchasedEvent{Order: o, User: PurchaseUser{ID: u.ID, NumID: u.NumID, Email: u.Email, Username: u.Username}}
	if err := s.d.Events.Append(ctx, tx, r.CommunityID, EventPurchased, ev); err != nil {
		return Order{}, fmt.Errorf("purchase %s: %w", p.ID, err)
	}
	return o, nil
}

// insertOrder writes a new order.
func (s *Service) insertOrder(ctx context.Context, tx *db.Tx, o Order) error {
	vouchers, err := encodeVouchers(o.Vouchers)
	if err != nil {
		return err
	}
	info, err := json.Marshal(o.UserInformation)
	if err != nil {
		return fmt.Errorf("encode user information: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO redemption_orders (id, order_no, community_id, user_id, product_id, product_name, product_type,
		redemption_instructions, quantity, unit_price, total_price, currency, vouchers, user_information, status_id, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		o.ID, o.OrderID, o.CommunityID, o.UserID, o.Product.ID, o.Product.Name, o.Product.Type, o.Product.RedemptionInstructions,
		o.Quantity, o.UnitPrice, o.Price, o.Currency, vouchers, string(info), o.StatusID, o.CreatedAt.UnixMilli(), o.UpdatedAt.UnixMilli()); err != nil {
		return fmt.Errorf("write order %s: %w", o.OrderID, err)
	}
	return nil
}

// orderDigits is how many random digits follow ORD and the date: 10^12
// numbers a day make a collision (a unique-index failure, retried by the
// client) practically impossible.
const orderDigits = 12

// newOrderNumber returns ORD + YYYYMMDD + random digits.
func newOrderNumber(now time.Time) (string, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Exp(big.NewInt(10), big.NewInt(orderDigits), nil))
	if err != nil {
		return "", fmt.Errorf("order number: %w", err)
	}
	return fmt.Sprintf("ORD%s%0*d", now.UTC().Format("20060102"), orderDigits, n), nil
}

// onSale refuses archived products and those outside their availability
// window.
func onSale(p store.Product, now time.Time) error {
	switch {
	case p.IsArchived:
		return errs.Conflictf("This product is archived and cannot be bought.")
	case p.AvailableFrom != nil && now.Before(p.AvailableFrom.Time):
		return errs.Conflictf("This product is not available until %s.", p.AvailableFrom.Format(time.RFC3339))
	case p.AvailableUntil != nil && !now.Before(p.AvailableUntil.Time):
		return errs.Conflictf("This product is no longer available.")
	}
	return nil
}

// access returns the product's enabled rules that match the buyer. With
// product access enabled, a buyer must match a rule, and a full-access one:
// view-only and no-access rules, or none, refuse the purchase (Forbidden).
func access(p store.Product, b Buyer) ([]store.ProductRule, error) {
	var matched []store.ProductRule
	for _, r := range p.ProductPermission {
		if r.IsEnabled && matches(r, b) {
			matched = append(matched, r)
		}
	}
	if !p.IsProductAccessEnabled {
		return matched, nil
	}
	if !slices.ContainsFunc(matched, func(r store.ProductRule) bool { return r.AccessLevel == "full-access" }) {
		return nil, errs.Forbiddenf("This member may not buy this product.")
	}
	return matched, nil
}

// matches reports whether a rule is about the buyer. Tags are not kept by
// Rally, so tag rules match only with isSelectAll.
func matches(r store.ProductRule, b Buyer) bool {
	refs := r.Permission
	has := func(list []string, v string) bool {
		return slices.ContainsFunc(list, func(s string) bool { return strings.EqualFold(s, v) })
	}
	anyOf := func(list, held []string) bool {
		return slices.ContainsFunc(held, func(h string) bool { return has(list, h) })
	}
	role := refs.IsSelectAll || anyOf(refs.Roles, b.RoleTitles) || anyOf(refs.RoleIDs, b.RoleIDs)
	usr := refs.IsSelectAll || has(refs.Users, b.User.Username) || has(refs.UserIDs, b.User.ID)
	switch r.Type {
	case "everyone":
		return true
	case "role":
		return role
	case "user":
		return usr
	case "tag":
		return refs.IsSelectAll
	case "combination":
		if len(refs.Combination) == 0 {
			return false
		}
		for _, c := range refs.Combination {
			ok := false
			switch c.Type {
			case "role":
				ok = anyOf(c.Values, b.RoleTitles) || anyOf(c.Values, b.RoleIDs)
			case "user":
				ok = has(c.Values, b.User.Username) || has(c.Values, b.User.ID)
			}
			if !ok {
				return false
			}
		}
		return true
	}
	return false
}

// unitPrice is the price of one unit now: the discount price inside its
// window, or the lowest special price of the matched rules, if lower.
func unitPrice(p store.Product, rules []store.ProductRule, now time.Time) int64 {
	price := p.Price
	if p.IsDiscountEnabled && (p.DiscountStartDate == nil || !now.Before(p.DiscountStartDate.Time)) &&
		(p.DiscountEndDate == nil || now.Before(p.DiscountEndDate.Time)) {
		price = min(price, p.DiscountPrice)
	}
	for _, r := range rules {
		if r.PurchaseAccess.IsSpecialPriceEnabled {
			price = min(price, r.PurchaseAccess.SpecialPrice)
		}
	}
	return price
}

// limit is one purchase limit to check.
type limit struct {
	enabled  bool
	quantity int
	count    int
	unit     string
}

// since is the start of the limit's window ending at now (zero: lifetime).
func (l limit) since(now time.Time) time.Time {
	switch l.unit {
	case "days":
		return now.AddDate(0, 0, -l.count)
	case "weeks":
		return now.AddDate(0, 0, -7*l.count)
	case "months":
		return now.AddDate(0, -l.count, 0)
	case "years":
		return now.AddDate(-l.count, 0, 0)
	}
	return time.Time{}
}

// checkLimits refuses a purchase that would take the buyer past the
// product's per-member limit or a matched rule's limit: units of the
// buyer's non-refunded orders of the product inside each window, plus
// this one. The caller holds the buyer's wallet lock, so concurrent
// purchases by one member count each other.
func (s *Service) checkLimits(ctx context.Context, tx *db.Tx, r PurchaseRequest, p store.Product, rules []store.ProductRule, now time.Time) error {
	limits := []limit{{p.PurchaseLimit.IsEnabled, p.PurchaseLimit.Quantity, p.PurchaseLimit.IntervalCount, p.PurchaseLimit.IntervalUnit}}
	for _, rule := range rules {
		l := rule.PurchaseLimit
		limits = append(limits, limit{l.IsPurchaseLimitEnabled, l.Quantity, l.IntervalCount, l.IntervalUnit})
	}
	for _, l := range limits {
		if !l.enabled {
			continue
		}
		var bought int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(SUM(quantity), 0) FROM redemption_orders WHERE community_id = ? AND user_id = ?
			AND product_id = ? AND NOT refunded AND created_at >= ?`,
			r.CommunityID, r.Buyer.User.ID, p.ID, l.since(now).UnixMilli()).Scan(&bought); err != nil {
			return fmt.Errorf("count purchases: %w", err)
		}
		if bought+r.Quantity > l.quantity {
			return errs.Conflictf("Purchase limit reached: at most %d of this product per member (%d bought).", l.quantity, bought)
		}
	}
	return nil
}

// firstStatus is a new order's status: the product's status override, else
// its category's default purchase status, else the community's default.
// References (by id or name) that name no status of the community fall
// through to the next.
func (s *Service) firstStatus(ctx context.Context, tx *db.Tx, communityID string, p store.Product) (Status, error) {
	var refs [][2]*string
	if o := p.PurchaseStatusOverride; o.IsEnabled {
		refs = append(refs, [2]*string{o.StatusID, o.Status})
	}
	if p.CategoryID != nil {
		if c, err := s.d.Store.Category(ctx, communityID, *p.CategoryID, store.Query{}); err == nil {
			refs = append(refs, [2]*string{c.DefaultPurchaseStatusID, c.DefaultPurchaseStatus})
		} else if errs.KindOf(err) != errs.NotFound {
			return Status{}, err
		}
	}
	for _, ref := range refs {
		for i, v := range ref {
			if v == nil || *v == "" {
				continue
			}
			col, arg := "id", strings.ToLower(*v)
			if i == 1 {
				col, arg = "name_key", nameKey(*v)
			}
			st, err := scanStatus(tx.QueryRow(ctx, "SELECT "+statusColumns+" FROM redemption_statuses WHERE community_id = ? AND "+col+" = ?",
				communityID, arg))
			if err == nil {
				return st, nil
			}
			if errs.KindOf(err) != errs.NotFound {
				return Status{}, err
			}
		}
	}
	return scanStatus(tx.QueryRow(ctx, "SELECT "+statusColumns+" FROM redemption_statuses WHERE community_id = ? AND is_default",
		communityID))
}
