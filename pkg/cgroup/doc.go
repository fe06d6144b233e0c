// Package cgroup is the first half of enrichment: it turns the cgroup v2 id
// that the sensor reads in the kernel (bpf_get_current_cgroup_id) into the
// cgroup's path, and the path into what kubelet encoded in it: cgroup driver,
// container runtime, QoS class, pod UID and container ID. It hands an Info per
// cgroup to pkg/enrich, which joins it with the node's pods from pkg/kube.
//
// # Where the hierarchy is
//
// FindV2Mount reads /proc/self/mountinfo and picks the cgroup2 mount: the plain
// /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones.
//
// # Ids
//
// A cgroup v2 id is its kernfs node id. ID reads it from the directory's file
// handle (name_to_handle_at), not from st_ino: the handle of a kernfs
// directory always carries the full 64-bit id that the BPF helper returns,
// while st_ino only equals it on 64-bit kernels (32-bit ones put a generation
// in the upper half). The same handle opened with open_by_handle_at turns an
// id back into the directory, which is what makes a cache miss cheap.
//
// # Keeping id -> path current
//
// Resolver walks the whole v2 hierarchy once, then keeps its map current with
// inotify (fsnotify) watches on every cgroup directory, plus a miss path.
//
// inotify was chosen over the cgroup:cgroup_mkdir/cgroup_rmdir tracepoints
// because it needs no second BPF object, no second ring buffer and no coupling
// to the sensor's lifetime, and every cgroup is made and removed by mkdir and
// rmdir through the VFS, which is exactly what inotify reports. Its costs are
// one watch per cgroup directory (about 1 KiB of kernel memory each, counted
// against fs.inotify.max_user_watches; a busy node has a few thousand cgroups)
// and some noise: kernfs reports changes to files such as cgroup.events and
// memory.events as writes in the watched directory, and fsnotify has no way to
// ask for directory events only. A queue overflow, or a watch the kernel
// refuses, is not a correctness problem, only a cost: an overflow triggers a
// full re-walk, and the miss path covers cgroups the watches did not see.
//
// The miss path exists because a process can fail a syscall in a cgroup
// created microseconds ago, before its inotify event has been handled. On a
// miss, Lookup opens the cgroup by its id (open_by_handle_at with a kernfs file
// handle, which needs CAP_DAC_READ_SEARCH, as the agent has) and reads the
// path back from /proc/self/fd: one exact, O(1) lookup instead of a walk. Where
// that is not allowed it falls back to a full walk, at most once per
// Options.MinRescanInterval. Ids that resolve to nothing go into a bounded
// negative cache: cgroup ids are never reused, so a dead id stays dead and is
// not worth a second syscall.
//
// # Subscribers
//
// Subscribe hands the resolver's create and remove events to other stages
// (the enricher's scope follows pod cgroups this way), so a node carries one
// set of inotify watches. Delivery never blocks the resolver: each
// subscription has a bounded queue, and an event it has no room for is
// dropped, counted (Subscription.Dropped, Stats.EventDrops) and signalled
// on Lost, after which the subscriber reads the whole map again (Cgroups).
//
// Removed cgroups stay resolvable for Options.Grace (60 s by default, at most
// Options.MaxRemoved of them) because sampled records and counts for a cgroup
// keep arriving after it is gone.
//
// cgroup v2 refuses to rename a cgroup (rename(2) fails with EPERM), so a
// cgroup's id and path are tied for its whole life, and create and remove
// events are all there is to follow.
//
// # Paths
//
// Parse understands the layouts kubelet produces with the systemd and cgroupfs
// drivers under containerd, CRI-O and Docker (cri-dockerd), in the forms
// /proc/<pid>/cgroup and cgroupfs show them: a path, a line of either
// hierarchy ("0::/...", "12:memory:/..."), a whole file, or a cgroupfs
// directory. It finds the kubepods part of the path wherever it sits, so
// kind, minikube, EKS Fargate (kubepods below the ECS task) and other nested
// setups parse too; when a kubepods tree holds no pod but a deeper one does
// (a --cgroup-root below another kubepods), the deeper one counts. Beyond
// the plain layouts it reads:
//
//   - runc's "slice:prefix:id" names under containerd.service or at the root
//     (containerd's SystemdCgroup on cgroup v1, Kata, k3s), also with the
//     colons escaped as a shell pastes them ("\:");
//   - container leaves with the runtime prefix and no ".scope", and bare ids
//     under either driver;
//   - the slices of kubelets before 1.6 (BestEffort.slice/BestEffort-pod...),
//     with Docker below docker.service;
//   - cgroupfs paths relative to a cgroup namespace ("/../../pod<uid>/<id>"),
//     whose QoS level is cut off, so QoS is "";
//   - container ids of 64 hex digits, shortened ones after a runtime prefix,
//     and UUIDs;
//   - CRI-O's conmon and Kata's kata_<id> sandbox, which are in the pod but no
//     container's.
//
// testdata/field-paths.tsv is the corpus of real paths, each with its source,
// that the tests and the fuzzer's seeds are made of.
package cgroup
