package delivery

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
)

const stateFile = "state.json"

// spoolState is what the spool keeps besides its segments: how far it has
// been acknowledged and the drops not yet reported. It is small and
// replaced whole by rename, so a crash leaves either the old or the new one.
type spoolState struct {
	// Acked is the sequence number up to which every record is done:
	// acknowledged by the collector or dropped.
	Acked   uint64      `json:"acked"`
	Pending *DropReport `json:"pending_drops,omitempty"`
}

// DropReport counts the records the spool dropped because it was full and
// has not yet reported to the collector.
type DropReport struct {
	// ID and Revision identify the drop alert this report becomes; the ID is
	// chosen at the first drop so that a report re-sent after a crash is the
	// same alert (at a higher revision), not a second one.
	ID       string `json:"id"`
	Revision uint32 `json:"revision"`
	// Count is the number of alert records dropped; Reasons splits it.
	Count   uint64     `json:"count"`
	Reasons DropCounts `json:"reasons,omitzero"`
	// First and Last are the times the oldest and newest dropped records
	// were spooled.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// repair makes a report read from a damaged state file one that becomes a
// valid alert: an ID, a revision that did not wrap, and a time span. A new
// ID starts a new alert, which beats losing the count.
func (r *DropReport) repair(now time.Time) {
	if r.First.IsZero() {
		r.First = now
	}
	if r.Last.Before(r.First) {
		r.Last = r.First
	}
	if r.ID == "" || len(r.ID) > 64 || r.Revision == 0 || r.Revision == math.MaxUint32 {
		r.ID, r.Revision = alert.NewID(r.First), 1
	}
	if r.Reasons.total() > r.Count {
		// The split is only a help to the reader (a state from before it
		// has none); the count is what was lost.
		r.Reasons = DropCounts{}
	}
}

// DropCounts splits dropped alerts by why they were dropped.
type DropCounts struct {
	// Full: the oldest waiting alerts, dropped to stay within the spool's
	// bounds (MaxBytes, MaxRecords).
	Full uint64 `json:"full,omitempty"`
	// Unwritable: alerts the disk refused (full, failing) dropped past the
	// in-memory bound (MaxHeldBytes) or at Close.
	Unwritable uint64 `json:"unwritable,omitempty"`
	// Invalid: alerts that failed validation or were too large to spool.
	Invalid uint64 `json:"invalid,omitempty"`
	// Damaged: records lost to damage on disk, or found undecodable.
	Damaged uint64 `json:"damaged,omitempty"`
}

type dropReason int

const (
	dropFull dropReason = iota
	dropUnwritable
	dropInvalid
	dropDamaged
)

// dropReasons name the reasons in metrics and drop reports.
var dropReasons = [...]string{dropFull: "full", dropUnwritable: "unwritable", dropInvalid: "invalid", dropDamaged: "damaged"}

func (c *DropCounts) field(why dropReason) *uint64 {
	switch why {
	case dropUnwritable:
		return &c.Unwritable
	case dropInvalid:
		return &c.Invalid
	case dropDamaged:
		return &c.Damaged
	}
	return &c.Full
}

func (c *DropCounts) add(why dropReason, n uint64) { *c.field(why) += n }

func (c *DropCounts) addAll(o DropCounts) {
	for why := range dropReasons {
		c.add(dropReason(why), *o.field(dropReason(why)))
	}
}

func (c DropCounts) total() uint64 { return c.Full + c.Unwritable + c.Invalid + c.Damaged }

// String says what the counts are in words, for the drop alert's message.
func (c DropCounts) String() string {
	var parts []string
	for _, x := range []struct {
		n    uint64
		what string
	}{
		{c.Full, "%d because the spool was full"},
		{c.Unwritable, "%d because the disk refused writes"},
		{c.Invalid, "%d invalid"},
		{c.Damaged, "%d lost to damage on disk"},
	} {
		if x.n > 0 {
			parts = append(parts, fmt.Sprintf(x.what, x.n))
		}
	}
	if len(parts) == 0 {
		return "reason not recorded"
	}
	return strings.Join(parts, ", ")
}

// readState returns the zero state when there is no file yet.
func readState(dir string) (spoolState, error) {
	var st spoolState
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read spool state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return spoolState{}, fmt.Errorf("parse spool state %s: %w", filepath.Join(dir, stateFile), err)
	}
	return st, nil
}

// writeState replaces the state file atomically: write a temporary file,
// fsync it, rename it over the old one and fsync the directory so that the
// rename itself survives a power loss.
func writeState(dir *os.File, st spoolState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode spool state: %w", err)
	}
	tmp, err := os.CreateTemp(dir.Name(), stateFile+".tmp*")
	if err != nil {
		return fmt.Errorf("create spool state: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write spool state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync spool state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close spool state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir.Name(), stateFile)); err != nil {
		return fmt.Errorf("replace spool state: %w", err)
	}
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("sync spool directory: %w", err)
	}
	return nil
}
