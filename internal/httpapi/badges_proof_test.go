package httpapi_test

import (
	"bytes"
	"mime/multipart"
	"slices"
	"strings"
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/badge"
	"github.com/rallyhq/rally/internal/user"
)

var pdfBytes = []byte("%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")

// proofPart is one file part of a badge application form.
type proofPart struct {
	field, name string
	data        []byte
}

// proofForm builds a multipart application with fields and file parts.
func proofForm(t *testing.T, fields map[string]string, files ...proofPart) ([]byte, map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := w.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		fw, err := w.CreateFormFile(f.field, f.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), map[string]string{"Content-Type": w.FormDataContentType()}
}

func TestBadgeProofFiles(t *testing.T) {
	e := apitest.New(t)
	a, key := e.Community("Proofs A", "proofs-a")
	b, keyB := e.Community("Proofs B", "proofs-b")
	e.Member(a, "ann", user.MemberOptions{Joined: true})
	e.Member(a, "cid", user.MemberOptions{Joined: true})
	e.Member(a, "dee", user.MemberOptions{Joined: true})
	mod := e.Member(a, "mo", user.MemberOptions{Joined: true})
	e.Member(b, "bob", user.MemberOptions{Joined: true})
	annToken, cidToken, deeToken := e.SignIn(a, "ann@example.com"), e.SignIn(a, "cid@example.com"), e.SignIn(a, "dee@example.com")
	modToken, bobToken := e.SignIn(a, "mo@example.com"), e.SignIn(b, "bob@example.com")
	roleID := e.Do(apitest.Request{Method: "POST", Path: "/v1/roles", Key: key,
		Body: map[string]any{"title": "Moderator", "channelPermissions": map[string]any{"manage_messages": true}}}).Expect(t, 201).String("body._id")
	e.Do(apitest.Request{Method: "POST", Path: "/v1/roles/" + roleID + "/add", Key: key, Body: map[string]any{"userId": mod.ID}}).Expect(t, 200)
	custom := createBadge(t, e, key, map[string]any{"title": "Certified", "action": "custom", "attachRequired": true})
	customB := createBadge(t, e, keyB, map[string]any{"title": "Certified", "action": "custom", "attachRequired": true})
	apply := func(token, community, badgeID string, fields map[string]string, files ...proofPart) *apitest.Response {
		body, headers := proofForm(t, fields, files...)
		return e.Do(apitest.Request{Method: "POST", Path: "/v1/communities/" + community + "/badges/" + badgeID + "/apply", Key: token,
			Body: body, Headers: headers})
	}
	fields := func(res *apitest.Response) []string {
		t.Helper()
		return res.Expect(t, 400).ErrorFields()
	}

	// A file alone is proof enough for attachRequired; its type comes from
	// its bytes, not its name.
	res := apply(annToken, a, custom, map[string]string{"proofText": "my certificate"}, proofPart{"proof", `C:\scans\cert.txt`, pngBytes}).Expect(t, 201)
	annApp := res.String("body._id")
	url := res.String("body.proofFile.url")
	host := strings.TrimPrefix(e.Server.URL, "http://")
	if res.String("body.proofText") != "my certificate" || res.String("body.proofFile.type") != "image/png" ||
		res.String("body.proofFile.name") != "cert.txt" || res.Get("body.proofFile.size") != float64(len(pngBytes)) ||
		!strings.HasPrefix(url, "http://"+host+"/v1/files/") || !strings.HasSuffix(url, ".png") || !strings.HasSuffix(url, "/"+res.String("body.proofFile.id")) {
		t.Fatalf("apply with a file: %s", res.Body)
	}
	file := e.Do(apitest.Request{Method: "GET", Path: strings.TrimPrefix(url, "http://"+host)}).Expect(t, 200)
	if !bytes.Equal(file.Body, pngBytes) || file.Header.Get("Content-Type") != "image/png" || file.Header.Get("Content-Disposition") != "" {
		t.Fatalf("served image: %v %q", file.Header, file.Body)
	}
	res = apply(cidToken, a, custom, nil, proofPart{"file", "statement.pdf", pdfBytes}).Expect(t, 201)
	cidApp, pdfURL := res.String("body._id"), res.String("body.proofFile.url")
	if res.String("body.proofFile.type") != "application/pdf" || res.String("body.proofFile.name") != "statement.pdf" || !strings.HasSuffix(pdfURL, ".pdf") {
		t.Fatalf("apply with a PDF: %s", res.Body)
	}
	file = e.Do(apitest.Request{Method: "GET", Path: strings.TrimPrefix(pdfURL, "http://"+host)}).Expect(t, 200)
	if !bytes.Equal(file.Body, pdfBytes) || file.Header.Get("Content-Type") != "application/pdf" ||
		file.Header.Get("Content-Disposition") != "attachment" || file.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("served PDF: %v", file.Header)
	}

	// Refused: another type, an empty file, two files, no proof at all, a
	// file over 10 MiB (413); nothing is recorded.
	if got := fields(apply(deeToken, a, custom, nil, proofPart{"proof", "notes.pdf", []byte("just some text, named like a PDF")})); !slices.Equal(got, []string{"proof"}) {
		t.Fatalf("text file: %v", got)
	}
	if got := fields(apply(deeToken, a, custom, nil, proofPart{"proof", "page.html", []byte("<html><script>alert(1)</script></html>")})); !slices.Equal(got, []string{"proof"}) {
		t.Fatalf("html file: %v", got)
	}
	if got := fields(apply(deeToken, a, custom, nil, proofPart{"proof", "empty.png", nil})); !slices.Equal(got, []string{"proof"}) {
		t.Fatalf("empty file: %v", got)
	}
	if got := fields(apply(deeToken, a, custom, nil, proofPart{"proof", "a.png", pngBytes}, proofPart{"proof", "b.pdf", pdfBytes})); !slices.Equal(got, []string{"proof"}) {
		t.Fatalf("two files: %v", got)
	}
	if got := fields(apply(deeToken, a, custom, map[string]string{"note": "no proof"})); !slices.Equal(got, []string{"proofUrl"}) {
		t.Fatalf("required proof missing: %v", got)
	}
	if got := fields(apply(deeToken, a, custom, map[string]string{"proofText": strings.Repeat("x", 9<<10)}, proofPart{"proof", "a.png", pngBytes})); !slices.Equal(got, []string{"proofText"}) {
		t.Fatalf("long proof text: %v", got)
	}
	big := append(append([]byte{}, pngBytes...), make([]byte, badge.MaxProofFileBytes)...)
	apply(deeToken, a, custom, nil, proofPart{"proof", "huge.png", big}).Expect(t, 413)
	big = append(big, make([]byte, 1<<20)...) // beyond the body limit too
	apply(deeToken, a, custom, nil, proofPart{"proof", "huger.png", big}).Expect(t, 413)
	e.Do(apitest.Request{Method: "POST", Path: "/v1/communities/" + a + "/badges/" + custom + "/apply", Key: deeToken,
		Body: map[string]any{"proofText": strings.Repeat("x", 2<<20)}}).Expect(t, 413) // JSON keeps the usual limit
	// The proof upload does not widen what an avatar may be.
	_, avatarKey := e.Community("Proofs C", "proofs-c")
	createUser(t, e, avatarKey, "ada")
	if got := uploadAvatar(t, e, avatarKey, map[string]string{"identifier": "ada@example.com"}, "avatar", pdfBytes).Expect(t, 400).ErrorFields(); !slices.Equal(got, []string{"avatar"}) {
		t.Fatalf("PDF avatar: %v", got)
	}

	// Moderators see the proof files in the list; members see their own.
	list := func(token, community, query string) *apitest.Response {
		return e.Do(apitest.Request{Method: "GET", Path: "/v1/communities/" + community + "/badge-applications" + query, Key: token}).Expect(t, 200)
	}
	res = list(modToken, a, "?status=pending")
	if res.Get("meta.total") != float64(2) || res.String("body.0._id") != cidApp || res.String("body.0.proofFile.url") != pdfURL ||
		res.String("body.1._id") != annApp || res.String("body.1.proofFile.url") != url || res.String("body.1.proofFile.name") != "cert.txt" {
		t.Fatalf("moderator's list: %s", res.Body)
	}
	if res = list(annToken, a, ""); res.Get("meta.total") != float64(1) || res.String("body.0.proofFile.url") != url {
		t.Fatalf("ann's list: %s", res.Body)
	}
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/communities/" + a + "/badge-applications/" + annApp + "/approve", Key: modToken}).Expect(t, 200)
	if res.String("body.application.proofFile.url") != url {
		t.Fatalf("approval: %s", res.Body)
	}

	// Tenancy: a member of B cannot apply in A; B's applications stay in B.
	apply(bobToken, a, custom, nil, proofPart{"proof", "b.png", pngBytes}).Expect(t, 403)
	bobApp := apply(bobToken, b, customB, nil, proofPart{"proof", "b.pdf", pdfBytes}).Expect(t, 201).String("body._id")
	if res = list(key, a, ""); res.Get("meta.total") != float64(2) {
		t.Fatalf("A's list holds B's application: %s", res.Body)
	}
	if res = list(keyB, b, ""); res.Get("meta.total") != float64(1) || res.String("body.0._id") != bobApp || res.String("body.0.proofFile.type") != "application/pdf" {
		t.Fatalf("B's list: %s", res.Body)
	}
	e.Do(apitest.Request{Method: "POST", Path: "/v1/communities/" + a + "/badge-applications/" + bobApp + "/approve", Key: modToken}).Expect(t, 404)
}
