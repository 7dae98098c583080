package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rallyhq/rally/internal/apitest"
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
