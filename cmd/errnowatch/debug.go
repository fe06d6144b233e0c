package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
)

func newDebugCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "debug",
		Short: "Explain how errnowatch sees this host",
	}
	cmd.AddCommand(newDebugCgroupCmd(g))
	return cmd
}

func newDebugCgroupCmd(_ *globalFlags) *cobra.Command {
	var pid int
	var output string
	cmd := &cobra.Command{
		Use:   "cgroup [PATH]",
		Short: "Show how errnowatch understands a cgroup path (or a process's cgroup)",
		Long: `Shows the cgroup id, cgroup driver, container runtime, QoS class, pod UID and
container ID errnowatch reads from a cgroup path. Run it when failures from a pod
carry no pod name. PATH may be a line of /proc/<pid>/cgroup, a path below the
cgroup v2 root, or a cgroupfs directory.`,
		Example: `  errnowatch debug cgroup --pid 1234
  errnowatch debug cgroup /kubepods/besteffort/pod0d0c.../4f1e...
  errnowatch debug cgroup -o json '0::/kubepods.slice/kubepods-pod....slice/cri-containerd-....scope'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (pid == 0) == (len(args) == 0) {
				return fmt.Errorf("give either a cgroup PATH or --pid PID")
			}
			mount, err := cgroup.FindV2Mount()
			if err != nil {
				return err
			}
			var info cgroup.Info
			var id uint64
			if pid != 0 {
				info, id, err = cgroup.DescribePID(pid, mount)
			} else {
				info, id, err = cgroup.Describe(args[0], mount)
			}
			if err != nil {
				return err
			}
			out := debugCgroupJSON{
				Path: info.Path, CgroupID: id, Driver: info.Driver, Runtime: info.Runtime, QoS: info.QoS,
				PodUID: info.PodUID, ContainerID: info.ContainerID, IsContainer: info.IsContainer,
			}
			switch output {
			case "json":
				return json.NewEncoder(cmd.OutOrStdout()).Encode(out)
			case "table":
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
				idText := "(no such cgroup on this host)"
				if id != 0 {
					idText = strconv.FormatUint(id, 10)
				}
				for _, kv := range [][2]string{
					{"path", out.Path}, {"cgroup id", idText}, {"driver", dash(out.Driver)},
					{"runtime", dash(out.Runtime)}, {"qos", dash(out.QoS)}, {"pod uid", dash(out.PodUID)},
					{"container id", dash(out.ContainerID)}, {"container", strconv.FormatBool(out.IsContainer)},
				} {
					fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
				}
				return tw.Flush()
			default:
				return fmt.Errorf("unknown output format %q: use -o table or -o json", output)
			}
		},
	}
	cmd.Flags().IntVar(&pid, "pid", 0, "explain the cgroup of this process")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

type debugCgroupJSON struct {
	Path        string `json:"path"`
	CgroupID    uint64 `json:"cgroup_id"`
	Driver      string `json:"driver"`
	Runtime     string `json:"runtime"`
	QoS         string `json:"qos"`
	PodUID      string `json:"pod_uid"`
	ContainerID string `json:"container_id"`
	IsContainer bool   `json:"is_container"`
	Pod         any    `json:"pod,omitempty"`
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
