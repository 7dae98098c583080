package httpapi_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/user"
)

// filterIDs runs a filter and returns the usernames it matched, in order.
func filterNames(t *testing.T, e *apitest.Env, key string, body map[string]any) ([]string, *apitest.Response) {
	t.Helper()
	if _, ok := body["fields"]; !ok {
		body["fields"] = []string{"username"}
	}
	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/users/filter", Key: key, Body: body}).Expect(t, 200)
	list, _ := res.Get("data.users").([]any)
	var out []string
	for _, it := range list {
		out = append(out, fmt.Sprint(it.(map[string]any)["username"]))
	}
	return out, res
}

func TestFilterUsers(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	_, keyB := e.Community("Beta", "beta")
	_, noRead := keyWith(t, e, a, 0, "createUser")
	day := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	ids := map[string]string{}
	for i, name := range []string{"ann", "bob", "cat", "dan"} {
		e.Clock.Set(day.AddDate(0, 0, i)) // joined on the 10th, 11th, 12th and 13th
		ids[name] = createUser(t, e, keyA, name)
	}
	createUser(t, e, keyB, "eve")
	addCustomField(t, e, a, "level", "number", map[string]string{ids["ann"]: "1", ids["bob"]: "5", ids["cat"]: "9"})
	addCustomField(t, e, a, "tier", "select", map[string]string{ids["ann"]: "gold", ids["bob"]: "silver", ids["dan"]: "gold"})
	addCustomField(t, e, a, "vip", "boolean", map[string]string{ids["ann"]: "true", ids["bob"]: "false"})
	addCustomField(t, e, a, "birthday", "date", map[string]string{ids["cat"]: "1990-05-01", ids["dan"]: "2001-01-01"})
	if _, err := e.App.Users.RecordVisit(context.Background(), a, ids["bob"]); err != nil {
		t.Fatal(err)
	}

	all := []string{"ann", "bob", "cat", "dan"}
	cases := []struct {
		name   string
		filter map[string]any
		want   []string
	}{
		{"no filter", nil, all},
		{"exact text", map[string]any{"first_name": "First cat"}, []string{"cat"}},
		{"email any case", map[string]any{"email": "BOB@example.com"}, []string{"bob"}},
		{"join date day range", map[string]any{"join_date": map[string]any{"gte": "2025-03-11", "lte": "2025-03-12"}}, []string{"bob", "cat"}},
		{"join date exact day", map[string]any{"join_date": "2025-03-13"}, []string{"dan"}},
		{"join date timestamp", map[string]any{"join_date": map[string]any{"gte": "2025-03-12T12:00:00Z"}}, []string{"cat", "dan"}},
		{"visit count", map[string]any{"visit_count": map[string]any{"gte": 1}}, []string{"bob"}},
		{"xp zero for all", map[string]any{"xp": 0}, all},
		{"custom number range", map[string]any{"level": map[string]any{"gte": 2, "lte": 9}}, []string{"bob", "cat"}},
		{"custom select", map[string]any{"tier": "gold"}, []string{"ann", "dan"}},
		{"custom boolean", map[string]any{"vip": true}, []string{"ann"}},
		{"custom date", map[string]any{"birthday": map[string]any{"lte": "2000-12-31"}}, []string{"cat"}},
		{"combined", map[string]any{"tier": "gold", "join_date": map[string]any{"lte": "2025-03-10"}}, []string{"ann"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]any{}
			if tc.filter != nil {
				body["filter"] = tc.filter
			}
			got, _ := filterNames(t, e, keyA, body)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}

	// Projection: default and custom fields, _id always.
	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/users/filter", Key: keyA, Body: map[string]any{
		"fields": []string{"email", "join_date", "first_name", "last_name", "level", "tier", "id", "xp"},
		"filter": map[string]any{"username": "ann"}}}).Expect(t, 200)
	if res.Get("status") != "success" || res.String("data.users.0._id") != ids["ann"] || res.String("data.users.0.email") != "ann@example.com" ||
		res.String("data.users.0.join_date") != "2025-03-10T12:00:00.000Z" || res.Get("data.users.0.level") != float64(1) ||
		res.String("data.users.0.tier") != "gold" || res.Get("data.users.0.xp") != float64(0) || res.Get("data.users.0.username") != nil ||
		res.Get("data.page_size") != float64(200) || res.Get("data.next_cursor") != nil {
		t.Fatalf("projection: %s", res.Body)
	}
	// No fields: every default field.
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/filter", Key: keyA, Body: map[string]any{"filter": map[string]any{"username": "dan"}}}).Expect(t, 200)
	row, _ := res.Get("data.users.0").(map[string]any)
	if len(row) != 13 || row["level"] != nil {
		t.Fatalf("default projection: %s", res.Body)
	}

	// Tenancy: B's key sees only B's users.
	if got, _ := filterNames(t, e, keyB, map[string]any{}); !slices.Equal(got, []string{"eve"}) {
		t.Fatalf("B sees %v", got)
	}
	// Deleted members vanish and come back on restore.
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/manage", Key: keyA, Body: map[string]any{"action": "delete", "user": "bob"}}).Expect(t, 200)
	if got, _ := filterNames(t, e, keyA, map[string]any{}); !slices.Equal(got, []string{"ann", "cat", "dan"}) {
		t.Fatalf("after delete %v", got)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/manage", Key: keyA, Body: map[string]any{"action": "restore", "user": "bob"}}).Expect(t, 200)
	if got, _ := filterNames(t, e, keyA, map[string]any{}); !slices.Equal(got, all) {
		t.Fatalf("after restore %v", got)
	}

	errCases := []struct {
		name       string
		key        string
		body       any
		status     int
		wantFields []string
	}{
		{"unknown fields", keyA, map[string]any{"fields": []string{"email", "shoe_size"}, "filter": map[string]any{"hat": 1}}, 400,
			[]string{"fields.1", "filter.hat"}},
		{"cursor and page", keyA, map[string]any{"cursor": "x", "page": 1}, 400, []string{"cursor", "page"}},
		{"bad cursor and values", keyA, map[string]any{"cursor": "nope", "filter": map[string]any{
			"visit_count": "many", "join_date": map[string]any{"after": "2025"}, "first_name": map[string]any{"gte": "a"},
			"vip": "maybe", "email": nil}}, 400,
			[]string{"cursor", "filter.email", "filter.first_name", "filter.join_date", "filter.vip", "filter.visit_count"}},
		{"page zero", keyA, map[string]any{"page": 0}, 400, []string{"page"}},
		{"wrong types", keyA, map[string]any{"fields": "email", "filter": []int{1}, "page": "one"}, 400, []string{"fields", "filter", "page"}},
		{"no key", "", map[string]any{}, 401, nil},
		{"key without getUserData", noRead, map[string]any{}, 403, nil},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			expectS(t, e.Do(apitest.Request{Method: "POST", Path: "/v1/users/filter", Key: tc.key, Body: tc.body}), tc.status, tc.wantFields)
		})
	}
}

func TestFilterUsersPaging(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Alpha", "alpha")
	ctx := context.Background()
	const n = 450
	err := e.App.DB.Tx(ctx, func(tx *db.Tx) error {
		for i := 0; i < n; i++ {
			u, err := e.App.Users.CreateAccountTx(ctx, tx, user.NewAccount{Email: fmt.Sprintf("m%03d@example.com", i), Username: fmt.Sprintf("m%03d", i)})
			if err != nil {
				return err
			}
			if _, err := e.App.Users.AddMemberTx(ctx, tx, a, u, user.MemberOptions{Joined: true}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Cursor paging visits every member once.
	seen := map[string]bool{}
	var cursor any
	pages := 0
	for {
		body := map[string]any{}
		if cursor != nil {
			body["cursor"] = cursor
		}
		got, res := filterNames(t, e, key, body)
		pages++
		for _, g := range got {
			if seen[g] {
				t.Fatalf("%s seen twice", g)
			}
			seen[g] = true
		}
		cursor = res.Get("data.next_cursor")
		if cursor == nil {
			if len(got) != n%200 {
				t.Fatalf("last page has %d", len(got))
			}
			break
		}
		if len(got) != 200 || pages > 3 {
			t.Fatalf("page %d has %d", pages, len(got))
		}
	}
	if len(seen) != n || pages != 3 {
		t.Fatalf("cursor paging saw %d in %d pages", len(seen), pages)
	}
	// Page paging reports its position.
	got, res := filterNames(t, e, key, map[string]any{"page": 3})
	if len(got) != 50 || res.Get("data.total_pages") != float64(3) || res.Get("data.current_page") != float64(3) || res.Get("data.next_cursor") != nil {
		t.Fatalf("page 3: %d %s", len(got), res.Body)
	}
	if got, _ := filterNames(t, e, key, map[string]any{"page": 4}); len(got) != 0 {
		t.Fatalf("page past the end has %d", len(got))
	}
}
