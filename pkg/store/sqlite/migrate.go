package sqlite

import (
	"context"
	"database/sql"
	"fmt"
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
}

// migrate brings the schema to the latest version and refuses a database
// written by a newer errnowatch.
func migrate(ctx context.Context, db *sql.DB) error {
	var version int
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this errnowatch knows (%d): upgrade errnowatch", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin migration %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback() //nolint:errcheck // the error that matters is the one above
			return fmt.Errorf("apply migration %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v+1)); err != nil {
			tx.Rollback() //nolint:errcheck // the error that matters is the one above
			return fmt.Errorf("record migration %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit migration %d: %w", v+1, err)
		}
	}
	return nil
}
