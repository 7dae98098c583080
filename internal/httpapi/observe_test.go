package httpapi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPanicBecomesLogged500(t *testing.T) {
	var logs bytes.Buffer
	s := New(Deps{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	h := s.observe(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("X-Request-Id", "req-42")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", rec.Code)
	}
	var body struct {
		Meta struct {
			Status     string `json:"status"`
			StatusCode int    `json:"statusCode"`
		} `json:"meta"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Meta.Status != "error" || body.Meta.StatusCode != 500 {
		t.Fatalf("body %s (%v)", rec.Body, err)
	}
	if !strings.Contains(logs.String(), `"request_id":"req-42"`) || !strings.Contains(logs.String(), "boom") {
		t.Fatalf("panic not logged with its request id: %s", logs.String())
	}
}

func TestNormalisePath(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/users/info": "/users/info", "/apis/v1/users/info": "/users/info", "/api/v1/roles": "/roles",
		"/api/v1/apis/v1/users/manage": "/users/manage", "/apis/products": "/products", "/stores": "/stores",
		"/v1": "/", "/v1x/a": "/v1x/a", "/apisx": "/apisx",
	} {
		if got := normalisePath(in); got != want {
			t.Errorf("normalisePath(%q) = %q, want %q", in, got, want)
		}
	}
}
