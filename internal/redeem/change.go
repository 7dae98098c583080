package redeem

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/wallet"
)

// StatusChange is the answer to a status change (RR1's documented data,
// plus whether this change refunded the order).
type StatusChange struct {
	TransactionID string    `json:"transactionId"`
	StatusID      string    `json:"statusId"`
	Status        StatusRef `json:"status"`
	// Changed is false when the order already had the status.
	Changed bool `json:"changed"`
	// Refunded is true when this change returned the price and stock.
	Refunded bool `json:"refunded"`
}

// statusEvent is the redemption.status.updated payload.
type statusEvent struct {
	TransactionID string    `json:"transactionId"`
	OrderID       string    `json:"_id"`
	UserID        string    `json:"userID"`
	FromStatusID  string    `json:"fromStatusId"`
	StatusID      string    `json:"statusId"`
	Status        StatusRef `json:"status"`
	Refunded      bool      `json:"refunded"`
}

// ChangeStatus moves order ref (its ORD… id or _id) to status statusID.
// Giving an order the status it has changes nothing. A final status cannot
// be left (Conflict). Moving to a refunding status returns the price to the
// member's wallet (reason refund, reference the order id) and the units to
// the stock, exactly once per order: the refunded flag is checked and set
// under the order's row lock. Each change writes a history row and a
// redemption.status.updated event.
func (s *Service) ChangeStatus(ctx context.Context, communityID, ref, statusID string, actor Actor) (StatusChange, error) {
	var out StatusChange
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := s.ensureStatuses(ctx, tx, communityID); err != nil {
			return err
		}
		o, err := orderTx(ctx, tx, communityID, ref)
		if err != nil {
			return err
		}
		to, err := statusTx(ctx, tx, communityID, statusID)
		if err != nil {
			return err
		}
		out = StatusChange{TransactionID: o.OrderID, StatusID: to.ID, Status: to.Ref()}
		if o.Status.ID == to.ID {
			return nil
		}
		if o.Status.IsFinal {
			return errs.Conflictf("The order is %s, a final status, and cannot move to another.", o.Status.Name)
		}
		now := s.d.Clock.Now()
		refund := to.Refunds && !o.Refunded
		if refund {
			if err := s.refund(ctx, tx, o, actor); err != nil {
				return err
			}
		}
		res, err := tx.Exec(ctx, `UPDATE redemption_orders SET status_id = ?, refunded = refunded OR ?,
			refunded_at = CASE WHEN ? THEN ? ELSE refunded_at END, updated_at = ? WHERE id = ?`,
			to.ID, refund, refund, now.UnixMilli(), now.UnixMilli(), o.ID)
		if err != nil {
			return fmt.Errorf("change status of %s: %w", o.OrderID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("change status of %s: %d rows: %v", o.OrderID, n, err)
		}
		from := o.Status.ID
		o.Status = to.Ref()
		if err := s.writeHistory(ctx, tx, o, &from, refund, actor, now); err != nil {
			return err
		}
		out.Changed, out.Refunded = true, refund
		return s.d.Events.Append(ctx, tx, communityID, EventStatusChanged, statusEvent{TransactionID: o.OrderID, OrderID: o.ID,
			UserID: o.UserID, FromStatusID: from, StatusID: to.ID, Status: to.Ref(), Refunded: refund})
	})
	return out, err
}

// refund returns an order's price and stock inside tx (the order row is
// locked by the caller).
func (s *Service) refund(ctx context.Context, tx *db.Tx, o Order, actor Actor) error {
	if o.Price > 0 {
		if _, err := s.d.Wallet.ApplyTx(ctx, tx, wallet.Entry{CommunityID: o.CommunityID, UserID: o.UserID, Currency: o.Currency,
			Amount: o.Price, Reason: wallet.ReasonRefund, Reference: o.OrderID, Actor: actor}); err != nil {
			return fmt.Errorf("refund %s: %w", o.OrderID, err)
		}
	}
	if err := s.d.Store.ReleaseStockTx(ctx, tx, o.CommunityID, o.Product.ID, o.Quantity); err != nil {
		return fmt.Errorf("refund %s: %w", o.OrderID, err)
	}
	return nil
}

// HistoryInput is a purchase-history update: redemptionInstructions alone,
// voucherCode with voucherExpiryDate (DD/MM/YYYY), or all three.
type HistoryInput struct {
	RedemptionInstructions *string `json:"redemptionInstructions"`
	VoucherCode            *string `json:"voucherCode"`
	VoucherExpiryDate      *string `json:"voucherExpiryDate"`
}

// Limits of the purchase-history update (documented).
const (
	maxInstructions = 10000
	maxVoucherCode  = 512
)

// parse validates the input, naming every bad field, and returns the
// trimmed values and the voucher's expiry (the end of that UTC day).
func (in HistoryInput) parse() (instructions, code *string, expires time.Time, err error) {
	var v errs.Validator
	if in.RedemptionInstructions != nil {
		s := strings.TrimSpace(*in.RedemptionInstructions)
		v.Check(s != "" && utf8.RuneCountInString(s) <= maxInstructions, "redemptionInstructions", "must be 1 to %d characters", maxInstructions)
		instructions = &s
	}
	if in.VoucherCode != nil || in.VoucherExpiryDate != nil {
		c := ""
		if in.VoucherCode != nil {
			c = strings.TrimSpace(*in.VoucherCode)
		}
		v.Check(c != "" && utf8.RuneCountInString(c) <= maxVoucherCode, "voucherCode",
			"is required with voucherExpiryDate: 1 to %d characters", maxVoucherCode)
		code = &c
		d := ""
		if in.VoucherExpiryDate != nil {
			d = strings.TrimSpace(*in.VoucherExpiryDate)
		}
		day, perr := time.Parse(DateLayout, d)
		v.Check(perr == nil && len(d) == len(DateLayout), "voucherExpiryDate", "is required with voucherCode: a date in DD/MM/YYYY such as 31/12/2026")
		expires = day.AddDate(0, 0, 1).Add(-time.Millisecond)
	}
	if in.RedemptionInstructions == nil && in.VoucherCode == nil && in.VoucherExpiryDate == nil {
		v.Add("body", "must hold redemptionInstructions, or voucherCode with voucherExpiryDate, or all three")
	}
	return instructions, code, expires, v.Err()
}

// UpdateHistory changes a purchase history (order ref: ORD… id or _id):
// the redemption instructions in the order's product snapshot (the product
// itself is untouched), and/or the code and expiry of the order's voucher,
// in the store too (a code another voucher of the product has is a
// Conflict; an order without a voucher is NotFound; one with several
// vouchers is a Conflict). It emits purchase-history.updated.
func (s *Service) UpdateHistory(ctx context.Context, communityID, ref string, in HistoryInput) (Order, error) {
	instructions, code, expires, err := in.parse()
	if err != nil {
		return Order{}, err
	}
	var o Order
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if o, err = orderTx(ctx, tx, communityID, ref); err != nil {
			return err
		}
		now := s.d.Clock.Now()
		if instructions != nil {
			o.Product.RedemptionInstructions = *instructions
		}
		if code != nil {
			switch len(o.Vouchers) {
			case 0:
				return errs.NotFoundf("This purchase has no voucher to update.")
			case 1:
			default:
				return errs.Conflictf("This purchase holds %d vouchers; only a single-voucher purchase can be updated here.", len(o.Vouchers))
			}
			if err := s.d.Store.UpdateOrderVoucherTx(ctx, tx, communityID, o.ID, *code, expires); err != nil {
				return err
			}
			exp := jsonx.At(expires)
			o.Vouchers[0] = Voucher{Code: *code, ExpiryDate: &exp}
		}
		vouchers, err := encodeVouchers(o.Vouchers)
		if err != nil {
			return err
		}
		o.UpdatedAt = jsonx.At(now)
		if _, err := tx.Exec(ctx, "UPDATE redemption_orders SET redemption_instructions = ?, vouchers = ?, updated_at = ? WHERE id = ?",
			o.Product.RedemptionInstructions, vouchers, now.UnixMilli(), o.ID); err != nil {
			return fmt.Errorf("update purchase history %s: %w", o.OrderID, err)
		}
		return s.d.Events.Append(ctx, tx, communityID, EventHistoryUpdated, o)
	})
	return o, err
}

// ValidRef reports whether ref can name an order: an ObjectId or an ORD… id.
func ValidRef(ref string) bool {
	ref = strings.TrimSpace(ref)
	return id.Valid(ref) || (strings.HasPrefix(ref, "ORD") && len(ref) > 3 && len(ref) <= 64)
}
