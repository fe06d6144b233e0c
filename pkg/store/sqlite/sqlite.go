// Package sqlite is the single-file store of the collector: alerts in one
// SQLite database (pure Go, modernc.org/sqlite) in WAL mode, so queries and
// the SIEM stream read while the one writer goroutine commits batches. It
// implements store.Store.
//
// Writes go through one goroutine that groups the batches waiting at that
// moment into one transaction, and another that makes them durable: every
// batch still gets its own answer only after its commit and an fsync of
// the WAL that holds it (syncer), but many agents share one commit, and
// one fsync may cover several commits. A store.Batch comes validated and
// encoded, so the writer does only database work.
//
// Open runs PRAGMA quick_check and refuses a damaged file
// (store.ErrCorrupt). Summary rollups are kept in the writer's
// transactions (rollup.go); a stored row that no longer decodes is skipped
// and counted, never returned as an error.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/store"
)

// Options tunes a store; the zero value is fine.
type Options struct {
	Logger *zap.Logger
	// MaxGroupAlerts caps how many alerts one commit groups; default 20000.
	MaxGroupAlerts int
	// Readers is the number of read connections; default 4.
	Readers int
	// BusyTimeout is how long a connection waits for a lock held by another
	// process (e.g. a backup); default 10s.
	BusyTimeout time.Duration
	// SkipIntegrityCheck skips the PRAGMA quick_check that Open runs. The
	// check reads every page once (1.05 s for 300 000 alerts on the loaded
	// 2-core test machine, file in the page cache), so a damaged file fails
	// at start, with a way to fix it, rather than mid-stream.
	SkipIntegrityCheck bool
}

// Store is a store.Store over one SQLite file.
type Store struct {
	log    *zap.Logger
	wdb    *sql.DB // one connection, used by the writer goroutine and Retain
	rdb    *sql.DB // read-only connections
	maxGrp int
	upsert *sql.Stmt // upsertSQL(upsertRows), prepared once on wdb
	rollup *sql.Stmt // rollupUpsertSQL, prepared once on wdb

	undecodable atomic.Uint64

	reqs   chan *writeReq
	cancel context.CancelFunc
	done   chan struct{}

	// The syncer's side (syncer.go).
	committed  chan committed
	syncDone   chan struct{}
	wal        *walFile
	syncWAL    func() error // wal.fsync; tests replace it
	syncFailed atomic.Pointer[error]

	// The checkpointer's side (checkpoint.go).
	cdb      *sql.DB
	ckptDue  chan struct{}
	ckptDone chan struct{}
	ckptErrs atomic.Uint64

	// durableSeq is the last sequence whose commit the syncer has fsynced.
	// Readers see alerts up to it and no further (ReadAfter, LastSeq): a
	// committed group not yet on the disk can vanish with a power loss, and
	// its sequences then go to other alerts, which a SIEM whose cursor had
	// passed them would never read.
	durableSeq atomic.Uint64

	mu      sync.Mutex // guards lastSeq and closed
	lastSeq uint64     // the last sequence committed
	closed  bool
}

var (
	_ store.Store     = (*Store)(nil)
	_ store.Submitter = (*Store)(nil)
	_ store.Health    = (*Store)(nil)
)

type writeReq struct {
	batch store.Batch
	res   chan writeRes
}

type writeRes struct {
	r   store.InsertResult
	err error
}

// Open opens (creating if needed) the database at path, applies pending
// schema migrations and starts the writer.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.MaxGroupAlerts <= 0 {
		opts.MaxGroupAlerts = 20000
	}
	if opts.Readers <= 0 {
		opts.Readers = 4
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(opts.BusyTimeout.Milliseconds()))
	q.Set("_journal_mode", "WAL")
	// NORMAL: a commit returns without an fsync, which SQLite then does
	// before each checkpoint. The syncer fsyncs the WAL itself before it
	// answers, so an acknowledged batch (gone from the agent's spool)
	// survives power loss as with FULL, while the writer goes on with the
	// next group instead of waiting for the disk (docs/bench/issue16-perf.md).
	q.Set("_synchronous", "NORMAL")
	q.Set("_txlock", "immediate")
	// Statement journals stay in memory instead of temp files; a bigger
	// page cache keeps the indexes' hot pages.
	q.Add("_pragma", "temp_store(MEMORY)")
	// 16 KiB pages for a new file (an existing one keeps its size): the
	// WAL writes a frame per page with a syscall each, which was a fifth
	// of ingest CPU at 4 KiB (docs/bench/issue16-perf.md).
	q.Add("_pragma", "page_size(16384)")
	q.Add("_pragma", "cache_size(-16384)")
	// The checkpointer copies the WAL into the database beside the writer
	// (checkpoint.go); the writer checkpoints itself only when the WAL
	// has grown this far past it.
	q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", writerCheckpointPages))
	wdb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	keepConns(wdb, 1)
	if !opts.SkipIntegrityCheck {
		if err := quickCheck(ctx, wdb, path); err != nil {
			wdb.Close()
			return nil, err
		}
	}
	if err := migrate(ctx, wdb); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("migrate sqlite %s: %w", path, err)
	}
	upsert, err := wdb.PrepareContext(ctx, upsertSQL(upsertRows))
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("prepare insert into %s: %w", path, err)
	}
	rollup, err := wdb.PrepareContext(ctx, rollupUpsertSQL)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("prepare rollup update of %s: %w", path, err)
	}
	var last uint64
	if err := wdb.QueryRowContext(ctx, `SELECT value FROM store_meta WHERE key = 'last_seq'`).Scan(&last); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("read last sequence from %s: %w", path, err)
	}

	rq := url.Values{}
	rq.Set("_busy_timeout", fmt.Sprint(opts.BusyTimeout.Milliseconds()))
	rq.Set("_query_only", "1")
	rq.Set("_txlock", "deferred")
	rdb, err := sql.Open("sqlite", "file:"+path+"?"+rq.Encode())
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open sqlite %s for reading: %w", path, err)
	}
	keepConns(rdb, opts.Readers)
	walf, err := openWAL(path)
	if err != nil {
		rdb.Close()
		wdb.Close()
		return nil, err
	}
	// A collector that stopped without its last fsync (killed) may have left
	// commits in the WAL that are not on the disk yet; they are what
	// durableSeq starts from, so put them there.
	if err := unix.Fsync(int(walf.Fd())); err != nil {
		walf.Close()
		rdb.Close()
		wdb.Close()
		return nil, fmt.Errorf("fsync the write-ahead log of %s: %w", path, err)
	}
	cdb, err := openCheckpointer(path, opts.BusyTimeout)
	if err != nil {
		walf.Close()
		rdb.Close()
		wdb.Close()
		return nil, err
	}

	wctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		log:     opts.Logger,
		wdb:     wdb,
		rdb:     rdb,
		maxGrp:  opts.MaxGroupAlerts,
		upsert:  upsert,
		rollup:  rollup,
		reqs:    make(chan *writeReq, writeQueue),
		cancel:  cancel,
		done:    make(chan struct{}),
		lastSeq: last,

		committed: make(chan committed, syncQueue),
		syncDone:  make(chan struct{}),
		wal:       &walFile{path: path, f: walf},

		cdb:      cdb,
		ckptDue:  make(chan struct{}, 1),
		ckptDone: make(chan struct{}),
	}
	s.syncWAL = s.wal.fsync
	s.durableSeq.Store(last)
	go s.checkpointer(wctx)
	go s.syncer()
	go s.writer(wctx)
	return s, nil
}

// Close stops the writer after the transaction in flight and closes the
// database. Batches not yet taken by the writer fail with store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	<-s.done
	<-s.syncDone
	<-s.ckptDone
	return errors.Join(s.upsert.Close(), s.rollup.Close(), s.cdb.Close(), s.rdb.Close(), s.wdb.Close(), s.wal.Close())
}

// quickCheckErrors bounds what an integrity check reports.
const quickCheckErrors = 10

// quickCheck runs PRAGMA quick_check: every page and index entry is read
// once (no cross-check of indexes against rows, which integrity_check adds
// at many times the cost). The file opens even when damaged; a damaged
// one must not take alerts that would then vanish or stall readers.
func quickCheck(ctx context.Context, db *sql.DB, path string) error {
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`PRAGMA quick_check(%d)`, quickCheckErrors))
	if err != nil {
		return fmt.Errorf("check %s: %w: %w (restore it from a backup, or move it aside to start empty)", path, store.ErrCorrupt, err)
	}
	defer rows.Close()
	var found []string
	for rows.Next() {
		var msg string
		if err := rows.Scan(&msg); err != nil {
			return fmt.Errorf("check %s: %w", path, err)
		}
		if msg != "ok" {
			found = append(found, msg)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check %s: %w: %w (restore it from a backup, or move it aside to start empty)", path, store.ErrCorrupt, err)
	}
	if len(found) > 0 {
		return fmt.Errorf("check %s: %w: %s (restore it from a backup, or recover what is readable with sqlite3's .recover, or move it aside to start empty)",
			path, store.ErrCorrupt, strings.Join(found, "; "))
	}
	return nil
}

// Ping implements store.Health: the store answers when a read connection
// can run a query and the writer is running.
func (s *Store) Ping(ctx context.Context) error {
	if s.isClosed() {
		return store.ErrClosed
	}
	select {
	case <-s.done:
		return errors.New("sqlite writer has stopped")
	default:
	}
	if err := s.syncErr(); err != nil {
		return err
	}
	var one int
	if err := s.rdb.QueryRowContext(ctx, `SELECT 1 FROM store_meta WHERE key = 'last_seq'`).Scan(&one); err != nil {
		return fmt.Errorf("query sqlite: %w", err)
	}
	return nil
}

// UndecodableRows implements store.Health.
func (s *Store) UndecodableRows() uint64 { return s.undecodable.Load() }

// keepConns holds n connections open for the life of db: each SQLite
// connection has its own page cache and prepared statements, which a
// reopened connection would build again.
func keepConns(db *sql.DB, n int) {
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Insert implements store.Store.
func (s *Store) Insert(ctx context.Context, batch store.Batch) (store.InsertResult, error) {
	wait, err := s.Submit(ctx, batch)
	if err != nil {
		return store.InsertResult{}, err
	}
	return wait()
}

// writeQueue is how many submitted batches may wait for the writer. It is
// the store's bound on what callers hand it ahead of the writer (a batch is
// at most the collector's MaxRecvMsgBytes on the wire), and what lets the
// writer's next group hold several batches of each stream: with 4 agents'
// streams, groups of one batch per stream made ingest stop at 43 k alerts/s,
// deeper ones reach about 48 k (docs/bench/issue16-perf.md). A full queue
// holds Submit back.
const writeQueue = 16

// Submit implements store.Submitter: the writer takes batches in the order
// they were handed over, one goroutine's in the order it submitted them;
// Submit returns once the batch is in the writer's queue (writeQueue).
func (s *Store) Submit(ctx context.Context, batch store.Batch) (func() (store.InsertResult, error), error) {
	if batch.Len() == 0 {
		return func() (store.InsertResult, error) { return store.InsertResult{}, nil }, nil
	}
	req := &writeReq{batch: batch, res: make(chan writeRes, 1)}
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	select {
	case s.reqs <- req:
	case <-s.done:
		return nil, store.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Once the batch is queued, wait for its answer even if ctx ends: the
	// caller must learn whether the batch committed. Close stops the
	// writer between groups, so a batch still queued then is never taken:
	// once the syncer has answered everything the writer took, a batch
	// without an answer was not stored.
	return func() (store.InsertResult, error) {
		select {
		case res := <-req.res:
			return res.r, res.err
		case <-s.syncDone:
			select {
			case res := <-req.res:
				return res.r, res.err
			default:
				return store.InsertResult{}, store.ErrClosed
			}
		}
	}, nil
}

// writer owns the write connection: it takes the batches waiting, commits
// them in one transaction and answers each.
func (s *Store) writer(ctx context.Context) {
	defer close(s.done)
	defer close(s.committed)
	for {
		var first *writeReq
		select {
		case first = <-s.reqs:
		case <-ctx.Done():
			return
		}
		group := []*writeReq{first}
		n := first.batch.Len()
	drain:
		for n < s.maxGrp {
			select {
			case r := <-s.reqs:
				group = append(group, r)
				n += r.batch.Len()
			default:
				break drain
			}
		}
		err := s.syncErr()
		var results []store.InsertResult
		if err == nil {
			results, err = s.commit(group)
		}
		if err != nil {
			for _, r := range group {
				r.res <- writeRes{err: err}
			}
			continue
		}
		s.mu.Lock()
		seq := s.lastSeq
		s.mu.Unlock()
		s.committed <- committed{group: group, results: results, seq: seq}
	}
}

// upsertCols are the columns of one alert row, in statement order.
const upsertCols = `seq, id, revision, rule_id, severity, namespace, pod, container, node,
	workload_kind, workload_name, first_seen, last_seen, total, stored_at, body`

const nUpsertCols = 16

// insertCols are what commit writes of a row: upsertCols and the alert's
// revision history (store.AppendHistory).
const (
	insertCols  = upsertCols + `, history`
	nInsertCols = nUpsertCols + 1
)

// upsertRows is how many rows one INSERT statement carries. One: SQLite
// runs a statement of several rows, which could fail halfway, inside a
// statement journal that copies every page it changes (a quarter of ingest
// CPU with 64 rows and 16 KiB pages); a prepared one-row statement has
// none, and costs less per row than the copies did.
const upsertRows = 1

// upsertSQL returns an INSERT of n rows. A new revision of a stored alert
// replaces its row: commit deletes the old row first (which also counts it
// out of its rollup), so the insert never meets its ID. OR ROLLBACK: any
// constraint failure fails the whole transaction, which commit does
// anyway, and it spares SQLite the statement journal an abortable
// multi-row statement needs (a copy of every page it touches).
func upsertSQL(n int) string {
	var b strings.Builder
	b.WriteString("INSERT OR ROLLBACK INTO alerts (" + insertCols + ") VALUES ")
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", nInsertCols), ", ") + ")"
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

// lookupChunk bounds the IDs of one revision lookup.
const lookupChunk = 500

// storedRevisions returns the stored revision of each of ids that exists.
// storedRev is what commit needs of a stored alert: its revision, the
// node that owns its ID, and its history, which the next revision extends.
type storedRev struct {
	rev     uint32
	node    string
	history []byte
}

func storedRevisions(ctx context.Context, tx *sql.Tx, ids []string) (map[string]storedRev, error) {
	revs := make(map[string]storedRev, len(ids))
	for start := 0; start < len(ids); start += lookupChunk {
		chunk := ids[start:min(start+lookupChunk, len(ids))]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, revision, node, history FROM alerts WHERE id IN (`+
			strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			var r storedRev
			if err := rows.Scan(&id, &r.rev, &r.node, &r.history); err != nil {
				rows.Close()
				return nil, err
			}
			revs[id] = r
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return revs, nil
}

// commit writes a group of batches in one transaction. The writer is the
// only one writing, so the revisions it looks up first stay true until it
// commits; sequences go only to revisions actually stored, so they stay
// dense.
func (s *Store) commit(group []*writeReq) ([]store.InsertResult, error) {
	// Not the caller's context: a batch handed to the writer is committed or
	// failed as a whole, never abandoned halfway because one caller left.
	ctx := context.Background()
	s.mu.Lock()
	seq := s.lastSeq
	s.mu.Unlock()
	now := time.Now()

	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin write: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op

	total := 0
	for _, req := range group {
		total += req.batch.Len()
	}
	ids := make([]string, 0, total)
	for _, req := range group {
		for i := range req.batch.Len() {
			ids = append(ids, req.batch.Alert(i).ID)
		}
	}
	revs, err := storedRevisions(ctx, tx, ids)
	if err != nil {
		return nil, fmt.Errorf("look up stored revisions: %w", err)
	}

	// Decide every alert first: which are new revisions, and which stored
	// rows they replace. A later revision of the same ID in this group
	// supersedes an earlier one before it is written (it keeps its
	// sequence number in the results, as a revision the upsert replaced
	// did).
	results := make([]store.InsertResult, len(group))
	type pending struct {
		batch   *store.Batch
		i       int // in batch
		seq     uint64
		history []byte
		gone    bool // a later revision in the group replaced it
	}
	rows := make([]pending, 0, total)
	latest := make(map[string]int, total) // ID -> index in rows of its latest revision
	var replaced []any                    // IDs whose stored row goes
	for gi, req := range group {
		res := &results[gi]
		res.New = make([]store.Stored, 0, req.batch.Len())
		for i := range req.batch.Len() {
			a := req.batch.Alert(i)
			stored, ok := revs[a.ID]
			if ok && stored.node != a.Node {
				res.Foreign = append(res.Foreign, a.ID)
				continue
			}
			if ok && stored.rev >= a.Revision {
				res.Duplicates++
				continue
			}
			// Later revisions of the same alert in this group compare
			// against this one.
			seq++
			prev := stored.history
			if j, again := latest[a.ID]; again {
				rows[j].gone = true
				prev = rows[j].history
			} else if ok {
				replaced = append(replaced, a.ID)
			}
			revs[a.ID] = storedRev{rev: a.Revision, node: a.Node}
			latest[a.ID] = len(rows)
			rows = append(rows, pending{batch: &req.batch, i: i, seq: seq,
				history: store.AppendHistory(prev, &a, seq, now)})
			res.New = append(res.New, store.Stored{Seq: seq, StoredAt: now, Alert: a})
		}
	}

	deltas := store.RollupDeltas{}
	for start := 0; start < len(replaced); start += lookupChunk {
		chunk := replaced[start:min(start+lookupChunk, len(replaced))]
		if _, err := deleteReturning(ctx, tx, deltas, `DELETE FROM alerts WHERE id IN (`+
			strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+`)`, chunk...); err != nil {
			return nil, fmt.Errorf("replace stored revisions: %w", err)
		}
	}
	args := make([]any, 0, upsertRows*nInsertCols)
	n := 0
	// The transaction's handle on the prepared insert, made once: making
	// it costs a lock and an allocation, a microsecond a row here.
	upsert := tx.StmtContext(ctx, s.upsert)
	defer upsert.Close()
	flush := func() error {
		if n == 0 {
			return nil
		}
		var err error
		if n == upsertRows {
			_, err = upsert.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, upsertSQL(n), args...)
		}
		if err != nil {
			return fmt.Errorf("store alerts: %w", err)
		}
		args, n = args[:0], 0
		return nil
	}
	for i := range rows {
		r := &rows[i]
		if r.gone {
			continue
		}
		a := r.batch.Alert(r.i)
		first, last := a.FirstSeen.UnixNano(), a.LastSeen.UnixNano()
		args = append(args, r.seq, a.ID, a.Revision, a.RuleID, int(a.Severity),
			a.Namespace, a.Pod, a.Container, a.Node, a.Workload.Kind, a.Workload.Name,
			first, last, int64(a.Total), now.UnixNano(), r.batch.Body(r.i), r.history)
		n++
		deltas.Add(store.RollupKey{Namespace: a.Namespace, Pod: a.Pod, Node: a.Node, RuleID: a.RuleID,
			Severity: int(a.Severity), Bucket: store.RollupBucketOf(last)}, last, int64(a.Total))
		if n == upsertRows {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if err := applyRollups(ctx, tx, tx.StmtContext(ctx, s.rollup), deltas); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE store_meta SET value = ? WHERE key = 'last_seq'`, seq); err != nil {
		return nil, fmt.Errorf("save last sequence: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	s.mu.Lock()
	s.lastSeq = seq
	s.mu.Unlock()
	return results, nil
}

const selectCols = `seq, id, stored_at, body`

// scanned is what one read went through: the alerts that decoded, and the
// row count and last row of all it read, so that paging and cursors move
// past rows it skipped.
type scanned struct {
	out     []store.Stored
	rows    int
	lastSeq uint64
	lastID  string
}

// scanStored decodes rows, skipping (with a log line and a count) those
// whose body no longer decodes.
func (s *Store) scanStored(rows *sql.Rows) (scanned, error) {
	var sc scanned
	for rows.Next() {
		var (
			seq    uint64
			id     string
			stored int64
			body   []byte
		)
		if err := rows.Scan(&seq, &id, &stored, &body); err != nil {
			return sc, fmt.Errorf("scan alert: %w", err)
		}
		sc.rows++
		sc.lastSeq, sc.lastID = seq, id
		a, err := alertpb.Unmarshal(body)
		if err != nil {
			s.undecodable.Add(1)
			s.log.Error("skipped a stored alert that does not decode", zap.Uint64("seq", seq), zap.String("alert_id", id), zap.Error(err))
			continue
		}
		sc.out = append(sc.out, store.Stored{Seq: seq, StoredAt: time.Unix(0, stored), Alert: a})
	}
	if err := rows.Err(); err != nil {
		return sc, fmt.Errorf("read alerts: %w", err)
	}
	return sc, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *Store) queryStored(ctx context.Context, q querier, query string, args ...any) (scanned, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return scanned{}, err
	}
	defer rows.Close()
	return s.scanStored(rows)
}

// where renders f as SQL conditions (always at least "1"). SQLite without
// statistics prefers any index with an equality match, which for a
// namespace filter means reading the whole namespace and sorting it. With
// offIndex the namespace and pod terms get a unary +, which keeps them out
// of index selection: per-pod lists walk alerts_pod in id order, other
// lists walk the id index and stream reads walk seq order, filtering as
// they go.
func where(f store.Filter, offIndex bool) (string, []any) {
	conds := []string{"1"}
	var args []any
	eq := func(col, v string) {
		if v != "" {
			conds = append(conds, col+" = ?")
			args = append(args, v)
		}
	}
	nsCol, podCol := "namespace", "pod"
	if offIndex {
		nsCol, podCol = "+namespace", "+pod"
	}
	eq(nsCol, f.Namespace)
	eq(podCol, f.Pod)
	eq("container", f.Container)
	eq("workload_kind", f.WorkloadKind)
	eq("workload_name", f.WorkloadName)
	eq("node", f.Node)
	eq("rule_id", f.RuleID)
	if f.MinSeverity > alert.SeverityUnknown {
		conds = append(conds, "severity >= ?")
		args = append(args, int(f.MinSeverity))
	}
	if !f.Since.IsZero() {
		conds = append(conds, "last_seen >= ?")
		args = append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		conds = append(conds, "first_seen < ?")
		args = append(args, f.Until.UnixNano())
	}
	return strings.Join(conds, " AND "), args
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, f store.Filter, opts store.ListOptions) ([]store.Stored, bool, error) {
	if s.isClosed() {
		return nil, false, store.ErrClosed
	}
	w, args := where(f, f.Namespace == "" || f.Pod == "")
	return store.Page(opts, func(before string, want int) ([]store.Stored, int, string, error) {
		q, qargs := w, args
		if before != "" {
			q += " AND id < ?"
			qargs = append(slices.Clip(qargs), before)
		}
		qargs = append(slices.Clip(qargs), want)
		sc, err := s.queryStored(ctx, s.rdb, `SELECT `+selectCols+` FROM alerts WHERE `+q+` ORDER BY id DESC LIMIT ?`, qargs...)
		if err != nil {
			return nil, 0, "", fmt.Errorf("list alerts: %w", err)
		}
		return sc.out, sc.rows, sc.lastID, nil
	})
}

// Summarize implements store.Store. Filters the rollups can answer
// (store.RollupUsable) read them, plus the alerts of the one bucket a Since
// cuts through; others group the alerts themselves.
func (s *Store) Summarize(ctx context.Context, f store.Filter) ([]store.PodSummary, error) {
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	var (
		query string
		args  []any
	)
	if store.RollupUsable(f) {
		first, edge := store.SinceBuckets(f.Since)
		lo := edge
		if !f.Since.IsZero() {
			lo = f.Since.UnixNano()
		}
		g := f
		g.Since = time.Time{}
		w, wargs := where(g, false)
		args = append(append(args, wargs...), first)
		// The alerts of the bucket a Since cuts through. Their namespace and
		// pod terms stay out of index selection (where's offIndex), so the
		// read walks alerts_last_seen over at most one bucket rather than
		// a whole namespace.
		edgeRows := ""
		if !f.Since.IsZero() {
			ew, eargs := where(g, true)
			edgeRows = `UNION ALL
			SELECT namespace, pod, node, rule_id, severity, 1, total, last_seen
			FROM alerts WHERE ` + ew + ` AND last_seen >= ? AND last_seen < ?`
			args = append(append(args, eargs...), lo, edge)
		}
		query = `SELECT namespace, pod, CASE WHEN pod = '' THEN node ELSE '' END, rule_id, severity, SUM(n), SUM(f), MAX(l) FROM (
			SELECT namespace, pod, node, rule_id, severity, alerts AS n, failures AS f, max_last_seen AS l
			FROM alert_rollups WHERE ` + w + ` AND bucket >= ? ` + edgeRows + `)
			GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5`
	} else {
		// Grouping by namespace and pod follows alerts_pod's order.
		w, wargs := where(f, false)
		query = `SELECT namespace, pod, CASE WHEN pod = '' THEN node ELSE '' END AS hnode,
			rule_id, severity, COUNT(*), SUM(total), MAX(last_seen)
			FROM alerts WHERE ` + w + ` GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5`
		args = wargs
	}
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("summarize alerts: %w", err)
	}
	defer rows.Close()
	var out []store.PodSummary
	for rows.Next() {
		var (
			r   store.SummaryRow
			sev int
		)
		if err := rows.Scan(&r.Namespace, &r.Pod, &r.HostNode, &r.RuleID, &sev, &r.Alerts, &r.Failures, &r.LastSeen); err != nil {
			return nil, fmt.Errorf("scan summary: %w", err)
		}
		r.Severity = alert.Severity(sev)
		out = store.AppendSummary(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read summary: %w", err)
	}
	return out, nil
}

// ReadAfter implements store.Store. The last sequence and the rows are read
// in one transaction, so the cursor never passes a row this read could not
// see; with a single writer, sequences commit in order, so no smaller one
// can appear later. Nor does it pass durableSeq: a sequence not yet on the
// disk could, after a power loss, be given to another alert.
func (s *Store) ReadAfter(ctx context.Context, after uint64, f store.Filter, limit int) ([]store.Stored, uint64, error) {
	if s.isClosed() {
		return nil, after, store.ErrClosed
	}
	if limit <= 0 {
		return nil, after, fmt.Errorf("read limit must be positive, got %d", limit)
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, after, fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	var last uint64
	if err := tx.QueryRowContext(ctx, `SELECT value FROM store_meta WHERE key = 'last_seq'`).Scan(&last); err != nil {
		return nil, after, fmt.Errorf("read last sequence: %w", err)
	}
	last = min(last, s.durableSeq.Load())
	if last <= after {
		return nil, after, nil
	}
	w, args := where(f, true)
	args = append([]any{after, last}, append(args, limit)...)
	sc, err := s.queryStored(ctx, tx, `SELECT `+selectCols+` FROM alerts WHERE seq > ? AND seq <= ? AND `+w+
		` ORDER BY seq LIMIT ?`, args...)
	if err != nil {
		return nil, after, fmt.Errorf("read alerts after %d: %w", after, err)
	}
	// A full read may end in skipped rows: the cursor is the last row read,
	// past them, so a row that never decodes never stalls the stream.
	if sc.rows == limit {
		return sc.out, sc.lastSeq, nil
	}
	return sc.out, last, nil
}

// LastSeq implements store.Store: the last sequence on the disk (durableSeq).
func (s *Store) LastSeq(ctx context.Context) (uint64, error) {
	if s.isClosed() {
		return 0, store.ErrClosed
	}
	return s.durableSeq.Load(), nil
}

// retainChunk bounds how many rows one delete transaction removes, so that
// retention never holds the write lock long enough to stall ingest.
const retainChunk = 5000

// Retain implements store.Store.
func (s *Store) Retain(ctx context.Context, r store.Retention) (int64, error) {
	if s.isClosed() {
		return 0, store.ErrClosed
	}
	var total int64
	del := func(query string, args ...any) error {
		for {
			n, err := s.retainDelete(ctx, query, args...)
			if err != nil {
				return err
			}
			total += n
			if n < retainChunk {
				return nil
			}
		}
	}
	if r.MaxAge > 0 {
		cut := time.Now().Add(-r.MaxAge).UnixNano()
		if err := del(fmt.Sprintf(`DELETE FROM alerts WHERE seq IN (SELECT seq FROM alerts WHERE last_seen < ? LIMIT %d)`, retainChunk), cut); err != nil {
			return total, fmt.Errorf("delete alerts older than %s: %w", r.MaxAge, err)
		}
	}
	if r.MaxAlertsPerNode > 0 {
		n, err := s.retainPerNode(ctx, r.MaxAlertsPerNode)
		total += n
		if err != nil {
			return total, err
		}
	}
	if r.MaxAlerts > 0 {
		var n int64
		if err := s.wdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM alerts`).Scan(&n); err != nil {
			return total, fmt.Errorf("count alerts: %w", err)
		}
		n, err := store.DeleteOldest(n-r.MaxAlerts, retainChunk, func(chunk int64) (int64, error) {
			return s.retainDelete(ctx, `DELETE FROM alerts WHERE seq IN (SELECT seq FROM alerts ORDER BY seq LIMIT ?)`, chunk)
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("delete oldest alerts: %w", err)
		}
	}
	return total, nil
}

// retainDelete runs one of Retain's deletes (at most retainChunk rows) and
// takes the deleted alerts out of their rollups, in one transaction.
func (s *Store) retainDelete(ctx context.Context, query string, args ...any) (int64, error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin retention delete: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	deltas := store.RollupDeltas{}
	n, err := deleteReturning(ctx, tx, deltas, query, args...)
	if err != nil {
		return 0, err
	}
	if err := applyRollups(ctx, tx, tx.StmtContext(ctx, s.rollup), deltas); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit retention delete: %w", err)
	}
	return n, nil
}

// retainPerNode deletes, for each node over quota, its alerts stored
// longest ago.
func (s *Store) retainPerNode(ctx context.Context, quota int64) (int64, error) {
	rows, err := s.wdb.QueryContext(ctx, `SELECT node, COUNT(*) FROM alerts GROUP BY node HAVING COUNT(*) > ?`, quota)
	if err != nil {
		return 0, fmt.Errorf("count alerts per node: %w", err)
	}
	over, err := store.NodeExcess(rows, quota)
	rows.Close()
	if err != nil {
		return 0, fmt.Errorf("count alerts per node: %w", err)
	}
	var total int64
	for node, excess := range over {
		n, err := store.DeleteOldest(excess, retainChunk, func(chunk int64) (int64, error) {
			return s.retainDelete(ctx, `DELETE FROM alerts WHERE seq IN (SELECT seq FROM alerts WHERE node = ? ORDER BY seq LIMIT ?)`, node, chunk)
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("delete oldest alerts of node %q: %w", node, err)
		}
	}
	return total, nil
}
