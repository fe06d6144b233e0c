package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/errnowatch/errnowatch/internal/pgtest"
	"github.com/errnowatch/errnowatch/pkg/store"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

var srv *pgtest.Server

func TestMain(m *testing.M) {
	code := pgtest.Main(m, &srv)
	if durableSrv != nil {
		durableSrv.Stop()
	}
	os.Exit(code)
}

func open(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, Options{})
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, srv.DB(t)) })
}

func TestReplicasMigrateOnceAndShareSequence(t *testing.T) {
	dsn := srv.DB(t)
	var (
		mu     sync.Mutex
		stores []*Store
	)
	var g errgroup.Group
	for range 4 {
		g.Go(func() error {
			s, err := Open(context.Background(), dsn, Options{})
			if err != nil {
				return err
			}
			mu.Lock()
			stores = append(stores, s)
			mu.Unlock()
			return nil
		})
	}
	err := g.Wait()
	t.Cleanup(func() {
		for _, s := range stores {
			s.Close()
		}
	})
	if err != nil {
		t.Fatalf("open replicas at once: %v", err)
	}
	var versions int
	if err := stores[0].pool.QueryRow(context.Background(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if versions != len(migrations) {
		t.Fatalf("schema_migrations has %d rows, want %d", versions, len(migrations))
	}
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	batch := storetest.MustBatch(t, storetest.Alerts(storetest.DefaultShape, base, 0, 10))
	r0, err := stores[0].Insert(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := stores[1].Insert(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(r0.New) != 10 || len(r1.New) != 0 || r1.Duplicates != 10 {
		t.Fatalf("first replica stored %d, second stored %d with %d duplicates; want 10, 0, 10", len(r0.New), len(r1.New), r1.Duplicates)
	}
	last, err := stores[2].LastSeq(context.Background())
	if err != nil || last != 10 {
		t.Fatalf("LastSeq on another replica = %d, %v; want 10", last, err)
	}
	if _, err := Open(context.Background(), "postgres://nobody@127.0.0.1:1/x?connect_timeout=1", Options{}); err == nil {
		t.Fatal("open of an unreachable server succeeded")
	}
}

// TestConcurrentReplicasGaplessStream has three replicas insert at once,
// each alert sent to two of them, while a reader follows ReadAfter with
// small pages: it must see sequences 1..N exactly once each, in order, and
// every alert exactly once, although transactions commit in any order.
func TestConcurrentReplicasGaplessStream(t *testing.T) {
	dsn := srv.DB(t)
	var reps []*Store
	for range 3 {
		s := open(t, dsn)
		t.Cleanup(func() { s.Close() })
		reps = append(reps, s)
	}
	const (
		writers   = 6
		batches   = 40
		batchSize = 25
	)
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	done := make(chan struct{})
	var wg errgroup.Group
	for w := range writers {
		wg.Go(func() error {
			for b := range batches {
				batch, err := store.NewBatch(storetest.Alerts(storetest.DefaultShape, base, (w*batches+b)*batchSize, batchSize))
				if err != nil {
					return err
				}
				// The agent's retry after a lost answer lands on another
				// replica.
				for _, r := range []*Store{reps[w%3], reps[(w+1)%3]} {
					if _, err := r.Insert(ctx, batch); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	type seen struct {
		seqs []uint64
		ids  map[string]int
	}
	got := seen{ids: map[string]int{}}
	readErr := make(chan error, 1)
	go func() {
		var cursor uint64
		for i := 0; ; i++ {
			finished := false
			select {
			case <-done:
				finished = true
			default:
			}
			revs, next, err := reps[i%3].ReadAfter(ctx, cursor, store.Filter{}, 7)
			if err != nil {
				readErr <- err
				return
			}
			for _, r := range revs {
				got.seqs = append(got.seqs, r.Seq)
				got.ids[r.Alert.ID]++
			}
			cursor = next
			if finished && len(revs) == 0 {
				readErr <- nil
				return
			}
		}
	}()
	if err := wg.Wait(); err != nil {
		close(done)
		<-readErr
		t.Fatalf("insert: %v", err)
	}
	close(done)
	if err := <-readErr; err != nil {
		t.Fatalf("read: %v", err)
	}
	const n = writers * batches * batchSize
	if len(got.seqs) != n || len(got.ids) != n {
		t.Fatalf("reader saw %d revisions of %d alerts, want %d of %d", len(got.seqs), len(got.ids), n, n)
	}
	for i, s := range got.seqs {
		if s != uint64(i+1) {
			t.Fatalf("revision %d has sequence %d, want %d (gap or reorder)", i, s, i+1)
		}
	}
	for id, c := range got.ids {
		if c != 1 {
			t.Fatalf("alert %s seen %d times", id, c)
		}
	}
}

func TestClosed(t *testing.T) {
	s := open(t, srv.DB(t))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LastSeq(context.Background()); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("LastSeq after Close: %v, want ErrClosed", err)
	}
}

func TestWatchWakesOtherReplica(t *testing.T) {
	dsn := srv.DB(t)
	a, b := open(t, dsn), open(t, dsn)
	t.Cleanup(func() { a.Close(); b.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan uint64, 16)
	ready := make(chan struct{})
	watchErr := make(chan error, 1)
	go func() {
		watchErr <- b.watch(ctx, func() { close(ready) }, func(seq uint64) { got <- seq })
	}()
	<-ready
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if _, err := a.Insert(ctx, storetest.MustBatch(t, storetest.Alerts(storetest.DefaultShape, base, 0, 5))); err != nil {
		t.Fatal(err)
	}
	if seq := <-got; seq != 5 {
		t.Fatalf("watch reported %d, want 5", seq)
	}
	cancel()
	if err := <-watchErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("watch ended with %v, want context.Canceled", err)
	}
}

func TestUndecodableRowIsSkippedAndCounted(t *testing.T) {
	s := open(t, srv.DB(t))
	defer s.Close()
	storetest.RunUndecodable(t, s, func(t *testing.T, seq uint64) {
		// Field 1 claims 16 bytes that are not there: truncated protobuf.
		if _, err := s.pool.Exec(context.Background(), `UPDATE alerts SET body = '\x0a10'::bytea WHERE seq = $1`, int64(seq)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestJSONBodiesOfOlderVersionsStillDecode stores a body as migration 1
// wrote them (JSON of alert.Alert) and reads it back.
func TestJSONBodiesOfOlderVersionsStillDecode(t *testing.T) {
	s := open(t, srv.DB(t))
	defer s.Close()
	ctx := context.Background()
	data := storetest.Alerts(storetest.DefaultShape, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 0, 3)
	r, err := s.Insert(ctx, storetest.MustBatch(t, data))
	if err != nil {
		t.Fatal(err)
	}
	old, err := json.Marshal(&data[1])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE alerts SET body = $1 WHERE seq = $2`, old, int64(r.New[1].Seq)); err != nil {
		t.Fatal(err)
	}
	revs, _, err := s.ReadAfter(ctx, 0, store.Filter{}, 10)
	if err != nil || len(revs) != 3 {
		t.Fatalf("ReadAfter = %d alerts, %v; want 3", len(revs), err)
	}
	if got := revs[1].Alert; got.ID != data[1].ID || got.Message != data[1].Message || got.Total != data[1].Total || !got.LastSeen.Equal(data[1].LastSeen) {
		t.Fatalf("JSON body read back as %+v, want %+v", got, data[1])
	}
	if s.UndecodableRows() != 0 {
		t.Fatalf("UndecodableRows = %d, want 0", s.UndecodableRows())
	}
}

func TestPingAnswersUntilClose(t *testing.T) {
	s := open(t, srv.DB(t))
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping of an open store: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Ping after Close: %v; want store.ErrClosed", err)
	}
}

// TestPingFailsWhenTheServerIsDown stops a private server under an open
// store: Ping, which /readyz reports, must say so.
func TestPingFailsWhenTheServerIsDown(t *testing.T) {
	own, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dsn, err := own.NewDB(context.Background())
	if err != nil {
		own.Stop()
		t.Fatal(err)
	}
	s := open(t, dsn)
	defer s.Close()
	if err := s.Ping(context.Background()); err != nil {
		own.Stop()
		t.Fatalf("Ping with the server up: %v", err)
	}
	own.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err == nil {
		t.Fatalf("Ping with the server stopped succeeded")
	}
}
