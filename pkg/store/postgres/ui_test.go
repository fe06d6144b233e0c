package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/store"

	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

func TestUIReader(t *testing.T) {
	storetest.RunUI(t, func(t *testing.T) storetest.UIStore {
		s := open(t, srv.DB(t))
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestRollupTables(t *testing.T) {
	storetest.RunRollupTables(t, func(t *testing.T) (storetest.UIStore, storetest.QueryFunc) {
		s := open(t, srv.DB(t))
		t.Cleanup(func() { s.Close() })
		return s, queryFunc(s)
	})
}

// queryFunc runs a test's query on s's database.
func queryFunc(s *Store) storetest.QueryFunc {
	return func(t testing.TB, query string) []string {
		t.Helper()
		rows, err := s.pool.Query(context.Background(), query)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rows.Close()
		out, err := storetest.PrintRows(rows, len(rows.FieldDescriptions()))
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return out
	}
}

// Migration 7 fills the derived rollups from the alerts a database already
// holds: a database at version 6 is made by taking migration 7 out of a
// store that has alerts, new revisions and retention behind it.
func TestMigration7FillsDerivedRollups(t *testing.T) {
	ctx := context.Background()
	dsn := srv.DB(t)
	s := open(t, dsn)
	base := time.Now().Add(-50 * time.Hour).Truncate(time.Hour)
	as := storetest.Alerts(storetest.DefaultShape, base, 0, 400)
	for i := range as {
		as[i].FirstSeen = base.Add(time.Duration(i) * 7 * time.Minute)
		as[i].LastSeen = as[i].FirstSeen.Add(time.Duration(i%5) * time.Second)
	}
	if _, err := s.Insert(ctx, storetest.MustBatch(t, as)); err != nil {
		t.Fatal(err)
	}
	var revised []alert.Alert
	for i := 0; i < len(as); i += 3 {
		revised = append(revised, storetest.Update(as[i], 3*time.Hour))
	}
	if _, err := s.Insert(ctx, storetest.MustBatch(t, revised)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Retain(ctx, store.Retention{MaxAlerts: 300}); err != nil {
		t.Fatal(err)
	}
	undo := []string{"DROP TRIGGER alerts_rollupz_insert ON alerts", "DROP TRIGGER alerts_rollupz_update ON alerts",
		"DROP TRIGGER alerts_rollupz_delete ON alerts", "DROP FUNCTION alert_rollups_derived_add",
		"DROP FUNCTION alert_rollups_derived_remove", "DROP FUNCTION alert_rollups_derived_replace",
		"DELETE FROM schema_migrations WHERE version = 7",
		// and the migrations after it, which the reopened store applies again
		"DROP TABLE node_status", "DELETE FROM schema_migrations WHERE version = 8"}
	for _, r := range store.DerivedRollups {
		undo = append(undo, "DROP TABLE "+r.Name)
	}
	for _, q := range undo {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()

	s = open(t, dsn)
	defer s.Close()
	storetest.RollupTablesMatchAlerts(t, queryFunc(s), "after migration 7")
}
