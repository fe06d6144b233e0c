package store

import (
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
)

// RollupBucket is the time bucket of the summary rollups: an alert counts in
// the bucket of LastSeen.UnixNano() / RollupBucket. A Since filter reads
// whole buckets from the rollups and only the alerts of the bucket it cuts
// through from the alerts table.
const RollupBucket = time.Hour

// RollupUsable reports whether Summarize(f) can be answered from rollups:
// they are keyed by namespace, pod, node, rule, severity and LastSeen's
// bucket, so filters on other fields read the alerts.
func RollupUsable(f Filter) bool {
	return f.Container == "" && f.WorkloadKind == "" && f.WorkloadName == "" && f.Until.IsZero()
}

// SinceBuckets splits a Since filter for the rollups: whole buckets from
// first on hold only alerts with LastSeen >= since, and the alerts with
// since <= LastSeen < edge (edge = first's start) must be read one by one.
// A zero since gives the smallest bucket and an empty edge range.
func SinceBuckets(since time.Time) (first int64, edge int64) {
	if since.IsZero() {
		return -1 << 62, -1 << 62
	}
	ns := since.UnixNano()
	b := int64(RollupBucket)
	first = ns / b
	if first*b < ns { // round up; Go's division truncates toward zero
		first++
	}
	return first, first * b
}

// SummaryRow is one group of a summary query: alerts of one namespace, pod
// (or host node), rule and severity.
type SummaryRow struct {
	Namespace, Pod, HostNode, RuleID string
	Severity                         alert.Severity
	Alerts, Failures                 uint64
	LastSeen                         int64 // unix ns
}

// AppendSummary folds rows, sorted by namespace, pod, host node, rule and
// severity, into per-pod summaries.
func AppendSummary(out []PodSummary, r SummaryRow) []PodSummary {
	if n := len(out); n == 0 || out[n-1].Namespace != r.Namespace || out[n-1].Pod != r.Pod || out[n-1].Node != r.HostNode {
		out = append(out, PodSummary{Namespace: r.Namespace, Pod: r.Pod, Node: r.HostNode})
	}
	p := &out[len(out)-1]
	p.Alerts += r.Alerts
	p.Failures += r.Failures
	p.MaxSeverity = max(p.MaxSeverity, r.Severity)
	if lt := time.Unix(0, r.LastSeen); lt.After(p.LastSeen) {
		p.LastSeen = lt
	}
	if r.Severity > alert.SeverityUnknown && r.Severity <= alert.SeverityCritical {
		p.BySeverity[r.Severity] += r.Alerts
	}
	if len(p.Rules) == 0 || p.Rules[len(p.Rules)-1].RuleID != r.RuleID {
		p.Rules = append(p.Rules, RuleSummary{RuleID: r.RuleID})
	}
	rs := &p.Rules[len(p.Rules)-1]
	rs.Alerts += r.Alerts
	rs.Failures += r.Failures
	rs.MaxSeverity = max(rs.MaxSeverity, r.Severity)
	return out
}
