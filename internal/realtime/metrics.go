package realtime

import "github.com/prometheus/client_golang/prometheus"

// Metrics returns the live stream's Prometheus collector. It reads the
// counters the hub keeps anyway when scraped, so it costs the stream
// nothing between scrapes.
func (h *Hub) Metrics() prometheus.Collector { return hubMetrics{h} }

var (
	descConnections = prometheus.NewDesc("rally_realtime_connections",
		"Open live-stream WebSocket connections on this node.", nil, nil)
	descOpened = prometheus.NewDesc("rally_realtime_connections_opened_total",
		"Live-stream WebSocket connections accepted by this node.", nil, nil)
	descDropped = prometheus.NewDesc("rally_realtime_slow_clients_dropped_total",
		"Live-stream clients closed with 1013 (try again later) because their send buffer filled up.", nil, nil)
	descFrames = prometheus.NewDesc("rally_realtime_frames_sent_total",
		"Frames written to live-stream clients, by frame type.", []string{"type"}, nil)
	descSubscriptions = prometheus.NewDesc("rally_realtime_subscriptions",
		"Channel subscriptions of open live-stream connections (a community key following every channel counts once).", nil, nil)
)

// hubMetrics collects a Hub's metrics.
type hubMetrics struct{ h *Hub }

// Describe sends the descriptors of every metric Collect sends.
func (m hubMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnections, descOpened, descDropped, descFrames, descSubscriptions} {
		ch <- d
	}
}

// Collect sends the hub's current values.
func (m hubMetrics) Collect(ch chan<- prometheus.Metric) {
	h := m.h
	ch <- prometheus.MustNewConstMetric(descConnections, prometheus.GaugeValue, float64(h.live.Load()))
	ch <- prometheus.MustNewConstMetric(descOpened, prometheus.CounterValue, float64(h.opened.Load()))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(h.dropped.Load()))
	ch <- prometheus.MustNewConstMetric(descSubscriptions, prometheus.GaugeValue, float64(h.subscriptions.Load()))
	// Closed connections' counts and open ones' are summed under h.mu, so
	// a connection closing meanwhile is counted once.
	h.mu.Lock()
	sent := h.sentClosed
	for c := range h.conns {
		for k := range c.sent {
			sent[k] += c.sent[k].Load()
		}
	}
	h.mu.Unlock()
	for k, n := range sent {
		ch <- prometheus.MustNewConstMetric(descFrames, prometheus.CounterValue, float64(n), frameKindNames[k])
	}
}
