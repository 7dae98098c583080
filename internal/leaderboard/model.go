// Package leaderboard holds a community's leaderboards and their standings.
//
// A leaderboard ranks members by a metric (XP or coins), over its run
// (duration start to end, in its time zone) and over the current day, week,
// month and year of that run. Scores are kept per leaderboard and period in
// leaderboard_scores, updated by the XP and wallet hooks inside every award's
// transaction, so ranks are live. A member's rank is one plus the members
// strictly ahead (higher score, or the same score reached earlier): a sum over
// a two-level score histogram (leaderboard_bucket_groups, leaderboard_buckets:
// under a hundred index rows) plus a range count over the shorter side of the
// member's own bucket, never a walk over the whole board.
package leaderboard

import (
	"encoding/json"
	"time"

	"github.com/rallyhq/rally/internal/jsonx"
)

// Ranking metrics: the rankingField (rankBy) values that exist.
const (
	// RankXP ranks by experience points.
	RankXP = "xps"
	// RankCoins ranks by the community currency (coins).
	RankCoins = "currencies"
)

// Time filters: the views a leaderboard may offer.
const (
	AllTime = "all-time"
	Daily   = "daily"
	Weekly  = "weekly"
	Monthly = "monthly"
	Yearly  = "yearly"
)

// TimeFilters lists every time filter, in display order.
var TimeFilters = []string{AllTime, Daily, Weekly, Monthly, Yearly}

// Leaderboard is the stored shape the API answers with (the docs' legacy
// shape: rankBy, displayedFields + displayFieldsOrder, duration, ...).
type Leaderboard struct {
	ID                      string             `json:"_id"`
	CommunityID             string             `json:"communityID"`
	Name                    string             `json:"name"`
	Slug                    string             `json:"slug"`
	Description             string             `json:"description"`
	Image                   string             `json:"image"`
	RankBy                  string             `json:"rankBy"`
	DisplayedFields         []string           `json:"displayedFields"`
	DisplayFieldsOrder      []string           `json:"displayFieldsOrder"`
	DisplayedColumns        []Column           `json:"displayedColumns"`
	TimeFilters             []string           `json:"timeFilters"`
	PerformanceDisplay      PerformanceDisplay `json:"performanceDisplay"`
	Duration                Duration           `json:"duration"`
	RankedUserRoles         Audience           `json:"rankedUserRoles"`
	ViewPermissionUserRoles Audience           `json:"viewPermissionUserRoles"`
	Widget                  Widget             `json:"widget"`
	Enabled                 bool               `json:"enabled"`
	IsPreviewEnabled        bool               `json:"isPreviewEnabled"`
	DisplayOrder            int                `json:"displayOrder"`
	// IsDefault marks the community's default XP leaderboard.
	IsDefault bool `json:"isDefault"`
	// DummyUsers are placeholder entries shown when showDummy is enabled.
	DummyUsers []DummyUser `json:"dummyUsers"`
	CreatedAt  jsonx.Time  `json:"createdAt"`
	UpdatedAt  jsonx.Time  `json:"updatedAt"`
}

// Column is one displayed column in the new request shape.
type Column struct {
	Column  string `json:"column"`
	Visible bool   `json:"visible"`
	Order   int    `json:"order"`
}

// Toggle is an on/off display option.
type Toggle struct {
	Enabled bool `json:"enabled"`
}

// TopToggle shows only the top Value ranks when enabled.
type TopToggle struct {
	Enabled bool `json:"enabled"`
	Value   int  `json:"value"`
}

// PerformanceDisplay holds topRankOnly/topRankLimit (showTop),
// onlyPositiveRanks (showPositive) and includeDummyUsers (showDummy).
type PerformanceDisplay struct {
	ShowTop      TopToggle `json:"showTop"`
	ShowPositive Toggle    `json:"showPositive"`
	ShowDummy    Toggle    `json:"showDummy"`
}

// ClockTime is a time of day as the docs write it (12-hour clock).
type ClockTime struct {
	Hours   int    `json:"hours"`
	Minutes int    `json:"minutes"`
	AMPM    string `json:"ampm"`
}

// minutesOfDay turns t into minutes after midnight.
func (t ClockTime) minutesOfDay() int {
	h := t.Hours % 12
	if t.AMPM == "PM" {
		h += 12
	}
	return h*60 + t.Minutes
}

// Duration is when the leaderboard runs. TimeZone is the UTC offset in
// hours (5.3 and 5.5 both mean +05:30); day, week (Monday to Sunday), month
// and year boundaries are midnights at that offset. The run starts on
// Start's local date at StartTime (at Start itself without a StartTime) and
// ends after End's local date at EndTime, that minute included (at End
// itself without an EndTime); NoEndDate leaves it open.
type Duration struct {
	Start     *jsonx.Time `json:"start"`
	End       *jsonx.Time `json:"end"`
	NoEndDate bool        `json:"noEndDate"`
	TimeZone  float64     `json:"timeZone"`
	StartTime *ClockTime  `json:"startTime"`
	EndTime   *ClockTime  `json:"endTime"`
}

// Audience names who may be ranked or may view: member _ids, role ids and
// tag ids. Empty lists mean every member.
type Audience struct {
	Users []string `json:"users"`
	Roles []string `json:"roles"`
	Tags  []string `json:"tags"`
}

// everyone reports whether a names no one in particular (all members).
func (a Audience) everyone() bool { return len(a.Users)+len(a.Roles)+len(a.Tags) == 0 }

// Button is a widget call-to-action.
type Button struct {
	Enabled bool   `json:"enabled"`
	Text    string `json:"text"`
	Link    string `json:"link"`
}

// Widget is the leaderboard's embeddable widget. Size is "dynamic" or
// "custom" (then Width and Height in pixels).
type Widget struct {
	Enabled            bool            `json:"enabled"`
	WhitelistedDomains []string        `json:"whitelistedDomains"`
	Size               string          `json:"size"`
	Width              *int            `json:"width"`
	Height             *int            `json:"height"`
	Button             *Button         `json:"button,omitempty"`
	CtaButton          *Button         `json:"ctaButton,omitempty"`
	Font               string          `json:"font,omitempty"`
	Theme              json.RawMessage `json:"theme,omitempty"`
}

// DummyUser is a placeholder entry: it takes a rank among members (after
// members with the same score) but is never a member.
type DummyUser struct {
	Name   string `json:"name"`
	Avatar string `json:"avatar,omitempty"`
	Score  int64  `json:"score"`
}

// window is the run of a leaderboard as instants: [from, to); zero from
// means since always, zero to means open-ended.
type window struct {
	from, to time.Time
}

// contains reports whether t falls inside w.
func (w window) contains(t time.Time) bool {
	return (w.from.IsZero() || !t.Before(w.from)) && (w.to.IsZero() || t.Before(w.to))
}

// clip narrows [from, to) to w.
func (w window) clip(from, to time.Time) (time.Time, time.Time) {
	if !w.from.IsZero() && (from.IsZero() || from.Before(w.from)) {
		from = w.from
	}
	if !w.to.IsZero() && (to.IsZero() || to.After(w.to)) {
		to = w.to
	}
	return from, to
}

// location is the leaderboard's fixed UTC offset.
func (d Duration) location() *time.Location {
	return time.FixedZone("", offsetSeconds(d.TimeZone))
}

// offsetSeconds reads a timeZone number: the fraction is minutes when it
// reads as hh.mm quarter hours (5.3, 5.30, 5.45, 5.15), decimal hours
// otherwise (5.5, 5.75).
func offsetSeconds(tz float64) int {
	sign := 1
	if tz < 0 {
		sign, tz = -1, -tz
	}
	hours := int(tz)
	frac := tz - float64(hours)
	mins := int(frac*100 + 0.5)
	switch mins {
	case 0, 15, 30, 45:
	default:
		mins = int(frac*60 + 0.5)
	}
	return sign * (hours*3600 + mins*60)
}

// window returns the run as instants.
func (d Duration) window() window {
	var w window
	loc := d.location()
	if d.Start != nil {
		w.from = d.Start.Time
		if d.StartTime != nil {
			y, m, day := d.Start.In(loc).Date()
			w.from = time.Date(y, m, day, 0, d.StartTime.minutesOfDay(), 0, 0, loc).UTC()
		}
	}
	if !d.NoEndDate && d.End != nil {
		w.to = d.End.Add(time.Millisecond)
		if d.EndTime != nil {
			y, m, day := d.End.In(loc).Date()
			w.to = time.Date(y, m, day, 0, d.EndTime.minutesOfDay()+1, 0, 0, loc).UTC()
		}
	}
	return w
}

// period is one scoring period of a leaderboard: its key in
// leaderboard_scores and its bounds (zero = unbounded).
type period struct {
	Key        string
	From, Till time.Time
}

// periodAt returns the period of filter containing t, in loc.
func periodAt(filter string, t time.Time, loc *time.Location) period {
	l := t.In(loc)
	y, m, d := l.Date()
	switch filter {
	case Daily:
		from := time.Date(y, m, d, 0, 0, 0, 0, loc)
		return period{Key: "d:" + from.Format(time.DateOnly), From: from.UTC(), Till: from.AddDate(0, 0, 1).UTC()}
	case Weekly:
		back := (int(l.Weekday()) + 6) % 7 // days since Monday
		from := time.Date(y, m, d-back, 0, 0, 0, 0, loc)
		return period{Key: "w:" + from.Format(time.DateOnly), From: from.UTC(), Till: from.AddDate(0, 0, 7).UTC()}
	case Monthly:
		from := time.Date(y, m, 1, 0, 0, 0, 0, loc)
		return period{Key: "m:" + from.Format("2006-01"), From: from.UTC(), Till: from.AddDate(0, 1, 0).UTC()}
	case Yearly:
		from := time.Date(y, 1, 1, 0, 0, 0, 0, loc)
		return period{Key: "y:" + from.Format("2006"), From: from.UTC(), Till: from.AddDate(1, 0, 0).UTC()}
	default:
		return period{Key: "a"}
	}
}
