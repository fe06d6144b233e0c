package cgroup_test

import (
	"strings"
	"testing"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
)

const (
	uid    = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
	uidU   = "1b4e28ba_2fa1_11d2_883f_0016d3cca427" // as systemd slice names spell it
	uid2   = "6f1c9a52-0b7e-4c1d-9a3e-2f5d8b7c6a10"
	uid2U  = "6f1c9a52_0b7e_4c1d_9a3e_2f5d8b7c6a10"
	static = "0d8b1a5b5e0b3d7f2c1e4a6b8c9d0e1f" // kubelet's hash UID of a static pod
	cid    = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899"
	cid2   = "aa0e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778800"
)

type parseCase struct {
	name string
	in   string
	want cgroup.Info
}

func container(path, driver, runtime, qos, pod, id string) cgroup.Info {
	return cgroup.Info{Path: path, Driver: driver, Runtime: runtime, QoS: qos, PodUID: pod, ContainerID: id, IsContainer: true, InPod: true}
}

func pod(path, driver, qos, pod string) cgroup.Info {
	return cgroup.Info{Path: path, Driver: driver, QoS: qos, PodUID: pod, InPod: true}
}

func parseCases() []parseCase {
	sdBurstable := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice"
	sdBestEffort := "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice"
	sdGuaranteed := "/kubepods.slice/kubepods-pod" + uidU + ".slice"
	kindPrefix := "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + uidU + ".slice"
	return []parseCase{
		// systemd driver × runtimes × QoS.
		{"systemd containerd burstable", sdBurstable + "/cri-containerd-" + cid + ".scope",
			container(sdBurstable+"/cri-containerd-"+cid+".scope", "systemd", "containerd", "burstable", uid, cid)},
		{"systemd crio guaranteed", sdGuaranteed + "/crio-" + cid + ".scope",
			container(sdGuaranteed+"/crio-"+cid+".scope", "systemd", "crio", "guaranteed", uid, cid)},
		{"systemd docker besteffort", sdBestEffort + "/docker-" + cid + ".scope",
			container(sdBestEffort+"/docker-"+cid+".scope", "systemd", "docker", "besteffort", uid, cid)},
		{"systemd containerd guaranteed", sdGuaranteed + "/cri-containerd-" + cid + ".scope",
			container(sdGuaranteed+"/cri-containerd-"+cid+".scope", "systemd", "containerd", "guaranteed", uid, cid)},
		{"systemd crio conmon", sdBurstable + "/crio-conmon-" + cid + ".scope",
			cgroup.Info{Path: sdBurstable + "/crio-conmon-" + cid + ".scope", Driver: "systemd", Runtime: "crio", QoS: "burstable", PodUID: uid, InPod: true}},
		{"systemd crun container subgroup", sdBurstable + "/crio-" + cid + ".scope/container",
			container(sdBurstable+"/crio-"+cid+".scope/container", "systemd", "crio", "burstable", uid, cid)},
		{"systemd pod without container", sdBurstable, pod(sdBurstable, "systemd", "burstable", uid)},
		{"systemd guaranteed pod", sdGuaranteed, pod(sdGuaranteed, "systemd", "guaranteed", uid)},
		{"systemd static pod", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + static + ".slice/cri-containerd-" + cid + ".scope",
			container("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"+static+".slice/cri-containerd-"+cid+".scope", "systemd", "containerd", "burstable", static, cid)},
		{"systemd unknown child of pod", sdBurstable + "/something.scope",
			pod(sdBurstable+"/something.scope", "systemd", "burstable", uid)},
		{"systemd non-hex container id", sdBurstable + "/cri-containerd-XYZ.scope",
			pod(sdBurstable+"/cri-containerd-XYZ.scope", "systemd", "burstable", uid)},
		{"systemd qos slice", "/kubepods.slice/kubepods-besteffort.slice",
			cgroup.Info{Path: "/kubepods.slice/kubepods-besteffort.slice", Driver: "systemd", QoS: "besteffort"}},
		{"systemd kubepods slice", "/kubepods.slice", cgroup.Info{Path: "/kubepods.slice", Driver: "systemd"}},

		// cgroupfs driver.
		{"cgroupfs besteffort bare id", "/kubepods/besteffort/pod" + uid + "/" + cid,
			container("/kubepods/besteffort/pod"+uid+"/"+cid, "cgroupfs", "", "besteffort", uid, cid)},
		{"cgroupfs guaranteed", "/kubepods/pod" + uid + "/" + cid,
			container("/kubepods/pod"+uid+"/"+cid, "cgroupfs", "", "guaranteed", uid, cid)},
		{"cgroupfs crio burstable", "/kubepods/burstable/pod" + uid + "/crio-" + cid,
			container("/kubepods/burstable/pod"+uid+"/crio-"+cid, "cgroupfs", "crio", "burstable", uid, cid)},
		{"cgroupfs crio conmon", "/kubepods/besteffort/pod" + uid + "/crio-conmon-" + cid,
			cgroup.Info{Path: "/kubepods/besteffort/pod" + uid + "/crio-conmon-" + cid, Driver: "cgroupfs", Runtime: "crio", QoS: "besteffort", PodUID: uid, InPod: true}},
		{"cgroupfs pod without container", "/kubepods/besteffort/pod" + uid, pod("/kubepods/besteffort/pod"+uid, "cgroupfs", "besteffort", uid)},
		{"cgroupfs guaranteed pod", "/kubepods/pod" + uid, pod("/kubepods/pod"+uid, "cgroupfs", "guaranteed", uid)},
		{"cgroupfs static pod", "/kubepods/pod" + static + "/" + cid,
			container("/kubepods/pod"+static+"/"+cid, "cgroupfs", "", "guaranteed", static, cid)},
		{"cgroupfs qos", "/kubepods/burstable", cgroup.Info{Path: "/kubepods/burstable", Driver: "cgroupfs", QoS: "burstable"}},
		{"cgroupfs kubepods", "/kubepods", cgroup.Info{Path: "/kubepods", Driver: "cgroupfs"}},
		{"cgroupfs podcast is no pod", "/kubepods/besteffort/podcast",
			cgroup.Info{Path: "/kubepods/besteffort/podcast", Driver: "cgroupfs", QoS: "besteffort"}},
		{"cgroupfs short hex is no container", "/kubepods/pod" + uid + "/abc123",
			pod("/kubepods/pod"+uid+"/abc123", "cgroupfs", "guaranteed", uid)},

		// Not kube.
		{"root", "/", cgroup.Info{Path: "/"}},
		{"sshd", "/system.slice/sshd.service", cgroup.Info{Path: "/system.slice/sshd.service"}},
		{"user session", "/user.slice/user-1000.slice/session-3.scope", cgroup.Info{Path: "/user.slice/user-1000.slice/session-3.scope"}},
		{"containerd itself", "/system.slice/containerd.service", cgroup.Info{Path: "/system.slice/containerd.service"}},
		{"a unit named like kubepods", "/system.slice/kubepods-fake.service", cgroup.Info{Path: "/system.slice/kubepods-fake.service"}},
		{"empty", "", cgroup.Info{}},

		// The forms of /proc/<pid>/cgroup.
		{"v2 line", "0::/kubepods/besteffort/pod" + uid + "/" + cid,
			container("/kubepods/besteffort/pod"+uid+"/"+cid, "cgroupfs", "", "besteffort", uid, cid)},
		{"v1 memory line", "5:memory:/kubepods/burstable/pod" + uid + "/" + cid,
			container("/kubepods/burstable/pod"+uid+"/"+cid, "cgroupfs", "", "burstable", uid, cid)},
		{"v1 named line", "1:name=systemd:" + sdBurstable + "/cri-containerd-" + cid + ".scope",
			container(sdBurstable+"/cri-containerd-"+cid+".scope", "systemd", "containerd", "burstable", uid, cid)},
		{"v1 joined controllers line", "3:cpu,cpuacct:/kubepods/pod" + uid + "/" + cid,
			container("/kubepods/pod"+uid+"/"+cid, "cgroupfs", "", "guaranteed", uid, cid)},
		{"hybrid file prefers v2 line",
			"12:memory:/kubepods/burstable/pod" + uid2 + "/" + cid2 + "\n1:name=systemd:/x\n0::/kubepods/besteffort/pod" + uid + "/" + cid + "\n",
			container("/kubepods/besteffort/pod"+uid+"/"+cid, "cgroupfs", "", "besteffort", uid, cid)},
		{"hybrid file falls back to v1 line in pod",
			"12:memory:/kubepods/burstable/pod" + uid + "/" + cid + "\n1:name=systemd:/system.slice/x.service\n0::/\n",
			container("/kubepods/burstable/pod"+uid+"/"+cid, "cgroupfs", "", "burstable", uid, cid)},
		{"file outside pods keeps v2 line", "4:memory:/user.slice\n0::/system.slice/sshd.service\n",
			cgroup.Info{Path: "/system.slice/sshd.service"}},
		{"trailing newline", "0::/kubepods/pod" + uid + "/" + cid + "\n",
			container("/kubepods/pod"+uid+"/"+cid, "cgroupfs", "", "guaranteed", uid, cid)},

		// cgroupfs directories.
		{"hybrid mount dir", "/sys/fs/cgroup/unified/kubepods/besteffort/pod" + uid + "/" + cid,
			container("/kubepods/besteffort/pod"+uid+"/"+cid, "cgroupfs", "", "besteffort", uid, cid)},
		{"unified mount dir", "/sys/fs/cgroup" + sdBurstable + "/cri-containerd-" + cid + ".scope",
			container(sdBurstable+"/cri-containerd-"+cid+".scope", "systemd", "containerd", "burstable", uid, cid)},
		{"v1 controller dir", "/sys/fs/cgroup/memory/kubepods/pod" + uid + "/" + cid,
			container("/kubepods/pod"+uid+"/"+cid, "cgroupfs", "", "guaranteed", uid, cid)},
		{"host mount in a pod", "/host/sys/fs/cgroup/kubepods/pod" + uid,
			pod("/kubepods/pod"+uid, "cgroupfs", "guaranteed", uid)},
		{"mount root dir", "/sys/fs/cgroup/unified", cgroup.Info{Path: "/"}},
		{"relative path", "kubepods/pod" + uid + "/" + cid,
			container("/kubepods/pod"+uid+"/"+cid, "cgroupfs", "", "guaranteed", uid, cid)},
		{"trailing slash", "/kubepods/pod" + uid + "/" + cid + "/",
			container("/kubepods/pod"+uid+"/"+cid, "cgroupfs", "", "guaranteed", uid, cid)},

		// Trees below a prefix.
		{"kind node view", kindPrefix + "/cri-containerd-" + cid + ".scope",
			container(kindPrefix+"/cri-containerd-"+cid+".scope", "systemd", "containerd", "besteffort", uid, cid)},
		{"kind seen from the host", "/system.slice/docker-" + cid2 + ".scope" + kindPrefix + "/cri-containerd-" + cid + ".scope",
			container("/system.slice/docker-"+cid2+".scope"+kindPrefix+"/cri-containerd-"+cid+".scope", "systemd", "containerd", "besteffort", uid, cid)},
		{"cgroupfs below a cgroup root", "/kubelet/kubepods/burstable/pod" + uid + "/" + cid,
			container("/kubelet/kubepods/burstable/pod"+uid+"/"+cid, "cgroupfs", "", "burstable", uid, cid)},
		{"runc slice:prefix:id below containerd", "/system.slice/containerd.service/kubepods-burstable-pod" + uidU + ".slice:cri-containerd:" + cid,
			container("/system.slice/containerd.service/kubepods-burstable-pod"+uidU+".slice:cri-containerd:"+cid, "systemd", "containerd", "burstable", uid, cid)},
		{"runc slice:prefix:id guaranteed crio", "/system.slice/crio.service/kubepods-pod" + uidU + ".slice:crio:" + cid,
			container("/system.slice/crio.service/kubepods-pod"+uidU+".slice:crio:"+cid, "systemd", "crio", "guaranteed", uid, cid)},
		{"pod slice without its parents", "/kubepods-besteffort-pod" + uidU + ".slice/docker-" + cid + ".scope",
			container("/kubepods-besteffort-pod"+uidU+".slice/docker-"+cid+".scope", "systemd", "docker", "besteffort", uid, cid)},
		{"nested kubepods: outermost pod wins", "/kubepods/burstable/pod" + uid + "/" + cid + "/kubepods/besteffort/pod" + uid2 + "/" + cid2,
			container("/kubepods/burstable/pod"+uid+"/"+cid+"/kubepods/besteffort/pod"+uid2+"/"+cid2, "cgroupfs", "", "burstable", uid, cid)},
		{"kubepods below a kubepods cgroup root", "/kubepods/kubepods/besteffort/pod" + uid + "/" + cid,
			container("/kubepods/kubepods/besteffort/pod"+uid+"/"+cid, "cgroupfs", "", "besteffort", uid, cid)},
		{"systemd kubepods below a kubepods cgroup root", "/kubepods.slice/kubepods-kubepods.slice/kubepods-kubepods-besteffort.slice/kubepods-kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
			container("/kubepods.slice/kubepods-kubepods.slice/kubepods-kubepods-besteffort.slice/kubepods-kubepods-besteffort-pod"+uidU+".slice/cri-containerd-"+cid+".scope", "systemd", "containerd", "besteffort", uid, cid)},
		{"runtime prefix without .scope", sdBurstable + "/cri-containerd-" + cid,
			container(sdBurstable+"/cri-containerd-"+cid, "systemd", "containerd", "burstable", uid, cid)},
		{"docker prefix under cgroupfs", "/kubepods/burstable/pod" + uid + "/docker-" + cid + ".scope",
			container("/kubepods/burstable/pod"+uid+"/docker-"+cid+".scope", "cgroupfs", "docker", "burstable", uid, cid)},
		{"UUID container id, bare", "/kubepods/besteffort/pod" + uid + "/" + uid2,
			container("/kubepods/besteffort/pod"+uid+"/"+uid2, "cgroupfs", "", "besteffort", uid, uid2)},
		{"UUID container id, prefixed", sdBestEffort + "/cri-containerd-" + uid2 + ".scope",
			container(sdBestEffort+"/cri-containerd-"+uid2+".scope", "systemd", "containerd", "besteffort", uid, uid2)},
		{"upper-case UUID is no container", "/kubepods/besteffort/pod" + uid + "/" + strings.ToUpper(uid2),
			pod("/kubepods/besteffort/pod"+uid+"/"+strings.ToUpper(uid2), "cgroupfs", "besteffort", uid)},
		{"namespace-relative cgroupfs", "0::/../../pod" + uid + "/" + cid,
			cgroup.Info{Path: "/pod" + uid + "/" + cid, Driver: "cgroupfs", PodUID: uid, ContainerID: cid, IsContainer: true, InPod: true}},
		{"namespace-relative systemd", "0::/../../kubepods-burstable-pod" + uidU + ".slice/crio-" + cid + ".scope",
			container("/kubepods-burstable-pod"+uidU+".slice/crio-"+cid+".scope", "systemd", "crio", "burstable", uid, cid)},
		{"a pod directory deeper than the top is no pod", "/system.slice/pod" + uid + "/" + cid,
			cgroup.Info{Path: "/system.slice/pod" + uid + "/" + cid}},
		{"shell-escaped colons", `/system.slice/containerd.service/kubepods-burstable-pod` + uidU + `.slice\:cri-containerd\:` + cid,
			container("/system.slice/containerd.service/kubepods-burstable-pod"+uidU+".slice:cri-containerd:"+cid, "systemd", "containerd", "burstable", uid, cid)},
		{"kubelet before 1.6: Burstable slice", "/Burstable.slice/Burstable-pod" + uidU + ".slice/" + cid,
			container("/Burstable.slice/Burstable-pod"+uidU+".slice/"+cid, "systemd", "", "burstable", uid, cid)},
		{"kata sandbox", "/kubepods/besteffort/pod" + uid + "/kata_" + cid,
			cgroup.Info{Path: "/kubepods/besteffort/pod" + uid + "/kata_" + cid, Driver: "cgroupfs", Runtime: "kata", QoS: "besteffort", PodUID: uid, InPod: true}},
		{"cgroups made inside a container", sdBestEffort + "/cri-containerd-" + cid + ".scope/init.scope",
			container(sdBestEffort+"/cri-containerd-"+cid+".scope/init.scope", "systemd", "containerd", "besteffort", uid, cid)},
	}
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases() {
		t.Run(tc.name, func(t *testing.T) {
			got := cgroup.Parse(tc.in)
			if got != tc.want {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tc.in, got, tc.want)
			}
			if again := cgroup.Parse(got.Path); again != got {
				t.Errorf("Parse(Parse(%q).Path) = %+v, want %+v", tc.in, again, got)
			}
		})
	}
}

// TestParseKubeletPaths parses every driver × runtime × QoS combination that
// cgrouptest builds, so the helper the other stages' tests use and the parser
// agree.
func TestParseKubeletPaths(t *testing.T) {
	for _, driver := range []string{cgroup.DriverSystemd, cgroup.DriverCgroupfs} {
		for _, runtime := range []string{cgroup.RuntimeContainerd, cgroup.RuntimeCRIO, cgroup.RuntimeDocker} {
			for _, qos := range []string{cgroup.QoSGuaranteed, cgroup.QoSBurstable, cgroup.QoSBestEffort} {
				for _, podUID := range []string{cgrouptest.PodUID(), static} {
					id := cgrouptest.ContainerID()
					p := cgrouptest.KubeletPath(driver, runtime, qos, podUID, id)
					got := cgroup.Parse(p)
					wantRuntime := runtime
					if driver == cgroup.DriverCgroupfs && runtime != cgroup.RuntimeCRIO {
						wantRuntime = ""
					}
					want := container("/"+p, driver, wantRuntime, qos, podUID, id)
					if got != want {
						t.Errorf("Parse(%q)\n got %+v\nwant %+v", p, got, want)
					}
					podPath := cgrouptest.KubeletPath(driver, runtime, qos, podUID, "")
					if got := cgroup.Parse(podPath); got != pod("/"+podPath, driver, qos, podUID) {
						t.Errorf("Parse(%q) = %+v, want the pod without a container", podPath, got)
					}
				}
			}
		}
	}
}

func TestContainerIDFromStatus(t *testing.T) {
	for _, tc := range []struct{ in, runtime, id string }{
		{"containerd://" + cid, "containerd", cid},
		{"cri-o://" + cid, "crio", cid},
		{"docker://" + cid, "docker", cid},
		{"rkt://abc", "rkt", "abc"},
		{cid, "", cid},
		{"", "", ""},
	} {
		runtime, id := cgroup.ContainerIDFromStatus(tc.in)
		if runtime != tc.runtime || id != tc.id {
			t.Errorf("ContainerIDFromStatus(%q) = %q, %q; want %q, %q", tc.in, runtime, id, tc.runtime, tc.id)
		}
	}
	// The status of a container and its cgroup meet on runtime and id.
	for _, tc := range []struct{ status, path string }{
		{"containerd://" + cid, "/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope"},
		{"cri-o://" + cid, "/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-" + cid + ".scope"},
		{"docker://" + cid, "/kubepods.slice/kubepods-pod" + uidU + ".slice/docker-" + cid + ".scope"},
	} {
		runtime, id := cgroup.ContainerIDFromStatus(tc.status)
		info := cgroup.Parse(tc.path)
		if info.Runtime != runtime || info.ContainerID != id {
			t.Errorf("status %q gives %q %q, cgroup %q gives %q %q", tc.status, runtime, id, tc.path, info.Runtime, info.ContainerID)
		}
	}
}

// FuzzParse checks that no input makes Parse panic or break its own
// invariants, and that parsing the Path it returns gives the same Info. The
// table above is its seed corpus, which plain `go test` runs.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases() {
		f.Add(tc.in)
	}
	for _, r := range fieldPaths(f) {
		f.Add(r.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := cgroup.Parse(in)
		if got.Path != "" && !strings.HasPrefix(got.Path, "/") {
			t.Errorf("Parse(%q).Path = %q, not absolute", in, got.Path)
		}
		if got.IsContainer && (!got.InPod || got.ContainerID == "") {
			t.Errorf("Parse(%q) = %+v: a container must be in a pod and have an id", in, got)
		}
		if !got.IsContainer && got.ContainerID != "" {
			t.Errorf("Parse(%q) = %+v: an id without a container", in, got)
		}
		if got.InPod && (got.PodUID == "" || got.Driver == "") {
			t.Errorf("Parse(%q) = %+v: a pod needs a UID and a driver", in, got)
		}
		if got.InPod && got.QoS == "" && got.Driver != cgroup.DriverCgroupfs {
			// Only a cgroupfs path relative to a cgroup namespace loses
			// its QoS level; systemd slice names carry the class.
			t.Errorf("Parse(%q) = %+v: a systemd pod without a QoS class", in, got)
		}
		if again := cgroup.Parse(got.Path); again != got {
			t.Errorf("Parse(%q) = %+v but Parse of its Path = %+v", in, got, again)
		}
	})
}
