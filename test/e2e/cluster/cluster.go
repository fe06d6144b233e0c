// Package cluster runs a real single-node Kubernetes cluster on this machine
// for errnowatch's whole-system tests: etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler, a kubelet on a private
// containerd (Debian's, with runc) with Debian's bridge CNI plugin, kube-proxy
// in iptables mode, and a small cluster DNS. Every binary is real: the
// Kubernetes ones are built from k8s.io/kubernetes by mk/kube.mk.
//
// Up starts the node from scratch in a directory of its own and returns when
// the node is Ready; Down stops every process and removes what they left:
// pod sandboxes and their network namespaces, mounts under the directory,
// the kubelet's cgroups, kube-proxy's iptables chains and the bridge. The
// processes do not belong to the caller: `e2e-node up` (make cluster-up)
// exits while the node runs on, and `e2e-node down` (make cluster-down), a
// test (Open) or a later Up find it again from the state file in the
// directory.
//
// Two things are specific to the machines this runs on, and the harness owns
// both so the product does not have to:
//   - They forbid lowering oom_score_adj (CAP_SYS_RESOURCE is outside the
//     bounding set), and runc fails every pod sandbox the kubelet asks for
//     with oom_score_adj -998 ("can't get final child's PID from pipe").
//     containerd runs runc through runc-wrapper (package runcwrap), which
//     raises negative values in the bundle's config.json to 0 and then runs
//     the real runc.
//   - Nothing resolves cluster names, so the harness serves cluster DNS
//     (ServeDNS) on the bridge's gateway, where the kubelet points pods.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	apiserverPort  = 6443
	etcdClientPort = 12379
	etcdPeerPort   = 12380
	bridgeName     = "ewe2e0"
)

// Component names, in start order.
const (
	Etcd              = "etcd"
	APIServer         = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
	Containerd        = "containerd"
	Kubelet           = "kubelet"
	KubeProxy         = "kube-proxy"
	DNS               = "dns"
)

var startOrder = []string{Etcd, APIServer, ControllerManager, Scheduler, Containerd, DNS, Kubelet, KubeProxy}

// Config says where the node's parts are.
type Config struct {
	// Dir holds everything the node writes; Down removes it.
	Dir string
	// BinDir holds etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler, kubelet and kube-proxy (make cluster-bins).
	BinDir string
	// Self is the e2e-node binary: it serves cluster DNS (`e2e-node dns`).
	Self string
	// RuncWrapper is the runc-wrapper binary (test/e2e/cmd/runc-wrapper),
	// containerd's runc.
	RuncWrapper string
	// NodeName defaults to "e2e-node".
	NodeName string
	// PodCIDR defaults to 198.18.0.0/24 (benchmarking range, outside the
	// private ranges a machine's own network uses).
	PodCIDR string
	// ServiceCIDR defaults to 198.18.1.0/24.
	ServiceCIDR string
	// PauseImage is the sandbox image; it must be imported before pods run.
	PauseImage string
	// CNIBinDir defaults to /usr/lib/cni (Debian's containernetworking-plugins).
	CNIBinDir string
	// Log receives progress lines; nil discards them.
	Log io.Writer `json:"-"`
}

func (cfg *Config) defaults() {
	if cfg.NodeName == "" {
		cfg.NodeName = "e2e-node"
	}
	if cfg.PodCIDR == "" {
		cfg.PodCIDR = "198.18.0.0/24"
	}
	if cfg.ServiceCIDR == "" {
		cfg.ServiceCIDR = "198.18.1.0/24"
	}
	if cfg.CNIBinDir == "" {
		cfg.CNIBinDir = "/usr/lib/cni"
	}
	if cfg.PauseImage == "" {
		cfg.PauseImage = "localhost/pause:e2e"
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
}

// Component is one process of the node, as recorded in the state file.
type Component struct {
	Args []string `json:"args"`
	PID  int      `json:"pid"`
	Log  string   `json:"log"`
}

// Cluster is a running node.
type Cluster struct {
	cfg        Config
	NodeIP     string                `json:"nodeIP"`
	Components map[string]*Component `json:"components"`
	// IPForward is net.ipv4.ip_forward before Up, restored by Down.
	IPForward string `json:"ipForward"`
	// Config as Up got it.
	Cfg *Config `json:"config"`
}

func (c *Cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.cfg.Dir}, elem...)...)
}

// AdminKubeconfig authenticates as a cluster admin (system:masters).
func (c *Cluster) AdminKubeconfig() string { return c.path("admin.kubeconfig") }

// ContainerdSocket is the private containerd's address.
func (c *Cluster) ContainerdSocket() string { return c.path("containerd.sock") }

// PodLogsDir is where the kubelet writes container logs
// (<namespace>_<pod>_<uid>/<container>/<restart>.log).
func (c *Cluster) PodLogsDir() string { return c.path("pod-logs") }

// NodeName is the node's name.
func (c *Cluster) NodeName() string { return c.cfg.NodeName }

// Dir is the node's directory.
func (c *Cluster) Dir() string { return c.cfg.Dir }

// Gateway is the bridge's address in the pod subnet: the pods' default
// route and their DNS server.
func (c *Cluster) Gateway() string {
	_, n, err := net.ParseCIDR(c.cfg.PodCIDR)
	if err != nil {
		return ""
	}
	ip := slices.Clone(n.IP.To4())
	ip[3]++
	return ip.String()
}

// Client returns an admin client of the node's API server.
func (c *Cluster) Client() (*kubernetes.Clientset, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig())
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(rc)
}

func (c *Cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.cfg.Log, "cluster: "+format+"\n", args...)
}

func (c *Cluster) statePath() string { return c.path("state.json") }

func (c *Cluster) save() error {
	c.Cfg = &c.cfg
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(c.statePath(), b, 0o644)
}

// Open finds the node Up started in dir.
func Open(dir string, log io.Writer) (*Cluster, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, fmt.Errorf("no node in %s (start one with make cluster-up): %w", dir, err)
	}
	var c Cluster
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("state of the node in %s: %w", dir, err)
	}
	c.cfg = *c.Cfg
	c.cfg.Log = log
	if c.cfg.Log == nil {
		c.cfg.Log = io.Discard
	}
	return &c, nil
}

// Up starts a node in cfg.Dir (made if missing, and it must hold no node)
// and returns once the node is Ready. On failure it stops what it started.
func Up(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	cfg.defaults()
	if cfg.Dir == "" || cfg.BinDir == "" || cfg.Self == "" || cfg.RuncWrapper == "" {
		return nil, errors.New("cluster: Dir, BinDir, Self and RuncWrapper are required")
	}
	if _, err := os.Stat(cfg.RuncWrapper); err != nil {
		return nil, fmt.Errorf("cluster: runc wrapper: %w (build it: go build -o bin/runc-wrapper ./test/e2e/cmd/runc-wrapper)", err)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("cluster: a node needs root (kubelet, containerd, iptables)")
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "state.json")); err == nil {
		return nil, fmt.Errorf("cluster: %s already holds a node: stop it first (make cluster-down)", cfg.Dir)
	}
	for _, bin := range []string{Etcd, APIServer, ControllerManager, Scheduler, Kubelet, KubeProxy} {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, bin)); err != nil {
			return nil, fmt.Errorf("cluster: %s missing in %s: build it with make cluster-bins", bin, cfg.BinDir)
		}
	}
	for _, bin := range []string{"containerd", "runc", "iptables", "conntrack"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("cluster: %s not found: apt-get install containerd runc containernetworking-plugins iptables conntrack", bin)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.CNIBinDir, "bridge")); err != nil {
		return nil, fmt.Errorf("cluster: no CNI bridge plugin in %s: apt-get install containernetworking-plugins", cfg.CNIBinDir)
	}
	c := &Cluster{cfg: cfg, Components: map[string]*Component{}}
	if c.NodeIP, err = nodeIP(cfg.PodCIDR); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.logf("start failed, stopping: %v", err)
			_ = c.Down()
		}
	}()
	if err := c.prepare(); err != nil {
		return nil, err
	}
	for _, name := range startOrder {
		if err := c.Start(ctx, name); err != nil {
			return nil, err
		}
	}
	if err := c.waitNodeReady(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// prepare writes certificates, kubeconfigs and configuration files, and the
// machine settings a node needs.
func (c *Cluster) prepare() error {
	for _, d := range []string{"logs", "bin", "cni/net.d", "cni/ipam", "pod-logs", "kubelet", "etcd"} {
		if err := os.MkdirAll(c.path(d), 0o755); err != nil {
			return err
		}
	}
	p, err := newPKI(c.path("pki"))
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	_, svcNet, err := net.ParseCIDR(c.cfg.ServiceCIDR)
	if err != nil {
		return fmt.Errorf("service CIDR %q: %w", c.cfg.ServiceCIDR, err)
	}
	kubeSvc := slices.Clone(svcNet.IP.To4())
	kubeSvc[3]++
	node := net.ParseIP(c.NodeIP)
	if err := p.issue("apiserver", "kube-apiserver", nil,
		[]string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"},
		[]net.IP{net.IPv4(127, 0, 0, 1), node, kubeSvc}); err != nil {
		return err
	}
	if err := p.issue("admin", "e2e-admin", []string{"system:masters"}, nil, nil); err != nil {
		return err
	}
	if err := p.issue("kubelet", "system:node:"+c.cfg.NodeName, []string{"system:nodes"}, nil, nil); err != nil {
		return err
	}
	if err := p.issue("kubelet-serving", "system:node:"+c.cfg.NodeName, []string{"system:nodes"},
		[]string{c.cfg.NodeName, "localhost"}, []net.IP{node, net.IPv4(127, 0, 0, 1)}); err != nil {
		return err
	}
	if err := p.serviceAccountKey(); err != nil {
		return err
	}
	if err := c.writeKubeconfig(c.AdminKubeconfig(), "admin"); err != nil {
		return err
	}
	if err := c.writeKubeconfig(c.path("kubelet.kubeconfig"), "kubelet"); err != nil {
		return err
	}
	// containerd's runtime binary is the runc wrapper.
	if err := os.Symlink(c.cfg.RuncWrapper, c.path("bin", "runc")); err != nil {
		return err
	}
	files := map[string]string{
		c.path("containerd.toml"):                        c.containerdConfig(),
		c.path("cni", "net.d", "10-errnowatch.conflist"): c.cniConfig(),
		c.path("kubelet.yaml"):                           c.kubeletConfig(),
		c.path("kube-proxy.yaml"):                        c.kubeProxyConfig(),
		// Pods with dnsPolicy Default get this; nothing outside the node
		// resolves here, and the cluster's names are on the gateway.
		c.path("resolv.conf"): "nameserver " + c.Gateway() + "\n",
	}
	for path, content := range files {
		if err := writeFile(path, content); err != nil {
			return err
		}
	}
	// The node routes between the bridge and its own address (Services
	// backed by the API server, the host-network side of NodePorts).
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err == nil {
		c.IPForward = strings.TrimSpace(string(b))
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable IP forwarding: %w", err)
	}
	// Bridged pod-to-pod traffic must pass iptables for Services to work.
	if err := os.WriteFile("/proc/sys/net/bridge/bridge-nf-call-iptables", []byte("1"), 0o644); err != nil {
		c.logf("bridge-nf-call-iptables: %v (Services between pods on the bridge rely on masqueradeAll)", err)
	}
	return c.save()
}

// args returns the command line of a component.
func (c *Cluster) args(name string) []string {
	bin := func(b string) string { return filepath.Join(c.cfg.BinDir, b) }
	pki := func(f string) string { return c.path("pki", f) }
	switch name {
	case Etcd:
		return []string{bin("etcd"), "--name", "e2e", "--data-dir", c.path("etcd"),
			"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdClientPort),
			"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdClientPort),
			"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeerPort),
			"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeerPort),
			"--initial-cluster", fmt.Sprintf("e2e=http://127.0.0.1:%d", etcdPeerPort),
			"--unsafe-no-fsync", "--log-level", "warn"}
	case APIServer:
		return []string{bin(APIServer),
			"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", etcdClientPort),
			"--secure-port", strconv.Itoa(apiserverPort), "--bind-address", "0.0.0.0",
			"--advertise-address", c.NodeIP,
			"--tls-cert-file", pki("apiserver.crt"), "--tls-private-key-file", pki("apiserver.key"),
			"--client-ca-file", pki("ca.crt"),
			"--kubelet-client-certificate", pki("admin.crt"), "--kubelet-client-key", pki("admin.key"),
			"--kubelet-certificate-authority", pki("ca.crt"),
			"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file", pki("sa.pub"), "--service-account-signing-key-file", pki("sa.key"),
			"--service-cluster-ip-range", c.cfg.ServiceCIDR,
			"--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction",
			"--allow-privileged=true", "--profiling=false", "--v=1"}
	case ControllerManager:
		return []string{bin(ControllerManager), "--kubeconfig", c.AdminKubeconfig(),
			"--authentication-kubeconfig", c.AdminKubeconfig(), "--authorization-kubeconfig", c.AdminKubeconfig(),
			"--service-account-private-key-file", pki("sa.key"), "--root-ca-file", pki("ca.crt"),
			"--use-service-account-credentials=true", "--leader-elect=false",
			"--bind-address", "127.0.0.1", "--v=1"}
	case Scheduler:
		return []string{bin(Scheduler), "--kubeconfig", c.AdminKubeconfig(),
			"--authentication-kubeconfig", c.AdminKubeconfig(), "--authorization-kubeconfig", c.AdminKubeconfig(),
			"--leader-elect=false", "--bind-address", "127.0.0.1", "--v=1"}
	case Containerd:
		return []string{"containerd", "--config", c.path("containerd.toml"), "--log-level", "warn"}
	case Kubelet:
		return []string{bin(Kubelet), "--config", c.path("kubelet.yaml"),
			"--kubeconfig", c.path("kubelet.kubeconfig"), "--root-dir", c.path("kubelet"),
			"--hostname-override", c.cfg.NodeName, "--node-ip", c.NodeIP, "--v=1"}
	case KubeProxy:
		return []string{bin(KubeProxy), "--config", c.path("kube-proxy.yaml"), "--v=1"}
	case DNS:
		return []string{c.cfg.Self, "dns", "--kubeconfig", c.AdminKubeconfig(),
			"--listen", net.JoinHostPort("0.0.0.0", "53")}
	}
	return nil
}

// Start starts a component (again, after Stop) and waits until it serves.
func (c *Cluster) Start(ctx context.Context, name string) error {
	args := c.args(name)
	if args == nil {
		return fmt.Errorf("cluster: no component %q", name)
	}
	logPath := c.path("logs", name+".log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Dir = c.cfg.Dir
	// A session of its own: the node outlives `e2e-node up`, and a test's
	// signals do not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	// Reap it if it exits while this process lives; after this process
	// exits, init does.
	go func() { _ = cmd.Wait() }()
	c.Components[name] = &Component{Args: args, PID: cmd.Process.Pid, Log: logPath}
	if err := c.save(); err != nil {
		return err
	}
	c.logf("started %s (pid %d, log %s)", name, cmd.Process.Pid, logPath)
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := c.waitReady(wctx, name); err != nil {
		return fmt.Errorf("%s did not become ready: %w (log: %s)%s", name, err, logPath, tail(logPath))
	}
	return nil
}

// Stop stops a component: SIGTERM, then SIGKILL after 20 s.
func (c *Cluster) Stop(name string) error {
	comp := c.Components[name]
	if comp == nil || comp.PID == 0 {
		return nil
	}
	stopPID(comp.PID, 20*time.Second)
	comp.PID = 0
	return c.save()
}

func (c *Cluster) waitReady(ctx context.Context, name string) error {
	comp := c.Components[name]
	check := func() error { return nil }
	switch name {
	case Etcd:
		check = func() error { return httpOK(ctx, nil, fmt.Sprintf("http://127.0.0.1:%d/health", etcdClientPort)) }
	case APIServer:
		client, err := c.adminHTTP()
		if err != nil {
			return err
		}
		check = func() error { return httpOK(ctx, client, fmt.Sprintf("https://127.0.0.1:%d/readyz", apiserverPort)) }
	case ControllerManager:
		check = func() error { return httpOK(ctx, insecureHTTP(), "https://127.0.0.1:10257/healthz") }
	case Scheduler:
		check = func() error { return httpOK(ctx, insecureHTTP(), "https://127.0.0.1:10259/healthz") }
	case Containerd:
		check = func() error {
			return exec.CommandContext(ctx, "ctr", "--address", c.ContainerdSocket(), "version").Run()
		}
	case Kubelet:
		check = func() error { return httpOK(ctx, nil, "http://127.0.0.1:10248/healthz") }
	case KubeProxy:
		check = func() error { return httpOK(ctx, nil, "http://127.0.0.1:10256/healthz") }
	case DNS:
		check = func() error {
			conn, err := net.DialTimeout("tcp", "127.0.0.1:53", time.Second)
			if err == nil {
				conn.Close()
			}
			return err
		}
	}
	var err error
	for {
		if !alive(comp.PID) {
			return errors.New("exited")
		}
		if err = check(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last check: %v)", ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (c *Cluster) waitNodeReady(ctx context.Context) error {
	cs, err := c.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		n, err := cs.CoreV1().Nodes().Get(ctx, c.cfg.NodeName, metav1.GetOptions{})
		if err == nil {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					c.logf("node %s Ready", c.cfg.NodeName)
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not Ready: %w (kubelet log: %s)%s", c.cfg.NodeName, ctx.Err(),
				c.path("logs", "kubelet.log"), tail(c.path("logs", "kubelet.log")))
		case <-time.After(time.Second):
		}
	}
}

func (c *Cluster) adminHTTP() (*http.Client, error) {
	cert, err := tls.LoadX509KeyPair(c.path("pki", "admin.crt"), c.path("pki", "admin.key"))
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(c.path("pki", "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}, nil
}

// insecureHTTP reads the health endpoints of the controller-manager and
// scheduler, which serve self-signed certificates.
func insecureHTTP() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback health check
}

func httpOK(ctx context.Context, client *http.Client, url string) error {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	return nil
}

// nodeIP is the machine's first IPv4 address outside loopback and the pod
// subnet: what the API server advertises and the kubelet reports.
func nodeIP(podCIDR string) (string, error) {
	_, pods, _ := net.ParseCIDR(podCIDR)
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || ifc.Name == bridgeName {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.To4() == nil || (pods != nil && pods.Contains(ipn.IP)) {
				continue
			}
			return ipn.IP.String(), nil
		}
	}
	return "", errors.New("cluster: no IPv4 address on any interface for the node")
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie is dead: "pid (comm) Z ...".
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i > 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func stopPID(pid int, grace time.Duration) {
	if !alive(pid) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; alive(pid) && i < 50; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// tail returns the end of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	const n = 3000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return "\n--- end of " + path + " ---\n" + string(b)
}

// ImportImages imports a docker-archive tarball into the node's containerd,
// in the namespace the CRI plugin uses.
func (c *Cluster) ImportImages(ctx context.Context, tarball string) error {
	out, err := exec.CommandContext(ctx, "ctr", "--address", c.ContainerdSocket(), "-n", "k8s.io",
		"images", "import", "--all-platforms", tarball).CombinedOutput()
	if err != nil {
		return fmt.Errorf("import %s: %w: %s", tarball, err, out)
	}
	c.logf("imported %s", tarball)
	return nil
}
