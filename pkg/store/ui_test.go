package store

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
)

// A query reads the coarsest rollup that keeps what it groups and filters
// by: the cluster rollups unless it names a namespace, pod or node, the
// rules rollups unless it names a pod or node, the node rollups
// unless it names a pod, one pod's rows from alert_rollups; whole days from
// the daily one unless it groups by hour.
func TestRollupTablesFor(t *testing.T) {
	from := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	to := from.Add(3 * 24 * time.Hour)
	for _, c := range []struct {
		q       RollupQuery
		reads   []string // in the statement's order
		noIndex bool
	}{
		{RollupQuery{By: ByBucket | ByRule | BySeverity, From: from}, []string{"alert_rollups_cluster"}, false},
		{RollupQuery{By: ByBucket | BySeverity, Namespaces: []string{"a", "b"}, From: from}, []string{"alert_rollups_rules"}, false},
		{RollupQuery{By: ByRule | ByNamespace | BySeverity, From: from, To: to, MinSeverity: alert.SeverityHigh},
			[]string{"alert_rollups_rules_daily", "alert_rollups_rules", "alert_rollups_rules"}, false},
		{RollupQuery{By: ByNamespace, RulePrefix: "errnowatch."}, []string{"alert_rollups_rules_daily"}, false},
		{RollupQuery{By: ByRule, Namespaces: []string{"a"}, From: from}, []string{"alert_rollups_rules_daily", "alert_rollups_rules"}, false},
		{RollupQuery{By: ByRule, To: to}, []string{"alert_rollups_cluster_daily", "alert_rollups_cluster"}, false},
		{RollupQuery{By: ByNode | ByRule, From: from, To: from.Add(5 * time.Hour)}, []string{"alert_rollups_nodes"}, false},
		{RollupQuery{By: ByRule, Node: "n", From: from, To: to}, []string{"alert_rollups_nodes_daily", "alert_rollups_nodes", "alert_rollups_nodes"}, false},
		{RollupQuery{By: ByNamespace | ByPod, From: from, To: to}, []string{"alert_rollups_pods_daily", "alert_rollups_pods", "alert_rollups_pods"}, false},
		{RollupQuery{By: ByBucket, Pod: "p", Namespaces: []string{"a"}, From: from, To: to}, []string{"alert_rollups"}, false},
		{RollupQuery{By: ByRule, Pod: "p", From: from, To: from.Add(30 * 24 * time.Hour)}, []string{"alert_rollups"}, true},
	} {
		s, _ := RollupSQL(c.q, func(int) string { return "?" })
		var got []string
		for _, m := range regexp.MustCompile(`FROM (alert_rollups\w*)`).FindAllStringSubmatch(s, -1) {
			got = append(got, m[1])
		}
		if strings.Join(got, " ") != strings.Join(c.reads, " ") {
			t.Errorf("%+v reads %v, want %v:\n%s", c.q, got, c.reads, s)
		}
		if strings.Contains(s, "+bucket") != c.noIndex {
			t.Errorf("%+v: bucket index left out %v, want %v:\n%s", c.q, !c.noIndex, c.noIndex, s)
		}
	}
}
