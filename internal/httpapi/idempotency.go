package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/idem"
)

// replayedHeader marks an answer served from an earlier request with the
// same Idempotency-Key.
const replayedHeader = "Idempotent-Replayed"

// writeFunc applies a write in tx and returns the success answer.
type writeFunc func(tx *db.Tx) (status int, message string, data any, err error)

// decodeRaw reads the JSON body into v like decode and also returns the raw
// bytes (for the request's idempotency fingerprint).
func (c *call) decodeRaw(v any) ([]byte, error) {
	raw, err := readBody(c.r)
	if err != nil {
		return nil, err
	}
	return raw, decodeBody(raw, v)
}

// idempotencyKey returns the request's Idempotency-Key and whether one was
// sent; a key sent but malformed is a 400 naming the header.
func (c *call) idempotencyKey() (string, bool, error) {
	vals, sent := c.r.Header[http.CanonicalHeaderKey(idem.Header)]
	if !sent {
		return "", false, nil
	}
	if len(vals) != 1 {
		var v errs.Validator
		v.Add(idem.Header, "must be sent once")
		return "", true, v.Err()
	}
	return vals[0], true, idem.CheckKey(vals[0])
}

// scope separates idempotency keys of different clients in one community:
// each API key (or signed-in user) has its own key space.
func (c *call) scope() string {
	if c.session != nil {
		return "user:" + c.session.UserID
	}
	return "apikey:" + c.key.ID
}

// idempotent runs a value-moving write in one transaction and writes its
// answer. The Idempotency-Key header is optional but honoured: when sent,
// the key's record is kept in the write's transaction (package idem), a
// retry with the same key and request gets the first answer back with
// Idempotent-Replayed: true and is not applied again, and the same key with
// a different request is a 409. path is the canonical path of the resource
// written (ids resolved, no prefix) and raw the request body, which together
// with the method fingerprint the request. Errors are not recorded: nothing
// was applied, so a retry is evaluated afresh.
func (c *call) idempotent(path string, raw []byte, write writeFunc) error {
	key, sent, err := c.idempotencyKey()
	if err != nil {
		return err
	}
	communityID, err := c.community()
	if err != nil {
		return err
	}
	ctx := c.r.Context()
	var res idem.Response
	err = c.s.DB.Tx(ctx, func(tx *db.Tx) error {
		run := func() (int, []byte, error) {
			status, message, data, err := write(tx)
			if err != nil {
				return 0, nil, err
			}
			// The answer is rendered before commit: it is stored with the
			// key in this transaction.
			rec := httptest.NewRecorder()
			success(rec, c.fam, status, message, data, nil)
			if rec.Code != status {
				return 0, nil, fmt.Errorf("encode answer: status %d", rec.Code)
			}
			return status, rec.Body.Bytes(), nil
		}
		if !sent {
			var err error
			res.Status, res.Body, err = run()
			return err
		}
		var err error
		res, err = c.s.Idempotency.Do(ctx, tx, idem.Request{CommunityID: communityID, Scope: c.scope(), Key: key,
			Fingerprint: idem.Fingerprint(c.r.Method, path, raw)}, run)
		return err
	})
	if err != nil {
		return err
	}
	if res.Replayed {
		c.w.Header().Set(replayedHeader, "true")
	}
	writeBody(c.w, res.Status, res.Body)
	return nil
}
