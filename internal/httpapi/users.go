package httpapi

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/user"
)

// userRoutes serve the Integration API's users (US1-US4, US8), the files
// they upload, and the Application API's user reads (AP1, AP2). The literal
// /users/... paths are POST routes and never meet GET /users/{userId}.
func (s *Server) userRoutes() {
	s.handle("POST /users", famS, partner("createUser"), s.createUser)
	s.handle("POST /users/info", famS, partner("getUserData"), s.userInfo)
	s.handle("POST /users/filter", famS, partner("getUserData"), s.filterUsers)
	s.handle("POST /users/manage", famS, partner("manageUser"), s.manageUser)
	s.handle("POST /users/avatar", famS, partner("manageUser"), s.uploadAvatar)
	s.bodyLimits["/users/avatar"] = avatarBodyBytes
	s.handle("GET /files/{key}", famM, public(), s.serveFile)
	s.handle("GET /users/{userId}", famM, userToken(), s.getUser)
	s.handle("GET /communities/{communityId}/users", famM, userToken(auth.GrantMember, auth.GrantOwner, auth.GrantAdmin),
		s.communityUsers)
}

// createdUserView is the answer to Create New User.
type createdUserView struct {
	ID            string     `json:"_id"`
	NumID         int64      `json:"id"`
	Username      string     `json:"username"`
	Email         string     `json:"email"`
	FirstName     string     `json:"firstName"`
	LastName      string     `json:"lastName"`
	DisplayName   string     `json:"displayName"`
	Avatar        *string    `json:"avatar"`
	EmailVerified bool       `json:"emailVerified"`
	CommunityID   string     `json:"communityId"`
	AccessLevel   int        `json:"accessLevel"`
	Joined        bool       `json:"joined"`
	ExternalID    *string    `json:"externalId"`
	ReferredBy    *string    `json:"referredBy"`
	CreatedAt     jsonx.Time `json:"createdAt"`
}

func (s *Server) createUser(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	var in user.CreateInput
	if err := c.decode(&in); err != nil {
		return err
	}
	out, err := s.Users.Create(c.r.Context(), communityID, in, user.FieldActor{Kind: "apikey", ID: c.key.ID})
	if err != nil {
		return err
	}
	u, m := out.User, out.Member
	return c.ok(http.StatusCreated, "Create user success.", createdUserView{
		ID: u.ID, NumID: u.NumID, Username: u.Username, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName,
		DisplayName: u.DisplayName, Avatar: u.Avatar, EmailVerified: u.EmailVerified, CommunityID: m.CommunityID,
		AccessLevel: m.AccessLevel, Joined: m.Joined, ExternalID: out.ExternalID, ReferredBy: out.ReferredBy,
		CreatedAt: jsonx.At(u.CreatedAt),
	})
}

// infoView is Get User Data's documented data object, field for field.
type infoView struct {
	UserID           string         `json:"userId"`
	Username         string         `json:"username"`
	XP               int64          `json:"xp"`
	Coins            int64          `json:"coins"`
	Roles            []string       `json:"roles"`
	HighestRole      string         `json:"highestRole"`
	FirstName        string         `json:"firstName"`
	LastName         string         `json:"lastName"`
	XPEarnedToday    int64          `json:"xpEarnedToday"`
	CoinsEarnedToday int64          `json:"coinsEarnedToday"`
	Language         string         `json:"language"`
	TotalMessages    int64          `json:"totalMessages"`
	TotalReactions   int64          `json:"totalReactions"`
	VisitCount       int            `json:"visitCount"`
	ReplySent        int64          `json:"replySent"`
	TimeSpent        int64          `json:"timeSpent"`
	LoginStreak      int64          `json:"loginStreak"`
	CustomFields     map[string]any `json:"customFields"`
	// Level and Tier are Rally's additions: where lifetime XP stands in
	// the community's tiers (level 0 and tier null below the first level).
	Level int        `json:"level"`
	Tier  *user.Tier `json:"tier"`
}

func (s *Server) userInfo(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	var in struct {
		IDOrEmail string `json:"idOrEmail"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	if strings.TrimSpace(in.IDOrEmail) == "" {
		var v errs.Validator
		v.Add("idOrEmail", "is required (numeric id, _id, email or username)")
		return v.Err()
	}
	info, err := s.Users.Info(c.r.Context(), communityID, in.IDOrEmail)
	if err != nil {
		return err
	}
	st := info.Stats
	// The documented body has no message.
	writeJSON(c.w, http.StatusOK, struct {
		Status string   `json:"status"`
		Data   infoView `json:"data"`
	}{"success", infoView{
		UserID: strconv.FormatInt(info.User.NumID, 10), Username: info.User.Username, XP: st.XP, Coins: st.Coins,
		Roles: info.Roles, HighestRole: info.HighestRole, FirstName: info.User.FirstName, LastName: info.User.LastName,
		XPEarnedToday: st.XPEarnedToday, CoinsEarnedToday: st.CoinsEarnedToday, Language: info.User.Language,
		TotalMessages: st.TotalMessages, TotalReactions: st.TotalReactions, VisitCount: info.Member.VisitCount,
		ReplySent: st.ReplySent, TimeSpent: st.TimeSpent, LoginStreak: st.LoginStreak, CustomFields: info.CustomFields,
		Level: st.Level, Tier: st.Tier,
	}})
	return nil
}

// filterView is Get Users with Filters' data: the page and its paging.
type filterView struct {
	Users       []map[string]any `json:"users"`
	PageSize    int              `json:"page_size"`
	NextCursor  string           `json:"next_cursor,omitempty"`
	TotalPages  *int             `json:"total_pages,omitempty"`
	CurrentPage *int             `json:"current_page,omitempty"`
}

func (s *Server) filterUsers(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	var in user.FilterRequest
	if err := c.decode(&in); err != nil {
		return err
	}
	res, err := s.Users.Filter(c.r.Context(), communityID, in)
	if err != nil {
		return err
	}
	v := filterView{Users: res.Users, PageSize: user.FilterPageSize, NextCursor: res.NextCursor}
	if res.PageMode {
		v.TotalPages, v.CurrentPage = &res.TotalPages, &res.CurrentPage
	}
	return c.ok(http.StatusOK, "Get users success.", v)
}

func (s *Server) manageUser(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	var in struct {
		Action string `json:"action"`
		User   string `json:"user"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	if err := s.Users.Manage(c.r.Context(), communityID, in.Action, in.User); err != nil {
		return err
	}
	// The documented answer echoes the request and nothing else.
	writeJSON(c.w, http.StatusOK, in)
	return nil
}

// profileFields are AP2's fields, each also a query flag selecting it.
var profileFields = []string{"_id", "id", "avatar", "displayName", "username", "firstName", "lastName", "email",
	"isOnline", "lastLogin"}

// profileView is a user as the Application API shows them; email only to
// the user themself and to owners and administrators.
func profileView(p user.Profile, withEmail bool) map[string]any {
	u := p.User
	v := map[string]any{
		"_id": u.ID, "id": u.NumID, "avatar": u.Avatar, "displayName": u.DisplayName, "username": u.Username,
		"firstName": u.FirstName, "lastName": u.LastName, "isOnline": p.IsOnline, "lastLogin": nil,
	}
	if u.LastLoginAt != nil {
		v["lastLogin"] = jsonx.At(*u.LastLoginAt)
	}
	if withEmail {
		v["email"] = u.Email
	}
	return v
}

func (s *Server) getUser(c *call) error {
	userID := strings.ToLower(c.r.PathValue("userId"))
	var v errs.Validator
	v.Check(id.Valid(userID), "userId", "must be a 24-hex ObjectId")
	q := c.r.URL.Query()
	var picked, dropped []string
	for _, f := range profileFields {
		raw := q.Get(f)
		if raw == "" {
			continue
		}
		b, err := strconv.ParseBool(raw)
		if err != nil {
			v.Add(f, "must be true or false")
			continue
		}
		if b {
			picked = append(picked, f)
		} else {
			dropped = append(dropped, f)
		}
	}
	if err := v.Err(); err != nil {
		return err
	}
	p, err := s.Users.Profile(c.r.Context(), c.session.UserID, userID)
	if err != nil {
		return err
	}
	view := profileView(p, userID == c.session.UserID)
	for k := range view {
		if (len(picked) > 0 && !slices.Contains(picked, k)) || slices.Contains(dropped, k) {
			delete(view, k)
		}
	}
	return c.ok(http.StatusOK, "Get user success.", view)
}

// maxSearchLen bounds AP1's search text.
const maxSearchLen = 100

func (s *Server) communityUsers(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	skip, limit, err := offsetPage(c.r)
	search := c.r.URL.Query().Get("search")
	if len(search) > maxSearchLen {
		var fields []errs.FieldError
		if e, ok := err.(*errs.Error); ok {
			fields = e.Fields
		}
		fields = append(fields, errs.FieldError{Field: "search", Message: "must be at most 100 characters"})
		err = &errs.Error{Kind: errs.Invalid, Message: "Invalid input.", Fields: fields}
	}
	if err != nil {
		return err
	}
	held, err := s.Grants.Grants(c.r.Context(), communityID, c.session.UserID)
	if err != nil {
		return err
	}
	admin := slices.Contains(held, auth.GrantAdmin) || slices.Contains(held, auth.GrantOwner)
	list, total, err := s.Users.Members(c.r.Context(), communityID, search, skip, limit)
	if err != nil {
		return err
	}
	views := make([]map[string]any, len(list))
	for i, p := range list {
		views[i] = profileView(p, admin || p.User.ID == c.session.UserID)
	}
	return c.list("Get community users success.", views, Page{Skip: &skip, Limit: &limit, Total: &total})
}
