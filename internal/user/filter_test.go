package user

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/db/dbtest"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/user/usertest"
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
// (with two custom fields) and reports requests per second and the median
// and 99th-percentile latency of each.
func BenchmarkFilterUsers(b *testing.B) {
	ctx := context.Background()
	d := migratedDB(b)
	const members = 100_000
	communityID := usertest.Community(b, d)
	usertest.Seed(b, d, communityID, members)
	s := NewService(ServiceDeps{DB: d, Clock: clock.System{}})
	mid := encodeCursor(usertest.MemberID(members / 2))
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
			usertest.Measure(b, func() error {
				_, err := s.Filter(ctx, communityID, req)
				return err
			})
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
