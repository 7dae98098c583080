package userfield

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/clock"
)

// Canonical kinds: every accepted type spelling maps to one of these, and a
// field's values are validated, stored and indexed by its kind.
const (
	KindText      = "text"
	KindMultiLine = "multi-line-text"
	KindNumber    = "number"
	KindBoolean   = "boolean"
	KindDate      = "date"
	KindSelect    = "select"
)

// Text length limits, in characters.
const (
	maxSingleLine = 1000
	maxMultiLine  = 10000
)

// typeKinds maps every type spelling the docs' editions use to its kind.
var typeKinds = map[string]string{
	"text":             KindText,
	"single-line-text": KindText,
	"multi-line-text":  KindMultiLine,
	"number":           KindNumber,
	"numerical":        KindNumber,
	"boolean":          KindBoolean,
	"date":             KindDate,
	"select":           KindSelect,
}

// TypeSpellings lists the accepted type spellings, for messages and the
// contract.
var TypeSpellings = []string{"text", "single-line-text", "multi-line-text", "number", "numerical", "boolean", "date", "select"}

// KindOf returns the canonical kind of a type spelling (case-insensitive)
// and whether the spelling is known.
func KindOf(typ string) (string, bool) {
	k, ok := typeKinds[strings.ToLower(strings.TrimSpace(typ))]
	return k, ok
}

// Stored is a validated value in the forms it is kept in: canonical JSON
// (the value column and history rows) and the typed columns a filter engine
// queries with indexes.
type Stored struct {
	// JSON is the canonical JSON text of the value.
	JSON string
	// Text is set for text, select and boolean ("true"/"false") values.
	Text *string
	// Num is set for number values, and 1/0 for booleans.
	Num *float64
	// Time is set for date values (Unix milliseconds).
	Time *int64
}

// Typed returns the value as the API shows it: a string, a float64 or a bool.
func (s Stored) Typed() any { return decodeJSON(s.JSON) }

// decodeJSON reads canonical JSON as stored; nil for empty or unreadable text.
func decodeJSON(s string) any {
	if s == "" {
		return nil
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil
	}
	return v
}

// numberRE is a plain decimal number, optionally with an exponent; it keeps
// ParseFloat's extras (hex, Inf, NaN, underscores) out.
var numberRE = regexp.MustCompile(`^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$`)

// Parse validates raw (a decoded JSON value: string, float64, bool,
// json.Number; Go integer types are taken as numbers too) against kind and, for select, options. It returns the stored
// forms, or a caller-safe reason why raw does not fit. nil is not a value:
// callers treat it as "clear".
func Parse(kind string, options []string, raw any) (Stored, error) {
	switch kind {
	case KindText, KindMultiLine:
		s, ok := raw.(string)
		if !ok {
			return Stored{}, fmt.Errorf("must be a string")
		}
		limit := maxSingleLine
		if kind == KindMultiLine {
			limit = maxMultiLine
		}
		if !utf8.ValidString(s) {
			return Stored{}, fmt.Errorf("must be valid UTF-8 text")
		}
		if n := utf8.RuneCountInString(s); n > limit {
			return Stored{}, fmt.Errorf("must be at most %d characters (got %d)", limit, n)
		}
		return textStored(s), nil
	case KindNumber:
		f, isNum := goNumber(raw)
		switch v := raw.(type) {
		case json.Number:
			return Parse(kind, options, string(v))
		case string:
			t := strings.TrimSpace(v)
			if !numberRE.MatchString(t) {
				return Stored{}, fmt.Errorf("must be a number or a numeric string")
			}
			var err error
			if f, err = strconv.ParseFloat(t, 64); err != nil {
				return Stored{}, fmt.Errorf("must be a finite number")
			}
		default:
			if !isNum {
				return Stored{}, fmt.Errorf("must be a number or a numeric string")
			}
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return Stored{}, fmt.Errorf("must be a finite number")
		}
		if f == 0 {
			f = 0 // folds -0 into 0
		}
		b, _ := json.Marshal(f)
		return Stored{JSON: string(b), Num: &f}, nil
	case KindBoolean:
		var b bool
		switch v := raw.(type) {
		case bool:
			b = v
		case string:
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "true":
				b = true
			case "false":
			default:
				return Stored{}, fmt.Errorf(`must be true, false, "true" or "false"`)
			}
		default:
			return Stored{}, fmt.Errorf(`must be true, false, "true" or "false"`)
		}
		t, n, j := "false", 0.0, "false"
		if b {
			t, n, j = "true", 1, "true"
		}
		return Stored{JSON: j, Text: &t, Num: &n}, nil
	case KindDate:
		s, ok := raw.(string)
		if !ok {
			return Stored{}, fmt.Errorf("must be a date string (YYYY-MM-DD or RFC 3339)")
		}
		t, err := ParseDate(strings.TrimSpace(s))
		if err != nil {
			return Stored{}, err
		}
		ms := t.UnixMilli()
		b, _ := json.Marshal(clock.Format(time.UnixMilli(ms)))
		return Stored{JSON: string(b), Time: &ms}, nil
	case KindSelect:
		s, ok := raw.(string)
		if !ok {
			return Stored{}, fmt.Errorf("must be one of the field's options")
		}
		for _, o := range options {
			if strings.EqualFold(o, strings.TrimSpace(s)) {
				return textStored(o), nil
			}
		}
		return Stored{}, fmt.Errorf("must be one of: %s", strings.Join(options, ", "))
	}
	return Stored{}, fmt.Errorf("field has unknown type %q", kind)
}

// goNumber reads the numeric types a JSON decoder or a Go caller passes.
func goNumber(raw any) (float64, bool) {
	switch v := raw.(type) {
	case float64:
		return v, true
	case float32:
		return float64(v), true
	case int:
		return float64(v), true
	case int32:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint:
		return float64(v), true
	case uint32:
		return float64(v), true
	case uint64:
		return float64(v), true
	}
	return 0, false
}

func textStored(s string) Stored {
	b, _ := json.Marshal(s)
	return Stored{JSON: string(b), Text: &s}
}

// Date range stored values must fall in: four-digit years, so every stored
// date prints as RFC 3339.
var (
	minDate = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxDate = time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC)
)

// ParseDate reads a date the way the user-field API accepts one:
// YYYY-MM-DD (midnight UTC) or an RFC 3339 timestamp, years 0001 to 9999.
func ParseDate(s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		t, err = time.Parse(time.RFC3339Nano, s)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("must be a date: YYYY-MM-DD or an RFC 3339 timestamp")
	}
	t = t.UTC()
	if t.Before(minDate) || t.After(maxDate) {
		return time.Time{}, fmt.Errorf("must be a date between years 0001 and 9999")
	}
	return t, nil
}
