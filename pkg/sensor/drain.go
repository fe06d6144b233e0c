package sensor

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
)

// The kernel program writes to one of two sets of maps (counts0/hists0 or
// counts1/hists1), chosen by the gen of its settings. A drain flips gen on
// every CPU, then waits until no program can still be writing to the old
// set, then reads and empties it.
//
// Why the wait is exact: updating an array-of-maps makes the kernel wait for
// an RCU grace period before the syscall returns (maybe_wait_bpf_programs in
// kernel/bpf/syscall.c). Tracepoint programs run inside an RCU read-side
// critical section with preemption disabled, so once the update of
// rcu_barrier returns, every program that read the old gen has finished and
// every later one reads the new gen. The old maps are then read with no
// writer left, and emptied by the same batch syscall: an increment lands in
// the set gen named when it happened, and that set is read exactly once.
// Per-CPU values need no atomics, and reads are never torn.
type generations struct {
	st      *settings // holds gen
	barrier *ebpf.Map
	inner   *ebpf.Map // what barrier's slot holds; the same map every time
	current uint32
}

func (g *generations) init(st *settings, barrier *ebpf.Map, innerSpec *ebpf.MapSpec) error {
	g.st, g.barrier = st, barrier
	var err error
	if g.inner, err = ebpf.NewMap(innerSpec); err != nil {
		return fmt.Errorf("create barrier map: %w", err)
	}
	return nil
}

// flip makes programs write to the other set and returns the set they
// wrote to before, which no program writes to any more when flip returns.
func (g *generations) flip() (old uint32, err error) {
	old = g.current
	if err := g.st.update(func(st *bpfSettings) { st.Gen = old ^ 1 }); err != nil {
		return old, fmt.Errorf("flip map generation: %w", err)
	}
	g.current = old ^ 1
	if err := g.barrier.Put(uint32(0), g.inner); err != nil {
		return old, fmt.Errorf("wait for running programs (map-in-map update): %w", err)
	}
	return old, nil
}

func (g *generations) close() {
	if g.inner != nil {
		g.inner.Close()
	}
}

// drainBatch is how many keys one batch syscall moves.
const drainBatch = 512

// drainAll reads and deletes every entry of a per-CPU hash nobody writes to
// any more, calling fn with each key and its per-CPU values.
func drainAll[K, V any](m *ebpf.Map, fn func(k *K, perCPU []V)) error {
	ncpu := 1
	if m.Type() == ebpf.PerCPUHash {
		var err error
		if ncpu, err = ebpf.PossibleCPU(); err != nil {
			return err
		}
	}
	keys := make([]K, drainBatch)
	vals := make([]V, drainBatch*ncpu)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookupAndDelete(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			fn(&keys[i], vals[i*ncpu:(i+1)*ncpu])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Drain returns every exit counted since the previous drain, each exactly
// once, and empties the kernel's aggregates.
func (s *Sensor) Drain() (Interval, error) {
	s.drainMu.Lock()
	defer s.drainMu.Unlock()

	iv := Interval{Start: s.lastDrain}
	old, err := s.gens.flip()
	if err != nil {
		return iv, err
	}
	iv.End = time.Now()
	s.lastDrain = iv.End
	counts, hists, budgets := s.objs.Counts0, s.objs.Hists0, s.objs.Budgets0
	if old == 1 {
		counts, hists, budgets = s.objs.Counts1, s.objs.Hists1, s.objs.Budgets1
	}

	totals := map[Key]uint64{}
	err = drainAll(counts, func(k *bpfCountKey, perCPU []bpfCountVal) {
		var sum uint64
		for i := range perCPU {
			sum += perCPU[i].Count
		}
		if sum > 0 {
			totals[countKey(k)] += sum
		}
	})
	if err != nil {
		return iv, fmt.Errorf("drain counts: %w", err)
	}
	// Each CPU's hot slots (one for failures, one for successes) hold the
	// runs of its storm keys that never went through the hash.
	for _, idx := range []uint32{old * 2, old*2 + 1} {
		var slots []bpfHotSlot
		if err := s.objs.Hot.Lookup(idx, &slots); err != nil {
			return iv, fmt.Errorf("drain hot slots: %w", err)
		}
		for i := range slots {
			if slots[i].Bound != 0 && slots[i].Pending > 0 {
				totals[countKey(&slots[i].Key)] += slots[i].Pending
			}
		}
		if err := s.objs.Hot.Update(idx, make([]bpfHotSlot, len(slots)), ebpf.UpdateExist); err != nil {
			return iv, fmt.Errorf("reset hot slots: %w", err)
		}
	}
	// What each cgroup counted beyond its share, or when the map was full.
	err = drainAll(budgets, func(id *uint64, v []bpfCgroupBudget) {
		b := &v[0]
		if b.Failures == 0 && b.Successes == 0 {
			return
		}
		iv.Overflows = append(iv.Overflows, Overflow{CgroupID: *id, Keys: int(b.Keys), Failures: b.Failures, Successes: b.Successes})
		if b.Failures > 0 {
			totals[Key{CgroupID: *id, Syscall: OverflowSyscall, Errno: OverflowErrno}] += b.Failures
		}
		if b.Successes > 0 {
			totals[Key{CgroupID: *id, Syscall: OverflowSyscall}] += b.Successes
		}
		s.overflowed.Add(b.Failures + b.Successes)
	})
	if err != nil {
		return iv, fmt.Errorf("drain cgroup budgets: %w", err)
	}
	iv.Counts = make([]Count, 0, len(totals))
	for k, n := range totals {
		iv.Counts = append(iv.Counts, Count{Key: k, Count: n})
	}
	if s.cfg.Durations {
		err = drainAll(hists, func(k *bpfHistKey, perCPU []bpfHistVal) {
			h := Histogram{HistKey: HistKey{
				CgroupID: k.CgroupId,
				Syscall:  syscallNr(k.Nr &^ compatBit),
				Compat:   k.Nr&compatBit != 0,
			}}
			for i := range perCPU {
				for b, n := range perCPU[i].Buckets {
					h.Buckets[b] += n
				}
			}
			iv.Histograms = append(iv.Histograms, h)
		})
		if err != nil {
			return iv, fmt.Errorf("drain histograms: %w", err)
		}
	}
	iv.Stats, err = s.Stats()
	return iv, err
}

const compatBit = 0x80000000

func countKey(k *bpfCountKey) Key {
	return Key{
		CgroupID: k.CgroupId,
		Syscall:  syscallNr(k.Nr &^ compatBit),
		Compat:   k.Nr&compatBit != 0,
		Errno:    uint16(k.Errno),
	}
}

// Stats returns the sensor's cumulative statistics.
func (s *Sensor) Stats() (Stats, error) {
	st := Stats{
		Records:      s.records.Load(),
		DecodeErrors: s.decodeErrs.Load(),
		Overflowed:   s.overflowed.Load(),
	}
	if s.queue != nil {
		st.QueueDrops = s.queue.drops.Load()
	}
	var perCPU []uint64
	read := func(i uint32) ([]uint64, error) {
		if err := s.objs.Stats.Lookup(i, &perCPU); err != nil {
			return nil, fmt.Errorf("read sensor stats: %w", err)
		}
		return append([]uint64(nil), perCPU...), nil
	}
	var err error
	if st.RingDrops, err = read(statRingDrops); err != nil {
		return st, err
	}
	for _, i := range []struct {
		idx uint32
		dst *uint64
	}{{statMapFull, &st.MapFull}, {statHistFull, &st.HistFull}, {statRecords, &st.Emitted}} {
		v, err := read(i.idx)
		if err != nil {
			return st, err
		}
		for _, n := range v {
			*i.dst += n
		}
	}
	return st, nil
}

// Indexes of the kernel's stats map (enum stat_index).
const (
	statRingDrops = 0
	statMapFull   = 1
	statHistFull  = 2
	statRecords   = 3
)
