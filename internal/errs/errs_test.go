package errs

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
)

func TestValidatorEmpty(t *testing.T) {
	var v Validator
	v.Check(true, "name", "never recorded")
	if err := v.Err(); err != nil {
		t.Fatalf("Err with no failures = %v (%T), want nil", err, err)
	}
}

func TestValidatorCollectsEveryField(t *testing.T) {
	var v Validator
	v.Check(false, "name", "must be 1 to %d characters", 100)
	v.Check(true, "uri", "fine")
	v.Add("domain", "is taken")
	err := v.Err()
	if err == nil {
		t.Fatal("Err = nil, want an Invalid error")
	}
	if KindOf(err) != Invalid {
		t.Fatalf("KindOf = %v, want Invalid", KindOf(err))
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%T is not *Error", err)
	}
	want := []FieldError{{"name", "must be 1 to 100 characters"}, {"domain", "is taken"}}
	if !reflect.DeepEqual(e.Fields, want) {
		t.Fatalf("Fields = %+v, want %+v", e.Fields, want)
	}
	if got, want := err.Error(), "Invalid input.; name: must be 1 to 100 characters; domain: is taken"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

func TestKindOfThroughWrapping(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Kind
	}{
		{nil, Internal},
		{io.EOF, Internal},
		{NotFoundf("no %s", "user"), NotFound},
		{fmt.Errorf("load user: %w", Conflictf("dup")), Conflict},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", Forbiddenf("no"))), Forbidden},
		{fmt.Errorf("auth: %w", Unauthenticatedf("bad key")), Unauthenticated},
		{errors.Join(io.EOF, New(RateLimited, "slow down")), RateLimited},
	} {
		if got := KindOf(tc.err); got != tc.want {
			t.Errorf("KindOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestErrorCauseAndMessage(t *testing.T) {
	e := &Error{Kind: Unavailable, Message: "Database unavailable.", Err: io.ErrUnexpectedEOF}
	if !errors.Is(fmt.Errorf("ping: %w", e), io.ErrUnexpectedEOF) {
		t.Fatal("cause not reachable through Unwrap")
	}
	if got, want := e.Error(), "Database unavailable.: unexpected EOF"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if got := NotFoundf("User %s not found.", "u1"); got.Message != "User u1 not found." || got.Kind != NotFound {
		t.Fatalf("NotFoundf = %+v", got)
	}
}
