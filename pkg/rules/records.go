package rules

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gobwas/glob"
	"github.com/google/cel-go/common/types/ref"
	"golang.org/x/sys/unix"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/sensor"
	"github.com/errnowatch/errnowatch/pkg/syscalls"
)

// Record is what a condition sees of one sampled failure record: the
// variable `records` is a list of them, newest first. The cel tags are the
// field names rules use; the checker rejects any other name.
type Record struct {
	Syscall string `cel:"syscall"`
	Errno   string `cel:"errno"`
	Comm    string `cel:"comm"`
	UID     int64  `cel:"uid"`
	PID     int64  `cel:"pid"`
	TID     int64  `cel:"tid"`
	Compat  bool   `cel:"compat"`
	// Path is the first path argument, "" when the syscall takes none.
	Path           string `cel:"path"`
	PathTruncated  bool   `cel:"path_truncated"`
	PathUnreadable bool   `cel:"path_unreadable"`
	// PathRelative: the path does not start with "/", so it is relative to
	// the working directory or to a directory fd (args["dfd"]).
	PathRelative bool `cel:"path_relative"`
	// Name is Path's last element: the program execve searched for, the
	// file opened. It saves conditions a string loop per record.
	Name string `cel:"name"`
	// Path2 is the second path: rename's and link's target, mount's target.
	Path2 string `cel:"path2"`
	// Family is the socket family of socket() or of the address passed to
	// connect, bind or sendto: "AF_INET", "AF_INET6", "AF_UNIX", ...
	Family string `cel:"family"`
	// Addr is the IP address as text, or the unix socket path.
	Addr     string `cel:"addr"`
	Port     int64  `cel:"port"`
	SockType string `cel:"sock_type"` // socket(): "SOCK_STREAM", "SOCK_RAW", ...
	Protocol int64  `cel:"protocol"`  // socket()
	// Args are the integer arguments by their name in the kernel's
	// SYSCALL_DEFINE (pkg/syscalls): args["request"], args["sig"]. A
	// "<what>_flags" argument (clone, unshare) is also "flags".
	Args map[string]int64 `cel:"args"`
}

// Record and condition limits.
const (
	// maxSlotRecords bounds the records kept per failure source for the
	// `records` variable; older ones are evicted (Stats.RecordsEvicted).
	maxSlotRecords = 256
	// maxEvalRecords bounds the list one evaluation sees.
	maxEvalRecords = 256
	// maxGlobs bounds the compiled patterns cached for glob().
	maxGlobs = 4096
)

var sockTypeNames = map[int64]string{
	unix.SOCK_STREAM: "SOCK_STREAM", unix.SOCK_DGRAM: "SOCK_DGRAM", unix.SOCK_RAW: "SOCK_RAW",
	unix.SOCK_RDM: "SOCK_RDM", unix.SOCK_SEQPACKET: "SOCK_SEQPACKET", unix.SOCK_DCCP: "SOCK_DCCP",
	unix.SOCK_PACKET: "SOCK_PACKET",
}

// ViewOf is what a condition sees of a sensor record.
func ViewOf(r *sensor.Record) *Record {
	arch := syscalls.Native()
	name := syscalls.Name(arch, int(r.Syscall), r.Compat)
	v := &Record{
		Syscall: name, Errno: syscalls.ErrnoName(r.Errno()), Comm: r.Comm,
		UID: int64(r.UID), PID: int64(r.PID), TID: int64(r.TID), Compat: r.Compat,
		Path: r.Path, PathTruncated: r.PathTruncated, PathUnreadable: r.PathUnreadable,
		PathRelative: r.Path != "" && r.Path[0] != '/',
		Name:         r.Path[strings.LastIndexByte(r.Path, '/')+1:],
		Path2:        r.Path2,
		Args:         map[string]int64{},
	}
	for i, a := range syscalls.Signature(name) {
		switch a.Kind {
		case syscalls.ArgInt, syscalls.ArgUint, syscalls.ArgLong, syscalls.ArgUlong:
			v.Args[a.Name] = syscalls.DecodeArg(a.Kind, r.Args[i])
		}
	}
	for n, x := range v.Args {
		if len(n) > 6 && n[len(n)-6:] == "_flags" {
			if _, ok := v.Args["flags"]; !ok {
				v.Args["flags"] = x
			}
		}
	}
	if r.Addr.Family != 0 {
		v.Family = syscalls.FamilyName(r.Addr.Family)
		if r.Addr.IP.IsValid() {
			v.Addr, v.Port = r.Addr.IP.String(), int64(r.Addr.Port)
		} else {
			v.Addr = r.Addr.Unix
		}
	}
	if name == "socket" || name == "socketpair" {
		v.Family = syscalls.FamilyName(uint16(v.Args["family"]))
		t := v.Args["type"] & 0xf // the rest are SOCK_NONBLOCK, SOCK_CLOEXEC
		if n, ok := sockTypeNames[t]; ok {
			v.SockType = n
		} else {
			v.SockType = "SOCK_" + strconv.FormatInt(t, 10)
		}
		v.Protocol = v.Args["protocol"]
	}
	return v
}

// slotRec is a sampled record kept for the records variable and for the
// targets of alerts.
type slotRec struct {
	seq    int64
	ck     countKey
	comm   string
	target alert.Target // Kind "" when the record names nothing
	rec    sensor.Record
	v      ref.Val // the CEL value of ViewOf(rec), made when a condition first reads it
}

// addRecord keeps a record, at most maxSlotRecords per slot.
func (si *slotInfo) addRecord(e *Engine, seq int64, ck countKey, r *sensor.Record) {
	if len(si.recs) >= maxSlotRecords {
		si.recs = slices.Delete(si.recs, 0, 1)
		e.recEvicted.Add(1)
	}
	si.recs = append(si.recs, slotRec{seq: seq, ck: ck, comm: r.Comm, target: targetOf(r), rec: *r})
}

// targetOf is what a record says was denied, without syscall and errno.
func targetOf(r *sensor.Record) alert.Target {
	var t alert.Target
	switch {
	case r.Path != "":
		t.Kind, t.Target = alert.TargetFile, r.Path
		if r.PathTruncated {
			t.Target += "..."
		}
		if r.Path2 != "" {
			t.Target += " -> " + r.Path2
		}
	case r.Addr.String() != "":
		t.Kind, t.Target = alert.TargetNetwork, r.Addr.String()
	}
	if len(t.Target) > alert.MaxTargetLen {
		t.Target = t.Target[:alert.MaxTargetLen] + "..."
	}
	return t
}

// eachRecord calls f for the records of the key's sources that match the
// rule and the key, in the intervals (after, seq], newest first, until f
// returns false.
func (e *Engine) eachRecord(s *ruleState, st *keyState, after, seq int64, f func(*slotRec) bool) {
	take := func(si *slotInfo) bool {
		for i := len(si.recs) - 1; i >= 0; i-- {
			p := &si.recs[i]
			if p.seq <= after {
				break
			}
			if p.seq > seq || !s.r.sys.has(p.ck.sys) || !s.r.errnos.has(p.ck.errno) || !s.r.scope.commOK(p.comm) ||
				(s.r.GroupBy == alert.GroupByProcess && p.comm != st.key.comm) {
				continue
			}
			if !f(p) {
				return false
			}
		}
		return true
	}
	if s.r.GroupBy == alert.GroupByNode {
		for i := range e.slots {
			if si := &e.slots[i]; si.used && e.scopeOK(s, si.meta, int32(i)) && !take(si) {
				return
			}
		}
		return
	}
	for _, r := range st.slots {
		if e.refValid(r) && !take(&e.slots[r.slot]) {
			return
		}
	}
}

// maxAlertTargets bounds the distinct targets an open alert tallies; the
// alert shows the MaxTargets busiest.
const maxAlertTargets = 64

type targetKey struct {
	ck     countKey
	kind   alert.TargetKind
	target string
}

// tallyTargets adds the targets of the key's records after its last tally
// up to seq, and returns the busiest, grouped by syscall and errno.
func (e *Engine) tallyTargets(s *ruleState, st *keyState, seq int64) []alert.Target {
	after := max(st.targetSeq, seq-s.buckets)
	e.eachRecord(s, st, after, seq, func(p *slotRec) bool {
		if p.target.Kind == "" {
			return true
		}
		k := targetKey{p.ck, p.target.Kind, p.target.Target}
		if _, ok := st.targets[k]; ok || len(st.targets) < maxAlertTargets {
			if st.targets == nil {
				st.targets = map[targetKey]uint64{}
			}
			st.targets[k]++
		} else {
			e.targetsDropped.Add(1)
		}
		return true
	})
	st.targetSeq = seq
	if len(st.targets) == 0 {
		return nil
	}
	type entry struct {
		k targetKey
		n uint64
	}
	groups := map[countKey]uint64{}
	es := make([]entry, 0, len(st.targets))
	for k, n := range st.targets {
		groups[k.ck] += n
		es = append(es, entry{k, n})
	}
	// Busiest (syscall, errno) group first, then busiest target in it; the
	// rest breaks ties so the order is stable.
	slices.SortFunc(es, func(a, b entry) int {
		if c := cmp.Compare(groups[b.k.ck], groups[a.k.ck]); c != 0 {
			return c
		}
		if a.k.ck != b.k.ck {
			return cmp.Or(cmp.Compare(a.k.ck.sys.nr, b.k.ck.sys.nr), cmp.Compare(a.k.ck.errno, b.k.ck.errno),
				boolCmp(a.k.ck.sys.compat, b.k.ck.sys.compat))
		}
		return cmp.Or(cmp.Compare(b.n, a.n), strings.Compare(a.k.target, b.k.target))
	})
	arch := syscalls.Native()
	out := make([]alert.Target, 0, min(len(es), alert.MaxTargets))
	for _, e := range es[:min(len(es), alert.MaxTargets)] {
		out = append(out, alert.Target{Syscall: syscalls.Name(arch, int(e.k.ck.sys.nr), e.k.ck.sys.compat),
			Errno: syscalls.ErrnoName(e.k.ck.errno), Kind: e.k.kind, Target: e.k.target, Count: e.n})
	}
	return out
}

// recordsOf returns the records in the window that match the rule and the
// key, newest first, at most maxEvalRecords. The slice is scratch space,
// valid until the next call.
func (e *Engine) recordsOf(s *ruleState, st *keyState, seq int64) []ref.Val {
	buf := e.recBuf[:0]
	e.eachRecord(s, st, seq-s.buckets, seq, func(p *slotRec) bool {
		if p.v == nil {
			// Adapting a native struct goes through reflection: once per
			// record, not once per evaluation.
			env, _ := celEnv() // compiled before any condition exists
			p.v = env.CELTypeAdapter().NativeToValue(ViewOf(&p.rec))
		}
		buf = append(buf, p.v)
		return len(buf) < maxEvalRecords
	})
	e.recBuf = buf
	return buf
}

// globCache holds compiled glob() patterns; patterns are literals in rules,
// so the cache stays small, and it is bounded against conditions that build
// patterns from record fields.
var globCache = struct {
	sync.Mutex
	m map[string]glob.Glob
}{m: map[string]glob.Glob{}}

// compileGlob compiles a shell pattern in which * and ? do not match "/"
// and ** matches anything, "/" included.
func compileGlob(pattern string) (glob.Glob, error) {
	globCache.Lock()
	g, ok := globCache.m[pattern]
	globCache.Unlock()
	if ok {
		return g, nil
	}
	g, err := glob.Compile(pattern, '/')
	if err != nil {
		return nil, fmt.Errorf("bad glob pattern %q: %w", pattern, err)
	}
	globCache.Lock()
	if len(globCache.m) >= maxGlobs {
		clear(globCache.m)
	}
	globCache.m[pattern] = g
	globCache.Unlock()
	return g, nil
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
