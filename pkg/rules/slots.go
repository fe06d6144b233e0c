package rules

import (
	"slices"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/enrich"
)

// slotInfo is one failure source: a Meta (one per cgroup from enrich), or a
// cgroup that came without one.
type slotInfo struct {
	meta   *enrich.Meta
	cgroup uint64 // when meta is nil
	used   bool
	seen   int64 // last seq with a failure

	attr  slotAttr   // comms of this batch's records, by counter
	procs []slotProc // processes of recent records, newest last
	recs  []slotRec  // recent records, newest last, when a rule reads them
	last  procKey    // the last record taken, to skip repeats cheaply
}

// slotProc is a process seen in a sampled record of one counter.
type slotProc struct {
	seq int64
	ck  countKey
	alert.Process
}

type procKey struct {
	gen uint64
	pid uint32
	ck  countKey
}

// slot returns the slot of a failure source, giving it one if it has none.
func (e *Engine) slot(m *enrich.Meta, cgroup uint64, seq int64) int32 {
	// Failures of one cgroup often come together.
	if m != nil && m == e.lastMeta {
		e.slots[e.lastSlot].seen = seq
		return e.lastSlot
	}
	var i int32
	var ok bool
	if m != nil {
		i, ok = e.slotOf[m]
	} else {
		i, ok = e.nilSlotOf[cgroup]
	}
	if !ok {
		if n := len(e.freeSlots); n > 0 {
			i = e.freeSlots[n-1]
			e.freeSlots = e.freeSlots[:n-1]
		} else {
			i = int32(len(e.slots))
			e.slots = append(e.slots, slotInfo{})
		}
		e.slots[i] = slotInfo{meta: m, cgroup: cgroup, used: true}
		if m != nil {
			e.slotOf[m] = i
		} else {
			e.nilSlotOf[cgroup] = i
		}
	}
	e.slots[i].seen = seq
	if m != nil {
		e.lastMeta, e.lastSlot = m, i
	}
	return i
}

// sweepSlots frees the slots of sources not seen for longer than any
// window, so that replaced Metas (a pod gone, a cgroup re-enriched) do not
// pile up.
func (e *Engine) sweepSlots(seq int64) {
	e.slotSweep = seq
	var longest int64
	for _, s := range e.rules {
		longest = max(longest, s.buckets)
	}
	for i := range e.slots {
		si := &e.slots[i]
		if !si.used || seq-si.seen <= longest {
			continue
		}
		if si.meta != nil {
			delete(e.slotOf, si.meta)
			if e.lastMeta == si.meta {
				e.lastMeta = nil
			}
		} else {
			delete(e.nilSlotOf, si.cgroup)
		}
		*si = slotInfo{}
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

// slotRef is a slot a key has counts from, with what the slot held then, so
// that a slot freed and given to another source is not mistaken for it.
type slotRef struct {
	slot   int32
	meta   *enrich.Meta
	cgroup uint64
}

// noteSlot records that st has counts from slot: the processes of an alert
// come from the records of the slots its key has counts from. A node key
// has all slots and keeps no list.
func (e *Engine) noteSlot(s *ruleState, st *keyState, slot int32) {
	if s.r.GroupBy == alert.GroupByNode {
		return
	}
	si := &e.slots[slot]
	ref := slotRef{slot, si.meta, si.cgroup}
	if slices.Contains(st.slots, ref) {
		return
	}
	// Drop references to slots that have moved on.
	st.slots = slices.DeleteFunc(st.slots, func(r slotRef) bool { return !e.refValid(r) })
	st.slots = append(st.slots, ref)
}

func (e *Engine) refValid(r slotRef) bool {
	si := &e.slots[r.slot]
	return si.used && si.meta == r.meta && si.cgroup == r.cgroup
}

// addProc keeps the process of a record, at most 64 per slot: a process
// again (the kernel samples several records per counter, mostly from one
// process) only moves it to the newest place.
func (si *slotInfo) addProc(e *Engine, seq int64, ck countKey, p alert.Process) {
	pk := procKey{e.gen, p.PID, ck}
	if si.last == pk {
		return
	}
	si.last = pk
	for i := len(si.procs) - 1; i >= 0; i-- {
		if si.procs[i].PID == p.PID && si.procs[i].ck == ck {
			si.procs = append(slices.Delete(si.procs, i, i+1), slotProc{seq, ck, p})
			return
		}
	}
	if len(si.procs) >= 64 {
		si.procs = slices.Delete(si.procs, 0, 1)
	}
	si.procs = append(si.procs, slotProc{seq, ck, p})
}

// procsOf returns the distinct processes (by pid, newest first) whose
// sampled records in the window match the rule and the key. The slice is
// the engine's scratch space, valid until the next call.
func (e *Engine) procsOf(s *ruleState, st *keyState, seq int64) []slotProc {
	limit := seq - s.buckets
	buf := e.procBuf[:0]
	take := func(si *slotInfo) {
		for i := len(si.procs) - 1; i >= 0; i-- {
			p := &si.procs[i]
			if p.seq <= limit {
				break // older still below
			}
			if !s.r.sys.has(p.ck.sys) || !s.r.errnos.has(p.ck.errno) || !s.r.scope.commOK(p.Comm) ||
				(s.r.GroupBy == alert.GroupByProcess && p.Comm != st.key.comm) {
				continue
			}
			if slices.ContainsFunc(buf, func(q slotProc) bool { return q.PID == p.PID }) {
				continue
			}
			if len(buf) < 4*e.cfg.MaxProcesses {
				buf = append(buf, *p)
			}
		}
	}
	if s.r.GroupBy == alert.GroupByNode {
		for i := range e.slots {
			if si := &e.slots[i]; si.used && e.scopeOK(s, si.meta, int32(i)) {
				take(si)
			}
		}
	} else {
		for _, r := range st.slots {
			if e.refValid(r) {
				take(&e.slots[r.slot])
			}
		}
	}
	slices.SortStableFunc(buf, func(a, b slotProc) int { return int(b.seq - a.seq) })
	e.procBuf = buf
	return buf
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

// buildAttribution indexes this batch's records by slot, counter and comm.
func (e *Engine) buildAttribution(recs []enrich.Record, seq int64) {
	for i := range recs {
		r := &recs[i]
		errno := r.Errno()
		if errno == 0 {
			continue
		}
		slot := e.slot(r.Meta, r.CgroupID, seq)
		e.slots[slot].attr.add(e.gen, countKey{sysKey{r.Syscall, r.Compat}, errno}, r.Comm)
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
	if sa.gen == gen || sa.gen+1 == gen {
		for _, a := range sa.cur {
			if a.k == k {
				return a.shares, true
			}
		}
	}
	if sa.gen == gen && sa.prevGen+1 == gen {
		for _, a := range sa.prev {
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
	cs, ok := e.slots[slot].attr.find(e.gen, countKey{sysKey{c.Syscall, c.Compat}, c.Errno})
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
