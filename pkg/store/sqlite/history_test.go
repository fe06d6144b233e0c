package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

func TestHistory(t *testing.T) {
	storetest.RunHistory(t, func(t *testing.T) storetest.HistoryStore {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "alerts.db"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
