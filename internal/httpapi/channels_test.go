package httpapi_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
)

// newChannel creates a channel through CH4 and returns its id.
func newChannel(t *testing.T, e *apitest.Env, key string, body map[string]any) string {
	t.Helper()
	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/channels", Key: key, Body: body}).Expect(t, 200)
	return res.String("body._id")
}

func TestChannelLifecycle(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	b, keyB := e.Community("Beta", "beta")
	_, readOnly := keyWith(t, e, a, 0, "getChannels")

	// CH4 as documented: x-api-key on /api/v1/channels, legacy envelope.
	res := e.Do(apitest.Request{Method: "POST", Path: "/api/v1/channels", Headers: map[string]string{"x-api-key": keyA},
		Body: map[string]any{"topic": "IC Markets", "channelType": "open"}}).Expect(t, 200)
	if res.Get("meta.success") != true || res.String("meta.message") != "Channel has been created successfully" ||
		res.String("body.topic") != "IC Markets" || res.String("body.title") != "IC Markets" || res.String("body.channelType") != "open" ||
		res.String("body.serverId") != a || res.Get("body.__v") != float64(0) || fmt.Sprint(res.Get("body.permissions")) != "[]" ||
		res.Get("body.userId") != nil {
		t.Fatalf("create: %s", res.Body)
	}
	general := res.String("body._id")

	forum := newChannel(t, e, keyA, map[string]any{"topic": "Ideas", "channelType": "forum", "category": "Talk", "order": 2})
	frame := newChannel(t, e, keyA, map[string]any{"topic": "Charts", "channelType": "iframe", "url": "https://charts.example.com/x", "order": -1})
	newChannel(t, e, keyA, map[string]any{"topic": "Lobby", "channelType": "direct", "category": "Talk"})
	newChannel(t, e, keyB, map[string]any{"topic": "Beta only", "channelType": "text"})

	// Validation names every offending field.
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/channels", Key: keyA, Body: map[string]any{"channelType": "voice", "order": 5_000_000}}).Expect(t, 400)
	if got := res.ErrorFields(); !slices.Equal(got, []string{"topic", "channelType", "order"}) {
		t.Fatalf("fields %v: %s", got, res.Body)
	}
	for _, url := range []string{"", "ftp://x.example.com", "/relative", "javascript:alert(1)"} {
		res = e.Do(apitest.Request{Method: "POST", Path: "/v1/channels", Key: keyA, Body: map[string]any{"topic": "F", "channelType": "iframe", "url": url}}).Expect(t, 400)
		if !slices.Equal(res.ErrorFields(), []string{"url"}) {
			t.Fatalf("url %q: %s", url, res.Body)
		}
	}
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/channels", Key: keyA, Body: map[string]any{"topic": "F", "channelType": "open", "url": "https://x.example.com"}}).Expect(t, 400)
	if !slices.Equal(res.ErrorFields(), []string{"url"}) {
		t.Fatalf("url on open: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/channels", Key: keyA, Body: `{"topic": 5}`}).Expect(t, 400)
	if res.Get("body") != nil || res.Get("meta.success") != false {
		t.Fatalf("legacy error body: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/channels", Body: map[string]any{"topic": "x", "channelType": "open"}}).Expect(t, 401)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/channels", Key: readOnly, Body: map[string]any{"topic": "x", "channelType": "open"}}).Expect(t, 403)

	// Lists: order, then creation; private DMs and other communities left out.
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/channels", Key: readOnly}).Expect(t, 200)
	if res.Get("meta.total") != float64(4) || res.String("body.0._id") != frame || res.String("body.3._id") != forum {
		t.Fatalf("list: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/communities/" + a + "/channels?category=Talk&limit=1&skip=1", Headers: map[string]string{"x-api-key": keyA}}).Expect(t, 200)
	if res.Get("meta.total") != float64(2) || res.String("body.0._id") != forum || res.Get("meta.limit") != float64(1) {
		t.Fatalf("category page: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/channels?type=iframe", Key: keyA}).Expect(t, 200)
	if res.Get("meta.total") != float64(1) || res.String("body.0.url") != "https://charts.example.com/x" {
		t.Fatalf("iframe filter: %s", res.Body)
	}
	if got := e.Do(apitest.Request{Method: "GET", Path: "/v1/channels?type=voice", Key: keyA}).Expect(t, 400).ErrorFields(); !slices.Equal(got, []string{"type"}) {
		t.Fatalf("type filter: %v", got)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/channels?limit=0", Key: keyA}).Expect(t, 400)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/communities/" + b + "/channels", Key: keyA}).Expect(t, 403)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/channels", Key: keyB}).Expect(t, 200)

	// CH5: partial update on the documented alternate path; another
	// community's key cannot see the channel.
	res = e.Do(apitest.Request{Method: "PUT", Path: "/api/v1/channels/" + general, Headers: map[string]string{"x-api-key": keyA},
		Body: map[string]any{"topic": "Chit Chat", "channelType": "forum"}}).Expect(t, 200)
	if res.String("body.topic") != "Chit Chat" || res.String("body.channelType") != "forum" || res.Get("body.__v") != float64(1) ||
		res.String("meta.message") != "Channel has been updated successfully" {
		t.Fatalf("update: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "PUT", Path: "/v1/channels/" + frame, Key: keyA, Body: map[string]any{"channelType": "open"}}).Expect(t, 200)
	if res.Get("body.url") != nil {
		t.Fatalf("iframe to open keeps url: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/channels/" + general, Key: keyB, Body: map[string]any{"topic": "x"}}).Expect(t, 404)
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/channels/nope", Key: keyA, Body: map[string]any{"topic": "x"}}).Expect(t, 404)
	if got := e.Do(apitest.Request{Method: "PUT", Path: "/v1/channels/" + general, Key: keyA, Body: map[string]any{"topic": ""}}).Expect(t, 400).ErrorFields(); !slices.Equal(got, []string{"topic"}) {
		t.Fatalf("empty topic: %v", got)
	}
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/channels/" + general, Key: readOnly, Body: map[string]any{"topic": "x"}}).Expect(t, 403)

	// CH6: gone from lists, further changes 404, events recorded.
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/channels/" + general, Key: keyB}).Expect(t, 404)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/channels/" + general, Key: readOnly}).Expect(t, 403)
	res = e.Do(apitest.Request{Method: "DELETE", Path: "/v1/channels/" + general, Key: keyA}).Expect(t, 200)
	if res.String("body._id") != general {
		t.Fatalf("delete: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/channels/" + general, Key: keyA}).Expect(t, 404)
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/channels", Key: keyA}).Expect(t, 200)
	if res.Get("meta.total") != float64(3) {
		t.Fatalf("deleted channel listed: %s", res.Body)
	}
	if got := e.EventTypes(a, "channel.created", "channel.updated", "channel.deleted"); len(got) != 7 || got[6] != "channel.deleted" {
		t.Fatalf("events %v", got)
	}
}

func TestForumTopics(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	_, keyB := e.Community("Beta", "beta")
	_, readOnly := keyWith(t, e, a, 0, "getChannels")
	forum := newChannel(t, e, keyA, map[string]any{"topic": "Ideas", "channelType": "forum"})
	open := newChannel(t, e, keyA, map[string]any{"topic": "General", "channelType": "open"})

	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/channels/" + forum + "/topics", Key: keyA, Body: map[string]any{"title": "Roadmap"}}).Expect(t, 201)
	if res.String("body.title") != "Roadmap" || res.String("body.channelId") != forum || res.Get("body.messageCount") != float64(0) {
		t.Fatalf("topic: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/api/v1/channels/" + forum + "/topics", Headers: map[string]string{"x-api-key": keyA}, Body: map[string]any{"title": "Bugs"}}).Expect(t, 201)
	if got := e.Do(apitest.Request{Method: "POST", Path: "/v1/channels/" + forum + "/topics", Key: keyA, Body: map[string]any{"title": " "}}).Expect(t, 400).ErrorFields(); !slices.Equal(got, []string{"title"}) {
		t.Fatalf("title: %v", got)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/channels/" + open + "/topics", Key: keyA, Body: map[string]any{"title": "x"}}).Expect(t, 409)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/channels/" + forum + "/topics", Key: keyB, Body: map[string]any{"title": "x"}}).Expect(t, 404)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/channels/" + forum + "/topics", Key: readOnly, Body: map[string]any{"title": "x"}}).Expect(t, 403)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/channels/" + forum + "/topics", Body: map[string]any{"title": "x"}}).Expect(t, 401)

	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/channels/" + forum + "/topics?limit=1&skip=1", Key: readOnly}).Expect(t, 200)
	if res.Get("meta.total") != float64(2) || res.String("body.0.title") != "Bugs" {
		t.Fatalf("topics: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/channels/" + forum + "/topics", Key: keyB}).Expect(t, 404)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/channels/" + forum + "/topics?skip=-1", Key: keyA}).Expect(t, 400)
}
