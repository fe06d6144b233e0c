package store

import (
	"context"
	"errors"
	"time"
)

// ErrLeaseHeld is returned by ClaimSink while another owner holds an
// unexpired lease on the sink, and by AckSink when the caller no longer
// holds it (it expired and another owner claimed it, or it was released):
// the caller must stop delivering and claim again.
var ErrLeaseHeld = errors.New("sink lease is held by another owner")

// SinkState is what the store keeps of one sink.
type SinkState struct {
	Sink string
	// Cursor is the largest sequence the sink acknowledged: every matching
	// revision up to it reached the destination (or was dead-lettered).
	Cursor uint64
	// Owner holds the lease until Expires (empty when never claimed or
	// released).
	Owner   string
	Expires time.Time
}

// SinkCursors is the role of a store that keeps each sink's acknowledged
// cursor and the lease that makes one collector replica at a time deliver
// it. Both stores implement it; storetest.RunCursors checks them. Leases run
// on the store's clock (the database server's for PostgreSQL), so replicas'
// clocks need not agree.
type SinkCursors interface {
	// ClaimSink takes the sink's lease for owner until ttl from now, or
	// renews it when owner holds it; a sink claimed the first time starts
	// at cursor start (later claims ignore start). It returns the
	// acknowledged cursor, or ErrLeaseHeld while another owner's lease
	// runs.
	ClaimSink(ctx context.Context, sink, owner string, ttl time.Duration, start uint64) (cursor uint64, err error)
	// AckSink moves the sink's cursor forward to seq (never backward) if
	// owner holds an unexpired lease, else returns ErrLeaseHeld.
	AckSink(ctx context.Context, sink, owner string, seq uint64) error
	// ReleaseSink ends owner's lease (nothing if another owner holds it),
	// so another replica takes over without waiting for it to expire.
	ReleaseSink(ctx context.Context, sink, owner string) error
	// SinkStates returns every sink's state, by name.
	SinkStates(ctx context.Context) ([]SinkState, error)
}
