package leaderboard

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/jsonx"
)

// Limits of standings reads.
const (
	MaxStandingsLimit = 100
	MaxAround         = 50
)

// Entry is one ranked line: a member or a dummy user.
type Entry struct {
	Rank        int64       `json:"rank"`
	UserID      string      `json:"userId,omitempty"`
	ID          int64       `json:"id,omitempty"`
	Username    string      `json:"username"`
	DisplayName string      `json:"displayName"`
	Avatar      *string     `json:"avatar"`
	Score       int64       `json:"score"`
	ReachedAt   *jsonx.Time `json:"reachedAt,omitempty"`
	IsDummy     bool        `json:"isDummy"`
}

// View describes which standings were read.
type View struct {
	LeaderboardID string      `json:"leaderboardId"`
	Name          string      `json:"name"`
	RankBy        string      `json:"rankBy"`
	TimeFilter    string      `json:"timeFilter"`
	PeriodStart   *jsonx.Time `json:"periodStart"`
	PeriodEnd     *jsonx.Time `json:"periodEnd"`
	// Total counts the ranked entries (at most topRankLimit when only the
	// top ranks are shown).
	Total int64 `json:"total"`
}

// Standings is a page of a leaderboard, best first.
type Standings struct {
	View
	Entries []Entry `json:"entries"`
}

// Position is one member's place and the entries around it.
type Position struct {
	View
	// Ranked is false when the member has no score in the period or may not
	// be ranked (then Entry is null and Above/Below are empty).
	Ranked bool    `json:"ranked"`
	Entry  *Entry  `json:"entry"`
	Above  []Entry `json:"above"`
	Below  []Entry `json:"below"`
}

// StandingsQuery selects standings: the time filter (empty: the
// leaderboard's first), the page (Offset, Limit) or the number of entries
// around a member, and the signed-in viewer (empty for a partner key, who
// may read every leaderboard).
type StandingsQuery struct {
	TimeFilter string
	Offset     int
	Limit      int
	Around     int
	Viewer     string
}

// row is a member's score row.
type row struct {
	user    string
	score   int64
	reached int64
}

// scope is the ranked population of one leaderboard period.
type scope struct {
	s        *Service
	b        Leaderboard
	period   string
	positive bool
	// restricted: only the rank audience is ranked (no histogram shortcut).
	restricted bool
	users      []string
	roles      []string
	dummies    []DummyUser
	view       View
	topOnly    int64
}

// open resolves the leaderboard ref, checks the viewer and the time filter,
// and returns the population to rank.
func (s *Service) open(ctx context.Context, communityID, ref string, q StandingsQuery) (*scope, error) {
	b, err := s.Get(ctx, communityID, ref)
	if err != nil {
		return nil, err
	}
	if q.Viewer != "" {
		if err := s.checkViewer(ctx, b, q.Viewer); err != nil {
			return nil, err
		}
	}
	filter := q.TimeFilter
	if filter == "" && len(b.TimeFilters) > 0 {
		filter = b.TimeFilters[0]
	}
	if !slices.Contains(b.TimeFilters, filter) {
		var v errs.Validator
		v.Add("timeFilter", "must be one of this leaderboard's time filters: %s", strings.Join(b.TimeFilters, ", "))
		return nil, v.Err()
	}
	w := b.Duration.window()
	at := s.d.Clock.Now()
	if !w.to.IsZero() && !at.Before(w.to) {
		at = w.to.Add(-time.Millisecond) // a finished run shows its last periods
	}
	p := periodAt(filter, at, b.Duration.location())
	from, till := w.clip(p.From, p.Till)
	sc := &scope{s: s, b: b, period: p.Key, positive: b.PerformanceDisplay.ShowPositive.Enabled,
		view: View{LeaderboardID: b.ID, Name: b.Name, RankBy: b.RankBy, TimeFilter: filter, PeriodStart: timePtr(from), PeriodEnd: timePtr(till)}}
	if b.PerformanceDisplay.ShowTop.Enabled {
		sc.topOnly = int64(b.PerformanceDisplay.ShowTop.Value)
	}
	if b.PerformanceDisplay.ShowDummy.Enabled {
		for _, d := range b.DummyUsers {
			if !sc.positive || d.Score > 0 {
				sc.dummies = append(sc.dummies, d)
			}
		}
		slices.SortStableFunc(sc.dummies, func(x, y DummyUser) int { return cmpDesc(x.Score, y.Score) })
	}
	if a := b.RankedUserRoles; !a.everyone() {
		all, err := s.hasEveryoneRole(ctx, communityID, a.Roles)
		if err != nil {
			return nil, err
		}
		sc.restricted, sc.users, sc.roles = !all, a.Users, a.Roles
	}
	return sc, nil
}

func cmpDesc(a, b int64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

func timePtr(t time.Time) *jsonx.Time {
	if t.IsZero() {
		return nil
	}
	jt := jsonx.At(t)
	return &jt
}

// hasEveryoneRole reports whether roles name the community's @all role.
func (s *Service) hasEveryoneRole(ctx context.Context, communityID string, roles []string) (bool, error) {
	if len(roles) == 0 {
		return false, nil
	}
	var n int
	err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM roles WHERE community_id = ? AND is_everyone = TRUE AND id IN ("+marks(len(roles))+")",
		append([]any{communityID}, anys(roles)...)...).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("read roles: %w", err)
	}
	return n > 0, nil
}

// checkViewer lets a signed-in member read b only when it is enabled and
// they are in its view audience.
func (s *Service) checkViewer(ctx context.Context, b Leaderboard, userID string) error {
	if !b.Enabled {
		return errs.Forbiddenf("This leaderboard is not enabled.")
	}
	a := b.ViewPermissionUserRoles
	if a.everyone() || slices.Contains(a.Users, userID) {
		return nil
	}
	if all, err := s.hasEveryoneRole(ctx, b.CommunityID, a.Roles); err != nil || all {
		return err
	}
	if len(a.Roles) > 0 {
		var n int
		err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM member_roles WHERE community_id = ? AND user_id = ? AND role_id IN ("+marks(len(a.Roles))+")",
			append([]any{b.CommunityID, userID}, anys(a.Roles)...)...).Scan(&n)
		if err != nil {
			return fmt.Errorf("read member roles: %w", err)
		}
		if n > 0 {
			return nil
		}
	}
	return errs.Forbiddenf("You may not view this leaderboard.")
}

func marks(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

func anys(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}

// where is the filter of ranked rows (alias s), after the leaderboard and
// period: positive scores when asked, the rank audience, live members.
func (sc *scope) where() (string, []any) {
	w := " AND NOT EXISTS (SELECT 1 FROM members dm WHERE dm.community_id = ? AND dm.user_id = s.user_id AND dm.deleted_at IS NOT NULL)"
	args := []any{sc.b.CommunityID}
	if sc.positive {
		w += " AND s.score > 0"
	}
	if sc.restricted {
		var ors []string
		if len(sc.users) > 0 {
			ors = append(ors, "s.user_id IN ("+marks(len(sc.users))+")")
			args = append(args, anys(sc.users)...)
		}
		if len(sc.roles) > 0 {
			ors = append(ors, "EXISTS (SELECT 1 FROM member_roles mr WHERE mr.community_id = ? AND mr.user_id = s.user_id AND mr.role_id IN ("+
				marks(len(sc.roles))+"))")
			args = append(append(args, sc.b.CommunityID), anys(sc.roles)...)
		}
		if len(ors) == 0 {
			ors = []string{"1 = 0"} // only tags, which name no one yet
		}
		w += " AND (" + strings.Join(ors, " OR ") + ")"
	}
	return w, args
}

// aheadSQL is a scalar SQL expression counting the ranked members ahead of
// a rank key: with tie nil, those with a score strictly above score; with
// tie (a member's row at score), also those with the same score reached
// earlier (then the lower _id).
//
// Without a rank audience it never walks the board: the histogram gives
// the scores in buckets above score's bucket (groups above its group plus
// buckets above it in the group: under a hundred index rows), one range
// count over the rank index covers the part of score's own bucket that is
// ahead (or, when score sits in the bucket's lower half, the part that is
// not, subtracted from the bucket's count: the shorter side), and the few
// deleted members ahead are subtracted.
func (sc *scope) aheadSQL(score int64, tie *row) (string, []any) {
	if sc.positive && score < 0 {
		score = 0
	}
	const count = "(SELECT COUNT(*) FROM leaderboard_scores s WHERE s.leaderboard_id = ? AND s.period = ?"
	var earlier, notEarlier string
	var tieArgs []any
	if tie != nil {
		earlier = " AND s.score = ? AND (s.reached_at < ? OR (s.reached_at = ? AND s.user_id < ?))"
		notEarlier = " AND s.score = ? AND (s.reached_at > ? OR (s.reached_at = ? AND s.user_id >= ?))"
		tieArgs = []any{score, tie.reached, tie.reached, tie.user}
	}
	if sc.restricted {
		w, args := sc.where()
		q := count + " AND s.score > ?" + w + ")"
		out := append([]any{sc.b.ID, sc.period, score}, args...)
		if tie != nil {
			q += " + " + count + earlier + w + ")"
			out = append(append(append(out, sc.b.ID, sc.period), tieArgs...), args...)
		}
		return "(" + q + ")", out
	}
	b := bucket(score)
	q := `((SELECT COALESCE(SUM(n), 0) FROM leaderboard_bucket_groups WHERE leaderboard_id = ? AND period = ? AND grp > ?)
		+ (SELECT COALESCE(SUM(n), 0) FROM leaderboard_buckets WHERE leaderboard_id = ? AND period = ? AND bucket > ? AND bucket <= ?)`
	args := []any{sc.b.ID, sc.period, group(b), sc.b.ID, sc.period, b, groupTop(group(b))}
	top, bottom := bucketTop(b), bucketBottom(b)
	switch {
	case top-score <= score-bottom && tie == nil:
		q += " + " + count + " AND s.score > ? AND s.score <= ?)"
		args = append(args, sc.b.ID, sc.period, score, top)
	case top-score <= score-bottom:
		q += " + " + count + " AND s.score > ? AND s.score <= ?) + " + count + earlier + ")"
		args = append(append(args, sc.b.ID, sc.period, score, top, sc.b.ID, sc.period), tieArgs...)
	case tie == nil:
		q += " + (SELECT COALESCE(SUM(n), 0) FROM leaderboard_buckets WHERE leaderboard_id = ? AND period = ? AND bucket = ?) - " +
			count + " AND s.score >= ? AND s.score <= ?)"
		args = append(args, sc.b.ID, sc.period, b, sc.b.ID, sc.period, bottom, score)
	default:
		q += " + (SELECT COALESCE(SUM(n), 0) FROM leaderboard_buckets WHERE leaderboard_id = ? AND period = ? AND bucket = ?) - " +
			count + " AND s.score >= ? AND s.score < ?) - " + count + notEarlier + ")"
		args = append(append(args, sc.b.ID, sc.period, b, sc.b.ID, sc.period, bottom, score, sc.b.ID, sc.period), tieArgs...)
	}
	q += " - " + deletedSQL + " AND (s.score > ?"
	args = append(args, sc.b.CommunityID, sc.b.ID, sc.period, score)
	if tie != nil {
		q += " OR (s.score = ? AND (s.reached_at < ? OR (s.reached_at = ? AND s.user_id < ?)))"
		args = append(args, tieArgs...)
	}
	return q + ")))", args
}

// above counts ranked members with a score strictly above score.
func (sc *scope) above(ctx context.Context, score int64) (int64, error) {
	q, args := sc.aheadSQL(score, nil)
	var n int64
	if err := sc.s.d.DB.QueryRow(ctx, "SELECT "+q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count standings: %w", err)
	}
	return n, nil
}

// deletedSQL counts deleted members with a score row (continue its WHERE
// and close the parenthesis). It walks the few deleted members first:
// CROSS JOIN fixes that order on SQLite, and PostgreSQL's planner picks it
// from the partial index members_deleted.
const deletedSQL = `(SELECT COUNT(*) FROM members m CROSS JOIN leaderboard_scores s
		WHERE m.community_id = ? AND m.deleted_at IS NOT NULL AND s.leaderboard_id = ? AND s.period = ? AND s.user_id = m.user_id`

// rankAndTotal returns the rank of r among members (one plus those ahead
// of it) and the ranked entries' total, in one query.
func (sc *scope) rankAndTotal(ctx context.Context, r row) (rank, total int64, err error) {
	ahead, args := sc.aheadSQL(r.score, &r)
	all, targs := sc.totalSQL()
	if err := sc.s.d.DB.QueryRow(ctx, "SELECT 1 + "+ahead+", "+all, append(args, targs...)...).Scan(&rank, &total); err != nil {
		return 0, 0, fmt.Errorf("rank member: %w", err)
	}
	return rank, sc.adjustTotal(total), nil
}

// dummiesAbove counts shown dummy users with a score above score.
func (sc *scope) dummiesAbove(score int64) int64 {
	var n int64
	for _, d := range sc.dummies {
		if d.Score > score {
			n++
		}
	}
	return n
}

// totalSQL is a scalar SQL expression counting the ranked members. Without
// a rank audience it reads the histogram's groups (positive scores only:
// the members above 0).
func (sc *scope) totalSQL() (string, []any) {
	switch {
	case sc.restricted:
		w, args := sc.where()
		return "(SELECT COUNT(*) FROM leaderboard_scores s WHERE s.leaderboard_id = ? AND s.period = ?" + w + ")",
			append([]any{sc.b.ID, sc.period}, args...)
	case sc.positive:
		return sc.aheadSQL(0, nil)
	}
	return "((SELECT COALESCE(SUM(n), 0) FROM leaderboard_bucket_groups WHERE leaderboard_id = ? AND period = ?) - " + deletedSQL + "))",
		[]any{sc.b.ID, sc.period, sc.b.CommunityID, sc.b.ID, sc.period}
}

// adjustTotal turns the ranked members' count into the entries' total:
// dummy users included, at most topRankLimit when only the top is shown.
func (sc *scope) adjustTotal(n int64) int64 {
	n += int64(len(sc.dummies))
	if sc.topOnly > 0 && n > sc.topOnly {
		n = sc.topOnly
	}
	return n
}

// total counts the ranked entries, dummy users included.
func (sc *scope) total(ctx context.Context) (int64, error) {
	q, args := sc.totalSQL()
	var n int64
	if err := sc.s.d.DB.QueryRow(ctx, "SELECT "+q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count standings: %w", err)
	}
	return sc.adjustTotal(n), nil
}

// rows reads ranked rows matching cond in order, with limit and offset.
func (sc *scope) rows(ctx context.Context, cond, order string, limit, offset int, args ...any) ([]row, error) {
	w, wargs := sc.where()
	all := append(append([]any{sc.b.ID, sc.period}, args...), wargs...)
	rs, err := sc.s.d.DB.Query(ctx, "SELECT s.user_id, s.score, s.reached_at FROM leaderboard_scores s WHERE s.leaderboard_id = ? AND s.period = ?"+
		cond+w+" ORDER BY "+order+" LIMIT ? OFFSET ?", append(all, limit, offset)...)
	if err != nil {
		return nil, fmt.Errorf("read standings: %w", err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.user, &r.score, &r.reached); err != nil {
			return nil, fmt.Errorf("read standings: %w", err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read standings: %w", err)
	}
	return out, nil
}

const (
	bestFirst  = "s.score DESC, s.reached_at ASC, s.user_id ASC"
	worstFirst = "s.score ASC, s.reached_at DESC, s.user_id DESC"
	// aheadOf and behind bound the score first so the index range starts
	// at the member, not at an end of the board.
	aheadOf = " AND s.score >= ? AND (s.score > ? OR (s.reached_at < ? OR (s.reached_at = ? AND s.user_id < ?)))"
	behind  = " AND s.score <= ? AND (s.score < ? OR (s.reached_at > ? OR (s.reached_at = ? AND s.user_id > ?)))"
)

// dummyEntries returns the shown dummy users with their ranks.
func (sc *scope) dummyEntries(ctx context.Context) ([]Entry, error) {
	out := make([]Entry, 0, len(sc.dummies))
	for j, d := range sc.dummies {
		n, err := sc.above(ctx, d.Score-1) // members at or above the dummy's score rank first
		if err != nil {
			return nil, err
		}
		var avatar *string
		if d.Avatar != "" {
			a := d.Avatar
			avatar = &a
		}
		out = append(out, Entry{Rank: n + int64(j) + 1, Username: d.Name, DisplayName: d.Name, Avatar: avatar, Score: d.Score, IsDummy: true})
	}
	return out, nil
}

// entries turns rows with their member ranks into entries (dummy users
// above them shift their ranks).
func (sc *scope) entries(ctx context.Context, rs []row, ranks []int64) ([]Entry, error) {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.user
	}
	users, err := sc.s.d.Users.GetMany(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(rs))
	for i, r := range rs {
		reached := jsonx.Millis(r.reached)
		u := users[r.user]
		out = append(out, Entry{Rank: ranks[i] + sc.dummiesAbove(r.score), UserID: r.user, ID: u.NumID, Username: u.Username,
			DisplayName: u.DisplayName, Avatar: u.Avatar, Score: r.score, ReachedAt: &reached})
	}
	return out, nil
}

// keep returns the entries whose rank is in [lo, hi] and, with
// topRankOnly, within the top ranks, ordered by rank.
func (sc *scope) keep(es []Entry, lo, hi int64) []Entry {
	out := []Entry{}
	for _, e := range es {
		if e.Rank >= lo && e.Rank <= hi && (sc.topOnly == 0 || e.Rank <= sc.topOnly) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return cmpDesc(b.Rank, a.Rank) })
	return out
}

// Standings returns a page of the leaderboard ref for the time filter,
// best first: members by score, the earlier to reach it first at equal
// scores, dummy users after members of equal score.
func (s *Service) Standings(ctx context.Context, communityID, ref string, q StandingsQuery) (Standings, error) {
	sc, err := s.open(ctx, communityID, ref, q)
	if err != nil {
		return Standings{}, err
	}
	total, err := sc.total(ctx)
	if err != nil {
		return Standings{}, err
	}
	d := len(sc.dummies)
	start := max(q.Offset-d, 0)
	rs, err := sc.rows(ctx, "", bestFirst, q.Limit+d, start)
	if err != nil {
		return Standings{}, err
	}
	ranks := make([]int64, len(rs))
	for i := range rs {
		ranks[i] = int64(start + i + 1)
	}
	es, err := sc.entries(ctx, rs, ranks)
	if err != nil {
		return Standings{}, err
	}
	dummies, err := sc.dummyEntries(ctx)
	if err != nil {
		return Standings{}, err
	}
	sc.view.Total = total
	return Standings{View: sc.view, Entries: sc.keep(append(es, dummies...), int64(q.Offset)+1, int64(q.Offset+q.Limit))}, nil
}

// Position returns the member's rank on the leaderboard ref for the time
// filter and up to q.Around entries on each side.
func (s *Service) Position(ctx context.Context, communityID, ref, userID string, q StandingsQuery) (Position, error) {
	sc, err := s.open(ctx, communityID, ref, q)
	if err != nil {
		return Position{}, err
	}
	mine, err := sc.rows(ctx, " AND s.user_id = ?", "s.user_id", 1, 0, userID)
	if err != nil {
		return Position{}, err
	}
	if len(mine) == 0 {
		if sc.view.Total, err = sc.total(ctx); err != nil {
			return Position{}, err
		}
		return Position{View: sc.view, Above: []Entry{}, Below: []Entry{}}, nil
	}
	me := mine[0]
	rank, total, err := sc.rankAndTotal(ctx, me)
	if err != nil {
		return Position{}, err
	}
	sc.view.Total = total
	out := Position{View: sc.view, Above: []Entry{}, Below: []Entry{}}
	var up, down []row
	if n := q.Around + len(sc.dummies); n > 0 {
		keys := []any{me.score, me.score, me.reached, me.reached, me.user}
		if up, err = sc.rows(ctx, aheadOf, worstFirst, n, 0, keys...); err != nil {
			return Position{}, err
		}
		if down, err = sc.rows(ctx, behind, bestFirst, n, 0, keys...); err != nil {
			return Position{}, err
		}
	}
	rs := append(append([]row{me}, up...), down...)
	ranks := []int64{rank}
	for i := range up {
		ranks = append(ranks, rank-int64(i)-1)
	}
	for i := range down {
		ranks = append(ranks, rank+int64(i)+1)
	}
	es, err := sc.entries(ctx, rs, ranks)
	if err != nil {
		return Position{}, err
	}
	dummies, err := sc.dummyEntries(ctx)
	if err != nil {
		return Position{}, err
	}
	own := es[0]
	all := append(es[1:], dummies...)
	out.Ranked, out.Entry = true, &own
	out.Above = sc.keep(all, own.Rank-int64(q.Around), own.Rank-1)
	out.Below = sc.keep(all, own.Rank+1, own.Rank+int64(q.Around))
	return out, nil
}
