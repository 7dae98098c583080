package httpapi_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
)

func TestEventsFeed(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Iota", "iota")
	_, keyB := e.Community("Kappa", "kappa")
	for i := 0; i < 3; i++ {
		e.Do(apitest.Request{Method: "PUT", Path: "/v1/management/communities/" + a, Key: key,
			Body: map[string]any{"name": fmt.Sprintf("Iota %d", i)}}).Expect(t, 200)
	}
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/community-bot", Key: key, Body: map[string]any{"name": "Bot"}}).Expect(t, 200)

	// community.created, apikey.created, 3 updates, the bot update.
	want := []string{"community.created", "apikey.created", "community.updated", "community.updated", "community.updated", "community.bot.updated"}
	var types []string
	apitest.WaitFor(t, "events in the feed", func() bool {
		res := e.Do(apitest.Request{Method: "GET", Path: "/v1/events", Key: key}).Expect(t, 200)
		types = nil
		list, _ := res.Get("data").([]any)
		for _, it := range list {
			types = append(types, it.(map[string]any)["type"].(string))
		}
		return len(types) >= len(want)
	})
	if !slices.Equal(types, want) {
		t.Fatalf("feed types %v, want %v", types, want)
	}

	// Cursor paging: two at a time, following meta.next, sees the same sequence.
	var paged []string
	after := 0.0
	for page := 0; page < 10; page++ {
		res := e.Do(apitest.Request{Method: "GET", Path: fmt.Sprintf("/v1/events?limit=2&after=%d", int64(after)), Key: key}).Expect(t, 200)
		list, _ := res.Get("data").([]any)
		if len(list) == 0 {
			if res.Get("meta.next") != after {
				t.Fatalf("empty page must hand back its cursor: %s", res.Body)
			}
			break
		}
		for _, it := range list {
			m := it.(map[string]any)
			paged = append(paged, m["type"].(string))
			if m["communityId"] != a {
				t.Fatalf("foreign event: %v", m)
			}
		}
		after = res.Get("meta.next").(float64)
	}
	if !slices.Equal(paged, want) {
		t.Fatalf("paged %v, want %v", paged, want)
	}

	// Type filter.
	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/events?type=community.updated", Key: key}).Expect(t, 200)
	if list, _ := res.Get("data").([]any); len(list) != 3 || res.Get("data.2.payload.name") != "Iota 2" {
		t.Fatalf("type filter: %s", res.Body)
	}

	// Tenancy: B's feed has only B's two events.
	apitest.WaitFor(t, "B's events", func() bool {
		res := e.Do(apitest.Request{Method: "GET", Path: "/v1/events", Key: keyB}).Expect(t, 200)
		list, _ := res.Get("data").([]any)
		return len(list) == 2
	})
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/events?type=community.updated", Key: keyB}).Expect(t, 200)
	if list, _ := res.Get("data").([]any); len(list) != 0 {
		t.Fatalf("B sees A's events: %s", res.Body)
	}

	// Validation and auth.
	bad := e.Do(apitest.Request{Method: "GET", Path: "/v1/events?limit=500&after=-1", Key: key}).Expect(t, 400)
	if !slices.Equal(sortedCopy(bad.ErrorFields()), []string{"after", "limit"}) {
		t.Fatalf("errors: %v", bad.ErrorFields())
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/events?limit=x", Key: key}).Expect(t, 400)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/events"}).Expect(t, 401)
	_, noEvents := keyWith(t, e, a, 0, "appearance")
	e.Do(apitest.Request{Method: "GET", Path: "/v1/events", Key: noEvents}).Expect(t, 403)
}
