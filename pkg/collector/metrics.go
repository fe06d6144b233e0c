package collector

import "github.com/prometheus/client_golang/prometheus"

// Reasons a call, alert or stream is refused: the values of the reason
// label of errnowatch_collector_refused_total.
const (
	refusedPeerRate      = "peer_rate"       // a remote address over its call rate, before authentication
	refusedUnauth        = "unauthenticated" // no, malformed, invalid or expired credential
	refusedNotAgent      = "not_agent"       // publish by an identity that is not a listed agent
	refusedWrongNode     = "wrong_node"      // an agent publishing for another node
	refusedForeign       = "foreign_alert"   // an update of an alert another node raised
	refusedTooLarge      = "alert_too_large" // an alert over the encoded size or a field over its length
	refusedInvalid       = "invalid_alert"   // an alert that fails validation
	refusedBatch         = "batch_too_large" // more alerts in a batch than allowed
	refusedPublishRate   = "publish_rate"    // an identity publishing faster than its budget
	refusedDenied        = "permission_denied"
	refusedQueryRate     = "query_rate"      // an identity querying faster than its budget
	refusedStreams       = "streams"         // over the global or per-identity stream cap
	refusedReauth        = "reauthorization" // a stream whose caller no longer passes
	refusedSendTimeout   = "send_timeout"    // a stream subscriber that stopped reading
	refusedQueryDeadline = "query_deadline"  // a store query over its deadline
)

// metrics are the collector's counters of what it refused.
type metrics struct {
	refused *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "errnowatch_collector_refused_total",
			Help: "Calls, alerts and streams the collector refused or ended, by reason.",
		}, []string{"reason"}),
	}
	for _, r := range []string{refusedPeerRate, refusedUnauth, refusedNotAgent, refusedWrongNode, refusedForeign,
		refusedTooLarge, refusedInvalid, refusedBatch, refusedPublishRate, refusedDenied, refusedQueryRate,
		refusedStreams, refusedReauth, refusedSendTimeout, refusedQueryDeadline} {
		m.refused.WithLabelValues(r) // export zeros, so a dashboard sees the series before the first refusal
	}
	if reg != nil {
		reg.MustRegister(m.refused)
	}
	return m
}

func (m *metrics) refuse(reason string, n int) {
	m.refused.WithLabelValues(reason).Add(float64(n))
}
