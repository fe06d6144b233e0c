package sensor

import (
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
)

// settings is the user-space half of what the kernel program reads on every
// exit: its configuration, the map generation and the record rate-limit
// window, one struct settings in the per-CPU cfg map (per CPU so that the
// program reads it from per-CPU memory that the syscall has touched already,
// see bpf/errnowatch.c). Every CPU holds the same value. Filters, the drain
// and the window ticker change different fields from different goroutines,
// so each change goes through update, which writes the whole value from
// this copy.
type settings struct {
	mu   sync.Mutex
	m    *ebpf.Map
	cur  bpfSettings
	vals []bpfSettings // one per possible CPU, reused by every write
}

func (st *settings) init(m *ebpf.Map) error {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("count possible CPUs: %w", err)
	}
	st.m, st.vals = m, make([]bpfSettings, ncpu)
	return nil
}

// update applies change to the settings and writes them to every CPU. The
// kernel copies each CPU's value a long at a time, so a program running
// meanwhile reads every aligned field either old or new, never torn.
func (st *settings) update(change func(*bpfSettings)) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	next := st.cur
	change(&next)
	for i := range st.vals {
		st.vals[i] = next
	}
	if err := st.m.Update(uint32(0), st.vals, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("write sensor settings: %w", err)
	}
	st.cur = next
	return nil
}

// config returns the configuration part of the settings in force.
func (st *settings) config() bpfConfig {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.cur.Cfg
}

// setConfig replaces the configuration part of the settings, and moves
// cfg_gen on: the hot slots' cached cgroup verdicts are decided again, from
// the configuration and the cgroup filter as they are now (write the
// cgroup_filter map before calling this).
func (st *settings) setConfig(c bpfConfig) error {
	return st.update(func(s *bpfSettings) {
		s.Cfg = c
		s.CfgGen++
	})
}
