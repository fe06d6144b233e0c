package sink

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/internal/pgtest"
	"github.com/errnowatch/errnowatch/pkg/store/postgres"
)

// TestReplicasOnPostgres runs two collector replicas' sinks on one
// PostgreSQL store: one delivers, the other takes over when it stops, and
// nothing is delivered twice. Their poll interval is a minute; the holder
// wakes every third of its lease to renew it, and otherwise on the store's
// wake-ups (store.Watcher, LISTEN/NOTIFY), which another replica's inserts
// trigger.
func TestReplicasOnPostgres(t *testing.T) {
	srv, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatalf("start PostgreSQL (Debian's postgresql, in DEPS_TEST): %v", err)
	}
	t.Cleanup(srv.Stop)
	dsn := srv.DB(t)
	open := func() *postgres.Store {
		s, err := postgres.Open(context.Background(), dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	var mu sync.Mutex
	by := map[string]map[string]int{}
	rc := newReceiver(t, func(r *http.Request, body []byte) error {
		var rec Record
		if err := protojsonRecord(string(body), &rec); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		rep := r.URL.Query().Get("replica")
		if by[rep] == nil {
			by[rep] = map[string]int{}
		}
		by[rep][rec.ID]++
		return nil
	})
	cfg := func(replica string) string {
		return fmt.Sprintf(`
sinks:
- name: hook
  type: webhook
  startAt: beginning
  webhook: {url: "%s/?replica=%s"}
`, rc.srv.URL, replica)
	}
	stA, stB, ingest := open(), open(), open()
	opts := func(owner string) Options {
		return Options{Owner: owner, LeaseTTL: 3 * time.Second, PollInterval: time.Minute}
	}
	a := start(t, stA, cfg("a"), opts("a"))
	eventually(t, 10*time.Second, "a holds the lease", func() bool { return testutilGauge(a.m.leader, "hook") == 1 })
	b := start(t, stB, cfg("b"), opts("b"))
	time.Sleep(100 * time.Millisecond)
	insert(t, ingest, gen(0, 50))
	eventually(t, 20*time.Second, "50 delivered by a", func() bool { return rc.count() >= 50 })
	a.stop()
	insert(t, ingest, gen(50, 20))
	eventually(t, 20*time.Second, "70 delivered", func() bool { return rc.count() >= 70 })
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for rep, ids := range by {
		for id, n := range ids {
			total += n
			if n != 1 || (rep == "b" && by["a"][id] > 0) {
				t.Errorf("alert %s delivered %d times by %s (and %d by a)", id, n, rep, by["a"][id])
			}
		}
	}
	if len(by["a"]) != 50 || len(by["b"]) != 20 || total != 70 {
		t.Errorf("a delivered %d, b %d, %d in all; want 50, 20, 70", len(by["a"]), len(by["b"]), total)
	}
	if testutilGauge(b.m.leader, "hook") != 1 {
		t.Errorf("b does not hold the lease after a stopped")
	}
}
