package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/store"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "alerts.db"))
	})
}

func TestReopenKeepsAlertsAndSequence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.db")
	s := open(t, path)
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	r, err := s.Insert(context.Background(), storetest.MustBatch(t, storetest.Alerts(storetest.DefaultShape, base, 0, 10)))
	if err != nil {
		t.Fatal(err)
	}
	// Delete everything so that only store_meta remembers the sequence.
	if _, err := s.Retain(context.Background(), store.Retention{MaxAlerts: 3}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	last, err := s.LastSeq(context.Background())
	if err != nil || last != r.New[9].Seq {
		t.Fatalf("LastSeq after reopen = %d, %v; want %d", last, err, r.New[9].Seq)
	}
	page, _, err := s.List(context.Background(), store.Filter{}, store.ListOptions{Limit: 100})
	if err != nil || len(page) != 3 {
		t.Fatalf("after reopen: %d alerts, %v; want 3", len(page), err)
	}
	// Resending the kept alerts after a restart is still a no-op.
	r2, err := s.Insert(context.Background(), storetest.MustBatch(t, storetest.Alerts(storetest.DefaultShape, base, 0, 10)[7:]))
	if err != nil || len(r2.New) != 0 || r2.Duplicates != 3 {
		t.Fatalf("resend after reopen: %+v, %v; want 3 duplicates", r2, err)
	}
}

func TestSchemaFromTheFutureIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.db")
	open(t, path).Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(context.Background(), path, Options{})
	if err == nil || !strings.Contains(err.Error(), "upgrade errnowatch") {
		t.Fatalf("Open of a version-99 schema = %v, want an error telling to upgrade", err)
	}
}

func TestDurabilitySettingsAndQueryPlans(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "alerts.db"))
	defer s.Close()
	var mode string
	var syncLevel, busy int
	if err := s.wdb.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := s.wdb.QueryRow(`PRAGMA synchronous`).Scan(&syncLevel); err != nil {
		t.Fatal(err)
	}
	if err := s.wdb.QueryRow(`PRAGMA busy_timeout`).Scan(&busy); err != nil {
		t.Fatal(err)
	}
	// NORMAL, with the syncer's own fsync of the WAL before each answer
	// (TestAnswerWaitsForTheFsync).
	if mode != "wal" || syncLevel != 1 || busy != 10000 {
		t.Fatalf("journal_mode=%s synchronous=%d busy_timeout=%d; want wal, 1 (NORMAL), 10000", mode, syncLevel, busy)
	}
	// Each query shape walks the index that serves it, never sorting a
	// namespace: per-pod lists use alerts_pod, other lists the id index,
	// stream reads the seq order.
	for _, tc := range []struct {
		name string
		f    store.Filter
		read bool
		want string
	}{
		{"per-pod list", store.Filter{Namespace: "a", Pod: "b"}, false, "alerts_pod"},
		{"namespace list", store.Filter{Namespace: "a"}, false, "sqlite_autoindex_alerts_1"},
		{"rule list", store.Filter{RuleID: "r"}, false, "sqlite_autoindex_alerts_1"},
		{"namespace stream read", store.Filter{Namespace: "a"}, true, "INTEGER PRIMARY KEY"},
		{"pod stream read", store.Filter{Namespace: "a", Pod: "b", MinSeverity: 3}, true, "INTEGER PRIMARY KEY"},
	} {
		var q string
		var args []any
		if tc.read {
			w, a := where(tc.f, true)
			q, args = `SELECT seq FROM alerts WHERE seq > ? AND seq <= ? AND `+w+` ORDER BY seq LIMIT 10`, append([]any{1, 2}, a...)
		} else {
			w, a := where(tc.f, tc.f.Namespace == "" || tc.f.Pod == "")
			q, args = `SELECT seq FROM alerts WHERE `+w+` ORDER BY id DESC LIMIT 10`, a
		}
		var plan strings.Builder
		rows, err := s.rdb.Query(`EXPLAIN QUERY PLAN `+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan.WriteString(detail + "\n")
		}
		rows.Close()
		if !strings.Contains(plan.String(), tc.want) || strings.Contains(plan.String(), "TEMP B-TREE") {
			t.Errorf("%s: plan does not walk %s without sorting:\n%s", tc.name, tc.want, plan.String())
		}
	}
}

func TestUndecodableRowIsSkippedAndCounted(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "alerts.db"))
	defer s.Close()
	storetest.RunUndecodable(t, s, func(t *testing.T, seq uint64) {
		// Field 1 claims 16 bytes that are not there: truncated protobuf.
		if _, err := s.wdb.Exec(`UPDATE alerts SET body = x'0a10' WHERE seq = ?`, seq); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOpenRefusesACorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.db")
	s := open(t, path)
	if _, err := s.Insert(context.Background(), storetest.MustBatch(t, storetest.Alerts(storetest.DefaultShape, time.Now(), 0, 2000))); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Overwrite the middle of the file (table and index pages, after a
	// checkpoint the WAL was folded into on close) with a pattern SQLite
	// cannot take for a page.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < 64<<10 {
		t.Fatalf("database is only %d bytes; want some pages to damage", fi.Size())
	}
	junk := bytes.Repeat([]byte{0xa5}, 16<<10)
	if _, err := f.WriteAt(junk, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), path, Options{})
	if !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Open of a damaged file: %v; want store.ErrCorrupt", err)
	}
	if !strings.Contains(err.Error(), "restore it from a backup") {
		t.Fatalf("error %q does not say how to fix it", err)
	}
}

func TestPingAnswersUntilClose(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "alerts.db"))
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

// TestStoredBodyIsWhatWasValidated: the row's body is the batch's body,
// alertpb.Marshal of the validated alert, even when the received message
// carried fields this version does not know: a hostile agent cannot store
// bytes nobody checked.
func TestStoredBodyIsWhatWasValidated(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "alerts.db"))
	defer s.Close()
	as := storetest.Alerts(storetest.DefaultShape, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 0, 2)
	var b store.Batch
	for i := range as {
		p := alertpb.ToProto(&as[i])
		if i == 1 {
			p.ProtoReflect().SetUnknown(protowire.AppendString(protowire.AppendTag(nil, 1000, protowire.BytesType), "hostile padding"))
		}
		if _, err := b.AddReceived(p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Insert(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	for i := range as {
		var body []byte
		if err := s.rdb.QueryRow(`SELECT body FROM alerts WHERE id = ?`, as[i].ID).Scan(&body); err != nil {
			t.Fatal(err)
		}
		want, err := alertpb.Marshal(&as[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body, want) {
			t.Errorf("alert %d stored body %x, want alertpb.Marshal's %x", i, body, want)
		}
	}
}

// TestSubmitKeepsEachCallersOrder submits batches without waiting between
// them, from two goroutines at once, each batch carrying the next revision
// of its goroutine's alert: every revision must be stored as new (none
// taken for a duplicate of a later one), under rising sequences, and the
// alert's history must hold the last store.MaxHistory of them in order.
func TestSubmitKeepsEachCallersOrder(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "alerts.db"))
	defer s.Close()
	const batches, fresh = 40, 5
	all := storetest.Alerts(storetest.DefaultShape, time.Now(), 0, 2*(1+batches*fresh))
	errs := make(chan error, 2)
	for g := range 2 {
		go func() {
			mine := all[g*(1+batches*fresh) : (g+1)*(1+batches*fresh)]
			a := mine[0]
			var waits []func() (store.InsertResult, error)
			for k := range batches {
				if k > 0 {
					a = storetest.Update(a, time.Second)
				}
				b := append([]alert.Alert{a}, mine[1+k*fresh:1+(k+1)*fresh]...)
				w, err := s.Submit(context.Background(), storetest.MustBatch(t, b))
				if err != nil {
					errs <- err
					return
				}
				waits = append(waits, w)
			}
			var last uint64
			for k, w := range waits {
				res, err := w()
				if err != nil {
					errs <- err
					return
				}
				if len(res.New) != 1+fresh || res.Duplicates != 0 {
					errs <- fmt.Errorf("goroutine %d, batch %d: %d new, %d duplicates; want %d new", g, k, len(res.New), res.Duplicates, 1+fresh)
					return
				}
				if res.New[0].Seq <= last {
					errs <- fmt.Errorf("goroutine %d, batch %d: stored at seq %d, after %d", g, k, res.New[0].Seq, last)
					return
				}
				last = res.New[0].Seq
			}
			h, err := s.History(context.Background(), a.ID)
			if err != nil {
				errs <- err
				return
			}
			for k, r := range h {
				if r.Revision != uint32(batches-len(h)+k+1) {
					errs <- fmt.Errorf("goroutine %d: history entry %d is revision %d", g, k, r.Revision)
					return
				}
			}
			if len(h) != min(batches, store.MaxHistory) {
				errs <- fmt.Errorf("goroutine %d: history has %d revisions, want %d", g, len(h), min(batches, store.MaxHistory))
				return
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestAnswerWaitsForTheFsync holds the syncer's fsync of the WAL: the batch
// is committed (readers see it) but Insert must not return until the
// fsync did, and the fsync must be of the file that holds the commit.
func TestAnswerWaitsForTheFsync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.db")
	s := open(t, path)
	defer s.Close()
	fsync := s.syncWAL
	held, release := make(chan struct{}), make(chan struct{})
	s.syncWAL = func() error {
		close(held)
		<-release
		return fsync()
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Insert(context.Background(), storetest.MustBatch(t, storetest.Alerts(storetest.DefaultShape, time.Now(), 0, 10)))
		done <- err
	}()
	<-held
	select {
	case err := <-done:
		t.Fatalf("Insert returned (%v) before the WAL's fsync", err)
	case <-time.After(100 * time.Millisecond):
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("the WAL the syncer fsyncs is missing or empty after a commit: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestFailedFsyncStopsWrites: after an fsync of the WAL fails, what reached
// the disk is unknown, so the batches it covered fail, later ones too, and
// Ping reports it (the collector restarts).
func TestFailedFsyncStopsWrites(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "alerts.db"))
	defer s.Close()
	s.syncWAL = func() error { return unix.EIO }
	alerts := storetest.Alerts(storetest.DefaultShape, time.Now(), 0, 20)
	if _, err := s.Insert(context.Background(), storetest.MustBatch(t, alerts[:10])); err == nil || !strings.Contains(err.Error(), "restart the collector") {
		t.Fatalf("Insert after a failed fsync: %v, want an error that says to restart", err)
	}
	if _, err := s.Insert(context.Background(), storetest.MustBatch(t, alerts[10:])); err == nil {
		t.Fatal("a later Insert succeeded after a failed fsync")
	}
	if err := s.Ping(context.Background()); err == nil || !errors.Is(err, unix.EIO) {
		t.Fatalf("Ping after a failed fsync: %v, want the fsync's error", err)
	}
}

// TestSyncerFollowsANewWAL: should SQLite replace the WAL (it deletes it
// when its last connection closes), the syncer fsyncs the new file, not
// the deleted one it held open.
func TestSyncerFollowsANewWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	if err := os.WriteFile(path+"-wal", []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := openWAL(path)
	if err != nil {
		t.Fatal(err)
	}
	w := &walFile{path: path, f: f}
	defer w.Close()
	if err := os.Remove(path + "-wal"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+"-wal", []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := w.fsync(); err != nil {
		t.Fatal(err)
	}
	cur, _ := os.Stat(path + "-wal")
	if held, err := w.f.Stat(); err != nil || !os.SameFile(cur, held) {
		t.Fatalf("the syncer still holds the deleted WAL (%v)", err)
	}
}

// TestCheckpointerCopiesTheWAL: the writer checkpoints itself only once the
// WAL passes writerCheckpointPages, far beyond what this test writes; the
// database file still grows to hold the alerts because the checkpointer
// copies the WAL beside the writer.
func TestCheckpointerCopiesTheWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.db")
	s := open(t, path)
	defer s.Close()
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := s.Insert(context.Background(), storetest.MustBatch(t, storetest.Alerts(storetest.DefaultShape, time.Now(), i*500, 500))); err != nil {
			t.Fatal(err)
		}
	}
	wal, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if wal.Size() > writerCheckpointPages*16384/2 {
		t.Fatalf("the test wrote %d bytes of WAL, too close to the writer's own checkpoint", wal.Size())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > before.Size()+1<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file still %d bytes (was %d) 10 s after 2000 alerts with %d bytes of WAL: no checkpoint", fi.Size(), before.Size(), wal.Size())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := s.CheckpointErrors(); n != 0 {
		t.Fatalf("%d checkpoints failed", n)
	}
}

// TestSubmitIsBoundedWhenTheWriterIsStuck: with the disk stuck (the WAL's
// fsync held), the store takes a bounded number of batches — the syncer's
// queue of committed groups, the group in hand, the writer's queue — and
// then Submit waits and gives up with the caller's context, instead of
// holding whatever callers hand it. Once the disk answers, every batch it
// took is stored.
func TestSubmitIsBoundedWhenTheWriterIsStuck(t *testing.T) {
	const group = 4 // alerts per group, so that the bound below is small
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "alerts.db"), Options{MaxGroupAlerts: group})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fsync := s.syncWAL
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // before Close, which waits for the syncer
	s.syncWAL = func() error {
		<-release
		return fsync()
	}
	alerts := storetest.Alerts(storetest.DefaultShape, time.Now(), 0, 600)
	var waits []func() (store.InsertResult, error)
	var refused error
	for i := range alerts {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		w, err := s.Submit(ctx, storetest.MustBatch(t, alerts[i:i+1]))
		cancel()
		if err != nil {
			refused = err
			break
		}
		waits = append(waits, w)
	}
	if !errors.Is(refused, context.DeadlineExceeded) {
		t.Fatalf("took all %d batches while the disk was stuck (last error %v)", len(waits), refused)
	}
	// The syncer holds the groups it took for one fsync (up to
	// syncQueue+1) and syncQueue more wait for it; the writer holds one
	// it cannot hand over; writeQueue batches wait for the writer. A group
	// is at most MaxGroupAlerts of these one-alert batches.
	if max := writeQueue + (2*syncQueue+2)*group; len(waits) > max {
		t.Fatalf("took %d batches while the disk was stuck, want at most %d", len(waits), max)
	}
	free()
	for i, w := range waits {
		if res, err := w(); err != nil || len(res.New) != 1 {
			t.Fatalf("batch %d taken while the disk was stuck: %v, %d new", i, err, len(res.New))
		}
	}
}

// TestCloseAnswersQueuedBatches: Close stops the writer between groups, so
// batches still in its queue are never taken; each must still get an
// answer (stored, or store.ErrClosed), not wait forever.
func TestCloseAnswersQueuedBatches(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "alerts.db"), Options{MaxGroupAlerts: 1})
	if err != nil {
		t.Fatal(err)
	}
	fsync := s.syncWAL
	release := make(chan struct{})
	s.syncWAL = func() error {
		<-release
		return fsync()
	}
	alerts := storetest.Alerts(storetest.DefaultShape, time.Now(), 0, 40)
	var waits []func() (store.InsertResult, error)
	for i := range alerts {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		w, err := s.Submit(ctx, storetest.MustBatch(t, alerts[i:i+1]))
		cancel()
		if err != nil {
			break // the queue is full
		}
		waits = append(waits, w)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	time.Sleep(50 * time.Millisecond) // Close has stopped the writer
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	stored, refused := 0, 0
	for i, w := range waits {
		done := make(chan struct{})
		var err error
		go func() { _, err = w(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("batch %d of %d got no answer after Close", i, len(waits))
		}
		switch {
		case err == nil:
			stored++
		case errors.Is(err, store.ErrClosed):
			refused++
		default:
			t.Fatalf("batch %d: %v, want stored or ErrClosed", i, err)
		}
	}
	if stored == 0 || refused == 0 {
		t.Fatalf("%d stored and %d refused of %d; want some of each (the writer held some when Close came)", stored, refused, len(waits))
	}
}

// TestReadersWaitForTheFsync: a group the writer has committed but the
// syncer has not yet fsynced is invisible to the cursor readers (LastSeq,
// ReadAfter), so a SIEM's cursor never passes a sequence that a power loss
// could hand to another alert; once the fsync is done, they see it.
func TestReadersWaitForTheFsync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.db")
	s := open(t, path)
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Insert(ctx, storetest.MustBatch(t, storetest.Alerts(storetest.DefaultShape, time.Now(), 0, 5))); err != nil {
		t.Fatal(err)
	}
	fsync := s.syncWAL
	held, release := make(chan struct{}), make(chan struct{})
	var heldOnce, releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	defer free() // before Close, which waits for the syncer
	s.syncWAL = func() error {
		heldOnce.Do(func() { close(held) })
		<-release
		return fsync()
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Insert(ctx, storetest.MustBatch(t, storetest.Alerts(storetest.DefaultShape, time.Now(), 100, 10)))
		done <- err
	}()
	<-held
	// The second batch is committed: a plain read of the table shows it.
	var rows int
	if err := s.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM alerts`).Scan(&rows); err != nil || rows != 15 {
		t.Fatalf("rows committed while the fsync is held: %d, %v; want 15", rows, err)
	}
	if last, err := s.LastSeq(ctx); err != nil || last != 5 {
		t.Fatalf("LastSeq while the fsync is held = %d, %v; want 5 (the first batch only)", last, err)
	}
	got, cursor, err := s.ReadAfter(ctx, 0, store.Filter{}, 100)
	if err != nil || len(got) != 5 || cursor != 5 {
		t.Fatalf("ReadAfter(0) while the fsync is held = %d alerts, cursor %d, %v; want 5 and 5", len(got), cursor, err)
	}
	if got, cursor, err := s.ReadAfter(ctx, 5, store.Filter{}, 100); err != nil || len(got) != 0 || cursor != 5 {
		t.Fatalf("ReadAfter(5) while the fsync is held = %d alerts, cursor %d, %v; want none and 5", len(got), cursor, err)
	}
	free()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if last, err := s.LastSeq(ctx); err != nil || last != 15 {
		t.Fatalf("LastSeq after the fsync = %d, %v; want 15", last, err)
	}
	if got, cursor, err := s.ReadAfter(ctx, 5, store.Filter{}, 100); err != nil || len(got) != 10 || cursor != 15 {
		t.Fatalf("ReadAfter(5) after the fsync = %d alerts, cursor %d, %v; want 10 and 15", len(got), cursor, err)
	}
}
