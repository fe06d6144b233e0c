package cluster

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// writeKubeconfig writes a kubeconfig that authenticates with the client
// certificate cred (pki/<cred>.crt and .key).
func (c *Cluster) writeKubeconfig(path, cred string) error {
	p := &pki{dir: c.path("pki")}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{
		Server:               fmt.Sprintf("https://127.0.0.1:%d", apiserverPort),
		CertificateAuthority: p.path("ca.crt"),
	}
	cfg.AuthInfos[cred] = &clientcmdapi.AuthInfo{
		ClientCertificate: p.path(cred + ".crt"),
		ClientKey:         p.path(cred + ".key"),
	}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: cred}
	cfg.CurrentContext = "e2e"
	return clientcmd.WriteToFile(*cfg, path)
}

// containerdConfig: a private containerd (its own root, state and socket, so
// it never meets another on the machine) whose CRI plugin runs pods with runc
// through the oom_score_adj wrapper (package runcwrap) and wires them with
// Debian's CNI plugins.
func (c *Cluster) containerdConfig() string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
oom_score = 0

[grpc]
  address = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = %q
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, c.path("containerd", "root"), c.path("containerd", "state"), c.ContainerdSocket(),
		c.cfg.PauseImage, c.path("bin", "runc"), c.cfg.CNIBinDir, c.path("cni", "net.d"))
}

// cniConfig: one bridge with host-local addresses from the pod subnet, the
// gateway being the node's end of the bridge (and where cluster DNS listens).
// No ipMasq and no portmap: pods reach nothing beyond the node, and each
// would add iptables runs to every pod start and stop.
func (c *Cluster) cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "errnowatch-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
`, bridgeName, c.path("cni", "ipam"), c.cfg.PodCIDR, c.Gateway())
}

// kubeletConfig: cgroupfs because these machines run no systemd as init,
// failCgroupV1 false because their hierarchy is hybrid (v1 controllers plus
// the v2 tree at /sys/fs/cgroup/unified), failSwapOn false because the
// machine has swap; image garbage collection off so that the imported images
// (there is no registry to pull them again from) stay.
func (c *Cluster) kubeletConfig() string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization: {mode: Webhook}
tlsCertFile: %q
tlsPrivateKeyFile: %q
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
clusterDNS: [%q]
clusterDomain: cluster.local
resolvConf: %q
podLogsDir: %q
maxPods: 250
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
nodeStatusReportFrequency: 10s
# Pods sync (and their ConfigMap volumes refresh) every 10 s instead of
# every minute, so a rules ConfigMap change reaches the agent sooner.
syncFrequency: 10s
healthzBindAddress: 127.0.0.1
address: %q
`, c.path("pki", "ca.crt"), c.path("pki", "kubelet-serving.crt"), c.path("pki", "kubelet-serving.key"),
		c.ContainerdSocket(), c.Gateway(), c.path("resolv.conf"), c.PodLogsDir(), c.NodeIP)
}

// kubeProxyConfig: iptables mode; masqueradeAll so that a pod reaching a
// Service backed by a pod on the same bridge gets its replies back through
// the node (without it the reply skips the DNAT's reverse); conntrack sysctls
// left as they are, since a VM may refuse them.
func (c *Cluster) kubeProxyConfig() string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %q}
mode: iptables
clusterCIDR: %q
hostnameOverride: %q
iptables: {masqueradeAll: true}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
`, c.AdminKubeconfig(), c.cfg.PodCIDR, c.cfg.NodeName)
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}
