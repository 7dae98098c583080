package httpapi_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/blob"
	"github.com/rallyhq/rally/internal/config"
	"github.com/rallyhq/rally/internal/db/dbtest"
	"github.com/rallyhq/rally/internal/user"
)

// fileOn fetches an uploaded file's URL (as another node handed it out)
// from e.
func fileOn(t *testing.T, e *apitest.Env, url string, status int) *apitest.Response {
	t.Helper()
	i := strings.Index(url, "/v1/files/")
	if i < 0 {
		t.Fatalf("not a file URL: %s", url)
	}
	return e.Do(apitest.Request{Method: "GET", Path: url[i:]}).Expect(t, status)
}

func TestFilesTwoNodes(t *testing.T) {
	if os.Getenv(dbtest.EnvPostgres) == "" {
		t.Skip("two nodes share a PostgreSQL database; set " + dbtest.EnvPostgres)
	}
	nodeA := apitest.New(t)
	nodeB := apitest.NewWith(t, func(c *config.Config) { c.DSN = nodeA.App.Config.DSN })
	if nodeA.App.Config.DataDir == nodeB.App.Config.DataDir {
		t.Fatal("the nodes share a data folder")
	}
	a, key := nodeA.Community("Alpha", "alpha")
	createUser(t, nodeA, key, "ada")

	// An avatar uploaded through A is served by B.
	url := uploadAvatar(t, nodeA, key, map[string]string{"identifier": "ada"}, "avatar", pngBytes).Expect(t, 200).String("data.avatar")
	got := fileOn(t, nodeB, url, 200)
	if !bytes.Equal(got.Body, pngBytes) || got.Header.Get("Content-Type") != "image/png" || got.Header.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.Contains(got.Header.Get("Cache-Control"), "immutable") {
		t.Fatalf("avatar on node B: %v %d bytes", got.Header, len(got.Body))
	}

	// A message image uploaded through B is served by A.
	gif := []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00; two nodes")
	body, ct := multipartBody(t, nil, "images", gif)
	res := nodeB.Do(apitest.Request{Method: "POST", Path: "/v1/messages/upload-image", Key: key, Body: body,
		Headers: map[string]string{"Content-Type": ct}}).Expect(t, 200)
	if got := fileOn(t, nodeA, res.String("0.url"), 200); !bytes.Equal(got.Body, gif) || got.Header.Get("Content-Type") != "image/gif" {
		t.Fatalf("message image on node A: %v", got.Header)
	}

	// A badge proof PDF sent through B is downloaded from A.
	nodeA.Member(a, "ann", user.MemberOptions{Joined: true})
	badgeID := createBadge(t, nodeA, key, map[string]any{"title": "Certified", "action": "custom", "attachRequired": true})
	form, headers := proofForm(t, nil, proofPart{"proof", "statement.pdf", pdfBytes})
	res = nodeB.Do(apitest.Request{Method: "POST", Path: "/v1/communities/" + a + "/badges/" + badgeID + "/apply",
		Key: nodeB.SignIn(a, "ann@example.com"), Body: form, Headers: headers}).Expect(t, 201)
	got = fileOn(t, nodeA, res.String("body.proofFile.url"), 200)
	if !bytes.Equal(got.Body, pdfBytes) || got.Header.Get("Content-Type") != "application/pdf" || got.Header.Get("Content-Disposition") != "attachment" {
		t.Fatalf("proof PDF on node A: %v", got.Header)
	}
	fileOn(t, nodeB, "/v1/files/"+strings.Repeat("0", 64)+".pdf", 404)
}

func TestFilesSweep(t *testing.T) {
	e := apitest.New(t)
	ctx := context.Background()
	a, key := e.Community("Alpha", "alpha")
	createUser(t, e, key, "ada")
	e.Member(a, "ann", user.MemberOptions{Joined: true})
	badgeID := createBadge(t, e, key, map[string]any{"title": "Certified", "action": "custom", "attachRequired": true})

	first := uploadAvatar(t, e, key, map[string]string{"identifier": "ada"}, "avatar", pngBytes).Expect(t, 200).String("data.avatar")
	gif := []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00; the new avatar")
	current := uploadAvatar(t, e, key, map[string]string{"identifier": "ada"}, "avatar", gif).Expect(t, 200).String("data.avatar")
	body, ct := multipartBody(t, nil, "images", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00; a message image"))
	image := e.Do(apitest.Request{Method: "POST", Path: "/v1/messages/upload-image", Key: key, Body: body,
		Headers: map[string]string{"Content-Type": ct}}).Expect(t, 200).String("0.url")
	form, headers := proofForm(t, nil, proofPart{"proof", "statement.pdf", pdfBytes})
	res := e.Do(apitest.Request{Method: "POST", Path: "/v1/communities/" + a + "/badges/" + badgeID + "/apply",
		Key: e.SignIn(a, "ann@example.com"), Body: form, Headers: headers}).Expect(t, 201)
	appID, proof := res.String("body._id"), res.String("body.proofFile.url")
	e.Do(apitest.Request{Method: "POST", Path: "/v1/communities/" + a + "/badge-applications/" + appID + "/reject", Key: key,
		Body: map[string]any{"reason": "blurry"}}).Expect(t, 200)

	// Within the grace period nothing goes, not even the replaced avatar.
	if n, err := e.App.Files.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep within the grace period: %d %v", n, err)
	}
	// The app's own periodic sweep may run too, so what is left is
	// checked rather than how many this call deleted.
	e.Clock.Advance(blob.DefaultGrace + time.Minute)
	if _, err := e.App.Files.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	fileOn(t, e, first, 404)
	for _, url := range []string{current, image, proof} {
		fileOn(t, e, url, 200)
	}
	// A revalidation is answered from the key alone, but only while the
	// file exists.
	etag := func(url string) map[string]string {
		name := url[strings.LastIndexByte(url, '/')+1:]
		return map[string]string{"If-None-Match": `"` + name[:64] + `"`}
	}
	path := func(url string) string { return url[strings.Index(url, "/v1/files/"):] }
	e.Do(apitest.Request{Method: "GET", Path: path(current), Headers: etag(current)}).Expect(t, 304)
	e.Do(apitest.Request{Method: "GET", Path: path(first), Headers: etag(first)}).Expect(t, 404)
	e.Do(apitest.Request{Method: "GET", Path: path(current), Headers: etag(first)}).Expect(t, 200)

	// A rejected application's proof is kept for RejectedProofRetention,
	// then neither kept nor shown.
	e.Clock.Advance(blob.RejectedProofRetention)
	if _, err := e.App.Files.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	fileOn(t, e, proof, 404)
	fileOn(t, e, current, 200)
	res = e.Do(apitest.Request{Method: "GET", Path: "/v1/communities/" + a + "/badge-applications", Key: key}).Expect(t, 200)
	if res.String("body.0._id") != appID || res.String("body.0.status") != "rejected" || res.Get("body.0.proofFile") != nil {
		t.Fatalf("rejected application after the retention: %s", res.Body)
	}
}
