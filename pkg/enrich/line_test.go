package enrich

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// A record written as a line and read back is the same record: the one
// line type is what keeps trace -o json and rules test in agreement.
func TestLineRoundTrip(t *testing.T) {
	when := time.Date(2026, 5, 1, 2, 3, 4, 5000, time.UTC)
	for _, r := range []sensor.Record{
		{Time: when, PID: 7, TID: 8, UID: 1000, Comm: "cat", CgroupID: 99, Syscall: unix.SYS_OPENAT, Ret: -13,
			Args: [6]uint64{0xffffff9c, 0x7ffe0000, 0}, Path: "/etc/shadow"},
		{Time: when, PID: 7, TID: 7, Comm: "nc", CgroupID: 99, Syscall: unix.SYS_CONNECT, Ret: -111,
			Addr: sensor.SockAddr{Family: unix.AF_INET6, IP: netip.MustParseAddr("fd00::1"), Port: 2379}},
		{Time: when, Comm: "x", Syscall: unix.SYS_CONNECT, Ret: -2,
			Addr: sensor.SockAddr{Family: unix.AF_UNIX, Unix: "/run/docker.sock"}, AddrUnreadable: false},
		{Time: when, Comm: "x", Syscall: unix.SYS_RENAMEAT2, Ret: -1, Path: strings.Repeat("a", 255), PathTruncated: true,
			Path2Unreadable: true, DurationNS: 1234},
		{Time: when, Comm: "x", Syscall: 5, Compat: true, Ret: -9},
	} {
		b, err := json.Marshal(LineOf(&r, "/kubepods/x", LinePod{Namespace: "ns", Pod: "p"}))
		if err != nil {
			t.Fatal(err)
		}
		var l Line
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatalf("read back %s: %v", b, err)
		}
		got, err := l.Record()
		if err != nil {
			t.Fatalf("record of %s: %v", b, err)
		}
		want := r
		want.DurationNS = 0 // written only in duration mode (trace sets it)
		if got != want {
			t.Errorf("line %s\nread back as %+v\nwant        %+v", b, got, want)
		}
		if l.Namespace != "ns" || l.Pod != "p" || l.CgroupPath != "/kubepods/x" {
			t.Errorf("line %s lost its workload", b)
		}
	}
}

func TestLineErrors(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`{"syscall":"openat","errno":"EACCES"}`, `no "time"`},
		{`{"time":"2026-01-01T00:00:00Z","syscall":"opnat","errno":"EACCES"}`, `unknown syscall "opnat"`},
		{`{"time":"2026-01-01T00:00:00Z","syscall":"connect","errno":2,"family":"AF_BOGUS","addr":"x"}`, `unknown address family "AF_BOGUS"`},
	} {
		var l Line
		err := json.Unmarshal([]byte(tc.line), &l)
		if err == nil {
			_, err = l.Record()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", tc.line, err, tc.want)
		}
	}
	var l Line
	if err := json.Unmarshal([]byte(`{"errno":"EACCESS"}`), &l); err == nil || !strings.Contains(err.Error(), "EACCES") {
		t.Errorf("a misspelled errno: got %v", err)
	}
}
