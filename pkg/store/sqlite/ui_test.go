package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

func TestUIReader(t *testing.T) {
	storetest.RunUI(t, func(t *testing.T) storetest.UIStore {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "alerts.db"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestRollupTables(t *testing.T) {
	storetest.RunRollupTables(t, func(t *testing.T) (storetest.UIStore, storetest.QueryFunc) {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "alerts.db"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, queryFunc(s)
	})
}

// queryFunc runs a test's query on s's database.
func queryFunc(s *Store) storetest.QueryFunc {
	return func(t testing.TB, query string) []string {
		t.Helper()
		rows, err := s.rdb.Query(query)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		out, err := storetest.PrintRows(rows, len(cols))
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return out
	}
}
