package cgroup

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Describe parses what a user gives `errnowatch debug cgroup`: a cgroup path
// ("/kubepods/..."), a line or the whole of a /proc/<pid>/cgroup file, or a
// directory below the v2 mount. It returns the parse and the cgroup's id on
// this host. mount "" finds the v2 mount. When the cgroup does not exist here
// the Info is still returned, with the error.
func Describe(arg, mount string) (Info, uint64, error) {
	if mount == "" {
		m, err := FindV2Mount()
		if err != nil {
			return Info{}, 0, err
		}
		mount = m
	}
	mount = filepath.Clean(mount)
	s := strings.TrimSpace(arg)
	// A directory below a mount at an unusual place (a hostPath such as
	// /host/cgroup) that Parse cannot recognise by itself.
	if rest, ok := strings.CutPrefix(s, mount); ok && (rest == "" || rest[0] == '/') {
		s = "/" + strings.TrimPrefix(rest, "/")
	}
	info := Parse(s)
	if info.Path == "" {
		return info, 0, fmt.Errorf("empty cgroup path: pass a path such as /kubepods/besteffort/pod<uid>/<id>, or a pid")
	}
	id, err := ID(filepath.Join(mount, info.Path))
	if err != nil {
		return info, 0, fmt.Errorf("cgroup %s is not on this host under %s: %w", info.Path, mount, err)
	}
	return info, id, nil
}

// DescribePID is Describe for the cgroup v2 cgroup of process pid.
func DescribePID(pid int, mount string) (Info, uint64, error) {
	p, err := PIDPath(pid)
	if err != nil {
		return Info{}, 0, err
	}
	return Describe(p, mount)
}

// PIDPath returns the cgroup v2 path of process pid, from the "0::" line of
// /proc/<pid>/cgroup: the cgroup whose id the sensor sees for it.
func PIDPath(pid int) (string, error) {
	file := "/proc/" + strconv.Itoa(pid) + "/cgroup"
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read cgroup of process %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("process %d has no cgroup v2 line in %s: %w", pid, file, ErrNoV2Mount)
}
