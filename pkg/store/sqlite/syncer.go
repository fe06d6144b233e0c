package sqlite

import (
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/errnowatch/errnowatch/pkg/store"
)

// The writer commits with synchronous=NORMAL: the commit is in the WAL file
// but maybe not yet on the disk. The syncer makes it durable before anyone
// hears of it: it takes committed groups in commit order, fsyncs the WAL
// once for all the groups waiting, and only then moves durableSeq, the
// readers' bound, past them and answers their batches. A
// later commit's frames written meanwhile are flushed too, which is
// harmless: SQLite's recovery reads a WAL frame only up to the last
// checksummed commit. Moving the fsync here lets the writer start the next
// group while the disk works (an fsync took about as long as 5 µs per
// alert of a 2000-alert group on the test machine).
//
// An fsync that fails leaves it unknown what reached the disk (Linux may
// drop the dirty pages and report the error once), so the store stops
// taking writes: the batches waiting fail, later ones too, and Ping says
// why; the collector's health check fails and it restarts, reading the
// database as the disk has it. The agents still hold every batch that was
// not answered.

// committed is a group the writer committed, waiting for the fsync.
type committed struct {
	group   []*writeReq
	results []store.InsertResult
	seq     uint64 // the last sequence after the group's commit
}

// syncQueue bounds the committed groups waiting for an fsync; a full queue
// holds the writer back.
const syncQueue = 8

// walFile is the WAL as the syncer fsyncs it. SQLite deletes the WAL when
// its last connection closes and makes a new one on the next open; the
// store keeps its connections open, but should a new WAL ever replace the
// one open here, fsync reopens it instead of flushing a deleted file.
type walFile struct {
	path string // the database's
	f    *os.File
}

func (w *walFile) fsync() error {
	cur, err := os.Stat(w.path + "-wal")
	if err != nil {
		return fmt.Errorf("stat the write-ahead log: %w", err)
	}
	if held, err := w.f.Stat(); err != nil || !os.SameFile(cur, held) {
		f, err := openWAL(w.path)
		if err != nil {
			return err
		}
		w.f.Close()
		w.f = f
	}
	return unix.Fsync(int(w.f.Fd()))
}

func (w *walFile) Close() error { return w.f.Close() }

// openWAL opens the database's WAL file for fsync and makes the directory
// entry that names it durable too. SQLite made the file when it first
// opened the database in WAL mode (Open's migration and reads).
func openWAL(path string) (*os.File, error) {
	f, err := os.Open(path + "-wal")
	if err != nil {
		return nil, fmt.Errorf("open the write-ahead log of %s for fsync: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s for fsync: %w", dir, err)
	}
	defer d.Close()
	if err := unix.Fsync(int(d.Fd())); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// syncer answers the committed groups after an fsync of the WAL, until the
// writer closes s.committed.
func (s *Store) syncer() {
	defer close(s.syncDone)
	for c := range s.committed {
		waiting := []committed{c}
	drain:
		for {
			select {
			case c, ok := <-s.committed:
				if !ok {
					break drain
				}
				waiting = append(waiting, c)
			default:
				break drain
			}
		}
		err := s.syncErr()
		if err == nil {
			if ferr := s.syncWAL(); ferr != nil {
				err = fmt.Errorf("fsync the write-ahead log: %w; the store takes no more writes: restart the collector (agents resend what was not acknowledged)", ferr)
				s.log.Error("sqlite store stopped taking writes", zap.Error(ferr))
				s.failSync(err)
			}
		}
		if err == nil {
			// Before the answers: a batch's sender may read its alerts back.
			s.durableSeq.Store(waiting[len(waiting)-1].seq)
		}
		s.checkpointDue()
		for _, c := range waiting {
			for i, r := range c.group {
				if err != nil {
					r.res <- writeRes{err: err}
					continue
				}
				r.res <- writeRes{r: c.results[i]}
			}
		}
	}
}

// syncErr is the fsync failure that stopped writes, or nil.
func (s *Store) syncErr() error {
	if p := s.syncFailed.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Store) failSync(err error) { s.syncFailed.CompareAndSwap(nil, &err) }
