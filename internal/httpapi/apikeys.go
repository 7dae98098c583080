package httpapi

import (
	"net/http"

	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/errs"
)

// scopedKeyView is a key as it tells about itself: its kind and, for user
// keys, its owner and channel limits.
type scopedKeyView struct {
	keyView
	Kind   string `json:"kind"`
	UserID string `json:"userId,omitempty"`
	// ChannelIDs is set (possibly empty) for user keys only.
	ChannelIDs *[]string `json:"channelIds,omitempty"`
}

func viewScopedKey(k auth.Key, secret string) scopedKeyView {
	v := scopedKeyView{keyView: viewKey(k, secret), Kind: k.Kind, UserID: k.UserID}
	if k.Kind == auth.KindUser {
		ids := k.ChannelIDs
		if ids == nil {
			ids = []string{}
		}
		v.ChannelIDs = &ids
	}
	return v
}

// deletedKey is the documented Delete API key answer: the key's details,
// its secret masked to its prefix.
func deletedKey(k auth.Key) keyView {
	return viewKey(k, k.Prefix+"…")
}

// ownUser checks that the user a path or query names is the signed-in user.
func (c *call) ownUser(userID string) (auth.KeyScope, error) {
	if userID != "" && userID != c.session.UserID {
		return auth.KeyScope{}, errs.Forbiddenf("You can only manage your own API keys.")
	}
	return auth.KeyScope{Kind: auth.KindUser, UserID: c.session.UserID}, nil
}

// userKeyRoutes serve a signed-in user's own API keys (AU7-AU10) and the
// key self-description (AU11).
func (s *Server) userKeyRoutes() {
	s.handle("POST /users/apikeys", famM, userToken(), func(c *call) error {
		if _, err := c.ownUser(c.r.URL.Query().Get("userId")); err != nil {
			return err
		}
		var in auth.KeyInput
		if err := c.decode(&in); err != nil {
			return err
		}
		k, secret, err := s.Accounts.CreateUserKey(c.r.Context(), c.session.UserID, in)
		if err != nil {
			return err
		}
		return c.ok(http.StatusCreated, "Create API key success.", viewScopedKey(k, secret))
	})
	s.handle("GET /users/{userId}/api-keys", famM, userToken(), func(c *call) error {
		sc, err := c.ownUser(c.r.PathValue("userId"))
		if err != nil {
			return err
		}
		return s.listKeys(c, sc, func(k auth.Key) any { return viewScopedKey(k, "") })
	})
	s.handle("PUT /users/{userId}/api-keys/{apiKeyId}", famM, userToken(), func(c *call) error {
		sc, err := c.ownUser(c.r.PathValue("userId"))
		if err != nil {
			return err
		}
		return s.updateKey(c, sc, func(k auth.Key) any { return viewScopedKey(k, "") })
	})
	s.handle("DELETE /users/{userId}/api-keys/{apiKeyId}", famM, userToken(), func(c *call) error {
		sc, err := c.ownUser(c.r.PathValue("userId"))
		if err != nil {
			return err
		}
		return s.deleteKey(c, sc)
	})
	s.handle("GET /api-keys/info", famM, partner("").orUserKeys(), func(c *call) error {
		return c.ok(http.StatusOK, "Get API key info success.", viewScopedKey(c.key, ""))
	})
}

// communityKeyRoutes serve a community's partner keys to its owner and
// administrators (AU12-AU15).
func (s *Server) communityKeyRoutes() {
	admins := userToken(auth.GrantOwner, auth.GrantAdmin)
	scope := func(c *call) (auth.KeyScope, error) {
		id, err := c.community()
		return auth.KeyScope{Kind: auth.KindPartner, CommunityID: id}, err
	}
	view := func(k auth.Key) any { return viewKey(k, "") }
	s.handle("POST /communities/{communityId}/api-keys", famM, admins, func(c *call) error {
		sc, err := scope(c)
		if err != nil {
			return err
		}
		var in auth.KeyInput
		if err := c.decode(&in); err != nil {
			return err
		}
		k, secret, err := s.Keys.CreateScoped(c.r.Context(), sc, in)
		if err != nil {
			return err
		}
		return c.ok(http.StatusCreated, "Create API key success.", viewKey(k, secret))
	})
	s.handle("GET /communities/{communityId}/api-keys", famM, admins, func(c *call) error {
		sc, err := scope(c)
		if err != nil {
			return err
		}
		return s.listKeys(c, sc, view)
	})
	s.handle("PUT /communities/{communityId}/api-keys/{apiKeyId}", famM, admins, func(c *call) error {
		sc, err := scope(c)
		if err != nil {
			return err
		}
		return s.updateKey(c, sc, view)
	})
	s.handle("DELETE /communities/{communityId}/api-keys/{apiKeyId}", famM, admins, func(c *call) error {
		sc, err := scope(c)
		if err != nil {
			return err
		}
		return s.deleteKey(c, sc)
	})
}

func (s *Server) listKeys(c *call, sc auth.KeyScope, view func(auth.Key) any) error {
	skip, limit, err := offsetPage(c.r)
	if err != nil {
		return err
	}
	keys, total, err := s.Keys.ListScoped(c.r.Context(), sc, skip, limit)
	if err != nil {
		return err
	}
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = view(k)
	}
	return c.list("Read API keys success.", out, Page{Skip: &skip, Limit: &limit, Total: &total})
}

func (s *Server) updateKey(c *call, sc auth.KeyScope, view func(auth.Key) any) error {
	var in auth.KeyInput
	if err := c.decode(&in); err != nil {
		return err
	}
	k, err := s.Keys.UpdateScoped(c.r.Context(), sc, c.r.PathValue("apiKeyId"), in)
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Update API key success.", view(k))
}

func (s *Server) deleteKey(c *call, sc auth.KeyScope) error {
	k, err := s.Keys.DeleteScoped(c.r.Context(), sc, c.r.PathValue("apiKeyId"))
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Delete API key success.", deletedKey(k))
}
