package httpapi

import (
	"context"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rallyhq/rally/internal/errs"
)

// systemRoutes are the operator's endpoints: liveness, readiness, metrics
// and the contract.
func (s *Server) systemRoutes() {
	s.handle("GET /healthz", famM, public(), func(c *call) error {
		return c.ok(http.StatusOK, "Rally is up.", map[string]string{"status": "ok"})
	})
	s.handle("GET /readyz", famM, public(), func(c *call) error {
		ctx, cancel := context.WithTimeout(c.r.Context(), 2*time.Second)
		defer cancel()
		if err := s.DB.Ping(ctx); err != nil {
			s.log.WarnContext(ctx, "not ready", "error", err.Error())
			return errs.New(errs.Unavailable, "Database is not reachable.")
		}
		return c.ok(http.StatusOK, "Rally is ready.", map[string]string{"status": "ready", "database": string(s.DB.Dialect)})
	})
	metrics := promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{})
	s.handle("GET /metrics", famM, public(), func(c *call) error {
		metrics.ServeHTTP(c.w, c.r)
		return nil
	})
	s.handle("GET /openapi.yaml", famM, public(), func(c *call) error {
		c.w.Header().Set("Content-Type", "application/yaml")
		c.w.Header().Set("Content-Length", strconv.Itoa(len(s.OpenAPI)))
		_, _ = c.w.Write(s.OpenAPI)
		return nil
	})
}

// Paging limits for offset-paged lists (partner convention: skip, limit
// default 20, max 100).
const (
	defaultLimit = 20
	maxLimit     = 100
)

// offsetPage reads skip and limit from the query string, naming each bad one.
func offsetPage(r *http.Request) (skip, limit int, err error) {
	return queryPage(r, "skip", 0, defaultLimit, maxLimit)
}

// queryPage reads a paging start (start, at least min, default min) and
// limit (1 to maxLim, default defLimit) from the query string, naming each
// bad one.
func queryPage(r *http.Request, start string, min, defLimit, maxLim int) (from, limit int, err error) {
	var v errs.Validator
	from, limit = min, defLimit
	q := r.URL.Query()
	queryInt(&v, q, start, min, math.MaxInt, &from)
	queryInt(&v, q, "limit", 1, maxLim, &limit)
	return from, limit, v.Err()
}

// queryInt reads the whole-number query parameter name into dst (left as it
// is when absent), naming it in v unless it lies in [lo, hi].
func queryInt(v *errs.Validator, q url.Values, name string, lo, hi int, dst *int) {
	s := q.Get(name)
	if s == "" {
		return
	}
	n, err := strconv.Atoi(s)
	if hi == math.MaxInt {
		v.Check(err == nil && n >= lo, name, "must be a whole number of at least %d", lo)
	} else {
		v.Check(err == nil && n >= lo && n <= hi, name, "must be a whole number from %d to %d", lo, hi)
	}
	*dst = n
}
