package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/errnowatch/errnowatch/pkg/store"
)

// migrations are applied in order, each in its own transaction together with
// the new PRAGMA user_version, so a crash leaves the schema at a version
// boundary. Never edit a released migration; append a new one.
var migrations = []string{
	// 1: one row per alert ID holding its latest revision. seq is the rowid
	// so that ReadAfter walks the table in its natural order; the upsert
	// moves a row to a new seq when a later revision arrives.
	`CREATE TABLE alerts (
		seq           INTEGER PRIMARY KEY,
		id            TEXT    NOT NULL UNIQUE,
		revision      INTEGER NOT NULL,
		rule_id       TEXT    NOT NULL,
		severity      INTEGER NOT NULL,
		namespace     TEXT    NOT NULL,
		pod           TEXT    NOT NULL,
		container     TEXT    NOT NULL,
		node          TEXT    NOT NULL,
		workload_kind TEXT    NOT NULL,
		workload_name TEXT    NOT NULL,
		first_seen    INTEGER NOT NULL, -- unix ns
		last_seen     INTEGER NOT NULL, -- unix ns
		total         INTEGER NOT NULL,
		stored_at     INTEGER NOT NULL, -- unix ns
		-- errnowatch.v1.Alert in protobuf: the API's versioned schema, so
		-- rows written by an older errnowatch stay readable; and decoding
		-- it is what a SIEM stream mostly costs.
		body          BLOB    NOT NULL
	);
	-- Per-pod listing (the CLI's common query) and namespace listing by id.
	CREATE INDEX alerts_pod ON alerts (namespace, pod, id);
	-- Retention by age.
	CREATE INDEX alerts_last_seen ON alerts (last_seen);
	-- last_seq survives retention deleting the newest rows, so sequences
	-- are never reused and SIEM cursors stay valid.
	CREATE TABLE store_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
	INSERT INTO store_meta (key, value) VALUES ('last_seq', 0);`,
	// 2: exact summary rollups per namespace, pod, node, rule, severity and
	// hour of last_seen (store.RollupBucket), kept by triggers so that every
	// write — insert, the upsert of a new revision, retention's deletes —
	// updates them in the same transaction. A row's max_last_seen can only
	// be lowered by removing the alert that holds it; then it is read again
	// from that pod's alerts (alerts_pod), which retention, deleting the
	// oldest, rarely needs. Rows at zero alerts go.
	`CREATE TABLE alert_rollups (
		namespace     TEXT    NOT NULL,
		pod           TEXT    NOT NULL,
		node          TEXT    NOT NULL,
		rule_id       TEXT    NOT NULL,
		severity      INTEGER NOT NULL,
		bucket        INTEGER NOT NULL, -- last_seen / 3600e9
		alerts        INTEGER NOT NULL,
		failures      INTEGER NOT NULL,
		max_last_seen INTEGER NOT NULL,
		PRIMARY KEY (namespace, pod, node, rule_id, severity, bucket)
	) WITHOUT ROWID;
	INSERT INTO alert_rollups
		SELECT namespace, pod, node, rule_id, severity, last_seen / 3600000000000, COUNT(*), SUM(total), MAX(last_seen)
		FROM alerts GROUP BY 1, 2, 3, 4, 5, 6;
	CREATE TRIGGER alerts_rollup_insert AFTER INSERT ON alerts BEGIN ` + rollupAdd + ` END;
	CREATE TRIGGER alerts_rollup_update AFTER UPDATE ON alerts BEGIN ` + rollupAdd + rollupRemove + ` END;
	CREATE TRIGGER alerts_rollup_delete AFTER DELETE ON alerts BEGIN ` + rollupRemove + ` END;`,
	// 3: the store's Go code keeps the rollups (rollup.go), once per rollup
	// row and transaction instead of once per alert row; every write to
	// alerts (commit, Retain) goes through it.
	`DROP TRIGGER alerts_rollup_insert;
	DROP TRIGGER alerts_rollup_update;
	DROP TRIGGER alerts_rollup_delete;`,
	// 4: web UI (issue 17): the rollups by hour, so a chart or ranking of the
	// last day reads that day's rollups instead of all of them. Only a new
	// rollup row adds an entry; counting into an existing one changes no
	// indexed column.
	`CREATE INDEX alert_rollups_bucket ON alert_rollups (bucket);`,
	// 5: sink cursors and leases (cursor.go).
	sinkCursorsMigration,
	// 6: each alert's revision history (store.AppendHistory), carried from
	// the row a new revision replaces; rows stored before it have none.
	`ALTER TABLE alerts ADD COLUMN history BLOB;`,
	// 7: web UI (issue 17): the derived rollups of store.RollupTables (per
	// pod by time, without the pod, without pod and node; by hour and by
	// day), so that a cluster-wide page reads rows per rule or node rather
	// than one per alert. Kept by rollup.go like alert_rollups; filled here
	// from alert_rollups, which counts the stored alerts.
	derivedRollupsMigration(),
	// 8: each node's latest agent status, for the web UI (nodestatus.go).
	nodeStatusMigration,
}

// derivedRollupsMigration creates and fills the derived rollups, each
// ordered by its store.RollupTable.PrimaryKey; none needs an index. Each is
// summed from its source, filled just before it (alert_rollups, exact over
// the alerts, first): reading the alerts with their bodies again for each
// took 89 s at a million alerts.
func derivedRollupsMigration() string {
	var b strings.Builder
	for _, t := range store.DerivedRollups {
		sel := make([]string, 0, 6)
		for _, c := range store.KeyCols[:5] {
			switch {
			case t.Keeps(c):
				sel = append(sel, c)
			case c == "severity":
				sel = append(sel, "0")
			default:
				sel = append(sel, "''")
			}
		}
		src, _ := store.RollupTableNamed(t.Source)
		sel = append(sel, fmt.Sprintf("bucket / %d", t.Hours/src.Hours))
		fmt.Fprintf(&b, `CREATE TABLE %s (
		namespace     TEXT    NOT NULL,
		pod           TEXT    NOT NULL,
		node          TEXT    NOT NULL,
		rule_id       TEXT    NOT NULL,
		severity      INTEGER NOT NULL,
		bucket        INTEGER NOT NULL, -- last_seen / (%d * 3600e9)
		alerts        INTEGER NOT NULL,
		failures      INTEGER NOT NULL,
		max_last_seen INTEGER NOT NULL,
		PRIMARY KEY (%s)
	) WITHOUT ROWID;
	INSERT INTO %s SELECT %s, SUM(alerts), SUM(failures), MAX(max_last_seen) FROM %s GROUP BY 1, 2, 3, 4, 5, 6;
	`, t.Name, t.Hours, strings.Join(t.PrimaryKey, ", "), t.Name, strings.Join(sel, ", "), src.Name)
	}
	return b.String()
}

// rollupAdd counts the row new in its rollup.
const rollupAdd = `
	INSERT INTO alert_rollups VALUES (new.namespace, new.pod, new.node, new.rule_id, new.severity,
		new.last_seen / 3600000000000, 1, new.total, new.last_seen)
	ON CONFLICT (namespace, pod, node, rule_id, severity, bucket) DO UPDATE SET
		alerts = alerts + 1, failures = failures + excluded.failures,
		max_last_seen = max(max_last_seen, excluded.max_last_seen);`

// rollupRemove takes the row old out of its rollup. In an update it runs
// after rollupAdd, so a new revision in the same bucket (the common case)
// already holds a max_last_seen above old's and nothing is read again.
const rollupRemove = `
	UPDATE alert_rollups SET alerts = alerts - 1, failures = failures - old.total
	WHERE namespace = old.namespace AND pod = old.pod AND node = old.node AND rule_id = old.rule_id
		AND severity = old.severity AND bucket = old.last_seen / 3600000000000;
	DELETE FROM alert_rollups
	WHERE namespace = old.namespace AND pod = old.pod AND node = old.node AND rule_id = old.rule_id
		AND severity = old.severity AND bucket = old.last_seen / 3600000000000 AND alerts = 0;
	UPDATE alert_rollups SET max_last_seen = (
		SELECT MAX(a.last_seen) FROM alerts AS a INDEXED BY alerts_pod
		WHERE a.namespace = old.namespace AND a.pod = old.pod AND a.node = old.node AND a.rule_id = old.rule_id
			AND a.severity = old.severity AND a.last_seen / 3600000000000 = old.last_seen / 3600000000000)
	WHERE namespace = old.namespace AND pod = old.pod AND node = old.node AND rule_id = old.rule_id
		AND severity = old.severity AND bucket = old.last_seen / 3600000000000 AND max_last_seen <= old.last_seen;`

// migrate brings the schema to the latest version and refuses a database
// written by a newer errnowatch.
func migrate(ctx context.Context, db *sql.DB) error {
	return store.Migrate(ctx, schema{db}, migrations)
}

// schema keeps the version in PRAGMA user_version, set in the migration's
// own transaction.
type schema struct{ db *sql.DB }

func (s schema) Version(ctx context.Context) (int, error) {
	var version int
	err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version)
	return version, err
}

func (s schema) Apply(ctx context.Context, v int, statements string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return store.Step("begin", v, err)
	}
	if _, err := tx.ExecContext(ctx, statements); err != nil {
		tx.Rollback() //nolint:errcheck // the error that matters is the one above
		return store.Step("apply", v, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v)); err != nil {
		tx.Rollback() //nolint:errcheck // the error that matters is the one above
		return store.Step("record", v, err)
	}
	if err := tx.Commit(); err != nil {
		return store.Step("commit", v, err)
	}
	return nil
}
