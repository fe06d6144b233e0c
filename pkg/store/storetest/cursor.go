package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/store"
)

// RunCursors runs the conformance suite of store.SinkCursors against stores
// made by newStore, which must implement it.
func RunCursors(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.SinkCursors)
	}{
		{"FirstClaimStartsAtStartAndAcksMoveForward", testCursorAck},
		{"LeaseExcludesOthersUntilItExpires", testCursorLease},
		{"ReleaseHandsOverAtOnce", testCursorRelease},
		{"ConcurrentClaimsHaveOneWinner", testCursorRace},
		{"SinksAreIndependent", testCursorSinks},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			c, ok := s.(store.SinkCursors)
			if !ok {
				t.Fatalf("%T does not implement store.SinkCursors", s)
			}
			tc.fn(t, c)
		})
	}
}

const hour = time.Hour

func mustClaim(t *testing.T, c store.SinkCursors, sink, owner string, ttl time.Duration, start uint64) uint64 {
	t.Helper()
	cur, err := c.ClaimSink(context.Background(), sink, owner, ttl, start)
	if err != nil {
		t.Fatalf("claim %s as %s: %v", sink, owner, err)
	}
	return cur
}

func mustAck(t *testing.T, c store.SinkCursors, sink, owner string, seq uint64) {
	t.Helper()
	if err := c.AckSink(context.Background(), sink, owner, seq); err != nil {
		t.Fatalf("ack %s as %s at %d: %v", sink, owner, seq, err)
	}
}

func testCursorAck(t *testing.T, c store.SinkCursors) {
	if got := mustClaim(t, c, "hook", "a", hour, 7); got != 7 {
		t.Fatalf("first claim: cursor %d, want the start 7", got)
	}
	mustAck(t, c, "hook", "a", 10)
	mustAck(t, c, "hook", "a", 9) // a late ack of an earlier batch never moves back
	if got := mustClaim(t, c, "hook", "a", hour, 0); got != 10 {
		t.Fatalf("renewed claim: cursor %d, want 10 (start is ignored once the sink exists)", got)
	}
	states, err := c.SinkStates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 || states[0].Sink != "hook" || states[0].Cursor != 10 || states[0].Owner != "a" ||
		!states[0].Expires.After(time.Now()) {
		t.Fatalf("states = %+v, want hook at 10 owned by a until after now", states)
	}
}

func testCursorLease(t *testing.T, c store.SinkCursors) {
	ctx := context.Background()
	const ttl = 300 * time.Millisecond
	mustClaim(t, c, "hook", "a", ttl, 0)
	mustAck(t, c, "hook", "a", 5)
	if _, err := c.ClaimSink(ctx, "hook", "b", ttl, 0); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("claim by b while a holds the lease: %v, want ErrLeaseHeld", err)
	}
	if err := c.AckSink(ctx, "hook", "b", 6); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("ack by b, which holds no lease: %v, want ErrLeaseHeld", err)
	}
	time.Sleep(2 * ttl)
	if err := c.AckSink(ctx, "hook", "a", 6); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("ack by a after its lease expired: %v, want ErrLeaseHeld", err)
	}
	if got := mustClaim(t, c, "hook", "b", hour, 0); got != 5 {
		t.Fatalf("b took over at %d, want a's last ack 5", got)
	}
	if err := c.AckSink(ctx, "hook", "a", 7); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("ack by a after b took over: %v, want ErrLeaseHeld", err)
	}
	mustAck(t, c, "hook", "b", 8)
}

func testCursorRelease(t *testing.T, c store.SinkCursors) {
	ctx := context.Background()
	mustClaim(t, c, "hook", "a", hour, 0)
	mustAck(t, c, "hook", "a", 3)
	if err := c.ReleaseSink(ctx, "hook", "b"); err != nil { // not b's: changes nothing
		t.Fatal(err)
	}
	if _, err := c.ClaimSink(ctx, "hook", "b", hour, 0); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("claim by b after b released a's lease: %v, want ErrLeaseHeld", err)
	}
	if err := c.ReleaseSink(ctx, "hook", "a"); err != nil {
		t.Fatal(err)
	}
	if got := mustClaim(t, c, "hook", "b", hour, 0); got != 3 {
		t.Fatalf("b claimed at %d after a released, want 3", got)
	}
}

func testCursorRace(t *testing.T, c store.SinkCursors) {
	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		won  int
		errs []error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.ClaimSink(context.Background(), "hook", string(rune('a'+i)), hour, 0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrLeaseHeld):
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 || won != 1 {
		t.Fatalf("%d of %d concurrent claims won (want 1), errors %v", won, n, errs)
	}
}

func testCursorSinks(t *testing.T, c store.SinkCursors) {
	mustClaim(t, c, "slack", "a", hour, 0)
	mustClaim(t, c, "syslog", "b", hour, 0)
	mustAck(t, c, "slack", "a", 4)
	mustAck(t, c, "syslog", "b", 9)
	states, err := c.SinkStates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 2 || states[0].Sink != "slack" || states[0].Cursor != 4 || states[1].Sink != "syslog" ||
		states[1].Cursor != 9 {
		t.Fatalf("states = %+v, want slack at 4 and syslog at 9", states)
	}
}
