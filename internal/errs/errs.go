// Package errs holds the kinds of failure domain code reports. Domains return
// these; only the HTTP layer turns a kind into a status code.
package errs

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind classifies an error for callers that must react to it.
type Kind int

// The kinds of failure. Internal is anything unexpected.
const (
	Internal Kind = iota
	Invalid
	NotFound
	Conflict
	Unauthenticated
	Forbidden
	TooLarge
	RateLimited
	Unavailable
)

// Error is a classified error with a message safe to show to API callers.
type Error struct {
	Kind    Kind
	Message string
	// Fields names every offending input field for Invalid errors.
	Fields []FieldError
	// Err is the underlying cause, kept for logs, never shown to callers.
	Err error
	// RetryAfter tells a RateLimited caller when to try again (sent as the
	// Retry-After header, in whole seconds).
	RetryAfter time.Duration
}

// FieldError names one offending input field and what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	for _, f := range e.Fields {
		fmt.Fprintf(&b, "; %s: %s", f.Field, f.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error of kind k with a caller-safe message.
func New(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// NotFoundf reports a missing resource.
func NotFoundf(format string, args ...any) *Error { return New(NotFound, format, args...) }

// Conflictf reports a clash with existing state (duplicates, wrong state).
func Conflictf(format string, args ...any) *Error { return New(Conflict, format, args...) }

// Forbiddenf reports a valid credential that may not do this.
func Forbiddenf(format string, args ...any) *Error { return New(Forbidden, format, args...) }

// Unauthenticatedf reports a missing or unusable credential.
func Unauthenticatedf(format string, args ...any) *Error {
	return New(Unauthenticated, format, args...)
}

// KindOf returns the kind of err, Internal when it carries none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Validator collects field errors so one 400 can name every offending field.
type Validator struct {
	fields []FieldError
}

// Add records that field is wrong.
func (v *Validator) Add(field, format string, args ...any) {
	v.fields = append(v.fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Check records the message for field when ok is false.
func (v *Validator) Check(ok bool, field, format string, args ...any) {
	if !ok {
		v.Add(field, format, args...)
	}
}

// Err returns an Invalid error naming every recorded field, or nil.
func (v *Validator) Err() error {
	if len(v.fields) == 0 {
		return nil
	}
	return &Error{Kind: Invalid, Message: "Invalid input.", Fields: v.fields}
}
