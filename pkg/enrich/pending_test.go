package enrich_test

import (
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
	"k8s.io/client-go/rest"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/kube"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// The pending set is bounded: past MaxPending, data goes out at once with
// what the cgroup path says, and what was held goes out when the hold is
// over; nothing is lost. The informer here never runs, as for an agent
// whose API server is unreachable.
func TestPendingIsBounded(t *testing.T) {
	log := zaptest.NewLogger(t)
	uid, id := cgrouptest.PodUID(), cgrouptest.ContainerID()
	cg := cgrouptest.New(t, cgrouptest.KubeletPath(cgroup.DriverCgroupfs, cgroup.RuntimeContainerd, cgroup.QoSBestEffort, uid, id))
	res, err := cgroup.NewResolver(cgroup.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	// Nothing listens on port 1: the informer never syncs.
	kc, err := kube.NewClient(&rest.Config{Host: "https://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := kube.New(kc, kube.Options{Node: "n", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	const hold = 200 * time.Millisecond
	e, err := enrich.New(enrich.Options{Node: "n", Cgroups: res, Pods: pods, Hold: hold, MaxPending: 5})
	if err != nil {
		t.Fatal(err)
	}
	var recs []sensor.Record
	for i := 0; i < 8; i++ {
		recs = append(recs, sensor.Record{CgroupID: cg.ID, MonoNS: uint64(i), Syscall: unix.SYS_OPENAT, Ret: -int64(unix.ENOENT)})
	}
	iv := sensor.Interval{Counts: []sensor.Count{{Key: sensor.Key{CgroupID: cg.ID, Syscall: unix.SYS_OPENAT, Errno: uint16(unix.ENOENT)}, Count: 8}}}
	b := e.EnrichInterval(iv, recs)
	// The count and four records fill the set; four records overflow.
	if len(b.Counts) != 0 || len(b.Records) != 4 || e.Pending() != 5 {
		t.Fatalf("first batch: %d counts, %d records, %d pending; want 0, 4, 5", len(b.Counts), len(b.Records), e.Pending())
	}
	var got []enrich.Record
	got = append(got, b.Records...)
	start := time.Now()
	var counted uint64
	for e.Pending() > 0 {
		if time.Since(start) > 10*time.Second {
			t.Fatal("held data never released")
		}
		time.Sleep(hold / 4)
		b := e.EnrichInterval(sensor.Interval{}, nil)
		got = append(got, b.Records...)
		for _, c := range b.Counts {
			counted += c.Count.Count
		}
	}
	if time.Since(start) < hold/2 {
		t.Error("held data released long before the hold was over")
	}
	if len(got) != 8 || counted != 8 {
		t.Errorf("%d records and %d counted out, want 8 and 8", len(got), counted)
	}
	for _, r := range got {
		if m := r.Meta; !m.Unresolved || m.PodUID != uid || m.ContainerID != id || m.Pod != "" {
			t.Errorf("meta %+v", m)
		}
	}
	if st := e.Stats(); st.Overflows != 4 || st.Records.Unresolved != 8 || st.Counts.Unresolved != 1 {
		t.Errorf("stats %+v", st)
	}
}
