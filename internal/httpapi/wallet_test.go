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

// walletPath is the canonical path of u's wallet, plus suffix.
func walletPath(u user.User, suffix string) string { return "/v1/users/" + u.ID + "/wallet" + suffix }

// change credits or debits through the API and returns the response.
func change(e *apitest.Env, key string, u user.User, op, currency string, amount int64, headers map[string]string) *apitest.Response {
	return e.Do(apitest.Request{Method: "POST", Path: walletPath(u, "/"+op), Key: key, Headers: headers,
		Body: map[string]any{"currency": currency, "amount": amount}})
}

// ledgerSums checks the books of u: the ledger adds up to each balance and
// no row ever recorded a negative balance. It returns the coins balance.
func ledgerSums(t *testing.T, e *apitest.Env, communityID string, u user.User) int64 {
	t.Helper()
	ctx := context.Background()
	balances, err := e.App.Wallet.Balances(ctx, communityID, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	for currency, balance := range balances {
		var sum, negatives int64
		if err := e.App.DB.QueryRow(ctx, `SELECT COALESCE(SUM(amount), 0), COALESCE(SUM(CASE WHEN balance_after < 0 THEN 1 ELSE 0 END), 0)
			FROM wallet_ledger WHERE community_id = ? AND user_id = ? AND currency = ?`, communityID, u.ID, currency).Scan(&sum, &negatives); err != nil {
			t.Fatal(err)
		}
		if sum != balance || negatives != 0 {
			t.Fatalf("%s: ledger sums to %d, balance %d, %d negative rows", currency, sum, balance, negatives)
		}
	}
	return balances["coins"]
}

func TestWalletCreditDebitAndRead(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Wallet A", "wallet-a")
	u := e.Member(a, "ann", user.MemberOptions{Joined: true})

	res := change(e, key, u, "credit", "coins", 100, nil).Expect(t, 200)
	if res.String("message") != "Credit wallet success." || res.Get("data.entry.amount") != float64(100) ||
		res.Get("data.entry.balanceAfter") != float64(100) || res.String("data.entry.reason") != "credit" ||
		res.String("data.entry.userId") != u.ID || res.String("data.entry.actor.kind") != "apikey" ||
		res.Get("data.wallet.balances.coins") != float64(100) || res.Get("data.wallet.balances.premium") != float64(0) {
		t.Fatalf("credit: %s", res.Body)
	}
	if res.Header.Get("Idempotent-Replayed") != "" {
		t.Fatal("a first answer must not be marked replayed")
	}
	res = e.Do(apitest.Request{Method: "POST", Path: walletPath(u, "/debit"), Key: key,
		Body: map[string]any{"currency": "coins", "amount": 30, "reason": "purchase", "reference": "ORD123"}}).Expect(t, 200)
	if res.Get("data.entry.amount") != float64(-30) || res.Get("data.entry.balanceAfter") != float64(70) ||
		res.String("data.entry.reason") != "purchase" || res.String("data.entry.reference") != "ORD123" {
		t.Fatalf("debit: %s", res.Body)
	}
	res = change(e, key, u, "debit", "coins", 71, nil).Expect(t, 409)
	if res.String("message") != "Insufficient coins balance." {
		t.Fatalf("insufficient: %s", res.Body)
	}
	if change(e, key, u, "debit", "premium", 1, nil).Expect(t, 409).String("message") != "Insufficient premium balance." {
		t.Fatal("premium debit on an empty wallet must be refused")
	}
	change(e, key, u, "credit", "premium", 5, nil).Expect(t, 200)

	// Every accepted path form and both ids read the same wallet.
	for _, p := range []string{walletPath(u, ""), "/apis/v1/users/" + u.ID + "/wallet", "/users/" + strconv.FormatInt(u.NumID, 10) + "/wallet",
		"/api/v1/users/" + strings.ToUpper(u.ID) + "/wallet"} {
		res := e.Do(apitest.Request{Method: "GET", Path: p, Key: key}).Expect(t, 200)
		if res.Get("data.balances.coins") != float64(70) || res.Get("data.balances.premium") != float64(5) ||
			res.String("data.userId") != u.ID || res.Get("data.id") != float64(u.NumID) {
			t.Fatalf("GET %s: %s", p, res.Body)
		}
	}
	if got := ledgerSums(t, e, a, u); got != 70 {
		t.Fatalf("coins %d, want 70", got)
	}

	// The refused debit left no trace; the ledger lists the three changes.
	res = e.Do(apitest.Request{Method: "GET", Path: walletPath(u, "/ledger"), Key: key}).Expect(t, 200)
	list, _ := res.Get("data").([]any)
	if len(list) != 3 || res.Get("data.0.currency") != "premium" || res.Get("data.2.amount") != float64(100) || res.Get("meta.next") != nil {
		t.Fatalf("ledger: %s", res.Body)
	}

	// Every change is an event.
	count := func(typ string) int {
		res := e.Do(apitest.Request{Method: "GET", Path: "/v1/events?type=" + typ, Key: key}).Expect(t, 200)
		l, _ := res.Get("data").([]any)
		return len(l)
	}
	apitest.WaitFor(t, "wallet events", func() bool { return count("wallet.debited") == 1 && count("wallet.credited") == 2 })
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/events?type=wallet.debited", Key: key}).Expect(t, 200)
	if res.Get("data.0.payload.amount") != float64(-30) || res.String("data.0.payload.userId") != u.ID {
		t.Fatalf("debited event: %s", res.Body)
	}
}

func TestWalletValidationAuthAndTenancy(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Wallet A", "wallet-a")
	b, keyB := e.Community("Wallet B", "wallet-b")
	u := e.Member(a, "ann", user.MemberOptions{Joined: true})
	other := e.Member(b, "bob", user.MemberOptions{Joined: true})
	change(e, key, u, "credit", "coins", 10, nil).Expect(t, 200)

	cases := []struct {
		name       string
		body       any
		headers    map[string]string
		wantFields []string
	}{
		{"empty body", map[string]any{}, nil, []string{"amount", "currency"}},
		{"every field wrong", map[string]any{"currency": "gold", "amount": -5, "reason": "gift", "reference": strings.Repeat("x", 256)}, nil,
			[]string{"amount", "currency", "reason", "reference"}},
		{"amount too large", map[string]any{"currency": "coins", "amount": 1_000_000_000_001}, nil, []string{"amount"}},
		{"amount zero", map[string]any{"currency": "coins", "amount": 0}, nil, []string{"amount"}},
		{"amount fractional", `{"currency":"coins","amount":1.5}`, nil, []string{"amount"}},
		{"amount a string", `{"currency":"coins","amount":"5"}`, nil, []string{"amount"}},
		{"not an object", `[1]`, nil, []string{"body"}},
		{"empty idempotency key", map[string]any{"currency": "coins", "amount": 1}, map[string]string{"Idempotency-Key": ""}, []string{"Idempotency-Key"}},
		{"long idempotency key", map[string]any{"currency": "coins", "amount": 1}, map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, []string{"Idempotency-Key"}},
		{"unprintable idempotency key", map[string]any{"currency": "coins", "amount": 1}, map[string]string{"Idempotency-Key": "a\tb"}, []string{"Idempotency-Key"}},
	}
	for _, tc := range cases {
		for _, op := range []string{"credit", "debit"} {
			t.Run(tc.name+"/"+op, func(t *testing.T) {
				res := e.Do(apitest.Request{Method: "POST", Path: walletPath(u, "/"+op), Key: key, Body: tc.body, Headers: tc.headers}).Expect(t, 400)
				if got := sortedCopy(res.ErrorFields()); !slices.Equal(got, tc.wantFields) {
					t.Fatalf("fields %v, want %v: %s", got, tc.wantFields, res.Body)
				}
			})
		}
	}
	bad := e.Do(apitest.Request{Method: "GET", Path: walletPath(u, "/ledger?limit=101&before=0&currency=gold&from=yesterday&to=x"), Key: key}).Expect(t, 400)
	if got := sortedCopy(bad.ErrorFields()); !slices.Equal(got, []string{"before", "currency", "from", "limit", "to"}) {
		t.Fatalf("ledger fields %v", got)
	}
	bad = e.Do(apitest.Request{Method: "GET", Path: walletPath(u, "/ledger?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"), Key: key}).Expect(t, 400)
	if got := bad.ErrorFields(); !slices.Equal(got, []string{"to"}) {
		t.Fatalf("from after to: %v", got)
	}

	// 401 and 403.
	_, readOnly := keyWith(t, e, a, 0, "getUserStats")
	_, writeOnly := keyWith(t, e, a, 0, "bulkUpdateUser")
	for _, p := range []string{walletPath(u, ""), walletPath(u, "/ledger")} {
		e.Do(apitest.Request{Method: "GET", Path: p}).Expect(t, 401)
		e.Do(apitest.Request{Method: "GET", Path: p, Key: writeOnly}).Expect(t, 403)
		e.Do(apitest.Request{Method: "GET", Path: p, Key: e.AdminKey}).Expect(t, 403)
		e.Do(apitest.Request{Method: "GET", Path: p, Key: readOnly}).Expect(t, 200)
	}
	for _, op := range []string{"credit", "debit"} {
		e.Do(apitest.Request{Method: "POST", Path: walletPath(u, "/"+op), Body: map[string]any{"currency": "coins", "amount": 1}}).Expect(t, 401)
		change(e, readOnly, u, op, "coins", 1, nil).Expect(t, 403)
		change(e, writeOnly, u, op, "coins", 1, nil).Expect(t, 200)
	}

	// Tenancy: another community's member, unknown ids and deleted members
	// are all 404, and nothing moves.
	for _, tc := range []struct {
		key string
		who user.User
	}{{keyB, u}, {key, other}} {
		e.Do(apitest.Request{Method: "GET", Path: walletPath(tc.who, ""), Key: tc.key}).Expect(t, 404)
		e.Do(apitest.Request{Method: "GET", Path: walletPath(tc.who, "/ledger"), Key: tc.key}).Expect(t, 404)
		change(e, tc.key, tc.who, "credit", "coins", 5, nil).Expect(t, 404)
		change(e, tc.key, tc.who, "debit", "coins", 5, nil).Expect(t, 404)
	}
	for _, p := range []string{"/v1/users/0123456789abcdef01234567/wallet", "/v1/users/999999/wallet", "/v1/users/ann/wallet"} {
		e.Do(apitest.Request{Method: "GET", Path: p, Key: key}).Expect(t, 404)
	}
	if _, err := e.App.DB.Exec(context.Background(), "UPDATE members SET deleted_at = 1 WHERE community_id = ? AND user_id = ?", a, u.ID); err != nil {
		t.Fatal(err)
	}
	e.Do(apitest.Request{Method: "GET", Path: walletPath(u, ""), Key: key}).Expect(t, 404)
	change(e, key, u, "credit", "coins", 5, nil).Expect(t, 404)
	if got := ledgerSums(t, e, a, u); got != 10 {
		t.Fatalf("coins %d after refused writes, want 10", got)
	}
}

func TestWalletLedgerPaging(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Wallet A", "wallet-a")
	u := e.Member(a, "ann", user.MemberOptions{Joined: true})
	start := e.Clock.Now()
	for i := 1; i <= 25; i++ {
		currency := "coins"
		if i%5 == 0 {
			currency = "premium"
		}
		change(e, key, u, "credit", currency, int64(i), nil).Expect(t, 200)
		e.Clock.Advance(time.Minute)
	}

	// Page through 7 at a time while new rows keep arriving: every original
	// row is seen exactly once, newest first.
	var seen []float64
	cursor := ""
	for page := 0; page < 10; page++ {
		res := e.Do(apitest.Request{Method: "GET", Path: walletPath(u, "/ledger?limit=7"+cursor), Key: key}).Expect(t, 200)
		list, _ := res.Get("data").([]any)
		for _, it := range list {
			seen = append(seen, it.(map[string]any)["amount"].(float64))
		}
		change(e, key, u, "credit", "coins", 1000, nil).Expect(t, 200)
		next, ok := res.Get("meta.next").(float64)
		if !ok {
			break
		}
		cursor = fmt.Sprintf("&before=%d", int64(next))
	}
	var want []float64
	for i := 25; i >= 1; i-- {
		want = append(want, float64(i))
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("paged amounts %v, want %v", seen, want)
	}

	// Currency filter.
	res := e.Do(apitest.Request{Method: "GET", Path: walletPath(u, "/ledger?currency=premium&limit=100"), Key: key}).Expect(t, 200)
	if l, _ := res.Get("data").([]any); len(l) != 5 || res.Get("data.0.amount") != float64(25) {
		t.Fatalf("premium rows: %s", res.Body)
	}
	// Time window: minutes 2..4 after start hold credits 3, 4 and 5.
	from := start.Add(2 * time.Minute).Format(time.RFC3339Nano)
	to := start.Add(4 * time.Minute).Format(time.RFC3339Nano)
	res = e.Do(apitest.Request{Method: "GET", Path: walletPath(u, "/ledger?from="+from+"&to="+to), Key: key}).Expect(t, 200)
	var amounts []float64
	list, _ := res.Get("data").([]any)
	for _, it := range list {
		amounts = append(amounts, it.(map[string]any)["amount"].(float64))
	}
	if !slices.Equal(amounts, []float64{5, 4, 3}) {
		t.Fatalf("window amounts %v: %s", amounts, res.Body)
	}
	ledgerSums(t, e, a, u)
}

func TestWalletIdempotency(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Wallet A", "wallet-a")
	u := e.Member(a, "ann", user.MemberOptions{Joined: true})
	k := map[string]string{"Idempotency-Key": "order-1"}

	first := change(e, key, u, "credit", "coins", 40, k).Expect(t, 200)
	// The same document, spaced and ordered differently, at another path form
	// and by numeric id, is the same request.
	again := e.Do(apitest.Request{Method: "POST", Path: "/apis/v1/users/" + strconv.FormatInt(u.NumID, 10) + "/wallet/credit", Key: key, Headers: k,
		Body: `{ "amount": 40,   "currency": "coins" }`}).Expect(t, 200)
	if again.Header.Get("Idempotent-Replayed") != "true" || string(again.Body) != string(first.Body) {
		t.Fatalf("replay: %s vs %s", again.Body, first.Body)
	}
	if got := ledgerSums(t, e, a, u); got != 40 {
		t.Fatalf("coins %d after a replay, want 40", got)
	}
	// Same key, different body or different operation: 409, nothing applied.
	if res := change(e, key, u, "credit", "coins", 41, k).Expect(t, 409); !strings.Contains(res.String("message"), "Idempotency-Key") {
		t.Fatalf("conflict message: %s", res.Body)
	}
	change(e, key, u, "debit", "coins", 40, k).Expect(t, 409)
	// Another API key has its own keys.
	_, key2 := keyWith(t, e, a, 0, "bulkUpdateUser")
	if res := change(e, key2, u, "credit", "coins", 40, k).Expect(t, 200); res.Header.Get("Idempotent-Replayed") != "" {
		t.Fatal("another API key's request must apply")
	}
	// A refused write is not recorded: the retry is evaluated afresh.
	dk := map[string]string{"Idempotency-Key": "debit-1"}
	change(e, key, u, "debit", "coins", 100, dk).Expect(t, 409)
	change(e, key, u, "credit", "coins", 20, nil).Expect(t, 200)
	if res := change(e, key, u, "debit", "coins", 100, dk).Expect(t, 200); res.Get("data.entry.balanceAfter") != float64(0) {
		t.Fatalf("retried debit: %s", res.Body)
	}
	// After 24 hours the key is free again.
	e.Clock.Advance(24*time.Hour + time.Second)
	if res := change(e, key, u, "credit", "coins", 40, k).Expect(t, 200); res.Header.Get("Idempotent-Replayed") != "" ||
		res.String("data.entry._id") == first.String("data.entry._id") {
		t.Fatalf("expired key must apply anew: %s", res.Body)
	}
	if got := ledgerSums(t, e, a, u); got != 40 {
		t.Fatalf("coins %d, want 40", got)
	}
	// Pruning removes the two expired records and keeps the renewed one. The
	// queue's periodic prune may run first, so the test checks what is left,
	// not how many one call removed.
	if _, err := e.App.Idempotency.Prune(context.Background()); err != nil {
		t.Fatalf("prune: %v", err)
	}
	if left := idempotencyRecords(t, e, a); left != 1 {
		t.Fatalf("%d idempotency records left, want only the renewed one", left)
	}
	if res := change(e, key, u, "credit", "coins", 40, k).Expect(t, 200); res.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("the renewed record must survive pruning: %s", res.Body)
	}
	e.Clock.Advance(24*time.Hour + time.Second)
	if _, err := e.App.Idempotency.Prune(context.Background()); err != nil {
		t.Fatalf("prune: %v", err)
	}
	if left := idempotencyRecords(t, e, a); left != 0 {
		t.Fatalf("%d idempotency records left after the last expired", left)
	}
}

// idempotencyRecords counts the stored idempotency records of communityID.
func idempotencyRecords(t *testing.T, e *apitest.Env, communityID string) int {
	t.Helper()
	var n int
	if err := e.App.DB.QueryRow(context.Background(), "SELECT COUNT(*) FROM idempotency_keys WHERE community_id = ?", communityID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWalletConcurrentCreditsAndDebits(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Wallet A", "wallet-a")
	u := e.Member(a, "ann", user.MemberOptions{Joined: true})
	change(e, key, u, "credit", "coins", 100, nil).Expect(t, 200)

	// 50 credits of 5 and 50 debits of 30: the debits want far more than can
	// ever be there, so some must fail.
	const n = 100
	var (
		wg                sync.WaitGroup
		mu                sync.Mutex
		expected          = int64(100)
		applied, refusals int
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			op, amount := "credit", int64(5)
			if i%2 == 1 {
				op, amount = "debit", 30
			}
			res := change(e, key, u, op, "coins", amount, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case res.Status == 200 && op == "credit":
				expected += amount
				applied++
			case res.Status == 200:
				expected -= amount
				applied++
			case res.Status == 409 && op == "debit":
				refusals++
			default:
				t.Errorf("%s: %d %s", op, res.Status, res.Body)
			}
		}()
	}
	wg.Wait()
	if refusals == 0 {
		t.Fatal("no debit was refused; the test proves nothing")
	}
	if got := ledgerSums(t, e, a, u); got != expected {
		t.Fatalf("balance %d, want %d from the successful answers", got, expected)
	}
	var rows int
	if err := e.App.DB.QueryRow(context.Background(), "SELECT COUNT(*) FROM wallet_ledger WHERE user_id = ?", u.ID).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != applied+1 {
		t.Fatalf("%d ledger rows, want %d", rows, applied+1)
	}
}

func TestWalletConcurrentIdempotentRetries(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Wallet A", "wallet-a")
	u := e.Member(a, "ann", user.MemberOptions{Joined: true})
	const n = 50
	ids := make([]string, n)
	var (
		wg       sync.WaitGroup
		replayed sync.Map
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := change(e, key, u, "credit", "coins", 7, map[string]string{"Idempotency-Key": "same"})
			if res.Status != 200 {
				t.Errorf("status %d: %s", res.Status, res.Body)
				return
			}
			ids[i] = res.String("data.entry._id")
			if res.Header.Get("Idempotent-Replayed") == "true" {
				replayed.Store(i, true)
			}
		}()
	}
	wg.Wait()
	count := 0
	replayed.Range(func(any, any) bool { count++; return true })
	if count != n-1 {
		t.Fatalf("%d replayed answers, want %d", count, n-1)
	}
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("answers name different ledger rows: %v", ids)
		}
	}
	if got := ledgerSums(t, e, a, u); got != 7 {
		t.Fatalf("balance %d, want 7 (applied once)", got)
	}
}
