package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/errnowatch/errnowatch/pkg/alert"
)

// Rollup keys a RollupQuery may group by.
const (
	ByBucket RollupKeys = 1 << iota
	ByNamespace
	ByPod
	ByNode
	ByRule
	BySeverity
)

// RollupKeys is a set of By* keys.
type RollupKeys uint8

// MaxRollupNamespaces bounds RollupQuery.Namespaces: a query names at most
// this many, so a caller allowed in many namespaces cannot build an
// unbounded statement.
const MaxRollupNamespaces = 512

// MaxRollupStep bounds RollupQuery.Step, in hours: a year.
const MaxRollupStep = 366 * 24

// RollupQuery reads the summary rollups (alert counts per namespace, pod,
// node, rule, severity and hour of LastSeen) grouped by some of their keys.
// It is what the web UI charts and ranks with: it never reads the alerts
// table, and it reads the coarsest rollup that answers it
// (RollupTablesFor), so its cost follows the groups it asks for, not the
// alerts.
type RollupQuery struct {
	// Namespaces keeps rows of these namespaces only ("" is host alerts);
	// nil keeps every namespace, an empty non-nil slice none.
	Namespaces []string
	// Pod, Node and RuleID keep rows equal to them when set; RulePrefix keeps
	// rules whose id starts with it.
	Pod, Node, RuleID, RulePrefix string
	MinSeverity                   alert.Severity
	// From and To bound LastSeen's hour: rows whose bucket holds any time in
	// [From, To) count, so a range is widened to whole hours. Zero is
	// unbounded.
	From, To time.Time
	By       RollupKeys
	// Step, over 1 with From set, merges ByBucket's hours into steps of
	// this many hours counted from StepOrigin (From's hour, or for steps of
	// whole days the start of its day); a row's Bucket is its step's first
	// hour. A chart of a month asks for its bars (days), not 720 hours of
	// rows, and steps of whole days read the daily rollups.
	Step int64
	// Limit keeps the groups with most alerts (ties by key), 0 all.
	Limit int
}

// RollupRow is one group of a RollupQuery; keys not grouped by are zero.
type RollupRow struct {
	Bucket                       int64 // hours since the epoch
	Namespace, Pod, Node, RuleID string
	Severity                     alert.Severity
	Alerts, Failures             uint64
	LastSeen                     time.Time // the newest LastSeen of the group
}

// BucketStart is when a rollup bucket begins.
func BucketStart(b int64) time.Time { return time.Unix(0, b*int64(RollupBucket)).UTC() }

// BucketRange is the half-open range of buckets [lo, hi) that a
// RollupQuery's From and To select.
func BucketRange(from, to time.Time) (lo, hi int64) {
	lo, hi = -1<<62, 1<<62
	b := int64(RollupBucket)
	if !from.IsZero() {
		lo = floorDiv(from.UnixNano(), b)
	}
	if !to.IsZero() {
		hi = floorDiv(to.UnixNano()-1, b) + 1
	}
	return lo, hi
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// Check reports a query no store should run.
func (q *RollupQuery) Check() error {
	switch {
	case len(q.Namespaces) > MaxRollupNamespaces:
		return fmt.Errorf("rollup query names %d namespaces, at most %d: filter by namespace", len(q.Namespaces), MaxRollupNamespaces)
	case q.Limit < 0:
		return fmt.Errorf("rollup query limit %d is negative", q.Limit)
	case q.Step < 0 || q.Step > MaxRollupStep:
		return fmt.Errorf("rollup query step %d hours is outside 0..%d", q.Step, MaxRollupStep)
	case !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To):
		return fmt.Errorf("rollup query range %s..%s is empty", q.From, q.To)
	}
	return nil
}

// UIReader is what the web UI reads besides store.Store: rollups grouped
// its way, and one alert by ID. Both stores implement it.
type UIReader interface {
	Rollups(ctx context.Context, q RollupQuery) ([]RollupRow, error)
	// Get returns the stored alert with this ID, or ok false.
	Get(ctx context.Context, id string) (s Stored, ok bool, err error)
}

// IndexedRange is the longest From..To range RollupSQL reads
// alert_rollups through its bucket index.
const IndexedRange = 7 * 24 * time.Hour

// needs is the keys a query groups or filters by (ByBucket aside).
func (q *RollupQuery) needs() RollupKeys {
	k := q.By &^ ByBucket
	if q.Namespaces != nil {
		k |= ByNamespace
	}
	if q.Pod != "" {
		k |= ByPod
	}
	if q.Node != "" {
		k |= ByNode
	}
	if q.RuleID != "" || q.RulePrefix != "" {
		k |= ByRule
	}
	if q.MinSeverity > alert.SeverityUnknown {
		k |= BySeverity
	}
	return k
}

// StepOrigin is the hour the steps of a query over hours from lo count
// from: lo itself, or for steps of whole days the start of lo's day, so
// that each step is whole days of the daily rollups (the first may begin
// before lo; it counts only what the range holds).
func StepOrigin(lo, step int64) int64 {
	if step > 1 && step%24 == 0 {
		return floorDiv(lo, 24) * 24
	}
	return lo
}

// daySteps tells whether q groups by steps of whole days.
func (q *RollupQuery) daySteps() bool {
	return q.By&ByBucket != 0 && q.Step > 1 && q.Step%24 == 0 && !q.From.IsZero()
}

// RollupTablesFor is the one place that picks the rollups a query reads:
// the hourly rollup, and a daily one for the whole days of its range
// unless it groups by hour in steps other than whole days (daily is then
// the zero RollupTable). The
// rollup is the coarsest that keeps every key the query groups or filters
// by; one pod's rows are read from alert_rollups, which keeps them
// together.
func RollupTablesFor(q RollupQuery) (hourly, daily RollupTable) {
	need := q.needs()
	if q.Pod != "" {
		return RollupTables[0], RollupTable{}
	}
	for i := len(RollupTables) - 1; i > 0; i-- {
		t := RollupTables[i]
		if t.Keys&need != need {
			continue
		}
		switch {
		case t.Hours == 1 && hourly.Name == "":
			hourly = t
		case t.Hours == 24 && daily.Name == "" && (q.By&ByBucket == 0 || q.daySteps()):
			daily = t
		}
	}
	return hourly, daily
}

// rollupPart is one table's share of a query: buckets [lo, hi) of the
// table's width, each end only when bounded.
type rollupPart struct {
	t              RollupTable
	lo, hi         int64
	hasLo, hasHi   bool
	indexSpanHours int64
}

// rollupParts splits q's range over the tables RollupTablesFor picks:
// whole days from the daily rollup, the hours before the first and after
// the last of them from the hourly one. Every alert counts once, in the
// hour RollupQuery's From and To select.
func rollupParts(q RollupQuery) []rollupPart {
	hourly, daily := RollupTablesFor(q)
	lo, hi := BucketRange(q.From, q.To)
	hasLo, hasHi := !q.From.IsZero(), !q.To.IsZero()
	to := q.To
	if to.IsZero() {
		to = time.Now()
	}
	span := int64(to.Sub(q.From) / time.Hour)
	whole := rollupPart{t: hourly, lo: lo, hi: hi, hasLo: hasLo, hasHi: hasHi, indexSpanHours: span}
	if daily.Name == "" {
		return []rollupPart{whole}
	}
	dlo, dhi := lo, hi // days; unbounded ends stay unbounded
	if hasLo {
		dlo = -floorDiv(-lo, 24)
	}
	if hasHi {
		dhi = floorDiv(hi, 24)
	}
	if hasLo && hasHi && dlo >= dhi {
		return []rollupPart{whole}
	}
	parts := []rollupPart{{t: daily, lo: dlo, hi: dhi, hasLo: hasLo, hasHi: hasHi, indexSpanHours: (dhi - dlo) * 24}}
	if hasLo && lo < dlo*24 {
		parts = append(parts, rollupPart{t: hourly, lo: lo, hi: dlo * 24, hasLo: true, hasHi: true, indexSpanHours: dlo*24 - lo})
	}
	if hasHi && dhi*24 < hi {
		parts = append(parts, rollupPart{t: hourly, lo: dhi * 24, hi: hi, hasLo: true, hasHi: true, indexSpanHours: hi - dhi*24})
	}
	return parts
}

// RollupSQL renders q as one statement over the rollups RollupTablesFor
// picks; ph names the i-th argument (1-based) in the store's dialect. It
// selects the grouped keys in By's order (bucket, namespace, pod, node,
// rule, severity), then alerts, failures and the newest last_seen.
func RollupSQL(q RollupQuery, ph func(i int) string) (string, []any) {
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return ph(len(args))
	}
	// bucketOf is the expression of a row's bucket, in hours, in table t:
	// its step's first hour with a Step. Integers of the store's own
	// making, not input: written out, so that GROUP BY and ORDER BY repeat
	// the same expression.
	bucketOf := func(t RollupTable) string {
		hour := "bucket"
		if t.Hours == 24 {
			hour = "bucket * 24"
		}
		if q.Step > 1 && !q.From.IsZero() {
			lo, _ := BucketRange(q.From, q.To)
			o := StepOrigin(lo, q.Step)
			return fmt.Sprintf("(%d + (%s - %d) / %d * %d)", o, hour, o, q.Step, q.Step)
		}
		return hour
	}
	keysOf := func(bucket string) []string {
		var keys []string
		for _, k := range []struct {
			k   RollupKeys
			col string
		}{{ByBucket, bucket}, {ByNamespace, "namespace"}, {ByPod, "pod"}, {ByNode, "node"}, {ByRule, "rule_id"}, {BySeverity, "severity"}} {
			if q.By&k.k != 0 {
				keys = append(keys, k.col)
			}
		}
		return keys
	}
	aggs := []string{"CAST(COALESCE(SUM(alerts), 0) AS BIGINT)", "CAST(COALESCE(SUM(failures), 0) AS BIGINT)", "COALESCE(MAX(max_last_seen), 0)"}
	parts := rollupParts(q)
	var (
		s    string
		keys []string
	)
	if len(parts) == 1 {
		keys = keysOf(bucketOf(parts[0].t))
		s = "SELECT " + strings.Join(append(slices.Clone(keys), aggs...), ", ") + " FROM " + parts[0].t.Name + rollupWhere(q, parts[0], arg)
	} else {
		// Each part sums its own rows first: a daily rollup ordered by
		// the keys sums without a sort, and the outer query merges a few
		// rows per group instead of sorting every row of the parts. A
		// part's bucket is its own expression, named bucket for the outer
		// query; the parts group by position, since PostgreSQL would take
		// a GROUP BY bucket for the table's column, not the alias.
		keys = keysOf("bucket")
		reads := make([]string, len(parts))
		for i, p := range parts {
			inner := keysOf(bucketOf(p.t) + " AS bucket")
			pos := make([]string, len(inner))
			for j := range inner {
				pos[j] = strconv.Itoa(j + 1)
			}
			inner = append(inner, "SUM(alerts) AS alerts", "SUM(failures) AS failures", "MAX(max_last_seen) AS max_last_seen")
			reads[i] = "SELECT " + strings.Join(inner, ", ") + " FROM " + p.t.Name + rollupWhere(q, p, arg)
			if len(pos) > 0 {
				reads[i] += " GROUP BY " + strings.Join(pos, ", ")
			}
		}
		s = "SELECT " + strings.Join(append(slices.Clone(keys), aggs...), ", ") +
			" FROM (" + strings.Join(reads, " UNION ALL ") + ") AS r"
	}
	if len(keys) > 0 {
		s += " GROUP BY " + strings.Join(keys, ", ")
	}
	switch {
	case q.Limit > 0:
		order := "3 DESC"
		if len(keys) > 0 {
			order = fmt.Sprintf("%d DESC, %s", len(keys)+1, strings.Join(keys, ", "))
		}
		s += " ORDER BY " + order + " LIMIT " + arg(q.Limit)
	case len(keys) > 0:
		s += " ORDER BY " + strings.Join(keys, ", ")
	}
	return s, args
}

// rollupWhere is the WHERE clause of q's read of part p ("" for none).
func rollupWhere(q RollupQuery, p rollupPart, arg func(any) string) string {
	var conds []string
	if q.Namespaces != nil {
		if len(q.Namespaces) == 0 {
			conds = append(conds, "1 = 0")
		} else {
			in := make([]string, len(q.Namespaces))
			for i, ns := range q.Namespaces {
				in[i] = arg(ns)
			}
			conds = append(conds, "namespace IN ("+strings.Join(in, ", ")+")")
		}
	}
	for _, c := range []struct{ col, v string }{{"pod", q.Pod}, {"node", q.Node}, {"rule_id", q.RuleID}} {
		if c.v != "" {
			conds = append(conds, c.col+" = "+arg(c.v))
		}
	}
	if q.RulePrefix != "" {
		// substr rather than LIKE: no wildcards to escape, and no collation
		// (a range compare would follow the database's locale).
		conds = append(conds, fmt.Sprintf("substr(rule_id, 1, %d) = %s", utf8.RuneCountInString(q.RulePrefix), arg(q.RulePrefix)))
	}
	if q.MinSeverity > alert.SeverityUnknown {
		conds = append(conds, "severity >= "+arg(int(q.MinSeverity)))
	}
	if p.hasLo {
		// alert_rollups' bucket index pays for a recent range; over a long
		// one its lookups cost more than reading every rollup once, and a
		// store without statistics cannot tell, so the unary + keeps the
		// index out of a long range's plan. The derived rollups lead with
		// the bucket: a range is a stretch of the table.
		col := "bucket"
		if p.t.PrimaryKey[0] != "bucket" && p.indexSpanHours > int64(IndexedRange/time.Hour) {
			col = "+bucket"
		}
		conds = append(conds, col+" >= "+arg(p.lo))
	}
	if p.hasHi {
		conds = append(conds, "bucket < "+arg(p.hi))
	}
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// RollupScanner scans one row of RollupSQL's result.
type RollupScanner interface{ Scan(dest ...any) error }

// RollupRows is what both stores' result sets offer (database/sql's and
// pgx's): ReadRollups reads them the same way.
type RollupRows interface {
	RollupScanner
	Next() bool
	Err() error
}

// ReadRollups scans every row of a RollupSQL query into RollupRows.
func ReadRollups(q RollupQuery, rows RollupRows) ([]RollupRow, error) {
	var out []RollupRow
	for rows.Next() {
		r, err := ScanRollup(q, rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read rollups: %w", err)
	}
	return out, nil
}

// ScanRollup reads one row of RollupSQL(q)'s result.
func ScanRollup(q RollupQuery, row RollupScanner) (RollupRow, error) {
	var (
		r                RollupRow
		sev              int64
		alerts, failures int64
		last             int64
	)
	var dest []any
	if q.By&ByBucket != 0 {
		dest = append(dest, &r.Bucket)
	}
	if q.By&ByNamespace != 0 {
		dest = append(dest, &r.Namespace)
	}
	if q.By&ByPod != 0 {
		dest = append(dest, &r.Pod)
	}
	if q.By&ByNode != 0 {
		dest = append(dest, &r.Node)
	}
	if q.By&ByRule != 0 {
		dest = append(dest, &r.RuleID)
	}
	if q.By&BySeverity != 0 {
		dest = append(dest, &sev)
	}
	dest = append(dest, &alerts, &failures, &last)
	if err := row.Scan(dest...); err != nil {
		return RollupRow{}, fmt.Errorf("scan rollup: %w", err)
	}
	r.Severity = alert.Severity(sev)
	r.Alerts, r.Failures = uint64(max(alerts, 0)), uint64(max(failures, 0))
	r.LastSeen = time.Unix(0, last).UTC()
	return r, nil
}
