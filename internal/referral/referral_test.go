package referral

import (
	"testing"

	"github.com/rallyhq/rally/internal/metric"
)

func TestStageMet(t *testing.T) {
	st := Stage{Requirements: Requirements{Operator: OperatorOr, MainConditions: []MainCondition{
		{Operator: OperatorAnd, NestedConditions: []Condition{{Metric: metric.Messages, Value: 3}, {Metric: metric.Level, Value: 2}}},
		{Operator: OperatorOr, NestedConditions: []Condition{{Metric: metric.Purchases, Value: 1}, {Metric: metric.XP, Value: 100}}},
	}}}
	for _, tc := range []struct {
		name      string
		values    map[metric.Key]int64
		met       int
		ok, okAnd bool
	}{
		{"nothing", map[metric.Key]int64{}, 0, false, false},
		{"half of the first group", map[metric.Key]int64{{Name: metric.Messages}: 5}, 0, false, false},
		{"first group", map[metric.Key]int64{{Name: metric.Messages}: 3, {Name: metric.Level}: 2}, 1, true, false},
		{"either of the second", map[metric.Key]int64{{Name: metric.XP}: 100}, 1, true, false},
		{"both groups", map[metric.Key]int64{{Name: metric.Messages}: 3, {Name: metric.Level}: 9, {Name: metric.Purchases}: 1}, 2, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			met, ok := stageMet(st, tc.values)
			and := st
			and.Requirements.Operator = OperatorAnd
			_, okAnd := stageMet(and, tc.values)
			if met != tc.met || ok != tc.ok || okAnd != tc.okAnd {
				t.Fatalf("met %d ok %v and %v, want %d %v %v", met, ok, okAnd, tc.met, tc.ok, tc.okAnd)
			}
		})
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := encodeCursor(1795777155591, "6b0962833db184adc988c720")
	at, id, ok := decodeCursor(c)
	if !ok || at != 1795777155591 || id != "6b0962833db184adc988c720" {
		t.Fatalf("decoded %d %q %v", at, id, ok)
	}
	for _, bad := range []string{"", "garbage!", encodeCursor(1, "not-an-id"), "MTIz"} {
		if ValidCursor(bad) {
			t.Fatalf("%q accepted", bad)
		}
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(5, "6b0962833db184adc988c720"))
	f.Add("MTIzfA")
	f.Fuzz(func(t *testing.T, s string) {
		if at, id, ok := decodeCursor(s); ok && encodeCursor(at, id) == "" {
			t.Fatal("valid cursor encodes to nothing")
		}
	})
}
