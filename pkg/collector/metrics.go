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
	refusedNodeStatus    = "node_status"     // an agent status for another node, not a node name, or past the store's bound
)

// metrics are the collector's counters of what it stored and refused.
type metrics struct {
	refused *prometheus.CounterVec
	alerts  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "errnowatch_collector_refused_total",
			Help: "Calls, alerts and streams the collector refused or ended, by reason.",
		}, []string{"reason"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "errnowatch_collector_alerts_total",
			Help: "Alert revisions agents published, by result: stored, or duplicate (the store had it: a resend after a lost acknowledgement).",
		}, []string{"result"}),
	}
	m.alerts.WithLabelValues("stored")
	m.alerts.WithLabelValues("duplicate")
	for _, r := range []string{refusedPeerRate, refusedUnauth, refusedNotAgent, refusedWrongNode, refusedForeign,
		refusedTooLarge, refusedInvalid, refusedBatch, refusedNodeStatus, refusedPublishRate, refusedDenied, refusedQueryRate,
		refusedStreams, refusedReauth, refusedSendTimeout, refusedQueryDeadline} {
		m.refused.WithLabelValues(r) // export zeros, so a dashboard sees the series before the first refusal
	}
	if reg != nil {
		reg.MustRegister(m.refused, m.alerts)
	}
	return m
}

func (m *metrics) refuse(reason string, n int) {
	m.refused.WithLabelValues(reason).Add(float64(n))
}

// stored counts the result of one stored batch.
func (m *metrics) stored(stored, duplicates int) {
	m.alerts.WithLabelValues("stored").Add(float64(stored))
	m.alerts.WithLabelValues("duplicate").Add(float64(duplicates))
}
