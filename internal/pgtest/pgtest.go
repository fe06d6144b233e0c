// Package pgtest runs a private, throwaway PostgreSQL server for tests: the
// Debian server binaries (package postgresql) run as the unprivileged
// postgres user on a free loopback port, with a data directory in a temp
// dir and fsync off, and every test gets a database of its own. A package
// starts one server in TestMain and hands DSNs to its tests.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is one running PostgreSQL server.
type Server struct {
	dir  string
	port int
	cmd  *exec.Cmd
	n    atomic.Int64
}

// binDir finds the newest /usr/lib/postgresql/<ver>/bin holding initdb.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		return "", errors.New("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: apt-get install postgresql")
	}
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(dirs[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(dirs[j]))))
		return vi > vj
	})
	return filepath.Dir(dirs[0]), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Options tunes a server; the zero value is what tests want.
type Options struct {
	// Durable keeps fsync and synchronous commit on, for benchmarks whose
	// figures must hold for a real deployment; tests run without them.
	Durable bool
}

// Start initializes and starts a server. initdb refuses to run as root, so
// when running as root the server runs as the postgres user the Debian
// package creates.
func Start(opts Options) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("make server dir: %w", err)
	}
	s := &Server{dir: dir}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("look up user postgres (created by apt-get install postgresql): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("chown server dir: %w", err)
		}
	}
	run := func(name string, args ...string) *exec.Cmd {
		c := exec.Command(filepath.Join(bin, name), args...)
		c.Dir = dir
		c.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
		return c
	}
	data := filepath.Join(dir, "data")
	if out, err := run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	if s.port, err = freePort(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pick a port: %w", err)
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logf.Close()
	args := []string{"-D", data, "-p", strconv.Itoa(s.port), "-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + dir, "-c", "max_connections=200"}
	if !opts.Durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	s.cmd = run("postgres", args...)
	// A test binary killed by its timeout must not leave a server behind;
	// SIGQUIT is postgres's immediate shutdown.
	s.cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := pgx.Connect(context.Background(), s.DSN("postgres"))
		if err == nil {
			c.Close(context.Background())
			return s, nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			s.Stop()
			return nil, fmt.Errorf("postgres did not accept connections: %w: %s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// DSN returns the URL of database db on the server.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// NewDB creates an empty database and returns its DSN.
func (s *Server) NewDB(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t%d", s.n.Add(1))
	c, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return s.DSN(name), nil
}

// DB creates a database for t and drops it when t ends.
func (s *Server) DB(t testing.TB) string {
	t.Helper()
	dsn, err := s.NewDB(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("t%d", s.n.Load())
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), s.DSN("postgres"))
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return dsn
}

// Stop stops the server (fast shutdown) and removes its files.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGINT) //nolint:errcheck // Wait reports what happened
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }() //nolint:errcheck // exit status of a stopped server
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			s.cmd.Process.Kill() //nolint:errcheck // last resort
			<-done
		}
	}
	os.RemoveAll(s.dir)
}

// Main is a TestMain body: it starts a server, runs the tests with it in
// *srv, and stops it. A missing server binary fails the package.
func Main(m *testing.M, srv **Server) int {
	s, err := Start(Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		return 1
	}
	*srv = s
	defer s.Stop()
	return m.Run()
}
