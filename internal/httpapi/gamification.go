package httpapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/gamification"
)

// Gamification permissions (endpoints.md, GA7-GA9, GA12, GA13, US5).
const (
	permManageGamification = "manageGamification"
	permGetTiers           = "getTiers"
	permGetUserStats       = "getUserStats"
)

// Messages the docs show for these endpoints; the tier setting answers with
// the XP setting's text, as documented.
const (
	msgSettingUpdated = "XP Setting has been updated successfully"
	msgUserStats      = "User gamification stats fetched successfully"
)

// gamificationRoutes serve the XP and tier settings (GA12, GA13, GA7), the
// daily history (GA8, both variants), the gamification logs (GA9) and the
// activity stats (US5). The legacy {serverId} is the community id and is
// routed as {communityId}, so it is checked against the credential.
func (s *Server) gamificationRoutes() {
	g := s.Gamification
	manage := partner(permManageGamification).orUser(auth.GrantOwner, auth.GrantAdmin)
	s.handle("POST /gamifications/{communityId}/xp-setting", famL, manage, updateOwn(msgSettingUpdated, g.UpdateXPSetting))
	s.handle("POST /gamifications/{communityId}/tier-setting", famL, manage, updateOwn(msgSettingUpdated, g.UpdateTierSetting))
	s.handle("GET /tiers", famM, partner(permGetTiers), readOwn("Read tiers and XP settings success.", g.Settings))
	s.handle("GET /users/activity/daily", famS, partner(permGetUserStats), s.dailyHistory)
	s.handle("POST /users/activity/daily", famS, partner(permGetUserStats), statsRead(g.DailyBatch, msgUserStats))
	s.handle("POST /users/activity/stats", famS, partner(permGetUserStats), statsRead(g.Activity, msgUserStats))
	s.handle("POST /users/activity/logs", famS, partner(permGetUserStats),
		statsRead(g.Logs, "User gamification logs fetched successfully"))
}

// statsRead serves a read whose query is the JSON body.
func statsRead[Q, T any](read func(context.Context, string, Q) (T, error), message string) func(*call) error {
	return func(c *call) error {
		return writeOwn(c, http.StatusOK, message, func(community string, q Q) (T, error) {
			return read(c.r.Context(), community, q)
		})
	}
}

// dailyHistory is GA8's GET variant: identifier, identifier_type and days
// in the query.
func (s *Server) dailyHistory(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	q := c.r.URL.Query()
	in := gamification.RangeQuery{Identifier: q.Get("identifier"), IdentifierType: q.Get("identifier_type")}
	if raw := q.Get("days"); raw != "" {
		// Not a number: 0, which the service names with every other bad field.
		n, _ := strconv.Atoi(raw)
		in.Days = &n
	}
	h, err := s.Gamification.History(c.r.Context(), communityID, in)
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, msgUserStats, h)
}
