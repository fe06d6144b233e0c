package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/errnowatch/errnowatch/pkg/store"
)

// migrateLock is the advisory lock key replicas take while migrating, so
// that several starting at once apply each migration exactly once.
const migrateLock = 0x6572726e6f770001

// migrations are applied in order, each in its own transaction together
// with its row in schema_migrations. Never edit a released migration;
// append a new one.
var migrations = []string{
	// 1: one row per alert ID holding its latest revision; the upsert moves
	// a row to a new seq when a later revision arrives.
	`CREATE TABLE alerts (
		seq           bigint  PRIMARY KEY,
		id            text    COLLATE "C" NOT NULL UNIQUE, -- ULIDs order bytewise
		revision      bigint  NOT NULL,
		rule_id       text    NOT NULL,
		severity      integer NOT NULL,
		namespace     text    NOT NULL,
		pod           text    NOT NULL,
		container     text    NOT NULL,
		node          text    NOT NULL,
		workload_kind text    NOT NULL,
		workload_name text    NOT NULL,
		first_seen    bigint  NOT NULL, -- unix ns
		last_seen     bigint  NOT NULL, -- unix ns
		total         bigint  NOT NULL,
		stored_at     bigint  NOT NULL, -- unix ns
		body          bytea   NOT NULL  -- JSON of alert.Alert
	);
	-- Per-pod listing (the CLI's common query) and namespace listing by id.
	CREATE INDEX alerts_pod ON alerts (namespace, pod, id);
	-- Retention by age.
	CREATE INDEX alerts_last_seen ON alerts (last_seen);
	-- last_seq is the one global sequence counter: its row lock orders
	-- writers (see the package doc) and it survives retention, so
	-- sequences are never reused.
	CREATE TABLE store_meta (key text PRIMARY KEY, value bigint NOT NULL);
	INSERT INTO store_meta (key, value) VALUES ('last_seq', 0);`,
	// 2: a pod's alerts lie scattered over the heap (pods interleave in
	// arrival order), so a per-pod summary read one heap page per alert;
	// with the columns it aggregates in the index it is an index-only scan.
	`CREATE INDEX alerts_pod_summary ON alerts (namespace, pod) INCLUDE (node, rule_id, severity, total, last_seen);`,
	// 3: exact summary rollups per namespace, pod, node, rule, severity and
	// hour of last_seen (store.RollupBucket), kept by statement-level
	// triggers over transition tables: one grouped upsert per statement,
	// not one per row. Every write — the insert and upsert of a batch,
	// retention's deletes — updates them in its own transaction. A bucket's
	// max_last_seen is read again from that pod's alerts only when the alert
	// holding it went; rows at zero alerts go. Summaries no longer read the
	// alerts, so the covering index of migration 2 is one index write per
	// row that buys nothing: it goes. New bodies are protobuf
	// (alertpb.Marshal) like SQLite's; JSON bodies written before still
	// decode.
	`CREATE TABLE alert_rollups (
		namespace     text    NOT NULL,
		pod           text    NOT NULL,
		node          text    NOT NULL,
		rule_id       text    NOT NULL,
		severity      integer NOT NULL,
		bucket        bigint  NOT NULL, -- last_seen / 3600e9
		alerts        bigint  NOT NULL,
		failures      bigint  NOT NULL,
		max_last_seen bigint  NOT NULL,
		PRIMARY KEY (namespace, pod, node, rule_id, severity, bucket)
	);
	INSERT INTO alert_rollups
		SELECT namespace, pod, node, rule_id, severity, last_seen / 3600000000000, COUNT(*), SUM(total), MAX(last_seen)
		FROM alerts GROUP BY 1, 2, 3, 4, 5, 6;
	CREATE FUNCTION alert_rollups_add() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		` + rollupAdd + `
		RETURN NULL;
	END $$;
	CREATE FUNCTION alert_rollups_remove() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		` + rollupRemove + `
		RETURN NULL;
	END $$;
	CREATE FUNCTION alert_rollups_replace() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		` + rollupAdd + rollupRemove + `
		RETURN NULL;
	END $$;
	CREATE TRIGGER alerts_rollup_insert AFTER INSERT ON alerts
		REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION alert_rollups_add();
	CREATE TRIGGER alerts_rollup_update AFTER UPDATE ON alerts
		REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION alert_rollups_replace();
	CREATE TRIGGER alerts_rollup_delete AFTER DELETE ON alerts
		REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION alert_rollups_remove();
	DROP INDEX alerts_pod_summary;`,
	// web UI (issue 17): the rollups by hour, so a chart or ranking of the
	// last day reads that day's rollups instead of all of them. Only a new
	// rollup row adds an entry; counting into an existing one changes no
	// indexed column.
	`CREATE INDEX alert_rollups_bucket ON alert_rollups (bucket);`,
	// 5: sink cursors and leases (cursor.go).
	sinkCursorsMigration,
	// 6: each alert's revision history (store.AppendHistory), carried from
	// the row a new revision replaces; rows stored before it have none.
	`ALTER TABLE alerts ADD COLUMN history bytea;`,
	// 7: web UI (issue 17): the derived rollups of store.RollupTables (per
	// pod by time, without the pod, without pod and node; by hour and by
	// day), so that a cluster-wide page reads rows per rule or node rather
	// than one per alert. Filled from alert_rollups, then kept by statement
	// triggers like alert_rollups'. Triggers of one event fire in the order
	// of their names, so alerts_rollupz_* runs after alerts_rollup_* has
	// updated alert_rollups, and updates each derived rollup after its
	// source: a max_last_seen is read again from the source's rows.
	derivedRollupsMigration(),
	// 8: each node's latest agent status, for the web UI (nodestatus.go).
	nodeStatusMigration,
}

// derivedRollupsMigration creates, fills and keeps the derived rollups,
// each ordered by its store.RollupTable.PrimaryKey.
func derivedRollupsMigration() string {
	var b, add, remove, replace strings.Builder
	for _, t := range store.DerivedRollups {
		proj := derivedProjection(t)
		fmt.Fprintf(&b, `CREATE TABLE %s (
		namespace     text    NOT NULL,
		pod           text    NOT NULL,
		node          text    NOT NULL,
		rule_id       text    NOT NULL,
		severity      integer NOT NULL,
		bucket        bigint  NOT NULL, -- last_seen / (%d * 3600e9)
		alerts        bigint  NOT NULL,
		failures      bigint  NOT NULL,
		max_last_seen bigint  NOT NULL,
		PRIMARY KEY (%s)
	);
	INSERT INTO %s SELECT %s, SUM(alerts), SUM(failures), MAX(max_last_seen) FROM %s GROUP BY 1, 2, 3, 4, 5, 6;
	`, t.Name, t.Hours, strings.Join(t.PrimaryKey, ", "), t.Name, sourceProjection(t), t.Source)
		a, r := derivedAdd(t, proj), derivedRemove(t, proj)
		add.WriteString(a)
		remove.WriteString(r)
		replace.WriteString(a + r)
	}
	for _, f := range []struct{ name, body, event, refs string }{
		{"alert_rollups_derived_add", add.String(), "INSERT", "NEW TABLE AS new_rows"},
		{"alert_rollups_derived_remove", remove.String(), "DELETE", "OLD TABLE AS old_rows"},
		{"alert_rollups_derived_replace", replace.String(), "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"},
	} {
		fmt.Fprintf(&b, `CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		%s
		RETURN NULL;
	END $$;
	CREATE TRIGGER alerts_rollupz_%s AFTER %s ON alerts
		REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION %s();
	`, f.name, f.body, strings.ToLower(f.event), f.event, f.refs, f.name)
	}
	return b.String()
}

// sourceProjection selects the key in t of a row of t's source: the
// migration sums the source (filled just before, alert_rollups exact over
// the alerts first) rather than reading every alert again.
func sourceProjection(t store.RollupTable) string {
	src, _ := store.RollupTableNamed(t.Source)
	sel := make([]string, 0, 6)
	for _, c := range store.KeyCols[:5] {
		switch {
		case t.Keeps(c):
			sel = append(sel, c)
		case c == "severity":
			sel = append(sel, "0")
		default:
			sel = append(sel, "''::text")
		}
	}
	return strings.Join(append(sel, fmt.Sprintf("bucket / %d", t.Hours/src.Hours)), ", ")
}

// derivedProjection selects an alert's key in t: the columns t keeps, ”
// (severity 0) for the others, and the bucket of t's width.
func derivedProjection(t store.RollupTable) string {
	sel := make([]string, 0, 6)
	for _, c := range store.KeyCols[:5] {
		switch {
		case t.Keeps(c):
			sel = append(sel, c)
		case c == "severity":
			sel = append(sel, "0 AS severity")
		default:
			sel = append(sel, "''::text AS "+c)
		}
	}
	return strings.Join(append(sel, fmt.Sprintf("last_seen / %d AS bucket", t.Hours*3600000000000)), ", ")
}

// derivedAdd counts the rows of new_rows in t.
func derivedAdd(t store.RollupTable, proj string) string {
	return `
	INSERT INTO ` + t.Name + ` AS r
		SELECT ` + proj + `, COUNT(*), SUM(total), MAX(last_seen)
		FROM new_rows GROUP BY 1, 2, 3, 4, 5, 6
	ON CONFLICT (namespace, pod, node, rule_id, severity, bucket) DO UPDATE SET
		alerts = r.alerts + excluded.alerts, failures = r.failures + excluded.failures,
		max_last_seen = GREATEST(r.max_last_seen, excluded.max_last_seen);`
}

// derivedRemove takes the rows of old_rows out of t; a maximum that went is
// read again from t's source, which the trigger has already updated.
func derivedRemove(t store.RollupTable, proj string) string {
	src, _ := store.RollupTableNamed(t.Source)
	var srcEq []string
	for _, c := range store.KeyCols[:5] {
		if t.Keeps(c) || !src.Keeps(c) {
			srcEq = append(srcEq, "s."+c+" = r."+c)
		}
	}
	ratio := t.Hours / src.Hours
	keyEq := make([]string, len(store.KeyCols))
	for i, c := range store.KeyCols {
		keyEq[i] = "r." + c + " = d." + c
	}
	return fmt.Sprintf(`
	UPDATE %[1]s AS r SET alerts = r.alerts - d.n, failures = r.failures - d.f,
		max_last_seen = CASE WHEN r.alerts > d.n AND r.max_last_seen <= d.l THEN (
			SELECT MAX(s.max_last_seen) FROM %[2]s AS s
			WHERE %[3]s AND s.bucket >= r.bucket * %[4]d AND s.bucket < (r.bucket + 1) * %[4]d)
			ELSE r.max_last_seen END
	FROM (SELECT %[5]s, COUNT(*) AS n, SUM(total) AS f, MAX(last_seen) AS l
		FROM old_rows GROUP BY 1, 2, 3, 4, 5, 6) AS d
	WHERE %[6]s;
	DELETE FROM %[1]s AS r
	USING (SELECT DISTINCT %[5]s FROM old_rows) AS d
	WHERE %[6]s AND r.alerts = 0;`,
		t.Name, src.Name, strings.Join(srcEq, " AND "), ratio, proj, strings.Join(keyEq, " AND "))
}

// rollupAdd counts the rows of new_rows in their rollups.
const rollupAdd = `
	INSERT INTO alert_rollups AS r
		SELECT namespace, pod, node, rule_id, severity, last_seen / 3600000000000, COUNT(*), SUM(total), MAX(last_seen)
		FROM new_rows GROUP BY 1, 2, 3, 4, 5, 6
	ON CONFLICT (namespace, pod, node, rule_id, severity, bucket) DO UPDATE SET
		alerts = r.alerts + excluded.alerts, failures = r.failures + excluded.failures,
		max_last_seen = GREATEST(r.max_last_seen, excluded.max_last_seen);`

// rollupRemove takes the rows of old_rows out of their rollups. An AFTER
// trigger's queries see the statement's result, so a max_last_seen read
// again sees the alerts as they now are; after rollupAdd, a new revision in
// the same bucket already holds a max above the old one's.
const rollupRemove = `
	UPDATE alert_rollups AS r SET alerts = r.alerts - d.n, failures = r.failures - d.f,
		max_last_seen = CASE WHEN r.alerts > d.n AND r.max_last_seen <= d.l THEN (
			SELECT MAX(a.last_seen) FROM alerts AS a
			WHERE a.namespace = r.namespace AND a.pod = r.pod AND a.node = r.node AND a.rule_id = r.rule_id
				AND a.severity = r.severity AND a.last_seen >= r.bucket * 3600000000000
				AND a.last_seen < (r.bucket + 1) * 3600000000000)
			ELSE r.max_last_seen END
	FROM (SELECT namespace, pod, node, rule_id, severity, last_seen / 3600000000000 AS bucket,
			COUNT(*) AS n, SUM(total) AS f, MAX(last_seen) AS l
		FROM old_rows GROUP BY 1, 2, 3, 4, 5, 6) AS d
	WHERE r.namespace = d.namespace AND r.pod = d.pod AND r.node = d.node AND r.rule_id = d.rule_id
		AND r.severity = d.severity AND r.bucket = d.bucket;
	DELETE FROM alert_rollups AS r
	USING (SELECT DISTINCT namespace, pod, node, rule_id, severity, last_seen / 3600000000000 AS bucket FROM old_rows) AS d
	WHERE r.namespace = d.namespace AND r.pod = d.pod AND r.node = d.node AND r.rule_id = d.rule_id
		AND r.severity = d.severity AND r.bucket = d.bucket AND r.alerts = 0;`

// migrate brings the schema to the latest version under an advisory lock
// and refuses a database written by a newer errnowatch.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrateLock)); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(migrateLock)) //nolint:errcheck // the session ends with the connection anyway
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	return store.Migrate(ctx, schema{conn}, migrations)
}

// schema keeps the version in schema_migrations, one row per migration
// applied, inserted in the migration's own transaction.
type schema struct{ conn *pgxpool.Conn }

func (s schema) Version(ctx context.Context) (int, error) {
	var version int
	err := s.conn.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version)
	return version, err
}

func (s schema) Apply(ctx context.Context, v int, statements string) error {
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return store.Step("begin", v, err)
	}
	if _, err := tx.Exec(ctx, statements); err != nil {
		tx.Rollback(ctx) //nolint:errcheck // the error that matters is the one above
		return store.Step("apply", v, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, v); err != nil {
		tx.Rollback(ctx) //nolint:errcheck // the error that matters is the one above
		return store.Step("record", v, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return store.Step("commit", v, err)
	}
	return nil
}
