package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
)

// TestSessionCookie: the rally_session cookie signs in reads (GET) on routes
// that take session tokens, never writes (CSRF), never routes that take only
// API keys, and never over an Authorization header; signing out clears it.
func TestSessionCookie(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	ownerID := member(t, e, a, "owner", "", true)
	tok := e.SignIn(a, "owner@example.com")
	jar := map[string]string{"Cookie": (&http.Cookie{Name: "rally_session", Value: tok}).String()}
	fields := "/v1/communities/" + a + "/user-fields"

	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/users/" + ownerID, Headers: jar}).Expect(t, 200)
	if res.String("data._id") != ownerID {
		t.Fatalf("read: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: fields, Headers: jar}).Expect(t, 200)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/communities/" + a + "/api-keys", Headers: jar}).Expect(t, 200)

	for _, tc := range []struct {
		name, method, path string
		headers            map[string]string
		body               any
		want               int
	}{
		{"create field", "POST", fields, jar, map[string]any{"name": "Tier", "type": "text"}, 401},
		{"create user key", "POST", "/v1/users/apikeys", jar, map[string]any{"name": "k", "permissions": []string{"readOwnProfile"}}, 401},
		{"sign out", "POST", "/v1/auth/logout", jar, nil, 401},
		{"partner-key route", "GET", "/v1/events", jar, nil, 401},
		{"not a token", "GET", fields, map[string]string{"Cookie": "rally_session=abc"}, nil, 401},
		// An Authorization header is the credential; the cookie is not
		// consulted (a partner key cannot read a user-token-only route).
		{"header wins", "GET", "/v1/users/" + ownerID, map[string]string{"Cookie": jar["Cookie"], "Authorization": "Bearer " + keyA}, nil, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.Do(apitest.Request{Method: tc.method, Path: tc.path, Headers: tc.headers, Body: tc.body}).Expect(t, tc.want)
		})
	}
	if res := e.Do(apitest.Request{Method: "GET", Path: fields, Key: keyA}).Expect(t, 200); res.Get("meta.total") != float64(0) {
		t.Fatalf("a write went through by cookie: %s", res.Body)
	}

	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/logout", Key: tok, Headers: jar}).Expect(t, 200)
	cleared := (&http.Response{Header: res.Header}).Cookies()
	if len(cleared) != 1 || cleared[0].Name != "rally_session" || cleared[0].MaxAge >= 0 {
		t.Fatalf("logout keeps the cookie: %v", res.Header["Set-Cookie"])
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/users/" + ownerID, Headers: jar}).Expect(t, 401)
}
