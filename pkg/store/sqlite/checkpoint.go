package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"

	"go.uber.org/zap"
)

// A checkpoint copies the pages the WAL holds back into the database file
// and fsyncs both, so that the WAL can start over. SQLite runs one in the
// committing connection once the WAL passes wal_autocheckpoint pages, so
// the one writer stopped every 1000 pages (16 MiB, about 8000 alerts) to
// copy them and wait for two fsyncs. The checkpointer does it on a
// connection of its own instead, in PASSIVE mode, which never blocks the
// writer: WAL mode lets a checkpoint run beside a write transaction.
//
// A PASSIVE checkpoint copies the frames committed when it starts, and the
// WAL starts over only when a transaction begins with every frame copied;
// under a steady stream of commits that moment may not come. So the
// writer keeps a checkpoint of its own, at writerCheckpointPages: it then
// has little left to copy, and the WAL starts over after it. The WAL file
// is therefore at most about that large.

// writerCheckpointPages is the writer's own wal_autocheckpoint: 64 MiB of
// 16 KiB pages.
const writerCheckpointPages = 4096

// checkpointEvery spaces the checkpointer's runs: each copies what the
// commits since the last one wrote.
const checkpointEvery = 250 * time.Millisecond

func openCheckpointer(path string, busy time.Duration) (*sql.DB, error) {
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(busy.Milliseconds()))
	q.Set("_synchronous", "NORMAL")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s for checkpoints: %w", path, err)
	}
	keepConns(db, 1)
	return db, nil
}

// checkpointDue tells the checkpointer that commits were made durable.
func (s *Store) checkpointDue() {
	select {
	case s.ckptDue <- struct{}{}:
	default:
	}
}

// checkpointer runs a PASSIVE checkpoint after commits, at most every
// checkpointEvery, until ctx ends. A failed one is logged and counted
// (CheckpointErrors); the writer's own checkpoint still bounds the WAL.
func (s *Store) checkpointer(ctx context.Context) {
	defer close(s.ckptDone)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.ckptDue:
		}
		var busy, logFrames, copied int
		err := s.cdb.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &copied)
		if err != nil && ctx.Err() == nil {
			s.ckptErrs.Add(1)
			s.log.Warn("checkpoint of the write-ahead log failed; the writer checkpoints itself once it grows further", zap.Error(err))
		}
		t := time.NewTimer(checkpointEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// CheckpointErrors is how many of the checkpointer's checkpoints failed.
func (s *Store) CheckpointErrors() uint64 { return s.ckptErrs.Load() }
