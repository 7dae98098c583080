package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
)

var pngBytes = append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{0}, 64)...)

// multipartBody builds a form with fields and a part named fileField for
// each non-nil file.
func multipartBody(t *testing.T, fields map[string]string, fileField string, files ...[]byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := w.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, file := range files {
		if file == nil {
			continue
		}
		fw, err := w.CreateFormFile(fileField, "avatar.bin")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fw.Write(file)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), w.FormDataContentType()
}

func uploadAvatar(t *testing.T, e *apitest.Env, key string, fields map[string]string, fileField string, file []byte) *apitest.Response {
	t.Helper()
	body, ct := multipartBody(t, fields, fileField, file)
	return e.Do(apitest.Request{Method: "POST", Path: "/v1/users/avatar", Key: key, Body: body, Headers: map[string]string{"Content-Type": ct}})
}

func TestUploadAvatar(t *testing.T) {
	e := apitest.New(t)
	a, keyA := e.Community("Alpha", "alpha")
	_, keyB := e.Community("Beta", "beta")
	_, noManage := keyWith(t, e, a, 0, "getUserData")
	adaID := createUser(t, e, keyA, "ada")

	res := uploadAvatar(t, e, keyA, map[string]string{"identifier": "ada@example.com", "identifier_type": "email"}, "avatar", pngBytes).Expect(t, 200)
	url := res.String("data.avatar")
	host := strings.TrimPrefix(e.Server.URL, "http://")
	if res.String("data._id") != adaID || !strings.HasPrefix(url, "http://"+host+"/v1/files/") || !strings.HasSuffix(url, ".png") {
		t.Fatalf("upload: %s", res.Body)
	}
	u, _ := e.App.Users.Get(context.Background(), adaID)
	if u.Avatar == nil || *u.Avatar != url {
		t.Fatalf("avatar not stored: %v", u.Avatar)
	}
	if got := e.EventTypes(a, "user.avatar.updated"); len(got) != 1 {
		t.Fatalf("events %v", got)
	}

	// The file is served back with its type and long-lived caching.
	path := strings.TrimPrefix(url, e.Server.URL)
	got := e.Do(apitest.Request{Method: "GET", Path: path}).Expect(t, 200)
	if !bytes.Equal(got.Body, pngBytes) || got.Header.Get("Content-Type") != "image/png" ||
		!strings.Contains(got.Header.Get("Cache-Control"), "immutable") || got.Header.Get("ETag") == "" {
		t.Fatalf("served file: %v %d bytes", got.Header, len(got.Body))
	}
	e.Do(apitest.Request{Method: "GET", Path: path, Headers: map[string]string{"If-None-Match": got.Header.Get("ETag")}}).Expect(t, 304)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/files/" + strings.Repeat("0", 64) + ".png"}).Expect(t, 404)
	e.Do(apitest.Request{Method: "GET", Path: "/v1/files/not-a-key.png"}).Expect(t, 404)

	// WebP in the "file" field, user named by numeric id or any identifier.
	webp := append([]byte("RIFF\x24\x00\x00\x00WEBPVP8 "), bytes.Repeat([]byte{1}, 40)...)
	res = uploadAvatar(t, e, keyA, map[string]string{"identifier": "ada"}, "file", webp).Expect(t, 200)
	if !strings.HasSuffix(res.String("data.avatar"), ".webp") {
		t.Fatalf("webp: %s", res.Body)
	}
	gif := append([]byte("GIF89a"), bytes.Repeat([]byte{2}, 20)...)
	uploadAvatar(t, e, keyA, map[string]string{"identifier": adaID, "identifier_type": "_id"}, "avatar", gif).Expect(t, 200)
	jpeg := append([]byte("\xff\xd8\xff\xe0"), bytes.Repeat([]byte{3}, 20)...)
	uploadAvatar(t, e, keyA, map[string]string{"identifier": "ada", "identifier_type": "username"}, "avatar", jpeg).Expect(t, 200)

	big := append(append([]byte{}, pngBytes...), bytes.Repeat([]byte{0}, 5<<20)...)
	cases := []struct {
		name       string
		key        string
		fields     map[string]string
		fileField  string
		file       []byte
		status     int
		wantFields []string
	}{
		{"not an image", keyA, map[string]string{"identifier": "ada"}, "avatar", []byte("hello, world"), 400, []string{"avatar"}},
		{"missing everything", keyA, map[string]string{"identifier_type": "phone"}, "", nil, 400, []string{"identifier", "identifier_type", "avatar"}},
		{"over 5 MiB", keyA, map[string]string{"identifier": "ada"}, "avatar", big, 413, nil},
		{"no key", "", map[string]string{"identifier": "ada"}, "avatar", pngBytes, 401, nil},
		{"key without manageUser", noManage, map[string]string{"identifier": "ada"}, "avatar", pngBytes, 403, nil},
		{"unknown user", keyA, map[string]string{"identifier": "nobody"}, "avatar", pngBytes, 404, nil},
		{"other community's key", keyB, map[string]string{"identifier": "ada"}, "avatar", pngBytes, 404, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectS(t, uploadAvatar(t, e, tc.key, tc.fields, tc.fileField, tc.file), tc.status, tc.wantFields)
		})
	}
	// A body far over the limit is refused as it streams.
	uploadAvatar(t, e, keyA, map[string]string{"identifier": "ada", "padding": strings.Repeat("x\n", 4<<20)}, "", nil).Expect(t, 413)
	// Not multipart at all.
	res = e.Do(apitest.Request{Method: "POST", Path: "/v1/users/avatar", Key: keyA, Body: map[string]any{"identifier": "ada"}}).Expect(t, 400)
	if !slices.Equal(res.ErrorFields(), []string{"body"}) {
		t.Fatalf("json body: %s", res.Body)
	}
	// Failed uploads left the last good avatar in place.
	u, _ = e.App.Users.Get(context.Background(), adaID)
	if u.Avatar == nil || !strings.HasSuffix(*u.Avatar, ".jpg") {
		t.Fatalf("avatar %v", u.Avatar)
	}
	resp, err := http.Get(*u.Avatar)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != "image/jpeg" || !bytes.Equal(b, jpeg) {
		t.Fatalf("jpeg served as %s", resp.Header.Get("Content-Type"))
	}
}
