// Package runcwrap is the e2e node's runc: containerd's runtime BinaryName
// (see RuncWrapper). It is a package and a binary of its own, importing
// nothing beyond the standard library, because containerd's shim runs it
// several times for every container: run as the e2e-node binary, with
// client-go's package initialisation, it cost about 160 ms per run, and a
// wave of 10 pods took 13-21 s to start instead of 9-14 s.
package runcwrap

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// RuncWrapper is containerd's runc on these machines (the runtime's
// BinaryName): it raises a negative process.oomScoreAdj in the OCI bundle
// to 0, then replaces itself with the real runc, same arguments.
//
// Why: the kubelet asks for oom_score_adj -998 for pod sandboxes (and
// negative values for Guaranteed pods), and lowering oom_score_adj needs
// CAP_SYS_RESOURCE, which these machines keep outside the bounding set. runc
// then fails the sandbox with "can't get final child's PID from pipe". The
// wrapper changes only the OOM ranking of test pods.
func RuncWrapper(args []string) error {
	real, err := realRunc()
	if err != nil {
		return err
	}
	for i, a := range args {
		var spec string
		switch {
		case (a == "--bundle" || a == "-b") && i+1 < len(args):
			spec = filepath.Join(args[i+1], "config.json")
		case a == "--process" && i+1 < len(args):
			spec = args[i+1]
		}
		if spec != "" {
			if err := raiseOOMScoreAdj(spec); err != nil {
				return fmt.Errorf("runc wrapper: %s: %w", spec, err)
			}
		}
	}
	return syscall.Exec(real, append([]string{"runc"}, args...), os.Environ())
}

// realRunc finds runc on PATH that is not this program.
func realRunc() (string, error) {
	self, _ := os.Executable()
	for _, dir := range filepath.SplitList(os.Getenv("PATH") + ":/usr/sbin:/usr/bin:/sbin:/bin") {
		p := filepath.Join(dir, "runc")
		if r, err := filepath.EvalSymlinks(p); err == nil && r != self {
			if st, err := os.Stat(r); err == nil && st.Mode()&0o111 != 0 {
				return r, nil
			}
		}
	}
	if p, err := exec.LookPath("runc"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("runc wrapper: no runc on PATH: apt-get install runc")
}

// raiseOOMScoreAdj edits a bundle's config.json ({"process": {...}}) or an
// exec process file ({...}) in place, keeping every other field as it is.
func raiseOOMScoreAdj(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		return err
	}
	proc := doc
	var procRaw json.RawMessage
	if raw, ok := doc["process"]; ok {
		procRaw = raw
		proc = nil
		if err := json.Unmarshal(raw, &proc); err != nil {
			return err
		}
	}
	raw, ok := proc["oomScoreAdj"]
	if !ok {
		return nil
	}
	var adj int
	if err := json.Unmarshal(raw, &adj); err != nil || adj >= 0 {
		return err
	}
	proc["oomScoreAdj"] = json.RawMessage("0")
	if procRaw != nil {
		if doc["process"], err = json.Marshal(proc); err != nil {
			return err
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o644)
}
