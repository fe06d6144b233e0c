package store_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/store"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// TestNewBatchRefusesAnInvalidAlert: one invalid alert fails the batch with
// ErrInvalid, naming its index and what is wrong with it.
func TestNewBatchRefusesAnInvalidAlert(t *testing.T) {
	for _, tc := range []struct {
		mutate func(*alert.Alert)
		want   string
	}{
		{func(a *alert.Alert) { a.ID = "" }, "has no id"},
		{func(a *alert.Alert) { a.Revision = 0 }, "revision must be at least 1"},
		{func(a *alert.Alert) { a.Severity = 99 }, "invalid severity 99"},
		{func(a *alert.Alert) { a.RuleID = "" }, "has no rule id"},
		{func(a *alert.Alert) { a.LastSeen = a.FirstSeen.Add(-time.Second) }, "first_seen must be set and not after last_seen"},
		{func(a *alert.Alert) { a.ID = strings.Repeat("x", 65) }, "longer than 64 characters"},
		{func(a *alert.Alert) { a.Targets = make([]alert.Target, alert.MaxTargets+1) }, "9 targets, at most 8"},
	} {
		as := storetest.Alerts(storetest.DefaultShape, base, 0, 5)
		tc.mutate(&as[3])
		b, err := store.NewBatch(as)
		if !errors.Is(err, store.ErrInvalid) || !strings.HasPrefix(err.Error(), "alert 3: invalid alert: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewBatch with %q = %v; want store.ErrInvalid for alert 3 saying %q", tc.want, err, tc.want)
		}
		if b.Len() != 0 {
			t.Errorf("NewBatch with %q returned %d alerts beside its error", tc.want, b.Len())
		}
	}
}

// TestNewBatchEncodesEachBodyOnce: a batch holds its alerts as given, each
// with alertpb.Marshal's body, and what it hands out cannot change it.
func TestNewBatchEncodesEachBodyOnce(t *testing.T) {
	as := storetest.Alerts(storetest.DefaultShape, base, 0, 20)
	b := storetest.MustBatch(t, as)
	if b.Len() != len(as) {
		t.Fatalf("batch of %d alerts has %d", len(as), b.Len())
	}
	for i := range as {
		if got := b.Alert(i); !reflect.DeepEqual(got, as[i]) {
			t.Fatalf("alert %d is %+v, want %+v", i, got, as[i])
		}
		want, err := alertpb.Marshal(&as[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Body(i), want) {
			t.Fatalf("body %d is not alertpb.Marshal's", i)
		}
	}
	id := as[0].ID
	as[0].ID = ""
	got := b.Alert(0)
	got.Revision = 0
	if a := b.Alert(0); a.ID != id || a.Revision != 1 {
		t.Fatalf("changing the input or a returned alert changed the batch: %+v", a)
	}
	if err := b.Add(as[0]); err == nil || b.Len() != len(as) {
		t.Fatalf("Add of an alert with no id = %v, batch of %d; want an error and %d", err, b.Len(), len(as))
	}
}

// TestAddReceivedChecksAndKeepsTheWireBody: a received alert is converted,
// validated and stored with Marshal's body; what it refuses comes back as
// FromProto's or Validate's own error, the message ingest passes on.
func TestAddReceivedChecksAndKeepsTheWireBody(t *testing.T) {
	as := storetest.Alerts(storetest.DefaultShape, base, 0, 3)
	var b store.Batch
	b.Grow(len(as))
	for i := range as {
		a, err := b.AddReceived(alertpb.ToProto(&as[i]))
		if err != nil || !reflect.DeepEqual(a, as[i]) {
			t.Fatalf("AddReceived(%d) = %+v, %v; want %+v", i, a, err, as[i])
		}
		want, _ := alertpb.Marshal(&as[i])
		if !bytes.Equal(b.Body(i), want) {
			t.Fatalf("body %d is not alertpb.Marshal's", i)
		}
	}
	bad := alertpb.ToProto(&as[0])
	bad.Severity = 9
	_, convErr := alertpb.FromProto(bad)
	if _, err := b.AddReceived(bad); err == nil || err.Error() != convErr.Error() {
		t.Fatalf("AddReceived of severity 9 = %v; want FromProto's %v", err, convErr)
	}
	bad = alertpb.ToProto(&as[0])
	bad.Revision = 0
	if _, err := b.AddReceived(bad); err == nil || !strings.Contains(err.Error(), "revision must be at least 1") || errors.Is(err, store.ErrInvalid) {
		t.Fatalf("AddReceived of revision 0 = %v; want Validate's error as is", err)
	}
	bad = alertpb.ToProto(&as[0])
	bad.Targets[0].Kind = errnowatchv1.TargetKind_TARGET_KIND_UNSPECIFIED
	if _, err := b.AddReceived(bad); err == nil {
		t.Fatal("AddReceived accepted a target of no kind")
	}
	if b.Len() != len(as) {
		t.Fatalf("refused alerts were added: %d alerts, want %d", b.Len(), len(as))
	}
}

// BenchmarkReceivedBatch compares, in one run, the two ways ingest can
// make a batch of 500 received alerts: AddReceived (what it does: one
// conversion, one validation, the received message re-encoded as the body)
// and converting each alert, validating it, then NewBatch (what it did
// through Insert before store.Batch: a second validation, and the Go alert
// converted back to protobuf to encode its body; NewBatch's copy of the
// alerts, one allocation of 500 alerts, is the one cost the old Insert did
// not have).
func BenchmarkReceivedBatch(b *testing.B) {
	as := storetest.Alerts(storetest.DefaultShape, base, 0, 500)
	ps := make([]*errnowatchv1.Alert, len(as))
	for i := range as {
		ps[i] = alertpb.ToProto(&as[i])
	}
	b.Run("AddReceived", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var batch store.Batch
			batch.Grow(len(ps))
			for _, p := range ps {
				if _, err := batch.AddReceived(p); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("FromProto+Validate+NewBatch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			got := make([]alert.Alert, len(ps))
			for i, p := range ps {
				a, err := alertpb.FromProto(p)
				if err == nil {
					err = a.Validate()
				}
				if err != nil {
					b.Fatal(err)
				}
				got[i] = a
			}
			if _, err := store.NewBatch(got); err != nil {
				b.Fatal(err)
			}
		}
	})
}
