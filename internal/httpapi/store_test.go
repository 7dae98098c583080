package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
)

// storeEvents lists the store.* event types recorded for community, in order.
func storeEvents(t *testing.T, e *apitest.Env, community string) []string {
	t.Helper()
	rows, err := e.App.DB.Query(context.Background(), "SELECT type FROM events WHERE community_id = ? AND type LIKE 'store.%' ORDER BY seq", community)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// keys returns the top-level keys of an object at path, sorted.
func keys(res *apitest.Response, path string) []string {
	m, _ := res.Get(path).(map[string]any)
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// expectFields checks a 400 names exactly want (in any order).
func expectFields(t *testing.T, res *apitest.Response, want ...string) {
	t.Helper()
	if got := sortedCopy(res.ErrorFields()); !slices.Equal(got, sortedCopy(want)) {
		t.Fatalf("error fields %v, want %v; body %s", got, want, res.Body)
	}
}

func TestStoreConfig(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	b, keyB := e.Community("Beta", "beta")
	_, noStore := keyWith(t, e, a, 0, "appearance")

	// Defaults until the first update, at every documented path form.
	for _, path := range []string{"/v1/stores", "/stores", "/apis/stores", "/apis/v1/stores"} {
		res := e.Do(apitest.Request{Method: "GET", Path: path, Key: keyA}).Expect(t, 200)
		if res.String("message") != "Read store config success." || res.String("data.communityID") != a ||
			res.String("data.currency.name") != "Coins" || res.String("data.premiumCurrency.name") == "" ||
			!hex64.MatchString(res.String("data.widget.apiKey")) || res.Get("data.isEnabled") != false {
			t.Fatalf("%s: %s", path, res.Body)
		}
	}
	first := e.Do(apitest.Request{Method: "GET", Path: "/v1/stores", Key: keyA}).Expect(t, 200)

	res := e.Do(apitest.Request{Method: "PUT", Path: "/stores", Key: keyA, Body: map[string]any{
		"isEnabled": true, "title": "Rewards Store", "description": "<p>Redeem community rewards.</p>",
		"currency":        map[string]any{"isEnabled": true, "name": "Points"},
		"premiumCurrency": map[string]any{"name": "Diamonds", "symbol": "dia"},
		"i18n":            map[string]any{"isTranslationEnabled": true, "titleTranslations": []any{map[string]any{"lang": "th", "value": "ร้านรางวัล"}}},
		"widget": map[string]any{"isEnabled": true, "allowedDomains": []string{"example.com"}, "accessMode": "development",
			"size": map[string]any{"width": 500}, "callToAction": map[string]any{"isEnabled": true, "text": "Shop", "link": "https://example.com/shop"}},
	}}).Expect(t, 200)
	if res.String("message") != "Update store config success." || res.String("data.title") != "Rewards Store" ||
		res.String("data.currency.name") != "Points" || res.String("data.currency.symbol") != "coin" ||
		res.String("data.premiumCurrency.symbol") != "dia" || res.Get("data.widget.size.width") != float64(500) ||
		res.String("data.widget.size.mode") != "dynamic" || res.String("data.widget.apiKey") != first.String("data.widget.apiKey") ||
		res.String("data._id") != first.String("data._id") {
		t.Fatalf("merge: %s", res.Body)
	}

	// fields projects (keeping _id); lang translates.
	res = e.Do(apitest.Request{Method: "GET", Path: "/apis/stores?fields=title%2Cwidget&lang=th", Key: keyA}).Expect(t, 200)
	if got := keys(res, "data"); !slices.Equal(got, []string{"_id", "title", "widget"}) || res.String("data.title") != "ร้านรางวัล" {
		t.Fatalf("projection %v: %s", got, res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/stores?lang=fr", Key: keyA}).Expect(t, 200)
	if res.String("data.title") != "Rewards Store" {
		t.Fatalf("untranslated language falls back: %s", res.Body)
	}

	// B's store is its own.
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/stores", Key: keyB}).Expect(t, 200)
	if res.String("data.communityID") != b || res.String("data.title") != "Rewards Store" && res.Get("data.isEnabled") != false {
		t.Fatalf("tenancy: %s", res.Body)
	}
	if res.Get("data.isEnabled") != false || res.String("data.currency.name") != "Coins" {
		t.Fatalf("B sees A's update: %s", res.Body)
	}

	runStoreCases(t, e, []storeCase{
		{"no key", "GET", "/v1/stores", "", nil, 401, nil},
		{"bad key", "PUT", "/v1/stores", strings.Repeat("cd", 32), map[string]any{"title": "x"}, 401, nil},
		{"no store permission", "GET", "/v1/stores", noStore, nil, 403, nil},
		{"no store permission on update", "PUT", "/v1/stores", noStore, map[string]any{"title": "x"}, 403, nil},
		{"unknown field", "GET", "/v1/stores?fields=title,secret", keyA, nil, 400, []string{"fields"}},
		{"bad lang", "GET", "/v1/stores?lang=%20x", keyA, nil, 400, []string{"lang"}},
		{"title required when enabled", "PUT", "/v1/stores", keyA, map[string]any{"title": ""}, 400, []string{"title"}},
		{"title too long", "PUT", "/v1/stores", keyA, map[string]any{"title": strings.Repeat("x", 33)}, 400, []string{"title"}},
		{"server-managed ids", "PUT", "/v1/stores", keyA, map[string]any{"widgetID": "650906d314a3e564c56f3450",
			"widget": map[string]any{"_id": "650906d314a3e564c56f3450", "apiKey": "x"}}, 400, []string{"widgetID", "widget._id", "widget.apiKey"}},
		{"bad widget values", "PUT", "/v1/stores", keyA, map[string]any{"widget": map[string]any{"accessMode": "beta",
			"size": map[string]any{"mode": "huge", "height": 5}, "allowedDomains": []string{"not a domain"}}}, 400,
			[]string{"widget.accessMode", "widget.size.mode", "widget.size.height", "widget.allowedDomains[0]"}},
		{"bad currency", "PUT", "/v1/stores", keyA, map[string]any{"currency": map[string]any{"name": "", "light": "ftp://x"}}, 400,
			[]string{"currency.name", "currency.light"}},
		{"wrong types", "PUT", "/v1/stores", keyA, map[string]any{"isEnabled": "yes", "title": 3}, 400, []string{"isEnabled", "title"}},
		{"not an object", "PUT", "/v1/stores", keyA, "[]", 400, []string{"body"}},
	})
	// Failed updates changed nothing.
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/stores", Key: keyA}).Expect(t, 200)
	if res.String("data.title") != "Rewards Store" || res.String("data.widget.accessMode") != "development" {
		t.Fatalf("a failed update left a trace: %s", res.Body)
	}
	if got := storeEvents(t, e, a); !slices.Equal(got, []string{"store.config.updated"}) {
		t.Fatalf("events %v", got)
	}
}

func TestStoreCategories(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	_, keyB := e.Community("Beta", "beta")
	_, noStore := keyWith(t, e, a, 0, "appearance")

	res := e.Do(apitest.Request{Method: "POST", Path: "/apis/categories", Key: keyA, Body: map[string]any{
		"name": "Premium Rewards", "coverImage": "https://example.com/category.png", "shouldShowCover": true, "displayOrder": 2,
		"categoryPermission": []any{map[string]any{"type": "role",
			"permission":    map[string]any{"roleNames": []string{"VIP Member"}, "tagNames": []string{"Early Access"}, "usernames": []string{"alex"}, "roleIDs": []string{"650906d314a3e564c56f3450"}},
			"purchaseLimit": map[string]any{"isEnabled": true, "quantity": 1, "intervalCount": 1, "intervalUnit": "months"}, "accessLevel": "full-access", "isEnabled": true}},
		"defaultPurchaseStatusName": "Pending",
		"i18n":                      map[string]any{"isTranslationEnabled": true, "nameTranslations": []any{map[string]any{"lang": "th", "value": "รางวัลพรีเมียม"}}},
	}}).Expect(t, 201)
	if res.String("message") != "Create category success." || res.Get("meta.statusCode") != float64(201) || res.String("data.viewType") != "full" ||
		res.String("data.defaultPurchaseStatus") != "Pending" || res.String("data.categoryPermission.0.permission.roles.0") != "VIP Member" ||
		res.String("data.categoryPermission.0.permission.users.0") != "alex" || res.String("data.categoryPermission.0.permission.roleIDs.0") != "650906d314a3e564c56f3450" {
		t.Fatalf("create: %s", res.Body)
	}
	premium := res.String("data._id")
	ids := []string{premium}
	for i, n := range []string{"Gift Cards", "Merch", "Old Stuff"} {
		body := map[string]any{"name": n, "displayOrder": i * 5, "defaultPurchaseStatusID": "650906d314a3e564c56f3451"}
		if n == "Old Stuff" {
			body["isArchived"] = true
		}
		res := e.Do(apitest.Request{Method: "POST", Path: "/v1/categories", Key: keyA, Body: body}).Expect(t, 201)
		ids = append(ids, res.String("data._id"))
	}

	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/categories/" + premium + "?fields=name,displayOrder&lang=th", Key: keyA}).Expect(t, 200)
	if got := keys(res, "data"); !slices.Equal(got, []string{"_id", "displayOrder", "name"}) || res.String("data.name") != "รางวัลพรีเมียม" ||
		res.String("message") != "Read category success." {
		t.Fatalf("get: %v %s", got, res.Body)
	}

	res = e.Do(apitest.Request{Method: "PUT", Path: "/categories/" + premium, Key: keyA, Body: map[string]any{"name": "VIP Rewards", "displayOrder": 10}}).Expect(t, 200)
	if res.String("message") != "Update category success." || res.String("data.name") != "VIP Rewards" || res.Get("data.displayOrder") != float64(10) ||
		res.String("data.coverImage") != "https://example.com/category.png" || res.String("data.defaultPurchaseStatus") != "Pending" {
		t.Fatalf("update: %s", res.Body)
	}

	// Lists: default order is displayOrder; paging, sort, search, filter, fields.
	names := func(res *apitest.Response) []string {
		var out []string
		for _, it := range res.Get("data").([]any) {
			out = append(out, it.(map[string]any)["name"].(string))
		}
		return out
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/categories?skip=undefined&limit=20", Key: keyA}).Expect(t, 200)
	if got := names(res); !slices.Equal(got, []string{"Gift Cards", "Merch", "VIP Rewards", "Old Stuff"}) ||
		res.Get("meta.total") != float64(4) || res.Get("meta.skip") != float64(0) || res.Get("meta.limit") != float64(20) ||
		res.String("message") != "Read categories success." {
		t.Fatalf("list %v: %s", got, res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/categories?sort=displayOrder%3Adesc&skip=1&limit=2&fields=name", Key: keyA}).Expect(t, 200)
	if got := names(res); !slices.Equal(got, []string{"Old Stuff", "Merch"}) || res.Get("meta.total") != float64(4) || len(keys(res, "data.0")) != 2 {
		t.Fatalf("sorted page %v: %s", got, res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/categories?search=keyword%3Arewards&filter=isArchived%3Afalse", Key: keyA}).Expect(t, 200)
	if got := names(res); !slices.Equal(got, []string{"VIP Rewards"}) || res.Get("meta.total") != float64(1) {
		t.Fatalf("search %v: %s", got, res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/categories?filter=isArchived:true", Key: keyA}).Expect(t, 200)
	if got := names(res); !slices.Equal(got, []string{"Old Stuff"}) {
		t.Fatalf("filter %v", got)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/categories?userID=507f1f77bcf86cd799439011", Key: keyA}).Expect(t, 200)
	if res.Get("meta.total") != float64(3) {
		t.Fatalf("userID hides archived: %s", res.Body)
	}

	// Tenancy: B sees none of A's categories and cannot touch them.
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/categories", Key: keyB}).Expect(t, 200)
	if res.Get("meta.total") != float64(0) {
		t.Fatalf("B lists A's categories: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/categories/" + premium, Key: keyB}).Expect(t, 404)
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/categories/" + premium, Key: keyB, Body: map[string]any{"name": "Stolen"}}).Expect(t, 404)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/categories/" + premium, Key: keyB}).Expect(t, 404)
	// B may use a name A uses.
	e.Do(apitest.Request{Method: "POST", Path: "/v1/categories", Key: keyB, Body: map[string]any{"name": "Merch"}}).Expect(t, 201)

	runStoreCases(t, e, []storeCase{
		{"no key", "GET", "/v1/categories", "", nil, 401, nil},
		{"no store permission", "POST", "/v1/categories", noStore, map[string]any{"name": "X"}, 403, nil},
		{"missing name", "POST", "/v1/categories", keyA, map[string]any{"viewType": "grid", "displayOrder": -1}, 400, []string{"name", "viewType", "displayOrder"}},
		{"bad permission entry", "POST", "/v1/categories", keyA, map[string]any{"name": "X", "categoryPermission": []any{map[string]any{"type": "planet",
			"permission": map[string]any{"roleIDs": []string{"nope"}}, "purchaseLimit": map[string]any{"quantity": 0, "intervalUnit": "fortnights"}, "accessLevel": "root"}}},
			400, []string{"categoryPermission[0].type", "categoryPermission[0].permission.roleIDs[0]", "categoryPermission[0].purchaseLimit.quantity",
				"categoryPermission[0].purchaseLimit.intervalUnit", "categoryPermission[0].accessLevel"}},
		{"duplicate name any case", "POST", "/v1/categories", keyA, map[string]any{"name": "gift  CARDS"}, 409, nil},
		{"rename onto another", "PUT", "/v1/categories/" + ids[2], keyA, map[string]any{"name": "Gift Cards"}, 409, nil},
		{"unknown id", "GET", "/v1/categories/650906d314a3e564c56f3459", keyA, nil, 404, nil},
		{"malformed id", "PUT", "/v1/categories/xyz", keyA, map[string]any{"name": "X"}, 400, []string{"categoryID"}},
		{"bad sort", "GET", "/v1/categories?sort=colour:asc", keyA, nil, 400, []string{"sort"}},
		{"bad sort direction", "GET", "/v1/categories?sort=name:up", keyA, nil, 400, []string{"sort"}},
		{"bad fields", "GET", "/v1/categories?fields=name,__v", keyA, nil, 400, []string{"fields"}},
		{"bad search", "GET", "/v1/categories?search=colour:red", keyA, nil, 400, []string{"search"}},
		{"bad filter field", "GET", "/v1/categories?filter=name:x", keyA, nil, 400, []string{"filter"}},
		{"bad filter value", "GET", "/v1/categories?filter=isArchived:maybe", keyA, nil, 400, []string{"filter"}},
		{"bad paging", "GET", "/v1/categories?skip=-1&limit=101", keyA, nil, 400, []string{"skip", "limit"}},
		{"bad userID", "GET", "/v1/categories?userID=me", keyA, nil, 400, []string{"userID"}},
		{"several bad params", "GET", "/v1/categories?sort=x&fields=y&filter=z:1", keyA, nil, 400, []string{"sort", "fields", "filter"}},
	})

	// Delete: refused while products are in it, then allowed.
	prod := e.Do(apitest.Request{Method: "POST", Path: "/v1/products", Key: keyA, Body: map[string]any{"name": "Mug", "price": 10, "categoryID": ids[2]}}).Expect(t, 201)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/categories/" + ids[2], Key: keyA}).Expect(t, 409)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/products/" + prod.String("data._id"), Key: keyA}).Expect(t, 200)
	res = e.Do(apitest.Request{Method: "DELETE", Path: "/v1/categories/" + ids[2], Key: keyA}).Expect(t, 200)
	if res.String("message") != "Delete category success." || res.String("data.name") != "Merch" {
		t.Fatalf("delete: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/categories/" + ids[2], Key: keyA}).Expect(t, 404)
	// The name is free again.
	e.Do(apitest.Request{Method: "POST", Path: "/v1/categories", Key: keyA, Body: map[string]any{"name": "Merch"}}).Expect(t, 201)

	want := []string{"store.category.created", "store.category.created", "store.category.created", "store.category.created",
		"store.category.updated", "store.product.created", "store.product.deleted", "store.category.deleted", "store.category.created"}
	if got := storeEvents(t, e, a); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

func TestStoreProducts(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	_, keyB := e.Community("Beta", "beta")
	_, noStore := keyWith(t, e, a, 0, "getEvents")
	cat := e.Do(apitest.Request{Method: "POST", Path: "/v1/categories", Key: keyA, Body: map[string]any{"name": "Premium Rewards"}}).Expect(t, 201).String("data._id")
	expire := e.Clock.Now().Add(90 * 24 * time.Hour).Format(time.RFC3339)

	res := e.Do(apitest.Request{Method: "POST", Path: "/products", Key: keyA, Body: map[string]any{
		"name": "Premium Voucher", "description": "<p>Premium access.</p>", "image": "https://example.com/product.png", "price": 100,
		"categoryName": "premium rewards", "discountPrice": 90, "isDiscountEnabled": true,
		"discountStartDate": "2026-04-28T00:00:00.000Z", "discountEndDate": "2026-05-28T00:00:00Z",
		"userInformation":          map[string]any{"isEnabled": true, "shouldCollectName": true, "shouldCollectPhone": false, "shouldCollectAddress": false},
		"expiringVoucherHighlight": map[string]any{"isEnabled": true, "duration": 3, "timeframe": "days"},
		"redemptionInstructions":   "<p>Show this voucher at checkout.</p>",
		"productPermission": []any{map[string]any{"isEnabled": true, "type": "role",
			"permission":     map[string]any{"roleNames": []string{"VIP Member"}, "combination": []any{map[string]any{"type": "role", "values": []string{"VIP Member"}}}},
			"purchaseAccess": map[string]any{"specialPrice": 80, "isSpecialPriceEnabled": true},
			"purchaseLimit":  map[string]any{"isPurchaseLimitEnabled": true, "quantity": 2, "intervalCount": 1, "intervalUnit": "months"}, "accessLevel": "full-access"}},
		"isProductAccessEnabled": true, "purchaseStatusOverrideName": "Approved",
		"purchaseLimit": map[string]any{"isEnabled": true, "quantity": 3, "intervalCount": 1, "intervalUnit": "weeks"},
		"availableFrom": "2026-01-01T00:00:00.000Z", "availableUntil": "2027-01-01T00:00:00.000Z",
		"i18n":     map[string]any{"nameTranslations": []any{map[string]any{"lang": "th", "value": "บัตรพรีเมียม"}}},
		"vouchers": []string{"VOUCHER-001", "VOUCHER-002"}, "voucherExpireDate": expire,
	}}).Expect(t, 201)
	voucher := res.String("data._id")
	if res.String("message") != "Create product success." || res.String("data.type") != "voucher" || res.Get("data.stocks") != float64(2) ||
		res.String("data.categoryID") != cat || res.String("data.category") != "Premium Rewards" ||
		res.Get("data.purchaseStatusOverride.isEnabled") != true || res.String("data.purchaseStatusOverride.status") != "Approved" ||
		res.Get("data.productPermission.0.purchaseLimit.isPurchaseLimitEnabled") != true || res.String("data.productPermission.0.permission.roles.0") != "VIP Member" ||
		res.Get("data.purchaseLimit.quantity") != float64(3) || res.String("data.availableUntil") != "2027-01-01T00:00:00.000Z" ||
		res.String("data.discountEndDate") != "2026-05-28T00:00:00.000Z" || res.Get("data.vouchers") != nil {
		t.Fatalf("create: %s", res.Body)
	}

	// Vouchers append; duplicates (stored or within the request) are 409s and change nothing.
	res = e.Do(apitest.Request{Method: "PUT", Path: "/apis/products/" + voucher, Key: keyA, Body: map[string]any{
		"price": 120, "vouchers": []string{"VOUCHER-003", "VOUCHER-004"}, "voucherExpireDate": expire}}).Expect(t, 200)
	if res.String("message") != "Update product success." || res.Get("data.stocks") != float64(4) || res.Get("data.price") != float64(120) ||
		res.String("data.name") != "Premium Voucher" || res.Get("data.userInformation.shouldCollectName") != true {
		t.Fatalf("update: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/products/" + voucher, Key: keyA, Body: map[string]any{
		"name": "Renamed", "vouchers": []string{"VOUCHER-005", "VOUCHER-002"}, "voucherExpireDate": expire}}).Expect(t, 409)
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/products/" + voucher, Key: keyA, Body: map[string]any{
		"vouchers": []string{"VOUCHER-006", "VOUCHER-006"}, "voucherExpireDate": expire}}).Expect(t, 409)
	res = e.Do(apitest.Request{Method: "GET", Path: "/products/" + voucher + "?lang=th", Key: keyA}).Expect(t, 200)
	if res.Get("data.stocks") != float64(4) || res.String("data.name") != "บัตรพรีเมียม" || res.String("message") != "Read product success." {
		t.Fatalf("after conflicts: %s", res.Body)
	}

	// Finite and unlimited stock for other products.
	mug := e.Do(apitest.Request{Method: "POST", Path: "/v1/products", Key: keyA, Body: map[string]any{"name": "Mug", "price": 50, "stocks": 7, "displayOrder": 1}}).Expect(t, 201)
	if mug.String("data.type") != "item" || mug.Get("data.stocks") != float64(7) || mug.Get("data.category") != nil {
		t.Fatalf("mug: %s", mug.Body)
	}
	res = e.Do(apitest.Request{Method: "PUT", Path: "/v1/products/" + mug.String("data._id"), Key: keyA, Body: map[string]any{"stocks": nil, "categoryID": cat}}).Expect(t, 200)
	if res.Get("data.stocks") != nil || res.String("data.category") != "Premium Rewards" {
		t.Fatalf("unlimited: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/products", Key: keyA, Body: map[string]any{"name": "Sticker", "price": 5, "type": "digital", "displayOrder": 2}}).Expect(t, 201)

	// Lists.
	names := func(res *apitest.Response) []string {
		var out []string
		for _, it := range res.Get("data").([]any) {
			out = append(out, it.(map[string]any)["name"].(string))
		}
		return out
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/apis/products?sort=price:desc&fields=name,price,type,categoryID", Key: keyA}).Expect(t, 200)
	if got := names(res); !slices.Equal(got, []string{"Premium Voucher", "Mug", "Sticker"}) || res.String("message") != "Read products success." ||
		!slices.Equal(keys(res, "data.0"), []string{"_id", "categoryID", "name", "price", "type"}) {
		t.Fatalf("sorted %v: %s", got, res.Body)
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"filter=type:voucher", []string{"Premium Voucher"}},
		{"filter=categoryID:" + cat, []string{"Premium Voucher", "Mug"}},
		{"search=keyword:PREMIUM", []string{"Premium Voucher"}},
		{"search=description:access", []string{"Premium Voucher"}},
		{"search=keyword:100%25", nil},
		{"sort=name:asc&skip=1&limit=1", []string{"Premium Voucher"}},
	} {
		res := e.Do(apitest.Request{Method: "GET", Path: "/v1/products?" + tc.query, Key: keyA}).Expect(t, 200)
		if got := names(res); !slices.Equal(got, tc.want) {
			t.Fatalf("%s: %v, want %v", tc.query, got, tc.want)
		}
	}

	// Tenancy.
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/products", Key: keyB}).Expect(t, 200)
	if res.Get("meta.total") != float64(0) {
		t.Fatalf("B lists A's products: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/products/" + voucher, Key: keyB}).Expect(t, 404)
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/products/" + voucher, Key: keyB, Body: map[string]any{"price": 1}}).Expect(t, 404)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/products/" + voucher, Key: keyB}).Expect(t, 404)
	expectFields(t, e.Do(apitest.Request{Method: "POST", Path: "/v1/products", Key: keyB, Body: map[string]any{"name": "X", "price": 1, "categoryID": cat}}).Expect(t, 400), "categoryID")

	runStoreCases(t, e, []storeCase{
		{"no key", "POST", "/v1/products", "", map[string]any{"name": "X", "price": 1}, 401, nil},
		{"no store permission", "GET", "/v1/products", noStore, nil, 403, nil},
		{"missing name and price", "POST", "/v1/products", keyA, map[string]any{"description": "x"}, 400, []string{"name", "price"}},
		{"bad values", "POST", "/v1/products", keyA, map[string]any{"name": "X", "price": -1, "image": "nope", "type": "Big Box",
			"discountStartDate": "tomorrow", "categoryName": "Nope", "expiringVoucherHighlight": map[string]any{"isEnabled": true, "timeframe": "eons"}},
			400, []string{"price", "image", "type", "discountStartDate", "categoryName", "expiringVoucherHighlight.duration", "expiringVoucherHighlight.timeframe"}},
		{"fractional price", "POST", "/v1/products", keyA, map[string]any{"name": "X", "price": 1.5}, 400, []string{"price"}},
		{"partial nested object", "PUT", "/v1/products/" + voucher, keyA, map[string]any{"userInformation": map[string]any{"isEnabled": true}}, 400,
			[]string{"userInformation.shouldCollectName", "userInformation.shouldCollectPhone", "userInformation.shouldCollectAddress"}},
		{"vouchers need an expiry", "PUT", "/v1/products/" + voucher, keyA, map[string]any{"vouchers": []string{"V-9"}, "voucherExpireDate": ""}, 400, []string{"voucherExpireDate"}},
		{"expired expiry", "PUT", "/v1/products/" + voucher, keyA, map[string]any{"vouchers": []string{"V-9"}, "voucherExpireDate": "2001-01-01T00:00:00Z"}, 400, []string{"voucherExpireDate"}},
		{"vouchers on an item", "PUT", "/v1/products/" + mug.String("data._id"), keyA, map[string]any{"vouchers": []string{"V-9"}, "voucherExpireDate": expire}, 400, []string{"vouchers"}},
		{"stock of a voucher product", "PUT", "/v1/products/" + voucher, keyA, map[string]any{"stocks": 5}, 400, []string{"stocks"}},
		{"discount above price", "PUT", "/v1/products/" + mug.String("data._id"), keyA, map[string]any{"isDiscountEnabled": true, "discountPrice": 51}, 400, []string{"discountPrice"}},
		{"window backwards", "PUT", "/v1/products/" + mug.String("data._id"), keyA, map[string]any{"availableFrom": "2027-01-01T00:00:00Z", "availableUntil": "2026-01-01T00:00:00Z"}, 400, []string{"availableUntil"}},
		{"unknown id", "GET", "/v1/products/650906d314a3e564c56f3459", keyA, nil, 404, nil},
		{"malformed id", "GET", "/v1/products/123", keyA, nil, 400, []string{"productID"}},
		{"productPermission not selectable", "GET", "/v1/products?fields=name,productPermission", keyA, nil, 400, []string{"fields"}},
		{"productPermission not selectable on get", "GET", "/v1/products/" + voucher + "?fields=productPermission", keyA, nil, 400, []string{"fields"}},
		{"unknown filter", "GET", "/v1/products?filter=isArchived:true", keyA, nil, 400, []string{"filter"}},
		{"bad categoryID filter", "GET", "/v1/products?filter=categoryID:abc", keyA, nil, 400, []string{"filter"}},
		{"bad sort", "GET", "/v1/products?sort=stocks:asc", keyA, nil, 400, []string{"sort"}},
		{"bad lang", "GET", "/v1/products?lang=!!", keyA, nil, 400, []string{"lang"}},
	})

	res = e.Do(apitest.Request{Method: "DELETE", Path: "/apis/products/" + voucher, Key: keyA}).Expect(t, 200)
	if res.String("message") != "Delete product success." || res.String("data._id") != voucher {
		t.Fatalf("delete: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/products/" + voucher, Key: keyA}).Expect(t, 404)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/products/" + voucher, Key: keyA}).Expect(t, 404)
	want := []string{"store.category.created", "store.product.created", "store.product.updated", "store.product.created",
		"store.product.updated", "store.product.created", "store.product.deleted"}
	if got := storeEvents(t, e, a); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// storeCase is one failing call and what it must answer.
type storeCase struct {
	name       string
	method     string
	path       string
	key        string
	body       any
	wantStatus int
	wantFields []string
}

// runStoreCases runs each case: the status, the error envelope and, for a
// 400, exactly the fields named.
func runStoreCases(t *testing.T, e *apitest.Env, cases []storeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := e.Do(apitest.Request{Method: tc.method, Path: tc.path, Key: tc.key, Body: tc.body}).Expect(t, tc.wantStatus)
			if res.Get("meta.status") != "error" || res.Get("meta.statusCode") != float64(tc.wantStatus) {
				t.Fatalf("want error envelope: %s", res.Body)
			}
			if tc.wantFields != nil {
				expectFields(t, res, tc.wantFields...)
			}
		})
	}
}

// csvUpload builds a multipart body with content as the file field.
func csvUpload(t *testing.T, field, contentType, content string) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename="products.csv"`, field))
	h.Set("Content-Type", contentType)
	part, err := w.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = part.Write([]byte(content))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), w.FormDataContentType()
}

func TestStoreProductsBulk(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	_, keyB := e.Community("Beta", "beta")
	e.Do(apitest.Request{Method: "POST", Path: "/v1/categories", Key: keyA, Body: map[string]any{"name": "Premium Rewards"}}).Expect(t, 201)
	expire := e.Clock.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339)
	total := func(key string) float64 {
		return e.Do(apitest.Request{Method: "GET", Path: "/v1/products", Key: key}).Expect(t, 200).Get("meta.total").(float64)
	}

	// JSON: per-row errors, nothing written.
	res := e.Do(apitest.Request{Method: "POST", Path: "/apis/products/bulk", Key: keyA, Body: []any{
		map[string]any{"name": "Good", "price": 10},
		map[string]any{"name": "No price"},
		map[string]any{"price": "ten"},
		map[string]any{"name": "Bad category", "price": 1, "categoryName": "Nope"},
	}}).Expect(t, 400)
	expectFields(t, res, "[1].price", "[2].price", "[3].categoryName")
	if total(keyA) != 0 {
		t.Fatal("a failed bulk create wrote products")
	}
	expectFields(t, e.Do(apitest.Request{Method: "POST", Path: "/v1/products/bulk", Key: keyA, Body: map[string]any{"products": []any{}}}).Expect(t, 400), "body")
	expectFields(t, e.Do(apitest.Request{Method: "POST", Path: "/v1/products/bulk", Key: keyA, Body: []any{}}).Expect(t, 400), "body")
	tooMany := make([]any, 101)
	for i := range tooMany {
		tooMany[i] = map[string]any{"name": fmt.Sprintf("P%d", i), "price": 1}
	}
	expectFields(t, e.Do(apitest.Request{Method: "POST", Path: "/v1/products/bulk", Key: keyA, Body: tooMany}).Expect(t, 400), "body")
	e.Do(apitest.Request{Method: "POST", Path: "/v1/products/bulk", Key: "", Body: []any{}}).Expect(t, 401)

	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/products/bulk", Key: keyA, Body: []any{
		map[string]any{"name": "Gift Card", "price": 100, "categoryName": "Premium Rewards", "vouchers": []string{"G-1", "G-2", "G-3"}, "voucherExpireDate": expire},
		map[string]any{"name": "Hoodie", "price": 300, "stocks": 5, "vouchers": []string{}, "voucherExpireDate": ""},
	}}).Expect(t, 201)
	if res.Get("meta.created") != float64(2) || res.String("message") != "Create products success." || res.Get("data.0.stocks") != float64(3) ||
		res.String("data.0.category") != "Premium Rewards" || res.Get("data.1.stocks") != float64(5) {
		t.Fatalf("bulk create: %s", res.Body)
	}
	gift, hoodie := res.String("data.0._id"), res.String("data.1._id")

	// CSV create: a line without a Name adds a permission entry to the product above.
	csvBody := "\ufeffName,Price,Category Name,Vouchers,Voucher Expire Date,Permission Type,Roles,Purchase Limit Enabled,Purchase Limit Quantity,Collect Name\n" +
		"Cap,40,Premium Rewards,C-1|C-2,," + "role,VIP Member,true,2,\n" +
		",,,,,tag,,false,,\n" +
		"Poster,15,,,,,,,,true\n"
	csvBody = strings.Replace(csvBody, "C-1|C-2,,", "C-1|C-2,"+expire+",", 1)
	body, ct := csvUpload(t, "file", "text/csv", csvBody)
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/products/bulk", Key: keyA, Body: body, Headers: map[string]string{"Content-Type": ct}}).Expect(t, 201)
	if res.Get("meta.created") != float64(2) || res.String("data.0.name") != "Cap" || res.String("data.0.type") != "voucher" ||
		res.Get("data.0.stocks") != float64(2) || res.String("data.0.productPermission.0.permission.roles.0") != "VIP Member" ||
		res.Get("data.0.productPermission.0.purchaseLimit.quantity") != float64(2) || res.String("data.0.productPermission.1.type") != "tag" ||
		res.Get("data.1.userInformation.shouldCollectName") != true || res.Get("data.1.userInformation.isEnabled") != false {
		t.Fatalf("csv create: %s", res.Body)
	}

	// CSV errors are named by line and column; nothing is written.
	before := total(keyA)
	body, ct = csvUpload(t, "file", "application/vnd.ms-excel", "Name,Price,Archived\nA,ten,true\nB,5,perhaps\n,,\n")
	expectFields(t, e.Do(apitest.Request{Method: "POST", Path: "/v1/products/bulk", Key: keyA, Body: body, Headers: map[string]string{"Content-Type": ct}}).Expect(t, 400),
		"row 2.Price", "row 3.Archived")
	body, ct = csvUpload(t, "file", "text/csv", "Name,Colour\nA,red\n")
	expectFields(t, e.Do(apitest.Request{Method: "POST", Path: "/v1/products/bulk", Key: keyA, Body: body, Headers: map[string]string{"Content-Type": ct}}).Expect(t, 400), "file")
	body, ct = csvUpload(t, "upload", "text/csv", "Name,Price\nA,1\n")
	expectFields(t, e.Do(apitest.Request{Method: "POST", Path: "/v1/products/bulk", Key: keyA, Body: body, Headers: map[string]string{"Content-Type": ct}}).Expect(t, 400), "file")
	body, ct = csvUpload(t, "file", "image/png", "Name,Price\nA,1\n")
	expectFields(t, e.Do(apitest.Request{Method: "POST", Path: "/v1/products/bulk", Key: keyA, Body: body, Headers: map[string]string{"Content-Type": ct}}).Expect(t, 400), "file")
	if total(keyA) != before {
		t.Fatal("a failed CSV bulk wrote products")
	}

	// Bulk update, JSON: meta.updated; vouchers append; B's ids are not A's.
	res = e.Do(apitest.Request{Method: "PUT", Path: "/v1/products/bulk", Key: keyA, Body: []any{
		map[string]any{"productID": gift, "price": 120, "vouchers": []string{"G-4"}, "voucherExpireDate": expire},
		map[string]any{"productID": hoodie, "isArchived": true},
	}}).Expect(t, 200)
	if res.Get("meta.updated") != float64(2) || res.String("message") != "Update products success." || res.Get("data.0.stocks") != float64(4) ||
		res.Get("data.0.price") != float64(120) || res.Get("data.1.isArchived") != true || res.String("data.1.name") != "Hoodie" {
		t.Fatalf("bulk update: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "PUT", Path: "/apis/products/bulk", Key: keyB, Body: []any{map[string]any{"productID": gift, "price": 1}}}).Expect(t, 400)
	expectFields(t, res, "[0].productID")
	res = e.Do(apitest.Request{Method: "PUT", Path: "/v1/products/bulk", Key: keyA, Body: []any{
		map[string]any{"price": 1}, map[string]any{"productID": hoodie, "price": -5}}}).Expect(t, 400)
	expectFields(t, res, "[0].productID", "[1].price")
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/products/bulk", Key: keyA, Body: []any{
		map[string]any{"productID": hoodie, "name": "Changed"},
		map[string]any{"productID": gift, "vouchers": []string{"G-1"}, "voucherExpireDate": expire}}}).Expect(t, 409)
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/products/" + hoodie, Key: keyA}).Expect(t, 200)
	if res.String("data.name") != "Hoodie" {
		t.Fatalf("a failed bulk update changed a product: %s", res.Body)
	}

	// Bulk update, CSV: only filled cells change.
	body, ct = csvUpload(t, "file", "text/csv", "Product ID,Name,Price,Archived\n"+hoodie+",,350,\n"+gift+",Gift Card XL,,\n")
	res = e.Do(apitest.Request{Method: "PUT", Path: "/v1/products/bulk", Key: keyA, Body: body, Headers: map[string]string{"Content-Type": ct}}).Expect(t, 200)
	if res.Get("meta.updated") != float64(2) || res.Get("data.0.price") != float64(350) || res.String("data.0.name") != "Hoodie" ||
		res.Get("data.0.isArchived") != true || res.String("data.1.name") != "Gift Card XL" || res.Get("data.1.price") != float64(120) {
		t.Fatalf("csv update: %s", res.Body)
	}
	body, ct = csvUpload(t, "file", "text/csv", "Product ID,Price\nnot-an-id,5\n")
	expectFields(t, e.Do(apitest.Request{Method: "PUT", Path: "/v1/products/bulk", Key: keyA, Body: body, Headers: map[string]string{"Content-Type": ct}}).Expect(t, 400),
		"row 2.productID")

	events := storeEvents(t, e, a)
	var created, updated int
	for _, ev := range events {
		switch ev {
		case "store.product.created":
			created++
		case "store.product.updated":
			updated++
		}
	}
	if created != 4 || updated != 4 {
		t.Fatalf("events %v: %d created, %d updated", events, created, updated)
	}
}
