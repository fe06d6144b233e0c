package store

import (
	"context"
	"errors"
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
