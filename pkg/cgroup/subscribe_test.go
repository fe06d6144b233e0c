package cgroup_test

import (
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
)

// nextEvent returns the next event of sub about id, skipping the events
// of cgroups that other tests on this machine make meanwhile.
func nextEvent(t *testing.T, sub *cgroup.Subscription, id uint64) cgroup.Event {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case ev := <-sub.Events():
			if ev.ID == id {
				return ev
			}
		case <-sub.Lost():
			t.Fatalf("events were dropped (%d) waiting for cgroup %d", sub.Dropped(), id)
		case <-deadline:
			t.Fatalf("after %v: no event for cgroup %d", waitFor, id)
		}
	}
}

// A subscriber sees the cgroups that are made and removed, with what their
// paths say, and the map it reads after subscribing agrees.
func TestSubscribe(t *testing.T) {
	r := newResolver(t, cgroup.Options{ResyncInterval: -1})
	run(t, r)
	sub := r.Subscribe(1024)
	defer sub.Close()

	podUID, id := cgrouptest.PodUID(), cgrouptest.ContainerID()
	d := cgrouptest.New(t, cgrouptest.KubeletPath(cgroup.DriverSystemd, cgroup.RuntimeContainerd, cgroup.QoSBurstable, podUID, id))
	ev := nextEvent(t, sub, d.ID)
	want := cgroup.Event{Op: cgroup.Created, ID: d.ID, Info: cgroup.Parse(d.Rel)}
	if ev != want || !ev.Info.IsContainer || ev.Info.PodUID != podUID {
		t.Errorf("create: got %+v, want %+v", ev, want)
	}
	if got, ok := r.Cgroups()[d.ID]; !ok || got != want.Info {
		t.Errorf("Cgroups()[%d] = %+v, %v; want %+v", d.ID, got, ok, want.Info)
	}

	d.Remove()
	ev = nextEvent(t, sub, d.ID)
	if want.Op = cgroup.Removed; ev != want {
		t.Errorf("remove: got %+v, want %+v", ev, want)
	}
	if _, ok := r.Cgroups()[d.ID]; ok {
		t.Errorf("Cgroups() still has removed cgroup %d", d.ID)
	}
	if sub.Dropped() != 0 {
		t.Errorf("Dropped() = %d with a roomy buffer", sub.Dropped())
	}
}

// A subscriber that does not keep up loses events rather than stall the
// resolver; it is told so, and the loss is counted.
func TestSubscribeDropsWhenFull(t *testing.T) {
	r := newResolver(t, cgroup.Options{ResyncInterval: -1})
	run(t, r)
	sub := r.Subscribe(1)
	defer sub.Close()
	if st := r.Stats(); st.Subscribers != 1 {
		t.Fatalf("Stats().Subscribers = %d, want 1", st.Subscribers)
	}

	var dirs []*cgrouptest.Dir
	for range 3 {
		dirs = append(dirs, cgrouptest.New(t, "errnowatch-subscribe.slice/"+cgrouptest.ContainerID()))
	}
	// The resolver goes on: it learns of all three while nobody reads.
	for _, d := range dirs {
		known(t, r, d.ID, d.Rel)
	}
	eventually(t, "two events dropped", func() bool { return sub.Dropped() >= 2 })
	select {
	case <-sub.Lost():
	default:
		t.Error("Lost() not signalled after drops")
	}
	if n := len(sub.Events()); n != 1 {
		t.Errorf("%d events queued, want the buffer's 1", n)
	}
	if st := r.Stats(); st.EventDrops != sub.Dropped() {
		t.Errorf("Stats().EventDrops = %d, subscription dropped %d", st.EventDrops, sub.Dropped())
	}

	sub.Close()
	if st := r.Stats(); st.Subscribers != 0 {
		t.Errorf("Stats().Subscribers = %d after Close, want 0", st.Subscribers)
	}
	<-sub.Events()
	late := cgrouptest.New(t, "errnowatch-subscribe.slice/"+cgrouptest.ContainerID())
	known(t, r, late.ID, late.Rel)
	if n := len(sub.Events()); n != 0 {
		t.Errorf("%d events delivered after Close", n)
	}
}
