// Package usertest fills a database with many members quickly, for the
// benchmarks that measure user reads at scale.
package usertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/id"
)

// Base is when the first seeded member joined; member i joined i seconds
// later.
var Base = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// MemberID is the i-th seeded member's ObjectId (in creation order).
func MemberID(i int) string {
	return fmt.Sprintf("%08x%016x", Base.Unix()+int64(i), i)
}

// Community inserts a bare community and returns its id.
func Community(tb testing.TB, d *db.DB) string {
	tb.Helper()
	ctx := context.Background()
	communityID := id.New(Base)
	now := Base.UnixMilli()
	if _, err := d.Exec(ctx, `INSERT INTO communities (id, name, name_key, uri, uri_key, created_at, updated_at)
		VALUES (?, 'Bench', 'bench', 'bench', 'bench', ?, ?)`, communityID, now, now); err != nil {
		tb.Fatal(err)
	}
	return communityID
}

// Seed bulk-inserts n members into communityID: member i is u<i>@example.com
// (username u<i>, first name "First <i>", last name "Last <i%1000>"), joined
// i seconds after Base, with i%50 visits, custom field tier = "t<i%10>" (a
// select) and level = i%100 (a number). It ends with fresh statistics, as a
// long-running database has them.
func Seed(tb testing.TB, d *db.DB, communityID string, n int) {
	tb.Helper()
	ctx := context.Background()
	now := Base.UnixMilli()
	tierID, levelID := id.New(Base), id.New(Base)
	err := d.Tx(ctx, func(tx *db.Tx) error {
		for i, f := range []struct{ id, field, typ string }{{tierID, "tier", "select"}, {levelID, "level", "number"}} {
			if _, err := tx.Exec(ctx, `INSERT INTO user_fields (id, community_id, field, field_key, name, type, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, f.id, communityID, f.field, f.field, f.field, f.typ, now+int64(i), now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	const batch = 500
	for start := 0; start < n; start += 20_000 {
		err := d.Tx(ctx, func(tx *db.Tx) error {
			for lo := start; lo < min(start+20_000, n); lo += batch {
				hi := min(lo+batch, n)
				var users, mems, vals []string
				var ua, ma, va []any
				for i := lo; i < hi; i++ {
					uid := MemberID(i)
					joined := Base.Add(time.Duration(i) * time.Second).UnixMilli()
					users = append(users, "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
					ua = append(ua, uid, fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("u%d", i),
						fmt.Sprintf("u%d", i), fmt.Sprintf("First %d", i), fmt.Sprintf("Last %d", i%1000), fmt.Sprintf("U %d", i), "k", joined, joined)
					mems = append(mems, "(?, ?, ?, ?, ?, ?, ?)")
					ma = append(ma, communityID, uid, true, joined, i%50, joined, joined)
					vals = append(vals, "(?, ?, ?, ?, ?, NULL, ?)", "(?, ?, ?, ?, NULL, ?, ?)")
					tier := fmt.Sprintf("t%d", i%10)
					va = append(va, communityID, tierID, uid, `"`+tier+`"`, tier, now, communityID, levelID, uid, fmt.Sprint(i%100), float64(i%100), now)
				}
				if _, err := tx.Exec(ctx, `INSERT INTO users (id, email, email_key, username, username_key, firstname, lastname, displayname,
					token_key, created_at, updated_at) VALUES `+strings.Join(users, ", "), ua...); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `INSERT INTO members (community_id, user_id, joined, joined_at, visit_count, created_at, updated_at)
					VALUES `+strings.Join(mems, ", "), ma...); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `INSERT INTO user_field_values (community_id, field_id, user_id, value, text_value, num_value, updated_at)
					VALUES `+strings.Join(vals, ", "), va...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	// PostgreSQL also needs VACUUM: index-only scans skip the table only for
	// pages its visibility map marks, as autovacuum does on a live database.
	stats := "ANALYZE"
	if d.Dialect == db.Postgres {
		stats = "VACUUM ANALYZE users, members, user_fields, user_field_values"
	}
	if _, err := d.Exec(ctx, stats); err != nil {
		tb.Fatal(err)
	}
}

// Measure runs do b.N times, one after another, and reports the median and
// 99th-percentile latency (p50-ms, p99-ms) and the rate (req/s).
func Measure(b *testing.B, do func() error) {
	b.Helper()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := do(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
