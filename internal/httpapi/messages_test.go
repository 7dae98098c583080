package httpapi_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/user"
)

// joined makes a full member called name.
func joined(e *apitest.Env, communityID, name string) user.User {
	return e.Member(communityID, name, user.MemberOptions{Joined: true})
}

// send posts through MS2 and expects status.
func send(t *testing.T, e *apitest.Env, key string, body map[string]any, status int) *apitest.Response {
	t.Helper()
	return e.Do(apitest.Request{Method: "POST", Path: "/v1/messages/send", Key: key, Body: body}).Expect(t, status)
}

// messages reads MS1 with query and returns the page's message texts,
// in order.
func messages(t *testing.T, e *apitest.Env, key, query string) ([]string, *apitest.Response) {
	t.Helper()
	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/messages?" + query, Key: key}).Expect(t, 200)
	list, _ := res.Get("data.messages").([]any)
	out := make([]string, len(list))
	for i, m := range list {
		out[i] = m.(map[string]any)["message"].(string)
	}
	return out, res
}

// everyoneRole returns the @all role's id.
func everyoneRole(t *testing.T, e *apitest.Env, key string) string {
	t.Helper()
	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/roles?limit=100", Key: key}).Expect(t, 200)
	list, _ := res.Get("body").([]any)
	for _, r := range list {
		if m := r.(map[string]any); m["title"] == "@all" {
			return m["_id"].(string)
		}
	}
	t.Fatalf("no @all role: %s", res.Body)
	return ""
}

func TestSendAndGetMessages(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	b, keyB := e.Community("Beta", "beta")
	_, noSend := keyWith(t, e, a, 0, "getMessages")
	joined(e, a, "ada")
	bob := joined(e, a, "bob")
	joined(e, b, "zed")
	general := newChannel(t, e, keyA, map[string]any{"topic": "General", "channelType": "open"})
	betaChan := newChannel(t, e, keyB, map[string]any{"topic": "Beta", "channelType": "open"})

	// Both documented paths, documented answer without data.
	res := send(t, e, keyA, map[string]any{"channelId": general, "message": "Hi", "sender": "ada"}, 200)
	if res.String("status") != "success" || res.String("message") != "Message send successfully" || res.Get("data") != nil {
		t.Fatalf("send: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/apis/v1/messages/send", Key: keyA, Body: map[string]any{"channelId": general, "message": "Good morning", "sender": "bob@example.com"}}).Expect(t, 200)
	e.Do(apitest.Request{Method: "POST", Path: "/apis/v1/messages", Key: keyA, Body: map[string]any{"channelId": general, "message": "Third", "sender": "ada"}}).Expect(t, 200)

	// Validation names every field; bad references are 404; rules are 403.
	res = send(t, e, keyA, map[string]any{"message": strings.Repeat("x", 4001)}, 400)
	if got := res.ErrorFields(); !slices.Equal(got, []string{"sender"}) {
		t.Fatalf("fields %v", got)
	}
	res = send(t, e, keyA, map[string]any{"sender": "ada", "message": strings.Repeat("x", 4001), "mentions": []string{"nobody"}}, 400)
	if got := res.ErrorFields(); !slices.Equal(got, []string{"channelId", "message", "mentions[0]"}) || res.String("status") != "error" {
		t.Fatalf("fields %v: %s", got, res.Body)
	}
	send(t, e, keyA, map[string]any{"channelId": general, "message": "  ", "sender": "ada"}, 400)
	send(t, e, keyA, map[string]any{"channelId": general, "message": "x", "sender": "ghost"}, 404)
	send(t, e, keyA, map[string]any{"channelId": general, "message": "x", "sender": "zed"}, 404) // Beta's member
	send(t, e, keyA, map[string]any{"channelId": betaChan, "message": "x", "sender": "ada"}, 404)
	send(t, e, keyA, map[string]any{"channelId": "nope", "message": "x", "sender": "ada"}, 404)
	send(t, e, noSend, map[string]any{"channelId": general, "message": "x", "sender": "ada"}, 403)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/messages/send", Body: map[string]any{"channelId": general, "message": "x", "sender": "ada"}}).Expect(t, 401)

	// Get Messages: newest first, documented fields, total.
	got, res := messages(t, e, keyA, "channel_id="+general)
	if !slices.Equal(got, []string{"Third", "Good morning", "Hi"}) || res.Get("data.total") != float64(3) ||
		res.String("message") != "messages fetched successfully" || res.String("data.messages.0.channel.name") != "General" ||
		res.String("data.messages.1.user.email") != "bob@example.com" || res.String("data.messages.1.user.user_id") != fmt.Sprint(bob.NumID) ||
		res.Get("data.messages.0.sequence") != float64(3) {
		t.Fatalf("get: %s", res.Body)
	}
	first := res.String("data.messages.2.id")
	got, _ = messages(t, e, keyA, "user_id="+fmt.Sprint(bob.NumID))
	if !slices.Equal(got, []string{"Good morning"}) {
		t.Fatalf("by user: %v", got)
	}
	got, res = messages(t, e, keyA, "email=ada@example.com&count=1")
	if !slices.Equal(got, []string{"Third"}) || res.Get("data.total") != float64(2) || res.Get("data.hasMore") != true {
		t.Fatalf("by email: %v %s", got, res.Body)
	}
	got, _ = messages(t, e, keyA, "after="+first+"&channel_id="+general)
	if !slices.Equal(got, []string{"Good morning", "Third"}) {
		t.Fatalf("after: %v", got)
	}
	got, _ = messages(t, e, keyA, "email=nobody@example.com")
	if len(got) != 0 {
		t.Fatalf("unknown email: %v", got)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/messages?count=0&before=x&after=y", Key: keyA}).Expect(t, 400)
	if got := res.ErrorFields(); !slices.Equal(got, []string{"count"}) {
		t.Fatalf("count: %v", got)
	}
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/messages?count=101&before=x&after=y", Key: keyA}).Expect(t, 400)
	if got := res.ErrorFields(); !slices.Equal(got, []string{"count", "after", "before", "after"}) {
		t.Fatalf("query fields: %v", got)
	}
	// Tenancy: another community's key sees neither the channel nor the messages.
	e.Do(apitest.Request{Method: "GET", Path: "/v1/messages?channel_id=" + general, Key: keyB}).Expect(t, 404)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/messages?before=" + first, Key: keyB}).Expect(t, 400)
	if got, _ := messages(t, e, keyB, ""); len(got) != 0 {
		t.Fatalf("beta sees %v", got)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/messages", Key: keyWithPerm(t, e, a, "sendMessage")}).Expect(t, 403)

	// Events and counters.
	if n := len(e.EventTypes(a, "message.posted")); n != 3 {
		t.Fatalf("message.posted %d", n)
	}
	if n := len(e.EventTypes(a, "channel.message.posted")); n != 3 {
		t.Fatalf("channel.message.posted %d", n)
	}
	info := e.Do(apitest.Request{Method: "POST", Path: "/v1/users/info", Key: keyA, Body: map[string]any{"idOrEmail": "ada"}}).Expect(t, 200)
	if info.Get("data.totalMessages") != float64(2) {
		t.Fatalf("counters: %s", info.Body)
	}

	// A deleted channel stops posting and hides its messages.
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/channels/" + general, Key: keyA}).Expect(t, 200)
	send(t, e, keyA, map[string]any{"channelId": general, "message": "late", "sender": "ada"}, 404)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/messages?channel_id=" + general, Key: keyA}).Expect(t, 404)
	if got, res := messages(t, e, keyA, ""); len(got) != 0 || res.Get("data.total") != float64(0) {
		t.Fatalf("deleted channel's messages shown: %s", res.Body)
	}
}

// keyWithPerm returns a partner key holding only perm.
func keyWithPerm(t *testing.T, e *apitest.Env, communityID, perm string) string {
	t.Helper()
	_, secret := keyWith(t, e, communityID, 0, perm)
	return secret
}

func TestMessageRulesAndThreads(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	_, keyB := e.Community("Beta", "beta")
	joined(e, a, "ada")
	joined(e, a, "bob")
	mod := joined(e, a, "mia")
	e.Member(a, "pen", user.MemberOptions{}) // pending: not yet joined
	all := everyoneRole(t, e, keyA)
	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/roles", Key: keyA, Body: map[string]any{"title": "Moderator",
		"channelPermissions": map[string]any{"manage_messages": true}}}).Expect(t, 201)
	modRole := res.String("body._id")
	e.Do(apitest.Request{Method: "POST", Path: "/v1/roles/" + modRole + "/add", Key: keyA, Body: map[string]any{"userId": mod.ID}}).Expect(t, 200)

	// Announcements: @all may read but not post; moderators may post.
	news := newChannel(t, e, keyA, map[string]any{"topic": "News", "channelType": "open",
		"overrides": []map[string]any{{"roleId": all, "post": false}, {"roleId": modRole, "post": true}}})
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/channels", Key: keyA}).Expect(t, 200)
	if fmt.Sprint(res.Get("body.0.permissions")) != fmt.Sprintf("[%s %s]", min(all, modRole), max(all, modRole)) {
		t.Fatalf("overrides: %s", res.Body)
	}
	send(t, e, keyA, map[string]any{"channelId": news, "message": "x", "sender": "ada"}, 403)
	send(t, e, keyA, map[string]any{"channelId": news, "message": "Release 2", "sender": "mia"}, 200)
	send(t, e, keyA, map[string]any{"channelId": news, "message": "x", "sender": "pen"}, 403)
	// Hidden channel: @all may not view.
	secret := newChannel(t, e, keyA, map[string]any{"topic": "Staff", "channelType": "open", "overrides": []map[string]any{{"roleId": all, "view": false}}})
	send(t, e, keyA, map[string]any{"channelId": secret, "message": "x", "sender": "ada"}, 403)
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/channels", Key: keyA, Body: map[string]any{"topic": "X", "channelType": "open",
		"overrides": []map[string]any{{"roleId": "000000000000000000000000"}, {"roleId": "bad"}}}}).Expect(t, 400)
	if got := res.ErrorFields(); !slices.Equal(got, []string{"overrides[0].roleId", "overrides[1].roleId"}) {
		t.Fatalf("override fields %v", got)
	}

	// Forum posts need a topic of that forum; iframe channels take messages.
	forum := newChannel(t, e, keyA, map[string]any{"topic": "Ideas", "channelType": "forum"})
	topic := e.Do(apitest.Request{Method: "POST", Path: "/v1/channels/" + forum + "/topics", Key: keyA, Body: map[string]any{"title": "Roadmap"}}).Expect(t, 201).String("body._id")
	if got := send(t, e, keyA, map[string]any{"channelId": forum, "message": "x", "sender": "ada"}, 400).ErrorFields(); !slices.Equal(got, []string{"forumTopicId"}) {
		t.Fatalf("forum without topic: %v", got)
	}
	send(t, e, keyA, map[string]any{"channelId": forum, "message": "x", "sender": "ada", "forumTopicId": "000000000000000000000000"}, 400)
	send(t, e, keyA, map[string]any{"channelId": forum, "message": "Dark mode?", "sender": "ada", "forumTopicId": topic, "mentions": []string{"bob", "bob@example.com"}}, 200)
	frame := newChannel(t, e, keyA, map[string]any{"topic": "Charts", "channelType": "iframe", "url": "https://charts.example.com"})
	send(t, e, keyA, map[string]any{"channelId": frame, "message": "nice chart", "sender": "ada"}, 200)
	if got := send(t, e, keyA, map[string]any{"channelId": frame, "message": "x", "sender": "ada", "forumTopicId": topic}, 400).ErrorFields(); !slices.Equal(got, []string{"forumTopicId"}) {
		t.Fatalf("topic outside forum: %v", got)
	}
	_, res = messages(t, e, keyA, "channel_id="+forum+"&forum_topic_id="+topic)
	post := res.String("data.messages.0.id")
	if res.Get("data.total") != float64(1) || res.String("data.messages.0.forumTopicId") != topic ||
		res.String("data.messages.0.mentions.0.username") != "bob" || len(res.Get("data.messages.0.mentions").([]any)) != 1 {
		t.Fatalf("forum post: %s", res.Body)
	}

	// Replies keep a thread link and a count on the thread's first message.
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/messages/reply", Key: keyA, Body: map[string]any{"messageId": post, "message": "Yes!", "sender": "bob"}}).Expect(t, 201)
	reply := res.String("data.id")
	if res.String("data.replyTo") != post || res.String("data.threadId") != post || res.String("data.forumTopicId") != topic || res.Get("meta.statusCode") != float64(201) {
		t.Fatalf("reply: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/messages/reply", Key: keyA, Body: map[string]any{"messageId": reply, "message": "Agreed", "sender": "mia"}}).Expect(t, 201)
	if res.String("data.replyTo") != reply || res.String("data.threadId") != post {
		t.Fatalf("nested reply: %s", res.Body)
	}
	_, res = messages(t, e, keyA, "channel_id="+forum+"&count=3")
	if res.Get("data.messages.2.replyCount") != float64(2) || res.Get("data.total") != float64(3) {
		t.Fatalf("reply count: %s", res.Body)
	}
	if got := e.Do(apitest.Request{Method: "POST", Path: "/v1/messages/reply", Key: keyA, Body: map[string]any{"sender": "bob"}}).Expect(t, 400).ErrorFields(); !slices.Equal(got, []string{"messageId", "message"}) {
		t.Fatalf("reply fields: %v", got)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/messages/reply", Key: keyA, Body: map[string]any{"messageId": post, "message": "x", "sender": "bob", "channelId": news}}).Expect(t, 400)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/messages/reply", Key: keyB, Body: map[string]any{"messageId": post, "message": "x", "sender": "bob"}}).Expect(t, 404)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/messages/reply", Key: keyWithPerm(t, e, a, "sendMessage"), Body: map[string]any{"messageId": post, "message": "x", "sender": "bob"}}).Expect(t, 403)

	// Reactions: one per member and emoji; reacting again takes it back.
	react := func(sender, emoji string, status int) *apitest.Response {
		return e.Do(apitest.Request{Method: "POST", Path: "/v1/messages/react", Key: keyA, Body: map[string]any{"messageId": post, "emoji": emoji, "sender": sender}}).Expect(t, status)
	}
	if r := react("bob", "👍", 200); r.Get("data.reacted") != true || r.Get("data.count") != float64(1) || r.String("message") != "Reaction added successfully" {
		t.Fatalf("react: %s", r.Body)
	}
	react("mia", "👍", 200)
	react("mia", "🎉", 200)
	if r := react("bob", "👍", 200); r.Get("data.reacted") != false || r.Get("data.count") != float64(1) || len(r.Get("data.reactions").([]any)) != 2 {
		t.Fatalf("unreact: %s", r.Body)
	}
	if got := react("bob", "two words", 400).ErrorFields(); !slices.Equal(got, []string{"emoji"}) {
		t.Fatalf("emoji: %v", got)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/messages/react", Key: keyB, Body: map[string]any{"messageId": post, "emoji": "x", "sender": "bob"}}).Expect(t, 404)
	_, res = messages(t, e, keyA, "channel_id="+forum+"&before="+reply)
	if fmt.Sprint(res.Get("data.messages.0.reactions")) != "[map[count:1 emoji:🎉] map[count:1 emoji:👍]]" {
		t.Fatalf("reactions shown: %s", res.Body)
	}
	info := e.Do(apitest.Request{Method: "POST", Path: "/v1/users/info", Key: keyA, Body: map[string]any{"idOrEmail": "mia"}}).Expect(t, 200)
	if info.Get("data.totalReactions") != float64(2) || info.Get("data.replySent") != float64(1) || info.Get("data.totalMessages") != float64(2) {
		t.Fatalf("counters: %s", info.Body)
	}

	// Edit one's own message only; delete one's own or as a moderator.
	res = e.Do(apitest.Request{Method: "PUT", Path: "/v1/messages/" + reply, Key: keyA, Body: map[string]any{"message": "Yes, please!", "sender": "bob"}}).Expect(t, 200)
	if res.String("data.message") != "Yes, please!" || res.Get("data.editedAt") == nil {
		t.Fatalf("edit: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/messages/" + reply, Key: keyA, Body: map[string]any{"message": "hijack", "sender": "mia"}}).Expect(t, 403)
	if got := e.Do(apitest.Request{Method: "PUT", Path: "/v1/messages/" + reply, Key: keyA, Body: map[string]any{"message": "", "sender": "bob"}}).Expect(t, 400).ErrorFields(); !slices.Equal(got, []string{"message"}) {
		t.Fatalf("edit fields: %v", got)
	}
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/messages/" + reply, Key: keyB, Body: map[string]any{"message": "x", "sender": "bob"}}).Expect(t, 404)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/messages/" + reply + "?sender=ada", Key: keyA}).Expect(t, 403)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/messages/" + reply + "?sender=mia", Key: keyA}).Expect(t, 200)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/messages/" + reply + "?sender=mia", Key: keyA}).Expect(t, 404)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/messages/" + post, Key: keyB}).Expect(t, 404)
	_, res = messages(t, e, keyA, "channel_id="+forum)
	if res.Get("data.total") != float64(2) || res.Get("data.messages.1.replyCount") != float64(1) {
		t.Fatalf("after delete: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/messages/" + post, Key: keyA}).Expect(t, 200) // community key moderates
	for _, typ := range []string{"message.reacted", "message.edited", "message.deleted"} {
		if len(e.EventTypes(a, typ)) == 0 {
			t.Fatalf("no %s event", typ)
		}
	}
	info = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/info", Key: keyA, Body: map[string]any{"idOrEmail": "bob"}}).Expect(t, 200)
	if info.Get("data.totalMessages") != float64(0) || info.Get("data.replySent") != float64(0) {
		t.Fatalf("bob's counters after delete: %s", info.Body)
	}
}

func TestDirectMessagesAndUserCredentials(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	b, _ := e.Community("Beta", "beta")
	ada := joined(e, a, "ada")
	bob := joined(e, a, "bob")
	joined(e, a, "cy")
	joined(e, b, "zed")
	general := newChannel(t, e, keyA, map[string]any{"topic": "General", "channelType": "open"})
	other := newChannel(t, e, keyA, map[string]any{"topic": "Other", "channelType": "direct"})

	// A private DM is made by the first message and found again after.
	send(t, e, keyA, map[string]any{"recipient": "bob", "message": "hey bob", "sender": "ada"}, 200)
	send(t, e, keyA, map[string]any{"recipient": "ada@example.com", "message": "hi ada", "sender": "bob"}, 200)
	res := e.Do(apitest.Request{Method: "GET", Path: "/v1/channels?type=dm", Key: keyA}).Expect(t, 200)
	dm := res.String("body.0._id")
	if res.Get("meta.total") != float64(1) || res.String("body.0.channelType") != "dm" || len(res.Get("body.0.participants").([]any)) != 2 ||
		res.String("body.0.userId") != fmt.Sprint(ada.NumID) {
		t.Fatalf("dm: %s", res.Body)
	}
	got, _ := messages(t, e, keyA, "channel_id="+dm)
	if !slices.Equal(got, []string{"hi ada", "hey bob"}) {
		t.Fatalf("dm messages: %v", got)
	}
	send(t, e, keyA, map[string]any{"channelId": dm, "message": "intrude", "sender": "cy"}, 403)
	if got := send(t, e, keyA, map[string]any{"recipient": "ada", "message": "x", "sender": "ada"}, 400).ErrorFields(); !slices.Equal(got, []string{"recipient"}) {
		t.Fatalf("self dm: %v", got)
	}
	send(t, e, keyA, map[string]any{"recipient": "zed", "message": "x", "sender": "ada"}, 400)
	send(t, e, keyA, map[string]any{"recipient": "bob", "channelId": general, "message": "x", "sender": "ada"}, 400)

	// Session tokens act as their user, in the community signed in to.
	tokBob, tokCy := e.SignIn(a, "bob@example.com"), e.SignIn(a, "cy@example.com")
	send(t, e, tokBob, map[string]any{"channelId": dm, "message": "from the app", "sender": "ada"}, 200) // sender ignored
	e.Do(apitest.Request{Method: "GET", Path: "/v1/messages?channel_id=" + dm, Key: tokCy}).Expect(t, 403)
	got, _ = messages(t, e, tokBob, "channel_id="+dm+"&count=1")
	if !slices.Equal(got, []string{"from the app"}) {
		t.Fatalf("token read: %v", got)
	}
	_, res = messages(t, e, tokBob, "")
	if res.Get("data.total") != float64(2) {
		t.Fatalf("own messages: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/messages?email=ada@example.com", Key: tokBob}).Expect(t, 403)
	tokZed := e.SignIn(b, "zed@example.com")
	send(t, e, tokZed, map[string]any{"channelId": general, "message": "x"}, 404)

	// User API keys act as their owner, limited to their channels.
	create := func(tok string, perms []string, channels []string) string {
		body := map[string]any{"name": "bot", "permissions": perms, "communityId": a}
		if channels == nil {
			channels = []string{}
		}
		body["channelIds"] = channels
		return e.Do(apitest.Request{Method: "POST", Path: "/v1/users/apikeys", Key: tok, Body: body}).Expect(t, 201).String("data.key")
	}
	limited := create(tokBob, []string{"sendMessages", "readOwnMessages"}, []string{general})
	send(t, e, limited, map[string]any{"channelId": general, "message": "via key"}, 200)
	send(t, e, limited, map[string]any{"channelId": other, "message": "elsewhere"}, 403)
	send(t, e, limited, map[string]any{"recipient": "cy", "message": "new dm"}, 403)
	got, res = messages(t, e, limited, "channel_id="+general)
	if !slices.Equal(got, []string{"via key"}) || res.String("data.messages.0.user._id") != bob.ID {
		t.Fatalf("user key read: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "GET", Path: "/v1/messages?channel_id=" + other, Key: limited}).Expect(t, 403)
	if got := e.Do(apitest.Request{Method: "GET", Path: "/v1/messages", Key: limited}).Expect(t, 400).ErrorFields(); !slices.Equal(got, []string{"channel_id"}) {
		t.Fatalf("limited key without channel: %v", got)
	}
	readOnly := create(tokBob, []string{"readOwnMessages"}, nil)
	send(t, e, readOnly, map[string]any{"channelId": general, "message": "x"}, 403)
	sendOnly := create(tokBob, []string{"sendMessage"}, nil)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/messages", Key: sendOnly}).Expect(t, 403)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/messages/react", Key: sendOnly, Body: map[string]any{"messageId": res.String("data.messages.0.id"), "emoji": "👍"}}).Expect(t, 200)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/channels", Key: sendOnly}).Expect(t, 403)
}

func TestUploadImagesAndAttach(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	_, keyB := e.Community("Beta", "beta")
	joined(e, a, "ada")
	general := newChannel(t, e, keyA, map[string]any{"topic": "General", "channelType": "open"})
	upload := func(key, path string, status int, images ...[]byte) *apitest.Response {
		body, ct := multipartBody(t, nil, "images", images...)
		return e.Do(apitest.Request{Method: "POST", Path: path, Key: key, Body: body, Headers: map[string]string{"Content-Type": ct}}).Expect(t, status)
	}
	gif := []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;")
	res := upload(keyA, "/apis/v1/messages/upload-image", 200, pngBytes, gif)
	list, ok := res.JSON.([]any)
	if !ok || len(list) != 2 || res.String("0.type") != "image/png" || res.String("1.type") != "image/gif" ||
		res.Get("0.size") != float64(len(pngBytes)) || res.String("0.name") != "avatar.bin" || !strings.HasPrefix(res.String("0.url"), e.Server.URL+"/v1/files/") {
		t.Fatalf("upload: %s", res.Body)
	}
	id := res.String("0.id")
	e.Do(apitest.Request{Method: "GET", Path: strings.TrimPrefix(res.String("0.url"), e.Server.URL)}).Expect(t, 200)
	if got := upload(keyA, "/v1/messages/upload-image", 400, []byte("not an image")).ErrorFields(); !slices.Equal(got, []string{"images[0]"}) {
		t.Fatalf("bad image: %v", got)
	}
	if got := upload(keyA, "/v1/messages/upload-image", 400).ErrorFields(); !slices.Equal(got, []string{"images"}) {
		t.Fatalf("no image: %v", got)
	}
	upload(keyA, "/v1/messages/upload-image", 413, append(append([]byte{}, pngBytes...), bytes.Repeat([]byte{0}, 5<<20)...))
	upload("", "/v1/messages/upload-image", 401, pngBytes)
	upload(keyWithPerm(t, e, a, "getMessages"), "/v1/messages/upload-image", 403, pngBytes)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/messages/upload-image", Key: keyA, Body: map[string]any{"images": 1}}).Expect(t, 400)

	// Attach by id; another community cannot attach this community's upload.
	send(t, e, keyA, map[string]any{"channelId": general, "message": "", "sender": "ada", "attachments": []map[string]any{{"id": id}}}, 200)
	_, res = messages(t, e, keyA, "channel_id="+general)
	if res.String("data.messages.0.attachments.0.id") != id || res.String("data.messages.0.attachments.0.type") != "image/png" {
		t.Fatalf("attachment: %s", res.Body)
	}
	b := newChannel(t, e, keyB, map[string]any{"topic": "B", "channelType": "open"})
	_ = b
	if got := send(t, e, keyA, map[string]any{"channelId": general, "message": "x", "sender": "ada", "attachments": []map[string]any{{"id": "nope.png"}}}, 400).ErrorFields(); !slices.Equal(got, []string{"attachments[0].id"}) {
		t.Fatalf("bad attachment: %v", got)
	}
}

// TestConcurrentSendersPageExactlyOnce has 100 senders post into one channel
// at once, then pages the channel both ways: every message appears exactly
// once, in sequence order.
func TestConcurrentSendersPageExactlyOnce(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	general := newChannel(t, e, keyA, map[string]any{"topic": "General", "channelType": "open"})
	const senders = 100
	for i := range senders {
		joined(e, a, fmt.Sprintf("u%03d", i))
	}
	// A reader starts from the newest message it has.
	send(t, e, keyA, map[string]any{"channelId": general, "message": "start", "sender": "u000"}, 200)
	// Take the cursor before any sender starts, so it is the "start" message.
	cursor := e.Do(apitest.Request{Method: "GET", Path: "/v1/messages?channel_id=" + general, Key: keyA}).Expect(t, 200).String("data.messages.0.id")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for i := range senders {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res := e.Do(apitest.Request{Method: "POST", Path: "/v1/messages/send", Key: keyA,
				Body: map[string]any{"channelId": general, "message": fmt.Sprintf("m%03d", i), "sender": fmt.Sprintf("u%03d", i)}})
			if res.Status != 200 {
				mu.Lock()
				failures = append(failures, string(res.Body))
				mu.Unlock()
			}
		}(i)
	}
	// While they post, page forward from the start: every page continues
	// exactly where the last ended.
	seen := map[string]bool{}
	var forward []float64
	deadline := time.Now().Add(2 * time.Minute)
	for len(forward) < senders {
		if time.Now().After(deadline) {
			t.Fatalf("paging forward saw %d of %d messages before the deadline", len(forward), senders)
		}
		q := "channel_id=" + general + "&count=7&after=" + cursor
		res := e.Do(apitest.Request{Method: "GET", Path: "/v1/messages?" + q, Key: keyA}).Expect(t, 200)
		for _, m := range res.Get("data.messages").([]any) {
			msg := m.(map[string]any)
			if seen[msg["id"].(string)] {
				t.Fatalf("message %v repeated", msg["id"])
			}
			seen[msg["id"].(string)] = true
			forward = append(forward, msg["sequence"].(float64))
			cursor = msg["id"].(string)
		}
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d sends failed: %s", len(failures), failures[0])
	}
	for i, s := range forward {
		if s != float64(i+2) {
			t.Fatalf("forward paging skipped: position %d has sequence %v", i, s)
		}
	}
	// Backward, newest first, pages of 9.
	var backward []string
	cursor = ""
	for {
		q := "channel_id=" + general + "&count=9"
		if cursor != "" {
			q += "&before=" + cursor
		}
		got, res := messages(t, e, keyA, q)
		if len(got) == 0 {
			break
		}
		backward = append(backward, got...)
		list := res.Get("data.messages").([]any)
		cursor = list[len(list)-1].(map[string]any)["id"].(string)
	}
	slices.Sort(backward)
	if len(backward) != senders+1 || len(slices.Compact(backward)) != senders+1 {
		t.Fatalf("backward paging returned %d messages", len(backward))
	}
}

// TestSendSeesChangesOnTheNextRequest checks that the sender, channel and
// permission lookups Send reuses follow a change on the very next request
// (the test clock never moves, so only the change itself can refresh
// them): channel overrides, a role grant, removing and restoring the
// member, deleting the channel.
func TestSendSeesChangesOnTheNextRequest(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	ada := joined(e, a, "ada")
	all := everyoneRole(t, e, keyA)
	general := newChannel(t, e, keyA, map[string]any{"topic": "General", "channelType": "open"})
	msg := func(status int) {
		send(t, e, keyA, map[string]any{"channelId": general, "message": "hi", "sender": "ada"}, status)
	}
	msg(200)
	msg(200)
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/channels/" + general, Key: keyA, Body: map[string]any{
		"overrides": []map[string]any{{"roleId": all, "post": false}}}}).Expect(t, 200)
	msg(403)
	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/roles", Key: keyA, Body: map[string]any{"title": "Poster"}}).Expect(t, 201)
	poster := res.String("body._id")
	e.Do(apitest.Request{Method: "PUT", Path: "/v1/channels/" + general, Key: keyA, Body: map[string]any{
		"overrides": []map[string]any{{"roleId": all, "post": false}, {"roleId": poster, "post": true}}}}).Expect(t, 200)
	msg(403)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/roles/" + poster + "/add", Key: keyA, Body: map[string]any{"userId": ada.ID}}).Expect(t, 200)
	msg(200)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/manage", Key: keyA, Body: map[string]any{"action": "delete", "user": "ada"}}).Expect(t, 200)
	msg(404)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/users/manage", Key: keyA, Body: map[string]any{"action": "restore", "user": "ada"}}).Expect(t, 200)
	msg(200)
	e.Do(apitest.Request{Method: "DELETE", Path: "/v1/channels/" + general, Key: keyA}).Expect(t, 200)
	msg(404)
}
