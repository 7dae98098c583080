package httpapi_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/streak"
	"github.com/rallyhq/rally/internal/user"
)

// emit appends an outbox event as the publishing domain would, then waits
// until the streak subscriber has passed every event of the community.
// emit appends an event and waits for the streak subscriber to handle it.
func emitStreak(t *testing.T, e *apitest.Env, communityID, typ string, payload map[string]any) {
	t.Helper()
	e.Emit(communityID, typ, payload)
	e.Drain(communityID, streak.SubscriberName)
}

func streakBody(name string, extra map[string]any) map[string]any {
	b := map[string]any{"name": name, "timezone": "Asia/Singapore", "startDate": "2026-03-02",
		"timeframe": map[string]any{"value": "daily", "count": 1},
		"action":    map[string]any{"operator": "or", "conditions": []any{map[string]any{"action": "reactions", "value": 1}}}}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

func TestStreakDefinitions(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Streaks A", "streaks-a")
	_, keyB := e.Community("Streaks B", "streaks-b")

	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/streaks", Key: keyA, Body: map[string]any{
		"name": "Msg & Reply Streak", "timezone": "utc_gmt", "startDate": "2026-04-07",
		"timeframe":      map[string]any{"value": "daily", "count": 1},
		"action":         map[string]any{"operator": "and", "conditions": []any{map[string]any{"_id": "524710654a38", "action": "messages", "value": 2, "isCustomField": nil}, map[string]any{"action": "replies", "value": 2, "isCustomField": false}}},
		"activeDaysType": "custom", "activeDays": []string{"Monday", "Tuesday", "Saturday"}, "order": 2,
	}}).Expect(t, 201)
	id := res.String("data._id")
	if res.String("data.startDate") != "2026-04-07T00:00:00.000Z" || res.String("data.communityId") != a ||
		res.String("data.action.conditions.0._id") != "524710654a38" || len(res.String("data.action.conditions.1._id")) != 12 ||
		res.Get("data.__v") != float64(0) || res.Get("data.order") != float64(2) || res.String("data.activeDaysType") != "custom" {
		t.Fatalf("create: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/apis/v1/streaks", Key: keyA, Body: streakBody("Second", map[string]any{"order": 1})}).Expect(t, 201)

	// Every offending field is named.
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/streaks", Key: keyA, Body: map[string]any{
		"timezone": "Mars/Olympus", "startDate": "07/04/2026", "timeframe": map[string]any{"value": "hourly", "count": 0},
		"action":         map[string]any{"operator": "xor", "conditions": []any{map[string]any{"action": "jumps", "value": 0, "isCustomField": true}}},
		"activeDaysType": "custom", "activeDays": []string{"Moonday"},
	}}).Expect(t, 400)
	want := "[action.conditions.0.action action.conditions.0.isCustomField action.conditions.0.value action.operator activeDays activeDays name startDate timeframe.count timeframe.value timezone]"
	if got := fmt.Sprint(sortedCopy(res.ErrorFields())); got != want {
		t.Fatalf("fields %s, want %s", got, want)
	}
	if fmt.Sprint(sortedCopy(e.Do(apitest.Request{Method: "POST", Path: "/v1/streaks", Key: keyA, Body: map[string]any{}}).Expect(t, 400).ErrorFields())) !=
		"[action name timeframe]" {
		t.Fatal("create without the required fields must name them")
	}

	// SM4: the documented body, ordered by order, paged.
	res = e.Do(apitest.Request{Method: "GET", Path: "/apis/v1/streaks?page=1&limit=1", Key: keyA}).Expect(t, 200)
	if res.String("status") != "success" || res.Get("message") != nil || res.String("data.0.name") != "Second" ||
		res.Get("pagination.total") != float64(2) || res.Get("pagination.totalPages") != float64(2) ||
		res.Get("pagination.hasNextPage") != true || res.Get("pagination.hasPrevPage") != false {
		t.Fatalf("list: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/streaks?page=2&limit=1", Key: keyA}).Expect(t, 200)
	if res.String("data.0._id") != id || res.Get("pagination.hasPrevPage") != true {
		t.Fatalf("page 2: %s", res.Body)
	}
	if fmt.Sprint(e.Do(apitest.Request{Method: "GET", Path: "/v1/streaks?page=0&limit=101", Key: keyA}).Expect(t, 400).ErrorFields()) != "[page limit]" {
		t.Fatal("bad paging must be named")
	}

	// SM5: a partial update keeps what it does not send.
	res = e.Do(apitest.Request{Method: "PUT", Path: "/apis/v1/streaks/" + id, Key: keyA, Body: map[string]any{
		"name": "Daily Activity Streak", "startDate": "2026-04-08", "activeDaysType": "all"}}).Expect(t, 200)
	if res.String("data.name") != "Daily Activity Streak" || res.String("data.startDate") != "2026-04-08T00:00:00.000Z" ||
		res.Get("data.__v") != float64(1) || res.String("data.action.operator") != "and" || res.String("data.timezone") != "utc_gmt" {
		t.Fatalf("update: %s", res.Body)
	}
	if fmt.Sprint(e.Do(apitest.Request{Method: "PUT", Path: "/v1/streaks/" + id, Key: keyA, Body: map[string]any{"name": "", "timeframe": nil}}).
		Expect(t, 400).ErrorFields()) != "[name timeframe.value timeframe.count]" {
		t.Fatal("bad update must name its fields")
	}
	if e.Do(apitest.Request{Method: "GET", Path: "/v1/streaks/" + id, Key: keyA}).Expect(t, 200).String("data.name") != "Daily Activity Streak" {
		t.Fatal("read after update")
	}

	// Tenancy, auth and permissions.
	e.Do(apitest.Request{Method: "GET", Path: "/v1/streaks/" + id, Key: keyB}).Expect(t, 404)
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/streaks/" + id, Key: keyB, Body: map[string]any{"name": "x"}}).Expect(t, 404)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/streaks/" + id, Key: keyB}).Expect(t, 404)
	if n := e.Do(apitest.Request{Method: "GET", Path: "/v1/streaks", Key: keyB}).Expect(t, 200).Get("pagination.total"); n != float64(0) {
		t.Fatalf("another community sees %v streaks", n)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/streaks"}).Expect(t, 401)
	_, readOnly := keyWith(t, e, a, 0, "getStreaks")
	e.Do(apitest.Request{Method: "GET", Path: "/v1/streaks", Key: readOnly}).Expect(t, 200)
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/streaks/" + id, Key: readOnly, Body: map[string]any{"name": "x"}}).Expect(t, 403)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/streaks", Key: readOnly, Body: streakBody("x", nil)}).Expect(t, 403)
	_, noPerm := keyWith(t, e, a, 0, "getUserData")
	e.Do(apitest.Request{Method: "GET", Path: "/v1/streaks", Key: noPerm}).Expect(t, 403)

	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/streaks/" + id, Key: keyA}).Expect(t, 200)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/streaks/" + id, Key: keyA}).Expect(t, 404)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/streaks/" + id, Key: keyA}).Expect(t, 404)
	if got := e.EventTypes(a, "streak.created", "streak.updated", "streak.deleted"); fmt.Sprint(got) != "[streak.created streak.created streak.updated streak.deleted]" {
		t.Fatalf("events %v", got)
	}
}

// standing reads the member's standing in the named streak through US7.
func standing(t *testing.T, e *apitest.Env, key, email, streakID string) map[string]any {
	t.Helper()
	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/users/mini-games/stats", Key: key,
		Body: map[string]any{"identifier": email, "identifier_type": "email"}}).Expect(t, 200)
	for _, s := range res.Get("data.streaks").([]any) {
		if m := s.(map[string]any); m["streakId"] == streakID {
			return m
		}
	}
	t.Fatalf("streak %s missing: %s", streakID, res.Body)
	return nil
}

func expectCurrent(t *testing.T, e *apitest.Env, key, email, streakID string, want float64) {
	t.Helper()
	if got := standing(t, e, key, email, streakID)["current"]; got != want {
		t.Fatalf("%s in %s at %s: current %v, want %v", email, streakID, e.Clock.Now().Format(time.RFC3339Nano), got, want)
	}
}

func TestStreaksGrowAndBreakInTheirTimeZone(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Streak days", "streak-days")
	_, keyB := e.Community("Other", "streak-other")
	ann := e.Member(a, "ann", user.MemberOptions{Joined: true})
	bob := e.Member(a, "bob", user.MemberOptions{Joined: true})
	e.Clock.Set(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))

	// A: two messages and a reply; B: a reaction or a login; C: a reaction,
	// Mondays and Wednesdays only. All in Singapore time (UTC+8).
	andID := e.Do(apitest.Request{Method: "POST", Path: "/v1/streaks", Key: key, Body: streakBody("And", map[string]any{
		"action": map[string]any{"operator": "and", "conditions": []any{map[string]any{"action": "messages", "value": 2},
			map[string]any{"action": "replies", "value": 1}}}})}).Expect(t, 201).String("data._id")
	orID := e.Do(apitest.Request{Method: "POST", Path: "/v1/streaks", Key: key, Body: streakBody("Or", map[string]any{
		"action": map[string]any{"operator": "or", "conditions": []any{map[string]any{"action": "reactions", "value": 1},
			map[string]any{"action": "logins", "value": 1}}}})}).Expect(t, 201).String("data._id")
	daysID := e.Do(apitest.Request{Method: "POST", Path: "/v1/streaks", Key: key, Body: streakBody("Mon+Wed", map[string]any{
		"activeDaysType": "custom", "activeDays": []string{"Monday", "Wednesday"}})}).Expect(t, 201).String("data._id")

	post := func(u user.User, reply bool) {
		p := map[string]any{"userId": u.ID, "messageId": fmt.Sprint(time.Now().UnixNano())}
		if reply {
			p["parentId"] = "6167dba9c548eb5c7ec28057"
		}
		emitStreak(t, e, a, streak.EventMessagePosted, p)
	}
	react := func(u user.User) {
		emitStreak(t, e, a, streak.EventMessageReacted, map[string]any{"userId": u.ID, "emoji": "👍"})
	}

	// Before the start day nothing counts.
	react(ann)
	expectCurrent(t, e, key, "ann@example.com", orID, 0)

	// Monday 09:00 SGT.
	e.Clock.Set(time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC))
	post(ann, false)
	if s := standing(t, e, key, "ann@example.com", andID); s["current"] != float64(0) || s["qualified"] != false {
		t.Fatalf("one message must not satisfy and: %v", s)
	}
	post(ann, true) // the reply is the second message and the first reply
	react(ann)
	react(bob)
	s := standing(t, e, key, "ann@example.com", andID)
	if s["current"] != float64(1) || s["qualified"] != true || s["periodStart"] != "2026-03-01T16:00:00.000Z" || s["periodEnd"] != "2026-03-02T16:00:00.000Z" {
		t.Fatalf("and after message+reply: %v", s)
	}
	progress := s["progress"].([]any)
	if p := progress[0].(map[string]any); p["action"] != "messages" || p["count"] != float64(2) || p["met"] != true {
		t.Fatalf("progress: %v", progress)
	}
	expectCurrent(t, e, key, "ann@example.com", orID, 1)
	expectCurrent(t, e, key, "bob@example.com", daysID, 1)

	// Tuesday 00:30 SGT is still Monday in UTC: a new period in Singapore.
	e.Clock.Set(time.Date(2026, 3, 2, 16, 30, 0, 0, time.UTC))
	post(ann, false)
	post(ann, false) // messages met, no reply: and fails
	react(ann)
	react(bob) // Tuesday is not an active day of C
	expectCurrent(t, e, key, "ann@example.com", orID, 2)
	expectCurrent(t, e, key, "ann@example.com", andID, 1)
	if s := standing(t, e, key, "bob@example.com", daysID); s["current"] != float64(1) || s["qualified"] != false {
		t.Fatalf("an inactive day must not count: %v", s)
	}

	// Wednesday 01:00 SGT: and missed Tuesday (broken without any event of
	// its own); C skips Tuesday and grows.
	e.Clock.Set(time.Date(2026, 3, 3, 17, 0, 0, 0, time.UTC))
	expectCurrent(t, e, key, "ann@example.com", andID, 0)
	react(bob)
	if s := standing(t, e, key, "bob@example.com", daysID); s["current"] != float64(2) || s["longest"] != float64(2) {
		t.Fatalf("C across the skipped day: %v", s)
	}

	// Or holds through the last millisecond of Wednesday SGT, then breaks.
	e.Clock.Set(time.Date(2026, 3, 4, 15, 59, 59, 999_000_000, time.UTC))
	expectCurrent(t, e, key, "ann@example.com", orID, 2)
	e.Clock.Set(time.Date(2026, 3, 4, 16, 0, 0, 0, time.UTC))
	if s := standing(t, e, key, "ann@example.com", orID); s["current"] != float64(0) || s["longest"] != float64(2) {
		t.Fatalf("or after a missed day: %v", s)
	}

	// SM1: the logs, newest first, the break naming the missed period. Ann
	// has seven: and started+broken, or started+extended+broken, C (her
	// Monday reaction) started+broken on the missed Wednesday.
	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/users/streaks/logs", Key: key, Body: map[string]any{
		"identifier": ann.ID, "identifier_type": "_id", "streakId": orID}}).Expect(t, 200)
	logs := res.Get("data.logs").([]any)
	var kinds []string
	for _, l := range logs {
		m := l.(map[string]any)
		kinds = append(kinds, fmt.Sprintf("%s:%v", m["type"], m["count"]))
	}
	if fmt.Sprint(kinds) != "[broken:0 extended:2 started:1]" || res.Get("data.pagination.total") != float64(3) {
		t.Fatalf("or logs: %s", res.Body)
	}
	if b := logs[0].(map[string]any); b["previousCount"] != float64(2) || b["periodStart"] != "2026-03-03T16:00:00.000Z" {
		t.Fatalf("break log: %v", b)
	}
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/streaks/logs", Key: key, Body: map[string]any{
		"identifier": "ann", "identifier_type": "username", "page": 2, "limit": 2}}).Expect(t, 200)
	if res.Get("data.pagination.total") != float64(7) || len(res.Get("data.logs").([]any)) != 2 || res.Get("data.pagination.total_pages") != float64(4) {
		t.Fatalf("all ann's logs, paged: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/streaks/logs", Key: key, Body: map[string]any{"identifier_type": "phone", "page": 0, "limit": 500}}).Expect(t, 400)
	if fmt.Sprint(sortedCopy(res.ErrorFields())) != "[identifier identifier_type limit page]" {
		t.Fatalf("bad body: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/streaks/logs", Key: key, Body: map[string]any{"identifier": "nobody@example.com", "identifier_type": "email"}}).Expect(t, 404)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/streaks/logs", Key: keyB, Body: map[string]any{"identifier": "ann@example.com", "identifier_type": "email"}}).Expect(t, 404)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/mini-games/stats", Key: keyB, Body: map[string]any{"identifier": "ann@example.com"}}).Expect(t, 404)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/streaks/logs", Body: map[string]any{"identifier": "ann@example.com"}}).Expect(t, 401)
	_, noStats := keyWith(t, e, a, 0, "getStreaks")
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/mini-games/stats", Key: noStats, Body: map[string]any{"identifier": "ann@example.com"}}).Expect(t, 403)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/streaks/logs", Key: noStats, Body: map[string]any{"identifier": "ann@example.com"}}).Expect(t, 403)
}

func TestLoginStreak(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Logins", "logins")
	ann := e.Member(a, "ann", user.MemberOptions{Joined: true})
	ctx := context.Background()
	visit := func(at time.Time) {
		e.Clock.Set(at)
		if _, err := e.App.Users.RecordVisit(ctx, a, ann.ID); err != nil {
			t.Fatal(err)
		}
		e.Drain(a, streak.SubscriberName)
	}
	loginStreak := func() any {
		return e.Do(apitest.Request{Method: "POST", Path: "/v1/users/info", Key: key, Body: map[string]any{"idOrEmail": "ann"}}).Expect(t, 200).Get("data.loginStreak")
	}
	visit(time.Date(2026, 5, 1, 23, 0, 0, 0, time.UTC))
	visit(time.Date(2026, 5, 2, 0, 30, 0, 0, time.UTC))
	visit(time.Date(2026, 5, 2, 22, 0, 0, 0, time.UTC)) // same UTC day: no second count
	visit(time.Date(2026, 5, 3, 8, 0, 0, 0, time.UTC))
	if got := loginStreak(); got != float64(3) {
		t.Fatalf("after three days: %v", got)
	}
	e.Clock.Set(time.Date(2026, 5, 4, 23, 59, 0, 0, time.UTC))
	if got := loginStreak(); got != float64(3) {
		t.Fatalf("the day after the last visit: %v", got)
	}
	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/users/mini-games/stats", Key: key, Body: map[string]any{"email": "ann@example.com"}}).Expect(t, 200)
	if res.Get("data.loginStreak.current") != float64(3) || res.String("data.loginStreak.lastDay") != "2026-05-03" {
		t.Fatalf("US7 login streak: %s", res.Body)
	}
	e.Clock.Set(time.Date(2026, 5, 5, 0, 0, 0, 0, time.UTC))
	if got := loginStreak(); got != float64(0) {
		t.Fatalf("after a whole day without a visit: %v", got)
	}
	visit(time.Date(2026, 5, 5, 9, 0, 0, 0, time.UTC))
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/mini-games/stats", Key: key, Body: map[string]any{"identifier": "ann@example.com"}}).Expect(t, 200)
	if res.Get("data.loginStreak.current") != float64(1) || res.Get("data.loginStreak.longest") != float64(3) {
		t.Fatalf("restarted: %s", res.Body)
	}
}
