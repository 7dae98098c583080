package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/config"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/mail/mailtest"
	"github.com/rallyhq/rally/internal/user"
)

const goodPassword = "Secret123"

// member creates a verified account joined to communityID (the owner when
// owner is set) with password, when given, and returns its _id.
func member(t testing.TB, e *apitest.Env, communityID, username, password string, owner bool) string {
	t.Helper()
	hash := ""
	if password != "" {
		var err error
		if hash, err = auth.HashPassword(password); err != nil {
			t.Fatal(err)
		}
	}
	var u user.User
	err := e.App.DB.Tx(context.Background(), func(tx *db.Tx) error {
		var err error
		u, err = e.App.Users.CreateAccountTx(context.Background(), tx, user.NewAccount{Email: username + "@example.com", Username: username,
			DisplayName: username, PasswordHash: hash, EmailVerified: true})
		if err != nil {
			return err
		}
		_, err = e.App.Users.AddMemberTx(context.Background(), tx, communityID, u, user.MemberOptions{AccessLevel: 1, Joined: true, Owner: owner})
		return err
	})
	if err != nil {
		t.Fatalf("member %s: %v", username, err)
	}
	return u.ID
}

// join adds an existing user to another community.
func join(t *testing.T, e *apitest.Env, communityID, userID string) {
	t.Helper()
	ctx := context.Background()
	u, err := e.App.Users.Get(ctx, userID)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.App.DB.Tx(ctx, func(tx *db.Tx) error {
		_, err := e.App.Users.AddMemberTx(ctx, tx, communityID, u, user.MemberOptions{Joined: true})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func events(t *testing.T, e *apitest.Env, communityID, typ string) int {
	t.Helper()
	var n int
	if err := e.App.DB.QueryRow(context.Background(), "SELECT COUNT(*) FROM events WHERE community_id = ? AND type = ?", communityID, typ).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

var codeRE = regexp.MustCompile(`\b(\d{6})\b`)

func login(e *apitest.Env, key string, body map[string]any) *apitest.Response {
	return e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/login", Key: key, Body: body})
}

func TestRegisterVerifyLogin(t *testing.T) {
	smtp := mailtest.Start(t)
	e := apitest.NewWith(t, func(c *config.Config) { c.SMTPURL = smtp.URL() })
	a, keyA := e.Community("Alpha", "alpha")
	_, keyB := e.Community("Beta", "beta")

	reg := map[string]any{"email": "Ann@Example.com", "username": "ann", "password": goodPassword, "confirmPassword": goodPassword,
		"firstname": "Ann", "lastname": "Lee"}
	// The system key may come in x-api-key.
	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/register", Headers: map[string]string{"x-api-key": keyA}, Body: reg}).Expect(t, 201)
	if res.String("message") != "Register user success." || res.Get("data.emailVerified") != false || res.String("data.displayName") != "Ann Lee" {
		t.Fatalf("register: %s", res.Body)
	}
	userID := res.String("data._id")
	msg := smtp.Next(t)
	if len(msg.To) != 1 || msg.To[0] != "Ann@Example.com" || msg.From != "rally@example.com" {
		t.Fatalf("mail envelope: %+v", msg)
	}
	m := codeRE.FindStringSubmatch(msg.Data[strings.Index(msg.Data, "\n\n"):])
	if m == nil {
		t.Fatalf("no code in mail: %s", msg.Data)
	}
	code := m[1]
	var stored string
	if err := e.App.DB.QueryRow(context.Background(), "SELECT code_hash FROM email_codes WHERE user_id = ?", userID).Scan(&stored); err != nil || strings.Contains(stored, code) {
		t.Fatalf("code must be stored hashed: %q %v", stored, err)
	}
	if events(t, e, a, "user.registered") != 1 || events(t, e, a, "user.joined") != 1 {
		t.Fatal("register must emit user.registered and user.joined")
	}

	cases := []struct {
		name       string
		key        string
		body       any
		wantStatus int
		wantFields []string
	}{
		{"no key", "", reg, 401, nil},
		{"invalid", keyA, map[string]any{"email": "nope", "username": "-x", "password": "short", "confirmPassword": "other"}, 400,
			[]string{"email", "username", "password", "confirmPassword"}},
		{"wrong types", keyA, map[string]any{"email": 1, "username": true}, 400, []string{"email", "username"}},
		{"email taken any case", keyA, map[string]any{"email": "ann@example.COM", "username": "ann2", "password": goodPassword, "confirmPassword": goodPassword}, 409, []string{"email"}},
		{"username taken any case", keyB, map[string]any{"email": "x@example.com", "username": "ANN", "password": goodPassword, "confirmPassword": goodPassword}, 409, []string{"username"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/register", Key: tc.key, Body: tc.body}).Expect(t, tc.wantStatus)
			if tc.wantFields != nil && fmt.Sprint(sortedCopy(res.ErrorFields())) != fmt.Sprint(sortedCopy(tc.wantFields)) {
				t.Fatalf("fields %v, want %v: %s", res.ErrorFields(), tc.wantFields, res.Body)
			}
		})
	}
	weak := e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/register", Key: keyA, Body: map[string]any{"email": "w@example.com", "username": "weak",
		"password": "lettersonly", "confirmPassword": "lettersonly"}}).Expect(t, 400)
	if !strings.Contains(string(weak.Body), auth.PasswordRule) {
		t.Fatalf("the refusal must state the rule: %s", weak.Body)
	}

	// Unverified: 403, and no second mail while the code is live.
	res = login(e, keyA, map[string]any{"identifier": "ann", "password": goodPassword}).Expect(t, 403)
	if !strings.Contains(res.String("message"), "not verified") {
		t.Fatalf("message: %s", res.Body)
	}
	// Verify: another community's key does not see the user; wrong code; right code; again.
	e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/verify-email", Key: keyB, Body: map[string]any{"email": "ann@example.com", "code": code}}).Expect(t, 404)
	wrong := fmt.Sprintf("%06d", (mustAtoi(t, code)+1)%1000000)
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/verify-email", Key: keyA, Body: map[string]any{"email": "ann@example.com", "code": wrong}}).Expect(t, 400)
	if fmt.Sprint(res.ErrorFields()) != "[code]" {
		t.Fatalf("wrong code: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/verify-email", Key: keyA, Body: map[string]any{"email": "", "code": "12"}}).Expect(t, 400)
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/verify-email", Key: keyA, Body: map[string]any{"email": "ann@example.com", "code": code}}).Expect(t, 200)
	if res.Get("data.emailVerified") != true || events(t, e, a, "user.verified") != 1 {
		t.Fatalf("verify: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/verify-email", Key: keyA, Body: map[string]any{"email": "ann@example.com", "code": code}}).Expect(t, 409)

	// Login by identifier, by email, by username; every answer is a working token.
	for _, body := range []map[string]any{
		{"identifier": "ann", "password": goodPassword},
		{"email": "ANN@example.com", "password": goodPassword},
		{"username": "Ann", "password": goodPassword},
	} {
		res = login(e, keyA, body).Expect(t, 200)
		tok := res.String("data.token")
		if strings.Count(tok, ".") != 2 || res.String("data.user._id") != userID || res.String("data.user.lastLogin") == "" {
			t.Fatalf("login: %s", res.Body)
		}
		list := e.Do(apitest.Request{Method: "GET", Path: "/v1/management/communities", Key: tok}).Expect(t, 200)
		if list.Get("meta.total") != float64(1) || list.String("data.0._id") != a {
			t.Fatalf("my communities: %s", list.Body)
		}
	}
	mem, err := e.App.Users.Member(context.Background(), a, userID)
	if err != nil || mem.VisitCount != 1 || events(t, e, a, "session.created") != 3 || events(t, e, a, "user.visited") != 1 {
		t.Fatalf("visit not recorded once a day: %+v %v", mem, err)
	}
	// The next UTC day's sign-in is a new visit.
	e.Clock.Advance(24 * time.Hour)
	login(e, keyA, map[string]any{"identifier": "ann", "password": goodPassword}).Expect(t, 200)
	if mem, err = e.App.Users.Member(context.Background(), a, userID); err != nil || mem.VisitCount != 2 || events(t, e, a, "user.visited") != 2 {
		t.Fatalf("next day's visit: %+v %v", mem, err)
	}
	u, _ := e.App.Users.Get(context.Background(), userID)
	if u.LastLoginAt == nil {
		t.Fatal("last_login_at not set")
	}

	// Failures: wrong password, not a member of the key's community, missing
	// fields, deleted member.
	login(e, keyA, map[string]any{"identifier": "ann", "password": "Wrong1234"}).Expect(t, 401)
	login(e, keyB, map[string]any{"identifier": "ann", "password": goodPassword}).Expect(t, 401)
	login(e, keyA, map[string]any{"identifier": "nobody", "password": goodPassword}).Expect(t, 401)
	res = login(e, keyA, map[string]any{}).Expect(t, 400)
	if fmt.Sprint(sortedCopy(res.ErrorFields())) != "[identifier password]" {
		t.Fatalf("fields: %s", res.Body)
	}
	login(e, "", map[string]any{"identifier": "ann", "password": goodPassword}).Expect(t, 401)
	if _, err := e.App.DB.Exec(context.Background(), "UPDATE members SET deleted_at = 1 WHERE user_id = ?", userID); err != nil {
		t.Fatal(err)
	}
	if res := login(e, keyA, map[string]any{"identifier": "ann", "password": goodPassword}).Expect(t, 401); res.String("message") != "Invalid credentials." {
		t.Fatalf("deleted member must look like a wrong password: %s", res.Body)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// outboxCode reads the newest code mailed to addr from the mail outbox (no
// SMTP configured).
func outboxCode(t *testing.T, e *apitest.Env, addr string) (string, int) {
	t.Helper()
	msgs, err := e.App.Mail.List(context.Background(), addr, 100)
	if err != nil || len(msgs) == 0 {
		t.Fatalf("no mail for %s: %v", addr, err)
	}
	return codeRE.FindString(msgs[0].Body), len(msgs)
}

func TestVerificationCodeLimits(t *testing.T) {
	e := apitest.New(t)
	_, key := e.Community("Alpha", "alpha")
	e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/register", Key: key, Body: map[string]any{"email": "bo@example.com", "username": "bo",
		"password": goodPassword, "confirmPassword": goodPassword}}).Expect(t, 201)
	code, n := outboxCode(t, e, "bo@example.com")
	if n != 1 || code == "" {
		t.Fatalf("want one mail with a code, got %d", n)
	}
	wrong := fmt.Sprintf("%06d", (mustAtoi(t, code)+7)%1000000)
	for i := 0; i < auth.CodeAttempts; i++ {
		e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/verify-email", Key: key, Body: map[string]any{"email": "bo@example.com", "code": wrong}}).Expect(t, 400)
	}
	// Used up: even the right code is refused now.
	e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/verify-email", Key: key, Body: map[string]any{"email": "bo@example.com", "code": code}}).Expect(t, 400)
	// Signing in with the password mails a fresh code.
	login(e, key, map[string]any{"identifier": "bo@example.com", "password": goodPassword}).Expect(t, 403)
	code2, n := outboxCode(t, e, "bo@example.com")
	if n != 2 {
		t.Fatalf("want a second mail, got %d", n)
	}
	// A code expires after 15 minutes.
	e.Clock.Advance(auth.CodeLifetime + time.Second)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/verify-email", Key: key, Body: map[string]any{"email": "bo@example.com", "code": code2}}).Expect(t, 400)
	login(e, key, map[string]any{"identifier": "bo", "password": goodPassword}).Expect(t, 403)
	code3, _ := outboxCode(t, e, "bo@example.com")
	e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/verify-email", Key: key, Body: map[string]any{"email": "bo@example.com", "code": code3}}).Expect(t, 200)
	login(e, key, map[string]any{"identifier": "bo", "password": goodPassword}).Expect(t, 200)
}

func TestSessionRevocation(t *testing.T) {
	e := apitest.New(t)
	a, _ := e.Community("Alpha", "alpha")
	uid := member(t, e, a, "cy", "", false)
	t1, t2 := e.SignIn(a, "cy@example.com"), e.SignIn(a, "cy@example.com")
	me := func(tok string) *apitest.Response {
		return e.Do(apitest.Request{Method: "GET", Path: "/v1/management/communities", Key: tok})
	}
	me(t1).Expect(t, 200)
	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/logout", Key: t1}).Expect(t, 200)
	if res.String("data.sessionId") == "" {
		t.Fatalf("logout: %s", res.Body)
	}
	me(t1).Expect(t, 401)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/logout", Key: t1}).Expect(t, 401)
	me(t2).Expect(t, 200)
	t3 := e.SignIn(a, "cy@example.com")
	e.Do(apitest.Request{Method: "POST", Path: "/apis/v1/auth/logout-all", Key: t2}).Expect(t, 200)
	me(t2).Expect(t, 401)
	me(t3).Expect(t, 401)
	if events(t, e, a, "session.revoked") != 2 {
		t.Fatal("want two session.revoked events")
	}
	// A token issued afterwards works; it expires after 7 days.
	t4 := e.SignIn(a, "cy@example.com")
	me(t4).Expect(t, 200)
	// Tampered, wrong-shape and unsigned tokens fail.
	parts := strings.Split(t4, ".")
	me(parts[0]+"."+parts[1]+"."+strings.Repeat("A", len(parts[2]))).Expect(t, 401)
	me("a.b.c").Expect(t, 401)
	me(parts[0]+"."+parts[1]+".").Expect(t, 401)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/logout"}).Expect(t, 401)
	e.Clock.Advance(auth.SessionLifetime + time.Second)
	if res := me(t4).Expect(t, 401); !strings.Contains(res.String("message"), "expired") {
		t.Fatalf("expired: %s", res.Body)
	}
	// A deleted account's tokens fail.
	t5 := e.SignIn(a, "cy@example.com")
	me(t5).Expect(t, 200)
	if _, err := e.App.DB.Exec(context.Background(), "DELETE FROM users WHERE id = ?", uid); err != nil {
		t.Fatal(err)
	}
	me(t5).Expect(t, 401)
}

func TestLoginRateLimit(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Alpha", "alpha")
	member(t, e, a, "dee", goodPassword, false)
	bad := map[string]any{"identifier": "dee", "password": "Wrong1234"}
	for i := 0; i < auth.DefaultLoginLimits.Account.Max; i++ {
		login(e, key, bad).Expect(t, 401)
	}
	res := login(e, key, map[string]any{"identifier": "dee", "password": goodPassword}).Expect(t, 429)
	after, err := strconv.Atoi(res.Header.Get("Retry-After"))
	if err != nil || after < 1 || after > 900 {
		t.Fatalf("Retry-After %q", res.Header.Get("Retry-After"))
	}
	// The same account by its email is the same account.
	login(e, key, map[string]any{"email": "dee@example.com", "password": goodPassword}).Expect(t, 429)
	e.Clock.Advance(15 * time.Minute)
	login(e, key, map[string]any{"identifier": "dee", "password": goodPassword}).Expect(t, 200)
	// Success cleared the account's counter: five more failures are allowed.
	for i := 0; i < auth.DefaultLoginLimits.Account.Max; i++ {
		login(e, key, bad).Expect(t, 401)
	}
	login(e, key, bad).Expect(t, 429)

	// Per address: 20 failures in the window, across any accounts.
	e.Clock.Advance(15 * time.Minute)
	for i := 0; i < auth.DefaultLoginLimits.Address.Max; i++ {
		login(e, key, map[string]any{"identifier": fmt.Sprintf("ghost%d", i), "password": "Wrong1234"}).Expect(t, 401)
	}
	res = login(e, key, map[string]any{"identifier": "dee", "password": goodPassword}).Expect(t, 429)
	if res.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
}

func TestSecureAuth(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	b, keyB := e.Community("Beta", "beta")
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/management/communities/" + a, Key: keyA, Body: map[string]any{"domain": "club.example.com"}}).Expect(t, 200)
	sa := func(key, host, query string) *apitest.Response {
		h := map[string]string{"hostname": host}
		if key != "" {
			h["apiKey"] = key
		}
		return e.Do(apitest.Request{Method: "GET", Path: "/api/secureAuth?" + query, Headers: h})
	}
	newUser := "action=login&userId=johndoe&accessLevel=1&email=johndoe%40gmail.com&firstname=john&lastname=doe&displayname=john+doe"
	res := sa(keyA, "Club.Example.com", newUser).Expect(t, 200)
	if res.Get("error") != false || res.String("sessionId") == "" {
		t.Fatalf("secure auth: %s", res.Body)
	}
	sessionID := res.String("sessionId")
	link, err := url.Parse(res.String("loginUrl"))
	if err != nil || link.Scheme != "https" || link.Host != "Club.Example.com" || link.Query().Get("host") != "Club.Example.com" ||
		!regexp.MustCompile(`^/v2/app/loginApi/[0-9a-f]{24}/2$`).MatchString(link.Path) || strings.Contains(res.String("loginUrl"), keyA) {
		t.Fatalf("loginUrl %q", res.String("loginUrl"))
	}
	u, err := e.App.Users.Find(context.Background(), "johndoe", user.ByUsername)
	if err != nil || !u.EmailVerified || u.DisplayName != "john doe" {
		t.Fatalf("created user: %+v %v", u, err)
	}
	// Following the link signs in, sets the cookie and redirects.
	res = e.Do(apitest.Request{Method: "GET", Path: link.RequestURI()}).Expect(t, 302)
	if res.Header.Get("Location") != "https://Club.Example.com/" {
		t.Fatalf("Location %q", res.Header.Get("Location"))
	}
	cookie := (&http.Response{Header: res.Header}).Cookies()
	if len(cookie) != 1 || cookie[0].Name != "rally_session" || !cookie[0].HttpOnly || !cookie[0].Secure || cookie[0].SameSite != http.SameSiteLaxMode {
		t.Fatalf("cookie: %v", res.Header["Set-Cookie"])
	}
	sess, err := e.App.Sessions.Authenticate(context.Background(), cookie[0].Value)
	if err != nil || sess.UserID != u.ID || sess.TokenID != sessionID {
		t.Fatalf("cookie token: %+v %v", sess, err)
	}
	// The browser's next read is signed in by the cookie alone.
	me := e.Do(apitest.Request{Method: "GET", Path: "/v1/users/" + u.ID, Headers: map[string]string{"Cookie": cookie[0].String()}}).Expect(t, 200)
	if me.String("data.username") != "johndoe" {
		t.Fatalf("read by cookie: %s", me.Body)
	}
	mem, _ := e.App.Users.Member(context.Background(), a, u.ID)
	if mem.VisitCount != 1 {
		t.Fatalf("visit not recorded: %+v", mem)
	}
	// Replay is refused with the Secure Auth error body.
	res = e.Do(apitest.Request{Method: "GET", Path: link.RequestURI()}).Expect(t, 401)
	if res.Get("error") != true || res.String("message") == "" {
		t.Fatalf("replay: %s", res.Body)
	}
	// An existing user: the short form; the uri as hostname; X-API-Key.
	res = e.Do(apitest.Request{Method: "GET", Path: "/api/secureAuth?action=login&userId=johndoe&accessLevel=0",
		Headers: map[string]string{"X-API-Key": keyA, "hostname": "alpha"}}).Expect(t, 200)
	if res.String("sessionId") == "" {
		t.Fatalf("short form: %s", res.Body)
	}
	// Links expire after five minutes.
	link2, _ := url.Parse(res.String("loginUrl"))
	e.Clock.Advance(auth.SecureAuthTTL + time.Second)
	e.Do(apitest.Request{Method: "GET", Path: link2.RequestURI()}).Expect(t, 401)
	// An altered link (another key id or host) is refused.
	res = sa(keyA, "club.example.com", "action=login&userId=johndoe").Expect(t, 200)
	link3, _ := url.Parse(res.String("loginUrl"))
	q := link3.Query()
	e.Do(apitest.Request{Method: "GET", Path: "/v2/app/loginApi/ffffffffffffffffffffffff/2?" + q.Encode()}).Expect(t, 401)
	q.Set("host", "evil.example.com")
	e.Do(apitest.Request{Method: "GET", Path: link3.Path + "?" + q.Encode()}).Expect(t, 401)
	e.Do(apitest.Request{Method: "GET", Path: link3.Path + "?token=zz&host=club.example.com"}).Expect(t, 401)

	for _, tc := range []struct {
		name, key, host, query string
		want                   int
	}{
		{"no key", "", "club.example.com", "action=login&userId=johndoe", 401},
		{"unknown key", strings.Repeat("ab", 32), "club.example.com", "action=login&userId=johndoe", 401},
		{"other community's host", keyB, "club.example.com", "action=login&userId=johndoe", 403},
		{"no hostname", keyA, "", "action=login&userId=johndoe", 400},
		{"bad action and level", keyA, "club.example.com", "action=logout&userId=johndoe&accessLevel=x", 400},
		{"unknown user without email", keyA, "club.example.com", "action=login&userId=nobody", 404},
		{"email taken by another user", keyA, "club.example.com", "action=login&userId=jane&email=johndoe%40gmail.com", 409},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := sa(tc.key, tc.host, tc.query).Expect(t, tc.want)
			if res.Get("error") != true {
				t.Fatalf("want the Secure Auth error body: %s", res.Body)
			}
		})
	}
	// Community B's key vouches for the same person in B: they join B.
	sa(keyB, "beta", "action=login&userId=johndoe").Expect(t, 200)
	if m, err := e.App.Users.Member(context.Background(), b, u.ID); err != nil || !m.Joined {
		t.Fatalf("join B: %+v %v", m, err)
	}
	// A deactivated issuing key voids its outstanding links.
	res = sa(keyA, "club.example.com", "action=login&userId=johndoe").Expect(t, 200)
	link4, _ := url.Parse(res.String("loginUrl"))
	keys, _ := e.App.Keys.List(context.Background(), a)
	if _, err := e.App.Keys.Revoke(context.Background(), a, keys[0].ID); err != nil {
		t.Fatal(err)
	}
	e.Do(apitest.Request{Method: "GET", Path: link4.RequestURI()}).Expect(t, 401)
}

func TestUserAPIKeys(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	b, _ := e.Community("Beta", "beta")
	me := member(t, e, a, "eve", "", false)
	other := member(t, e, a, "fay", "", false)
	tok, otherTok := e.SignIn(a, "eve@example.com"), e.SignIn(a, "fay@example.com")

	res := e.Do(apitest.Request{Method: "POST", Path: "/apis/v1/users/apikeys?userId=" + me, Key: tok, Body: map[string]any{
		"name": "testing", "permissions": []string{"sendMessages", "readOwnProfile"}, "expirePeriod": 0, "expireDate": "", "communityId": a,
		"channelIds": []string{"6167dba9c548eb5c7ec28057"}}}).Expect(t, 201)
	secret, keyID := res.String("data.key"), res.String("data._id")
	if !hex64.MatchString(secret) || res.String("data.userId") != me || res.String("data.communityId") != a ||
		fmt.Sprint(res.Get("data.permissions")) != "[sendMessage readOwnProfile]" || fmt.Sprint(res.Get("data.channelIds")) != "[6167dba9c548eb5c7ec28057]" {
		t.Fatalf("create: %s", res.Body)
	}
	if events(t, e, a, "apikey.created") != 2 {
		t.Fatal("apikey.created not emitted")
	}
	// The key tells about itself, without its secret.
	info := e.Do(apitest.Request{Method: "GET", Path: "/v1/api-keys/info", Key: secret}).Expect(t, 200)
	if info.String("data.kind") != "user" || info.String("data.userId") != me || info.Get("data.key") != nil {
		t.Fatalf("info: %s", info.Body)
	}
	pinfo := e.Do(apitest.Request{Method: "GET", Path: "/v1/api-keys/info", Key: keyA}).Expect(t, 200)
	if pinfo.String("data.kind") != "partner" || pinfo.String("data.communityId") != a {
		t.Fatalf("partner info: %s", pinfo.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/api-keys/info", Key: tok}).Expect(t, 401)
	// A user key cannot manage keys or act on partner routes.
	e.Do(apitest.Request{Method: "GET", Path: "/v1/users/" + me + "/api-keys", Key: secret}).Expect(t, 403)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/management/communities/" + a, Key: secret}).Expect(t, 403)

	list := e.Do(apitest.Request{Method: "GET", Path: "/v1/users/" + me + "/api-keys", Key: tok}).Expect(t, 200)
	if list.Get("meta.total") != float64(1) || list.String("data.0._id") != keyID || list.Get("data.0.key") != nil {
		t.Fatalf("list: %s", list.Body)
	}
	res = e.Do(apitest.Request{Method: "PUT", Path: "/apis/v1/users/" + me + "/api-keys/" + keyID, Key: tok, Body: map[string]any{
		"name": "Updated API Key Name", "permissions": []string{"readOwnProfile", "updateOwnProfile", "readOwnMessages"},
		"expirePeriod": 180, "expireDate": "2099-06-30T23:59:59Z", "isActive": true}}).Expect(t, 200)
	if res.String("data.name") != "Updated API Key Name" || res.String("data.expireDate") != "2099-06-30T23:59:59.000Z" || res.Get("data.expirePeriod") != float64(180) {
		t.Fatalf("update: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/users/" + me + "/api-keys/" + keyID, Key: tok, Body: map[string]any{"isActive": false}}).Expect(t, 200)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/api-keys/info", Key: secret}).Expect(t, 401)
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/users/" + me + "/api-keys/" + keyID, Key: tok, Body: map[string]any{"isActive": true}}).Expect(t, 200)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/api-keys/info", Key: secret}).Expect(t, 200)

	// Someone else's keys: 403 by user id, 404 by key id.
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/apikeys?userId=" + me, Key: otherTok, Body: map[string]any{"name": "x", "communityId": a}}).Expect(t, 403)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/users/" + me + "/api-keys", Key: otherTok}).Expect(t, 403)
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/users/" + me + "/api-keys/" + keyID, Key: otherTok, Body: map[string]any{"name": "x"}}).Expect(t, 403)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/users/" + me + "/api-keys/" + keyID, Key: otherTok}).Expect(t, 403)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/users/" + other + "/api-keys/" + keyID, Key: otherTok}).Expect(t, 404)
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/users/" + other + "/api-keys/" + keyID, Key: otherTok, Body: map[string]any{"name": "x"}}).Expect(t, 404)
	// Not a member of the key's community; bad input; no token; a partner key.
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/apikeys", Key: tok, Body: map[string]any{"name": "x", "communityId": b}}).Expect(t, 403)
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/apikeys", Key: tok, Body: map[string]any{"name": "", "permissions": []string{"createUser"},
		"expirePeriod": -1, "expireDate": "yesterday", "communityId": "nope", "channelIds": []string{"x"}}}).Expect(t, 400)
	if fmt.Sprint(sortedCopy(res.ErrorFields())) != "[channelIds communityId expireDate expirePeriod name permissions]" {
		t.Fatalf("fields: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/apikeys", Body: map[string]any{"name": "x", "communityId": a}}).Expect(t, 401)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/apikeys", Key: keyA, Body: map[string]any{"name": "x", "communityId": a}}).Expect(t, 403)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/users/" + me + "/api-keys?limit=0", Key: tok}).Expect(t, 400)

	res = e.Do(apitest.Request{Method: "DELETE", Path: "/v1/users/" + me + "/api-keys/" + keyID, Key: tok}).Expect(t, 200)
	if res.String("message") != "Delete API key success." || res.String("data.key") != secret[:8]+"…" {
		t.Fatalf("delete: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/api-keys/info", Key: secret}).Expect(t, 401)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/users/" + me + "/api-keys/" + keyID, Key: tok}).Expect(t, 404)
	if events(t, e, a, "apikey.deleted") != 1 || events(t, e, a, "apikey.revoked") != 1 || events(t, e, a, "apikey.updated") != 2 {
		t.Fatal("key events missing")
	}
}

func TestCommunityAPIKeys(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	b, _ := e.Community("Beta", "beta")
	member(t, e, a, "owner", "", true)
	member(t, e, a, "plain", "", false)
	member(t, e, b, "bowner", "", true)
	owner, plain, bOwner := e.SignIn(a, "owner@example.com"), e.SignIn(a, "plain@example.com"), e.SignIn(b, "bowner@example.com")
	base := "/v1/communities/" + a + "/api-keys"

	res := e.Do(apitest.Request{Method: "POST", Path: base, Key: owner, Body: map[string]any{"name": "Slack Integration API Key",
		"permissions": []string{"sendMessage", "getUserData"}, "expirePeriod": 30}}).Expect(t, 201)
	secret, keyID := res.String("data.key"), res.String("data._id")
	if !hex64.MatchString(secret) || res.String("data.expireDate") == "" {
		t.Fatalf("create: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/api-keys/info", Key: secret}).Expect(t, 200)
	list := e.Do(apitest.Request{Method: "GET", Path: base + "?limit=1", Key: owner}).Expect(t, 200)
	if list.Get("meta.total") != float64(2) || list.String("data.0._id") != keyID || list.Get("data.0.key") != nil {
		t.Fatalf("list: %s", list.Body)
	}
	res = e.Do(apitest.Request{Method: "PUT", Path: base + "/" + keyID, Key: owner, Body: map[string]any{"permissions": []string{"store"}, "expireDate": nil}}).Expect(t, 200)
	if fmt.Sprint(res.Get("data.permissions")) != "[store]" || res.Get("data.expireDate") != nil || res.Get("data.expirePeriod") != float64(0) {
		t.Fatalf("update: %s", res.Body)
	}
	// Owner/admin only; the path's community must be the caller's.
	for _, tc := range []struct {
		name, method, path, key string
		want                    int
	}{
		{"member is not admin", "GET", base, plain, 403},
		{"member cannot create", "POST", base, plain, 403},
		{"other community's owner", "GET", base, bOwner, 403},
		{"other community's owner deletes", "DELETE", base + "/" + keyID, bOwner, 403},
		{"partner key", "GET", base, keyA, 403},
		{"no token", "GET", base, "", 401},
		{"key of another community", "PUT", "/v1/communities/" + b + "/api-keys/" + keyID, bOwner, 404},
		{"unknown key", "DELETE", base + "/ffffffffffffffffffffffff", owner, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.method != "GET" && tc.method != "DELETE" {
				body = map[string]any{"name": "x"}
			}
			e.Do(apitest.Request{Method: tc.method, Path: tc.path, Key: tc.key, Body: body}).Expect(t, tc.want)
		})
	}
	res = e.Do(apitest.Request{Method: "POST", Path: base, Key: owner, Body: map[string]any{"permissions": []string{"readOwnProfile"}, "channelIds": []string{}}}).Expect(t, 400)
	if fmt.Sprint(sortedCopy(res.ErrorFields())) != "[channelIds name permissions]" {
		t.Fatalf("fields: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "DELETE", Path: "/apis/v1/communities/" + a + "/api-keys/" + keyID, Key: owner}).Expect(t, 200)
	if res.String("message") != "Delete API key success." || res.String("data._id") != keyID || res.String("data.name") != "Slack Integration API Key" ||
		res.String("data.key") != secret[:8]+"…" || res.String("data.createdAt") == "" {
		t.Fatalf("delete: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/api-keys/info", Key: secret}).Expect(t, 401)
}

func TestMyCommunities(t *testing.T) {
	e := apitest.New(t)
	a, _ := e.Community("Alpha", "alpha")
	b, _ := e.Community("Beta", "beta")
	e.Community("Gamma", "gamma")
	uid := member(t, e, a, "gil", "", false)
	join(t, e, b, uid)
	tok := e.SignIn(a, "gil@example.com")
	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/management/communities", Key: tok}).Expect(t, 200)
	if res.Get("meta.total") != float64(2) || res.String("data.0._id") != a || res.String("data.1._id") != b {
		t.Fatalf("mine: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/management/communities", Key: e.AdminKey}).Expect(t, 200)
	if res.Get("meta.total") != float64(3) {
		t.Fatalf("all: %s", res.Body)
	}
	if _, err := e.App.DB.Exec(context.Background(), "UPDATE members SET deleted_at = 1 WHERE community_id = ? AND user_id = ?", b, uid); err != nil {
		t.Fatal(err)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/management/communities", Key: tok}).Expect(t, 200)
	if res.Get("meta.total") != float64(1) {
		t.Fatalf("deleted membership still listed: %s", res.Body)
	}
}

func TestConcurrentRegistration(t *testing.T) {
	e := apitest.New(t)
	_, key := e.Community("Alpha", "alpha")
	const n = 50
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			statuses[i] = e.Do(apitest.Request{Method: "POST", Path: "/v1/auth/register", Key: key, Body: map[string]any{
				"email": "same@example.com", "username": fmt.Sprintf("racer%d", i), "password": goodPassword, "confirmPassword": goodPassword}}).Status
		}(i)
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[201] != 1 || count[409] != n-1 {
		t.Fatalf("statuses %v", count)
	}
	var users int
	if err := e.App.DB.QueryRow(context.Background(), "SELECT COUNT(*) FROM users WHERE email_key = ?", "same@example.com").Scan(&users); err != nil || users != 1 {
		t.Fatalf("%d users, %v", users, err)
	}
}

// BenchmarkLogin measures password logins through HTTP (argon2id-bound).
func BenchmarkLogin(b *testing.B) {
	e := apitest.New(b)
	a, key := e.Community("Alpha", "alpha")
	member(b, e, a, "bench", goodPassword, false)
	body := map[string]any{"identifier": "bench", "password": goodPassword}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res := login(e, key, body); res.Status != 200 {
			b.Fatalf("status %d: %s", res.Status, res.Body)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
}
