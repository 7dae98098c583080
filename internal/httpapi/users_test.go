package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/userfield"
)

// newUser is a valid Create New User body for name.
func newUser(name string, extra ...any) map[string]any {
	b := map[string]any{"firstname": "First " + name, "lastname": "Last " + name, "username": name,
		"displayname": "Display " + name, "email": name + "@example.com", "accessLevel": 1, "joinServer": true,
		"sendEmail": false, "emailPassword": false}
	for i := 0; i+1 < len(extra); i += 2 {
		b[extra[i].(string)] = extra[i+1]
	}
	return b
}

// createUser makes a user through the API and returns its _id.
func createUser(t *testing.T, e *apitest.Env, key, name string, extra ...any) string {
	t.Helper()
	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/users", Key: key, Body: newUser(name, extra...)}).Expect(t, 201)
	return res.String("data._id")
}

// expectS checks a refused answer: its status, the integration (S) error
// body and, when fields is non-nil, exactly those offending fields.
func expectS(t *testing.T, res *apitest.Response, status int, fields []string) {
	t.Helper()
	res.Expect(t, status)
	if res.Get("status") != "error" {
		t.Fatalf("want the S error body: %s", res.Body)
	}
	if fields != nil && !slices.Equal(sortedCopy(res.ErrorFields()), sortedCopy(fields)) {
		t.Fatalf("error fields %v, want %v", res.ErrorFields(), fields)
	}
}

// eventTypes lists the types of community's events of the given types, in order.

func TestCreateUser(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	b, keyB := e.Community("Beta", "beta")
	_, noCreate := keyWith(t, e, a, 0, "getUserData")

	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/users", Key: keyA, Body: newUser("ada",
		"password", "StrongPass1!", "confirmPassword", "StrongPass1!", "accessLevel", 3, "externalId", "cust-1",
		"sendEmail", true, "emailPassword", true, "emailTemplate", "0", "communityId", a)}).Expect(t, 201)
	if res.Get("status") != "success" || res.String("message") != "Create user success." {
		t.Fatalf("envelope: %s", res.Body)
	}
	adaID := res.String("data._id")
	if !id.Valid(adaID) || res.String("data.username") != "ada" || res.String("data.displayName") != "Display ada" ||
		res.Get("data.accessLevel") != float64(3) || res.Get("data.joined") != true || res.String("data.externalId") != "cust-1" ||
		res.Get("data.emailVerified") != true || res.String("data.communityId") != a {
		t.Fatalf("created user: %s", res.Body)
	}
	u, err := e.App.Users.Get(context.Background(), adaID)
	if err != nil || !auth.VerifyPassword(u.PasswordHash, "StrongPass1!") || !u.EmailVerified {
		t.Fatalf("password not stored hashed or email not verified: %v %+v", err, u)
	}
	if got := e.EventTypes(a, "user.created", "user.joined", "user.welcome.requested"); !slices.Equal(got,
		[]string{"user.created", "user.joined", "user.welcome.requested"}) {
		t.Fatalf("events %v", got)
	}
	var payload string
	if err := e.App.DB.QueryRow(context.Background(), "SELECT payload FROM events WHERE type = 'user.welcome.requested'").Scan(&payload); err != nil {
		t.Fatal(err)
	}
	var welcome map[string]any
	_ = json.Unmarshal([]byte(payload), &welcome)
	if welcome["emailPassword"] != true || welcome["emailTemplate"] != "0" || welcome["password"] != nil {
		t.Fatalf("welcome payload %s", payload)
	}
	// The welcome mail is queued; it names the account, never the password.
	sent, err := e.App.Mail.List(context.Background(), "ada@example.com", 10)
	if err != nil || len(sent) != 1 || sent[0].Subject != "Welcome to Alpha" || !strings.Contains(sent[0].Body, "username is ada") ||
		!strings.Contains(sent[0].Body, "set a password") || strings.Contains(sent[0].Body, "StrongPass1!") {
		t.Fatalf("welcome mail: %+v %v", sent, err)
	}

	// The documented /apis/v1 form; no password (broker flow), not joined, referred by externalId.
	res = e.Do(apitest.Request{Method: "POST", Path: "/apis/v1/users", Key: keyA,
		Body: newUser("grace", "joinServer", false, "referral", "cust-1")}).Expect(t, 201)
	if res.Get("data.joined") != false || res.String("data.referredBy") != adaID {
		t.Fatalf("grace: %s", res.Body)
	}
	// Referral by username; defaults (access level 1, joined) without the optional fields.
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users", Key: keyA,
		Body: map[string]any{"username": "lin", "email": "lin@example.com", "referral": "GRACE"}}).Expect(t, 201)
	if res.Get("data.accessLevel") != float64(1) || res.Get("data.joined") != true || res.String("data.displayName") != "lin" ||
		res.String("data.referredBy") == "" {
		t.Fatalf("lin: %s", res.Body)
	}

	cases := []struct {
		name       string
		key        string
		body       any
		wantStatus int
		wantFields []string
	}{
		{"no key", "", newUser("x1"), 401, nil},
		{"key without createUser", noCreate, newUser("x1"), 403, nil},
		{"other community id", keyA, newUser("x1", "communityId", b), 403, nil},
		{"missing fields", keyA, map[string]any{}, 400, []string{"email", "username"}},
		{"bad values", keyA, newUser("x1", "email", "not-an-email", "username", "a b", "accessLevel", 11), 400,
			[]string{"email", "username", "accessLevel"}},
		{"weak password", keyA, newUser("x1", "password", "short", "confirmPassword", "short"), 400, []string{"password"}},
		{"password mismatch", keyA, newUser("x1", "password", "StrongPass1!", "confirmPassword", "StrongPass2!"), 400,
			[]string{"confirmPassword"}},
		{"emailPassword without password", keyA, newUser("x1", "emailPassword", true), 400, []string{"emailPassword"}},
		{"wrong types", keyA, newUser("x1", "accessLevel", "one", "joinServer", "yes", "customFields", "x"), 400,
			[]string{"accessLevel", "joinServer", "customFields"}},
		{"bad custom field entry", keyA, newUser("x1", "customFields", []any{map[string]any{"value": []int{1}}}), 400,
			[]string{"customFields.0.fieldIdorName", "customFields.0.value"}},
		{"unknown referral", keyA, newUser("x1", "referral", "nobody"), 400, []string{"referral"}},
		{"referral from another community", keyB, newUser("x1", "referral", "cust-1"), 400, []string{"referral"}},
		{"duplicate email any case", keyA, newUser("x1", "email", "ADA@example.com"), 409, []string{"email"}},
		{"duplicate username", keyA, newUser("ada", "email", "other@example.com"), 409, []string{"username"}},
		{"account exists outside this community", keyB, newUser("x2", "email", "ada@example.com"), 409, []string{"email"}},
		{"duplicate externalId", keyA, newUser("x1", "externalId", "cust-1"), 409, []string{"externalId"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectS(t, e.Do(apitest.Request{Method: "POST", Path: "/v1/users", Key: tc.key, Body: tc.body}), tc.wantStatus, tc.wantFields)
		})
	}
	// Nothing was half-written by the refused requests.
	var n int
	if err := e.App.DB.QueryRow(context.Background(), "SELECT COUNT(*) FROM users").Scan(&n); err != nil || n != 3 {
		t.Fatalf("users: %d %v", n, err)
	}
	// The same externalId may be used in another community.
	createUser(t, e, keyB, "bee", "externalId", "cust-1")
}

func TestCreateUserConcurrentSameEmail(t *testing.T) {
	e := apitest.New(t)
	_, key := e.Community("Alpha", "alpha")
	const n = 50
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res := e.Do(apitest.Request{Method: "POST", Path: "/v1/users", Key: key,
				Body: newUser(fmt.Sprintf("racer%d", i), "email", "same@example.com")})
			statuses <- res.Status
		}(i)
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[201] != 1 || count[409] != n-1 {
		t.Fatalf("statuses %v, want one 201 and %d 409", count, n-1)
	}
	var users int
	if err := e.App.DB.QueryRow(context.Background(), "SELECT COUNT(*) FROM users WHERE email_key = 'same@example.com'").Scan(&users); err != nil || users != 1 {
		t.Fatalf("accounts with the email: %d %v", users, err)
	}
}

// addCustomField defines a custom field in community and sets values for
// users, through the user-field service.
func addCustomField(t *testing.T, e *apitest.Env, communityID, field, typ string, values map[string]string) {
	t.Helper()
	ctx := context.Background()
	system := userfield.Actor{Kind: userfield.ActorSystem}
	in := userfield.Input{Field: jsonx.Some(field), Name: jsonx.Some(field), Type: jsonx.Some(typ)}
	if typ == "select" {
		var options []string
		for _, v := range values {
			if !slices.Contains(options, v) {
				options = append(options, v)
			}
		}
		in.Options = jsonx.Some(options)
	}
	if _, err := e.App.UserFields.Create(ctx, communityID, in, system); err != nil {
		t.Fatalf("create field %s: %v", field, err)
	}
	err := e.App.DB.Tx(ctx, func(tx *db.Tx) error {
		for userID, v := range values {
			vals := []userfield.Value{{FieldIDOrName: field, Value: v}}
			if err := e.App.UserFields.SetValuesTx(ctx, tx, communityID, userID, vals, system, "test"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("set %s values: %v", field, err)
	}
}

func TestUserInfo(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	_, keyB := e.Community("Beta", "beta")
	_, noRead := keyWith(t, e, a, 0, "createUser")
	adaID := createUser(t, e, keyA, "ada")
	addCustomField(t, e, a, "customerid", "text", map[string]string{adaID: "C-42"})
	addCustomField(t, e, a, "level", "number", map[string]string{adaID: "7"})
	if _, err := e.App.Users.RecordVisit(context.Background(), a, adaID); err != nil {
		t.Fatal(err)
	}
	u, _ := e.App.Users.Get(context.Background(), adaID)
	num := strconv.FormatInt(u.NumID, 10)

	for _, who := range []string{num, adaID, "ADA@example.com", "ada"} {
		res := e.Do(apitest.Request{Method: "POST", Path: "/apis/v1/users/info", Key: keyA, Body: map[string]any{"idOrEmail": who}}).Expect(t, 200)
		var body map[string]any
		_ = json.Unmarshal(res.Body, &body)
		if _, has := body["message"]; has || body["status"] != "success" {
			t.Fatalf("documented body has no message: %s", res.Body)
		}
		if res.String("data.userId") != num || res.String("data.username") != "ada" || res.String("data.firstName") != "First ada" ||
			res.Get("data.visitCount") != float64(1) || res.Get("data.xp") != float64(0) || res.String("data.highestRole") != "@all" ||
			res.String("data.language") != "English" || res.String("data.customFields.customerid") != "C-42" ||
			res.Get("data.customFields.level") != float64(7) {
			t.Fatalf("info for %s: %s", who, res.Body)
		}
	}
	cases := []struct {
		name   string
		key    string
		body   any
		status int
	}{
		{"missing idOrEmail", keyA, map[string]any{}, 400},
		{"wrong type", keyA, map[string]any{"idOrEmail": 42}, 400},
		{"no key", "", map[string]any{"idOrEmail": "ada"}, 401},
		{"key without getUserData", noRead, map[string]any{"idOrEmail": "ada"}, 403},
		{"unknown user", keyA, map[string]any{"idOrEmail": "nobody@example.com"}, 404},
		{"other community's key", keyB, map[string]any{"idOrEmail": adaID}, 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectS(t, e.Do(apitest.Request{Method: "POST", Path: "/v1/users/info", Key: tc.key, Body: tc.body}), tc.status, nil)
		})
	}
}

func TestManageUser(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	_, keyB := e.Community("Beta", "beta")
	_, noManage := keyWith(t, e, a, 0, "getUserData")
	createUser(t, e, keyA, "johndoe")
	info := func(status int) {
		t.Helper()
		e.Do(apitest.Request{Method: "POST", Path: "/v1/users/info", Key: keyA, Body: map[string]any{"idOrEmail": "johndoe"}}).Expect(t, status)
	}

	// Each documented path form; the answer echoes the request exactly.
	for _, p := range []string{"/v1/users/manage", "/apis/v1/users/manage", "/api/v1/apis/v1/users/manage"} {
		for _, action := range []string{"delete", "restore"} {
			res := e.Do(apitest.Request{Method: "POST", Path: p, Key: keyA, Body: map[string]any{"action": action, "user": "johndoe"}}).Expect(t, 200)
			if string(res.Body) != `{"action":"`+action+`","user":"johndoe"}` {
				t.Fatalf("%s %s: %s", p, action, res.Body)
			}
		}
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/manage", Key: keyA, Body: map[string]any{"action": "delete", "user": "johndoe@example.com"}}).Expect(t, 200)
	info(404)
	// Repeating is a no-op.
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/manage", Key: keyA, Body: map[string]any{"action": "delete", "user": "johndoe"}}).Expect(t, 200)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/manage", Key: keyA, Body: map[string]any{"action": "restore", "user": "johndoe"}}).Expect(t, 200)
	info(200)
	want := []string{"user.deleted", "user.restored", "user.deleted", "user.restored", "user.deleted", "user.restored", "user.deleted", "user.restored"}
	if got := e.EventTypes(a, "user.deleted", "user.restored"); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}

	// The owner cannot be deleted.
	ctx := context.Background()
	err := e.App.DB.Tx(ctx, func(tx *db.Tx) error {
		u, err := e.App.Users.CreateAccountTx(ctx, tx, user.NewAccount{Email: "owner@example.com", Username: "owner"})
		if err != nil {
			return err
		}
		_, err = e.App.Users.AddMemberTx(ctx, tx, a, u, user.MemberOptions{Joined: true, Owner: true})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name       string
		key        string
		body       any
		status     int
		wantFields []string
	}{
		{"bad action and no user", keyA, map[string]any{"action": "ban"}, 400, []string{"action", "user"}},
		{"wrong types", keyA, map[string]any{"action": 1, "user": true}, 400, []string{"action", "user"}},
		{"no key", "", map[string]any{"action": "delete", "user": "johndoe"}, 401, nil},
		{"key without manageUser", noManage, map[string]any{"action": "delete", "user": "johndoe"}, 403, nil},
		{"unknown user", keyA, map[string]any{"action": "delete", "user": "nobody"}, 404, nil},
		{"other community's key", keyB, map[string]any{"action": "delete", "user": "johndoe"}, 404, nil},
		{"owner", keyA, map[string]any{"action": "delete", "user": "owner"}, 409, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectS(t, e.Do(apitest.Request{Method: "POST", Path: "/v1/users/manage", Key: tc.key, Body: tc.body}), tc.status, tc.wantFields)
		})
	}
	info(200) // B's attempt changed nothing
}
