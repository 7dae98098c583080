package httpapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/rallyhq/rally/internal/blob"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/user"
)

// Avatar upload limits: the image itself, and the whole multipart body
// (the image plus the identifier fields and multipart framing).
const (
	avatarMaxBytes  = 5 << 20
	avatarBodyBytes = avatarMaxBytes + 64<<10
	formValueBytes  = 1 << 10
)

// identifierKinds are the identifier_type values US6-US8 accept ("" = any).
var identifierKinds = map[string]string{
	"": user.ByAny, "email": user.ByEmail, "id": user.ByID, "_id": user.ByObjectID, "username": user.ByUsername,
}

// avatarForm is a parsed avatar upload.
type avatarForm struct {
	identifier, kind string
	image            []byte
	contentType      string
}

// readAvatarForm streams the multipart body: identifier and identifier_type
// fields and the image in avatar (or file). Every offending field is named;
// an image over 5 MiB is TooLarge.
func readAvatarForm(r *http.Request) (avatarForm, error) {
	var (
		f        avatarForm
		v        errs.Validator
		haveFile bool
		kind     string
	)
	mr, err := r.MultipartReader()
	if err != nil {
		v.Add("body", "must be multipart/form-data")
		return f, v.Err()
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return f, multipartError(err, "valid multipart/form-data")
		}
		switch name := part.FormName(); name {
		case "identifier", "identifier_type":
			b, err := io.ReadAll(io.LimitReader(part, formValueBytes+1))
			if err != nil {
				return f, multipartError(err, "valid multipart/form-data")
			}
			if len(b) > formValueBytes {
				v.Add(name, "must be at most %d bytes", formValueBytes)
			} else if name == "identifier" {
				f.identifier = strings.TrimSpace(string(b))
			} else {
				kind = strings.TrimSpace(string(b))
			}
		case "avatar", "file":
			b, err := io.ReadAll(io.LimitReader(part, avatarMaxBytes+1))
			if err != nil {
				return f, multipartError(err, "valid multipart/form-data")
			}
			if len(b) > avatarMaxBytes {
				return f, errs.New(errs.TooLarge, "The avatar is larger than 5 MiB.")
			}
			f.image, haveFile = b, true
		default:
			if _, err := io.Copy(io.Discard, part); err != nil {
				return f, multipartError(err, "valid multipart/form-data")
			}
		}
	}
	v.Check(f.identifier != "", "identifier", "is required")
	k, ok := identifierKinds[kind]
	v.Check(ok, "identifier_type", "must be email, id, _id or username")
	f.kind = k
	if !haveFile || len(f.image) == 0 {
		v.Add("avatar", "is required (a PNG, JPEG, WebP or GIF file)")
	} else if f.contentType = sniffImage(f.image); f.contentType == "" {
		v.Add("avatar", "must be a PNG, JPEG, WebP or GIF image")
	}
	return f, v.Err()
}

// sniffImage names the image type of b from its content ("" if it is not
// one the store keeps).
func sniffImage(b []byte) string {
	if len(b) >= 12 && bytes.Equal(b[0:4], []byte("RIFF")) && bytes.Equal(b[8:12], []byte("WEBP")) {
		return "image/webp"
	}
	ct := http.DetectContentType(b)
	if _, ok := blob.Extension(ct); ok && strings.HasPrefix(ct, "image/") {
		return ct
	}
	return ""
}

// baseURL is the scheme and host the request reached us at.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		scheme = p
	}
	return scheme + "://" + r.Host
}

func (s *Server) uploadAvatar(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	f, err := readAvatarForm(c.r)
	if err != nil {
		return err
	}
	ctx := c.r.Context()
	u, err := s.Users.SetAvatar(ctx, communityID, f.identifier, f.kind, func(tx *db.Tx) (string, error) {
		return s.Files.PutTx(ctx, tx, f.image, f.contentType)
	}, func(key string) string { return baseURL(c.r) + "/v1/files/" + key })
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Upload user avatar success.", map[string]any{"_id": u.ID, "id": u.NumID, "avatar": *u.Avatar})
}

// serveFile sends an uploaded file from the blob store. Keys are
// content-addressed, so the answer is cacheable for a year and its ETag is
// the hash: a request whose If-None-Match names it is answered 304 after
// checking only that the file still exists. Otherwise the file is read
// whole (at most 10 MiB) and held once while it is sent.
func (s *Server) serveFile(c *call) error {
	key := c.r.PathValue("key")
	ct := blob.ContentType(key)
	if ct == "" {
		return errs.NotFoundf("File not found.")
	}
	h := c.w.Header()
	etag := `"` + strings.TrimSuffix(key, key[strings.LastIndexByte(key, '.'):]) + `"`
	setHeaders := func() {
		h.Set("Content-Type", ct)
		h.Set("X-Content-Type-Options", "nosniff")
		if !strings.HasPrefix(ct, "image/") {
			// Documents (badge proof PDFs) are downloaded, never shown in
			// this origin.
			h.Set("Content-Disposition", "attachment")
		}
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("ETag", etag)
	}
	if inm := c.r.Header.Get("If-None-Match"); inm != "" && (c.r.Method == http.MethodGet || c.r.Method == http.MethodHead) &&
		strings.Contains(inm, etag) {
		ok, err := s.Files.Exists(c.r.Context(), key)
		if err != nil {
			return err
		}
		if !ok {
			return errs.NotFoundf("File not found.")
		}
		setHeaders()
		h.Del("Content-Type")
		c.w.WriteHeader(http.StatusNotModified)
		return nil
	}
	f, err := s.Files.Open(c.r.Context(), key)
	if err != nil {
		return err
	}
	setHeaders()
	http.ServeContent(c.w, c.r, "", f.Created, f)
	return nil
}
