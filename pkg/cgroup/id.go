package cgroup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// fileidKernfs is the handle type (FILEID_KERNFS in the kernel's
// include/linux/exportfs.h) of a kernfs node: its 8 bytes are the node's
// 64-bit id, which for a cgroup is what bpf_get_current_cgroup_id returns.
const fileidKernfs = 0xfe

// ErrNotCgroup says that a path is not a directory of a cgroup hierarchy.
var ErrNotCgroup = errors.New("not a cgroup directory")

// ID returns the cgroup v2 id of the cgroup directory at dir (an absolute
// path below the v2 mount), the id the sensor sees in the kernel.
//
// It uses name_to_handle_at rather than stat: the handle carries the full
// 64-bit kernfs id on every architecture, while st_ino matches it only on
// 64-bit kernels.
func ID(dir string) (uint64, error) {
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, dir, 0)
	if errors.Is(err, unix.EOPNOTSUPP) {
		// A filesystem without file handles, such as proc or sysfs.
		return 0, fmt.Errorf("cgroup id of %s: %w: pass a directory below the cgroup v2 mount", dir, ErrNotCgroup)
	}
	if err != nil {
		return 0, fmt.Errorf("cgroup id of %s: %w", dir, &os.PathError{Op: "name_to_handle_at", Path: dir, Err: err})
	}
	if h.Type() != fileidKernfs || len(h.Bytes()) != 8 {
		return 0, fmt.Errorf("cgroup id of %s: %w (handle type %#x): pass a directory below the cgroup v2 mount", dir, ErrNotCgroup, h.Type())
	}
	return binary.NativeEndian.Uint64(h.Bytes()), nil
}

// openByID opens the cgroup directory whose id is id, on the hierarchy that
// mountFD is a directory of, and returns its absolute path. The returned error
// wraps unix.ESTALE when no such cgroup exists (any more), and unix.EPERM when
// this process lacks CAP_DAC_READ_SEARCH.
func openByID(mountFD int, id uint64) (string, error) {
	b := make([]byte, 8)
	binary.NativeEndian.PutUint64(b, id)
	fd, err := unix.OpenByHandleAt(mountFD, unix.NewFileHandle(fileidKernfs, b), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return "", fmt.Errorf("open_by_handle_at cgroup %d: %w", id, err)
	}
	defer unix.Close(fd)
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", fmt.Errorf("read path of cgroup %d: %w", id, err)
	}
	// Removed between the open and the readlink.
	if strings.HasSuffix(p, " (deleted)") {
		return "", fmt.Errorf("cgroup %d: %w", id, unix.ESTALE)
	}
	return p, nil
}
