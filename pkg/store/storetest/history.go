package storetest

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/store"
)

// HistoryStore is a store that keeps each alert's revision history.
type HistoryStore interface {
	store.Store
	store.HistoryReader
}

// RunHistory checks a store's store.HistoryReader: each stored revision is
// in the history with its sequence, oldest first, including a revision a
// later one replaced within the same batch; duplicates and another node's
// revisions add nothing; the history keeps the last store.MaxHistory
// revisions with messages cut to store.MaxHistoryMessage bytes on a
// character boundary; and retention takes it with its alert.
func RunHistory(t *testing.T, open func(t *testing.T) HistoryStore) {
	ctx := context.Background()
	s := open(t)
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	a := Alerts(DefaultShape, base, 0, 1)[0]
	other := Alerts(DefaultShape, base, 1, 1)[0]
	rev := func(n uint32, msg string) store.Batch {
		r := a
		r.Revision, r.Total, r.Message = n, uint64(n)*10, msg
		r.LastSeen = a.FirstSeen.Add(time.Duration(n) * time.Second)
		return MustBatch(t, []alert.Alert{r})
	}
	history := func() []store.Revision {
		t.Helper()
		h, err := s.History(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	insert := func(b store.Batch) store.InsertResult {
		t.Helper()
		res, err := s.Insert(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	if h, err := s.History(ctx, "01NOSUCHALERT0000000000000"); err != nil || len(h) != 0 {
		t.Fatalf("history of an alert never stored: %v, %v", h, err)
	}
	r1 := insert(rev(1, "first"))
	insert(MustBatch(t, []alert.Alert{other}))
	// Revisions 2 and 3 in one batch: 3 replaces 2 before it is written,
	// and the history still has 2.
	two, three := a, a
	two.Revision, two.Total, two.Message = 2, 20, "second"
	three.Revision, three.Total, three.Message = 3, 30, "third"
	r23 := insert(MustBatch(t, []alert.Alert{two, three}))
	h := history()
	if len(h) != 3 || h[0].Revision != 1 || h[1].Revision != 2 || h[2].Revision != 3 {
		t.Fatalf("history after revisions 1, 2 and 3: %+v", h)
	}
	if h[0].Seq != r1.New[0].Seq || h[1].Seq != r23.New[0].Seq || h[2].Seq != r23.New[1].Seq {
		t.Errorf("history sequences %d %d %d, stored as %d %d %d", h[0].Seq, h[1].Seq, h[2].Seq,
			r1.New[0].Seq, r23.New[0].Seq, r23.New[1].Seq)
	}
	if h[1].Message != "second" || h[1].Total != 20 || h[2].Severity != a.Severity || h[0].StoredAt.IsZero() {
		t.Errorf("revision 2 in the history: %+v", h[1])
	}

	// A duplicate and another node's revision add nothing.
	if res := insert(rev(3, "third again")); res.Duplicates != 1 {
		t.Fatalf("revision 3 again: %+v", res)
	}
	foreign := a
	foreign.Revision, foreign.Node = 9, "another-node"
	if res := insert(MustBatch(t, []alert.Alert{foreign})); len(res.Foreign) != 1 {
		t.Fatalf("another node's revision: %+v", res)
	}
	if h := history(); len(h) != 3 {
		t.Fatalf("a duplicate or foreign revision changed the history: %+v", h)
	}

	// Bounded: the last MaxHistory revisions, each message cut.
	long := strings.Repeat("é", store.MaxHistoryMessage) // 2 bytes each
	last := uint32(3 + store.MaxHistory + 5)
	for n := uint32(4); n <= last; n++ {
		insert(rev(n, long))
	}
	h = history()
	if len(h) != store.MaxHistory || h[0].Revision != last-store.MaxHistory+1 || h[len(h)-1].Revision != last {
		t.Fatalf("history after %d revisions: %d kept, %d..%d; want the last %d", last, len(h), h[0].Revision,
			h[len(h)-1].Revision, store.MaxHistory)
	}
	for _, r := range h {
		if len(r.Message) > store.MaxHistoryMessage || !utf8.ValidString(r.Message) || !strings.HasPrefix(long, r.Message) ||
			len(r.Message) < store.MaxHistoryMessage-1 {
			t.Fatalf("revision %d message of %d bytes (valid UTF-8 %v), want the first %d bytes", r.Revision,
				len(r.Message), utf8.ValidString(r.Message), store.MaxHistoryMessage)
		}
	}
	if oh, err := s.History(ctx, other.ID); err != nil || len(oh) != 1 || oh[0].Revision != other.Revision {
		t.Errorf("the other alert's history: %+v, %v", oh, err)
	}

	// Retention takes the history with the alert.
	if _, err := s.Retain(ctx, store.Retention{MaxAge: time.Since(base.Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	if h := history(); len(h) != 0 {
		t.Fatalf("history of an alert retention deleted: %+v", h)
	}
}
