package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/user/usertest"
)

// BenchmarkUserInfo measures Get User Data (POST /v1/users/info) through
// the full handler (key check, member lookup, counters, roles, custom
// fields, envelope) in a community of 100,000 members, each request for a
// different member, and reports req/s with the median and 99th-percentile
// latency.
func BenchmarkUserInfo(b *testing.B) {
	e := apitest.New(b)
	communityID, key := e.Community("Bench", "bench")
	const members = 100_000
	usertest.Seed(b, e.App.DB, communityID, members)
	h := e.App.Handler()
	for _, tc := range []struct {
		name  string
		ident func(i int) string
	}{
		{"by-email", func(i int) string { return fmt.Sprintf("u%d@example.com", i) }},
		{"by-object-id", usertest.MemberID},
	} {
		b.Run(tc.name, func(b *testing.B) {
			n := 0
			usertest.Measure(b, func() error {
				n++
				i := (n * 7919) % members
				req := httptest.NewRequest("POST", "/v1/users/info", strings.NewReader(`{"idOrEmail":"`+tc.ident(i)+`"}`))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"username":"u`+fmt.Sprint(i)+`"`) {
					return fmt.Errorf("member %d: status %d: %s", i, rec.Code, rec.Body)
				}
				return nil
			})
		})
	}
}
