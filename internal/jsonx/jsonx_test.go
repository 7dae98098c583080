package jsonx

import (
	"encoding/json"
	"testing"
	"time"
)

type patch struct {
	Name  Optional[string] `json:"name"`
	Count Optional[int]    `json:"count"`
}

func TestOptionalAbsentNullValue(t *testing.T) {
	for _, tc := range []struct {
		body string
		want patch
	}{
		{`{}`, patch{}},
		{`{"name": null}`, patch{Name: Optional[string]{Set: true, Null: true}}},
		{`{"name":"x","count":0}`, patch{Name: Some("x"), Count: Some(0)}},
		{`{"name":"","count": null }`, patch{Name: Some(""), Count: Optional[int]{Set: true, Null: true}}},
	} {
		var p patch
		if err := json.Unmarshal([]byte(tc.body), &p); err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if p != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.body, p, tc.want)
		}
	}
}

func TestOptionalWrongType(t *testing.T) {
	var p patch
	if err := json.Unmarshal([]byte(`{"count":"seven"}`), &p); err == nil {
		t.Fatalf("a string for an int field decoded: %+v", p)
	}
}

func TestSome(t *testing.T) {
	if got := Some(42); !got.Set || got.Null || got.Value != 42 {
		t.Fatalf("Some(42) = %+v", got)
	}
}

func TestTimeMarshal(t *testing.T) {
	in := time.Date(2026, 4, 28, 2, 3, 4, 5_678_999, time.FixedZone("CEST", 2*3600))
	b, err := json.Marshal(At(in))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `"2026-04-28T00:03:04.005Z"`; got != want {
		t.Fatalf("marshal = %s, want %s", got, want)
	}
	b, err = json.Marshal(struct {
		T Time `json:"t"`
	}{Time{time.Date(2026, 4, 28, 0, 0, 0, 0, time.UTC)}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"t":"2026-04-28T00:00:00.000Z"}`; got != want {
		t.Fatalf("marshal = %s, want %s", got, want)
	}
}

func TestTimeUnmarshal(t *testing.T) {
	var v Time
	if err := json.Unmarshal([]byte(`"2026-04-28T02:00:00.250+02:00"`), &v); err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 4, 28, 0, 0, 0, 250_000_000, time.UTC)
	if !v.Equal(want) || v.Location() != time.UTC {
		t.Fatalf("unmarshal = %v (%v), want %v in UTC", v.Time, v.Location(), want)
	}
	for _, bad := range []string{`"yesterday"`, `12345`, `"2026-04-28"`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("unmarshal %s: no error", bad)
		}
	}
}

func TestMillis(t *testing.T) {
	m := Millis(1_777_334_400_123)
	if m.Location() != time.UTC || m.UnixMilli() != 1_777_334_400_123 {
		t.Fatalf("Millis = %v", m.Time)
	}
	b, _ := json.Marshal(m)
	if got, want := string(b), `"2026-04-28T00:00:00.123Z"`; got != want {
		t.Fatalf("marshal Millis = %s, want %s", got, want)
	}
}
