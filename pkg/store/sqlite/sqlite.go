// Package sqlite is the single-file store of the collector: alerts in one
// SQLite database (pure Go, modernc.org/sqlite) in WAL mode, so queries and
// the SIEM stream read while the one writer goroutine commits batches. It
// implements store.Store.
//
// Writes go through one goroutine that groups the batches waiting at that
// moment into one transaction: every batch still gets its own answer only
// after the commit (synchronous=FULL, so after the fsync), but many agents
// share one fsync. A batch that fails validation never reaches the writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
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
}

// Store is a store.Store over one SQLite file.
type Store struct {
	log    *zap.Logger
	wdb    *sql.DB // one connection, used by the writer goroutine and Retain
	rdb    *sql.DB // read-only connections
	maxGrp int

	reqs   chan *writeReq
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex // guards lastSeq and closed
	lastSeq uint64
	closed  bool
}

var _ store.Store = (*Store)(nil)

type writeReq struct {
	batch []alert.Alert
	body  [][]byte
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
	// FULL: in WAL mode NORMAL may lose the last commits on power loss, and
	// an acknowledged batch is gone from the agent's spool.
	q.Set("_synchronous", "FULL")
	q.Set("_txlock", "immediate")
	// Statement journals stay in memory instead of temp files; a bigger
	// page cache keeps the indexes' hot pages.
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", "cache_size(-16384)")
	wdb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	if err := migrate(ctx, wdb); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("migrate sqlite %s: %w", path, err)
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
	rdb.SetMaxOpenConns(opts.Readers)
	rdb.SetMaxIdleConns(opts.Readers)
	rdb.SetConnMaxIdleTime(0)
	rdb.SetConnMaxLifetime(0)

	wctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		log:     opts.Logger,
		wdb:     wdb,
		rdb:     rdb,
		maxGrp:  opts.MaxGroupAlerts,
		reqs:    make(chan *writeReq),
		cancel:  cancel,
		done:    make(chan struct{}),
		lastSeq: last,
	}
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
	return errors.Join(s.rdb.Close(), s.wdb.Close())
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Insert implements store.Store.
func (s *Store) Insert(ctx context.Context, batch []alert.Alert) (store.InsertResult, error) {
	if len(batch) == 0 {
		return store.InsertResult{}, nil
	}
	// Validate and encode here, in the caller's goroutine, so that a bad
	// batch fails alone and the writer does only database work.
	req := &writeReq{batch: batch, body: make([][]byte, len(batch)), res: make(chan writeRes, 1)}
	for i := range batch {
		if err := batch[i].Validate(); err != nil {
			return store.InsertResult{}, fmt.Errorf("alert %d: %w: %w", i, store.ErrInvalid, err)
		}
		b, err := proto.Marshal(alertpb.ToProto(&batch[i]))
		if err != nil {
			return store.InsertResult{}, fmt.Errorf("encode alert %s: %w", batch[i].ID, err)
		}
		req.body[i] = b
	}
	if s.isClosed() {
		return store.InsertResult{}, store.ErrClosed
	}
	select {
	case s.reqs <- req:
	case <-s.done:
		return store.InsertResult{}, store.ErrClosed
	case <-ctx.Done():
		return store.InsertResult{}, ctx.Err()
	}
	// Once the writer has the batch, wait for its answer even if ctx ends:
	// the caller must learn whether the batch committed.
	res := <-req.res
	return res.r, res.err
}

// writer owns the write connection: it takes the batches waiting, commits
// them in one transaction and answers each.
func (s *Store) writer(ctx context.Context) {
	defer close(s.done)
	for {
		var first *writeReq
		select {
		case first = <-s.reqs:
		case <-ctx.Done():
			return
		}
		group := []*writeReq{first}
		n := len(first.batch)
	drain:
		for n < s.maxGrp {
			select {
			case r := <-s.reqs:
				group = append(group, r)
				n += len(r.batch)
			default:
				break drain
			}
		}
		results, err := s.commit(group)
		for i, r := range group {
			if err != nil {
				r.res <- writeRes{err: err}
				continue
			}
			r.res <- writeRes{r: results[i]}
		}
	}
}

// upsertCols are the columns of one alert row, in statement order.
const upsertCols = `seq, id, revision, rule_id, severity, namespace, pod, container, node,
	workload_kind, workload_name, first_seen, last_seen, total, stored_at, body`

const nUpsertCols = 16

// upsertRows is how many rows one INSERT statement carries: fewer
// statements is most of the write speed with this driver.
const upsertRows = 64

// upsertSQL returns an INSERT of n rows that replaces the row of an existing
// ID. Only rows that commit decided are new revisions reach it.
func upsertSQL(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO alerts (" + upsertCols + ") VALUES ")
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", nUpsertCols), ", ") + ")"
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	b.WriteString(` ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, revision = excluded.revision,
	rule_id = excluded.rule_id, severity = excluded.severity, namespace = excluded.namespace, pod = excluded.pod,
	container = excluded.container, node = excluded.node, workload_kind = excluded.workload_kind,
	workload_name = excluded.workload_name, first_seen = excluded.first_seen, last_seen = excluded.last_seen,
	total = excluded.total, stored_at = excluded.stored_at, body = excluded.body`)
	return b.String()
}

// lookupChunk bounds the IDs of one revision lookup.
const lookupChunk = 500

// storedRevisions returns the stored revision of each of ids that exists.
// storedRev is what commit needs of a stored alert: its revision and the
// node that owns its ID.
type storedRev struct {
	rev  uint32
	node string
}

func storedRevisions(ctx context.Context, tx *sql.Tx, ids []string) (map[string]storedRev, error) {
	revs := make(map[string]storedRev, len(ids))
	for start := 0; start < len(ids); start += lookupChunk {
		chunk := ids[start:min(start+lookupChunk, len(ids))]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, revision, node FROM alerts WHERE id IN (`+
			strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			var r storedRev
			if err := rows.Scan(&id, &r.rev, &r.node); err != nil {
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

	var ids []string
	for _, req := range group {
		for i := range req.batch {
			ids = append(ids, req.batch[i].ID)
		}
	}
	revs, err := storedRevisions(ctx, tx, ids)
	if err != nil {
		return nil, fmt.Errorf("look up stored revisions: %w", err)
	}

	results := make([]store.InsertResult, len(group))
	args := make([]any, 0, upsertRows*nUpsertCols)
	rows := 0
	flush := func() error {
		if rows == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, upsertSQL(rows), args...); err != nil {
			return fmt.Errorf("store alerts: %w", err)
		}
		args, rows = args[:0], 0
		return nil
	}
	for gi, req := range group {
		res := &results[gi]
		for i := range req.batch {
			a := &req.batch[i]
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
			revs[a.ID] = storedRev{a.Revision, a.Node}
			seq++
			args = append(args, seq, a.ID, a.Revision, a.RuleID, int(a.Severity),
				a.Namespace, a.Pod, a.Container, a.Node, a.Workload.Kind, a.Workload.Name,
				a.FirstSeen.UnixNano(), a.LastSeen.UnixNano(), int64(a.Total), now.UnixNano(), req.body[i])
			rows++
			res.New = append(res.New, store.Stored{Seq: seq, StoredAt: now, Alert: *a})
			if rows == upsertRows {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := flush(); err != nil {
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

const selectCols = `seq, stored_at, body`

func scanStored(rows *sql.Rows) ([]store.Stored, error) {
	var out []store.Stored
	for rows.Next() {
		var (
			st     store.Stored
			stored int64
			body   []byte
		)
		if err := rows.Scan(&st.Seq, &stored, &body); err != nil {
			return nil, fmt.Errorf("scan alert: %w", err)
		}
		var p errnowatchv1.Alert
		if err := proto.Unmarshal(body, &p); err != nil {
			return nil, fmt.Errorf("decode alert at sequence %d: %w", st.Seq, err)
		}
		a, err := alertpb.FromProto(&p)
		if err != nil {
			return nil, fmt.Errorf("decode alert at sequence %d: %w", st.Seq, err)
		}
		st.Alert = a
		st.StoredAt = time.Unix(0, stored)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	return out, nil
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
	if opts.Limit <= 0 {
		return nil, false, fmt.Errorf("list limit must be positive, got %d", opts.Limit)
	}
	w, args := where(f, f.Namespace == "" || f.Pod == "")
	if opts.BeforeID != "" {
		w += " AND id < ?"
		args = append(args, opts.BeforeID)
	}
	args = append(args, opts.Limit+1)
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+selectCols+` FROM alerts WHERE `+w+` ORDER BY id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, false, fmt.Errorf("list alerts: %w", err)
	}
	defer rows.Close()
	page, err := scanStored(rows)
	if err != nil {
		return nil, false, err
	}
	more := len(page) > opts.Limit
	if more {
		page = page[:opts.Limit]
	}
	return page, more, nil
}

// Summarize implements store.Store.
func (s *Store) Summarize(ctx context.Context, f store.Filter) ([]store.PodSummary, error) {
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	// Grouping by namespace and pod follows alerts_pod's order.
	w, args := where(f, false)
	rows, err := s.rdb.QueryContext(ctx, `SELECT namespace, pod, CASE WHEN pod = '' THEN node ELSE '' END AS hnode,
		rule_id, severity, COUNT(*), SUM(total), MAX(last_seen)
		FROM alerts WHERE `+w+` GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5`, args...)
	if err != nil {
		return nil, fmt.Errorf("summarize alerts: %w", err)
	}
	defer rows.Close()
	var out []store.PodSummary
	for rows.Next() {
		var (
			ns, pod, node, rule string
			sev                 int
			n, failures         uint64
			last                int64
		)
		if err := rows.Scan(&ns, &pod, &node, &rule, &sev, &n, &failures, &last); err != nil {
			return nil, fmt.Errorf("scan summary: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].Namespace != ns || out[len(out)-1].Pod != pod || out[len(out)-1].Node != node {
			out = append(out, store.PodSummary{Namespace: ns, Pod: pod, Node: node})
		}
		p := &out[len(out)-1]
		severity := alert.Severity(sev)
		p.Alerts += n
		p.Failures += failures
		p.MaxSeverity = max(p.MaxSeverity, severity)
		if lt := time.Unix(0, last); lt.After(p.LastSeen) {
			p.LastSeen = lt
		}
		if severity > alert.SeverityUnknown && severity <= alert.SeverityCritical {
			p.BySeverity[severity] += n
		}
		if len(p.Rules) == 0 || p.Rules[len(p.Rules)-1].RuleID != rule {
			p.Rules = append(p.Rules, store.RuleSummary{RuleID: rule})
		}
		r := &p.Rules[len(p.Rules)-1]
		r.Alerts += n
		r.Failures += failures
		r.MaxSeverity = max(r.MaxSeverity, severity)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read summary: %w", err)
	}
	return out, nil
}

// ReadAfter implements store.Store. The last sequence and the rows are read
// in one transaction, so the cursor never passes a row this read could not
// see; with a single writer, sequences commit in order, so no smaller one
// can appear later.
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
	if last <= after {
		return nil, after, nil
	}
	w, args := where(f, true)
	args = append([]any{after, last}, append(args, limit)...)
	rows, err := tx.QueryContext(ctx, `SELECT `+selectCols+` FROM alerts WHERE seq > ? AND seq <= ? AND `+w+
		` ORDER BY seq LIMIT ?`, args...)
	if err != nil {
		return nil, after, fmt.Errorf("read alerts after %d: %w", after, err)
	}
	defer rows.Close()
	revs, err := scanStored(rows)
	if err != nil {
		return nil, after, err
	}
	if len(revs) == limit {
		return revs, revs[len(revs)-1].Seq, nil
	}
	return revs, last, nil
}

// LastSeq implements store.Store.
func (s *Store) LastSeq(ctx context.Context) (uint64, error) {
	if s.isClosed() {
		return 0, store.ErrClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeq, nil
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
			res, err := s.wdb.ExecContext(ctx, query, args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
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
		if excess := n - r.MaxAlerts; excess > 0 {
			for excess > 0 {
				chunk := min(excess, retainChunk)
				res, err := s.wdb.ExecContext(ctx, `DELETE FROM alerts WHERE seq IN (SELECT seq FROM alerts ORDER BY seq LIMIT ?)`, chunk)
				if err != nil {
					return total, fmt.Errorf("delete oldest alerts: %w", err)
				}
				got, err := res.RowsAffected()
				if err != nil {
					return total, fmt.Errorf("delete oldest alerts: %w", err)
				}
				total += got
				excess -= got
				if got == 0 {
					break
				}
			}
		}
	}
	return total, nil
}

// retainPerNode deletes, for each node over quota, its alerts stored
// longest ago.
func (s *Store) retainPerNode(ctx context.Context, quota int64) (int64, error) {
	rows, err := s.wdb.QueryContext(ctx, `SELECT node, COUNT(*) FROM alerts GROUP BY node HAVING COUNT(*) > ?`, quota)
	if err != nil {
		return 0, fmt.Errorf("count alerts per node: %w", err)
	}
	over := map[string]int64{}
	for rows.Next() {
		var node string
		var n int64
		if err := rows.Scan(&node, &n); err != nil {
			rows.Close()
			return 0, fmt.Errorf("count alerts per node: %w", err)
		}
		over[node] = n - quota
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("count alerts per node: %w", err)
	}
	var total int64
	for node, excess := range over {
		for excess > 0 {
			res, err := s.wdb.ExecContext(ctx, `DELETE FROM alerts WHERE seq IN (SELECT seq FROM alerts WHERE node = ? ORDER BY seq LIMIT ?)`, node, min(excess, retainChunk))
			if err != nil {
				return total, fmt.Errorf("delete oldest alerts of node %q: %w", node, err)
			}
			got, err := res.RowsAffected()
			if err != nil {
				return total, fmt.Errorf("delete oldest alerts of node %q: %w", node, err)
			}
			total += got
			excess -= got
			if got == 0 {
				break
			}
		}
	}
	return total, nil
}
