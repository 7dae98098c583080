package httpapi_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/user"
)

// rewardBadge is a badge body granting xp and coins on each award.
func rewardBadge(title, action string, xpAmount, coins int, multiple bool) map[string]any {
	return map[string]any{"title": title, "action": action, "quantity": 3, "description": "Trade once", "image": "https://cdn.example.com/b.png",
		"award": true, "awardXpQuantity": xpAmount, "awardCurrency": true, "awardCurrencyQuantity": coins, "multipleAwards": multiple}
}

// createBadge creates a badge and returns its id.
func createBadge(t *testing.T, e *apitest.Env, key string, body map[string]any) string {
	t.Helper()
	return e.Do(apitest.Request{Method: "POST", Path: "/v1/badges", Key: key, Body: body}).Expect(t, 200).String("body.id")
}

// awardTo awards badgeID to the member named by body.
func awardTo(e *apitest.Env, key, badgeID string, body map[string]any, headers map[string]string) *apitest.Response {
	return e.Do(apitest.Request{Method: "POST", Path: "/v1/badges/" + badgeID + "/award", Key: key, Body: body, Headers: headers})
}

// gamificationBooks checks u's books: the XP total equals the sum of the
// gamification log and the coins balance the sum of the ledger. It returns
// the XP total, the coins balance and the number of badge log rows.
func gamificationBooks(t *testing.T, e *apitest.Env, communityID string, u user.User) (xpTotal, coins int64, badgeLogs int) {
	t.Helper()
	ctx := context.Background()
	xpTotal, err := e.App.XP.Total(ctx, communityID, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	var sum, logCoins int64
	if err := e.App.DB.QueryRow(ctx, `SELECT COALESCE(SUM(xp), 0), COALESCE(SUM(coins), 0), COALESCE(SUM(CASE WHEN action = 'badge' THEN 1 ELSE 0 END), 0)
		FROM gamification_logs WHERE community_id = ? AND user_id = ?`, communityID, u.ID).Scan(&sum, &logCoins, &badgeLogs); err != nil {
		t.Fatal(err)
	}
	coins = ledgerSums(t, e, communityID, u)
	if sum != xpTotal || logCoins != coins {
		t.Fatalf("xp total %d, log sum %d; coins %d, log coins %d", xpTotal, sum, coins, logCoins)
	}
	return xpTotal, coins, badgeLogs
}

func TestBadgeCreateUpdateListDelete(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Badges A", "badges-a")

	// The documented create: x-api-key, /api/v1 prefix, numbers and booleans answered as strings.
	res := e.Do(apitest.Request{Method: "POST", Path: "/api/v1/badges", Headers: legacyKey(key), Body: map[string]any{
		"title": "It's title", "action": "custom", "quantity": 100, "image": "", "description": "This is description",
		"darkImage": "", "lightImage": "", "awarded": false, "applied": false, "enabledDarkAndLight": false, "award": true,
		"awardCurrency": true, "awardXpQuantity": 100, "awardCurrencyQuantity": 100, "attachRequired": true}}).Expect(t, 200)
	id := res.String("body.id")
	if res.Get("meta.success") != true || res.String("meta.message") != "Badge has been created successfully" ||
		res.String("meta.devMessage") != "Badge has been created successfully" || res.Get("body.quantity") != "100" ||
		res.Get("body.attachRequired") != "true" || res.Get("body.awarded") != "false" || res.Get("body.award") != "true" ||
		res.Get("body.awardXpQuantity") != "100" || res.Get("body.multipleAwards") != "false" || res.String("body.action") != "custom" {
		t.Fatalf("create: %s", res.Body)
	}
	second := createBadge(t, e, key, rewardBadge("Major", "trade", 10, 5, true))

	// Update: only the fields sent change; /api/v1 form.
	res = e.Do(apitest.Request{Method: "PUT", Path: "/api/v1/badges/" + id, Key: key,
		Body: map[string]any{"quantity": 3, "attachRequired": false, "darkImage": "https://cdn.example.com/d.png"}}).Expect(t, 200)
	if res.String("meta.message") != "Badge has been updated successfully" || res.Get("body.quantity") != "3" ||
		res.Get("body.attachRequired") != "false" || res.String("body.title") != "It's title" ||
		res.String("body.darkImage") != "https://cdn.example.com/d.png" || res.Get("body.awardCurrencyQuantity") != "100" {
		t.Fatalf("update: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/badges/" + id, Key: key}).Expect(t, 200)
	if res.Get("body.quantity") != "3" {
		t.Fatalf("get: %s", res.Body)
	}

	// Titles are unique per community, case-insensitively.
	e.Do(apitest.Request{Method: "POST", Path: "/v1/badges", Key: key, Body: map[string]any{"title": "MAJOR", "action": "x"}}).Expect(t, 409)
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/badges/" + id, Key: key, Body: map[string]any{"title": "major"}}).Expect(t, 409)

	// Every offending field is named; nothing is written.
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/badges", Key: key, Body: map[string]any{
		"quantity": -1, "image": "ftp://x", "awardXpQuantity": 2_000_000, "award": nil}}).Expect(t, 400)
	if got := res.ErrorFields(); !slices.Equal(got, []string{"title", "action", "image", "quantity", "awardXpQuantity", "award"}) {
		t.Fatalf("fields %v: %s", got, res.Body)
	}
	if res.Get("meta.success") != false || res.Get("body") != nil {
		t.Fatalf("legacy error body: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/badges", Key: key, Body: map[string]any{"title": 5, "action": "x", "award": "yes"}}).Expect(t, 400)
	if got := res.ErrorFields(); !slices.Equal(got, []string{"award", "title"}) && !slices.Equal(got, []string{"title", "award"}) {
		t.Fatalf("type errors %v: %s", got, res.Body)
	}
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/badges/" + id, Key: key, Body: map[string]any{"title": ""}}).Expect(t, 400)

	// List: paging and the action filter.
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/badges?limit=1", Key: key}).Expect(t, 200)
	if res.Get("meta.total") != float64(2) || res.Get("meta.limit") != float64(1) || res.String("body.0.id") != id {
		t.Fatalf("list: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/apis/badges?action=trade", Headers: legacyKey(key)}).Expect(t, 200)
	if res.Get("meta.total") != float64(1) || res.String("body.0.id") != second {
		t.Fatalf("filtered list: %s", res.Body)
	}
	if got := e.Do(apitest.Request{Method: "GET", Path: "/v1/badges?limit=0&skip=-1", Key: key}).Expect(t, 400).ErrorFields(); len(got) != 2 {
		t.Fatalf("paging errors %v", got)
	}

	// Delete answers the badge; it is gone afterwards.
	res = e.Do(apitest.Request{Method: "DELETE", Path: "/v1/badges/" + id, Key: key}).Expect(t, 200)
	if res.String("body.id") != id || res.String("meta.message") != "Badge has been deleted successfully" {
		t.Fatalf("delete: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/badges/" + id, Key: key}).Expect(t, 404)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/badges/" + id, Key: key}).Expect(t, 404)
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/badges/not-an-id", Key: key, Body: map[string]any{"title": "x"}}).Expect(t, 404)

	want := []string{"badge.created", "badge.created", "badge.updated", "badge.deleted"}
	apitest.WaitFor(t, "badge events", func() bool {
		return slices.Equal(e.EventTypes(a, "badge.created", "badge.updated", "badge.deleted"), want)
	})
}

func TestBadgeAuthAndTenancy(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Badges A", "badges-a")
	b, keyB := e.Community("Badges B", "badges-b")
	id := createBadge(t, e, key, rewardBadge("Gold", "trade", 10, 0, false))
	ann := e.Member(a, "ann", user.MemberOptions{Joined: true})
	bob := e.Member(b, "bob", user.MemberOptions{Joined: true})
	_, readOnly := keyWith(t, e, a, 30, "getBadges")

	cases := []struct {
		name, method, path, key string
		headers                 map[string]string
		body                    any
		want                    int
	}{
		{"no credentials", "GET", "/v1/badges", "", nil, nil, 401},
		{"bad key", "GET", "/v1/badges", "", legacyKey("00"), nil, 401},
		{"read key cannot create", "POST", "/v1/badges", readOnly, nil, map[string]any{"title": "t", "action": "a"}, 403},
		{"read key cannot award", "POST", "/v1/badges/" + id + "/award", readOnly, nil, map[string]any{"userId": ann.ID}, 403},
		{"read key cannot delete", "DELETE", "/v1/badges/" + id, readOnly, nil, nil, 403},
		{"other community get", "GET", "/v1/badges/" + id, keyB, nil, nil, 404},
		{"other community update", "PUT", "/v1/badges/" + id, keyB, nil, map[string]any{"title": "x"}, 404},
		{"other community delete", "DELETE", "/v1/badges/" + id, keyB, nil, nil, 404},
		{"other community award", "POST", "/v1/badges/" + id + "/award", keyB, nil, map[string]any{"userId": bob.ID}, 404},
		{"other community remove", "POST", "/v1/badges/" + id + "/remove", keyB, nil, map[string]any{"userId": bob.ID}, 404},
		{"member of another community", "POST", "/v1/badges/" + id + "/award", key, nil, map[string]any{"userId": bob.ID}, 404},
		{"other community's member badges", "GET", "/v1/users/" + ann.ID + "/badges", keyB, nil, nil, 404},
		{"other community's applications", "GET", "/v1/communities/" + a + "/badge-applications", keyB, nil, nil, 403},
		{"user token on a key route", "GET", "/v1/badges", e.SignIn(a, "ann@example.com"), nil, nil, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.Do(apitest.Request{Method: tc.method, Path: tc.path, Key: tc.key, Headers: tc.headers, Body: tc.body}).Expect(t, tc.want)
		})
	}
	// The read key reads; B's list does not show A's badge.
	e.Do(apitest.Request{Method: "GET", Path: "/v1/badges/" + id, Key: readOnly}).Expect(t, 200)
	if res := e.Do(apitest.Request{Method: "GET", Path: "/v1/badges", Key: keyB}).Expect(t, 200); res.Get("meta.total") != float64(0) {
		t.Fatalf("B sees A's badges: %s", res.Body)
	}
}

// awardSetup starts a community with member ann, a single-award badge
// granting xp and coins and a multi-award badge granting multiXP and
// multiCoins.
func awardSetup(t *testing.T, xpAmount, coins, multiXP, multiCoins int) (e *apitest.Env, communityID, key string, ann user.User, single, multi string) {
	e = apitest.New(t)
	communityID, key = e.Community("Badges A", "badges-a")
	ann = e.Member(communityID, "ann", user.MemberOptions{Joined: true})
	single = createBadge(t, e, key, rewardBadge("Major", "trade", xpAmount, coins, false))
	multi = createBadge(t, e, key, rewardBadge("Streaker", "streak", multiXP, multiCoins, true))
	return e, communityID, key, ann, single, multi
}

func TestBadgeAwardAndRemove(t *testing.T) {
	e, a, key, ann, single, multi := awardSetup(t, 100, 50, 10, 0)
	plain := createBadge(t, e, key, map[string]any{"title": "Plain", "action": "custom", "awardXpQuantity": 500})

	// The documented award: bare root path, x-api-key, userId as the numeric id.
	res := e.Do(apitest.Request{Method: "POST", Path: "/badges/" + single + "/award", Headers: legacyKey(key),
		Body: map[string]any{"userId": strconv.FormatInt(ann.NumID, 10)}}).Expect(t, 200)
	if res.String("meta.message") != "Badge has been rewarded successfully" || res.String("body.0.id") != single ||
		res.Get("body.0.awarded") != "true" || res.Get("body.0.count") != "1" || res.Get("body.0.quantity") != "3" {
		t.Fatalf("award: %s", res.Body)
	}
	if xpTotal, coins, logs := gamificationBooks(t, e, a, ann); xpTotal != 100 || coins != 50 || logs != 1 {
		t.Fatalf("after award: xp %d coins %d logs %d", xpTotal, coins, logs)
	}
	// Held once: again is 409, quantity over 1 is 400, neither grants anything.
	if res := awardTo(e, key, single, map[string]any{"userId": ann.ID}, nil).Expect(t, 409); res.String("meta.message") != "User already has this badge." {
		t.Fatalf("second award: %s", res.Body)
	}
	if got := awardTo(e, key, single, map[string]any{"userId": ann.NumID, "quantity": 2}, nil).Expect(t, 400).ErrorFields(); !slices.Equal(got, []string{"quantity"}) {
		t.Fatalf("quantity on a single-award badge: %v", got)
	}
	// A badge whose award flags are off grants nothing (awardXpQuantity alone is not enough).
	awardTo(e, key, plain, map[string]any{"identifier": "ANN@example.com", "identifier_type": "email"}, nil).Expect(t, 200)
	if xpTotal, coins, logs := gamificationBooks(t, e, a, ann); xpTotal != 100 || coins != 50 || logs != 1 {
		t.Fatalf("after plain award: xp %d coins %d logs %d", xpTotal, coins, logs)
	}

	// Multi-award: quantity multiplies the rewards; by identifier.
	e.Clock.Advance(time.Second)
	res = awardTo(e, key, multi, map[string]any{"identifier": "ann", "identifier_type": "username", "quantity": 3}, nil).Expect(t, 200)
	if res.Get("body.0.count") != "3" || res.Get("body.0.multipleAwards") != "true" {
		t.Fatalf("multi award: %s", res.Body)
	}
	awardTo(e, key, multi, map[string]any{"userId": ann.ID}, nil).Expect(t, 200)
	if xpTotal, _, logs := gamificationBooks(t, e, a, ann); xpTotal != 140 || logs != 3 {
		t.Fatalf("after multi awards: xp %d logs %d", xpTotal, logs)
	}

	// An Idempotency-Key retry answers the first award again and grants once.
	idem := map[string]string{"Idempotency-Key": "award-multi-1"}
	first := awardTo(e, key, multi, map[string]any{"userId": ann.ID}, idem).Expect(t, 200)
	again := awardTo(e, key, multi, map[string]any{"userId": ann.ID}, idem).Expect(t, 200)
	if string(first.Body) != string(again.Body) || again.Header.Get("Idempotent-Replayed") != "true" || first.Get("body.0.count") != "5" {
		t.Fatalf("idempotent award: %s / %s", first.Body, again.Body)
	}
	if xpTotal, _, logs := gamificationBooks(t, e, a, ann); xpTotal != 150 || logs != 4 {
		t.Fatalf("after idempotent awards: xp %d logs %d", xpTotal, logs)
	}

	// Bad member references name their fields.
	for _, tc := range []struct {
		body map[string]any
		want []string
	}{
		{map[string]any{}, []string{"userId"}},
		{map[string]any{"userId": true}, []string{"userId"}},
		{map[string]any{"userId": ann.ID, "identifier": "ann"}, []string{"identifier"}},
		{map[string]any{"identifier": "ann", "identifier_type": "phone"}, []string{"identifier_type"}},
		{map[string]any{"userId": ann.ID, "quantity": 0}, []string{"quantity"}},
	} {
		if got := awardTo(e, key, multi, tc.body, nil).Expect(t, 400).ErrorFields(); !slices.Equal(got, tc.want) {
			t.Fatalf("%v: fields %v", tc.body, got)
		}
	}
	awardTo(e, key, multi, map[string]any{"userId": "999999"}, nil).Expect(t, 404)
	awardTo(e, key, "0123456789abcdef01234567", map[string]any{"userId": ann.ID}, nil).Expect(t, 404)

	// The member's badges, most recently awarded first.
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/users/" + strconv.FormatInt(ann.NumID, 10) + "/badges", Key: key}).Expect(t, 200)
	if res.Get("meta.total") != float64(3) || res.String("body.0.id") != multi || res.Get("body.0.count") != "5" || res.Get("body.0.awarded") != "true" {
		t.Fatalf("member badges: %s", res.Body)
	}

	// Remove: documented body [], nothing taken back; quantity takes some of a multi-award badge.
	res = e.Do(apitest.Request{Method: "POST", Path: "/api/v1/badges/" + single + "/remove", Headers: legacyKey(key),
		Body: map[string]any{"userId": strconv.FormatInt(ann.NumID, 10)}}).Expect(t, 200)
	if res.String("meta.message") != "Badge has been removed successfully" || fmt.Sprint(res.Get("body")) != "[]" {
		t.Fatalf("remove: %s", res.Body)
	}
	if res := e.Do(apitest.Request{Method: "POST", Path: "/v1/badges/" + single + "/remove", Key: key,
		Body: map[string]any{"userId": ann.ID}}).Expect(t, 404); res.String("meta.message") != "User does not have this badge." {
		t.Fatalf("remove again: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/badges/" + multi + "/remove", Key: key, Body: map[string]any{"userId": ann.ID, "quantity": 2}}).Expect(t, 200)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/badges/" + multi + "/remove", Key: key, Body: map[string]any{"userId": ann.ID, "quantity": -1}}).Expect(t, 400)
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/users/" + ann.ID + "/badges", Key: key}).Expect(t, 200)
	if res.Get("meta.total") != float64(2) || res.Get("body.0.count") != "3" {
		t.Fatalf("after removals: %s", res.Body)
	}
	if xpTotal, coins, _ := gamificationBooks(t, e, a, ann); xpTotal != 150 || coins != 50 {
		t.Fatalf("removal took something back: xp %d coins %d", xpTotal, coins)
	}
	// Removed, a single-award badge can be awarded (and rewarded) again.
	awardTo(e, key, single, map[string]any{"userId": ann.ID}, nil).Expect(t, 200)
	if xpTotal, coins, _ := gamificationBooks(t, e, a, ann); xpTotal != 250 || coins != 100 {
		t.Fatalf("re-award: xp %d coins %d", xpTotal, coins)
	}
	// Deleting a badge takes it from its holders.
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/badges/" + multi, Key: key}).Expect(t, 200)
	if res := e.Do(apitest.Request{Method: "GET", Path: "/v1/users/" + ann.ID + "/badges", Key: key}).Expect(t, 200); res.Get("meta.total") != float64(2) {
		t.Fatalf("after delete: %s", res.Body)
	}
	apitest.WaitFor(t, "award events", func() bool {
		return len(e.EventTypes(a, "badge.awarded")) == 6 && len(e.EventTypes(a, "badge.removed")) == 2
	})
}

func TestBadgeConcurrentAwards(t *testing.T) {
	e, a, key, ann, single, multi := awardSetup(t, 7, 3, 5, 2)

	run := func(badgeID string) map[int]int {
		const n = 30
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			statuses = map[int]int{}
		)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := awardTo(e, key, badgeID, map[string]any{"userId": ann.ID}, nil)
				mu.Lock()
				statuses[res.Status]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		return statuses
	}
	if got := run(single); got[200] != 1 || got[409] != 29 {
		t.Fatalf("single-award statuses %v", got)
	}
	if xpTotal, coins, logs := gamificationBooks(t, e, a, ann); xpTotal != 7 || coins != 3 || logs != 1 {
		t.Fatalf("single: xp %d coins %d logs %d", xpTotal, coins, logs)
	}
	if got := run(multi); got[200] != 30 {
		t.Fatalf("multi-award statuses %v", got)
	}
	xpTotal, coins, logs := gamificationBooks(t, e, a, ann)
	if xpTotal != 7+30*5 || coins != 3+30*2 || logs != 31 {
		t.Fatalf("multi: xp %d coins %d logs %d", xpTotal, coins, logs)
	}
	var awards, times int64
	ctx := context.Background()
	if err := e.App.DB.QueryRow(ctx, "SELECT COUNT(*) FROM badge_awards WHERE badge_id = ?", multi).Scan(&awards); err != nil {
		t.Fatal(err)
	}
	if err := e.App.DB.QueryRow(ctx, "SELECT times FROM badge_holdings WHERE badge_id = ? AND user_id = ?", multi, ann.ID).Scan(&times); err != nil {
		t.Fatal(err)
	}
	if awards != 30 || times != 30 {
		t.Fatalf("multi: %d award rows, held %d times", awards, times)
	}
}

func TestBadgeApplications(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Badges A", "badges-a")
	b, keyB := e.Community("Badges B", "badges-b")
	e.Member(a, "ann", user.MemberOptions{Joined: true})
	e.Member(a, "cid", user.MemberOptions{Joined: true})
	mod := e.Member(a, "mo", user.MemberOptions{Joined: true})
	e.Member(b, "bob", user.MemberOptions{Joined: true})
	annToken, cidToken, modToken := e.SignIn(a, "ann@example.com"), e.SignIn(a, "cid@example.com"), e.SignIn(a, "mo@example.com")
	bobToken := e.SignIn(b, "bob@example.com")
	ann, _ := e.App.Users.Find(context.Background(), "ann@example.com", user.ByEmail)

	// mo may manage messages through a role.
	roleID := e.Do(apitest.Request{Method: "POST", Path: "/v1/roles", Key: key,
		Body: map[string]any{"title": "Moderator", "channelPermissions": map[string]any{"manage_messages": true}}}).Expect(t, 201).String("body._id")
	e.Do(apitest.Request{Method: "POST", Path: "/v1/roles/" + roleID + "/add", Key: key, Body: map[string]any{"userId": mod.ID}}).Expect(t, 200)

	custom := createBadge(t, e, key, map[string]any{"title": "Chart master", "action": "custom", "attachRequired": true,
		"award": true, "awardXpQuantity": 40, "awardCurrency": true, "awardCurrencyQuantity": 15})
	auto := createBadge(t, e, key, rewardBadge("Auto", "trade", 1, 0, false))
	base := "/v1/communities/" + a
	apply := func(token, badgeID string, body map[string]any) *apitest.Response {
		return e.Do(apitest.Request{Method: "POST", Path: base + "/badges/" + badgeID + "/apply", Key: token, Body: body})
	}

	if got := apply(annToken, custom, map[string]any{"proofUrl": "javascript:alert(1)"}).Expect(t, 400).ErrorFields(); !slices.Equal(got, []string{"proofUrl"}) {
		t.Fatalf("bad proof: %v", got)
	}
	if got := apply(annToken, custom, map[string]any{}).Expect(t, 400).ErrorFields(); !slices.Equal(got, []string{"proofUrl"}) {
		t.Fatalf("missing proof: %v", got)
	}
	res := apply(annToken, custom, map[string]any{"proofText": "statement", "proofUrl": "https://example.com/s.pdf"}).Expect(t, 201)
	appID := res.String("body._id")
	if res.String("body.status") != "pending" || res.String("body.userId") != ann.ID || res.String("body.proofUrl") != "https://example.com/s.pdf" {
		t.Fatalf("apply: %s", res.Body)
	}
	apply(annToken, custom, map[string]any{"proofText": "again"}).Expect(t, 409)
	apply(annToken, auto, map[string]any{}).Expect(t, 409)
	apply(annToken, "0123456789abcdef01234567", map[string]any{}).Expect(t, 404)
	apply(bobToken, custom, map[string]any{"proofText": "x"}).Expect(t, 403)
	apply(key, custom, map[string]any{"proofText": "x"}).Expect(t, 403)
	cidApp := apply(cidToken, custom, map[string]any{"proofText": "mine"}).Expect(t, 201).String("body._id")

	// Members see their own applications; moderators and keys see all, filtered.
	list := func(token, query string) *apitest.Response {
		return e.Do(apitest.Request{Method: "GET", Path: base + "/badge-applications" + query, Key: token}).Expect(t, 200)
	}
	if res := list(annToken, ""); res.Get("meta.total") != float64(1) || res.String("body.0._id") != appID {
		t.Fatalf("ann's list: %s", res.Body)
	}
	if res := list(modToken, "?status=pending"); res.Get("meta.total") != float64(2) || res.String("body.0._id") != cidApp {
		t.Fatalf("moderator's list: %s", res.Body)
	}
	if res := list(key, "?userId="+strconv.FormatInt(ann.NumID, 10)+"&badgeId="+custom); res.Get("meta.total") != float64(1) {
		t.Fatalf("key's filtered list: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: base + "/badge-applications?status=maybe", Key: key}).Expect(t, 400)

	// Only moderators decide.
	decide := func(token, appID, verdict string, body any) *apitest.Response {
		return e.Do(apitest.Request{Method: "POST", Path: base + "/badge-applications/" + appID + "/" + verdict, Key: token, Body: body})
	}
	decide(annToken, appID, "approve", nil).Expect(t, 403)
	decide(keyB, appID, "approve", nil).Expect(t, 403)
	decide(modToken, "0123456789abcdef01234567", "approve", nil).Expect(t, 404)
	res = decide(modToken, appID, "approve", nil).Expect(t, 200)
	if res.String("body.application.status") != "approved" || res.Get("body.award.xp") != float64(40) ||
		res.String("body.application.decidedBy.id") != mod.ID || res.Get("body.badge.awarded") != "true" ||
		res.String("body.application.awardId") != res.String("body.award._id") {
		t.Fatalf("approve: %s", res.Body)
	}
	decide(key, appID, "approve", nil).Expect(t, 409)
	decide(key, appID, "reject", nil).Expect(t, 409)
	if xpTotal, coins, logs := gamificationBooks(t, e, a, ann); xpTotal != 40 || coins != 15 || logs != 1 {
		t.Fatalf("approval rewards: xp %d coins %d logs %d", xpTotal, coins, logs)
	}
	// Holding the single-award badge, ann cannot apply again.
	apply(annToken, custom, map[string]any{"proofText": "more"}).Expect(t, 409)

	if got := decide(key, cidApp, "reject", map[string]any{"reason": strings.Repeat("x", 501)}).Expect(t, 400).ErrorFields(); !slices.Equal(got, []string{"reason"}) {
		t.Fatalf("long reason: %v", got)
	}
	res = decide(e.SignIn(a, "mo@example.com"), cidApp, "reject", map[string]any{"reason": "Statement unreadable"}).Expect(t, 200)
	if res.String("body.application.status") != "rejected" || res.String("body.application.reason") != "Statement unreadable" || res.Get("body.award") != nil {
		t.Fatalf("reject: %s", res.Body)
	}
	want := []string{"badge.applied", "badge.applied", "badge.awarded", "badge.application.approved", "badge.application.rejected"}
	apitest.WaitFor(t, "application events", func() bool {
		return slices.Equal(e.EventTypes(a, "badge.applied", "badge.awarded", "badge.application.approved", "badge.application.rejected"), want)
	})
}
