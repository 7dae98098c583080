package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/referral"
	"github.com/rallyhq/rally/internal/user"
)

// Referral permissions (endpoints.md rows GA10, GA11; the writes are
// designed here).
const (
	permGetUserData     = "getUserData"
	permManageReferrals = "manageReferrals"
)

// referralRoutes serve the referral summary (GA10, with its documented
// /apis/referral/summary form, which normalises to /referral/summary), the
// program list (GA11), and the designed program and settings management.
func (s *Server) referralRoutes() {
	s.handle("POST /referrals/summary", famM, partner(permGetUserData), s.referralSummary)
	s.handle("POST /referral/summary", famM, partner(permGetUserData), s.referralSummary)
	s.handle("GET /referrals/programs", famM, partner(permGetUserData), s.listReferralPrograms)
	resource[referral.ProgramInput, referral.Program]{param: "programId", noun: "referral program", readVerb: "Get",
		create: s.Referrals.CreateProgram, update: s.Referrals.UpdateProgram, get: s.Referrals.Program, remove: s.Referrals.DeleteProgram,
	}.routes(s, "/referrals/programs", partner(permGetUserData), partner(permManageReferrals))
	s.handle("GET /referrals/settings", famM, partner(permGetUserData), s.getReferralSettings)
	s.handle("PUT /referrals/settings", famM, partner(permManageReferrals), s.updateReferralSettings)
}

func (s *Server) listReferralPrograms(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	page, limit, err := queryPage(c.r, "page", 1, referral.DefaultListLimit, referral.MaxListLimit)
	if err != nil {
		return err
	}
	list, total, err := s.Referrals.Programs(c.r.Context(), communityID,
		referral.ProgramQuery{Status: c.r.URL.Query().Get("status"), Page: page, Limit: limit})
	if err != nil {
		return err
	}
	return c.list("Get referral programs success.", list, Page{Page: &page, Limit: &limit, Total: &total})
}

func (s *Server) getReferralSettings(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	st, err := s.Referrals.Settings(c.r.Context(), communityID)
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Get referral settings success.", st)
}

func (s *Server) updateReferralSettings(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	var in referral.SettingsInput
	if err := c.decode(&in); err != nil {
		return err
	}
	st, err := s.Referrals.UpdateSettings(c.r.Context(), communityID, in)
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Update referral settings success.", st)
}

// referralIdentifier is GA10's documented identifier object
// {type, value, fieldName}.
type referralIdentifier struct {
	Type      string `json:"type"`
	Value     string `json:"value"`
	FieldName string `json:"fieldName"`
}

// referralSummaryBody is GA10's body. The identifier is the documented
// object; the sibling form (identifier as a string with identifier_type and
// fieldName beside it) is accepted too.
type referralSummaryBody struct {
	Identifier     json.RawMessage `json:"identifier"`
	IdentifierType string          `json:"identifier_type"`
	FieldName      string          `json:"fieldName"`
	ProgramID      string          `json:"programId"`
	Pagination     *struct {
		Limit  *int    `json:"limit"`
		Cursor *string `json:"cursor"`
	} `json:"pagination"`
}

// referralIdentifierTypes maps GA10's identifier types to user lookups;
// custom-field is resolved by the referral service.
var referralIdentifierTypes = map[string]string{
	"email": user.ByEmail, "id": user.ByID, "userId": user.ByObjectID, "_id": user.ByObjectID, "username": user.ByUsername,
	"custom-field": "",
}

func (s *Server) referralSummary(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	var in referralSummaryBody
	if err := c.decode(&in); err != nil {
		return err
	}
	var (
		v     errs.Validator
		ident referralIdentifier
		field = "identifier"
	)
	raw := bytes.TrimSpace(in.Identifier)
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
		v.Add("identifier", "is required")
	case raw[0] == '{':
		if json.Unmarshal(raw, &ident) != nil {
			v.Add("identifier", "must be an object {type, value, fieldName}")
		}
		field = "identifier."
	case raw[0] == '"':
		_ = json.Unmarshal(raw, &ident.Value)
		ident.Type, ident.FieldName = in.IdentifierType, in.FieldName
	default:
		v.Add("identifier", "must be an object {type, value, fieldName}")
	}
	typeField, valueField, nameField := "identifier_type", "identifier", "fieldName"
	if field == "identifier." {
		typeField, valueField, nameField = "identifier.type", "identifier.value", "identifier.fieldName"
	}
	ident.Value = strings.TrimSpace(ident.Value)
	kind, okType := referralIdentifierTypes[ident.Type]
	if v.Err() == nil {
		v.Check(okType, typeField, "must be email, id, userId, _id, username or custom-field")
		v.Check(ident.Value != "", valueField, "is required")
		v.Check(ident.Type != "custom-field" || strings.TrimSpace(ident.FieldName) != "", nameField, "is required when type is custom-field")
	}
	q := referral.SummaryQuery{ProgramID: strings.TrimSpace(in.ProgramID), Limit: referral.DefaultSummaryLimit}
	if in.Pagination != nil {
		if in.Pagination.Limit != nil {
			q.Limit = *in.Pagination.Limit
			v.Check(q.Limit >= 1 && q.Limit <= referral.MaxSummaryLimit, "pagination.limit", "must be a whole number from 1 to %d",
				referral.MaxSummaryLimit)
		}
		if in.Pagination.Cursor != nil {
			q.Cursor = *in.Pagination.Cursor
			v.Check(referral.ValidCursor(q.Cursor), "pagination.cursor", "invalid cursor")
		}
	}
	if err := v.Err(); err != nil {
		return err
	}
	ctx := c.r.Context()
	lookup, by := ident.Value, kind
	if ident.Type == "custom-field" {
		userID, err := s.Referrals.MemberByField(ctx, communityID, ident.FieldName, ident.Value, nameField)
		if err != nil {
			return err
		}
		lookup, by = userID, user.ByObjectID
	}
	u, _, err := s.UserStore.FindMember(ctx, communityID, lookup, by)
	if err != nil {
		return err
	}
	sum, err := s.Referrals.Summarize(ctx, communityID, u, q)
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Get referral summary success.", sum)
}
