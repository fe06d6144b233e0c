// Package testutil is the home of the helpers errnowatch's tests and
// benchmarks share: each takes testing.TB, so a benchmark uses the same
// helper as a test, and cleans up with TB.Cleanup. Helpers with a larger
// subject have packages of their own next to it: internal/testenv (a real
// kube-apiserver), internal/pgtest (a real PostgreSQL) and
// pkg/cgroup/cgrouptest (cgroups of a test's own).
package testutil

import (
	"bufio"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
)

// WriteKubeconfig writes c's server and credentials as a kubeconfig file in
// a directory of tb's, as a user's kubeconfig or a pod's in-cluster config
// would give them, and returns its path.
func WriteKubeconfig(tb testing.TB, c *rest.Config) string {
	tb.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CAData}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: c.CertData, ClientKeyData: c.KeyData, Token: c.BearerToken}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "admin"}
	cfg.CurrentContext = "test"
	p := filepath.Join(tb.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		tb.Fatal(err)
	}
	return p
}

// FreeAddr returns a loopback host:port that was free a moment ago, for a
// server the test starts next.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Child is a process in a cgroup of the test's that a test drives line by
// line: it writes commands to In and reads answers with Expect.
type Child struct {
	tb  testing.TB
	Cmd *exec.Cmd
	In  io.WriteCloser
	Out *bufio.Scanner
}

// StartChild starts cmd in cg with its stdin and stdout piped to the test.
// Cleanup closes its stdin and waits for it; Stop does it sooner.
func StartChild(tb testing.TB, cg *cgrouptest.Dir, cmd *exec.Cmd) *Child {
	tb.Helper()
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cg.Start(cmd); err != nil {
		tb.Fatalf("start child in %s: %v", cg.Rel, err)
	}
	c := &Child{tb: tb, Cmd: cmd, In: in, Out: bufio.NewScanner(out)}
	tb.Cleanup(c.Stop)
	return c
}

// Expect reads the child's next line and fails the test unless it is want.
func (c *Child) Expect(want string) {
	c.tb.Helper()
	if !c.Out.Scan() {
		c.tb.Fatalf("child exited before %q: %v", want, c.Out.Err())
	}
	if got := c.Out.Text(); got != want {
		c.tb.Fatalf("child said %q, want %q", got, want)
	}
}

// Send writes line and a newline to the child's stdin.
func (c *Child) Send(line string) {
	c.tb.Helper()
	if _, err := io.WriteString(c.In, line+"\n"); err != nil {
		c.tb.Fatalf("send to child: %v", err)
	}
}

// Stop closes the child's stdin (its cue to exit) and waits for it; it may
// be called more than once.
func (c *Child) Stop() {
	c.In.Close()
	if c.Cmd.ProcessState == nil {
		c.Cmd.Wait() //nolint:errcheck // a child stopped early may exit with an error
	}
}
