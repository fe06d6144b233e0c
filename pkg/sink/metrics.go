package sink

import "github.com/prometheus/client_golang/prometheus"

// Reasons an alert is dead-lettered: the values of the reason label of
// errnowatch_sink_dead_letters_total.
const (
	deadRejected = "rejected"  // the destination refused it for good (4xx, OTLP partial success)
	deadTooLarge = "too_large" // over maxMessageBytes even cut down
	deadAttempts = "attempts"  // retry.maxAttempts failed attempts
)

// Metrics are the sinks' Prometheus metrics, labelled by sink name.
type Metrics struct {
	lag         *prometheus.GaugeVec
	lagSeconds  *prometheus.GaugeVec
	delivered   *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	retries     *prometheus.CounterVec
	skipped     *prometheus.CounterVec
	leader      *prometheus.GaugeVec
}

// NewMetrics registers the sink metrics with reg (nil registers nothing).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "errnowatch_sink_lag_sequences",
			Help: "Store sequences between the last stored alert revision and the sink's acknowledged cursor (an upper bound of revisions still to deliver), as seen by the replica holding the sink's lease.",
		}, []string{"sink"}),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "errnowatch_sink_lag_seconds",
			Help: "Age of the oldest alert revision the sink has read but not delivered yet; 0 when caught up.",
		}, []string{"sink"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "errnowatch_sink_delivered_total",
			Help: "Alert revisions the sink is done with: acknowledged by the destination, or (chat sinks) held back by the revision policy, which skipped_total also counts.",
		}, []string{"sink"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "errnowatch_sink_dead_letters_total",
			Help: "Alert revisions the sink gave up on, by reason (rejected, too_large, attempts); each is logged with its alert ID.",
		}, []string{"sink", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "errnowatch_sink_retries_total",
			Help: "Failed delivery attempts that the sink retries after a backoff.",
		}, []string{"sink"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "errnowatch_sink_skipped_total",
			Help: "Alert revisions the sink read and did not send: its namespace or rule filter, or a chat sink's revision policy.",
		}, []string{"sink"}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "errnowatch_sink_lease_held",
			Help: "1 while this collector replica holds the sink's lease and delivers it, else 0.",
		}, []string{"sink"}),
	}
	if reg != nil {
		reg.MustRegister(m.lag, m.lagSeconds, m.delivered, m.deadLetters, m.retries, m.skipped, m.leader)
	}
	return m
}

// init exports zeros for a sink, so dashboards and alert rules see its
// series before the first event.
func (m *Metrics) init(sink string) {
	m.lag.WithLabelValues(sink)
	m.lagSeconds.WithLabelValues(sink)
	m.delivered.WithLabelValues(sink)
	m.retries.WithLabelValues(sink)
	m.skipped.WithLabelValues(sink)
	m.leader.WithLabelValues(sink)
	for _, r := range []string{deadRejected, deadTooLarge, deadAttempts} {
		m.deadLetters.WithLabelValues(sink, r)
	}
}
