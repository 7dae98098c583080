package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
)

// LimitRule allows Max failures per Window.
type LimitRule struct {
	Max    int
	Window time.Duration
}

// LoginLimits bound failed sign-ins. The zero value uses DefaultLoginLimits.
type LoginLimits struct {
	// Account counts failures per account (or per unknown identifier).
	Account LimitRule
	// Address counts failures per client address.
	Address LimitRule
}

// DefaultLoginLimits: 5 failures per account and 20 per address in 15
// minutes.
var DefaultLoginLimits = LoginLimits{
	Account: LimitRule{Max: 5, Window: 15 * time.Minute},
	Address: LimitRule{Max: 20, Window: 15 * time.Minute},
}

// limiter counts failures in fixed windows in login_limits, so every node
// sharing the database shares the limits.
type limiter struct {
	db    *db.DB
	clock clock.Clock
}

// blocked returns how long subject must wait, 0 when it may try.
func (l limiter) blocked(ctx context.Context, subject string, r LimitRule) (time.Duration, error) {
	var failures int
	var start int64
	err := l.db.QueryRow(ctx, "SELECT failures, window_start FROM login_limits WHERE subject = ?", subject).Scan(&failures, &start)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read login limit: %w", err)
	}
	ends := time.UnixMilli(start).Add(r.Window)
	now := l.clock.Now()
	if failures < r.Max || !now.Before(ends) {
		return 0, nil
	}
	return ends.Sub(now), nil
}

// fail counts one failure for subject, opening a new window when the last
// one has ended.
func (l limiter) fail(ctx context.Context, subject string, r LimitRule) error {
	now := l.clock.Now()
	stale := now.Add(-r.Window).UnixMilli()
	_, err := l.db.Exec(ctx, `INSERT INTO login_limits (subject, failures, window_start) VALUES (?, 1, ?)
		ON CONFLICT (subject) DO UPDATE SET
			failures = CASE WHEN login_limits.window_start <= ? THEN 1 ELSE login_limits.failures + 1 END,
			window_start = CASE WHEN login_limits.window_start <= ? THEN excluded.window_start ELSE login_limits.window_start END`,
		subject, now.UnixMilli(), stale, stale)
	if err != nil {
		return fmt.Errorf("count login failure: %w", err)
	}
	return nil
}

// clear forgets subject's failures (after a successful sign-in).
func (l limiter) clear(ctx context.Context, subject string) error {
	if _, err := l.db.Exec(ctx, "DELETE FROM login_limits WHERE subject = ?", subject); err != nil {
		return fmt.Errorf("clear login limit: %w", err)
	}
	return nil
}
