package enrich

// Held tells whether the data of cgroup id is being held. The enricher sees
// every cgroup of the machine, and other packages' tests make pod-shaped
// cgroups at the same time, so tests ask about their own cgroup rather than
// read the node-wide Stats.
func (e *Enricher) Held(id uint64) bool {
	e.pmu.Lock()
	defer e.pmu.Unlock()
	_, ok := e.pending[id]
	return ok
}
