package rules

import (
	"sync/atomic"
	"time"

	"github.com/google/cel-go/common/types/ref"
	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/enrich"
)

// Config tunes an Engine.
type Config struct {
	// Logger gets the engine's log; nil discards it.
	Logger *zap.Logger
	// Interval is the drain interval the batches come at (default 1s).
	// Windows are whole numbers of intervals: a window is rounded up to the
	// next multiple, so a 2.5s window at 1s intervals covers 3 intervals.
	Interval time.Duration
	// Node names the node for group_by node and for keys whose Meta has no
	// node.
	Node string
	// MaxProcesses is how many distinct processes an alert names (default
	// 16); conditions see up to 4x that per window.
	MaxProcesses int
	// MaxKeysPerRule bounds the keys one rule tracks (default 100000);
	// failures for further keys are dropped and counted in Stats.
	MaxKeysPerRule int
	// MaxDispatch bounds the cache of which rules a (syscall, errno) goes
	// to (default 16384 entries); when full it starts again empty. A
	// workload can make every syscall fail with every errno (a seccomp
	// filter of its own does), so the cache cannot grow with what it sees.
	MaxDispatch int
}

// maxAlertCounts bounds the distinct (syscall, errno) counts one alert
// keeps; the rest of its failures are summed in one overflow count.
const maxAlertCounts = 256

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
	if c.MaxDispatch <= 0 {
		c.MaxDispatch = 16384
	}
}

// Stats are the engine's counters. Counters are cumulative; Rules, Keys and
// OpenAlerts are as of the last Process. Rules counts the rule set's rules;
// Keys and OpenAlerts include the built-in EvasionRuleID's.
type Stats struct {
	Rules      int
	Keys       int
	OpenAlerts int
	// Evaluations counts CEL evaluations; Skipped counts the ones the
	// condition's count floor made unnecessary.
	Evaluations uint64
	Skipped     uint64
	// EvalErrors are conditions that failed at run time (over the cost
	// limit, or an error such as a missing map key); each is a no match,
	// logged once per rule and rule set and reported by an alert
	// (EvalErrorRuleID) per rule.
	EvalErrors uint64
	// KeysDropped counts failures not tracked because a rule had
	// MaxKeysPerRule keys.
	KeysDropped uint64
	// Raised counts new alerts, Updated re-emitted updates.
	Raised  uint64
	Updated uint64
	// RuleSwaps counts rule sets taken into use after the first.
	RuleSwaps uint64
	// DispatchKeys is the size of the (syscall, errno) dispatch cache, at
	// most Config.MaxDispatch; DispatchResets counts the times it was full
	// and started again.
	DispatchKeys   int
	DispatchResets uint64
	// RecordsEvicted counts sampled records dropped from a failure
	// source's bounded history before their window ended, so that a
	// `records` condition did not see them.
	RecordsEvicted uint64
	// TargetsDropped counts records whose path or address an open alert
	// could not tally because it already tallied maxAlertTargets others.
	TargetsDropped uint64
	// FastRaised counts alerts raised by Fast, as their record arrived.
	FastRaised uint64
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
	fastRs   []*ruleState // rules one record can decide (Fast)
	commRs   bool         // some rule needs comm attribution

	gen uint64 // batch generation, to mark touched keys
	// Intervals are numbered from the first batch: seq = base + n. Window
	// entries store the number as int32, enough for 68 years of 1s
	// intervals.
	base   int64
	curSeq int64

	// Slots number the failure sources (Metas, or cgroups without one)
	// densely, so that a rule finds a key's state by indexing a slice
	// rather than hashing a key for every failure (most of the engine's
	// time with 10 000 active keys), and hold what the sampled records of
	// a source said: who failed.
	slotOf    map[*enrich.Meta]int32
	nilSlotOf map[uint64]int32
	slots     []slotInfo
	freeSlots []int32
	slotSweep int64
	lastMeta  *enrich.Meta
	lastSlot  int32
	// starts remembers when each recent interval began, so an alert's
	// first-seen time is a drain's real start, not a rounded one.
	starts []seqStart

	shares  []commShare
	procBuf []slotProc
	recBuf  []ref.Val
	act     activation

	rulesN, keysN, openN, dispatchN   atomic.Int64
	evals, skipped, evalErrs, dropped atomic.Uint64
	raised, updated, swaps, resets    atomic.Uint64
	recEvicted, targetsDropped        atomic.Uint64
	fastRaised                        atomic.Uint64
	evalErrsByRule                    ruleCounter
}

// NewEngine returns an engine running rs.
func NewEngine(rs *RuleSet, cfg Config) *Engine {
	cfg.defaults()
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	e := &Engine{cfg: cfg, log: log, slotOf: map[*enrich.Meta]int32{}, nilSlotOf: map[uint64]int32{}}
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
		RuleSwaps: e.swaps.Load(), DispatchKeys: int(e.dispatchN.Load()), DispatchResets: e.resets.Load(),
		RecordsEvicted: e.recEvicted.Load(),
		TargetsDropped: e.targetsDropped.Load(), FastRaised: e.fastRaised.Load(),
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
	touched    []*keyState
	open       map[*keyState]struct{}
	// scopeBySlot caches the scope's verdict on a slot's Meta.
	scopeBySlot []scopeVerdict
	lastSweep   int64
	loggedErr   bool
	evalErr     evalErrReport
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
	e.allSys, e.durRs, e.commRs, e.fastRs = nil, nil, false, nil
	if rs == nil {
		e.rulesN.Store(0)
		if e.starts == nil {
			e.starts = make([]seqStart, 1)
		}
		return
	}
	all := rs.Rules
	if rs.Rule(EvasionRuleID) == nil {
		all = append(all[:len(all):len(all)], evasionRule)
	}
	for _, r := range all {
		s := old[r.ID]
		if s == nil || s.r.fingerprint != r.fingerprint {
			n := int64((r.Window + e.cfg.Interval - 1) / e.cfg.Interval)
			s = &ruleState{
				r: r, buckets: max(n, 1),
				states:    map[groupKey]*keyState{},
				open:      map[*keyState]struct{}{},
				lastSweep: e.curSeq,
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
		if fastEligible(s) {
			e.fastRs = append(e.fastRs, s)
		}
	}
	e.rulesN.Store(int64(len(rs.Rules)))
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
			e.countFor(rs, c, sk, e.slot(c.Meta, c.CgroupID, seq), seq)
		}
	}
	for i := range b.Histograms {
		h := &b.Histograms[i]
		sk := sysKey{h.Syscall, h.Compat}
		for _, s := range e.durRs {
			slot := e.slot(h.Meta, h.CgroupID, seq)
			if !s.r.sys.has(sk) || !e.scopeOK(s, h.Meta, slot) {
				continue
			}
			if st := e.metaState(s, h.Meta, h.CgroupID, slot); st != nil {
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
		if len(e.rulesFor(sk, errno)) == 0 {
			continue
		}
		slot := e.slot(rec.Meta, rec.CgroupID, seq)
		e.slots[slot].addProc(e, seq, countKey{sk, errno}, alert.Process{PID: rec.PID, Comm: rec.Comm, UID: rec.UID})
		e.slots[slot].addRecord(e, seq, countKey{sk, errno}, &rec.Record)
	}

	var out []alert.Alert
	keys, open := 0, 0
	for _, s := range e.rules {
		for _, st := range s.touched {
			out = e.evaluate(s, st, seq, now, out)
		}
		out = e.sweepOpen(s, seq, now, out)
		out = e.emitEvalErr(s, now, out)
		if seq-s.lastSweep >= max(s.buckets, 8) {
			s.sweepIdle(seq)
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

// Flush emits the pending updates of every open alert, for shutdown and the
// end of a replay. Alerts stay open.
func (e *Engine) Flush() []alert.Alert {
	var out []alert.Alert
	for _, s := range e.rules {
		for st := range s.open {
			if st.dirty {
				out = e.emit(s, st, e.curSeq, st.alert.LastSeen, out)
			}
		}
		if s.evalErr.dirty {
			s.evalErr.lastEmit = time.Time{} // due now, whatever the cooldown
			out = e.emitEvalErr(s, s.evalErr.alert.LastSeen, out)
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
		if len(e.dispatch) >= e.cfg.MaxDispatch {
			e.dispatch = make(map[uint64][]*ruleState, len(e.dispatch))
			e.resets.Add(1)
		}
		for _, list := range [][]*ruleState{e.bySys[sk], e.allSys} {
			for _, s := range list {
				if s.r.errnos.has(errno) {
					rs = append(rs, s)
				}
			}
		}
		e.dispatch[k] = rs
		e.dispatchN.Store(int64(len(e.dispatch)))
	}
	return rs
}

func (e *Engine) scopeOK(s *ruleState, m *enrich.Meta, slot int32) bool {
	if !s.r.scope.any {
		return true
	}
	if int(slot) >= len(s.scopeBySlot) {
		s.scopeBySlot = append(s.scopeBySlot, make([]scopeVerdict, len(e.slots)-len(s.scopeBySlot))...)
	}
	// Enrichment never changes a Meta it handed out (it makes a new one),
	// so a verdict holds as long as the slot has the same Meta.
	v := &s.scopeBySlot[slot]
	if !v.set || v.meta != m {
		*v = scopeVerdict{meta: m, ok: s.r.scope.metaOK(m), set: true}
	}
	return v.ok
}

type scopeVerdict struct {
	meta    *enrich.Meta
	ok, set bool
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

// metaState is state for a rule whose key the Meta alone decides: enrich
// hands out one Meta per cgroup, so the Meta's slot finds the state without
// building and hashing the key for every count.
func (e *Engine) metaState(s *ruleState, m *enrich.Meta, cgroup uint64, slot int32) *keyState {
	if int(slot) < len(s.bySlot) {
		if st := s.bySlot[slot]; st != nil && !st.dead {
			st.meta = m
			e.touch(s, st)
			return st
		}
	}
	st := e.state(s, keyFor(s.r.GroupBy, m, cgroup, ""), m)
	if st != nil {
		s.setSlot(slot, st, len(e.slots))
		e.noteSlot(s, st, slot)
	}
	return st
}

// commState is metaState for group_by process: a slot remembers the state
// of the comm it saw last, which is the next one's too in the common case of
// one failing process per container.
func (e *Engine) commState(s *ruleState, m *enrich.Meta, cgroup uint64, slot int32, comm string) *keyState {
	if int(slot) < len(s.bySlot) {
		if st := s.bySlot[slot]; st != nil && !st.dead && st.key.comm == comm {
			st.meta = m
			e.touch(s, st)
			return st
		}
	}
	st := e.state(s, keyFor(s.r.GroupBy, m, cgroup, comm), m)
	if st != nil {
		s.setSlot(slot, st, len(e.slots))
		e.noteSlot(s, st, slot)
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
func (s *ruleState) sweepIdle(seq int64) {
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
			out = e.emit(s, st, seq, now, out)
		}
		if now.Sub(st.lastMatch) >= s.r.Cooldown {
			if st.dirty {
				out = e.emit(s, st, seq, now, out)
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
