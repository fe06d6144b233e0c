// Package postgres is the shared store of a scaled-out collector: several
// collector replicas write alerts into one PostgreSQL database and any of
// them serves queries and the SIEM stream. It implements store.Store with
// the same semantics as the SQLite store.
//
// The sequence scheme. Every stored revision gets the next value of one
// global counter, the last_seq row of store_meta, and the SIEM stream must
// never hand out a sequence while a smaller one can still appear. An insert
// transaction therefore begins by locking that row (SELECT ... FOR UPDATE)
// and holds the lock until it commits: writers of all replicas take turns,
// each one reads the counter its predecessor committed, and sequences
// become visible in exactly the order they were given — gap-free and
// monotonic. ReadAfter reads the counter and the rows in one REPEATABLE
// READ snapshot: every transaction that committed before the snapshot is
// fully visible, and every one still running holds the lock and will get
// sequences above the counter the snapshot saw, so the returned cursor
// never passes a row that commits late. Writers serialize only for the
// short insert transaction of one batch; the revision look-up happens under
// the same lock, so the same (alert ID, revision) sent to two replicas is
// stored once and the other copy counts as a duplicate.
//
// Every insert also sends NOTIFY on channel errnowatch_alerts with the new
// counter; Watch LISTENs there so that a replica can wake its stream
// subscribers for alerts another replica stored. The notification is only a
// wake-up: subscribers catch up by ReadAfter, which stays the truth.
//
// Summary rollups (migration 3) are kept by statement triggers in the
// writing transaction; retention deletes take the same last_seq lock as
// inserts, so their rollup updates never deadlock with a writer's. Bodies are
// alertpb.Marshal's protobuf; JSON bodies of older versions still decode.
//
// The schema is versioned (schema_migrations) and migrated on Open under an
// advisory lock, so replicas starting together migrate once.
package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/store"
)

// NotifyChannel is the LISTEN/NOTIFY channel inserts announce on.
const NotifyChannel = "errnowatch_alerts"

// Options tunes a store; the zero value is fine.
type Options struct {
	Logger *zap.Logger
	// MaxConns caps the connection pool; default 8.
	MaxConns int32
}

// Store is a store.Store over a PostgreSQL database shared by replicas.
type Store struct {
	log  *zap.Logger
	pool *pgxpool.Pool

	mu     sync.RWMutex // held for reading by every call, for writing by Close
	closed bool

	undecodable atomic.Uint64
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Health = (*Store)(nil)
)

// Ping implements store.Health: the database answers a query now.
func (s *Store) Ping(ctx context.Context) error {
	leave, err := s.enter()
	if err != nil {
		return err
	}
	defer leave()
	var one int
	if err := s.pool.QueryRow(ctx, `SELECT 1 FROM store_meta WHERE key = 'last_seq'`).Scan(&one); err != nil {
		return fmt.Errorf("query postgres: %w", err)
	}
	return nil
}

// UndecodableRows implements store.Health.
func (s *Store) UndecodableRows() uint64 { return s.undecodable.Load() }

// Open connects to dsn (a postgres:// URL), applies pending schema
// migrations and returns the store.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 8
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse postgres URL: %w", err)
	}
	cfg.MaxConns = opts.MaxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate postgres %s@%s/%s: %w", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	return &Store{log: opts.Logger, pool: pool}, nil
}

// Close waits for calls in flight and closes the pool.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.pool.Close()
	return nil
}

// enter holds the store open for one call; callers must call the returned
// func when done.
func (s *Store) enter() (func(), error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, store.ErrClosed
	}
	return s.mu.RUnlock, nil
}

// Insert implements store.Store.
func (s *Store) Insert(ctx context.Context, batch store.Batch) (store.InsertResult, error) {
	n := batch.Len()
	if n == 0 {
		return store.InsertResult{}, nil
	}
	ids := make([]string, n)
	for i := range n {
		ids[i] = batch.Alert(i).ID
	}
	leave, err := s.enter()
	if err != nil {
		return store.InsertResult{}, err
	}
	defer leave()
	var res store.InsertResult
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		res = store.InsertResult{}
		var seq int64
		// The row lock orders writers across replicas; see the package doc.
		if err := tx.QueryRow(ctx, `SELECT value FROM store_meta WHERE key = 'last_seq' FOR UPDATE`).Scan(&seq); err != nil {
			return fmt.Errorf("lock sequence: %w", err)
		}
		type storedRev struct {
			rev     int64
			node    string
			history []byte
		}
		revs := make(map[string]storedRev, n)
		rows, err := tx.Query(ctx, `SELECT id, revision, node, history FROM alerts WHERE id = ANY($1)`, ids)
		if err != nil {
			return fmt.Errorf("look up stored revisions: %w", err)
		}
		for rows.Next() {
			var id string
			var r storedRev
			if err := rows.Scan(&id, &r.rev, &r.node, &r.history); err != nil {
				rows.Close()
				return fmt.Errorf("look up stored revisions: %w", err)
			}
			revs[id] = r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("look up stored revisions: %w", err)
		}
		now := time.Now()
		var c cols
		at := make(map[string]int, n) // row of an ID in c
		for i := range n {
			a := batch.Alert(i)
			stored, ok := revs[a.ID]
			if ok && stored.node != a.Node {
				res.Foreign = append(res.Foreign, a.ID)
				continue
			}
			if ok && stored.rev >= int64(a.Revision) {
				res.Duplicates++
				continue
			}
			seq++
			// One statement cannot upsert a row twice: a later revision in
			// the same batch takes the earlier one's place, and extends its
			// history.
			if k, ok := at[a.ID]; ok {
				c.set(k, seq, &a, now, batch.Body(i), store.AppendHistory(c.history[k], &a, uint64(seq), now))
			} else {
				at[a.ID] = c.add(seq, &a, now, batch.Body(i), store.AppendHistory(stored.history, &a, uint64(seq), now))
			}
			revs[a.ID] = storedRev{rev: int64(a.Revision), node: a.Node}
			res.New = append(res.New, store.Stored{Seq: uint64(seq), StoredAt: now, Alert: a})
		}
		if len(res.New) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, upsertSQL, c.seq, c.id, c.revision, c.ruleID, c.severity, c.namespace, c.pod,
			c.container, c.node, c.wkind, c.wname, c.first, c.last, c.total, c.stored, c.body, c.history); err != nil {
			return fmt.Errorf("store alerts: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE store_meta SET value = $1 WHERE key = 'last_seq'`, seq); err != nil {
			return fmt.Errorf("save last sequence: %w", err)
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, NotifyChannel, strconv.FormatInt(seq, 10)); err != nil {
			return fmt.Errorf("notify: %w", err)
		}
		return nil
	})
	if err != nil {
		return store.InsertResult{}, fmt.Errorf("insert batch: %w", err)
	}
	return res, nil
}

// cols holds a batch column-wise for one INSERT ... SELECT FROM unnest.
type cols struct {
	seq, revision, first, last, total, stored []int64
	severity                                  []int32
	id, ruleID, namespace, pod, container     []string
	node, wkind, wname                        []string
	body, history                             [][]byte
}

func (c *cols) add(seq int64, a *alert.Alert, now time.Time, body, history []byte) int {
	c.seq = append(c.seq, 0)
	c.id = append(c.id, "")
	c.revision = append(c.revision, 0)
	c.ruleID = append(c.ruleID, "")
	c.severity = append(c.severity, 0)
	c.namespace = append(c.namespace, "")
	c.pod = append(c.pod, "")
	c.container = append(c.container, "")
	c.node = append(c.node, "")
	c.wkind = append(c.wkind, "")
	c.wname = append(c.wname, "")
	c.first = append(c.first, 0)
	c.last = append(c.last, 0)
	c.total = append(c.total, 0)
	c.stored = append(c.stored, 0)
	c.body = append(c.body, nil)
	c.history = append(c.history, nil)
	k := len(c.seq) - 1
	c.set(k, seq, a, now, body, history)
	return k
}

func (c *cols) set(k int, seq int64, a *alert.Alert, now time.Time, body, history []byte) {
	c.seq[k], c.id[k], c.revision[k], c.ruleID[k] = seq, a.ID, int64(a.Revision), a.RuleID
	c.severity[k], c.namespace[k], c.pod[k], c.container[k] = int32(a.Severity), a.Namespace, a.Pod, a.Container
	c.node[k], c.wkind[k], c.wname[k] = a.Node, a.Workload.Kind, a.Workload.Name
	c.first[k], c.last[k], c.total[k] = a.FirstSeen.UnixNano(), a.LastSeen.UnixNano(), int64(a.Total)
	c.stored[k], c.body[k], c.history[k] = now.UnixNano(), body, history
}

const upsertSQL = `INSERT INTO alerts (seq, id, revision, rule_id, severity, namespace, pod, container, node,
	workload_kind, workload_name, first_seen, last_seen, total, stored_at, body, history)
	SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::integer[], $6::text[], $7::text[],
	$8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bytea[],
	$17::bytea[])
	ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, revision = excluded.revision,
	rule_id = excluded.rule_id, severity = excluded.severity, namespace = excluded.namespace, pod = excluded.pod,
	container = excluded.container, node = excluded.node, workload_kind = excluded.workload_kind,
	workload_name = excluded.workload_name, first_seen = excluded.first_seen, last_seen = excluded.last_seen,
	total = excluded.total, stored_at = excluded.stored_at, body = excluded.body, history = excluded.history`

const selectCols = `seq, id, stored_at, body`

// decodeBody reads alertpb.Marshal's protobuf, and the JSON of alert.Alert
// that migration 1's rows hold: a protobuf Alert never starts with '{'
// (0x7b would be field 15 with wire type 3, a group, and field 15 is a
// string; Marshal writes field 1 first anyway).
func decodeBody(b []byte) (alert.Alert, error) {
	if len(b) > 0 && b[0] == '{' {
		var a alert.Alert
		if err := json.Unmarshal(b, &a); err != nil {
			return alert.Alert{}, fmt.Errorf("decode alert: json: %w", err)
		}
		return a, nil
	}
	return alertpb.Unmarshal(b)
}

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
func (s *Store) scanStored(rows pgx.Rows) (scanned, error) {
	defer rows.Close()
	var sc scanned
	for rows.Next() {
		var (
			seq, stored int64
			id          string
			body        []byte
		)
		if err := rows.Scan(&seq, &id, &stored, &body); err != nil {
			return sc, fmt.Errorf("scan alert: %w", err)
		}
		sc.rows++
		sc.lastSeq, sc.lastID = uint64(seq), id
		a, err := decodeBody(body)
		if err != nil {
			s.undecodable.Add(1)
			s.log.Error("skipped a stored alert that does not decode", zap.Int64("seq", seq), zap.String("alert_id", id), zap.Error(err))
			continue
		}
		sc.out = append(sc.out, store.Stored{Seq: uint64(seq), StoredAt: time.Unix(0, stored), Alert: a})
	}
	if err := rows.Err(); err != nil {
		return sc, fmt.Errorf("read alerts: %w", err)
	}
	return sc, nil
}

// where renders f as SQL conditions (always at least "true"), numbering
// placeholders after the first n arguments.
func where(f store.Filter, args []any) (string, []any) {
	conds := []string{"true"}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	eq := func(col, v string) {
		if v != "" {
			conds = append(conds, col+" = "+arg(v))
		}
	}
	eq("namespace", f.Namespace)
	eq("pod", f.Pod)
	eq("container", f.Container)
	eq("workload_kind", f.WorkloadKind)
	eq("workload_name", f.WorkloadName)
	eq("node", f.Node)
	eq("rule_id", f.RuleID)
	if f.MinSeverity > alert.SeverityUnknown {
		conds = append(conds, "severity >= "+arg(int32(f.MinSeverity)))
	}
	if !f.Since.IsZero() {
		conds = append(conds, "last_seen >= "+arg(f.Since.UnixNano()))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "first_seen < "+arg(f.Until.UnixNano()))
	}
	return strings.Join(conds, " AND "), args
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, f store.Filter, opts store.ListOptions) ([]store.Stored, bool, error) {
	leave, err := s.enter()
	if err != nil {
		return nil, false, err
	}
	defer leave()
	return store.Page(opts, func(before string, want int) ([]store.Stored, int, string, error) {
		w, args := where(f, nil)
		if before != "" {
			args = append(args, before)
			w += " AND id < $" + strconv.Itoa(len(args))
		}
		args = append(args, want)
		// id is COLLATE "C" (migration 1), so IDs compare bytewise as ULIDs
		// must, whatever the database's collation.
		rows, err := s.pool.Query(ctx, `SELECT `+selectCols+` FROM alerts WHERE `+w+
			` ORDER BY id DESC LIMIT $`+strconv.Itoa(len(args)), args...)
		if err != nil {
			return nil, 0, "", fmt.Errorf("list alerts: %w", err)
		}
		sc, err := s.scanStored(rows)
		if err != nil {
			return nil, 0, "", err
		}
		return sc.out, sc.rows, sc.lastID, nil
	})
}

// Summarize implements store.Store. Filters the rollups can answer
// (store.RollupUsable) read them, plus the alerts of the one bucket a Since
// cuts through; others group the alerts themselves.
func (s *Store) Summarize(ctx context.Context, f store.Filter) ([]store.PodSummary, error) {
	leave, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
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
		w, wargs := where(g, nil)
		n := len(wargs)
		args = append(wargs, first)
		ph := func(i int) string { return "$" + strconv.Itoa(n+i) }
		// The alerts of the bucket a Since cuts through.
		edgeRows := ""
		if !f.Since.IsZero() {
			args = append(args, lo, edge)
			edgeRows = `UNION ALL
			SELECT namespace, pod, node, rule_id, severity, 1, total, last_seen
			FROM alerts WHERE ` + w + ` AND last_seen >= ` + ph(2) + ` AND last_seen < ` + ph(3)
		}
		query = `SELECT namespace, pod, CASE WHEN pod = '' THEN node ELSE '' END, rule_id, severity,
			SUM(n)::bigint, SUM(f)::bigint, MAX(l) FROM (
			SELECT namespace, pod, node, rule_id, severity, alerts AS n, failures AS f, max_last_seen AS l
			FROM alert_rollups WHERE ` + w + ` AND bucket >= ` + ph(1) + ` ` + edgeRows + `) AS g
			GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5`
	} else {
		w, wargs := where(f, nil)
		query = `SELECT namespace, pod, CASE WHEN pod = '' THEN node ELSE '' END AS hnode,
			rule_id, severity, COUNT(*), SUM(total)::bigint, MAX(last_seen)
			FROM alerts WHERE ` + w + ` GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5`
		args = wargs
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("summarize alerts: %w", err)
	}
	defer rows.Close()
	var out []store.PodSummary
	for rows.Next() {
		var (
			r                     store.SummaryRow
			sev                   int32
			n, failures, lastSeen int64
		)
		if err := rows.Scan(&r.Namespace, &r.Pod, &r.HostNode, &r.RuleID, &sev, &n, &failures, &lastSeen); err != nil {
			return nil, fmt.Errorf("scan summary: %w", err)
		}
		r.Severity, r.Alerts, r.Failures, r.LastSeen = alert.Severity(sev), uint64(n), uint64(failures), lastSeen
		out = store.AppendSummary(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read summary: %w", err)
	}
	return out, nil
}

// ReadAfter implements store.Store. The counter and the rows come from one
// REPEATABLE READ snapshot; see the package doc for why the cursor never
// passes a row that commits later.
func (s *Store) ReadAfter(ctx context.Context, after uint64, f store.Filter, limit int) ([]store.Stored, uint64, error) {
	leave, err := s.enter()
	if err != nil {
		return nil, after, err
	}
	defer leave()
	if limit <= 0 {
		return nil, after, fmt.Errorf("read limit must be positive, got %d", limit)
	}
	var (
		revs   []store.Stored
		cursor = after
	)
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var last int64
		if err := tx.QueryRow(ctx, `SELECT value FROM store_meta WHERE key = 'last_seq'`).Scan(&last); err != nil {
			return fmt.Errorf("read last sequence: %w", err)
		}
		if uint64(last) <= after {
			return nil
		}
		w, args := where(f, []any{int64(after), last})
		args = append(args, limit)
		rows, err := tx.Query(ctx, `SELECT `+selectCols+` FROM alerts WHERE seq > $1 AND seq <= $2 AND `+w+
			` ORDER BY seq LIMIT $`+strconv.Itoa(len(args)), args...)
		if err != nil {
			return fmt.Errorf("read alerts after %d: %w", after, err)
		}
		sc, err := s.scanStored(rows)
		if err != nil {
			return err
		}
		revs = sc.out
		// A full read may end in skipped rows: the cursor is the last row
		// read, past them, so a row that never decodes never stalls the
		// stream.
		if sc.rows == limit {
			cursor = sc.lastSeq
		} else {
			cursor = uint64(last)
		}
		return nil
	})
	if err != nil {
		return nil, after, err
	}
	return revs, cursor, nil
}

// LastSeq implements store.Store.
func (s *Store) LastSeq(ctx context.Context) (uint64, error) {
	leave, err := s.enter()
	if err != nil {
		return 0, err
	}
	defer leave()
	var last int64
	if err := s.pool.QueryRow(ctx, `SELECT value FROM store_meta WHERE key = 'last_seq'`).Scan(&last); err != nil {
		return 0, fmt.Errorf("read last sequence: %w", err)
	}
	return uint64(last), nil
}

// retainChunk bounds how many rows one delete removes, so retention never
// holds many row locks at once.
const retainChunk = 5000

// Retain implements store.Store. Several replicas may run it at once: each
// delete is bounded and deleting a row twice deletes it once.
func (s *Store) Retain(ctx context.Context, r store.Retention) (int64, error) {
	leave, err := s.enter()
	if err != nil {
		return 0, err
	}
	defer leave()
	var total int64
	if r.MaxAge > 0 {
		cut := time.Now().Add(-r.MaxAge).UnixNano()
		for {
			tag, err := s.deleteLocked(ctx, `DELETE FROM alerts WHERE seq IN (SELECT seq FROM alerts WHERE last_seen < $1 LIMIT $2)`, cut, retainChunk)
			if err != nil {
				return total, fmt.Errorf("delete alerts older than %s: %w", r.MaxAge, err)
			}
			total += tag.RowsAffected()
			if tag.RowsAffected() < retainChunk {
				break
			}
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
		if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM alerts`).Scan(&n); err != nil {
			return total, fmt.Errorf("count alerts: %w", err)
		}
		n, err := store.DeleteOldest(n-r.MaxAlerts, retainChunk, func(chunk int64) (int64, error) {
			tag, err := s.deleteLocked(ctx, `DELETE FROM alerts WHERE seq IN (SELECT seq FROM alerts ORDER BY seq LIMIT $1)`, chunk)
			return tag.RowsAffected(), err
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("delete oldest alerts: %w", err)
		}
	}
	return total, nil
}

// deleteLocked runs one bounded delete holding the writers' lock (the
// last_seq row, see the package doc). The rollup triggers of a delete and of
// an insert update the same rollup rows in different orders; taking turns
// with the writers keeps them from deadlocking.
func (s *Store) deleteLocked(ctx context.Context, query string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT value FROM store_meta WHERE key = 'last_seq' FOR UPDATE`); err != nil {
			return fmt.Errorf("lock sequence: %w", err)
		}
		var err error
		tag, err = tx.Exec(ctx, query, args...)
		return err
	})
	return tag, err
}

// Watch calls fn with the store's last sequence whenever any replica stores
// alerts, until ctx ends; it returns ctx's error, or the error that broke
// the LISTEN connection (callers retry). Notifications only wake: fn's
// argument may lag, and readers catch up with ReadAfter.
func (s *Store) Watch(ctx context.Context, fn func(seq uint64)) error {
	return s.watch(ctx, func() {}, fn)
}

// watch is Watch that calls listening once LISTEN is in place.
func (s *Store) watch(ctx context.Context, listening func(), fn func(seq uint64)) error {
	leave, err := s.enter()
	if err != nil {
		return err
	}
	conn, err := s.pool.Acquire(ctx)
	leave()
	if err != nil {
		return fmt.Errorf("connect for listen: %w", err)
	}
	// The session keeps LISTEN state; never hand it back to the pool.
	defer func() {
		pc := conn.Hijack()
		pc.Close(context.Background()) //nolint:errcheck // closing a private connection
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+NotifyChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	listening()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("wait for notification: %w", err)
		}
		seq, err := strconv.ParseUint(n.Payload, 10, 64)
		if err != nil {
			s.log.Warn("bad notification payload", zap.String("payload", n.Payload))
			continue
		}
		fn(seq)
	}
}

// retainPerNode deletes, for each node over quota, its alerts stored
// longest ago.
func (s *Store) retainPerNode(ctx context.Context, quota int64) (int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT node, COUNT(*) FROM alerts GROUP BY node HAVING COUNT(*) > $1`, quota)
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
			tag, err := s.pool.Exec(ctx, `DELETE FROM alerts WHERE seq IN (SELECT seq FROM alerts WHERE node = $1 ORDER BY seq LIMIT $2)`, node, chunk)
			return tag.RowsAffected(), err
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("delete oldest alerts of node %q: %w", node, err)
		}
	}
	return total, nil
}
