package sensor_test

import (
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/rules"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// Issue 13 §2 through the agent's stages: a pod floods the sensor with new
// keys while another pod fails an exact number of times. Every interval is
// drained and evaluated by the default rule pack, as the agent does. The
// other pod's count is exact, the flood raises the built-in evasion alert
// on the flooding pod (and only there), and the rule engine's per-key
// state stays within its bounds.
func TestFloodRaisesEvasionAlert(t *testing.T) {
	s, err := sensor.Load(sensor.Config{ExcludeSelf: true, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, err := rules.Load("../../rules/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const interval = 250 * time.Millisecond
	const maxDispatch = 2048
	eng := rules.NewEngine(rs, rules.Config{Interval: interval, Node: "node-1", MaxDispatch: maxDispatch})

	metas := map[uint64]*enrich.Meta{}
	podCgroup := func(ns, name string) *cgrouptest.Dir {
		uid, id := cgrouptest.PodUID(), cgrouptest.ContainerID()
		cg := cgrouptest.New(t, cgrouptest.KubeletPath(cgroup.DriverCgroupfs, cgroup.RuntimeContainerd, cgroup.QoSBestEffort, uid, id))
		metas[cg.ID] = &enrich.Meta{Node: "node-1", Namespace: ns, Pod: name, PodUID: uid, Container: "app",
			ContainerID: id, CgroupPath: cg.Rel}
		return cg
	}
	floodCg, victimCg := podCgroup("attack", "flooder"), podCgroup("default", "web")
	flooder, victim := sensor.StartChild(t, floodCg), sensor.StartChild(t, victimCg)

	var (
		alerts  []alert.Alert
		counted uint64
		maxSt   rules.Stats
	)
	step := func() {
		iv, err := s.Drain()
		if err != nil {
			t.Fatalf("drain: %v", err)
		}
		b := enrich.Batch{Interval: iv}
		for _, c := range iv.Counts {
			// Only the two pods: the rest of this shared machine fails too.
			m := metas[c.CgroupID]
			if m == nil {
				continue
			}
			b.Counts = append(b.Counts, enrich.Count{Count: c, Meta: m})
			if c.CgroupID == victimCg.ID && c.Syscall == unix.SYS_CLOSE && c.Errno == uint16(unix.EBADF) {
				counted += c.Count
			}
		}
		alerts = append(alerts, eng.Process(&b)...)
		st := eng.Stats()
		maxSt.DispatchKeys = max(maxSt.DispatchKeys, st.DispatchKeys)
		maxSt.Keys = max(maxSt.Keys, st.Keys)
	}
	step() // what came before the children is not theirs
	counted = 0

	const seconds = 8
	floodDone := make(chan string, 1)
	go func() { floodDone <- sensor.FloodChild(flooder, seconds) }()
	victimDone := make(chan uint64, 1)
	go func() {
		var made uint64
		for deadline := time.Now().Add(seconds * time.Second); time.Now().Before(deadline); made += 2000 {
			sensor.EbadfChild(victim, 2000)
		}
		victimDone <- made
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var made uint64
	var floodAnswer string
	for floodAnswer == "" || made == 0 {
		select {
		case <-tick.C:
			step()
		case floodAnswer = <-floodDone:
		case made = <-victimDone:
		}
	}
	step()
	alerts = append(alerts, eng.Flush()...)

	t.Logf("flood made %s (invalid, getpriority); victim made %d; engine at most %d keys, %d dispatch entries",
		floodAnswer, made, maxSt.Keys, maxSt.DispatchKeys)
	if counted != made {
		t.Errorf("victim: counted %d close EBADF, made %d", counted, made)
	}
	var evasion []alert.Alert
	for _, a := range alerts {
		if a.RuleID == rules.EvasionRuleID {
			evasion = append(evasion, a)
		}
	}
	if len(evasion) == 0 {
		t.Fatalf("the flood raised no %s alert; alerts: %v", rules.EvasionRuleID, alerts)
	}
	for _, a := range evasion {
		if a.Namespace != "attack" || a.Pod != "flooder" || a.PodUID != metas[floodCg.ID].PodUID || a.Total == 0 {
			t.Errorf("evasion alert not on the flooding pod: %s/%s uid %s total %d", a.Namespace, a.Pod, a.PodUID, a.Total)
		}
	}
	t.Log(evasion[len(evasion)-1].Message)
	if maxSt.DispatchKeys > maxDispatch {
		t.Errorf("dispatch cache held %d entries, bound %d", maxSt.DispatchKeys, maxDispatch)
	}
	// One key per rule and pod at most (the pack groups by container or
	// pod; node rules have one key): the flood's thousands of (syscall,
	// errno) pairs are not keys.
	if limit := 2 * (len(rs.Rules) + 1); maxSt.Keys > limit {
		t.Errorf("engine tracked %d keys with two pods failing, want at most %d", maxSt.Keys, limit)
	}
}
