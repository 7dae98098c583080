package httpapi_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/community"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/gamification"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/referral"
	"github.com/rallyhq/rally/internal/wallet"
	"github.com/rallyhq/rally/internal/xp"
)

// cond is one nested condition of a referral stage.
func cond(metric string, value int) map[string]any {
	return map[string]any{"metric": metric, "value": value}
}

// stage is a referral stage whose single main condition combines conds
// with op, paying the referrer xp and coins.
func stage(name string, xpReward, coins int, op string, conds ...map[string]any) map[string]any {
	nested := make([]any, len(conds))
	for i, c := range conds {
		nested[i] = c
	}
	return map[string]any{"name": name, "rewards": map[string]any{"xp": xpReward, "coins": coins},
		"requirements": map[string]any{"mainConditions": []any{map[string]any{"operator": op, "nestedConditions": nested}}}}
}

func createProgram(t *testing.T, e *apitest.Env, key string, body map[string]any) *apitest.Response {
	t.Helper()
	return e.Do(apitest.Request{Method: "POST", Path: "/v1/referrals/programs", Key: key, Body: body}).Expect(t, 201)
}

func summary(t *testing.T, e *apitest.Env, key string, body map[string]any) *apitest.Response {
	t.Helper()
	return e.Do(apitest.Request{Method: "POST", Path: "/v1/referrals/summary", Key: key, Body: body})
}

func byEmail(email string) map[string]any {
	return map[string]any{"identifier": map[string]any{"type": "email", "value": email}}
}

func TestReferralProgramsCRUD(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	_, keyB := e.Community("Beta", "beta")
	_, readOnly := keyWith(t, e, a, 0, "getUserData")

	res := createProgram(t, e, keyA, map[string]any{"name": "Bring a friend", "description": "Invite and earn",
		"stages": []any{
			stage("Join", 10, 1, "", cond("emailVerified", 0)),
			map[string]any{"name": "Engage", "displaySetting": "hidden", "rewards": map[string]any{"xp": 50, "coins": 5},
				"requirements": map[string]any{"operator": "or", "mainConditions": []any{
					map[string]any{"operator": "and", "nestedConditions": []any{cond("messages", 10), cond("level", 2)}},
					map[string]any{"nestedConditions": []any{cond("purchases", 1)}, "text": "Buy anything"},
				}}},
		}})
	p := res.Get("data").(map[string]any)
	if p["status"] != "active" || p["name"] != "Bring a friend" || res.Get("meta.statusCode") != float64(201) {
		t.Fatalf("created: %s", res.Body)
	}
	if res.Get("data.stages.0.stageNumber") != float64(1) || res.Get("data.stages.1.stageNumber") != float64(2) ||
		res.String("data.stages.0.displaySetting") != "visible" || res.String("data.stages.1.requirements.operator") != "or" ||
		res.String("data.stages.0.requirements.operator") != "and" ||
		res.Get("data.stages.0.requirements.mainConditions.0.nestedConditions.0.value") != float64(1) ||
		res.String("data.stages.0.requirements.mainConditions.0.nestedConditions.0.text") != "Verify their email address" ||
		res.String("data.stages.1.requirements.mainConditions.0.text") != "Send 10 messages and Reach level 2" ||
		res.String("data.stages.1.requirements.mainConditions.1.text") != "Buy anything" ||
		len(res.String("data.stages.1.stageId")) != 24 || len(res.String("data.stages.1.requirements.mainConditions.1.groupId")) != 24 ||
		len(res.String("data.stages.1.requirements.mainConditions.1.nestedConditions.0.conditionId")) != 24 {
		t.Fatalf("defaults: %s", res.Body)
	}
	id := res.String("data._id")
	stageID := res.String("data.stages.0.stageId")

	// Validation names every offending field.
	for _, tc := range []struct {
		name   string
		body   map[string]any
		fields []string
	}{
		{"empty", map[string]any{}, []string{"name", "stages"}},
		{"no stages", map[string]any{"name": "x", "stages": []any{}, "status": "paused"}, []string{"stages", "status"}},
		{"bad stage", map[string]any{"name": "x", "stages": []any{map[string]any{"name": "", "displaySetting": "loud",
			"rewards": map[string]any{"xp": -1, "coins": 2000000},
			"requirements": map[string]any{"operator": "xor", "mainConditions": []any{
				map[string]any{"operator": "nand", "nestedConditions": []any{cond("karma", 0), map[string]any{"metric": "xp", "value": 5, "conditionId": "nope"}}},
			}}}}}, []string{"stages.0.name", "stages.0.displaySetting", "stages.0.rewards.xp", "stages.0.rewards.coins",
			"stages.0.requirements.operator", "stages.0.requirements.mainConditions.0.operator",
			"stages.0.requirements.mainConditions.0.nestedConditions.0.metric", "stages.0.requirements.mainConditions.0.nestedConditions.0.value",
			"stages.0.requirements.mainConditions.0.nestedConditions.1.conditionId"}},
		{"no conditions", map[string]any{"name": "x", "stages": []any{map[string]any{"name": "s", "requirements": map[string]any{
			"mainConditions": []any{map[string]any{"nestedConditions": []any{}}}}}}},
			[]string{"stages.0.requirements.mainConditions.0.nestedConditions"}},
		{"duplicate ids", map[string]any{"name": "x", "stages": []any{
			map[string]any{"stageId": stageID, "name": "a", "requirements": map[string]any{"mainConditions": []any{map[string]any{"nestedConditions": []any{cond("xp", 1)}}}}},
			map[string]any{"stageId": stageID, "name": "b", "requirements": map[string]any{"mainConditions": []any{map[string]any{"nestedConditions": []any{cond("xp", 2)}}}}},
		}}, []string{"stages.1.stageId"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := e.Do(apitest.Request{Method: "POST", Path: "/v1/referrals/programs", Key: keyA, Body: tc.body}).Expect(t, 400)
			got := res.ErrorFields()
			slices.Sort(got)
			want := slices.Clone(tc.fields)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("fields %v, want %v: %s", got, want, res.Body)
			}
		})
	}

	createProgram(t, e, keyA, map[string]any{"name": "Paused", "status": "inactive", "order": 5,
		"stages": []any{stage("Only", 1, 0, "and", cond("xp", 1))}})
	// GA11: paged, filtered by status; every prefix form answers.
	for _, path := range []string{"/v1/referrals/programs", "/apis/v1/referrals/programs", "/referrals/programs"} {
		res = e.Do(apitest.Request{Method: "GET", Path: path, Key: readOnly}).Expect(t, 200)
		if res.Get("meta.total") != float64(2) || res.String("data.0._id") != id || res.String("data.1.name") != "Paused" {
			t.Fatalf("list %s: %s", path, res.Body)
		}
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/referrals/programs?status=inactive&limit=1", Key: keyA}).Expect(t, 200)
	if res.Get("meta.total") != float64(1) || res.String("data.0.name") != "Paused" || res.Get("meta.limit") != float64(1) {
		t.Fatalf("filtered: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/referrals/programs?status=paused", Key: keyA}).Expect(t, 400)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/referrals/programs?limit=101", Key: keyA}).Expect(t, 400)

	// Update keeps the ids sent back; absent fields stay.
	res = e.Do(apitest.Request{Method: "PUT", Path: "/v1/referrals/programs/" + id, Key: keyA, Body: map[string]any{
		"description": "New text", "stages": []any{map[string]any{"stageId": stageID, "name": "Join (renamed)",
			"requirements": map[string]any{"mainConditions": []any{map[string]any{"nestedConditions": []any{cond("emailVerified", 1)}}}}}}}}).Expect(t, 200)
	if res.String("data.stages.0.stageId") != stageID || res.String("data.name") != "Bring a friend" || res.String("data.description") != "New text" ||
		len(res.Get("data.stages").([]any)) != 1 {
		t.Fatalf("updated: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/referrals/programs/" + id, Key: readOnly}).Expect(t, 200)
	if res.String("data.stages.0.name") != "Join (renamed)" {
		t.Fatalf("read back: %s", res.Body)
	}

	// Permissions and tenancy: another community's key sees nothing.
	e.Do(apitest.Request{Method: "POST", Path: "/v1/referrals/programs", Key: readOnly, Body: map[string]any{"name": "x"}}).Expect(t, 403)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/referrals/programs"}).Expect(t, 401)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/referrals/programs/" + id, Key: keyB}).Expect(t, 404)
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/referrals/programs/" + id, Key: keyB, Body: map[string]any{"name": "stolen"}}).Expect(t, 404)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/referrals/programs/" + id, Key: keyB}).Expect(t, 404)
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/referrals/programs", Key: keyB}).Expect(t, 200)
	if res.Get("meta.total") != float64(0) {
		t.Fatalf("B sees A's programs: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/referrals/programs/not-an-id", Key: keyA}).Expect(t, 404)

	res = e.Do(apitest.Request{Method: "DELETE", Path: "/v1/referrals/programs/" + id, Key: keyA}).Expect(t, 200)
	if res.String("data._id") != id {
		t.Fatalf("deleted: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/referrals/programs/" + id, Key: keyA}).Expect(t, 404)
	if types := e.EventTypes(a, "referral.program.created", "referral.program.updated", "referral.program.deleted"); len(types) != 4 {
		t.Fatalf("events %v", types)
	}
}

func TestReferralSettingsAndMapping(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	_, keyB := e.Community("Beta", "beta")
	ada := createUser(t, e, keyA, "ada")

	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/referrals/settings", Key: keyA}).Expect(t, 200)
	if res.String("data.mapping") != "referralCode" || res.String("data.linkParam") != "referral" || res.Get("data.updatedAt") != nil {
		t.Fatalf("defaults: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "PUT", Path: "/v1/referrals/settings", Key: keyA, Body: map[string]any{
		"mapping": "custom-field", "origin": "ftp://x", "platformUrl": "not a url", "linkParam": "a b"}}).Expect(t, 400)
	got := res.ErrorFields()
	slices.Sort(got)
	if !slices.Equal(got, []string{"fieldName", "linkParam", "origin", "platformUrl"}) {
		t.Fatalf("fields %v", got)
	}
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/referrals/settings", Key: keyA, Body: map[string]any{"mapping": "custom-field",
		"fieldName": "customerid"}}).Expect(t, 400)
	_, readOnly := keyWith(t, e, a, 0, "getUserData")
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/referrals/settings", Key: readOnly, Body: map[string]any{"linkParam": "r"}}).Expect(t, 403)

	// The default mapping: the referrer's referral code, shown in the
	// summary's invite with links on the configured bases.
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/referrals/settings", Key: keyA, Body: map[string]any{
		"origin": "https://brand.example/signup", "platformUrl": "https://community.example", "linkParam": "ref"}}).Expect(t, 200)
	res = summary(t, e, keyA, byEmail("ada@example.com")).Expect(t, 200)
	code := res.String("data.invite.code")
	if len(code) != 8 || res.String("data.invite.origin") != "https://brand.example/signup" ||
		res.String("data.invite.url") != "https://brand.example/signup?ref="+code ||
		res.String("data.invite.platformUrl") != "https://community.example?ref="+code {
		t.Fatalf("invite: %s", res.Body)
	}
	// The code is stable.
	if again := summary(t, e, keyA, byEmail("ada@example.com")).Expect(t, 200); again.String("data.invite.code") != code {
		t.Fatalf("code changed: %s", again.Body)
	}
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users", Key: keyA, Body: newUser("bob", "referral", code)}).Expect(t, 201)
	if res.String("data.referredBy") != ada {
		t.Fatalf("bob: %s", res.Body)
	}
	// Codes match in any case; another community's code is unknown there.
	createUser(t, e, keyA, "cy", "referral", toLower(code))
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users", Key: keyB, Body: newUser("dee", "referral", code)}).Expect(t, 400)
	if f := res.ErrorFields(); !slices.Equal(f, []string{"referral"}) {
		t.Fatalf("fields %v", f)
	}
	// Without a platformUrl, the community's domain is the platform link's base.
	g, _, keyG, err := e.App.Communities.Create(context.Background(), community.Input{Name: jsonx.Some("Gamma"), URI: jsonx.Some("gamma"),
		Domain: jsonx.Some("gamma.example.com")})
	if err != nil {
		t.Fatal(err)
	}
	createUser(t, e, keyG, "gil")
	res = summary(t, e, keyG, byEmail("gil@example.com")).Expect(t, 200)
	if c := res.String("data.invite.code"); res.String("data.invite.platformUrl") != "https://gamma.example.com?referral="+c ||
		res.String("data.invite.url") != "" || res.String("data.invite.origin") != "" || g.ID == "" {
		t.Fatalf("gamma invite: %s", res.Body)
	}
	if n := len(e.EventTypes(a, referral.EventRecorded)); n != 2 {
		t.Fatalf("%d referral.recorded events, want 2", n)
	}

	// A custom-field mapping: the referral value is the referrer's value of
	// the field; the invite code shows it.
	createField(t, e, a, keyA, map[string]any{"field": "customerId", "name": "Customer", "type": "text"})
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/referrals/settings", Key: keyA, Body: map[string]any{
		"mapping": "custom-field", "fieldName": "customerid"}}).Expect(t, 200)
	eve := createUser(t, e, keyA, "eve", "customFields", []any{map[string]any{"fieldIdorName": "customerId", "value": "CUS-001"}})
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users", Key: keyA, Body: newUser("fay", "referral", "CUS-001")}).Expect(t, 201)
	if res.String("data.referredBy") != eve {
		t.Fatalf("fay: %s", res.Body)
	}
	res = summary(t, e, keyA, byEmail("eve@example.com")).Expect(t, 200)
	if res.String("data.invite.code") != "CUS-001" || res.String("data.invite.url") != "https://brand.example/signup?ref=CUS-001" {
		t.Fatalf("eve invite: %s", res.Body)
	}
	// Referral codes still work; usernames no longer do under this mapping.
	createUser(t, e, keyA, "gus", "referral", code)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users", Key: keyA, Body: newUser("hal", "referral", "ada")}).Expect(t, 400)
	// A value two members share is ambiguous.
	createUser(t, e, keyA, "ivy", "customFields", []any{map[string]any{"fieldIdorName": "customerId", "value": "CUS-001"}})
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users", Key: keyA, Body: newUser("jon", "referral", "CUS-001")}).Expect(t, 400)
	if f := res.ErrorFields(); !slices.Equal(f, []string{"referral"}) {
		t.Fatalf("fields %v", f)
	}
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// referredSetup makes community A with XP settings, a two-stage program and
// ada, who refers bob through Create New User.
func referredSetup(t *testing.T, e *apitest.Env) (a, keyA, ada, bob, programID string) {
	t.Helper()
	a, keyA = e.Community("Alpha", "alpha")
	setXP(t, e, a, keyA, map[string]any{"refer": map[string]any{"enabled": true, "xp": 20, "coins": 2},
		"referral": map[string]any{"enabled": true, "xp": 5}})
	res := createProgram(t, e, keyA, map[string]any{"name": "Friends", "stages": []any{
		stage("Verified", 10, 1, "and", cond("emailVerified", 1)),
		stage("Active", 30, 3, "or", cond("xp", 100), cond("messages", 3)),
		stage("Champion", 100, 10, "and", cond("xp", 500)),
	}})
	programID = res.String("data._id")
	ada = createUser(t, e, keyA, "ada")
	bob = createUser(t, e, keyA, "bob", "referral", "ada")
	return a, keyA, ada, bob, programID
}

func drainReferrals(e *apitest.Env, communityID string) {
	e.Drain(communityID, gamification.RewardSubscriberName)
	e.Drain(communityID, referral.SubscriberName)
}

// checkLedger asserts the member's XP total and coin balance equal the sum
// of their gamification log.
func checkLedger(t *testing.T, e *apitest.Env, communityID, userID string) (xpSum, coinSum int64) {
	t.Helper()
	ctx := context.Background()
	if err := e.App.DB.QueryRow(ctx, "SELECT COALESCE(SUM(xp), 0), COALESCE(SUM(coins), 0) FROM gamification_logs WHERE community_id = ? AND user_id = ?",
		communityID, userID).Scan(&xpSum, &coinSum); err != nil {
		t.Fatal(err)
	}
	bal, err := e.App.Wallet.Balances(ctx, communityID, userID)
	if err != nil {
		t.Fatal(err)
	}
	if got := xpTotal(t, e, communityID, userID); got != xpSum || bal[wallet.Coins] != coinSum {
		t.Fatalf("xp %d coins %d, log sums %d and %d", got, bal[wallet.Coins], xpSum, coinSum)
	}
	return xpSum, coinSum
}

func TestReferralStagesFromEvents(t *testing.T) {
	e := apitest.New(t)
	ctx := context.Background()
	a, keyA, ada, bob, programID := referredSetup(t, e)
	drainReferrals(e, a)
	// user.created: refer XP (20 + 2 coins) and stage 1 (partner-made
	// accounts are verified): 10 XP + 1 coin.
	if x, c := checkLedger(t, e, a, ada); x != 30 || c != 3 {
		t.Fatalf("ada after join: %d xp %d coins", x, c)
	}
	// bob earns 60 XP (plus the 5 for being referred): stage 2 needs 100
	// or three messages.
	if _, _, err := e.App.XP.Award(ctx, xp.Award{CommunityID: a, UserID: bob, Action: "badge", XP: 60, Actor: wallet.Actor{Kind: wallet.ActorSystem}}); err != nil {
		t.Fatal(err)
	}
	drainReferrals(e, a)
	if x, _ := checkLedger(t, e, a, ada); x != 30 {
		t.Fatalf("ada xp %d before stage 2", x)
	}
	// Three messages (the messaging domain's counters, then its event).
	if _, err := e.App.DB.Exec(ctx, "INSERT INTO message_counters (community_id, user_id, total_messages, reply_sent, total_reactions) VALUES (?, ?, 3, 0, 0)",
		a, bob); err != nil {
		t.Fatal(err)
	}
	e.Emit(a, "message.posted", map[string]any{"userId": bob, "messageId": "m3"})
	drainReferrals(e, a)
	if x, c := checkLedger(t, e, a, ada); x != 60 || c != 6 {
		t.Fatalf("ada after stage 2: %d xp %d coins", x, c)
	}
	if n := countRows(t, e, "SELECT COUNT(*) FROM referral_completions WHERE program_id = ? AND referee_id = ?", programID, bob); n != 2 {
		t.Fatalf("%d completions, want 2", n)
	}
	// Redelivery of every event: rewind the subscriber; nothing pays twice.
	if _, err := e.App.DB.Exec(ctx, "UPDATE event_offsets SET last_seq = 0 WHERE subscriber = ? AND community_id = ?", referral.SubscriberName, a); err != nil {
		t.Fatal(err)
	}
	e.Emit(a, "test.nudge", nil)
	drainReferrals(e, a)
	if x, c := checkLedger(t, e, a, ada); x != 60 || c != 6 {
		t.Fatalf("ada after redelivery: %d xp %d coins", x, c)
	}
	if n := len(e.EventTypes(a, referral.EventStageCompleted)); n != 2 {
		t.Fatalf("%d stage events, want 2", n)
	}
	// An inactive program makes no progress; a member who was not referred
	// makes none either.
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/referrals/programs/" + programID, Key: keyA, Body: map[string]any{"status": "inactive"}}).Expect(t, 200)
	if _, _, err := e.App.XP.Award(ctx, xp.Award{CommunityID: a, UserID: bob, Action: "badge", XP: 1000, Actor: wallet.Actor{Kind: wallet.ActorSystem}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.App.XP.Award(ctx, xp.Award{CommunityID: a, UserID: ada, Action: "badge", XP: 1000, Actor: wallet.Actor{Kind: wallet.ActorSystem}}); err != nil {
		t.Fatal(err)
	}
	drainReferrals(e, a)
	if n := countRows(t, e, "SELECT COUNT(*) FROM referral_completions WHERE community_id = ?", a); n != 2 {
		t.Fatalf("%d completions with the program inactive", n)
	}
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/referrals/programs/" + programID, Key: keyA, Body: map[string]any{"status": "active"}}).Expect(t, 200)
	e.Emit(a, "user.visited", map[string]any{"userId": bob})
	drainReferrals(e, a)
	if x, c := checkLedger(t, e, a, ada); x != 1060+100 || c != 16 {
		t.Fatalf("ada after stage 3: %d xp %d coins", x, c)
	}
	// bob completed every stage: the summary counts him as completed.
	res := summary(t, e, keyA, byEmail("ada@example.com")).Expect(t, 200)
	if res.Get("data.activity.completed") != float64(1) || res.Get("data.activity.inProgress") != float64(0) ||
		res.Get("data.activity.xpEarned") != float64(20+10+30+100) || res.Get("data.activity.coinsEarned") != float64(16) ||
		res.Get("data.referees.0.progressByProgram.0.percentage") != float64(100) {
		t.Fatalf("summary after every stage: %s", res.Body)
	}
}

func TestReferralRewardsOnceUnderConcurrency(t *testing.T) {
	e := apitest.New(t)
	ctx := context.Background()
	a, _, ada, bob, _ := referredSetup(t, e)
	drainReferrals(e, a)
	if x, _ := checkLedger(t, e, a, ada); x != 30 {
		t.Fatalf("ada xp %d after join", x)
	}
	if _, err := e.App.DB.Exec(ctx, "UPDATE xp_totals SET xp = 500 WHERE community_id = ? AND user_id = ?", a, bob); err != nil {
		t.Fatal(err)
	}
	// The same event delivered several times at once (each delivery in its
	// own transaction, as redelivering workers would): every stage pays once.
	ev := event.Event{ID: "0123456789abcdef01234567", CommunityID: a, Type: "user.visited",
		Payload: []byte(`{"userId":"` + bob + `"}`), OccurredAt: e.Clock.Now()}
	handle := e.App.Referrals.Subscriber().HandleBatch
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			errc <- e.App.DB.Tx(ctx, func(tx *db.Tx) error { return handle(ctx, tx, []event.Event{ev}) })
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	drainReferrals(e, a)
	if x, c := checkLedger(t, e, a, ada); x != 20+10+30+100 || c != 2+1+3+10 {
		t.Fatalf("ada: %d xp %d coins", x, c)
	}
	if n := countRows(t, e, "SELECT COUNT(*) FROM gamification_logs WHERE community_id = ? AND user_id = ? AND action = ?", a, ada, referral.ActionStage); n != 3 {
		t.Fatalf("%d stage awards, want 3", n)
	}
	if n := countRows(t, e, "SELECT COUNT(*) FROM referral_completions WHERE community_id = ? AND referee_id = ?", a, bob); n != 3 {
		t.Fatalf("%d completions, want 3", n)
	}
}

func TestReferralSummary(t *testing.T) {
	e := apitest.New(t)
	a, keyA, ada, bob, programID := referredSetup(t, e)
	_, keyB := e.Community("Beta", "beta")
	createUser(t, e, keyB, "zed")
	cy := createUser(t, e, keyA, "cy", "referral", "ada")
	createUser(t, e, keyA, "dee", "referral", "ada")
	createUser(t, e, keyA, "eli", "referral", "bob") // bob's referee, not ada's
	drainReferrals(e, a)

	res := summary(t, e, keyA, map[string]any{"identifier": map[string]any{"type": "email", "value": "ada@example.com"},
		"pagination": map[string]any{"limit": 2}}).Expect(t, 200)
	if res.String("message") == "" || res.Get("meta.status") != "success" || res.String("data.user.userId") != ada ||
		res.String("data.user.email") != "ada@example.com" || res.String("data.user.username") != "ada" || res.String("data.user.id") == "" {
		t.Fatalf("user: %s", res.Body)
	}
	if res.Get("data.activity.totalReferrals") != float64(3) || res.Get("data.activity.completed") != float64(0) ||
		res.Get("data.activity.inProgress") != float64(3) ||
		res.Get("data.activity.xpEarned") != float64(3*(20+10)) || res.Get("data.activity.coinsEarned") != float64(3*(2+1)) {
		t.Fatalf("activity: %s", res.Body)
	}
	refs := res.Get("data.referees").([]any)
	if len(refs) != 2 || res.String("data.referees.0.userId") != bob || res.String("data.referees.1.userId") != cy ||
		res.Get("data.pagination.hasMore") != true || res.String("data.pagination.nextCursor") == "" {
		t.Fatalf("page 1: %s", res.Body)
	}
	// bob's XP: referred (5), then referred eli (20), who verified (10).
	pp := "data.referees.0.progressByProgram.0."
	if res.String(pp+"programId") != programID || res.String(pp+"programName") != "Friends" || res.Get(pp+"completedStages") != float64(1) ||
		res.Get(pp+"totalStages") != float64(3) || res.Get(pp+"percentage") != float64(33) ||
		res.String(pp+"stages.0.status") != "completed" || res.Get(pp+"stages.0.isCompleted") != true || res.String(pp+"stages.0.completedAt") == "" ||
		res.String(pp+"stages.1.status") != "in_progress" || res.String(pp+"stages.2.status") != "locked" ||
		res.Get(pp+"stages.1.rewards.xp") != float64(30) || res.String(pp+"stages.1.requirements.operator") != "and" ||
		res.Get(pp+"stages.1.requirements.met") != float64(0) || res.Get(pp+"stages.1.requirements.total") != float64(1) ||
		res.String(pp+"stages.1.requirements.mainConditions.0.operator") != "or" ||
		res.Get(pp+"stages.1.requirements.mainConditions.0.nestedConditions.0.target") != float64(100) ||
		res.Get(pp+"stages.1.requirements.mainConditions.0.nestedConditions.0.current") != float64(5+20+10) ||
		res.Get(pp+"stages.1.requirements.mainConditions.0.nestedConditions.0.isMet") != false {
		t.Fatalf("progress: %s", res.Body)
	}
	// Page 2 through the cursor, on the documented /apis/referral/summary form.
	res = e.Do(apitest.Request{Method: "POST", Path: "/apis/referral/summary", Key: keyA, Body: map[string]any{
		"identifier": map[string]any{"type": "username", "value": "ada"},
		"pagination": map[string]any{"limit": 2, "cursor": res.String("data.pagination.nextCursor")}}}).Expect(t, 200)
	if refs := res.Get("data.referees").([]any); len(refs) != 1 || res.String("data.referees.0.username") != "dee" ||
		res.Get("data.pagination.hasMore") != false || res.Get("data.pagination.nextCursor") != nil {
		t.Fatalf("page 2: %s", res.Body)
	}
	// The sibling form and /apis/v1; one program only.
	res = e.Do(apitest.Request{Method: "POST", Path: "/apis/v1/referrals/summary", Key: keyA, Body: map[string]any{
		"identifier": ada, "identifier_type": "userId", "programId": programID}}).Expect(t, 200)
	if len(res.Get("data.referees").([]any)) != 3 || len(res.Get("data.referees.0.progressByProgram").([]any)) != 1 {
		t.Fatalf("sibling form: %s", res.Body)
	}
	// custom-field identifiers.
	createField(t, e, a, keyA, map[string]any{"field": "customerId", "name": "Customer", "type": "text"})
	kim := createUser(t, e, keyA, "kim", "customFields", []any{map[string]any{"fieldIdorName": "customerId", "value": "CUS-001"}})
	createUser(t, e, keyA, "lou", "referral", "kim")
	res = summary(t, e, keyA, map[string]any{"identifier": map[string]any{"type": "custom-field", "value": "CUS-001", "fieldName": "customerId"},
		"pagination": map[string]any{"limit": 25}}).Expect(t, 200)
	if res.String("data.user.userId") != kim || res.Get("data.activity.totalReferrals") != float64(1) || res.String("data.referees.0.username") != "lou" {
		t.Fatalf("custom-field: %s", res.Body)
	}

	// Errors, as documented.
	createUser(t, e, keyA, "max", "customFields", []any{map[string]any{"fieldIdorName": "customerId", "value": "CUS-002"}})
	createUser(t, e, keyA, "ned", "customFields", []any{map[string]any{"fieldIdorName": "customerId", "value": "CUS-002"}})
	_, noData := keyWith(t, e, a, 0, "getUserStats")
	for _, tc := range []struct {
		name   string
		key    string
		body   map[string]any
		status int
		fields []string
	}{
		{"no identifier", keyA, map[string]any{}, 400, []string{"identifier"}},
		{"bad identifier", keyA, map[string]any{"identifier": 5}, 400, []string{"identifier"}},
		{"bad type and empty value", keyA, map[string]any{"identifier": map[string]any{"type": "phone"}}, 400,
			[]string{"identifier.type", "identifier.value"}},
		{"custom-field without fieldName", keyA, map[string]any{"identifier": map[string]any{"type": "custom-field", "value": "x"}}, 400,
			[]string{"identifier.fieldName"}},
		{"unknown custom field", keyA, map[string]any{"identifier": map[string]any{"type": "custom-field", "value": "x", "fieldName": "nope"}}, 400,
			[]string{"identifier.fieldName"}},
		{"sibling form without fieldName", keyA, map[string]any{"identifier": "x", "identifier_type": "custom-field"}, 400, []string{"fieldName"}},
		{"invalid cursor and limit", keyA, map[string]any{"identifier": map[string]any{"type": "email", "value": "ada@example.com"},
			"pagination": map[string]any{"limit": 0, "cursor": "garbage!"}}, 400, []string{"pagination.cursor", "pagination.limit"}},
		{"invalid programId", keyA, map[string]any{"identifier": map[string]any{"type": "email", "value": "ada@example.com"}, "programId": "p1"},
			400, []string{"programId"}},
		{"unknown program", keyA, map[string]any{"identifier": map[string]any{"type": "email", "value": "ada@example.com"},
			"programId": "0123456789abcdef01234567"}, 404, nil},
		{"unknown user", keyA, byEmail("nobody@example.com"), 404, nil},
		{"nobody has the value", keyA, map[string]any{"identifier": map[string]any{"type": "custom-field", "value": "CUS-404", "fieldName": "customerId"}}, 404, nil},
		{"duplicate custom-field users", keyA, map[string]any{"identifier": map[string]any{"type": "custom-field", "value": "CUS-002", "fieldName": "customerId"}}, 409, nil},
		{"another community's member", keyA, byEmail("zed@example.com"), 404, nil},
		{"tenancy: B's key on A's member", keyB, byEmail("ada@example.com"), 404, nil},
		{"no key", "", byEmail("ada@example.com"), 401, nil},
		{"key without getUserData", noData, byEmail("ada@example.com"), 403, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := summary(t, e, tc.key, tc.body).Expect(t, tc.status)
			if tc.fields != nil {
				got := res.ErrorFields()
				slices.Sort(got)
				if !slices.Equal(got, tc.fields) {
					t.Fatalf("fields %v, want %v: %s", got, tc.fields, res.Body)
				}
			}
		})
	}
}
