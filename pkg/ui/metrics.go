package ui

import "github.com/prometheus/client_golang/prometheus"

// Reasons a request is refused, the reason label of
// errnowatch_ui_refused_total.
const (
	refusedUnauth   = "unauthenticated" // no, unknown or expired credential
	refusedDenied   = "denied"          // RBAC does not allow the namespace
	refusedCSRF     = "csrf"            // a state-changing request without a valid token or from another site
	refusedBadInput = "bad_input"       // malformed or oversized parameters or body
	refusedPeerRate = "peer_rate"       // too many requests from one address
	refusedStreams  = "streams"         // too many live streams (per identity or in all)
	refusedNotFound = "not_found"       // an alert that does not exist or may not be seen
	refusedTooBroad = "too_broad"       // a query over more namespaces than one page may read
)

type metrics struct {
	refused *prometheus.CounterVec
	streams prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "errnowatch_ui_refused_total",
			Help: "Web UI requests refused, by reason (unauthenticated, denied, csrf, bad_input, peer_rate, streams, not_found, too_broad).",
		}, []string{"reason"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "errnowatch_ui_live_streams",
			Help: "Open live alert streams (Server-Sent Events) of the web UI.",
		}),
	}
	for _, r := range []string{refusedUnauth, refusedDenied, refusedCSRF, refusedBadInput, refusedPeerRate, refusedStreams, refusedNotFound, refusedTooBroad} {
		m.refused.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.refused, m.streams)
	}
	return m
}

func (m *metrics) refuse(reason string) { m.refused.WithLabelValues(reason).Inc() }
