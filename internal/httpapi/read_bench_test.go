package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
)

// BenchmarkReadCommunity measures the server's own cost of the read path
// (authentication, routing, one query, the envelope), without the network.
func BenchmarkReadCommunity(b *testing.B) {
	e := apitest.New(b)
	id, key := e.Community("Bench", "bench")
	h := e.App.Handler()
	req := httptest.NewRequest("GET", "/v1/management/communities/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d", rec.Code)
			}
		}
	})
}
