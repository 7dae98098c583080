package jsonx

import (
	"encoding/json"
	"time"

	"github.com/rallyhq/rally/internal/clock"
)

// Time is a time.Time that reads and writes the API's timestamp form:
// RFC 3339 in UTC with milliseconds (2026-04-28T00:00:00.000Z).
type Time struct{ time.Time }

// At wraps t.
func At(t time.Time) Time { return Time{t.UTC()} }

// MarshalJSON writes the timestamp with milliseconds.
func (t Time) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 26)
	b = append(b, '"')
	b = clock.AppendFormat(b, t.Time)
	return append(b, '"'), nil
}

// UnmarshalJSON accepts any RFC 3339 timestamp.
func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	t.Time = v.UTC()
	return nil
}

// Millis converts Unix milliseconds, as stored, to a Time.
func Millis(ms int64) Time { return Time{time.UnixMilli(ms).UTC()} }
