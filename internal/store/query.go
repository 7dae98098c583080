package store

import (
	"slices"
	"strings"

	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
)

// Query is a list or read request's options, as the partner conventions
// send them: skip/limit paging, sort=field:asc|desc, fields=a,b,c,
// search=keyword:<value> (or field:<value>), filter=field:value, lang and
// the userID visibility filter.
type Query struct {
	Skip   int
	Limit  int
	Sort   string
	Fields string
	Search string
	Filter string
	Lang   string
	// UserID, when set, narrows the answer to what that member may see
	// (archived entries are hidden).
	UserID string
}

// FieldList returns the projection Fields asks for (nil for the whole
// object).
func (q Query) FieldList() []string {
	if strings.TrimSpace(q.Fields) == "" {
		return nil
	}
	var out []string
	for _, f := range strings.Split(q.Fields, ",") {
		if f = strings.TrimSpace(f); f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// listSpec is what one resource's lists allow.
type listSpec struct {
	// sortable maps API field names to SQL columns.
	sortable map[string]string
	// searchable maps search keys (keyword included) to the SQL columns
	// they look in.
	searchable map[string][]string
	// filters maps filter fields to their SQL column and a value check that
	// returns the SQL value.
	filters map[string]filterSpec
	// selectable lists the fields a projection may name.
	selectable []string
	// hidden lists fields that exist but may never be selected.
	hidden []string
	// defaultOrder is the ORDER BY when no sort is given.
	defaultOrder string
}

type filterSpec struct {
	column string
	value  func(string) (any, bool)
	want   string
}

// parsed is a validated Query turned into SQL pieces.
type parsed struct {
	where string
	args  []any
	order string
}

// checkFields validates a projection against spec.
func (spec listSpec) checkFields(v *errs.Validator, q Query) {
	if q.Fields != "" && q.FieldList() == nil {
		v.Add("fields", "must name at least one field")
	}
	for _, f := range q.FieldList() {
		switch {
		case slices.Contains(spec.hidden, f):
			v.Add("fields", "%s is not selectable", f)
		case !slices.Contains(spec.selectable, f):
			v.Add("fields", "unknown field %s (selectable: %s)", f, strings.Join(spec.selectable, ", "))
		}
	}
}

// checkRead validates a read of one record: its projection, lang and the
// path id (a 400 naming idField when malformed).
func (spec listSpec) checkRead(q Query, idField, recordID string) error {
	var v errs.Validator
	spec.checkFields(&v, q)
	checkLang(&v, q.Lang)
	v.Check(id.Valid(recordID), idField, "must be a 24-hex ObjectId")
	return v.Err()
}

// parse validates q against spec, naming every bad parameter, and returns
// the WHERE additions (each starting with AND) and ORDER BY.
func (spec listSpec) parse(q Query) (parsed, error) {
	var v errs.Validator
	p := parsed{order: spec.defaultOrder}
	if q.Sort != "" {
		field, dir, ok := strings.Cut(q.Sort, ":")
		if !ok {
			dir = "asc"
		}
		col, known := spec.sortable[field]
		dir = strings.ToLower(dir)
		switch {
		case !known:
			v.Add("sort", "cannot sort by %q (sortable: %s)", field, strings.Join(sortedKeys(spec.sortable), ", "))
		case dir != "asc" && dir != "desc":
			v.Add("sort", "direction must be asc or desc")
		default:
			p.order = col + " " + strings.ToUpper(dir) + ", created_at ASC, id ASC"
		}
	}
	spec.checkFields(&v, q)
	if q.Search != "" {
		key, val, ok := strings.Cut(q.Search, ":")
		cols, known := spec.searchable[key]
		switch {
		case !ok || strings.TrimSpace(val) == "":
			v.Add("search", "must be keyword:<value> or <field>:<value>")
		case !known:
			v.Add("search", "cannot search by %q (searchable: %s)", key, strings.Join(sortedKeys(spec.searchable), ", "))
		case len(val) > maxNameLen:
			v.Add("search", "value must be at most %d characters", maxNameLen)
		default:
			pattern := "%" + likeEscape(strings.ToLower(strings.TrimSpace(val))) + "%"
			var ors []string
			for _, c := range cols {
				ors = append(ors, "LOWER("+c+") LIKE ? ESCAPE '\\'")
				p.args = append(p.args, pattern)
			}
			p.where += " AND (" + strings.Join(ors, " OR ") + ")"
		}
	}
	if q.Filter != "" {
		field, val, ok := strings.Cut(q.Filter, ":")
		f, known := spec.filters[field]
		switch {
		case !ok:
			v.Add("filter", "must be field:value")
		case !known:
			v.Add("filter", "cannot filter by %q (filterable: %s)", field, strings.Join(sortedKeys(spec.filters), ", "))
		default:
			arg, good := f.value(val)
			if !good {
				v.Add("filter", "%s must be %s", field, f.want)
			} else {
				p.where += " AND " + f.column + " = ?"
				p.args = append(p.args, arg)
			}
		}
	}
	checkLang(&v, q.Lang)
	if q.UserID != "" {
		if id.Valid(q.UserID) {
			p.where += " AND is_archived = ?"
			p.args = append(p.args, false)
		} else {
			v.Add("userID", "must be a 24-hex ObjectId")
		}
	}
	return p, v.Err()
}

// likeEscape escapes LIKE wildcards so a search matches them literally.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// boolValue parses a filter's true/false.
func boolValue(s string) (any, bool) {
	switch strings.ToLower(s) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return nil, false
}

// idValue parses a filter's ObjectId.
func idValue(s string) (any, bool) { return strings.ToLower(s), id.Valid(s) }

// slugValue parses a filter's short lowercase word.
func slugValue(s string) (any, bool) { return s, typeRE.MatchString(s) }
