package cgroup

import (
	"path"
	"strings"
)

// Cgroup drivers, container runtimes and QoS classes as Info reports them.
const (
	DriverSystemd  = "systemd"
	DriverCgroupfs = "cgroupfs"

	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "crio"
	RuntimeDocker     = "docker"
	// RuntimeKata is reported for the kata_<sandbox> cgroup that Kata
	// Containers makes for a pod's VM: in the pod, but no one container's.
	RuntimeKata = "kata"

	QoSGuaranteed = "guaranteed"
	QoSBurstable  = "burstable"
	QoSBestEffort = "besteffort"
)

// Info is what a cgroup path says about the workload in it.
type Info struct {
	// Path is the cgroup v2 path relative to the hierarchy's root, as
	// /proc/<pid>/cgroup shows it ("/kubepods/besteffort/pod<uid>/<id>"),
	// or "" for empty input.
	Path string
	// Driver is the kubelet cgroup driver that made the path: "systemd",
	// "cgroupfs", or "" outside kubepods.
	Driver string
	// Runtime is "containerd", "crio" or "docker" when the path names it.
	// cgroupfs paths of containerd and Docker are a bare id: "" there.
	Runtime string
	// QoS is the pod's QoS class: "guaranteed", "burstable", "besteffort",
	// or "" when the path is not in (or below) a pod or QoS cgroup, or when
	// it is relative to a cgroup namespace and the cgroupfs levels that
	// name the class are cut off ("/../../pod<uid>/<id>").
	QoS string
	// PodUID is the pod's UID in its canonical form (dashes, as the API
	// shows it), or the 32-hex hash that kubelet gives static pods.
	PodUID string
	// ContainerID is the container's bare id, as in pod status after the
	// "<runtime>://" prefix: mostly 64 hex digits, but sandboxed runtimes
	// and some managed nodes use UUIDs.
	ContainerID string
	// IsContainer is true when the path is a container's cgroup or below one.
	IsContainer bool
	// InPod is true when the path is a pod's cgroup or below one. A pod's own
	// cgroup, CRI-O's conmon and unknown children of a pod are in the pod but
	// not a container.
	InPod bool
}

// v1Dirs are the directories below /sys/fs/cgroup that hold a hierarchy
// rather than a cgroup, so a cgroupfs directory path parses like the path
// /proc/<pid>/cgroup shows.
var v1Dirs = map[string]bool{
	"unified": true, "systemd": true, "cpu": true, "cpuacct": true, "cpu,cpuacct": true,
	"cpuset": true, "memory": true, "devices": true, "freezer": true, "net_cls": true,
	"net_prio": true, "net_cls,net_prio": true, "blkio": true, "perf_event": true,
	"hugetlb": true, "pids": true, "rdma": true, "misc": true,
}

// runtimeOfPrefix maps the prefixes that runtimes put before a container id.
var runtimeOfPrefix = map[string]string{
	"cri-containerd": RuntimeContainerd,
	"crio":           RuntimeCRIO,
	"crio-conmon":    RuntimeCRIO,
	"docker":         RuntimeDocker,
}

// Parse reads what kubelet encoded in a cgroup path. It accepts the path as
// /proc/<pid>/cgroup shows it ("/kubepods/..."), a whole line of that file
// ("0::/kubepods/...", "5:memory:/kubepods/..."), the whole file (the v2 "0::"
// line is preferred, since that is the cgroup the sensor sees; a v1 line is
// used only when it is in a pod and the v2 line is not), or a cgroupfs
// directory ("/sys/fs/cgroup/unified/kubepods/..."). It never fails: a path
// outside kubepods gives an Info with only Path set.
//
// The kubepods part is found wherever it is in the path, so kubelets whose
// tree sits below a prefix (kind's /kubelet.slice/kubelet-kubepods.slice, a
// node running in a container) parse too. When kubepods trees are nested (a
// kind node running as a pod), the outermost pod wins, because that is the
// pod the node's API server knows.
func Parse(s string) Info {
	if strings.Contains(s, "\n") {
		return parseFile(s)
	}
	info := Info{Path: normalize(s)}
	if info.Path == "" {
		return info
	}
	comps := strings.Split(strings.TrimPrefix(info.Path, "/"), "/")
	// The first kubepods tree that holds a pod wins. A kubepods tree
	// without one (a kubelet whose --cgroup-root is itself below a kubepods
	// directory, as in /kubepods/kubepods/besteffort/pod<uid>/...) only
	// counts when no deeper tree names a pod.
	outer, found := info, false
	for i := range comps {
		try := Info{Path: info.Path}
		if !parseCgroupfs(comps[i:], &try) && !parseSystemd(comps[i:], &try) && (i > 0 || !parseNamespaced(comps, &try)) {
			continue
		}
		if try.InPod {
			return try
		}
		if !found {
			outer, found = try, true
		}
	}
	return outer
}

// parseFile picks the line of a /proc/<pid>/cgroup file to parse.
func parseFile(s string) Info {
	var v2, firstV1InPod, first *Info
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		info := Parse(line)
		if first == nil {
			first = &info
		}
		switch {
		case strings.HasPrefix(line, "0::"):
			if v2 == nil {
				v2 = &info
			}
		case isProcLine(line) && info.InPod && firstV1InPod == nil:
			firstV1InPod = &info
		}
	}
	switch {
	case v2 != nil && (v2.InPod || firstV1InPod == nil):
		return *v2
	case firstV1InPod != nil:
		return *firstV1InPod
	case first != nil:
		return *first
	}
	return Info{}
}

// normalize turns one line of input into a clean path relative to the
// hierarchy's root. It repeats until nothing changes so that Parse of a Path
// that Parse returned gives the same Info.
func normalize(s string) string {
	for {
		n := normalizeOnce(s)
		if n == s {
			return n
		}
		s = n
	}
}

func normalizeOnce(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	// A shell quotes the colons of containerd's systemd names
	// ("kubepods-...slice\:cri-containerd\:<id>") when one is copied from a
	// completion or `ls` output; cgroup names never hold a backslash.
	s = strings.ReplaceAll(s, `\:`, ":")
	if p, ok := procLinePath(s); ok {
		s = p
	}
	// A cgroupfs directory, possibly below a host mount such as
	// /host/sys/fs/cgroup: keep what follows the mount point.
	if i := strings.LastIndex(s, "/sys/fs/cgroup"); i >= 0 {
		rest := s[i+len("/sys/fs/cgroup"):]
		if rest == "" || rest[0] == '/' {
			rest = strings.TrimPrefix(rest, "/")
			first, after, _ := strings.Cut(rest, "/")
			if v1Dirs[first] {
				rest = after
			}
			s = "/" + rest
		}
	}
	if s[0] != '/' {
		s = "/" + s
	}
	return path.Clean(s)
}

// parseCgroupfs parses comps if they start with the cgroupfs driver's
// "kubepods" directory: kubepods[/besteffort|/burstable][/pod<uid>[/<container>]].
func parseCgroupfs(comps []string, info *Info) bool {
	if comps[0] != "kubepods" {
		return false
	}
	info.Driver = DriverCgroupfs
	rest := comps[1:]
	qos := ""
	if len(rest) > 0 && (rest[0] == QoSBestEffort || rest[0] == QoSBurstable) {
		qos = rest[0]
		rest = rest[1:]
	}
	info.QoS = qos
	if len(rest) == 0 {
		return true
	}
	uid, ok := strings.CutPrefix(rest[0], "pod")
	if !ok || !validPodUID(uid) {
		return true
	}
	setPod(info, uid, qos)
	if len(rest) > 1 {
		parseContainer(rest[1], info)
	}
	return true
}

// parseNamespaced parses a path seen from inside a cgroup namespace, where
// the kernel shows the cgroups of other namespaces relative to the viewer's
// root ("/../../pod<uid>/<id>" once cleaned is "/pod<uid>/<id>"), so that
// only the cgroupfs pod level and what is below it are left. Which QoS
// class the pod has is in the part that is cut off.
func parseNamespaced(comps []string, info *Info) bool {
	uid, ok := strings.CutPrefix(comps[0], "pod")
	if !ok || !validPodUID(uid) {
		return false
	}
	info.Driver = DriverCgroupfs
	info.PodUID = uid
	info.InPod = true
	if len(comps) > 1 {
		parseContainer(comps[1], info)
	}
	return true
}

// parseSystemd parses comps if they start with a systemd slice of kubelet's:
// kubepods.slice[/kubepods-<qos>.slice][/kubepods-<qos>-pod<uid>.slice[/<scope>]],
// where any of the leading slices may be missing because the tree is below
// another unit, and the pod slice may be runc's "slice:prefix:id" form.
func parseSystemd(comps []string, info *Info) bool {
	rest := comps
	matched := false
	if kind, _, _ := kubeSlice(rest[0]); kind == sliceRoot {
		matched = true
		rest = rest[1:]
	}
	if len(rest) > 0 {
		if kind, qos, _ := kubeSlice(rest[0]); kind == sliceQoS {
			matched = true
			info.QoS = qos
			rest = rest[1:]
		}
	}
	if len(rest) > 0 {
		if kind, qos, uid := kubeSlice(rest[0]); kind == slicePod {
			matched = true
			setPod(info, uid, qos)
			if len(rest) > 1 {
				parseContainer(rest[1], info)
			}
		} else if runtime, qos, uid, id, ok := runcSliceName(rest[0]); ok {
			matched = true
			setPod(info, uid, qos)
			info.Runtime = runtime
			info.ContainerID = id
			info.IsContainer = true
		}
	}
	if matched {
		info.Driver = DriverSystemd
	}
	return matched
}

const (
	sliceRoot = 1 + iota
	sliceQoS
	slicePod
)

// kubeSlice reads a slice name of kubelet's systemd driver. Kubelet names
// each level after its parent: [<cgroup-root>-]kubepods[-<qos>][-pod<uid>].slice,
// where the UID's dashes become underscores because a dash separates levels.
// The cgroup root is "kubelet" under kind.
func kubeSlice(c string) (kind int, qos, uid string) {
	name, ok := strings.CutSuffix(c, ".slice")
	if !ok {
		return 0, "", ""
	}
	if kind, qos, uid := oldKubeSlice(name); kind != 0 {
		return kind, qos, uid
	}
	i := strings.LastIndex(name, "kubepods")
	if i < 0 || (i > 0 && name[i-1] != '-') {
		return 0, "", ""
	}
	tail := name[i+len("kubepods"):]
	if tail == "" {
		return sliceRoot, "", ""
	}
	tail, ok = strings.CutPrefix(tail, "-")
	if !ok {
		return 0, "", ""
	}
	for _, q := range []string{QoSBestEffort, QoSBurstable} {
		if tail == q {
			return sliceQoS, q, ""
		}
		if rest, ok := strings.CutPrefix(tail, q+"-"); ok {
			qos, tail = q, rest
			break
		}
	}
	if u, ok := strings.CutPrefix(tail, "pod"); ok {
		if u = unescapeUID(u); validPodUID(u) {
			return slicePod, qos, u
		}
	}
	return 0, "", ""
}

// oldKubeSlice reads the slice names of kubelets before 1.6, whose QoS
// cgroups were not below a kubepods slice and were spelt with capitals:
// BestEffort.slice/BestEffort-pod<uid>.slice (and Burstable), often below
// docker.service when Docker ran with the cgroupfs driver.
func oldKubeSlice(name string) (kind int, qos, uid string) {
	for _, l := range [...]struct{ q, level string }{{"BestEffort", QoSBestEffort}, {"Burstable", QoSBurstable}} {
		q, level := l.q, l.level
		if name == q {
			return sliceQoS, level, ""
		}
		if u, ok := strings.CutPrefix(name, q+"-pod"); ok {
			if u = unescapeUID(u); validPodUID(u) {
				return slicePod, level, u
			}
		}
	}
	return 0, "", ""
}

// runcSliceName reads the directory that runc's fs driver makes when asked
// for a systemd-style "slice:prefix:name" cgroup it cannot hand to systemd
// (containerd in a container, k3s, nested setups): it becomes one directory
// name below runc's own cgroup, as in
// /system.slice/containerd.service/kubepods-burstable-pod<uid>.slice:cri-containerd:<id>.
func runcSliceName(c string) (runtime, qos, uid, id string, ok bool) {
	slice, rest, ok1 := strings.Cut(c, ":")
	prefix, id, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || !validContainerID(id) {
		return "", "", "", "", false
	}
	runtime = runtimeOfPrefix[prefix]
	kind, qos, uid := kubeSlice(slice)
	if kind != slicePod || runtime == "" || prefix == "crio-conmon" {
		return "", "", "", "", false
	}
	return runtime, qos, uid, id, true
}
func setPod(info *Info, uid, qos string) {
	if qos == "" {
		// Guaranteed pods sit directly below kubepods: there is no QoS level.
		qos = QoSGuaranteed
	}
	info.QoS = qos
	info.PodUID = uid
	info.InPod = true
}

// parseContainer reads the child of a pod cgroup. Anything below it (crun's
// "container" subgroup, cgroups that a container made itself) belongs to the
// same container, so only this one component matters.
//
// The same names turn up under both drivers: a systemd scope
// ("cri-containerd-<id>.scope"), the same name without ".scope" (runc's fs
// driver given a systemd-style parent, containerd in a container), and a
// bare id (containerd and Docker under cgroupfs, Docker under an old
// kubelet's systemd slices).
func parseContainer(c string, info *Info) {
	name := strings.TrimSuffix(c, ".scope")
	if validBareID(name) {
		// The bare id does not say which runtime made it.
		info.ContainerID = name
		info.IsContainer = true
		return
	}
	if id, ok := strings.CutPrefix(name, "kata_"); ok && validContainerID(id) {
		// Kata's cgroup for the pod's VM (sandbox_cgroup_only=false): it
		// runs every container of the pod, so it is none of them.
		info.Runtime = RuntimeKata
		return
	}
	// crio-conmon before crio: it is the longer prefix of the two.
	for _, prefix := range []string{"cri-containerd", "crio-conmon", "crio", "docker"} {
		id, ok := strings.CutPrefix(name, prefix+"-")
		if !ok {
			continue
		}
		if !validContainerID(id) {
			return
		}
		info.Runtime = runtimeOfPrefix[prefix]
		if prefix == "crio-conmon" {
			// CRI-O's monitor process for the container: in the pod,
			// but its syscalls are not the container's.
			return
		}
		info.ContainerID = id
		info.IsContainer = true
		return
	}
}

func unescapeUID(s string) string { return strings.ReplaceAll(s, "_", "-") }

// validPodUID keeps "podcast"-like names from parsing as pods: kubelet's UIDs
// are UUIDs, or 32 hex digits (an MD5) for static pods.
func validPodUID(uid string) bool {
	switch len(uid) {
	case 32:
		return isHex(uid)
	case 36:
		for i := range len(uid) {
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if uid[i] != '-' {
					return false
				}
			} else if !isHexByte(uid[i]) {
				return false
			}
		}
		return true
	}
	return false
}

// validContainerID accepts the ids the runtimes use after a prefix such as
// "cri-containerd-": 64 lowercase hex digits, a shortened form of them, or a
// UUID.
func validContainerID(id string) bool {
	return len(id) >= 12 && len(id) <= 128 && isLowerHex(id) || isLowerUUID(id)
}

// validBareID accepts a container cgroup named by its id alone. It is
// stricter than validContainerID, because a bare name has no prefix to say
// it is a container: a full 64-hex id, or a UUID.
func validBareID(id string) bool {
	return len(id) == 64 && isLowerHex(id) || isLowerUUID(id)
}

// isLowerUUID tells whether s is a UUID in lowercase canonical form.
func isLowerUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		switch c := s[i]; {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case !('0' <= c && c <= '9' || 'a' <= c && c <= 'f'):
			return false
		}
	}
	return true
}

func isHexByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isHex(s string) bool {
	for i := range len(s) {
		if !isHexByte(s[i]) {
			return false
		}
	}
	return true
}

func isLowerHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// procLinePath returns the path of a /proc/<pid>/cgroup line: hierarchy id,
// controllers ("" for v2, "memory", "name=systemd", "cpu,cpuacct"), path.
func procLinePath(line string) (string, bool) {
	hier, rest, ok := strings.Cut(line, ":")
	if !ok || hier == "" || strings.TrimLeft(hier, "0123456789") != "" {
		return "", false
	}
	controllers, p, ok := strings.Cut(rest, ":")
	if !ok || strings.Contains(controllers, "/") || !strings.HasPrefix(p, "/") {
		return "", false
	}
	return p, true
}

func isProcLine(line string) bool {
	_, ok := procLinePath(line)
	return ok
}

// ContainerIDFromStatus splits a container ID as pod status shows it
// ("containerd://<id>", "cri-o://<id>", "docker://<id>") into the runtime, in
// Info's spelling, and the bare id that Info.ContainerID holds. An unknown
// scheme is returned as is; a string without one is returned as the id.
func ContainerIDFromStatus(s string) (runtime, id string) {
	scheme, id, ok := strings.Cut(s, "://")
	if !ok {
		return "", s
	}
	switch scheme {
	case "containerd":
		return RuntimeContainerd, id
	case "cri-o", "crio":
		return RuntimeCRIO, id
	case "docker":
		return RuntimeDocker, id
	}
	return scheme, id
}
