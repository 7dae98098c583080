package httpapi_test

import (
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/user"
)

func TestGetUser(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	b, keyB := e.Community("Beta", "beta")
	adaID := createUser(t, e, keyA, "ada")
	bobID := createUser(t, e, keyA, "bob")
	eveID := createUser(t, e, keyB, "eve")
	ada := e.SignIn(a, "ada@example.com")
	_ = e.SignIn(b, "eve@example.com")

	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/users/" + adaID, Key: ada}).Expect(t, 200)
	if res.String("message") != "Get user success." || res.String("data._id") != adaID || res.String("data.email") != "ada@example.com" ||
		res.String("data.username") != "ada" || res.String("data.displayName") != "Display ada" || res.String("data.firstName") != "First ada" {
		t.Fatalf("own record: %s", res.Body)
	}
	if _, ok := res.Get("data.id").(float64); !ok {
		t.Fatalf("id must be a number: %s", res.Body)
	}
	if _, ok := res.Get("data.isOnline").(bool); !ok {
		t.Fatalf("isOnline must be a boolean: %s", res.Body)
	}
	// Field selection, at the documented /apis/v1 form.
	res = e.Do(apitest.Request{Method: "GET", Path: "/apis/v1/users/" + adaID + "?email=true&avatar=true", Key: ada}).Expect(t, 200)
	data, _ := res.Get("data").(map[string]any)
	if len(data) != 2 || data["email"] != "ada@example.com" {
		t.Fatalf("selection: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/users/" + adaID + "?email=false", Key: ada}).Expect(t, 200)
	if res.Get("data.email") != nil || res.String("data.username") != "ada" {
		t.Fatalf("email=false: %s", res.Body)
	}
	// A member of a shared community is visible, without their email.
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/users/" + bobID, Key: ada}).Expect(t, 200)
	if res.String("data.username") != "bob" || res.Get("data.email") != nil {
		t.Fatalf("shared community member: %s", res.Body)
	}
	// Nobody else, and deleted members neither.
	e.Do(apitest.Request{Method: "GET", Path: "/v1/users/" + eveID, Key: ada}).Expect(t, 404)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/manage", Key: keyA, Body: map[string]any{"action": "delete", "user": "bob"}}).Expect(t, 200)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/users/" + bobID, Key: ada}).Expect(t, 404)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/manage", Key: keyA, Body: map[string]any{"action": "restore", "user": "bob"}}).Expect(t, 200)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/users/" + bobID, Key: ada}).Expect(t, 200)

	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/users/not-an-id?email=maybe", Key: ada}).Expect(t, 400)
	if got := sortedCopy(res.ErrorFields()); len(got) != 2 || got[0] != "email" || got[1] != "userId" {
		t.Fatalf("error fields %v", got)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/users/" + adaID}).Expect(t, 401)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/users/" + adaID, Key: keyA}).Expect(t, 403)
}

func TestCommunityUsers(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	b, keyB := e.Community("Beta", "beta")
	createUser(t, e, keyA, "ada")
	createUser(t, e, keyA, "bob")
	createUser(t, e, keyA, "cat")
	createUser(t, e, keyB, "eve")
	ada := e.SignIn(a, "ada@example.com")
	eve := e.SignIn(b, "eve@example.com")

	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/communities/" + a + "/users", Key: ada}).Expect(t, 200)
	if res.String("message") != "Get community users success." || res.Get("meta.total") != float64(3) || res.Get("meta.skip") != float64(0) {
		t.Fatalf("list: %s", res.Body)
	}
	list, _ := res.Get("data").([]any)
	for _, it := range list {
		m := it.(map[string]any)
		if _, has := m["email"]; has != (m["username"] == "ada") {
			t.Fatalf("a plain member sees only their own email: %v", m)
		}
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/communities/" + a + "/users?search=BO", Key: ada}).Expect(t, 200)
	if res.Get("meta.total") != float64(1) || res.String("data.0.username") != "bob" {
		t.Fatalf("search: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/communities/" + a + "/users?skip=1&limit=1", Key: ada}).Expect(t, 200)
	if res.Get("meta.total") != float64(3) || len(res.Get("data").([]any)) != 1 || res.String("data.0.username") != "bob" {
		t.Fatalf("paging: %s", res.Body)
	}
	// Deleted members vanish and come back.
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/manage", Key: keyA, Body: map[string]any{"action": "delete", "user": "cat"}}).Expect(t, 200)
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/communities/" + a + "/users", Key: ada}).Expect(t, 200)
	if res.Get("meta.total") != float64(2) {
		t.Fatalf("after delete: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/manage", Key: keyA, Body: map[string]any{"action": "restore", "user": "cat"}}).Expect(t, 200)

	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/communities/" + a + "/users?limit=0&skip=-1", Key: ada}).Expect(t, 400)
	if len(res.ErrorFields()) != 2 {
		t.Fatalf("paging errors: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/communities/" + a + "/users", Key: eve}).Expect(t, 403)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/communities/" + a + "/users", Key: keyA}).Expect(t, 403)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/communities/" + a + "/users"}).Expect(t, 401)
}

// TestCommunityUsersAsOwner: the owner and admins see every member's email
// (a plain member sees only their own, above).
func TestCommunityUsersAsOwner(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	e.Member(a, "olga", user.MemberOptions{AccessLevel: 1, Joined: true, Owner: true})
	createUser(t, e, keyA, "ada")
	createUser(t, e, keyA, "bob")
	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/communities/" + a + "/users", Key: e.SignIn(a, "olga@example.com")}).Expect(t, 200)
	list, _ := res.Get("data").([]any)
	if res.Get("meta.total") != float64(3) || len(list) != 3 {
		t.Fatalf("list: %s", res.Body)
	}
	for _, it := range list {
		if m := it.(map[string]any); m["email"] != m["username"].(string)+"@example.com" {
			t.Fatalf("owner sees every email: %v", m)
		}
	}
}
