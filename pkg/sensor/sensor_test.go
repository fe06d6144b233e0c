package sensor

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/pkg/sensor/internal/int80"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
)

func load(t *testing.T, cfg Config) *Sensor {
	t.Helper()
	cfg.Logger = zaptest.NewLogger(t)
	s, err := Load(cfg)
	if err != nil {
		t.Fatalf("load sensor: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close sensor: %v", err)
		}
	})
	return s
}

// collector drains the sensor on its own goroutine, as the agent does, and
// keeps the counts of one cgroup.
type collector struct {
	s      *Sensor
	cgroup uint64
	mu     sync.Mutex
	counts map[Key]uint64
	drains int
	stop   chan struct{}
	done   chan struct{}
	errs   []error
}

// allCgroups makes a collector keep the counts of every cgroup.
const allCgroups = 0

func collect(t *testing.T, s *Sensor, cgroup uint64, every time.Duration) *collector {
	t.Helper()
	if _, err := s.Drain(); err != nil { // what came before is not ours
		t.Fatal(err)
	}
	c := &collector{s: s, cgroup: cgroup, counts: map[Key]uint64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-c.stop:
				c.drain()
				return
			case <-tick.C:
				c.drain()
			}
		}
	}()
	return c
}

func (c *collector) drain() {
	iv, err := c.s.Drain()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drains++
	if err != nil {
		c.errs = append(c.errs, err)
		return
	}
	for _, n := range iv.Counts {
		if n.CgroupID == c.cgroup || c.cgroup == allCgroups {
			c.counts[n.Key] += n.Count
		}
	}
}

// finish stops draining and returns the counts of the cgroup.
func (c *collector) finish(t *testing.T) (map[Key]uint64, int) {
	t.Helper()
	close(c.stop)
	<-c.done
	for _, err := range c.errs {
		t.Errorf("drain: %v", err)
	}
	return c.counts, c.drains
}

func key(cg uint64, nr int, errno unix.Errno) Key {
	return Key{CgroupID: cg, Syscall: int32(nr), Errno: uint16(errno)}
}

// rootOnlyFile makes a file nobody but root may read, in a directory
// anybody may enter, so that opening it without capabilities is EACCES.
func rootOnlyFile(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "secret")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A child makes exactly N failing syscalls of four kinds while the sensor
// is drained every few milliseconds: the sum over all drains is N for each.
func TestCountsAreExactAcrossDrains(t *testing.T) {
	s := load(t, Config{})
	cg := cgrouptest.New(t, cgrouptest.KubeletPath("cgroupfs", "containerd", "besteffort", cgrouptest.PodUID(), cgrouptest.ContainerID()))
	secret := rootOnlyFile(t)
	c := startChild(t, cg)
	col := collect(t, s, cg.ID, 7*time.Millisecond)

	const n = 20000
	for i := 0; i < 4; i++ { // several drains happen inside every batch
		c.do("enoent %d", n/4)
		c.do("ebadf %d", n/4)
	}
	c.do("dropuid")
	for i := 0; i < 4; i++ {
		c.do("eacces %d %s", n/4, secret)
		c.do("eperm %d", n/4)
	}
	counts, drains := col.finish(t)

	want := map[Key]uint64{
		key(cg.ID, unix.SYS_OPENAT, unix.ENOENT): n,
		key(cg.ID, unix.SYS_CLOSE, unix.EBADF):   n,
		key(cg.ID, unix.SYS_OPENAT, unix.EACCES): n,
		key(cg.ID, unix.SYS_KILL, unix.EPERM):    n,
	}
	for k, w := range want {
		if counts[k] != w {
			t.Errorf("cgroup %d syscall %d errno %d: counted %d, made %d", k.CgroupID, k.Syscall, k.Errno, counts[k], w)
		}
	}
	if drains < 8 {
		t.Errorf("only %d drains happened during the run; the test wants several", drains)
	}
	t.Logf("%d drains", drains)
}

// The program takes an exit's cgroup id from a per-CPU cache keyed by the
// cgroup's pointer and the count of cgroup removals (cgroup_epoch). Exits of
// cgroups taking turns on the CPUs, of a process moved to another cgroup,
// and of cgroups made after others were removed and freed (the kernel may
// give the new cgroup the old one's memory) each count to their own cgroup,
// exactly, and every removal moves the epoch on.
func TestCgroupIDsStayExactAcrossMovesAndReuse(t *testing.T) {
	s := load(t, Config{Filter: Filter{AllExits: true}})
	parent := cgrouptest.New(t, "cgroup-cache")
	stay := parent.Mkdir("stay")
	epoch := func() uint64 {
		var e uint64
		if err := s.objs.CgroupEpoch.Lookup(uint32(0), &e); err != nil {
			t.Fatalf("read cgroup epoch: %v", err)
		}
		return e
	}
	epoch0 := epoch()
	col := collect(t, s, allCgroups, 7*time.Millisecond)
	const n = 2000
	want := map[Key]uint64{}
	ebadf := func(cg uint64) Key { return key(cg, unix.SYS_CLOSE, unix.EBADF) }

	cs := startChild(t, stay)
	const rounds = 6
	for round := 0; round < rounds; round++ {
		// A cgroup of its own each round, the previous one removed.
		cg := parent.Mkdir(fmt.Sprintf("round-%d", round))
		want[ebadf(cg.ID)] += 0
		c := startChild(t, cg)
		for i := 0; i < 3; i++ {
			c.do("ebadf %d", n)
			cs.do("ebadf %d", n)
			want[ebadf(cg.ID)] += n
			want[ebadf(stay.ID)] += n
		}
		// Moved (all its threads) into a sibling: its next exits are the
		// sibling's.
		moved := parent.Mkdir(fmt.Sprintf("moved-%d", round))
		want[ebadf(moved.ID)] += 0
		if err := os.WriteFile(filepath.Join(moved.Path, "cgroup.procs"), []byte(strconv.Itoa(c.PID)), 0); err != nil {
			t.Fatalf("move child into %s: %v", moved.Rel, err)
		}
		c.do("ebadf %d", n)
		cs.do("ebadf %d", n)
		want[ebadf(moved.ID)] += n
		want[ebadf(stay.ID)] += n
		moved.Remove()
		cg.Remove()
		// Time for the removed cgroups to be freed (after RCU grace
		// periods), so that the next ones may take their memory.
		time.Sleep(50 * time.Millisecond)
	}
	if got := epoch() - epoch0; got < 2*rounds {
		t.Errorf("cgroup epoch moved %d times over %d removals", got, 2*rounds)
	}
	counts, _ := col.finish(t)
	for k, w := range want { // every cgroup of the test, each exactly
		if counts[k] != w {
			t.Errorf("cgroup %d close EBADF: counted %d, made %d", k.CgroupID, counts[k], w)
		}
	}
}

func TestRecordsCarryIdentity(t *testing.T) {
	s := load(t, Config{})
	cg := cgrouptest.New(t, "ew-records")
	c := startChild(t, cg)
	s.Drain()
	tids := strings.Fields(c.do("threads 5"))
	mainTID, _ := strconv.Atoi(tids[0])
	secondTID, _ := strconv.Atoi(tids[1])

	want := map[int32]struct {
		tid  int
		comm string
	}{
		unix.SYS_MKDIRAT:  {mainTID, "ew-main"},
		unix.SYS_UNLINKAT: {secondTID, "ew-second"},
	}
	seen := map[int32]int{}
	deadline := time.After(10 * time.Second)
	for len(seen) < 2 || seen[unix.SYS_MKDIRAT] < 5 || seen[unix.SYS_UNLINKAT] < 5 {
		select {
		case r := <-s.Records():
			if r.CgroupID != cg.ID {
				continue
			}
			w, ok := want[r.Syscall]
			if !ok {
				continue
			}
			seen[r.Syscall]++
			if r.PID != uint32(c.PID) || r.TID != uint32(w.tid) || r.Comm != w.comm ||
				r.Errno() != uint16(unix.ENOENT) || r.UID != 0 || r.Compat {
				t.Errorf("record %+v: want pid %d tid %d comm %q errno ENOENT uid 0", r, c.PID, w.tid, w.comm)
			}
			if d := time.Since(r.Time); d < 0 || d > time.Minute {
				t.Errorf("record time %v is %v away from now", r.Time, d)
			}
		case <-deadline:
			t.Fatalf("records seen per syscall %v, want 5 of mkdirat and unlinkat", seen)
		}
	}
}

// A cgroup filter change counts from the next exit on, with no drain in
// between: each CPU's hot slot keeps the verdict for its last cgroup, and a
// filter change must make it decide again (settings.cfg_gen).
func TestCgroupFilterChangeNeedsNoDrain(t *testing.T) {
	s := load(t, Config{})
	a := cgrouptest.New(t, "ew-verdict-a")
	b := cgrouptest.New(t, "ew-verdict-b")
	ca, cb := startChild(t, a), startChild(t, b)
	set := func(f Filter) {
		t.Helper()
		if err := s.SetFilter(f); err != nil {
			t.Fatal(err)
		}
	}
	set(Filter{IncludeCgroups: []uint64{a.ID}})
	s.Drain()
	for range 2 {
		// Include a: a's openat failures count, b's do not.
		set(Filter{IncludeCgroups: []uint64{a.ID}})
		ca.do("enoent 100")
		cb.do("enoent 100")
		// Include b instead: a's close failures must not count, although
		// a's cgroup was let through by the slot a moment ago.
		set(Filter{IncludeCgroups: []uint64{b.ID}})
		ca.do("ebadf 100")
		cb.do("ebadf 100")
	}
	iv, err := s.Drain()
	if err != nil {
		t.Fatal(err)
	}
	got := map[Key]uint64{}
	for _, n := range iv.Counts {
		if (n.CgroupID == a.ID || n.CgroupID == b.ID) && (n.Syscall == unix.SYS_OPENAT || n.Syscall == unix.SYS_CLOSE) {
			got[n.Key] = n.Count
		}
	}
	want := map[Key]uint64{key(a.ID, unix.SYS_OPENAT, unix.ENOENT): 200, key(b.ID, unix.SYS_CLOSE, unix.EBADF): 200}
	if !maps.Equal(got, want) {
		t.Fatalf("counted %v, want %v", got, want)
	}
}

// Every filter, changed while the sensor runs, changes what is counted.
func TestFiltersChangeAtRunTime(t *testing.T) {
	s := load(t, Config{})
	a := cgrouptest.New(t, "ew-filter-a")
	b := cgrouptest.New(t, "ew-filter-b")
	ca, cb := startChild(t, a), startChild(t, b)

	// run makes the same failures in both cgroups under filter f and
	// returns what was counted per cgroup.
	run := func(f Filter) map[Key]uint64 {
		t.Helper()
		if err := s.SetFilter(f); err != nil {
			t.Fatal(err)
		}
		s.Drain()
		for _, c := range []*child{ca, cb} {
			c.do("enoent 100")
			c.do("ebadf 100")
			c.do("getpid 100")
		}
		iv, err := s.Drain()
		if err != nil {
			t.Fatal(err)
		}
		got := map[Key]uint64{}
		for _, n := range iv.Counts {
			if n.CgroupID != a.ID && n.CgroupID != b.ID {
				continue
			}
			// Only the syscalls the children were told to make: the Go
			// runtime's own futex and epoll waits can time out at any time.
			switch n.Syscall {
			case unix.SYS_OPENAT, unix.SYS_CLOSE, unix.SYS_GETPPID:
				got[n.Key] = n.Count
			}
		}
		return got
	}
	full := func(cg uint64) map[Key]uint64 {
		return map[Key]uint64{key(cg, unix.SYS_OPENAT, unix.ENOENT): 100, key(cg, unix.SYS_CLOSE, unix.EBADF): 100}
	}
	merge := func(ms ...map[Key]uint64) map[Key]uint64 {
		out := map[Key]uint64{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	closeOnly := func(cg uint64) map[Key]uint64 { return map[Key]uint64{key(cg, unix.SYS_CLOSE, unix.EBADF): 100} }
	openOnly := func(cg uint64) map[Key]uint64 { return map[Key]uint64{key(cg, unix.SYS_OPENAT, unix.ENOENT): 100} }

	cases := []struct {
		name string
		f    Filter
		want map[Key]uint64
	}{
		{"failures only", Filter{}, merge(full(a.ID), full(b.ID))},
		{"allow close", Filter{AllowSyscalls: []SyscallID{{Nr: unix.SYS_CLOSE}}}, merge(closeOnly(a.ID), closeOnly(b.ID))},
		{"deny close", Filter{DenySyscalls: []SyscallID{{Nr: unix.SYS_CLOSE}}}, merge(openOnly(a.ID), openOnly(b.ID))},
		{"compat close is another syscall", Filter{AllowSyscalls: []SyscallID{{Nr: unix.SYS_CLOSE, Compat: true}}}, map[Key]uint64{}},
		{"errno ENOENT", Filter{Errnos: []uint16{uint16(unix.ENOENT)}}, merge(openOnly(a.ID), openOnly(b.ID))},
		{"include a", Filter{IncludeCgroups: []uint64{a.ID}}, full(a.ID)},
		{"include b", Filter{IncludeCgroups: []uint64{b.ID}}, full(b.ID)},
		{"exclude b", Filter{ExcludeCgroups: []uint64{b.ID}}, full(a.ID)},
		{"include a and b, exclude b", Filter{IncludeCgroups: []uint64{a.ID}, ExcludeCgroups: []uint64{b.ID}}, full(a.ID)},
		{"all exits", Filter{AllExits: true, AllowSyscalls: []SyscallID{{Nr: unix.SYS_GETPPID}}}, map[Key]uint64{
			key(a.ID, unix.SYS_GETPPID, 0): 100, key(b.ID, unix.SYS_GETPPID, 0): 100}},
		{"back to the default", Filter{}, merge(full(a.ID), full(b.ID))},
	}
	for _, tc := range cases {
		got := run(tc.f)
		if len(got) != len(tc.want) {
			t.Errorf("%s: counted %v, want %v", tc.name, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: counted %v, want %v", tc.name, got, tc.want)
				break
			}
		}
	}

	// 1-in-N sampling of successes: an estimate, so only its range is
	// exact: some but far from all of 20 000 successes, failures exact.
	if err := s.SetFilter(Filter{AllExits: true, SuccessSampleN: 10, IncludeCgroups: []uint64{a.ID}}); err != nil {
		t.Fatal(err)
	}
	s.Drain()
	ca.do("getpid 20000")
	ca.do("ebadf 1000")
	iv, _ := s.Drain()
	var ok, bad uint64
	for _, n := range iv.Counts {
		if n.CgroupID == a.ID && n.Syscall == unix.SYS_GETPPID {
			ok += n.Count
		}
		if n.CgroupID == a.ID && n.Syscall == unix.SYS_CLOSE && n.Errno == uint16(unix.EBADF) {
			bad += n.Count
		}
	}
	if ok < 1000 || ok > 3000 || bad != 1000 {
		t.Errorf("sampling 1 in 10: %d of 20000 successes (want about 2000) and %d of 1000 failures (want all)", ok, bad)
	}

	if err := s.SetFilter(Filter{AllowSyscalls: []SyscallID{{Nr: 1}}, DenySyscalls: []SyscallID{{Nr: 2}}}); err == nil {
		t.Error("allow and deny lists together were accepted")
	}
	if err := s.SetFilter(Filter{Errnos: []uint16{5000}}); err == nil {
		t.Error("errno 5000 was accepted")
	}
}

// settle waits until the reader has decoded every record the kernel emitted.
func settle(t *testing.T, s *Sensor) Stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Records+st.DecodeErrors >= st.Emitted || time.Now().After(deadline) {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Records of filtered-out exits are not sent either.
func TestFilteredExitsSendNoRecords(t *testing.T) {
	cg := cgrouptest.New(t, "ew-filter-records")
	s := load(t, Config{Filter: Filter{Errnos: []uint16{uint16(unix.EBADF)}, IncludeCgroups: []uint64{cg.ID}}})
	c := startChild(t, cg)
	c.do("enoent 50")
	c.do("ebadf 50")
	iv, _ := s.Drain()
	iv.Stats = settle(t, s)
	var sawClose bool
	for len(s.Records()) > 0 {
		r := <-s.Records()
		if r.CgroupID != cg.ID || r.Errno() != uint16(unix.EBADF) {
			t.Errorf("record %+v passed a filter for EBADF in cgroup %d", r, cg.ID)
		}
		sawClose = sawClose || r.Syscall == unix.SYS_CLOSE
	}
	if !sawClose {
		t.Errorf("no close EBADF record; stats %+v", iv.Stats)
	}
}

// A storm of a million failures on one key, from two threads at once:
// exact counts, and exactly the configured number of records in a window.
func TestStormIsRateLimitedButExact(t *testing.T) {
	const limit = 16
	cg := cgrouptest.New(t, "ew-storm")
	s := load(t, Config{RecordsPerWindow: limit, RateWindow: time.Hour, Filter: Filter{IncludeCgroups: []uint64{cg.ID}}})
	c := startChild(t, cg)
	col := collect(t, s, cg.ID, 100*time.Millisecond)
	c.do("storm 1000000")
	counts, _ := col.finish(t)
	if got := counts[key(cg.ID, unix.SYS_CLOSE, unix.EBADF)]; got != 1000000 {
		t.Errorf("counted %d of 1000000 failures", got)
	}
	settle(t, s)
	records := 0
	for len(s.Records()) > 0 {
		if r := <-s.Records(); r.Syscall == unix.SYS_CLOSE {
			records++
		}
	}
	st, _ := s.Stats()
	if records != limit || st.TotalRingDrops() != 0 || st.QueueDrops != 0 {
		t.Errorf("got %d records for the key, want exactly %d in one window (ring drops %d, queue drops %d)",
			records, limit, st.TotalRingDrops(), st.QueueDrops)
	}
}

// Windows advance: bursts in separate windows each get their records.
func TestRateLimitWindowsAdvance(t *testing.T) {
	const limit, bursts = 4, 6
	cg := cgrouptest.New(t, "ew-windows")
	s := load(t, Config{RecordsPerWindow: limit, RateWindow: 25 * time.Millisecond, Filter: Filter{IncludeCgroups: []uint64{cg.ID}}})
	c := startChild(t, cg)
	c.do("bursts %d", bursts) // 50 failures, then a 60 ms pause, six times
	settle(t, s)
	records := 0
	for len(s.Records()) > 0 {
		if r := <-s.Records(); r.Syscall == unix.SYS_CLOSE {
			records++
		}
	}
	// Each burst takes well under a window, so it sees one or two windows.
	if records < limit*bursts || records > 2*limit*bursts {
		t.Errorf("%d records from %d bursts, want between %d and %d", records, bursts, limit*bursts, 2*limit*bursts)
	}
}

func TestDurationMode(t *testing.T) {
	cg := cgrouptest.New(t, "ew-durations")
	s := load(t, Config{Durations: true, Filter: Filter{IncludeCgroups: []uint64{cg.ID}}})
	c := startChild(t, cg)
	s.Drain()
	if got := c.do("sigtimedwait 30"); got != unix.EAGAIN.Error() {
		t.Fatalf("rt_sigtimedwait returned %q, want EAGAIN", got)
	}
	iv, err := s.Drain()
	if err != nil {
		t.Fatal(err)
	}
	var hist *Histogram
	for i, h := range iv.Histograms {
		if h.CgroupID == cg.ID && h.Syscall == unix.SYS_RT_SIGTIMEDWAIT {
			hist = &iv.Histograms[i]
		}
	}
	if hist == nil {
		t.Fatalf("no histogram for rt_sigtimedwait in %d histograms", len(iv.Histograms))
	}
	// 30 ms is in bucket 24 (2^24 ns = 16.8 ms) or, on a slow machine, above.
	var n, slow uint64
	for b, v := range hist.Buckets {
		n += v
		if b >= 24 {
			slow += v
		}
	}
	if n != 1 || slow != 1 {
		t.Errorf("histogram %v: want one exit in a bucket >= 24", hist.Buckets)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case r := <-s.Records():
			if r.CgroupID != cg.ID || r.Syscall != unix.SYS_RT_SIGTIMEDWAIT {
				continue
			}
			if r.DurationNS < uint64(30*time.Millisecond) || r.DurationNS > uint64(10*time.Second) {
				t.Errorf("record duration %v, want at least 30ms", time.Duration(r.DurationNS))
			}
			return
		case <-deadline:
			t.Fatal("no record for rt_sigtimedwait")
		}
	}
}

// The agent's own failures are not counted when ExcludeSelf is set.
func TestExcludeSelf(t *testing.T) {
	for _, exclude := range []bool{false, true} {
		s, err := Load(Config{ExcludeSelf: exclude, Filter: Filter{AllowSyscalls: []SyscallID{{Nr: unix.SYS_FCHDIR}}}})
		if err != nil {
			t.Fatal(err)
		}
		s.Drain()
		for i := 0; i < 100; i++ {
			unix.Fchdir(-1)
		}
		iv, _ := s.Drain()
		s.Close()
		var n uint64
		for _, c := range iv.Counts {
			n += c.Count
		}
		if exclude && n != 0 || !exclude && n != 100 {
			t.Errorf("ExcludeSelf=%v: counted %d of our 100 failures", exclude, n)
		}
	}
}

// The decoding of compat syscalls is unit-tested in the syscalls package
// and by TestDrainDecodesCompatKeys; this runs them for real wherever the
// machine lets a 64-bit process use int $0x80.
func TestCompatSyscallsLive(t *testing.T) {
	if !int80.Available {
		t.Skip("int $0x80 exists only on amd64")
	}
	probe := cgrouptest.New(t, "ew-int80-probe")
	if out, err := runRaw(t, probe, "int80 1"); err != nil || !strings.Contains(out, "done -9") {
		first, _, _ := strings.Cut(strings.TrimPrefix(out, "ready\n"), "\n")
		t.Skipf("this machine does not run int $0x80 system calls (child: %v: %s); the compat decoding is covered by TestDrainDecodesCompatKeys and pkg/syscalls", err, first)
	}
	cg := cgrouptest.New(t, "ew-int80")
	s := load(t, Config{Filter: Filter{IncludeCgroups: []uint64{cg.ID}}})
	c := startChild(t, cg)
	s.Drain()
	c.do("int80 1000")
	iv, _ := s.Drain()
	want := Key{CgroupID: cg.ID, Syscall: i386Close, Compat: true, Errno: uint16(unix.EBADF)}
	for _, n := range iv.Counts {
		if n.Key == want && n.Count == 1000 {
			return
		}
	}
	t.Errorf("no count of 1000 for %+v in %+v", want, iv.Counts)
}

func TestDrainDecodesCompatKeys(t *testing.T) {
	k := countKey(&bpfCountKey{CgroupId: 9, Nr: compatBit | i386Close, Errno: 9})
	if want := (Key{CgroupID: 9, Syscall: i386Close, Compat: true, Errno: 9}); k != want {
		t.Errorf("decoded %+v, want %+v", k, want)
	}
	k = countKey(&bpfCountKey{CgroupId: 9, Nr: unix.SYS_CLOSE, Errno: 9})
	if k.Compat || k.Syscall != unix.SYS_CLOSE {
		t.Errorf("decoded %+v as compat", k)
	}
}

func TestCloseIsNilSafeAndDetaches(t *testing.T) {
	var s *Sensor
	if err := s.Close(); err != nil {
		t.Errorf("nil Close: %v", err)
	}
	s, err := Load(Config{})
	if err != nil {
		t.Fatal(err)
	}
	prog := s.objs.OnSysExit
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range s.Records() { // buffered records first, then the close
	}
	if attached(t, id) {
		t.Errorf("program %d is still loaded after Close", id)
	}
}

// Without privileges the error says what to grant.
func TestUnprivilegedLoadSaysWhatToDo(t *testing.T) {
	c := startChild(t, cgrouptest.New(t, "ew-unprivileged"))
	c.do("dropuid")
	got := c.do("load")
	for _, want := range []string{"root", "CAP_BPF", "CAP_PERFMON"} {
		if !strings.Contains(got, want) {
			t.Errorf("loading without privileges said %q; want it to mention %s", got, want)
		}
	}
}

// Issue 13: a pod that makes a new key on every call (invalid syscall
// numbers, and getpriority failing with 4095 errnos under its own seccomp
// filter) for several seconds, drained every 100 ms as the agent does.
// Another pod's failures made meanwhile are counted exactly, key by key;
// the flood's invalid numbers are one key, its other calls are counted
// exactly in its keys plus its overflow, and it never makes more keys per
// interval than its share.
func TestFloodCannotBlindOtherCgroups(t *testing.T) {
	const share = 256
	s := load(t, Config{MaxKeysPerCgroup: share})
	floodCg := cgrouptest.New(t, cgrouptest.KubeletPath("cgroupfs", "containerd", "besteffort", cgrouptest.PodUID(), cgrouptest.ContainerID()))
	victimCg := cgrouptest.New(t, cgrouptest.KubeletPath("cgroupfs", "containerd", "besteffort", cgrouptest.PodUID(), cgrouptest.ContainerID()))
	flooder, victim := startChild(t, floodCg), startChild(t, victimCg)
	if _, err := s.Drain(); err != nil {
		t.Fatal(err)
	}

	var (
		mu        sync.Mutex
		counts    = map[Key]uint64{}
		overflows = map[uint64]uint64{}
		maxKeys   int // the flood's keys in one interval
		stop      = make(chan struct{})
		done      = make(chan struct{})
	)
	drain := func() {
		iv, err := s.Drain()
		if err != nil {
			t.Errorf("drain: %v", err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		keys := 0
		for _, c := range iv.Counts {
			counts[c.Key] += c.Count
			if c.CgroupID == floodCg.ID && c.Syscall != OverflowSyscall {
				keys++
			}
		}
		maxKeys = max(maxKeys, keys)
		for _, o := range iv.Overflows {
			overflows[o.CgroupID] += o.Failures
		}
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				drain()
				return
			case <-tick.C:
				drain()
			}
		}
	}()

	const seconds = 8
	floodDone := make(chan string, 1)
	go func() { floodDone <- flooder.do("flood %d", seconds) }()
	const batch = 5000
	var made uint64
	for deadline := time.Now().Add(seconds * time.Second); time.Now().Before(deadline); {
		victim.do("ebadf %d", batch)
		victim.do("enoent %d", batch)
		made += batch
	}
	answer := <-floodDone
	close(stop)
	<-done

	var invalid, keys uint64
	if _, err := fmt.Sscan(answer, &invalid, &keys); err != nil {
		t.Fatalf("flood answered %q: %v", answer, err)
	}
	t.Logf("flood made %d invalid and %d getpriority failures; victim made %d of each; flood keys/interval max %d",
		invalid, keys, made, maxKeys)
	for k, w := range map[Key]uint64{
		key(victimCg.ID, unix.SYS_CLOSE, unix.EBADF):   made,
		key(victimCg.ID, unix.SYS_OPENAT, unix.ENOENT): made,
	} {
		if counts[k] != w {
			t.Errorf("victim syscall %d errno %d: counted %d, made %d", k.Syscall, k.Errno, counts[k], w)
		}
	}
	if n := counts[key(floodCg.ID, int(InvalidSyscall), unix.ENOSYS)]; n != invalid {
		t.Errorf("flood's invalid syscalls: counted %d as InvalidSyscall ENOSYS, made %d", n, invalid)
	}
	var got uint64
	for k, n := range counts {
		if k.CgroupID == floodCg.ID && k.Syscall == unix.SYS_GETPRIORITY {
			got += n
		}
	}
	over := counts[Key{CgroupID: floodCg.ID, Syscall: OverflowSyscall, Errno: OverflowErrno}]
	// None lost. Once the flood used its share, the overflow also holds
	// the flood child's own runtime failures (futex and epoll waits that
	// time out, a few a second), which have no key of their own then.
	if got+over < keys || got+over > keys+100*seconds {
		t.Errorf("flood's getpriority failures: %d in keys + %d in overflow = %d, made %d (its runtime's own failures allowed on top: %d)",
			got, over, got+over, keys, 100*seconds)
	}
	if over == 0 || overflows[floodCg.ID] != over {
		t.Errorf("flood overflow: key %d, Overflows %d; want equal and > 0", over, overflows[floodCg.ID])
	}
	if _, ok := overflows[victimCg.ID]; ok {
		t.Errorf("victim overflowed: %d", overflows[victimCg.ID])
	}
	// Racing CPUs may each add one key past the share.
	if limit := share + runtime.NumCPU() + 1; maxKeys > limit { // +1: the invalid key
		t.Errorf("flood made %d keys in one interval; its share is %d", maxKeys, share)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.MapFull != 0 || st.Overflowed < over {
		t.Errorf("stats: MapFull %d (want 0), Overflowed %d (want >= %d)", st.MapFull, st.Overflowed, over)
	}
}

// When the whole map is full (here a share larger than the map), a
// cgroup's exits that find no room are still counted, in its overflow key.
func TestFullMapCountsIntoOverflow(t *testing.T) {
	s := load(t, Config{MaxKeys: 64, MaxKeysPerCgroup: 1 << 20})
	cg := cgrouptest.New(t, cgrouptest.KubeletPath("cgroupfs", "containerd", "besteffort", cgrouptest.PodUID(), cgrouptest.ContainerID()))
	c := startChild(t, cg)
	col := collect(t, s, cg.ID, time.Hour) // one drain, at the end
	answer := c.do("flood 1")
	counts, _ := col.finish(t)
	var invalid, keys uint64
	if _, err := fmt.Sscan(answer, &invalid, &keys); err != nil {
		t.Fatalf("flood answered %q: %v", answer, err)
	}
	var getprio, over uint64
	for k, n := range counts {
		switch k.Syscall {
		case unix.SYS_GETPRIORITY:
			getprio += n
		case OverflowSyscall:
			over += n
		}
	}
	if counts[key(cg.ID, int(InvalidSyscall), unix.ENOSYS)]+getprio+over < invalid+keys || over == 0 {
		t.Errorf("invalid %d + getpriority %d + overflow %d: want at least the %d + %d made, with overflow",
			counts[key(cg.ID, int(InvalidSyscall), unix.ENOSYS)], getprio, over, invalid, keys)
	}
	// The flood's runtime fails too (futex, epoll), so this cgroup's sum is
	// at least what the flood made; nothing of it was lost.
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.MapFull != 0 {
		t.Errorf("%d exits lost with the map full; they belong in overflow keys", st.MapFull)
	}
}

// Issue 14 §3: under an include scope that names a pod's cgroup, a
// container cgroup made under it afterwards is counted from its first
// syscall, with no user space step in between, and so is a cgroup the
// container makes inside its own. Another pod's container is not; nor is a
// cgroup deeper than the kernel looks. Exclusions still match a cgroup
// itself only.
func TestIncludeScopeMatchesPodCgroup(t *testing.T) {
	s := load(t, Config{})
	pod := cgrouptest.New(t, "kubepods/besteffort/pod"+cgrouptest.PodUID())
	other := cgrouptest.New(t, "kubepods/besteffort/pod"+cgrouptest.PodUID())
	if err := s.SetCgroups([]uint64{pod.ID}, nil); err != nil {
		t.Fatal(err)
	}
	s.Drain()
	ctr := pod.Mkdir(cgrouptest.ContainerID())
	nested := ctr.Mkdir("init.scope")
	tooDeep := nested.Mkdir("a")
	otherCtr := other.Mkdir(cgrouptest.ContainerID())
	const n = 1000
	for _, cg := range []*cgrouptest.Dir{ctr, nested, tooDeep, otherCtr} {
		if out, err := runRaw(t, cg, fmt.Sprintf("ebadf %d", n)); err != nil {
			t.Fatalf("child in %s: %v: %s", cg.Rel, err, out)
		}
	}
	iv, err := s.Drain()
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint64]uint64{}
	for _, c := range iv.Counts {
		if c.Syscall == unix.SYS_CLOSE && c.Errno == uint16(unix.EBADF) {
			got[c.CgroupID] += c.Count
		}
	}
	for name, w := range map[*cgrouptest.Dir]uint64{ctr: n, nested: n, tooDeep: 0, otherCtr: 0} {
		if got[name.ID] != w {
			t.Errorf("%s: counted %d close EBADF, want %d", name.Rel, got[name.ID], w)
		}
	}

	// Excluding the pod's cgroup excludes that cgroup, not its containers.
	if err := s.SetCgroups(nil, []uint64{pod.ID}); err != nil {
		t.Fatal(err)
	}
	s.Drain()
	if out, err := runRaw(t, ctr, fmt.Sprintf("ebadf %d", n)); err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	iv, err = s.Drain()
	if err != nil {
		t.Fatal(err)
	}
	var counted uint64
	for _, c := range iv.Counts {
		if c.CgroupID == ctr.ID && c.Syscall == unix.SYS_CLOSE && c.Errno == uint16(unix.EBADF) {
			counted += c.Count
		}
	}
	if counted != n {
		t.Errorf("exclude of the pod cgroup: its container counted %d, want %d", counted, n)
	}
}
