// Package jsonx holds JSON helpers the domain types share: a field that tells
// "absent" from "null" from a value, which partial updates need.
package jsonx

import (
	"bytes"
	"encoding/json"
)

// Optional is a JSON field that records whether it was present and whether it
// was null, so a partial update can leave, clear or set a value.
type Optional[T any] struct {
	Set   bool
	Null  bool
	Value T
}

// UnmarshalJSON marks the field present and decodes its value.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.Value)
}

// Some returns a present, non-null Optional holding v.
func Some[T any](v T) Optional[T] { return Optional[T]{Set: true, Value: v} }
