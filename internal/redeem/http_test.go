package redeem_test

import (
	"context"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/wallet"
)

var orderNoRE = regexp.MustCompile(`^ORD\d{20}$`)

// shop is a community with a funded member, and a second community.
type shop struct {
	e          *apitest.Env
	a, keyA    string
	b, keyB    string
	ada, bob   user.User
	outsiderB  user.User
	expireDate string
}

// newShop: community A with ada (1000 coins) and bob (50 coins), community
// B with its own member.
func newShop(t *testing.T) *shop {
	t.Helper()
	e := apitest.New(t)
	s := &shop{e: e}
	s.a, s.keyA = e.Community("Shop A", "shop-a")
	s.b, s.keyB = e.Community("Shop B", "shop-b")
	s.ada = e.Member(s.a, "ada", user.MemberOptions{Joined: true})
	s.bob = e.Member(s.a, "bob", user.MemberOptions{Joined: true})
	s.outsiderB = e.Member(s.b, "zed", user.MemberOptions{Joined: true})
	fund(t, e, s.a, s.ada, 1000)
	fund(t, e, s.a, s.bob, 50)
	s.expireDate = e.Clock.Now().Add(90 * 24 * time.Hour).Format(time.RFC3339)
	return s
}

// fund credits u's coins through the wallet service.
func fund(t testing.TB, e *apitest.Env, community string, u user.User, amount int64) {
	t.Helper()
	if _, err := e.App.Wallet.Credit(context.Background(), wallet.Entry{CommunityID: community, UserID: u.ID, Currency: wallet.Coins,
		Amount: amount, Reason: wallet.ReasonCredit, Actor: wallet.Actor{Kind: wallet.ActorSystem}}); err != nil {
		t.Fatal(err)
	}
}

// coins returns u's coins balance after checking that u's ledger adds up
// to every balance of u and never went negative.
func coins(t testing.TB, e *apitest.Env, community string, u user.User) int64 {
	t.Helper()
	rows, err := e.App.DB.Query(context.Background(), `SELECT b.currency, b.balance,
		(SELECT COALESCE(SUM(l.amount), 0) FROM wallet_ledger l WHERE l.community_id = b.community_id AND l.user_id = b.user_id AND l.currency = b.currency),
		(SELECT COUNT(*) FROM wallet_ledger l WHERE l.community_id = b.community_id AND l.user_id = b.user_id AND l.balance_after < 0)
		FROM wallet_balances b WHERE b.community_id = ? AND b.user_id = ?`, community, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out int64
	for rows.Next() {
		var (
			currency                string
			balance, sum, negatives int64
		)
		if err := rows.Scan(&currency, &balance, &sum, &negatives); err != nil {
			t.Fatal(err)
		}
		if sum != balance || negatives != 0 {
			t.Fatalf("%s of %s: ledger sums to %d, balance %d, %d negative rows", currency, u.Username, sum, balance, negatives)
		}
		if currency == wallet.Coins {
			out = balance
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// limitedKey makes a partner key of the community holding only perm.
func limitedKey(t testing.TB, e *apitest.Env, community, perm string) string {
	t.Helper()
	_, secret, err := e.App.Keys.Create(context.Background(), auth.NewKey{CommunityID: community, Name: "limited", Permissions: []string{perm}})
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// newProduct creates a product through the API and returns its _id.
func newProduct(t testing.TB, e *apitest.Env, key string, body map[string]any) string {
	t.Helper()
	return e.Do(apitest.Request{Method: "POST", Path: "/v1/products", Key: key, Body: body}).Expect(t, 201).String("data._id")
}

// buy purchases through the API.
func buy(e *apitest.Env, key, productID string, body map[string]any, headers map[string]string) *apitest.Response {
	return e.Do(apitest.Request{Method: "POST", Path: "/v1/products/" + productID + "/purchase", Key: key, Body: body, Headers: headers})
}

// stock reads a product's stocks through the API.
func stock(t testing.TB, e *apitest.Env, key, productID string) any {
	t.Helper()
	return e.Do(apitest.Request{Method: "GET", Path: "/v1/products/" + productID, Key: key}).Expect(t, 200).Get("data.stocks")
}

func TestPurchase(t *testing.T) {
	s := newShop(t)
	e := s.e
	prod := newProduct(t, e, s.keyA, map[string]any{"name": "Mug", "price": 100, "stocks": 5, "redemptionInstructions": "Pick up at desk."})

	res := buy(e, s.keyA, prod, map[string]any{"user": "ada@example.com", "identifier_type": "email", "quantity": 2}, nil).Expect(t, 201)
	if res.String("message") != "Purchase product success." || res.Get("meta.statusCode") != float64(201) ||
		!orderNoRE.MatchString(res.String("data.orderID")) || res.String("data.transactionId") != res.String("data.orderID") ||
		res.Get("data.price") != float64(200) || res.Get("data.unitPrice") != float64(100) || res.Get("data.quantity") != float64(2) ||
		res.String("data.currency") != "coins" || res.String("data.status.name") != "Pending" || res.String("data.status.category") != "incomplete" ||
		res.String("data.userID") != s.ada.ID || res.String("data.communityID") != s.a || res.String("data.product.name") != "Mug" ||
		res.String("data.product.redemptionInstructions") != "Pick up at desk." || res.Get("data.refunded") != false {
		t.Fatalf("purchase: %s", res.Body)
	}
	order := res.String("data.orderID")
	if got := coins(t, e, s.a, s.ada); got != 800 {
		t.Fatalf("balance %d, want 800", got)
	}
	if got := stock(t, e, s.keyA, prod); got != float64(3) {
		t.Fatalf("stock %v, want 3", got)
	}
	var reason, ref string
	if err := e.App.DB.QueryRow(context.Background(), "SELECT reason, reference FROM wallet_ledger WHERE user_id = ? AND amount = -200",
		s.ada.ID).Scan(&reason, &ref); err != nil || reason != "purchase" || ref != order {
		t.Fatalf("ledger row: %q %q %v", reason, ref, err)
	}
	if ev := e.EventTypes(s.a, "store.item.purchased"); len(ev) != 1 {
		t.Fatalf("events %v", ev)
	}
	var payload string
	if err := e.App.DB.QueryRow(context.Background(), "SELECT payload FROM events WHERE community_id = ? AND type = 'store.item.purchased'",
		s.a).Scan(&payload); err != nil || !regexp.MustCompile(`"orderID":"`+order+`".*"user":\{"_id":"`+s.ada.ID).MatchString(payload) {
		t.Fatalf("event payload %s %v", payload, err)
	}

	// Every path form; quantity defaults to 1; any identifier form.
	for _, p := range []string{"/apis/v1/products/", "/products/", "/apis/products/"} {
		e.Do(apitest.Request{Method: "POST", Path: p + prod + "/purchase", Key: s.keyA, Body: map[string]any{"user": "ada"}}).Expect(t, 201)
	}
	if got := stock(t, e, s.keyA, prod); got != float64(0) {
		t.Fatalf("stock %v, want 0", got)
	}
	res = buy(e, s.keyA, prod, map[string]any{"user": s.ada.ID}, nil).Expect(t, 409)
	if res.String("message") != "This product is out of stock." {
		t.Fatalf("out of stock: %s", res.Body)
	}

	noStore := limitedKey(t, e, s.a, "purchase-history")
	cheap := newProduct(t, e, s.keyA, map[string]any{"name": "Sticker", "price": 30})
	cases := []struct {
		name   string
		key    string
		prod   string
		body   map[string]any
		status int
		fields []string
	}{
		{"no key", "", cheap, map[string]any{"user": "ada"}, 401, nil},
		{"no store permission", noStore, cheap, map[string]any{"user": "ada"}, 403, nil},
		{"bad body", s.keyA, cheap, map[string]any{"quantity": 0, "identifier_type": "phone"}, 400, []string{"quantity", "user", "identifier_type"}},
		{"too many", s.keyA, cheap, map[string]any{"user": "ada", "quantity": 101}, 400, []string{"quantity"}},
		{"unknown product", s.keyA, "0123456789abcdef01234567", map[string]any{"user": "ada"}, 404, nil},
		{"malformed product", s.keyA, "nope", map[string]any{"user": "ada"}, 404, nil},
		{"other community's product", s.keyB, cheap, map[string]any{"user": "zed"}, 404, nil},
		{"other community's member", s.keyA, cheap, map[string]any{"user": "zed"}, 404, nil},
		{"insufficient", s.keyA, cheap, map[string]any{"user": "bob", "quantity": 2}, 409, nil},
	}
	for _, c := range cases {
		res := buy(e, c.key, c.prod, c.body, nil).Expect(t, c.status)
		if c.fields != nil && !slices.Equal(res.ErrorFields(), c.fields) {
			t.Errorf("%s: fields %v, want %v", c.name, res.ErrorFields(), c.fields)
		}
	}
	if got := coins(t, e, s.a, s.bob); got != 50 {
		t.Fatalf("bob's refused purchase moved coins: %d", got)
	}
}

func TestPurchaseRules(t *testing.T) {
	s := newShop(t)
	e := s.e
	now := e.Clock.Now()
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	archived := newProduct(t, e, s.keyA, map[string]any{"name": "Old", "price": 1, "isArchived": true})
	early := newProduct(t, e, s.keyA, map[string]any{"name": "Soon", "price": 1, "availableFrom": at(time.Hour), "availableUntil": at(2 * time.Hour)})
	late := newProduct(t, e, s.keyA, map[string]any{"name": "Gone", "price": 1, "availableFrom": at(-2 * time.Hour), "availableUntil": at(-time.Hour)})
	limited := newProduct(t, e, s.keyA, map[string]any{"name": "Limited", "price": 10,
		"purchaseLimit": map[string]any{"isEnabled": true, "quantity": 2, "intervalCount": 1, "intervalUnit": "days"}})
	vip := newProduct(t, e, s.keyA, map[string]any{"name": "VIP", "price": 100, "isProductAccessEnabled": true,
		"productPermission": []any{
			map[string]any{"type": "user", "permission": map[string]any{"usernames": []string{"ada"}},
				"purchaseAccess": map[string]any{"specialPrice": 40, "isSpecialPriceEnabled": true}},
			map[string]any{"type": "user", "permission": map[string]any{"usernames": []string{"bob"}}, "accessLevel": "view-only"},
		}})
	discounted := newProduct(t, e, s.keyA, map[string]any{"name": "Sale", "price": 100, "discountPrice": 70, "isDiscountEnabled": true,
		"discountStartDate": at(-time.Hour), "discountEndDate": at(time.Hour)})

	fund(t, e, s.a, s.bob, 100)
	if got := buy(e, s.keyA, discounted, map[string]any{"user": "bob"}, nil).Expect(t, 201).Get("data.price"); got != float64(70) {
		t.Fatalf("discount price %v", got)
	}
	for _, p := range []string{archived, early, late} {
		buy(e, s.keyA, p, map[string]any{"user": "ada"}, nil).Expect(t, 409)
	}
	buy(e, s.keyA, limited, map[string]any{"user": "ada", "quantity": 2}, nil).Expect(t, 201)
	res := buy(e, s.keyA, limited, map[string]any{"user": "ada"}, nil).Expect(t, 409)
	if !regexp.MustCompile(`^Purchase limit reached`).MatchString(res.String("message")) {
		t.Fatalf("limit: %s", res.Body)
	}
	// The window moves on.
	e.Clock.Advance(25 * time.Hour)
	buy(e, s.keyA, limited, map[string]any{"user": "ada"}, nil).Expect(t, 201)

	if got := buy(e, s.keyA, vip, map[string]any{"user": "ada"}, nil).Expect(t, 201).Get("data.price"); got != float64(40) {
		t.Fatalf("special price %v", got)
	}
	buy(e, s.keyA, vip, map[string]any{"user": "bob"}, nil).Expect(t, 403)

	// Buyer details the product asks for.
	info := newProduct(t, e, s.keyA, map[string]any{"name": "Shirt", "price": 1,
		"userInformation": map[string]any{"isEnabled": true, "shouldCollectName": true, "shouldCollectPhone": false, "shouldCollectAddress": true}})
	res = buy(e, s.keyA, info, map[string]any{"user": "ada"}, nil).Expect(t, 400)
	if !slices.Equal(res.ErrorFields(), []string{"userInformation.name", "userInformation.address"}) {
		t.Fatalf("fields %v", res.ErrorFields())
	}
	res = buy(e, s.keyA, info, map[string]any{"user": "ada", "userInformation": map[string]any{"name": "Ada L", "address": "1 Loop St"}}, nil).Expect(t, 201)
	if res.String("data.userInformation.address") != "1 Loop St" {
		t.Fatalf("info: %s", res.Body)
	}
}

func TestPurchaseVouchersAndIdempotency(t *testing.T) {
	s := newShop(t)
	e := s.e
	prod := newProduct(t, e, s.keyA, map[string]any{"name": "Gift card", "price": 10,
		"vouchers": []string{"CODE-1", "CODE-2", "CODE-3"}, "voucherExpireDate": s.expireDate})
	res := buy(e, s.keyA, prod, map[string]any{"user": "ada", "quantity": 2}, nil).Expect(t, 201)
	codes := []string{res.String("data.vouchers.0.code"), res.String("data.vouchers.1.code")}
	if !slices.Equal(codes, []string{"CODE-1", "CODE-2"}) || res.String("data.voucherCode") != "CODE-1" ||
		res.String("data.voucherExpiryDate") == "" || res.String("data.vouchers.0.expiryDate") == "" {
		t.Fatalf("vouchers: %s", res.Body)
	}
	buy(e, s.keyA, prod, map[string]any{"user": "ada", "quantity": 2}, nil).Expect(t, 409)

	// One Idempotency-Key: applied once, replayed after.
	h := map[string]string{"Idempotency-Key": "buy-once-1"}
	first := buy(e, s.keyA, prod, map[string]any{"user": "ada"}, h).Expect(t, 201)
	again := buy(e, s.keyA, prod, map[string]any{"user": "ada"}, h).Expect(t, 201)
	if again.Header.Get("Idempotent-Replayed") != "true" || again.String("data.orderID") != first.String("data.orderID") ||
		first.String("data.voucherCode") != "CODE-3" {
		t.Fatalf("replay: %s / %s", first.Body, again.Body)
	}
	buy(e, s.keyA, prod, map[string]any{"user": "ada", "quantity": 2}, h).Expect(t, 409) // same key, other request
	if got := coins(t, e, s.a, s.ada); got != 1000-30 {
		t.Fatalf("balance %d", got)
	}
}

func TestPurchaseAsMember(t *testing.T) {
	s := newShop(t)
	e := s.e
	prod := newProduct(t, e, s.keyA, map[string]any{"name": "Badge", "price": 5})
	token := e.SignIn(s.a, "ada@example.com")
	res := buy(e, token, prod, map[string]any{"quantity": 3}, nil).Expect(t, 201)
	if res.String("data.userID") != s.ada.ID || res.Get("data.price") != float64(15) {
		t.Fatalf("member purchase: %s", res.Body)
	}
	h := map[string]string{"Idempotency-Key": "member-1"}
	one := buy(e, token, prod, map[string]any{}, h).Expect(t, 201)
	if buy(e, token, prod, map[string]any{}, h).Expect(t, 201).String("data.orderID") != one.String("data.orderID") {
		t.Fatal("member retry applied twice")
	}
	res = buy(e, token, prod, map[string]any{"user": "bob"}, nil).Expect(t, 400)
	if !slices.Equal(res.ErrorFields(), []string{"user"}) {
		t.Fatalf("fields %v", res.ErrorFields())
	}
	// A member of another community cannot see A's product.
	zed := e.SignIn(s.b, "zed@example.com")
	buy(e, zed, prod, map[string]any{}, nil).Expect(t, 404)
	if got := coins(t, e, s.a, s.ada); got != 1000-20 {
		t.Fatalf("balance %d", got)
	}
}

func TestRedemptionStatuses(t *testing.T) {
	s := newShop(t)
	e := s.e
	noStore := limitedKey(t, e, s.a, "purchase-history")
	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/redemption-statuses", Key: s.keyA}).Expect(t, 200)
	if res.String("status") != "success" || res.Get("data.total") != float64(5) || res.String("data.statuses.0.name") != "Pending" ||
		res.Get("data.statuses.0.isDefault") != true || res.String("data.statuses.3.name") != "Cancelled" ||
		res.Get("data.statuses.3.refunds") != true || res.String("data.statuses.3.category") != "cancelled" {
		t.Fatalf("defaults: %s", res.Body)
	}
	pending := res.String("data.statuses.0._id")
	page := e.Do(apitest.Request{Method: "GET", Path: "/redemption-statuses?skip=1&limit=2", Key: s.keyA}).Expect(t, 200)
	if page.String("data.statuses.0.name") != "Processing" || len(page.Get("data.statuses").([]any)) != 2 {
		t.Fatalf("page: %s", page.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/redemption-statuses?limit=0", Key: s.keyA}).Expect(t, 400)
	if e.Do(apitest.Request{Method: "GET", Path: "/v1/redemption-statuses/" + pending, Key: s.keyA}).Expect(t, 200).String("data.name") != "Pending" {
		t.Fatal("get by id")
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/redemption-statuses/" + pending, Key: s.keyB}).Expect(t, 404)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/redemption-statuses/nope", Key: s.keyA}).Expect(t, 404)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/redemption-statuses", Key: noStore}).Expect(t, 403)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/redemption-statuses"}).Expect(t, 401)

	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/redemption-statuses", Key: s.keyA,
		Body: map[string]any{"name": "Shipping", "color": "#3EA1FD", "isDefault": true}}).Expect(t, 201)
	if res.String("message") != "Redemption status created successfully" || res.Get("data.order") != float64(5) ||
		res.String("data.category") != "incomplete" || res.Get("data.isDefault") != true {
		t.Fatalf("create: %s", res.Body)
	}
	shipping := res.String("data._id")
	e.Do(apitest.Request{Method: "POST", Path: "/v1/redemption-statuses", Key: s.keyA, Body: map[string]any{"name": " shipping ", "color": "#000"}}).Expect(t, 409)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/redemption-statuses", Key: s.keyB, Body: map[string]any{"name": "Shipping", "color": "#000"}}).Expect(t, 201)
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/redemption-statuses", Key: s.keyA,
		Body: map[string]any{"color": "blue", "refunds": true, "order": -1}}).Expect(t, 400)
	if !slices.Equal(res.ErrorFields(), []string{"name", "color", "refunds", "order"}) {
		t.Fatalf("fields %v", res.ErrorFields())
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/redemption-statuses", Key: noStore, Body: map[string]any{"name": "X", "color": "#000"}}).Expect(t, 403)

	// The new default is where new orders start; the old one is no longer default.
	prod := newProduct(t, e, s.keyA, map[string]any{"name": "Pen", "price": 1})
	if got := buy(e, s.keyA, prod, map[string]any{"user": "ada"}, nil).Expect(t, 201).String("data.statusId"); got != shipping {
		t.Fatalf("status %s, want %s", got, shipping)
	}
	if e.Do(apitest.Request{Method: "GET", Path: "/v1/redemption-statuses/" + pending, Key: s.keyA}).Expect(t, 200).Get("data.isDefault") != false {
		t.Fatal("old default kept")
	}
	// A product's status override wins over the default.
	over := newProduct(t, e, s.keyA, map[string]any{"name": "Cap", "price": 1, "purchaseStatusOverrideName": "processing"})
	if got := buy(e, s.keyA, over, map[string]any{"user": "ada"}, nil).Expect(t, 201).String("data.status.name"); got != "Processing" {
		t.Fatalf("override status %s", got)
	}
}

// statusID finds a status of the community by name.
func statusID(t *testing.T, e *apitest.Env, key, name string) string {
	t.Helper()
	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/redemption-statuses", Key: key}).Expect(t, 200)
	for _, st := range res.Get("data.statuses").([]any) {
		if m := st.(map[string]any); m["name"] == name {
			return m["_id"].(string)
		}
	}
	t.Fatalf("no status %s", name)
	return ""
}

// setStatus calls RR1.
func setStatus(e *apitest.Env, key, transaction, status string) *apitest.Response {
	return e.Do(apitest.Request{Method: "PUT", Path: "/v1/redemption-transactions/status", Key: key,
		Body: map[string]any{"transactionId": transaction, "statusId": status}})
}

func TestRedemptionTransactions(t *testing.T) {
	s := newShop(t)
	e := s.e
	prod := newProduct(t, e, s.keyA, map[string]any{"name": "Lamp", "price": 100, "stocks": 10})
	order := buy(e, s.keyA, prod, map[string]any{"user": "ada", "quantity": 3}, nil).Expect(t, 201)
	ord, oid := order.String("data.orderID"), order.String("data._id")
	processing, cancelled, completed := statusID(t, e, s.keyA, "Processing"), statusID(t, e, s.keyA, "Cancelled"), statusID(t, e, s.keyA, "Completed")
	ordersOnly := limitedKey(t, e, s.a, "store")

	res := setStatus(e, s.keyA, ord, processing).Expect(t, 200)
	if res.String("status") != "success" || res.String("message") != "Transaction status updated successfully" ||
		res.String("data.transactionId") != ord || res.String("data.statusId") != processing || res.String("data.status.name") != "Processing" ||
		res.String("data.status.color") == "" || res.Get("data.changed") != true || res.Get("data.refunded") != false {
		t.Fatalf("RR1: %s", res.Body)
	}
	// Documented older path; the _id works too; the same status changes nothing.
	res = e.Do(apitest.Request{Method: "PUT", Path: "/apis/v1/redemption-transactions/status", Key: s.keyA,
		Body: map[string]any{"transactionId": oid, "statusId": processing}}).Expect(t, 200)
	if res.Get("data.changed") != false {
		t.Fatalf("no-op: %s", res.Body)
	}
	// Errors.
	res = setStatus(e, s.keyA, "", "x").Expect(t, 400)
	if !slices.Equal(res.ErrorFields(), []string{"transactionId", "statusId"}) {
		t.Fatalf("fields %v", res.ErrorFields())
	}
	setStatus(e, s.keyA, "ORD00000000000000000000", processing).Expect(t, 404)
	setStatus(e, s.keyA, ord, "0123456789abcdef01234567").Expect(t, 404)
	setStatus(e, s.keyB, ord, statusID(t, e, s.keyB, "Processing")).Expect(t, 404)
	setStatus(e, ordersOnly, ord, processing).Expect(t, 403)
	setStatus(e, "", ord, processing).Expect(t, 401)

	// Refund: price and stock come back once; the final status cannot be left.
	res = setStatus(e, s.keyA, ord, cancelled).Expect(t, 200)
	if res.Get("data.refunded") != true || res.String("data.status.category") != "cancelled" {
		t.Fatalf("refund: %s", res.Body)
	}
	if got := coins(t, e, s.a, s.ada); got != 1000 {
		t.Fatalf("balance after refund %d", got)
	}
	if got := stock(t, e, s.keyA, prod); got != float64(10) {
		t.Fatalf("stock after refund %v", got)
	}
	setStatus(e, s.keyA, ord, completed).Expect(t, 409)
	if setStatus(e, s.keyA, ord, cancelled).Expect(t, 200).Get("data.refunded") != false {
		t.Fatal("refunded twice")
	}
	var refundRef string
	if err := e.App.DB.QueryRow(context.Background(), "SELECT reference FROM wallet_ledger WHERE user_id = ? AND reason = 'refund'", s.ada.ID).Scan(&refundRef); err != nil || refundRef != ord {
		t.Fatalf("refund ledger reference %q %v", refundRef, err)
	}

	// RR7: by ORD id and by _id; another community cannot read it.
	for _, ref := range []string{ord, oid} {
		res = e.Do(apitest.Request{Method: "GET", Path: "/v1/redemption-transactions/" + ref + "/status-history", Key: s.keyA}).Expect(t, 200)
		if res.Get("data.total") != float64(3) || res.Get("data.history.0.fromStatusId") != nil || res.String("data.history.0.status.name") != "Pending" ||
			res.String("data.history.1.fromStatusId") != res.String("data.history.0.statusId") || res.String("data.history.2.status.name") != "Cancelled" ||
			res.Get("data.history.2.refunded") != true || res.String("data.history.2.actor.kind") != "apikey" {
			t.Fatalf("RR7: %s", res.Body)
		}
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/redemption-transactions/" + ord + "/status-history", Key: s.keyB}).Expect(t, 404)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/redemption-transactions/" + ord + "/status-history?skip=-1", Key: s.keyA}).Expect(t, 400)
	if got := e.EventTypes(s.a, "redemption.status.updated"); len(got) != 2 {
		t.Fatalf("status events %v", got)
	}

	// RR5 and RR2.
	e.Clock.Advance(time.Hour)
	mid := e.Clock.Now()
	fund(t, e, s.a, s.bob, 100)
	second := buy(e, s.keyA, prod, map[string]any{"user": "bob"}, nil).Expect(t, 201).String("data.orderID")
	list := func(path, key string) *apitest.Response {
		return e.Do(apitest.Request{Method: "GET", Path: path, Key: key}).Expect(t, 200)
	}
	res = list("/v1/redemption-transactions", s.keyA)
	if res.Get("data.total") != float64(2) || res.String("data.transactions.0.orderID") != second || res.String("data.transactions.1.orderID") != ord {
		t.Fatalf("RR5: %s", res.Body)
	}
	if got := list("/v1/redemption-transactions?status=cancelled", s.keyA).Get("data.total"); got != float64(1) {
		t.Fatalf("status filter %v", got)
	}
	if got := list("/v1/redemption-transactions?status="+cancelled, s.keyA).Get("data.total"); got != float64(1) {
		t.Fatalf("status id filter %v", got)
	}
	if got := list("/v1/redemption-transactions?from="+mid.Format(time.RFC3339Nano), s.keyA).String("data.transactions.0.orderID"); got != second {
		t.Fatalf("from filter %v", got)
	}
	if got := list("/v1/redemption-transactions?to="+mid.Add(-time.Minute).Format(time.RFC3339Nano), s.keyA).Get("data.total"); got != float64(1) {
		t.Fatalf("to filter %v", got)
	}
	if got := list("/v1/redemption-transactions?limit=1&skip=1", s.keyA).String("data.transactions.0.orderID"); got != ord {
		t.Fatalf("paging %v", got)
	}
	if got := list("/v1/redemption-transactions", s.keyB).Get("data.total"); got != float64(0) {
		t.Fatalf("tenancy %v", got)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/redemption-transactions?from=yesterday&limit=500", Key: s.keyA}).Expect(t, 400)
	if !slices.Equal(res.ErrorFields(), []string{"limit", "from"}) {
		t.Fatalf("fields %v", res.ErrorFields())
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/redemption-transactions", Key: ordersOnly}).Expect(t, 403)

	byEmail := func(key string, body map[string]any) *apitest.Response {
		return e.Do(apitest.Request{Method: "POST", Path: "/v1/redemption-transactions/by-email", Key: key, Body: body})
	}
	res = byEmail(s.keyA, map[string]any{"email": "ADA@example.com"}).Expect(t, 200)
	if res.Get("data.total") != float64(1) || res.String("data.transactions.0.orderID") != ord || res.String("data.transactions.0.userID") != s.ada.ID {
		t.Fatalf("RR2: %s", res.Body)
	}
	if got := byEmail(s.keyA, map[string]any{"email": "bob@example.com", "skip": 1}).Expect(t, 200).Get("data.transactions"); len(got.([]any)) != 0 {
		t.Fatalf("RR2 skip %v", got)
	}
	byEmail(s.keyB, map[string]any{"email": "ada@example.com"}).Expect(t, 404)
	byEmail(s.keyA, map[string]any{"email": "nobody@example.com"}).Expect(t, 404)
	res = byEmail(s.keyA, map[string]any{"email": "nope", "limit": 0}).Expect(t, 400)
	if !slices.Equal(res.ErrorFields(), []string{"email", "limit"}) {
		t.Fatalf("fields %v", res.ErrorFields())
	}
	byEmail(ordersOnly, map[string]any{"email": "ada@example.com"}).Expect(t, 403)
}

func TestPurchaseHistoryUpdate(t *testing.T) {
	s := newShop(t)
	e := s.e
	voucher := newProduct(t, e, s.keyA, map[string]any{"name": "Gold Voucher", "price": 10, "redemptionInstructions": "Old.",
		"vouchers": []string{"G-1", "G-2", "G-3", "G-4"}, "voucherExpireDate": s.expireDate})
	plain := newProduct(t, e, s.keyA, map[string]any{"name": "Poster", "price": 10})
	one := buy(e, s.keyA, voucher, map[string]any{"user": "ada"}, nil).Expect(t, 201).String("data.orderID")
	two := buy(e, s.keyA, voucher, map[string]any{"user": "ada", "quantity": 2}, nil).Expect(t, 201).String("data._id")
	none := buy(e, s.keyA, plain, map[string]any{"user": "ada"}, nil).Expect(t, 201).String("data.orderID")
	patch := func(key, ref string, body any) *apitest.Response {
		return e.Do(apitest.Request{Method: "PATCH", Path: "/v1/purchase-histories/" + ref, Key: key, Body: body})
	}
	res := patch(s.keyA, one, map[string]any{"redemptionInstructions": "  Collect at the main counter.  "}).Expect(t, 200)
	if res.String("message") != "Update purchase history success." || res.String("data.product.redemptionInstructions") != "Collect at the main counter." ||
		res.String("data.orderID") != one || res.String("data.product._id") != voucher {
		t.Fatalf("PH1: %s", res.Body)
	}
	// The product itself keeps its instructions.
	if got := e.Do(apitest.Request{Method: "GET", Path: "/v1/products/" + voucher, Key: s.keyA}).Expect(t, 200).String("data.redemptionInstructions"); got != "Old." {
		t.Fatalf("product changed: %q", got)
	}
	res = e.Do(apitest.Request{Method: "PATCH", Path: "/purchase-histories/" + one, Key: s.keyA,
		Body: map[string]any{"voucherCode": "UPDATED-VOUCHER-2026", "voucherExpiryDate": "31/12/2026"}}).Expect(t, 200)
	if res.String("data.voucherCode") != "UPDATED-VOUCHER-2026" || res.String("data.voucherExpiryDate") != "31/12/2026" ||
		res.String("data.vouchers.0.expiryDate") != "2026-12-31T23:59:59.999Z" {
		t.Fatalf("voucher update: %s", res.Body)
	}
	var code string
	if err := e.App.DB.QueryRow(context.Background(), "SELECT code FROM store_vouchers WHERE code = 'UPDATED-VOUCHER-2026'").Scan(&code); err != nil {
		t.Fatalf("store voucher not updated: %v", err)
	}
	patch(s.keyA, one, map[string]any{"voucherCode": "G-4", "voucherExpiryDate": "01/01/2027"}).Expect(t, 409)
	patch(s.keyA, two, map[string]any{"voucherCode": "NEW", "voucherExpiryDate": "01/01/2027"}).Expect(t, 409)
	patch(s.keyA, none, map[string]any{"voucherCode": "NEW", "voucherExpiryDate": "01/01/2027"}).Expect(t, 404)
	patch(s.keyB, one, map[string]any{"redemptionInstructions": "x"}).Expect(t, 404)
	patch(s.keyA, "ORD99999999999999999999", map[string]any{"redemptionInstructions": "x"}).Expect(t, 404)
	storeOnly := limitedKey(t, e, s.a, "store")
	patch(storeOnly, one, map[string]any{"redemptionInstructions": "x"}).Expect(t, 403)
	patch("", one, map[string]any{"redemptionInstructions": "x"}).Expect(t, 401)
	for _, c := range []struct {
		body   map[string]any
		fields []string
	}{
		{map[string]any{}, []string{"body"}},
		{map[string]any{"redemptionInstructions": "  "}, []string{"redemptionInstructions"}},
		{map[string]any{"voucherCode": "X"}, []string{"voucherExpiryDate"}},
		{map[string]any{"voucherExpiryDate": "31/02/2026"}, []string{"voucherCode", "voucherExpiryDate"}},
		{map[string]any{"voucherCode": "X", "voucherExpiryDate": "2026-12-31"}, []string{"voucherExpiryDate"}},
	} {
		if got := patch(s.keyA, one, c.body).Expect(t, 400).ErrorFields(); !slices.Equal(got, c.fields) {
			t.Errorf("%v: fields %v, want %v", c.body, got, c.fields)
		}
	}
	if got := e.EventTypes(s.a, "purchase-history.updated"); len(got) != 2 {
		t.Fatalf("events %v", got)
	}
}
