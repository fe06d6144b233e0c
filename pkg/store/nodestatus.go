package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// NodeStatus is an agent's latest report of its own health (the API's
// AgentStatus): what the collector cannot see of a node from its alerts.
// The collector keeps one per node, in the store so that every replica's
// web UI sees every node.
type NodeStatus struct {
	Node string
	// ReceivedAt is when the collector last heard from the node's agent.
	ReceivedAt     time.Time
	SensorAttached bool
	// Totals since the agent started.
	RingDrops, QueueDrops, MapFull, Overflowed uint64
	SpoolRecords, SpoolDropped                 uint64
	// SpoolOldest is the age of the oldest alert waiting in the spool.
	SpoolOldest time.Duration
}

// MaxNodeStatuses bounds the nodes a store keeps a status for; statuses
// not renewed for NodeStatusTTL are dropped on the next write.
const (
	MaxNodeStatuses = 10000
	NodeStatusTTL   = 7 * 24 * time.Hour
)

// ErrTooManyNodes is PutNodeStatus's refusal of a new node past
// MaxNodeStatuses.
var ErrTooManyNodes = errors.New("the store keeps the status of as many nodes as it may")

// NodeStatuses is the store role that keeps each node's latest status.
type NodeStatuses interface {
	// PutNodeStatus keeps st as its node's latest status, replacing the one
	// before; a new node past MaxNodeStatuses is refused with
	// ErrTooManyNodes.
	PutNodeStatus(ctx context.Context, st NodeStatus) error
	// NodeStatuses returns every kept status, by node.
	NodeStatuses(ctx context.Context) ([]NodeStatus, error)
}

// NodeStatusColumns are the columns ReadNodeStatuses reads, in order; both
// stores' node_status tables have them.
const NodeStatusColumns = `node, received_at, attached, ring_drops, queue_drops, map_full, overflowed,
	spool_records, spool_dropped, spool_oldest`

// PutNodeStatusSQL is the statement both stores keep a node's status with,
// the bound and the replacement in one: a node already kept is always
// updated, a new one only while fewer than MaxNodeStatuses are kept. mark
// is the dialect's prefix of a numbered placeholder ("?" for SQLite, "$"
// for PostgreSQL); the arguments are PutNodeStatusArgs. No row affected
// means the node was refused (ErrTooManyNodes).
func PutNodeStatusSQL(mark string) string {
	return strings.ReplaceAll(`INSERT INTO node_status (`+NodeStatusColumns+`)
		SELECT #1, #2, #3, #4, #5, #6, #7, #8, #9, #10
		WHERE EXISTS (SELECT 1 FROM node_status WHERE node = #1) OR (SELECT COUNT(*) FROM node_status) < #11
		ON CONFLICT (node) DO UPDATE SET received_at = excluded.received_at, attached = excluded.attached,
			ring_drops = excluded.ring_drops, queue_drops = excluded.queue_drops, map_full = excluded.map_full,
			overflowed = excluded.overflowed, spool_records = excluded.spool_records,
			spool_dropped = excluded.spool_dropped, spool_oldest = excluded.spool_oldest`, "#", mark)
}

// PutNodeStatusArgs are PutNodeStatusSQL's arguments for st.
func PutNodeStatusArgs(st NodeStatus) []any {
	return []any{st.Node, st.ReceivedAt.UnixNano(), st.SensorAttached, int64(st.RingDrops), int64(st.QueueDrops),
		int64(st.MapFull), int64(st.Overflowed), int64(st.SpoolRecords), int64(st.SpoolDropped),
		int64(st.SpoolOldest), MaxNodeStatuses}
}

// ReadNodeStatuses scans every row of a query that selects
// NodeStatusColumns, from either store's rows (RollupRows: database/sql's
// and pgx's).
func ReadNodeStatuses(rows RollupRows) ([]NodeStatus, error) {
	var out []NodeStatus
	for rows.Next() {
		var (
			st                  NodeStatus
			at, oldest          int64
			ring, queue, full   int64
			over, recs, dropped int64
		)
		if err := rows.Scan(&st.Node, &at, &st.SensorAttached, &ring, &queue, &full, &over, &recs, &dropped, &oldest); err != nil {
			return nil, fmt.Errorf("read node statuses: %w", err)
		}
		st.ReceivedAt, st.SpoolOldest = time.Unix(0, at), time.Duration(oldest)
		st.RingDrops, st.QueueDrops, st.MapFull, st.Overflowed = uint64(ring), uint64(queue), uint64(full), uint64(over)
		st.SpoolRecords, st.SpoolDropped = uint64(recs), uint64(dropped)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read node statuses: %w", err)
	}
	return out, nil
}
