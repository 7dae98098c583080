package idem_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/idem"
)

func TestFingerprint(t *testing.T) {
	a := idem.Fingerprint("POST", "/v1/x", []byte(`{"b":1,"a":[1,2]}`))
	if b := idem.Fingerprint("POST", "/v1/x", []byte(" {\"a\": [1, 2],\n \"b\": 1} ")); a != b {
		t.Fatal("the same JSON document must fingerprint the same")
	}
	for _, other := range []string{
		idem.Fingerprint("PUT", "/v1/x", []byte(`{"b":1,"a":[1,2]}`)),
		idem.Fingerprint("POST", "/v1/y", []byte(`{"b":1,"a":[1,2]}`)),
		idem.Fingerprint("POST", "/v1/x", []byte(`{"b":2,"a":[1,2]}`)),
		idem.Fingerprint("POST", "/v1/x", []byte(`{"b":1.0,"a":[1,2]}`)),
	} {
		if other == a {
			t.Fatal("a different method, path or body must fingerprint differently")
		}
	}
	if idem.Fingerprint("POST", "/v1/x", []byte(`not json`)) == idem.Fingerprint("POST", "/v1/x", []byte(`not json `)) {
		t.Fatal("non-JSON bodies are compared byte for byte")
	}
}

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"a", strings.Repeat("k", 255), "order-1 retry #2", "~!@"} {
		if err := idem.CheckKey(k); err != nil {
			t.Errorf("%q: %v", k, err)
		}
	}
	for _, k := range []string{"", strings.Repeat("k", 256), "tab\there", "é", "nl\n"} {
		err := idem.CheckKey(k)
		var e *errs.Error
		if !errors.As(err, &e) || e.Kind != errs.Invalid || len(e.Fields) != 1 || e.Fields[0].Field != idem.Header {
			t.Errorf("%q: %v, want Invalid naming %s", k, err, idem.Header)
		}
	}
}

func TestDoAppliesOnceAndReleasesFailedClaims(t *testing.T) {
	e := apitest.New(t)
	ctx := context.Background()
	c, _ := e.Community("I", "i")
	k := e.App.Idempotency
	req := idem.Request{CommunityID: c, Scope: "test", Key: "k1", Fingerprint: "f1"}
	runs := 0
	do := func(r idem.Request, fail error) (idem.Response, error) {
		var res idem.Response
		err := e.App.DB.Tx(ctx, func(tx *db.Tx) error {
			var err error
			res, err = k.Do(ctx, tx, r, func() (int, []byte, error) {
				runs++
				if fail != nil {
					return 0, nil, fail
				}
				return 201, []byte(`{"n":1}`), nil
			})
			return err
		})
		return res, err
	}
	// A failing write leaves no record: the next attempt runs.
	boom := errors.New("boom")
	if _, err := do(req, boom); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	res, err := do(req, nil)
	if err != nil || res.Replayed || res.Status != 201 || runs != 2 {
		t.Fatalf("first success: %+v %v runs=%d", res, err, runs)
	}
	res, err = do(req, nil)
	if err != nil || !res.Replayed || res.Status != 201 || string(res.Body) != `{"n":1}` || runs != 2 {
		t.Fatalf("replay: %+v %v runs=%d", res, err, runs)
	}
	changed := req
	changed.Fingerprint = "f2"
	if _, err := do(changed, nil); errs.KindOf(err) != errs.Conflict {
		t.Fatalf("other fingerprint: %v", err)
	}
	// Keys are scoped by community and scope.
	for _, r := range []idem.Request{{CommunityID: c, Scope: "other", Key: "k1", Fingerprint: "f2"}, {CommunityID: "x", Scope: "test", Key: "k1", Fingerprint: "f2"}} {
		if res, err := do(r, nil); err != nil || res.Replayed {
			t.Fatalf("scoped key %+v: %+v %v", r, res, err)
		}
	}
}
