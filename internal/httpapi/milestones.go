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
	s.handle("POST /milestones", famM, partner(permManageMilestones), s.saveMilestone)
	s.handle("GET /milestones/{milestoneId}", famM, partner(permGetMilestones), s.getMilestone)
	s.handle("PUT /milestones/{milestoneId}", famM, partner(permManageMilestones), s.saveMilestone)
	s.handle("DELETE /milestones/{milestoneId}", famM, partner(permManageMilestones), s.deleteMilestone)
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

// saveMilestone creates a milestone (POST) or updates the path's one.
func (s *Server) saveMilestone(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	var in milestone.Input
	if err := c.decode(&in); err != nil {
		return err
	}
	id := c.r.PathValue("milestoneId")
	if id == "" {
		m, err := s.Milestones.Create(c.r.Context(), communityID, in)
		if err != nil {
			return err
		}
		return c.ok(http.StatusCreated, "Create milestone success.", m)
	}
	m, err := s.Milestones.Update(c.r.Context(), communityID, id, in)
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Update milestone success.", m)
}

func (s *Server) getMilestone(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	m, err := s.Milestones.Get(c.r.Context(), communityID, c.r.PathValue("milestoneId"))
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Get milestone success.", m)
}

func (s *Server) deleteMilestone(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	id := c.r.PathValue("milestoneId")
	if err := s.Milestones.Delete(c.r.Context(), communityID, id); err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Delete milestone success.", map[string]string{"_id": id})
}

// userMilestones answers US9: the member (named like US6/US7) and their
// progress toward every milestone, brought up to date first.
func (s *Server) userMilestones(c *call) error {
	var in memberBody
	u, _, _, err := c.memberAndPage(&in, &in)
	if err != nil {
		return err
	}
	ctx, communityID := c.r.Context(), c.key.CommunityID
	// Streak milestones follow the streaks' own lazy evaluation.
	if err := s.Streaks.Refresh(ctx, communityID, u.ID); err != nil {
		return err
	}
	progress, err := s.Milestones.Refresh(ctx, communityID, u.ID)
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
