package cgroup_test

import (
	"fmt"
	"testing"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"go.uber.org/zap"
)

// kubeletTree makes pods pods of 1 pod cgroup and 3 containers each, a
// node's worth of cgroups, and returns the ids of the containers.
func kubeletTree(b *testing.B, pods int) []uint64 {
	b.Helper()
	top := cgrouptest.New(b, "kubepods.slice/kubepods-burstable.slice")
	var ids []uint64
	for range pods {
		p := top.Mkdir("kubepods-burstable-pod" + cgrouptest.PodUID() + ".slice")
		for range 3 {
			ids = append(ids, p.Mkdir("cri-containerd-"+cgrouptest.ContainerID()+".scope").ID)
		}
	}
	return ids
}

// BenchmarkWalk walks the whole hierarchy (without watches) with N extra
// kubelet cgroups in it; the ns/op is the cost of a start or a resync.
func BenchmarkWalk(b *testing.B) {
	for _, pods := range []int{100, 500} {
		b.Run(fmt.Sprintf("cgroups=%d", pods*4), func(b *testing.B) {
			kubeletTree(b, pods)
			r, err := cgroup.NewResolver(cgroup.Options{Logger: zap.NewNop()})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			var n int
			for b.Loop() {
				if n, err = r.Walk(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n), "cgroups")
		})
	}
}

// BenchmarkNewResolver is the start: a walk that also sets a watch per cgroup.
func BenchmarkNewResolver(b *testing.B) {
	kubeletTree(b, 250)
	for b.Loop() {
		r, err := cgroup.NewResolver(cgroup.Options{Logger: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}

func BenchmarkLookupHit(b *testing.B) {
	ids := kubeletTree(b, 100)
	r, err := cgroup.NewResolver(cgroup.Options{Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	i := 0
	for b.Loop() {
		if _, ok := r.LookupInfo(ids[i%len(ids)]); !ok {
			b.Fatal("miss")
		}
		i++
	}
}

// BenchmarkLookupMissByHandle is the miss path for a cgroup made before its
// inotify event was handled: open_by_handle_at and a readlink.
func BenchmarkLookupMissByHandle(b *testing.B) {
	ids := kubeletTree(b, 10)
	r, err := cgroup.NewResolver(cgroup.Options{Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	i := 0
	for b.Loop() {
		id := ids[i%len(ids)]
		r.Forget(id)
		if _, ok := r.LookupInfo(id); !ok {
			b.Fatal("miss")
		}
		i++
	}
}

func BenchmarkParse(b *testing.B) {
	p := "/" + cgrouptest.KubeletPath("systemd", "containerd", "burstable", cgrouptest.PodUID(), cgrouptest.ContainerID())
	for b.Loop() {
		if !cgroup.Parse(p).IsContainer {
			b.Fatal("not a container")
		}
	}
}
