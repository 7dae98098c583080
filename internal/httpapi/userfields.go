package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/userfield"
)

// userFieldRoutes serve custom user fields and their value history
// (UD1-UD10). Every route takes a partner key holding userFields, or the
// session token of the community's owner or an admin.
func (s *Server) userFieldRoutes() {
	a := partner("userFields").orUser(auth.GrantOwner, auth.GrantAdmin)
	uf := s.UserFields
	s.handle("GET /communities/{communityId}/user-fields", famM, a, offsetList("Read user fields success.",
		func(c *call, communityID string, skip, limit int) ([]userfield.Field, int, error) {
			return uf.List(c.r.Context(), communityID, skip, limit)
		}))
	s.handle("POST /communities/{communityId}/user-fields", famM, a, fieldRoute(http.StatusCreated, "Create user field successful", true,
		func(c *call, communityID string, in userfield.Input) (userfield.Field, error) {
			return uf.Create(c.r.Context(), communityID, in, c.actor())
		}))
	s.handle("GET /communities/{communityId}/user-fields/{fieldId}", famM, a, fieldRoute(http.StatusOK, "Read user field success.", false,
		func(c *call, communityID string, _ userfield.Input) (userfield.Field, error) {
			return uf.Get(c.r.Context(), communityID, c.r.PathValue("fieldId"))
		}))
	s.handle("PUT /communities/{communityId}/user-fields/{fieldId}", famM, a, fieldRoute(http.StatusOK, "Updated user field", true,
		func(c *call, communityID string, in userfield.Input) (userfield.Field, error) {
			return uf.Update(c.r.Context(), communityID, c.r.PathValue("fieldId"), in)
		}))
	s.handle("DELETE /communities/{communityId}/user-fields/{fieldId}", famM, a, fieldRoute(http.StatusOK, "Deleted user field", false,
		func(c *call, communityID string, _ userfield.Input) (userfield.Field, error) {
			return uf.Delete(c.r.Context(), communityID, c.r.PathValue("fieldId"))
		}))
	s.handle("GET /communities/{communityId}/user-field-histories", famM, a, s.userFieldHistories)
	s.handle("GET /communities/{communityId}/user-fields/{fieldId}/histories", famM, a, s.userFieldHistories)
	s.handle("GET /communities/{communityId}/users/{userId}/user-field-histories", famM, a, s.userFieldHistories)
	s.handle("GET /communities/{communityId}/users/{userId}/user-fields/{fieldId}/histories", famM, a, s.userFieldHistories)
	s.handle("POST /communities/{communityId}/users/{userId}/user-field-histories", famM, a, func(c *call) error {
		communityID, err := c.community()
		if err != nil {
			return err
		}
		var in userfield.HistoryInput
		if err := c.decode(&in); err != nil {
			return err
		}
		h, created, err := uf.CreateHistory(c.r.Context(), communityID, c.r.PathValue("userId"), in, c.actor())
		if err != nil {
			return err
		}
		if !created {
			var data any
			if h != nil {
				data = h
			}
			return c.ok(http.StatusOK, "User field value unchanged", data)
		}
		return c.ok(http.StatusCreated, "Create user field history successful", h)
	})
}

// fieldRoute serves a route answering one user field with status and
// message: it resolves the community, decodes the body when withBody, and
// calls do.
func fieldRoute(status int, message string, withBody bool,
	do func(c *call, communityID string, in userfield.Input) (userfield.Field, error)) func(*call) error {
	return func(c *call) error {
		communityID, err := c.community()
		if err != nil {
			return err
		}
		var in userfield.Input
		if withBody {
			if err := c.decode(&in); err != nil {
				return err
			}
		}
		f, err := do(c, communityID, in)
		if err != nil {
			return err
		}
		return c.ok(status, message, f)
	}
}

// userFieldHistories serves UD4-UD7: the community's value history, narrowed
// by the path's {fieldId} and {userId} when present, newest first, offset-paged,
// optionally limited to from (inclusive) and to (exclusive).
func (s *Server) userFieldHistories(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	skip, limit, pageErr := offsetPage(c.r)
	q := userfield.HistoryQuery{FieldRef: c.r.PathValue("fieldId"), UserID: c.r.PathValue("userId"), Skip: skip, Limit: limit}
	var v errs.Validator
	addFields(&v, pageErr)
	q.From = timeParam(c.r, "from", &v)
	q.To = timeParam(c.r, "to", &v)
	if q.From != nil && q.To != nil && !q.To.After(*q.From) {
		v.Add("to", "must be later than from")
	}
	if err := v.Err(); err != nil {
		return err
	}
	list, total, err := s.UserFields.Histories(c.r.Context(), communityID, q)
	if err != nil {
		return err
	}
	return c.list("Read user field histories success.", list, Page{Skip: &skip, Limit: &limit, Total: &total})
}

// timeParam reads an optional date or timestamp query parameter.
func timeParam(r *http.Request, name string, v *errs.Validator) *time.Time {
	s := strings.TrimSpace(r.URL.Query().Get(name))
	if s == "" {
		return nil
	}
	t, err := userfield.ParseDate(s)
	if err != nil {
		v.Add(name, "%s", err.Error())
		return nil
	}
	return &t
}

// actor is who the call acts as, for history rows and creators: the
// signed-in user, or the API key.
func (c *call) actor() userfield.Actor {
	if c.session != nil {
		return userfield.Actor{Kind: userfield.ActorUser, ID: c.session.UserID}
	}
	return userfield.Actor{Kind: userfield.ActorAPIKey, ID: c.key.ID}
}
