package httpapi

import (
	"math"
	"net/http"
	"strings"

	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/streak"
	"github.com/rallyhq/rally/internal/user"
)

// Streak and mini-game permissions (endpoints.md rows SM1-SM5, US6, US7).
const (
	permGetStreaks      = "getStreaks"
	permManageStreaks   = "manageStreaks"
	permManageMiniGames = "manageMiniGames"
	permUserStats       = "getUserStats"
)

// streakRoutes serve streak definitions (SM4, SM5 and the designed create,
// read and delete), streak logs (SM1), the member's mini-game and streak
// stats (US7), and the spin wheel (SM2/SM3, US6, the designed wheel set-up
// and spins).
func (s *Server) streakRoutes() {
	s.handle("GET /streaks", famS, partner(permGetStreaks), s.listStreaks)
	resource[streak.Input, streak.Streak]{param: "streakId", noun: "streak", readVerb: "Read",
		create: s.Streaks.Create, update: s.Streaks.Update, get: s.Streaks.Get, remove: s.Streaks.Delete,
	}.routes(s, "/streaks", partner(permGetStreaks), partner(permManageStreaks))
	s.handle("POST /users/streaks/logs", famS, partner(permUserStats), s.streakLogs)
	s.handle("POST /users/mini-games/stats", famS, partner(permUserStats), s.miniGameStats)
	s.miniGameRoutes()
}

// streakPagination is SM4's documented top-level pagination.
type streakPagination struct {
	Total       int  `json:"total"`
	CurrentPage int  `json:"currentPage"`
	TotalPages  int  `json:"totalPages"`
	HasNextPage bool `json:"hasNextPage"`
	HasPrevPage bool `json:"hasPrevPage"`
}

func totalPages(total, limit int) int { return int(math.Ceil(float64(total) / float64(limit))) }

func (s *Server) listStreaks(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	page, limit, err := queryPage(c.r, "page", 1, streak.DefaultListLimit, streak.MaxListLimit)
	if err != nil {
		return err
	}
	items, total, err := s.Streaks.List(c.r.Context(), communityID, page, limit)
	if err != nil {
		return err
	}
	pages := totalPages(total, limit)
	// The documented body: {status, data, pagination}, no message.
	writeJSON(c.w, http.StatusOK, struct {
		Status     string           `json:"status"`
		Data       []streak.Streak  `json:"data"`
		Pagination streakPagination `json:"pagination"`
	}{"success", items, streakPagination{Total: total, CurrentPage: page, TotalPages: pages, HasNextPage: page < pages, HasPrevPage: page > 1}})
	return nil
}

// memberBody names a member in a body (identifier + identifier_type, or
// email) with optional body paging, as US6, US7, SM1 and SM2 take it.
type memberBody struct {
	Identifier     string `json:"identifier"`
	IdentifierType string `json:"identifier_type"`
	Email          string `json:"email"`
	Page           *int   `json:"page"`
	Limit          *int   `json:"limit"`
}

// bodyPagination is the paging of an integration list answered in data.
type bodyPagination struct {
	Page       int `json:"page"`
	Limit      int `json:"limit"`
	Total      int `json:"total"`
	TotalPages int `json:"total_pages"`
}

// member resolves the body's member in the key's community; v collects
// the offending fields, which the caller reports with its own.
func (c *call) member(b memberBody, v *errs.Validator) (user.User, bool, error) {
	communityID, err := c.community()
	if err != nil {
		return user.User{}, false, err
	}
	ident, kind := strings.TrimSpace(b.Identifier), b.IdentifierType
	if ident == "" && strings.TrimSpace(b.Email) != "" {
		ident, kind = strings.TrimSpace(b.Email), "email"
	}
	k, okKind := identifierKinds[kind]
	v.Check(ident != "", "identifier", "is required (or email)")
	v.Check(okKind, "identifier_type", "must be email, id, _id or username")
	if ident == "" || !okKind {
		return user.User{}, false, nil
	}
	u, _, err := c.s.UserStore.FindMember(c.r.Context(), communityID, ident, k)
	return u, err == nil, err
}

// page reads the body's paging; v collects the offending fields.
func (b memberBody) page(v *errs.Validator) (page, limit int) {
	page, limit = 1, defaultLimit
	if b.Page != nil {
		page = *b.Page
		v.Check(page >= 1, "page", "must be a whole number of at least 1")
	}
	if b.Limit != nil {
		limit = *b.Limit
		v.Check(limit >= 1 && limit <= maxLimit, "limit", "must be a whole number from 1 to %d", maxLimit)
	}
	return page, limit
}

// memberAndPage decodes a member body into in (which embeds memberBody
// through b) and resolves the member and paging, naming every offending
// field at once.
func (c *call) memberAndPage(b *memberBody, in any) (u user.User, page, limit int, err error) {
	if err := c.decode(in); err != nil {
		return user.User{}, 0, 0, err
	}
	var v errs.Validator
	page, limit = b.page(&v)
	u, found, err := c.member(*b, &v)
	if vErr := v.Err(); vErr != nil {
		return user.User{}, 0, 0, vErr
	}
	if err != nil || !found {
		return user.User{}, 0, 0, err
	}
	return u, page, limit, nil
}

// streakMember is memberAndPage for the reads that show streak state: the
// member's streaks, evaluated lazily, are brought up to date first.
func (s *Server) streakMember(c *call, b *memberBody, in any) (u user.User, page, limit int, err error) {
	if u, page, limit, err = c.memberAndPage(b, in); err != nil {
		return user.User{}, 0, 0, err
	}
	if err := s.Streaks.Refresh(c.r.Context(), c.key.CommunityID, u.ID); err != nil {
		return user.User{}, 0, 0, err
	}
	return u, page, limit, nil
}

func (s *Server) streakLogs(c *call) error {
	var in struct {
		memberBody
		StreakID string `json:"streakId"`
	}
	u, page, limit, err := s.streakMember(c, &in.memberBody, &in)
	if err != nil {
		return err
	}
	ctx := c.r.Context()
	logs, total, err := s.Streaks.Logs(ctx, c.key.CommunityID, u.ID, streak.LogQuery{StreakID: in.StreakID, Page: page, Limit: limit})
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Get streak logs success.", struct {
		Logs       []streak.Log   `json:"logs"`
		Pagination bodyPagination `json:"pagination"`
	}{logs, bodyPagination{Page: page, Limit: limit, Total: total, TotalPages: totalPages(total, limit)}})
}

func (s *Server) miniGameStats(c *call) error {
	var in memberBody
	u, _, _, err := s.streakMember(c, &in, &in)
	if err != nil {
		return err
	}
	ctx, communityID := c.r.Context(), c.key.CommunityID
	standings, err := s.Streaks.Standings(ctx, communityID, u.ID)
	if err != nil {
		return err
	}
	login, err := s.Streaks.Login(ctx, communityID, u.ID)
	if err != nil {
		return err
	}
	spins, err := s.MiniGames.Spins(ctx, communityID, u.ID)
	if err != nil {
		return err
	}
	summary, err := s.MiniGames.Summary(ctx, communityID, u.ID)
	if err != nil {
		return err
	}
	type miniGames struct {
		SpinWheel any `json:"spinWheel"`
		Summary   any `json:"summary"`
	}
	return c.ok(http.StatusOK, "Get mini games and streak stats success.", struct {
		UserID      string            `json:"userId"`
		ID          int64             `json:"id"`
		Email       string            `json:"email"`
		LoginStreak any               `json:"loginStreak"`
		Streaks     []streak.Standing `json:"streaks"`
		MiniGames   miniGames         `json:"miniGames"`
	}{u.ID, u.NumID, u.Email, login, standings, miniGames{spins, summary}})
}
