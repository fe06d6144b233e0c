package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/errnowatch/errnowatch/pkg/store"
)

var _ store.NodeStatuses = (*Store)(nil)

// nodeStatusMigration keeps each node's latest agent status (times in unix
// ns of the collector replica that received it).
const nodeStatusMigration = `CREATE TABLE node_status (
		node          text    COLLATE "C" PRIMARY KEY,
		received_at   bigint  NOT NULL,
		attached      boolean NOT NULL,
		ring_drops    bigint  NOT NULL,
		queue_drops   bigint  NOT NULL,
		map_full      bigint  NOT NULL,
		overflowed    bigint  NOT NULL,
		spool_records bigint  NOT NULL,
		spool_dropped bigint  NOT NULL,
		spool_oldest  bigint  NOT NULL -- ns
	);`

// PutNodeStatus implements store.NodeStatuses. Replicas count the kept
// nodes under a transaction-scoped advisory lock, so two new nodes cannot
// both take the last place.
func (s *Store) PutNodeStatus(ctx context.Context, st store.NodeStatus) error {
	leave, err := s.enter()
	if err != nil {
		return err
	}
	defer leave()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, nodeStatusLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM node_status WHERE received_at < $1`,
			st.ReceivedAt.Add(-store.NodeStatusTTL).UnixNano()); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, store.PutNodeStatusSQL("$"), store.PutNodeStatusArgs(st)...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrTooManyNodes
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("keep node status of %q: %w", st.Node, err)
	}
	return nil
}

// nodeStatusLock is the advisory lock key of PutNodeStatus.
const nodeStatusLock = 0x6572726e6f770002

// NodeStatuses implements store.NodeStatuses.
func (s *Store) NodeStatuses(ctx context.Context) ([]store.NodeStatus, error) {
	leave, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
	rows, err := s.pool.Query(ctx, `SELECT `+store.NodeStatusColumns+` FROM node_status ORDER BY node LIMIT $1`, store.MaxNodeStatuses)
	if err != nil {
		return nil, fmt.Errorf("read node statuses: %w", err)
	}
	defer rows.Close()
	return store.ReadNodeStatuses(rows)
}
