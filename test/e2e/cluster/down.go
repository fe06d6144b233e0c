package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Down stops the node and removes everything it made. It goes on past
// errors, so a half-started or half-dead node is cleaned up too, and returns
// them joined.
func (c *Cluster) Down() error {
	var errs []error
	c.drainPods()
	for _, name := range []string{KubeProxy, Kubelet, DNS} {
		errs = append(errs, c.Stop(name))
	}
	// What the pods left running: their processes, then containerd's shims.
	killWhere(func(pid int) bool { return inKubepods(pid) })
	sock := c.ContainerdSocket()
	killWhere(func(pid int) bool {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return strings.Contains(string(cmd), "containerd-shim") && strings.Contains(string(cmd), sock)
	})
	for _, name := range []string{Containerd, Scheduler, ControllerManager, APIServer, Etcd} {
		errs = append(errs, c.Stop(name))
	}
	errs = append(errs, c.unmountAll())
	errs = append(errs, removeKubepodsCgroups())
	errs = append(errs, c.cleanNetwork())
	if c.IPForward != "" {
		errs = append(errs, os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte(c.IPForward), 0o644))
	}
	if err := os.RemoveAll(c.cfg.Dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", c.cfg.Dir, err))
	}
	c.logf("down")
	return errors.Join(errs...)
}

// drainPods deletes every pod while the API server and kubelet still run, so
// the kubelet stops each sandbox through CRI and the CNI plugin releases its
// address and iptables rules the proper way. Bounded: a broken node is
// cleaned up by force after it.
func (c *Cluster) drainPods() {
	if c.Components[APIServer] == nil || !alive(c.Components[APIServer].PID) ||
		c.Components[Kubelet] == nil || !alive(c.Components[Kubelet].PID) {
		return
	}
	cs, err := c.Client()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	// DaemonSets and controllers would recreate pods: remove them first.
	background := metav1.DeletePropagationBackground
	for _, ns := range nss.Items {
		_ = cs.AppsV1().DaemonSets(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &background}, metav1.ListOptions{})
		_ = cs.AppsV1().StatefulSets(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &background}, metav1.ListOptions{})
		_ = cs.AppsV1().Deployments(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &background}, metav1.ListOptions{})
		_ = cs.AppsV1().ReplicaSets(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &background}, metav1.ListOptions{})
		_ = cs.BatchV1().Jobs(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &background}, metav1.ListOptions{})
	}
	zero := int64(0)
	for _, ns := range nss.Items {
		_ = cs.CoreV1().Pods(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero, PropagationPolicy: &background}, metav1.ListOptions{})
	}
	for ctx.Err() == nil {
		out, err := exec.CommandContext(ctx, "ctr", "--address", c.ContainerdSocket(), "-n", "k8s.io",
			"containers", "ls", "-q").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" {
			return
		}
		time.Sleep(time.Second)
	}
	c.logf("pods still running after 90 s; removing them by force")
}

// killWhere SIGKILLs every process match selects, and waits for them.
func killWhere(match func(pid int) bool) {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || !match(pid) {
			continue
		}
		pids = append(pids, pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for i := 0; i < 50 && slices.ContainsFunc(pids, alive); i++ {
		time.Sleep(100 * time.Millisecond)
	}
}

// inKubepods reports whether a process lives in a cgroup the kubelet made.
func inKubepods(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && strings.HasPrefix(parts[2], "/kubepods") {
			return true
		}
	}
	return false
}

// unmountAll detaches every mount below the node's directory (volumes,
// container root filesystems, shm) and the network namespaces containerd
// pinned for pod sandboxes, deepest first.
func (c *Cluster) unmountAll() error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var targets []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if strings.HasPrefix(mp, c.cfg.Dir+"/") {
			targets = append(targets, mp)
		}
	}
	// containerd 1.6 pins each sandbox's network namespace at
	// /var/run/netns/cni-<uuid>; only this node's containerd makes them here.
	netns, _ := filepath.Glob("/run/netns/cni-*")
	targets = append(targets, netns...)
	slices.SortFunc(targets, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, t := range targets {
		if err := syscall.Unmount(t, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", t, err))
		}
	}
	for _, n := range netns {
		_ = os.Remove(n)
	}
	return errors.Join(errs...)
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// removeKubepodsCgroups removes the kubelet's cgroup tree from every
// hierarchy (the v1 controllers and the v2 tree of a hybrid host), leaves
// first.
func removeKubepodsCgroups() error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var errs []error
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		sep := strings.Index(line, " - ")
		fields := strings.Fields(line)
		if sep < 0 || len(fields) < 5 {
			continue
		}
		fstype := strings.Fields(line[sep+3:])[0]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		root := filepath.Join(unescapeMount(fields[4]), "kubepods")
		if _, err := os.Stat(root); err != nil {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.Reverse(dirs)
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// cleanNetwork removes kube-proxy's iptables chains (its own --cleanup), the
// bridge plugin's masquerade chains of sandboxes that were never torn down,
// and the bridge.
func (c *Cluster) cleanNetwork() error {
	var errs []error
	if out, err := exec.Command(filepath.Join(c.cfg.BinDir, KubeProxy), "--cleanup").CombinedOutput(); err != nil {
		errs = append(errs, fmt.Errorf("kube-proxy --cleanup: %w: %s", err, out))
	}
	// What is left: the bridge plugin's CNI-<hash> masquerade chains of
	// sandboxes never torn down, and the kubelet's own KUBE-FIREWALL and
	// KUBE-KUBELET-CANARY chains.
	for _, cmd := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"nat", "filter", "mangle"} {
			removeChains(cmd, table)
		}
	}
	if _, err := os.Stat("/sys/class/net/" + bridgeName); err == nil {
		if out, err := exec.Command("ip", "link", "del", bridgeName).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip link del %s: %w: %s", bridgeName, err, out))
		}
	}
	return errors.Join(errs...)
}

// removeChains deletes the KUBE-* and CNI-* chains of a table and the jumps
// to them. Jumps are deleted by rule number: their comments (the bridge
// plugin's hold escaped quotes) do not survive a round trip through -S.
func removeChains(cmd, table string) {
	out, err := exec.Command(cmd, "-t", table, "-S").Output()
	if err != nil {
		return
	}
	ours := func(chain string) bool { return strings.HasPrefix(chain, "KUBE-") || strings.HasPrefix(chain, "CNI-") }
	var chains []string
	numbers := map[string][]int{} // chain -> numbers of its rules that jump to ours
	index := map[string]int{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "-N" && ours(f[1]):
			chains = append(chains, f[1])
		case len(f) >= 2 && f[0] == "-A":
			index[f[1]]++
			if !ours(f[1]) && len(f) >= 2 && ours(f[len(f)-1]) {
				numbers[f[1]] = append(numbers[f[1]], index[f[1]])
			}
		}
	}
	for chain, ns := range numbers {
		slices.Reverse(ns)
		for _, n := range ns {
			_ = exec.Command(cmd, "-t", table, "-D", chain, strconv.Itoa(n)).Run()
		}
	}
	for _, ch := range chains {
		_ = exec.Command(cmd, "-t", table, "-F", ch).Run()
	}
	for _, ch := range chains {
		_ = exec.Command(cmd, "-t", table, "-X", ch).Run()
	}
}
