package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/rallyhq/rally/internal/badge"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/role"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/wallet"
)

// Badge key permissions (endpoints.md, decided there).
const (
	permBadgesRead   = "getBadges"
	permBadgesManage = "manageBadges"
)

// badgeMemberInput names the member a badge is awarded to or taken from:
// the documented userId (numeric id or _id, as a string or a number), or
// identifier + identifier_type as the integration endpoints send it; and
// how many times.
type badgeMemberInput struct {
	UserID         json.RawMessage `json:"userId"`
	Identifier     string          `json:"identifier"`
	IdentifierType string          `json:"identifier_type"`
	Quantity       *int64          `json:"quantity"`
}

// badgeRoutes serve badges (GA1-GA6, legacy family), members' badges and
// the custom-badge applications members send and moderators decide
// (designed, legacy family like their siblings).
func (s *Server) badgeRoutes() {
	read := partner(permBadgesRead).legacy()
	manage := partner(permBadgesManage).legacy()
	s.handle("GET /badges", famL, read, func(c *call) error {
		communityID, err := c.community()
		if err != nil {
			return err
		}
		skip, limit, err := offsetPage(c.r)
		if err != nil {
			return err
		}
		list, total, err := s.Badges.List(c.r.Context(), communityID,
			badge.ListQuery{Action: strings.TrimSpace(c.r.URL.Query().Get("action")), Skip: skip, Limit: limit})
		if err != nil {
			return err
		}
		return c.list("Badges fetched successfully", list, Page{Skip: &skip, Limit: &limit, Total: &total})
	})
	s.handle("GET /badges/{badgeId}", famL, read, inCommunity(http.StatusOK, "Badge fetched successfully",
		func(c *call, communityID string) (badge.Badge, error) {
			return s.Badges.Get(c.r.Context(), communityID, c.r.PathValue("badgeId"))
		}))
	s.handle("POST /badges", famL, manage, inCommunity(http.StatusOK, "Badge has been created successfully",
		decoded(func(c *call, communityID string, in badge.Input) (badge.Badge, error) {
			return s.Badges.Create(c.r.Context(), communityID, in)
		})))
	s.handle("PUT /badges/{badgeId}", famL, manage, inCommunity(http.StatusOK, "Badge has been updated successfully",
		decoded(func(c *call, communityID string, in badge.Input) (badge.Badge, error) {
			return s.Badges.Update(c.r.Context(), communityID, c.r.PathValue("badgeId"), in)
		})))
	s.handle("DELETE /badges/{badgeId}", famL, manage, inCommunity(http.StatusOK, "Badge has been deleted successfully",
		func(c *call, communityID string) (badge.Badge, error) {
			return s.Badges.Delete(c.r.Context(), communityID, c.r.PathValue("badgeId"))
		}))
	s.handle("POST /badges/{badgeId}/award", famL, manage, s.awardBadge)
	s.handle("POST /badges/{badgeId}/remove", famL, manage, func(c *call) error {
		m, err := c.badgeMember(badge.MaxQuantity)
		if err != nil {
			return err
		}
		if _, err := s.Badges.Remove(c.r.Context(), m.communityID, c.r.PathValue("badgeId"), m.user.ID, m.quantity, c.badgeActor()); err != nil {
			return err
		}
		return c.ok(http.StatusOK, "Badge has been removed successfully", []string{})
	})
	s.handle("GET /users/{userId}/badges", famL, read, func(c *call) error {
		communityID, err := c.community()
		if err != nil {
			return err
		}
		u, err := s.Wallet.Member(c.r.Context(), communityID, c.r.PathValue("userId"))
		if err != nil {
			return err
		}
		skip, limit, err := offsetPage(c.r)
		if err != nil {
			return err
		}
		list, total, err := s.Badges.Held(c.r.Context(), communityID, u.ID, skip, limit)
		if err != nil {
			return err
		}
		return c.list("User badges fetched successfully", list, Page{Skip: &skip, Limit: &limit, Total: &total})
	})
	s.applicationRoutes(manage)
}

// applicationRoutes serve custom-badge applications: members apply with
// their session token; moderators (a partner key with manageBadges, or a
// signed-in member who may manage messages: owners and administrators
// included) list and decide them. Members listing see only their own.
func (s *Server) applicationRoutes(manage access) {
	s.bodyLimits["/communities/*/badges/*/apply"] = proofBodyBytes
	s.handle("POST /communities/{communityId}/badges/{badgeId}/apply", famL, userToken(),
		inCommunity(http.StatusCreated, "Badge application submitted successfully", func(c *call, communityID string) (badge.Application, error) {
			in, err := s.applyInput(c)
			if err != nil {
				return badge.Application{}, err
			}
			base := baseURL(c.r)
			return s.Badges.Apply(c.r.Context(), communityID, c.r.PathValue("badgeId"), c.session.UserID, in,
				func(key string) string { return base + "/v1/files/" + key })
		}))
	s.handle("GET /communities/{communityId}/badge-applications", famL, manage.orUser(), func(c *call) error {
		communityID, err := c.community()
		if err != nil {
			return err
		}
		q, err := c.applicationQuery(communityID)
		if err != nil {
			return err
		}
		list, total, err := s.Badges.Applications(c.r.Context(), communityID, q)
		if err != nil {
			return err
		}
		return c.list("Badge applications fetched successfully", list, Page{Skip: &q.Skip, Limit: &q.Limit, Total: &total})
	})
	s.handle("POST /communities/{communityId}/badge-applications/{applicationId}/approve", famL, manage.orUser(), func(c *call) error {
		communityID, err := c.moderatorCommunity()
		if err != nil {
			return err
		}
		a, aw, held, err := s.Badges.Approve(c.r.Context(), communityID, c.r.PathValue("applicationId"), c.badgeActor())
		if err != nil {
			return err
		}
		return c.ok(http.StatusOK, "Badge application approved successfully", applicationDecision{Application: a, Award: &aw, Badge: &held})
	})
	s.handle("POST /communities/{communityId}/badge-applications/{applicationId}/reject", famL, manage.orUser(), func(c *call) error {
		communityID, err := c.moderatorCommunity()
		if err != nil {
			return err
		}
		var in struct {
			Reason string `json:"reason"`
		}
		if c.r.ContentLength != 0 {
			if err := c.decode(&in); err != nil {
				return err
			}
		}
		a, err := s.Badges.Reject(c.r.Context(), communityID, c.r.PathValue("applicationId"), in.Reason, c.badgeActor())
		if err != nil {
			return err
		}
		return c.ok(http.StatusOK, "Badge application rejected successfully", applicationDecision{Application: a})
	})
}

// applicationDecision is the answer to deciding an application: with an
// approval, the award and the badge as the member now holds it.
type applicationDecision struct {
	Application badge.Application `json:"application"`
	Award       *badge.Award      `json:"award,omitempty"`
	Badge       *badge.Held       `json:"badge,omitempty"`
}

// awardBadge serves GA6: the badge's rewards are granted in the award's
// transaction; Idempotency-Key is honoured.
func (s *Server) awardBadge(c *call) error {
	m, err := c.badgeMember(badge.MaxAwardQuantity)
	if err != nil {
		return err
	}
	g := badge.Grant{CommunityID: m.communityID, BadgeID: c.r.PathValue("badgeId"), UserID: m.user.ID, Quantity: m.quantity, Actor: c.badgeActor()}
	return c.idempotent("/v1/badges/"+strings.ToLower(g.BadgeID)+"/award", m.raw, func(tx *db.Tx) (int, string, any, error) {
		_, held, err := s.Badges.AwardTx(c.r.Context(), tx, g)
		if err != nil {
			return 0, "", nil, err
		}
		return http.StatusOK, "Badge has been rewarded successfully", []badge.Held{held}, nil
	})
}

// badgeTarget is the member a badge request names, in the call's
// community, with the request's quantity (0 when absent) and raw body.
type badgeTarget struct {
	communityID string
	user        user.User
	quantity    int64
	raw         []byte
}

// badgeMember reads the body of an award or removal and resolves its member
// to a live member of the call's community, naming every offending field; a
// quantity sent must be from 1 to maxQuantity.
func (c *call) badgeMember(maxQuantity int64) (badgeTarget, error) {
	var (
		t   badgeTarget
		in  badgeMemberInput
		err error
		v   errs.Validator
	)
	if t.communityID, err = c.community(); err != nil {
		return t, err
	}
	if t.raw, err = c.decodeRaw(&in); err != nil {
		return t, err
	}
	if in.Quantity != nil {
		t.quantity = *in.Quantity
		v.Check(t.quantity >= 1 && t.quantity <= maxQuantity, "quantity", "must be a whole number from 1 to %d", maxQuantity)
	}
	hasUserID := len(in.UserID) > 0 && string(in.UserID) != "null"
	identifier := strings.TrimSpace(in.Identifier)
	kind, kindOK := identifierKinds[strings.TrimSpace(in.IdentifierType)]
	ref, refOK := userRef(in.UserID)
	switch {
	case hasUserID && identifier != "":
		v.Add("identifier", "send either userId or identifier, not both")
	case hasUserID:
		v.Check(refOK, "userId", "must be a user's numeric id or 24-hex _id")
	case identifier != "":
		v.Check(kindOK, "identifier_type", "must be email, id, _id or username")
	default:
		v.Add("userId", "is required: a user's numeric id or _id (or send identifier and identifier_type)")
	}
	if err := v.Err(); err != nil {
		return t, err
	}
	if hasUserID {
		t.user, err = c.s.Wallet.Member(c.r.Context(), t.communityID, ref)
	} else {
		t.user, _, err = c.s.Users.Store().FindMember(c.r.Context(), t.communityID, identifier, kind)
	}
	return t, err
}

// badgeActor is who is acting: the API key or the signed-in user.
func (c *call) badgeActor() wallet.Actor {
	if c.session != nil {
		return wallet.Actor{Kind: wallet.ActorUser, ID: c.session.UserID}
	}
	return wallet.Actor{Kind: wallet.ActorAPIKey, ID: c.key.ID}
}

// isModerator reports whether the caller may decide badge applications: a
// partner key (authorise checked manageBadges) or a signed-in member who may
// manage messages in the community (owners and administrators may).
func (c *call) isModerator(communityID string) (bool, error) {
	if c.session == nil {
		return true, nil
	}
	return c.s.Roles.Can(c.r.Context(), communityID, c.session.UserID, "", role.PermManageMessages)
}

// moderatorCommunity returns the call's community when the caller is a
// moderator there (403 otherwise).
func (c *call) moderatorCommunity() (string, error) {
	communityID, err := c.community()
	if err != nil {
		return "", err
	}
	ok, err := c.isModerator(communityID)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errs.Forbiddenf("You need the manage_messages permission to decide badge applications.")
	}
	return communityID, nil
}

// applicationQuery reads status, badgeId, userId, skip and limit. Members
// who are not moderators see only their own applications.
func (c *call) applicationQuery(communityID string) (badge.ApplicationQuery, error) {
	var (
		q   badge.ApplicationQuery
		err error
		v   errs.Validator
	)
	if q.Skip, q.Limit, err = offsetPage(c.r); err != nil {
		return q, err
	}
	p := c.r.URL.Query()
	q.Status, q.BadgeID = p.Get("status"), p.Get("badgeId")
	v.Check(q.Status == "" || slices.Contains(badge.Statuses, q.Status), "status", "must be one of %s", strings.Join(badge.Statuses, ", "))
	if err := v.Err(); err != nil {
		return q, err
	}
	mod, err := c.isModerator(communityID)
	if err != nil {
		return q, err
	}
	switch {
	case !mod:
		q.UserID = c.session.UserID
	case p.Get("userId") != "":
		u, err := c.s.Wallet.Member(c.r.Context(), communityID, p.Get("userId"))
		if err != nil {
			return q, err
		}
		q.UserID = u.ID
	}
	return q, nil
}
