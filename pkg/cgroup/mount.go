package cgroup

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Where distributions mount the v2 hierarchy: unified hosts at the top,
// hybrid (systemd's default before v2-only) below it.
const (
	unifiedMount = "/sys/fs/cgroup"
	hybridMount  = "/sys/fs/cgroup/unified"
)

// ErrNoV2Mount says that this mount namespace has no cgroup2 mount.
var ErrNoV2Mount = errors.New("no cgroup v2 (cgroup2) mount in /proc/self/mountinfo: " +
	"errnowatch needs the unified hierarchy; on a hybrid host mount it with " +
	"'mount -t cgroup2 none /sys/fs/cgroup/unified', or boot with systemd.unified_cgroup_hierarchy=1; " +
	"in a pod, mount the host's /sys/fs/cgroup with a hostPath volume")

// FindV2Mount returns where the cgroup v2 hierarchy is mounted in this mount
// namespace: /sys/fs/cgroup, else /sys/fs/cgroup/unified, else the first
// other cgroup2 mount.
func FindV2Mount() (string, error) {
	mounts, err := procfs.GetMounts()
	if err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	return pickV2Mount(mounts)
}

func pickV2Mount(mounts []*procfs.MountInfo) (string, error) {
	// A later mount on the same mount point hides an earlier one (a tmpfs
	// mounted over a cgroup2 /sys/fs/cgroup), and mountinfo lists mounts in
	// the order they were made.
	top := map[string]string{}
	var order []string
	for _, m := range mounts {
		if _, seen := top[m.MountPoint]; !seen {
			order = append(order, m.MountPoint)
		}
		top[m.MountPoint] = m.FSType
	}
	var found []string
	for _, mp := range order {
		if top[mp] == "cgroup2" {
			found = append(found, mp)
		}
	}
	for _, want := range []string{unifiedMount, hybridMount} {
		for _, mp := range found {
			if mp == want {
				return mp, nil
			}
		}
	}
	if len(found) > 0 {
		return found[0], nil
	}
	return "", ErrNoV2Mount
}

// V2Under returns the cgroup v2 hierarchy at or below root: root itself on a
// unified host, root/unified on a hybrid one. The agent is given the host's
// /sys/fs/cgroup through a hostPath volume and does not know which it is.
func V2Under(root string) (string, error) {
	for _, dir := range []string{root, filepath.Join(root, "unified")} {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return dir, nil
		}
	}
	return "", fmt.Errorf("neither %s nor %s/unified is a cgroup v2 mount: mount the host's /sys/fs/cgroup there (the chart does, read-only)", root, root)
}
