package httpapi

import (
	"net/http"

	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/minigame"
	"github.com/rallyhq/rally/internal/wallet"
)

// miniGameRoutes serve the spin wheel: its set-up (designed, modern), each
// member's wheel information (SM2/SM3), their mini-game logs (US6) and spins
// by partners and by signed-in members (designed).
func (s *Server) miniGameRoutes() {
	s.handle("GET /mini-games/spin-wheel", famM, partner(permManageMiniGames), s.getWheel)
	s.handle("PUT /mini-games/spin-wheel", famM, partner(permManageMiniGames), s.saveWheel)
	s.handle("DELETE /mini-games/spin-wheel", famM, partner(permManageMiniGames), s.deleteWheel)
	s.handle("PUT /users/mini-games/spin-wheel", famS, partner(permManageMiniGames), s.updateSpins)
	s.handle("POST /users/mini-games/spin-wheel/spin", famS, partner(permManageMiniGames), s.partnerSpin)
	s.handle("POST /users/mini-games/logs", famS, partner(permUserStats), s.miniGameLogs)
	memberGrants := []string{auth.GrantMember, auth.GrantAdmin, auth.GrantOwner}
	s.handle("GET /communities/{communityId}/mini-games/spin-wheel", famM, userToken(memberGrants...), s.memberWheel)
	s.handle("POST /communities/{communityId}/mini-games/spin-wheel/spin", famM, userToken(memberGrants...), s.memberSpin)
}

func (s *Server) getWheel(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	w, err := s.MiniGames.Wheel(c.r.Context(), communityID)
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Read spin wheel success.", w)
}

func (s *Server) saveWheel(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	var in minigame.WheelInput
	if err := c.decode(&in); err != nil {
		return err
	}
	w, created, err := s.MiniGames.SaveWheel(c.r.Context(), communityID, in)
	if err != nil {
		return err
	}
	if created {
		return c.ok(http.StatusCreated, "Create spin wheel success.", w)
	}
	return c.ok(http.StatusOK, "Update spin wheel success.", w)
}

func (s *Server) deleteWheel(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	if err := s.MiniGames.DeleteWheel(c.r.Context(), communityID); err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Delete spin wheel success.", map[string]string{"communityId": communityID})
}

func (s *Server) updateSpins(c *call) error {
	var in struct {
		memberBody
		minigame.SpinsInput
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	var v errs.Validator
	u, found, err := c.member(in.memberBody, &v)
	if vErr := v.Err(); vErr != nil {
		return vErr
	}
	if !found {
		return err
	}
	sp, err := s.MiniGames.UpdateSpins(c.r.Context(), c.key.CommunityID, u.ID, in.SpinsInput)
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Update spin wheel information success.", sp)
}

func (s *Server) partnerSpin(c *call) error {
	var in memberBody
	raw, err := c.decodeRaw(&in)
	if err != nil {
		return err
	}
	var v errs.Validator
	u, found, err := c.member(in, &v)
	if vErr := v.Err(); vErr != nil {
		return vErr
	}
	if !found {
		return err
	}
	return c.spin(u.ID, raw, wallet.Actor{Kind: wallet.ActorAPIKey, ID: c.key.ID})
}

func (s *Server) memberSpin(c *call) error {
	raw, err := readBody(c.r)
	if err != nil {
		return err
	}
	return c.spin(c.session.UserID, raw, wallet.Actor{Kind: wallet.ActorUser, ID: c.session.UserID})
}

// spin spins the wheel for userID in one transaction, honouring
// Idempotency-Key.
func (c *call) spin(userID string, raw []byte, actor wallet.Actor) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	path := "/v1/communities/" + communityID + "/mini-games/spin-wheel/spin/" + userID
	return c.idempotent(path, raw, func(tx *db.Tx) (int, string, any, error) {
		res, err := c.s.MiniGames.SpinTx(c.r.Context(), tx, communityID, userID, actor)
		if err != nil {
			return 0, "", nil, err
		}
		return http.StatusOK, "Spin success.", res, nil
	})
}

func (s *Server) memberWheel(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	ctx := c.r.Context()
	w, err := s.MiniGames.Wheel(ctx, communityID)
	if err != nil {
		return err
	}
	sp, err := s.MiniGames.Spins(ctx, communityID, c.session.UserID)
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Read spin wheel success.", struct {
		Wheel minigame.Wheel `json:"wheel"`
		Spins minigame.Spins `json:"spins"`
	}{w, sp})
}

func (s *Server) miniGameLogs(c *call) error {
	var in memberBody
	u, page, limit, err := c.memberAndPage(&in, &in)
	if err != nil {
		return err
	}
	logs, total, err := s.MiniGames.Logs(c.r.Context(), c.key.CommunityID, u.ID, page, limit)
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Get mini game logs success.", struct {
		Logs       []minigame.Log `json:"logs"`
		Pagination bodyPagination `json:"pagination"`
	}{logs, bodyPagination{Page: page, Limit: limit, Total: total, TotalPages: totalPages(total, limit)}})
}
