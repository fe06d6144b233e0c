package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/errnowatch/errnowatch/pkg/alert"
)

// Revision is one stored revision of an alert, as its history keeps it: a
// store holds an alert's latest revision only (each one restates all its
// counts), and beside it this short account of the revisions that led
// there, for the web UI's alert page.
type Revision struct {
	Revision uint32
	Seq      uint64    // the sequence it was stored under
	StoredAt time.Time // when the collector stored it
	LastSeen time.Time
	Severity alert.Severity
	Total    uint64
	// Message is the revision's message, cut to MaxHistoryMessage bytes.
	Message string
}

// History bounds: an alert keeps its last MaxHistory revisions, each
// message cut to MaxHistoryMessage bytes, so a history is at most about
// 12 KiB however often an agent revises the alert.
const (
	MaxHistory        = 32
	MaxHistoryMessage = 256
)

// HistoryReader is the web UI's read of an alert's revisions.
type HistoryReader interface {
	// History returns the stored revisions of alert id, oldest first (the
	// last is the stored alert); none when the alert is not stored.
	History(ctx context.Context, id string) ([]Revision, error)
}

// historyEntry is a Revision as stored: short keys, times in unix ns.
type historyEntry struct {
	Revision uint32 `json:"r"`
	Seq      uint64 `json:"q"`
	StoredAt int64  `json:"s"`
	LastSeen int64  `json:"l"`
	Severity int    `json:"v"`
	Total    uint64 `json:"t"`
	Message  string `json:"m,omitempty"`
}

// AppendHistory is the history of a new revision a stored under seq at
// storedAt: prev (the replaced revision's history, nil for a new alert)
// with a's entry added, keeping the last MaxHistory. A prev that does not
// decode (a damaged row) is dropped rather than failing the insert: the
// history then starts again at a.
func AppendHistory(prev []byte, a *alert.Alert, seq uint64, storedAt time.Time) []byte {
	var h []historyEntry
	if len(prev) > 0 && json.Unmarshal(prev, &h) != nil {
		h = nil
	}
	h = append(h, historyEntry{Revision: a.Revision, Seq: seq, StoredAt: storedAt.UnixNano(),
		LastSeen: a.LastSeen.UnixNano(), Severity: int(a.Severity), Total: a.Total,
		Message: truncateUTF8(a.Message, MaxHistoryMessage)})
	if len(h) > MaxHistory {
		h = h[len(h)-MaxHistory:]
	}
	b, err := json.Marshal(h)
	if err != nil { // plain values only: cannot happen
		panic(fmt.Sprintf("encode alert history: %v", err))
	}
	return b
}

// DecodeHistory reads a stored history. A row written before histories
// were kept has none (nil): its history is the stored alert alone, which
// the caller knows.
func DecodeHistory(b []byte) ([]Revision, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var h []historyEntry
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("stored alert history does not decode: %w", err)
	}
	out := make([]Revision, len(h))
	for i, e := range h {
		out[i] = Revision{Revision: e.Revision, Seq: e.Seq, StoredAt: time.Unix(0, e.StoredAt).UTC(),
			LastSeen: time.Unix(0, e.LastSeen).UTC(), Severity: alert.Severity(e.Severity), Total: e.Total,
			Message: e.Message}
	}
	return out, nil
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
