package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/store"
)

// RunNodeStatuses checks a store's store.NodeStatuses: a node's status
// replaces the one before; statuses come back by node with every field;
// a new node past store.MaxNodeStatuses is refused while a kept node is
// still updated; statuses not renewed for store.NodeStatusTTL go.
func RunNodeStatuses(t *testing.T, s store.NodeStatuses) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	put := func(st store.NodeStatus) error { return s.PutNodeStatus(ctx, st) }
	b := store.NodeStatus{Node: "node-b", ReceivedAt: now, SensorAttached: true, RingDrops: 1, QueueDrops: 2,
		MapFull: 3, Overflowed: 4, SpoolRecords: 5, SpoolDropped: 6, SpoolOldest: 7 * time.Second}
	if err := put(b); err != nil {
		t.Fatal(err)
	}
	if err := put(store.NodeStatus{Node: "node-a", ReceivedAt: now}); err != nil {
		t.Fatal(err)
	}
	b.SpoolRecords, b.ReceivedAt = 50, now.Add(time.Second)
	if err := put(b); err != nil {
		t.Fatal(err)
	}
	got, err := s.NodeStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Node != "node-a" || !got[1].ReceivedAt.Equal(b.ReceivedAt) {
		t.Fatalf("statuses %+v, want node-a then node-b's latest", got)
	}
	got[1].ReceivedAt = b.ReceivedAt
	if got[1] != b {
		t.Fatalf("node-b's status %+v, want %+v", got[1], b)
	}

	// The bound: fill it, then a new node is refused and a kept one is not.
	for i := len(got); i < store.MaxNodeStatuses; i++ {
		if err := put(store.NodeStatus{Node: fmt.Sprintf("fill-%05d", i), ReceivedAt: now}); err != nil {
			t.Fatalf("node %d of %d: %v", i, store.MaxNodeStatuses, err)
		}
	}
	if err := put(store.NodeStatus{Node: "one-too-many", ReceivedAt: now}); !errors.Is(err, store.ErrTooManyNodes) {
		t.Fatalf("a node past the bound: %v, want ErrTooManyNodes", err)
	}
	b.SpoolRecords = 51
	if err := put(b); err != nil {
		t.Fatalf("a kept node at the bound: %v", err)
	}
	// Statuses not renewed for NodeStatusTTL go on the next write.
	later := store.NodeStatus{Node: "node-b", ReceivedAt: now.Add(store.NodeStatusTTL + time.Minute)}
	if err := put(later); err != nil {
		t.Fatal(err)
	}
	if got, err := s.NodeStatuses(ctx); err != nil || len(got) != 1 || got[0].Node != "node-b" {
		t.Fatalf("after a week without news from the others: %d statuses, %v", len(got), err)
	}
}
