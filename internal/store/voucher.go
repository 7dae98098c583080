package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/jsonx"
)

// ErrOutOfVouchers is returned (wrapped) by AssignVoucherTx when the
// product has no unassigned, unexpired code left. Its kind is Conflict.
var ErrOutOfVouchers = &errs.Error{Kind: errs.Conflict, Message: "This product is out of vouchers."}

// ErrOutOfStock is returned (wrapped) by ReserveStockTx when the product's
// stock cannot cover the quantity. Its kind is Conflict.
var ErrOutOfStock = &errs.Error{Kind: errs.Conflict, Message: "This product is out of stock."}

// voucherChunk bounds the rows of one multi-row INSERT.
const voucherChunk = 200

// addVouchers appends codes to a product. A code the product already has
// (or had: codes are never reused) is a 409 naming the codes, and nothing
// is written.
func (s *Service) addVouchers(ctx context.Context, tx *db.Tx, communityID, productID string, codes []string, exp *jsonx.Time, now time.Time) error {
	if len(codes) == 0 {
		return nil
	}
	var expires any
	if exp != nil {
		expires = exp.UnixMilli()
	}
	var dups []string
	seen := make(map[string]bool, len(codes))
	for _, c := range codes {
		if seen[c] && !slices.Contains(dups, c) {
			dups = append(dups, c)
		}
		seen[c] = true
	}
	if len(dups) > 0 {
		return errs.Conflictf("Voucher code(s) sent twice: %s.", strings.Join(dups[:min(len(dups), 10)], ", "))
	}
	for start := 0; start < len(codes); start += voucherChunk {
		chunk := codes[start:min(start+voucherChunk, len(codes))]
		args := make([]any, 0, len(chunk)*5)
		for _, c := range chunk {
			args = append(args, communityID, productID, c, expires, now.UnixMilli())
		}
		q := "INSERT INTO store_vouchers (community_id, product_id, code, expires_at, created_at) VALUES " +
			db.ValueRows(len(chunk), 5) + " ON CONFLICT (product_id, code) DO NOTHING RETURNING code"
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("add vouchers: %w", err)
		}
		added := make(map[string]bool, len(chunk))
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				rows.Close()
				return fmt.Errorf("add vouchers: %w", err)
			}
			added[c] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("add vouchers: %w", err)
		}
		for _, c := range chunk {
			if !added[c] {
				dups = append(dups, c)
			}
		}
	}
	if len(dups) > 0 {
		shown := dups[:min(len(dups), 10)]
		return errs.Conflictf("%d voucher code(s) already exist for this product: %s.", len(dups), strings.Join(shown, ", "))
	}
	return nil
}

// productStock reads what AssignVoucherTx and ReserveStockTx need.
func productStock(ctx context.Context, tx *db.Tx, communityID, productID string, live bool) (typ string, stock sql.NullInt64, prioritiseExpiring bool, err error) {
	q := "SELECT type, stock, doc FROM store_products WHERE community_id = ? AND id = ?"
	if live {
		q += " AND deleted_at IS NULL"
	}
	var doc string
	err = tx.QueryRow(ctx, q, communityID, strings.ToLower(productID)).Scan(&typ, &stock, &doc)
	if errors.Is(err, sql.ErrNoRows) {
		return "", stock, false, errs.NotFoundf("Product not found.")
	}
	if err != nil {
		return "", stock, false, fmt.Errorf("read product %s: %w", productID, err)
	}
	var flags struct {
		ShouldPrioritiesExpiringVouchers bool `json:"shouldPrioritiesExpiringVouchers"`
	}
	if err := json.Unmarshal([]byte(doc), &flags); err != nil {
		return "", stock, false, fmt.Errorf("decode product %s: %w", productID, err)
	}
	return typ, stock, flags.ShouldPrioritiesExpiringVouchers, nil
}

// AssignVoucherTx takes one unassigned, unexpired voucher code of the
// product for order orderID, inside the caller's transaction, and returns
// it. Concurrent callers never get the same code: on PostgreSQL the row is
// claimed with FOR UPDATE SKIP LOCKED, on SQLite the single writer
// serialises transactions. With shouldPrioritiesExpiringVouchers the code
// expiring soonest goes first, otherwise the oldest upload. When none is
// left the error wraps ErrOutOfVouchers (a Conflict).
func (s *Service) AssignVoucherTx(ctx context.Context, tx *db.Tx, communityID, productID, orderID string) (string, error) {
	if strings.TrimSpace(orderID) == "" {
		return "", errors.New("assign voucher: order id is required")
	}
	_, _, expiringFirst, err := productStock(ctx, tx, communityID, productID, true)
	if err != nil {
		return "", fmt.Errorf("assign voucher: %w", err)
	}
	order := "seq"
	if expiringFirst {
		order = "CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END, expires_at, seq"
	}
	now := s.d.Clock.Now().UnixMilli()
	var (
		seq  int64
		code string
	)
	err = tx.QueryRow(ctx, `SELECT seq, code FROM store_vouchers WHERE community_id = ? AND product_id = ? AND order_id IS NULL
		AND (expires_at IS NULL OR expires_at > ?) ORDER BY `+order+` LIMIT 1`+tx.DB().SkipLocked(),
		communityID, strings.ToLower(productID), now).Scan(&seq, &code)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("assign voucher of product %s: %w", productID, ErrOutOfVouchers)
	}
	if err != nil {
		return "", fmt.Errorf("assign voucher: %w", err)
	}
	res, err := tx.Exec(ctx, "UPDATE store_vouchers SET order_id = ?, assigned_at = ? WHERE seq = ? AND order_id IS NULL", orderID, now, seq)
	if err != nil {
		return "", fmt.Errorf("assign voucher: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return "", fmt.Errorf("assign voucher: code %d was taken concurrently (rows %d): %v", seq, n, err)
	}
	return code, nil
}

// ReserveStockTx takes qty units of the product for one order inside the
// caller's transaction and counts the order in totalOrders. A finite stock
// goes down by qty (never below zero: the error then wraps ErrOutOfStock);
// an unlimited one is untouched. A voucher product's stock is its free
// codes: there ReserveStockTx checks that qty codes are left and the caller
// takes them with AssignVoucherTx, whose ErrOutOfVouchers settles races.
func (s *Service) ReserveStockTx(ctx context.Context, tx *db.Tx, communityID, productID string, qty int) error {
	if qty < 1 {
		return errs.New(errs.Invalid, "Quantity must be at least 1.")
	}
	typ, _, _, err := productStock(ctx, tx, communityID, productID, true)
	if err != nil {
		return fmt.Errorf("reserve stock: %w", err)
	}
	id := strings.ToLower(productID)
	if typ == typeVoucher {
		var free int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM store_vouchers WHERE product_id = ? AND order_id IS NULL
			AND (expires_at IS NULL OR expires_at > ?)`, id, s.d.Clock.Now().UnixMilli()).Scan(&free); err != nil {
			return fmt.Errorf("reserve stock: count vouchers: %w", err)
		}
		if free < qty {
			return fmt.Errorf("reserve %d of product %s: %w", qty, productID, ErrOutOfStock)
		}
		_, err := tx.Exec(ctx, "UPDATE store_products SET total_orders = total_orders + 1 WHERE id = ?", id)
		if err != nil {
			return fmt.Errorf("reserve stock: %w", err)
		}
		return nil
	}
	res, err := tx.Exec(ctx, `UPDATE store_products SET stock = CASE WHEN stock IS NULL THEN NULL ELSE stock - ? END,
		total_orders = total_orders + 1 WHERE community_id = ? AND id = ? AND (stock IS NULL OR stock >= ?)`, qty, communityID, id, qty)
	if err != nil {
		return fmt.Errorf("reserve stock: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("reserve stock: %w", err)
	} else if n == 0 {
		return fmt.Errorf("reserve %d of product %s: %w", qty, productID, ErrOutOfStock)
	}
	return nil
}

// ReleaseStockTx gives qty units back to the product when an order is
// refunded or cancelled, inside the caller's transaction, and uncounts the
// order. A finite stock goes up by qty; an unlimited one is untouched; a
// voucher product's codes stay with the order (a code once handed out is
// never handed out again). It works on deleted products too, so refunds of
// old orders still balance.
func (s *Service) ReleaseStockTx(ctx context.Context, tx *db.Tx, communityID, productID string, qty int) error {
	if qty < 1 {
		return errs.New(errs.Invalid, "Quantity must be at least 1.")
	}
	typ, _, _, err := productStock(ctx, tx, communityID, productID, false)
	if err != nil {
		return fmt.Errorf("release stock: %w", err)
	}
	add := qty
	if typ == typeVoucher {
		add = 0
	}
	if _, err := tx.Exec(ctx, `UPDATE store_products SET stock = CASE WHEN stock IS NULL THEN NULL ELSE stock + ? END,
		total_orders = CASE WHEN total_orders > 0 THEN total_orders - 1 ELSE 0 END WHERE community_id = ? AND id = ?`,
		add, communityID, strings.ToLower(productID)); err != nil {
		return fmt.Errorf("release stock: %w", err)
	}
	return nil
}
