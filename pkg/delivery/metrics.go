package delivery

import "github.com/prometheus/client_golang/prometheus"

var (
	droppedDesc = prometheus.NewDesc("errnowatch_spool_dropped_total",
		"Alerts the agent dropped before the collector had them, by reason: full (spool bound hit), "+
			"unwritable (disk refused writes past the in-memory bound), invalid, damaged (on disk).",
		[]string{"reason"}, nil)
	heldDesc = prometheus.NewDesc("errnowatch_spool_held_records",
		"Alerts held in memory because the disk refused the spool's last append.", nil, nil)
	heldBytesDesc = prometheus.NewDesc("errnowatch_spool_held_bytes",
		"Encoded bytes of the alerts held in memory.", nil, nil)
	appendErrorsDesc = prometheus.NewDesc("errnowatch_spool_append_errors_total",
		"Spool appends that failed to write every alert (the rest are held in memory and retried).", nil, nil)
)

// Describe implements prometheus.Collector for the spool's loss counters;
// the caller registers the spool.
func (s *Spool) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{droppedDesc, heldDesc, heldBytesDesc, appendErrorsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (s *Spool) Collect(ch chan<- prometheus.Metric) {
	st := s.Stats()
	for why, name := range dropReasons {
		ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue,
			float64(*st.Drops.field(dropReason(why))), name)
	}
	ch <- prometheus.MustNewConstMetric(heldDesc, prometheus.GaugeValue, float64(st.Held))
	ch <- prometheus.MustNewConstMetric(heldBytesDesc, prometheus.GaugeValue, float64(st.HeldBytes))
	ch <- prometheus.MustNewConstMetric(appendErrorsDesc, prometheus.CounterValue, float64(st.AppendErrors))
}
