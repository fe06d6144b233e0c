package rules

import (
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"

	"github.com/errnowatch/errnowatch/pkg/syscalls"
)

// activation hands a condition the variables of one key's window. It
// computes each only when the condition reads it, and the engine reuses one
// activation for every evaluation, so a condition like "count >= 50" costs
// no aggregation beyond the running total.
type activation struct {
	e   *Engine
	s   *ruleState
	st  *keyState
	seq int64
	// fast is the one record of a fast evaluation (Engine.Fast), nil
	// otherwise.
	fast ref.Val

	aggDone bool
	sys     []nameCount
	errs    []errnoCount

	procDone bool
	comms    []string
	pids     int

	// The maps handed to CEL are refilled, not rebuilt, for every
	// evaluation, and their keys are boxed once: a condition without a
	// count floor runs for every key, every interval.
	sysMap, errMap, durMap map[ref.Val]ref.Val
	sysM, errM, durM       traits.Mapper
	names                  map[string]ref.Val
}

func (a *activation) name(s string) ref.Val {
	v, ok := a.names[s]
	if !ok {
		if a.names == nil {
			a.names = map[string]ref.Val{}
		}
		v = types.String(s)
		a.names[s] = v
	}
	return v
}

// refill empties *m (making it and its mapper the first time) for reuse.
func refill(m *map[ref.Val]ref.Val, mapper *traits.Mapper) {
	if *m == nil {
		*m = map[ref.Val]ref.Val{}
		*mapper = types.NewRefValMap(types.DefaultTypeAdapter, *m)
	}
	clear(*m)
}

type nameCount struct {
	name string
	n    uint64
}

type errnoCount struct {
	errno uint16
	n     uint64
}

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) reset(e *Engine, s *ruleState, st *keyState, seq int64) {
	a.e, a.s, a.st, a.seq = e, s, st, seq
	a.aggDone, a.procDone = false, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

func (a *activation) ResolveName(name string) (any, bool) {
	st := a.st
	switch name {
	case varCount:
		if a.fast != nil {
			return types.Int(st.total + 1), true
		}
		return types.Int(st.total), true
	case varRate:
		return types.Double(float64(st.total) / a.s.windowSecs), true
	case varWindowSeconds:
		return types.Double(a.s.windowSecs), true
	case varIntervals:
		n, last := 0, int32(-1)
		for _, c := range st.window() {
			if c.seq != last {
				n, last = n+1, c.seq
			}
		}
		return types.Int(n), true
	case varDistinctSyscalls:
		a.aggregate()
		return types.Int(len(a.sys)), true
	case varDistinctErrnos:
		a.aggregate()
		return types.Int(len(a.errs)), true
	case varSyscalls:
		a.aggregate()
		refill(&a.sysMap, &a.sysM)
		for _, k := range a.s.r.cond.sysKeys {
			a.sysMap[a.name(k)] = types.IntZero
		}
		for _, c := range a.sys {
			a.sysMap[a.name(c.name)] = types.Int(c.n)
		}
		return a.sysM, true
	case varErrnos:
		a.aggregate()
		refill(&a.errMap, &a.errM)
		for _, k := range a.s.r.cond.errnoKeys {
			a.errMap[a.name(k)] = types.IntZero
		}
		for _, c := range a.errs {
			a.errMap[a.name(syscalls.ErrnoName(c.errno))] = types.Int(c.n)
		}
		return a.errM, true
	case varComms:
		a.processes()
		return types.NewStringList(types.DefaultTypeAdapter, a.comms), true
	case varDistinctComms:
		a.processes()
		return types.Int(len(a.comms)), true
	case varDistinctPIDs:
		a.processes()
		return types.Int(a.pids), true
	case varDuration:
		d := summarize(st.hists)
		refill(&a.durMap, &a.durM)
		a.durMap[a.name("count")] = types.Int(d.count)
		a.durMap[a.name("p50_ns")] = types.Int(d.p50)
		a.durMap[a.name("p90_ns")] = types.Int(d.p90)
		a.durMap[a.name("p99_ns")] = types.Int(d.p99)
		a.durMap[a.name("max_ns")] = types.Int(d.max)
		return a.durM, true
	case varComm:
		return types.String(st.key.comm), true
	case varNode:
		if st.meta != nil && st.meta.Node != "" {
			return types.String(st.meta.Node), true
		}
		return types.String(""), true
	case varHost:
		return types.Bool(st.meta == nil || st.meta.Host), true
	case varNamespace, varPod, varContainer:
		if st.meta == nil {
			return types.String(""), true
		}
		switch name {
		case varNamespace:
			return types.String(st.meta.Namespace), true
		case varPod:
			return types.String(st.meta.Pod), true
		}
		return types.String(st.meta.Container), true
	case varRecords:
		if a.fast != nil {
			return fastRecords(a.fast), true
		}
		return types.NewRefValList(types.DefaultTypeAdapter, a.e.recordsOf(a.s, a.st, a.seq)), true
	case varLabels:
		var l map[string]string
		if st.meta != nil {
			l = st.meta.Labels
		}
		if l == nil {
			l = map[string]string{}
		}
		return types.NewStringStringMap(types.DefaultTypeAdapter, l), true
	}
	return nil, false
}

// aggregate sums the window per syscall name (native and compat numbers of
// one name count together) and per errno.
func (a *activation) aggregate() {
	if a.aggDone {
		return
	}
	a.aggDone = true
	a.sys, a.errs = a.sys[:0], a.errs[:0]
	arch := syscalls.Native()
	for _, c := range a.st.window() {
		name := syscalls.Name(arch, int(c.sys.nr), c.sys.compat)
		found := false
		for i := range a.sys {
			if a.sys[i].name == name {
				a.sys[i].n += uint64(c.n)
				found = true
				break
			}
		}
		if !found {
			a.sys = append(a.sys, nameCount{name, uint64(c.n)})
		}
		found = false
		for i := range a.errs {
			if a.errs[i].errno == c.errno {
				a.errs[i].n += uint64(c.n)
				found = true
				break
			}
		}
		if !found {
			a.errs = append(a.errs, errnoCount{c.errno, uint64(c.n)})
		}
	}
}

func (a *activation) processes() {
	if a.procDone {
		return
	}
	a.procDone = true
	a.comms = a.comms[:0]
	procs := a.e.procsOf(a.s, a.st, a.seq) // distinct by pid
	a.pids = len(procs)
	for _, p := range procs {
		if !containsStr(a.comms, p.Comm) {
			a.comms = append(a.comms, p.Comm)
		}
	}
}
