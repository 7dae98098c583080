package httpapi_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/milestone"
	"github.com/rallyhq/rally/internal/streak"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/wallet"
	"github.com/rallyhq/rally/internal/xp"
)

func createMilestone(t *testing.T, e *apitest.Env, key string, body map[string]any) string {
	t.Helper()
	return e.Do(apitest.Request{Method: "POST", Path: "/v1/milestones", Key: key, Body: body}).Expect(t, 201).String("data._id")
}

func TestMilestonesCRUD(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	_, keyB := e.Community("Beta", "beta")
	_, readOnly := keyWith(t, e, a, 0, "getMilestones")
	streakID := e.Do(apitest.Request{Method: "POST", Path: "/v1/streaks", Key: keyA, Body: map[string]any{"name": "Daily chat",
		"timeframe": map[string]any{"value": "daily", "count": 1},
		"action":    map[string]any{"operator": "and", "conditions": []any{map[string]any{"action": "messages", "value": 1}}}}}).Expect(t, 201).String("data._id")

	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/milestones", Key: keyA, Body: map[string]any{"name": "First 1000 XP",
		"description": "Keep going", "metric": "xp", "target": 1000, "rewards": map[string]any{"xp": 50, "coins": 5}}}).Expect(t, 201)
	id := res.String("data._id")
	if res.String("data.metric") != "xp" || res.Get("data.target") != float64(1000) || res.Get("data.rewards.coins") != float64(5) ||
		res.String("data.streakId") != "" || res.String("data.communityId") != a {
		t.Fatalf("created: %s", res.Body)
	}
	createMilestone(t, e, keyA, map[string]any{"name": "Week streak", "metric": "streak", "streakId": streakID, "target": 7, "order": 1})

	for _, tc := range []struct {
		name   string
		body   map[string]any
		fields []string
	}{
		{"empty", map[string]any{}, []string{"metric", "name", "target"}},
		{"bad values", map[string]any{"name": "", "metric": "karma", "target": 0, "rewards": map[string]any{"xp": -1, "coins": 2000000}, "order": -1},
			[]string{"metric", "name", "order", "rewards.coins", "rewards.xp", "target"}},
		{"streak without streakId", map[string]any{"name": "s", "metric": "streak", "target": 3}, []string{"streakId"}},
		{"unknown streak", map[string]any{"name": "s", "metric": "streak", "streakId": "0123456789abcdef01234567", "target": 3}, []string{"streakId"}},
		{"streakId on xp", map[string]any{"name": "s", "metric": "xp", "streakId": streakID, "target": 3}, []string{"streakId"}},
		{"emailVerified above 1", map[string]any{"name": "s", "metric": "emailVerified", "target": 2}, []string{"target"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := e.Do(apitest.Request{Method: "POST", Path: "/v1/milestones", Key: keyA, Body: tc.body}).Expect(t, 400).ErrorFields()
			slices.Sort(got)
			if !slices.Equal(got, tc.fields) {
				t.Fatalf("fields %v, want %v", got, tc.fields)
			}
		})
	}
	// Another community's streak cannot be named.
	e.Do(apitest.Request{Method: "POST", Path: "/v1/milestones", Key: keyB, Body: map[string]any{"name": "s", "metric": "streak",
		"streakId": streakID, "target": 3}}).Expect(t, 400)

	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/milestones?limit=1", Key: readOnly}).Expect(t, 200)
	if res.Get("meta.total") != float64(2) || res.String("data.0._id") != id || len(res.Get("data").([]any)) != 1 {
		t.Fatalf("list: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "PUT", Path: "/apis/v1/milestones/" + id, Key: keyA, Body: map[string]any{"target": 500}}).Expect(t, 200)
	if res.Get("data.target") != float64(500) || res.String("data.name") != "First 1000 XP" {
		t.Fatalf("updated: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/milestones/" + id, Key: readOnly}).Expect(t, 200)
	if res.Get("data.target") != float64(500) {
		t.Fatalf("read back: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/milestones/" + id, Key: keyA, Body: map[string]any{"metric": "streak"}}).Expect(t, 400)

	// Permissions and tenancy.
	e.Do(apitest.Request{Method: "POST", Path: "/v1/milestones", Key: readOnly, Body: map[string]any{"name": "x"}}).Expect(t, 403)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/milestones"}).Expect(t, 401)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/milestones/" + id, Key: keyB}).Expect(t, 404)
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/milestones/" + id, Key: keyB, Body: map[string]any{"target": 1}}).Expect(t, 404)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/milestones/" + id, Key: keyB}).Expect(t, 404)
	if res := e.Do(apitest.Request{Method: "GET", Path: "/v1/milestones", Key: keyB}).Expect(t, 200); res.Get("meta.total") != float64(0) {
		t.Fatalf("B sees A's milestones: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/milestones/" + id, Key: keyA}).Expect(t, 200)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/milestones/" + id, Key: keyA}).Expect(t, 404)
	if n := len(e.EventTypes(a, "milestone.created", "milestone.updated", "milestone.deleted")); n != 4 {
		t.Fatalf("%d milestone events, want 4", n)
	}
}

func TestUserMilestones(t *testing.T) {
	e := apitest.New(t)
	ctx := context.Background()
	a, keyA := e.Community("Alpha", "alpha")
	_, keyB := e.Community("Beta", "beta")
	e.Clock.Set(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	e.Do(apitest.Request{Method: "POST", Path: "/v1/gamifications/" + a + "/tier-setting", Key: keyA, Body: map[string]any{
		"enabled": true, "display": map[string]any{"levels": true, "tiers": true},
		"tiers": []any{tier("Rookie", 0, 100, 200), tier("Member", 300, 400, 500)}}}).Expect(t, 200)
	xpID := createMilestone(t, e, keyA, map[string]any{"name": "XP 150", "metric": "xp", "target": 150, "rewards": map[string]any{"xp": 40, "coins": 5}})
	levelID := createMilestone(t, e, keyA, map[string]any{"name": "Level 4", "metric": "level", "target": 4, "rewards": map[string]any{"coins": 7}})
	createMilestone(t, e, keyA, map[string]any{"name": "Two-day streak", "metric": "loginStreak", "target": 2})
	createMilestone(t, e, keyA, map[string]any{"name": "First purchase", "metric": "purchases", "target": 1})
	ann := e.Member(a, "ann", user.MemberOptions{AccessLevel: 1, Joined: true})

	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/users/milestones", Key: keyA,
		Body: map[string]any{"identifier": "ann@example.com", "identifier_type": "email"}}).Expect(t, 200)
	if res.String("status") != "success" || res.String("data.userId") != ann.ID || res.String("data.email") != "ann@example.com" ||
		len(res.Get("data.milestones").([]any)) != 4 || res.Get("data.milestones.0.current") != float64(0) ||
		res.Get("data.milestones.0.achieved") != false || res.Get("data.milestones.0.achievedAt") != nil ||
		res.Get("data.milestones.1.current") != float64(1) || res.Get("data.milestones.1.percentage") != float64(25) {
		t.Fatalf("start: %s", res.Body)
	}

	// 120 XP: 80% of the first; then 40 more reach it, paying 40 XP and 5
	// coins once, which (200 XP) also reaches level 3 of 4.
	award := func(n int64) {
		t.Helper()
		if _, _, err := e.App.XP.Award(ctx, xp.Award{CommunityID: a, UserID: ann.ID, Action: "badge", XP: n, Actor: wallet.Actor{Kind: wallet.ActorSystem}}); err != nil {
			t.Fatal(err)
		}
		e.Drain(a, milestone.SubscriberName)
	}
	award(120)
	if n := countRows(t, e, "SELECT COUNT(*) FROM milestone_achievements WHERE community_id = ?", a); n != 0 {
		t.Fatalf("%d achievements at 120 XP", n)
	}
	award(40)
	if x, c := checkLedger(t, e, a, ann.ID); x != 200 || c != 5 {
		t.Fatalf("after the XP milestone: %d xp %d coins", x, c)
	}
	// Redelivery pays nothing more.
	if _, err := e.App.DB.Exec(ctx, "UPDATE event_offsets SET last_seq = 0 WHERE subscriber = ? AND community_id = ?", milestone.SubscriberName, a); err != nil {
		t.Fatal(err)
	}
	e.Emit(a, "test.nudge", nil)
	e.Drain(a, milestone.SubscriberName)
	if x, c := checkLedger(t, e, a, ann.ID); x != 200 || c != 5 {
		t.Fatalf("after redelivery: %d xp %d coins", x, c)
	}
	// 300 XP: level 4 (Member 1), coins only.
	award(100)
	if x, c := checkLedger(t, e, a, ann.ID); x != 300 || c != 12 {
		t.Fatalf("after the level milestone: %d xp %d coins", x, c)
	}
	if n := len(e.EventTypes(a, milestone.EventAchieved)); n != 2 {
		t.Fatalf("%d achievement events, want 2", n)
	}

	// Two visits on consecutive days make a two-day login streak.
	for _, day := range []int{1, 2} {
		e.Clock.Set(time.Date(2026, 3, day, 12, 0, 0, 0, time.UTC))
		if _, err := e.App.Users.RecordVisit(ctx, a, ann.ID); err != nil {
			t.Fatal(err)
		}
	}
	e.Drain(a, streak.SubscriberName)
	// A purchase reaches the purchase milestone through its event.
	prod := e.Do(apitest.Request{Method: "POST", Path: "/v1/products", Key: keyA, Body: map[string]any{"name": "Mug", "price": 10, "stocks": 5}}).
		Expect(t, 201).String("data._id")
	e.Do(apitest.Request{Method: "POST", Path: "/v1/products/" + prod + "/purchase", Key: keyA,
		Body: map[string]any{"user": "ann@example.com", "identifier_type": "email"}}).Expect(t, 201)
	e.Drain(a, milestone.SubscriberName)
	if n := countRows(t, e, "SELECT COUNT(*) FROM milestone_achievements WHERE community_id = ? AND user_id = ?", a, ann.ID); n != 4 {
		t.Fatalf("%d achievements after the purchase, want 4 (its event re-evaluates every milestone)", n)
	}
	res = e.Do(apitest.Request{Method: "POST", Path: "/apis/v1/users/milestones", Key: keyA, Body: map[string]any{"email": "ann@example.com"}}).Expect(t, 200)
	ms := res.Get("data.milestones").([]any)
	want := []struct {
		id       string
		current  float64
		achieved bool
		pct      float64
	}{{xpID, 300, true, 100}, {levelID, 4, true, 100}, {"", 2, true, 100}, {"", 1, true, 100}}
	for i, w := range want {
		m := ms[i].(map[string]any)
		if (w.id != "" && m["_id"] != w.id) || m["current"] != w.current || m["achieved"] != w.achieved || m["percentage"] != w.pct ||
			(w.achieved && m["achievedAt"] == nil) {
			t.Fatalf("milestone %d: %v", i, m)
		}
	}

	// The reward is paid once even when the same event is handled by
	// several deliveries at once.
	bob := e.Member(a, "bob", user.MemberOptions{AccessLevel: 1, Joined: true})
	if _, err := e.App.DB.Exec(ctx, "INSERT INTO xp_totals (community_id, user_id, xp, updated_at) VALUES (?, ?, 150, 0)", a, bob.ID); err != nil {
		t.Fatal(err)
	}
	ev := event.Event{ID: "0123456789abcdef01234567", CommunityID: a, Type: "user.visited", Payload: []byte(`{"userId":"` + bob.ID + `"}`),
		OccurredAt: e.Clock.Now()}
	handle := e.App.Milestones.Subscriber().HandleBatch
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errc <- e.App.DB.Tx(ctx, func(tx *db.Tx) error { return handle(ctx, tx, []event.Event{ev}) }) })
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := countRows(t, e, "SELECT COUNT(*) FROM gamification_logs WHERE community_id = ? AND user_id = ? AND action = ?", a, bob.ID, milestone.ActionMilestone); n != 1 {
		t.Fatalf("%d milestone awards for bob, want 1", n)
	}
	var bobXP int64
	if err := e.App.DB.QueryRow(ctx, "SELECT xp FROM xp_totals WHERE community_id = ? AND user_id = ?", a, bob.ID).Scan(&bobXP); err != nil || bobXP != 190 {
		t.Fatalf("bob xp %d (%v), want 190", bobXP, err)
	}

	// Errors and tenancy.
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/milestones", Key: keyB, Body: map[string]any{"email": "ann@example.com"}}).Expect(t, 404)
	if got := e.Do(apitest.Request{Method: "POST", Path: "/v1/users/milestones", Key: keyA, Body: map[string]any{}}).Expect(t, 400).ErrorFields(); !slices.Equal(got, []string{"identifier"}) {
		t.Fatalf("fields %v", got)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/milestones", Key: keyA, Body: map[string]any{"identifier": "x", "identifier_type": "phone"}}).Expect(t, 400)
	_, noStats := keyWith(t, e, a, 0, "getMilestones")
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/milestones", Key: noStats, Body: map[string]any{"email": "ann@example.com"}}).Expect(t, 403)
	// B's member reads B's (no) milestones.
	e.Member(mustCommunity(t, e, keyB), "cat", user.MemberOptions{AccessLevel: 1, Joined: true})
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/milestones", Key: keyB, Body: map[string]any{"email": "cat@example.com"}}).Expect(t, 200)
	if len(res.Get("data.milestones").([]any)) != 0 {
		t.Fatalf("B sees A's milestones: %s", res.Body)
	}
}

// mustCommunity returns the community of a partner key.
func mustCommunity(t *testing.T, e *apitest.Env, key string) string {
	t.Helper()
	k, err := e.App.Keys.Authenticate(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return k.CommunityID
}
