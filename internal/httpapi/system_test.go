package httpapi_test

import (
	"strings"
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
)

func TestSystemEndpoints(t *testing.T) {
	e := apitest.New(t)
	e.Do(apitest.Request{Method: "GET", Path: "/healthz"}).Expect(t, 200)
	ready := e.Do(apitest.Request{Method: "GET", Path: "/readyz"}).Expect(t, 200)
	if ready.String("data.status") != "ready" {
		t.Fatalf("readyz: %s", ready.Body)
	}
	spec := e.Do(apitest.Request{Method: "GET", Path: "/openapi.yaml"}).Expect(t, 200)
	if !strings.HasPrefix(string(spec.Body), "openapi: 3.1") {
		t.Fatalf("openapi.yaml: %.40s", spec.Body)
	}
	metrics := e.Do(apitest.Request{Method: "GET", Path: "/metrics"}).Expect(t, 200)
	if !strings.Contains(string(metrics.Body), `rally_http_requests_total{method="GET",route="GET /readyz",status="200"} 1`) {
		t.Fatalf("metrics lack the readyz request:\n%s", metrics.Body)
	}
}

func TestRoutingErrors(t *testing.T) {
	e := apitest.New(t)
	_, key := e.Community("Theta", "theta")
	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/no-such-thing", Key: key}).Expect(t, 404)
	if res.Get("meta.status") != "error" || res.Get("meta.statusCode") != float64(404) {
		t.Fatalf("404 envelope: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "DELETE", Path: "/v1/community-bot", Key: key}).Expect(t, 405)
	if res.Get("meta.statusCode") != float64(405) || !strings.Contains(res.Header.Get("Allow"), "PUT") {
		t.Fatalf("405: %v %s", res.Header, res.Body)
	}
	big := `{"name":"` + strings.Repeat("x", 2<<20) + `"}`
	res = e.Do(apitest.Request{Method: "PUT", Path: "/v1/community-bot", Key: key, Body: big}).Expect(t, 413)
	if res.Get("meta.statusCode") != float64(413) {
		t.Fatalf("413: %s", res.Body)
	}
	// A request id is echoed, or made up when none is sent.
	res = e.Do(apitest.Request{Method: "GET", Path: "/healthz", Headers: map[string]string{"X-Request-Id": "abc-123"}})
	if res.Header.Get("X-Request-Id") != "abc-123" {
		t.Fatalf("request id not echoed: %v", res.Header)
	}
	if e.Do(apitest.Request{Method: "GET", Path: "/healthz"}).Header.Get("X-Request-Id") == "" {
		t.Fatal("no request id made up")
	}
}

func TestUnknownJSONFieldsAreIgnored(t *testing.T) {
	e := apitest.New(t)
	_, key := e.Community("Lambda", "lambda")
	res := e.Do(apitest.Request{Method: "PUT", Path: "/v1/community-bot", Key: key,
		Body: map[string]any{"name": "Lam", "colour": "blue", "nested": map[string]any{"x": 1}}}).Expect(t, 200)
	if res.String("data.name") != "Lam" {
		t.Fatalf("update with unknown fields: %s", res.Body)
	}
}

// TestUncleanPathsRedirectInTheirForm checks that a path with empty or dot
// segments is redirected to its clean form with the client's prefix and
// query kept, 301 for reads and 308 (method and body kept) for writes.
func TestUncleanPathsRedirectInTheirForm(t *testing.T) {
	e := apitest.New(t)
	id, key := e.Community("Iota", "iota")
	cases := []struct{ method, path, want string }{
		{"GET", "/v1//healthz", "/v1/healthz"},
		{"GET", "/apis/v1/./healthz", "/apis/v1/healthz"},
		{"GET", "//healthz", "/healthz"},
		{"GET", "/api/v1//management/communities/" + id + "?x=1", "/api/v1/management/communities/" + id + "?x=1"},
		{"GET", "/v1/management/x/../communities/" + id, "/v1/management/communities/" + id},
		{"PUT", "/v1//community-bot", "/v1/community-bot"},
		{"POST", "/v1/users//", "/v1/users/"},
	}
	for _, c := range cases {
		res := e.Do(apitest.Request{Method: c.method, Path: c.path, Key: key})
		want := 301
		if c.method != "GET" {
			want = 308
		}
		if res.Status != want || res.Header.Get("Location") != c.want {
			t.Errorf("%s %s: %d to %q, want %d to %q", c.method, c.path, res.Status, res.Header.Get("Location"), want, c.want)
		}
	}
	// The clean form answers.
	e.Do(apitest.Request{Method: "GET", Path: "/api/v1/management/communities/" + id, Key: key}).Expect(t, 200)
}
