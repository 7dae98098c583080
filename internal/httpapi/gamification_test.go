package httpapi_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/gamification"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/wallet"
	"github.com/rallyhq/rally/internal/xp"
)

// emit appends an outbox event in its own transaction, as a domain would.
func xpTotal(t *testing.T, e *apitest.Env, communityID, userID string) int64 {
	t.Helper()
	n, err := e.App.XP.Total(context.Background(), communityID, userID)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func countRows(t *testing.T, e *apitest.Env, q string, args ...any) int {
	t.Helper()
	var n int
	if err := e.App.DB.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func setXP(t *testing.T, e *apitest.Env, communityID, key string, body map[string]any) *apitest.Response {
	t.Helper()
	return e.Do(apitest.Request{Method: "POST", Path: "/v1/gamifications/" + communityID + "/xp-setting", Key: key, Body: body}).Expect(t, 200)
}

func TestXPSettingRoundTrip(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("XP A", "xp-a")
	b, keyB := e.Community("XP B", "xp-b")

	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/tiers", Key: key}).Expect(t, 200)
	if res.Get("data.xpSetting.message.xp") != float64(10) || res.String("data.serverId") != a || res.Get("data.__v") != float64(0) {
		t.Fatalf("defaults: %s", res.Body)
	}
	firstID := res.String("data._id")

	// Every documented path form reaches the handler; absent fields keep
	// their values.
	for i, prefix := range []string{"/v1", "", "/api/v1", "/apis/v1"} {
		res := e.Do(apitest.Request{Method: "POST", Path: prefix + "/gamifications/" + a + "/xp-setting", Key: key,
			Body: map[string]any{"message": map[string]any{"xp": 15 + i, "coins": 3, "time": 5}, "visit": map[string]any{"enabled": true, "xp": 7}}}).
			Expect(t, 200)
		if res.Get("meta.success") != true || res.String("meta.message") != "XP Setting has been updated successfully" ||
			res.String("meta.devMessage") != "XP Setting has been updated successfully" {
			t.Fatalf("envelope: %s", res.Body)
		}
		if res.Get("body.xpSetting.message.xp") != float64(15+i) || res.Get("body.xpSetting.message.enabled") != true ||
			res.Get("body.xpSetting.message.coins") != float64(3) || res.Get("body.xpSetting.visit.enabled") != true ||
			res.Get("body.__v") != float64(i+1) || res.String("body._id") != firstID {
			t.Fatalf("%q: %s", prefix, res.Body)
		}
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/tiers", Key: key}).Expect(t, 200)
	if res.Get("data.xpSetting.message.xp") != float64(18) || res.Get("data.xpSetting.message.time") != float64(5) ||
		res.Get("data.xpSetting.reply.xp") != float64(10) || res.String("message") != "Read tiers and XP settings success." {
		t.Fatalf("round trip: %s", res.Body)
	}
	// Another community's document is its own.
	if res := e.Do(apitest.Request{Method: "GET", Path: "/v1/tiers", Key: keyB}).Expect(t, 200); res.Get("data.xpSetting.message.xp") != float64(10) {
		t.Fatalf("tenancy: %s", res.Body)
	}

	// 400 names every offending field.
	bad := e.Do(apitest.Request{Method: "POST", Path: "/v1/gamifications/" + a + "/xp-setting", Key: key,
		Body: map[string]any{"enabled": "yes", "message": map[string]any{"xp": -1, "time": "x", "coins": 2_000_000}, "react": 5,
			"reply": map[string]any{"enabled": nil}}}).Expect(t, 400)
	if got := sortedCopy(bad.ErrorFields()); !slices.Equal(got, []string{"enabled", "message.coins", "message.time", "message.xp", "react", "reply.enabled"}) {
		t.Fatalf("fields %v: %s", got, bad.Body)
	}
	if bad.Get("meta.success") != false {
		t.Fatalf("error envelope: %s", bad.Body)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/gamifications/" + a + "/xp-setting", Key: key, Body: "[1]"}).Expect(t, 400)

	// Auth: no key, a key without the permission, another community's id,
	// owners and administrators by session, plain members refused.
	_, readOnly := keyWith(t, e, a, 0, "getTiers")
	_, manageOnly := keyWith(t, e, a, 0, "manageGamification")
	body := map[string]any{"enabled": true}
	for _, p := range []string{"/v1/gamifications/" + a + "/xp-setting", "/v1/gamifications/" + a + "/tier-setting"} {
		e.Do(apitest.Request{Method: "POST", Path: p, Body: body}).Expect(t, 401)
		e.Do(apitest.Request{Method: "POST", Path: p, Key: readOnly, Body: body}).Expect(t, 403)
		e.Do(apitest.Request{Method: "POST", Path: p, Key: keyB, Body: body}).Expect(t, 403)
		e.Do(apitest.Request{Method: "POST", Path: p, Key: manageOnly, Body: body}).Expect(t, 200)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/tiers"}).Expect(t, 401)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/tiers", Key: manageOnly}).Expect(t, 403)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/tiers", Key: readOnly}).Expect(t, 200)

	e.Member(a, "owner", user.MemberOptions{AccessLevel: 1, Joined: true, Owner: true})
	e.Member(a, "plain", user.MemberOptions{AccessLevel: 1, Joined: true})
	owner := e.SignIn(a, "owner@example.com")
	plain := e.SignIn(a, "plain@example.com")
	res = e.Do(apitest.Request{Method: "POST", Path: "/gamifications/" + a + "/xp-setting", Key: owner,
		Body: map[string]any{"react": map[string]any{"coins": 1}}}).Expect(t, 200)
	if res.Get("body.xpSetting.react.coins") != float64(1) {
		t.Fatalf("owner update: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/gamifications/" + a + "/xp-setting", Key: plain, Body: body}).Expect(t, 403)
	e.Do(apitest.Request{Method: "POST", Path: "/gamifications/" + b + "/xp-setting", Key: owner, Body: body}).Expect(t, 403)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/tiers", Key: owner}).Expect(t, 401)
}

// tier builds a tier body with three level thresholds.
func tier(name string, xps ...int) map[string]any {
	levels := make([]map[string]any, len(xps))
	for i, x := range xps {
		levels[i] = map[string]any{"xp": x}
	}
	return map[string]any{"name": name, "icon": "https://cdn.example.com/" + name + ".png", "levels": levels}
}

func TestTierSettingValidation(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Tiers", "tiers")
	path := "/api/v1/gamifications/" + a + "/tier-setting"
	res := e.Do(apitest.Request{Method: "POST", Path: path, Key: key, Body: map[string]any{
		"enabled": true, "display": map[string]any{"levels": false, "tiers": true},
		"tiers": []any{tier("Rookie", 0, 100, 200), tier("Member", 300, 400, 500)}}}).Expect(t, 200)
	if res.Get("body.tiers.enabled") != true || res.Get("body.tiers.display.levels") != false ||
		res.Get("body.tiers.tiers.1.levels.2.xp") != float64(500) || res.String("body.tiers.tiers.1.name") != "Member" ||
		res.String("meta.message") != "XP Setting has been updated successfully" {
		t.Fatalf("tiers: %s", res.Body)
	}
	got := e.Do(apitest.Request{Method: "GET", Path: "/v1/tiers", Key: key}).Expect(t, 200)
	if got.Get("data.tiers.tiers.0.levels.1.xp") != float64(100) || got.Get("data.tiers.display.tiers") != true {
		t.Fatalf("GA7: %s", got.Body)
	}

	cases := []struct {
		name  string
		body  map[string]any
		wants []string
	}{
		{"not increasing across tiers", map[string]any{"tiers": []any{tier("A", 10, 20, 30), tier("B", 40, 50, 50)}},
			[]string{"tiers[1].levels[2].xp"}},
		{"decreasing at a tier boundary", map[string]any{"tiers": []any{tier("A", 10, 20, 30), tier("B", 30, 50, 60)}},
			[]string{"tiers[1].levels[0].xp"}},
		{"two levels", map[string]any{"tiers": []any{tier("A", 10, 20)}}, []string{"tiers[0].levels"}},
		{"four levels", map[string]any{"tiers": []any{tier("A", 10, 20, 30, 40)}}, []string{"tiers[0].levels"}},
		{"every field wrong", map[string]any{"tiers": []any{
			map[string]any{"name": "", "levels": []any{map[string]any{}, map[string]any{"xp": -5}, map[string]any{"xp": 1}}},
			tier("a", 5, 6, 7), tier("A", 8, 9, 10)}},
			[]string{"tiers[0].levels[0].xp", "tiers[0].levels[1].xp", "tiers[0].name", "tiers[2].name"}},
		{"wrong types", map[string]any{"enabled": "on", "tiers": "many"}, []string{"enabled", "tiers"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := e.Do(apitest.Request{Method: "POST", Path: path, Key: key, Body: tc.body}).Expect(t, 400)
			if got := sortedCopy(res.ErrorFields()); !slices.Equal(got, tc.wants) {
				t.Fatalf("fields %v, want %v: %s", got, tc.wants, res.Body)
			}
		})
	}
	// Nothing was half-written.
	got = e.Do(apitest.Request{Method: "GET", Path: "/v1/tiers", Key: key}).Expect(t, 200)
	if got.Get("data.tiers.tiers.1.levels.2.xp") != float64(500) || got.Get("data.__v") != float64(0) {
		t.Fatalf("after refusals: %s", got.Body)
	}
	// Tiers need XP on.
	setXP(t, e, a, key, map[string]any{"enabled": false})
	res = e.Do(apitest.Request{Method: "POST", Path: path, Key: key, Body: map[string]any{"enabled": true}}).Expect(t, 400)
	if !slices.Equal(res.ErrorFields(), []string{"enabled"}) {
		t.Fatalf("xp off: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "POST", Path: path, Key: key, Body: map[string]any{"enabled": false}}).Expect(t, 200)
}

func TestLevelAndTierFollowLifetimeXP(t *testing.T) {
	e := apitest.New(t)
	ctx := context.Background()
	a, key := e.Community("Levels", "levels")
	u := e.Member(a, "climber", user.MemberOptions{AccessLevel: 1, Joined: true})
	e.Do(apitest.Request{Method: "POST", Path: "/v1/gamifications/" + a + "/tier-setting", Key: key, Body: map[string]any{
		"enabled": true, "tiers": []any{tier("Rookie", 10, 20, 30), tier("Captain", 40, 50, 60)}}}).Expect(t, 200)
	award := func(n int64) {
		t.Helper()
		if _, _, err := e.App.XP.Award(ctx, xp.Award{CommunityID: a, UserID: u.ID, Action: "badge", XP: n, Actor: wallet.Actor{Kind: wallet.ActorSystem}}); err != nil {
			t.Fatal(err)
		}
	}
	award(5)  // 5: below the first level
	award(10) // 15: Rookie 1 (level and tier change)
	award(2)  // 17: same level
	award(10) // 27: Rookie 2
	award(20) // 47: Captain 1 (level and tier change)
	award(-40)
	levels := e.EventTypes(a, gamification.EventLevelChanged)
	tiers := e.EventTypes(a, gamification.EventTierChanged)
	if len(levels) != 4 || len(tiers) != 3 {
		t.Fatalf("%d level and %d tier events, want 4 and 3", len(levels), len(tiers))
	}
	lv, err := e.App.Gamification.LevelOf(ctx, a, 47)
	if err != nil {
		t.Fatal(err)
	}
	if lv != (gamification.Level{TierName: "Captain", TierIcon: "https://cdn.example.com/Captain.png", Tier: 2, Level: 1, Index: 4}) {
		t.Fatalf("level of 47: %+v", lv)
	}
	if lv, _ := e.App.Gamification.LevelOf(ctx, a, 9); lv.Index != 0 {
		t.Fatalf("below the first level: %+v", lv)
	}
	if lv, _ := e.App.Gamification.LevelOf(ctx, a, 1000); lv.Index != 6 || lv.Level != 3 || lv.TierName != "Captain" {
		t.Fatalf("top: %+v", lv)
	}
	// With tiers off no level events are emitted.
	e.Do(apitest.Request{Method: "POST", Path: "/v1/gamifications/" + a + "/tier-setting", Key: key, Body: map[string]any{"enabled": false}}).Expect(t, 200)
	award(100)
	if n := len(e.EventTypes(a, gamification.EventLevelChanged)); n != 4 {
		t.Fatalf("%d level events with tiers off", n)
	}
	// Get User Data shows the level and tier of lifetime XP (107).
	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/users/info", Key: key, Body: map[string]any{"idOrEmail": "climber"}}).Expect(t, 200)
	if res.Get("data.xp") != float64(107) || res.Get("data.level") != float64(6) || res.String("data.tier.name") != "Captain" ||
		res.Get("data.tier.level") != float64(3) {
		t.Fatalf("user data: %s", res.Body)
	}
	e.Member(a, "fresh", user.MemberOptions{AccessLevel: 1, Joined: true})
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/info", Key: key, Body: map[string]any{"idOrEmail": "fresh"}}).Expect(t, 200)
	if res.Get("data.level") != float64(0) || res.Get("data.tier") != nil {
		t.Fatalf("fresh member: %s", res.Body)
	}
}

func TestRewardSubscriberEndToEnd(t *testing.T) {
	e := apitest.New(t)
	ctx := context.Background()
	a, key := e.Community("Rewards", "rewards")
	u := e.Member(a, "ada", user.MemberOptions{AccessLevel: 1, Joined: true})
	setXP(t, e, a, key, map[string]any{
		"message":  map[string]any{"enabled": true, "xp": 10, "coins": 2, "time": 0},
		"reply":    map[string]any{"enabled": true, "xp": 5, "coins": 0, "time": 0},
		"react":    map[string]any{"enabled": true, "xp": 3, "coins": 1, "time": 0},
		"visit":    map[string]any{"enabled": true, "xp": 7, "coins": 0},
		"refer":    map[string]any{"enabled": true, "xp": 20, "coins": 5},
		"referral": map[string]any{"enabled": true, "xp": 4},
		"object":   map[string]any{"enabled": false},
	})
	e.Emit(a, "message.posted", map[string]any{"userId": u.ID, "messageId": "m1"})
	e.Emit(a, "message.posted", map[string]any{"userId": u.ID, "messageId": "m2", "parentId": "m1"})
	e.Emit(a, "message.posted", map[string]any{"userId": u.ID, "messageId": "m3", "replyTo": "m1"})
	e.Emit(a, "message.reacted", map[string]any{"userId": u.ID, "messageId": "m1"})
	e.Emit(a, "user.visited", map[string]any{"userId": u.ID})
	// Events naming nobody, or strangers, change nothing.
	e.Emit(a, "message.posted", map[string]any{"messageId": "m4"})
	e.Emit(a, "message.posted", map[string]any{"userId": "0123456789abcdef01234567"})
	e.Drain(a, gamification.RewardSubscriberName)
	if got := xpTotal(t, e, a, u.ID); got != 10+5+5+3+7 {
		t.Fatalf("xp %d, want 30", got)
	}
	bal, err := e.App.Wallet.Balances(ctx, a, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bal[wallet.Coins] != 3 {
		t.Fatalf("coins %d, want 3", bal[wallet.Coins])
	}
	if n := countRows(t, e, "SELECT COUNT(*) FROM gamification_logs WHERE community_id = ? AND source_event <> ''", a); n != 5 {
		t.Fatalf("%d awards, want 5", n)
	}

	// Redelivery: rewind the subscriber; nothing is awarded or counted twice.
	if _, err := e.App.DB.Exec(ctx, "UPDATE event_offsets SET last_seq = 0 WHERE subscriber = ? AND community_id = ?",
		gamification.RewardSubscriberName, a); err != nil {
		t.Fatal(err)
	}
	e.Emit(a, "test.nudge", nil)
	e.Drain(a, gamification.RewardSubscriberName)
	if got := xpTotal(t, e, a, u.ID); got != 30 {
		t.Fatalf("xp %d after redelivery, want 30", got)
	}
	if n := countRows(t, e, "SELECT COALESCE(SUM(count), 0) FROM gamification_action_days WHERE community_id = ?", a); n != 5 {
		t.Fatalf("%d actions counted after redelivery, want 5", n)
	}

	// A disabled master switch counts but does not reward.
	setXP(t, e, a, key, map[string]any{"enabled": false})
	e.Emit(a, "message.posted", map[string]any{"userId": u.ID})
	e.Drain(a, gamification.RewardSubscriberName)
	if got := xpTotal(t, e, a, u.ID); got != 30 {
		t.Fatalf("xp %d with XP off", got)
	}
	if n := countRows(t, e, "SELECT COUNT(*) FROM gamification_actions WHERE community_id = ? AND rewarded = ?", a, false); n != 1 {
		t.Fatalf("%d unrewarded actions, want 1", n)
	}
	setXP(t, e, a, key, map[string]any{"enabled": true})

	// A referral through Create New User credits the referrer (refer) and
	// the new member (referral).
	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/users", Key: key, Body: map[string]any{
		"username": "newbie", "email": "newbie@example.com", "referral": "ada"}}).Expect(t, 201)
	newbie := res.String("data._id")
	e.Drain(a, gamification.RewardSubscriberName)
	if got := xpTotal(t, e, a, u.ID); got != 50 {
		t.Fatalf("referrer xp %d, want 50", got)
	}
	if got := xpTotal(t, e, a, newbie); got != 4 {
		t.Fatalf("referred xp %d, want 4", got)
	}
	bal, _ = e.App.Wallet.Balances(ctx, a, u.ID)
	if bal[wallet.Coins] != 8 {
		t.Fatalf("referrer coins %d, want 8", bal[wallet.Coins])
	}
	// user.referred works the same way.
	other := e.Member(a, "other", user.MemberOptions{AccessLevel: 1, Joined: true})
	e.Emit(a, "user.referred", map[string]any{"userId": other.ID, "referredBy": u.ID})
	e.Drain(a, gamification.RewardSubscriberName)
	if got := xpTotal(t, e, a, u.ID); got != 70 {
		t.Fatalf("referrer xp %d, want 70", got)
	}
}

func TestRewardCooldownUnderConcurrency(t *testing.T) {
	e := apitest.New(t)
	ctx := context.Background()
	a, key := e.Community("Cooldown", "cooldown")
	u := e.Member(a, "fast", user.MemberOptions{AccessLevel: 1, Joined: true})
	setXP(t, e, a, key, map[string]any{"react": map[string]any{"enabled": true, "xp": 2, "coins": 1, "time": 5}})

	// Ten reactions in the same second, appended concurrently: one award.
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := e.App.DB.Tx(ctx, func(tx *db.Tx) error {
				return e.App.Outbox.Append(ctx, tx, a, "message.reacted", map[string]any{"userId": u.ID, "messageId": fmt.Sprint(i)})
			}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	e.Drain(a, gamification.RewardSubscriberName)
	if got := xpTotal(t, e, a, u.ID); got != 2 {
		t.Fatalf("xp %d after 10 reactions in one second, want 2", got)
	}

	// Ten concurrent direct recordings a little later: one more award.
	e.Clock.Advance(6 * time.Second)
	at := e.Clock.Now()
	rewarded := make(chan bool, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out, err := e.App.Gamification.RecordAction(ctx, gamification.Activity{CommunityID: a, UserID: u.ID,
				Action: gamification.ActionReact, SourceEvent: fmt.Sprintf("direct-%d", i), At: at})
			if err != nil {
				t.Error(err)
			}
			rewarded <- out.Rewarded
		}(i)
	}
	wg.Wait()
	close(rewarded)
	n := 0
	for r := range rewarded {
		if r {
			n++
		}
	}
	if n != 1 || xpTotal(t, e, a, u.ID) != 4 {
		t.Fatalf("%d of 10 concurrent reactions rewarded, xp %d; want 1 and 4", n, xpTotal(t, e, a, u.ID))
	}
	// 4.999 s later: still cooling down; 5 s after the last reward: earns.
	e.Clock.Advance(4999 * time.Millisecond)
	e.Emit(a, "message.reacted", map[string]any{"userId": u.ID})
	e.Drain(a, gamification.RewardSubscriberName)
	if got := xpTotal(t, e, a, u.ID); got != 4 {
		t.Fatalf("xp %d inside the cooldown", got)
	}
	e.Clock.Advance(time.Millisecond)
	e.Emit(a, "message.reacted", map[string]any{"userId": u.ID})
	e.Drain(a, gamification.RewardSubscriberName)
	if got := xpTotal(t, e, a, u.ID); got != 6 {
		t.Fatalf("xp %d after the cooldown, want 6", got)
	}
	// Totals equal the log; coins equal the ledger; every reaction counted.
	var sum, coins int64
	if err := e.App.DB.QueryRow(ctx, "SELECT COALESCE(SUM(xp), 0), COALESCE(SUM(coins), 0) FROM gamification_logs WHERE community_id = ? AND user_id = ?",
		a, u.ID).Scan(&sum, &coins); err != nil {
		t.Fatal(err)
	}
	bal, _ := e.App.Wallet.Balances(ctx, a, u.ID)
	if sum != 6 || coins != 3 || bal[wallet.Coins] != 3 {
		t.Fatalf("log xp %d coins %d, balance %d", sum, coins, bal[wallet.Coins])
	}
	if got := countRows(t, e, "SELECT COALESCE(SUM(count), 0) FROM gamification_action_days WHERE community_id = ? AND action = ?", a, "react"); got != 22 {
		t.Fatalf("%d reactions counted, want 22", got)
	}
}

func TestGamificationHistoryStatsAndLogs(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("History", "history")
	b, keyB := e.Community("Other", "other")
	ada := e.Member(a, "ada", user.MemberOptions{AccessLevel: 1, Joined: true})
	bob := e.Member(a, "bob", user.MemberOptions{AccessLevel: 1, Joined: true})
	stranger := e.Member(b, "stranger", user.MemberOptions{AccessLevel: 1, Joined: true})
	setXP(t, e, a, key, map[string]any{
		"message": map[string]any{"enabled": true, "xp": 10, "coins": 2, "time": 0},
		"reply":   map[string]any{"enabled": true, "xp": 5, "coins": 1, "time": 0},
		"react":   map[string]any{"enabled": true, "xp": 1, "coins": 0, "time": 3600},
	})
	// Day 1 (two days ago): ada posts twice and reacts twice (one reward);
	// bob posts once. Day 2: nothing. Day 3 (today): ada replies.
	e.Clock.Set(time.Date(2026, 3, 10, 23, 59, 0, 0, time.UTC))
	e.Emit(a, "message.posted", map[string]any{"userId": ada.ID})
	e.Emit(a, "message.posted", map[string]any{"userId": ada.ID})
	e.Emit(a, "message.reacted", map[string]any{"userId": ada.ID})
	e.Emit(a, "message.reacted", map[string]any{"userId": ada.ID})
	e.Emit(a, "message.posted", map[string]any{"userId": bob.ID})
	e.Drain(a, gamification.RewardSubscriberName)
	e.Clock.Set(time.Date(2026, 3, 12, 0, 0, 1, 0, time.UTC))
	e.Emit(a, "message.posted", map[string]any{"userId": ada.ID, "parentId": "x"})
	e.Drain(a, gamification.RewardSubscriberName)

	// GA8, GET: a range with zero days, newest first.
	for _, prefix := range []string{"/v1", "/apis/v1"} {
		res := e.Do(apitest.Request{Method: "GET", Path: prefix + "/users/activity/daily?identifier=ada@example.com&identifier_type=email&days=3", Key: key}).Expect(t, 200)
		if res.String("status") != "success" || res.String("message") != "User gamification stats fetched successfully" ||
			res.String("data.user_id") != fmt.Sprint(ada.NumID) || res.String("data.range.start_date") != "2026-03-10" ||
			res.String("data.range.end_date") != "2026-03-12" || res.Get("data.totals.xp") != float64(26) || res.Get("data.totals.coins") != float64(5) {
			t.Fatalf("history: %s", res.Body)
		}
		want := [][3]any{{"2026-03-12", 5.0, 1.0}, {"2026-03-11", 0.0, 0.0}, {"2026-03-10", 21.0, 4.0}}
		for i, w := range want {
			d := fmt.Sprintf("data.daily_stats.%d.", i)
			if res.String(d+"date") != w[0] || res.Get(d+"xp") != w[1] || res.Get(d+"coins") != w[2] {
				t.Fatalf("day %d: %s", i, res.Body)
			}
		}
	}
	// Default range: 30 days.
	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/users/activity/daily?identifier=" + ada.ID, Key: key}).Expect(t, 200)
	if list, _ := res.Get("data.daily_stats").([]any); len(list) != 30 {
		t.Fatalf("default range has %d days", len(list))
	}

	// GA8, POST: one day, many members, paged over the identifiers.
	res = e.Do(apitest.Request{Method: "POST", Path: "/apis/v1/users/activity/daily", Key: key, Body: map[string]any{
		"identifier":      []string{"ada@example.com", "bob@example.com", "nobody@example.com", "stranger@example.com"},
		"identifier_type": "email", "date": "10/03/2026", "page": 1, "limit": 2}}).Expect(t, 200)
	if res.String("data.date") != "10/03/2026" || res.Get("data.pagination.total") != float64(4) || res.Get("data.pagination.total_pages") != float64(2) ||
		res.Get("data.pagination.found") != float64(2) || res.String("data.results.0.user_id") != ada.ID || res.Get("data.results.0.xp") != float64(21) ||
		res.String("data.results.1.identifier") != "bob@example.com" || res.Get("data.results.1.coins") != float64(2) ||
		res.String("data.results.1.date") != "10/03/2026" {
		t.Fatalf("batch: %s", res.Body)
	}
	// Page 2 holds an unknown user and another community's member: neither shows.
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/activity/daily", Key: key, Body: map[string]any{
		"identifier":      []string{"ada@example.com", "bob@example.com", "nobody@example.com", "stranger@example.com"},
		"identifier_type": "email", "date": "10/03/2026", "page": 2, "limit": 2}}).Expect(t, 200)
	if res.Get("data.pagination.found") != float64(0) || len(res.Get("data.results").([]any)) != 0 {
		t.Fatalf("page 2: %s", res.Body)
	}
	// Default date is today (UTC); a zero day is present with zeros.
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/activity/daily", Key: key, Body: map[string]any{
		"identifier": []string{"bob"}}}).Expect(t, 200)
	if res.String("data.date") != "12/03/2026" || res.Get("data.results.0.xp") != float64(0) || res.Get("data.pagination.limit") != float64(50) {
		t.Fatalf("today: %s", res.Body)
	}

	// US5: counts per day, rewarded or not.
	res = e.Do(apitest.Request{Method: "POST", Path: "/apis/v1/users/activity/stats", Key: key, Body: map[string]any{
		"identifier": "ada@example.com", "identifier_type": "email", "days": 3}}).Expect(t, 200)
	if res.String("message") != "User gamification stats fetched successfully" || res.Get("data.totals.messages") != float64(2) ||
		res.Get("data.totals.replies") != float64(1) || res.Get("data.totals.reaction") != float64(2) || res.Get("data.totals.socials") != float64(0) ||
		res.String("data.daily_stats.0.date") != "2026-03-12" || res.Get("data.daily_stats.0.replies") != float64(1) ||
		res.Get("data.daily_stats.1.messages") != float64(0) || res.Get("data.daily_stats.2.reaction") != float64(2) {
		t.Fatalf("stats: %s", res.Body)
	}

	// GA9: the log, newest first, paged.
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/activity/logs", Key: key, Body: map[string]any{
		"identifier": ada.ID, "identifier_type": "_id", "page": 1, "limit": 2}}).Expect(t, 200)
	if res.String("status") != "success" || res.Get("data.pagination.total") != float64(4) || res.Get("data.pagination.total_pages") != float64(2) ||
		res.String("data.logs.0.action") != "reply" || res.Get("data.logs.0.xp") != float64(5) || res.String("data.logs.0.sourceEvent") == "" ||
		res.String("data.user_id") != ada.ID {
		t.Fatalf("logs: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/activity/logs", Key: key, Body: map[string]any{"identifier": "ada", "page": 2, "limit": 2}}).Expect(t, 200)
	if logs := res.Get("data.logs").([]any); len(logs) != 2 || res.String("data.logs.1.action") != "message" {
		t.Fatalf("logs page 2: %s", res.Body)
	}

	// 400 names every offending field.
	bad := e.Do(apitest.Request{Method: "GET", Path: "/v1/users/activity/daily?identifier_type=phone&days=0", Key: key}).Expect(t, 400)
	if got := sortedCopy(bad.ErrorFields()); !slices.Equal(got, []string{"days", "identifier", "identifier_type"}) || bad.String("status") != "error" {
		t.Fatalf("GET fields %v", got)
	}
	bad = e.Do(apitest.Request{Method: "GET", Path: "/v1/users/activity/daily?identifier=ada&days=x", Key: key}).Expect(t, 400)
	if !slices.Equal(bad.ErrorFields(), []string{"days"}) {
		t.Fatalf("days=x: %v", bad.ErrorFields())
	}
	bad = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/activity/daily", Key: key, Body: map[string]any{
		"identifier": []string{}, "identifier_type": "phone", "date": "2026-03-10", "page": 0, "limit": 101}}).Expect(t, 400)
	if got := sortedCopy(bad.ErrorFields()); !slices.Equal(got, []string{"date", "identifier", "identifier_type", "limit", "page"}) {
		t.Fatalf("POST fields %v", got)
	}
	bad = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/activity/daily", Key: key, Body: map[string]any{"identifier": "ada", "date": "31/02/2026"}}).Expect(t, 400)
	if !slices.Equal(bad.ErrorFields(), []string{"identifier"}) {
		t.Fatalf("identifier as a string: %v", bad.ErrorFields())
	}
	bad = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/activity/daily", Key: key, Body: map[string]any{"identifier": []string{"ada", " "}, "date": "31/02/2026"}}).Expect(t, 400)
	if got := sortedCopy(bad.ErrorFields()); !slices.Equal(got, []string{"date", "identifier[1]"}) {
		t.Fatalf("bad date and blank identifier: %v", got)
	}
	bad = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/activity/stats", Key: key, Body: map[string]any{"days": 366}}).Expect(t, 400)
	if got := sortedCopy(bad.ErrorFields()); !slices.Equal(got, []string{"days", "identifier"}) {
		t.Fatalf("stats fields %v", got)
	}
	bad = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/activity/logs", Key: key, Body: map[string]any{"identifier_type": "x", "limit": 0}}).Expect(t, 400)
	if got := sortedCopy(bad.ErrorFields()); !slices.Equal(got, []string{"identifier", "identifier_type", "limit"}) {
		t.Fatalf("logs fields %v", got)
	}

	// Auth and tenancy: other communities' members are 404 with either key.
	_, noStats := keyWith(t, e, a, 0, "getUserData")
	type req struct {
		method, path string
		body         any
	}
	for _, r := range []req{
		{"GET", "/v1/users/activity/daily?identifier=ada", nil},
		{"POST", "/v1/users/activity/daily", map[string]any{"identifier": []string{"ada"}}},
		{"POST", "/v1/users/activity/stats", map[string]any{"identifier": "ada"}},
		{"POST", "/v1/users/activity/logs", map[string]any{"identifier": "ada"}},
	} {
		e.Do(apitest.Request{Method: r.method, Path: r.path, Body: r.body}).Expect(t, 401)
		e.Do(apitest.Request{Method: r.method, Path: r.path, Key: noStats, Body: r.body}).Expect(t, 403)
		e.Do(apitest.Request{Method: r.method, Path: r.path, Key: e.AdminKey, Body: r.body}).Expect(t, 403)
	}
	for _, r := range []req{
		{"GET", "/v1/users/activity/daily?identifier=stranger", nil},
		{"POST", "/v1/users/activity/stats", map[string]any{"identifier": "stranger"}},
		{"POST", "/v1/users/activity/logs", map[string]any{"identifier": stranger.ID}},
	} {
		e.Do(apitest.Request{Method: r.method, Path: r.path, Key: key, Body: r.body}).Expect(t, 404)
	}
	for _, r := range []req{
		{"GET", "/v1/users/activity/daily?identifier=ada", nil},
		{"POST", "/v1/users/activity/stats", map[string]any{"identifier": "ada"}},
		{"POST", "/v1/users/activity/logs", map[string]any{"identifier": "ada"}},
	} {
		e.Do(apitest.Request{Method: r.method, Path: r.path, Key: keyB, Body: r.body}).Expect(t, 404)
	}
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/activity/daily", Key: keyB, Body: map[string]any{"identifier": []string{"ada", "stranger"},
		"date": "10/03/2026"}}).Expect(t, 200)
	if res.Get("data.pagination.found") != float64(1) || res.String("data.results.0.user_id") != stranger.ID {
		t.Fatalf("batch tenancy: %s", res.Body)
	}
}

func TestXPSettingConcurrentWrites(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Racing", "racing")
	var wg sync.WaitGroup
	const n = 6
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res := e.Do(apitest.Request{Method: "POST", Path: "/v1/gamifications/" + a + "/xp-setting", Key: key,
				Body: map[string]any{"message": map[string]any{"xp": i + 1}}})
			if res.Status != 200 {
				t.Errorf("write %d: %d %s", i, res.Status, res.Body)
			}
		}(i)
	}
	wg.Wait()
	// The first write created the document (__v 0); each later one raised it.
	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/tiers", Key: key}).Expect(t, 200)
	if res.Get("data.__v") != float64(n-1) {
		t.Fatalf("__v %v after %d writes: %s", res.Get("data.__v"), n, res.Body)
	}
}
