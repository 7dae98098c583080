package gamification

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/xp"
)

// History bounds.
const (
	DefaultDays = 30
	MaxDays     = 365
	// DefaultPageLimit and MaxPageLimit bound page/limit paging.
	DefaultPageLimit = 50
	MaxPageLimit     = 100
	// MaxIdentifiers bounds the identifiers of one daily batch request.
	MaxIdentifiers = 1000
	// batchDateLayout is the daily batch's documented DD/MM/YYYY.
	batchDateLayout = "02/01/2006"
)

// identifierTypes are the accepted identifier_type values ("" = any form).
var identifierTypes = map[string]string{"": user.ByAny, "email": user.ByEmail, "id": user.ByID, "_id": user.ByObjectID,
	"username": user.ByUsername}

// checkIdentifierType names identifier_type when it is not accepted.
func checkIdentifierType(v *errs.Validator, typ string) {
	_, ok := identifierTypes[typ]
	v.Check(ok, "identifier_type", "must be one of email, id, _id, username")
}

// RangeQuery names one member and how many days back to report (GA8 GET,
// US5). Days counts today: 1 is today only.
type RangeQuery struct {
	Identifier     string `json:"identifier"`
	IdentifierType string `json:"identifier_type"`
	Days           *int   `json:"days"`
}

// DateRange is a report's first and last UTC day, YYYY-MM-DD.
type DateRange struct {
	StartDate string `json:"start_date"`
	EndDate   string `json:"end_date"`
}

// Earned is XP and coins awarded.
type Earned struct {
	Coins int64 `json:"coins"`
	XP    int64 `json:"xp"`
}

// EarnedDay is one day of a member's history.
type EarnedDay struct {
	Date string `json:"date"`
	Earned
}

// History is GA8's range answer: XP and coins awarded per UTC day (the net
// of the gamification log: awards minus take-backs), newest day first, every
// day of the range present.
type History struct {
	// UserID is the member's numeric id, as the documented sample shows.
	UserID     string      `json:"user_id"`
	Range      DateRange   `json:"range"`
	Totals     Earned      `json:"totals"`
	DailyStats []EarnedDay `json:"daily_stats"`
}

// days validates q and returns the member and the range's days, newest
// first.
func (s *Service) rangeOf(ctx context.Context, communityID string, q RangeQuery) (user.User, []string, error) {
	var v errs.Validator
	v.Check(strings.TrimSpace(q.Identifier) != "", "identifier", "is required")
	checkIdentifierType(&v, q.IdentifierType)
	days := DefaultDays
	if q.Days != nil {
		days = *q.Days
		v.Check(days >= 1 && days <= MaxDays, "days", "must be a whole number from 1 to %d", MaxDays)
	}
	if err := v.Err(); err != nil {
		return user.User{}, nil, err
	}
	u, _, err := s.d.Users.FindMember(ctx, communityID, q.Identifier, identifierTypes[q.IdentifierType])
	if err != nil {
		return user.User{}, nil, err
	}
	today := s.d.Clock.Now().UTC()
	list := make([]string, days)
	for i := range list {
		list[i] = today.AddDate(0, 0, -i).Format(time.DateOnly)
	}
	return u, list, nil
}

// History returns the member's XP and coins per UTC day over q.Days days
// ending today (GA8, GET variant).
func (s *Service) History(ctx context.Context, communityID string, q RangeQuery) (History, error) {
	u, days, err := s.rangeOf(ctx, communityID, q)
	if err != nil {
		return History{}, err
	}
	rows, err := s.d.DB.Query(ctx, `SELECT day, COALESCE(SUM(coins), 0), COALESCE(SUM(xp), 0) FROM gamification_logs
		WHERE community_id = ? AND user_id = ? AND day >= ? AND day <= ? GROUP BY day`, communityID, u.ID, days[len(days)-1], days[0])
	if err != nil {
		return History{}, fmt.Errorf("read history: %w", err)
	}
	defer rows.Close()
	byDay := map[string]Earned{}
	for rows.Next() {
		var (
			day string
			e   Earned
		)
		if err := rows.Scan(&day, &e.Coins, &e.XP); err != nil {
			return History{}, fmt.Errorf("read history: %w", err)
		}
		byDay[day] = e
	}
	if err := rows.Err(); err != nil {
		return History{}, fmt.Errorf("read history: %w", err)
	}
	h := History{UserID: strconv.FormatInt(u.NumID, 10), Range: DateRange{StartDate: days[len(days)-1], EndDate: days[0]},
		DailyStats: make([]EarnedDay, len(days))}
	for i, d := range days {
		e := byDay[d]
		h.DailyStats[i] = EarnedDay{Date: d, Earned: e}
		h.Totals.Coins += e.Coins
		h.Totals.XP += e.XP
	}
	return h, nil
}

// BatchQuery is GA8's POST variant: one UTC day (DD/MM/YYYY, default today)
// for many members, paged over the identifiers sent.
type BatchQuery struct {
	Identifiers    []string `json:"identifier"`
	IdentifierType string   `json:"identifier_type"`
	Date           string   `json:"date"`
	PageQuery
}

// PageQuery is page/limit paging as sent in a body: page from 1, limit 1 to
// MaxPageLimit (default DefaultPageLimit).
type PageQuery struct {
	Page  *int `json:"page"`
	Limit *int `json:"limit"`
}

// Pagination is page/limit paging as the daily batch documents it. Total
// counts the distinct identifiers sent (what the pages walk), Found how
// many of this page's identifiers are members.
type Pagination struct {
	Page       int  `json:"page"`
	Limit      int  `json:"limit"`
	Total      int  `json:"total"`
	TotalPages int  `json:"total_pages"`
	Found      *int `json:"found,omitempty"`
}

// BatchResult is one member's day.
type BatchResult struct {
	Identifier string `json:"identifier"`
	// UserID is the member's _id, as the documented sample shows.
	UserID string `json:"user_id"`
	Date   string `json:"date"`
	Earned
}

// Batch is GA8's POST answer.
type Batch struct {
	Date       string        `json:"date"`
	Pagination Pagination    `json:"pagination"`
	Results    []BatchResult `json:"results"`
}

// resolve validates q and returns the page and limit.
func (q PageQuery) resolve(v *errs.Validator) (int, int) {
	pg, lim := 1, DefaultPageLimit
	if q.Page != nil {
		pg = *q.Page
		v.Check(pg >= 1, "page", "must be a whole number of at least 1")
	}
	if q.Limit != nil {
		lim = *q.Limit
		v.Check(lim >= 1 && lim <= MaxPageLimit, "limit", "must be a whole number from 1 to %d", MaxPageLimit)
	}
	return pg, lim
}

func pagination(pg, lim, total int) Pagination {
	return Pagination{Page: pg, Limit: lim, Total: total, TotalPages: (total + lim - 1) / lim}
}

// DailyBatch returns XP and coins awarded on one UTC day to each member
// the page's identifiers name (GA8, POST variant). Identifiers that name no
// member of the community are left out of results.
func (s *Service) DailyBatch(ctx context.Context, communityID string, q BatchQuery) (Batch, error) {
	var v errs.Validator
	ids := make([]string, 0, len(q.Identifiers))
	seen := map[string]bool{}
	for i, raw := range q.Identifiers {
		id := strings.TrimSpace(raw)
		if id == "" {
			v.Add(fmt.Sprintf("identifier[%d]", i), "must not be empty")
			continue
		}
		if !seen[strings.ToLower(id)] {
			seen[strings.ToLower(id)] = true
			ids = append(ids, id)
		}
	}
	v.Check(len(q.Identifiers) > 0, "identifier", "must list at least one identifier")
	v.Check(len(q.Identifiers) <= MaxIdentifiers, "identifier", "must list at most %d identifiers", MaxIdentifiers)
	checkIdentifierType(&v, q.IdentifierType)
	day := s.d.Clock.Now().UTC()
	if q.Date != "" {
		d, err := time.Parse(batchDateLayout, q.Date)
		v.Check(err == nil, "date", "must be a date DD/MM/YYYY")
		day = d
	}
	pg, lim := q.PageQuery.resolve(&v)
	if err := v.Err(); err != nil {
		return Batch{}, err
	}
	out := Batch{Date: day.Format(batchDateLayout), Pagination: pagination(pg, lim, len(ids)), Results: []BatchResult{}}
	start := min((pg-1)*lim, len(ids))
	var members []BatchResult
	for _, ident := range ids[start:min(start+lim, len(ids))] {
		u, _, err := s.d.Users.FindMember(ctx, communityID, ident, identifierTypes[q.IdentifierType])
		if errs.KindOf(err) == errs.NotFound {
			continue
		}
		if err != nil {
			return Batch{}, err
		}
		members = append(members, BatchResult{Identifier: ident, UserID: u.ID, Date: out.Date})
	}
	found := len(members)
	out.Pagination.Found = &found
	for _, m := range members {
		err := s.d.DB.QueryRow(ctx, `SELECT COALESCE(SUM(coins), 0), COALESCE(SUM(xp), 0) FROM gamification_logs
			WHERE community_id = ? AND day = ? AND user_id = ?`, communityID, day.Format(time.DateOnly), m.UserID).Scan(&m.Coins, &m.XP)
		if err != nil {
			return Batch{}, fmt.Errorf("read daily history: %w", err)
		}
		out.Results = append(out.Results, m)
	}
	return out, nil
}

// ActivityCounts are US5's per-day counters.
type ActivityCounts struct {
	Messages int64 `json:"messages"`
	Replies  int64 `json:"replies"`
	Reaction int64 `json:"reaction"`
	Socials  int64 `json:"socials"`
}

// ActivityDay is one day of activity.
type ActivityDay struct {
	Date string `json:"date"`
	ActivityCounts
}

// ActivityStats is US5's answer: how often the member did each action per
// UTC day (rewarded or not), newest day first, every day present.
type ActivityStats struct {
	// UserID is the member's numeric id, as the documented sample shows.
	UserID     string         `json:"user_id"`
	Range      DateRange      `json:"range"`
	Totals     ActivityCounts `json:"totals"`
	DailyStats []ActivityDay  `json:"daily_stats"`
}

// add counts n of action into c.
func (c *ActivityCounts) add(action string, n int64) {
	switch action {
	case ActionMessage:
		c.Messages += n
	case ActionReply:
		c.Replies += n
	case ActionReact:
		c.Reaction += n
	case ActionSocial:
		c.Socials += n
	}
}

// Activity returns the member's message, reply, reaction and social
// counts per UTC day over q.Days days ending today (US5).
func (s *Service) Activity(ctx context.Context, communityID string, q RangeQuery) (ActivityStats, error) {
	u, days, err := s.rangeOf(ctx, communityID, q)
	if err != nil {
		return ActivityStats{}, err
	}
	rows, err := s.d.DB.Query(ctx, `SELECT day, action, count FROM gamification_action_days
		WHERE community_id = ? AND user_id = ? AND day >= ? AND day <= ? AND action IN (?, ?, ?, ?)`,
		communityID, u.ID, days[len(days)-1], days[0], ActionMessage, ActionReply, ActionReact, ActionSocial)
	if err != nil {
		return ActivityStats{}, fmt.Errorf("read activity: %w", err)
	}
	defer rows.Close()
	byDay := map[string]*ActivityCounts{}
	for rows.Next() {
		var (
			day, action string
			n           int64
		)
		if err := rows.Scan(&day, &action, &n); err != nil {
			return ActivityStats{}, fmt.Errorf("read activity: %w", err)
		}
		if byDay[day] == nil {
			byDay[day] = &ActivityCounts{}
		}
		byDay[day].add(action, n)
	}
	if err := rows.Err(); err != nil {
		return ActivityStats{}, fmt.Errorf("read activity: %w", err)
	}
	st := ActivityStats{UserID: strconv.FormatInt(u.NumID, 10), Range: DateRange{StartDate: days[len(days)-1], EndDate: days[0]},
		DailyStats: make([]ActivityDay, len(days))}
	for i, d := range days {
		day := ActivityDay{Date: d}
		if c := byDay[d]; c != nil {
			day.ActivityCounts = *c
		}
		st.DailyStats[i] = day
		st.Totals.Messages += day.Messages
		st.Totals.Replies += day.Replies
		st.Totals.Reaction += day.Reaction
		st.Totals.Socials += day.Socials
	}
	return st, nil
}

// LogsQuery names one member and a page of their gamification log (GA9).
type LogsQuery struct {
	Identifier     string `json:"identifier"`
	IdentifierType string `json:"identifier_type"`
	PageQuery
}

// LogsPage is GA9's answer: the member's awards, newest first.
type LogsPage struct {
	// UserID is the member's _id.
	UserID     string     `json:"user_id"`
	Logs       []xp.Log   `json:"logs"`
	Pagination Pagination `json:"pagination"`
}

// Logs returns a page of the member's gamification log (GA9).
func (s *Service) Logs(ctx context.Context, communityID string, q LogsQuery) (LogsPage, error) {
	var v errs.Validator
	v.Check(strings.TrimSpace(q.Identifier) != "", "identifier", "is required")
	checkIdentifierType(&v, q.IdentifierType)
	pg, lim := q.PageQuery.resolve(&v)
	if err := v.Err(); err != nil {
		return LogsPage{}, err
	}
	u, _, err := s.d.Users.FindMember(ctx, communityID, q.Identifier, identifierTypes[q.IdentifierType])
	if err != nil {
		return LogsPage{}, err
	}
	logs, total, err := s.d.XP.Logs(ctx, communityID, u.ID, (pg-1)*lim, lim)
	if err != nil {
		return LogsPage{}, err
	}
	return LogsPage{UserID: u.ID, Logs: logs, Pagination: pagination(pg, lim, total)}, nil
}
