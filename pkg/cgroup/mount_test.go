package cgroup_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/prometheus/procfs"
)

func TestPickV2Mount(t *testing.T) {
	for _, tc := range []struct {
		dir, want string
	}{
		{"unified", "/sys/fs/cgroup"},
		{"hybrid", "/sys/fs/cgroup/unified"},
		{"overmounted", "/sys/fs/cgroup/unified"},
		{"hostpath", "/host/sys/fs/cgroup"},
		{"none", ""},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			fs, err := procfs.NewFS(filepath.Join("testdata", "mountinfo", tc.dir))
			if err != nil {
				t.Fatal(err)
			}
			mounts, err := fs.GetMounts()
			if err != nil {
				t.Fatal(err)
			}
			got, err := cgroup.PickV2Mount(mounts)
			if tc.want == "" {
				if !errors.Is(err, cgroup.ErrNoV2Mount) || !strings.Contains(err.Error(), "mount -t cgroup2") {
					t.Fatalf("PickV2Mount = %q, %v; want ErrNoV2Mount saying how to mount it", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("PickV2Mount = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
