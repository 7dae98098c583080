package store

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/jsonx"
)

// maxCSVRows bounds the lines of one bulk CSV (products plus their extra
// permission rows).
const maxCSVRows = 5000

// csvRow is one CSV line being turned into a product and a permission entry.
type csvRow struct {
	in   *ProductInput
	rule *RuleInput
	// hasRule is set when a permission cell of the line was filled.
	hasRule bool
	// info and highlight collect the parts of the nested objects the line
	// fills; blanks take the defaults, since a CSV line sends the object whole.
	info      UserInformationInput
	highlight HighlightInput
	hasInfo   bool
	hasHigh   bool
}

type cellKind int

const (
	productCell cellKind = iota
	ruleCell
)

// csvColumn fills one field from a non-blank cell and returns what is wrong
// with the value ("" when fine).
type csvColumn struct {
	kind cellKind
	set  func(r *csvRow, val string) string
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "true", "yes", "y", "1":
		return true, true
	case "false", "no", "n", "0":
		return false, true
	}
	return false, false
}

// splitList splits a cell holding several values, separated by |, ; or
// line breaks.
func splitList(s string) []string {
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == '|' || r == ';' || r == '\n' || r == '\r' })
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func str(f func(r *csvRow) *jsonx.Optional[string]) func(*csvRow, string) string {
	return func(r *csvRow, v string) string { *f(r) = jsonx.Some(v); return "" }
}

func boolean(f func(r *csvRow) *jsonx.Optional[bool]) func(*csvRow, string) string {
	return func(r *csvRow, v string) string {
		b, ok := parseBool(v)
		if !ok {
			return "must be true or false"
		}
		*f(r) = jsonx.Some(b)
		return ""
	}
}

func integer[T int | int64](f func(r *csvRow) *jsonx.Optional[T]) func(*csvRow, string) string {
	return func(r *csvRow, v string) string {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "must be a whole number"
		}
		*f(r) = jsonx.Some(T(n))
		return ""
	}
}

// ptrBool fills a *bool of the line's nested objects or permission entry.
func ptrBool(f func(r *csvRow) **bool) func(*csvRow, string) string {
	return func(r *csvRow, v string) string {
		b, ok := parseBool(v)
		if !ok {
			return "must be true or false"
		}
		*f(r) = &b
		return ""
	}
}

func ptrInt(f func(r *csvRow) **int) func(*csvRow, string) string {
	return func(r *csvRow, v string) string {
		n, err := strconv.Atoi(v)
		if err != nil {
			return "must be a whole number"
		}
		*f(r) = &n
		return ""
	}
}

func limitOf(r *csvRow) *LimitInput {
	if r.rule.PurchaseLimit == nil {
		r.rule.PurchaseLimit = &LimitInput{}
	}
	return r.rule.PurchaseLimit
}

func accessOf(r *csvRow) *PurchaseAccess {
	if r.rule.PurchaseAccess == nil {
		r.rule.PurchaseAccess = &PurchaseAccess{}
	}
	return r.rule.PurchaseAccess
}

// csvColumns maps header names (lowercase) to the fields they fill: the
// documented columns plus Type, Stocks, Display Order and Category ID.
var csvColumns = map[string]csvColumn{
	"name":                          {productCell, str(func(r *csvRow) *jsonx.Optional[string] { return &r.in.Name })},
	"description":                   {productCell, str(func(r *csvRow) *jsonx.Optional[string] { return &r.in.Description })},
	"image":                         {productCell, str(func(r *csvRow) *jsonx.Optional[string] { return &r.in.Image })},
	"price":                         {productCell, integer(func(r *csvRow) *jsonx.Optional[int64] { return &r.in.Price })},
	"type":                          {productCell, str(func(r *csvRow) *jsonx.Optional[string] { return &r.in.Type })},
	"stocks":                        {productCell, integer(func(r *csvRow) *jsonx.Optional[int64] { return &r.in.Stocks })},
	"display order":                 {productCell, integer(func(r *csvRow) *jsonx.Optional[int] { return &r.in.DisplayOrder })},
	"category name":                 {productCell, str(func(r *csvRow) *jsonx.Optional[string] { return &r.in.CategoryName })},
	"category id":                   {productCell, str(func(r *csvRow) *jsonx.Optional[string] { return &r.in.CategoryID })},
	"discount enabled":              {productCell, boolean(func(r *csvRow) *jsonx.Optional[bool] { return &r.in.IsDiscountEnabled })},
	"discount price":                {productCell, integer(func(r *csvRow) *jsonx.Optional[int64] { return &r.in.DiscountPrice })},
	"discount start date":           {productCell, str(func(r *csvRow) *jsonx.Optional[string] { return &r.in.DiscountStartDate })},
	"discount end date":             {productCell, str(func(r *csvRow) *jsonx.Optional[string] { return &r.in.DiscountEndDate })},
	"user information enabled":      {productCell, info(func(r *csvRow) **bool { return &r.info.IsEnabled })},
	"collect name":                  {productCell, info(func(r *csvRow) **bool { return &r.info.ShouldCollectName })},
	"collect phone":                 {productCell, info(func(r *csvRow) **bool { return &r.info.ShouldCollectPhone })},
	"collect address":               {productCell, info(func(r *csvRow) **bool { return &r.info.ShouldCollectAddress })},
	"prioritize expiring vouchers":  {productCell, boolean(func(r *csvRow) *jsonx.Optional[bool] { return &r.in.ShouldPrioritiesExpiringVouchers })},
	"display remaining quantity":    {productCell, boolean(func(r *csvRow) *jsonx.Optional[bool] { return &r.in.ShouldDisplayRemainingQuantity })},
	"expiring highlight enabled":    {productCell, highlight(ptrBool(func(r *csvRow) **bool { return &r.highlight.IsEnabled }))},
	"expiring highlight duration":   {productCell, highlight(ptrInt(func(r *csvRow) **int { return &r.highlight.Duration }))},
	"expiring highlight timeframe":  {productCell, highlight(func(r *csvRow, v string) string { r.highlight.Timeframe = &v; return "" })},
	"archived":                      {productCell, boolean(func(r *csvRow) *jsonx.Optional[bool] { return &r.in.IsArchived })},
	"redemption instructions":       {productCell, str(func(r *csvRow) *jsonx.Optional[string] { return &r.in.RedemptionInstructions })},
	"product access enabled":        {productCell, boolean(func(r *csvRow) *jsonx.Optional[bool] { return &r.in.IsProductAccessEnabled })},
	"purchase status override name": {productCell, str(func(r *csvRow) *jsonx.Optional[string] { return &r.in.PurchaseStatusOverrideName })},
	"vouchers": {productCell, func(r *csvRow, v string) string {
		r.in.Vouchers = jsonx.Some(splitList(v))
		return ""
	}},
	"voucher expire date": {productCell, str(func(r *csvRow) *jsonx.Optional[string] { return &r.in.VoucherExpireDate })},
	"permission enabled":  {ruleCell, ptrBool(func(r *csvRow) **bool { return &r.rule.IsEnabled })},
	"permission type":     {ruleCell, func(r *csvRow, v string) string { r.rule.Type = strings.ToLower(v); return "" }},
	"roles":               {ruleCell, func(r *csvRow, v string) string { r.rule.Permission.RoleNames = splitList(v); return "" }},
	"tags":                {ruleCell, func(r *csvRow, v string) string { r.rule.Permission.TagNames = splitList(v); return "" }},
	"users":               {ruleCell, func(r *csvRow, v string) string { r.rule.Permission.Usernames = splitList(v); return "" }},
	"combination type": {ruleCell, func(r *csvRow, v string) string {
		combo(r).Type = strings.ToLower(v)
		return ""
	}},
	"combination values": {ruleCell, func(r *csvRow, v string) string {
		combo(r).Values = splitList(v)
		return ""
	}},
	"special price": {ruleCell, func(r *csvRow, v string) string {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "must be a whole number"
		}
		accessOf(r).SpecialPrice = n
		return ""
	}},
	"special price enabled": {ruleCell, func(r *csvRow, v string) string {
		b, ok := parseBool(v)
		if !ok {
			return "must be true or false"
		}
		accessOf(r).IsSpecialPriceEnabled = b
		return ""
	}},
	"purchase limit enabled":        {ruleCell, ptrBool(func(r *csvRow) **bool { return &limitOf(r).IsPurchaseLimitEnabled })},
	"purchase limit quantity":       {ruleCell, ptrInt(func(r *csvRow) **int { return &limitOf(r).Quantity })},
	"purchase limit interval count": {ruleCell, ptrInt(func(r *csvRow) **int { return &limitOf(r).IntervalCount })},
	"purchase limit interval unit": {ruleCell, func(r *csvRow, v string) string {
		limitOf(r).IntervalUnit = &v
		return ""
	}},
	"access level": {ruleCell, func(r *csvRow, v string) string { r.rule.AccessLevel = strings.ToLower(v); return "" }},
	"exclusive tag enabled": {ruleCell, func(r *csvRow, v string) string {
		b, ok := parseBool(v)
		if !ok {
			return "must be true or false"
		}
		r.rule.IsExclusiveTagEnabled = b
		return ""
	}},
}

// info marks a userInformation cell.
func info(f func(r *csvRow) **bool) func(*csvRow, string) string {
	set := ptrBool(f)
	return func(r *csvRow, v string) string { r.hasInfo = true; return set(r, v) }
}

// highlight marks an expiringVoucherHighlight cell.
func highlight(set func(*csvRow, string) string) func(*csvRow, string) string {
	return func(r *csvRow, v string) string { r.hasHigh = true; return set(r, v) }
}

// combo returns the line's one combination entry.
func combo(r *csvRow) *Combination {
	if len(r.rule.Permission.Combination) == 0 {
		r.rule.Permission.Combination = []Combination{{}}
	}
	return &r.rule.Permission.Combination[0]
}

// finish folds a line's nested-object cells into its product input.
func (r *csvRow) finish() {
	if r.hasInfo {
		f := false
		for _, p := range []**bool{&r.info.IsEnabled, &r.info.ShouldCollectName, &r.info.ShouldCollectPhone, &r.info.ShouldCollectAddress} {
			if *p == nil {
				*p = &f
			}
		}
		r.in.UserInformation = jsonx.Some(r.info)
	}
	if r.hasHigh {
		h := r.highlight
		if h.IsEnabled == nil {
			f := false
			h.IsEnabled = &f
		}
		if h.Duration == nil {
			d := 7
			h.Duration = &d
		}
		if h.Timeframe == nil {
			t := "days"
			h.Timeframe = &t
		}
		r.in.ExpiringVoucherHighlight = jsonx.Some(h)
	}
}

// ParseProductsCSV reads a bulk CSV. The first line names the columns
// (case-insensitive; the documented names: Name, Description, Image,
// Price, Category Name, ..., Exclusive Tag Enabled, plus Product ID for
// updates). A line with a Name (create) or Product ID (update) starts a
// product; a line without one adds a further permission entry to the
// product above it. Blank cells are left out, so an update changes only
// the filled cells. Lists in a cell (Vouchers, Roles, Tags, Users,
// Combination Values) are separated by |, ; or line breaks. Every bad cell
// is named as "row N.Column".
func ParseProductsCSV(r io.Reader, update bool) ([]BulkItem, error) {
	var v errs.Validator
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = false
	header, err := cr.Read()
	if err != nil {
		v.Add("file", "must be a CSV file with a header line: %s", csvReason(err))
		return nil, v.Err()
	}
	key := "name"
	if update {
		key = "product id"
	}
	cols := make([]string, len(header))
	keyAt := -1
	seen := map[string]bool{}
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff")
		}
		name := strings.ToLower(strings.Join(strings.Fields(h), " "))
		cols[i] = name
		_, known := csvColumns[name]
		switch {
		case name == key:
			keyAt = i
		case name == "product id" || !known:
			v.Add("file", "unknown column %q", h)
		}
		if seen[name] {
			v.Add("file", "column %q appears twice", h)
		}
		seen[name] = true
	}
	if keyAt < 0 {
		v.Add("file", "needs a %q column", map[bool]string{false: "Name", true: "Product ID"}[update])
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	var (
		items []BulkItem
		rows  []*csvRow
		lines int
	)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line := 0
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.Line
			}
			v.Add(fmt.Sprintf("row %d", line), "is not valid CSV: %s", csvReason(err))
			break
		}
		line, _ := cr.FieldPos(0)
		if lines++; lines > maxCSVRows {
			v.Add("file", "must hold at most %d lines", maxCSVRows)
			break
		}
		label := fmt.Sprintf("row %d", line)
		starts := keyAt < len(rec) && strings.TrimSpace(rec[keyAt]) != ""
		var row *csvRow
		if starts {
			row = &csvRow{in: &ProductInput{}, rule: &RuleInput{}}
			if update {
				items = append(items, BulkItem{Label: label, ProductID: strings.TrimSpace(rec[keyAt])})
			} else {
				items = append(items, BulkItem{Label: label})
			}
			rows = append(rows, row)
		} else {
			if len(rows) == 0 {
				if !blank(rec) {
					v.Add(label, "adds a permission entry but no product line comes before it")
				}
				continue
			}
			row = &csvRow{in: &ProductInput{}, rule: &RuleInput{}}
		}
		for i, cell := range rec {
			cell = strings.TrimSpace(cell)
			if i >= len(cols) || (update && i == keyAt) || cell == "" {
				if i >= len(cols) && cell != "" {
					v.Add(label, "has more cells than the header has columns")
				}
				continue
			}
			col := csvColumns[cols[i]]
			item := &items[len(items)-1]
			column := label + "." + strings.TrimSpace(header[i])
			if !starts && col.kind == productCell {
				item.addErr(column, "belongs on the product's first line (this line only adds a permission entry)")
				continue
			}
			if col.kind == ruleCell {
				row.hasRule = true
			}
			if msg := col.set(row, cell); msg != "" {
				item.addErr(column, "%s", msg)
			}
		}
		owner := rows[len(rows)-1]
		if row.hasRule {
			rules := append(owner.in.ProductPermission.Value, *row.rule)
			owner.in.ProductPermission = jsonx.Some(rules)
		}
	}
	for i, row := range rows {
		row.finish()
		items[i].Input = *row.in
	}
	checkBulk(&v, items, update)
	if err := v.Err(); err != nil {
		return nil, err
	}
	return items, nil
}

// blank reports whether every cell of rec is empty.
func blank(rec []string) bool {
	for _, c := range rec {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

// csvReason describes a CSV reading error without the reader's prefix.
func csvReason(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	if errors.Is(err, io.EOF) {
		return "the file is empty"
	}
	return err.Error()
}
