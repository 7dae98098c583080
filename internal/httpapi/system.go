package httpapi

import (
	"context"
	"net/http"
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
	var v errs.Validator
	skip, limit = 0, defaultLimit
	q := r.URL.Query()
	if s := q.Get("skip"); s != "" {
		n, convErr := strconv.Atoi(s)
		v.Check(convErr == nil && n >= 0, "skip", "must be a whole number of at least 0")
		skip = n
	}
	if s := q.Get("limit"); s != "" {
		n, convErr := strconv.Atoi(s)
		v.Check(convErr == nil && n >= 1 && n <= maxLimit, "limit", "must be a whole number from 1 to %d", maxLimit)
		limit = n
	}
	return skip, limit, v.Err()
}
