package streak

import (
	"fmt"
	"time"
	_ "time/tzdata" // zone names resolve in a static binary without system zoneinfo
)

// Timeframe units.
const (
	Daily   = "daily"
	Weekly  = "weekly"
	Monthly = "monthly"
)

// UTCZone is the docs' key for UTC/GMT; any IANA zone name is accepted too.
const UTCZone = "utc_gmt"

// Weekdays are the activeDays names, as the docs spell them, indexed by
// time.Weekday.
var Weekdays = [7]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}

// loadZone resolves a streak time zone.
func loadZone(name string) (*time.Location, error) {
	if name == UTCZone {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "" || name == "Local" {
		return nil, fmt.Errorf("unknown time zone %q", name)
	}
	return loc, nil
}

// schedule splits time into a streak's periods. Periods are numbered from
// the one holding the start day (0); a period of daily×count is count local
// days from the start day, weekly×count is 7×count days from the Monday on
// or before the start day, monthly×count is count calendar months from the
// first of the start month. Boundaries are local midnights in loc.
type schedule struct {
	loc    *time.Location
	unit   string
	count  int
	anchor time.Time // local midnight, as a UTC civil date (y, m, d)
	days   [7]bool   // active weekdays
}

func newSchedule(st Streak) (schedule, error) {
	loc, err := loadZone(st.Timezone)
	if err != nil {
		return schedule{}, err
	}
	s := schedule{loc: loc, unit: st.Timeframe.Value, count: max(st.Timeframe.Count, 1)}
	start := st.StartDate.In(loc)
	anchor := time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, time.UTC)
	switch s.unit {
	case Weekly:
		anchor = anchor.AddDate(0, 0, -((int(anchor.Weekday()) + 6) % 7))
	case Monthly:
		anchor = time.Date(anchor.Year(), anchor.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	s.anchor = anchor
	for _, d := range st.activeWeekdays() {
		s.days[d] = true
	}
	return s, nil
}

// civil is t's local calendar day as a UTC midnight.
func (s schedule) civil(t time.Time) time.Time {
	l := t.In(s.loc)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, time.UTC)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// periodDays is the length in days of a day-based period.
func (s schedule) periodDays() int64 {
	if s.unit == Weekly {
		return 7 * int64(s.count)
	}
	return int64(s.count)
}

// index numbers the period holding t (negative before the start).
func (s schedule) index(t time.Time) int64 {
	d := s.civil(t)
	if s.unit == Monthly {
		months := int64(d.Year()-s.anchor.Year())*12 + int64(d.Month()-s.anchor.Month())
		return floorDiv(months, int64(s.count))
	}
	days := int64(d.Sub(s.anchor) / (24 * time.Hour))
	return floorDiv(days, s.periodDays())
}

// firstDay is period i's first local day, as a UTC civil date.
func (s schedule) firstDay(i int64) time.Time {
	if s.unit == Monthly {
		return s.anchor.AddDate(0, int(i)*s.count, 0)
	}
	return s.anchor.AddDate(0, 0, int(i*s.periodDays()))
}

// bounds returns the instants period i starts and ends (exclusive).
func (s schedule) bounds(i int64) (from, to time.Time) {
	a, b := s.firstDay(i), s.firstDay(i+1)
	return time.Date(a.Year(), a.Month(), a.Day(), 0, 0, 0, 0, s.loc), time.Date(b.Year(), b.Month(), b.Day(), 0, 0, 0, 0, s.loc)
}

// dayActive reports whether t falls on an active day.
func (s schedule) dayActive(t time.Time) bool { return s.days[t.In(s.loc).Weekday()] }

// periodActive reports whether period i holds an active day: periods
// without one are skipped (they neither grow nor break a streak).
func (s schedule) periodActive(i int64) bool {
	a, b := s.firstDay(i), s.firstDay(i+1)
	for d, n := a, 0; d.Before(b) && n < 7; d, n = d.AddDate(0, 0, 1), n+1 {
		if s.days[d.Weekday()] {
			return true
		}
	}
	return false
}

// firstMissed returns the first active period strictly between q and n, if
// any. Which periods are active repeats at the latest every 7 periods, so at
// most 7 are looked at.
func (s schedule) firstMissed(q, n int64) (int64, bool) {
	for p := q + 1; p < n && p <= q+7; p++ {
		if s.periodActive(p) {
			return p, true
		}
	}
	return 0, false
}
