package sqlite

import (
	"context"
	"fmt"

	"github.com/errnowatch/errnowatch/pkg/store"
)

var _ store.NodeStatuses = (*Store)(nil)

// nodeStatusMigration keeps each node's latest agent status (times in unix
// ns of this host's clock).
const nodeStatusMigration = `CREATE TABLE node_status (
		node          TEXT    PRIMARY KEY,
		received_at   INTEGER NOT NULL,
		attached      INTEGER NOT NULL,
		ring_drops    INTEGER NOT NULL,
		queue_drops   INTEGER NOT NULL,
		map_full      INTEGER NOT NULL,
		overflowed    INTEGER NOT NULL,
		spool_records INTEGER NOT NULL,
		spool_dropped INTEGER NOT NULL,
		spool_oldest  INTEGER NOT NULL -- ns
	) WITHOUT ROWID;`

// PutNodeStatus implements store.NodeStatuses. The bound and the
// replacement are one statement: a node already kept is always updated,
// a new one only below the bound.
func (s *Store) PutNodeStatus(ctx context.Context, st store.NodeStatus) error {
	if s.isClosed() {
		return store.ErrClosed
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("keep node status: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if _, err := tx.ExecContext(ctx, `DELETE FROM node_status WHERE received_at < ?`,
		st.ReceivedAt.Add(-store.NodeStatusTTL).UnixNano()); err != nil {
		return fmt.Errorf("keep node status: %w", err)
	}
	res, err := tx.ExecContext(ctx, store.PutNodeStatusSQL("?"), store.PutNodeStatusArgs(st)...)
	if err != nil {
		return fmt.Errorf("keep node status of %q: %w", st.Node, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("keep node status of %q: %w", st.Node, err)
	} else if n == 0 {
		return fmt.Errorf("keep node status of %q: %w", st.Node, store.ErrTooManyNodes)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("keep node status: %w", err)
	}
	return nil
}

// NodeStatuses implements store.NodeStatuses.
func (s *Store) NodeStatuses(ctx context.Context) ([]store.NodeStatus, error) {
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+store.NodeStatusColumns+` FROM node_status ORDER BY node LIMIT ?`, store.MaxNodeStatuses)
	if err != nil {
		return nil, fmt.Errorf("read node statuses: %w", err)
	}
	defer rows.Close()
	return store.ReadNodeStatuses(rows)
}
