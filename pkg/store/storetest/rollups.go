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

// QueryFunc runs query on a store's own database and returns its rows,
// each as its columns printed with fmt.Sprint and joined by "|".
type QueryFunc func(t testing.TB, query string) []string

// RunRollupTables checks that every rollup of store.RollupTables holds
// exactly what grouping the alerts gives (each row's count, failure sum and
// latest LastSeen) after inserts, new revisions that move an alert to
// another hour or day, and each kind of retention; and that Rollups answers
// from whichever rollups it reads what the alerts say.
func RunRollupTables(t *testing.T, open func(t *testing.T) (UIStore, QueryFunc)) {
	ctx := context.Background()
	s, query := open(t)
	// Three days and a half of alerts, one every 8 minutes, from 07:00.
	base := time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC)
	fresh := Alerts(DefaultShape, base, 0, 640)
	for i := range fresh {
		fresh[i].FirstSeen = base.Add(time.Duration(i) * 8 * time.Minute)
		fresh[i].LastSeen = fresh[i].FirstSeen.Add(time.Duration(i%7) * time.Second)
	}
	if _, err := s.Insert(ctx, MustBatch(t, fresh)); err != nil {
		t.Fatal(err)
	}
	check := func(step string) {
		t.Helper()
		RollupTablesMatchAlerts(t, query, step)
		rollupQueriesMatchAlerts(t, s, query, base, step)
	}
	check("after inserts")

	// New revisions: later in the same hour, hours later, a day and more
	// later or earlier (a LastSeen that went back); some twice in a batch,
	// and a few sent again (duplicates).
	revised := make([]alert.Alert, 0, 300)
	for i := 0; i < len(fresh); i += 2 {
		d := []time.Duration{time.Minute, 5 * time.Hour, 26 * time.Hour, -30 * time.Hour, -20 * time.Minute}[i/2%5]
		r := Update(fresh[i], d)
		if r.LastSeen.Before(r.FirstSeen) {
			r.FirstSeen = r.LastSeen
		}
		revised = append(revised, r)
	}
	again := make([]alert.Alert, 0, 40)
	for _, r := range revised[:40] {
		r = Update(r, -90*time.Minute)
		if r.LastSeen.Before(r.FirstSeen) {
			r.FirstSeen = r.LastSeen
		}
		again = append(again, r)
	}
	res, err := s.Insert(ctx, MustBatch(t, slices.Concat(revised, again, revised[:5])))
	if err != nil {
		t.Fatal(err)
	}
	if want := len(revised) + len(again); len(res.New) != want || res.Duplicates != 5 {
		t.Fatalf("insert of revisions: %d new, %d duplicates; want %d, 5", len(res.New), res.Duplicates, want)
	}
	check("after new revisions")

	for _, ret := range []store.Retention{
		{MaxAge: time.Since(base.Add(17 * time.Hour))},
		{MaxAlertsPerNode: 110},
		{MaxAlerts: 250},
	} {
		if _, err := s.Retain(ctx, ret); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("after retention %+v", ret))
	}
}

// RollupTablesMatchAlerts compares every rollup with a GROUP BY over the
// alerts.
func RollupTablesMatchAlerts(t *testing.T, query QueryFunc, step string) {
	t.Helper()
	for _, r := range store.RollupTables {
		sel := make([]string, 0, 6)
		for _, c := range store.KeyCols[:5] {
			switch {
			case r.Keeps(c):
				sel = append(sel, c)
			case c == "severity":
				sel = append(sel, "0")
			default:
				sel = append(sel, "''")
			}
		}
		sel = append(sel, fmt.Sprintf("last_seen / %d", r.Hours*int64(store.RollupBucket)))
		got := query(t, `SELECT namespace, pod, node, rule_id, severity, bucket, alerts, failures, max_last_seen FROM `+r.Name)
		want := query(t, `SELECT `+strings.Join(sel, ", ")+`, COUNT(*), CAST(SUM(total) AS BIGINT), MAX(last_seen)
			FROM alerts GROUP BY 1, 2, 3, 4, 5, 6`)
		if len(want) == 0 {
			t.Fatalf("%s: no alerts left to check %s against", step, r.Name)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: %s holds %d rows, grouping the alerts gives %d", step, r.Name, len(got), len(want))
			for _, w := range want {
				if _, ok := slices.BinarySearch(got, w); !ok {
					t.Errorf("%s: %s lacks %s", step, r.Name, w)
				}
			}
			for _, g := range got {
				if _, ok := slices.BinarySearch(want, g); !ok {
					t.Errorf("%s: %s has %s", step, r.Name, g)
				}
			}
		}
	}
}

// rollupQueriesMatchAlerts runs queries that read each rollup (and the
// split of a range into days and hours) and compares their answers with
// the stored alerts'.
func rollupQueriesMatchAlerts(t *testing.T, s UIStore, query QueryFunc, base time.Time, step string) {
	t.Helper()
	var all []Counted
	for _, row := range query(t, `SELECT namespace, pod, node, rule_id, severity, last_seen, total FROM alerts`) {
		var (
			c         Counted
			sev       int
			last, tot int64
		)
		f := strings.Split(row, "|")
		if len(f) != 7 {
			t.Fatalf("alert row %q", row)
		}
		c.Namespace, c.Pod, c.Node, c.RuleID = f[0], f[1], f[2], f[3]
		if _, err := fmt.Sscan(f[4]+" "+f[5]+" "+f[6], &sev, &last, &tot); err != nil {
			t.Fatalf("alert row %q: %v", row, err)
		}
		c.Severity, c.LastSeen, c.Total = alert.Severity(sev), time.Unix(0, last).UTC(), uint64(tot)
		all = append(all, c)
	}
	mid1, mid3 := base.Add(9*time.Hour+30*time.Minute), base.Add(2*24*time.Hour+5*time.Hour)
	ranges := [][2]time.Time{{}, {mid1, mid3}, {mid1, {}}, {{}, mid3}, {base.Add(20 * time.Hour), base.Add(22 * time.Hour)}}
	queries := []store.RollupQuery{
		{By: store.ByRule | store.BySeverity},
		{By: store.ByRule | store.ByNamespace | store.BySeverity, MinSeverity: alert.SeverityMedium},
		{By: store.ByNamespace, Limit: 3},
		{By: store.ByNode | store.ByRule, Namespaces: []string{"ns-1", "", "ns-4"}},
		{By: store.ByNode, RulePrefix: "rule-"},
		{By: store.ByNamespace | store.ByPod, Limit: 7},
		{By: store.ByPod, Node: "node-2"},
		{By: store.ByBucket | store.BySeverity, Namespaces: []string{"ns-2"}},
		{By: store.ByBucket | store.ByRule, RuleID: "rule-3"},
		{By: store.ByBucket | store.ByRule | store.BySeverity, Step: 5},
		// Steps of whole days: the daily rollups between the range's
		// partial first and last days, which the hourly ones answer.
		{By: store.ByBucket | store.ByRule | store.BySeverity, Step: 24},
		{By: store.ByBucket | store.BySeverity, Namespaces: []string{"ns-1", "ns-2"}, Step: 48},
		{By: store.ByRule, Namespaces: []string{"ns-3"}, Pod: "pod-3-4"},
		{},
	}
	for _, q := range queries {
		for _, r := range ranges {
			q.From, q.To = r[0], r[1]
			got, err := s.Rollups(context.Background(), q)
			if err != nil {
				t.Fatalf("%s: query %+v: %v", step, q, err)
			}
			hourly, daily := store.RollupTablesFor(q)
			if err := sameRollups(got, WantRollups(all, q)); err != nil {
				t.Errorf("%s: query %+v (reading %s and %q): %v", step, q, hourly.Name, daily.Name, err)
			}
		}
	}
}

// Rows is what database/sql's and pgx's result sets offer PrintRows.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// PrintRows reads every row of a result with cols columns the way
// QueryFunc returns them.
func PrintRows(rows Rows, cols int) ([]string, error) {
	var out []string
	for rows.Next() {
		vals := make([]any, cols)
		ptrs := make([]any, cols)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		f := make([]string, cols)
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			f[i] = fmt.Sprint(v)
		}
		out = append(out, strings.Join(f, "|"))
	}
	return out, rows.Err()
}
