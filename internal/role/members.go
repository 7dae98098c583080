package role

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/user"
)

// Assignment is the outcome of adding a role to a member or removing it.
type Assignment struct {
	User user.User
	Role Role
	// Changed is false when the member already held the role (add) or did
	// not hold it (remove).
	Changed bool
	// Roles are the member's roles after the change, highest first.
	Roles []Role
}

// heldWhere selects a member's roles (after FROM roles): @all and the roles
// assigned to them. Its arguments are community, community, user.
const heldWhere = `WHERE community_id = ? AND (is_everyone = TRUE OR id IN
	(SELECT role_id FROM member_roles WHERE community_id = ? AND user_id = ?))`

// findMember resolves ref, a user's numeric id or _id, to a live member of
// the community. A malformed ref names field; unknown users, other
// communities' users and deleted members are NotFound.
func (s *Service) findMember(ctx context.Context, communityID, ref, field string) (user.User, error) {
	ref = strings.TrimSpace(ref)
	kind := user.ByID
	if id.Valid(ref) {
		kind, ref = user.ByObjectID, strings.ToLower(ref)
	} else if n, err := strconv.ParseInt(ref, 10, 64); err != nil || n < 1 {
		var v errs.Validator
		v.Add(field, "must be a user's numeric id or 24-hex _id")
		return user.User{}, v.Err()
	}
	u, _, err := s.d.Users.FindMember(ctx, communityID, ref, kind)
	return u, err
}

// UserRoles returns the roles of the live member ref (numeric id or _id):
// @all and the roles assigned to them, highest order first.
func (s *Service) UserRoles(ctx context.Context, communityID, ref string) (user.User, []Role, error) {
	u, err := s.findMember(ctx, communityID, ref, "userId")
	if err != nil {
		return user.User{}, nil, err
	}
	roles, err := s.MemberRoles(ctx, communityID, u.ID)
	return u, roles, err
}

// MemberRoles returns the roles userID (an _id) holds in the community: @all
// and the roles assigned to them, highest order first (ties: earliest
// created). A user with no membership row is NotFound; a deleted member's
// assignments are still listed.
func (s *Service) MemberRoles(ctx context.Context, communityID, userID string) ([]Role, error) {
	if _, err := s.d.Users.Member(ctx, communityID, userID); err != nil {
		return nil, err
	}
	if err := s.ensureEveryone(ctx, communityID); err != nil {
		return nil, err
	}
	return queryRoles(ctx, s.d.DB, heldWhere+roleOrder, communityID, communityID, userID)
}

// MemberRoleTitles returns the titles of the roles userID holds, "@all"
// included, highest order first, and the title of the highest one (ties:
// earliest created).
func (s *Service) MemberRoleTitles(ctx context.Context, communityID, userID string) (titles []string, highest string, err error) {
	roles, err := s.MemberRoles(ctx, communityID, userID)
	if err != nil {
		return nil, "", err
	}
	titles = make([]string, len(roles))
	for i, r := range roles {
		titles[i] = r.Title
	}
	if len(titles) > 0 {
		highest = titles[0]
	}
	return titles, highest, nil
}

// Assign gives the role to the live member ref (numeric id or _id). Every
// member holds @all already, so assigning it changes nothing; assigning a
// role the member holds is not an error either (Changed reports false).
func (s *Service) Assign(ctx context.Context, communityID, roleID, ref string) (Assignment, error) {
	return s.assignment(ctx, communityID, roleID, ref, true)
}

// Unassign takes the role from the live member ref. @all cannot be taken
// (Invalid); removing a role the member does not hold is not an error.
func (s *Service) Unassign(ctx context.Context, communityID, roleID, ref string) (Assignment, error) {
	return s.assignment(ctx, communityID, roleID, ref, false)
}

func (s *Service) assignment(ctx context.Context, communityID, roleID, ref string, add bool) (Assignment, error) {
	if err := checkRoleID(roleID); err != nil {
		return Assignment{}, err
	}
	u, err := s.findMember(ctx, communityID, ref, "userId")
	if err != nil {
		return Assignment{}, err
	}
	if err := s.ensureEveryone(ctx, communityID); err != nil {
		return Assignment{}, err
	}
	var a Assignment
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		a = Assignment{User: u}
		var err error
		if a.Role, err = getRoleTx(ctx, tx, communityID, roleID); err != nil {
			return err
		}
		m, err := s.d.Users.MemberTx(ctx, tx, communityID, u.ID)
		if err != nil {
			return err
		}
		if m.DeletedAt != nil {
			return errs.NotFoundf("User not found.")
		}
		if a.Role.Everyone {
			if !add {
				return &errs.Error{Kind: errs.Invalid, Message: fmt.Sprintf("Every member holds the %s role; it cannot be removed.", EveryoneTitle),
					Fields: []errs.FieldError{{Field: "roleId", Message: "is the " + EveryoneTitle + " role"}}}
			}
		} else if a.Changed, err = s.setHeld(ctx, tx, communityID, u.ID, a.Role.ID, add); err != nil {
			return err
		}
		if a.Changed {
			typ := "member.role.removed"
			if add {
				typ = "member.role.added"
			}
			if err := s.d.Events.Append(ctx, tx, communityID, typ, map[string]any{
				"communityId": communityID, "userId": u.ID, "id": u.NumID, "roleId": a.Role.ID, "title": a.Role.Title,
				"at": clock.Format(s.d.Clock.Now()),
			}); err != nil {
				return err
			}
		}
		a.Roles, err = queryRoles(ctx, tx, heldWhere+roleOrder, communityID, communityID, u.ID)
		return err
	})
	if err != nil {
		return Assignment{}, err
	}
	return a, nil
}

// setHeld writes or deletes one assignment and reports whether anything
// changed.
func (s *Service) setHeld(ctx context.Context, tx *db.Tx, communityID, userID, roleID string, add bool) (bool, error) {
	q, args := "DELETE FROM member_roles WHERE community_id = ? AND user_id = ? AND role_id = ?", []any{communityID, userID, roleID}
	if add {
		q = `INSERT INTO member_roles (community_id, user_id, role_id, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (community_id, user_id, role_id) DO NOTHING`
		args = append(args, s.d.Clock.Now().UnixMilli())
	}
	res, err := tx.Exec(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("set role %s of %s: %w", roleID, userID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("set role %s of %s: %w", roleID, userID, err)
	}
	return n > 0, nil
}
