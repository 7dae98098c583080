package referral

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/metric"
)

// Program statuses: only active programs make progress.
const (
	StatusActive   = "active"
	StatusInactive = "inactive"
)

// Operators combine conditions.
const (
	OperatorAnd = "and"
	OperatorOr  = "or"
)

// Display settings of a stage, echoed to the community's widgets.
const (
	DisplayVisible = "visible"
	DisplayHidden  = "hidden"
)

// ConditionMetrics are the measures a stage condition may set a target on.
var ConditionMetrics = []string{metric.Messages, metric.Replies, metric.Reactions, metric.Visits, metric.XP, metric.Level,
	metric.Purchases, metric.EmailVerified, metric.LoginStreak}

// Limits of a program.
const (
	MaxNameLength        = 100
	MaxDescriptionLength = 500
	MaxTextLength        = 200
	MaxStages            = 20
	MaxMainConditions    = 10
	MaxNestedConditions  = 10
	MaxReward            = 1_000_000
	MaxConditionValue    = 1_000_000_000
	DefaultListLimit     = 20
	MaxListLimit         = 100
)

// Rewards are what the referrer earns when a referee completes a stage.
type Rewards struct {
	XP    int64 `json:"xp"`
	Coins int64 `json:"coins"`
}

// Condition is one target on a measure of the referee's progress: the
// measure reaches Value (emailVerified: the email is verified).
type Condition struct {
	ID     string `json:"conditionId"`
	Metric string `json:"metric"`
	Value  int64  `json:"value"`
	Text   string `json:"text"`
}

// MainCondition groups nested conditions with an operator.
type MainCondition struct {
	ID               string      `json:"groupId"`
	Operator         string      `json:"operator"`
	Text             string      `json:"text"`
	NestedConditions []Condition `json:"nestedConditions"`
}

// Requirements combine main conditions with an operator.
type Requirements struct {
	Operator       string          `json:"operator"`
	MainConditions []MainCondition `json:"mainConditions"`
}

// Stage is one step of a program.
type Stage struct {
	ID             string       `json:"stageId"`
	StageNumber    int          `json:"stageNumber"`
	Name           string       `json:"name"`
	Description    string       `json:"description"`
	DisplaySetting string       `json:"displaySetting"`
	Rewards        Rewards      `json:"rewards"`
	Requirements   Requirements `json:"requirements"`
}

// Program is a referral program.
type Program struct {
	ID          string     `json:"_id"`
	CommunityID string     `json:"communityId"`
	Name        string     `json:"name"`
	Description string     `json:"description"`
	Status      string     `json:"status"`
	Order       int        `json:"order"`
	Stages      []Stage    `json:"stages"`
	CreatedAt   jsonx.Time `json:"createdAt"`
	UpdatedAt   jsonx.Time `json:"updatedAt"`
}

// ProgramInput creates a program or changes the fields it sets; stages,
// when set, replace the program's stages (stages, groups and conditions
// keep their ids when sent back, so completed stages stay completed).
type ProgramInput struct {
	Name        jsonx.Optional[string]  `json:"name"`
	Description jsonx.Optional[string]  `json:"description"`
	Status      jsonx.Optional[string]  `json:"status"`
	Order       jsonx.Optional[int]     `json:"order"`
	Stages      jsonx.Optional[[]Stage] `json:"stages"`
}

// defaultText describes a condition for members.
func defaultText(c Condition) string {
	plural := func(one, many string) string {
		if c.Value == 1 {
			return one
		}
		return many
	}
	switch c.Metric {
	case metric.Messages:
		return fmt.Sprintf("Send %d %s", c.Value, plural("message", "messages"))
	case metric.Replies:
		return fmt.Sprintf("Post %d %s", c.Value, plural("reply", "replies"))
	case metric.Reactions:
		return fmt.Sprintf("Add %d %s", c.Value, plural("reaction", "reactions"))
	case metric.Visits:
		return fmt.Sprintf("Visit on %d %s", c.Value, plural("day", "days"))
	case metric.XP:
		return fmt.Sprintf("Earn %d XP", c.Value)
	case metric.Level:
		return fmt.Sprintf("Reach level %d", c.Value)
	case metric.Purchases:
		return fmt.Sprintf("Make %d %s", c.Value, plural("purchase", "purchases"))
	case metric.EmailVerified:
		return "Verify their email address"
	case metric.LoginStreak:
		return fmt.Sprintf("Reach a %d-day login streak", c.Value)
	}
	return c.Metric
}

// ids hands out the ids of stages, groups and conditions: the one sent,
// when valid and unused in the program, else a new one.
type ids struct {
	now  time.Time
	seen map[string]bool
}

func (g *ids) take(v *errs.Validator, field, sent string) string {
	sent = strings.TrimSpace(sent)
	if sent == "" {
		return id.New(g.now)
	}
	if !id.Valid(sent) {
		v.Add(field, "must be a 24-character hex id (or omitted for a new one)")
	} else if g.seen[sent] {
		v.Add(field, "is used twice in this program")
	}
	g.seen[sent] = true
	return sent
}

func checkText(v *errs.Validator, field string, s *string, limit int) {
	*s = strings.TrimSpace(*s)
	v.Check(utf8.RuneCountInString(*s) <= limit, field, "must be at most %d characters", limit)
}

// checkStages validates stages, numbers them from 1 and fills ids, display
// settings, operators and texts.
func checkStages(v *errs.Validator, stages []Stage, now time.Time) []Stage {
	v.Check(len(stages) >= 1 && len(stages) <= MaxStages, "stages", "must hold 1 to %d stages", MaxStages)
	g := &ids{now: now, seen: map[string]bool{}}
	out := make([]Stage, len(stages))
	for i, st := range stages {
		f := fmt.Sprintf("stages.%d.", i)
		st.ID = g.take(v, f+"stageId", st.ID)
		st.StageNumber = i + 1
		st.Name = strings.TrimSpace(st.Name)
		n := utf8.RuneCountInString(st.Name)
		v.Check(n >= 1 && n <= MaxNameLength, f+"name", "must be 1 to %d characters", MaxNameLength)
		checkText(v, f+"description", &st.Description, MaxDescriptionLength)
		if st.DisplaySetting == "" {
			st.DisplaySetting = DisplayVisible
		}
		v.Check(st.DisplaySetting == DisplayVisible || st.DisplaySetting == DisplayHidden, f+"displaySetting", "must be visible or hidden")
		v.Check(st.Rewards.XP >= 0 && st.Rewards.XP <= MaxReward, f+"rewards.xp", "must be a whole number from 0 to %d", MaxReward)
		v.Check(st.Rewards.Coins >= 0 && st.Rewards.Coins <= MaxReward, f+"rewards.coins", "must be a whole number from 0 to %d", MaxReward)
		rq := &st.Requirements
		if rq.Operator == "" {
			rq.Operator = OperatorAnd
		}
		v.Check(rq.Operator == OperatorAnd || rq.Operator == OperatorOr, f+"requirements.operator", "must be and or or")
		v.Check(len(rq.MainConditions) >= 1 && len(rq.MainConditions) <= MaxMainConditions, f+"requirements.mainConditions",
			"must hold 1 to %d conditions", MaxMainConditions)
		mains := make([]MainCondition, len(rq.MainConditions))
		for j, mc := range rq.MainConditions {
			mf := fmt.Sprintf("%srequirements.mainConditions.%d.", f, j)
			mc.ID = g.take(v, mf+"groupId", mc.ID)
			if mc.Operator == "" {
				mc.Operator = OperatorAnd
			}
			v.Check(mc.Operator == OperatorAnd || mc.Operator == OperatorOr, mf+"operator", "must be and or or")
			v.Check(len(mc.NestedConditions) >= 1 && len(mc.NestedConditions) <= MaxNestedConditions, mf+"nestedConditions",
				"must hold 1 to %d conditions", MaxNestedConditions)
			nested := make([]Condition, len(mc.NestedConditions))
			texts := make([]string, len(mc.NestedConditions))
			for k, c := range mc.NestedConditions {
				cf := fmt.Sprintf("%snestedConditions.%d.", mf, k)
				c.ID = g.take(v, cf+"conditionId", c.ID)
				okMetric := slices.Contains(ConditionMetrics, c.Metric)
				v.Check(okMetric, cf+"metric", "must be one of %s", strings.Join(ConditionMetrics, ", "))
				if c.Metric == metric.EmailVerified && c.Value == 0 {
					c.Value = 1
				}
				v.Check(c.Value >= 1 && c.Value <= MaxConditionValue, cf+"value", "must be a whole number from 1 to %d", MaxConditionValue)
				v.Check(c.Metric != metric.EmailVerified || c.Value == 1, cf+"value", "must be 1 for emailVerified")
				checkText(v, cf+"text", &c.Text, MaxTextLength)
				if c.Text == "" && okMetric {
					c.Text = defaultText(c)
				}
				nested[k], texts[k] = c, c.Text
			}
			mc.NestedConditions = nested
			checkText(v, mf+"text", &mc.Text, MaxTextLength)
			if mc.Text == "" {
				mc.Text = strings.Join(texts, " "+mc.Operator+" ")
			}
			mains[j] = mc
		}
		rq.MainConditions = mains
		out[i] = st
	}
	return out
}

// apply sets in's fields on p, naming every offending field.
func (in ProgramInput) apply(p *Program, now time.Time, creating bool) error {
	var v errs.Validator
	if creating && !in.Name.Set {
		v.Add("name", "is required")
	}
	if in.Name.Set {
		p.Name = strings.TrimSpace(in.Name.Value)
		n := utf8.RuneCountInString(p.Name)
		v.Check(!in.Name.Null && n >= 1 && n <= MaxNameLength, "name", "must be 1 to %d characters", MaxNameLength)
	}
	if in.Description.Set {
		p.Description = in.Description.Value
		checkText(&v, "description", &p.Description, MaxDescriptionLength)
	}
	if in.Status.Set {
		p.Status = in.Status.Value
		v.Check(p.Status == StatusActive || p.Status == StatusInactive, "status", "must be active or inactive")
	}
	if in.Order.Set {
		p.Order = in.Order.Value
		v.Check(!in.Order.Null && p.Order >= 0, "order", "must be a whole number of at least 0")
	}
	if creating && !in.Stages.Set {
		v.Add("stages", "is required")
	}
	if in.Stages.Set {
		if in.Stages.Null {
			v.Add("stages", "must hold 1 to %d stages", MaxStages)
		} else {
			p.Stages = checkStages(&v, in.Stages.Value, now)
		}
	}
	return v.Err()
}

const programColumns = `id, community_id, name, description, status, stages, sort_order, created_at, updated_at`

func scanProgram(r interface{ Scan(...any) error }) (Program, error) {
	var (
		p                Program
		stages           string
		created, updated int64
	)
	err := r.Scan(&p.ID, &p.CommunityID, &p.Name, &p.Description, &p.Status, &stages, &p.Order, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Program{}, errs.NotFoundf("Referral program not found.")
	}
	if err != nil {
		return Program{}, fmt.Errorf("scan referral program: %w", err)
	}
	if err := json.Unmarshal([]byte(stages), &p.Stages); err != nil {
		return Program{}, fmt.Errorf("decode referral program stages: %w", err)
	}
	p.CreatedAt, p.UpdatedAt = jsonx.Millis(created), jsonx.Millis(updated)
	return p, nil
}

// CreateProgram adds a program to the community (status active unless
// given).
func (s *Service) CreateProgram(ctx context.Context, communityID string, in ProgramInput) (Program, error) {
	now := s.d.Clock.Now()
	p := Program{ID: id.New(now), CommunityID: communityID, Status: StatusActive, CreatedAt: jsonx.At(now), UpdatedAt: jsonx.At(now)}
	if err := in.apply(&p, now, true); err != nil {
		return Program{}, err
	}
	stages, err := json.Marshal(p.Stages)
	if err != nil {
		return Program{}, fmt.Errorf("encode stages: %w", err)
	}
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO referral_programs (`+programColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.ID, communityID, p.Name, p.Description, p.Status, string(stages), p.Order, now.UnixMilli(), now.UnixMilli()); err != nil {
			return fmt.Errorf("insert referral program: %w", err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "referral.program.created", p)
	})
	if err != nil {
		return Program{}, err
	}
	return p, nil
}

// UpdateProgram changes the fields in sets.
func (s *Service) UpdateProgram(ctx context.Context, communityID, programID string, in ProgramInput) (Program, error) {
	var p Program
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if p, err = s.programTx(ctx, tx, communityID, programID, true); err != nil {
			return err
		}
		now := s.d.Clock.Now()
		if err := in.apply(&p, now, false); err != nil {
			return err
		}
		p.UpdatedAt = jsonx.At(now)
		stages, err := json.Marshal(p.Stages)
		if err != nil {
			return fmt.Errorf("encode stages: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE referral_programs SET name = ?, description = ?, status = ?, stages = ?, sort_order = ?, updated_at = ?
			WHERE community_id = ? AND id = ?`, p.Name, p.Description, p.Status, string(stages), p.Order, now.UnixMilli(), communityID, p.ID); err != nil {
			return fmt.Errorf("update referral program: %w", err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "referral.program.updated", p)
	})
	if err != nil {
		return Program{}, err
	}
	return p, nil
}

// DeleteProgram removes a program and its completions (rewards already
// paid stay paid).
func (s *Service) DeleteProgram(ctx context.Context, communityID, programID string) error {
	return s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		p, err := s.programTx(ctx, tx, communityID, programID, true)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM referral_completions WHERE community_id = ? AND program_id = ?", communityID, p.ID); err != nil {
			return fmt.Errorf("delete referral completions: %w", err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM referral_programs WHERE community_id = ? AND id = ?", communityID, p.ID); err != nil {
			return fmt.Errorf("delete referral program: %w", err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "referral.program.deleted", map[string]string{"_id": p.ID})
	})
}

// Program returns one of the community's programs; other communities'
// programs and malformed ids are NotFound.
func (s *Service) Program(ctx context.Context, communityID, programID string) (Program, error) {
	if !id.Valid(programID) {
		return Program{}, errs.NotFoundf("Referral program not found.")
	}
	return scanProgram(s.d.DB.QueryRow(ctx, "SELECT "+programColumns+" FROM referral_programs WHERE community_id = ? AND id = ?",
		communityID, programID))
}

func (s *Service) programTx(ctx context.Context, tx *db.Tx, communityID, programID string, lock bool) (Program, error) {
	if !id.Valid(programID) {
		return Program{}, errs.NotFoundf("Referral program not found.")
	}
	q := "SELECT " + programColumns + " FROM referral_programs WHERE community_id = ? AND id = ?"
	if lock {
		q += tx.DB().ForUpdate()
	}
	return scanProgram(tx.QueryRow(ctx, q, communityID, programID))
}

// ProgramQuery filters and pages the program list.
type ProgramQuery struct {
	// Status keeps programs with this status ("" = all).
	Status string
	Page   int
	Limit  int
}

// Programs lists the community's programs by order then creation, with
// the total matching.
func (s *Service) Programs(ctx context.Context, communityID string, q ProgramQuery) ([]Program, int, error) {
	where, args := "community_id = ?", []any{communityID}
	if q.Status != "" {
		if q.Status != StatusActive && q.Status != StatusInactive {
			var v errs.Validator
			v.Add("status", "must be active or inactive")
			return nil, 0, v.Err()
		}
		where, args = where+" AND status = ?", append(args, q.Status)
	}
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM referral_programs WHERE "+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count referral programs: %w", err)
	}
	out, err := s.programs(ctx, s.d.DB, "WHERE "+where+" ORDER BY sort_order, created_at, id LIMIT ? OFFSET ?",
		append(args, q.Limit, (q.Page-1)*q.Limit)...)
	return out, total, err
}

// activePrograms lists the community's active programs in order.
func (s *Service) activePrograms(ctx context.Context, q querier, communityID string) ([]Program, error) {
	return s.programs(ctx, q, "WHERE community_id = ? AND status = ? ORDER BY sort_order, created_at, id", communityID, StatusActive)
}

func (s *Service) programs(ctx context.Context, q querier, tail string, args ...any) ([]Program, error) {
	rows, err := q.Query(ctx, "SELECT "+programColumns+" FROM referral_programs "+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("list referral programs: %w", err)
	}
	defer rows.Close()
	out := []Program{}
	for rows.Next() {
		p, err := scanProgram(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
