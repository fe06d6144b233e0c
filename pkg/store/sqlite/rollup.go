package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"

	"github.com/errnowatch/errnowatch/pkg/store"
)

// The rollups (alert_rollups, migration 2) are kept by the store's Go code
// since migration 3, in the transaction that writes the alerts: commit
// and Retain gather what they insert and delete in a store.RollupDeltas and
// apply it once per rollup row (applyRollups). Row triggers did the same
// work once per alert row, each an upsert whose possible abort made SQLite
// copy every page the insert touched into a statement journal: a quarter
// of ingest CPU (docs/bench/issue16-perf.md).
//
// The derived rollups (store.DerivedRollups, migration 7) take the same
// deltas, projected onto their coarser keys and buckets (applyDerived).

// rollupCols are the columns of a deleted alert that its rollup needs, in
// scanRollupRow's order.
const rollupCols = `namespace, pod, node, rule_id, severity, last_seen, total`

// deleteReturning runs a DELETE of alerts (query must end before any
// RETURNING) in tx and counts every deleted row out of its rollup. It
// returns how many rows went.
func deleteReturning(ctx context.Context, tx *sql.Tx, d store.RollupDeltas, query string, args ...any) (int64, error) {
	rows, err := tx.QueryContext(ctx, query+` RETURNING `+rollupCols, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		var (
			k             store.RollupKey
			lastSeen, tot int64
		)
		if err := rows.Scan(&k.Namespace, &k.Pod, &k.Node, &k.RuleID, &k.Severity, &lastSeen, &tot); err != nil {
			return n, err
		}
		k.Bucket = store.RollupBucketOf(lastSeen)
		d.Remove(k, lastSeen, tot)
		n++
	}
	return n, rows.Err()
}

// rollupUpsertSQL adds one rollup row's delta; a row only removed from
// passes math.MinInt64 as its max_last_seen, which keeps the stored one.
// One row per statement, for the reason upsertRows gives.
const rollupUpsertSQL = `INSERT INTO alert_rollups (namespace, pod, node, rule_id, severity, bucket, alerts, failures, max_last_seen)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (namespace, pod, node, rule_id, severity, bucket) DO UPDATE SET
		alerts = alerts + excluded.alerts, failures = failures + excluded.failures,
		max_last_seen = max(max_last_seen, excluded.max_last_seen)`

// applyRollups writes a transaction's rollup deltas with upsert (the
// transaction's rollupUpsertSQL): one upsert per rollup row changed, then,
// for the rows that lost alerts, the removal of rows at zero and a new
// max_last_seen where a removed alert may have held it
// (store.RollupDelta.NeedsMaxReread), read from the alerts as they are now.
func applyRollups(ctx context.Context, tx *sql.Tx, upsert *sql.Stmt, deltas store.RollupDeltas) error {
	if len(deltas) == 0 {
		return nil
	}
	keys := make([]store.RollupKey, 0, len(deltas))
	for k, d := range deltas {
		keys = append(keys, k)
		maxAdded := int64(math.MinInt64)
		if d.Added {
			maxAdded = d.MaxAdded
		}
		if _, err := upsert.ExecContext(ctx, k.Namespace, k.Pod, k.Node, k.RuleID, k.Severity, k.Bucket,
			d.Alerts, d.Failures, maxAdded); err != nil {
			return fmt.Errorf("update summary rollups: %w", err)
		}
	}
	for _, k := range keys {
		d := deltas[k]
		if d.Alerts < 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM alert_rollups
				WHERE namespace = ? AND pod = ? AND node = ? AND rule_id = ? AND severity = ? AND bucket = ? AND alerts <= 0`,
				k.Namespace, k.Pod, k.Node, k.RuleID, k.Severity, k.Bucket); err != nil {
				return fmt.Errorf("drop empty summary rollup: %w", err)
			}
		}
		if d.NeedsMaxReread() {
			if _, err := tx.ExecContext(ctx, `UPDATE alert_rollups SET max_last_seen = (
					SELECT MAX(a.last_seen) FROM alerts AS a INDEXED BY alerts_pod
					WHERE a.namespace = ? AND a.pod = ? AND a.node = ? AND a.rule_id = ? AND a.severity = ?
						AND a.last_seen / 3600000000000 = ?)
				WHERE namespace = ? AND pod = ? AND node = ? AND rule_id = ? AND severity = ? AND bucket = ?
					AND max_last_seen <= ?`,
				k.Namespace, k.Pod, k.Node, k.RuleID, k.Severity, k.Bucket,
				k.Namespace, k.Pod, k.Node, k.RuleID, k.Severity, k.Bucket, d.MaxRemoved); err != nil {
				return fmt.Errorf("read summary rollup maximum again: %w", err)
			}
		}
	}
	for _, t := range store.DerivedRollups {
		if err := applyDerived(ctx, tx, t, deltas.Project(t)); err != nil {
			return fmt.Errorf("update rollup %s: %w", t.Name, err)
		}
	}
	return nil
}

// applyDerived writes deltas to the derived rollup t the way applyRollups
// writes alert_rollups', after t's Source has taken its own: a maximum is
// read again from the source's rows of the bucket. Its statements are
// prepared per transaction: one parse per table against thousands of rows.
func applyDerived(ctx context.Context, tx *sql.Tx, t store.RollupTable, deltas store.RollupDeltas) error {
	upsert, err := tx.PrepareContext(ctx, derivedSQL(t).upsert)
	if err != nil {
		return err
	}
	defer upsert.Close()
	keyArgs := func(k store.RollupKey) []any {
		return []any{k.Namespace, k.Pod, k.Node, k.RuleID, k.Severity, k.Bucket}
	}
	for k, d := range deltas {
		maxAdded := int64(math.MinInt64)
		if d.Added {
			maxAdded = d.MaxAdded
		}
		if _, err := upsert.ExecContext(ctx, append(keyArgs(k), d.Alerts, d.Failures, maxAdded)...); err != nil {
			return err
		}
	}
	q := derivedSQL(t)
	for k, d := range deltas {
		if d.Alerts < 0 {
			if _, err := tx.ExecContext(ctx, q.dropEmpty, keyArgs(k)...); err != nil {
				return err
			}
		}
		if d.NeedsMaxReread() {
			args := q.sourceArgs(k)
			args = append(append(args, keyArgs(k)...), d.MaxRemoved)
			if _, err := tx.ExecContext(ctx, q.reread, args...); err != nil {
				return err
			}
		}
	}
	return nil
}

// derivedStmts are the statements that keep one derived rollup.
type derivedStmts struct {
	upsert, dropEmpty, reread string
	// sourceArgs are reread's arguments that pick the source's rows of k.
	sourceArgs func(k store.RollupKey) []any
}

// derivedSQL renders t's statements; a source column t does not keep apart
// (a pod summed into its node) is left free in the reread, the others equal.
func derivedSQL(t store.RollupTable) derivedStmts {
	src, _ := store.RollupTableNamed(t.Source)
	cols := store.KeyCols[:5]
	keyEq := strings.Join(store.KeyCols, " = ? AND ") + " = ?"
	var (
		srcEq []string
		pick  []int
	)
	for i, c := range cols {
		if t.Keeps(c) || !src.Keeps(c) {
			srcEq = append(srcEq, c+" = ?")
			pick = append(pick, i)
		}
	}
	// A source keyed by namespace first, with a key left free, would be
	// walked a namespace at a time: its bucket index finds the bucket's rows.
	indexed := ""
	if len(pick) < len(cols) && src.PrimaryKey[0] != "bucket" {
		indexed = " INDEXED BY " + src.Name + "_bucket"
	}
	ratio := t.Hours / src.Hours
	return derivedStmts{
		upsert: `INSERT INTO ` + t.Name + ` (namespace, pod, node, rule_id, severity, bucket, alerts, failures, max_last_seen)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (namespace, pod, node, rule_id, severity, bucket) DO UPDATE SET
		alerts = alerts + excluded.alerts, failures = failures + excluded.failures,
		max_last_seen = max(max_last_seen, excluded.max_last_seen)`,
		dropEmpty: `DELETE FROM ` + t.Name + ` WHERE ` + keyEq + ` AND alerts <= 0`,
		reread: `UPDATE ` + t.Name + ` SET max_last_seen = (
			SELECT MAX(s.max_last_seen) FROM ` + src.Name + ` AS s` + indexed + `
			WHERE ` + strings.Join(srcEq, " AND ") + ` AND bucket >= ? AND bucket < ?)
		WHERE ` + keyEq + ` AND max_last_seen <= ?`,
		sourceArgs: func(k store.RollupKey) []any {
			all := []any{k.Namespace, k.Pod, k.Node, k.RuleID, k.Severity}
			out := make([]any, 0, len(pick)+2)
			for _, i := range pick {
				out = append(out, all[i])
			}
			return append(out, k.Bucket*ratio, (k.Bucket+1)*ratio)
		},
	}
}
