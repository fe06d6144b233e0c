package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/store"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

func TestCursorConformance(t *testing.T) {
	storetest.RunCursors(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "alerts.db"))
	})
}

func TestCursorSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.db")
	s := open(t, path)
	ctx := context.Background()
	if _, err := s.ClaimSink(ctx, "hook", "a", time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.AckSink(ctx, "hook", "a", 42); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseSink(ctx, "hook", "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	got, err := s.ClaimSink(ctx, "hook", "b", time.Hour, 0)
	if err != nil || got != 42 {
		t.Fatalf("claim after reopen = %d, %v; want 42", got, err)
	}
}
