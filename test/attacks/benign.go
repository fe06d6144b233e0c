package attacks

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// shellEnv is what a container's shell runs with.
func shellEnv(scratch string) []string {
	return []string{"PATH=" + strings.Join(debianPath, ":"), "HOME=" + scratch, "LANG=C.UTF-8", "TERM=dumb"}
}

func run(cmd *exec.Cmd) error {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}

// benignShell is an entrypoint script and an interactive login: dash
// searches PATH with execve, failing once per directory before the one
// holding the command; bash, and busybox sh for what is not one of its
// applets, search with stat; bash reads its profile files, most of which do
// not exist. Entrypoint scripts also look for optional tools with command
// -v, which fails in every PATH directory for the ones not installed.
func benignShell(scratch string) error {
	script := `for i in 1 2 3; do
	ls / >/dev/null; cat /etc/hostname >/dev/null; id -u >/dev/null; uname -r >/dev/null
	date >/dev/null; head -c1 /etc/passwd >/dev/null; wc -l /etc/passwd >/dev/null
	sort /etc/hostname >/dev/null; grep -q root /etc/passwd; sed -n 1p /etc/passwd >/dev/null
done
for t in git curl wget python3 jq tini gosu su-exec; do command -v "$t" >/dev/null 2>&1 || true; done
nonexistent-command-typo 2>/dev/null || true`
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = shellEnv(scratch)
	if err := run(cmd); err != nil {
		return err
	}
	if _, err := exec.LookPath("bash"); err == nil {
		cmd = exec.Command("bash", "-lc", `command -v git >/dev/null; type no-such-tool >/dev/null 2>&1; cd /tmp; ls >/dev/null; true`)
		cmd.Env = shellEnv(scratch)
		if err := run(cmd); err != nil {
			return err
		}
	}
	return nil
}

// benignPackageManager does what dpkg does around every file of every
// package it unpacks: look for the file and its .dpkg-new, .dpkg-tmp and
// .dpkg-old siblings, which mostly do not exist.
func benignPackageManager(string) error {
	paths := installedFiles(4000)
	if len(paths) < 200 {
		return fmt.Errorf("found only %d installed files to check", len(paths))
	}
	// dpkg goes over a package's files when it unpacks them and again when
	// it configures the package and runs its triggers. A small image (a
	// busybox one has a few hundred files and no dpkg database) is gone
	// over several times, so that the storm is as large as on a full
	// system, where one pass over 4000 files makes it.
	passes := max(1, (2000+len(paths)-1)/len(paths))
	var st unix.Stat_t
	enoent := 0
	for range passes {
		for _, p := range paths {
			_ = unix.Lstat(p, &st)
			if err := unix.Lstat(p+".dpkg-new", &st); errors.Is(err, unix.ENOENT) {
				enoent++
			}
			if fd, err := unix.Open(p+".dpkg-tmp", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
				unix.Close(fd)
			}
			_ = unix.Access(p+".dpkg-old", unix.F_OK)
		}
	}
	if enoent < passes*len(paths)/2 {
		return fmt.Errorf("only %d of %d sibling lookups failed with ENOENT", enoent, passes*len(paths))
	}
	if _, err := exec.LookPath("dpkg-query"); err == nil {
		if err := run(exec.Command("dpkg-query", "-W", "-f", "${Package} ${Version}\n")); err != nil {
			return err
		}
	}
	return nil
}

// installedFiles lists up to n files dpkg installed, or, on a system
// without dpkg, the files under the directories packages install to.
func installedFiles(n int) []string {
	var paths []string
	lists, _ := filepath.Glob("/var/lib/dpkg/info/*.list")
	for _, l := range lists {
		f, err := os.Open(l)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() && len(paths) < n {
			paths = append(paths, sc.Text())
		}
		f.Close()
		if len(paths) >= n {
			return paths
		}
	}
	for _, root := range []string{"/usr", "/bin", "/sbin", "/lib", "/etc"} {
		// A root that is a symlink (/bin on a merged-/usr system) is
		// listed but not followed, so nothing is listed twice.
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			switch {
			case len(paths) >= n:
				return filepath.SkipAll
			case err != nil && d != nil && d.IsDir():
				return filepath.SkipDir
			case err != nil:
				return nil
			}
			paths = append(paths, p)
			return nil
		})
	}
	return paths
}

// standardHeaders are what a C program includes from libc.
var standardHeaders = []string{"stdio.h", "stdlib.h", "string.h", "unistd.h", "errno.h", "fcntl.h", "signal.h",
	"pthread.h", "stdint.h", "stddef.h", "stdbool.h", "limits.h", "time.h", "ctype.h", "assert.h", "math.h",
	"poll.h", "dirent.h", "netdb.h", "syslog.h"}

// benignCompiler searches include paths the way a C compiler does, trying
// each directory in order, and compiles for real when gcc is installed.
func benignCompiler(scratch string) error {
	headers, _ := filepath.Glob("/usr/include/*.h")
	if len(headers) > 300 {
		headers = headers[:300]
	}
	if len(headers) == 0 {
		// No libc headers (a runtime image): the search for the
		// standard ones still happens, and fails in every directory.
		for _, h := range standardHeaders {
			headers = append(headers, filepath.Join("/usr/include", h))
		}
	}
	own := filepath.Join(scratch, "include")
	if err := os.MkdirAll(own, 0o755); err != nil {
		return err
	}
	// Headers of the project itself, found in the second directory, after
	// the build's generated ones.
	for i := range 50 {
		name := filepath.Join(own, fmt.Sprintf("project_%d.h", i))
		if err := os.WriteFile(name, []byte("#pragma once\n"), 0o644); err != nil {
			return err
		}
		headers = append(headers, name)
	}
	dirs := []string{filepath.Join(scratch, "build", "include"), own, "/usr/local/include",
		"/usr/include/x86_64-linux-gnu", "/usr/include/aarch64-linux-gnu", "/usr/include"}
	found := 0
	for _, h := range headers {
		base := filepath.Base(h)
		for _, d := range dirs {
			fd, err := unix.Open(filepath.Join(d, base), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err == nil {
				unix.Close(fd)
				found++
				break
			}
		}
	}
	if found < len(headers)/2 {
		return fmt.Errorf("found only %d of %d headers", found, len(headers))
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		return nil
	}
	src := filepath.Join(scratch, "hello.c")
	code := `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include "project_1.h"
int main(void) { printf("%zu\n", strlen("hello")); return 0; }
`
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("gcc", "-O2", "-I", own, "-o", filepath.Join(scratch, "hello"), src)
	cmd.Env = append(shellEnv(scratch), "TMPDIR="+scratch)
	return run(cmd)
}

// benignDaemon is a service starting up: it waits for its database, serves
// non-blocking connections, probes optional config files, checks a
// dependency with ping, and, as its unprivileged user, fails the one
// setgroups and the one sandbox unshare such programs often try.
func benignDaemon(scratch string) error {
	// The database is not up yet: five refused connects with backoff.
	for range 5 {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		_ = unix.Connect(fd, &unix.SockaddrInet4{Port: 20099, Addr: [4]byte{127, 0, 0, 1}})
		unix.Close(fd)
		time.Sleep(20 * time.Millisecond)
	}
	if err := nonBlockingIO(); err != nil {
		return err
	}
	for _, p := range []string{"/etc/daemon/config.yaml", "/etc/daemon/config.d", "/usr/local/etc/daemon.conf",
		scratch + "/.daemonrc", "/run/secrets/token", "/var/run/daemon.pid"} {
		if fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
			unix.Close(fd)
		}
	}
	if err := dropToNobody(); err != nil {
		return err
	}
	_ = unix.Setgroups(nil) // not allowed as nobody: EPERM, and the daemon carries on
	// ping: a raw socket first, then an unprivileged ICMP socket.
	for _, typ := range []int{unix.SOCK_RAW, unix.SOCK_DGRAM} {
		if fd, err := unix.Socket(unix.AF_INET, typ, unix.IPPROTO_ICMP); err == nil {
			unix.Close(fd)
		}
	}
	_ = unix.Unshare(unix.CLONE_NEWNS) // a sandbox probe, EPERM
	for _, p := range []string{"/etc", "/usr/lib", "/var/lib"} {
		_ = unix.Access(p, unix.W_OK) // can I write here? EACCES
	}
	return nil
}

// nonBlockingIO accepts 50 connections and reads each before data arrives:
// EINPROGRESS on connect and EAGAIN on read, the commonest failures there
// are.
func nonBlockingIO() error {
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(ln)
	if err := unix.Bind(ln, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return err
	}
	if err := unix.Listen(ln, 64); err != nil {
		return err
	}
	sa, err := unix.Getsockname(ln)
	if err != nil {
		return err
	}
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	buf := make([]byte, 16)
	for range 50 {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		fds = append(fds, fd)
		_ = unix.Connect(fd, sa) // EINPROGRESS, or at once on loopback
		for range 2 {
			_, _ = unix.Read(fd, buf) // EAGAIN: nothing sent yet
		}
	}
	return nil
}
