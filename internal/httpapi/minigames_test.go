package httpapi_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/minigame"
	"github.com/rallyhq/rally/internal/user"
)

func TestDrawFollowsWeights(t *testing.T) {
	segs := []minigame.Segment{{ID: "a", Weight: 1}, {ID: "b", Weight: 2}, {ID: "c", Weight: 3}, {ID: "d", Weight: 4}, {ID: "e", Weight: 10}}
	const n = 100_000
	observed := map[string]float64{}
	for range n {
		s, err := minigame.Draw(segs)
		if err != nil {
			t.Fatal(err)
		}
		observed[s.ID]++
	}
	var total, chi2 float64
	for _, s := range segs {
		total += float64(s.Weight)
	}
	for _, s := range segs {
		exp := n * float64(s.Weight) / total
		d := observed[s.ID] - exp
		chi2 += d * d / exp
	}
	// Critical value of chi-squared with 4 degrees of freedom at p = 0.001.
	const critical = 18.467
	if chi2 > critical {
		t.Fatalf("chi-squared %.2f > %.3f: observed %v", chi2, critical, observed)
	}
	if _, err := minigame.Draw([]minigame.Segment{{ID: "z", Weight: 0}}); err == nil {
		t.Fatal("a wheel without weight must not draw")
	}
}

// wheel sets up the community's wheel with segs.
func wheel(t *testing.T, e *apitest.Env, key string, body map[string]any) *apitest.Response {
	t.Helper()
	return e.Do(apitest.Request{Method: "PUT", Path: "/v1/mini-games/spin-wheel", Key: key, Body: body})
}

func seg(typ string, amount, weight int) map[string]any {
	return map[string]any{"type": typ, "amount": amount, "weight": weight}
}

func TestSpinWheelSetUp(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Wheel A", "wheel-a")
	_, keyB := e.Community("Wheel B", "wheel-b")
	e.Do(apitest.Request{Method: "GET", Path: "/v1/mini-games/spin-wheel", Key: key}).Expect(t, 404)
	if fmt.Sprint(wheel(t, e, key, map[string]any{"name": "Lucky"}).Expect(t, 400).ErrorFields()) != "[segments]" {
		t.Fatal("a new wheel needs segments")
	}
	res := wheel(t, e, key, map[string]any{"cooldownSeconds": -1, "segments": []any{
		map[string]any{"type": "gems", "weight": 1}, seg("coins", 0, 0), map[string]any{"type": "product", "weight": 1},
		map[string]any{"type": "product", "productId": "6167dba9c548eb5c7ec28057", "weight": 1}}}).Expect(t, 400)
	if got := fmt.Sprint(sortedCopy(res.ErrorFields())); got != "[cooldownSeconds segments.0.type segments.1.amount segments.1.weight segments.2.productId segments.3.productId]" {
		t.Fatalf("fields %s", got)
	}
	prod := e.Do(apitest.Request{Method: "POST", Path: "/v1/products", Key: key, Body: map[string]any{"name": "Mug", "price": 10}}).Expect(t, 201).String("data._id")
	otherProd := e.Do(apitest.Request{Method: "POST", Path: "/v1/products", Key: keyB, Body: map[string]any{"name": "Cap", "price": 10}}).Expect(t, 201).String("data._id")
	res = wheel(t, e, key, map[string]any{"segments": []any{map[string]any{"type": "product", "productId": otherProd, "weight": 1}}}).Expect(t, 400)
	if fmt.Sprint(res.ErrorFields()) != "[segments.0.productId]" {
		t.Fatal("another community's product must be refused")
	}
	res = wheel(t, e, key, map[string]any{"name": "Lucky", "segments": []any{seg("coins", 50, 5), seg("xp", 20, 3),
		seg("premium", 1, 1), map[string]any{"type": "product", "productId": prod, "weight": 1, "label": "A mug"}, seg("nothing", 0, 10)}}).Expect(t, 201)
	if res.String("data.name") != "Lucky" || res.Get("data.enabled") != true || res.Get("data.cooldownSeconds") != float64(86400) ||
		res.String("data.segments.0.label") != "50 coins" || res.String("data.segments.3.label") != "A mug" || res.Get("data.segments.3.amount") != float64(1) ||
		len(res.String("data.segments.0._id")) != 24 {
		t.Fatalf("create: %s", res.Body)
	}
	res = wheel(t, e, key, map[string]any{"enabled": false, "cooldownSeconds": 3600}).Expect(t, 200)
	if res.Get("data.enabled") != false || res.Get("data.cooldownSeconds") != float64(3600) || len(res.Get("data.segments").([]any)) != 5 {
		t.Fatalf("update: %s", res.Body)
	}
	if e.Do(apitest.Request{Method: "GET", Path: "/apis/v1/mini-games/spin-wheel", Key: key}).Expect(t, 200).Get("data.cooldownSeconds") != float64(3600) {
		t.Fatal("read after update")
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/mini-games/spin-wheel", Key: keyB}).Expect(t, 404)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/mini-games/spin-wheel"}).Expect(t, 401)
	_, statsOnly := keyWith(t, e, a, 0, "getUserStats")
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/mini-games/spin-wheel", Key: statsOnly, Body: map[string]any{"enabled": true}}).Expect(t, 403)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/mini-games/spin-wheel", Key: keyB}).Expect(t, 404)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/mini-games/spin-wheel", Key: key}).Expect(t, 200)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/mini-games/spin-wheel", Key: key}).Expect(t, 404)
	if got := e.EventTypes(a, "minigame.wheel_created", "minigame.wheel_updated", "minigame.wheel_deleted"); fmt.Sprint(got) !=
		"[minigame.wheel_created minigame.wheel_updated minigame.wheel_deleted]" {
		t.Fatalf("events %v", got)
	}
}

// sums checks that the member's XP total and wallet balances equal the sums
// of the gamification log and the ledger, and returns the coins, XP and
// premium the member holds.
func sums(t *testing.T, e *apitest.Env, communityID string, u user.User) (coins, xp, premium int64) {
	t.Helper()
	coins = ledgerSums(t, e, communityID, u)
	ctx := context.Background()
	var logXP, logCoins int64
	if err := e.App.DB.QueryRow(ctx, "SELECT COALESCE(SUM(xp), 0), COALESCE(SUM(coins), 0) FROM gamification_logs WHERE community_id = ? AND user_id = ?",
		communityID, u.ID).Scan(&logXP, &logCoins); err != nil {
		t.Fatal(err)
	}
	total, err := e.App.XP.Total(ctx, communityID, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if total != logXP || coins != logCoins {
		t.Fatalf("xp total %d vs log %d; coins %d vs log %d", total, logXP, coins, logCoins)
	}
	b, err := e.App.Wallet.Balances(ctx, communityID, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return coins, total, b["premium"]
}

func TestSpins(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Spins", "spins")
	b, keyB := e.Community("Spins B", "spins-b")
	ann := e.Member(a, "ann", user.MemberOptions{Joined: true})
	e.Member(b, "bea", user.MemberOptions{Joined: true})
	tok := e.SignIn(a, "ann@example.com")
	memberPath := "/v1/communities/" + a + "/mini-games/spin-wheel"
	spinBody := map[string]any{"identifier": "ann@example.com", "identifier_type": "email"}
	partnerSpin := func(headers map[string]string) *apitest.Response {
		return e.Do(apitest.Request{Method: "POST", Path: "/v1/users/mini-games/spin-wheel/spin", Key: key, Body: spinBody, Headers: headers})
	}

	e.Do(apitest.Request{Method: "POST", Path: memberPath + "/spin", Key: tok}).Expect(t, 404) // no wheel yet
	wheel(t, e, key, map[string]any{"segments": []any{seg("coins", 7, 1)}}).Expect(t, 201)

	// The member's free spin.
	res := e.Do(apitest.Request{Method: "GET", Path: memberPath, Key: tok}).Expect(t, 200)
	if res.Get("data.spins.spinsAvailable") != float64(1) || res.Get("data.spins.freeSpinAvailable") != true || res.String("data.wheel.segments.0.type") != "coins" {
		t.Fatalf("member wheel: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "POST", Path: memberPath + "/spin", Key: tok}).Expect(t, 200)
	if res.String("data.log.prizeType") != "coins" || res.Get("data.log.amount") != float64(7) || res.Get("data.log.freeSpin") != true ||
		res.String("data.log.actor.kind") != "user" || res.Get("data.spins.spinsAvailable") != float64(0) ||
		res.Get("data.spins.cooldownRemainingSeconds") != float64(86400) || res.Get("data.spins.totalSpins") != float64(1) {
		t.Fatalf("free spin: %s", res.Body)
	}
	if res = e.Do(apitest.Request{Method: "POST", Path: memberPath + "/spin", Key: tok}).Expect(t, 409); res.String("message") != "No spins available." {
		t.Fatalf("no spins: %s", res.Body)
	}
	if coins, _, _ := sums(t, e, a, ann); coins != 7 {
		t.Fatalf("coins %d after a 7-coin spin", coins)
	}

	// SM2: grant extra spins, set them, move the cooldown.
	res = e.Do(apitest.Request{Method: "PUT", Path: "/v1/users/mini-games/spin-wheel", Key: key, Body: map[string]any{
		"identifier": ann.ID, "identifier_type": "_id", "grantSpins": 3}}).Expect(t, 200)
	if res.Get("data.extraSpins") != float64(3) || res.Get("data.spinsAvailable") != float64(3) || res.Get("data.extraSpinsGranted") != float64(3) ||
		res.Get("data.freeSpinAvailable") != false {
		t.Fatalf("grant: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "PUT", Path: "/v1/users/mini-games/spin-wheel", Key: key, Body: map[string]any{
		"identifier": "ann", "identifier_type": "username", "extraSpins": 1, "nextFreeSpinAt": nil}}).Expect(t, 200)
	if res.Get("data.extraSpins") != float64(1) || res.Get("data.spinsAvailable") != float64(2) || res.Get("data.freeSpinAvailable") != true {
		t.Fatalf("set: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "PUT", Path: "/v1/users/mini-games/spin-wheel", Key: key, Body: map[string]any{
		"identifier": "ann@example.com", "identifier_type": "phone", "extraSpins": -1, "grantSpins": 0, "nextFreeSpinAt": "tomorrow"}}).Expect(t, 400)
	if got := fmt.Sprint(sortedCopy(res.ErrorFields())); got != "[identifier_type]" {
		t.Fatalf("bad identifier first: %s", got)
	}
	res = e.Do(apitest.Request{Method: "PUT", Path: "/v1/users/mini-games/spin-wheel", Key: key, Body: map[string]any{
		"identifier": "ann@example.com", "extraSpins": -1, "grantSpins": 0, "nextFreeSpinAt": "tomorrow"}}).Expect(t, 400)
	if got := fmt.Sprint(sortedCopy(res.ErrorFields())); got != "[extraSpins grantSpins nextFreeSpinAt]" {
		t.Fatalf("fields %s", got)
	}
	if fmt.Sprint(e.Do(apitest.Request{Method: "PUT", Path: "/v1/users/mini-games/spin-wheel", Key: key, Body: map[string]any{"identifier": "ann"}}).Expect(t, 400).ErrorFields()) != "[extraSpins]" {
		t.Fatal("an update without changes must be refused")
	}
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/users/mini-games/spin-wheel", Key: keyB, Body: map[string]any{"identifier": "ann@example.com", "grantSpins": 1}}).Expect(t, 404)
	_, statsOnly := keyWith(t, e, a, 0, "getUserStats")
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/users/mini-games/spin-wheel", Key: statsOnly, Body: map[string]any{"identifier": "ann", "grantSpins": 1}}).Expect(t, 403)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/mini-games/spin-wheel/spin", Key: statsOnly, Body: spinBody}).Expect(t, 403)

	// A partner spin with an Idempotency-Key is applied once.
	first := partnerSpin(map[string]string{"Idempotency-Key": "spin-1"}).Expect(t, 200)
	again := partnerSpin(map[string]string{"Idempotency-Key": "spin-1"}).Expect(t, 200)
	if again.Header.Get("Idempotent-Replayed") != "true" || string(again.Body) != string(first.Body) || first.String("data.log.actor.kind") != "apikey" ||
		first.Get("data.log.freeSpin") != true {
		t.Fatalf("replay: %s / %s", first.Body, again.Body)
	}
	partnerSpin(nil).Expect(t, 200) // the extra spin
	partnerSpin(nil).Expect(t, 409)
	if coins, _, _ := sums(t, e, a, ann); coins != 21 {
		t.Fatalf("coins %d after three spins", coins)
	}

	// A day later the free spin is due again.
	e.Clock.Advance(24 * time.Hour)
	e.Do(apitest.Request{Method: "POST", Path: "/apis/v1/communities/" + a + "/mini-games/spin-wheel/spin", Key: tok}).Expect(t, 200)

	// Every prize type pays through its service.
	wheel(t, e, key, map[string]any{"segments": []any{seg("xp", 11, 1)}, "freeSpinEnabled": false}).Expect(t, 200)
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/users/mini-games/spin-wheel", Key: key, Body: map[string]any{"identifier": "ann", "grantSpins": 3}}).Expect(t, 200)
	partnerSpin(nil).Expect(t, 200)
	wheel(t, e, key, map[string]any{"segments": []any{seg("premium", 2, 1)}}).Expect(t, 200)
	partnerSpin(nil).Expect(t, 200)
	prod := e.Do(apitest.Request{Method: "POST", Path: "/v1/products", Key: key, Body: map[string]any{"name": "Mug", "price": 10}}).Expect(t, 201).String("data._id")
	wheel(t, e, key, map[string]any{"segments": []any{map[string]any{"type": "product", "productId": prod, "weight": 1}}}).Expect(t, 200)
	res = partnerSpin(nil).Expect(t, 200)
	if res.String("data.log.productId") != prod || res.String("data.log.prizeType") != "product" {
		t.Fatalf("product prize: %s", res.Body)
	}
	coins, xp, premium := sums(t, e, a, ann)
	if coins != 28 || xp != 11 || premium != 2 {
		t.Fatalf("coins %d xp %d premium %d", coins, xp, premium)
	}
	if got := e.EventTypes(a, "minigame.product_won"); len(got) != 1 {
		t.Fatalf("product events %v", got)
	}

	// US6: the logs by email, newest first, paged; totals match them.
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/mini-games/logs", Key: key, Body: map[string]any{"email": "ann@example.com", "limit": 5}}).Expect(t, 200)
	if res.Get("data.pagination.total") != float64(7) || len(res.Get("data.logs").([]any)) != 5 || res.String("data.logs.0.prizeType") != "product" {
		t.Fatalf("logs: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/mini-games/logs", Key: key, Body: map[string]any{"email": "ann@example.com", "page": 2, "limit": 5}}).Expect(t, 200)
	if len(res.Get("data.logs").([]any)) != 2 {
		t.Fatalf("page 2: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/mini-games/stats", Key: key, Body: map[string]any{"identifier": "ann@example.com"}}).Expect(t, 200)
	if res.Get("data.miniGames.summary.totalPlays") != float64(7) || res.Get("data.miniGames.summary.won.coins") != float64(28) ||
		res.Get("data.miniGames.summary.won.xp") != float64(11) || res.Get("data.miniGames.summary.won.premium") != float64(2) ||
		res.Get("data.miniGames.summary.won.product") != float64(1) || res.Get("data.miniGames.spinWheel.totalSpins") != float64(7) {
		t.Fatalf("stats: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/mini-games/logs", Key: keyB, Body: map[string]any{"email": "ann@example.com"}}).Expect(t, 404)
	if fmt.Sprint(e.Do(apitest.Request{Method: "POST", Path: "/v1/users/mini-games/logs", Key: key, Body: map[string]any{}}).Expect(t, 400).ErrorFields()) != "[identifier]" {
		t.Fatal("a member is required")
	}

	// Disabled wheels do not spin; a member token works only in its community.
	wheel(t, e, key, map[string]any{"enabled": false}).Expect(t, 200)
	partnerSpin(nil).Expect(t, 409)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/communities/" + b + "/mini-games/spin-wheel/spin", Key: tok}).Expect(t, 403)
	e.Do(apitest.Request{Method: "POST", Path: memberPath + "/spin"}).Expect(t, 401)
	e.Do(apitest.Request{Method: "POST", Path: memberPath + "/spin", Key: key}).Expect(t, 403)
}

func TestConcurrentSpinsNeverExceedTheSpinsAvailable(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Rush", "rush")
	ann := e.Member(a, "ann", user.MemberOptions{Joined: true})
	wheel(t, e, key, map[string]any{"freeSpinEnabled": false, "segments": []any{seg("coins", 3, 2), seg("xp", 5, 1), seg("nothing", 0, 1)}}).Expect(t, 201)
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/users/mini-games/spin-wheel", Key: key, Body: map[string]any{"identifier": "ann", "extraSpins": 10}}).Expect(t, 200)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
	)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := e.Do(apitest.Request{Method: "POST", Path: "/v1/users/mini-games/spin-wheel/spin", Key: key, Body: map[string]any{"identifier": "ann"}})
			mu.Lock()
			statuses[res.Status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if statuses[200] != 10 || statuses[409] != 40 {
		t.Fatalf("statuses %v", statuses)
	}
	coins, xp, _ := sums(t, e, a, ann)
	var logCoins, logXP, n int64
	if err := e.App.DB.QueryRow(context.Background(), `SELECT COALESCE(SUM(CASE WHEN prize_type = 'coins' THEN amount ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN prize_type = 'xp' THEN amount ELSE 0 END), 0), COUNT(*) FROM minigame_logs WHERE community_id = ? AND user_id = ?`,
		a, ann.ID).Scan(&logCoins, &logXP, &n); err != nil {
		t.Fatal(err)
	}
	if n != 10 || coins != logCoins || xp != logXP {
		t.Fatalf("%d logs; coins %d vs %d; xp %d vs %d", n, coins, logCoins, xp, logXP)
	}
}
