// Package delivery is the agent's last stage: it takes the alerts the rule
// engine raises, keeps them in a bounded on-disk spool so that neither a
// collector outage nor an agent restart loses them, and streams them to the
// collector's ingest RPC, deleting from the spool only what the collector
// acknowledged. It hands on nothing inside the agent; what leaves it is the
// stream of alert revisions the collector stores once each by (ID, revision).
//
// The spool (Spool) is a directory of append-only segment files. Each record
// is framed with its length and a CRC-32C, so a torn tail left by a crash is
// found and cut off when the spool is opened. Appends are fsynced once per
// Append call (one batch), so a crash loses at most the batch being written.
// The acknowledged sequence number lives in a small state file replaced
// atomically by rename; segments are deleted whole once every record in them
// is acknowledged (or dropped).
//
// When the spool is full the oldest records are dropped, not the new ones:
// an alert's later revisions supersede its earlier ones, and in a security
// agent the newest alerts describe what is happening now, so that keeping
// them while losing the oldest revisions loses the least.
//
// When the disk refuses an append (full, failing), the alerts not written
// are held in memory, bounded by MaxHeldBytes, and written ahead of newer
// ones at the next Append (the agent appends every interval, with or
// without alerts) or Flush. An alert that fails validation is dropped
// alone; the rest of its batch is spooled.
//
// Every drop is counted by reason (full, unwritable, invalid, damaged:
// errnowatch_spool_dropped_total{reason}, the Spool being a Prometheus
// collector) and reported to the collector as an alert of its own (RuleID
// DroppedRuleID) once it is reachable again and the disk takes the report.
//
// The sender (Sender) reconnects with exponential backoff and jitter, keeps a
// bounded window of unacknowledged batches in flight, and after a reconnect
// sends again everything not yet acknowledged; the collector's idempotent
// inserts turn those resends into no-ops.
package delivery
