package httpapi

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/leaderboard"
)

// leaderboardFields are the fields a leaderboard projection may name.
var leaderboardFields = []string{"_id", "communityID", "name", "slug", "description", "image", "rankBy", "displayedFields",
	"displayFieldsOrder", "displayedColumns", "timeFilters", "performanceDisplay", "duration", "rankedUserRoles",
	"viewPermissionUserRoles", "widget", "enabled", "isPreviewEnabled", "displayOrder", "isDefault", "dummyUsers", "createdAt", "updatedAt"}

// leaderboardRoutes serve the partner leaderboard API (LB1-LB5) and the
// designed standings reads, which signed-in members may use too.
func (s *Server) leaderboardRoutes() {
	lb := s.Leaderboards
	key := partner("leaderboard")
	s.handle("GET /leaderboards", famM, key, func(c *call) error {
		q, fields, err := leaderboardListQuery(c.r)
		if err != nil {
			return err
		}
		list, total, err := lb.List(c.r.Context(), c.key.CommunityID, q)
		if err != nil {
			return err
		}
		out := make([]any, 0, len(list))
		for _, b := range list {
			p, err := project(b, fields)
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return c.list("Read leaderboards success.", out, Page{Page: &q.Page, Limit: &q.Limit, Total: &total})
	})
	s.handle("POST /leaderboards", famM, key, createOwn("Create leaderboard success.", lb.Create))
	s.handle("GET /leaderboards/{leaderboardId}", famM, key, func(c *call) error {
		var v errs.Validator
		fields := projection(&v, c.r.URL.Query().Get("fields"))
		if err := v.Err(); err != nil {
			return err
		}
		b, err := lb.Get(c.r.Context(), c.key.CommunityID, c.r.PathValue("leaderboardId"))
		if err != nil {
			return err
		}
		data, err := project(b, fields)
		if err != nil {
			return err
		}
		return c.ok(http.StatusOK, "Read leaderboard success.", data)
	})
	s.handle("PATCH /leaderboards/{leaderboardId}", famM, key, updateByID("leaderboardId", "Update leaderboard success.", lb.Update))
	s.handle("DELETE /leaderboards/{leaderboardId}", famM, key, deleteByID("leaderboardId", "Delete leaderboard success.", lb.Delete))

	viewers := key.orUser()
	s.handle("GET /leaderboards/{leaderboardId}/standings", famM, viewers, func(c *call) error {
		community, q, err := standingsQuery(c)
		if err != nil {
			return err
		}
		page, limit, err := pageLimit(c.r, 20, leaderboard.MaxStandingsLimit)
		if err != nil {
			return err
		}
		q.Offset, q.Limit = (page-1)*limit, limit
		st, err := lb.Standings(c.r.Context(), community, c.r.PathValue("leaderboardId"), q)
		if err != nil {
			return err
		}
		total := int(st.Total)
		return c.list("Read standings success.", st, Page{Page: &page, Limit: &limit, Total: &total})
	})
	s.handle("GET /leaderboards/{leaderboardId}/standings/member", famM, viewers, func(c *call) error {
		community, q, err := standingsQuery(c)
		if err != nil {
			return err
		}
		var v errs.Validator
		vals := c.r.URL.Query()
		q.Around = 5
		if a := vals.Get("around"); a != "" {
			n, convErr := strconv.Atoi(a)
			v.Check(convErr == nil && n >= 0 && n <= leaderboard.MaxAround, "around", "must be a whole number from 0 to %d", leaderboard.MaxAround)
			q.Around = n
		}
		ident := strings.TrimSpace(vals.Get("identifier"))
		kind, ok := identifierKinds[vals.Get("identifier_type")]
		v.Check(ok, "identifier_type", "must be email, id, _id or username")
		v.Check(ident != "" || c.session != nil, "identifier", "is required")
		if err := v.Err(); err != nil {
			return err
		}
		userID := ""
		if ident == "" {
			userID = c.session.UserID
		} else {
			u, _, err := s.Users.Store().FindMember(c.r.Context(), community, ident, kind)
			if err != nil {
				return err
			}
			userID = u.ID
		}
		pos, err := lb.Position(c.r.Context(), community, c.r.PathValue("leaderboardId"), userID, q)
		if err != nil {
			return err
		}
		return c.ok(http.StatusOK, "Read leaderboard position success.", pos)
	})
}

// standingsQuery resolves the community (the key's, or the community a
// signed-in member signed in through, where they must still be a member)
// and reads timeFilter.
func standingsQuery(c *call) (string, leaderboard.StandingsQuery, error) {
	q := leaderboard.StandingsQuery{TimeFilter: c.r.URL.Query().Get("timeFilter")}
	if c.session == nil {
		return c.key.CommunityID, q, nil
	}
	if err := c.requireGrant(c.session.CommunityID); err != nil {
		return "", q, err
	}
	q.Viewer = c.session.UserID
	return c.session.CommunityID, q, nil
}

// pageLimit reads page (from 1) and limit (1 to max) from the query string,
// naming each bad one.
func pageLimit(r *http.Request, defLimit, maxLimit int) (page, limit int, err error) {
	var v errs.Validator
	page, limit = 1, defLimit
	q := r.URL.Query()
	if s := q.Get("page"); s != "" {
		n, convErr := strconv.Atoi(s)
		v.Check(convErr == nil && n >= 1, "page", "must be a whole number of at least 1")
		page = n
	}
	if s := q.Get("limit"); s != "" {
		n, convErr := strconv.Atoi(s)
		v.Check(convErr == nil && n >= 1 && n <= maxLimit, "limit", "must be a whole number from 1 to %d", maxLimit)
		limit = n
	}
	return page, limit, v.Err()
}

// projection checks a fields= list against the leaderboard's fields (nil:
// the whole object).
func projection(v *errs.Validator, raw string) []string {
	if strings.TrimSpace(raw) == "" {
		return nil
	}
	var out []string
	for _, f := range strings.Split(raw, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
		case !slices.Contains(leaderboardFields, f):
			v.Add("fields", "unknown field %s", f)
		default:
			out = append(out, f)
		}
	}
	return out
}

// leaderboardListQuery reads LB1's page, limit, sort, fields and search.
func leaderboardListQuery(r *http.Request) (leaderboard.ListQuery, []string, error) {
	var v errs.Validator
	vals := r.URL.Query()
	page, limit, err := pageLimit(r, 20, 100)
	if err != nil {
		return leaderboard.ListQuery{}, nil, err
	}
	q := leaderboard.ListQuery{Page: page, Limit: limit, SortField: "createdAt"}
	if s := vals.Get("sort"); s != "" {
		field, dir, _ := strings.Cut(s, ":")
		_, known := leaderboard.Sortable[field]
		dir = strings.ToLower(dir)
		v.Check(known, "sort", "cannot sort by %q (sortable: createdAt, updatedAt, name, slug)", field)
		v.Check(dir == "" || dir == "asc" || dir == "desc", "sort", "direction must be asc or desc")
		q.SortField, q.SortDesc = field, dir == "desc"
	}
	if s := vals.Get("search"); s != "" {
		key, val, ok := strings.Cut(s, ":")
		val = strings.TrimSpace(val)
		v.Check(ok && key == "keyword" && val != "" && len(val) <= leaderboard.MaxNameLength, "search",
			"must be keyword:<value> (at most %d characters)", leaderboard.MaxNameLength)
		q.Keyword = val
	}
	fields := projection(&v, vals.Get("fields"))
	return q, fields, v.Err()
}
