// Package role holds a community's roles: their permissions, which members
// hold them, and the one question the rest of Rally asks ("may this user do
// that here?"). Every community has the @all role, held by every member.
package role

import (
	"context"
	"fmt"

	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/user"
)

// Events records state changes in the caller's transaction.
type Events interface {
	Append(ctx context.Context, tx *db.Tx, communityID, typ string, payload any) error
}

// Deps are what the role service needs.
type Deps struct {
	DB     *db.DB
	Clock  clock.Clock
	Events Events
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
// COMMUNITY_ADMIN for the owner and for holders of a role with
// server_administrator. Non-members and deleted members hold none.
func (s *Service) Grants(ctx context.Context, communityID, userID string) ([]string, error) {
	m, err := s.d.Users.Member(ctx, communityID, userID)
	if errs.KindOf(err) == errs.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if m.DeletedAt != nil || !m.Joined {
		return nil, nil
	}
	grants := []string{auth.GrantMember}
	if m.IsOwner {
		return append(grants, auth.GrantOwner, auth.GrantAdmin), nil
	}
	var admins int
	err = s.d.DB.QueryRow(ctx, `SELECT COUNT(*) FROM member_roles mr JOIN roles r ON r.id = mr.role_id
		WHERE mr.community_id = ? AND mr.user_id = ? AND r.server_permissions LIKE ?`,
		communityID, userID, `%"server_administrator":true%`).Scan(&admins)
	if err != nil {
		return nil, fmt.Errorf("read admin roles: %w", err)
	}
	if admins > 0 {
		grants = append(grants, auth.GrantAdmin)
	}
	return grants, nil
}
