package rules

import (
	"math"
	"slices"
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// keyState is one rule's sliding window for one key, plus the key's open
// alert. The window is a ring of per-interval buckets kept sparse: only
// intervals with failures hold entries, in interval order, so an idle key
// costs nothing and a busy one costs one entry per (interval, syscall,
// errno) it saw.
type keyState struct {
	// The fields every interval touches come first, within two cache
	// lines: with 10 000 active keys the engine is bound by memory, not by
	// arithmetic.
	gen    uint64 // batch that last touched the key
	total  uint64 // sum of counts[head:]: until expire, may hold expired ones
	oldest int32  // seq of counts[head], so expiry need not look there
	dead   bool   // swept: caches must not hand it out
	// counts[head:] is the window, ordered by seq; what is before head has
	// expired and is reused once it is half the slice.
	head    int
	counts  []countEntry
	lastSeq int64     // newest seq with counts
	slots   []slotRef // where the key's counts came from (not for node keys)
	alert   *alert.Alert
	meta    *enrich.Meta
	hists   []histEntry  // ordered by seq
	delta   []countEntry // what this batch added, for an open alert

	key                 groupKey
	alertCounts         map[countKey]uint64
	lastMatch, lastEmit time.Time
	matchGen            uint64
	dirty               bool
	// targets tallies the open alert's denied paths and addresses from
	// its records up to targetSeq.
	targets   map[targetKey]uint64
	targetSeq int64
	// fastCK is the failure a fast alert counted before its interval's
	// exact count arrived; fastPending until that count is added.
	fastCK      countKey
	fastPending bool
}

type countKey struct {
	sys   sysKey
	errno uint16
}

// countEntry is 16 bytes: windows hold many of them. A count above 2^32 in
// one interval (impossible at today's syscall rates) takes several entries.
type countEntry struct {
	seq int32
	countKey
	n uint32
}

type histEntry struct {
	seq     int64
	buckets [sensor.HistBuckets]uint64
}

func (st *keyState) add(e *Engine, s *ruleState, seq int64, sk sysKey, errno uint16, n uint64) {
	if n == 0 {
		return
	}
	k := countKey{sk, errno}
	if st.alert != nil {
		// Only an open alert adds this batch's failures to its own; a new
		// one takes the whole window.
		st.delta = addEntry(st.delta, int32(seq), k, n, true)
	}
	// Expiry is lazy: it reads the oldest entries, a cache miss per key
	// and interval. It happens when the slice is full (so that the space is
	// reused rather than grown) and when a condition needs the exact window.
	if len(st.counts) == cap(st.counts) && len(st.counts) > 0 {
		st.expireCounts(seq - s.buckets)
		if st.head > 0 {
			st.counts = st.counts[:copy(st.counts, st.counts[st.head:])]
			st.head = 0
		}
	}
	if st.head == len(st.counts) {
		st.oldest = int32(seq)
	}
	st.total += n
	// Entries of this interval can only be at the tail if the key already
	// had some; the first count of an interval need not read the tail.
	st.counts = addEntry(st.counts, int32(seq), k, n, st.lastSeq == seq)
	st.lastSeq = seq
}

// addEntry adds n to the entry for (seq, k), looking only among the newest
// interval's entries when merge is set.
func addEntry(es []countEntry, seq int32, k countKey, n uint64, merge bool) []countEntry {
	for i := len(es) - 1; merge && i >= 0 && es[i].seq == seq; i-- {
		if es[i].countKey == k && uint64(es[i].n)+n <= math.MaxUint32 {
			es[i].n += uint32(n)
			return es
		}
	}
	for n > math.MaxUint32 {
		es = append(es, countEntry{seq, k, math.MaxUint32})
		n -= math.MaxUint32
	}
	return append(es, countEntry{seq, k, uint32(n)})
}

func (st *keyState) addHist(e *Engine, s *ruleState, seq int64, b *[sensor.HistBuckets]uint64) {
	if len(st.hists) == cap(st.hists) {
		st.expireHists(seq - s.buckets)
	}
	if n := len(st.hists); n == 0 || st.hists[n-1].seq != seq {
		st.hists = append(st.hists, histEntry{seq: seq})
	}
	h := &st.hists[len(st.hists)-1]
	for i, v := range b {
		h.buckets[i] += v
	}
}

// expire drops what fell out of the window ending at seq.
func (st *keyState) expire(seq, buckets int64) {
	limit := seq - buckets // entries at or before limit are out
	st.expireCounts(limit)
	st.expireHists(limit)
}

// expireCounts drops the counts at or before limit; total is then the
// window's exact sum (before, it may include expired counts).
func (st *keyState) expireCounts(limit int64) {
	if st.head == len(st.counts) || int64(st.oldest) > limit {
		return
	}
	for st.head < len(st.counts) && int64(st.counts[st.head].seq) <= limit {
		st.total -= uint64(st.counts[st.head].n)
		st.head++
	}
	if st.head == len(st.counts) {
		st.counts, st.head = st.counts[:0], 0
		return
	}
	st.oldest = st.counts[st.head].seq
}

func (st *keyState) expireHists(limit int64) {
	i := 0
	for i < len(st.hists) && st.hists[i].seq <= limit {
		i++
	}
	if i > 0 {
		st.hists = st.hists[:copy(st.hists, st.hists[i:])]
	}
}

// window is the key's counts in the window.
func (st *keyState) window() []countEntry { return st.counts[st.head:] }

func (e *Engine) evaluate(s *ruleState, st *keyState, seq int64, now time.Time, out []alert.Alert) []alert.Alert {
	// total counts expired entries too until expire runs: a key below the
	// floor even so is certainly below it.
	if st.total < s.minCount {
		e.skipped.Add(1)
		return out
	}
	st.expire(seq, s.buckets)
	if st.total < s.minCount {
		e.skipped.Add(1)
		return out
	}
	e.evals.Add(1)
	e.act.reset(e, s, st, seq)
	val, _, err := s.r.cond.prg.Eval(&e.act)
	if err != nil {
		e.noteEvalErr(s, err, now)
		return out
	}
	if match, ok := val.Value().(bool); !ok || !match {
		return out
	}
	return e.matched(s, st, seq, now, out)
}

// matched raises a new alert or updates the open one.
func (e *Engine) matched(s *ruleState, st *keyState, seq int64, now time.Time, out []alert.Alert) []alert.Alert {
	if st.alert != nil && now.Sub(st.lastMatch) >= s.r.Cooldown {
		// Quiet for a cooldown since the last match (batches were sparse
		// enough that sweepOpen did not close it yet): close it.
		if st.dirty {
			out = e.emit(s, st, seq, st.alert.LastSeen, out)
		}
		st.alert = nil
		delete(s.open, st)
	}
	st.matchGen = e.gen
	st.lastMatch = now
	if st.alert == nil {
		st.targets, st.targetSeq = nil, 0
		st.fastPending = false
		first := e.windowStart(st.window(), st.hists, seq)
		st.alert = e.newAlert(s, st, first)
		st.alertCounts = make(map[countKey]uint64, min(len(st.window()), maxAlertCounts))
		for _, c := range st.window() {
			st.addAlertCount(c.countKey, uint64(c.n))
		}
		st.alert.LastSeen = now
		if st.alert.FirstSeen.After(now) {
			st.alert.FirstSeen = now
		}
		s.open[st] = struct{}{}
		st.dirty = true
		return e.emit(s, st, seq, now, out)
	}
	for _, c := range st.delta {
		st.addAlertCount(c.countKey, uint64(c.n))
	}
	if st.fastPending && st.alertCounts[st.fastCK] > 1 {
		// The exact count includes the failure the fast alert counted.
		st.alertCounts[st.fastCK]--
		st.fastPending = false
	}
	st.alert.LastSeen = now
	if st.meta != nil {
		fillMeta(st.alert, s.r.GroupBy, st.meta, e.cfg.Node)
	}
	st.dirty = true
	if now.Sub(st.lastEmit) >= s.r.Cooldown {
		out = e.emit(s, st, seq, now, out)
	}
	return out
}

// overflowKey is where an alert sums the failures of the (syscall, errno)
// pairs beyond its first maxAlertCounts.
var overflowKey = countKey{sysKey{sensor.OverflowSyscall, false}, sensor.OverflowErrno}

func (st *keyState) addAlertCount(k countKey, n uint64) {
	if _, ok := st.alertCounts[k]; !ok && len(st.alertCounts) >= maxAlertCounts {
		k = overflowKey
	}
	st.alertCounts[k] += n
}

// windowStart is when the oldest interval in the key's window began: the
// drain's recorded start, or the interval boundary before it.
func (e *Engine) windowStart(cs []countEntry, hs []histEntry, seq int64) time.Time {
	oldest := seq
	if len(cs) > 0 {
		oldest = min(oldest, int64(cs[0].seq))
	}
	if len(hs) > 0 {
		oldest = min(oldest, hs[0].seq)
	}
	if st := e.starts[oldest%int64(len(e.starts))]; st.seq == oldest {
		return st.start
	}
	return time.Unix(0, (e.base+oldest-1)*int64(e.cfg.Interval))
}

func (e *Engine) newAlert(s *ruleState, st *keyState, first time.Time) *alert.Alert {
	r := s.r
	a := &alert.Alert{
		ID:          alert.NewID(first),
		RuleID:      r.ID,
		Severity:    r.Severity,
		Tags:        slices.Clone(r.Tags),
		Description: r.Description,
		GroupBy:     r.GroupBy,
		FirstSeen:   first,
	}
	fillMeta(a, r.GroupBy, st.meta, e.cfg.Node)
	if a.Node == "" {
		a.Node = e.cfg.Node
	}
	return a
}

// fillMeta copies the workload fields the grouping is about: a pod alert
// names no container, a node alert no pod.
func fillMeta(a *alert.Alert, g alert.GroupBy, m *enrich.Meta, node string) {
	a.Node = node
	if m == nil {
		a.Host = true
		return
	}
	if m.Node != "" {
		a.Node = m.Node
	}
	if g == alert.GroupByNode {
		return
	}
	a.Host = m.Host
	a.Namespace, a.Pod, a.PodUID = m.Namespace, m.Pod, m.PodUID
	a.Workload = alert.Workload{Kind: m.Workload.Kind, Name: m.Workload.Name}
	if g == alert.GroupByPod && !a.Host && a.Pod != "" {
		return
	}
	a.CgroupPath = m.CgroupPath
	if g != alert.GroupByPod {
		a.Container, a.ContainerID, a.Image = m.Container, m.ContainerID, m.Image
	}
}

// emit bumps the revision and appends a copy of the alert to out.
func (e *Engine) emit(s *ruleState, st *keyState, seq int64, now time.Time, out []alert.Alert) []alert.Alert {
	a := st.alert
	a.Revision++
	if a.Revision == 1 {
		e.raised.Add(1)
	} else {
		e.updated.Add(1)
	}
	a.Counts = a.Counts[:0]
	a.Total = 0
	for k, n := range st.alertCounts {
		a.Counts = append(a.Counts, alert.Count{
			Syscall: sysName(k.sys),
			Errno:   errnoName(k),
			Count:   n,
		})
		a.Total += n
	}
	slices.SortFunc(a.Counts, byCount)
	a.Processes = mergeProcs(a.Processes, e.procsOf(s, st, seq), e.cfg.MaxProcesses)
	a.Targets = e.tallyTargets(s, st, seq)
	if s.r == evasionRule {
		a.Message = evasionMessage(st, a)
	} else {
		a.Message = message(s, st, a)
	}
	st.lastEmit = now
	st.dirty = false
	c := *a
	c.Counts = slices.Clone(a.Counts)
	c.Processes = slices.Clone(a.Processes)
	c.Tags = slices.Clone(a.Tags)
	c.Targets = slices.Clone(a.Targets)
	return append(out, c)
}

// mergeProcs adds the window's processes (newest first) to an alert's, up
// to limit distinct pids.
func mergeProcs(have []alert.Process, recent []slotProc, limit int) []alert.Process {
	for _, p := range recent {
		if slices.ContainsFunc(have, func(q alert.Process) bool { return q.PID == p.PID }) {
			continue
		}
		if len(have) >= limit {
			break
		}
		have = append(have, p.Process)
	}
	return have
}

// durationSummary is the window's latency distribution, from the log2
// histograms. Each quantile is the upper bound of the bucket it falls in
// (2^(i+1)-1 ns), so it over-reports by at most 2x and never under-reports.
type durationSummary struct {
	count, p50, p90, p99, max uint64
}

func summarize(hs []histEntry) durationSummary {
	var sum [sensor.HistBuckets]uint64
	var n uint64
	for i := range hs {
		for j, v := range hs[i].buckets {
			sum[j] += v
			n += v
		}
	}
	d := durationSummary{count: n}
	if n == 0 {
		return d
	}
	upper := func(i int) uint64 { return 1<<(i+1) - 1 }
	q := func(p float64) uint64 {
		// rank is the 1-based position of the quantile: ceil(p*n).
		rank := uint64(p * float64(n))
		if float64(rank) < p*float64(n) {
			rank++
		}
		rank = max(rank, 1)
		var acc uint64
		for i, v := range sum {
			acc += v
			if acc >= rank {
				return upper(i)
			}
		}
		return upper(len(sum) - 1)
	}
	d.p50, d.p90, d.p99 = q(0.50), q(0.90), q(0.99)
	for i := len(sum) - 1; i >= 0; i-- {
		if sum[i] > 0 {
			d.max = upper(i)
			break
		}
	}
	return d
}
