package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
)

// What the purchase flow (package redeem) reads and writes of the catalogue
// inside its own transactions.

// AssignedVoucher is a voucher code handed to an order and its expiry (nil:
// none).
type AssignedVoucher struct {
	Code      string
	ExpiresAt *time.Time
}

// ProductTx reads a live product of the community inside tx without locking
// it (a purchase locks the product row later, in ReserveStockTx, to keep
// one lock order with refunds). A bad or unknown id is NotFound.
func (s *Service) ProductTx(ctx context.Context, tx *db.Tx, communityID, productID string) (Product, error) {
	if !id.Valid(productID) {
		return Product{}, errs.NotFoundf("Product not found.")
	}
	return scanProduct(tx.QueryRow(ctx, productSelect+" WHERE community_id = ? AND id = ? AND deleted_at IS NULL",
		s.d.Clock.Now().UnixMilli(), communityID, strings.ToLower(productID)))
}

// ProductCommunity returns the community a live product belongs to, for
// callers that know the product but not the community (a signed-in member
// buying). A bad or unknown id is NotFound.
func (s *Service) ProductCommunity(ctx context.Context, productID string) (string, error) {
	if !id.Valid(productID) {
		return "", errs.NotFoundf("Product not found.")
	}
	var communityID string
	err := s.d.DB.QueryRow(ctx, "SELECT community_id FROM store_products WHERE id = ? AND deleted_at IS NULL",
		strings.ToLower(productID)).Scan(&communityID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errs.NotFoundf("Product not found.")
	}
	if err != nil {
		return "", fmt.Errorf("find product %s: %w", productID, err)
	}
	return communityID, nil
}

// OrderVouchersTx lists the codes handed to order orderID, in the order
// they were assigned.
func (s *Service) OrderVouchersTx(ctx context.Context, tx *db.Tx, communityID, orderID string) ([]AssignedVoucher, error) {
	rows, err := tx.Query(ctx, "SELECT code, expires_at FROM store_vouchers WHERE community_id = ? AND order_id = ? ORDER BY assigned_at, seq",
		communityID, orderID)
	if err != nil {
		return nil, fmt.Errorf("read vouchers of order %s: %w", orderID, err)
	}
	defer rows.Close()
	out := []AssignedVoucher{}
	for rows.Next() {
		var (
			v   AssignedVoucher
			exp sql.NullInt64
		)
		if err := rows.Scan(&v.Code, &exp); err != nil {
			return nil, fmt.Errorf("read vouchers of order %s: %w", orderID, err)
		}
		if exp.Valid {
			t := time.UnixMilli(exp.Int64).UTC()
			v.ExpiresAt = &t
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// UpdateOrderVoucherTx changes the code and expiry of the one voucher
// handed to order orderID (purchase-history update). No voucher on the
// order is NotFound; a code another voucher of the product already has is
// a Conflict.
func (s *Service) UpdateOrderVoucherTx(ctx context.Context, tx *db.Tx, communityID, orderID, code string, expires time.Time) error {
	var (
		seq       int64
		productID string
	)
	err := tx.QueryRow(ctx, "SELECT seq, product_id FROM store_vouchers WHERE community_id = ? AND order_id = ? ORDER BY seq LIMIT 1"+
		tx.DB().ForUpdate(), communityID, orderID).Scan(&seq, &productID)
	if errors.Is(err, sql.ErrNoRows) {
		return errs.NotFoundf("This purchase has no voucher to update.")
	}
	if err != nil {
		return fmt.Errorf("update voucher of order %s: %w", orderID, err)
	}
	var taken int
	if err := tx.QueryRow(ctx, "SELECT COUNT(*) FROM store_vouchers WHERE product_id = ? AND code = ? AND seq <> ?",
		productID, code, seq).Scan(&taken); err != nil {
		return fmt.Errorf("update voucher of order %s: %w", orderID, err)
	}
	if taken > 0 {
		return errs.Conflictf("Voucher code %s already exists for this product.", code)
	}
	if _, err := tx.Exec(ctx, "UPDATE store_vouchers SET code = ?, expires_at = ? WHERE seq = ?", code, expires.UnixMilli(), seq); err != nil {
		if db.IsUniqueViolation(err) {
			return errs.Conflictf("Voucher code %s already exists for this product.", code)
		}
		return fmt.Errorf("update voucher of order %s: %w", orderID, err)
	}
	return nil
}
