package attacks

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// corpus is ordinary work done with the host's own programs, as nobody,
// with a container's PATH: the default pack must raise nothing on any of
// it. Each checks that it did what it set out to (or failed the way an
// unprivileged run does, for apt-get).
var corpus = []Workload{
	benign(Corpus, "corpus-shell-script",
		"an entrypoint-style /bin/sh script running 300 external commands", corpusShellScript),
	nearMiss(Corpus, "corpus-xargs", "binary-discovery",
		"seq 150 | xargs -n1 true: 450 execve ENOENT along PATH", corpusXargs),
	nearMiss(Corpus, "corpus-find-exec", "binary-discovery",
		"find -exec true over 150 files: 450 execve ENOENT along PATH", corpusFindExec),
	benign(Corpus, "corpus-make", "make with 150 recipe lines (simple commands and shell lines)", corpusMake),
	benign(Corpus, "corpus-c-build", "make -j2 compiling and linking 4 C files with gcc", corpusCBuild),
	benign(Corpus, "corpus-python", "python3 start-up importing 25 standard modules", corpusPython),
	benign(Corpus, "corpus-node", "node start-up requiring 20 built-in modules", corpusNode),
	benign(Corpus, "corpus-jvm", "a JVM start (java -version)", corpusJVM),
	benign(Corpus, "corpus-apt-update", "apt-get update as non-root: denied its lock and lists (exit 100)",
		corpusAptUpdate),
	nearMiss(Corpus, "corpus-ps-aux", "permission-probing",
		"ps aux with the host's PID namespace: EACCES on every other user's /proc/<pid>/environ", corpusPsAux),
	nearMiss(Corpus, "corpus-retry-backoff", "network-scan",
		"a wait-for-it loop retrying a down service 12 times with backoff (bash /dev/tcp), then curl --retry",
		corpusRetry),
	benign(Corpus, "corpus-health-check",
		"a health-check loop: 30 rounds of curl to a down endpoint, a readiness-file test and /proc reads",
		corpusHealthCheck),
	nearMiss(Corpus, "corpus-sandbox-probe", "container-escape-attempt",
		"a sandboxing program probing unshare(1) --mount once and running unsandboxed", corpusSandboxProbe),
	nearMiss(Corpus, "corpus-ping", "raw-socket-attempt",
		"ping as nobody: a raw ICMP socket, then an ICMP datagram socket, both denied", corpusPing),
}

// asNobody prepares a corpus workload: it checks the programs it needs are
// on the container PATH, gives the scratch directory to nobody and drops
// to nobody.
func asNobody(scratch string, programs ...string) error {
	for _, p := range programs {
		if lookPath(p) == "" {
			return fmt.Errorf("%s is not installed in %s (apt-get install it)", p, strings.Join(debianPath, ":"))
		}
	}
	if err := os.Chown(scratch, nobody, nobody); err != nil {
		return fmt.Errorf("give scratch to nobody: %w", err)
	}
	return dropToNobody()
}

// lookPath finds a program in the container PATH.
func lookPath(name string) string {
	for _, d := range debianPath {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// closedPort returns a loopback TCP port nothing listens on.
func closedPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

func corpusShellScript(scratch string) error {
	if err := asNobody(scratch, "basename", "date", "expr", "cat", "tr", "cut"); err != nil {
		return err
	}
	return shellOK(scratch, `i=0
while [ $i -lt 50 ]; do
	n=$(expr $i + 1); d=$(date +%s); b=$(basename /srv/app/file$i.txt .txt)
	echo "$b $d" | tr a-z A-Z | cut -c1-4 >/dev/null; cat /etc/hostname >/dev/null
	i=$n
done
[ "$b" = file49 ]`)
}

func corpusXargs(scratch string) error {
	if err := asNobody(scratch, "seq", "xargs", "true"); err != nil {
		return err
	}
	return shellOK(scratch, `seq 150 | xargs -n1 true`)
}

func corpusFindExec(scratch string) error {
	dir := filepath.Join(scratch, "tree")
	for i := range 150 {
		sub := filepath.Join(dir, strconv.Itoa(i%10))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d.txt", i)), []byte("x"), 0o644); err != nil {
			return err
		}
	}
	if err := asNobody(scratch, "find", "true"); err != nil {
		return err
	}
	return shellOK(scratch, `find tree -type f -name '*.txt' -exec true {} \;`)
}

func corpusMake(scratch string) error {
	var mk strings.Builder
	mk.WriteString("all:\n")
	for i := range 75 {
		// A simple command make runs itself (through PATH), and a shell
		// line it hands to /bin/sh.
		fmt.Fprintf(&mk, "\ttouch out-%d.stamp\n\techo step %d | tr a-z A-Z > out-%d.log\n", i, i, i)
	}
	if err := os.WriteFile(filepath.Join(scratch, "Makefile"), []byte(mk.String()), 0o644); err != nil {
		return err
	}
	if err := asNobody(scratch, "make", "touch", "tr"); err != nil {
		return err
	}
	if err := shellOK(scratch, `make -s`); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(scratch, "out-74.log")); err != nil {
		return fmt.Errorf("make did not run every recipe line: %w", err)
	}
	return nil
}

func corpusCBuild(scratch string) error {
	files := map[string]string{
		"util.h":  "#pragma once\n#include <stddef.h>\nsize_t count_words(const char *s);\nint clamp(int v, int lo, int hi);\n",
		"words.c": "#include <ctype.h>\n#include \"util.h\"\nsize_t count_words(const char *s) {\n\tsize_t n = 0; int in = 0;\n\tfor (; *s; s++) { if (isspace((unsigned char)*s)) in = 0; else if (!in) { in = 1; n++; } }\n\treturn n;\n}\n",
		"clamp.c": "#include \"util.h\"\nint clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }\n",
		"io.c":    "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <errno.h>\n#include <unistd.h>\nint read_all(int fd, char *buf, size_t n) { ssize_t r = read(fd, buf, n); return r < 0 ? -errno : (int)r; }\n",
		"main.c":  "#include <stdio.h>\n#include <pthread.h>\n#include <sys/socket.h>\n#include <netinet/in.h>\n#include \"util.h\"\nint main(void) { printf(\"%zu %d\\n\", count_words(\"a b c\"), clamp(7, 0, 5)); return 0; }\n",
		"Makefile": "CC = gcc\nCFLAGS = -O2 -Wall\nOBJS = words.o clamp.o io.o main.o\n" +
			"app: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n%.o: %.c util.h\n\t$(CC) $(CFLAGS) -c -o $@ $<\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(scratch, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	if err := asNobody(scratch, "make", "gcc"); err != nil {
		return err
	}
	if err := shellOK(scratch, `make -s -j2 && ./app | grep -qx '3 5'`, "TMPDIR="+scratch); err != nil {
		return err
	}
	return nil
}

func corpusPython(scratch string) error {
	if err := asNobody(scratch, "python3"); err != nil {
		return err
	}
	return shellOK(scratch, `python3 -c '
import json, os, sys, re, subprocess, http.client, email.message, asyncio, decimal, sqlite3
import xml.etree.ElementTree, urllib.request, logging, argparse, csv, hashlib, socket, ssl
import tempfile, shutil, datetime, collections, itertools, functools, typing, dataclasses
print(json.dumps({"ok": True}))' | grep -q ok`)
}

func corpusNode(scratch string) error {
	if err := asNobody(scratch, "node"); err != nil {
		return err
	}
	return shellOK(scratch, `node -e '
for (const m of ["fs", "path", "http", "https", "crypto", "zlib", "child_process", "os", "url", "util",
  "stream", "events", "net", "dns", "readline", "buffer", "querystring", "string_decoder", "timers", "assert"])
  require(m);
console.log("ok")' | grep -q ok`)
}

func corpusJVM(scratch string) error {
	if err := asNobody(scratch, "java"); err != nil {
		return err
	}
	return shellOK(scratch, `java -Xmx64m -XX:+UseSerialGC -version 2>&1 | grep -qi version`)
}

func corpusAptUpdate(scratch string) error {
	if err := asNobody(scratch, "apt-get"); err != nil {
		return err
	}
	cmd := exec.Command("apt-get", "update")
	cmd.Env = shellEnv(scratch)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 100 || !strings.Contains(string(out), "Permission denied") {
		return fmt.Errorf("apt-get update as nobody: %v, want exit 100 with a permission error: %s", err, out)
	}
	return nil
}

func corpusPsAux(scratch string) error {
	if err := asNobody(scratch, "ps", "wc"); err != nil {
		return err
	}
	// Every process of the host, most of them another user's.
	return shellOK(scratch, `n=$(ps aux | wc -l); [ "$n" -gt 20 ] || { echo "ps aux listed only $n lines"; exit 1; }`)
}

func corpusRetry(scratch string) error {
	port, err := closedPort()
	if err != nil {
		return err
	}
	if err := asNobody(scratch, "bash", "curl", "sleep"); err != nil {
		return err
	}
	cmd := exec.Command("bash", "-c", `d=0.05; for i in $(seq 12); do
	if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then exit 1; fi
	sleep $d; case $d in 0.05) d=0.1;; 0.1) d=0.2;; *) d=0.4;; esac
done
curl -sS --retry 3 --retry-connrefused --retry-delay 1 --max-time 10 http://127.0.0.1:$PORT/ && exit 1
exit 0`)
	cmd.Env = append(shellEnv(scratch), "PORT="+strconv.Itoa(port))
	return run(cmd)
}

func corpusHealthCheck(scratch string) error {
	port, err := closedPort()
	if err != nil {
		return err
	}
	if err := asNobody(scratch, "curl", "cat", "sleep", "seq"); err != nil {
		return err
	}
	return shellOK(scratch, `for i in $(seq 30); do
	curl -fsS -o /dev/null --max-time 1 http://127.0.0.1:$PORT/healthz 2>/dev/null && exit 1
	test -f /tmp/errnowatch-ready-$$ && exit 1
	cat /proc/loadavg /proc/self/status >/dev/null
	sleep 0.05
done`, "PORT="+strconv.Itoa(port))
}

func corpusSandboxProbe(scratch string) error {
	if err := asNobody(scratch, "unshare", "true"); err != nil {
		return err
	}
	return shellOK(scratch, `if unshare --mount true 2>/dev/null; then echo "unshare --mount worked as nobody"; exit 1; fi
true`)
}

func corpusPing(scratch string) error {
	if err := asNobody(scratch); err != nil {
		return err
	}
	// What ping does, without the setuid or file capability it is
	// installed with on a host: raw first, then the datagram socket
	// net.ipv4.ping_group_range may allow.
	for _, typ := range []int{unix.SOCK_RAW, unix.SOCK_DGRAM} {
		fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		if err == nil {
			unix.Close(fd)
			if typ == unix.SOCK_RAW {
				return errors.New("a raw ICMP socket was allowed to nobody")
			}
			continue
		}
		if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EACCES) {
			return fmt.Errorf("icmp socket: %w, want EPERM or EACCES", err)
		}
	}
	return nil
}
