// Package role holds a community's roles: their permissions, which members
// hold them, and the one question the rest of Rally asks ("may this user do
// that here?"). Every community has the @all role, held by every member.
package role

import (
	"context"
	"fmt"
	"github.com/rallyhq/rally/internal/event"

	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/user"
)

// Deps are what the role service needs.
type Deps struct {
	DB     *db.DB
	Clock  clock.Clock
	Events event.Appender
	Users  *user.Store
}

// Service holds the rules for roles and permissions.
type Service struct {
	d Deps
}

// NewService returns the role service.
func NewService(d Deps) *Service { return &Service{d: d} }

// Grants returns the community grants userID holds in communityID:
// APPLICATION_MEMBER for any live member, COMMUNITY_OWNER for the owner,
// COMMUNITY_ADMIN for the owner and for members whose roles (@all included)
// grant server_administrator. Non-members and deleted members hold none.
func (s *Service) Grants(ctx context.Context, communityID, userID string) ([]string, error) {
	st, err := s.standing(ctx, communityID, userID)
	if err != nil || !st.live {
		return nil, err
	}
	grants := []string{auth.GrantMember}
	if st.owner {
		return append(grants, auth.GrantOwner, auth.GrantAdmin), nil
	}
	if st.perms[PermServerAdministrator] {
		grants = append(grants, auth.GrantAdmin)
	}
	return grants, nil
}

// Can reports whether userID may do permission (a server or channel
// permission key; the older edition's aliases are accepted) in channelID of
// the community ("" for the community as a whole). The owner may do
// everything; other live members hold the union of their roles'
// permissions, @all included, adjusted by the channel's per-role overrides
// (see ChannelPermissions), and server_administrator implies every
// permission; non-members, pending and deleted members may do nothing. An
// unknown permission is an error.
func (s *Service) Can(ctx context.Context, communityID, userID, channelID, permission string) (bool, error) {
	name, ok := CanonicalPermission(permission)
	if !ok {
		return false, fmt.Errorf("check permission: unknown permission %q", permission)
	}
	perms, err := s.ChannelPermissions(ctx, communityID, userID, channelID)
	if err != nil {
		return false, err
	}
	return perms[name], nil
}

// standing is what a user may do in a community.
type standing struct {
	live  bool
	owner bool
	// perms is the union of the server and channel permissions of the
	// member's roles (the two key sets are disjoint).
	perms Permissions
}

// standing reads userID's membership and the union of their roles'
// permissions. When the community's @all role has not been made yet, its
// defaults apply.
func (s *Service) standing(ctx context.Context, communityID, userID string) (standing, error) {
	m, err := s.d.Users.Member(ctx, communityID, userID)
	if errs.KindOf(err) == errs.NotFound {
		return standing{}, nil
	}
	if err != nil {
		return standing{}, err
	}
	if m.DeletedAt != nil || !m.Joined {
		return standing{}, nil
	}
	st := standing{live: true, owner: m.IsOwner, perms: Permissions{}}
	if st.owner {
		return st, nil
	}
	roles, err := queryRoles(ctx, s.d.DB, heldWhere, communityID, communityID, userID)
	if err != nil {
		return standing{}, err
	}
	everyone := false
	for _, r := range roles {
		everyone = everyone || r.Everyone
		st.grant(r.ServerPermissions, r.ChannelPermissions)
	}
	if !everyone {
		st.grant(everyoneDefaults())
	}
	return st, nil
}

// grant adds the granted keys of maps to the standing.
func (st *standing) grant(maps ...Permissions) {
	for _, p := range maps {
		for k, v := range p {
			if v {
				st.perms[k] = true
			}
		}
	}
}
