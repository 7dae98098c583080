package httpapi

import (
	"net/http"

	"github.com/rallyhq/rally/internal/milestone"
)

// Milestone permissions (designed; US9 reads with getUserStats like its
// siblings US6 and US7).
const (
	permGetMilestones    = "getMilestones"
	permManageMilestones = "manageMilestones"
)

// milestoneRoutes serve the designed milestone management and a member's
// progress toward the milestones (US9).
func (s *Server) milestoneRoutes() {
	s.handle("GET /milestones", famM, partner(permGetMilestones), s.listMilestones)
	resource[milestone.Input, milestone.Milestone]{param: "milestoneId", noun: "milestone", readVerb: "Get",
		create: s.Milestones.Create, update: s.Milestones.Update, get: s.Milestones.Get, remove: s.Milestones.Delete,
	}.routes(s, "/milestones", partner(permGetMilestones), partner(permManageMilestones))
	s.handle("POST /users/milestones", famS, partner(permUserStats), s.userMilestones)
}

func (s *Server) listMilestones(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	page, limit, err := queryPage(c.r, "page", 1, milestone.DefaultListLimit, milestone.MaxListLimit)
	if err != nil {
		return err
	}
	list, total, err := s.Milestones.List(c.r.Context(), communityID, page, limit)
	if err != nil {
		return err
	}
	return c.list("Get milestones success.", list, Page{Page: &page, Limit: &limit, Total: &total})
}

// userMilestones answers US9: the member (named like US6/US7) and their
// progress toward every milestone, brought up to date first.
func (s *Server) userMilestones(c *call) error {
	var in memberBody
	// Streak milestones follow the streaks' own lazy evaluation.
	u, _, _, err := s.streakMember(c, &in, &in)
	if err != nil {
		return err
	}
	progress, err := s.Milestones.Refresh(c.r.Context(), c.key.CommunityID, u.ID)
	if err != nil {
		return err
	}
	if progress == nil {
		progress = []milestone.Progress{}
	}
	return c.ok(http.StatusOK, "Get user milestones success.", struct {
		UserID     string               `json:"userId"`
		ID         int64                `json:"id"`
		Email      string               `json:"email"`
		Milestones []milestone.Progress `json:"milestones"`
	}{u.ID, u.NumID, u.Email, progress})
}
