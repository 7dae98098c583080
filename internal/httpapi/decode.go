package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/rallyhq/rally/internal/errs"
)

// decodeJSON reads the request body into v (a pointer to a struct). Unknown
// fields are ignored. A malformed body, or values of the wrong type, give an
// Invalid error naming every offending top-level field; a body over the
// server's limit gives TooLarge.
func decodeJSON(r *http.Request, v any) error {
	raw, err := readBody(r)
	if err != nil {
		return err
	}
	return decodeBody(raw, v)
}

// readBody reads the whole request body; a body over the server's limit
// gives TooLarge.
func readBody(r *http.Request) ([]byte, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, bodyError(err)
	}
	return raw, nil
}

// decodeBody decodes a JSON object body into v (see decodeJSON).
func decodeBody(raw []byte, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		var vd errs.Validator
		vd.Add("body", "must be a JSON object")
		return vd.Err()
	}
	err := json.Unmarshal(raw, v)
	if err == nil {
		return nil
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		var vd errs.Validator
		vd.Add("body", "is not valid JSON (offset %d): %s", syn.Offset, syn.Error())
		return vd.Err()
	}
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return typeErrors(raw, v, ute)
	}
	var vd errs.Validator
	vd.Add("body", "%s", err.Error())
	return vd.Err()
}

// typeErrors names every top-level field of v whose JSON value has the wrong
// type (encoding/json reports only the first).
func typeErrors(raw []byte, v any, first *json.UnmarshalTypeError) error {
	var vd errs.Validator
	seen := map[string]bool{}
	add := func(field, want string) {
		if field == "" {
			field = "body"
		}
		if !seen[field] {
			seen[field] = true
			vd.Add(field, "must be %s", want)
		}
	}
	add(first.Field, describe(first.Type))
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) == nil {
		t := reflect.TypeOf(v).Elem()
		if t.Kind() == reflect.Struct {
			for i := 0; i < t.NumField(); i++ {
				sf := t.Field(i)
				name := strings.Split(sf.Tag.Get("json"), ",")[0]
				val, ok := fields[name]
				if name == "" || name == "-" || !ok {
					continue
				}
				probe := reflect.New(sf.Type).Interface()
				var e *json.UnmarshalTypeError
				if err := json.Unmarshal(val, probe); errors.As(err, &e) {
					field := name
					if e.Field != "" {
						field = name + "." + e.Field
					}
					add(field, describe(e.Type))
				}
			}
		}
	}
	return vd.Err()
}

// describe names a Go type the way an API caller thinks of JSON.
func describe(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && t.NumField() == 3 && t.Field(2).Name == "Value" {
		t = t.Field(2).Type // jsonx.Optional[T]
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	default:
		return fmt.Sprintf("a %s", t.Kind())
	}
}

// bodyError classifies a failure to read the request body: over the
// server's limit is TooLarge, anything else Invalid.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errs.New(errs.TooLarge, "Request body is larger than %d bytes.", mbe.Limit)
	}
	// mime/multipart reports the limit as text, not as *http.MaxBytesError.
	if strings.Contains(err.Error(), "request body too large") {
		return errs.New(errs.TooLarge, "Request body is too large.")
	}
	return errs.New(errs.Invalid, "Could not read the request body.")
}

// multipartError classifies a failure to read a multipart form: over the
// limit is TooLarge, anything else a 400 naming the body as not being want.
func multipartError(err error, want string) error {
	if e := bodyError(err); errs.KindOf(e) == errs.TooLarge {
		return e
	}
	var v errs.Validator
	v.Add("body", "must be %s", want)
	return v.Err()
}
