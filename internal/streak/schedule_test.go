package streak

import (
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/jsonx"
)

func mustSchedule(t *testing.T, zone, unit string, count int, start time.Time, daysType string, days ...string) schedule {
	t.Helper()
	sc, err := newSchedule(Streak{Timezone: zone, StartDate: jsonx.At(start), Timeframe: Timeframe{Value: unit, Count: count},
		ActiveDaysType: daysType, ActiveDays: days})
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestSchedulePeriods(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	// Daily in New York across the spring DST change (8 March 2026): the
	// period boundary stays at local midnight.
	sc := mustSchedule(t, "America/New_York", Daily, 1, time.Date(2026, 3, 7, 12, 0, 0, 0, ny), DaysAll)
	for _, c := range []struct {
		at   time.Time
		want int64
	}{
		{time.Date(2026, 3, 7, 0, 0, 0, 0, ny), 0},
		{time.Date(2026, 3, 6, 23, 59, 0, 0, ny), -1},
		{time.Date(2026, 3, 8, 23, 59, 0, 0, ny), 1},
		{time.Date(2026, 3, 9, 0, 0, 0, 0, ny), 2},
	} {
		if got := sc.index(c.at); got != c.want {
			t.Errorf("daily index(%s) = %d, want %d", c.at, got, c.want)
		}
	}
	from, to := sc.bounds(1)
	if !from.Equal(time.Date(2026, 3, 8, 0, 0, 0, 0, ny)) || to.Sub(from) != 23*time.Hour {
		t.Errorf("DST day bounds %s - %s", from, to)
	}

	// Weekly periods start on the Monday on or before the start day; two-day
	// daily periods count from the start day.
	wk := mustSchedule(t, UTCZone, Weekly, 1, time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC), DaysAll) // a Thursday
	if from, _ := wk.bounds(0); !from.Equal(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)) || wk.index(time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)) != 1 {
		t.Errorf("weekly anchor %s", from)
	}
	two := mustSchedule(t, UTCZone, Daily, 2, time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC), DaysAll)
	if two.index(time.Date(2026, 3, 6, 23, 0, 0, 0, time.UTC)) != 0 || two.index(time.Date(2026, 3, 7, 0, 0, 0, 0, time.UTC)) != 1 {
		t.Error("two-day periods")
	}

	// Monthly: calendar months from the first of the start month.
	mo := mustSchedule(t, UTCZone, Monthly, 1, time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC), DaysAll)
	if mo.index(time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC)) != 1 || mo.index(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) != 12 {
		t.Error("monthly index")
	}
	if from, to := mo.bounds(1); !from.Equal(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)) || !to.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("february %s - %s", from, to)
	}

	// Only Mondays: periods 1-6 after a Monday are skipped, the next Monday
	// is the first one missed.
	mon := mustSchedule(t, UTCZone, Daily, 1, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), DaysCustom, "Monday")
	if _, missed := mon.firstMissed(0, 7); missed {
		t.Error("inactive days must not break a streak")
	}
	if p, missed := mon.firstMissed(0, 8); !missed || p != 7 {
		t.Errorf("first missed %d %v", p, missed)
	}
	if mon.periodActive(1) || !mon.periodActive(7) {
		t.Error("active periods")
	}
	if _, err := loadZone("Mars/Olympus"); err == nil {
		t.Error("unknown zones must be refused")
	}
}

func TestQualifies(t *testing.T) {
	and := Rule{Operator: OperatorAnd, Conditions: []Condition{{Action: ActionMessages, Value: 2}, {Action: ActionReplies, Value: 1}}}
	or := Rule{Operator: OperatorOr, Conditions: and.Conditions}
	for _, c := range []struct {
		got     map[string]int64
		and, or bool
	}{
		{map[string]int64{}, false, false},
		{map[string]int64{ActionMessages: 2}, false, true},
		{map[string]int64{ActionReplies: 1}, false, true},
		{map[string]int64{ActionMessages: 2, ActionReplies: 1}, true, true},
	} {
		if qualifies(and, c.got) != c.and || qualifies(or, c.got) != c.or {
			t.Errorf("%v: and %v or %v", c.got, qualifies(and, c.got), qualifies(or, c.got))
		}
	}
}
