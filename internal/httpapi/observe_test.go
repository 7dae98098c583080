package httpapi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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

// TestObserveLabelsLogsAndCounts checks what observe records per request:
// the request id (echoed or made up), one access-log line with the path as
// sent and the route pattern, and metrics by route, method and status,
// including requests no route claimed.
func TestObserveLabelsLogsAndCounts(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	s := New(Deps{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), AccessLog: true, Registry: reg})
	do := func(method, path, rid string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(method, path, nil)
		if rid != "" {
			req.Header.Set("X-Request-Id", rid)
		}
		s.ServeHTTP(rec, req)
		return rec
	}
	for range 2 {
		if rec := do("GET", "/v1/healthz", "rid-1"); rec.Code != 200 || rec.Header().Get("X-Request-Id") != "rid-1" {
			t.Fatalf("healthz: %d, request id %q", rec.Code, rec.Header().Get("X-Request-Id"))
		}
	}
	if rec := do("GET", "/management/communities/c1", ""); rec.Code != 401 {
		t.Fatalf("community read without a key: %d", rec.Code)
	}
	rec := do("GET", "/nowhere", "bad id with spaces")
	made := rec.Header().Get("X-Request-Id")
	if rec.Code != 404 || len(made) != 16 || strings.Trim(made, "0123456789abcdef") != "" {
		t.Fatalf("unmatched: %d, request id %q (want 16 hex digits)", rec.Code, made)
	}
	if rec := do("DELETE", "/apis/healthz", ""); rec.Code != 405 {
		t.Fatalf("wrong method: %d", rec.Code)
	}

	// series maps a metric name and its label values (route|method[|status])
	// to the counter's value or the histogram's sample count.
	series := map[string]map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		series[f.GetName()] = map[string]float64{}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			key := labels["route"] + "|" + labels["method"]
			if st, ok := labels["status"]; ok {
				key += "|" + st
			}
			if m.GetCounter() != nil {
				series[f.GetName()][key] = m.GetCounter().GetValue()
			} else {
				series[f.GetName()][key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for _, c := range []struct {
		route, method, status string
		want                  float64
	}{
		{"GET /healthz", "GET", "200", 2},
		{"GET /management/communities/{communityId}", "GET", "401", 1},
		{"unmatched", "GET", "404", 1},
		{"unmatched", "DELETE", "405", 1},
	} {
		key := c.route + "|" + c.method + "|" + c.status
		if got := series["rally_http_requests_total"][key]; got != c.want {
			t.Errorf("requests{%s} = %v, want %v", key, got, c.want)
		}
		if got := series["rally_http_request_duration_seconds"][c.route+"|"+c.method]; got < c.want {
			t.Errorf("latency{%s %s} has %v samples, want at least %v", c.route, c.method, got, c.want)
		}
	}
	if n := len(series["rally_http_requests_total"]); n != 4 {
		t.Errorf("%d request series, want 4: %v", n, series)
	}

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 5 {
		t.Fatalf("%d log lines, want 5:\n%s", len(lines), logs.String())
	}
	for i, want := range []map[string]any{
		{"request_id": "rid-1", "method": "GET", "path": "/v1/healthz", "route": "GET /healthz", "status": 200.0},
		{"request_id": "rid-1", "method": "GET", "path": "/v1/healthz", "route": "GET /healthz", "status": 200.0},
		{"method": "GET", "path": "/management/communities/c1", "route": "GET /management/communities/{communityId}", "status": 401.0},
		{"request_id": made, "method": "GET", "path": "/nowhere", "route": "unmatched", "status": 404.0},
		{"method": "DELETE", "path": "/apis/healthz", "route": "unmatched", "status": 405.0},
	} {
		for k, v := range want {
			if lines[i][k] != v {
				t.Errorf("log line %d: %s = %v, want %v", i, k, lines[i][k], v)
			}
		}
		if lines[i]["msg"] != "request" || lines[i]["request_id"] == "" || lines[i]["bytes"].(float64) <= 0 {
			t.Errorf("log line %d: %v", i, lines[i])
		}
	}
}
