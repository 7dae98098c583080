package referral

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/gamification"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/metric"
	"github.com/rallyhq/rally/internal/user"
)

// Summary paging bounds.
const (
	DefaultSummaryLimit = 25
	MaxSummaryLimit     = 100
)

// Stage statuses in a summary.
const (
	StageCompleted  = "completed"
	StageInProgress = "in_progress"
	StageLocked     = "locked"
)

// SummaryUser names the member a summary is about.
type SummaryUser struct {
	// ID is the member's numeric id, as a string.
	ID string `json:"id"`
	// UserID is the member's _id.
	UserID   string `json:"userId"`
	Email    string `json:"email"`
	Username string `json:"username"`
}

// Activity counts what the member's referrals brought.
type Activity struct {
	// CoinsEarned and XPEarned sum the member's referral rewards: the refer
	// action's and every completed stage's.
	CoinsEarned int64 `json:"coinsEarned"`
	XPEarned    int64 `json:"xpEarned"`
	// TotalReferrals counts the live members they referred; Completed those
	// who completed every stage of every active program (at least one), and
	// InProgress the rest.
	TotalReferrals int `json:"totalReferrals"`
	InProgress     int `json:"inProgress"`
	Completed      int `json:"completed"`
}

// ConditionProgress is one nested condition with the referee's value.
type ConditionProgress struct {
	ConditionID string `json:"conditionId"`
	Text        string `json:"text"`
	Metric      string `json:"metric"`
	Target      int64  `json:"target"`
	Current     int64  `json:"current"`
	IsMet       bool   `json:"isMet"`
}

// MainProgress is one main condition with its nested conditions.
type MainProgress struct {
	GroupID          string              `json:"groupId"`
	Operator         string              `json:"operator"`
	Text             string              `json:"text"`
	IsMet            bool                `json:"isMet"`
	NestedConditions []ConditionProgress `json:"nestedConditions"`
}

// RequirementsProgress counts the main conditions met.
type RequirementsProgress struct {
	Operator       string         `json:"operator"`
	Met            int            `json:"met"`
	Total          int            `json:"total"`
	MainConditions []MainProgress `json:"mainConditions"`
}

// StageProgress is one stage as a referee stands in it.
type StageProgress struct {
	StageID        string               `json:"stageId"`
	StageNumber    int                  `json:"stageNumber"`
	Name           string               `json:"name"`
	Description    string               `json:"description"`
	DisplaySetting string               `json:"displaySetting"`
	Status         string               `json:"status"`
	IsCompleted    bool                 `json:"isCompleted"`
	CompletedAt    *jsonx.Time          `json:"completedAt"`
	Rewards        Rewards              `json:"rewards"`
	Requirements   RequirementsProgress `json:"requirements"`
}

// ProgramProgress is a referee's progress in one program.
type ProgramProgress struct {
	ProgramID       string          `json:"programId"`
	ProgramName     string          `json:"programName"`
	CompletedStages int             `json:"completedStages"`
	TotalStages     int             `json:"totalStages"`
	Percentage      int             `json:"percentage"`
	Stages          []StageProgress `json:"stages"`
}

// Referee is a referred member with their progress.
type Referee struct {
	UserID            string            `json:"userId"`
	Username          string            `json:"username"`
	Avatar            string            `json:"avatar"`
	JoinedAt          string            `json:"joinedAt"`
	ProgressByProgram []ProgramProgress `json:"progressByProgram"`
}

// CursorPage is the summary's paging: pass NextCursor back as
// pagination.cursor for the next referees.
type CursorPage struct {
	Limit      int     `json:"limit"`
	NextCursor *string `json:"nextCursor"`
	HasMore    bool    `json:"hasMore"`
}

// Summary is the referral summary of one member (GA10).
type Summary struct {
	User       SummaryUser `json:"user"`
	Invite     Invite      `json:"invite"`
	Activity   Activity    `json:"activity"`
	Referees   []Referee   `json:"referees"`
	Pagination CursorPage  `json:"pagination"`
}

// SummaryQuery picks the referees page and, optionally, one program.
type SummaryQuery struct {
	ProgramID string
	Limit     int
	Cursor    string
}

// cursor is a position in the referee list: (created_at, user id).
func encodeCursor(at int64, userID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at, 10) + "|" + userID))
}

func decodeCursor(s string) (int64, string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, "", false
	}
	at, userID, ok := strings.Cut(string(b), "|")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || !id.Valid(userID) {
		return 0, "", false
	}
	return n, userID, true
}

// ValidCursor reports whether s is a cursor Summarize handed out.
func ValidCursor(s string) bool {
	_, _, ok := decodeCursor(s)
	return ok
}

// MemberByField returns the live member of the community whose value of
// the custom field fieldName is value: Invalid naming the request field
// nameField for an unknown field, NotFound when nobody has it, Conflict
// when several do.
func (s *Service) MemberByField(ctx context.Context, communityID, fieldName, value, nameField string) (string, error) {
	ids, err := s.MembersByField(ctx, s.d.DB, communityID, fieldName, value)
	if errs.KindOf(err) == errs.Invalid {
		var v errs.Validator
		v.Add(nameField, "names no custom user field of this community")
		return "", v.Err()
	}
	if err != nil {
		return "", err
	}
	switch len(ids) {
	case 0:
		return "", errs.NotFoundf("User not found.")
	case 1:
		return ids[0], nil
	}
	return "", errs.Conflictf("The custom field identifier matches more than one user.")
}

// Summarize returns u's referral summary: their invite, what their
// referrals earned them, and a page of the members they referred with each
// one's progress in the active programs (q.ProgramID: only that program,
// which must be the community's). Progress is brought up to date first.
func (s *Service) Summarize(ctx context.Context, communityID string, u user.User, q SummaryQuery) (Summary, error) {
	var (
		v              errs.Validator
		afterAt        int64
		afterID        string
		haveCursor     bool
		programsFilter string
	)
	if q.Cursor != "" {
		afterAt, afterID, haveCursor = decodeCursor(q.Cursor)
		v.Check(haveCursor, "pagination.cursor", "invalid cursor")
	}
	if q.ProgramID != "" {
		v.Check(id.Valid(q.ProgramID), "programId", "invalid programId: must be a 24-character hex id")
		programsFilter = q.ProgramID
	}
	if err := v.Err(); err != nil {
		return Summary{}, err
	}
	programs, err := s.activePrograms(ctx, s.d.DB, communityID)
	if err != nil {
		return Summary{}, err
	}
	shown := programs
	if programsFilter != "" {
		p, err := s.Program(ctx, communityID, programsFilter)
		if err != nil {
			return Summary{}, err
		}
		shown = []Program{p}
	}
	out := Summary{User: SummaryUser{ID: strconv.FormatInt(u.NumID, 10), UserID: u.ID, Email: u.Email, Username: u.Username},
		Referees: []Referee{}, Pagination: CursorPage{Limit: q.Limit}}
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		st, err := s.settings(ctx, tx, communityID)
		if err != nil {
			return err
		}
		out.Invite, err = s.inviteTx(ctx, tx, st, communityID, u.ID)
		return err
	})
	if err != nil {
		return Summary{}, err
	}
	where, args := "m.community_id = ? AND m.referred_by = ? AND m.deleted_at IS NULL", []any{communityID, u.ID}
	if haveCursor {
		where += " AND (m.created_at > ? OR (m.created_at = ? AND m.user_id > ?))"
		args = append(args, afterAt, afterAt, afterID)
	}
	rows, err := s.d.DB.Query(ctx, `SELECT m.user_id, u.username, u.avatar, COALESCE(m.joined_at, m.created_at), m.created_at
		FROM members m JOIN users u ON u.id = m.user_id WHERE `+where+` ORDER BY m.created_at, m.user_id LIMIT ?`, append(args, q.Limit+1)...)
	if err != nil {
		return Summary{}, fmt.Errorf("list referees: %w", err)
	}
	type row struct {
		r       Referee
		created int64
	}
	var page []row
	for rows.Next() {
		var (
			r        row
			avatar   sql.NullString
			joinedAt int64
		)
		if err := rows.Scan(&r.r.UserID, &r.r.Username, &avatar, &joinedAt, &r.created); err != nil {
			rows.Close()
			return Summary{}, fmt.Errorf("scan referee: %w", err)
		}
		r.r.Avatar, r.r.JoinedAt = avatar.String, clock.Format(jsonx.Millis(joinedAt).Time)
		page = append(page, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Summary{}, fmt.Errorf("list referees: %w", err)
	}
	if len(page) > q.Limit {
		page = page[:q.Limit]
		next := encodeCursor(page[len(page)-1].created, page[len(page)-1].r.UserID)
		out.Pagination.NextCursor, out.Pagination.HasMore = &next, true
	}
	for _, r := range page {
		ref := r.r
		if ref.ProgressByProgram, err = s.refereeProgress(ctx, communityID, ref.UserID, shown); err != nil {
			return Summary{}, err
		}
		out.Referees = append(out.Referees, ref)
	}
	out.Activity, err = s.activity(ctx, communityID, u.ID, programs)
	return out, err
}

// refereeProgress brings the referee's progress up to date and reports it
// in each of programs.
func (s *Service) refereeProgress(ctx context.Context, communityID, refereeID string, programs []Program) ([]ProgramProgress, error) {
	if err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		_, err := s.ProgressTx(ctx, tx, communityID, refereeID)
		return err
	}); err != nil {
		return nil, err
	}
	done, err := completions(ctx, s.d.DB, communityID, refereeID)
	if err != nil {
		return nil, err
	}
	values, err := s.d.Metrics.Values(ctx, s.d.DB, communityID, refereeID, metricKeys(programs))
	if err != nil {
		return nil, err
	}
	out := make([]ProgramProgress, 0, len(programs))
	for _, p := range programs {
		pp := ProgramProgress{ProgramID: p.ID, ProgramName: p.Name, TotalStages: len(p.Stages), Stages: make([]StageProgress, 0, len(p.Stages))}
		current := false
		for _, st := range p.Stages {
			sp := StageProgress{StageID: st.ID, StageNumber: st.StageNumber, Name: st.Name, Description: st.Description,
				DisplaySetting: st.DisplaySetting, Rewards: st.Rewards}
			if at, ok := done[[2]string{p.ID, st.ID}]; ok {
				t := jsonx.At(at)
				sp.Status, sp.IsCompleted, sp.CompletedAt = StageCompleted, true, &t
				pp.CompletedStages++
			} else if !current {
				sp.Status, current = StageInProgress, true
			} else {
				sp.Status = StageLocked
			}
			rq := RequirementsProgress{Operator: st.Requirements.Operator, Total: len(st.Requirements.MainConditions),
				MainConditions: make([]MainProgress, 0, len(st.Requirements.MainConditions))}
			for _, mc := range st.Requirements.MainConditions {
				mp := MainProgress{GroupID: mc.ID, Operator: mc.Operator, Text: mc.Text, IsMet: mainMet(mc, values),
					NestedConditions: make([]ConditionProgress, 0, len(mc.NestedConditions))}
				for _, c := range mc.NestedConditions {
					cur := values[metric.Key{Name: c.Metric}]
					mp.NestedConditions = append(mp.NestedConditions, ConditionProgress{ConditionID: c.ID, Text: c.Text, Metric: c.Metric,
						Target: c.Value, Current: cur, IsMet: conditionMet(c, values)})
				}
				if mp.IsMet {
					rq.Met++
				}
				rq.MainConditions = append(rq.MainConditions, mp)
			}
			sp.Requirements = rq
			pp.Stages = append(pp.Stages, sp)
		}
		if pp.TotalStages > 0 {
			pp.Percentage = pp.CompletedStages * 100 / pp.TotalStages
		}
		out = append(out, pp)
	}
	return out, nil
}

// activity sums the member's referral rewards and counts their referees.
func (s *Service) activity(ctx context.Context, communityID, referrerID string, programs []Program) (Activity, error) {
	var a Activity
	if err := s.d.DB.QueryRow(ctx, `SELECT COALESCE(SUM(xp), 0), COALESCE(SUM(coins), 0) FROM gamification_logs
		WHERE community_id = ? AND user_id = ? AND action IN (?, ?)`, communityID, referrerID, gamification.ActionRefer, ActionStage).
		Scan(&a.XPEarned, &a.CoinsEarned); err != nil {
		return Activity{}, fmt.Errorf("sum referral rewards: %w", err)
	}
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM members WHERE community_id = ? AND referred_by = ? AND deleted_at IS NULL",
		communityID, referrerID).Scan(&a.TotalReferrals); err != nil {
		return Activity{}, fmt.Errorf("count referees: %w", err)
	}
	var stages []string
	for _, p := range programs {
		for _, st := range p.Stages {
			stages = append(stages, st.ID)
		}
	}
	if len(stages) > 0 {
		args := []any{communityID, referrerID, communityID, referrerID}
		for _, st := range stages {
			args = append(args, st)
		}
		args = append(args, len(stages))
		err := s.d.DB.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT c.referee_id FROM referral_completions c
			JOIN members m ON m.community_id = c.community_id AND m.user_id = c.referee_id
			WHERE c.community_id = ? AND c.referrer_id = ? AND m.community_id = ? AND m.referred_by = ? AND m.deleted_at IS NULL
			AND c.stage_id IN `+db.In(len(stages))+` GROUP BY c.referee_id HAVING COUNT(*) = ?) done`, args...).Scan(&a.Completed)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return Activity{}, fmt.Errorf("count completed referees: %w", err)
		}
	}
	a.InProgress = a.TotalReferrals - a.Completed
	return a, nil
}
