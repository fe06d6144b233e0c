// Package images builds the container images the e2e cluster runs, without
// Docker: the errnowatch image (the static binary the Dockerfile builds, in
// the Dockerfile's final-stage layout), the pod sandbox's pause image, and
// the workload image whose pods make the failing syscalls the tests look
// for (test/e2e/images/workload on busybox). BuildAll hands on one
// docker-archive tarball with the three tags, for
// `ctr -n k8s.io images import --all-platforms`; the pods then use the
// tags with imagePullPolicy Never or IfNotPresent.
//
// The images are reproducible: file and config times are SOURCE_DATE_EPOCH
// (0 when unset) and the Go builds drop paths, build IDs and VCS stamps, so
// the same tree gives the same digests.
package images

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The images' tags. "localhost/" keeps containerd and the kubelet from
// ever trying to pull them from a registry.
const (
	Errnowatch = "localhost/errnowatch:e2e"
	Pause      = "localhost/pause:e2e"
	Workload   = "localhost/errnowatch-workload:e2e"
)

// Where the host's files come from.
const (
	// BusyboxPackage is the Debian package that puts a static busybox at
	// /bin/busybox.
	BusyboxPackage = "busybox-static"
	busyboxPath    = "/bin/busybox"
	// CACertsPackage is the Debian package of the CA bundle the errnowatch
	// image carries, as distroless does.
	CACertsPackage = "ca-certificates"
	caCertsPath    = "/etc/ssl/certs/ca-certificates.crt"
)

// Paths inside the images.
const (
	ErrnowatchPath = "/usr/local/bin/errnowatch"
	PausePath      = "/pause"
	WorkloadPath   = "/usr/local/bin/workload"
	BusyboxPath    = "/bin/busybox"
)

// defaultPath is the PATH of distroless and Debian images.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Go packages of the three programs, relative to the repository root.
const (
	errnowatchPkg = "./cmd/errnowatch"
	pausePkg      = "./test/e2e/images/pause"
	workloadPkg   = "./test/e2e/images/workload"
)

// BuildAll builds the three programs from the repository at repoRoot into
// workDir, makes the three images and writes them to one docker-archive
// tarball in workDir, whose path it returns. It needs the go command and,
// for the workload image, Debian's busybox-static.
func BuildAll(ctx context.Context, repoRoot, workDir string) (tarballPath string, err error) {
	imgs, err := Build(ctx, repoRoot, workDir)
	if err != nil {
		return "", err
	}
	refs := make(map[name.Reference]v1.Image, len(imgs))
	for tag, img := range imgs {
		ref, err := name.NewTag(tag)
		if err != nil {
			return "", fmt.Errorf("parse tag %s: %w", tag, err)
		}
		refs[ref] = img
	}
	out := filepath.Join(workDir, "images.tar")
	if err := tarball.MultiRefWriteToFile(out, refs); err != nil {
		return "", fmt.Errorf("write image tarball: %w", err)
	}
	return out, nil
}

// Build builds the three programs into workDir and returns the images by
// tag, without writing them anywhere.
func Build(ctx context.Context, repoRoot, workDir string) (map[string]v1.Image, error) {
	bins, err := buildPrograms(ctx, repoRoot, filepath.Join(workDir, "bin"))
	if err != nil {
		return nil, err
	}
	epoch, err := sourceDateEpoch()
	if err != nil {
		return nil, err
	}
	ew, err := errnowatchImage(bins["errnowatch"], revision(ctx, repoRoot), epoch)
	if err != nil {
		return nil, fmt.Errorf("errnowatch image: %w", err)
	}
	pause, err := pauseImage(bins["pause"], epoch)
	if err != nil {
		return nil, fmt.Errorf("pause image: %w", err)
	}
	wl, err := workloadImage(ctx, bins["workload"], epoch)
	if err != nil {
		return nil, fmt.Errorf("workload image: %w", err)
	}
	return map[string]v1.Image{Errnowatch: ew, Pause: pause, Workload: wl}, nil
}

// buildPrograms builds the three static binaries with the Dockerfile's
// flags, in one go command so that they share its work, and returns their
// paths by name.
func buildPrograms(ctx context.Context, repoRoot, binDir string) (map[string]string, error) {
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, fmt.Errorf("make build directory: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=",
		"-o", binDir+string(filepath.Separator), errnowatchPkg, pausePkg, workloadPkg)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build in %s: %w\n%s", repoRoot, err, out)
	}
	bins := map[string]string{}
	for _, n := range []string{"errnowatch", "pause", "workload"} {
		bins[n] = filepath.Join(binDir, n)
	}
	return bins, nil
}

// sourceDateEpoch is the time every file and the config carry.
func sourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q is not a number of seconds: %w", s, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// revision is the commit the image is built from, for its label, or
// "unknown" as in the Dockerfile when git cannot tell.
func revision(ctx context.Context, repoRoot string) string {
	cmd := exec.CommandContext(ctx, "git", "rev-parse", "HEAD")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// Distroless's users: root, nobody and nonroot, with no login shell.
const (
	distrolessPasswd = `root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
`
	distrolessGroup = `root:x:0:
nobody:x:65534:
nonroot:x:65532:
`
)

// errnowatchImage lays the binary out as the Dockerfile's final stage on
// gcr.io/distroless/static-debian12:nonroot does.
func errnowatchImage(bin, rev string, epoch time.Time) (v1.Image, error) {
	certs, err := os.ReadFile(caCertsPath)
	if err != nil {
		return nil, fmt.Errorf("read the CA bundle (apt-get install %s): %w", CACertsPackage, err)
	}
	l := newLayer(epoch)
	l.dir("root", 0o700, 0, 0)
	l.dir("home/nonroot", 0o700, 65532, 65532)
	l.dir("tmp", 0o1777, 0, 0)
	l.file("etc/passwd", 0o644, []byte(distrolessPasswd))
	l.file("etc/group", 0o644, []byte(distrolessGroup))
	l.file(strings.TrimPrefix(caCertsPath, "/"), 0o644, certs)
	if err := l.copyFile(strings.TrimPrefix(ErrnowatchPath, "/"), 0o555, bin); err != nil {
		return nil, err
	}
	return image(l, epoch, v1.Config{
		Entrypoint: []string{ErrnowatchPath},
		Cmd:        []string{"--help"},
		User:       "65532:65532",
		WorkingDir: "/home/nonroot",
		Env:        []string{defaultPath, "SSL_CERT_FILE=" + caCertsPath},
		Labels: map[string]string{
			"org.opencontainers.image.title":         "errnowatch",
			"org.opencontainers.image.description":   "Failing syscalls as security alerts for Kubernetes nodes: eBPF agent, collector and CLI",
			"org.opencontainers.image.source":        "https://github.com/errnowatch/errnowatch",
			"org.opencontainers.image.url":           "https://github.com/errnowatch/errnowatch",
			"org.opencontainers.image.documentation": "https://github.com/errnowatch/errnowatch/tree/main/charts/errnowatch",
			"org.opencontainers.image.version":       "0.1.0",
			"org.opencontainers.image.revision":      rev,
			"org.opencontainers.image.vendor":        "errnowatch",
			"org.opencontainers.image.base.name":     "gcr.io/distroless/static-debian12:nonroot",
		},
	}, "errnowatch (Dockerfile final stage)")
}

// pauseImage is the sandbox image: the pause binary alone.
func pauseImage(bin string, epoch time.Time) (v1.Image, error) {
	l := newLayer(epoch)
	if err := l.copyFile(strings.TrimPrefix(PausePath, "/"), 0o555, bin); err != nil {
		return nil, err
	}
	return image(l, epoch, v1.Config{Entrypoint: []string{PausePath}}, "pause")
}

// workloadImage is busybox, for the shell and tools the benign workloads
// run, and the workload program.
func workloadImage(ctx context.Context, bin string, epoch time.Time) (v1.Image, error) {
	if err := checkStatic(busyboxPath); err != nil {
		return nil, fmt.Errorf("busybox (apt-get install %s): %w", BusyboxPackage, err)
	}
	out, err := exec.CommandContext(ctx, busyboxPath, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets: %w", err)
	}
	l := newLayer(epoch)
	l.dir("root", 0o700, 0, 0)
	l.dir("tmp", 0o1777, 0, 0)
	l.file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	l.file("etc/group", 0o644, []byte("root:x:0:\nnobody:x:65534:\n"))
	if err := l.copyFile(strings.TrimPrefix(BusyboxPath, "/"), 0o755, busyboxPath); err != nil {
		return nil, err
	}
	applets := strings.Fields(string(out))
	slices.Sort(applets)
	for _, a := range applets {
		// linuxrc is an init for initramfs images.
		if a == strings.TrimPrefix(BusyboxPath, "/") || a == "linuxrc" {
			continue
		}
		l.symlink(a, BusyboxPath)
	}
	if err := l.copyFile(strings.TrimPrefix(WorkloadPath, "/"), 0o755, bin); err != nil {
		return nil, err
	}
	return image(l, epoch, v1.Config{
		Entrypoint: []string{WorkloadPath},
		Env:        []string{defaultPath},
	}, "busybox and the e2e workload")
}

// checkStatic fails for a file that is not an ELF executable, or one that
// needs a dynamic loader, which the workload image does not have.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", p)
		}
	}
	return nil
}

// image makes a single-layer linux image for this machine's architecture.
func image(l *layer, epoch time.Time, cfg v1.Config, history string) (v1.Image, error) {
	data, err := l.close()
	if err != nil {
		return nil, err
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		Config:       cfg,
	})
	if err != nil {
		return nil, fmt.Errorf("set config: %w", err)
	}
	// Uncompressed: the tarball is read once, on this machine, and
	// containerd's import takes plain tar layers as docker save writes
	// them; gzip would only cost build time.
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:   static.NewLayer(data, types.DockerUncompressedLayer),
		History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: history},
	})
	if err != nil {
		return nil, fmt.Errorf("add layer: %w", err)
	}
	return img, nil
}

// layer writes one image layer's tar, root-owned unless told otherwise,
// every entry at the same time, parents before their children.
type layer struct {
	buf   bytes.Buffer
	tw    *tar.Writer
	mtime time.Time
	dirs  map[string]bool
	err   error
}

func newLayer(mtime time.Time) *layer {
	l := &layer{mtime: mtime, dirs: map[string]bool{}}
	l.tw = tar.NewWriter(&l.buf)
	return l
}

func (l *layer) write(h *tar.Header, data []byte) {
	if l.err != nil {
		return
	}
	h.ModTime, h.Format = l.mtime, tar.FormatPAX
	if err := l.tw.WriteHeader(h); err != nil {
		l.err = fmt.Errorf("layer entry %s: %w", h.Name, err)
		return
	}
	if _, err := l.tw.Write(data); err != nil {
		l.err = fmt.Errorf("layer entry %s: %w", h.Name, err)
	}
}

// parents adds the missing parent directories of p, mode 0755.
func (l *layer) parents(p string) {
	if d := path.Dir(p); d != "." && !l.dirs[d] {
		l.dir(d, 0o755, 0, 0)
	}
}

func (l *layer) dir(p string, mode int64, uid, gid int) {
	l.parents(p)
	l.dirs[p] = true
	l.write(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode, Uid: uid, Gid: gid}, nil)
}

func (l *layer) file(p string, mode int64, data []byte) {
	l.parents(p)
	l.write(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Size: int64(len(data))}, data)
}

func (l *layer) copyFile(p string, mode int64, src string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("read %s for the image: %w", src, err)
	}
	l.file(p, mode, data)
	return l.err
}

func (l *layer) symlink(p, target string) {
	l.parents(p)
	l.write(&tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: target, Mode: 0o777}, nil)
}

func (l *layer) close() ([]byte, error) {
	if l.err != nil {
		return nil, l.err
	}
	if err := l.tw.Close(); err != nil {
		return nil, fmt.Errorf("finish layer: %w", err)
	}
	return l.buf.Bytes(), nil
}
