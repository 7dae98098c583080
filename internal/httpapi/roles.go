package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/role"
)

// assignmentView is the answer to adding or removing a member's role.
type assignmentView struct {
	UserID string      `json:"userId"`
	ID     int64       `json:"id"`
	RoleID string      `json:"roleId"`
	Roles  []role.Role `json:"roles"`
}

// roleRoutes serve Roles & Permissions (RO1-RO7), legacy family. The
// segment after /roles/ is a user id for GET (RO5) and a role id for PUT,
// DELETE and the add/remove actions.
func (s *Server) roleRoutes() {
	read := partner("getRoles").legacy()
	manage := partner("manageRoles").legacy()
	s.handle("GET /roles", famL, read, offsetList("Roles fetched successfully", func(c *call, communityID string, skip, limit int) ([]role.Role, int, error) {
		return s.Roles.List(c.r.Context(), communityID, skip, limit)
	}))
	s.handle("POST /roles", famL, manage, inCommunity(http.StatusCreated, "Role created successfully",
		decoded(func(c *call, communityID string, in role.Input) (role.Role, error) {
			return s.Roles.Create(c.r.Context(), communityID, in)
		})))
	s.handle("PUT /roles/{id}", famL, manage, inCommunity(http.StatusOK, "Role updated successfully",
		decoded(func(c *call, communityID string, in role.Input) (role.Role, error) {
			return s.Roles.Update(c.r.Context(), communityID, c.r.PathValue("id"), in)
		})))
	s.handle("DELETE /roles/{id}", famL, manage, inCommunity(http.StatusOK, "Role deleted successfully",
		func(c *call, communityID string) (role.Role, error) {
			return s.Roles.Delete(c.r.Context(), communityID, c.r.PathValue("id"))
		}))
	s.handle("GET /roles/{id}", famL, read, inCommunity(http.StatusOK, "User roles fetched successfully",
		func(c *call, communityID string) ([]role.Role, error) {
			_, roles, err := s.Roles.UserRoles(c.r.Context(), communityID, c.r.PathValue("id"))
			return roles, err
		}))
	s.handle("POST /roles/{id}/add", famL, manage, assignRole(s.Roles.Assign,
		"Role added to user successfully", "User already has this role"))
	s.handle("POST /roles/{id}/remove", famL, manage, assignRole(s.Roles.Unassign,
		"Role removed from user successfully", "User does not have this role"))
}

// inCommunity serves a call acting on the caller's community: fn's result
// is answered with status and message.
func inCommunity[T any](status int, message string, fn func(c *call, communityID string) (T, error)) func(*call) error {
	return func(c *call) error {
		communityID, err := c.community()
		if err != nil {
			return err
		}
		v, err := fn(c, communityID)
		if err != nil {
			return err
		}
		return c.ok(status, message, v)
	}
}

// decoded decodes the JSON body into an In and passes it to fn.
func decoded[In, T any](fn func(c *call, communityID string, in In) (T, error)) func(c *call, communityID string) (T, error) {
	return func(c *call, communityID string) (T, error) {
		var in In
		if err := c.decode(&in); err != nil {
			var zero T
			return zero, err
		}
		return fn(c, communityID, in)
	}
}

// assignRole serves adding or removing a role ({id}) of the member named by
// the body's userId (numeric id, as a number or a string, or _id). The
// message says whether anything changed.
func assignRole(do func(ctx context.Context, communityID, roleID, ref string) (role.Assignment, error), changed, unchanged string) func(*call) error {
	return func(c *call) error {
		communityID, err := c.community()
		if err != nil {
			return err
		}
		var in struct {
			UserID json.RawMessage `json:"userId"`
		}
		if err := c.decode(&in); err != nil {
			return err
		}
		ref, ok := userRef(in.UserID)
		if !ok {
			var v errs.Validator
			v.Add("userId", "is required: a user's numeric id or 24-hex _id")
			return v.Err()
		}
		a, err := do(c.r.Context(), communityID, c.r.PathValue("id"), ref)
		if err != nil {
			return err
		}
		msg := changed
		if !a.Changed {
			msg = unchanged
		}
		return c.ok(http.StatusOK, msg, assignmentView{UserID: a.User.ID, ID: a.User.NumID, RoleID: a.Role.ID, Roles: a.Roles})
	}
}

// userRef reads a user reference sent as a JSON string or integer.
func userRef(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, s != ""
	}
	if _, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return string(raw), true
	}
	return "", false
}
