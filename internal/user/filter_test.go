package user

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/db/dbtest"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
)

// testColumns resolves the default fields and a few custom ones.
func testColumns() func(string) (column, bool) {
	cols := defaultColumns(NoCounters{})
	cols["level"] = customColumn("f1", "level", "number")
	cols["tier"] = customColumn("f2", "tier", "select")
	cols["vip"] = customColumn("f3", "vip", "boolean")
	cols["birthday"] = customColumn("f4", "birthday", "date")
	return func(name string) (column, bool) {
		c, ok := cols[name]
		return c, ok
	}
}

func TestPlanFilter(t *testing.T) {
	p, err := planFilter(FilterRequest{Filter: map[string]json.RawMessage{
		"join_date": json.RawMessage(`{"gte":"2025-01-01","lte":"2025-08-28"}`),
		"email":     json.RawMessage(`"Ada@Example.com"`),
		"level":     json.RawMessage(`{"gte":"3"}`),
	}}, testColumns())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.fields, defaultFields) || len(p.conds) != 3 {
		t.Fatalf("plan %+v", p)
	}
	// Sorted by name: email, join_date, level.
	if p.conds[0].eq != "ada@example.com" {
		t.Fatalf("email folded: %+v", p.conds[0])
	}
	lo := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	hi := time.Date(2025, 8, 29, 0, 0, 0, 0, time.UTC).UnixMilli() - 1
	if p.conds[1].lo != lo || p.conds[1].hi != hi {
		t.Fatalf("day range: %+v", p.conds[1])
	}
	where, args := p.conds[2].sql()
	if !strings.Contains(where, "user_field_values") || len(args) != 2 || args[0] != "f1" || args[1] != 3.0 {
		t.Fatalf("custom condition: %s %v", where, args)
	}
	cur := encodeCursor(id.New(time.Now()))
	if _, err := planFilter(FilterRequest{Cursor: &cur}, testColumns()); err != nil {
		t.Fatalf("own cursor refused: %v", err)
	}
}

// FuzzPlanFilter feeds arbitrary request bodies to the filter planner: it
// must never panic; a refusal is Invalid and names fields; an accepted plan
// binds exactly as many arguments as it has placeholders.
func FuzzPlanFilter(f *testing.F) {
	for _, s := range []string{
		`{"fields":["email","join_date","first_name","last_name"],"filter":{"join_date":{"lte":"2025-08-28","gte":"2025-01-01"},"first_name":"Ada"}}`,
		`{"filter":{"level":{"gte":1,"lte":9},"tier":"gold","vip":true,"birthday":"1990-05-01"}}`,
		`{"filter":{"xp":{"gte":"1e400"}},"page":2}`,
		`{"cursor":"dTo2NjAwMDAwMDAwMDAwMDAwMDAwMDAwMDA","filter":{"last_login":{"gte":1700000000000}}}`,
		`{"cursor":"x","page":0,"filter":{"nope":1,"email":{"gte":"a"},"join_date":{"after":1}}}`,
		`{"filter":{"join_date":"2025-02-30T25:00:00Z","vip":"maybe","id":null}}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	cols := testColumns()
	f.Fuzz(func(t *testing.T, raw []byte) {
		var req FilterRequest
		if json.Unmarshal(raw, &req) != nil {
			return
		}
		p, err := planFilter(req, cols)
		if err != nil {
			var e *errs.Error
			if !errorsAs(err, &e) || e.Kind != errs.Invalid || len(e.Fields) == 0 {
				t.Fatalf("refusal is not a field-naming Invalid error: %v", err)
			}
			return
		}
		for _, c := range p.conds {
			where, args := c.sql()
			if strings.Count(where, "?") != len(args) {
				t.Fatalf("%q binds %d args", where, len(args))
			}
		}
		for _, name := range p.fields {
			if _, ok := cols(name); !ok {
				t.Fatalf("unknown field %q accepted", name)
			}
		}
	})
}

func errorsAs(err error, target **errs.Error) bool {
	e, ok := err.(*errs.Error)
	*target = e
	return ok
}

// BenchmarkFilterUsers runs filters over a community of 100,000 members
// (with two custom fields) and reports requests per second and the 99th
// percentile latency of each.
func BenchmarkFilterUsers(b *testing.B) {
	ctx := context.Background()
	d := migratedDB(b)
	const members = 100_000
	communityID := seedMembers(b, d, members)
	s := NewService(ServiceDeps{DB: d, Clock: clock.System{}})
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	mid := encodeCursor(memberID(base, members/2))
	cases := []struct {
		name string
		req  string
	}{
		{"first-page", `{}`},
		{"cursor-mid", `{"cursor":"` + mid + `"}`},
		{"page-250-with-count", `{"page":250}`},
		{"exact-first-name", `{"filter":{"first_name":"First 4242"}}`},
		{"email", `{"filter":{"email":"U77777@example.com"}}`},
		{"join-date-range", `{"filter":{"join_date":{"gte":"2025-01-01T01:00:00Z","lte":"2025-01-01T02:00:00Z"}}}`},
		{"visit-count-range", `{"filter":{"visit_count":{"gte":40}},"fields":["email","visit_count"]}`},
		{"custom-text", `{"filter":{"tier":"t7"},"fields":["email"]}`},
		{"custom-text-no-match", `{"filter":{"tier":"t99"},"fields":["email"]}`},
		{"custom-number-range", `{"filter":{"level":{"gte":10,"lte":12}},"fields":["email"]}`},
		{"custom-and-default", `{"filter":{"tier":"t3","visit_count":{"lte":10}},"page":1}`},
	}
	for _, tc := range cases {
		var req FilterRequest
		if err := json.Unmarshal([]byte(tc.req), &req); err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := s.Filter(ctx, communityID, req); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// migratedDB opens a fresh, migrated database for tb.
func migratedDB(tb testing.TB) *db.DB {
	tb.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, dbtest.DSN(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	if _, err := d.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	return d
}

// memberID is the i-th seeded member's ObjectId (in creation order).
func memberID(base time.Time, i int) string {
	return fmt.Sprintf("%08x%016x", base.Unix()+int64(i), i)
}

// seedMembers bulk-inserts n members (one a second from 2025-01-01, with a
// tier and a level custom field) into a new community and returns its id.
func seedMembers(b *testing.B, d *db.DB, n int) string {
	b.Helper()
	ctx := context.Background()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	communityID := id.New(base)
	now := base.UnixMilli()
	err := d.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO communities (id, name, name_key, uri, uri_key, created_at, updated_at)
			VALUES (?, 'Bench', 'bench', 'bench', 'bench', ?, ?)`, communityID, now, now); err != nil {
			return err
		}
		for i, f := range []struct{ id, field, typ string }{{"field-tier", "tier", "select"}, {"field-level", "level", "number"}} {
			if _, err := tx.Exec(ctx, `INSERT INTO user_fields (id, community_id, field, field_key, name, type, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, f.id, communityID, f.field, f.field, f.field, f.typ, now+int64(i), now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	const batch = 500
	for start := 0; start < n; start += 20_000 {
		err := d.Tx(ctx, func(tx *db.Tx) error {
			for lo := start; lo < min(start+20_000, n); lo += batch {
				hi := min(lo+batch, n)
				var users, mems, vals []string
				var ua, ma, va []any
				for i := lo; i < hi; i++ {
					uid := memberID(base, i)
					joined := base.Add(time.Duration(i) * time.Second).UnixMilli()
					users = append(users, "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
					ua = append(ua, uid, fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("u%d", i),
						fmt.Sprintf("u%d", i), fmt.Sprintf("First %d", i), fmt.Sprintf("Last %d", i%1000), fmt.Sprintf("U %d", i), "k", joined, joined)
					mems = append(mems, "(?, ?, ?, ?, ?, ?, ?)")
					ma = append(ma, communityID, uid, true, joined, i%50, joined, joined)
					vals = append(vals, "(?, 'field-tier', ?, ?, ?, NULL, ?)", "(?, 'field-level', ?, ?, NULL, ?, ?)")
					tier := fmt.Sprintf("t%d", i%10)
					va = append(va, communityID, uid, tier, tier, now, communityID, uid, fmt.Sprint(i%100), float64(i%100), now)
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
			b.Fatal(err)
		}
	}
	// Fresh statistics, as a long-running database has them.
	if _, err := d.Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	return communityID
}
