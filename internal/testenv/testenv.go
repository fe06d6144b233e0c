// Package testenv starts a real kube-apiserver and etcd (controller-runtime
// envtest) for tests, from the binaries `make kube-bins` builds into <repo>/bin.
// It hands tests a *rest.Config and a clientset for an admin user, and can add
// users with their own credentials so that tests can exercise RBAC.
//
// Starting the control plane takes seconds, so a test package shares one:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
//
//	func TestX(t *testing.T) { env := testenv.Shared(t); ... }
//
// Shared starts the control plane on first use and Main stops it after the
// last test. Start gives a test a control plane of its own instead.
//
// Missing binaries fail the test (they never skip it): run `make kube-bins`.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// Env is a running control plane.
type Env struct {
	// Config is an admin's (system:masters) client config.
	Config *rest.Config
	// Client is a clientset for Config.
	Client kubernetes.Interface

	env *envtest.Environment
}

// BinDir returns <repo>/bin, where `make kube-bins` puts kube-apiserver and
// etcd. The repository is found from this source file, so it works from any
// test's working directory.
func BinDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "bin"
	}
	// file is <repo>/internal/testenv/testenv.go.
	return filepath.Join(filepath.Dir(file), "..", "..", "bin")
}

// missing tells which control-plane binaries are not in dir.
func missing(dir string) error {
	var errs []error
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("testenv: control-plane binaries missing, run `make kube-bins` first: %w", errors.Join(errs...))
	}
	return nil
}

// start starts a control plane. KUBEBUILDER_ASSETS, when set, wins over
// <repo>/bin, as envtest documents.
func start() (*Env, error) {
	dir := BinDir()
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		dir = d
	}
	if err := missing(dir); err != nil {
		return nil, err
	}
	// envtest logs through controller-runtime's logger, which complains
	// with a stack trace when nobody set one.
	ctrllog.SetLogger(logr.Discard())
	te := &envtest.Environment{BinaryAssetsDirectory: dir}
	cfg, err := te.Start()
	if err != nil {
		_ = te.Stop()
		return nil, fmt.Errorf("testenv: start kube-apiserver and etcd from %s: %w", dir, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		_ = te.Stop()
		return nil, fmt.Errorf("testenv: clientset: %w", err)
	}
	return &Env{Config: cfg, Client: cs, env: te}, nil
}

// ServiceAccountKeyFile is the PEM file of the key the API server signs
// ServiceAccount tokens with: tests re-sign a real token with it to make,
// say, a genuinely expired one.
func (e *Env) ServiceAccountKeyFile() string {
	return filepath.Join(e.env.ControlPlane.APIServer.CertDir, "sa-signer.key")
}

// Stop stops the control plane.
func (e *Env) Stop() error {
	if e == nil || e.env == nil {
		return nil
	}
	return e.env.Stop()
}

// Start starts a control plane for t alone and stops it when t ends.
func Start(t testing.TB) *Env {
	t.Helper()
	e, err := start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("testenv: stop: %v", err)
		}
	})
	return e
}

// The package-wide control plane of Main and Shared.
var shared struct {
	sync.Mutex
	main    bool
	started bool
	env     *Env
	err     error
}

// Main runs the package's tests and stops the control plane that Shared
// started, if any. Call it from TestMain: os.Exit(testenv.Main(m)).
func Main(m *testing.M) int {
	shared.Lock()
	shared.main = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	defer shared.Unlock()
	if shared.env != nil {
		if err := shared.env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: stop: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		shared.env = nil
	}
	return code
}

// Shared returns the package's control plane, starting it on first use.
// Tests share its objects, so each test should work in a namespace of its
// own. The package's TestMain must call Main, which stops it.
func Shared(t testing.TB) *Env {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if !shared.main {
		t.Fatal("testenv: Shared needs TestMain to run the tests through testenv.Main, which stops the control plane")
	}
	if !shared.started {
		shared.started = true
		shared.env, shared.err = start()
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.env
}

// AddUser returns a client config that authenticates as user name in groups,
// with a client certificate the API server trusts. Such a user has no
// permissions until RBAC grants some.
func (e *Env) AddUser(name string, groups ...string) (*rest.Config, error) {
	u, err := e.env.ControlPlane.AddUser(envtest.User{Name: name, Groups: groups}, &rest.Config{QPS: 1000, Burst: 2000})
	if err != nil {
		return nil, fmt.Errorf("testenv: add user %s: %w", name, err)
	}
	return u.Config(), nil
}

// Namespace makes a namespace with a generated name for t and deletes it
// when t ends, so tests sharing a control plane do not see each other's
// objects. (envtest runs no controllers: objects in it are not
// garbage-collected, only deleted with the namespace's own deletion.)
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	ns, err := e.Client.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("testenv: create namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = e.Client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}
