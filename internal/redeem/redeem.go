// Package redeem is the store's purchase flow and what follows it: members
// buy products (paying from their wallet, taking stock and voucher codes),
// each purchase becomes an order — a redemption transaction, also called a
// purchase history, with a human id ORD… — and the community moves orders
// through its redemption statuses. Moving an order to a refunding status
// returns its price to the wallet and its units to the stock, exactly once.
//
// Every write runs in one transaction with its ledger rows, history rows and
// events. Lock order (PostgreSQL): an order row, then the member's wallet
// (wallet.ApplyTx), then the community's event lock, then the product row;
// purchases start at the wallet, so no two writes wait on each other in
// opposite orders.
package redeem

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rallyhq/rally/internal/event"
	"strings"
	"time"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/role"
	"github.com/rallyhq/rally/internal/store"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/wallet"
)

// Event types this package writes.
const (
	EventPurchased      = "store.item.purchased"
	EventStatusChanged  = "redemption.status.updated"
	EventStatusCreated  = "redemption.status.created"
	EventHistoryUpdated = "purchase-history.updated"
)

// Deps are what the redemption service needs.
type Deps struct {
	DB     *db.DB
	Clock  clock.Clock
	Events event.Appender
	Store  *store.Service
	Wallet *wallet.Service
	Users  *user.Store
	Roles  *role.Service
}

// Service holds the purchase and redemption rules.
type Service struct {
	d Deps
}

// NewService returns the redemption service.
func NewService(d Deps) *Service { return &Service{d: d} }

// OrderProduct is the product as it was when bought.
type OrderProduct struct {
	ID                     string `json:"_id"`
	Name                   string `json:"name"`
	Type                   string `json:"type"`
	RedemptionInstructions string `json:"redemptionInstructions"`
}

// Voucher is a voucher code handed to an order.
type Voucher struct {
	Code       string      `json:"code"`
	ExpiryDate *jsonx.Time `json:"expiryDate"`
}

// UserInformation is what the buyer told at purchase, when the product
// asks for it.
type UserInformation struct {
	Name    string `json:"name,omitempty"`
	Phone   string `json:"phone,omitempty"`
	Address string `json:"address,omitempty"`
}

// Order is a purchase: a redemption transaction and a purchase history are
// the same record. OrderID and TransactionID are the same ORD… id.
type Order struct {
	ID              string          `json:"_id"`
	OrderID         string          `json:"orderID"`
	TransactionID   string          `json:"transactionId"`
	CommunityID     string          `json:"communityID"`
	UserID          string          `json:"userID"`
	Product         OrderProduct    `json:"product"`
	Quantity        int             `json:"quantity"`
	UnitPrice       int64           `json:"unitPrice"`
	Price           int64           `json:"price"`
	Currency        string          `json:"currency"`
	Vouchers        []Voucher       `json:"vouchers"`
	UserInformation UserInformation `json:"userInformation"`
	StatusID        string          `json:"statusId"`
	Status          StatusRef       `json:"status"`
	Refunded        bool            `json:"refunded"`
	RefundedAt      *jsonx.Time     `json:"refundedAt"`
	CreatedAt       jsonx.Time      `json:"createdAt"`
	UpdatedAt       jsonx.Time      `json:"updatedAt"`
}

// orderJSON adds the single-voucher shorthand of the purchase-history
// update (voucherCode, voucherExpiryDate in DD/MM/YYYY) to an order.
type orderJSON struct {
	orderAlias
	VoucherCode       *string `json:"voucherCode"`
	VoucherExpiryDate *string `json:"voucherExpiryDate"`
}

type orderAlias Order

// DateLayout is the DD/MM/YYYY form of voucherExpiryDate.
const DateLayout = "02/01/2006"

// MarshalJSON writes the order with voucherCode and voucherExpiryDate of
// its first voucher (null without one).
func (o Order) MarshalJSON() ([]byte, error) {
	out := orderJSON{orderAlias: orderAlias(o)}
	if out.Vouchers == nil {
		out.Vouchers = []Voucher{}
	}
	if len(o.Vouchers) > 0 {
		out.VoucherCode = &o.Vouchers[0].Code
		if e := o.Vouchers[0].ExpiryDate; e != nil {
			d := e.Format(DateLayout)
			out.VoucherExpiryDate = &d
		}
	}
	return json.Marshal(out)
}

// storedVoucher is a voucher in the order's snapshot column.
type storedVoucher struct {
	Code      string `json:"code"`
	ExpiresAt *int64 `json:"expiresAt"`
}

func encodeVouchers(list []Voucher) (string, error) {
	out := make([]storedVoucher, len(list))
	for i, v := range list {
		out[i].Code = v.Code
		if v.ExpiryDate != nil {
			ms := v.ExpiryDate.UnixMilli()
			out[i].ExpiresAt = &ms
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("encode vouchers: %w", err)
	}
	return string(b), nil
}

func decodeVouchers(s string) ([]Voucher, error) {
	var in []storedVoucher
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return nil, fmt.Errorf("decode vouchers: %w", err)
	}
	out := make([]Voucher, len(in))
	for i, v := range in {
		out[i].Code = v.Code
		if v.ExpiresAt != nil {
			t := jsonx.Millis(*v.ExpiresAt)
			out[i].ExpiryDate = &t
		}
	}
	return out, nil
}

// orderSelect reads orders with their status.
const orderSelect = `SELECT o.id, o.order_no, o.community_id, o.user_id, o.product_id, o.product_name, o.product_type,
	o.redemption_instructions, o.quantity, o.unit_price, o.total_price, o.currency, o.vouchers, o.user_information,
	o.refunded, o.refunded_at, o.created_at, o.updated_at,
	s.id, s.name, s.color, s.is_final, s.refunds
	FROM redemption_orders o JOIN redemption_statuses s ON s.id = o.status_id`

func scanOrder(r scanner) (Order, error) {
	var (
		o                Order
		vouchers, info   string
		refundedAt       sql.NullInt64
		created, updated int64
	)
	err := r.Scan(&o.ID, &o.OrderID, &o.CommunityID, &o.UserID, &o.Product.ID, &o.Product.Name, &o.Product.Type,
		&o.Product.RedemptionInstructions, &o.Quantity, &o.UnitPrice, &o.Price, &o.Currency, &vouchers, &info,
		&o.Refunded, &refundedAt, &created, &updated,
		&o.Status.ID, &o.Status.Name, &o.Status.Color, &o.Status.IsFinal, &o.Status.Refunds)
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, errs.NotFoundf("Redemption transaction not found.")
	}
	if err != nil {
		return Order{}, fmt.Errorf("read order: %w", err)
	}
	if o.Vouchers, err = decodeVouchers(vouchers); err != nil {
		return Order{}, err
	}
	if err := json.Unmarshal([]byte(info), &o.UserInformation); err != nil {
		return Order{}, fmt.Errorf("decode user information: %w", err)
	}
	o.TransactionID = o.OrderID
	o.StatusID = o.Status.ID
	o.Status.Category = category(o.Status.IsFinal, o.Status.Refunds)
	if refundedAt.Valid {
		t := jsonx.Millis(refundedAt.Int64)
		o.RefundedAt = &t
	}
	o.CreatedAt, o.UpdatedAt = jsonx.Millis(created), jsonx.Millis(updated)
	return o, nil
}

// orderWhere selects an order of the community by ref: its ORD… id or its
// _id. A ref that is neither never matches.
func orderWhere(ref string) (string, string) {
	ref = strings.TrimSpace(ref)
	if id.Valid(ref) {
		return " WHERE o.community_id = ? AND o.id = ?", strings.ToLower(ref)
	}
	return " WHERE o.community_id = ? AND o.order_no = ?", ref
}

// Order returns one order of the community by its ORD… id or _id.
func (s *Service) Order(ctx context.Context, communityID, ref string) (Order, error) {
	where, arg := orderWhere(ref)
	return scanOrder(s.d.DB.QueryRow(ctx, orderSelect+where, communityID, arg))
}

// orderTx reads an order inside tx after locking its row (PostgreSQL: the
// row lock serialises status changes and refunds of one order). The lock is
// taken by its own statement so the read after it sees the latest committed
// order and status together.
func orderTx(ctx context.Context, tx *db.Tx, communityID, ref string) (Order, error) {
	where, arg := orderWhere(ref)
	var orderID string
	err := tx.QueryRow(ctx, "SELECT o.id FROM redemption_orders o"+where+tx.DB().ForUpdate(), communityID, arg).Scan(&orderID)
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, errs.NotFoundf("Redemption transaction not found.")
	}
	if err != nil {
		return Order{}, fmt.Errorf("lock order: %w", err)
	}
	return scanOrder(tx.QueryRow(ctx, orderSelect+" WHERE o.id = ?", orderID))
}

// OrderQuery selects a page of a community's orders, newest first.
type OrderQuery struct {
	Skip, Limit int
	// UserID keeps one member's orders ("" = all).
	UserID string
	// Status keeps orders in one status, by _id or name ("" = all).
	Status string
	// From and To keep orders created in [From, To] (zero = unbounded).
	From, To time.Time
}

// Orders lists the community's orders by q, with the total.
func (s *Service) Orders(ctx context.Context, communityID string, q OrderQuery) ([]Order, int, error) {
	where := " WHERE o.community_id = ?"
	args := []any{communityID}
	if q.UserID != "" {
		where += " AND o.user_id = ?"
		args = append(args, q.UserID)
	}
	if q.Status != "" {
		where += " AND (s.id = ? OR s.name_key = ?)"
		args = append(args, strings.ToLower(q.Status), nameKey(q.Status))
	}
	if !q.From.IsZero() {
		where += " AND o.created_at >= ?"
		args = append(args, q.From.UnixMilli())
	}
	if !q.To.IsZero() {
		where += " AND o.created_at <= ?"
		args = append(args, q.To.UnixMilli())
	}
	return db.ListPage(ctx, s.d.DB, "SELECT COUNT(*) FROM redemption_orders o JOIN redemption_statuses s ON s.id = o.status_id"+where,
		orderSelect+where+" ORDER BY o.created_at DESC, o.id DESC", args, q.Skip, q.Limit, scanOrder)
}

// scanner is a row to scan.
type scanner = db.Scanner

// OrdersByEmail lists the orders of the community's member with this email
// (deleted members included: their orders stay on the books). An email
// that names no member of the community is NotFound.
func (s *Service) OrdersByEmail(ctx context.Context, communityID, email string, q OrderQuery) ([]Order, int, error) {
	u, err := s.d.Users.Find(ctx, email, user.ByEmail)
	if err != nil {
		return nil, 0, err
	}
	if _, err := s.d.Users.Member(ctx, communityID, u.ID); err != nil {
		return nil, 0, err
	}
	q.UserID = u.ID
	return s.Orders(ctx, communityID, q)
}

// HistoryEntry is one status an order was given.
type HistoryEntry struct {
	ID            string     `json:"_id"`
	TransactionID string     `json:"transactionId"`
	FromStatusID  *string    `json:"fromStatusId"`
	StatusID      string     `json:"statusId"`
	Status        StatusRef  `json:"status"`
	Refunded      bool       `json:"refunded"`
	Actor         Actor      `json:"actor"`
	ChangedAt     jsonx.Time `json:"changedAt"`
}

// Actor is who made a change: an API key, a user or Rally itself.
type Actor = wallet.Actor

// History lists an order's status changes, oldest first, paged, with the
// total. ref is the order's ORD… id or _id.
func (s *Service) History(ctx context.Context, communityID, ref string, skip, limit int) ([]HistoryEntry, int, error) {
	o, err := s.Order(ctx, communityID, ref)
	if err != nil {
		return nil, 0, err
	}
	return db.ListPage(ctx, s.d.DB, "SELECT COUNT(*) FROM redemption_status_history WHERE order_id = ?",
		`SELECT h.id, h.from_status_id, h.refunded, h.actor_kind, h.actor_id, h.created_at, s.id, s.name, s.color, s.is_final, s.refunds
		FROM redemption_status_history h JOIN redemption_statuses s ON s.id = h.status_id WHERE h.order_id = ? ORDER BY h.seq`,
		[]any{o.ID}, skip, limit, func(r scanner) (HistoryEntry, error) {
			var (
				h    HistoryEntry
				from sql.NullString
				at   int64
			)
			if err := r.Scan(&h.ID, &from, &h.Refunded, &h.Actor.Kind, &h.Actor.ID, &at,
				&h.Status.ID, &h.Status.Name, &h.Status.Color, &h.Status.IsFinal, &h.Status.Refunds); err != nil {
				return HistoryEntry{}, fmt.Errorf("read status history: %w", err)
			}
			if from.Valid {
				h.FromStatusID = &from.String
			}
			h.TransactionID, h.StatusID, h.ChangedAt = o.OrderID, h.Status.ID, jsonx.Millis(at)
			h.Status.Category = category(h.Status.IsFinal, h.Status.Refunds)
			return h, nil
		})
}

// writeHistory records that order got status to (from the previous one,
// nil for a new order).
func (s *Service) writeHistory(ctx context.Context, tx *db.Tx, o Order, from *string, refunded bool, actor Actor, now time.Time) error {
	if _, err := tx.Exec(ctx, `INSERT INTO redemption_status_history (id, community_id, order_id, from_status_id, status_id, refunded,
		actor_kind, actor_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id.New(now), o.CommunityID, o.ID, from, o.Status.ID, refunded, actor.Kind, actor.ID, now.UnixMilli()); err != nil {
		return fmt.Errorf("write status history of %s: %w", o.OrderID, err)
	}
	return nil
}
