package postgres

import (
	"testing"

	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

func TestHistory(t *testing.T) {
	storetest.RunHistory(t, func(t *testing.T) storetest.HistoryStore {
		s := open(t, srv.DB(t))
		t.Cleanup(func() { s.Close() })
		return s
	})
}
