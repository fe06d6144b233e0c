// Package sensor is errnowatch's first stage: it loads the kernel program
// from bpf/errnowatch.c onto raw_syscalls:sys_exit (and sys_enter in
// duration mode), changes its filters at run time, drains the exact
// in-kernel counts every interval and decodes the sampled failure records
// from the ring buffer into a bounded queue. It hands on sensor.Interval
// (exact counts, latency histograms, overflows, loss statistics) and
// sensor.Record.
//
// The counts stay exact whatever a workload does. Syscall numbers outside
// the table are one key, InvalidSyscall. Each cgroup may make at most
// Config.MaxKeysPerCgroup keys per interval; its exits beyond that, or
// when the map is full, are counted in its overflow key (OverflowSyscall),
// and Interval.Overflows names those cgroups. Successes (with
// Filter.AllExits) and failures each have a per-CPU hot slot, so storms of
// either cost one compare and an increment.
//
// Include scopes (Filter.IncludeCgroups, SetCgroups) match a cgroup or its
// nearest ancestor in the set, up to two levels up, so that naming a pod's
// cgroup puts its containers in scope from their first syscall; exclusions
// match the cgroup itself.
//
// A record carries the failing call's arguments, read in the kernel only
// when the record is emitted (counting never pays for them): the six
// argument registers, up to two paths (at most PathMax-1 bytes each,
// flagged truncated or unreadable) and the struct sockaddr of connect, bind
// and sendto (at most AddrMax bytes). Which argument of which syscall is a
// path or an address comes from pkg/syscalls' signatures, generated from
// the kernel's SYSCALL_DEFINE metadata; Load writes that table into the
// program. Records have one fixed size (760 bytes).
package sensor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/errnowatch/errnowatch/pkg/syscalls"
)

// Config is fixed for the sensor's life. What may change at run time is in
// Filter.
type Config struct {
	Filter Filter
	// Logger gets the sensor's log; nil discards it.
	Logger *zap.Logger
	// RecordsPerWindow is how many failure records each (cgroup, syscall,
	// errno) key may send per RateWindow; 0 means the default, negative none.
	RecordsPerWindow int
	// RateWindow is the record rate-limit window (default 1 s).
	RateWindow time.Duration
	// Durations attaches sys_enter too: records carry DurationNS and
	// intervals carry latency histograms.
	Durations bool
	// ExcludeSelf ignores this process's own syscalls.
	ExcludeSelf bool
	// QueueSize bounds the decoded records waiting for the consumer
	// (default 2048: more than the default ring holds, and the buffer is
	// allocated whole, 254 bytes a record, and scanned by every GC).
	QueueSize int
	// MaxKeys bounds the distinct (cgroup, syscall, errno) keys per drain
	// interval (default 8192). A cgroup's exits that find the map full are
	// counted in its overflow key (see MaxKeysPerCgroup); only exits whose
	// cgroup finds no room for even that are lost, in Stats.MapFull.
	MaxKeys int
	// MaxKeysPerCgroup is each cgroup's share of MaxKeys per interval
	// (default MaxKeys/16). A cgroup's exits beyond its share are counted
	// exactly in its overflow key (Key.Syscall OverflowSyscall), without
	// syscall and errno, so that one pod making keys cannot take the map
	// from the others.
	MaxKeysPerCgroup int
	// MaxHistKeys bounds the distinct (cgroup, syscall) histograms per
	// interval (default 4096).
	MaxHistKeys int
	// RingBytes is the ring buffer size, a power of two multiple of the
	// page size (default: ringBytesFor the record rate, 1 MiB with the
	// default rate limit).
	RingBytes int
}

// DefaultRecordsPerWindow is the default of Config.RecordsPerWindow.
const DefaultRecordsPerWindow = 8

func (c *Config) setDefaults() {
	if c.RecordsPerWindow == 0 {
		c.RecordsPerWindow = DefaultRecordsPerWindow
	}
	if c.RateWindow <= 0 {
		c.RateWindow = time.Second
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 2048
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = 8192
	}
	if c.MaxKeysPerCgroup <= 0 {
		c.MaxKeysPerCgroup = max(c.MaxKeys/16, 1)
	}
	if c.MaxHistKeys <= 0 {
		c.MaxHistKeys = 4096
	}
	if c.RingBytes <= 0 {
		c.RingBytes = ringBytesFor(c.RecordsPerWindow, c.RateWindow)
	}
}

// Ring sizing. The ring only has to hold what the kernel writes while the
// reader is late: records are rate-limited per key, so that is the record
// rate, not the exit rate. The default holds a quarter of a second of
// ringBurstKeys keys all failing at their limit; a record that finds the
// ring full is counted in Stats.RingDrops, and counts never depend on the
// ring. User space maps the ring's data twice (for wrap-around), so every
// MiB of ring is two MiB of the agent's resident set once written.
const (
	ringRecordBytes = 768 // sizeof(struct record) + the ring's 8-byte header
	ringBurstKeys   = 512
	ringMinBytes    = 64 << 10
	ringMaxBytes    = 16 << 20
)

// ringBytesFor is the ring size for a record rate limit: the smallest power
// of two, between ringMinBytes and ringMaxBytes, that holds a quarter
// second of ringBurstKeys keys at recordsPerWindow per window.
func ringBytesFor(recordsPerWindow int, window time.Duration) int {
	if recordsPerWindow <= 0 || window <= 0 {
		return ringMinBytes
	}
	want := float64(recordsPerWindow) * ringBurstKeys * ringRecordBytes * (float64(250*time.Millisecond) / float64(window))
	n := ringMinBytes
	for float64(n) < want && n < ringMaxBytes {
		n <<= 1
	}
	return n
}

// Sensor is the loaded and attached kernel program.
type Sensor struct {
	cfg   Config
	log   *zap.Logger
	objs  bpfObjects
	links []link.Link
	// epoch keeps on_cgroup_rmdir attached for the sensor's whole life:
	// on_sys_exit's cgroup id cache is exact only while it counts every
	// cgroup removal, so it is attached before and detached after links.
	epoch link.Link
	ring  ringReader
	queue *queue
	clock Clock

	settings settings
	filterMu sync.Mutex
	cgroups  map[uint64]uint32 // what cgroup_filter holds

	drainMu    sync.Mutex
	gens       generations
	lastDrain  time.Time
	records    atomic.Uint64
	decodeErrs atomic.Uint64
	overflowed atomic.Uint64

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// ringReader is what the record reader needs of ringbuf.Reader; tests give
// it a fake.
type ringReader interface {
	ReadInto(*ringbuf.Record) error
	Close() error
}

// Load checks the prerequisites, loads the kernel program with cfg and
// attaches it. Whatever it opened is closed again when a later step fails.
func Load(cfg Config) (s *Sensor, err error) {
	cfg.setDefaults()
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if err := cfg.Filter.validate(); err != nil {
		return nil, err
	}
	if err := checkPrerequisites(); err != nil {
		return nil, err
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones
	// charge the memory cgroup and ignore it. Raised here, by hand, rather
	// than with cilium/ebpf's rlimit package: that package probes with a
	// bpf(BPF_MAP_CREATE) in its init, in every process that links it, so
	// each errnowatch command a non-root user runs (alerts list, rules
	// validate) would fail a bpf() call and trip ebpf-load-attempt. A
	// failure here is not fatal: on 5.11+ nothing needs it, and before that
	// the map creation fails with advice (loadError).
	_ = unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY})

	s = &Sensor{cfg: cfg, log: log, cgroups: map[uint64]uint32{}}
	defer func() {
		if err != nil {
			s.Close()
			s = nil
		}
	}()

	spec, err := loadBpf()
	if err != nil {
		return nil, fmt.Errorf("read embedded BPF object: %w", err)
	}
	spec.Maps["records"].MaxEntries = uint32(cfg.RingBytes)
	for _, name := range []string{"counts0", "counts1", "budgets0", "budgets1"} {
		spec.Maps[name].MaxEntries = uint32(cfg.MaxKeys)
	}
	for _, name := range []string{"hists0", "hists1"} {
		spec.Maps[name].MaxEntries = uint32(cfg.MaxHistKeys)
	}
	barrierInner := spec.Maps["rcu_barrier"].InnerMap
	if err := spec.Variables["arg_specs"].Set(argSpecs(syscalls.Native())); err != nil {
		return nil, fmt.Errorf("write syscall argument table: %w", err)
	}

	if err := spec.LoadAndAssign(&s.objs, nil); err != nil {
		return nil, explain("load BPF program", err)
	}
	if err := s.settings.init(s.objs.Cfg); err != nil {
		return nil, err
	}
	if err := s.gens.init(&s.settings, s.objs.RcuBarrier, barrierInner); err != nil {
		return nil, err
	}

	kcfg := bpfConfig{Durations: b2u(cfg.Durations), CgroupShare: uint32(cfg.MaxKeysPerCgroup)}
	for i, compat := range []bool{false, true} {
		kcfg.NrLimit[i] = nrLimit(compat)
	}
	if cfg.RecordsPerWindow > 0 {
		kcfg.RecordsPerWindow = uint32(cfg.RecordsPerWindow)
	}
	if cfg.ExcludeSelf {
		kcfg.SelfTgid = uint32(os.Getpid())
	}
	if err := s.settings.setConfig(kcfg); err != nil {
		return nil, err
	}
	if err := s.SetFilter(cfg.Filter); err != nil {
		return nil, err
	}

	if s.clock, err = newClock(); err != nil {
		return nil, err
	}
	rd, err := ringbuf.NewReader(s.objs.Records)
	if err != nil {
		return nil, fmt.Errorf("open ring buffer reader: %w", err)
	}
	s.ring = rd

	if s.epoch, err = link.AttachTracing(link.TracingOptions{Program: s.objs.OnCgroupRmdir}); err != nil {
		return nil, explain("attach tp_btf/cgroup_rmdir", err)
	}
	if cfg.Durations {
		l, err := link.AttachTracing(link.TracingOptions{Program: s.objs.OnSysEnter})
		if err != nil {
			return nil, explain("attach tp_btf/sys_enter", err)
		}
		s.links = append(s.links, l)
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: s.objs.OnSysExit})
	if err != nil {
		return nil, explain("attach tp_btf/sys_exit", err)
	}
	s.links = append(s.links, l)
	s.lastDrain = time.Now()

	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.queue = newQueue(cfg.QueueSize)
	s.wg.Add(2)
	go s.readLoop()
	go s.windowLoop(ctx)
	return s, nil
}

// syscallSlots is SYSCALL_BITS in bpf/errnowatch.c.
const syscallSlots = 1024

// argSpecs is the kernel's arg_specs table for an architecture: which
// arguments of each syscall a record copies from user memory.
func argSpecs(arch syscalls.Arch) [2][syscallSlots]bpfArgSpec {
	var t [2][syscallSlots]bpfArgSpec
	for c, compat := range []bool{false, true} {
		for nr := range min(syscalls.MaxNr(arch, compat), syscallSlots) {
			k := syscalls.CaptureOf(arch, nr, compat)
			t[c][nr] = bpfArgSpec{
				Path: uint8(k.Path + 1), Path2: uint8(k.Path2 + 1),
				Addr: uint8(k.Addr + 1), AddrLen: uint8(k.AddrLen + 1),
			}
		}
	}
	return t
}

func newClock() (Clock, error) {
	var ts unix.Timespec
	now := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return Clock{}, fmt.Errorf("read CLOCK_MONOTONIC: %w", err)
	}
	return Clock{Boot: now.Add(-time.Duration(ts.Nano()))}, nil
}

// Records delivers the decoded failure records. The channel is closed by
// Close.
func (s *Sensor) Records() <-chan Record { return s.queue.ch }

// Programs returns the attached programs, for their run-time statistics.
func (s *Sensor) Programs() map[string]*ebpf.Program {
	m := map[string]*ebpf.Program{"sys_exit": s.objs.OnSysExit}
	if s.cfg.Durations {
		m["sys_enter"] = s.objs.OnSysEnter
	}
	return m
}

// readLoop decodes records until the ring reader is closed.
func (s *Sensor) readLoop() {
	defer s.wg.Done()
	defer s.queue.close()
	readRecords(s.ring, s.clock, s.queue, &s.records, &s.decodeErrs, s.log)
}

func readRecords(rd ringReader, clock Clock, q *queue, n, decodeErrs *atomic.Uint64, log *zap.Logger) {
	var raw ringbuf.Record
	for {
		if err := rd.ReadInto(&raw); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return
			}
			log.Warn("read ring buffer", zap.Error(err))
			continue
		}
		r, err := DecodeRecord(raw.RawSample, clock)
		if err != nil {
			if decodeErrs.Add(1) == 1 {
				log.Error("decode sensor record", zap.Error(err))
			}
			continue
		}
		n.Add(1)
		q.push(r)
	}
}

// windowLoop opens a new record rate-limit window every RateWindow.
func (s *Sensor) windowLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.RateWindow)
	defer t.Stop()
	var w uint32
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w++
			if err := s.settings.update(func(st *bpfSettings) { st.RlWindow = w }); err != nil {
				s.log.Error("advance record rate-limit window", zap.Error(err))
			}
		}
	}
}

// Close detaches the programs first, so nothing of ours stays attached even
// if a later step fails, then stops the reader and frees the maps. It is
// safe on a nil or partly loaded Sensor, and more than once.
func (s *Sensor) Close() error {
	if s == nil {
		return nil
	}
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Sensor) close() error {
	var errs []error
	for _, l := range s.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach: %w", err))
		}
	}
	s.links = nil
	if s.epoch != nil {
		if err := s.epoch.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach: %w", err))
		}
		s.epoch = nil
	}
	if s.cancel != nil {
		s.cancel()
	}
	if s.ring != nil {
		if err := s.ring.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close ring reader: %w", err))
		}
	}
	s.wg.Wait()
	s.gens.close()
	if err := s.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close BPF objects: %w", err))
	}
	return errors.Join(errs...)
}

// nrLimit is the size of this architecture's syscall table: the kernel
// program folds every number at or above it into InvalidSyscall. An
// architecture pkg/syscalls has no table for folds nothing.
func nrLimit(compat bool) uint32 {
	if n := syscalls.MaxNr(syscalls.Native(), compat); n > 0 {
		return uint32(n)
	}
	return math.MaxUint32
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
