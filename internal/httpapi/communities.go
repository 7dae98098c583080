package httpapi

import (
	"context"
	"net/http"

	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/community"
	"github.com/rallyhq/rally/internal/jsonx"
)

// keyView is an API key as the API shows it; Key (the secret) appears only
// in the answer that created it.
type keyView struct {
	ID           string     `json:"_id"`
	CommunityID  string     `json:"communityId"`
	Name         string     `json:"name"`
	Key          string     `json:"key,omitempty"`
	Prefix       string     `json:"prefix"`
	Permissions  []string   `json:"permissions"`
	ExpirePeriod int        `json:"expirePeriod"`
	ExpireDate   *string    `json:"expireDate"`
	IsActive     bool       `json:"isActive"`
	LastUsedAt   *string    `json:"lastUsedAt"`
	CreatedAt    jsonx.Time `json:"createdAt"`
	UpdatedAt    jsonx.Time `json:"updatedAt"`
}

func viewKey(k auth.Key, secret string) keyView {
	v := keyView{
		ID: k.ID, CommunityID: k.CommunityID, Name: k.Name, Key: secret, Prefix: k.Prefix, Permissions: k.Permissions,
		ExpirePeriod: k.ExpirePeriod, IsActive: k.IsActive, CreatedAt: jsonx.At(k.CreatedAt), UpdatedAt: jsonx.At(k.UpdatedAt),
	}
	if k.ExpireDate != nil {
		s := clock.Format(*k.ExpireDate)
		v.ExpireDate = &s
	}
	if k.LastUsedAt != nil {
		s := clock.Format(*k.LastUsedAt)
		v.LastUsedAt = &s
	}
	return v
}

// createdCommunity is the answer to creating a community: the community and
// its first partner key, whose secret is shown only here.
type createdCommunity struct {
	community.Community
	APIKey keyView `json:"apiKey"`
}

// communityRoutes serve the community (server) resource: SV1/CO1, SV2,
// SV3/PS4 and a read of one community.
func (s *Server) communityRoutes() {
	s.handle("POST /management/communities", famM, platformAdmin(), func(c *call) error {
		var in community.Input
		if err := c.decode(&in); err != nil {
			return err
		}
		com, key, secret, err := s.Communities.Create(c.r.Context(), in)
		if err != nil {
			return err
		}
		return c.ok(http.StatusCreated, "Create community success.", createdCommunity{Community: com, APIKey: viewKey(key, secret)})
	})
	s.handle("GET /management/communities", famM, platformAdmin().orUser(), func(c *call) error {
		skip, limit, err := offsetPage(c.r)
		if err != nil {
			return err
		}
		// A signed-in user sees the communities they belong to; the
		// platform-admin key sees every one.
		list, total, err := func() ([]community.Community, int, error) {
			if c.session != nil {
				return s.Communities.ListForMember(c.r.Context(), c.session.UserID, skip, limit)
			}
			return s.Communities.List(c.r.Context(), skip, limit)
		}()
		if err != nil {
			return err
		}
		return c.list("Read communities success.", list, Page{Skip: &skip, Limit: &limit, Total: &total})
	})
	s.handle("GET /management/communities/{communityId}", famM, partner("appearance"),
		readOwn("Read community success.", s.Communities.GetJSON))
	s.handle("PUT /management/communities/{communityId}", famM, partner("appearance"),
		updateOwn("Update community success.", s.Communities.Update))
	// The Name & Uri page says the community comes from the key: the form
	// without an id updates the key's community.
	s.handle("PUT /management/communities", famM, partner("appearance"),
		updateOwn("Update community success.", s.Communities.Update))
}

// appearanceRoutes serve the Personalization › Appearance endpoints (PS1-PS3)
// and their reads.
func (s *Server) appearanceRoutes() {
	cs := s.Communities
	s.handle("GET /management/communities/{communityId}/meta", famM, partner("appearance"),
		readOwn("Read community meta success.", cs.Meta))
	s.handle("PUT /management/communities/{communityId}/meta", famM, partner("appearance"),
		updateOwn("Update community meta success.", cs.UpdateMeta))
	s.handle("GET /community-bot", famM, partner("appearance"), readOwn("Read community bot success.", cs.Bot))
	s.handle("PUT /community-bot", famM, partner("appearance"), updateOwn("Update community bot success.", cs.UpdateBot))
	s.handle("GET /management/communities/{communityId}/theme-colors", famM, partner("appearance"),
		readOwn("Read community theme colors success.", cs.Theme))
	s.handle("PUT /management/communities/{communityId}/theme-colors", famM, partner("appearance"),
		updateOwn("Update community theme colors success.", cs.UpdateTheme))
}

// readOwn serves a read of one document of the caller's community.
func readOwn[T any](message string, get func(context.Context, string) (T, error)) func(*call) error {
	return func(c *call) error {
		id, err := c.community()
		if err != nil {
			return err
		}
		v, err := get(c.r.Context(), id)
		if err != nil {
			return err
		}
		return c.ok(http.StatusOK, message, v)
	}
}

// updateOwn serves a JSON update of one document of the caller's community.
func updateOwn[I, T any](message string, update func(context.Context, string, I) (T, error)) func(*call) error {
	return func(c *call) error {
		return writeOwn(c, http.StatusOK, message, func(id string, in I) (T, error) {
			return update(c.r.Context(), id, in)
		})
	}
}
