package httpapi_test

import (
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/user"
)

// TestUserFieldsWithUserTokens drives UD1-UD10 with session tokens: the
// community's owner and an admin (a member whose role grants
// server_administrator) may use every route and are recorded as the actor;
// a plain member, another community's owner and a removed admin may not.
func TestUserFieldsWithUserTokens(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	b, keyB := e.Community("Beta", "beta")
	owner := e.Member(a, "olga", user.MemberOptions{AccessLevel: 1, Joined: true, Owner: true})
	admin := e.Member(a, "adam", user.MemberOptions{AccessLevel: 1, Joined: true})
	e.Member(a, "pete", user.MemberOptions{AccessLevel: 1, Joined: true})
	gone := e.Member(a, "gina", user.MemberOptions{AccessLevel: 1, Joined: true})
	e.Member(b, "bert", user.MemberOptions{AccessLevel: 1, Joined: true, Owner: true})
	ann := fieldMember(t, e, a, "ann")
	bea := fieldMember(t, e, b, "bea")

	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/roles", Key: keyA, Body: map[string]any{
		"title": "Admins", "serverPermissions": map[string]any{"server_administrator": true}}}).Expect(t, 201)
	for _, u := range []user.User{admin, gone} {
		e.Do(apitest.Request{Method: "POST", Path: "/v1/roles/" + res.String("body._id") + "/add", Key: keyA,
			Body: map[string]any{"userId": u.ID}}).Expect(t, 200)
	}

	ownerTok, adminTok := e.SignIn(a, "olga@example.com"), e.SignIn(a, "adam@example.com")
	plainTok, bOwnerTok := e.SignIn(a, "pete@example.com"), e.SignIn(b, "bert@example.com")
	goneTok := e.SignIn(a, "gina@example.com")
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/manage", Key: keyA,
		Body: map[string]any{"action": "delete", "user": gone.Email}}).Expect(t, 200)
	bField := createField(t, e, b, keyB, map[string]any{"field": "level", "name": "Level", "type": "number"})

	ca := "/v1/communities/" + a
	// The owner creates a field (UD10) and is its creator; the admin reads,
	// lists and updates it (UD1, UD9, UD2).
	res = e.Do(apitest.Request{Method: "POST", Path: ca + "/user-fields", Key: ownerTok,
		Body: map[string]any{"field": "tier", "name": "Tier", "type": "single-line-text"}}).Expect(t, 201)
	tier := res.String("data._id")
	if res.String("data.creator._id") != owner.ID || res.Get("data.creator.id") != float64(owner.NumID) ||
		res.String("data.creator.username") != "olga" || res.String("data.creator.displayName") != "olga" {
		t.Fatalf("creator: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "POST", Path: "/apis/v1/communities/" + a + "/user-fields", Key: adminTok,
		Body: map[string]any{"field": "score", "name": "Score", "type": "number"}}).Expect(t, 201)
	score := res.String("data._id")
	if res.String("data.creator._id") != admin.ID {
		t.Fatalf("admin creator: %s", res.Body)
	}
	if res := e.Do(apitest.Request{Method: "GET", Path: ca + "/user-fields/" + tier, Key: adminTok}).Expect(t, 200); res.String("data.field") != "tier" {
		t.Fatalf("read: %s", res.Body)
	}
	if res := e.Do(apitest.Request{Method: "GET", Path: ca + "/user-fields", Key: adminTok}).Expect(t, 200); res.Get("meta.total") != float64(2) {
		t.Fatalf("list: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "PUT", Path: "/apis/v1/communities/" + a + "/user-fields/" + tier, Key: adminTok,
		Body: map[string]any{"name": "Tier level", "type": "text"}}).Expect(t, 200)
	if res.String("data.name") != "Tier level" || res.String("data.creator._id") != owner.ID {
		t.Fatalf("update: %s", res.Body)
	}

	// Value changes (UD8) record the signed-in user as the actor.
	hist := ca + "/users/" + ann + "/user-field-histories"
	for _, w := range []struct {
		tok, by, field string
		value          any
	}{{ownerTok, owner.ID, "tier", "gold"}, {adminTok, admin.ID, "score", 7}} {
		res = e.Do(apitest.Request{Method: "POST", Path: hist, Key: w.tok, Body: map[string]any{"fieldId": w.field, "value": w.value}}).Expect(t, 201)
		if res.String("data.changedBy.kind") != "user" || res.String("data.changedBy.id") != w.by || res.String("data.userId") != ann {
			t.Fatalf("actor: %s", res.Body)
		}
	}
	// The four history reads (UD4-UD7) answer both grants.
	for _, tok := range []string{ownerTok, adminTok} {
		for path, want := range map[string]float64{
			ca + "/user-field-histories":               2,
			ca + "/user-fields/" + tier + "/histories": 1,
			hist: 2,
			ca + "/users/" + ann + "/user-fields/score/histories": 1,
		} {
			res := e.Do(apitest.Request{Method: "GET", Path: path, Key: tok}).Expect(t, 200)
			if res.Get("meta.total") != want {
				t.Fatalf("%s: %s", path, res.Body)
			}
		}
	}
	last := e.Do(apitest.Request{Method: "GET", Path: ca + "/user-field-histories?limit=1", Key: ownerTok}).Expect(t, 200)
	if last.String("data.0.changedBy.kind") != "user" || last.String("data.0.changedBy.id") != admin.ID {
		t.Fatalf("listed actor: %s", last.Body)
	}

	// Every route refuses a plain member, another community's owner, a
	// removed admin and a missing token; the other community's owner gets
	// nothing of A's through B's path either.
	routes := []struct {
		method, path string
		body         any
	}{
		{"GET", ca + "/user-fields", nil},
		{"POST", ca + "/user-fields", map[string]any{"field": "x", "name": "X", "type": "text"}},
		{"GET", ca + "/user-fields/" + tier, nil},
		{"PUT", ca + "/user-fields/" + tier, map[string]any{"name": "X", "type": "text"}},
		{"DELETE", ca + "/user-fields/" + score, nil},
		{"GET", ca + "/user-field-histories", nil},
		{"GET", ca + "/user-fields/" + tier + "/histories", nil},
		{"GET", hist, nil},
		{"GET", ca + "/users/" + ann + "/user-fields/" + tier + "/histories", nil},
		{"POST", hist, map[string]any{"fieldId": "tier", "value": "lead"}},
	}
	for _, r := range routes {
		for _, c := range []struct {
			name, tok string
			want      int
		}{{"plain member", plainTok, 403}, {"other community's owner", bOwnerTok, 403}, {"removed admin", goneTok, 403}, {"no token", "", 401}} {
			t.Run(c.name+" "+r.method+" "+r.path, func(t *testing.T) {
				e.Do(apitest.Request{Method: r.method, Path: r.path, Key: c.tok, Body: r.body}).Expect(t, c.want)
			})
		}
	}
	cb := "/v1/communities/" + b
	e.Do(apitest.Request{Method: "GET", Path: cb + "/user-fields/" + tier, Key: bOwnerTok}).Expect(t, 404)
	e.Do(apitest.Request{Method: "GET", Path: cb + "/users/" + ann + "/user-field-histories", Key: bOwnerTok}).Expect(t, 404)
	e.Do(apitest.Request{Method: "POST", Path: cb + "/users/" + ann + "/user-field-histories", Key: bOwnerTok,
		Body: map[string]any{"fieldId": bField, "value": 1}}).Expect(t, 404)
	// A's owner holds no grant in B.
	e.Do(apitest.Request{Method: "POST", Path: cb + "/users/" + bea + "/user-field-histories", Key: ownerTok,
		Body: map[string]any{"fieldId": bField, "value": 1}}).Expect(t, 403)
	if res := e.Do(apitest.Request{Method: "GET", Path: cb + "/user-field-histories", Key: bOwnerTok}).Expect(t, 200); res.Get("meta.total") != float64(0) {
		t.Fatalf("B sees A's history: %s", res.Body)
	}

	// Nothing the refused calls sent was written; the owner deletes (UD3).
	if res := e.Do(apitest.Request{Method: "GET", Path: ca + "/user-field-histories", Key: ownerTok}).Expect(t, 200); res.Get("meta.total") != float64(2) {
		t.Fatalf("refused writes landed: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "DELETE", Path: ca + "/user-fields/" + score, Key: ownerTok}).Expect(t, 200)
	e.Do(apitest.Request{Method: "GET", Path: ca + "/user-fields/" + score, Key: adminTok}).Expect(t, 404)
	if res := e.Do(apitest.Request{Method: "GET", Path: ca + "/user-fields/" + score + "/histories", Key: adminTok}).Expect(t, 200); res.Get("meta.total") != float64(1) {
		t.Fatalf("deleted field's history: %s", res.Body)
	}
}
