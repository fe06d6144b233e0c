package postgres

import (
	"testing"

	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

func TestNodeStatuses(t *testing.T) {
	s := open(t, srv.DB(t))
	t.Cleanup(func() { s.Close() })
	storetest.RunNodeStatuses(t, s)
}
