package rules

import (
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/enrich"
)

// fastEligible says whether a rule can be decided by one record as it
// arrives: its condition reads records and can hold with a count of one,
// and it needs nothing only an interval brings (latency histograms, or every
// source of a node).
func fastEligible(s *ruleState) bool {
	c := s.r.cond
	return c.usesRecords && !c.usesDuration && s.minCount <= 1 && s.r.GroupBy != alert.GroupByNode
}

// Fast evaluates the rules one record can decide (see fastEligible) on a
// record as it arrives, instead of at the end of its interval, and returns
// the alerts it raises. The condition sees records as just this record and
// count as the window's count plus this failure. An alert raised here is
// the key's open alert: the interval that brings the record's exact count
// updates it (Revision 2) instead of raising another. Fast must be called
// from the goroutine that calls Process; rec.Meta may be nil for a cgroup
// not enriched yet.
func (e *Engine) Fast(rec *enrich.Record, now time.Time) []alert.Alert {
	if len(e.fastRs) == 0 {
		return nil
	}
	if rs := e.pending.Swap(nil); rs != nil {
		e.use(rs)
		e.swaps.Add(1)
	}
	errno := rec.Errno()
	if errno == 0 {
		return nil
	}
	sk := sysKey{rec.Syscall, rec.Compat}
	ck := countKey{sk, errno}
	var out []alert.Alert
	var val ref.Val
	for _, s := range e.fastRs {
		if !s.r.sys.has(sk) || !s.r.errnos.has(errno) || !s.r.scope.commOK(rec.Comm) {
			continue
		}
		slot := e.slot(rec.Meta, rec.CgroupID, e.curSeq)
		if !e.scopeOK(s, rec.Meta, slot) {
			continue
		}
		var st *keyState
		if s.r.GroupBy == alert.GroupByProcess {
			st = e.commState(s, rec.Meta, rec.CgroupID, slot, rec.Comm)
		} else {
			st = e.metaState(s, rec.Meta, rec.CgroupID, slot)
		}
		if st == nil || st.alert != nil {
			continue // an open alert is updated at the interval
		}
		if val == nil {
			env, _ := celEnv()
			val = env.CELTypeAdapter().NativeToValue(ViewOf(&rec.Record))
		}
		e.evals.Add(1)
		e.act.reset(e, s, st, e.curSeq)
		e.act.fast = val
		res, _, err := s.r.cond.prg.Eval(&e.act)
		e.act.fast = nil
		if err != nil {
			e.evalErrs.Add(1)
			if !s.loggedErr {
				s.loggedErr = true
				e.log.Warn("rule condition failed at run time; treating as no match",
					zap.String("rule", s.r.ID), zap.String("file", s.r.File), zap.Int("line", s.r.Line), zap.Error(err))
			}
			continue
		}
		if m, ok := res.Value().(bool); !ok || !m {
			continue
		}
		out = e.raiseFast(s, st, ck, rec, now, out)
	}
	return out
}

// raiseFast opens the key's alert with the one failure the record shows.
// The interval that brings the exact count adds it less this one.
func (e *Engine) raiseFast(s *ruleState, st *keyState, ck countKey, rec *enrich.Record, now time.Time, out []alert.Alert) []alert.Alert {
	st.matchGen = e.gen
	st.lastMatch = now
	st.targets, st.targetSeq = nil, 0
	st.alert = e.newAlert(s, st, rec.Time)
	st.alert.LastSeen = now
	if st.alert.FirstSeen.After(now) {
		st.alert.FirstSeen = now
	}
	st.alertCounts = map[countKey]uint64{ck: 1}
	st.fastCK, st.fastPending = ck, true
	s.open[st] = struct{}{}
	st.dirty = true
	e.fastRaised.Add(1)
	// The window's process list arrives with the interval; until then the
	// alert names the process of the record that raised it.
	st.alert.Processes = []alert.Process{{PID: rec.PID, Comm: rec.Comm, UID: rec.UID}}
	out = e.emit(s, st, e.curSeq, now, out)
	a := &out[len(out)-1]
	if t := targetOf(&rec.Record); t.Kind != "" {
		t.Syscall, t.Errno = a.Counts[0].Syscall, a.Counts[0].Errno
		t.Count = 1
		a.Targets = []alert.Target{t}
		st.alert.Targets = a.Targets
		a.Message = message(s, st, a)
	}
	return out
}

// fastRecords is the records variable of a fast evaluation.
func fastRecords(v ref.Val) ref.Val {
	return types.NewRefValList(types.DefaultTypeAdapter, []ref.Val{v})
}
