package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rallyhq/rally/internal/errs"
)

// FuzzAvatarForm feeds arbitrary multipart bodies to the avatar form
// reader: it must never panic, and must either accept a form with an
// identifier and a supported image of at most 5 MiB or refuse it as Invalid
// or TooLarge.
func FuzzAvatarForm(f *testing.F) {
	png := "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
	f.Add([]byte("--B\r\nContent-Disposition: form-data; name=\"identifier\"\r\n\r\nada\r\n" +
		"--B\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"a.png\"\r\n\r\n" + png + "\r\n--B--\r\n"))
	f.Add([]byte("--B\r\nContent-Disposition: form-data; name=\"identifier_type\"\r\n\r\nemail\r\n--B--\r\n"))
	f.Add([]byte("--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nRIFF\x00\x00\x00\x00WEBPVP8 \r\n--B"))
	f.Add([]byte("--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n"))
	f.Add([]byte(""))
	f.Add([]byte("not multipart"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/v1/users/avatar", bytes.NewReader(body))
		r.Header.Set("Content-Type", "multipart/form-data; boundary=B")
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, avatarBodyBytes)
		form, err := readAvatarForm(r)
		if err != nil {
			if k := errs.KindOf(err); k != errs.Invalid && k != errs.TooLarge {
				t.Fatalf("unexpected error kind %v: %v", k, err)
			}
			return
		}
		if form.identifier == "" || form.contentType == "" || len(form.image) == 0 || len(form.image) > avatarMaxBytes {
			t.Fatalf("accepted a bad form: %+v", form)
		}
		if sniffImage(form.image) != form.contentType {
			t.Fatalf("content type %q does not match the image", form.contentType)
		}
	})
}
