package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

func TestNodeStatuses(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "alerts.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	storetest.RunNodeStatuses(t, s)
}
