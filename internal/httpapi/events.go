package httpapi

import (
	"context"
	"strconv"

	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/event"
)

// EventFeed is the read side of the events feed.
type EventFeed interface {
	List(ctx context.Context, communityID string, q event.FeedQuery) ([]event.Event, int64, error)
}

// eventRoutes serve the events feed integrators poll to learn what changed.
func (s *Server) eventRoutes() {
	s.handle("GET /events", famM, partner("getEvents"), func(c *call) error {
		q := c.r.URL.Query()
		fq := event.FeedQuery{Type: q.Get("type")}
		var v errs.Validator
		if a := q.Get("after"); a != "" {
			n, err := strconv.ParseInt(a, 10, 64)
			v.Check(err == nil, "after", "must be a whole number")
			fq.After = n
		}
		if l := q.Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			v.Check(err == nil && n >= 1, "limit", "must be a whole number from 1 to %d", event.MaxFeedLimit)
			fq.Limit = n
		}
		if err := v.Err(); err != nil {
			return err
		}
		items, next, err := s.Events.List(c.r.Context(), c.key.CommunityID, fq)
		if err != nil {
			return err
		}
		if items == nil {
			items = []event.Event{}
		}
		limit := fq.Limit
		if limit == 0 {
			limit = event.DefaultFeedLimit
		}
		return c.list("Read events success.", items, Page{Limit: &limit, After: &fq.After, Next: &next})
	})
}
