package httpapi

import (
	"net/http"
	"net/url"
	"path"
	"slices"
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
		if !strings.HasPrefix(p, pre) {
			continue
		}
		if len(p) == len(pre) {
			return "/"
		}
		if p[len(pre)] == '/' {
			return p[len(pre):]
		}
	}
	return p
}

// dispatch routes a request: first the paths matched as they come (widgets,
// Secure Auth), then the normalised path. Unmatched paths get the error
// envelope: 404, or 405 with Allow when only the method is wrong.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	if cp, ok := cleanPath(r.URL.Path); !ok {
		redirectClean(w, r, cp)
		return
	}
	p := normalisePath(r.URL.Path)
	// A request without a body (every GET) has nothing to bound.
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, s.bodyLimit(p))
	}
	if s.mayBeRaw(r.URL.Path) {
		if _, pattern := s.raw.Handler(r); pattern != "" {
			s.raw.ServeHTTP(w, r)
			return
		}
	}
	ex := exchangeOf(r.Context())
	if p != r.URL.Path {
		var u *url.URL
		if ex != nil {
			// r is observe's own copy of the request, so its URL may be
			// replaced in place.
			u = &ex.url
		} else {
			r2 := new(http.Request)
			*r2 = *r
			r, u = r2, new(url.URL)
		}
		*u = *r.URL
		u.Path, u.RawPath = p, ""
		r.URL = u
	}
	if ex == nil {
		ex = &exchange{}
	}
	ex.uw = unmatchedWriter{ResponseWriter: w, ex: ex}
	s.mux.ServeHTTP(&ex.uw, r)
}

// cleanPath returns p with empty, "." and ".." segments resolved (a
// trailing slash kept), and whether p was clean already. It is the cleaning
// net/http's ServeMux does, done before the prefix is stripped so that a
// redirect keeps the path form the client used.
func cleanPath(p string) (string, bool) {
	if p == "" {
		return "/", false
	}
	if !strings.Contains(p, "//") && !strings.Contains(p, "/.") && p[0] == '/' {
		return p, true
	}
	cp := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && cp != "/" {
		cp += "/"
	}
	return cp, cp == p
}

// redirectClean sends a client to the clean form cp of its path, with its
// query: 301 for GET and HEAD as ServeMux does, 308 for other methods so
// that the method and body are sent again.
func redirectClean(w http.ResponseWriter, r *http.Request, cp string) {
	u := url.URL{Path: cp, RawQuery: r.URL.RawQuery}
	code := http.StatusPermanentRedirect
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		code = http.StatusMovedPermanently
	}
	http.Redirect(w, r, u.String(), code)
}

// mayBeRaw reports whether the clean path p can match a pattern of the raw
// mux: it starts with one of their literal prefixes.
func (s *Server) mayBeRaw(p string) bool {
	for _, pre := range s.rawPrefixes {
		if strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}

// bodyLimit is the body limit of the normalised path p: its own in
// bodyLimits, the one of a pattern it matches, or the server's.
func (s *Server) bodyLimit(p string) int64 {
	if n, ok := s.bodyLimits[p]; ok {
		return n
	}
	for pattern, n := range s.bodyLimits {
		if ok, _ := path.Match(pattern, p); ok && strings.Contains(pattern, "*") {
			return n
		}
	}
	return s.MaxBodyBytes
}

// unmatchedWriter replaces the mux's plain-text 404 and 405 answers (written
// before any route claimed the request) with the error envelope.
type unmatchedWriter struct {
	http.ResponseWriter
	ex       *exchange
	swallow  bool
	answered bool
}

func (w *unmatchedWriter) WriteHeader(code int) {
	if w.answered {
		return
	}
	w.answered = true
	if w.ex.route == nil && (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) {
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

// access is a route's credential rule: which credentials it takes and what
// each must hold.
type access struct {
	public   bool
	platform bool
	partner  bool
	// perm is the key permission the route needs ("" for any key).
	perm string
	// userKeys accepts user API keys, which act as their owner; they need
	// userPerm when set, else perm.
	userKeys bool
	userPerm string
	// userToken accepts signed-in users' session tokens; when the path has a
	// {communityId}, the user must hold one of grants there (any grant when
	// grants is empty and the route is community-scoped: a live member).
	userToken bool
	grants    []string
	// legacyHeader lets the key come in x-api-key (legacy system routes).
	legacyHeader bool
	// queryToken also takes a session token or user API key from the token
	// query parameter, for clients that cannot set headers (browsers opening
	// a WebSocket). Community and platform keys are refused there: a URL
	// ends up in logs and histories, and those keys act for a whole
	// community.
	queryToken bool
}

func public() access             { return access{public: true} }
func platformAdmin() access      { return access{platform: true} }
func partner(perm string) access { return access{partner: true, perm: perm} }

// userToken is a route for signed-in users holding one of grants in the
// path's community.
func userToken(grants ...string) access { return access{userToken: true, grants: grants} }

// orUser also accepts session tokens of users holding one of grants.
func (a access) orUser(grants ...string) access {
	a.userToken, a.grants = true, grants
	return a
}

// orUserKeys also accepts user API keys holding the route's permission, or
// perm when given (user keys hold the user-key catalogue's permissions).
func (a access) orUserKeys(perm ...string) access {
	a.userKeys = true
	if len(perm) > 0 {
		a.userPerm = perm[0]
	}
	return a
}

// orPlatform also accepts the platform-admin key.
func (a access) orPlatform() access { a.platform = true; return a }

// orQueryToken also takes member credentials in the token query parameter.
func (a access) orQueryToken() access { a.queryToken = true; return a }

// legacy lets the key come in the x-api-key header.
func (a access) legacy() access { a.legacyHeader = true; return a }

// call is one request on its way through a handler.
type call struct {
	s   *Server
	w   http.ResponseWriter
	r   *http.Request
	fam family
	// key is the authenticated API key (zero on public routes and for
	// session tokens).
	key auth.Key
	// session is the signed-in user, when a session token was sent.
	session *auth.Session
	// secret is the credential that authenticated the call; viaCookie and
	// viaQuery say it came in the session cookie or the token parameter.
	secret    string
	viaCookie bool
	viaQuery  bool
}

// handle registers pattern (method and path, no prefix) for family f,
// guarded by rule a.
func (s *Server) handle(pattern string, f family, a access, h func(*call) error) {
	s.mux.HandleFunc(pattern, s.wrap(pattern, f, a, h))
}

// handleRaw registers a pattern matched before prefixes are stripped.
func (s *Server) handleRaw(pattern string, f family, a access, h func(*call) error) {
	s.raw.HandleFunc(pattern, s.wrap(pattern, f, a, h))
	path := pattern[strings.IndexByte(pattern, ' ')+1:]
	if i := strings.IndexByte(path, '{'); i >= 0 {
		path = path[:i]
	}
	s.rawPrefixes = append(s.rawPrefixes, path)
}

func (s *Server) wrap(pattern string, f family, a access, h func(*call) error) http.HandlerFunc {
	rt := &route{pattern: pattern}
	return func(w http.ResponseWriter, r *http.Request) {
		var c *call
		ex := exchangeOf(r.Context())
		if ex != nil && ex.route == nil {
			ex.call = call{s: s, w: w, r: r, fam: f}
			c = &ex.call
		} else {
			c = &call{s: s, w: w, r: r, fam: f}
		}
		if ex != nil {
			ex.route = rt
		}
		err := s.authorise(c, a)
		if err == nil {
			err = h(c)
		}
		if err != nil {
			fail(w, r, s.log, f, err)
		}
	}
}

// credential returns the key or token sent with the request, if any.
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

// sessionCookie returns the session token a browser holds in the
// SessionCookie (set by the Secure Auth login link), for reads only: GET and
// HEAD requests without an Authorization header. A browser sends cookies with
// requests other sites make, so a cookie must never authorise a change
// (CSRF); every write needs the token in Authorization, which another site
// cannot set. Reads are safe to take it: SameSite=Lax keeps it off
// cross-site subrequests, and without CORS another site cannot read the
// answer.
func sessionCookie(r *http.Request) string {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || r.Header.Get("Authorization") != "" {
		return ""
	}
	ck, err := r.Cookie(SessionCookie)
	if err != nil || !looksLikeToken(ck.Value) {
		return ""
	}
	return ck.Value
}

// looksLikeToken tells a session token (a JWT: three dot-separated
// segments) from an API key.
func looksLikeToken(s string) bool { return strings.Count(s, ".") == 2 }

// authorise checks the request's credential against rule a.
func (s *Server) authorise(c *call, a access) error {
	if a.public {
		return nil
	}
	secret := credential(c.r, a.legacyHeader)
	if secret == "" && a.queryToken {
		secret = strings.TrimSpace(c.r.URL.Query().Get("token"))
		c.viaQuery = secret != ""
	}
	if secret == "" && a.userToken {
		secret = sessionCookie(c.r)
		c.viaCookie = secret != ""
	}
	c.secret = secret
	if secret == "" {
		return errs.Unauthenticatedf("Missing credentials: send Authorization: Bearer <key or token>.")
	}
	if looksLikeToken(secret) {
		return s.authoriseUser(c, a, secret)
	}
	k, err := s.Keys.Authenticate(c.r.Context(), secret)
	if err != nil {
		return err
	}
	c.key = k
	if c.viaQuery && k.Kind != auth.KindUser {
		return errs.Unauthenticatedf("Only session tokens and user API keys may be sent in the token parameter; send this key in Authorization: Bearer.")
	}
	switch k.Kind {
	case auth.KindPlatform:
		if !a.platform {
			return errs.Forbiddenf("The platform-admin key cannot act inside a community; use the community's API key.")
		}
		return nil
	case auth.KindPartner:
		if !a.partner {
			if a.platform {
				return errs.Forbiddenf("This endpoint needs the platform-admin key.")
			}
			return errs.Forbiddenf("This endpoint does not take a community API key.")
		}
	case auth.KindUser:
		if !a.userKeys {
			return errs.Forbiddenf("This endpoint does not take a user API key.")
		}
	default:
		return errs.Forbiddenf("This endpoint does not take this kind of key.")
	}
	perm := a.perm
	if k.Kind == auth.KindUser && a.userPerm != "" {
		perm = a.userPerm
	}
	if perm != "" && !k.Has(perm) {
		return errs.Forbiddenf("API key lacks the %s permission.", perm)
	}
	return nil
}

// authoriseUser checks a session token against rule a.
func (s *Server) authoriseUser(c *call, a access, token string) error {
	if !a.userToken || s.Sessions == nil {
		return errs.Unauthenticatedf("This endpoint takes an API key, not a user token.")
	}
	sess, err := s.Sessions.Authenticate(c.r.Context(), token)
	if err != nil {
		return err
	}
	c.session = &sess
	if communityID := c.r.PathValue("communityId"); communityID != "" {
		return c.requireGrant(communityID, a.grants...)
	}
	return nil
}

// requireGrant checks that the signed-in user holds one of grants in
// community (any live membership when grants is empty).
func (c *call) requireGrant(communityID string, grants ...string) error {
	if c.s.Grants == nil {
		return errs.Forbiddenf("You have no access to this community.")
	}
	held, err := c.s.Grants.Grants(c.r.Context(), communityID, c.session.UserID)
	if err != nil {
		return err
	}
	if len(held) == 0 {
		return errs.Forbiddenf("You have no access to this community.")
	}
	if len(grants) == 0 {
		return nil
	}
	for _, g := range grants {
		if slices.Contains(held, g) {
			return nil
		}
	}
	return errs.Forbiddenf("You need %s in this community.", strings.Join(grants, " or "))
}

// community returns the community the call acts on. With a key it is the
// key's; a {communityId} in the path must match it (403 otherwise, with no
// hint about the other community). With a user token it is the path's
// {communityId}, whose grants authorise already checked.
func (c *call) community() (string, error) {
	p := c.r.PathValue("communityId")
	if c.session != nil {
		if p == "" {
			return "", errs.Forbiddenf("This endpoint needs a community API key.")
		}
		return p, nil
	}
	if p != "" && p != c.key.CommunityID {
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
