// Package store is where alerts come to rest in the collector. It defines the
// role interfaces the collector's services use (Inserter for ingest, Reader
// for queries and the SIEM stream, Retainer for retention; Store is all of
// them for wiring), the types they exchange, and what both implementations
// share: the migration runner (Migrate), the paging of List (Page) and the
// Batch an Insert takes, the one place alerts are validated and their
// bodies encoded before they are stored. Implementations live in
// sub-packages (sqlite, postgres) and must pass the conformance suite in
// storetest.
//
// Both stores keep one body encoding (alertpb.Marshal, protobuf) and keep exact
// rollups per namespace, pod, node, rule, severity and hour of LastSeen,
// maintained by the database on every insert, update and delete (retention
// included), so Summarize reads rollups instead of every alert.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
)

var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("store is closed")
	// ErrCorrupt wraps what an integrity check found wrong with a store's
	// files; the store does not open.
	ErrCorrupt = errors.New("store is corrupt")
	// ErrInvalid wraps the reason NewBatch refused an alert; the batch is
	// not stored and resending it cannot succeed.
	ErrInvalid = errors.New("invalid alert")
)

// Stored is one alert revision as stored.
type Stored struct {
	// Seq is the store sequence of this revision: every stored revision gets
	// a new one, larger than any given before, never reused (not even after
	// retention deleted everything).
	Seq      uint64
	StoredAt time.Time
	Alert    alert.Alert
}

// Filter selects alerts; zero fields match everything and all set fields
// must match.
type Filter struct {
	Namespace    string
	Pod          string
	Container    string
	WorkloadKind string
	WorkloadName string
	Node         string
	RuleID       string
	// MinSeverity keeps alerts at this severity or worse.
	MinSeverity alert.Severity
	// Since keeps alerts with LastSeen >= Since.
	Since time.Time
	// Until keeps alerts with FirstSeen < Until.
	Until time.Time
}

// Match reports whether a matches f; implementations that filter in their
// query language must agree with it (storetest checks).
func (f *Filter) Match(a *alert.Alert) bool {
	switch {
	case f.Namespace != "" && a.Namespace != f.Namespace,
		f.Pod != "" && a.Pod != f.Pod,
		f.Container != "" && a.Container != f.Container,
		f.WorkloadKind != "" && a.Workload.Kind != f.WorkloadKind,
		f.WorkloadName != "" && a.Workload.Name != f.WorkloadName,
		f.Node != "" && a.Node != f.Node,
		f.RuleID != "" && a.RuleID != f.RuleID,
		a.Severity < f.MinSeverity,
		!f.Since.IsZero() && a.LastSeen.Before(f.Since),
		!f.Until.IsZero() && !a.FirstSeen.Before(f.Until):
		return false
	}
	return true
}

// InsertResult tells what a batch changed.
type InsertResult struct {
	// New holds the revisions stored by this batch, in batch order, with
	// their sequences.
	New []Stored
	// Duplicates counts alerts whose revision (or a later one) was already
	// stored; they changed nothing.
	Duplicates int
	// Foreign lists the alerts not stored because their ID is stored for
	// another node: only the node that raised an alert may update it, so a
	// forged revision from elsewhere can neither overwrite it nor make the
	// real agent's next update look like a duplicate.
	Foreign []string
}

// ListOptions pages a List by alert ID, descending. IDs are ULIDs, so this
// is newest first-raised first and a page never shifts when alerts update.
type ListOptions struct {
	// Limit is the page size; it must be positive.
	Limit int
	// BeforeID continues after the last ID of the previous page; empty
	// starts at the newest.
	BeforeID string
}

// RuleSummary counts one rule's alerts within a PodSummary.
type RuleSummary struct {
	RuleID      string
	Alerts      uint64
	Failures    uint64
	MaxSeverity alert.Severity
}

// PodSummary counts the alerts of one pod (or, for host alerts with no pod,
// one node).
type PodSummary struct {
	Namespace string
	Pod       string
	// Node is set only for host alerts (empty Pod).
	Node        string
	Alerts      uint64
	Failures    uint64
	MaxSeverity alert.Severity
	LastSeen    time.Time
	// Rules is sorted by rule ID.
	Rules []RuleSummary
	// BySeverity counts alerts per severity, indexed by alert.Severity.
	BySeverity [alert.SeverityCritical + 1]uint64
}

// Retention bounds what a store keeps. Zero fields do not bound.
type Retention struct {
	// MaxAge deletes alerts whose LastSeen is older than now minus MaxAge.
	MaxAge time.Duration
	// MaxAlerts keeps at most this many alerts, deleting those stored
	// (last updated) longest ago. Count is the portable measure of size:
	// database files do not shrink when rows go.
	MaxAlerts int64
	// MaxAlertsPerNode keeps at most this many alerts of each node,
	// deleting that node's alerts stored longest ago. It applies before
	// MaxAlerts, so one node's flood is cut back to its own quota instead
	// of evicting other nodes' alerts.
	MaxAlertsPerNode int64
}

// Watcher is implemented by stores that several collectors share
// (postgres): Watch calls fn with a sequence whenever any of them stores
// alerts, until ctx ends, so a collector can wake its stream subscribers for
// alerts another one stored. It is only a wake-up (readers catch up with
// ReadAfter); it returns ctx's error or the error that broke the watch.
type Watcher interface {
	Watch(ctx context.Context, fn func(seq uint64)) error
}

// Health is the operator's view of a store: whether it answers, and what it
// had to skip. Every store implements it.
type Health interface {
	// Ping checks that the store answers a query now; /readyz reports its
	// error.
	Ping(ctx context.Context) error
	// UndecodableRows counts stored rows that List and ReadAfter skipped
	// because their body no longer decodes, since Open.
	UndecodableRows() uint64
}

// Inserter is the role ingest needs: it stores batches. Like Prometheus'
// storage.Appendable, it is the write side alone.
type Inserter interface {
	// Insert stores a batch atomically and durably: when it returns nil, the
	// whole batch survives a crash; on error nothing of it is stored. An
	// alert whose (ID, Revision) is new and higher than the stored revision
	// replaces it under a new sequence, if it names the stored alert's node
	// (else it is Foreign); otherwise it is a duplicate. The batch was
	// validated and its bodies encoded when it was made (NewBatch): Insert
	// writes them as they are.
	Insert(ctx context.Context, batch Batch) (InsertResult, error)
}

// Submitter is an Inserter whose Insert comes in two halves, so that one
// caller can have several batches in the store and still have them
// written in its order. Submit hands the batch to the store: batches one
// goroutine submits are written in the order it submitted them (in one
// transaction or in later ones). It returns once the store has taken the
// batch, with wait, which returns what Insert would have; every batch
// taken is committed or failed as a whole, whether or not wait is called.
// An error from Submit means the store did not take the batch.
type Submitter interface {
	Inserter
	Submit(ctx context.Context, batch Batch) (wait func() (InsertResult, error), err error)
}

// Reader is the role queries and the SIEM stream need: they read what was
// stored and never change it (Prometheus' storage.Queryable).
type Reader interface {
	// List returns one page of alerts matching f, by ID descending, and
	// whether more follow.
	List(ctx context.Context, f Filter, opts ListOptions) (page []Stored, more bool, err error)
	// Summarize counts the alerts matching f per pod, sorted by namespace,
	// pod and node.
	Summarize(ctx context.Context, f Filter) ([]PodSummary, error)
	// ReadAfter returns up to limit revisions matching f with Seq > after,
	// by Seq ascending, and the cursor to continue from: every matching
	// revision with Seq <= cursor has been returned (by this call or an
	// earlier one), so a filter that matches little still moves the cursor
	// forward. A sequence is never returned while a smaller one can still
	// appear, so reading on from the cursor misses nothing.
	ReadAfter(ctx context.Context, after uint64, f Filter, limit int) (revs []Stored, cursor uint64, err error)
	// LastSeq returns the largest sequence ever given, 0 for a new store.
	LastSeq(ctx context.Context) (uint64, error)
}

// Retainer is the role retention needs: it deletes what a Retention does
// not keep.
type Retainer interface {
	// Retain deletes what r does not keep and returns how many alerts went.
	Retain(ctx context.Context, r Retention) (deleted int64, err error)
}

// Store keeps the latest revision of every alert: all three roles and Close,
// for the code that opens a store and hands each role to its user. Every
// method is safe for concurrent use.
type Store interface {
	Inserter
	Reader
	Retainer
	// Close releases the store; it waits for writes in flight.
	Close() error
}
