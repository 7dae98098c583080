package message

import (
	"context"
	"sync"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
)

// maxBatch bounds how many sends share one transaction.
const maxBatch = 64

// committer groups concurrent sends into shared transactions (group
// commit): the first sender to arrive leads, writing every send queued
// behind it in one transaction, so a burst pays for one commit and one
// writer hand-off instead of one each. Leadership passes to the next waiter
// once the leader's own send is written, so no caller serves others for
// long.
type committer struct {
	mu      sync.Mutex
	queue   []*pendingWrite
	leading bool
}

// pendingWrite is one queued send. fn must fail with a domain error (one
// with an errs kind) only before it has written anything, so a failing send
// leaves the shared transaction intact.
type pendingWrite struct {
	fn   func(tx *db.Tx) error
	err  error
	done bool
	// wake is closed when the write is done or the waiter must lead.
	wake chan struct{}
}

// write runs fn in a transaction shared with concurrent writes and returns
// fn's outcome.
func (s *Service) write(ctx context.Context, fn func(tx *db.Tx) error) error {
	c := &s.commit
	p := &pendingWrite{fn: fn, wake: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, p)
	lead := !c.leading
	c.leading = true
	c.mu.Unlock()
	if !lead {
		<-p.wake
		c.mu.Lock()
		done := p.done
		c.mu.Unlock()
		if done {
			return p.err
		}
	}
	// Lead: write batches until this caller's own write is done, then hand
	// over to the next waiter.
	ctx = context.WithoutCancel(ctx)
	for {
		c.mu.Lock()
		n := min(len(c.queue), maxBatch)
		batch := c.queue[:n:n]
		c.queue = c.queue[n:]
		c.mu.Unlock()
		s.runBatch(ctx, batch)
		c.mu.Lock()
		for _, w := range batch {
			w.done = true
			if w != p {
				close(w.wake)
			}
		}
		if p.done {
			if len(c.queue) > 0 {
				close(c.queue[0].wake)
			} else {
				c.leading = false
			}
			c.mu.Unlock()
			return p.err
		}
		c.mu.Unlock()
	}
}

// runBatch writes batch in one transaction. A write failing with a domain
// error fails alone; any other failure makes each write run on its own.
func (s *Service) runBatch(ctx context.Context, batch []*pendingWrite) {
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		for _, w := range batch {
			w.err = w.fn(tx)
			if w.err != nil && errs.KindOf(w.err) == errs.Internal {
				return w.err
			}
		}
		return nil
	})
	if err == nil {
		return
	}
	if len(batch) == 1 {
		batch[0].err = err
		return
	}
	for _, w := range batch {
		w.err = s.d.DB.Tx(ctx, w.fn)
	}
}
