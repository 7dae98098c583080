package httpapi_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/user"
)

// legacyKey sends key the legacy way, in x-api-key.
func legacyKey(key string) map[string]string { return map[string]string{"x-api-key": key} }

// roleTitles lists the titles in a body array of roles at path.
func roleTitles(res *apitest.Response, path string) []string {
	list, _ := res.Get(path).([]any)
	out := []string{}
	for _, it := range list {
		out = append(out, it.(map[string]any)["title"].(string))
	}
	return out
}

func TestRoleCreateBothShapes(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Roles A", "roles-a")

	// Older edition: snake_case maps, x-api-key, /api/v1 prefix.
	res := e.Do(apitest.Request{Method: "POST", Path: "/api/v1/roles", Headers: legacyKey(key), Body: map[string]any{
		"class": "red", "title": "Manager 2", "order": 1, "billable": true,
		"server_permissions": map[string]any{"server_administrator": true, "allow_dm": true, "create_invite": true,
			"warn_members": true, "suspend_members": true, "ban_members": true, "broadcast_messages": true, "overwrite_language": true},
		"channel_permissions": map[string]any{"post_messages": true, "attach_files": true, "allow_mentions": true,
			"manage_messages": true, "pinable": true, "share_links": true, "share_Attachments": true},
	}}).Expect(t, 201)
	if res.Get("meta.success") != true || res.String("meta.message") != "Role created successfully" {
		t.Fatalf("envelope: %s", res.Body)
	}
	if res.String("body.title") != "Manager 2" || res.String("body.class") != "red" || res.Get("body.order") != float64(1) ||
		res.Get("body.billable") != true || res.String("body.serverId") != a || res.Get("body.__v") != float64(0) {
		t.Fatalf("role: %s", res.Body)
	}
	for path, want := range map[string]any{
		"body.serverPermissions.overwrite_language_settings": true, "body.serverPermissions.server_administrator": true,
		"body.serverPermissions.kick_members": false, "body.serverPermissions.overwrite_language": nil,
		"body.channelPermissions.share_Attachments": true, "body.channelPermissions.pinable": true,
		"body.channelPermissions.delete_messages": false,
	} {
		if res.Get(path) != want {
			t.Fatalf("%s = %v, want %v: %s", path, res.Get(path), want, res.Body)
		}
	}

	// Newer edition: camelCase maps, Bearer, /v1.
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/roles", Key: key, Body: map[string]any{
		"title": "Moderator", "description": "Role with permissions to moderate the server", "class": "blue", "order": 2,
		"serverPermissions":  map[string]any{"kick_members": true, "manage_roles": true, "overwrite_language_settings": true},
		"channelPermissions": map[string]any{"delete_messages": true, "post_analysis": true},
	}}).Expect(t, 201)
	moderator := res.String("body._id")
	if res.Get("body.serverPermissions.kick_members") != true || res.Get("body.serverPermissions.allow_dm") != false ||
		res.Get("body.channelPermissions.delete_messages") != true || res.String("body.description") == "" {
		t.Fatalf("camelCase role: %s", res.Body)
	}

	// The list holds @all too, highest order first, paged.
	list := e.Do(apitest.Request{Method: "GET", Path: "/v1/roles", Key: key}).Expect(t, 200)
	if got := roleTitles(list, "body"); !slices.Equal(got, []string{"Moderator", "Manager 2", "@all"}) {
		t.Fatalf("list order %v", got)
	}
	if list.Get("meta.total") != float64(3) || list.String("meta.message") != "Roles fetched successfully" {
		t.Fatalf("list meta: %s", list.Body)
	}
	page := e.Do(apitest.Request{Method: "GET", Path: "/roles?skip=1&limit=1", Headers: legacyKey(key)}).Expect(t, 200)
	if got := roleTitles(page, "body"); !slices.Equal(got, []string{"Manager 2"}) || page.Get("meta.total") != float64(3) {
		t.Fatalf("page: %s", page.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/roles?limit=0", Key: key}).Expect(t, 400)

	cases := []struct {
		name       string
		body       any
		wantStatus int
		wantFields []string
	}{
		{"missing title", map[string]any{"order": 1}, 400, []string{"title"}},
		{"bad fields", map[string]any{"title": " ", "order": -1, "class": strings.Repeat("c", 51)}, 400, []string{"title", "order", "class"}},
		{"wrong types", map[string]any{"title": 5, "order": 1.5, "billable": "yes"}, 400, []string{"title", "order", "billable"}},
		{"unknown permission keys", map[string]any{"title": "X", "server_permissions": map[string]any{"fly": true, "post_messages": true},
			"channelPermissions": map[string]any{"teleport": false}},
			400, []string{"server_permissions.fly", "server_permissions.post_messages", "channelPermissions.teleport"}},
		{"non-boolean permission", map[string]any{"title": "X", "channelPermissions": map[string]any{"post_messages": "yes", "pinable": 1}},
			400, []string{"channelPermissions.pinable", "channelPermissions.post_messages"}},
		{"both shapes", map[string]any{"title": "X", "server_permissions": map[string]any{}, "serverPermissions": map[string]any{}},
			400, []string{"server_permissions"}},
		{"permissions not an object", map[string]any{"title": "X", "serverPermissions": []any{true}}, 400, []string{"serverPermissions"}},
		{"duplicate title any case", map[string]any{"title": "  manager   2 "}, 409, nil},
		{"@all is taken", map[string]any{"title": "@ALL"}, 409, nil},
		{"malformed json", "{nope", 400, []string{"body"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := e.Do(apitest.Request{Method: "POST", Path: "/v1/roles", Key: key, Body: tc.body}).Expect(t, tc.wantStatus)
			if res.Get("meta.success") != false || res.Get("body") != nil {
				t.Fatalf("want legacy error body: %s", res.Body)
			}
			if tc.wantFields != nil && !slices.Equal(sortedCopy(res.ErrorFields()), sortedCopy(tc.wantFields)) {
				t.Fatalf("error fields %v, want %v", res.ErrorFields(), tc.wantFields)
			}
		})
	}
	// Nothing was half-written.
	list = e.Do(apitest.Request{Method: "GET", Path: "/v1/roles", Key: key}).Expect(t, 200)
	if list.Get("meta.total") != float64(3) {
		t.Fatalf("failed creates wrote roles: %s", list.Body)
	}

	// Events, in the order of the changes.
	apitest.WaitFor(t, "role events", func() bool {
		res := e.Do(apitest.Request{Method: "GET", Path: "/v1/events?type=role.created", Key: key}).Expect(t, 200)
		list, _ := res.Get("data").([]any)
		return len(list) == 3 && res.String("data.0.payload.title") == "@all" && res.String("data.2.payload._id") == moderator
	})
}

func TestRoleUpdateAndDelete(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Roles B", "roles-b")
	created := e.Do(apitest.Request{Method: "POST", Path: "/v1/roles", Key: key, Body: map[string]any{
		"title": "VIP", "order": 3, "class": "gold", "serverPermissions": map[string]any{"allow_dm": true, "ban_members": true},
	}}).Expect(t, 201)
	id := created.String("body._id")
	e.Do(apitest.Request{Method: "POST", Path: "/v1/roles", Key: key, Body: map[string]any{"title": "Other"}}).Expect(t, 201)

	// Partial update, older edition over x-api-key: only the keys sent change.
	res := e.Do(apitest.Request{Method: "PUT", Path: "/api/v1/roles/" + id, Headers: legacyKey(key), Body: map[string]any{
		"class": "blue", "billable": false, "server_permissions": map[string]any{"ban_members": false, "overwrite_language": true},
	}}).Expect(t, 200)
	if res.String("meta.message") != "Role updated successfully" || res.String("body.title") != "VIP" || res.Get("body.order") != float64(3) ||
		res.String("body.class") != "blue" || res.Get("body.__v") != float64(1) ||
		res.Get("body.serverPermissions.allow_dm") != true || res.Get("body.serverPermissions.ban_members") != false ||
		res.Get("body.serverPermissions.overwrite_language_settings") != true {
		t.Fatalf("partial update: %s", res.Body)
	}
	// Newer edition over Bearer, uppercase id accepted.
	res = e.Do(apitest.Request{Method: "PUT", Path: "/v1/roles/" + upper(id), Key: key, Body: map[string]any{
		"title": "VIP Plus", "description": "Top tier", "order": 4, "channelPermissions": map[string]any{"view_message_history": true},
	}}).Expect(t, 200)
	if res.String("body.title") != "VIP Plus" || res.String("body.description") != "Top tier" || res.Get("body.__v") != float64(2) ||
		res.Get("body.channelPermissions.view_message_history") != true || res.String("body.createdAt") != created.String("body.createdAt") {
		t.Fatalf("update: %s", res.Body)
	}

	for _, tc := range []struct {
		name, path string
		body       any
		want       int
		fields     []string
	}{
		{"title clash", "/v1/roles/" + id, map[string]any{"title": "other"}, 409, nil},
		{"bad values", "/v1/roles/" + id, map[string]any{"title": "", "order": -2, "serverPermissions": map[string]any{"x": true}},
			400, []string{"title", "order", "serverPermissions.x"}},
		{"null title", "/v1/roles/" + id, map[string]any{"title": nil}, 400, []string{"title"}},
		{"bad id", "/v1/roles/not-an-id", map[string]any{"title": "Y"}, 400, []string{"roleId"}},
		{"unknown id", "/v1/roles/ffffffffffffffffffffffff", map[string]any{"title": "Y"}, 404, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := e.Do(apitest.Request{Method: "PUT", Path: tc.path, Key: key, Body: tc.body}).Expect(t, tc.want)
			if tc.fields != nil && !slices.Equal(sortedCopy(res.ErrorFields()), sortedCopy(tc.fields)) {
				t.Fatalf("error fields %v, want %v", res.ErrorFields(), tc.fields)
			}
		})
	}
	got := e.Do(apitest.Request{Method: "GET", Path: "/v1/roles", Key: key}).Expect(t, 200)
	if got.String("body.0.title") != "VIP Plus" || got.Get("body.0.__v") != float64(2) {
		t.Fatalf("failed updates changed the role: %s", got.Body)
	}

	// Delete takes the role from its members (FK cascade).
	u := e.Member(a, "dora", user.MemberOptions{Joined: true})
	e.Do(apitest.Request{Method: "POST", Path: "/v1/roles/" + id + "/add", Key: key, Body: map[string]any{"userId": u.NumID}}).Expect(t, 200)
	del := e.Do(apitest.Request{Method: "DELETE", Path: "/v1/roles/" + id, Key: key}).Expect(t, 200)
	if del.String("meta.message") != "Role deleted successfully" || del.String("body._id") != id {
		t.Fatalf("delete: %s", del.Body)
	}
	held := e.Do(apitest.Request{Method: "GET", Path: "/v1/roles/" + strconv.FormatInt(u.NumID, 10), Key: key}).Expect(t, 200)
	if titles := roleTitles(held, "body"); !slices.Equal(titles, []string{"@all"}) {
		t.Fatalf("deleted role still held: %v", titles)
	}
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/roles/" + id, Key: key}).Expect(t, 404)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/roles/xyz", Key: key}).Expect(t, 400)
	apitest.WaitFor(t, "update and delete events", func() bool {
		up := e.Do(apitest.Request{Method: "GET", Path: "/v1/events?type=role.updated", Key: key}).Expect(t, 200)
		gone := e.Do(apitest.Request{Method: "GET", Path: "/v1/events?type=role.deleted", Key: key}).Expect(t, 200)
		ups, _ := up.Get("data").([]any)
		dels, _ := gone.Get("data").([]any)
		return len(ups) == 2 && len(dels) == 1 && gone.String("data.0.payload._id") == id
	})
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func TestRoleAuth(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Roles C", "roles-c")
	_, readOnly := keyWith(t, e, a, 0, "getRoles")
	_, noRoles := keyWith(t, e, a, 0, "appearance")
	u := e.Member(a, "erin", user.MemberOptions{Joined: true})
	id := e.Do(apitest.Request{Method: "POST", Path: "/v1/roles", Key: key, Body: map[string]any{"title": "Guard"}}).Expect(t, 201).String("body._id")
	uid := strconv.FormatInt(u.NumID, 10)
	assign := map[string]any{"userId": u.ID}

	type call struct {
		method, path string
		body         any
	}
	reads := []call{{"GET", "/v1/roles", nil}, {"GET", "/v1/roles/" + uid, nil}}
	writes := []call{
		{"POST", "/v1/roles", map[string]any{"title": "New"}},
		{"PUT", "/v1/roles/" + id, map[string]any{"class": "x"}},
		{"DELETE", "/v1/roles/" + id, nil},
		{"POST", "/v1/roles/" + id + "/add", assign},
		{"POST", "/v1/roles/" + id + "/remove", assign},
	}
	for _, c := range append(slices.Clone(reads), writes...) {
		e.Do(apitest.Request{Method: c.method, Path: c.path, Body: c.body}).Expect(t, 401)
		e.Do(apitest.Request{Method: c.method, Path: c.path, Body: c.body, Headers: legacyKey("0123")}).Expect(t, 401)
		e.Do(apitest.Request{Method: c.method, Path: c.path, Body: c.body, Key: noRoles}).Expect(t, 403)
		e.Do(apitest.Request{Method: c.method, Path: c.path, Body: c.body, Headers: legacyKey(noRoles)}).Expect(t, 403)
		e.Do(apitest.Request{Method: c.method, Path: c.path, Body: c.body, Key: e.AdminKey}).Expect(t, 403)
	}
	for _, c := range reads {
		e.Do(apitest.Request{Method: c.method, Path: c.path, Key: readOnly}).Expect(t, 200)
		e.Do(apitest.Request{Method: c.method, Path: c.path, Headers: legacyKey(readOnly)}).Expect(t, 200)
	}
	for _, c := range writes {
		res := e.Do(apitest.Request{Method: c.method, Path: c.path, Body: c.body, Headers: legacyKey(readOnly)}).Expect(t, 403)
		if res.Get("meta.success") != false {
			t.Fatalf("legacy error body: %s", res.Body)
		}
	}
}

func TestEveryoneRole(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Roles D", "roles-d")
	u := e.Member(a, "finn", user.MemberOptions{Joined: true})

	list := e.Do(apitest.Request{Method: "GET", Path: "/v1/roles", Key: key}).Expect(t, 200)
	if list.Get("meta.total") != float64(1) || list.String("body.0.title") != "@all" || list.Get("body.0.order") != float64(0) {
		t.Fatalf("@all missing: %s", list.Body)
	}
	all := list.String("body.0._id")
	for path, want := range map[string]bool{
		"serverPermissions.allow_dm": true, "serverPermissions.server_administrator": false, "serverPermissions.ban_members": false,
		"channelPermissions.post_messages": true, "channelPermissions.attach_files": true, "channelPermissions.allow_mentions": true,
		"channelPermissions.view_message_history": true, "channelPermissions.manage_messages": false,
	} {
		if list.Get("body.0."+path) != want {
			t.Fatalf("@all default %s = %v, want %v", path, list.Get("body.0."+path), want)
		}
	}
	// Listing again does not make a second @all.
	if again := e.Do(apitest.Request{Method: "GET", Path: "/v1/roles", Key: key}).Expect(t, 200); again.String("body.0._id") != all || again.Get("meta.total") != float64(1) {
		t.Fatalf("second @all: %s", again.Body)
	}

	res := e.Do(apitest.Request{Method: "PUT", Path: "/v1/roles/" + all, Key: key, Body: map[string]any{"title": "everyone", "order": 5}}).Expect(t, 400)
	if !slices.Equal(sortedCopy(res.ErrorFields()), []string{"order", "title"}) {
		t.Fatalf("rename @all: %v", res.ErrorFields())
	}
	res = e.Do(apitest.Request{Method: "PUT", Path: "/v1/roles/" + all, Key: key, Body: map[string]any{
		"title": "@all", "description": "Everyone", "channelPermissions": map[string]any{"post_messages": false},
	}}).Expect(t, 200)
	if res.Get("body.channelPermissions.post_messages") != false || res.String("body.description") != "Everyone" {
		t.Fatalf("edit @all: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/roles/" + all, Key: key}).Expect(t, 409)

	add := e.Do(apitest.Request{Method: "POST", Path: "/v1/roles/" + all + "/add", Key: key, Body: map[string]any{"userId": u.NumID}}).Expect(t, 200)
	if add.String("meta.message") != "User already has this role" || !slices.Equal(roleTitles(add, "body.roles"), []string{"@all"}) {
		t.Fatalf("add @all: %s", add.Body)
	}
	rm := e.Do(apitest.Request{Method: "POST", Path: "/v1/roles/" + all + "/remove", Key: key, Body: map[string]any{"userId": u.NumID}}).Expect(t, 400)
	if !slices.Equal(rm.ErrorFields(), []string{"roleId"}) {
		t.Fatalf("remove @all: %s", rm.Body)
	}
}

func TestRoleAssignmentAndUserRoles(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Roles E", "roles-e")
	b, keyB := e.Community("Roles F", "roles-f")
	alice := e.Member(a, "alice", user.MemberOptions{Joined: true})
	gone := e.Member(a, "gone", user.MemberOptions{Joined: true})
	bob := e.Member(b, "bob", user.MemberOptions{Joined: true})
	if _, err := e.App.DB.Exec(context.Background(), "UPDATE members SET deleted_at = ? WHERE user_id = ?", e.Clock.Now().UnixMilli(), gone.ID); err != nil {
		t.Fatal(err)
	}
	mk := func(key, title string, order int) string {
		return e.Do(apitest.Request{Method: "POST", Path: "/v1/roles", Key: key, Body: map[string]any{"title": title, "order": order}}).
			Expect(t, 201).String("body._id")
	}
	low, high, same := mk(keyA, "Low", 1), mk(keyA, "High", 9), mk(keyA, "Also Low", 1)
	roleB := mk(keyB, "B Role", 1)
	aliceNum := strconv.FormatInt(alice.NumID, 10)

	// Numeric id as a number, as a string, and the _id all name alice.
	for i, ref := range []any{alice.NumID, aliceNum, alice.ID} {
		role := []string{low, high, same}[i]
		res := e.Do(apitest.Request{Method: "POST", Path: "/v1/roles/" + role + "/add", Key: keyA, Body: map[string]any{"userId": ref}}).Expect(t, 200)
		if res.String("meta.message") != "Role added to user successfully" || res.String("body.userId") != alice.ID ||
			res.Get("body.id") != float64(alice.NumID) || res.String("body.roleId") != role {
			t.Fatalf("add by %v: %s", ref, res.Body)
		}
	}
	again := e.Do(apitest.Request{Method: "POST", Path: "/v1/roles/" + low + "/add", Key: keyA, Body: map[string]any{"userId": aliceNum}}).Expect(t, 200)
	if again.String("meta.message") != "User already has this role" {
		t.Fatalf("second add: %s", again.Body)
	}

	// RO5 at every documented path form, by numeric id and by _id.
	want := []string{"High", "Low", "Also Low", "@all"}
	for _, path := range []string{"/v1/roles/" + aliceNum, "/api/v1/roles/" + aliceNum, "/roles/" + aliceNum, "/v1/roles/" + alice.ID, "/roles/" + upper(alice.ID)} {
		res := e.Do(apitest.Request{Method: "GET", Path: path, Headers: legacyKey(keyA)}).Expect(t, 200)
		if res.String("meta.message") != "User roles fetched successfully" || res.String("meta.devMessage") != "User roles fetched successfully" {
			t.Fatalf("%s envelope: %s", path, res.Body)
		}
		if got := roleTitles(res, "body"); !slices.Equal(got, want) {
			t.Fatalf("%s roles %v, want %v", path, got, want)
		}
	}
	titles, highest, err := e.App.Roles.MemberRoleTitles(context.Background(), a, alice.ID)
	if err != nil || highest != "High" || !slices.Equal(titles, want) {
		t.Fatalf("MemberRoleTitles = %v %q %v", titles, highest, err)
	}

	rm := e.Do(apitest.Request{Method: "POST", Path: "/v1/roles/" + low + "/remove", Key: keyA, Body: map[string]any{"userId": alice.NumID}}).Expect(t, 200)
	if rm.String("meta.message") != "Role removed from user successfully" || slices.Contains(roleTitles(rm, "body.roles"), "Low") {
		t.Fatalf("remove: %s", rm.Body)
	}
	rm = e.Do(apitest.Request{Method: "POST", Path: "/v1/roles/" + low + "/remove", Key: keyA, Body: map[string]any{"userId": alice.NumID}}).Expect(t, 200)
	if rm.String("meta.message") != "User does not have this role" {
		t.Fatalf("second remove: %s", rm.Body)
	}

	for _, tc := range []struct {
		name, method, path, key string
		body                    any
		want                    int
		fields                  []string
	}{
		{"RO5 unknown user", "GET", "/v1/roles/999999", keyA, nil, 404, nil},
		{"RO5 deleted member", "GET", "/v1/roles/" + gone.ID, keyA, nil, 404, nil},
		{"RO5 other community's user", "GET", "/v1/roles/" + strconv.FormatInt(bob.NumID, 10), keyA, nil, 404, nil},
		{"RO5 B's key on A's user", "GET", "/v1/roles/" + aliceNum, keyB, nil, 404, nil},
		{"RO5 malformed id", "GET", "/v1/roles/al!ce", keyA, nil, 400, []string{"userId"}},
		{"add unknown user", "POST", "/v1/roles/" + low + "/add", keyA, map[string]any{"userId": 999999}, 404, nil},
		{"add deleted member", "POST", "/v1/roles/" + low + "/add", keyA, map[string]any{"userId": gone.ID}, 404, nil},
		{"add to B's user", "POST", "/v1/roles/" + low + "/add", keyA, map[string]any{"userId": bob.ID}, 404, nil},
		{"B assigns A's role to B's user", "POST", "/v1/roles/" + low + "/add", keyB, map[string]any{"userId": bob.ID}, 404, nil},
		{"B assigns its role to A's user", "POST", "/v1/roles/" + roleB + "/add", keyB, map[string]any{"userId": alice.ID}, 404, nil},
		{"B removes A's role", "POST", "/v1/roles/" + high + "/remove", keyB, map[string]any{"userId": alice.ID}, 404, nil},
		{"B edits A's role", "PUT", "/v1/roles/" + high, keyB, map[string]any{"title": "Mine"}, 404, nil},
		{"B deletes A's role", "DELETE", "/v1/roles/" + high, keyB, nil, 404, nil},
		{"missing userId", "POST", "/v1/roles/" + low + "/add", keyA, map[string]any{}, 400, []string{"userId"}},
		{"boolean userId", "POST", "/v1/roles/" + low + "/add", keyA, map[string]any{"userId": true}, 400, []string{"userId"}},
		{"malformed userId", "POST", "/v1/roles/" + low + "/remove", keyA, map[string]any{"userId": "bob smith"}, 400, []string{"userId"}},
		{"bad role id", "POST", "/v1/roles/abc/add", keyA, map[string]any{"userId": alice.ID}, 400, []string{"roleId"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := e.Do(apitest.Request{Method: tc.method, Path: tc.path, Key: tc.key, Body: tc.body}).Expect(t, tc.want)
			if tc.fields != nil && !slices.Equal(res.ErrorFields(), tc.fields) {
				t.Fatalf("error fields %v, want %v", res.ErrorFields(), tc.fields)
			}
		})
	}
	// B's key lists only B's roles, and A's role survived B's attempts.
	listB := e.Do(apitest.Request{Method: "GET", Path: "/v1/roles", Key: keyB}).Expect(t, 200)
	if got := roleTitles(listB, "body"); !slices.Equal(got, []string{"B Role", "@all"}) {
		t.Fatalf("B sees %v", got)
	}
	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/roles/" + aliceNum, Key: keyA}).Expect(t, 200)
	if got := roleTitles(res, "body"); !slices.Equal(got, []string{"High", "Also Low", "@all"}) {
		t.Fatalf("alice after tenancy attempts: %v", got)
	}

	apitest.WaitFor(t, "assignment events", func() bool {
		added := e.Do(apitest.Request{Method: "GET", Path: "/v1/events?type=member.role.added", Key: keyA}).Expect(t, 200)
		removed := e.Do(apitest.Request{Method: "GET", Path: "/v1/events?type=member.role.removed", Key: keyA}).Expect(t, 200)
		adds, _ := added.Get("data").([]any)
		rms, _ := removed.Get("data").([]any)
		return len(adds) == 3 && len(rms) == 1 && removed.String("data.0.payload.roleId") == low &&
			removed.String("data.0.payload.userId") == alice.ID
	})
}

// TestRoleAssignmentConcurrent adds and removes the same role of the same
// member from many goroutines: every request succeeds and the member ends
// holding it at most once, as the answers say.
func TestRoleAssignmentConcurrent(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Roles G", "roles-g")
	u := e.Member(a, "gus", user.MemberOptions{Joined: true})
	role := e.Do(apitest.Request{Method: "POST", Path: "/v1/roles", Key: key, Body: map[string]any{"title": "Busy"}}).Expect(t, 201).String("body._id")

	var wg sync.WaitGroup
	statuses := make([]int, 30)
	for i := range statuses {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			action := "add"
			if i%2 == 1 {
				action = "remove"
			}
			res := e.Do(apitest.Request{Method: "POST", Path: fmt.Sprintf("/v1/roles/%s/%s", role, action), Key: key,
				Body: map[string]any{"userId": u.NumID}})
			statuses[i] = res.Status
		}(i)
	}
	wg.Wait()
	for i, st := range statuses {
		if st != 200 {
			t.Fatalf("request %d answered %d", i, st)
		}
	}
	var rows int
	if err := e.App.DB.QueryRow(context.Background(), "SELECT COUNT(*) FROM member_roles WHERE user_id = ? AND role_id = ?", u.ID, role).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/roles/" + u.ID, Key: key}).Expect(t, 200)
	holds := slices.Contains(roleTitles(res, "body"), "Busy")
	if rows > 1 || holds != (rows == 1) {
		t.Fatalf("%d assignment rows, RO5 says held=%v", rows, holds)
	}
	// The feed's added and removed events alternate and match the end state.
	apitest.WaitFor(t, "assignment events", func() bool {
		feed := e.Do(apitest.Request{Method: "GET", Path: "/v1/events?limit=200", Key: key}).Expect(t, 200)
		list, _ := feed.Get("data").([]any)
		held := false
		for _, it := range list {
			switch it.(map[string]any)["type"] {
			case "member.role.added":
				if held {
					return false
				}
				held = true
			case "member.role.removed":
				if !held {
					return false
				}
				held = false
			}
		}
		return held == holds
	})
}
