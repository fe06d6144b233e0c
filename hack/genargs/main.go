// Command genargs writes pkg/syscalls/zargs.go: the argument signature of
// every syscall, which the sensor uses to decide which arguments of a failing
// call to read (paths, socket addresses) and the rules stage uses to name the
// integer arguments of a record.
//
// Source: the kernel's own SYSCALL_DEFINE metadata. Each SYSCALL_DEFINEn(name,
// type, arg, ...) in the kernel source also defines the tracepoint
// syscalls:sys_enter_<name>, whose format file in tracefs lists the
// arguments with the C types and names the kernel itself declares. That is
// the one list that is both complete (every syscall a kernel has) and
// exactly right (it is compiled from the definitions, so it cannot drift from
// them the way man pages and strace's hand-kept tables do). Reading it needs a
// running kernel with CONFIG_FTRACE_SYSCALLS, so `-snapshot` copies it once
// into signatures.txt, which is committed; the default mode reads only that
// file, so `make verify` regenerates byte-identically on any machine.
// Syscalls compiled out of the snapshot kernel (module loading, kexec) have no
// event; supplement.txt holds their SYSCALL_DEFINE lines from the kernel
// source, parsed the way the macro expands them.
//
// Why not x/sys, strace or man pages: x/sys has numbers but no argument
// names or types; strace's tables are hand-kept per syscall decoder; man
// pages give the libc wrapper's prototype, not the kernel's.
//
// Usage:
//
//	go run ./hack/genargs -snapshot /sys/kernel/tracing   # refresh signatures.txt (root)
//	go run ../../hack/genargs                             # from pkg/syscalls, via go:generate
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
)

func main() {
	snapshot := flag.String("snapshot", "", "tracefs mount to snapshot into -in (e.g. /sys/kernel/tracing)")
	in := flag.String("in", "", "signature snapshot (default: signatures.txt next to this program)")
	out := flag.String("o", "zargs.go", "output file")
	flag.Parse()
	if *in == "" {
		_, self, _, _ := runtime.Caller(0)
		*in = filepath.Join(filepath.Dir(self), "signatures.txt")
	}
	if *snapshot != "" {
		if err := takeSnapshot(*snapshot, *in); err != nil {
			log.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(*in)
	if err != nil {
		log.Fatal(err)
	}
	sup, err := os.ReadFile(filepath.Join(filepath.Dir(*in), "supplement.txt"))
	if err != nil {
		log.Fatal(err)
	}
	more, err := parseDefines(sup)
	if err != nil {
		log.Fatal(err)
	}
	src, err := generate(append(b, more...))
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		log.Fatal(err)
	}
}

var fieldRE = regexp.MustCompile(`^\s*field:(.+?);\s*offset:\d+;\s*size:\d+;\s*signed:\d+;`)

// takeSnapshot writes one line per sys_enter event: its name, then each
// argument as "type name", tab-separated.
func takeSnapshot(tracefs, out string) error {
	dirs, err := filepath.Glob(filepath.Join(tracefs, "events/syscalls/sys_enter_*"))
	if err != nil || len(dirs) == 0 {
		return fmt.Errorf("no syscalls:sys_enter_* events under %s (mount tracefs there; the kernel needs CONFIG_FTRACE_SYSCALLS): %v", tracefs, err)
	}
	release, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return fmt.Errorf("read kernel release: %w", err)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Syscall signatures from the kernel's SYSCALL_DEFINE metadata\n")
	fmt.Fprintf(&buf, "# (tracefs events/syscalls/sys_enter_*/format), kernel %s %s.\n", strings.TrimSpace(string(release)), runtime.GOARCH)
	buf.WriteString("# Written by `go run ./hack/genargs -snapshot /sys/kernel/tracing`; do not edit.\n")
	for _, d := range dirs {
		f, err := os.Open(filepath.Join(d, "format"))
		if err != nil {
			return fmt.Errorf("read event format: %w", err)
		}
		var args []string
		seenNr := false
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			m := fieldRE.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			decl := strings.TrimSpace(m[1])
			if strings.HasSuffix(decl, "__syscall_nr") {
				seenNr = true
				continue
			}
			if seenNr {
				args = append(args, decl)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return fmt.Errorf("read %s: %w", d, err)
		}
		name := strings.TrimPrefix(filepath.Base(d), "sys_enter_")
		buf.WriteString(strings.Join(append([]string{name}, args...), "\t"))
		buf.WriteByte('\n')
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// pathNames are the names the kernel gives string arguments that are file
// system paths. A string argument with another name (an xattr name, a key
// type, a file system type, a host name) is not one.
var pathNames = map[string]bool{
	"filename": true, "pathname": true, "path": true, "oldname": true, "newname": true,
	"specialfile": true, "special": true, "to_pathname": true, "from_pathname": true,
	"put_old": true, "new_root": true, "dir_name": true, "dev_name": true, "library": true,
}

// pathNamedName lists syscalls whose argument called "name" is a path.
var pathNamedName = map[string]bool{"acct": true, "umount": true, "name_to_handle_at": true}

// aliases maps syscall-table names to the event of the SYSCALL_DEFINE that
// implements them, where the two names differ and the event is not simply
// "new" + name (newstat implements stat). The compat (32-bit) entries are
// syscalls with the same argument layout as the native one they name; a
// 32-bit syscall that splits a 64-bit argument over two registers is left
// out rather than decoded wrongly.
var aliases = map[string]string{
	"umount2":     "umount",
	"stat64":      "newstat",
	"lstat64":     "newlstat",
	"fstat64":     "newfstat",
	"fstatat64":   "newfstatat",
	"chown32":     "chown",
	"lchown32":    "lchown",
	"fchown32":    "fchown",
	"setuid32":    "setuid",
	"setgid32":    "setgid",
	"setreuid32":  "setreuid",
	"setregid32":  "setregid",
	"setresuid32": "setresuid",
	"setresgid32": "setresgid",
	"setfsuid32":  "setfsuid",
	"setfsgid32":  "setfsgid",
	"getuid32":    "getuid",
	"getgroups32": "getgroups",
	"setgroups32": "setgroups",
	"getresuid32": "getresuid",
	"getresgid32": "getresgid",
	"sendfile":    "sendfile64",
	// time64 variants of i386 take a 64-bit timespec pointer where the
	// native call takes its own: the same arguments.
	"clock_settime64":  "clock_settime",
	"clock_adjtime64":  "clock_adjtime",
	"clock_gettime64":  "clock_gettime",
	"futex_time64":     "futex",
	"timer_settime64":  "timer_settime",
	"utimensat_time64": "utimensat",
	"getgid32":         "getgid",
	"geteuid32":        "geteuid",
	"getegid32":        "getegid",
	"ugetrlimit":       "getrlimit",
}

// kindOf classifies one argument by its C type and name.
func kindOf(syscall, typ, name string) string {
	t := strings.TrimSpace(strings.TrimPrefix(typ, "const "))
	switch {
	case (t == "char *" || t == "char*") && (pathNames[name] || (name == "name" && pathNamedName[syscall])):
		return "ArgPath"
	case t == "struct sockaddr *":
		return "ArgSockaddr"
	case strings.Contains(t, "*") || strings.HasSuffix(t, "_user_header_t") || strings.HasSuffix(t, "_user_data_t"):
		return "ArgPointer"
	}
	switch t {
	case "int", "pid_t", "key_serial_t", "clockid_t", "timer_t", "mqd_t", "rwf_t", "s32", "__s32":
		return "ArgInt"
	case "unsigned int", "unsigned", "u32", "uid_t", "gid_t", "qid_t", "umode_t", "old_uid_t", "old_gid_t", "__u32", "key_t", "unsigned short", "u16":
		return "ArgUint"
	case "long", "loff_t", "off_t", "ssize_t", "__s64", "s64", "time_t", "old_time_t":
		return "ArgLong"
	}
	// unsigned long, size_t, u64, aio_context_t, ...: a full register.
	return "ArgUlong"
}

type arg struct{ name, kind string }

var defineRE = regexp.MustCompile(`^SYSCALL_DEFINE(\d)\((\w+)((?:,[^,]+,[^,]+)*)\)$`)

// parseDefines turns SYSCALL_DEFINEn(name, type, arg, ...) lines into
// snapshot lines, as the kernel's macro turns them into event formats.
func parseDefines(b []byte) ([]byte, error) {
	var out bytes.Buffer
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := defineRE.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("supplement line %d: not a SYSCALL_DEFINE: %q", i+1, line)
		}
		parts := strings.Split(strings.TrimPrefix(m[3], ","), ",")
		if len(parts)/2 != int(m[1][0]-'0') {
			return nil, fmt.Errorf("supplement line %d: SYSCALL_DEFINE%s with %d arguments", i+1, m[1], len(parts)/2)
		}
		fields := []string{m[2]}
		for k := 0; k+1 < len(parts); k += 2 {
			typ := strings.Join(strings.Fields(strings.ReplaceAll(parts[k], "__user", "")), " ")
			typ = strings.ReplaceAll(typ, " *", " *")
			fields = append(fields, typ+" "+strings.TrimSpace(parts[k+1]))
		}
		out.WriteString(strings.Join(fields, "\t") + "\n")
	}
	return out.Bytes(), nil
}

func generate(snapshot []byte) ([]byte, error) {
	sigs := map[string][]arg{}
	var header []string
	for i, line := range strings.Split(string(snapshot), "\n") {
		if strings.HasPrefix(line, "#") {
			header = append(header, line)
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		fields := strings.Split(line, "\t")
		name := fields[0]
		if _, dup := sigs[name]; dup {
			return nil, fmt.Errorf("signatures line %d: %s is defined twice (snapshot and supplement?)", i+1, name)
		}
		if len(fields) > 7 {
			return nil, fmt.Errorf("signatures line %d: %s has %d arguments, syscalls have at most 6", i+1, name, len(fields)-1)
		}
		var args []arg
		paths, addrs := 0, 0
		for _, decl := range fields[1:] {
			j := strings.LastIndexAny(decl, " *")
			if j < 0 {
				return nil, fmt.Errorf("signatures line %d: argument %q has no type", i+1, decl)
			}
			typ, an := strings.TrimSpace(decl[:j+1]), decl[j+1:]
			a := arg{an, kindOf(name, typ, an)}
			if a.kind == "ArgPath" {
				paths++
			}
			if a.kind == "ArgSockaddr" {
				addrs++
			}
			args = append(args, a)
		}
		// An address is an input only when its length is passed by value;
		// accept's and getpeername's are outputs, empty when the call fails.
		for k := range args {
			if args[k].kind == "ArgSockaddr" && (k+1 >= len(args) || args[k+1].kind != "ArgInt") {
				args[k].kind = "ArgPointer"
				addrs--
			}
		}
		if paths > 2 || addrs > 1 {
			return nil, fmt.Errorf("signatures line %d: %s has %d paths and %d addresses; records hold 2 and 1", i+1, name, paths, addrs)
		}
		sigs[name] = args
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("signature snapshot is empty")
	}
	var buf bytes.Buffer
	buf.WriteString("// Code generated by hack/genargs; DO NOT EDIT.\n\n")
	for _, h := range header {
		buf.WriteString("//" + strings.TrimPrefix(h, "#") + "\n")
	}
	buf.WriteString("\npackage syscalls\n\n")
	buf.WriteString("// signatures maps a SYSCALL_DEFINE name to its arguments.\nvar signatures = map[string][]Arg{\n")
	names := make([]string, 0, len(sigs))
	for n := range sigs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&buf, "\t%q: {", n)
		for k, a := range sigs[n] {
			if k > 0 {
				buf.WriteString(", ")
			}
			fmt.Fprintf(&buf, "{%q, %s}", a.name, a.kind)
		}
		buf.WriteString("},\n")
	}
	buf.WriteString("}\n\n// aliases maps syscall-table names to the SYSCALL_DEFINE that implements them.\nvar aliases = map[string]string{\n")
	an := make([]string, 0, len(aliases))
	for n := range aliases {
		an = append(an, n)
	}
	slices.Sort(an)
	for _, n := range an {
		if _, ok := sigs[aliases[n]]; !ok {
			return nil, fmt.Errorf("alias %s → %s: no such event in the snapshot", n, aliases[n])
		}
		fmt.Fprintf(&buf, "\t%q: %q,\n", n, aliases[n])
	}
	buf.WriteString("}\n")
	src, err := format.Source(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("gofmt output: %w", err)
	}
	return src, nil
}
