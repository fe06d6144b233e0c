package sensor

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
)

// swapped is a one-slot array-of-maps whose per-CPU hash user space swaps
// for an empty one at every drain.
//
// Why this is exact: the program looks the inner map up through the outer
// slot on every exit. Replacing the slot's map is a map-in-map update, which
// makes the kernel wait for an RCU grace period before the syscall returns
// (maybe_wait_bpf_programs in kernel/bpf/syscall.c). Tracepoint programs run
// inside an RCU read-side critical section with preemption disabled, so once
// the update returns, every program that could have seen the old map has
// finished, and no new one can find it. The old map is then read with no
// writer left, and emptied with the same batch syscall: an increment lands in
// the map that was in the slot when it happened, and that map is read exactly
// once. Per-CPU values need no atomics, and reads are never torn.
type swapped struct {
	outer  *ebpf.Map
	active *ebpf.Map // in the slot
	spare  *ebpf.Map // empty, goes in at the next drain
}

func (s *swapped) init(outer *ebpf.Map, innerSpec *ebpf.MapSpec) error {
	s.outer = outer
	var err error
	if s.active, err = ebpf.NewMap(innerSpec); err != nil {
		return err
	}
	if s.spare, err = ebpf.NewMap(innerSpec); err != nil {
		return err
	}
	if err := outer.Put(uint32(0), s.active); err != nil {
		return fmt.Errorf("install inner map: %w", err)
	}
	return nil
}

// swap puts the spare map in the slot and returns the map it replaced, which
// no program can write to any more. The caller empties it and gives it back
// with done.
func (s *swapped) swap() (*ebpf.Map, error) {
	if err := s.outer.Put(uint32(0), s.spare); err != nil {
		return nil, fmt.Errorf("swap inner map: %w", err)
	}
	old := s.active
	s.active, s.spare = s.spare, nil
	return old, nil
}

func (s *swapped) done(emptied *ebpf.Map) { s.spare = emptied }

func (s *swapped) close() {
	for _, m := range []*ebpf.Map{s.active, s.spare} {
		if m != nil {
			m.Close()
		}
	}
	s.active, s.spare = nil, nil
}

// drainBatch is how many keys one batch syscall moves.
const drainBatch = 512

// drainAll reads and deletes every entry of a per-CPU hash nobody writes to
// any more, calling fn with each key and its per-CPU values.
func drainAll[K, V any](m *ebpf.Map, fn func(k *K, perCPU []V)) error {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return err
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
	old, err := s.counts.swap()
	if err != nil {
		return iv, err
	}
	iv.End = time.Now()
	s.lastDrain = iv.End
	var hold *ebpf.Map
	if s.cfg.Durations {
		if hold, err = s.hists.swap(); err != nil {
			return iv, err
		}
	}

	err = drainAll(old, func(k *bpfCountKey, perCPU []bpfCountVal) {
		var sum uint64
		for i := range perCPU {
			sum += perCPU[i].Count
		}
		if sum == 0 {
			return
		}
		iv.Counts = append(iv.Counts, Count{Key: countKey(k), Count: sum})
	})
	s.counts.done(old)
	if err != nil {
		return iv, fmt.Errorf("drain counts: %w", err)
	}
	if hold != nil {
		err = drainAll(hold, func(k *bpfHistKey, perCPU []bpfHistVal) {
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
		s.hists.done(hold)
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
