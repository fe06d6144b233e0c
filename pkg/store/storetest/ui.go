package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/store"
)

// UIStore is a store the web UI can read.
type UIStore interface {
	store.Store
	store.UIReader
}

// RunUI checks a store's store.UIReader against the same counts computed
// from the alerts themselves: every grouping, every filter, the hour
// range, the limit, and Get.
func RunUI(t *testing.T, open func(t *testing.T) UIStore) {
	ctx := context.Background()
	s := open(t)
	base := time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)
	var all []alert.Alert
	// Three hours of alerts, one every 20s, and a sensor rule.
	for h := range 3 {
		as := Alerts(DefaultShape, base.Add(time.Duration(h)*time.Hour), h*1000, 180)
		for i := range as {
			as[i].LastSeen = as[i].FirstSeen.Add(time.Duration(i) * 20 * time.Second)
			if i%10 == 0 {
				as[i].RuleID = "errnowatch.sensor.evasion"
			}
		}
		all = append(all, as...)
	}
	if _, err := s.Insert(ctx, MustBatch(t, all)); err != nil {
		t.Fatal(err)
	}
	counted := make([]Counted, len(all))
	for i, a := range all {
		counted[i] = CountedOf(a)
	}
	want := func(q store.RollupQuery) []store.RollupRow { return WantRollups(counted, q) }
	queries := []store.RollupQuery{
		{By: store.ByBucket | store.BySeverity},
		{By: store.ByBucket | store.ByRule, Namespaces: []string{"ns-1", "ns-3"}},
		{By: store.ByNamespace, Limit: 2},
		{By: store.ByNamespace | store.ByPod, Limit: 5, MinSeverity: alert.SeverityHigh},
		{By: store.ByNode, RulePrefix: "errnowatch.sensor."},
		{By: store.ByNode | store.ByRule, Node: "node-2", From: base.Add(time.Hour), To: base.Add(2 * time.Hour)},
		{By: store.ByBucket, Pod: "pod-1-3", RuleID: "rule-4"},
		{By: store.ByRule, Namespaces: []string{}},
		{By: store.ByRule, Namespaces: []string{""}},
		{By: store.ByBucket, From: base.Add(90 * time.Minute)},
		{By: store.ByBucket | store.BySeverity, From: base.Add(-30 * time.Minute), Step: 2},
		{By: store.ByBucket | store.ByRule, Namespaces: []string{"ns-2"}, From: base.Add(time.Hour), To: base.Add(3 * time.Hour), Step: 4},
	}
	for i, q := range queries {
		got, err := s.Rollups(ctx, q)
		if err != nil {
			t.Fatalf("query %d %+v: %v", i, q, err)
		}
		if err := sameRollups(got, want(q)); err != nil {
			t.Fatalf("query %d %+v: %v", i, q, err)
		}
	}
	if _, err := s.Rollups(ctx, store.RollupQuery{Namespaces: make([]string, store.MaxRollupNamespaces+1)}); err == nil {
		t.Fatal("a query naming too many namespaces ran")
	}
	if _, err := s.Rollups(ctx, store.RollupQuery{By: store.ByBucket, From: base, Step: store.MaxRollupStep + 1}); err == nil {
		t.Fatal("a query with a step over a year ran")
	}

	got, ok, err := s.Get(ctx, all[7].ID)
	if err != nil || !ok || got.Alert.ID != all[7].ID || got.Alert.Message != all[7].Message {
		t.Fatalf("Get(%s) = %+v, %v, %v", all[7].ID, got.Alert.ID, ok, err)
	}
	if _, ok, err := s.Get(ctx, "01NOSUCHALERT"); ok || err != nil {
		t.Fatalf("Get of an unknown id = %v, %v", ok, err)
	}
}

func eqIgnoringTime(a, b store.RollupRow) bool {
	a.LastSeen, b.LastSeen = time.Time{}, time.Time{}
	return a == b
}

// Counted is what the rollups count of one stored alert.
type Counted struct {
	Namespace, Pod, Node, RuleID string
	Severity                     alert.Severity
	LastSeen                     time.Time
	Total                        uint64
}

// CountedOf is what the rollups count of a.
func CountedOf(a alert.Alert) Counted {
	return Counted{a.Namespace, a.Pod, a.Node, a.RuleID, a.Severity, a.LastSeen, a.Total}
}

// WantRollups is what a store's Rollups(q) must answer over the alerts
// all, computed from the alerts themselves.
func WantRollups(all []Counted, q store.RollupQuery) []store.RollupRow {
	lo, hi := store.BucketRange(q.From, q.To)
	groups := map[store.RollupRow]*store.RollupRow{}
	for i := range all {
		a := &all[i]
		b := a.LastSeen.UnixNano() / int64(store.RollupBucket)
		switch {
		case q.Namespaces != nil && !slices.Contains(q.Namespaces, a.Namespace),
			q.Pod != "" && a.Pod != q.Pod, q.Node != "" && a.Node != q.Node,
			q.RuleID != "" && a.RuleID != q.RuleID, !strings.HasPrefix(a.RuleID, q.RulePrefix),
			a.Severity < q.MinSeverity, b < lo, b >= hi:
			continue
		}
		var k store.RollupRow
		if q.By&store.ByBucket != 0 {
			k.Bucket = b
			if q.Step > 1 && !q.From.IsZero() {
				o := store.StepOrigin(lo, q.Step)
				k.Bucket = o + (b-o)/q.Step*q.Step
			}
		}
		if q.By&store.ByNamespace != 0 {
			k.Namespace = a.Namespace
		}
		if q.By&store.ByPod != 0 {
			k.Pod = a.Pod
		}
		if q.By&store.ByNode != 0 {
			k.Node = a.Node
		}
		if q.By&store.ByRule != 0 {
			k.RuleID = a.RuleID
		}
		if q.By&store.BySeverity != 0 {
			k.Severity = a.Severity
		}
		g := groups[k]
		if g == nil {
			c := k
			g = &c
			groups[k] = g
		}
		g.Alerts++
		g.Failures += a.Total
		if a.LastSeen.After(g.LastSeen) {
			g.LastSeen = a.LastSeen.UTC()
		}
	}
	var out []store.RollupRow
	for _, g := range groups {
		out = append(out, *g)
	}
	key := func(r store.RollupRow) string {
		return fmt.Sprintf("%020d\x00%s\x00%s\x00%s\x00%s\x00%d", r.Bucket, r.Namespace, r.Pod, r.Node, r.RuleID, r.Severity)
	}
	slices.SortFunc(out, func(a, b store.RollupRow) int { return strings.Compare(key(a), key(b)) })
	if q.Limit > 0 {
		slices.SortStableFunc(out, func(a, b store.RollupRow) int { return int(b.Alerts) - int(a.Alerts) })
		out = out[:min(q.Limit, len(out))]
	}
	return out
}

// sameRollups reports how got differs from want.
func sameRollups(got, want []store.RollupRow) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d rows, want %d:\n got %+v\nwant %+v", len(got), len(want), got, want)
	}
	for j := range got {
		if got[j] != want[j] && !(got[j].LastSeen.Equal(want[j].LastSeen) && eqIgnoringTime(got[j], want[j])) {
			return fmt.Errorf("row %d:\n got %+v\nwant %+v", j, got[j], want[j])
		}
	}
	return nil
}
