package postgres

import (
	"testing"

	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

func TestUIReader(t *testing.T) {
	storetest.RunUI(t, func(t *testing.T) storetest.UIStore {
		s := open(t, srv.DB(t))
		t.Cleanup(func() { s.Close() })
		return s
	})
}
