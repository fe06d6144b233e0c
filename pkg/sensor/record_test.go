package sensor

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/ringbuf"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// The hand-written decoder must agree with the layout bpf2go generated
// from the object's BTF.
func TestRecordLayoutMatchesBTF(t *testing.T) {
	var r bpfRecord
	checks := []struct {
		name      string
		got, want uintptr
	}{
		{"size", unsafe.Sizeof(r), recordSize},
		{"ts_ns", unsafe.Offsetof(r.TsNs), offTS},
		{"cgroup_id", unsafe.Offsetof(r.CgroupId), offCgroup},
		{"ret", unsafe.Offsetof(r.Ret), offRet},
		{"duration_ns", unsafe.Offsetof(r.DurationNs), offDuration},
		{"pid", unsafe.Offsetof(r.Pid), offPID},
		{"tid", unsafe.Offsetof(r.Tid), offTID},
		{"uid", unsafe.Offsetof(r.Uid), offUID},
		{"nr", unsafe.Offsetof(r.Nr), offNr},
		{"comm", unsafe.Offsetof(r.Comm), offComm},
		{"compat", unsafe.Offsetof(r.Compat), offCompat},
		{"flags", unsafe.Offsetof(r.Flags), offFlags},
		{"addr_len", unsafe.Offsetof(r.AddrLen), offAddrLen},
		{"args", unsafe.Offsetof(r.Args), offArgs},
		{"path", unsafe.Offsetof(r.Path), offPath},
		{"path2", unsafe.Offsetof(r.Path2), offPath2},
		{"addr", unsafe.Offsetof(r.Addr), offAddr},
		{"path size", unsafe.Sizeof(r.Path), PathMax},
		{"addr size", unsafe.Sizeof(r.Addr), AddrMax},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("struct record %s: BTF says %d, decoder uses %d", c.name, c.got, c.want)
		}
	}
}

func encodeRecord(ts, cgroup uint64, ret int64, dur uint64, pid, tid, uid, nr uint32, comm string, compat bool) []byte {
	b := make([]byte, recordSize)
	le := binary.LittleEndian
	le.PutUint64(b[offTS:], ts)
	le.PutUint64(b[offCgroup:], cgroup)
	le.PutUint64(b[offRet:], uint64(ret))
	le.PutUint64(b[offDuration:], dur)
	le.PutUint32(b[offPID:], pid)
	le.PutUint32(b[offTID:], tid)
	le.PutUint32(b[offUID:], uid)
	le.PutUint32(b[offNr:], nr)
	copy(b[offComm:offComm+16], comm)
	if compat {
		b[offCompat] = 1
	}
	return b
}

func TestDecodeRecord(t *testing.T) {
	boot := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := encodeRecord(1500, 4242, -13, 77, 100, 101, 1000, 5, "curl", true)
	r, err := DecodeRecord(b, Clock{Boot: boot})
	if err != nil {
		t.Fatal(err)
	}
	want := Record{
		Time: boot.Add(1500), MonoNS: 1500, PID: 100, TID: 101, UID: 1000, Comm: "curl",
		CgroupID: 4242, Syscall: 5, Compat: true, Ret: -13, DurationNS: 77,
	}
	if r != want {
		t.Fatalf("decoded %+v, want %+v", r, want)
	}
	if r.Errno() != 13 {
		t.Errorf("Errno() = %d, want 13 (EACCES)", r.Errno())
	}

	full := encodeRecord(1, 1, -2, 0, 1, 1, 0, 257, "0123456789abcdef", false)
	r, err = DecodeRecord(full, Clock{})
	if err != nil || r.Comm != "0123456789abcdef" {
		t.Errorf("16-byte comm without NUL: got %q, %v", r.Comm, err)
	}

	if _, err := DecodeRecord(b[:recordSize-1], Clock{}); err == nil {
		t.Error("short record decoded without error")
	}
	none := encodeRecord(1, 1, -38, 0, 1, 1, 0, nrNone, "x", false)
	if r, err := DecodeRecord(none, Clock{}); err != nil || r.Syscall != -1 {
		t.Errorf("exit with no syscall decoded as %d, %v; want -1", r.Syscall, err)
	}
	bad := encodeRecord(1, 1, -2, 0, 1, 1, 0, 1<<21, "x", false)
	if _, err := DecodeRecord(bad, Clock{}); err == nil {
		t.Error("record with an impossible syscall number decoded without error")
	}
}

// A compat (i386) connect record with a path, arguments and an address, as
// the kernel would write it: int $0x80 cannot run on every machine, so this
// is the crafted-input test of the 32-bit decoding.
func TestDecodeRecordArguments(t *testing.T) {
	b := encodeRecord(1, 9, -111, 0, 5, 5, 1000, 362, "nc", true)
	le := binary.LittleEndian
	for i, a := range []uint64{3, 0xffd0, 16, 0, 0, 0} {
		le.PutUint64(b[offArgs+8*i:], a)
	}
	le.PutUint16(b[offFlags:], flagHasPath|flagPathTruncated|flagHasPath2|flagPath2Unreadable|flagAddrUnreadable)
	copy(b[offPath:], "/etc/shadow\x00garbage after the NUL")
	sa := []byte{unix.AF_INET, 0, 0x1f, 0x90, 10, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0}
	copy(b[offAddr:], sa)
	le.PutUint16(b[offAddrLen:], uint16(len(sa)))
	r, err := DecodeRecord(b, Clock{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Args != [6]uint64{3, 0xffd0, 16, 0, 0, 0} || r.Path != "/etc/shadow" || !r.PathTruncated || r.PathUnreadable ||
		r.Path2 != "" || !r.Path2Unreadable || !r.AddrUnreadable || !r.Compat || r.Syscall != 362 {
		t.Errorf("decoded %+v", r)
	}
	if want := (SockAddr{Family: unix.AF_INET, IP: netip.MustParseAddr("10.0.0.7"), Port: 8080}); r.Addr != want {
		t.Errorf("address %+v, want %+v", r.Addr, want)
	}

	le.PutUint16(b[offAddrLen:], AddrMax+1)
	if _, err := DecodeRecord(b, Clock{}); err == nil {
		t.Error("a record claiming more address bytes than the kernel copies decoded without error")
	}
}

func TestDecodeSockaddr(t *testing.T) {
	v6 := make([]byte, 28)
	v6[0], v6[2], v6[3], v6[23] = unix.AF_INET6, 0x01, 0xbb, 1
	unixPath := append([]byte{unix.AF_UNIX, 0}, "/run/containerd/containerd.sock\x00junk"...)
	abstract := append([]byte{unix.AF_UNIX, 0, 0}, "dbus-x"...)
	for _, tc := range []struct {
		name string
		b    []byte
		want string
		fam  uint16
	}{
		{"ipv6", v6, "[::1]:443", unix.AF_INET6},
		{"ipv6 too short", v6[:20], "", unix.AF_INET6},
		{"ipv4 too short", []byte{unix.AF_INET, 0, 0, 80}, "", unix.AF_INET},
		{"unix", unixPath, "/run/containerd/containerd.sock", unix.AF_UNIX},
		{"abstract", abstract, "@dbus-x", unix.AF_UNIX},
		{"netlink", []byte{unix.AF_NETLINK, 0, 0, 0}, "", unix.AF_NETLINK},
		{"one byte", []byte{2}, "", 0},
		{"empty", nil, "", 0},
	} {
		a := DecodeSockaddr(tc.b)
		if a.String() != tc.want || a.Family != tc.fam {
			t.Errorf("%s: decoded %+v (%q), want %q family %d", tc.name, a, a.String(), tc.want, tc.fam)
		}
	}
}

func TestErrnoOf(t *testing.T) {
	for ret, want := range map[int64]uint16{
		-1: 1, -2: 2, -4095: 4095, -4096: 0, 0: 0, 3: 0,
		-0x7f0000000000: 0, // an mmap address seen as a signed number
	} {
		if got := ErrnoOf(ret); got != want {
			t.Errorf("ErrnoOf(%d) = %d, want %d", ret, got, want)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(1500, 4242, -13, 77, 100, 101, 1000, 5, "curl", true))
	f.Add(encodeRecord(0, 0, 0, 0, 0, 0, 0, 0, "", false))
	f.Add([]byte{1, 2, 3})
	f.Add(make([]byte, recordSize+9))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b, Clock{})
		if err != nil {
			return
		}
		if len(b) < recordSize {
			t.Fatalf("decoded a %d-byte record", len(b))
		}
		if len(r.Comm) > 16 || r.Syscall < -1 {
			t.Fatalf("decoded impossible record %+v", r)
		}
	})
}

// fakeRing replays samples, then reports itself closed.
type fakeRing struct {
	samples [][]byte
}

func (f *fakeRing) ReadInto(r *ringbuf.Record) error {
	if len(f.samples) == 0 {
		return ringbuf.ErrClosed
	}
	r.RawSample, f.samples = f.samples[0], f.samples[1:]
	return nil
}

func (f *fakeRing) Close() error { return nil }

func TestReadRecordsBoundsQueueAndCountsDrops(t *testing.T) {
	ring := &fakeRing{}
	for i := 0; i < 10; i++ {
		ring.samples = append(ring.samples, encodeRecord(uint64(i), 7, -2, 0, 1, 1, 0, 257, "a", false))
	}
	ring.samples = append(ring.samples, []byte("garbage"))
	q := newQueue(4)
	var n, bad atomic.Uint64
	readRecords(ring, Clock{}, q, &n, &bad, zap.NewNop())
	if n.Load() != 10 || bad.Load() != 1 {
		t.Fatalf("decoded %d and rejected %d, want 10 and 1", n.Load(), bad.Load())
	}
	if len(q.ch) != 4 || q.drops.Load() != 6 {
		t.Fatalf("queue holds %d with %d drops, want 4 and 6", len(q.ch), q.drops.Load())
	}
	for i := uint64(0); i < 4; i++ {
		if r := <-q.ch; r.MonoNS != i {
			t.Fatalf("queue is not in order: got record %d at %d", r.MonoNS, i)
		}
	}
}

func TestReadRecordsStopsOnClosedFile(t *testing.T) {
	q := newQueue(1)
	var n, bad atomic.Uint64
	readRecords(closedRing{}, Clock{}, q, &n, &bad, zap.NewNop())
	if n.Load() != 0 || bad.Load() != 0 || len(q.ch) != 0 {
		t.Fatalf("a closed ring produced %d records and %d errors", n.Load(), bad.Load())
	}
}

type closedRing struct{}

func (closedRing) ReadInto(*ringbuf.Record) error { return errors.Join(os.ErrClosed) }
func (closedRing) Close() error                   { return nil }

func TestRingBytesFollowsTheRecordRate(t *testing.T) {
	for _, c := range []struct {
		perWindow int
		window    time.Duration
		want      int
	}{
		{DefaultRecordsPerWindow, time.Second, 1 << 20}, // 8 × 512 × 768 B / 4 = 768 KiB
		{-1, time.Second, 64 << 10},                     // no records: the smallest ring
		{1, time.Second, 128 << 10},
		{64, time.Second, 8 << 20},
		{1 << 20, time.Second, 16 << 20}, // capped
		{8, 100 * time.Millisecond, 8 << 20},
	} {
		if got := ringBytesFor(c.perWindow, c.window); got != c.want {
			t.Errorf("ringBytesFor(%d, %s) = %d, want %d", c.perWindow, c.window, got, c.want)
		}
	}
	var cfg Config
	cfg.setDefaults()
	if cfg.RingBytes != 1<<20 {
		t.Errorf("default ring = %d bytes, want 1 MiB", cfg.RingBytes)
	}
}
