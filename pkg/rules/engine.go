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
	durRs   []*ruleState
	commRs  bool // some rule needs comm attribution

	gen    uint64 // batch generation, to mark touched keys
	curSeq int64

	attr, prevAttr map[attrKey][]commShare
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
	e := &Engine{cfg: cfg, log: log,
		attr: map[attrKey][]commShare{}, prevAttr: map[attrKey][]commShare{}}
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
	touched    []*keyState
	open       map[*keyState]struct{}
	scopeCache map[*enrich.Meta]bool
	lastSweep  int64
	loggedErr  bool
}

func (e *Engine) use(rs *RuleSet) {
	old := map[string]*ruleState{}
	for _, s := range e.rules {
		old[s.r.ID] = s
	}
	e.rs = rs
	e.rules = nil
	e.bySys = map[sysKey][]*ruleState{}
	e.allSys, e.durRs, e.commRs = nil, nil, false
	if rs == nil {
		e.rulesN.Store(0)
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
				scopeCache: map[*enrich.Meta]bool{},
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
	seq := (now.UnixNano() + int64(e.cfg.Interval)/2) / int64(e.cfg.Interval)
	// Batches out of order (a clock step back) land in the newest bucket
	// rather than corrupting the windows' order.
	seq = max(seq, e.curSeq)
	e.curSeq = seq
	e.gen++
	for _, s := range e.rules {
		s.touched = s.touched[:0]
		clear(s.scopeCache)
	}

	if e.commRs {
		e.buildAttribution(b.Records)
	}
	for i := range b.Counts {
		c := &b.Counts[i]
		if c.Errno == 0 {
			continue
		}
		sk := sysKey{c.Syscall, c.Compat}
		e.countFor(e.bySys[sk], c, sk, seq)
		e.countFor(e.allSys, c, sk, seq)
	}
	for i := range b.Histograms {
		h := &b.Histograms[i]
		sk := sysKey{h.Syscall, h.Compat}
		for _, s := range e.durRs {
			if !s.r.sys.has(sk) || !e.scopeOK(s, h.Meta) {
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
		e.recordFor(e.bySys[sk], rec, sk, errno, seq)
		e.recordFor(e.allSys, rec, sk, errno, seq)
	}

	var out []alert.Alert
	keys, open := 0, 0
	for _, s := range e.rules {
		for _, st := range s.touched {
			out = e.evaluate(s, st, seq, now, out)
		}
		out = e.sweepOpen(s, seq, now, out)
		if seq-s.lastSweep >= max(s.buckets, 8) {
			s.sweepIdle(seq)
		}
		keys += len(s.states)
		open += len(s.open)
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
				out = e.emit(s, st, st.alert.LastSeen, out)
			}
		}
	}
	return out
}

func (e *Engine) scopeOK(s *ruleState, m *enrich.Meta) bool {
	if !s.r.scope.any {
		return true
	}
	ok, hit := s.scopeCache[m]
	if !hit {
		ok = s.r.scope.metaOK(m)
		s.scopeCache[m] = ok
	}
	return ok
}

func (e *Engine) countFor(rs []*ruleState, c *enrich.Count, sk sysKey, seq int64) {
	for _, s := range rs {
		if !s.r.errnos.has(c.Errno) || !e.scopeOK(s, c.Meta) {
			continue
		}
		if !s.needsComm {
			if st := e.state(s, keyFor(s.r.GroupBy, c.Meta, c.CgroupID, ""), c.Meta); st != nil {
				st.add(e, s, seq, sk, c.Errno, c.Count.Count)
			}
			continue
		}
		for _, sh := range e.split(c) {
			if !s.r.scope.commOK(sh.comm) {
				continue
			}
			if st := e.state(s, keyFor(s.r.GroupBy, c.Meta, c.CgroupID, sh.comm), c.Meta); st != nil {
				st.add(e, s, seq, sk, c.Errno, sh.n)
			}
		}
	}
}

func (e *Engine) recordFor(rs []*ruleState, rec *enrich.Record, sk sysKey, errno uint16, seq int64) {
	for _, s := range rs {
		if !s.r.errnos.has(errno) || !e.scopeOK(s, rec.Meta) || !s.r.scope.commOK(rec.Comm) {
			continue
		}
		comm := ""
		if s.r.GroupBy == alert.GroupByProcess {
			comm = rec.Comm
		}
		// Records only say who failed; a key with no counts has nothing to
		// evaluate, so records never create keys.
		if st := s.states[keyFor(s.r.GroupBy, rec.Meta, rec.CgroupID, comm)]; st != nil {
			st.addProc(e, seq, alert.Process{PID: rec.PID, Comm: rec.Comm, UID: rec.UID})
		}
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
	if st.gen != e.gen {
		st.gen = e.gen
		st.delta = st.delta[:0]
		s.touched = append(s.touched, st)
	}
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

// buildAttribution indexes this batch's records by counter and comm.
func (e *Engine) buildAttribution(recs []enrich.Record) {
	e.attr, e.prevAttr = e.prevAttr, e.attr
	clear(e.attr)
	for i := range recs {
		r := &recs[i]
		errno := r.Errno()
		if errno == 0 {
			continue
		}
		k := attrKey{r.CgroupID, sysKey{r.Syscall, r.Compat}, errno}
		sh := e.attr[k]
		found := false
		for j := range sh {
			if sh[j].comm == r.Comm {
				sh[j].n++
				found = true
				break
			}
		}
		if !found {
			sh = append(sh, commShare{r.Comm, 1})
		}
		e.attr[k] = sh
	}
}

// split divides an exact per-cgroup count among the comms whose records
// were sampled from the same counter in this interval (or, when none
// arrived yet, the previous one), in proportion to their records. It is
// exact when one comm owns the counter, the common case; otherwise it is an
// estimate, because the kernel samples the first records of each counter
// per rate-limit window, not a random subset. Counts with no sampled record
// at all go to the empty comm ("unknown process").
func (e *Engine) split(c *enrich.Count) []commShare {
	k := attrKey{c.CgroupID, sysKey{c.Syscall, c.Compat}, c.Errno}
	sh, ok := e.attr[k]
	if !ok {
		sh, ok = e.prevAttr[k]
	}
	e.shares = e.shares[:0]
	if !ok || len(sh) == 0 {
		return append(e.shares, commShare{"", c.Count.Count})
	}
	if len(sh) == 1 {
		return append(e.shares, commShare{sh[0].comm, c.Count.Count})
	}
	var total uint64
	big := 0
	for i, x := range sh {
		total += x.n
		if x.n > sh[big].n {
			big = i
		}
	}
	var given uint64
	for _, x := range sh {
		n := c.Count.Count * x.n / total
		given += n
		e.shares = append(e.shares, commShare{x.comm, n})
	}
	e.shares[big].n += c.Count.Count - given
	return e.shares
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
			delete(s.states, k)
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
