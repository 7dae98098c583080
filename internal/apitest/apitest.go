// Package apitest runs a whole Rally (real database, real HTTP) for API
// tests and checks every response against api/openapi.yaml, so the code and
// the contract cannot drift apart.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/rallyhq/rally/api"
	"github.com/rallyhq/rally/internal/app"
	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/community"
	"github.com/rallyhq/rally/internal/config"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/db/dbtest"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/user"
)

// Env is one running Rally for a test.
type Env struct {
	T      testing.TB
	App    *app.App
	Server *httptest.Server
	// Clock is the app's clock; tests move it.
	Clock *clock.Manual
	// AdminKey is the platform-admin key.
	AdminKey string
	router   routers.Router
}

var (
	docOnce sync.Once
	doc     *openapi3.T
	docErr  error
)

// Contract loads and validates api/openapi.yaml once per test binary.
func Contract() (*openapi3.T, error) {
	docOnce.Do(func() {
		// Uploaded files come back as images; validate them as opaque bytes.
		for _, ct := range []string{"image/png", "image/jpeg", "image/gif", "image/webp"} {
			openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
		}
		loader := openapi3.NewLoader()
		doc, docErr = loader.LoadFromData(api.Spec)
		if docErr == nil {
			docErr = doc.Validate(context.Background())
		}
	})
	return doc, docErr
}

// New starts Rally on a fresh database with background workers running.
func New(t testing.TB) *Env {
	t.Helper()
	return NewWith(t, nil)
}

// NewWith is New with the configuration adjusted by tune (nil: defaults),
// e.g. to point RALLY_SMTP_URL at a mailtest server.
func NewWith(t testing.TB, tune func(*config.Config)) *Env {
	t.Helper()
	d, err := Contract()
	if err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	cfg := config.Default()
	cfg.DSN = dbtest.DSN(t)
	cfg.DataDir = t.TempDir()
	cfg.AccessLog = false
	if tune != nil {
		tune(&cfg)
	}
	clk := clock.NewManual(time.Now().UTC().Truncate(time.Millisecond))
	ctx := context.Background()
	a, err := app.Open(ctx, cfg, nil, app.Options{Clock: clk, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("open app: %v", err)
	}
	if err := a.Queue.Start(ctx); err != nil {
		t.Fatalf("start queue: %v", err)
	}
	if err := a.Realtime.Start(ctx); err != nil {
		t.Fatalf("start realtime hub: %v", err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Realtime.Stop(stopCtx)
		srv.Close()
		_ = a.Queue.Stop(stopCtx)
		a.Close()
	})
	// Route the contract's paths against this server.
	local := *d
	local.Servers = openapi3.Servers{{URL: srv.URL}}
	r, err := gorillamux.NewRouter(&local)
	if err != nil {
		t.Fatalf("contract router: %v", err)
	}
	secret, _, err := a.Keys.EnsurePlatformKey(ctx)
	if err != nil {
		t.Fatalf("platform key: %v", err)
	}
	return &Env{T: t, App: a, Server: srv, Clock: clk, AdminKey: secret, router: r}
}

// Community creates a community through the service and returns its id and
// its first (all-permission) partner key.
func (e *Env) Community(name, uri string) (id, key string) {
	e.T.Helper()
	c, _, secret, err := e.App.Communities.Create(context.Background(),
		community.Input{Name: jsonx.Some(name), URI: jsonx.Some(uri)})
	if err != nil {
		e.T.Fatalf("create community %s: %v", name, err)
	}
	return c.ID, secret
}

// Member creates an account called name (email name@example.com) through
// the user store and makes it a member of communityID with o.
func (e *Env) Member(communityID, name string, o user.MemberOptions) user.User {
	e.T.Helper()
	ctx := context.Background()
	var u user.User
	err := e.App.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if u, err = e.App.Users.CreateAccountTx(ctx, tx, user.NewAccount{Email: name + "@example.com", Username: name, DisplayName: name}); err != nil {
			return err
		}
		_, err = e.App.Users.AddMemberTx(ctx, tx, communityID, u, o)
		return err
	})
	if err != nil {
		e.T.Fatalf("create member %s: %v", name, err)
	}
	return u
}

// SignIn opens a real session for the existing member of communityID with
// this email (through the sign-in service, no password needed) and returns
// its session token, for Request.Key.
func (e *Env) SignIn(communityID, email string) string {
	e.T.Helper()
	ctx := context.Background()
	u, err := e.App.Users.Find(ctx, email, user.ByEmail)
	if err != nil {
		e.T.Fatalf("sign in %s: %v", email, err)
	}
	out, err := e.App.Accounts.IssueFor(ctx, communityID, u.ID)
	if err != nil {
		e.T.Fatalf("sign in %s: %v", email, err)
	}
	return out.Token
}

// Response is a received answer, decoded.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	// JSON is the decoded body (nil when it is not JSON).
	JSON any
}

// Request is one call; Key becomes "Authorization: Bearer Key".
type Request struct {
	Method  string
	Path    string
	Key     string
	Body    any
	Headers map[string]string
}

// Do sends req, checks the answer against the contract and returns it.
func (e *Env) Do(req Request) *Response {
	e.T.Helper()
	var body io.Reader
	switch b := req.Body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.T.Fatalf("encode body: %v", err)
		}
		body = bytes.NewReader(raw)
	}
	hr, err := http.NewRequest(req.Method, e.Server.URL+req.Path, body)
	if err != nil {
		e.T.Fatalf("new request: %v", err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if req.Key != "" {
		hr.Header.Set("Authorization", "Bearer "+req.Key)
	}
	for k, v := range req.Headers {
		hr.Header.Set(k, v)
	}
	// Redirects are answers to check, not to follow.
	client := *e.Server.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := client.Do(hr)
	if err != nil {
		e.T.Fatalf("%s %s: %v", req.Method, req.Path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.T.Fatalf("read body: %v", err)
	}
	out := &Response{Status: res.StatusCode, Header: res.Header, Body: raw}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out.JSON); err != nil {
			e.T.Fatalf("%s %s: answer is not JSON: %v\n%s", req.Method, req.Path, err, raw)
		}
	}
	if err := e.validate(req, out); err != nil {
		e.T.Errorf("%s %s -> %d breaks the contract: %v\nbody: %s", req.Method, req.Path, out.Status, err, raw)
	}
	return out
}

// prefixes mirror the server's accepted path forms.
var prefixes = []string{"/api/v1/apis/v1", "/apis/v1", "/api/v1", "/v1", "/apis"}

// canonical turns any accepted path form into the contract's /v1 form.
func canonical(path string) []string {
	p := path
	for _, pre := range prefixes {
		if strings.HasPrefix(p, pre+"/") {
			p = p[len(pre):]
			break
		}
	}
	return []string{"/v1" + p, p}
}

// validate checks res against the contract operation for req's route.
// Answers for unrouted paths (404/405 from the router) are checked against
// the generic error body only.
func (e *Env) validate(req Request, res *Response) error {
	ctx := context.Background()
	u, q, _ := strings.Cut(req.Path, "?")
	var (
		route  *routers.Route
		params map[string]string
		vreq   *http.Request
	)
	for _, p := range canonical(u) {
		target := e.Server.URL + p
		if q != "" {
			target += "?" + q
		}
		r, err := http.NewRequest(req.Method, target, nil)
		if err != nil {
			return err
		}
		if route, params, err = e.router.FindRoute(r); err == nil {
			vreq = r
			break
		}
	}
	if route == nil {
		if res.Status == http.StatusNotFound || res.Status == http.StatusMethodNotAllowed {
			return checkErrorBody(res)
		}
		if res.Status == http.StatusMovedPermanently || res.Status == http.StatusPermanentRedirect {
			return checkCleanRedirect(u, q, res)
		}
		return fmt.Errorf("no contract operation for %s %s", req.Method, u)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: vreq, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status:  res.Status,
		Header:  res.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(res.Body)
	return openapi3filter.ValidateResponse(ctx, in)
}

func checkErrorBody(res *Response) error {
	m, ok := res.JSON.(map[string]any)
	if !ok {
		return fmt.Errorf("error answer is not a JSON object")
	}
	meta, _ := m["meta"].(map[string]any)
	if meta == nil || meta["status"] != "error" || int(meta["statusCode"].(float64)) != res.Status {
		return fmt.Errorf("error answer lacks meta.status=error and meta.statusCode=%d", res.Status)
	}
	return nil
}

// Get reads a dotted path (data.apiKey.key, data.0._id) from the JSON body.
func (r *Response) Get(path string) any {
	var cur any = r.JSON
	for _, part := range strings.Split(path, ".") {
		switch v := cur.(type) {
		case map[string]any:
			cur = v[part]
		case []any:
			var i int
			if _, err := fmt.Sscanf(part, "%d", &i); err != nil || i < 0 || i >= len(v) {
				return nil
			}
			cur = v[i]
		default:
			return nil
		}
	}
	return cur
}

// String reads a dotted path as a string ("" when absent or not a string).
func (r *Response) String(path string) string {
	s, _ := r.Get(path).(string)
	return s
}

// Expect fails the test unless the status is want.
func (r *Response) Expect(t testing.TB, want int) *Response {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d; body: %s", r.Status, want, r.Body)
	}
	return r
}

// ErrorFields lists the field names in a 400's errors array.
func (r *Response) ErrorFields() []string {
	list, _ := r.Get("errors").([]any)
	var out []string
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			out = append(out, fmt.Sprint(m["field"]))
		}
	}
	return out
}

// WaitFor polls cond until it holds or ten seconds pass.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// EventTypes lists the types of the outbox events written for communityID,
// in sequence order; with only given, just those types.
func (e *Env) EventTypes(communityID string, only ...string) []string {
	e.T.Helper()
	rows, err := e.App.DB.Query(context.Background(), "SELECT type FROM events WHERE community_id = ? ORDER BY seq", communityID)
	if err != nil {
		e.T.Fatalf("read events: %v", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var typ string
		if err := rows.Scan(&typ); err != nil {
			e.T.Fatalf("read events: %v", err)
		}
		if len(only) == 0 || slices.Contains(only, typ) {
			out = append(out, typ)
		}
	}
	return out
}

// Emit appends an outbox event for communityID, as a domain change would.
func (e *Env) Emit(communityID, typ string, payload any) {
	e.T.Helper()
	ctx := context.Background()
	if err := e.App.DB.Tx(ctx, func(tx *db.Tx) error {
		return e.App.Outbox.Append(ctx, tx, communityID, typ, payload)
	}); err != nil {
		e.T.Fatalf("emit %s: %v", typ, err)
	}
}

// Drain waits until the outbox subscriber named subscriber has handled
// every event of communityID.
func (e *Env) Drain(communityID, subscriber string) {
	e.T.Helper()
	WaitFor(e.T, subscriber+" to catch up", func() bool {
		var head, done int64
		ctx := context.Background()
		if err := e.App.DB.QueryRow(ctx, "SELECT COALESCE(MAX(seq), 0) FROM events WHERE community_id = ?", communityID).Scan(&head); err != nil {
			e.T.Fatalf("read events: %v", err)
		}
		if err := e.App.DB.QueryRow(ctx, "SELECT COALESCE(MAX(last_seq), 0) FROM event_offsets WHERE subscriber = ? AND community_id = ?",
			subscriber, communityID).Scan(&done); err != nil {
			e.T.Fatalf("read offsets: %v", err)
		}
		return head > 0 && done >= head
	})
}

// checkCleanRedirect checks the server's answer to a path that is not clean
// (empty, "." or ".." segments): a redirect to the same path form, cleaned,
// with the query kept.
func checkCleanRedirect(p, query string, res *Response) error {
	want := path.Clean(p)
	if strings.HasSuffix(p, "/") && want != "/" {
		want += "/"
	}
	if want == p {
		return fmt.Errorf("redirect %d from the clean path %s", res.Status, p)
	}
	if query != "" {
		want += "?" + query
	}
	if loc := res.Header.Get("Location"); loc != want {
		return fmt.Errorf("redirect to %q, want %q", loc, want)
	}
	return nil
}
