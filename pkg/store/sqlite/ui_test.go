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
