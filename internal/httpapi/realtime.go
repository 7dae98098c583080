package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/message"
	"github.com/rallyhq/rally/internal/realtime"
)

// realtimeRoutes serve the live message stream: a WebSocket for members
// (session token or user API key, also in the token query parameter) and
// community keys (Authorization header only).
func (s *Server) realtimeRoutes() {
	s.handle("GET /realtime", famM, partner("getMessages").orUserKeys("readOwnMessages").orUser().orQueryToken(), s.realtimeStream)
}

// realtimeStream checks the handshake and the caller, then hands the
// connection to the hub.
func (s *Server) realtimeStream(c *call) error {
	if s.Realtime == nil {
		return errs.New(errs.Unavailable, "The live stream is not running.")
	}
	var v errs.Validator
	h := c.r.Header
	v.Check(headerHasToken(h, "Connection", "upgrade"), "Connection", "must be Upgrade: open this endpoint with a WebSocket client")
	v.Check(headerHasToken(h, "Upgrade", "websocket"), "Upgrade", "must be websocket: open this endpoint with a WebSocket client")
	v.Check(h.Get("Sec-WebSocket-Version") == "13", "Sec-WebSocket-Version", "must be 13")
	v.Check(h.Get("Sec-WebSocket-Key") != "", "Sec-WebSocket-Key", "is required")
	var last *int64
	if q := c.r.URL.Query(); q.Has("lastEventId") {
		n, err := strconv.ParseInt(q.Get("lastEventId"), 10, 64)
		if err != nil || n < 0 {
			v.Add("lastEventId", "must be an event id: a whole number of at least 0")
		} else {
			last = &n
		}
	}
	if err := v.Err(); err != nil {
		return err
	}
	if c.viaCookie && !sameOrigin(c.r) {
		return errs.Forbiddenf("The session cookie is accepted only from this server's own pages; send the token parameter instead.")
	}
	actor := c.messagingActor("")
	var author message.Author
	if !actor.Partner {
		if c.session != nil {
			if err := c.requireGrant(c.session.CommunityID); err != nil {
				return err
			}
		}
		a, err := s.Messages.Member(c.r.Context(), actor)
		if err != nil {
			return err
		}
		author = a
	}
	s.Realtime.Serve(c.w, c.r, realtime.Client{Actor: actor, Author: author, Recheck: s.realtimeRecheck(c), LastEventID: last})
	return nil
}

// headerHasToken reports whether the comma-separated header name holds
// token (case-insensitive).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// sameOrigin reports whether a browser request comes from this server's own
// pages: no Origin header (not a browser) or one naming the request's host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// realtimeRecheck returns the check the hub runs again on the connection's
// credential: the session still valid and its user still a member, or the
// key still active with the stream's permission and the same channels.
func (s *Server) realtimeRecheck(c *call) func(ctx context.Context) error {
	secret := c.secret
	if c.session != nil {
		communityID := c.session.CommunityID
		return func(ctx context.Context) error {
			sess, err := s.Sessions.Authenticate(ctx, secret)
			if err != nil {
				return err
			}
			held, err := s.Grants.Grants(ctx, communityID, sess.UserID)
			if err != nil {
				return err
			}
			if len(held) == 0 {
				return errs.Forbiddenf("You have no access to this community.")
			}
			return nil
		}
	}
	perm, channels := "getMessages", c.key.ChannelIDs
	if c.key.Kind == auth.KindUser {
		perm = "readOwnMessages"
	}
	return func(ctx context.Context) error {
		k, err := s.Keys.Authenticate(ctx, secret)
		if err != nil {
			return err
		}
		if !k.Has(perm) || !slices.Equal(k.ChannelIDs, channels) {
			return errs.Forbiddenf("The key's permissions changed; connect again.")
		}
		return nil
	}
}
