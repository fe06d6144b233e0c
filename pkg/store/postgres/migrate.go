package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
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
}

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
	var version int
	if err := conn.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this errnowatch knows (%d): upgrade errnowatch", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return fmt.Errorf("begin migration %d: %w", v+1, err)
		}
		if _, err := tx.Exec(ctx, migrations[v]); err != nil {
			tx.Rollback(ctx) //nolint:errcheck // the error that matters is the one above
			return fmt.Errorf("apply migration %d: %w", v+1, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, v+1); err != nil {
			tx.Rollback(ctx) //nolint:errcheck // the error that matters is the one above
			return fmt.Errorf("record migration %d: %w", v+1, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("commit migration %d: %w", v+1, err)
		}
	}
	return nil
}
