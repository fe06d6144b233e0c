package rules

import (
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/enrich"
)

// Config tunes an Engine.
type Config struct {
	// Interval is the drain interval the batches come at (default 1s).
	// Windows are whole numbers of intervals: a window is rounded up to the
	// next multiple, so a 2.5s window at 1s intervals covers 3 intervals.
	Interval time.Duration
	// Node names the node for group_by node and for keys whose Meta has no
	// node.
	Node string
	// MaxProcesses is how many distinct processes an alert and a window
	// keep (default 16 per alert, 4x that per window).
	MaxProcesses int
	// MaxKeysPerRule bounds the keys one rule tracks (default 100000);
	// failures for further keys are dropped and counted in Stats.
	MaxKeysPerRule int
}

func (c *Config) defaults() {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.MaxProcesses <= 0 {
		c.MaxProcesses = 16
	}
	if c.MaxKeysPerRule <= 0 {
		c.MaxKeysPerRule = 100_000
	}
}

// Stats are the engine's counters. Counters are cumulative; Rules, Keys and
// OpenAlerts are as of the last Process.
type Stats struct {
	Rules      int
	Keys       int
	OpenAlerts int
	// Evaluations counts CEL evaluations; Skipped counts the ones the
	// condition's count floor made unnecessary.
	Evaluations uint64
	Skipped     uint64
	// EvalErrors are conditions that failed at run time (logged once per
	// rule and rule set).
	EvalErrors uint64
	// KeysDropped counts failures not tracked because a rule had
	// MaxKeysPerRule keys.
	KeysDropped uint64
	// Raised counts new alerts, Updated re-emitted updates.
	Raised  uint64
	Updated uint64
	// RuleSwaps counts rule sets taken into use after the first.
	RuleSwaps uint64
}

// Engine evaluates a rule set over the batches of one node. Process must be
// called from one goroutine; SetRules and Stats are safe from any.
type Engine struct {
	cfg Config
	log *zap.Logger

	pending atomic.Pointer[RuleSet]
	rs      *RuleSet
	rules   []*ruleState
	bySys   map[sysKey][]*ruleState
	allSys  []*ruleState
	// dispatch caches, per syscall and errno, the rules a failure goes to.
	dispatch map[uint64][]*ruleState
	durRs    []*ruleState
	commRs   bool // some rule needs comm attribution

	gen uint64 // batch generation, to mark touched keys
	// Intervals are numbered from the first batch: seq = base + n. Window
	// entries store the number as int32, enough for 68 years of 1s
	// intervals.
	base   int64
	curSeq int64

	// Slots number the Metas seen densely, so a rule finds a key's state by
	// indexing a slice rather than hashing a key for every failure; this
	// is most of the engine's time with 10 000 active keys.
	slotOf    map[*enrich.Meta]int32
	slotMeta  []*enrich.Meta
	slotSeen  []int64
	slotLast  []procKey
	slotAttr  []slotAttr
	freeSlots []int32
	slotSweep int64
	// starts remembers when each recent interval began, so an alert's
	// first-seen time is a drain's real start, not a rounded one.
	starts []seqStart

	attr, prevAttr map[attrKey]commShares
	shares         []commShare
	act            activation

	rulesN, keysN, openN              atomic.Int64
	evals, skipped, evalErrs, dropped atomic.Uint64
	raised, updated, swaps            atomic.Uint64
}

// NewEngine returns an engine running rs.
func NewEngine(rs *RuleSet, cfg Config, log *zap.Logger) *Engine {
	cfg.defaults()
	if log == nil {
		log = zap.NewNop()
	}
	e := &Engine{cfg: cfg, log: log, slotOf: map[*enrich.Meta]int32{},
		attr: map[attrKey]commShares{}, prevAttr: map[attrKey]commShares{}}
	e.use(rs)
	return e
}

// SetRules makes rs the rule set from the next Process on; the swap happens
// between intervals, never inside one. Rules whose definition is unchanged
// (same id and same YAML) keep their windows and open alerts; changed and new
// rules start empty.
func (e *Engine) SetRules(rs *RuleSet) { e.pending.Store(rs) }

// Rules returns the rule set in use.
func (e *Engine) Rules() *RuleSet {
	if p := e.pending.Load(); p != nil {
		return p
	}
	return e.rs
}

// Interval returns the configured interval.
func (e *Engine) Interval() time.Duration { return e.cfg.Interval }

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{
		Rules: int(e.rulesN.Load()), Keys: int(e.keysN.Load()), OpenAlerts: int(e.openN.Load()),
		Evaluations: e.evals.Load(), Skipped: e.skipped.Load(), EvalErrors: e.evalErrs.Load(),
		KeysDropped: e.dropped.Load(), Raised: e.raised.Load(), Updated: e.updated.Load(),
		RuleSwaps: e.swaps.Load(),
	}
}

// ruleState is one rule's windows over all its keys.
type ruleState struct {
	r          *Rule
	buckets    int64
	windowSecs float64
	minCount   uint64
	needsComm  bool
	states     map[groupKey]*keyState
	bySlot     []*keyState // by Meta slot, for rules keyed by Meta alone
	// scopeBySlot caches the scope's verdict on a slot's Meta for one
	// batch: enrichment may learn more about a cgroup between batches.
	touched     []*keyState
	open        map[*keyState]struct{}
	scopeBySlot []scopeVerdict
	scopeCache  map[*enrich.Meta]scopeVerdict
	lastSweep   int64
	loggedErr   bool
}

func (e *Engine) use(rs *RuleSet) {
	old := map[string]*ruleState{}
	for _, s := range e.rules {
		old[s.r.ID] = s
	}
	e.rs = rs
	e.rules = nil
	e.bySys = map[sysKey][]*ruleState{}
	e.dispatch = map[uint64][]*ruleState{}
	e.allSys, e.durRs, e.commRs = nil, nil, false
	if rs == nil {
		e.rulesN.Store(0)
		if e.starts == nil {
			e.starts = make([]seqStart, 1)
		}
		return
	}
	for _, r := range rs.Rules {
		s := old[r.ID]
		if s == nil || s.r.fingerprint != r.fingerprint {
			n := int64((r.Window + e.cfg.Interval - 1) / e.cfg.Interval)
			s = &ruleState{
				r: r, buckets: max(n, 1),
				states:     map[groupKey]*keyState{},
				open:       map[*keyState]struct{}{},
				scopeCache: map[*enrich.Meta]scopeVerdict{},
				lastSweep:  e.curSeq,
			}
			s.windowSecs = float64(s.buckets) * e.cfg.Interval.Seconds()
			s.minCount = r.cond.minCount(s.windowSecs)
			s.needsComm = r.GroupBy == alert.GroupByProcess || r.scope.needsComm()
		} else {
			s.r = r
			s.loggedErr = false
		}
		e.rules = append(e.rules, s)
		if s.r.sys.all {
			e.allSys = append(e.allSys, s)
		} else {
			for k := range s.r.sys.set {
				e.bySys[k] = append(e.bySys[k], s)
			}
		}
		if r.cond.usesDuration {
			e.durRs = append(e.durRs, s)
		}
		e.commRs = e.commRs || s.needsComm
	}
	e.rulesN.Store(int64(len(e.rules)))
	n := int64(1)
	for _, s := range e.rules {
		n = max(n, s.buckets+1)
	}
	if int64(len(e.starts)) < n {
		old := e.starts
		e.starts = make([]seqStart, n)
		for _, st := range old {
			if st.seq != 0 {
				e.starts[st.seq%n] = st
			}
		}
	}
}

type seqStart struct {
	seq   int64
	start time.Time
}

// Process feeds one interval's batch to every rule and returns the alerts to
// deliver: new alerts (Revision 1) and updates of open ones (same ID, higher
// Revision). The returned alerts are the caller's.
func (e *Engine) Process(b *enrich.Batch) []alert.Alert {
	if rs := e.pending.Swap(nil); rs != nil {
		e.use(rs)
		e.swaps.Add(1)
	}
	now := b.Interval.End
	if now.IsZero() {
		now = time.Now()
	}
	abs := (now.UnixNano() + int64(e.cfg.Interval)/2) / int64(e.cfg.Interval)
	if e.base == 0 {
		e.base = abs - 1
	}
	// Batches out of order (a clock step back) land in the newest bucket
	// rather than corrupting the windows' order.
	seq := max(abs-e.base, e.curSeq)
	e.curSeq = seq
	if st := &e.starts[seq%int64(len(e.starts))]; st.seq != seq && !b.Interval.Start.IsZero() {
		*st = seqStart{seq, b.Interval.Start}
	}
	e.gen++
	for _, s := range e.rules {
		s.touched = s.touched[:0]
	}

	if e.commRs {
		e.buildAttribution(b.Records, seq)
	}
	for i := range b.Counts {
		c := &b.Counts[i]
		if c.Errno == 0 {
			continue
		}
		sk := sysKey{c.Syscall, c.Compat}
		if rs := e.rulesFor(sk, c.Errno); len(rs) > 0 {
			e.countFor(rs, c, sk, e.slot(c.Meta, seq), seq)
		}
	}
	for i := range b.Histograms {
		h := &b.Histograms[i]
		sk := sysKey{h.Syscall, h.Compat}
		for _, s := range e.durRs {
			if !s.r.sys.has(sk) || !e.scopeOK(s, h.Meta, e.slot(h.Meta, seq)) {
				continue
			}
			if st := e.state(s, keyFor(s.r.GroupBy, h.Meta, h.CgroupID, ""), h.Meta); st != nil {
				st.addHist(e, s, seq, &h.Buckets)
			}
		}
	}
	for i := range b.Records {
		rec := &b.Records[i]
		errno := rec.Errno()
		if errno == 0 {
			continue
		}
		sk := sysKey{rec.Syscall, rec.Compat}
		rs := e.rulesFor(sk, errno)
		if len(rs) == 0 {
			continue
		}
		slot := e.slot(rec.Meta, seq)
		if slot >= 0 {
			// The kernel samples several records per counter, mostly
			// from one process: the first of a (syscall, errno, pid) per
			// cgroup and batch says all a rule learns from records.
			last := &e.slotLast[slot]
			pk := procKey{e.gen, rec.PID, countKey{sk, errno}}
			if *last == pk {
				continue
			}
			*last = pk
		}
		e.recordFor(rs, rec, slot, seq)
	}

	var out []alert.Alert
	keys, open := 0, 0
	for _, s := range e.rules {
		for _, st := range s.touched {
			out = e.evaluate(s, st, seq, now, out)
		}
		out = e.sweepOpen(s, seq, now, out)
		if seq-s.lastSweep >= max(s.buckets, 8) {
			s.sweepIdle(seq, e.gen)
		}
		keys += len(s.states)
		open += len(s.open)
	}
	if seq-e.slotSweep >= 64 {
		e.sweepSlots(seq)
	}
	e.keysN.Store(int64(keys))
	e.openN.Store(int64(open))
	return out
}

// slot returns m's slot, giving it one if it has none; -1 for no Meta.
func (e *Engine) slot(m *enrich.Meta, seq int64) int32 {
	if m == nil {
		return -1
	}
	i, ok := e.slotOf[m]
	if !ok {
		if n := len(e.freeSlots); n > 0 {
			i = e.freeSlots[n-1]
			e.freeSlots = e.freeSlots[:n-1]
			e.slotMeta[i] = m
		} else {
			i = int32(len(e.slotMeta))
			e.slotMeta = append(e.slotMeta, m)
			e.slotSeen = append(e.slotSeen, 0)
			e.slotLast = append(e.slotLast, procKey{})
			e.slotAttr = append(e.slotAttr, slotAttr{})
		}
		e.slotOf[m] = i
	}
	e.slotSeen[i] = seq
	return i
}

// procKey is the last record a slot passed on to the rules.
type procKey struct {
	gen uint64
	pid uint32
	countKey
}

// sweepSlots frees the slots of Metas not seen for longer than any window,
// so that replaced Metas (a pod gone, a cgroup re-enriched) do not pile up.
func (e *Engine) sweepSlots(seq int64) {
	e.slotSweep = seq
	var longest int64
	for _, s := range e.rules {
		longest = max(longest, s.buckets)
	}
	for i, m := range e.slotMeta {
		if m == nil || seq-e.slotSeen[i] <= longest {
			continue
		}
		delete(e.slotOf, m)
		e.slotMeta[i] = nil
		e.slotAttr[i] = slotAttr{}
		for _, s := range e.rules {
			if i < len(s.bySlot) {
				s.bySlot[i] = nil
			}
			if i < len(s.scopeBySlot) {
				s.scopeBySlot[i] = scopeVerdict{}
			}
		}
		e.freeSlots = append(e.freeSlots, int32(i))
	}
}

// Flush emits the pending updates of every open alert, for shutdown and the
// end of a replay. Alerts stay open.
func (e *Engine) Flush() []alert.Alert {
	var out []alert.Alert
	for _, s := range e.rules {
		for st := range s.open {
			if st.dirty {
				out = e.emit(s, st, st.alert.LastSeen, out)
			}
		}
	}
	return out
}

// rulesFor returns the rules that count failures of sk with errno.
func (e *Engine) rulesFor(sk sysKey, errno uint16) []*ruleState {
	// A packed key takes the map's 64-bit fast path.
	k := uint64(uint32(sk.nr)) | uint64(errno)<<32
	if sk.compat {
		k |= 1 << 48
	}
	rs, ok := e.dispatch[k]
	if !ok {
		for _, list := range [][]*ruleState{e.bySys[sk], e.allSys} {
			for _, s := range list {
				if s.r.errnos.has(errno) {
					rs = append(rs, s)
				}
			}
		}
		e.dispatch[k] = rs
	}
	return rs
}

func (e *Engine) scopeOK(s *ruleState, m *enrich.Meta, slot int32) bool {
	if !s.r.scope.any {
		return true
	}
	if slot >= 0 {
		if int(slot) >= len(s.scopeBySlot) {
			s.scopeBySlot = append(s.scopeBySlot, make([]scopeVerdict, len(e.slotMeta)-len(s.scopeBySlot))...)
		}
		v := &s.scopeBySlot[slot]
		if v.gen != e.gen {
			*v = scopeVerdict{e.gen, s.r.scope.metaOK(m)}
		}
		return v.ok
	}
	// A verdict holds for one batch: enrichment may learn more about a
	// cgroup (its pod, new labels) between batches.
	v, hit := s.scopeCache[m]
	if !hit || v.gen != e.gen {
		v = scopeVerdict{e.gen, s.r.scope.metaOK(m)}
		s.scopeCache[m] = v
	}
	return v.ok
}

type scopeVerdict struct {
	gen uint64
	ok  bool
}

func (e *Engine) countFor(rs []*ruleState, c *enrich.Count, sk sysKey, slot int32, seq int64) {
	var shares []commShare // split once, for all the rules that need it
	for _, s := range rs {
		if !e.scopeOK(s, c.Meta, slot) {
			continue
		}
		if !s.needsComm {
			if st := e.metaState(s, c.Meta, c.CgroupID, slot); st != nil {
				st.add(e, s, seq, sk, c.Errno, c.Count.Count)
			}
			continue
		}
		if shares == nil {
			shares = e.split(c, slot)
		}
		for _, sh := range shares {
			if !s.r.scope.commOK(sh.comm) {
				continue
			}
			var st *keyState
			if s.r.GroupBy == alert.GroupByProcess {
				st = e.commState(s, c.Meta, c.CgroupID, slot, sh.comm)
			} else {
				st = e.metaState(s, c.Meta, c.CgroupID, slot)
			}
			if st != nil {
				st.add(e, s, seq, sk, c.Errno, sh.n)
			}
		}
	}
}

func (e *Engine) recordFor(rs []*ruleState, rec *enrich.Record, slot int32, seq int64) {
	for _, s := range rs {
		if !e.scopeOK(s, rec.Meta, slot) || !s.r.scope.commOK(rec.Comm) {
			continue
		}
		// Records only say who failed; a key with no counts has nothing to
		// evaluate, so records never create keys.
		var st *keyState
		if slot >= 0 && int(slot) < len(s.bySlot) {
			st = s.bySlot[slot]
		}
		if st == nil || st.dead || (s.r.GroupBy == alert.GroupByProcess && st.key.comm != rec.Comm) {
			comm := ""
			if s.r.GroupBy == alert.GroupByProcess {
				comm = rec.Comm
			}
			st = s.states[keyFor(s.r.GroupBy, rec.Meta, rec.CgroupID, comm)]
		}
		if st != nil {
			st.addProc(e, seq, alert.Process{PID: rec.PID, Comm: rec.Comm, UID: rec.UID})
		}
	}
}

// metaState is state for a rule whose key the Meta alone decides: enrich
// hands out one Meta per cgroup, so the Meta's slot finds the state without
// building and hashing the key for every count.
func (e *Engine) metaState(s *ruleState, m *enrich.Meta, cgroup uint64, slot int32) *keyState {
	if slot < 0 {
		return e.state(s, keyFor(s.r.GroupBy, m, cgroup, ""), m)
	}
	if int(slot) < len(s.bySlot) {
		if st := s.bySlot[slot]; st != nil && !st.dead {
			st.meta = m
			e.touch(s, st)
			return st
		}
	}
	st := e.state(s, keyFor(s.r.GroupBy, m, cgroup, ""), m)
	if st != nil {
		s.setSlot(slot, st, len(e.slotMeta))
	}
	return st
}

// commState is metaState for group_by process: a slot remembers the state
// of the comm it saw last, which is the next one's too in the common case of
// one failing process per container.
func (e *Engine) commState(s *ruleState, m *enrich.Meta, cgroup uint64, slot int32, comm string) *keyState {
	if slot >= 0 && int(slot) < len(s.bySlot) {
		if st := s.bySlot[slot]; st != nil && !st.dead && st.key.comm == comm {
			st.meta = m
			e.touch(s, st)
			return st
		}
	}
	st := e.state(s, keyFor(s.r.GroupBy, m, cgroup, comm), m)
	if st != nil && slot >= 0 {
		s.setSlot(slot, st, len(e.slotMeta))
	}
	return st
}

func (s *ruleState) setSlot(slot int32, st *keyState, slots int) {
	if int(slot) >= len(s.bySlot) {
		s.bySlot = append(s.bySlot, make([]*keyState, slots-len(s.bySlot))...)
	}
	s.bySlot[slot] = st
}

func (e *Engine) touch(s *ruleState, st *keyState) {
	if st.gen != e.gen {
		st.gen = e.gen
		st.delta = st.delta[:0]
		s.touched = append(s.touched, st)
	}
}

// state finds or creates the key's state; nil when the rule is at its key
// limit.
func (e *Engine) state(s *ruleState, k groupKey, m *enrich.Meta) *keyState {
	st := s.states[k]
	if st == nil {
		if len(s.states) >= e.cfg.MaxKeysPerRule {
			e.dropped.Add(1)
			return nil
		}
		st = &keyState{key: k}
		s.states[k] = st
	}
	if m != nil {
		st.meta = m
	}
	e.touch(s, st)
	return st
}

// attrKey identifies one exact counter, to find the records sampled from it.
type attrKey struct {
	cgroup uint64
	sys    sysKey
	errno  uint16
}

type commShare struct {
	comm string
	n    uint64
}

// commShares are the comms seen for one counter; the first is inline
// because one comm per counter is the common case.
type commShares struct {
	first commShare
	more  []commShare
}

func (c *commShares) add(comm string) {
	if c.first.comm == comm {
		c.first.n++
		return
	}
	for i := range c.more {
		if c.more[i].comm == comm {
			c.more[i].n++
			return
		}
	}
	c.more = append(c.more, commShare{comm, 1})
}

// buildAttribution indexes this batch's records by counter and comm: in
// the records' slot when they have a Meta (a short list, next to the rest of
// the cgroup's data), in a map by cgroup id otherwise.
func (e *Engine) buildAttribution(recs []enrich.Record, seq int64) {
	e.attr, e.prevAttr = e.prevAttr, e.attr
	clear(e.attr)
	for i := range recs {
		r := &recs[i]
		errno := r.Errno()
		if errno == 0 {
			continue
		}
		ck := countKey{sysKey{r.Syscall, r.Compat}, errno}
		if slot := e.slot(r.Meta, seq); slot >= 0 {
			e.slotAttr[slot].add(e.gen, ck, r.Comm)
			continue
		}
		k := attrKey{r.CgroupID, ck.sys, errno}
		sh, ok := e.attr[k]
		if !ok {
			sh.first = commShare{r.Comm, 1}
		} else {
			sh.add(r.Comm)
		}
		e.attr[k] = sh
	}
}

// slotAttr is the comm attribution of one slot: this batch's records by
// counter, and the previous batch's for counters whose records are late.
type slotAttr struct {
	gen, prevGen uint64
	cur, prev    []attrEntry
}

type attrEntry struct {
	k      countKey
	shares commShares
}

func (sa *slotAttr) add(gen uint64, k countKey, comm string) {
	if sa.gen != gen {
		sa.prev, sa.cur = sa.cur, sa.prev[:0]
		sa.prevGen, sa.gen = sa.gen, gen
	}
	for i := range sa.cur {
		if sa.cur[i].k == k {
			sa.cur[i].shares.add(comm)
			return
		}
	}
	sa.cur = append(sa.cur, attrEntry{k, commShares{first: commShare{comm, 1}}})
}

// find returns the shares of counter k from batch gen, or failing that from
// the batch before.
func (sa *slotAttr) find(gen uint64, k countKey) (commShares, bool) {
	for _, l := range []struct {
		g  uint64
		es []attrEntry
	}{{sa.gen, sa.cur}, {sa.prevGen, sa.prev}} {
		if l.g != gen && l.g+1 != gen {
			continue
		}
		for _, a := range l.es {
			if a.k == k {
				return a.shares, true
			}
		}
	}
	return commShares{}, false
}

// split divides an exact per-cgroup count among the comms whose records
// were sampled from the same counter in this interval (or, when none
// arrived yet, the previous one), in proportion to their records. It is
// exact when one comm owns the counter, the common case; otherwise it is an
// estimate, because the kernel samples the first records of each counter
// per rate-limit window, not a random subset. Counts with no sampled record
// at all go to the empty comm ("unknown process").
func (e *Engine) split(c *enrich.Count, slot int32) []commShare {
	var cs commShares
	var ok bool
	if slot >= 0 {
		cs, ok = e.slotAttr[slot].find(e.gen, countKey{sysKey{c.Syscall, c.Compat}, c.Errno})
	} else {
		k := attrKey{c.CgroupID, sysKey{c.Syscall, c.Compat}, c.Errno}
		if cs, ok = e.attr[k]; !ok {
			cs, ok = e.prevAttr[k]
		}
	}
	e.shares = e.shares[:0]
	if !ok {
		e.shares = append(e.shares, commShare{"", c.Count.Count})
		return e.shares
	}
	if len(cs.more) == 0 {
		e.shares = append(e.shares, commShare{cs.first.comm, c.Count.Count})
		return e.shares
	}
	// e.shares holds the record counts, then in place the split.
	sh := append(append(e.shares, cs.first), cs.more...)
	e.shares = sh
	var total uint64
	big := 0
	for i, x := range sh {
		total += x.n
		if x.n > sh[big].n {
			big = i
		}
	}
	var given uint64
	for i := range sh {
		sh[i].n = c.Count.Count * sh[i].n / total
		given += sh[i].n
	}
	sh[big].n += c.Count.Count - given
	return sh
}

// groupKey is the key a rule aggregates on. Its strings point into Meta, so
// building one does not allocate.
type groupKey struct {
	cgroup    uint64
	namespace string
	pod       string
	container string
	comm      string
	byProcess bool
}

// keyFor builds the key of a failure for a grouping. Pods are keyed by
// namespace and name (not cgroup), so a pod's containers share a pod key;
// containers by pod and container name, so a restarted container (new
// cgroup) continues its alert. Host processes and unenriched cgroups have
// no pod: they are keyed by cgroup for pod and container grouping.
func keyFor(g alert.GroupBy, m *enrich.Meta, cgroup uint64, comm string) groupKey {
	inPod := m != nil && !m.Host && m.Pod != ""
	switch g {
	case alert.GroupByNode:
		return groupKey{}
	case alert.GroupByPod:
		if inPod {
			return groupKey{namespace: m.Namespace, pod: m.Pod}
		}
		return groupKey{cgroup: cgroup}
	}
	k := groupKey{cgroup: cgroup}
	if inPod && m.Container != "" {
		k = groupKey{namespace: m.Namespace, pod: m.Pod, container: m.Container}
	}
	if g == alert.GroupByProcess {
		k.comm, k.byProcess = comm, true
	}
	return k
}

// sweepIdle drops keys whose window is empty and that have no open alert.
func (s *ruleState) sweepIdle(seq int64, gen uint64) {
	s.lastSweep = seq
	for k, st := range s.states {
		if st.alert == nil && st.lastSeq <= seq-s.buckets {
			st.dead = true
			delete(s.states, k)
		}
	}
	for i, st := range s.bySlot {
		if st != nil && st.dead {
			s.bySlot[i] = nil
		}
	}
	for m, v := range s.scopeCache {
		if v.gen != gen {
			delete(s.scopeCache, m)
		}
	}
}

// sweepOpen re-emits pending updates once their cooldown has passed and
// closes alerts whose pattern has been quiet for a cooldown, so that the
// next match raises a new alert.
func (e *Engine) sweepOpen(s *ruleState, seq int64, now time.Time, out []alert.Alert) []alert.Alert {
	for st := range s.open {
		if st.matchGen == e.gen {
			continue
		}
		if st.dirty && now.Sub(st.lastEmit) >= s.r.Cooldown {
			out = e.emit(s, st, now, out)
		}
		if now.Sub(st.lastMatch) >= s.r.Cooldown {
			if st.dirty {
				out = e.emit(s, st, now, out)
			}
			st.alert = nil
			delete(s.open, st)
		}
	}
	return out
}

// byCount orders alert counts: most failures first, then by name.
func byCount(a, b alert.Count) int {
	if a.Count != b.Count {
		if a.Count > b.Count {
			return -1
		}
		return 1
	}
	if a.Syscall != b.Syscall {
		if a.Syscall < b.Syscall {
			return -1
		}
		return 1
	}
	if a.Errno < b.Errno {
		return -1
	}
	if a.Errno > b.Errno {
		return 1
	}
	return 0
}
