package httpapi

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type ctxKey int

const keyExchange ctxKey = iota

// exchange is one request's state, shared by observe, dispatch and the
// matched route. observe allocates it once per request and holds in it what
// the layers would otherwise allocate one by one.
type exchange struct {
	rid string
	// route is the matched route, set by it so observe can label logs and
	// metrics with the route pattern rather than the raw path; nil when no
	// route claimed the request.
	route *route
	sw    statusWriter
	uw    unmatchedWriter
	// url is the request's URL with its prefix stripped, when dispatch
	// rewrites the path.
	url url.URL
	// ridHeader backs the X-Request-Id header value.
	ridHeader [1]string
	// call is the matched route's call.
	call call
}

// exchangeOf returns the request's exchange (nil outside observe).
func exchangeOf(ctx context.Context) *exchange {
	ex, _ := ctx.Value(keyExchange).(*exchange)
	return ex
}

// requestID returns the request's id, set by the outermost middleware.
func requestID(ctx context.Context) string {
	if ex := exchangeOf(ctx); ex != nil {
		return ex.rid
	}
	return ""
}

// newRequestID returns 16 random hex digits. Request ids need to be unique,
// not secret: the runtime's per-thread ChaCha8 generator (math/rand/v2)
// gives 64 random bits without a system call.
func newRequestID() string {
	const digits = "0123456789abcdef"
	var b [16]byte
	v := rand.Uint64()
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

// validRequestID accepts a caller's X-Request-Id when it is short and plain.
func validRequestID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// metrics are the HTTP layer's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// unmatched labels requests no route claimed.
	unmatched *route
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rally_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rally_http_request_duration_seconds", Help: "HTTP request latency by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method"}),
		unmatched: &route{pattern: "unmatched"},
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// route is a registered route pattern with its metric series, resolved once
// per method and status instead of looked up by label values per request.
type route struct {
	pattern string
	mu      sync.Mutex // serialises adding series
	series  atomic.Pointer[map[seriesKey]series]
}

type seriesKey struct {
	method string
	status int
}

// series are one route's collectors for one method and status.
type series struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

// maxRouteSeries bounds the series a route keeps resolved; methods beyond it
// (clients may send any) are looked up per request.
const maxRouteSeries = 32

// record counts one request of rt and observes its latency.
func (m *metrics) record(rt *route, method string, status int, elapsed time.Duration) {
	key := seriesKey{method, status}
	var se series
	if cur := rt.series.Load(); cur != nil {
		se = (*cur)[key]
	}
	if se.requests == nil {
		se = m.resolve(rt, key)
	}
	se.requests.Inc()
	se.latency.Observe(elapsed.Seconds())
}

// resolve looks up rt's collectors for key and keeps them (copy on write).
func (m *metrics) resolve(rt *route, key seriesKey) series {
	se := series{
		requests: m.requests.WithLabelValues(rt.pattern, key.method, strconv.Itoa(key.status)),
		latency:  m.latency.WithLabelValues(rt.pattern, key.method),
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	old := rt.series.Load()
	if old != nil && len(*old) >= maxRouteSeries {
		return se
	}
	next := make(map[seriesKey]series, 1+lenOf(old))
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[key] = se
	rt.series.Store(&next)
	return se
}

func lenOf[M ~map[K]V, K comparable, V any](m *M) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// observe is the outermost middleware: request id, panic recovery, one
// structured log line and metrics per request.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ex := &exchange{rid: r.Header.Get("X-Request-Id")}
		if !validRequestID(ex.rid) {
			ex.rid = newRequestID()
		}
		rid := ex.rid
		ctx := context.WithValue(r.Context(), keyExchange, ex)
		r = r.WithContext(ctx)
		// The path as it came: dispatch may rewrite r.URL.
		rawURL := r.URL
		ex.ridHeader[0] = rid
		w.Header()["X-Request-Id"] = ex.ridHeader[:]
		sw := &ex.sw
		sw.ResponseWriter = w
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.ErrorContext(ctx, "panic", "request_id", rid, "panic", p, "stack", string(debug.Stack()))
				if sw.status == 0 {
					failure(sw, famM, http.StatusInternalServerError, "Internal server error.", nil)
				}
			}
			rt := ex.route
			if rt == nil {
				rt = s.metrics.unmatched
			}
			elapsed := time.Since(start)
			s.metrics.record(rt, r.Method, sw.status, elapsed)
			if s.accessLog {
				s.log.LogAttrs(ctx, slog.LevelInfo, "request",
					slog.String("request_id", rid), slog.String("method", r.Method), slog.String("path", rawURL.Path),
					slog.String("route", rt.pattern), slog.Int("status", sw.status), slog.Int("bytes", sw.bytes),
					slog.Duration("duration", elapsed))
			}
		}()
		next.ServeHTTP(sw, r)
	})
}
