package wallet

import (
	"context"
	"fmt"
	"time"
)

// Ledger paging limits.
const (
	DefaultLedgerLimit = 20
	MaxLedgerLimit     = 100
)

// LedgerQuery selects a page of a member's ledger, newest first.
type LedgerQuery struct {
	// Before is the cursor: only rows with a smaller sequence (0 = from the
	// newest).
	Before int64
	// Limit is the page size (default 20, at most 100).
	Limit int
	// Currency keeps one currency's rows ("" = all).
	Currency string
	// From and To keep rows created in [From, To] (zero = unbounded).
	From, To time.Time
}

// Ledger returns a page of the member's ledger, newest first, and the
// cursor for the next (older) page: the last row's sequence, or 0 when no
// older row matches. New rows always get higher sequences, so following the
// cursor never skips or repeats a row while changes keep arriving.
func (s *Service) Ledger(ctx context.Context, communityID, userID string, q LedgerQuery) ([]LedgerRow, int64, error) {
	if q.Limit <= 0 {
		q.Limit = DefaultLedgerLimit
	}
	q.Limit = min(q.Limit, MaxLedgerLimit)
	sqlq := `SELECT seq, id, community_id, user_id, currency, amount, balance_after, reason, reference, actor_kind, actor_id, created_at
		FROM wallet_ledger WHERE community_id = ? AND user_id = ?`
	args := []any{communityID, userID}
	if q.Before > 0 {
		sqlq += " AND seq < ?"
		args = append(args, q.Before)
	}
	if q.Currency != "" {
		sqlq += " AND currency = ?"
		args = append(args, q.Currency)
	}
	if !q.From.IsZero() {
		sqlq += " AND created_at >= ?"
		args = append(args, q.From.UnixMilli())
	}
	if !q.To.IsZero() {
		sqlq += " AND created_at <= ?"
		args = append(args, q.To.UnixMilli())
	}
	sqlq += " ORDER BY seq DESC LIMIT ?"
	args = append(args, q.Limit+1)
	rows, err := s.d.DB.Query(ctx, sqlq, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("read ledger: %w", err)
	}
	defer rows.Close()
	out := make([]LedgerRow, 0, q.Limit+1)
	for rows.Next() {
		var (
			r  LedgerRow
			at int64
		)
		if err := rows.Scan(&r.Seq, &r.ID, &r.CommunityID, &r.UserID, &r.Currency, &r.Amount, &r.BalanceAfter, &r.Reason,
			&r.Reference, &r.Actor.Kind, &r.Actor.ID, &at); err != nil {
			return nil, 0, fmt.Errorf("read ledger: %w", err)
		}
		r.CreatedAt = time.UnixMilli(at).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read ledger: %w", err)
	}
	var next int64
	if len(out) > q.Limit {
		out = out[:q.Limit]
		next = out[len(out)-1].Seq
	}
	return out, next, nil
}
