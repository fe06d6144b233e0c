package rules

import (
	"bytes"
	"maps"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/sensor"
	"github.com/errnowatch/errnowatch/test/attacks"
)

// TestDefaultPackOnKernel runs every workload of test/attacks in a fresh
// cgroup under the real kernel sensor, feeds the drained intervals to the
// default pack as the agent would (one batch a second), and checks that an
// attack fires its rule and no other, and that a benign workload fires
// nothing. Enrichment is not part of this: the cgroup gets a made-up pod.
func TestDefaultPackOnKernel(t *testing.T) {
	rs, err := Load("../../rules/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	s, err := sensor.Load(sensor.Config{}, log)
	if err != nil {
		t.Fatalf("load sensor: %v", err)
	}
	defer s.Close()

	covered := map[string]bool{}
	for _, w := range attacks.All() {
		covered[w.Rule] = true
		t.Run(w.Name, func(t *testing.T) {
			podUID, ctrID := cgrouptest.PodUID(), cgrouptest.ContainerID()
			cg := cgrouptest.New(t, cgrouptest.KubeletPath(cgroup.DriverCgroupfs, cgroup.RuntimeContainerd,
				cgroup.QoSBestEffort, podUID, ctrID))
			if err := s.SetFilter(sensor.Filter{IncludeCgroups: []uint64{cg.ID}}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Drain(); err != nil { // what came before is not this workload's
				t.Fatal(err)
			}
			meta := &enrich.Meta{Node: "test-node", Namespace: "attacks", Pod: w.Name + "-7d9f", PodUID: podUID,
				Container: "workload", ContainerID: ctrID, CgroupPath: cg.Rel}
			eng := NewEngine(rs, Config{Interval: time.Second, Node: "test-node"}, log)

			cmd := w.Command(attacks.Scratch(t))
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cg.Start(cmd); err != nil {
				t.Fatalf("start %s: %v", w.Name, err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			var got []alert.Alert
			var total uint64
			for running := true; running; {
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("workload %s (%s): %v\n%s", w.Name, w.Description, err, out.String())
					}
					running = false
				case <-tick.C:
				}
				b := drainBatch(t, s, cg.ID, meta)
				for _, c := range b.Counts {
					total += c.Count.Count
				}
				got = append(got, eng.Process(b)...)
			}
			got = append(got, eng.Flush()...)

			t.Logf("%s: %d failures counted", w.Name, total)
			fired := map[string]bool{}
			for _, a := range got {
				fired[a.RuleID] = true
				t.Logf("%s rev %d: %s", a.RuleID, a.Revision, a.Message)
				if a.Pod != meta.Pod || a.Total == 0 {
					t.Errorf("alert not about the workload's pod or without failures: %+v", a)
				}
			}
			var want []string
			if !w.Benign() {
				want = []string{w.Rule}
			}
			if ids := slices.Sorted(maps.Keys(fired)); !slices.Equal(ids, want) {
				t.Errorf("%s (%s): %d failures fired %v, want %v", w.Name, w.Description, total, ids, want)
			}
		})
	}
	for _, r := range rs.Rules {
		if !covered[r.ID] {
			t.Errorf("default rule %s has no attack workload in test/attacks", r.ID)
		}
	}
}

// drainBatch drains one interval and the records queued so far into a batch
// for the workload's cgroup.
func drainBatch(t *testing.T, s *sensor.Sensor, cgroupID uint64, meta *enrich.Meta) *enrich.Batch {
	t.Helper()
	iv, err := s.Drain()
	if err != nil {
		t.Fatalf("drain: %v", err)
	}
	b := &enrich.Batch{Interval: iv}
	for _, c := range iv.Counts {
		if c.CgroupID == cgroupID {
			b.Counts = append(b.Counts, enrich.Count{Count: c, Meta: meta})
		}
	}
	for _, h := range iv.Histograms {
		if h.CgroupID == cgroupID {
			b.Histograms = append(b.Histograms, enrich.Histogram{Histogram: h, Meta: meta})
		}
	}
	for {
		select {
		case r := <-s.Records():
			if r.CgroupID == cgroupID {
				b.Records = append(b.Records, enrich.Record{Record: r, Meta: meta})
			}
			continue
		default:
		}
		return b
	}
}
