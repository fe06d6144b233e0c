package store

import (
	"fmt"
	"slices"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
)

// Batch is alerts ready to store: each one passed alert.Validate, and each
// one's body is encoded, once, in the one body encoding every store keeps
// (alertpb.Marshal's protobuf errnowatch.v1.Alert). Its fields are
// unexported, so NewBatch, Add and AddReceived are the only ways to fill
// one: a store never meets an alert nobody validated, and never validates
// or encodes one itself; it writes the bodies it is handed. The zero Batch
// is empty.
//
// Validate once, at the boundary. From an agent's Spool.Append to the
// collector's ListAlerts or StreamAlerts answer, counting alert.Validate
// calls and conversions between the Go alert and the protobuf message
// (alertpb.ToProto / FromProto; alertpb.CheckLimits, the bound on a
// received message, runs once at ingest before and after; docs/structure.md
// counts on to the CLI's print):
//
// Before (Insert took []alert.Alert): validated three times: spool append
// (agent), ingest (collector), Insert (the store); crossed five times:
// ToProto to send (agent), FromProto on receipt (ingest), ToProto for the
// stored body (the store's alertpb.Marshal), FromProto reading the body
// (List, ReadAfter), ToProto for the answer.
//
// Now: validated twice: spool append (agent: it keeps the spool free of
// what the collector would refuse) and ingest (collector: the trust
// boundary, AddReceived); crossed four times: ToProto to send, FromProto on
// receipt, FromProto reading the body, ToProto for the answer. The stored
// body is the received message re-encoded (alertpb.ReceivedBody), not the
// Go alert converted back. Byte encodings are unchanged: the agent's send,
// the collector's receive, the body written, the body read, the answer.
type Batch struct {
	alerts []alert.Alert
	bodies [][]byte
}

// NewBatch validates as and encodes each one's stored body. An invalid
// alert fails the whole batch with ErrInvalid and says which alert and
// which field. The batch holds as's alerts (copied shallowly): do not
// change their slices afterwards.
func NewBatch(as []alert.Alert) (Batch, error) {
	b := Batch{alerts: make([]alert.Alert, 0, len(as)), bodies: make([][]byte, 0, len(as))}
	for i := range as {
		if err := b.Add(as[i]); err != nil {
			return Batch{}, fmt.Errorf("alert %d: %w: %w", i, ErrInvalid, err)
		}
	}
	return b, nil
}

// Add validates a and appends it with its encoded body; an invalid alert is
// not added and its alert.Validate error (naming the field) is returned as
// is. Like append, Add grows the batch it is called on; copies of a Batch
// should not both be added to.
func (b *Batch) Add(a alert.Alert) error {
	if err := a.Validate(); err != nil {
		return err
	}
	body, err := alertpb.Marshal(&a)
	if err != nil {
		return err
	}
	b.alerts, b.bodies = append(b.alerts, a), append(b.bodies, body)
	return nil
}

// AddReceived converts an alert received on the wire (alertpb.FromProto),
// validates it and appends it with its stored body made from p itself
// (alertpb.ReceivedBody): the collector's one conversion, one validation
// and one encoding of what an agent sent. It returns a copy of the added
// alert, or FromProto's or Validate's error as is (the alert is then not
// added). p must already be within alertpb.CheckLimits.
func (b *Batch) AddReceived(p *errnowatchv1.Alert) (alert.Alert, error) {
	a, err := alertpb.FromProto(p)
	if err != nil {
		return alert.Alert{}, err
	}
	if err := a.Validate(); err != nil {
		return alert.Alert{}, err
	}
	body, err := alertpb.ReceivedBody(p, &a)
	if err != nil {
		return alert.Alert{}, err
	}
	b.alerts, b.bodies = append(b.alerts, a), append(b.bodies, body)
	return a, nil
}

// Grow makes room for n more alerts, so that adding them does not
// reallocate.
func (b *Batch) Grow(n int) {
	b.alerts = slices.Grow(b.alerts, n)
	b.bodies = slices.Grow(b.bodies, n)
}

// Len is the number of alerts in the batch.
func (b Batch) Len() int { return len(b.alerts) }

// Alert returns alert i, valid, as a copy: a store reads its columns and
// returns it in InsertResult.New without changing the batch.
func (b Batch) Alert(i int) alert.Alert { return b.alerts[i] }

// Body returns the stored body of alert i. The store writes it as is and
// must not change it.
func (b Batch) Body(i int) []byte { return b.bodies[i] }
