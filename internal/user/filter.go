package user

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
)

// FilterPageSize is the fixed page size of Get Users with Filters.
const FilterPageSize = 200

// FilterRequest is Get Users with Filters' body: which fields to return,
// which members to match, and either a cursor or a page number.
type FilterRequest struct {
	Fields []string                   `json:"fields"`
	Filter map[string]json.RawMessage `json:"filter"`
	Cursor *string                    `json:"cursor"`
	Page   *int                       `json:"page"`
}

// FilterResult is one page of matching members, each an object holding _id
// and the requested fields.
type FilterResult struct {
	Users []map[string]any
	// NextCursor continues a cursor-paged read; "" on the last page.
	NextCursor string
	// PageMode is set when the request named a page; TotalPages and
	// CurrentPage are then meaningful.
	PageMode    bool
	TotalPages  int
	CurrentPage int
}

// valueKind is how a field's values compare.
type valueKind int

const (
	kindText valueKind = iota
	// kindFolded is text compared case-insensitively (email, username).
	kindFolded
	kindNumber
	kindDate
	kindBool
)

// column is a field a filter can name: a default field read from the row,
// or a custom field read from user_field_values.
type column struct {
	kind valueKind
	// expr is the SQL expression of a default field.
	expr string
	// fieldID and valueCol locate a custom field's values.
	fieldID  string
	valueCol string
	// field is a custom field's name, the key of its values.
	field string
}

// defaultFields are the default user fields in their documented order.
var defaultFields = []string{"email", "username", "first_name", "last_name", "display_name", "join_date", "xp", "coins",
	"id", "_id", "language", "visit_count", "last_login"}

// defaultColumns are the default fields' comparisons; xp and coins come
// from the Counters.
func defaultColumns(c Counters) map[string]column {
	return map[string]column{
		"email":        {kind: kindFolded, expr: "u.email_key"},
		"username":     {kind: kindFolded, expr: "u.username_key"},
		"first_name":   {kind: kindText, expr: "u.firstname"},
		"last_name":    {kind: kindText, expr: "u.lastname"},
		"display_name": {kind: kindText, expr: "u.displayname"},
		"language":     {kind: kindText, expr: "u.language"},
		"_id":          {kind: kindText, expr: "u.id"},
		"id":           {kind: kindNumber, expr: "u.seq"},
		"xp":           {kind: kindNumber, expr: "(" + c.Column("xp") + ")"},
		"coins":        {kind: kindNumber, expr: "(" + c.Column("coins") + ")"},
		"visit_count":  {kind: kindNumber, expr: "m.visit_count"},
		"join_date":    {kind: kindDate, expr: "m.joined_at"},
		"last_login":   {kind: kindDate, expr: "u.last_login_at"},
	}
}

// customColumn describes a custom field of the given type.
func customColumn(fieldID, field, typ string) column {
	switch typ {
	case "number", "numerical":
		return column{kind: kindNumber, fieldID: fieldID, valueCol: "num_value", field: field}
	case "date":
		return column{kind: kindDate, fieldID: fieldID, valueCol: "time_value", field: field}
	case "boolean":
		return column{kind: kindBool, fieldID: fieldID, valueCol: "text_value", field: field}
	default:
		return column{kind: kindText, fieldID: fieldID, valueCol: "text_value", field: field}
	}
}

// condition is one parsed filter entry: an exact value or a range.
type condition struct {
	col column
	// eq is the exact value; lo and hi bound a range (nil = open).
	eq     any
	lo, hi any
}

// sql renders the condition with ? placeholders over members m joined to
// users u. A custom-field condition reads the matching user ids from the
// value index ((field_id, value, user_id)): a page walks them in id order and
// stops when it is full, and a count reads them once, whether the value is
// rare or common.
func (c condition) sql() (string, []any) {
	var (
		parts []string
		args  []any
	)
	target := c.col.expr
	if c.col.fieldID != "" {
		target = "v." + c.col.valueCol
	}
	if c.eq != nil {
		parts, args = append(parts, target+" = ?"), append(args, c.eq)
	}
	if c.lo != nil {
		parts, args = append(parts, target+" >= ?"), append(args, c.lo)
	}
	if c.hi != nil {
		parts, args = append(parts, target+" <= ?"), append(args, c.hi)
	}
	where := strings.Join(parts, " AND ")
	if c.col.fieldID == "" {
		return where, args
	}
	return "m.user_id IN (SELECT v.user_id FROM user_field_values v WHERE v.field_id = ? AND " + where + ")",
		append([]any{c.col.fieldID}, args...)
}

// filterPlan is a validated request ready to run.
type filterPlan struct {
	fields []string
	conds  []condition
	cursor string
	page   int
}

// planFilter validates req against the fields cols resolves, naming every
// offending field in one Invalid error.
func planFilter(req FilterRequest, cols func(name string) (column, bool)) (filterPlan, error) {
	var v errs.Validator
	p := filterPlan{fields: req.Fields}
	if len(p.fields) == 0 {
		p.fields = defaultFields
	}
	for i, f := range p.fields {
		if _, ok := cols(f); !ok {
			v.Add(fmt.Sprintf("fields.%d", i), "%q is not a user field of this community", f)
		}
	}
	names := make([]string, 0, len(req.Filter))
	for name := range req.Filter {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		col, ok := cols(name)
		if !ok {
			v.Add("filter."+name, "is not a user field of this community")
			continue
		}
		c, msg := parseCondition(col, req.Filter[name])
		if msg != "" {
			v.Add("filter."+name, "%s", msg)
			continue
		}
		p.conds = append(p.conds, c)
	}
	switch {
	case req.Cursor != nil && req.Page != nil:
		v.Add("cursor", "cannot be sent together with page")
		v.Add("page", "cannot be sent together with cursor")
	case req.Page != nil:
		v.Check(*req.Page >= 1, "page", "must be a whole number of at least 1")
		p.page = *req.Page
	case req.Cursor != nil && *req.Cursor != "":
		after, ok := decodeCursor(*req.Cursor)
		v.Check(ok, "cursor", "is not a cursor this server returned")
		p.cursor = after
	}
	return p, v.Err()
}

// parseCondition reads one filter value for col: a literal (exact match) or
// an object with gte and/or lte (numbers and dates). It returns a message
// saying what is wrong, or "".
func parseCondition(col column, raw json.RawMessage) (condition, string) {
	c := condition{col: col}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err == nil && obj != nil {
		if col.kind != kindNumber && col.kind != kindDate {
			return c, "ranges (gte, lte) apply only to number and date fields"
		}
		if len(obj) == 0 {
			return c, "must hold gte and/or lte"
		}
		for k := range obj {
			if k != "gte" && k != "lte" {
				return c, fmt.Sprintf("has unknown operator %q (use gte and lte)", k)
			}
		}
		var msg string
		if r, ok := obj["gte"]; ok {
			if c.lo, msg = literal(col, r, false); msg != "" {
				return c, "gte " + msg
			}
		}
		if r, ok := obj["lte"]; ok {
			if c.hi, msg = literal(col, r, true); msg != "" {
				return c, "lte " + msg
			}
		}
		return c, ""
	}
	if col.kind == kindDate {
		// An exact date-only value matches the whole day.
		if s, ok := jsonString(raw); ok && isDay(s) {
			lo, _ := literal(col, raw, false)
			hi, _ := literal(col, raw, true)
			c.lo, c.hi = lo, hi
			return c, ""
		}
	}
	var msg string
	c.eq, msg = literal(col, raw, false)
	return c, msg
}

func jsonString(raw json.RawMessage) (string, bool) {
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

func isDay(s string) bool {
	_, err := time.Parse(time.DateOnly, s)
	return err == nil
}

// literal converts one JSON value to the SQL argument col compares with.
// For dates, a day (YYYY-MM-DD) stands for its first millisecond, or its
// last when upper is set; RFC 3339 timestamps and Unix milliseconds are
// taken as they are.
func literal(col column, raw json.RawMessage, upper bool) (any, string) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil || v == nil {
		return nil, "must be a value, not null"
	}
	switch col.kind {
	case kindText, kindFolded:
		s, ok := v.(string)
		if !ok {
			return nil, "must be a string"
		}
		if col.kind == kindFolded {
			s = Key(s)
		}
		return s, ""
	case kindNumber:
		switch n := v.(type) {
		case float64:
			return n, ""
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
			if err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return f, ""
			}
		}
		return nil, "must be a number"
	case kindBool:
		switch b := v.(type) {
		case bool:
			return strconv.FormatBool(b), ""
		case string:
			if b == "true" || b == "false" {
				return b, ""
			}
		}
		return nil, "must be true or false"
	default: // kindDate
		switch t := v.(type) {
		case float64:
			if t == math.Trunc(t) && math.Abs(t) < 1e15 {
				return int64(t), ""
			}
		case string:
			if d, err := time.Parse(time.DateOnly, t); err == nil {
				if upper {
					return d.Add(24*time.Hour).UnixMilli() - 1, ""
				}
				return d.UnixMilli(), ""
			}
			if ts, err := time.Parse(time.RFC3339Nano, t); err == nil {
				return ts.UnixMilli(), ""
			}
		}
		return nil, "must be a date (YYYY-MM-DD), an RFC 3339 timestamp or Unix milliseconds"
	}
}

const cursorPrefix = "u:"

func encodeCursor(userID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + userID))
}

func decodeCursor(s string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || !strings.HasPrefix(string(b), cursorPrefix) {
		return "", false
	}
	after := string(b[len(cursorPrefix):])
	return after, id.Valid(after)
}

// customDefs reads the live custom field definitions of communityID as
// columns, keyed by both the field name and its folded key.
func (s *Service) customDefs(ctx context.Context, communityID string) (map[string]column, error) {
	rows, err := s.d.DB.Query(ctx, "SELECT id, field, field_key, type FROM user_fields WHERE community_id = ? AND deleted_at IS NULL",
		communityID)
	if err != nil {
		return nil, fmt.Errorf("read user fields: %w", err)
	}
	defer rows.Close()
	out := map[string]column{}
	for rows.Next() {
		var fid, field, key, typ string
		if err := rows.Scan(&fid, &field, &key, &typ); err != nil {
			return nil, fmt.Errorf("read user fields: %w", err)
		}
		c := customColumn(fid, field, typ)
		out[key], out[field] = c, c
	}
	return out, rows.Err()
}

// Filter returns one page of communityID's live members matching req, in
// id order.
func (s *Service) Filter(ctx context.Context, communityID string, req FilterRequest) (FilterResult, error) {
	defaults := defaultColumns(s.d.Counters)
	custom, err := s.customDefs(ctx, communityID)
	if err != nil {
		return FilterResult{}, err
	}
	p, err := planFilter(req, func(name string) (column, bool) {
		if c, ok := defaults[name]; ok {
			return c, true
		}
		if c, ok := custom[name]; ok {
			return c, true
		}
		c, ok := custom[strings.ToLower(strings.TrimSpace(name))]
		return c, ok
	})
	if err != nil {
		return FilterResult{}, err
	}
	// The matching ids are chosen from members alone (joining users only
	// when a condition reads it), then the page's rows are read in full.
	from, where := "members m", "m.community_id = ? AND m.deleted_at IS NULL"
	args := []any{communityID}
	for _, c := range p.conds {
		w, a := c.sql()
		where, args = where+" AND "+w, append(args, a...)
		if strings.HasPrefix(c.col.expr, "u.") {
			from = "members m JOIN users u ON u.id = m.user_id"
		}
	}
	res := FilterResult{Users: []map[string]any{}}
	limit, offset := FilterPageSize+1, 0
	if p.page > 0 {
		var total int
		if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM "+from+" WHERE "+where, args...).Scan(&total); err != nil {
			return FilterResult{}, fmt.Errorf("count filtered users: %w", err)
		}
		res.PageMode, res.CurrentPage = true, p.page
		res.TotalPages = (total + FilterPageSize - 1) / FilterPageSize
		limit, offset = FilterPageSize, (p.page-1)*FilterPageSize
	} else if p.cursor != "" {
		where += " AND m.user_id > ?"
		args = append(args, p.cursor)
	}
	rows, err := s.d.DB.Query(ctx, `SELECT u.id, u.seq, u.email, u.username, u.firstname, u.lastname, u.displayname, u.language,
		u.last_login_at, m.joined_at, m.visit_count, `+defaults["xp"].expr+", "+defaults["coins"].expr+`
		FROM members m JOIN users u ON u.id = m.user_id
		WHERE m.community_id = ? AND m.user_id IN (SELECT m.user_id FROM `+from+" WHERE "+where+
		" ORDER BY m.user_id LIMIT ? OFFSET ?) ORDER BY m.user_id",
		append(append([]any{communityID}, args...), limit, offset)...)
	if err != nil {
		return FilterResult{}, fmt.Errorf("filter users: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var (
			r                            filterRow
			lastLogin, joined            sql.NullInt64
			first, last, display, langue string
		)
		if err := rows.Scan(&r.id, &r.seq, &r.email, &r.username, &first, &last, &display, &langue, &lastLogin, &joined,
			&r.visits, &r.xp, &r.coins); err != nil {
			return FilterResult{}, fmt.Errorf("filter users: %w", err)
		}
		row := map[string]any{"_id": r.id}
		for _, f := range p.fields {
			switch f {
			case "email":
				row[f] = r.email
			case "username":
				row[f] = r.username
			case "first_name":
				row[f] = first
			case "last_name":
				row[f] = last
			case "display_name":
				row[f] = display
			case "language":
				row[f] = langue
			case "id":
				row[f] = r.seq
			case "xp":
				row[f] = r.xp
			case "coins":
				row[f] = r.coins
			case "visit_count":
				row[f] = r.visits
			case "join_date":
				row[f] = timeOrNil(joined)
			case "last_login":
				row[f] = timeOrNil(lastLogin)
			}
		}
		res.Users = append(res.Users, row)
		ids = append(ids, r.id)
	}
	if err := rows.Err(); err != nil {
		return FilterResult{}, fmt.Errorf("filter users: %w", err)
	}
	if !res.PageMode && len(res.Users) > FilterPageSize {
		res.Users, ids = res.Users[:FilterPageSize], ids[:FilterPageSize]
		res.NextCursor = encodeCursor(ids[len(ids)-1])
	}
	return res, s.projectCustom(ctx, communityID, p.fields, defaults, custom, ids, res.Users)
}

// filterRow holds the scanned values the projection picks from.
type filterRow struct {
	id, email, username string
	seq                 int64
	visits              int64
	xp, coins           int64
}

func timeOrNil(v sql.NullInt64) any {
	if !v.Valid {
		return nil
	}
	return clock.Format(time.UnixMilli(v.Int64))
}

// projectCustom adds the requested custom fields (null when unset) to rows,
// which belong to ids in the same order.
func (s *Service) projectCustom(ctx context.Context, communityID string, fields []string, defaults, custom map[string]column,
	ids []string, rows []map[string]any) error {
	want := map[string]string{} // requested name -> definition's field
	for _, f := range fields {
		if _, ok := defaults[f]; ok {
			continue
		}
		c, ok := custom[f]
		if !ok {
			c = custom[strings.ToLower(strings.TrimSpace(f))]
		}
		want[f] = c.field
	}
	if len(want) == 0 || len(ids) == 0 {
		return nil
	}
	vals, err := s.d.Fields.ValuesOfMany(ctx, communityID, ids)
	if err != nil {
		return err
	}
	for i, row := range rows {
		for name, field := range want {
			row[name] = vals[ids[i]][field]
		}
	}
	return nil
}
