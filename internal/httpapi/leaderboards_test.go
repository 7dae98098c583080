package httpapi_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/role"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/wallet"
	"github.com/rallyhq/rally/internal/xp"
)

// newShapeBoard is the docs' create sample (new request shape).
func newShapeBoard(slug string) map[string]any {
	return map[string]any{"name": "April Last Leaderboard", "slug": slug, "description": "Monthly leaderboard created through the partner API.",
		"image": "https://cdn.example.com/leaderboards/april.png", "rankingField": "currencies",
		"displayedColumns": []map[string]any{{"column": "currencies", "visible": true, "order": 1}, {"column": "user", "visible": true, "order": 0},
			{"column": "level", "visible": false, "order": 2}},
		"topRankOnly": false, "topRankLimit": 10, "onlyPositiveRanks": false, "includeDummyUsers": false,
		"startDate": "2026-01-30T19:30:00.000Z", "endDate": "2026-12-31T23:59:59.999Z", "hasNoEndDate": true, "timeZone": 5.3,
		"startTime": map[string]any{"hours": 5, "minutes": 0, "ampm": "AM"}, "endTime": map[string]any{"hours": 11, "minutes": 59, "ampm": "PM"},
		"allowedTimeFilters": []string{"all-time", "monthly", "weekly"}, "allowedUsersToRank": []string{},
		"allowedRolesToRank": []string{"507f1f77bcf86cd799439014"}, "allowedTagsToRank": []string{}, "allowedUsersToView": []string{},
		"allowedRolesToView": []string{"507f1f77bcf86cd799439014"}, "allowedTagsToView": []string{},
		"isEnabled": true, "isPreviewEnabled": false, "displayOrder": 3,
		"widget": map[string]any{"enabled": false, "whitelistedDomains": []string{"example.com"},
			"size":   map[string]any{"type": "custom", "value": map[string]any{"width": 420, "height": 640}},
			"button": map[string]any{"enabled": true, "text": "View leaderboard", "link": "https://example.com/leaderboard"}}}
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func TestLeaderboardCRUD(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Boards", "boards")
	_, keyB := e.Community("Other", "other")

	// The default XP leaderboard exists from the first access, at both path forms.
	for _, p := range []string{"/v1/leaderboards", "/leaderboards"} {
		res := e.Do(apitest.Request{Method: "GET", Path: p, Key: key}).Expect(t, 200)
		if res.Get("meta.total") != float64(1) || res.Get("data.0.isDefault") != true || res.String("data.0.rankBy") != "xps" ||
			res.String("message") != "Read leaderboards success." || res.Get("meta.page") != float64(1) || res.Get("meta.limit") != float64(20) {
			t.Fatalf("%s: %s", p, res.Body)
		}
	}

	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/leaderboards", Key: key, Body: newShapeBoard("april-last-leaderboard")}).Expect(t, 201)
	newID := res.String("data._id")
	if res.String("message") != "Create leaderboard success." || res.String("data.communityID") != a || res.String("data.rankBy") != "currencies" ||
		!slices.Equal(strs(res.Get("data.displayedFields")), []string{"user", "currencies"}) ||
		!slices.Equal(strs(res.Get("data.displayFieldsOrder")), []string{"user", "currencies", "level"}) ||
		!slices.Equal(strs(res.Get("data.timeFilters")), []string{"all-time", "monthly", "weekly"}) ||
		res.String("data.duration.start") != "2026-01-30T19:30:00.000Z" || res.Get("data.duration.end") != nil ||
		res.Get("data.duration.noEndDate") != true || res.Get("data.duration.timeZone") != 5.3 ||
		res.String("data.duration.startTime.ampm") != "AM" || res.Get("data.performanceDisplay.showTop.value") != float64(10) ||
		res.String("data.rankedUserRoles.roles.0") != "507f1f77bcf86cd799439014" || res.String("data.widget.size") != "custom" ||
		res.Get("data.widget.width") != float64(420) || res.Get("data.enabled") != true || res.Get("data.displayOrder") != float64(3) ||
		res.String("data.widget.whitelistedDomains.0") != "example.com" {
		t.Fatalf("create (new shape): %s", res.Body)
	}

	legacy := map[string]any{"name": "Legacy Board", "slug": "legacy-board", "rankBy": "xps",
		"displayedFields": []string{"user", "xps"}, "displayFieldsOrder": []string{"user", "xps", "level"},
		"timeFilters": []string{"daily", "all-time"}, "enabled": false,
		"duration":           map[string]any{"start": "2026-01-01T00:00:00.000Z", "end": "2026-06-30T00:00:00.000Z", "noEndDate": false, "timeZone": 7},
		"performanceDisplay": map[string]any{"showTop": map[string]any{"enabled": true, "value": 5}, "showPositive": map[string]any{"enabled": true}},
		"rankedUserRoles":    map[string]any{"users": []string{}, "roles": []string{}, "tags": []string{}}}
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/leaderboards", Key: key, Body: legacy}).Expect(t, 201)
	legacyID := res.String("data._id")
	if res.String("data.rankBy") != "xps" || res.Get("data.enabled") != false || res.String("data.duration.end") != "2026-06-30T00:00:00.000Z" ||
		res.Get("data.duration.noEndDate") != false || res.Get("data.performanceDisplay.showTop.enabled") != true ||
		res.Get("data.performanceDisplay.showPositive.enabled") != true || res.Get("data.displayedColumns.2.visible") != false ||
		!slices.Equal(strs(res.Get("data.timeFilters")), []string{"daily", "all-time"}) {
		t.Fatalf("create (legacy shape): %s", res.Body)
	}

	// Slug is unique per community; another community may reuse it.
	e.Do(apitest.Request{Method: "POST", Path: "/v1/leaderboards", Key: key, Body: newShapeBoard("legacy-board")}).Expect(t, 409)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/leaderboards", Key: keyB, Body: newShapeBoard("legacy-board")}).Expect(t, 201)

	// Every rule, named field by field.
	many := make([]map[string]any, 51)
	for i := range many {
		many[i] = map[string]any{"column": fmt.Sprintf("c%d", i), "visible": true, "order": i}
	}
	domains := make([]string, 51)
	for i := range domains {
		domains[i] = fmt.Sprintf("d%d.example.com", i)
	}
	bad := newShapeBoard("ok")
	bad["name"] = strings.Repeat("n", 101)
	bad["slug"] = "Bad Slug"
	bad["rankingField"] = "level"
	bad["displayedColumns"] = many
	bad["allowedTimeFilters"] = []string{"weekly", "hourly"}
	bad["widget"] = map[string]any{"whitelistedDomains": domains}
	bad["timeZone"] = 20
	bad["startTime"] = map[string]any{"hours": 13, "minutes": 0, "ampm": "XM"}
	bad["allowedUsersToView"] = []string{"nope"}
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/leaderboards", Key: key, Body: bad}).Expect(t, 400)
	want := []string{"name", "slug", "rankingField", "displayedColumns", "allowedTimeFilters[1]", "widget.whitelistedDomains", "timeZone",
		"startTime.hours", "startTime.ampm", "allowedUsersToView[0]"}
	for _, f := range want {
		if !slices.Contains(res.ErrorFields(), f) {
			t.Errorf("bad create: %s not named in %v", f, res.ErrorFields())
		}
	}
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/leaderboards", Key: key, Body: map[string]any{}}).Expect(t, 400)
	for _, f := range []string{"name", "rankingField", "displayedColumns", "startDate"} {
		if !slices.Contains(res.ErrorFields(), f) {
			t.Errorf("empty create: %s not named in %v", f, res.ErrorFields())
		}
	}
	conflicting := newShapeBoard("conflict")
	conflicting["rankBy"] = "xps"
	conflicting["hasNoEndDate"] = false
	conflicting["endDate"] = "2025-01-01T00:00:00.000Z"
	conflicting["displayedFields"] = []string{"user"} // without displayFieldsOrder, but displayedColumns wins
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/leaderboards", Key: key, Body: conflicting}).Expect(t, 400)
	if got := res.ErrorFields(); !slices.Contains(got, "rankingField") || !slices.Contains(got, "endDate") {
		t.Fatalf("conflicting create: %v", got)
	}
	half := newShapeBoard("half")
	delete(half, "displayedColumns")
	half["displayedFields"] = []string{"user"}
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/leaderboards", Key: key, Body: half}).Expect(t, 400)
	if !slices.Equal(res.ErrorFields(), []string{"displayedColumns"}) {
		t.Fatalf("half legacy columns: %v", res.ErrorFields())
	}

	// Read one, projected; "default" names the default board.
	res = e.Do(apitest.Request{Method: "GET", Path: "/leaderboards/" + newID + "?fields=name,slug,duration", Key: key}).Expect(t, 200)
	if data := res.Get("data").(map[string]any); len(data) != 4 || res.String("data.slug") != "april-last-leaderboard" || res.String("message") != "Read leaderboard success." {
		t.Fatalf("projected read: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + newID + "?fields=colour", Key: key}).Expect(t, 400)
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/default", Key: key}).Expect(t, 200)
	defaultID := res.String("data._id")
	if res.Get("data.isDefault") != true {
		t.Fatalf("default: %s", res.Body)
	}

	// Partial update at both path forms; omitted fields are kept.
	res = e.Do(apitest.Request{Method: "PATCH", Path: "/leaderboards/" + newID, Key: key,
		Body: map[string]any{"description": "Monthly leaderboard updated through the partner API.", "isEnabled": false}}).Expect(t, 200)
	if res.String("data.description") != "Monthly leaderboard updated through the partner API." || res.Get("data.enabled") != false ||
		res.String("data.name") != "April Last Leaderboard" || res.String("message") != "Update leaderboard success." {
		t.Fatalf("patch: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "PATCH", Path: "/v1/leaderboards/" + newID, Key: key,
		Body: map[string]any{"duration": map[string]any{"start": "2026-02-01T00:00:00.000Z"}, "allowedTimeFilters": []string{"daily"}}}).Expect(t, 200)
	if res.String("data.duration.start") != "2026-02-01T00:00:00.000Z" || !slices.Equal(strs(res.Get("data.timeFilters")), []string{"daily"}) {
		t.Fatalf("patch schedule: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "PATCH", Path: "/v1/leaderboards/" + newID, Key: key, Body: map[string]any{"slug": "legacy-board"}}).Expect(t, 409)
	res = e.Do(apitest.Request{Method: "PATCH", Path: "/v1/leaderboards/" + newID, Key: key, Body: map[string]any{"name": "", "allowedTimeFilters": []string{}}}).Expect(t, 400)
	if !slices.Equal(res.ErrorFields(), []string{"name", "allowedTimeFilters"}) {
		t.Fatalf("bad patch: %v", res.ErrorFields())
	}
	res = e.Do(apitest.Request{Method: "PATCH", Path: "/v1/leaderboards/default", Key: key, Body: map[string]any{"rankingField": "currencies"}}).Expect(t, 400)
	if !slices.Equal(res.ErrorFields(), []string{"rankingField"}) {
		t.Fatalf("default metric: %v", res.ErrorFields())
	}

	// List: search, sort, paging, projection, bad parameters.
	res = e.Do(apitest.Request{Method: "GET", Path: "/leaderboards?search=keyword:APRIL&fields=name", Key: key}).Expect(t, 200)
	if res.Get("meta.total") != float64(1) || res.String("data.0.name") != "April Last Leaderboard" || res.Get("data.0.slug") != nil {
		t.Fatalf("search: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards?sort=name:desc&page=2&limit=1", Key: key}).Expect(t, 200)
	if res.Get("meta.total") != float64(3) || res.String("data.0.name") != "Leaderboard" || len(res.Get("data").([]any)) != 1 {
		t.Fatalf("sorted page: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards?page=0&limit=101&sort=colour&search=x", Key: key}).Expect(t, 400)
	if !slices.Equal(res.ErrorFields(), []string{"page", "limit"}) {
		t.Fatalf("bad paging: %v", res.ErrorFields())
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards?sort=colour&search=x", Key: key}).Expect(t, 400)
	if !slices.Equal(res.ErrorFields(), []string{"sort", "search"}) {
		t.Fatalf("bad sort/search: %v", res.ErrorFields())
	}

	// Tenancy: another community's key sees none of it.
	for _, m := range []string{"GET", "PATCH", "DELETE"} {
		e.Do(apitest.Request{Method: m, Path: "/v1/leaderboards/" + newID, Key: keyB, Body: map[string]any{"name": "x"}}).Expect(t, 404)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards", Key: keyB}).Expect(t, 200)
	if res.Get("meta.total") != float64(2) {
		t.Fatalf("other community list: %s", res.Body)
	}

	// Credentials.
	e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards"}).Expect(t, 401)
	member(t, e, a, "boss", "", true)
	owner := e.SignIn(a, "boss@example.com")
	storeKey := e.Do(apitest.Request{Method: "POST", Path: "/v1/communities/" + a + "/api-keys", Key: owner,
		Body: map[string]any{"name": "store only", "permissions": []string{"store"}}}).Expect(t, 201).String("data.key")
	e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards", Key: storeKey}).Expect(t, 403)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/leaderboards", Key: owner, Body: newShapeBoard("by-token")}).Expect(t, 401)

	// Delete; the default board cannot go.
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/leaderboards/not-an-id", Key: key}).Expect(t, 400)
	res = e.Do(apitest.Request{Method: "DELETE", Path: "/v1/leaderboards/" + legacyID, Key: key}).Expect(t, 200)
	if res.String("data.slug") != "legacy-board" || res.String("message") != "Delete leaderboard success." {
		t.Fatalf("delete: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + legacyID, Key: key}).Expect(t, 404)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/leaderboards/" + defaultID, Key: key}).Expect(t, 409)
	if got := e.EventTypes(a, "leaderboard.created", "leaderboard.updated", "leaderboard.deleted"); len(got) != 5 {
		t.Fatalf("events: %v", got)
	}
}

// award gives u xp through the XP service, as every award is made.
func award(t *testing.T, e *apitest.Env, communityID string, u user.User, points int64) {
	t.Helper()
	if _, _, err := e.App.XP.Award(context.Background(), xp.Award{CommunityID: communityID, UserID: u.ID, Action: "message", XP: points,
		Actor: wallet.Actor{Kind: wallet.ActorSystem}}); err != nil {
		t.Fatal(err)
	}
}

// ranking reads standings and returns "username:score@rank" entries.
func ranking(t *testing.T, e *apitest.Env, key, board, query string) []string {
	t.Helper()
	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + board + "/standings?" + query, Key: key}).Expect(t, 200)
	var out []string
	for _, x := range res.Get("data.entries").([]any) {
		m := x.(map[string]any)
		out = append(out, fmt.Sprintf("%s:%v@%v", m["username"], m["score"], m["rank"]))
	}
	return out
}

func expectRanking(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("standings %v, want %v", got, want)
	}
}

func TestLeaderboardStandingsPerTimeFilter(t *testing.T) {
	e := apitest.New(t)
	c, key := e.Community("Ranks", "ranks")
	e.Clock.Set(time.Date(2026, 4, 29, 10, 0, 0, 0, time.UTC)) // a Wednesday
	ann := e.Member(c, "ann", user.MemberOptions{Joined: true})
	bob := e.Member(c, "bob", user.MemberOptions{Joined: true})
	cat := e.Member(c, "cat", user.MemberOptions{Joined: true})
	dan := e.Member(c, "dan", user.MemberOptions{Joined: true})
	award(t, e, c, ann, 50) // before the default board exists: built from the log
	e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards", Key: key}).Expect(t, 200)
	e.Clock.Advance(time.Minute)
	award(t, e, c, bob, 80)
	e.Clock.Advance(time.Minute)
	award(t, e, c, cat, 50) // ties with ann, reached later
	for _, f := range []string{"all-time", "daily", "weekly", "monthly"} {
		expectRanking(t, ranking(t, e, key, "default", "timeFilter="+f), "bob:80@1", "ann:50@2", "cat:50@3")
	}
	res := e.Do(apitest.Request{Method: "GET", Path: "/leaderboards/default/standings?timeFilter=daily&page=2&limit=1", Key: key}).Expect(t, 200)
	if res.Get("meta.total") != float64(3) || res.Get("meta.page") != float64(2) || res.String("data.entries.0.username") != "ann" ||
		res.String("data.periodStart") != "2026-04-29T00:00:00.000Z" || res.String("data.periodEnd") != "2026-04-30T00:00:00.000Z" {
		t.Fatalf("page 2: %s", res.Body)
	}

	// Next day: the daily view starts empty, the week goes on; ranks are live.
	e.Clock.Set(time.Date(2026, 4, 30, 9, 0, 0, 0, time.UTC))
	expectRanking(t, ranking(t, e, key, "default", "timeFilter=daily"))
	award(t, e, c, cat, 10)
	expectRanking(t, ranking(t, e, key, "default", "timeFilter=daily"), "cat:10@1")
	expectRanking(t, ranking(t, e, key, "default", "timeFilter=weekly"), "bob:80@1", "cat:60@2", "ann:50@3")
	award(t, e, c, ann, 40)
	expectRanking(t, ranking(t, e, key, "default", "timeFilter=all-time"), "ann:90@1", "bob:80@2", "cat:60@3")

	// A new month and week (Friday 1 May, then Monday 4 May).
	e.Clock.Set(time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC))
	award(t, e, c, dan, 5)
	expectRanking(t, ranking(t, e, key, "default", "timeFilter=monthly"), "dan:5@1")
	expectRanking(t, ranking(t, e, key, "default", "timeFilter=weekly"), "ann:90@1", "bob:80@2", "cat:60@3", "dan:5@4")
	e.Clock.Set(time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC))
	expectRanking(t, ranking(t, e, key, "default", "timeFilter=weekly"))
	expectRanking(t, ranking(t, e, key, "default", "timeFilter=monthly"), "dan:5@1")
	// The default board offers no yearly view; a board of our own does.
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/default/standings?timeFilter=yearly", Key: key}).Expect(t, 400)
	if !slices.Equal(res.ErrorFields(), []string{"timeFilter"}) {
		t.Fatalf("yearly on default: %s", res.Body)
	}

	// A board at UTC+7 since 1 May, created after the awards: built from the log, its days end at 17:00 UTC.
	body := map[string]any{"name": "Plus Seven", "rankingField": "xps", "displayedColumns": []map[string]any{{"column": "user", "visible": true, "order": 0}},
		"startDate": "2026-05-01T00:00:00.000Z", "hasNoEndDate": true, "timeZone": 7, "allowedTimeFilters": []string{"daily", "yearly", "all-time"}}
	board := e.Do(apitest.Request{Method: "POST", Path: "/v1/leaderboards", Key: key, Body: body}).Expect(t, 201).String("data._id")
	expectRanking(t, ranking(t, e, key, board, "timeFilter=all-time"), "dan:5@1")
	expectRanking(t, ranking(t, e, key, board, "timeFilter=yearly"), "dan:5@1")
	e.Clock.Set(time.Date(2026, 5, 4, 16, 30, 0, 0, time.UTC)) // 23:30 at +7
	award(t, e, c, bob, 7)
	expectRanking(t, ranking(t, e, key, board, "timeFilter=daily"), "bob:7@1")
	e.Clock.Set(time.Date(2026, 5, 4, 17, 30, 0, 0, time.UTC)) // 00:30 on 5 May at +7, still 4 May in UTC
	expectRanking(t, ranking(t, e, key, board, "timeFilter=daily"))
	expectRanking(t, ranking(t, e, key, "default", "timeFilter=daily"), "bob:7@1")
	expectRanking(t, ranking(t, e, key, board, "timeFilter=all-time"), "bob:7@1", "dan:5@2")

	// A member's place and the members around them.
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/default/standings/member?timeFilter=all-time&identifier=cat@example.com&identifier_type=email&around=1", Key: key}).Expect(t, 200)
	if res.Get("data.ranked") != true || res.Get("data.entry.rank") != float64(3) || res.String("data.above.0.username") != "bob" ||
		res.String("data.below.0.username") != "dan" || len(res.Get("data.above").([]any)) != 1 || res.Get("data.total") != float64(4) {
		t.Fatalf("position: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/default/standings/member?timeFilter=daily&identifier=" + ann.ID + "&identifier_type=_id", Key: key}).Expect(t, 200)
	if res.Get("data.ranked") != false || res.Get("data.entry") != nil {
		t.Fatalf("unranked position: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/default/standings/member?around=99&identifier_type=phone", Key: key}).Expect(t, 400)
	if !slices.Equal(res.ErrorFields(), []string{"around", "identifier_type", "identifier"}) {
		t.Fatalf("bad position query: %v", res.ErrorFields())
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/default/standings/member?identifier=nobody@example.com&identifier_type=email", Key: key}).Expect(t, 404)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/default/standings?limit=0", Key: key}).Expect(t, 400)

	// Tenancy: another community's key cannot read these standings or place these members.
	_, keyB := e.Community("Elsewhere", "elsewhere")
	e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + board + "/standings", Key: keyB}).Expect(t, 404)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/default/standings/member?identifier=ann@example.com&identifier_type=email", Key: keyB}).Expect(t, 404)
	expectRanking(t, ranking(t, e, keyB, "default", "timeFilter=all-time"))
}

func TestLeaderboardTiesAndRules(t *testing.T) {
	e := apitest.New(t)
	c, key := e.Community("Rules", "rules")
	ctx := context.Background()
	e.Clock.Set(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	names := []string{"ann", "bob", "cat", "dan", "eve"}
	us := map[string]user.User{}
	for _, n := range names {
		us[n] = e.Member(c, n, user.MemberOptions{Joined: true})
	}
	vip, err := e.App.Roles.Create(ctx, c, role.Input{Title: jsonx.Some("VIP")})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"bob", "dan"} {
		if _, err := e.App.Roles.Assign(ctx, c, vip.ID, us[n].ID); err != nil {
			t.Fatal(err)
		}
	}
	cols := []map[string]any{{"column": "user", "visible": true, "order": 0}}
	boards := 0
	create := func(extra map[string]any) string {
		boards++
		body := map[string]any{"name": "Board", "rankingField": "xps", "displayedColumns": cols, "startDate": "2026-01-01T00:00:00.000Z"}
		for k, v := range extra {
			body[k] = v
		}
		body["slug"] = fmt.Sprintf("board-%d", boards)
		return e.Do(apitest.Request{Method: "POST", Path: "/v1/leaderboards", Key: key, Body: body}).Expect(t, 201).String("data._id")
	}
	plain := create(nil)
	// Equal scores: the one who reached it first ranks first, whatever the _id.
	for i, n := range []string{"eve", "dan", "cat", "bob"} {
		e.Clock.Advance(time.Second)
		award(t, e, c, us[n], int64(30-10*(i/2))) // eve 30, dan 30, cat 20, bob 20
	}
	e.Clock.Advance(time.Second)
	award(t, e, c, us["ann"], 5)
	award(t, e, c, us["ann"], -5) // back to 0: on the board, not positive
	expectRanking(t, ranking(t, e, key, plain, "timeFilter=all-time"), "eve:30@1", "dan:30@2", "cat:20@3", "bob:20@4", "ann:0@5")
	e.Clock.Advance(time.Second)
	award(t, e, c, us["eve"], 0+1)
	award(t, e, c, us["eve"], -1) // eve reaches 30 again, later than dan
	expectRanking(t, ranking(t, e, key, plain, "timeFilter=all-time"), "dan:30@1", "eve:30@2", "cat:20@3", "bob:20@4", "ann:0@5")

	positive := create(map[string]any{"onlyPositiveRanks": true})
	expectRanking(t, ranking(t, e, key, positive, "timeFilter=all-time"), "dan:30@1", "eve:30@2", "cat:20@3", "bob:20@4")
	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + positive + "/standings/member?timeFilter=all-time&identifier=ann&identifier_type=username", Key: key}).Expect(t, 200)
	if res.Get("data.ranked") != false {
		t.Fatalf("zero score ranked on a positive-only board: %s", res.Body)
	}

	top := create(map[string]any{"topRankOnly": true, "topRankLimit": 2})
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + top + "/standings?timeFilter=all-time", Key: key}).Expect(t, 200)
	if res.Get("meta.total") != float64(2) || len(res.Get("data.entries").([]any)) != 2 {
		t.Fatalf("top 2: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + top + "/standings/member?timeFilter=all-time&identifier=bob&identifier_type=username", Key: key}).Expect(t, 200)
	if res.Get("data.entry.rank") != float64(4) || len(res.Get("data.above").([]any)) != 2 || len(res.Get("data.below").([]any)) != 0 {
		t.Fatalf("position beyond the top: %s", res.Body)
	}

	dummies := create(map[string]any{"includeDummyUsers": true, "dummyUsers": []map[string]any{{"name": "Zed", "score": 25}, {"name": "Yan", "score": 30}}})
	expectRanking(t, ranking(t, e, key, dummies, "timeFilter=all-time"), "dan:30@1", "eve:30@2", "Yan:30@3", "Zed:25@4", "cat:20@5", "bob:20@6", "ann:0@7")
	expectRanking(t, ranking(t, e, key, dummies, "timeFilter=all-time&page=2&limit=3"), "Zed:25@4", "cat:20@5", "bob:20@6")
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + dummies + "/standings/member?timeFilter=all-time&around=2&identifier=cat&identifier_type=username", Key: key}).Expect(t, 200)
	if res.Get("data.entry.rank") != float64(5) || res.String("data.above.0.username") != "Yan" || res.Get("data.above.1.isDummy") != true ||
		res.String("data.below.0.username") != "bob" || res.Get("data.total") != float64(7) {
		t.Fatalf("position among dummies: %s", res.Body)
	}

	// Only the rank audience is ranked: VIPs (bob, dan) and ann by _id.
	vipOnly := create(map[string]any{"allowedRolesToRank": []string{vip.ID}, "allowedUsersToRank": []string{us["ann"].ID}})
	expectRanking(t, ranking(t, e, key, vipOnly, "timeFilter=all-time"), "dan:30@1", "bob:20@2", "ann:0@3")
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + vipOnly + "/standings/member?timeFilter=all-time&identifier=eve&identifier_type=username", Key: key}).Expect(t, 200)
	if res.Get("data.ranked") != false {
		t.Fatalf("eve ranked outside the audience: %s", res.Body)
	}

	// Who may view: partner keys always; members by the view audience, enabled boards only.
	viewVIP := create(map[string]any{"allowedRolesToView": []string{vip.ID}})
	disabled := create(map[string]any{"isEnabled": false})
	bobTok, eveTok := e.SignIn(c, "bob@example.com"), e.SignIn(c, "eve@example.com")
	e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + viewVIP + "/standings?timeFilter=all-time", Key: bobTok}).Expect(t, 200)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + viewVIP + "/standings?timeFilter=all-time", Key: eveTok}).Expect(t, 403)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + disabled + "/standings", Key: bobTok}).Expect(t, 403)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + disabled + "/standings", Key: key}).Expect(t, 200)
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + viewVIP + "/standings/member?timeFilter=all-time", Key: bobTok}).Expect(t, 200)
	if res.String("data.entry.username") != "bob" || res.Get("data.entry.rank") != float64(4) {
		t.Fatalf("own position: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + viewVIP + "/standings/member", Key: key}).Expect(t, 400)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards", Key: bobTok}).Expect(t, 401)
	// A deleted member leaves the standings.
	e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + plain + "/standings/member?timeFilter=all-time&identifier=dan&identifier_type=username", Key: key}).Expect(t, 200)
	if err := e.App.UserService.Manage(ctx, c, user.ActionDelete, "dan"); err != nil {
		t.Fatal(err)
	}
	expectRanking(t, ranking(t, e, key, plain, "timeFilter=all-time"), "eve:30@1", "cat:20@2", "bob:20@3", "ann:0@4")
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + plain + "/standings/member?timeFilter=all-time&identifier=bob&identifier_type=username", Key: key}).Expect(t, 200)
	if res.Get("data.entry.rank") != float64(3) || res.Get("data.total") != float64(4) {
		t.Fatalf("rank after a deletion: %s", res.Body)
	}
}

func TestLeaderboardCoinsAndRun(t *testing.T) {
	e := apitest.New(t)
	c, key := e.Community("Coins", "coins")
	ctx := context.Background()
	e.Clock.Set(time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC))
	ann := e.Member(c, "ann", user.MemberOptions{Joined: true})
	bob := e.Member(c, "bob", user.MemberOptions{Joined: true})
	credit := func(u user.User, n int64) {
		t.Helper()
		if _, err := e.App.Wallet.Credit(ctx, wallet.Entry{CommunityID: c, UserID: u.ID, Currency: wallet.Coins, Amount: n, Reason: wallet.ReasonCredit,
			Actor: wallet.Actor{Kind: wallet.ActorSystem}}); err != nil {
			t.Fatal(err)
		}
	}
	credit(ann, 100)
	cols := []map[string]any{{"column": "user", "visible": true, "order": 0}}
	body := map[string]any{"name": "Coins", "rankingField": "currencies", "displayedColumns": cols, "startDate": "2026-01-01T00:00:00.000Z",
		"hasNoEndDate": true, "allowedTimeFilters": []string{"all-time", "daily"}}
	coins := e.Do(apitest.Request{Method: "POST", Path: "/v1/leaderboards", Key: key, Body: body}).Expect(t, 201).String("data._id")
	expectRanking(t, ranking(t, e, key, coins, "timeFilter=all-time"), "ann:100@1")
	credit(bob, 150)
	if _, _, err := e.App.XP.Award(ctx, xp.Award{CommunityID: c, UserID: ann.ID, Action: "badge", Coins: 60, Actor: wallet.Actor{Kind: wallet.ActorSystem}}); err != nil {
		t.Fatal(err)
	}
	expectRanking(t, ranking(t, e, key, coins, "timeFilter=all-time"), "ann:160@1", "bob:150@2")
	if _, err := e.App.Wallet.Debit(ctx, wallet.Entry{CommunityID: c, UserID: ann.ID, Currency: wallet.Coins, Amount: 20, Reason: wallet.ReasonPurchase,
		Actor: wallet.Actor{Kind: wallet.ActorSystem}}); err != nil {
		t.Fatal(err)
	}
	expectRanking(t, ranking(t, e, key, coins, "timeFilter=all-time"), "bob:150@1", "ann:140@2")

	// A run with an end: awards after it do not count, and its last day stays readable.
	body = map[string]any{"name": "June Sprint", "rankingField": "xps", "displayedColumns": cols, "startDate": "2026-06-01T00:00:00.000Z",
		"endDate": "2026-06-02T00:00:00.000Z", "hasNoEndDate": false, "endTime": map[string]any{"hours": 11, "minutes": 59, "ampm": "PM"},
		"allowedTimeFilters": []string{"all-time", "daily"}}
	sprint := e.Do(apitest.Request{Method: "POST", Path: "/v1/leaderboards", Key: key, Body: body}).Expect(t, 201).String("data._id")
	award(t, e, c, bob, 10)
	e.Clock.Set(time.Date(2026, 6, 2, 23, 0, 0, 0, time.UTC))
	award(t, e, c, ann, 20)
	e.Clock.Set(time.Date(2026, 6, 3, 0, 30, 0, 0, time.UTC))
	award(t, e, c, ann, 50) // after the run
	expectRanking(t, ranking(t, e, key, sprint, "timeFilter=all-time"), "ann:20@1", "bob:10@2")
	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + sprint + "/standings?timeFilter=daily", Key: key}).Expect(t, 200)
	if res.String("data.periodStart") != "2026-06-02T00:00:00.000Z" || res.String("data.entries.0.username") != "ann" {
		t.Fatalf("last day of a finished run: %s", res.Body)
	}
	// Rescheduling rebuilds from the log.
	res = e.Do(apitest.Request{Method: "PATCH", Path: "/v1/leaderboards/" + sprint, Key: key, Body: map[string]any{"hasNoEndDate": true}}).Expect(t, 200)
	if res.Get("data.duration.noEndDate") != true {
		t.Fatalf("reschedule: %s", res.Body)
	}
	expectRanking(t, ranking(t, e, key, sprint, "timeFilter=all-time"), "ann:70@1", "bob:10@2")
}

// TestLeaderboardRanksAcrossBuckets checks ranks read through the score
// histogram against a plain sort: scores spread over many buckets and
// groups, several in one bucket on either side of its middle, equal scores
// reached at the same moment (then the lower _id first), deleted members,
// positive-only boards and dummy users inside a bucket.
func TestLeaderboardRanksAcrossBuckets(t *testing.T) {
	e := apitest.New(t)
	c, key := e.Community("Buckets", "buckets")
	ctx := context.Background()
	e.Clock.Set(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	cols := []map[string]any{{"column": "user", "visible": true, "order": 0}}
	create := func(slug string, extra map[string]any) string {
		body := map[string]any{"name": "Board", "slug": slug, "rankingField": "xps", "displayedColumns": cols, "startDate": "2026-01-01T00:00:00.000Z"}
		for k, v := range extra {
			body[k] = v
		}
		return e.Do(apitest.Request{Method: "POST", Path: "/v1/leaderboards", Key: key, Body: body}).Expect(t, 201).String("data._id")
	}
	plain := create("plain", nil)
	positive := create("positive", map[string]any{"onlyPositiveRanks": true})
	dummies := create("dummies", map[string]any{"includeDummyUsers": true,
		"dummyUsers": []map[string]any{{"name": "Zed", "score": 1002}, {"name": "Yan", "score": 129}}})

	type member struct {
		u       user.User
		score   int64
		reached time.Time
		deleted bool
	}
	// Bucket 1000-1007 holds eleven scores (two pairs reached at the same
	// moment); 2047/2048 and 8191/8192 straddle groups.
	scores := []int64{1000, 1000, 1001, 1006, 1007, 1007, 1003, 5000, 4100, 130, 129, 129, 127, 64, 0,
		70000, 999_999, 1002, 1005, 1004, 2048, 2049, 2047, 8191, 8192, 1001, 1000, 3, 1001, 1006}
	var ms []*member
	for i, s := range scores {
		if i%7 != 1 { // every seventh award lands at the same moment as the one before
			e.Clock.Advance(time.Second)
		}
		m := &member{u: e.Member(c, fmt.Sprintf("m%02d", i), user.MemberOptions{Joined: true}), score: s}
		if s > 0 {
			award(t, e, c, m.u, s)
		} else {
			award(t, e, c, m.u, 1)
			award(t, e, c, m.u, -1) // on the board at 0
		}
		m.reached = e.Clock.Now()
		ms = append(ms, m)
	}
	for _, i := range []int{2, 15} { // 1001 (lower half of its bucket) and 70000
		if err := e.App.UserService.Manage(ctx, c, user.ActionDelete, ms[i].u.Username); err != nil {
			t.Fatal(err)
		}
		ms[i].deleted = true
	}
	var live []*member
	for _, m := range ms {
		if !m.deleted {
			live = append(live, m)
		}
	}
	slices.SortFunc(live, func(a, b *member) int {
		if a.score != b.score {
			return cmpInt(b.score, a.score)
		}
		if !a.reached.Equal(b.reached) {
			return a.reached.Compare(b.reached)
		}
		return strings.Compare(a.u.ID, b.u.ID)
	})
	check := func(board string, want []string, rankOf map[string]int) {
		t.Helper()
		expectRanking(t, ranking(t, e, key, board, "timeFilter=all-time&limit=100"), want...)
		for _, m := range live {
			res := e.Do(apitest.Request{Method: "GET", Path: "/v1/leaderboards/" + board + "/standings/member?timeFilter=all-time&identifier=" +
				m.u.Username + "&identifier_type=username", Key: key}).Expect(t, 200)
			rank, ok := rankOf[m.u.Username]
			if !ok {
				if res.Get("data.ranked") != false {
					t.Fatalf("%s ranked: %s", m.u.Username, res.Body)
				}
				continue
			}
			if res.Get("data.entry.rank") != float64(rank) || res.Get("data.total") != float64(len(want)) {
				t.Fatalf("%s (score %d): want rank %d of %d: %s", m.u.Username, m.score, rank, len(want), res.Body)
			}
		}
	}
	var want, wantPositive, wantDummies []string
	rankOf, rankPositive, rankDummies := map[string]int{}, map[string]int{}, map[string]int{}
	dummy := []struct {
		name  string
		score int64
	}{{"Zed", 1002}, {"Yan", 129}}
	for i, m := range live {
		rankOf[m.u.Username] = i + 1
		want = append(want, fmt.Sprintf("%s:%d@%d", m.u.Username, m.score, i+1))
		if m.score > 0 {
			rankPositive[m.u.Username] = len(wantPositive) + 1
			wantPositive = append(wantPositive, fmt.Sprintf("%s:%d@%d", m.u.Username, m.score, len(wantPositive)+1))
		}
		for len(dummy) > 0 && m.score < dummy[0].score { // a dummy follows the members of its score
			wantDummies = append(wantDummies, fmt.Sprintf("%s:%d@%d", dummy[0].name, dummy[0].score, len(wantDummies)+1))
			dummy = dummy[1:]
		}
		rankDummies[m.u.Username] = len(wantDummies) + 1
		wantDummies = append(wantDummies, fmt.Sprintf("%s:%d@%d", m.u.Username, m.score, len(wantDummies)+1))
	}
	check(plain, want, rankOf)
	check(positive, wantPositive, rankPositive)
	check(dummies, wantDummies, rankDummies)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
