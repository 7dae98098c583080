package httpapi

import (
	"net/http"
	"strings"

	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/errs"
)

// prefixes are the path forms the docs use in front of a route, longest
// first; one of them is stripped before routing (endpoints.md, Decisions 3).
var prefixes = []string{"/api/v1/apis/v1", "/apis/v1", "/api/v1", "/v1", "/apis"}

// normalisePath strips one documented prefix from p.
func normalisePath(p string) string {
	for _, pre := range prefixes {
		if p == pre {
			return "/"
		}
		if strings.HasPrefix(p, pre+"/") {
			return p[len(pre):]
		}
	}
	return p
}

// dispatch routes a request: first the paths matched as they come (widgets,
// Secure Auth), then the normalised path. Unmatched paths get the error
// envelope: 404, or 405 with Allow when only the method is wrong.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxBodyBytes)
	if _, pattern := s.raw.Handler(r); pattern != "" {
		s.raw.ServeHTTP(w, r)
		return
	}
	if p := normalisePath(r.URL.Path); p != r.URL.Path {
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path, u.RawPath = p, ""
		r2.URL = &u
		r = r2
	}
	info, _ := r.Context().Value(keyRoute).(*routeInfo)
	s.mux.ServeHTTP(&unmatchedWriter{ResponseWriter: w, info: info}, r)
}

// unmatchedWriter replaces the mux's plain-text 404 and 405 answers (written
// before any route claimed the request) with the error envelope.
type unmatchedWriter struct {
	http.ResponseWriter
	info     *routeInfo
	swallow  bool
	answered bool
}

func (w *unmatchedWriter) WriteHeader(code int) {
	if w.answered {
		return
	}
	w.answered = true
	if w.info != nil && w.info.pattern == "" && (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) {
		w.swallow = true
		w.Header().Del("X-Content-Type-Options")
		if code == http.StatusNotFound {
			failure(w.ResponseWriter, famM, code, "Route not found.", nil)
		} else {
			failure(w.ResponseWriter, famM, code, "Method not allowed.", nil)
		}
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *unmatchedWriter) Write(b []byte) (int, error) {
	if !w.answered {
		w.WriteHeader(http.StatusOK)
	}
	if w.swallow {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *unmatchedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// accessKind says which credential a route takes.
type accessKind int

const (
	accPublic accessKind = iota
	accPartner
	accPlatform
)

// access is a route's credential rule.
type access struct {
	kind accessKind
	// perm is the partner-key permission the route needs ("" for any key).
	perm string
	// legacyHeader lets the key come in x-api-key (legacy system routes).
	legacyHeader bool
}

func public() access                 { return access{kind: accPublic} }
func partner(perm string) access     { return access{kind: accPartner, perm: perm} }
func platformAdmin() access          { return access{kind: accPlatform} }
func (a access) legacy() access      { a.legacyHeader = true; return a }
func (a access) needsKey() bool      { return a.kind != accPublic }
func (a access) takesPlatform() bool { return a.kind == accPlatform }

// call is one request on its way through a handler.
type call struct {
	s   *Server
	w   http.ResponseWriter
	r   *http.Request
	fam family
	// key is the authenticated API key (zero on public routes).
	key auth.Key
}

// handle registers pattern (method and path, no prefix) for family f,
// guarded by rule a.
func (s *Server) handle(pattern string, f family, a access, h func(*call) error) {
	s.mux.HandleFunc(pattern, s.wrap(pattern, f, a, h))
}

// handleRaw registers a pattern matched before prefixes are stripped.
func (s *Server) handleRaw(pattern string, f family, a access, h func(*call) error) {
	s.raw.HandleFunc(pattern, s.wrap(pattern, f, a, h))
}

func (s *Server) wrap(pattern string, f family, a access, h func(*call) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if info, ok := r.Context().Value(keyRoute).(*routeInfo); ok {
			info.pattern = pattern
		}
		c := &call{s: s, w: w, r: r, fam: f}
		err := s.authorise(c, a)
		if err == nil {
			err = h(c)
		}
		if err != nil {
			fail(w, r, s.log, f, err)
		}
	}
}

// credential returns the API key sent with the request, if any.
func credential(r *http.Request, legacy bool) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
			return strings.TrimSpace(h[7:])
		}
		return ""
	}
	if legacy {
		return strings.TrimSpace(r.Header.Get("X-Api-Key"))
	}
	return ""
}

// authorise checks the request's credential against rule a.
func (s *Server) authorise(c *call, a access) error {
	if !a.needsKey() {
		return nil
	}
	secret := credential(c.r, a.legacyHeader)
	if secret == "" {
		return errs.Unauthenticatedf("Missing API key: send Authorization: Bearer <key>.")
	}
	k, err := s.Keys.Authenticate(c.r.Context(), secret)
	if err != nil {
		return err
	}
	c.key = k
	if a.takesPlatform() {
		if k.Kind != auth.KindPlatform {
			return errs.Forbiddenf("This endpoint needs the platform-admin key.")
		}
		return nil
	}
	if k.Kind != auth.KindPartner {
		return errs.Forbiddenf("The platform-admin key cannot act inside a community; use the community's API key.")
	}
	if a.perm != "" && !k.Has(a.perm) {
		return errs.Forbiddenf("API key lacks the %s permission.", a.perm)
	}
	return nil
}

// community returns the community the call acts on: the key's. When the
// path carries a {communityId}, it must be the key's community (403
// otherwise, with no hint about the other community).
func (c *call) community() (string, error) {
	if p := c.r.PathValue("communityId"); p != "" && p != c.key.CommunityID {
		return "", errs.Forbiddenf("API key has no access to this community.")
	}
	return c.key.CommunityID, nil
}

// decode reads the JSON body into v.
func (c *call) decode(v any) error { return decodeJSON(c.r, v) }

// ok writes a success body in the route's family.
func (c *call) ok(status int, message string, data any) error {
	success(c.w, c.fam, status, message, data, nil)
	return nil
}

// list writes a success body with paging in the route's family.
func (c *call) list(message string, data any, page Page) error {
	success(c.w, c.fam, http.StatusOK, message, data, &page)
	return nil
}
