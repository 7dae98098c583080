package event

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rallyhq/rally/internal/db"
)

// lagQueryTimeout bounds the queries a scrape runs for the delivery lag;
// maxLagCount bounds the pending events they count (the gauge saturates
// there).
const (
	lagQueryTimeout = 5 * time.Second
	maxLagCount     = 100_000
)

var (
	descAppended = prometheus.NewDesc("rally_events_appended_total",
		"Events this node appended to the outbox in committed transactions.", nil, nil)
	descDelivered = prometheus.NewDesc("rally_events_delivered_total",
		"Outbox events this node's dispatcher handed to a subscriber in committed batches.", []string{"subscriber"}, nil)
	descFailures = prometheus.NewDesc("rally_event_delivery_failures_total",
		"Batches of outbox events a subscriber failed to handle on this node (rolled back and retried later).", []string{"subscriber"}, nil)
	descLag = prometheus.NewDesc("rally_event_delivery_lag_events",
		"Outbox events the slowest subscriber has yet to handle, summed over communities (read from the database at scrape time; saturates at 100000).", nil, nil)
)

// Metrics returns the outbox's Prometheus collector.
func (o *Outbox) Metrics() prometheus.Collector { return outboxMetrics{o} }

// outboxMetrics collects an Outbox's metrics.
type outboxMetrics struct{ o *Outbox }

// Describe sends the descriptor of the appended counter.
func (m outboxMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- descAppended }

// Collect sends the appended counter.
func (m outboxMetrics) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descAppended, prometheus.CounterValue, float64(m.o.appended.Load()))
}

// Metrics returns the dispatcher's Prometheus collector: deliveries and
// failures per subscriber, counted as they happen, and the delivery lag,
// read from the database (one query over the subscribers' offsets) when
// scraped.
func (d *Dispatcher) Metrics() prometheus.Collector { return dispatcherMetrics{d} }

// dispatcherMetrics collects a Dispatcher's metrics.
type dispatcherMetrics struct{ d *Dispatcher }

// Describe sends the descriptors of every metric Collect sends.
func (m dispatcherMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDelivered
	ch <- descFailures
	ch <- descLag
}

// Collect sends the counters per subscriber and the current lag; when the
// lag cannot be read, it is left out (and logged) rather than failing the
// whole scrape.
func (m dispatcherMetrics) Collect(ch chan<- prometheus.Metric) {
	d := m.d
	for i, s := range d.subs {
		ch <- prometheus.MustNewConstMetric(descDelivered, prometheus.CounterValue, float64(d.delivered[i].Load()), s.Name)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(d.failed[i].Load()), s.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), lagQueryTimeout)
	defer cancel()
	lag, err := d.lag(ctx)
	if err != nil {
		d.log.Warn("metrics: read event delivery lag", "error", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(lag))
}

// lag returns how many outbox events the slowest subscriber has yet to
// handle, summed over the communities some subscriber has an offset in (a
// community's first dispatch creates the offsets; one that never had one is
// not counted). Sequence numbers are shared by every community, so a
// community's head minus an offset would count other communities' events
// too: the pending events are counted through the events index instead, at
// most maxLagCount in all, so a scrape during a large backlog stays cheap.
func (d *Dispatcher) lag(ctx context.Context) (int64, error) {
	if len(d.subs) == 0 {
		return 0, nil
	}
	names := make([]any, len(d.subs))
	for i, s := range d.subs {
		names[i] = s.Name
	}
	q := `SELECT o.community_id, MIN(o.last_seq), COUNT(*),
		(SELECT COALESCE(MAX(e.seq), 0) FROM events e WHERE e.community_id = o.community_id)
		FROM event_offsets o WHERE o.subscriber IN ` + db.In(len(names)) + ` GROUP BY o.community_id`
	type behind struct {
		community string
		slowest   int64
		offsets   int
		head      int64
	}
	rows, err := d.db.Query(ctx, q, names...)
	all, err := db.Collect(rows, err, "read event delivery lag", func(r db.Scanner) (behind, error) {
		var b behind
		if err := r.Scan(&b.community, &b.slowest, &b.offsets, &b.head); err != nil {
			return b, fmt.Errorf("read event delivery lag: %w", err)
		}
		return b, nil
	})
	if err != nil {
		return 0, err
	}
	var total int64
	for _, b := range all {
		if b.offsets < len(d.subs) {
			// A subscriber without an offset has handled nothing yet.
			b.slowest = 0
		}
		if b.head <= b.slowest {
			continue
		}
		var n int64
		if err := d.db.QueryRow(ctx, "SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE community_id = ? AND seq > ? LIMIT ?) pending",
			b.community, b.slowest, maxLagCount-total).Scan(&n); err != nil {
			return 0, fmt.Errorf("read event delivery lag of %s: %w", b.community, err)
		}
		if total += n; total >= maxLagCount {
			break
		}
	}
	return total, nil
}
