package userfield

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestKindOf(t *testing.T) {
	want := map[string]string{
		"text": KindText, "single-line-text": KindText, "Multi-Line-Text": KindMultiLine, "number": KindNumber,
		"numerical": KindNumber, "boolean": KindBoolean, " date ": KindDate, "select": KindSelect,
	}
	for spelling, kind := range want {
		if got, ok := KindOf(spelling); !ok || got != kind {
			t.Errorf("KindOf(%q) = %q, %v; want %q", spelling, got, ok, kind)
		}
	}
	for _, bad := range []string{"", "string", "int", "multi line text"} {
		if _, ok := KindOf(bad); ok {
			t.Errorf("KindOf(%q) accepted", bad)
		}
	}
}

func TestParse(t *testing.T) {
	opts := []string{"Beginner", "Advanced"}
	cases := []struct {
		kind     string
		raw      any
		wantJSON string // "" = rejected
		text     string
		num      *float64
		time     *int64
	}{
		{kind: KindText, raw: "hello", wantJSON: `"hello"`, text: "hello"},
		{kind: KindText, raw: "", wantJSON: `""`, text: ""},
		{kind: KindText, raw: strings.Repeat("é", 1000), wantJSON: `"` + strings.Repeat("é", 1000) + `"`, text: strings.Repeat("é", 1000)},
		{kind: KindText, raw: strings.Repeat("a", 1001)},
		{kind: KindText, raw: 12.0},
		{kind: KindText, raw: true},
		{kind: KindMultiLine, raw: strings.Repeat("a\n", 5000), wantJSON: mustJSON(strings.Repeat("a\n", 5000)), text: strings.Repeat("a\n", 5000)},
		{kind: KindMultiLine, raw: strings.Repeat("a", 10001)},
		{kind: KindNumber, raw: 12.5, wantJSON: `12.5`, num: ptr(12.5)},
		{kind: KindNumber, raw: " 42 ", wantJSON: `42`, num: ptr(42.0)},
		{kind: KindNumber, raw: "-1e3", wantJSON: `-1000`, num: ptr(-1000.0)},
		{kind: KindNumber, raw: json.Number("7"), wantJSON: `7`, num: ptr(7.0)},
		{kind: KindNumber, raw: "0x10"},
		{kind: KindNumber, raw: "NaN"},
		{kind: KindNumber, raw: "Inf"},
		{kind: KindNumber, raw: "1e400"},
		{kind: KindNumber, raw: "12abc"},
		{kind: KindNumber, raw: ""},
		{kind: KindNumber, raw: true},
		{kind: KindBoolean, raw: true, wantJSON: `true`, text: "true", num: ptr(1.0)},
		{kind: KindBoolean, raw: "FALSE", wantJSON: `false`, text: "false", num: ptr(0.0)},
		{kind: KindBoolean, raw: "yes"},
		{kind: KindBoolean, raw: 1.0},
		{kind: KindDate, raw: "2026-04-28", wantJSON: `"2026-04-28T00:00:00.000Z"`, time: ptr(int64(1777334400000))},
		{kind: KindDate, raw: "2026-04-28T10:00:00+02:00", wantJSON: `"2026-04-28T08:00:00.000Z"`, time: ptr(int64(1777363200000))},
		{kind: KindDate, raw: "2026-02-30"},
		{kind: KindDate, raw: "28/04/2026"},
		{kind: KindDate, raw: 1777334400000.0},
		{kind: KindSelect, raw: "advanced", wantJSON: `"Advanced"`, text: "Advanced"},
		{kind: KindSelect, raw: "Expert"},
		{kind: KindSelect, raw: 1.0},
		{kind: "nonsense", raw: "x"},
	}
	for _, tc := range cases {
		st, err := Parse(tc.kind, opts, tc.raw)
		if tc.wantJSON == "" {
			if err == nil {
				t.Errorf("Parse(%s, %#v) accepted as %s", tc.kind, tc.raw, st.JSON)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%s, %#v): %v", tc.kind, tc.raw, err)
			continue
		}
		if st.JSON != tc.wantJSON {
			t.Errorf("Parse(%s, %#v) JSON = %s, want %s", tc.kind, tc.raw, st.JSON, tc.wantJSON)
		}
		if (tc.kind == KindText || tc.kind == KindMultiLine || tc.kind == KindSelect || tc.kind == KindBoolean) &&
			(st.Text == nil || *st.Text != tc.text) {
			t.Errorf("Parse(%s, %#v) text = %v, want %q", tc.kind, tc.raw, st.Text, tc.text)
		}
		if tc.num != nil && (st.Num == nil || *st.Num != *tc.num) {
			t.Errorf("Parse(%s, %#v) num = %v, want %v", tc.kind, tc.raw, st.Num, *tc.num)
		}
		if tc.time != nil && (st.Time == nil || *st.Time != *tc.time) {
			t.Errorf("Parse(%s, %#v) time = %v, want %v", tc.kind, tc.raw, st.Time, *tc.time)
		}
	}
}

func TestDeriveKey(t *testing.T) {
	cases := map[string]string{
		"User Level":              "user-level",
		"  Deposit   amount ":     "deposit-amount",
		"Department":              "department",
		"Préférence №1!":          "préférence-1",
		"!!!":                     "",
		strings.Repeat("ab ", 40): strings.TrimRight(strings.Repeat("ab-", 17)[:50], "-"),
	}
	for name, want := range cases {
		if got := deriveKey(name); got != want {
			t.Errorf("deriveKey(%q) = %q, want %q", name, got, want)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func ptr[T any](v T) *T { return &v }

// FuzzParse feeds arbitrary JSON values to every kind's parser: it must never
// panic, and an accepted value's canonical form must parse to itself (so a
// stored value re-validates and compares equal to its own rewrite).
func FuzzParse(f *testing.F) {
	for _, seed := range []string{`"hello"`, `12.5`, `"42"`, `"-1e3"`, `true`, `"false"`, `"2026-04-28"`,
		`"2026-04-28T10:00:00+02:00"`, `"advanced"`, `null`, `[1]`, `{"a":1}`, `"0x10"`, `"NaN"`, `1e308`, `-0`,
		`"9999-12-31T23:59:59.9999Z"`, `"0000-01-01"`, `"\u0000"`} {
		f.Add([]byte(seed))
	}
	opts := []string{"Beginner", "Advanced", "ß"}
	kinds := []string{KindText, KindMultiLine, KindNumber, KindBoolean, KindDate, KindSelect}
	f.Fuzz(func(t *testing.T, data []byte) {
		var raw any
		if json.Unmarshal(data, &raw) != nil {
			return
		}
		for _, kind := range kinds {
			st, err := Parse(kind, opts, raw)
			if err != nil {
				continue
			}
			if !json.Valid([]byte(st.JSON)) {
				t.Fatalf("%s: canonical form %q is not JSON", kind, st.JSON)
			}
			again, err := Parse(kind, opts, st.Typed())
			if err != nil {
				t.Fatalf("%s: canonical form %s of %s rejected: %v", kind, st.JSON, data, err)
			}
			if again.JSON != st.JSON {
				t.Fatalf("%s: canonical form not stable: %s -> %s", kind, st.JSON, again.JSON)
			}
		}
	})
}
