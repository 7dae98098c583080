package clock

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestFormatMatchesLayout checks the hand-written formatting against
// time.Time.Format with Layout, in UTC.
func TestFormatMatchesLayout(t *testing.T) {
	times := []time.Time{
		time.Time{},
		time.Date(2026, 4, 28, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2026, 4, 28, 2, 3, 4, 5_678_999, time.FixedZone("CEST", 2*3600)),
		time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(999, 3, 4, 5, 6, 7, 89_000_000, time.UTC),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		times = append(times, time.UnixMilli(r.Int64N(400_000_000_000_000)-200_000_000_000_000).In(time.FixedZone("X", r.IntN(50_000)-25_000)))
	}
	for _, tm := range times {
		want := tm.UTC().Format(Layout)
		if got := Format(tm); got != want {
			t.Fatalf("Format(%v) = %q, want %q", tm, got, want)
		}
		if got := string(AppendFormat([]byte("x"), tm)); got != "x"+want {
			t.Fatalf("AppendFormat(%v) = %q, want %q", tm, got, "x"+want)
		}
	}
}
