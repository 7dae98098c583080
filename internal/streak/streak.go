// Package streak keeps streak definitions (conditions over member actions,
// per timeframe, on active days, in a time zone, from a start day), each
// member's standing in them, the streak logs and the built-in login streak.
//
// A member's streak grows by one for each period in which the conditions
// hold, at the moment they first hold, and breaks (back to 0) once an active
// period ends without them: the period boundary is local midnight in the
// streak's time zone. Periods with no active day are skipped. Action counts
// come from outbox events (Subscriber); reads evaluate lazily, so a missed
// period shows as broken without any new event.
package streak

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rallyhq/rally/internal/event"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
)

// Condition actions: what a condition counts in a period.
const (
	// ActionMessages counts messages the member posted, replies included.
	ActionMessages = "messages"
	// ActionReplies counts replies the member posted.
	ActionReplies = "replies"
	// ActionReactions counts reactions the member added.
	ActionReactions = "reactions"
	// ActionLogins counts the member's visits (at most one per UTC day).
	ActionLogins = "logins"
)

// Actions lists every condition action.
var Actions = []string{ActionMessages, ActionReplies, ActionReactions, ActionLogins}

// Operators combine conditions.
const (
	OperatorAnd = "and"
	OperatorOr  = "or"
)

// Active-day types: which weekdays count.
const (
	DaysAll      = "all"
	DaysWeekdays = "weekdays"
	DaysWeekends = "weekends"
	DaysCustom   = "custom"
)

// Limits of a definition.
const (
	MaxNameLength    = 100
	MaxConditions    = 20
	MaxConditionVal  = 1_000_000
	MaxTimeframe     = 365
	DefaultListLimit = 10
	MaxListLimit     = 100
)

// Condition is one action with its minimum count per period.
type Condition struct {
	ID     string `json:"_id"`
	Action string `json:"action"`
	Value  int64  `json:"value"`
	// IsCustomField is echoed as sent; conditions over custom fields are
	// not supported (true is rejected).
	IsCustomField *bool `json:"isCustomField"`
}

// Timeframe is a period's unit and how many units it spans.
type Timeframe struct {
	Value string `json:"value"`
	Count int    `json:"count"`
}

// Rule combines conditions with an operator.
type Rule struct {
	Operator   string      `json:"operator"`
	Conditions []Condition `json:"conditions"`
}

// Streak is a streak definition, in the docs' shape.
type Streak struct {
	ID             string     `json:"_id"`
	ActiveDays     []string   `json:"activeDays"`
	Name           string     `json:"name"`
	CommunityID    string     `json:"communityId"`
	Timezone       string     `json:"timezone"`
	StartDate      jsonx.Time `json:"startDate"`
	Timeframe      Timeframe  `json:"timeframe"`
	Action         Rule       `json:"action"`
	CreatedAt      jsonx.Time `json:"createdAt"`
	UpdatedAt      jsonx.Time `json:"updatedAt"`
	ActiveDaysType string     `json:"activeDaysType"`
	Version        int        `json:"__v"`
	Order          int        `json:"order"`
}

// activeWeekdays returns the weekdays on which the streak counts.
func (s Streak) activeWeekdays() []time.Weekday {
	var out []time.Weekday
	for d := time.Sunday; d <= time.Saturday; d++ {
		switch s.ActiveDaysType {
		case DaysAll:
			out = append(out, d)
		case DaysWeekdays:
			if d != time.Saturday && d != time.Sunday {
				out = append(out, d)
			}
		case DaysWeekends:
			if d == time.Saturday || d == time.Sunday {
				out = append(out, d)
			}
		default:
			if slices.Contains(s.ActiveDays, Weekdays[d]) {
				out = append(out, d)
			}
		}
	}
	return out
}

// Input creates a streak or changes the fields it sets.
type Input struct {
	Name           jsonx.Optional[string]    `json:"name"`
	Timezone       jsonx.Optional[string]    `json:"timezone"`
	StartDate      jsonx.Optional[string]    `json:"startDate"`
	Timeframe      jsonx.Optional[Timeframe] `json:"timeframe"`
	Action         jsonx.Optional[Rule]      `json:"action"`
	ActiveDaysType jsonx.Optional[string]    `json:"activeDaysType"`
	ActiveDays     jsonx.Optional[[]string]  `json:"activeDays"`
	Order          jsonx.Optional[int]       `json:"order"`
}

// Deps are what the streak service needs.
type Deps struct {
	DB     *db.DB
	Clock  clock.Clock
	Events event.Appender
}

// Service holds streak definitions and members' streaks.
type Service struct{ d Deps }

// NewService returns the streak service.
func NewService(d Deps) *Service { return &Service{d: d} }

// apply sets in's fields on st and names every offending field (API names).
func apply(st *Streak, in Input, now time.Time, creating bool) error {
	var v errs.Validator
	required := func(set bool, field string) bool {
		if creating && !set {
			v.Add(field, "is required")
			return false
		}
		return set
	}
	if required(in.Name.Set, "name") {
		st.Name = strings.TrimSpace(in.Name.Value)
		n := utf8.RuneCountInString(st.Name)
		v.Check(!in.Name.Null && n >= 1 && n <= MaxNameLength, "name", "must be 1 to %d characters", MaxNameLength)
	}
	if in.Timezone.Set {
		st.Timezone = in.Timezone.Value
		_, err := loadZone(st.Timezone)
		v.Check(!in.Timezone.Null && err == nil, "timezone", "must be %q or an IANA time zone name (e.g. Asia/Singapore)", UTCZone)
	}
	if in.StartDate.Set {
		t, ok := parseStart(in.StartDate.Value, st.Timezone)
		v.Check(!in.StartDate.Null && ok, "startDate", "must be a date (YYYY-MM-DD) or an RFC 3339 timestamp")
		st.StartDate = jsonx.At(t)
	} else if creating {
		st.StartDate = jsonx.At(now)
	}
	if required(in.Timeframe.Set, "timeframe") {
		tf := in.Timeframe.Value
		v.Check(!in.Timeframe.Null && slices.Contains([]string{Daily, Weekly, Monthly}, tf.Value), "timeframe.value", "must be daily, weekly or monthly")
		v.Check(!in.Timeframe.Null && tf.Count >= 1 && tf.Count <= MaxTimeframe, "timeframe.count", "must be a whole number from 1 to %d", MaxTimeframe)
		st.Timeframe = tf
	}
	if required(in.Action.Set, "action") {
		checkRule(&v, in.Action.Value, in.Action.Null)
		st.Action = in.Action.Value
		for i := range st.Action.Conditions {
			if c := &st.Action.Conditions[i]; c.ID == "" {
				c.ID = newConditionID()
			}
		}
	}
	if in.ActiveDaysType.Set {
		st.ActiveDaysType = in.ActiveDaysType.Value
		v.Check(slices.Contains([]string{DaysAll, DaysWeekdays, DaysWeekends, DaysCustom}, st.ActiveDaysType), "activeDaysType",
			"must be all, weekdays, weekends or custom")
	}
	if in.ActiveDays.Set {
		st.ActiveDays = []string{}
		for _, d := range in.ActiveDays.Value {
			ok := slices.Contains(Weekdays[:], d)
			v.Check(ok, "activeDays", "must list weekday names (Monday ... Sunday)")
			if ok && !slices.Contains(st.ActiveDays, d) {
				st.ActiveDays = append(st.ActiveDays, d)
			}
		}
	}
	if st.ActiveDays == nil {
		st.ActiveDays = []string{}
	}
	v.Check(st.ActiveDaysType != DaysCustom || len(st.ActiveDays) > 0, "activeDays", "must name at least one day when activeDaysType is custom")
	if in.Order.Set {
		st.Order = in.Order.Value
		v.Check(!in.Order.Null && st.Order >= 0, "order", "must be a whole number of at least 0")
	}
	return v.Err()
}

func checkRule(v *errs.Validator, r Rule, null bool) {
	v.Check(!null && (r.Operator == OperatorAnd || r.Operator == OperatorOr), "action.operator", "must be and or or")
	v.Check(!null && len(r.Conditions) >= 1 && len(r.Conditions) <= MaxConditions, "action.conditions", "must hold 1 to %d conditions", MaxConditions)
	for i, c := range r.Conditions {
		f := fmt.Sprintf("action.conditions.%d.", i)
		v.Check(slices.Contains(Actions, c.Action), f+"action", "must be one of %s", strings.Join(Actions, ", "))
		v.Check(c.Value >= 1 && c.Value <= MaxConditionVal, f+"value", "must be a whole number from 1 to %d", MaxConditionVal)
		v.Check(c.IsCustomField == nil || !*c.IsCustomField, f+"isCustomField", "conditions over custom fields are not supported")
		v.Check(len(c.ID) <= 24, f+"_id", "must be at most 24 characters")
	}
}

// parseStart reads a start date: YYYY-MM-DD is local midnight in zone.
func parseStart(s, zone string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	loc, err := loadZone(zone)
	if err != nil {
		loc = time.UTC
	}
	t, err := time.ParseInLocation(time.DateOnly, s, loc)
	return t, err == nil
}

func newConditionID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

const columns = `id, community_id, name, timezone, start_at, timeframe_value, timeframe_count, operator, conditions,
	active_days_type, active_days, sort_order, version, created_at, updated_at`

func scan(r interface{ Scan(...any) error }) (Streak, error) {
	var (
		st                      Streak
		start, created, updated int64
		conds, days             string
	)
	err := r.Scan(&st.ID, &st.CommunityID, &st.Name, &st.Timezone, &start, &st.Timeframe.Value, &st.Timeframe.Count,
		&st.Action.Operator, &conds, &st.ActiveDaysType, &days, &st.Order, &st.Version, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Streak{}, errs.NotFoundf("Streak not found.")
	}
	if err != nil {
		return Streak{}, fmt.Errorf("scan streak: %w", err)
	}
	if err := json.Unmarshal([]byte(conds), &st.Action.Conditions); err != nil {
		return Streak{}, fmt.Errorf("decode streak conditions: %w", err)
	}
	if err := json.Unmarshal([]byte(days), &st.ActiveDays); err != nil {
		return Streak{}, fmt.Errorf("decode streak days: %w", err)
	}
	st.StartDate, st.CreatedAt, st.UpdatedAt = jsonx.Millis(start), jsonx.Millis(created), jsonx.Millis(updated)
	return st, nil
}

// Create adds a streak to the community. Timezone defaults to utc_gmt,
// startDate to now, activeDaysType to all.
func (s *Service) Create(ctx context.Context, communityID string, in Input) (Streak, error) {
	now := s.d.Clock.Now()
	st := Streak{ID: id.New(now), CommunityID: communityID, Timezone: UTCZone, ActiveDaysType: DaysAll,
		CreatedAt: jsonx.At(now), UpdatedAt: jsonx.At(now)}
	if !in.Timezone.Set {
		in.Timezone = jsonx.Some(UTCZone)
	}
	if err := apply(&st, in, now, true); err != nil {
		return Streak{}, err
	}
	conds, days := mustJSON(st.Action.Conditions), mustJSON(st.ActiveDays)
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO streaks ("+columns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			st.ID, st.CommunityID, st.Name, st.Timezone, st.StartDate.UnixMilli(), st.Timeframe.Value, st.Timeframe.Count,
			st.Action.Operator, conds, st.ActiveDaysType, days, st.Order, st.Version, now.UnixMilli(), now.UnixMilli()); err != nil {
			return fmt.Errorf("create streak: %w", err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "streak.created", st)
	})
	if err != nil {
		return Streak{}, err
	}
	return st, nil
}

// Update changes the fields in sets. Members' standing is kept: the last
// qualified period is found again under the new schedule.
func (s *Service) Update(ctx context.Context, communityID, streakID string, in Input) (Streak, error) {
	var st Streak
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if st, err = scan(tx.QueryRow(ctx, "SELECT "+columns+" FROM streaks WHERE community_id = ? AND id = ?"+tx.DB().ForUpdate(),
			communityID, streakID)); err != nil {
			return err
		}
		now := s.d.Clock.Now()
		if in.StartDate.Set && !in.Timezone.Set {
			in.Timezone = jsonx.Some(st.Timezone)
		}
		if err := apply(&st, in, now, false); err != nil {
			return err
		}
		st.Version++
		st.UpdatedAt = jsonx.At(now)
		if _, err := tx.Exec(ctx, `UPDATE streaks SET name = ?, timezone = ?, start_at = ?, timeframe_value = ?, timeframe_count = ?,
			operator = ?, conditions = ?, active_days_type = ?, active_days = ?, sort_order = ?, version = ?, updated_at = ?
			WHERE community_id = ? AND id = ?`,
			st.Name, st.Timezone, st.StartDate.UnixMilli(), st.Timeframe.Value, st.Timeframe.Count, st.Action.Operator,
			mustJSON(st.Action.Conditions), st.ActiveDaysType, mustJSON(st.ActiveDays), st.Order, st.Version, now.UnixMilli(),
			communityID, streakID); err != nil {
			return fmt.Errorf("update streak %s: %w", streakID, err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "streak.updated", st)
	})
	if err != nil {
		return Streak{}, err
	}
	return st, nil
}

// Delete removes a streak with its members' standing (its logs stay).
func (s *Service) Delete(ctx context.Context, communityID, streakID string) error {
	return s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		st, err := scan(tx.QueryRow(ctx, "SELECT "+columns+" FROM streaks WHERE community_id = ? AND id = ?", communityID, streakID))
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM streak_members WHERE streak_id = ?", streakID); err != nil {
			return fmt.Errorf("delete streak %s: %w", streakID, err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM streaks WHERE community_id = ? AND id = ?", communityID, streakID); err != nil {
			return fmt.Errorf("delete streak %s: %w", streakID, err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "streak.deleted", map[string]any{"_id": st.ID, "name": st.Name})
	})
}

// Get returns one of the community's streaks.
func (s *Service) Get(ctx context.Context, communityID, streakID string) (Streak, error) {
	return scan(s.d.DB.QueryRow(ctx, "SELECT "+columns+" FROM streaks WHERE community_id = ? AND id = ?", communityID, streakID))
}

// List pages the community's streaks by order, then creation; page counts
// from 1. It returns the page and the total.
func (s *Service) List(ctx context.Context, communityID string, page, limit int) ([]Streak, int, error) {
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM streaks WHERE community_id = ?", communityID).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count streaks: %w", err)
	}
	rows, err := s.d.DB.Query(ctx, "SELECT "+columns+" FROM streaks WHERE community_id = ? ORDER BY sort_order, created_at, id LIMIT ? OFFSET ?",
		communityID, limit, (page-1)*limit)
	if err != nil {
		return nil, 0, fmt.Errorf("list streaks: %w", err)
	}
	out, err := collect(rows)
	return out, total, err
}

// all returns every streak of the community, read in tx.
func all(ctx context.Context, tx *db.Tx, communityID string) ([]Streak, error) {
	rows, err := tx.Query(ctx, "SELECT "+columns+" FROM streaks WHERE community_id = ? ORDER BY sort_order, created_at, id", communityID)
	if err != nil {
		return nil, fmt.Errorf("read streaks: %w", err)
	}
	return collect(rows)
}

func collect(rows *sql.Rows) ([]Streak, error) {
	defer rows.Close()
	out := []Streak{}
	for rows.Next() {
		st, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read streaks: %w", err)
	}
	return out, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %T: %v", v, err))
	}
	return string(b)
}
