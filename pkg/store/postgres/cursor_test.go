package postgres

import (
	"testing"

	"github.com/errnowatch/errnowatch/pkg/store"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

func TestCursorConformance(t *testing.T) {
	storetest.RunCursors(t, func(t *testing.T) store.Store { return open(t, srv.DB(t)) })
}
