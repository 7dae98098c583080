package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/config"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/db/dbtest"
	"github.com/rallyhq/rally/internal/user"
)

// frameWait bounds every wait for a frame.
const frameWait = 10 * time.Second

// rtClient is a WebSocket client of GET /v1/realtime that reads frames in
// the background.
type rtClient struct {
	t      testing.TB
	ws     *websocket.Conn
	frames chan map[string]any
	err    error
}

// wsURL is the WebSocket URL of path on e's server.
func wsURL(e *apitest.Env, path string) string {
	return "ws" + strings.TrimPrefix(e.Server.URL, "http") + path
}

// dialRT opens path (with its query) on e, sending key as a Bearer header
// when not empty, and starts reading; read=false leaves the frames unread
// (a slow client).
func dialRT(t testing.TB, e *apitest.Env, path, key string, read bool) *rtClient {
	t.Helper()
	h := http.Header{}
	if key != "" {
		h.Set("Authorization", "Bearer "+key)
	}
	ctx, cancel := context.WithTimeout(context.Background(), frameWait)
	defer cancel()
	ws, res, err := websocket.Dial(ctx, wsURL(e, path), &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	ws.SetReadLimit(1 << 24)
	c := &rtClient{t: t, ws: ws, frames: make(chan map[string]any, 100000)}
	t.Cleanup(func() { ws.CloseNow() })
	if read {
		go c.readAll()
	}
	return c
}

func (c *rtClient) readAll() {
	defer close(c.frames)
	for {
		_, b, err := c.ws.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		var f map[string]any
		if err := json.Unmarshal(b, &f); err != nil {
			c.err = fmt.Errorf("frame %q: %w", b, err)
			return
		}
		c.frames <- f
	}
}

// send writes one client frame.
func (c *rtClient) send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), frameWait)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("send %s: %v", b, err)
	}
}

// next returns the next frame.
func (c *rtClient) next() map[string]any {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatalf("connection ended: %v", c.err)
		}
		return f
	case <-time.After(frameWait):
		c.t.Fatalf("no frame within %s", frameWait)
	}
	return nil
}

// expect returns the next frame, which must be of type typ.
func (c *rtClient) expect(typ string) map[string]any {
	c.t.Helper()
	f := c.next()
	if f["type"] != typ {
		c.t.Fatalf("frame %v, want type %s", f, typ)
	}
	return f
}

// subscribe subscribes to channels and returns the acknowledgement, after
// the error frames of refused channels.
func (c *rtClient) subscribe(channels ...string) map[string]any {
	c.t.Helper()
	c.send(map[string]any{"type": "subscribe", "channels": channels})
	return c.expect("subscribed")
}

// get reads a dotted path of a frame.
func get(f map[string]any, path string) any {
	var v any = f
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// post sends a message as sender through the partner key and returns its
// text.
func post(t *testing.T, e *apitest.Env, key, channelID, sender, text string) string {
	t.Helper()
	send(t, e, key, map[string]any{"channelId": channelID, "message": text, "sender": sender}, 200)
	return text
}

func TestRealtimeStream(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	ada := joined(e, a, "ada")
	joined(e, a, "bob")
	joined(e, a, "cy")
	all := everyoneRole(t, e, keyA)
	general := newChannel(t, e, keyA, map[string]any{"topic": "General", "channelType": "open"})
	staff := newChannel(t, e, keyA, map[string]any{"topic": "Staff", "channelType": "open", "overrides": []map[string]any{{"roleId": all, "view": false}}})
	send(t, e, keyA, map[string]any{"recipient": "bob", "message": "psst", "sender": "ada"}, 200)
	dm := e.Do(apitest.Request{Method: "GET", Path: "/v1/channels?type=dm", Key: keyA}).Expect(t, 200).String("body.0._id")
	adaTok, bobTok, cyTok := e.SignIn(a, "ada@example.com"), e.SignIn(a, "bob@example.com"), e.SignIn(a, "cy@example.com")

	// Ada with the token in the query (as a browser), Bob in the header on
	// a prefixed alias.
	adaC := dialRT(t, e, "/v1/realtime?token="+adaTok, "", true)
	ready := adaC.expect("ready")
	if ready["communityId"] != a || ready["maxSubscriptions"] != float64(500) {
		t.Fatalf("ready %v", ready)
	}
	bobC := dialRT(t, e, "/apis/v1/realtime", bobTok, true)
	bobC.expect("ready")
	cyC := dialRT(t, e, "/api/v1/realtime?token="+cyTok, "", true)
	cyC.expect("ready")

	// Refused subscriptions name their channel; readable ones are acknowledged.
	adaC.send(map[string]any{"type": "subscribe", "channels": []string{general, staff, "000000000000000000000000", dm}})
	if f := adaC.expect("error"); f["code"] != "forbidden" || f["channelId"] != staff {
		t.Fatalf("staff: %v", f)
	}
	if f := adaC.expect("error"); f["code"] != "not_found" || f["channelId"] != "000000000000000000000000" {
		t.Fatalf("unknown: %v", f)
	}
	if f := adaC.expect("subscribed"); fmt.Sprint(f["channels"]) != fmt.Sprintf("[%s %s]", general, dm) {
		t.Fatalf("subscribed %v", f)
	}
	cyC.send(map[string]any{"type": "subscribe", "channels": []string{dm, general}})
	if f := cyC.expect("error"); f["code"] != "forbidden" || f["channelId"] != dm {
		t.Fatalf("cy in the DM: %v", f)
	}
	cyC.expect("subscribed")
	bobC.subscribe(general)

	// Bad frames get error frames and leave the connection open.
	adaC.send("not an object")
	adaC.expect("error")
	adaC.send(map[string]any{"type": "dance"})
	if f := adaC.expect("error"); f["code"] != "bad_frame" || !strings.Contains(f["message"].(string), "dance") {
		t.Fatalf("unknown type: %v", f)
	}
	adaC.send(map[string]any{"type": "subscribe", "channels": []string{}})
	adaC.expect("error")
	adaC.send(map[string]any{"type": "subscribe", "all": true})
	if f := adaC.expect("error"); f["code"] != "forbidden" {
		t.Fatalf("all as member: %v", f)
	}
	adaC.send(map[string]any{"type": "ping"})
	adaC.expect("pong")

	// A message posted over HTTP arrives with every field.
	post(t, e, keyA, general, "ada", "Hello live")
	f := adaC.expect("message.posted")
	if f["channelId"] != general || f["eventId"].(float64) <= ready["eventId"].(float64) || f["occurredAt"] == "" ||
		get(f, "data.message") != "Hello live" || get(f, "data.user.email") != "ada@example.com" || get(f, "data.user._id") != ada.ID ||
		get(f, "data.channel.channel_id") != general || get(f, "data.channel.name") != "General" || get(f, "data.sequence") != float64(1) ||
		get(f, "data.userId") != ada.ID || get(f, "data.id") == nil || get(f, "data.timestamp") == nil {
		t.Fatalf("posted %v", f)
	}
	msgID := get(f, "data.id").(string)
	for _, c := range []*rtClient{bobC, cyC} {
		if g := c.expect("message.posted"); g["eventId"] != f["eventId"] || get(g, "data.id") != msgID {
			t.Fatalf("other subscriber %v", g)
		}
	}

	// Edit, reactions and deletion.
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/messages/" + msgID, Key: adaTok, Body: map[string]any{"message": "Hello, live"}}).Expect(t, 200)
	if g := adaC.expect("message.edited"); get(g, "data.message") != "Hello, live" || get(g, "data.editedAt") == nil || g["channelId"] != general {
		t.Fatalf("edited %v", g)
	}
	react := map[string]any{"messageId": msgID, "emoji": "👍", "sender": "bob"}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/messages/react", Key: keyA, Body: react}).Expect(t, 200)
	if g := adaC.expect("reaction.added"); get(g, "data.emoji") != "👍" || get(g, "data.count") != float64(1) ||
		get(g, "data.messageId") != msgID || get(g, "data.user.username") != "bob" || g["channelId"] != general {
		t.Fatalf("reaction %v", g)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/messages/react", Key: keyA, Body: react}).Expect(t, 200)
	if g := adaC.expect("reaction.removed"); get(g, "data.count") != float64(0) || get(g, "data.reacted") != false {
		t.Fatalf("unreaction %v", g)
	}
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/messages/" + msgID, Key: keyA}).Expect(t, 200)
	if g := adaC.expect("message.deleted"); get(g, "data.id") != msgID || g["channelId"] != general {
		t.Fatalf("deleted %v", g)
	}
	for _, typ := range []string{"message.edited", "reaction.added", "reaction.removed", "message.deleted"} {
		bobC.expect(typ)
		cyC.expect(typ)
	}

	// A DM reaches its participants only; Cy's next frame is the general one.
	send(t, e, keyA, map[string]any{"recipient": "ada", "message": "hi ada", "sender": "bob"}, 200)
	if g := adaC.expect("message.posted"); g["channelId"] != dm || get(g, "data.message") != "hi ada" {
		t.Fatalf("dm %v", g)
	}
	post(t, e, keyA, general, "cy", "after the dm")
	for _, c := range []*rtClient{adaC, bobC, cyC} {
		if g := c.expect("message.posted"); get(g, "data.message") != "after the dm" {
			t.Fatalf("got %v", g)
		}
	}

	// Typing reaches the channel's other subscribers, not the typist.
	adaC.send(map[string]any{"type": "typing", "channelId": general})
	for _, c := range []*rtClient{bobC, cyC} {
		if g := c.expect("typing"); g["channelId"] != general || get(g, "user.username") != "ada" || g["at"] == nil {
			t.Fatalf("typing %v", g)
		}
	}
	adaC.send(map[string]any{"type": "typing", "channelId": staff})
	if g := adaC.expect("error"); g["code"] != "not_subscribed" {
		t.Fatalf("typing unsubscribed: %v", g)
	}
	post(t, e, keyA, general, "bob", "typing done")
	if g := adaC.expect("message.posted"); get(g, "data.message") != "typing done" {
		t.Fatalf("ada got %v; her own typing must not come back", g)
	}

	// Unsubscribe stops the channel's frames.
	bobC.expect("message.posted") // typing done
	bobC.send(map[string]any{"type": "unsubscribe", "channels": []string{general}})
	if g := bobC.expect("unsubscribed"); fmt.Sprint(g["channels"]) != "["+general+"]" {
		t.Fatalf("unsubscribed %v", g)
	}
	post(t, e, keyA, general, "ada", "bob left")
	random := newChannel(t, e, keyA, map[string]any{"topic": "Random", "channelType": "open"})
	bobC.subscribe(random)
	post(t, e, keyA, random, "ada", "in random")
	if g := bobC.expect("message.posted"); get(g, "data.message") != "in random" {
		t.Fatalf("after unsubscribe: %v", g)
	}
}

// upgrade are the headers of a WebSocket handshake.
var upgrade = map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
	"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}

func withHeaders(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestRealtimeHandshakeErrors(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	joined(e, a, "ada")
	tok := e.SignIn(a, "ada@example.com")
	noRead := keyWithPerm(t, e, a, "sendMessage")
	cases := []struct {
		name    string
		path    string
		key     string
		headers map[string]string
		status  int
		fields  []string
	}{
		{"no credentials", "/v1/realtime", "", upgrade, 401, nil},
		{"bad token", "/v1/realtime?token=nope", "", upgrade, 401, nil},
		{"community key in the URL", "/v1/realtime?token=" + keyA, "", upgrade, 401, nil},
		{"key without getMessages", "/v1/realtime", noRead, upgrade, 403, nil},
		{"not a WebSocket", "/v1/realtime", keyA, nil, 400, []string{"Connection", "Upgrade", "Sec-WebSocket-Version", "Sec-WebSocket-Key"}},
		{"bad lastEventId", "/v1/realtime?lastEventId=-1", tok, upgrade, 400, []string{"lastEventId"}},
		{"cookie from another site", "/v1/realtime", "", withHeaders(upgrade, "Cookie", "rally_session="+tok, "Origin", "https://evil.example"), 403, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := e.Do(apitest.Request{Method: "GET", Path: tc.path, Key: tc.key, Headers: tc.headers}).Expect(t, tc.status)
			if tc.fields != nil && !slices.Equal(res.ErrorFields(), tc.fields) {
				t.Fatalf("fields %v: %s", res.ErrorFields(), res.Body)
			}
		})
	}
}

func TestRealtimeTenancyAndPartnerWatch(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	b, keyB := e.Community("Beta", "beta")
	e.Member(a, "ada", user.MemberOptions{Joined: true, Owner: true})
	joined(e, a, "bob")
	joined(e, b, "zed")
	genA := newChannel(t, e, keyA, map[string]any{"topic": "General", "channelType": "open"})
	hidden := newChannel(t, e, keyA, map[string]any{"topic": "Staff", "channelType": "open",
		"overrides": []map[string]any{{"roleId": everyoneRole(t, e, keyA), "view": false}}})
	genB := newChannel(t, e, keyB, map[string]any{"topic": "General", "channelType": "open"})

	partnerA := dialRT(t, e, "/v1/realtime", keyA, true)
	partnerA.expect("ready")
	partnerA.send(map[string]any{"type": "subscribe", "all": true})
	if f := partnerA.expect("subscribed"); f["all"] != true {
		t.Fatalf("all: %v", f)
	}
	partnerB := dialRT(t, e, "/v1/realtime", keyB, true)
	partnerB.expect("ready")
	partnerB.send(map[string]any{"type": "subscribe", "all": true})
	partnerB.expect("subscribed")
	zed := dialRT(t, e, "/v1/realtime?token="+e.SignIn(b, "zed@example.com"), "", true)
	zed.expect("ready")
	zed.send(map[string]any{"type": "subscribe", "channels": []string{genA, genB}})
	if f := zed.expect("error"); f["code"] != "not_found" || f["channelId"] != genA {
		t.Fatalf("zed on alpha's channel: %v", f)
	}
	zed.expect("subscribed")
	partnerB.send(map[string]any{"type": "subscribe", "channels": []string{genA}})
	if f := partnerB.expect("error"); f["code"] != "not_found" {
		t.Fatalf("beta's key on alpha's channel: %v", f)
	}
	partnerB.expect("subscribed")

	// Alpha's key watches every channel, hidden ones and DMs included.
	post(t, e, keyA, genA, "ada", "one")
	post(t, e, keyA, hidden, "ada", "two")
	send(t, e, keyA, map[string]any{"recipient": "bob", "message": "three", "sender": "ada"}, 200)
	for _, want := range []string{"one", "two", "three"} {
		if f := partnerA.expect("message.posted"); get(f, "data.message") != want {
			t.Fatalf("partner got %v, want %s", f, want)
		}
	}
	// Beta sees none of it: its next frames are Beta's own message.
	post(t, e, keyB, genB, "zed", "beta")
	for _, c := range []*rtClient{partnerB, zed} {
		if f := c.expect("message.posted"); get(f, "data.message") != "beta" {
			t.Fatalf("beta got %v", f)
		}
	}
	// Typing needs a member.
	partnerA.send(map[string]any{"type": "typing", "channelId": genA})
	if f := partnerA.expect("error"); f["code"] != "forbidden" {
		t.Fatalf("key typing: %v", f)
	}
	// Following every channel counts as one subscription, however often
	// it is asked for: both keys' and Zed's one channel.
	if got := scrape(t, e)["rally_realtime_subscriptions"]; got != 3 {
		t.Fatalf("rally_realtime_subscriptions = %v, want 3", got)
	}
	partnerA.send(map[string]any{"type": "unsubscribe", "all": true})
	partnerA.expect("unsubscribed")
	if got := scrape(t, e)["rally_realtime_subscriptions"]; got != 2 {
		t.Fatalf("rally_realtime_subscriptions after unsubscribing all = %v, want 2", got)
	}
}

// eventID reads a frame's eventId.
func eventID(f map[string]any) int64 { return int64(f["eventId"].(float64)) }

func TestRealtimeResume(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	joined(e, a, "ada")
	tok := e.SignIn(a, "ada@example.com")
	general := newChannel(t, e, keyA, map[string]any{"topic": "General", "channelType": "open"})
	other := newChannel(t, e, keyA, map[string]any{"topic": "Other", "channelType": "open"})

	c := dialRT(t, e, "/v1/realtime", tok, true)
	c.expect("ready")
	c.subscribe(general)
	post(t, e, keyA, general, "ada", "m1")
	last := eventID(c.expect("message.posted"))
	c.ws.Close(websocket.StatusNormalClosure, "")

	// Missed while away: three in general, one elsewhere.
	for _, m := range []string{"m2", "m3"} {
		post(t, e, keyA, general, "ada", m)
	}
	post(t, e, keyA, other, "ada", "elsewhere")
	post(t, e, keyA, general, "ada", "m4")

	// Resume with the query parameter: the missed ones once, in order, then live.
	c = dialRT(t, e, fmt.Sprintf("/v1/realtime?lastEventId=%d", last), tok, true)
	c.expect("ready")
	ack := c.subscribe(general)
	var got []string
	prev := last
	for range 3 {
		f := c.expect("message.posted")
		if id := eventID(f); id <= prev || id > eventID(ack) {
			t.Fatalf("replayed event %d after %d (ack %d)", id, prev, eventID(ack))
		}
		prev = eventID(f)
		got = append(got, get(f, "data.message").(string))
	}
	if !slices.Equal(got, []string{"m2", "m3", "m4"}) {
		t.Fatalf("replayed %v", got)
	}
	post(t, e, keyA, general, "ada", "m5")
	if f := c.expect("message.posted"); get(f, "data.message") != "m5" {
		t.Fatalf("live after replay: %v", f)
	}

	// Resume in the subscribe frame, for a channel added later.
	c.send(map[string]any{"type": "subscribe", "channels": []string{other}, "lastEventId": last})
	c.expect("subscribed")
	if f := c.expect("message.posted"); get(f, "data.message") != "elsewhere" || f["channelId"] != other {
		t.Fatalf("replayed other: %v", f)
	}
	post(t, e, keyA, other, "ada", "other live")
	if f := c.expect("message.posted"); get(f, "data.message") != "other live" {
		t.Fatalf("live other: %v", f)
	}

	// Too old: the outbox pruned past lastEventId.
	if _, err := e.App.DB.Exec(context.Background(), "INSERT INTO event_horizons (community_id, pruned_seq) VALUES (?, ?)", a, last+1); err != nil {
		t.Fatal(err)
	}
	c2 := dialRT(t, e, fmt.Sprintf("/v1/realtime?lastEventId=%d", last), tok, true)
	c2.expect("ready")
	ack = c2.subscribe(general)
	if f := c2.expect("resume.expired"); eventID(f) != eventID(ack) || int64(f["lastEventId"].(float64)) != last {
		t.Fatalf("expired %v", f)
	}
	post(t, e, keyA, general, "ada", "m6")
	if f := c2.expect("message.posted"); get(f, "data.message") != "m6" {
		t.Fatalf("live after expiry: %v", f)
	}
}

func TestRealtimePermissionRevoked(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	ada := joined(e, a, "ada")
	all := everyoneRole(t, e, keyA)
	vip := e.Do(apitest.Request{Method: "POST", Path: "/v1/roles", Key: keyA, Body: map[string]any{"title": "VIP"}}).Expect(t, 201).String("body._id")
	e.Do(apitest.Request{Method: "POST", Path: "/v1/roles/" + vip + "/add", Key: keyA, Body: map[string]any{"userId": ada.ID}}).Expect(t, 200)
	general := newChannel(t, e, keyA, map[string]any{"topic": "General", "channelType": "open"})
	lounge := newChannel(t, e, keyA, map[string]any{"topic": "Lounge", "channelType": "open",
		"overrides": []map[string]any{{"roleId": all, "view": false}, {"roleId": vip, "view": true}}})
	news := newChannel(t, e, keyA, map[string]any{"topic": "News", "channelType": "open"})

	c := dialRT(t, e, "/v1/realtime", e.SignIn(a, "ada@example.com"), true)
	c.expect("ready")
	c.subscribe(general, lounge, news)
	post(t, e, keyA, lounge, "ada", "vip 1")
	post(t, e, keyA, general, "ada", "general 1")
	for _, want := range []string{"vip 1", "general 1"} {
		if f := c.expect("message.posted"); get(f, "data.message") != want {
			t.Fatalf("got %v want %s", f, want)
		}
	}
	// The role goes: the next lounge frame is not delivered, the
	// subscription ends, and other channels go on.
	e.Do(apitest.Request{Method: "POST", Path: "/v1/roles/" + vip + "/remove", Key: keyA, Body: map[string]any{"userId": ada.ID}}).Expect(t, 200)
	send(t, e, keyA, map[string]any{"channelId": lounge, "message": "vip 2", "sender": "ada"}, 403)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/roles/" + vip + "/add", Key: keyA, Body: map[string]any{"userId": joined(e, a, "vic").ID}}).Expect(t, 200)
	post(t, e, keyA, lounge, "vic", "vip 2")
	if f := c.expect("unsubscribed"); fmt.Sprint(f["channels"]) != "["+lounge+"]" || f["reason"] != "forbidden" {
		t.Fatalf("revoked: %v", f)
	}
	post(t, e, keyA, general, "ada", "general 2")
	if f := c.expect("message.posted"); get(f, "data.message") != "general 2" {
		t.Fatalf("after revocation: %v", f)
	}
	// The channel is hidden from everyone by an override change.
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/channels/" + general, Key: keyA, Body: map[string]any{
		"overrides": []map[string]any{{"roleId": all, "view": false}}}}).Expect(t, 200)
	e.Member(a, "own", user.MemberOptions{Joined: true, Owner: true})
	post(t, e, keyA, general, "own", "hidden now")
	if f := c.expect("unsubscribed"); fmt.Sprint(f["channels"]) != "["+general+"]" {
		t.Fatalf("hidden: %v", f)
	}
	// The channel is deleted.
	post(t, e, keyA, news, "vic", "news 1")
	c.expect("message.posted")
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/channels/" + news, Key: keyA}).Expect(t, 200)
	e.Emit(a, "message.posted", map[string]any{"channel": map[string]any{"channel_id": news}, "message": "ghost"})
	if f := c.expect("unsubscribed"); fmt.Sprint(f["channels"]) != "["+news+"]" {
		t.Fatalf("deleted: %v", f)
	}
}

func TestRealtimeSlowClientDropped(t *testing.T) {
	e := apitest.NewWith(t, func(c *config.Config) { c.RealtimeBuffer = 64 })
	a, keyA := e.Community("Alpha", "alpha")
	joined(e, a, "ada")
	tok := e.SignIn(a, "ada@example.com")
	general := newChannel(t, e, keyA, map[string]any{"topic": "General", "channelType": "open"})

	fast := dialRT(t, e, "/v1/realtime", tok, true)
	fast.expect("ready")
	fast.subscribe(general)
	slow := dialRT(t, e, "/v1/realtime", tok, false)
	slow.send(map[string]any{"type": "subscribe", "channels": []string{general}}) // its acknowledgement stays unread

	// Flood in bursts of 32 large frames (within the fast client's buffer)
	// until the slow client, which reads nothing, is dropped.
	big := strings.Repeat("x", 32<<10)
	ctx := context.Background()
	sent := 0
	for burst := 0; e.App.Realtime.Dropped() == 0; burst++ {
		if burst == 200 {
			t.Fatal("the slow client was never dropped")
		}
		err := e.App.DB.Tx(ctx, func(tx *db.Tx) error {
			for i := range 32 {
				if err := e.App.Outbox.Append(ctx, tx, a, "message.posted", map[string]any{
					"channel": map[string]any{"channel_id": general}, "message": big, "n": sent + i}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		sent += 32
		for range 32 {
			fast.expect("message.posted")
		}
	}
	// The fast client got every frame, once, in order.
	post(t, e, keyA, general, "ada", "still here")
	if f := fast.expect("message.posted"); get(f, "data.message") != "still here" {
		t.Fatalf("fast client after the flood: %v", f)
	}
	// The slow client finds its connection closed once it reads what was
	// buffered: with 1013 (try again later) when the close frame got
	// through, or cut.
	go slow.readAll()
	got := 0
	for f := range slow.frames {
		if f["type"] == "message.posted" {
			got++
		}
	}
	if got >= sent {
		t.Fatalf("slow client received all %d frames", got)
	}
	if s := websocket.CloseStatus(slow.err); s != websocket.StatusTryAgainLater && s != -1 {
		t.Fatalf("slow client closed with %v", slow.err)
	}
	// Operators see the drop, of the slow client alone.
	m := scrape(t, e)
	if got := m["rally_realtime_slow_clients_dropped_total"]; got != 1 {
		t.Fatalf("rally_realtime_slow_clients_dropped_total = %v, want 1", got)
	}
}

func TestRealtimePingAndShutdown(t *testing.T) {
	e := apitest.NewWith(t, func(c *config.Config) { c.RealtimePing = 100 * time.Millisecond })
	a, keyA := e.Community("Alpha", "alpha")
	joined(e, a, "ada")
	tok := e.SignIn(a, "ada@example.com")
	general := newChannel(t, e, keyA, map[string]any{"topic": "General", "channelType": "open"})

	// A client that reads nothing never answers pings and is closed.
	dialRT(t, e, "/v1/realtime", tok, false)
	apitest.WaitFor(t, "the dead connection to close", func() bool { return e.App.Realtime.Connections() == 0 })

	// A reading client answers pings and stays; shutdown closes it with 1001.
	live := dialRT(t, e, "/v1/realtime", tok, true)
	live.expect("ready")
	live.subscribe(general)
	time.Sleep(300 * time.Millisecond) // several ping intervals
	post(t, e, keyA, general, "ada", "still open")
	live.expect("message.posted")
	ctx, cancel := context.WithTimeout(context.Background(), frameWait)
	defer cancel()
	if err := e.App.Realtime.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for range live.frames {
	}
	if s := websocket.CloseStatus(live.err); s != websocket.StatusGoingAway {
		t.Fatalf("shutdown closed with %v", live.err)
	}
}

func TestRealtimeTwoNodes(t *testing.T) {
	if os.Getenv(dbtest.EnvPostgres) == "" {
		t.Skip("two nodes share a PostgreSQL database; set " + dbtest.EnvPostgres)
	}
	nodeA := apitest.New(t)
	nodeB := apitest.NewWith(t, func(c *config.Config) { c.DSN = nodeA.App.Config.DSN })
	a, keyA := nodeA.Community("Alpha", "alpha")
	joined(nodeA, a, "ada")
	joined(nodeA, a, "bob")
	general := newChannel(t, nodeA, keyA, map[string]any{"topic": "General", "channelType": "open"})

	onB := dialRT(t, nodeB, "/v1/realtime", nodeB.SignIn(a, "bob@example.com"), true)
	onB.expect("ready")
	onB.subscribe(general)
	onA := dialRT(t, nodeA, "/v1/realtime", nodeA.SignIn(a, "ada@example.com"), true)
	onA.expect("ready")
	onA.subscribe(general)

	post(t, nodeA, keyA, general, "ada", "from node A")
	if f := onB.expect("message.posted"); get(f, "data.message") != "from node A" {
		t.Fatalf("node B got %v", f)
	}
	onA.expect("message.posted")
	post(t, nodeB, keyA, general, "bob", "from node B")
	for _, c := range []*rtClient{onA, onB} {
		if f := c.expect("message.posted"); get(f, "data.message") != "from node B" {
			t.Fatalf("got %v", f)
		}
	}
	// Typing crosses nodes too.
	onA.send(map[string]any{"type": "typing", "channelId": general})
	if f := onB.expect("typing"); get(f, "user.username") != "ada" {
		t.Fatalf("typing across nodes: %v", f)
	}
}
