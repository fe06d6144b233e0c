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

// RollupKey is one row of the summary rollups: the alerts of one namespace,
// pod, node, rule and severity whose LastSeen falls in one bucket.
type RollupKey struct {
	Namespace, Pod, Node, RuleID string
	Severity                     int
	Bucket                       int64 // LastSeen.UnixNano() / RollupBucket
}

// RollupBucketOf is the bucket of a LastSeen in unix ns; it truncates like
// the stores' SQL integer division.
func RollupBucketOf(lastSeenNs int64) int64 { return lastSeenNs / int64(RollupBucket) }

// RollupDelta is what one transaction changes in one rollup row: alerts
// and failures added (negative when rows went), the largest LastSeen of
// the rows added, and of the rows removed.
type RollupDelta struct {
	Alerts, Failures     int64
	Added, Removed       bool
	MaxAdded, MaxRemoved int64 // unix ns; valid when Added, Removed
}

// NeedsMaxReread tells whether the row's max_last_seen must be read again
// from the alerts after the delta: only when a removed row may have held
// the maximum and no added row is at least as late. (A stored maximum above
// MaxRemoved belongs to a row still there; one at or below it is replaced
// by MaxAdded when MaxAdded >= MaxRemoved, since every remaining row is at
// most the old maximum.)
func (d *RollupDelta) NeedsMaxReread() bool {
	return d.Removed && (!d.Added || d.MaxAdded < d.MaxRemoved)
}

// RollupDeltas gathers a transaction's changes to the rollups, so that a
// store applies one change per rollup row instead of one per alert row.
type RollupDeltas map[RollupKey]*RollupDelta

func (m RollupDeltas) at(k RollupKey) *RollupDelta {
	d := m[k]
	if d == nil {
		d = &RollupDelta{}
		m[k] = d
	}
	return d
}

// Add counts a row stored.
func (m RollupDeltas) Add(k RollupKey, lastSeen, total int64) {
	d := m.at(k)
	d.Alerts++
	d.Failures += total
	if !d.Added || lastSeen > d.MaxAdded {
		d.MaxAdded = lastSeen
	}
	d.Added = true
}

// Remove counts a row deleted.
func (m RollupDeltas) Remove(k RollupKey, lastSeen, total int64) {
	d := m.at(k)
	d.Alerts--
	d.Failures -= total
	if !d.Removed || lastSeen > d.MaxRemoved {
		d.MaxRemoved = lastSeen
	}
	d.Removed = true
}

// RollupTable is one of the summary rollups both stores keep, each exact
// in the transaction that writes the alerts. Every rollup has the columns
// of alert_rollups (namespace, pod, node, rule_id, severity, bucket,
// alerts, failures, max_last_seen), so one query text reads any of them;
// a key a table does not keep holds ” (or severity 0) in every row.
type RollupTable struct {
	Name string
	// Keys are the columns it keeps apart (of ByNamespace, ByPod, ByNode,
	// ByRule, BySeverity).
	Keys RollupKeys
	// Hours is the width of its bucket: 1 (RollupBucket) or 24, a UTC day.
	Hours int64
	// Source is the finer rollup whose rows add up to this one's, which the
	// store keeps first and reads a max_last_seen from again; "" for
	// alert_rollups, which sums the alerts.
	Source string
	// PrimaryKey orders its rows. The hourly derived rollups lead with the
	// bucket, so a range of hours is one stretch of the table; the daily
	// ones with the keys their pages group by, so that summing a month of
	// days needs no sort (a daily rollup is small enough to read whole).
	PrimaryKey []string
}

// KeyCols are the key columns of every rollup, in the order of RollupKey
// and of the stores' upserts.
var KeyCols = []string{"namespace", "pod", "node", "rule_id", "severity", "bucket"}

const allKeys = ByNamespace | ByPod | ByNode | ByRule | BySeverity

// The rollups, finest first: each table's Source comes before it, which is
// the order the stores update them in. Migration 7 of both stores created
// the derived ones from this list: changing it needs a new migration.
//
// alert_rollups (namespace first, and an index on the bucket) answers
// per-pod questions, Summarize's included. The others serve the web UI's
// cluster-wide pages: per pod by time (_pods), without the pod (_nodes),
// without pod and node (_rules), and without the namespace too (_cluster,
// for a reader of every namespace), each by hour and by day, so that a
// chart reads hours of (rule, severity), a node list (node, rule) and a
// ranking of a month whole days plus at most a day of hours at its ends
// (RollupSQL).
var RollupTables = []RollupTable{
	{Name: "alert_rollups", Keys: allKeys, Hours: 1,
		PrimaryKey: []string{"namespace", "pod", "node", "rule_id", "severity", "bucket"}},
	{Name: "alert_rollups_pods", Keys: allKeys, Hours: 1, Source: "alert_rollups",
		PrimaryKey: []string{"bucket", "namespace", "pod", "node", "rule_id", "severity"}},
	{Name: "alert_rollups_pods_daily", Keys: allKeys, Hours: 24, Source: "alert_rollups_pods",
		PrimaryKey: []string{"namespace", "pod", "node", "rule_id", "severity", "bucket"}},
	{Name: "alert_rollups_nodes", Keys: ByNamespace | ByNode | ByRule | BySeverity, Hours: 1, Source: "alert_rollups_pods",
		PrimaryKey: []string{"bucket", "node", "rule_id", "severity", "namespace", "pod"}},
	{Name: "alert_rollups_nodes_daily", Keys: ByNamespace | ByNode | ByRule | BySeverity, Hours: 24, Source: "alert_rollups_nodes",
		PrimaryKey: []string{"node", "rule_id", "severity", "namespace", "pod", "bucket"}},
	{Name: "alert_rollups_rules", Keys: ByNamespace | ByRule | BySeverity, Hours: 1, Source: "alert_rollups_nodes",
		PrimaryKey: []string{"bucket", "rule_id", "severity", "namespace", "pod", "node"}},
	{Name: "alert_rollups_rules_daily", Keys: ByNamespace | ByRule | BySeverity, Hours: 24, Source: "alert_rollups_rules",
		PrimaryKey: []string{"namespace", "rule_id", "severity", "pod", "node", "bucket"}},
	{Name: "alert_rollups_cluster", Keys: ByRule | BySeverity, Hours: 1, Source: "alert_rollups_rules",
		PrimaryKey: []string{"bucket", "rule_id", "severity", "namespace", "pod", "node"}},
	{Name: "alert_rollups_cluster_daily", Keys: ByRule | BySeverity, Hours: 24, Source: "alert_rollups_cluster",
		PrimaryKey: []string{"rule_id", "severity", "namespace", "pod", "node", "bucket"}},
}

// DerivedRollups are the rollups after alert_rollups, kept from its deltas.
var DerivedRollups = RollupTables[1:]

// RollupTableNamed returns the rollup called name.
func RollupTableNamed(name string) (RollupTable, bool) {
	for _, t := range RollupTables {
		if t.Name == name {
			return t, true
		}
	}
	return RollupTable{}, false
}

// Project is the key of t's row that counts the alerts of alert_rollups'
// row k: the keys t does not keep zeroed, the bucket widened (truncating,
// like the stores' SQL division of last_seen).
func (t RollupTable) Project(k RollupKey) RollupKey {
	if t.Keys&ByNamespace == 0 {
		k.Namespace = ""
	}
	if t.Keys&ByPod == 0 {
		k.Pod = ""
	}
	if t.Keys&ByNode == 0 {
		k.Node = ""
	}
	if t.Keys&ByRule == 0 {
		k.RuleID = ""
	}
	if t.Keys&BySeverity == 0 {
		k.Severity = 0
	}
	k.Bucket /= t.Hours
	return k
}

// Keeps reports whether t keeps the column col (one of KeyCols but
// bucket) apart.
func (t RollupTable) Keeps(col string) bool {
	return t.Keys&colKey[col] != 0
}

var colKey = map[string]RollupKeys{"namespace": ByNamespace, "pod": ByPod, "node": ByNode, "rule_id": ByRule, "severity": BySeverity}

// Project gathers m's deltas into the rows of t: what one transaction
// changes in t, from what it changes in alert_rollups.
func (m RollupDeltas) Project(t RollupTable) RollupDeltas {
	out := make(RollupDeltas, len(m))
	for k, d := range m {
		p := out.at(t.Project(k))
		p.Alerts += d.Alerts
		p.Failures += d.Failures
		if d.Added && (!p.Added || d.MaxAdded > p.MaxAdded) {
			p.MaxAdded, p.Added = d.MaxAdded, true
		}
		if d.Removed && (!p.Removed || d.MaxRemoved > p.MaxRemoved) {
			p.MaxRemoved, p.Removed = d.MaxRemoved, true
		}
	}
	return out
}
