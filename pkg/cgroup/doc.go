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
// /proc/<pid>/cgroup and cgroupfs show them. It finds the kubepods part of the
// path wherever it sits, so nested and kind setups parse too.
package cgroup
