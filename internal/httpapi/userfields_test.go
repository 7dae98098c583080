package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/userfield"
)

// member creates an account and makes it a live member of community,
// returning the user's _id.
func fieldMember(t *testing.T, e *apitest.Env, communityID, name string) string {
	t.Helper()
	return e.Member(communityID, name, user.MemberOptions{AccessLevel: 1, Joined: true}).ID
}

// createField makes a field through the API and returns its _id.
func createField(t *testing.T, e *apitest.Env, communityID, key string, body map[string]any) string {
	t.Helper()
	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/communities/" + communityID + "/user-fields", Key: key, Body: body}).Expect(t, 201)
	return res.String("data._id")
}

// eventTypes lists the community's outbox event types, oldest first.

func count(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

func TestUserFieldDefinitions(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	b, keyB := e.Community("Beta", "beta")
	_, noPerm := keyWith(t, e, a, 0, "store")
	base := "/v1/communities/" + a + "/user-fields"

	// Create: documented body and answer.
	res := e.Do(apitest.Request{Method: "POST", Path: base, Key: keyA,
		Body: map[string]any{"field": "userLevel", "name": "User Level", "type": "numerical"}}).Expect(t, 201)
	if res.String("message") != "Create user field successful" || res.Get("meta.statusCode") != float64(201) ||
		res.String("data.field") != "userLevel" || res.String("data.type") != "numerical" || res.String("data.name") != "User Level" ||
		res.String("data.communityId") != a || res.Get("data.creator") != nil {
		t.Fatalf("create: %s", res.Body)
	}
	levelID := res.String("data._id")
	// Spaces become hyphens; the key is derived from the name when absent;
	// the documented /apis/v1 form answers too.
	res = e.Do(apitest.Request{Method: "POST", Path: "/apis/v1/communities/" + a + "/user-fields", Key: keyA,
		Body: map[string]any{"field": " deposit  amount ", "name": "Deposit", "type": "number"}}).Expect(t, 201)
	if res.String("data.field") != "deposit-amount" {
		t.Fatalf("spaces: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "POST", Path: base, Key: keyA,
		Body: map[string]any{"name": "Favourite Colour", "type": "select", "options": []string{"Red", "Blue"},
			"description": "Pick one", "required": true, "defaultValue": "blue"}}).Expect(t, 201)
	if res.String("data.field") != "favourite-colour" || res.String("data.defaultValue") != "Blue" || res.Get("data.required") != true ||
		res.String("data.options.1") != "Blue" || res.String("data.description") != "Pick one" {
		t.Fatalf("derived key and extras: %s", res.Body)
	}
	colourID := res.String("data._id")

	cases := []struct {
		name       string
		method     string
		path       string
		key        string
		body       any
		wantStatus int
		wantFields []string
	}{
		{"missing everything", "POST", base, keyA, map[string]any{}, 400, []string{"name", "type"}},
		{"bad type and long key", "POST", base, keyA, map[string]any{"field": string(make([]byte, 51)), "name": "X", "type": "string"}, 400, []string{"field", "type"}},
		{"bad key chars", "POST", base, keyA, map[string]any{"field": "a.b$", "name": "X", "type": "text"}, 400, []string{"field"}},
		{"underivable key", "POST", base, keyA, map[string]any{"name": "!!!", "type": "text"}, 400, []string{"field"}},
		{"select without options", "POST", base, keyA, map[string]any{"name": "S", "type": "select"}, 400, []string{"options"}},
		{"options on text, bad default", "POST", base, keyA, map[string]any{"name": "T", "type": "number", "options": []string{"a"}, "defaultValue": "ten"}, 400, []string{"options", "defaultValue"}},
		{"duplicate options", "POST", base, keyA, map[string]any{"name": "S", "type": "select", "options": []string{"a", "A"}}, 400, []string{"options"}},
		{"wrong json types", "POST", base, keyA, map[string]any{"name": 1, "type": "text", "required": "yes"}, 400, []string{"name", "required"}},
		{"duplicate key any case", "POST", base, keyA, map[string]any{"field": "USERLEVEL", "name": "Other", "type": "text"}, 409, nil},
		{"no key", "POST", base, "", map[string]any{"name": "X", "type": "text"}, 401, nil},
		{"no userFields permission", "POST", base, noPerm, map[string]any{"name": "X", "type": "text"}, 403, nil},
		{"other community's path", "POST", "/v1/communities/" + b + "/user-fields", keyA, map[string]any{"name": "X", "type": "text"}, 403, nil},
		{"get unknown", "GET", base + "/ffffffffffffffffffffffff", keyA, nil, 404, nil},
		{"get without permission", "GET", base + "/" + levelID, noPerm, nil, 403, nil},
		{"get without key", "GET", base + "/" + levelID, "", nil, 401, nil},
		{"list without permission", "GET", base, noPerm, nil, 403, nil},
		{"list bad paging", "GET", base + "?skip=-1&limit=1000", keyA, nil, 400, []string{"skip", "limit"}},
		{"update missing name and type", "PUT", base + "/" + levelID, keyA, map[string]any{"description": "x"}, 400, []string{"name", "type"}},
		{"update key change", "PUT", base + "/" + levelID, keyA, map[string]any{"field": "other", "name": "L", "type": "number"}, 400, []string{"field"}},
		{"update default no longer fits", "PUT", base + "/" + colourID, keyA, map[string]any{"name": "C", "type": "select", "options": []string{"Red", "Green"}}, 400, []string{"defaultValue"}},
		{"update unknown", "PUT", base + "/ffffffffffffffffffffffff", keyA, map[string]any{"name": "L", "type": "number"}, 404, nil},
		{"update without permission", "PUT", base + "/" + levelID, noPerm, map[string]any{"name": "L", "type": "number"}, 403, nil},
		{"delete unknown", "DELETE", base + "/nope", keyA, nil, 404, nil},
		{"delete without key", "DELETE", base + "/" + levelID, "", nil, 401, nil},
		{"delete without permission", "DELETE", base + "/" + levelID, noPerm, nil, 403, nil},
		// Tenancy: B's key reaches none of A's fields.
		{"B reads A's field on A's path", "GET", base + "/" + levelID, keyB, nil, 403, nil},
		{"B reads A's field on B's path", "GET", "/v1/communities/" + b + "/user-fields/" + levelID, keyB, nil, 404, nil},
		{"B updates A's field on B's path", "PUT", "/v1/communities/" + b + "/user-fields/" + levelID, keyB, map[string]any{"name": "X", "type": "text"}, 404, nil},
		{"B deletes A's field on B's path", "DELETE", "/v1/communities/" + b + "/user-fields/userLevel", keyB, nil, 404, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := e.Do(apitest.Request{Method: tc.method, Path: tc.path, Key: tc.key, Body: tc.body}).Expect(t, tc.wantStatus)
			if res.Get("meta.status") != "error" {
				t.Fatalf("want error envelope: %s", res.Body)
			}
			if tc.wantFields != nil && !slices.Equal(sortedCopy(res.ErrorFields()), sortedCopy(tc.wantFields)) {
				t.Fatalf("error fields %v, want %v", res.ErrorFields(), tc.wantFields)
			}
		})
	}

	// Read by _id and by key (any case).
	for _, ref := range []string{levelID, "USERlevel"} {
		res = e.Do(apitest.Request{Method: "GET", Path: base + "/" + ref, Key: keyA}).Expect(t, 200)
		if res.String("data._id") != levelID || res.String("data.type") != "numerical" {
			t.Fatalf("get %s: %s", ref, res.Body)
		}
	}

	// List with paging; B sees none of A's fields.
	res = e.Do(apitest.Request{Method: "GET", Path: base + "?limit=2", Key: keyA}).Expect(t, 200)
	if res.Get("meta.total") != float64(3) || res.Get("meta.limit") != float64(2) || res.String("data.0._id") != levelID ||
		len(res.Get("data").([]any)) != 2 {
		t.Fatalf("list: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: base + "?skip=2&limit=2", Key: keyA}).Expect(t, 200)
	if res.Get("meta.skip") != float64(2) || res.String("data.0._id") != colourID || len(res.Get("data").([]any)) != 1 {
		t.Fatalf("page 2: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/communities/" + b + "/user-fields", Key: keyB}).Expect(t, 200)
	if res.Get("meta.total") != float64(0) || len(res.Get("data").([]any)) != 0 {
		t.Fatalf("B sees A's fields: %s", res.Body)
	}
	// B may use A's keys for its own fields.
	createField(t, e, b, keyB, map[string]any{"field": "userLevel", "name": "Level", "type": "number"})

	// Update: documented message; type spelling changes within a kind; the
	// /apis/v1 form answers; absent extras are kept, null clears.
	res = e.Do(apitest.Request{Method: "PUT", Path: "/apis/v1/communities/" + a + "/user-fields/" + levelID, Key: keyA,
		Body: map[string]any{"name": "Level", "type": "number", "description": "How far along"}}).Expect(t, 200)
	if res.String("message") != "Updated user field" || res.String("data.name") != "Level" || res.String("data.type") != "number" ||
		res.String("data.field") != "userLevel" || res.String("data.description") != "How far along" {
		t.Fatalf("update: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "PUT", Path: base + "/userlevel", Key: keyA,
		Body: map[string]any{"name": "Level", "type": "numerical", "defaultValue": "3"}}).Expect(t, 200)
	if res.String("data.description") != "How far along" || res.Get("data.defaultValue") != float64(3) {
		t.Fatalf("extras kept, default typed: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "PUT", Path: base + "/" + levelID, Key: keyA,
		Body: map[string]any{"name": "Level", "type": "numerical", "description": nil, "defaultValue": nil}}).Expect(t, 200)
	if res.String("data.description") != "" || res.Get("data.defaultValue") != nil {
		t.Fatalf("null clears: %s", res.Body)
	}

	// Delete, then the key is free again.
	res = e.Do(apitest.Request{Method: "DELETE", Path: base + "/" + levelID, Key: keyA}).Expect(t, 200)
	if res.String("message") != "Deleted user field" || res.String("data._id") != levelID {
		t.Fatalf("delete: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: base + "/" + levelID, Key: keyA}).Expect(t, 404)
	e.Do(apitest.Request{Method: "DELETE", Path: base + "/" + levelID, Key: keyA}).Expect(t, 404)
	e.Do(apitest.Request{Method: "PUT", Path: base + "/" + levelID, Key: keyA, Body: map[string]any{"name": "L", "type": "number"}}).Expect(t, 404)
	again := createField(t, e, a, keyA, map[string]any{"field": "UserLevel", "name": "Level again", "type": "text"})
	res = e.Do(apitest.Request{Method: "GET", Path: base + "/userlevel", Key: keyA}).Expect(t, 200)
	if res.String("data._id") != again {
		t.Fatalf("reused key: %s", res.Body)
	}

	types := e.EventTypes(a)
	if count(types, "user.field.created") != 4 || count(types, "user.field.updated") != 3 || count(types, "user.field.deleted") != 1 {
		t.Fatalf("events: %v", types)
	}
}

func TestUserFieldTypeChangesGuardValues(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Gamma", "gamma")
	uid := fieldMember(t, e, a, "gina")
	base := "/v1/communities/" + a + "/user-fields/"
	createField(t, e, a, key, map[string]any{"field": "bio", "name": "Bio", "type": "single-line-text"})
	createField(t, e, a, key, map[string]any{"field": "tier", "name": "Tier", "type": "select", "options": []string{"Gold", "Silver"}})
	createField(t, e, a, key, map[string]any{"field": "age", "name": "Age", "type": "number"})
	hist := "/v1/communities/" + a + "/users/" + uid + "/user-field-histories"
	e.Do(apitest.Request{Method: "POST", Path: hist, Key: key, Body: map[string]any{"fieldId": "bio", "value": "hi"}}).Expect(t, 201)
	e.Do(apitest.Request{Method: "POST", Path: hist, Key: key, Body: map[string]any{"fieldId": "tier", "value": "gold"}}).Expect(t, 201)

	// With values held: text may widen, not turn into a number; a select
	// may not drop a held choice. Without values any change goes.
	e.Do(apitest.Request{Method: "PUT", Path: base + "bio", Key: key, Body: map[string]any{"name": "Bio", "type": "number"}}).Expect(t, 409)
	res := e.Do(apitest.Request{Method: "PUT", Path: base + "bio", Key: key, Body: map[string]any{"name": "Bio", "type": "multi-line-text"}}).Expect(t, 200)
	if res.String("data.type") != "multi-line-text" {
		t.Fatalf("widen: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "PUT", Path: base + "tier", Key: key,
		Body: map[string]any{"name": "Tier", "type": "select", "options": []string{"Silver"}}}).Expect(t, 409)
	e.Do(apitest.Request{Method: "PUT", Path: base + "tier", Key: key,
		Body: map[string]any{"name": "Tier", "type": "select", "options": []string{"Gold", "Bronze"}}}).Expect(t, 200)
	res = e.Do(apitest.Request{Method: "PUT", Path: base + "age", Key: key, Body: map[string]any{"name": "Age", "type": "date"}}).Expect(t, 200)
	if res.String("data.type") != "date" {
		t.Fatalf("free change: %s", res.Body)
	}
	// Values of the widened field still read back.
	vals, err := e.App.UserFields.ValuesOf(context.Background(), a, uid)
	if err != nil || vals["bio"] != "hi" || vals["tier"] != "Gold" {
		t.Fatalf("values %v, %v", vals, err)
	}
}

func TestUserFieldValuesAndHistories(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Delta", "delta")
	b, keyB := e.Community("Epsilon", "epsilon")
	_, noPerm := keyWith(t, e, a, 0, "getUserData")
	ann := fieldMember(t, e, a, "ann")
	bob := fieldMember(t, e, a, "bob")
	bea := fieldMember(t, e, b, "bea")
	level := createField(t, e, a, keyA, map[string]any{"field": "level", "name": "Level", "type": "number"})
	createField(t, e, a, keyA, map[string]any{"field": "vip", "name": "VIP", "type": "boolean"})
	createField(t, e, a, keyA, map[string]any{"field": "nick", "name": "Nick", "type": "text", "required": true})
	createField(t, e, a, keyA, map[string]any{"field": "city", "name": "City", "type": "text", "defaultValue": "Paris"})
	bField := createField(t, e, b, keyB, map[string]any{"field": "level", "name": "Level", "type": "number"})
	start := e.Clock.Now()

	post := func(userID, key string, body any) *apitest.Response {
		return e.Do(apitest.Request{Method: "POST", Path: "/v1/communities/" + a + "/users/" + userID + "/user-field-histories", Key: key, Body: body})
	}
	res := post(ann, keyA, map[string]any{"fieldId": level, "value": 3}).Expect(t, 201)
	if res.String("message") != "Create user field history successful" || res.String("data.field") != "level" ||
		res.String("data.fieldId") != level || res.String("data.userId") != ann || res.Get("data.oldValue") != nil ||
		res.Get("data.newValue") != float64(3) || res.String("data.changedBy.kind") != "apikey" || res.String("data.changedBy.id") == "" ||
		res.String("data.source") != "api" || res.String("data.communityId") != a {
		t.Fatalf("first value: %s", res.Body)
	}
	first := res.String("data._id")
	// Same value again (as a numeric string): nothing written, the row that
	// set it comes back.
	res = post(ann, keyA, map[string]any{"fieldId": "LEVEL", "value": "3"}).Expect(t, 200)
	if res.String("data._id") != first || res.String("message") != "User field value unchanged" {
		t.Fatalf("idempotent write: %s", res.Body)
	}
	// Clearing a value that was never set changes nothing and has no row.
	res = post(bob, keyA, map[string]any{"field": "vip", "value": nil}).Expect(t, 200)
	if res.Get("data") != nil {
		t.Fatalf("no-op clear: %s", res.Body)
	}
	e.Clock.Advance(time.Hour)
	mid := e.Clock.Now()
	post(ann, keyA, map[string]any{"fieldId": "level", "value": 4.5, "source": "crm-sync"}).Expect(t, 201)
	post(ann, keyA, map[string]any{"fieldId": "vip", "value": "true"}).Expect(t, 201)
	post(bob, keyA, map[string]any{"fieldId": "level", "value": 1}).Expect(t, 201)
	e.Clock.Advance(time.Hour)
	res = post(ann, keyA, map[string]any{"fieldId": "vip", "value": nil}).Expect(t, 201)
	if res.Get("data.oldValue") != true || res.Get("data.newValue") != nil {
		t.Fatalf("clear: %s", res.Body)
	}
	post(ann, keyA, map[string]any{"fieldId": "nick", "value": "annie"}).Expect(t, 201)

	vals, err := e.App.UserFields.ValuesOf(context.Background(), a, ann)
	if err != nil || len(vals) != 3 || vals["level"] != 4.5 || vals["nick"] != "annie" || vals["city"] != "Paris" {
		t.Fatalf("ann's values: %v %v", vals, err)
	}

	errCases := []struct {
		name       string
		user       string
		key        string
		body       any
		wantStatus int
		wantFields []string
	}{
		{"missing field and value", ann, keyA, map[string]any{}, 400, []string{"fieldId", "value"}},
		{"unknown field", ann, keyA, map[string]any{"fieldId": "nope", "value": 1}, 400, []string{"fieldId"}},
		{"wrong type", ann, keyA, map[string]any{"fieldId": "level", "value": "high"}, 400, []string{"value"}},
		{"required cannot be cleared", ann, keyA, map[string]any{"fieldId": "nick", "value": nil}, 400, []string{"value"}},
		{"bad source", ann, keyA, map[string]any{"fieldId": "level", "value": 1, "source": ""}, 400, []string{"source"}},
		{"unknown user", "ffffffffffffffffffffffff", keyA, map[string]any{"fieldId": "level", "value": 1}, 404, nil},
		{"other community's user", bea, keyA, map[string]any{"fieldId": "level", "value": 1}, 404, nil},
		{"other community's field", ann, keyA, map[string]any{"fieldId": bField, "value": 1}, 400, []string{"fieldId"}},
		{"no key", ann, "", map[string]any{"fieldId": "level", "value": 1}, 401, nil},
		{"no userFields permission", ann, noPerm, map[string]any{"fieldId": "level", "value": 1}, 403, nil},
		{"B's key on A's path", ann, keyB, map[string]any{"fieldId": "level", "value": 1}, 403, nil},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			res := post(tc.user, tc.key, tc.body).Expect(t, tc.wantStatus)
			if tc.wantFields != nil && !slices.Equal(sortedCopy(res.ErrorFields()), sortedCopy(tc.wantFields)) {
				t.Fatalf("error fields %v, want %v", res.ErrorFields(), tc.wantFields)
			}
		})
	}
	// B's key cannot write A's users through B's path either.
	e.Do(apitest.Request{Method: "POST", Path: "/v1/communities/" + b + "/users/" + ann + "/user-field-histories", Key: keyB,
		Body: map[string]any{"fieldId": "level", "value": 9}}).Expect(t, 404)

	// Listing: A has 6 rows (ann level x2, vip x2, nick; bob level).
	hist := func(path, key string, want int) *apitest.Response {
		t.Helper()
		res := e.Do(apitest.Request{Method: "GET", Path: path, Key: key}).Expect(t, 200)
		if res.Get("meta.total") != float64(want) {
			t.Fatalf("%s: total %v, want %d: %s", path, res.Get("meta.total"), want, res.Body)
		}
		return res
	}
	ca := "/v1/communities/" + a
	res = hist(ca+"/user-field-histories", keyA, 6)
	if res.String("data.0.field") != "nick" || res.String("data.5._id") != first {
		t.Fatalf("newest first: %s", res.Body)
	}
	res = hist(ca+"/user-field-histories?limit=2&skip=1", keyA, 6)
	if len(res.Get("data").([]any)) != 2 || res.String("data.0.field") != "vip" || res.Get("meta.skip") != float64(1) {
		t.Fatalf("paging: %s", res.Body)
	}
	hist(ca+"/user-fields/"+level+"/histories", keyA, 3)
	hist(ca+"/user-fields/LEVEL/histories", keyA, 3)
	hist(ca+"/users/"+ann+"/user-field-histories", keyA, 5)
	res = hist(ca+"/users/"+ann+"/user-fields/level/histories", keyA, 2)
	if res.Get("data.0.oldValue") != float64(3) || res.Get("data.0.newValue") != 4.5 || res.String("data.0.source") != "crm-sync" {
		t.Fatalf("chain: %s", res.Body)
	}
	hist(ca+"/user-field-histories?from="+mid.Format(time.RFC3339Nano), keyA, 5)
	hist(ca+"/user-field-histories?to="+mid.Format(time.RFC3339Nano), keyA, 1)
	hist(ca+"/user-field-histories?from="+start.Format("2006-01-02")+"&to="+mid.Add(time.Minute).Format(time.RFC3339), keyA, 4)
	// Other path forms reach the same handlers.
	hist("/apis/v1/communities/"+a+"/users/"+ann+"/user-field-histories", keyA, 5)
	hist("/communities/"+a+"/user-fields/"+level+"/histories", keyA, 3)

	listErrors := []struct {
		name       string
		path       string
		key        string
		wantStatus int
		wantFields []string
	}{
		{"bad filters and paging", ca + "/user-field-histories?from=yesterday&limit=0", keyA, 400, []string{"from", "limit"}},
		{"to before from", ca + "/user-field-histories?from=2026-01-02&to=2026-01-01", keyA, 400, []string{"to"}},
		{"unknown field", ca + "/user-fields/ffffffffffffffffffffffff/histories", keyA, 404, nil},
		{"unknown user", ca + "/users/ffffffffffffffffffffffff/user-field-histories", keyA, 404, nil},
		{"other community's user", ca + "/users/" + bea + "/user-field-histories", keyA, 404, nil},
		{"other community's field", ca + "/users/" + ann + "/user-fields/" + bField + "/histories", keyA, 404, nil},
		{"no key", ca + "/user-field-histories", "", 401, nil},
		{"no permission", ca + "/user-fields/" + level + "/histories", noPerm, 403, nil},
		{"B's key on A's path", ca + "/user-field-histories", keyB, 403, nil},
		{"B's key, A's field on B's path", "/v1/communities/" + b + "/user-fields/" + level + "/histories", keyB, 404, nil},
		{"B's key, A's user on B's path", "/v1/communities/" + b + "/users/" + ann + "/user-fields/level/histories", keyB, 404, nil},
	}
	for _, tc := range listErrors {
		t.Run(tc.name, func(t *testing.T) {
			res := e.Do(apitest.Request{Method: "GET", Path: tc.path, Key: tc.key}).Expect(t, tc.wantStatus)
			if tc.wantFields != nil && !slices.Equal(sortedCopy(res.ErrorFields()), sortedCopy(tc.wantFields)) {
				t.Fatalf("error fields %v, want %v", res.ErrorFields(), tc.wantFields)
			}
		})
	}
	// B's community history is empty of A's rows.
	hist("/v1/communities/"+b+"/user-field-histories", keyB, 0)

	// Soft delete: the history stays listed by _id, the value leaves
	// customFields, the key is reusable, and writes to it are refused.
	e.Do(apitest.Request{Method: "DELETE", Path: ca + "/user-fields/level", Key: keyA}).Expect(t, 200)
	hist(ca+"/user-fields/"+level+"/histories", keyA, 3)
	hist(ca+"/users/"+ann+"/user-fields/"+level+"/histories", keyA, 2)
	hist(ca+"/user-field-histories", keyA, 6)
	e.Do(apitest.Request{Method: "GET", Path: ca + "/user-fields/level/histories", Key: keyA}).Expect(t, 404)
	vals, err = e.App.UserFields.ValuesOf(context.Background(), a, ann)
	if _, ok := vals["level"]; err != nil || ok {
		t.Fatalf("deleted field still in values: %v %v", vals, err)
	}
	post(ann, keyA, map[string]any{"fieldId": level, "value": 5}).Expect(t, 400)
	newLevel := createField(t, e, a, keyA, map[string]any{"field": "level", "name": "Level 2", "type": "text"})
	res = post(ann, keyA, map[string]any{"fieldId": "level", "value": "ten"}).Expect(t, 201)
	if res.String("data.fieldId") != newLevel || res.Get("data.oldValue") != nil {
		t.Fatalf("reused key starts fresh: %s", res.Body)
	}

	types := e.EventTypes(a)
	if n := count(types, "user.fields.updated"); n != 7 {
		t.Fatalf("user.fields.updated events %d, want 7 (one per change): %v", n, types)
	}
}

func TestUserFieldValueTypes(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Zeta", "zeta")
	uid := fieldMember(t, e, a, "zed")
	for _, f := range []map[string]any{
		{"field": "t", "name": "T", "type": "single-line-text"},
		{"field": "m", "name": "M", "type": "multi-line-text"},
		{"field": "n", "name": "N", "type": "numerical"},
		{"field": "b", "name": "B", "type": "boolean"},
		{"field": "d", "name": "D", "type": "date"},
		{"field": "s", "name": "S", "type": "select", "options": []string{"Low", "High"}},
	} {
		createField(t, e, a, key, f)
	}
	long := func(n int) string { return string(slices.Repeat([]byte("x"), n)) }
	cases := []struct {
		field string
		value any
		want  any // nil = rejected with 400 naming value
	}{
		{"t", "plain", "plain"},
		{"t", long(1000), long(1000)},
		{"t", long(1001), nil},
		{"t", 5, nil},
		{"m", long(10000), long(10000)},
		{"m", long(10001), nil},
		{"n", 12, float64(12)},
		{"n", "-3.25", -3.25},
		{"n", "1e2", float64(100)},
		{"n", "ten", nil},
		{"n", true, nil},
		{"b", false, false},
		{"b", "TRUE", true},
		{"b", "yes", nil},
		{"b", 1, nil},
		{"d", "2026-04-28", "2026-04-28T00:00:00.000Z"},
		{"d", "2026-04-28T12:30:00.5+01:00", "2026-04-28T11:30:00.500Z"},
		{"d", "2026-13-01", nil},
		{"d", 12345, nil},
		{"s", "high", "High"},
		{"s", "Medium", nil},
		{"s", []string{"Low"}, nil},
	}
	path := "/v1/communities/" + a + "/users/" + uid + "/user-field-histories"
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%d_%s", i, tc.field), func(t *testing.T) {
			res := e.Do(apitest.Request{Method: "POST", Path: path, Key: key, Body: map[string]any{"fieldId": tc.field, "value": tc.value}})
			if tc.want == nil {
				res.Expect(t, 400)
				if !slices.Equal(res.ErrorFields(), []string{"value"}) {
					t.Fatalf("errors %v", res.ErrorFields())
				}
				return
			}
			if res.Status != http.StatusCreated && res.Status != http.StatusOK {
				t.Fatalf("status %d: %s", res.Status, res.Body)
			}
			if res.Get("data.newValue") != tc.want {
				t.Fatalf("stored %v, want %v: %s", res.Get("data.newValue"), tc.want, res.Body)
			}
			vals, err := e.App.UserFields.ValuesOf(context.Background(), a, uid)
			if err != nil || vals[tc.field] != tc.want {
				t.Fatalf("current %v, want %v (%v)", vals[tc.field], tc.want, err)
			}
		})
	}
}

func TestSetValuesTx(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Eta", "eta")
	uid := fieldMember(t, e, a, "eve")
	createField(t, e, a, key, map[string]any{"field": "score", "name": "Score", "type": "number"})
	createField(t, e, a, key, map[string]any{"field": "joined", "name": "Joined", "type": "date"})
	uf := e.App.UserFields
	ctx := context.Background()
	actor := userfield.Actor{Kind: userfield.ActorImport, ID: "job-1"}
	set := func(vals []userfield.Value) error {
		return e.App.DB.Tx(ctx, func(tx *db.Tx) error { return uf.SetValuesTx(ctx, tx, a, uid, vals, actor, "bulk-import") })
	}

	// Every offender is named at once and nothing is written.
	err := set([]userfield.Value{{FieldIDOrName: "score", Value: 1}, {FieldIDOrName: "nope", Value: 1},
		{FieldIDOrName: "joined", Value: "soon"}, {FieldIDOrName: "SCORE", Value: 2}})
	names := errFields(err)
	want := []string{"customFields[1].fieldIdorName", "customFields[2].value", "customFields[3].fieldIdorName"}
	if !slices.Equal(names, want) {
		t.Fatalf("errors %v, want %v (%v)", names, want, err)
	}
	if vals, _ := uf.ValuesOf(ctx, a, uid); len(vals) != 0 {
		t.Fatalf("written despite errors: %v", vals)
	}

	if err := set([]userfield.Value{{FieldIDOrName: "score", Value: "7"}, {FieldIDOrName: "Joined", Value: "2026-01-02"}}); err != nil {
		t.Fatal(err)
	}
	if err := set([]userfield.Value{{FieldIDOrName: "score", Value: 7}}); err != nil {
		t.Fatal(err)
	}
	vals, err := uf.ValuesOf(ctx, a, uid)
	if err != nil || vals["score"] != float64(7) || vals["joined"] != "2026-01-02T00:00:00.000Z" {
		t.Fatalf("values %v %v", vals, err)
	}
	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/communities/" + a + "/users/" + uid + "/user-field-histories", Key: key}).Expect(t, 200)
	if res.Get("meta.total") != float64(2) || res.String("data.0.changedBy.kind") != "import" || res.String("data.0.changedBy.id") != "job-1" ||
		res.String("data.0.source") != "bulk-import" {
		t.Fatalf("history: %s", res.Body)
	}
	if n := count(e.EventTypes(a), "user.fields.updated"); n != 1 {
		t.Fatalf("user.fields.updated events %d, want 1 (one per call with changes)", n)
	}
	byKey, err := uf.FieldsByKey(ctx, a)
	if err != nil || byKey["score"].Type != userfield.KindNumber || byKey["joined"].Type != userfield.KindDate || len(byKey) != 2 {
		t.Fatalf("FieldsByKey: %v %v", byKey, err)
	}

	// A field a user created names its creator as the docs show.
	f, err := uf.Create(ctx, a, userfield.Input{Name: jsonx.Some("Team"), Type: jsonx.Some("text")},
		userfield.Actor{Kind: userfield.ActorUser, ID: uid})
	if err != nil {
		t.Fatal(err)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/communities/" + a + "/user-fields/" + f.ID, Key: key}).Expect(t, 200)
	if res.String("data.creator._id") != uid || res.String("data.creator.username") != "eve" || res.Get("data.creator.id") == nil ||
		res.String("data.field") != "team" {
		t.Fatalf("creator: %s", res.Body)
	}
}

// errFields lists the field names of an Invalid error.
func errFields(err error) []string {
	var e *errs.Error
	if !errors.As(err, &e) {
		return nil
	}
	var out []string
	for _, f := range e.Fields {
		out = append(out, f.Field)
	}
	return out
}

func TestUserFieldConcurrentWrites(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Theta", "theta")
	uid := fieldMember(t, e, a, "tess")
	createField(t, e, a, key, map[string]any{"field": "score", "name": "Score", "type": "number"})
	path := "/v1/communities/" + a + "/users/" + uid + "/user-field-histories"

	// 40 writers, 8 distinct values: some writes repeat the current value
	// and must change nothing.
	const writers = 40
	statuses := make([]int, writers)
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			statuses[i] = e.Do(apitest.Request{Method: "POST", Path: path, Key: key, Body: map[string]any{"fieldId": "score", "value": i % 8}}).Status
		}(i)
	}
	wg.Wait()
	changes := 0
	for i, s := range statuses {
		switch s {
		case http.StatusCreated:
			changes++
		case http.StatusOK:
		default:
			t.Fatalf("writer %d: status %d", i, s)
		}
	}
	if changes < 8 {
		t.Fatalf("%d changes, want at least one per distinct value", changes)
	}

	res := e.Do(apitest.Request{Method: "GET", Path: path + "?limit=100", Key: key}).Expect(t, 200)
	if res.Get("meta.total") != float64(changes) {
		t.Fatalf("history rows %v, want %d changes", res.Get("meta.total"), changes)
	}
	rows, _ := res.Get("data").([]any)
	slices.Reverse(rows) // oldest first
	var prev any
	for i, r := range rows {
		m := r.(map[string]any)
		if m["oldValue"] != prev {
			t.Fatalf("row %d: oldValue %v, previous newValue %v", i, m["oldValue"], prev)
		}
		if m["oldValue"] == m["newValue"] {
			t.Fatalf("row %d records no change: %v", i, m)
		}
		prev = m["newValue"]
	}
	vals, err := e.App.UserFields.ValuesOf(context.Background(), a, uid)
	if err != nil || vals["score"] != prev {
		t.Fatalf("current value %v, last history newValue %v (%v)", vals["score"], prev, err)
	}
	var stored int
	if err := e.App.DB.QueryRow(context.Background(), "SELECT COUNT(*) FROM user_field_values WHERE user_id = ?", uid).Scan(&stored); err != nil || stored != 1 {
		t.Fatalf("value rows %d (%v), want exactly one", stored, err)
	}
}
