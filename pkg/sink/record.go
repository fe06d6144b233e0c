package sink

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/errnowatch/errnowatch/pkg/alertfmt"
	"github.com/errnowatch/errnowatch/pkg/store"
)

// Record is what a sink delivers: the alert and where the store put it, the
// same JSON as `errnowatch alerts stream -o json`.
type Record = alertfmt.Record

func fromStored(st store.Stored) Record {
	return Record{Sequence: st.Seq, StoredTime: st.StoredAt, Alert: st.Alert}
}

// permanentError marks a delivery that retrying cannot make succeed: the
// destination rejected the content. The runner delivers the batch's alerts
// one by one and dead-letters the ones still refused.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }

func isPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// errTooLarge is the permanent error of an alert that does not fit the
// sink's maxMessageBytes even cut down.
var errTooLarge = errors.New("alert does not fit maxMessageBytes even without targets, processes and counts")

// fieldCut bounds the free-text fields before any encoding: a message is
// built from attacker-chosen paths and comms.
const fieldCut = 2048

// fit encodes r with enc, and when the result is over max, encodes smaller
// copies: without targets, then processes, then counts, then with the
// message and description cut to 256 bytes. It returns errTooLarge
// (permanent) when nothing fits.
func fit(r Record, max int, enc func(*Record) ([]byte, error)) ([]byte, error) {
	r.Message = cut(r.Message, fieldCut)
	r.Description = cut(r.Description, fieldCut)
	steps := []func(*Record){
		func(*Record) {},
		func(r *Record) { r.Targets = nil },
		func(r *Record) { r.Processes = nil },
		func(r *Record) { r.Counts = nil },
		func(r *Record) { r.Message, r.Description = cut(r.Message, 256), cut(r.Description, 256) },
	}
	for _, step := range steps {
		step(&r)
		b, err := enc(&r)
		if err != nil {
			return nil, permanent(fmt.Errorf("encode alert %s: %w", r.ID, err))
		}
		if len(b) <= max {
			return b, nil
		}
	}
	return nil, permanent(fmt.Errorf("alert %s: %w", r.ID, errTooLarge))
}

// cut shortens s to at most n bytes on a rune boundary, marking the cut
// with "...".
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n - 3
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}

// plain makes attacker-influenced text one safe line: control characters,
// bidi overrides and invalid UTF-8 become visible escapes
// (alertfmt.Sanitize), runs of white space one space, and the result at
// most n bytes.
func plain(s string, n int) string {
	return cut(alertfmt.Sanitize(strings.Join(strings.Fields(s), " ")), n)
}
