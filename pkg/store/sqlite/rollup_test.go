package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/store"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

// rollupsMatchAlerts fails unless alert_rollups holds exactly what grouping
// the alerts gives: every row, count, failure sum and latest LastSeen.
func rollupsMatchAlerts(t *testing.T, db *sql.DB) {
	t.Helper()
	read := func(q string) map[string]string {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var ns, pod, node, rule string
			var sev, bucket, n, f, l int64
			if err := rows.Scan(&ns, &pod, &node, &rule, &sev, &bucket, &n, &f, &l); err != nil {
				t.Fatal(err)
			}
			out[fmt.Sprint(ns, "/", pod, "/", node, "/", rule, "/", sev, "/", bucket)] = fmt.Sprint(n, " ", f, " ", l)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	got := read(`SELECT namespace, pod, node, rule_id, severity, bucket, alerts, failures, max_last_seen FROM alert_rollups`)
	want := read(`SELECT namespace, pod, node, rule_id, severity, last_seen / 3600000000000, COUNT(*), SUM(total), MAX(last_seen)
		FROM alerts GROUP BY 1, 2, 3, 4, 5, 6`)
	if len(got) != len(want) {
		t.Errorf("%d rollup rows, want %d", len(got), len(want))
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("rollup %s = %q, want %q", k, got[k], w)
		}
	}
}

// A database that schema version 2 wrote (rollups kept by triggers) keeps
// exact rollups after migration 3 hands them to the Go code: inserts,
// revisions that move an alert to another hour, and each kind of
// retention.
func TestRollupsStayExactAcrossMigration3(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "alerts.db")
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

	// Schema version 2, with its triggers, and alerts written through them.
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for v, m := range migrations[:2] {
		if _, err := db.Exec(m); err != nil {
			t.Fatalf("migration %d: %v", v+1, err)
		}
	}
	if _, err := db.Exec(`PRAGMA user_version = 2`); err != nil {
		t.Fatal(err)
	}
	for i, a := range storetest.Alerts(storetest.DefaultShape, base, 0, 300) {
		if _, err := db.Exec(`INSERT INTO alerts (`+upsertCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, x'')`,
			i+1, a.ID, a.Revision, a.RuleID, int(a.Severity), a.Namespace, a.Pod, a.Container, a.Node,
			a.Workload.Kind, a.Workload.Name, a.FirstSeen.UnixNano(), a.LastSeen.UnixNano(), int64(a.Total), base.UnixNano()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`UPDATE store_meta SET value = 300 WHERE key = 'last_seq'`); err != nil {
		t.Fatal(err)
	}
	rollupsMatchAlerts(t, db)
	db.Close()

	s := open(t, path)
	defer s.Close()
	var triggers int
	if err := s.wdb.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger'`).Scan(&triggers); err != nil || triggers != 0 {
		t.Fatalf("%d triggers after migration 3 (%v), want none", triggers, err)
	}
	rollupsMatchAlerts(t, s.wdb)
	storetest.RollupTablesMatchAlerts(t, queryFunc(s), "after migration 7 filled the derived rollups")

	// New alerts, and new revisions of stored ones: some later in the same
	// hour, some hours later, some earlier (a revision's LastSeen that went
	// back), twice in one batch for a few.
	fresh := storetest.Alerts(storetest.DefaultShape, base, 300, 200)
	revised := storetest.Alerts(storetest.DefaultShape, base, 0, 150)
	for i := range revised {
		revised[i].Revision = 2
		revised[i].Total += uint64(i)
		switch i % 3 {
		case 0:
			revised[i].LastSeen = revised[i].LastSeen.Add(time.Minute)
		case 1:
			revised[i].LastSeen = revised[i].LastSeen.Add(5 * time.Hour)
		case 2:
			revised[i].LastSeen = revised[i].LastSeen.Add(-2 * time.Hour)
			revised[i].FirstSeen = revised[i].LastSeen.Add(-time.Minute)
		}
	}
	again := append([]alert.Alert(nil), revised[:20]...)
	for i := range again {
		again[i].Revision = 3
		again[i].Total++
		again[i].LastSeen = again[i].LastSeen.Add(-30 * time.Minute)
		if again[i].LastSeen.Before(again[i].FirstSeen) {
			again[i].FirstSeen = again[i].LastSeen
		}
	}
	batch := append(append(append(fresh, revised...), again...), revised[:5]...) // the last five are duplicates
	r, err := s.Insert(ctx, storetest.MustBatch(t, batch))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.New) != 200+150+20 || r.Duplicates != 5 {
		t.Fatalf("insert: %d new, %d duplicates; want 370, 5", len(r.New), r.Duplicates)
	}
	rollupsMatchAlerts(t, s.wdb)

	for _, ret := range []store.Retention{
		{MaxAge: time.Since(base.Add(3 * time.Hour))},
		{MaxAlertsPerNode: 60},
		{MaxAlerts: 100},
	} {
		if _, err := s.Retain(ctx, ret); err != nil {
			t.Fatal(err)
		}
		rollupsMatchAlerts(t, s.wdb)
		storetest.RollupTablesMatchAlerts(t, queryFunc(s), fmt.Sprintf("after retention %+v", ret))
	}
}
