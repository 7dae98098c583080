package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"

	"github.com/rallyhq/rally/internal/errs"
)

// family is a route's envelope family (../shared/spec/endpoints.md,
// Decisions 2): it shapes both success and error bodies.
type family int

const (
	// famM is the modern management envelope {meta:{status,statusCode},message,data}.
	famM family = iota
	// famS is the integration envelope {status,message,data}.
	famS
	// famL is the legacy envelope {meta:{success,message,devMessage},body}.
	famL
	// famR is Secure Auth's documented special body: success writes data as
	// it is, errors are {"error":true,"message":...}.
	famR
)

// Page is the paging a list response reports in its envelope.
type Page struct {
	Skip   *int   `json:"skip,omitempty"`
	Page   *int   `json:"page,omitempty"`
	Limit  *int   `json:"limit,omitempty"`
	Total  *int   `json:"total,omitempty"`
	After  *int64 `json:"after,omitempty"`
	Before *int64 `json:"before,omitempty"`
	Next   *int64 `json:"next,omitempty"`
	// Created and Updated count what a bulk write created or changed.
	Created *int `json:"created,omitempty"`
	Updated *int `json:"updated,omitempty"`
}

type metaM struct {
	Status     string `json:"status"`
	StatusCode int    `json:"statusCode"`
	*Page
}

type bodyM struct {
	Meta    metaM             `json:"meta"`
	Message string            `json:"message"`
	Data    any               `json:"data,omitempty"`
	Errors  []errs.FieldError `json:"errors,omitempty"`
}

type bodyS struct {
	Status  string            `json:"status"`
	Message string            `json:"message"`
	Data    any               `json:"data,omitempty"`
	Errors  []errs.FieldError `json:"errors,omitempty"`
}

type metaL struct {
	Success    bool   `json:"success"`
	Message    string `json:"message"`
	DevMessage string `json:"devMessage"`
	*Page
}

type bodyR struct {
	Error   bool              `json:"error"`
	Message string            `json:"message"`
	Errors  []errs.FieldError `json:"errors,omitempty"`
}

type bodyL struct {
	Meta   metaL             `json:"meta"`
	Body   any               `json:"body"`
	Errors []errs.FieldError `json:"errors,omitempty"`
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"message":"response encoding failed"}`, http.StatusInternalServerError)
		return
	}
	writeBody(w, status, b)
}

// writeBody writes an encoded JSON body with status.
func writeBody(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// success writes a success body of family f. data may be nil only where the
// family's documented body has no data.
func success(w http.ResponseWriter, f family, status int, message string, data any, page *Page) {
	if raw, ok := data.(json.RawMessage); ok && f == famM && page == nil && len(raw) > 0 {
		bp := bodyBuffers.Get().(*[]byte)
		b := appendSuccessM((*bp)[:0], status, message, raw)
		writeBody(w, status, b)
		if cap(b) <= maxPooledBody {
			*bp = b
			bodyBuffers.Put(bp)
		}
		return
	}
	switch f {
	case famS:
		writeJSON(w, status, bodyS{Status: "success", Message: message, Data: data})
	case famL:
		writeJSON(w, status, bodyL{Meta: metaL{Success: true, Message: message, DevMessage: message, Page: page}, Body: data})
	case famR:
		writeJSON(w, status, data)
	default:
		writeJSON(w, status, bodyM{Meta: metaM{Status: "success", StatusCode: status, Page: page}, Message: message, Data: data})
	}
}

// bodyBuffers recycle the buffers pre-encoded answers are assembled in
// (a ResponseWriter does not keep the bytes after Write returns).
var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledBody bounds the buffers kept in bodyBuffers.
const maxPooledBody = 64 << 10

// appendSuccessM appends the modern success envelope around data, already
// encoded (compact, as encoding/json writes it), to b: the same bytes
// json.Marshal writes for bodyM, without reflection or re-validating data.
func appendSuccessM(b []byte, status int, message string, data json.RawMessage) []byte {
	const head, code, msg, tail = `{"meta":{"status":"success","statusCode":`, `},"message":`, `,"data":`, `}`
	if b == nil {
		b = make([]byte, 0, len(head)+3+len(code)+len(message)+2+len(msg)+len(data)+len(tail))
	}
	b = append(b, head...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, code...)
	b = appendJSONString(b, message)
	b = append(b, msg...)
	b = append(b, data...)
	return append(b, tail...)
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it (plain printable ASCII is copied; anything else goes through
// encoding/json).
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// failure writes an error body of family f.
func failure(w http.ResponseWriter, f family, status int, message string, fields []errs.FieldError) {
	switch f {
	case famS:
		writeJSON(w, status, bodyS{Status: "error", Message: message, Errors: fields})
	case famL:
		dev := message
		for _, fe := range fields {
			dev += " " + fe.Field + ": " + fe.Message + "."
		}
		writeJSON(w, status, bodyL{Meta: metaL{Success: false, Message: message, DevMessage: dev}, Errors: fields})
	case famR:
		writeJSON(w, status, bodyR{Error: true, Message: message, Errors: fields})
	default:
		writeJSON(w, status, bodyM{Meta: metaM{Status: "error", StatusCode: status}, Message: message, Errors: fields})
	}
}

// statusOf maps an error kind to its HTTP status.
func statusOf(k errs.Kind) int {
	switch k {
	case errs.Invalid:
		return http.StatusBadRequest
	case errs.NotFound:
		return http.StatusNotFound
	case errs.Conflict:
		return http.StatusConflict
	case errs.Unauthenticated:
		return http.StatusUnauthorized
	case errs.Forbidden:
		return http.StatusForbidden
	case errs.TooLarge:
		return http.StatusRequestEntityTooLarge
	case errs.RateLimited:
		return http.StatusTooManyRequests
	case errs.Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// fail writes err in family f's error body. Unclassified errors are logged
// and answered with a 500 that reveals nothing.
func fail(w http.ResponseWriter, r *http.Request, log *slog.Logger, f family, err error) {
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind == errs.Internal {
		log.ErrorContext(r.Context(), "request failed", "request_id", requestID(r.Context()), "error", err.Error())
		failure(w, f, http.StatusInternalServerError, "Internal server error.", nil)
		return
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	failure(w, f, statusOf(e.Kind), e.Message, e.Fields)
}
