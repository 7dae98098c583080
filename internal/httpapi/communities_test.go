package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/auth"
)

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// keyWith makes a partner key for community holding only perms.
func keyWith(t *testing.T, e *apitest.Env, communityID string, days int, perms ...string) (string, string) {
	t.Helper()
	k, secret, err := e.App.Keys.Create(context.Background(), auth.NewKey{CommunityID: communityID, Name: "limited", Permissions: perms, ExpireDays: days})
	if err != nil {
		t.Fatal(err)
	}
	return k.ID, secret
}

func TestCreateCommunity(t *testing.T) {
	e := apitest.New(t)
	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/management/communities", Key: e.AdminKey,
		Body: map[string]any{"name": "Trading Club", "uri": "trading-club", "domain": "Club.Example.com"}}).Expect(t, 201)
	if res.String("message") != "Create community success." || res.Get("meta.statusCode") != float64(201) {
		t.Fatalf("envelope: %s", res.Body)
	}
	id, key := res.String("data._id"), res.String("data.apiKey.key")
	if !hex64.MatchString(key) || res.String("data.domain") != "club.example.com" {
		t.Fatalf("want 64-hex key and lowercased domain: %s", res.Body)
	}
	perms, _ := res.Get("data.apiKey.permissions").([]any)
	if len(perms) != len(auth.Permissions) {
		t.Fatalf("first key holds %d permissions, want all %d", len(perms), len(auth.Permissions))
	}
	got := e.Do(apitest.Request{Method: "GET", Path: "/v1/management/communities/" + id, Key: key}).Expect(t, 200)
	if got.String("data.name") != "Trading Club" || got.String("data.uri") != "trading-club" {
		t.Fatalf("read back: %s", got.Body)
	}
	if got.Get("data.apiKey") != nil {
		t.Fatal("community read must not carry a key")
	}

	cases := []struct {
		name       string
		key        string
		body       any
		wantStatus int
		wantFields []string
	}{
		{"no key", "", map[string]any{"name": "X", "uri": "x"}, 401, nil},
		{"unknown key", strings.Repeat("ab", 32), map[string]any{"name": "X", "uri": "x"}, 401, nil},
		{"partner key", key, map[string]any{"name": "X", "uri": "x"}, 403, nil},
		{"missing fields", e.AdminKey, map[string]any{}, 400, []string{"name", "uri"}},
		{"bad slug and domain", e.AdminKey, map[string]any{"name": "X", "uri": "-bad slug", "domain": "not a domain"}, 400, []string{"uri", "domain"}},
		{"wrong types", e.AdminKey, map[string]any{"name": 12, "uri": true}, 400, []string{"name", "uri"}},
		{"duplicate uri any case", e.AdminKey, map[string]any{"name": "Other", "uri": "TRADING-club"}, 409, nil},
		{"duplicate name any case", e.AdminKey, map[string]any{"name": "trading  CLUB", "uri": "other"}, 409, nil},
		{"duplicate domain", e.AdminKey, map[string]any{"name": "Other", "uri": "other", "domain": "club.example.com"}, 409, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := e.Do(apitest.Request{Method: "POST", Path: "/v1/management/communities", Key: tc.key, Body: tc.body}).Expect(t, tc.wantStatus)
			if res.Get("meta.status") != "error" {
				t.Fatalf("want error envelope: %s", res.Body)
			}
			if tc.wantFields != nil && !slices.Equal(sortedCopy(res.ErrorFields()), sortedCopy(tc.wantFields)) {
				t.Fatalf("error fields %v, want %v", res.ErrorFields(), tc.wantFields)
			}
		})
	}

	list := e.Do(apitest.Request{Method: "GET", Path: "/v1/management/communities?limit=10", Key: e.AdminKey}).Expect(t, 200)
	if list.Get("meta.total") != float64(1) || list.String("data.0._id") != id {
		t.Fatalf("list: %s", list.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/management/communities?limit=0", Key: e.AdminKey}).Expect(t, 400)
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

func TestNameAndURIUpdate(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	b, keyB := e.Community("Beta", "beta")
	_, noAppearance := keyWith(t, e, a, 0, "store")

	// Every documented path form reaches the same handler.
	for i, prefix := range []string{"/v1", "/apis/v1", "/api/v1", "", "/api/v1/apis/v1", "/apis"} {
		name := fmt.Sprintf("Alpha %d", i)
		res := e.Do(apitest.Request{Method: "PUT", Path: prefix + "/management/communities/" + a, Key: keyA,
			Body: map[string]any{"name": name}}).Expect(t, 200)
		if res.String("data.name") != name || res.String("data.uri") != "alpha" || res.String("message") != "Update community success." {
			t.Fatalf("%s: %s", prefix, res.Body)
		}
	}
	// The form without an id acts on the key's community.
	res := e.Do(apitest.Request{Method: "PUT", Path: "/v1/management/communities", Key: keyA,
		Body: map[string]any{"uri": "alpha-2", "domain": "alpha.example.org"}}).Expect(t, 200)
	if res.String("data._id") != a || res.String("data.uri") != "alpha-2" || res.String("data.domain") != "alpha.example.org" {
		t.Fatalf("keyless form: %s", res.Body)
	}
	// null clears the domain.
	res = e.Do(apitest.Request{Method: "PUT", Path: "/v1/management/communities/" + a, Key: keyA,
		Body: map[string]any{"domain": nil}}).Expect(t, 200)
	if res.Get("data.domain") != nil {
		t.Fatalf("domain not cleared: %s", res.Body)
	}

	cases := []struct {
		name       string
		path       string
		key        string
		body       any
		wantStatus int
		wantFields []string
	}{
		{"other community's id", "/v1/management/communities/" + b, keyA, map[string]any{"name": "Stolen"}, 403, nil},
		{"unknown id", "/v1/management/communities/ffffffffffffffffffffffff", keyA, map[string]any{"name": "X"}, 403, nil},
		{"no appearance permission", "/v1/management/communities/" + a, noAppearance, map[string]any{"name": "X"}, 403, nil},
		{"no key", "/v1/management/communities/" + a, "", map[string]any{"name": "X"}, 401, nil},
		{"name clash", "/v1/management/communities/" + a, keyA, map[string]any{"name": "BETA"}, 409, nil},
		{"uri clash", "/v1/management/communities/" + a, keyA, map[string]any{"uri": "Beta"}, 409, nil},
		{"invalid", "/v1/management/communities/" + a, keyA, map[string]any{"name": "", "uri": "a_b", "domain": "x"}, 400, []string{"name", "uri", "domain"}},
		{"malformed json", "/v1/management/communities/" + a, keyA, "{not json", 400, []string{"body"}},
		{"not an object", "/v1/management/communities/" + a, keyA, "[1]", 400, []string{"body"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := e.Do(apitest.Request{Method: "PUT", Path: tc.path, Key: tc.key, Body: tc.body}).Expect(t, tc.wantStatus)
			if tc.wantFields != nil && !slices.Equal(sortedCopy(res.ErrorFields()), sortedCopy(tc.wantFields)) {
				t.Fatalf("error fields %v, want %v", res.ErrorFields(), tc.wantFields)
			}
		})
	}
	// Nothing of B changed and B's key still sees only B.
	got := e.Do(apitest.Request{Method: "GET", Path: "/v1/management/communities/" + b, Key: keyB}).Expect(t, 200)
	if got.String("data.name") != "Beta" {
		t.Fatalf("B changed: %s", got.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/management/communities/" + a, Key: keyB}).Expect(t, 403)
}

func TestConcurrentUpdatesEndConsistent(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Gamma", "gamma")
	const n = 24
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			body := fmt.Sprintf(`{"name":"Gamma %d","uri":"gamma-%d"}`, i, i)
			req, _ := http.NewRequest("PUT", e.Server.URL+"/v1/management/communities/"+a, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			res, err := e.Server.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			codes[i] = res.StatusCode
		}(i)
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("update %d: status %d", i, c)
		}
	}
	got := e.Do(apitest.Request{Method: "GET", Path: "/v1/management/communities/" + a, Key: key}).Expect(t, 200)
	var idx int
	if _, err := fmt.Sscanf(got.String("data.name"), "Gamma %d", &idx); err != nil || got.String("data.uri") != fmt.Sprintf("gamma-%d", idx) {
		t.Fatalf("name and uri come from different updates: %s", got.Body)
	}
	// Every update left exactly one event, and the last one describes the final state.
	var events []any
	apitest.WaitFor(t, "all update events in the feed", func() bool {
		res := e.Do(apitest.Request{Method: "GET", Path: "/v1/events?type=community.updated&limit=200", Key: key})
		events, _ = res.Get("data").([]any)
		return len(events) == n
	})
	last := events[n-1].(map[string]any)["payload"].(map[string]any)
	if last["name"] != got.String("data.name") {
		t.Fatalf("last event %v does not match final state %s", last, got.Body)
	}
}

func TestAppearanceDocuments(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Delta", "delta")
	b, keyB := e.Community("Epsilon", "epsilon")
	base := "/v1/management/communities/" + a

	meta := e.Do(apitest.Request{Method: "GET", Path: base + "/meta", Key: key}).Expect(t, 200)
	if meta.String("data.communityID") != a || meta.String("data._id") == a || meta.Get("data.membersListVisible") != true {
		t.Fatalf("default meta: %s", meta.Body)
	}
	upd := e.Do(apitest.Request{Method: "PUT", Path: base + "/meta", Key: key, Body: map[string]any{
		"preview":            map[string]any{"isEnabled": true, "title": "Delta", "image": "https://example.com/p.png"},
		"membersListVisible": false,
	}}).Expect(t, 200)
	if upd.String("message") != "Update community meta success." || upd.Get("data.preview.isEnabled") != true ||
		upd.String("data.preview.image") != "https://example.com/p.png" || upd.Get("data.membersListVisible") != false {
		t.Fatalf("meta update: %s", upd.Body)
	}
	// Sub-fields merge: only the description changes, then null clears the image.
	upd = e.Do(apitest.Request{Method: "PUT", Path: base + "/meta", Key: key, Body: map[string]any{
		"preview": map[string]any{"description": "Trading tools", "image": nil}}}).Expect(t, 200)
	if upd.String("data.preview.title") != "Delta" || upd.String("data.preview.description") != "Trading tools" ||
		upd.Get("data.preview.image") != nil || upd.Get("data.preview.isEnabled") != true {
		t.Fatalf("meta merge: %s", upd.Body)
	}
	bad := e.Do(apitest.Request{Method: "PUT", Path: base + "/meta", Key: key, Body: map[string]any{
		"preview": map[string]any{"image": "ftp://x", "title": strings.Repeat("t", 121)}, "guestModeEnabled": "yes"}}).Expect(t, 400)
	if !slices.Equal(sortedCopy(bad.ErrorFields()), []string{"guestModeEnabled"}) &&
		!slices.Equal(sortedCopy(bad.ErrorFields()), []string{"guestModeEnabled", "preview.image", "preview.title"}) {
		t.Fatalf("meta errors: %v", bad.ErrorFields())
	}
	bad = e.Do(apitest.Request{Method: "PUT", Path: base + "/meta", Key: key, Body: map[string]any{
		"preview": map[string]any{"image": "ftp://x", "title": strings.Repeat("t", 121)}}}).Expect(t, 400)
	if !slices.Equal(sortedCopy(bad.ErrorFields()), []string{"preview.image", "preview.title"}) {
		t.Fatalf("meta errors: %v", bad.ErrorFields())
	}

	bot := e.Do(apitest.Request{Method: "GET", Path: "/v1/community-bot", Key: key}).Expect(t, 200)
	if bot.String("data.name") != "Delta Bot" || bot.String("data.communityID") != a {
		t.Fatalf("default bot: %s", bot.Body)
	}
	bot = e.Do(apitest.Request{Method: "PUT", Path: "/community-bot", Key: key, Body: map[string]any{
		"name": "server bot edited", "avatar": "https://cdn.example.com/a.webp"}}).Expect(t, 200)
	if bot.String("data.name") != "server bot edited" || bot.String("data.avatar") != "https://cdn.example.com/a.webp" {
		t.Fatalf("bot update: %s", bot.Body)
	}
	bot = e.Do(apitest.Request{Method: "PUT", Path: "/v1/community-bot", Key: key, Body: map[string]any{"avatar": nil}}).Expect(t, 200)
	if bot.Get("data.avatar") != nil || bot.String("data.name") != "server bot edited" {
		t.Fatalf("bot avatar clear: %s", bot.Body)
	}
	bad = e.Do(apitest.Request{Method: "PUT", Path: "/v1/community-bot", Key: key, Body: map[string]any{"name": " ", "avatar": "nope"}}).Expect(t, 400)
	if !slices.Equal(sortedCopy(bad.ErrorFields()), []string{"avatar", "name"}) {
		t.Fatalf("bot errors: %v", bad.ErrorFields())
	}
	// B's key reads B's bot, never A's.
	botB := e.Do(apitest.Request{Method: "GET", Path: "/v1/community-bot", Key: keyB}).Expect(t, 200)
	if botB.String("data.communityID") != b || botB.String("data.name") != "Epsilon Bot" {
		t.Fatalf("tenancy: %s", botB.Body)
	}

	theme := e.Do(apitest.Request{Method: "GET", Path: base + "/theme-colors", Key: key}).Expect(t, 200)
	if theme.String("data.light.name") != "white-smoke" || theme.String("data.defaultMode") != "light" {
		t.Fatalf("default theme: %s", theme.Body)
	}
	theme = e.Do(apitest.Request{Method: "PUT", Path: base + "/theme-colors", Key: key, Body: map[string]any{
		"dark":        map[string]any{"name": "violet-dream", "palette": map[string]any{"accent": "#7C3AED", "shadow": "rgba(0, 0, 0, 0.5)"}},
		"defaultMode": "dark",
	}}).Expect(t, 200)
	if theme.String("data.dark.name") != "violet-dream" || theme.String("data.dark.palette.accent") != "#7C3AED" ||
		theme.String("data.dark.palette.text") != "#f5f5f5" || theme.String("data.defaultMode") != "dark" ||
		theme.String("data.light.name") != "white-smoke" {
		t.Fatalf("theme merge: %s", theme.Body)
	}
	bad = e.Do(apitest.Request{Method: "PUT", Path: base + "/theme-colors", Key: key, Body: map[string]any{
		"light":       map[string]any{"name": "Bad Name", "palette": map[string]any{"accent": "red", "text": "rgb(300,0,0)"}},
		"defaultMode": "sepia",
	}}).Expect(t, 400)
	want := []string{"defaultMode", "light.name", "light.palette.accent", "light.palette.text"}
	if !slices.Equal(sortedCopy(bad.ErrorFields()), want) {
		t.Fatalf("theme errors %v, want %v", bad.ErrorFields(), want)
	}
	// Reads return what was written.
	again := e.Do(apitest.Request{Method: "GET", Path: base + "/theme-colors", Key: key}).Expect(t, 200)
	if again.String("data.dark.palette.accent") != "#7C3AED" {
		t.Fatalf("theme read back: %s", again.Body)
	}

	// Tenancy and permission on every appearance document.
	_, storeOnly := keyWith(t, e, a, 0, "store")
	for _, p := range []string{base + "/meta", base + "/theme-colors", "/v1/community-bot"} {
		e.Do(apitest.Request{Method: "GET", Path: p, Key: storeOnly}).Expect(t, 403)
		e.Do(apitest.Request{Method: "PUT", Path: p, Key: storeOnly, Body: map[string]any{}}).Expect(t, 403)
		e.Do(apitest.Request{Method: "GET", Path: p}).Expect(t, 401)
	}
	for _, p := range []string{base + "/meta", base + "/theme-colors"} {
		e.Do(apitest.Request{Method: "GET", Path: p, Key: keyB}).Expect(t, 403)
		e.Do(apitest.Request{Method: "PUT", Path: p, Key: keyB, Body: map[string]any{"defaultMode": "dark"}}).Expect(t, 403)
	}
}

func TestKeyLifecycle(t *testing.T) {
	e := apitest.New(t)
	a, _ := e.Community("Zeta", "zeta")
	id, short := keyWith(t, e, a, 1, "appearance")
	path := "/v1/community-bot"
	e.Do(apitest.Request{Method: "GET", Path: path, Key: short}).Expect(t, 200)
	e.Clock.Advance(25 * time.Hour)
	res := e.Do(apitest.Request{Method: "GET", Path: path, Key: short}).Expect(t, 401)
	if res.String("message") != "API key has expired." {
		t.Fatalf("expired: %s", res.Body)
	}
	_, other := keyWith(t, e, a, 0, "appearance")
	e.Do(apitest.Request{Method: "GET", Path: path, Key: other}).Expect(t, 200)
	otherID := ""
	keys, err := e.App.Keys.List(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.ID != id && k.Name == "limited" {
			otherID = k.ID
		}
	}
	if _, err := e.App.Keys.Revoke(context.Background(), a, otherID); err != nil {
		t.Fatal(err)
	}
	e.Do(apitest.Request{Method: "GET", Path: path, Key: other}).Expect(t, 401)
	// Another community cannot revoke A's key.
	b, _ := e.Community("Eta", "eta")
	if _, err := e.App.Keys.Revoke(context.Background(), b, id); err == nil {
		t.Fatal("revoked a key of another community")
	}
	// A key shaped wrong, or sent without Bearer, is refused.
	e.Do(apitest.Request{Method: "GET", Path: path, Headers: map[string]string{"Authorization": "Basic abc"}}).Expect(t, 401)
}
