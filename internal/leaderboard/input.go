package leaderboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
)

// Limits the docs state, and ours where they are silent.
const (
	MaxNameLength    = 100
	MaxSlugLength    = 100
	MaxColumns       = 50
	MaxDomains       = 50
	MaxAudience      = 500
	MaxDummyUsers    = 50
	MaxTopRankLimit  = 1000
	maxTextLength    = 2000
	maxColumnLength  = 50
	maxDomainLength  = 253
	maxWidgetPixels  = 10000
	defaultTopLimit  = 10
	minTimeZoneHours = -12
	maxTimeZoneHours = 14
)

var (
	slugRE   = regexp.MustCompile(`^[a-z0-9-]+$`)
	domainRE = regexp.MustCompile(`^[A-Za-z0-9*]([A-Za-z0-9.:*-]*[A-Za-z0-9])?$`)
)

// DurationInput is the legacy duration object of a request.
type DurationInput struct {
	Start     *string    `json:"start"`
	End       *string    `json:"end"`
	NoEndDate *bool      `json:"noEndDate"`
	TimeZone  *float64   `json:"timeZone"`
	StartTime *ClockTime `json:"startTime"`
	EndTime   *ClockTime `json:"endTime"`
}

// PerformanceInput is the legacy performanceDisplay object of a request.
type PerformanceInput struct {
	ShowTop      *TopToggle `json:"showTop"`
	ShowPositive *Toggle    `json:"showPositive"`
	ShowDummy    *Toggle    `json:"showDummy"`
}

// WidgetInput is the widget object of a request; size is "dynamic",
// "custom" (with width and height) or {type:"custom", value:{width,height}}.
type WidgetInput struct {
	Enabled            *bool           `json:"enabled"`
	WhitelistedDomains *[]string       `json:"whitelistedDomains"`
	Size               json.RawMessage `json:"size"`
	Width              *int            `json:"width"`
	Height             *int            `json:"height"`
	Button             *Button         `json:"button"`
	CtaButton          *Button         `json:"ctaButton"`
	Font               *string         `json:"font"`
	Theme              json.RawMessage `json:"theme"`
}

// Input creates or updates a leaderboard. Both documented request shapes are
// accepted: rankingField or rankBy; displayedColumns or displayedFields +
// displayFieldsOrder; startDate/endDate/hasNoEndDate/timeZone/startTime/
// endTime or duration; isEnabled or enabled; allowedTimeFilters or
// timeFilters; topRankOnly/topRankLimit/onlyPositiveRanks/includeDummyUsers
// or performanceDisplay; allowed*ToRank/allowed*ToView or rankedUserRoles/
// viewPermissionUserRoles. Absent fields keep their value on update.
type Input struct {
	Name               *string                `json:"name"`
	Slug               *string                `json:"slug"`
	Description        *string                `json:"description"`
	Image              *string                `json:"image"`
	RankingField       *string                `json:"rankingField"`
	RankBy             *string                `json:"rankBy"`
	DisplayedColumns   *[]Column              `json:"displayedColumns"`
	DisplayedFields    *[]string              `json:"displayedFields"`
	DisplayFieldsOrder *[]string              `json:"displayFieldsOrder"`
	TopRankOnly        *bool                  `json:"topRankOnly"`
	TopRankLimit       *int                   `json:"topRankLimit"`
	OnlyPositiveRanks  *bool                  `json:"onlyPositiveRanks"`
	IncludeDummyUsers  *bool                  `json:"includeDummyUsers"`
	PerformanceDisplay *PerformanceInput      `json:"performanceDisplay"`
	StartDate          *string                `json:"startDate"`
	EndDate            jsonx.Optional[string] `json:"endDate"`
	HasNoEndDate       *bool                  `json:"hasNoEndDate"`
	TimeZone           *float64               `json:"timeZone"`
	StartTime          *ClockTime             `json:"startTime"`
	EndTime            *ClockTime             `json:"endTime"`
	Duration           *DurationInput         `json:"duration"`
	AllowedTimeFilters *[]string              `json:"allowedTimeFilters"`
	TimeFilters        *[]string              `json:"timeFilters"`
	AllowedUsersToRank *[]string              `json:"allowedUsersToRank"`
	AllowedRolesToRank *[]string              `json:"allowedRolesToRank"`
	AllowedTagsToRank  *[]string              `json:"allowedTagsToRank"`
	AllowedUsersToView *[]string              `json:"allowedUsersToView"`
	AllowedRolesToView *[]string              `json:"allowedRolesToView"`
	AllowedTagsToView  *[]string              `json:"allowedTagsToView"`
	RankedUserRoles    *Audience              `json:"rankedUserRoles"`
	ViewPermission     *Audience              `json:"viewPermissionUserRoles"`
	IsEnabled          *bool                  `json:"isEnabled"`
	Enabled            *bool                  `json:"enabled"`
	IsPreviewEnabled   *bool                  `json:"isPreviewEnabled"`
	DisplayOrder       *int                   `json:"displayOrder"`
	Widget             *WidgetInput           `json:"widget"`
	DummyUsers         *[]DummyUser           `json:"dummyUsers"`
}

// pick returns the new-shape value when given, else the legacy one, and
// names a conflict when both are given and differ.
func pick[T comparable](v *errs.Validator, field, legacy string, a, b *T) *T {
	if a != nil && b != nil && *a != *b {
		v.Add(field, "conflicts with %s; send one of them", legacy)
	}
	if a != nil {
		return a
	}
	return b
}

// apply validates in against the current board b (zero for a create) and
// returns the board it describes. Every offending field is named.
func (in Input) apply(b Leaderboard, create bool) (Leaderboard, error) {
	var v errs.Validator
	in.applyText(&v, &b, create)
	in.applyRanking(&v, &b, create)
	in.applyColumns(&v, &b, create)
	in.applyDisplay(&v, &b)
	in.applyDuration(&v, &b, create)
	in.applyAudiences(&v, &b)
	in.applyWidget(&v, &b)
	if en := pick(&v, "isEnabled", "enabled", in.IsEnabled, in.Enabled); en != nil {
		b.Enabled = *en
	} else if create {
		b.Enabled = true
	}
	if in.IsPreviewEnabled != nil {
		b.IsPreviewEnabled = *in.IsPreviewEnabled
	}
	if in.DisplayOrder != nil {
		v.Check(*in.DisplayOrder >= 0, "displayOrder", "must be a whole number of at least 0")
		b.DisplayOrder = *in.DisplayOrder
	}
	if in.DummyUsers != nil {
		v.Check(len(*in.DummyUsers) <= MaxDummyUsers, "dummyUsers", "must hold at most %d entries", MaxDummyUsers)
		for i, d := range *in.DummyUsers {
			n := utf8.RuneCountInString(strings.TrimSpace(d.Name))
			v.Check(n >= 1 && n <= MaxNameLength, fmt.Sprintf("dummyUsers[%d].name", i), "must be 1 to %d characters", MaxNameLength)
			v.Check(len(d.Avatar) <= maxTextLength, fmt.Sprintf("dummyUsers[%d].avatar", i), "must be at most %d characters", maxTextLength)
		}
		b.DummyUsers = *in.DummyUsers
	}
	if b.DummyUsers == nil {
		b.DummyUsers = []DummyUser{}
	}
	return b, v.Err()
}

func (in Input) applyText(v *errs.Validator, b *Leaderboard, create bool) {
	if in.Name != nil {
		b.Name = strings.TrimSpace(*in.Name)
		n := utf8.RuneCountInString(b.Name)
		v.Check(n >= 1 && n <= MaxNameLength, "name", "must be 1 to %d characters", MaxNameLength)
	} else if create {
		v.Add("name", "is required (1 to %d characters)", MaxNameLength)
	}
	switch {
	case in.Slug != nil:
		b.Slug = strings.TrimSpace(*in.Slug)
		v.Check(b.Slug != "" && len(b.Slug) <= MaxSlugLength && slugRE.MatchString(b.Slug), "slug",
			"must be 1 to %d lowercase letters, digits and hyphens", MaxSlugLength)
	case create && in.Name != nil:
		b.Slug = slugify(b.Name)
		v.Check(b.Slug != "", "slug", "is required when the name has no letters or digits")
	}
	if in.Description != nil {
		b.Description = *in.Description
		v.Check(utf8.RuneCountInString(b.Description) <= maxTextLength, "description", "must be at most %d characters", maxTextLength)
	}
	if in.Image != nil {
		b.Image = strings.TrimSpace(*in.Image)
		v.Check(len(b.Image) <= maxTextLength, "image", "must be at most %d characters", maxTextLength)
	}
}

// slugify derives a slug from a name: lowercase letters and digits, other
// runs turned into one hyphen.
func slugify(name string) string {
	var sb strings.Builder
	hyphen := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if hyphen && sb.Len() > 0 {
				sb.WriteByte('-')
			}
			sb.WriteRune(r)
			hyphen = false
		} else {
			hyphen = true
		}
	}
	s := sb.String()
	if len(s) > MaxSlugLength {
		s = strings.TrimRight(s[:MaxSlugLength], "-")
	}
	return s
}

func (in Input) applyRanking(v *errs.Validator, b *Leaderboard, create bool) {
	rank := pick(v, "rankingField", "rankBy", in.RankingField, in.RankBy)
	switch {
	case rank == nil && create:
		v.Add("rankingField", "is required (or legacy rankBy): one of %s, %s", RankXP, RankCoins)
	case rank == nil:
	case *rank == RankXP || *rank == RankCoins:
		if b.IsDefault && *rank != RankXP {
			v.Add("rankingField", "the default leaderboard ranks by %s", RankXP)
		}
		b.RankBy = *rank
	default:
		v.Add("rankingField", "must be one of %s, %s (other metrics are not available yet)", RankXP, RankCoins)
	}
}

func (in Input) applyColumns(v *errs.Validator, b *Leaderboard, create bool) {
	switch {
	case in.DisplayedColumns != nil:
		cols := slices.Clone(*in.DisplayedColumns)
		v.Check(len(cols) >= 1 && len(cols) <= MaxColumns, "displayedColumns", "must hold 1 to %d columns", MaxColumns)
		seen := map[string]bool{}
		for i, c := range cols {
			f := fmt.Sprintf("displayedColumns[%d].column", i)
			v.Check(validColumn(c.Column) && !seen[c.Column], f, "must be a distinct column name of 1 to %d characters", maxColumnLength)
			seen[c.Column] = true
		}
		sort.SliceStable(cols, func(i, j int) bool { return cols[i].Order < cols[j].Order })
		b.DisplayedColumns = cols
		b.DisplayedFields, b.DisplayFieldsOrder = []string{}, []string{}
		for _, c := range cols {
			b.DisplayFieldsOrder = append(b.DisplayFieldsOrder, c.Column)
			if c.Visible {
				b.DisplayedFields = append(b.DisplayedFields, c.Column)
			}
		}
	case in.DisplayedFields != nil || in.DisplayFieldsOrder != nil:
		if in.DisplayedFields == nil || in.DisplayFieldsOrder == nil {
			v.Add("displayedColumns", "is required, or both legacy displayedFields and displayFieldsOrder")
			return
		}
		shown, order := *in.DisplayedFields, *in.DisplayFieldsOrder
		for _, l := range []struct {
			name string
			list []string
		}{{"displayedFields", shown}, {"displayFieldsOrder", order}} {
			v.Check(len(l.list) <= MaxColumns, l.name, "must hold at most %d columns", MaxColumns)
			for i, c := range l.list {
				v.Check(validColumn(c), fmt.Sprintf("%s[%d]", l.name, i), "must be a column name of 1 to %d characters", maxColumnLength)
			}
		}
		all := slices.Clone(order)
		for _, c := range shown {
			if !slices.Contains(all, c) {
				all = append(all, c)
			}
		}
		v.Check(len(all) >= 1 && len(all) <= MaxColumns, "displayedColumns", "must hold 1 to %d columns", MaxColumns)
		b.DisplayedFields, b.DisplayFieldsOrder, b.DisplayedColumns = slices.Clone(shown), slices.Clone(order), []Column{}
		for i, c := range all {
			b.DisplayedColumns = append(b.DisplayedColumns, Column{Column: c, Visible: slices.Contains(shown, c), Order: i})
		}
	case create:
		v.Add("displayedColumns", "is required, or both legacy displayedFields and displayFieldsOrder")
	}
}

func validColumn(c string) bool {
	return strings.TrimSpace(c) != "" && utf8.RuneCountInString(c) <= maxColumnLength
}

func (in Input) applyDisplay(v *errs.Validator, b *Leaderboard) {
	pd := in.PerformanceDisplay
	if pd == nil {
		pd = &PerformanceInput{}
	}
	if top := pd.ShowTop; top != nil {
		b.PerformanceDisplay.ShowTop = *top
	}
	if in.TopRankOnly != nil {
		b.PerformanceDisplay.ShowTop.Enabled = *in.TopRankOnly
	}
	if in.TopRankLimit != nil {
		b.PerformanceDisplay.ShowTop.Value = *in.TopRankLimit
	}
	if b.PerformanceDisplay.ShowTop.Value == 0 && pd.ShowTop == nil && in.TopRankLimit == nil {
		b.PerformanceDisplay.ShowTop.Value = defaultTopLimit
	}
	if l := b.PerformanceDisplay.ShowTop.Value; l < 1 || l > MaxTopRankLimit {
		field := "topRankLimit"
		if in.TopRankLimit == nil {
			field = "performanceDisplay.showTop.value"
		}
		v.Add(field, "must be a whole number from 1 to %d", MaxTopRankLimit)
	}
	if pos := pick(v, "onlyPositiveRanks", "performanceDisplay.showPositive", in.OnlyPositiveRanks, enabledOf(pd.ShowPositive)); pos != nil {
		b.PerformanceDisplay.ShowPositive.Enabled = *pos
	}
	if dummy := pick(v, "includeDummyUsers", "performanceDisplay.showDummy", in.IncludeDummyUsers, enabledOf(pd.ShowDummy)); dummy != nil {
		b.PerformanceDisplay.ShowDummy.Enabled = *dummy
	}
}

func enabledOf(t *Toggle) *bool {
	if t == nil {
		return nil
	}
	return &t.Enabled
}

func (in Input) applyDuration(v *errs.Validator, b *Leaderboard, create bool) {
	d := in.Duration
	if d == nil {
		d = &DurationInput{}
	}
	if s := pick(v, "startDate", "duration.start", in.StartDate, d.Start); s != nil {
		b.Duration.Start = parseTime(v, "startDate", *s)
	} else if create {
		v.Add("startDate", "is required (or legacy duration.start): an ISO 8601 timestamp")
	}
	endSet := in.EndDate.Set || d.End != nil
	if in.EndDate.Set && !in.EndDate.Null {
		b.Duration.End = parseTime(v, "endDate", in.EndDate.Value)
	} else if d.End != nil && !in.EndDate.Set {
		b.Duration.End = parseTime(v, "duration.end", *d.End)
	} else if in.EndDate.Set {
		b.Duration.End = nil
	}
	if no := pick(v, "hasNoEndDate", "duration.noEndDate", in.HasNoEndDate, d.NoEndDate); no != nil {
		b.Duration.NoEndDate = *no
	} else if endSet {
		b.Duration.NoEndDate = b.Duration.End == nil
	} else if create {
		b.Duration.NoEndDate = true
	}
	if b.Duration.NoEndDate {
		b.Duration.End = nil
	}
	if !b.Duration.NoEndDate && b.Duration.End == nil {
		v.Add("endDate", "is required unless hasNoEndDate is true")
	}
	if tz := pick(v, "timeZone", "duration.timeZone", in.TimeZone, d.TimeZone); tz != nil {
		v.Check(*tz >= minTimeZoneHours && *tz <= maxTimeZoneHours, "timeZone", "must be a UTC offset in hours from %d to %d", minTimeZoneHours, maxTimeZoneHours)
		b.Duration.TimeZone = *tz
	}
	for _, t := range []struct {
		field      string
		new, old   *ClockTime
		dst        **ClockTime
		legacyName string
	}{{"startTime", in.StartTime, d.StartTime, &b.Duration.StartTime, "duration.startTime"},
		{"endTime", in.EndTime, d.EndTime, &b.Duration.EndTime, "duration.endTime"}} {
		ct := pick(v, t.field, t.legacyName, t.new, t.old)
		if ct == nil {
			continue
		}
		v.Check(ct.Hours >= 1 && ct.Hours <= 12, t.field+".hours", "must be from 1 to 12")
		v.Check(ct.Minutes >= 0 && ct.Minutes <= 59, t.field+".minutes", "must be from 0 to 59")
		v.Check(ct.AMPM == "AM" || ct.AMPM == "PM", t.field+".ampm", "must be AM or PM")
		c := *ct
		*t.dst = &c
	}
	if w := b.Duration.window(); !w.from.IsZero() && !w.to.IsZero() && !w.to.After(w.from) {
		v.Add("endDate", "must be after startDate")
	}
	filters := pick(v, "allowedTimeFilters", "timeFilters", listKey(in.AllowedTimeFilters), listKey(in.TimeFilters))
	if filters != nil {
		list := in.AllowedTimeFilters
		if list == nil {
			list = in.TimeFilters
		}
		b.TimeFilters = []string{}
		v.Check(len(*list) >= 1, "allowedTimeFilters", "must name at least one of %s", strings.Join(TimeFilters, ", "))
		for i, f := range *list {
			if !slices.Contains(TimeFilters, f) {
				v.Add(fmt.Sprintf("allowedTimeFilters[%d]", i), "must be one of %s", strings.Join(TimeFilters, ", "))
			} else if !slices.Contains(b.TimeFilters, f) {
				b.TimeFilters = append(b.TimeFilters, f)
			}
		}
	} else if create {
		b.TimeFilters = slices.Clone(TimeFilters)
	}
}

// listKey makes a list comparable for pick.
func listKey(l *[]string) *string {
	if l == nil {
		return nil
	}
	s := strings.Join(*l, "\x00")
	return &s
}

func parseTime(v *errs.Validator, field, s string) *jsonx.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		v.Add(field, "must be an ISO 8601 timestamp such as 2026-01-30T00:00:00.000Z")
		return nil
	}
	jt := jsonx.At(t)
	return &jt
}

func (in Input) applyAudiences(v *errs.Validator, b *Leaderboard) {
	for _, a := range []struct {
		prefix, legacy     string
		users, roles, tags *[]string
		legacyAudience     *Audience
		dst                *Audience
	}{{"ToRank", "rankedUserRoles", in.AllowedUsersToRank, in.AllowedRolesToRank, in.AllowedTagsToRank, in.RankedUserRoles, &b.RankedUserRoles},
		{"ToView", "viewPermissionUserRoles", in.AllowedUsersToView, in.AllowedRolesToView, in.AllowedTagsToView, in.ViewPermission, &b.ViewPermissionUserRoles}} {
		if a.legacyAudience != nil {
			a.dst.Users, a.dst.Roles, a.dst.Tags = a.legacyAudience.Users, a.legacyAudience.Roles, a.legacyAudience.Tags
		}
		for _, l := range []struct {
			field, legacyField string
			list               *[]string
			dst                *[]string
		}{{"allowedUsers" + a.prefix, a.legacy + ".users", a.users, &a.dst.Users},
			{"allowedRoles" + a.prefix, a.legacy + ".roles", a.roles, &a.dst.Roles},
			{"allowedTags" + a.prefix, a.legacy + ".tags", a.tags, &a.dst.Tags}} {
			field := l.field
			if l.list != nil {
				*l.dst = *l.list
			} else if a.legacyAudience != nil {
				field = l.legacyField
			}
			*l.dst = idList(v, field, *l.dst)
		}
	}
}

// idList checks a list of ObjectIds (lowercased, without repeats).
func idList(v *errs.Validator, field string, list []string) []string {
	out := []string{}
	v.Check(len(list) <= MaxAudience, field, "must hold at most %d ids", MaxAudience)
	for i, s := range list {
		s = strings.ToLower(strings.TrimSpace(s))
		if !id.Valid(s) {
			v.Add(fmt.Sprintf("%s[%d]", field, i), "must be a 24-hex ObjectId")
			continue
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func (in Input) applyWidget(v *errs.Validator, b *Leaderboard) {
	w := &b.Widget
	if w.Size == "" {
		w.Size = "dynamic"
	}
	if w.WhitelistedDomains == nil {
		w.WhitelistedDomains = []string{}
	}
	wi := in.Widget
	if wi == nil {
		return
	}
	if wi.Enabled != nil {
		w.Enabled = *wi.Enabled
	}
	if wi.WhitelistedDomains != nil {
		v.Check(len(*wi.WhitelistedDomains) <= MaxDomains, "widget.whitelistedDomains", "must hold at most %d domains", MaxDomains)
		w.WhitelistedDomains = []string{}
		for i, d := range *wi.WhitelistedDomains {
			d = strings.ToLower(strings.TrimSpace(d))
			v.Check(len(d) <= maxDomainLength && domainRE.MatchString(d), fmt.Sprintf("widget.whitelistedDomains[%d]", i), "must be a domain name")
			w.WhitelistedDomains = append(w.WhitelistedDomains, d)
		}
	}
	if wi.Width != nil {
		w.Width = wi.Width
	}
	if wi.Height != nil {
		w.Height = wi.Height
	}
	if raw := bytes.TrimSpace(wi.Size); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		var name string
		var custom struct {
			Type  string `json:"type"`
			Value struct {
				Width  *int `json:"width"`
				Height *int `json:"height"`
			} `json:"value"`
		}
		switch {
		case json.Unmarshal(raw, &name) == nil && (name == "dynamic" || name == "custom"):
			w.Size = name
		case json.Unmarshal(raw, &custom) == nil && (custom.Type == "dynamic" || custom.Type == "custom"):
			w.Size = custom.Type
			if custom.Value.Width != nil {
				w.Width = custom.Value.Width
			}
			if custom.Value.Height != nil {
				w.Height = custom.Value.Height
			}
		default:
			v.Add("widget.size", `must be "dynamic", "custom" or {"type":"custom","value":{"width":...,"height":...}}`)
		}
	}
	if w.Size == "custom" {
		for _, p := range []struct {
			name string
			val  *int
		}{{"widget.size.value.width", w.Width}, {"widget.size.value.height", w.Height}} {
			v.Check(p.val != nil && *p.val >= 1 && *p.val <= maxWidgetPixels, p.name, "must be 1 to %d pixels for a custom size", maxWidgetPixels)
		}
	} else {
		w.Width, w.Height = nil, nil
	}
	for _, btn := range []struct {
		name string
		in   *Button
		dst  **Button
	}{{"widget.button", wi.Button, &w.Button}, {"widget.ctaButton", wi.CtaButton, &w.CtaButton}} {
		if btn.in == nil {
			continue
		}
		v.Check(utf8.RuneCountInString(btn.in.Text) <= MaxNameLength, btn.name+".text", "must be at most %d characters", MaxNameLength)
		v.Check(len(btn.in.Link) <= maxTextLength, btn.name+".link", "must be at most %d characters", maxTextLength)
		c := *btn.in
		*btn.dst = &c
	}
	if wi.Font != nil {
		w.Font = strings.TrimSpace(*wi.Font)
		v.Check(utf8.RuneCountInString(w.Font) <= MaxNameLength, "widget.font", "must be at most %d characters", MaxNameLength)
	}
	if raw := bytes.TrimSpace(wi.Theme); len(raw) > 0 {
		if bytes.Equal(raw, []byte("null")) {
			w.Theme = nil
		} else if raw[0] != '{' || len(raw) > 16<<10 {
			v.Add("widget.theme", "must be an object of at most 16 KiB")
		} else {
			w.Theme = json.RawMessage(slices.Clone(raw))
		}
	}
}
