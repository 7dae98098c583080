package httpapi

import (
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/user"
)

// SessionCookie is the cookie the Secure Auth login link sets.
const SessionCookie = "rally_session"

// authUser is a signed-in user's own record, in the Get user shape.
type authUser struct {
	ID            string     `json:"_id"`
	NumID         int64      `json:"id"`
	Email         string     `json:"email"`
	Username      string     `json:"username"`
	FirstName     string     `json:"firstName"`
	LastName      string     `json:"lastName"`
	DisplayName   string     `json:"displayName"`
	Avatar        *string    `json:"avatar"`
	EmailVerified bool       `json:"emailVerified"`
	LastLogin     *string    `json:"lastLogin"`
	CreatedAt     jsonx.Time `json:"createdAt"`
}

func viewUser(u user.User) authUser {
	v := authUser{ID: u.ID, NumID: u.NumID, Email: u.Email, Username: u.Username, FirstName: u.FirstName, LastName: u.LastName,
		DisplayName: u.DisplayName, Avatar: u.Avatar, EmailVerified: u.EmailVerified, CreatedAt: jsonx.At(u.CreatedAt)}
	if u.LastLoginAt != nil {
		s := clock.Format(*u.LastLoginAt)
		v.LastLogin = &s
	}
	return v
}

// signedIn is the answer to a login: the session token and who it is for.
type signedIn struct {
	Token     string     `json:"token"`
	SessionID string     `json:"sessionId"`
	ExpiresAt jsonx.Time `json:"expiresAt"`
	User      authUser   `json:"user"`
}

// secureAuthAnswer is Secure Auth's documented body.
type secureAuthAnswer struct {
	Error     bool   `json:"error"`
	LoginURL  string `json:"loginUrl"`
	SessionID string `json:"sessionId"`
}

// clientAddr is the address failed logins are counted against: the TCP
// peer, or the first X-Forwarded-For entry when the proxy is trusted.
func (s *Server) clientAddr(r *http.Request) string {
	if s.TrustProxy {
		if first, _, _ := strings.Cut(r.Header.Get("X-Forwarded-For"), ","); strings.TrimSpace(first) != "" {
			return strings.TrimSpace(first)
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authRoutes serve signing up and in (AU2-AU4), signing out, Secure Auth
// (AU1/AU5, AU6), user API keys (AU7-AU11) and community API keys
// (AU12-AU15).
func (s *Server) authRoutes() {
	system := partner("").legacy()
	s.handle("POST /auth/register", famM, system, withBody(http.StatusCreated, "Register user success.",
		func(c *call, in auth.RegisterInput) (any, error) {
			u, err := s.Accounts.Register(c.r.Context(), c.key.CommunityID, in)
			return viewUser(u), err
		}))
	s.handle("POST /auth/verify-email", famM, system, withBody(http.StatusOK, "Verify email success.",
		func(c *call, in auth.VerifyInput) (any, error) {
			u, err := s.Accounts.VerifyEmail(c.r.Context(), c.key.CommunityID, in)
			return viewUser(u), err
		}))
	s.handle("POST /auth/login", famM, system, withBody(http.StatusOK, "Login success.",
		func(c *call, in auth.LoginInput) (any, error) {
			out, err := s.Accounts.Login(c.r.Context(), c.key.CommunityID, in, s.clientAddr(c.r))
			return signedIn{Token: out.Token, SessionID: out.Session.TokenID, ExpiresAt: jsonx.At(out.Session.ExpiresAt),
				User: viewUser(out.User)}, err
		}))
	s.handle("POST /auth/logout", famM, userToken(), func(c *call) error {
		if err := s.Accounts.SignOut(c.r.Context(), *c.session, false); err != nil {
			return err
		}
		clearSessionCookie(c.w)
		return c.ok(http.StatusOK, "Logout success.", map[string]string{"sessionId": c.session.TokenID})
	})
	s.handle("POST /auth/logout-all", famM, userToken(), func(c *call) error {
		if err := s.Accounts.SignOut(c.r.Context(), *c.session, true); err != nil {
			return err
		}
		clearSessionCookie(c.w)
		return c.ok(http.StatusOK, "Logout everywhere success.", map[string]string{"userId": c.session.UserID})
	})
	s.handleRaw("GET /api/secureAuth", famR, public(), s.secureAuth)
	s.handleRaw("GET /v2/app/loginApi/{apiKey}/2", famR, public(), s.secureAuthLogin)
	s.userKeyRoutes()
	s.communityKeyRoutes()
}

// withBody serves a route that decodes a JSON body into I and answers
// run's result with status.
func withBody[I any](status int, message string, run func(*call, I) (any, error)) func(*call) error {
	return func(c *call) error {
		var in I
		if err := c.decode(&in); err != nil {
			return err
		}
		out, err := run(c, in)
		if err != nil {
			return err
		}
		return c.ok(status, message, out)
	}
}

// secureAuth is AU1/AU5: the partner's backend trades its API key (apiKey
// or X-API-Key header) and the user's username for a one-time login link on
// the community host.
func (s *Server) secureAuth(c *call) error {
	secret := strings.TrimSpace(c.r.Header.Get("apiKey"))
	if secret == "" {
		secret = strings.TrimSpace(c.r.Header.Get("X-API-Key"))
	}
	if secret == "" {
		return errs.Unauthenticatedf("Missing credentials: send the community API key in the apiKey header.")
	}
	k, err := s.Keys.Authenticate(c.r.Context(), secret)
	if err != nil {
		return err
	}
	if k.Kind != auth.KindPartner {
		return errs.Forbiddenf("Secure Auth needs a community API key.")
	}
	c.key = k
	q := c.r.URL.Query()
	g, err := s.Accounts.StartSecureAuth(c.r.Context(), k, auth.SecureAuthInput{
		Host: c.r.Header.Get("hostname"), Username: q.Get("userId"), AccessLevel: q.Get("accessLevel"), Action: q.Get("action"),
		Email: q.Get("email"), FirstName: q.Get("firstname"), LastName: q.Get("lastname"), DisplayName: q.Get("displayname"),
	})
	if err != nil {
		return err
	}
	link := "https://" + g.Host + "/v2/app/loginApi/" + g.KeyID + "/2?token=" + g.Token + "&host=" + url.QueryEscape(g.Host)
	return c.ok(http.StatusOK, "", secureAuthAnswer{LoginURL: link, SessionID: g.SessionID})
}

// clearSessionCookie tells the browser to drop the session cookie, so a
// signed-out browser stops sending a token that no longer works.
func clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true,
		SameSite: http.SameSiteLaxMode})
}

// secureAuthLogin is AU6: the browser follows the login link; the token is
// consumed, the session cookie set, and the browser sent into the
// community.
func (s *Server) secureAuthLogin(c *call) error {
	q := c.r.URL.Query()
	host := strings.TrimSpace(q.Get("host"))
	out, err := s.Accounts.FinishSecureAuth(c.r.Context(), c.r.PathValue("apiKey"), q.Get("token"), host)
	if err != nil {
		return err
	}
	http.SetCookie(c.w, &http.Cookie{Name: SessionCookie, Value: out.Token, Path: "/", Expires: out.Session.ExpiresAt,
		MaxAge: int(out.Session.ExpiresAt.Sub(out.Session.IssuedAt).Seconds()), HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
	c.w.Header().Set("Cache-Control", "no-store")
	http.Redirect(c.w, c.r, "https://"+host+"/", http.StatusFound)
	return nil
}
