package id

import (
	"encoding/hex"
	"regexp"
	"sync"
	"testing"
	"time"
)

var hex24 = regexp.MustCompile(`^[0-9a-f]{24}$`)

func TestNewFormatAndTimePrefix(t *testing.T) {
	at := time.Date(2026, 4, 28, 12, 34, 56, 789, time.FixedZone("X", 3*3600))
	s := New(at)
	if !hex24.MatchString(s) {
		t.Fatalf("New = %q, want 24 lowercase hex", s)
	}
	b, err := hex.DecodeString(s[:8])
	if err != nil {
		t.Fatal(err)
	}
	secs := int64(b[0])<<24 | int64(b[1])<<16 | int64(b[2])<<8 | int64(b[3])
	if secs != at.Unix() {
		t.Fatalf("time prefix = %d, want %d", secs, at.Unix())
	}
	if !Valid(s) {
		t.Fatalf("Valid(%q) = false", s)
	}
	// The process-unique part is shared; the counter moves on.
	s2 := New(at)
	if s2 == s || s2[:18] != s[:18] {
		t.Fatalf("second id %q vs %q: want same time+process part, different counter", s2, s)
	}
}

func TestNewSortsByTime(t *testing.T) {
	early := New(time.Unix(1_700_000_000, 0))
	late := New(time.Unix(1_800_000_000, 0))
	if !(early < late) {
		t.Fatalf("id for an earlier time %q does not sort before %q", early, late)
	}
}

func TestNewUniqueAcrossGoroutines(t *testing.T) {
	const workers, each = 8, 1250 // 10k ids
	now := time.Now()
	out := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids := make([]string, each)
			for i := range ids {
				ids[i] = New(now)
			}
			out[w] = ids
		}()
	}
	wg.Wait()
	seen := make(map[string]bool, workers*each)
	for _, ids := range out {
		for _, s := range ids {
			if !hex24.MatchString(s) {
				t.Fatalf("bad id %q", s)
			}
			if seen[s] {
				t.Fatalf("duplicate id %q", s)
			}
			seen[s] = true
		}
	}
	if len(seen) != workers*each {
		t.Fatalf("got %d unique ids, want %d", len(seen), workers*each)
	}
}

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"65f1a2b3c4d5e6f708192a3b", true},
		{"65F1A2B3C4D5E6F708192A3B", true},
		{"000000000000000000000000", true},
		{"", false},
		{"65f1a2b3c4d5e6f708192a3", false},   // 23
		{"65f1a2b3c4d5e6f708192a3b0", false}, // 25
		{"65f1a2b3c4d5e6f708192a3g", false},
		{"65f1a2b3c4d5e6f708192a3 ", false},
		{"zzzzzzzzzzzzzzzzzzzzzzzz", false},
	} {
		if got := Valid(tc.s); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}
