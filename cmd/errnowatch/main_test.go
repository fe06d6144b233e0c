package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/test/attacks"
)

// The command tests run the real binary, as a user would.
var binary string

func TestMain(m *testing.M) {
	attacks.Main() // when this process is an attack child, it runs and exits here
	if isFuzzWorker() {
		// Fuzz workers run only fuzz targets, which need no binary.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "errnowatch-cmd")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "errnowatch")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("build errnowatch: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// bpfProgramsOf lists the BPF programs a process holds open, from its
// fdinfo: exactly its own, whatever else runs on the machine (other test
// packages load sensors at the same time).
func bpfProgramsOf(t *testing.T, pid int) []ebpf.ProgramID {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	var ids []ebpf.ProgramID
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
					ids = append(ids, ebpf.ProgramID(n))
				}
			}
		}
	}
	return ids
}

// waitForPrograms polls until the process holds at least one BPF program.
func waitForPrograms(t *testing.T, pid int, timeout time.Duration) []ebpf.ProgramID {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if ids := bpfProgramsOf(t, pid); len(ids) > 0 || time.Now().After(deadline) {
			return ids
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stillLoaded returns the programs of ids that still exist: after the
// process that held them exited, only a pin (or a leak) keeps one. The kernel
// frees programs after an RCU grace period, so it waits a little.
func stillLoaded(ids []ebpf.ProgramID) []ebpf.ProgramID {
	var left []ebpf.ProgramID
	for i := 0; i < 20; i++ {
		left = left[:0]
		for _, id := range ids {
			if p, err := ebpf.NewProgramFromID(id); err == nil {
				p.Close()
				left = append(left, id)
			}
		}
		if len(left) == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return left
}

// failIn runs a shell in cg that makes n failing chdir calls (and, as any
// program does when it starts, a few failing openat calls of its loader).
func failIn(t *testing.T, cg *cgrouptest.Dir, n int) {
	t.Helper()
	script := "i=0; while [ $i -lt " + strconv.Itoa(n) + " ]; do cd /nonexistent/errnowatch-cmd-test 2>/dev/null; i=$((i+1)); done"
	if err := cg.Run(exec.Command("/bin/sh", "-c", script)); err != nil {
		t.Fatalf("shell loop: %v", err)
	}
}

func TestTopJSONCountsExactly(t *testing.T) {
	cg := cgrouptest.New(t, "ew-cmd-top")
	cmd := exec.Command(binary, "top", "-o", "json", "--interval", "500ms", "--count", "6",
		"--cgroup", strconv.FormatUint(cg.ID, 10), "--errno", "ENOENT", "--syscall", "chdir", "--log-level", "error")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() { // the first interval: the sensor is attached
		t.Fatalf("top printed nothing: %v", cmd.Wait())
	}
	failIn(t, cg, 30)
	var counted uint64
	lines := 1
	for sc.Scan() {
		lines++
		var iv struct {
			Start, End time.Time
			Rows       []map[string]any
			Dropped    map[string]uint64
		}
		if err := json.Unmarshal(sc.Bytes(), &iv); err != nil {
			t.Fatalf("line %d is not an interval object: %v: %s", lines, err, sc.Text())
		}
		if !iv.End.After(iv.Start) || iv.Dropped == nil {
			t.Errorf("interval %s: want start < end and a dropped object", sc.Text())
		}
		for _, r := range iv.Rows {
			if r["syscall"] != "chdir" || r["errno"] != "ENOENT" || r["cgroup_id"] != float64(cg.ID) ||
				r["cgroup_path"] != cg.Rel {
				t.Errorf("row %v outside the filter (cgroup %d %s, chdir, ENOENT)", r, cg.ID, cg.Rel)
			}
			counted += uint64(r["count"].(float64))
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("top --count 6: %v", err)
	}
	if lines != 6 {
		t.Errorf("top --count 6 printed %d intervals", lines)
	}
	if counted != 30 {
		t.Errorf("counted %d failed chdir calls, made 30", counted)
	}
}

func TestTraceJSONAndCleanDetachOnSIGTERM(t *testing.T) {
	cg := cgrouptest.New(t, "ew-cmd-trace")
	cmd := exec.Command(binary, "trace", "-o", "json", "--cgroup", cg.Rel, "--comm", "sh", "--syscall", "chdir", "--log-level", "error")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The sensor attaches a moment after it starts: fail until it sees us.
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var line string
	deadline := time.After(20 * time.Second)
	for line == "" {
		failIn(t, cg, 1)
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("trace printed nothing: %v", cmd.Wait())
			}
			line = l
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("trace printed no record in 20 s")
		}
	}
	go func() {
		for range lines {
		}
	}()
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("trace line is not JSON: %v: %s", err, line)
	}
	for _, k := range []string{"time", "pid", "tid", "comm", "uid", "cgroup_id", "cgroup_path", "syscall", "syscall_nr", "compat", "ret", "errno"} {
		if _, ok := rec[k]; !ok {
			t.Errorf("trace record has no %q: %s", k, line)
		}
	}
	if _, ok := rec["duration_ns"]; ok {
		t.Errorf("duration_ns outside duration mode: %s", line)
	}
	if rec["comm"] != "sh" || rec["cgroup_path"] != cg.Rel || rec["syscall"] != "chdir" || rec["errno"] != "ENOENT" || rec["ret"] != float64(-2) {
		t.Errorf("record %s: want comm sh, cgroup %s, chdir ENOENT, ret -2", line, cg.Rel)
	}

	progs := bpfProgramsOf(t, cmd.Process.Pid)
	if len(progs) == 0 {
		t.Fatal("trace holds no BPF program while tracing")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("trace after SIGTERM: %v, want a clean exit", err)
	}
	if left := stillLoaded(progs); len(left) > 0 {
		t.Errorf("programs %v of trace are still loaded after it exited (pinned?)", left)
	}
}

func TestUnknownNamesSuggest(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"trace", "--syscall", "opnat"}, `unknown syscall "opnat" (did you mean "openat"?)`},
		{[]string{"top", "--errno", "EACCESS"}, `unknown errno "EACCESS" (did you mean "EACCES"?)`},
		{[]string{"top", "-o", "yaml"}, `unknown output format "yaml"`},
		{[]string{"debug", "cgroup"}, "give either a cgroup PATH or --pid PID"},
		// A failed start closes what it opened and says why (it used to
		// panic on the agent it had already set to nil).
		{[]string{"agent", "--no-kubernetes", "--rules", "/nonexistent/errnowatch-rules"}, "load rules:"},
	} {
		out, err := exec.Command(binary, tc.args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "panic") {
			t.Errorf("errnowatch %v: %v, %q; want a failure saying %q", tc.args, err, out, tc.want)
		}
	}
}

func TestDebugCgroupJSON(t *testing.T) {
	uid, id := cgrouptest.PodUID(), cgrouptest.ContainerID()
	cg := cgrouptest.New(t, cgrouptest.KubeletPath("systemd", "containerd", "burstable", uid, id))
	sleep := exec.Command("/bin/sleep", "30")
	if err := cg.Start(sleep); err != nil {
		t.Fatal(err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	out, err := exec.Command(binary, "debug", "cgroup", "--pid", strconv.Itoa(sleep.Process.Pid), "-o", "json").Output()
	if err != nil {
		t.Fatalf("debug cgroup: %v", err)
	}
	var got debugCgroupJSON
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.CgroupID == nil || *got.CgroupID != cg.ID {
		t.Errorf("debug cgroup said cgroup_id %v, want %d", got.CgroupID, cg.ID)
	}
	got.CgroupID = nil
	want := debugCgroupJSON{Path: cg.Rel, Driver: "systemd", Runtime: "containerd", QoS: "burstable",
		PodUID: uid, ContainerID: id, IsContainer: true}
	if got != want {
		t.Errorf("debug cgroup said %+v, want %+v", got, want)
	}
}

func isFuzzWorker() bool {
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.fuzzworker") {
			return true
		}
	}
	return false
}

// A path copied from a log, a bug report or another node is explained
// even though its cgroup is not on this host: exit 0, what the path says,
// a null cgroup id and a note, in JSON and in the table.
func TestDebugCgroupNotOnHost(t *testing.T) {
	const (
		uid = "0125ec2f-b64a-4868-8f5b-94b56cbab864"
		cid = "ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459"
	)
	for _, tc := range []struct{ arg, path string }{
		// A containerd systemd name under containerd.service, as a cgroup
		// v1 line (open-telemetry/opentelemetry-java#4507).
		{"10:blkio:/system.slice/containerd.service/kubepods-besteffort-pod0125ec2f_b64a_4868_8f5b_94b56cbab864.slice:cri-containerd:" + cid,
			"/system.slice/containerd.service/kubepods-besteffort-pod0125ec2f_b64a_4868_8f5b_94b56cbab864.slice:cri-containerd:" + cid},
		// The same name pasted from a shell.
		{`/system.slice/containerd.service/kubepods-besteffort-pod0125ec2f_b64a_4868_8f5b_94b56cbab864.slice\:cri-containerd\:` + cid,
			"/system.slice/containerd.service/kubepods-besteffort-pod0125ec2f_b64a_4868_8f5b_94b56cbab864.slice:cri-containerd:" + cid},
	} {
		out, err := exec.Command(binary, "debug", "cgroup", tc.arg, "-o", "json").Output()
		if err != nil {
			t.Fatalf("debug cgroup -o json %q: %v, want exit 0", tc.arg, err)
		}
		var raw map[string]any
		if err := json.Unmarshal(out, &raw); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if v, ok := raw["cgroup_id"]; !ok || v != nil {
			t.Errorf("debug cgroup %q: cgroup_id %v (present %v), want null", tc.arg, v, ok)
		}
		var got debugCgroupJSON
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if !strings.Contains(got.Note, "not on this host") {
			t.Errorf("debug cgroup %q: note %q, want one saying the cgroup is not on this host", tc.arg, got.Note)
		}
		got.Note = ""
		want := debugCgroupJSON{Path: tc.path, Driver: "systemd", Runtime: "containerd", QoS: "besteffort",
			PodUID: uid, ContainerID: cid, IsContainer: true}
		if got != want {
			t.Errorf("debug cgroup %q said %+v, want %+v", tc.arg, got, want)
		}

		out, err = exec.Command(binary, "debug", "cgroup", tc.arg).Output()
		if err != nil {
			t.Fatalf("debug cgroup %q: %v, want exit 0", tc.arg, err)
		}
		rows := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			k, v, _ := strings.Cut(line, ":")
			rows[k] = strings.TrimSpace(v)
		}
		for k, v := range map[string]string{
			"path": tc.path, "cgroup id": "- (not on this host)", "driver": "systemd", "runtime": "containerd",
			"qos": "besteffort", "pod uid": uid, "container id": cid, "container": "true",
		} {
			if rows[k] != v {
				t.Errorf("debug cgroup %q: table row %q = %q, want %q\n%s", tc.arg, k, rows[k], v, out)
			}
		}
		if !strings.Contains(rows["note"], "not on this host") {
			t.Errorf("debug cgroup %q: table has no note saying the cgroup is not on this host:\n%s", tc.arg, out)
		}
	}
}
