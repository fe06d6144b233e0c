package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/kube"
)

func newDebugCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "debug",
		Short: "Explain how errnowatch sees this host",
	}
	cmd.AddCommand(newDebugCgroupCmd(g))
	return cmd
}

func newDebugCgroupCmd(g *globalFlags) *cobra.Command {
	var pid int
	var output, kubeconfig, nodeName string
	cmd := &cobra.Command{
		Use:   "cgroup [PATH]",
		Short: "Show how errnowatch understands a cgroup path (or a process's cgroup)",
		Long: `Shows the cgroup id, cgroup driver, container runtime, QoS class, pod UID and
container ID errnowatch reads from a cgroup path. Run it when failures from a pod
carry no pod name. PATH may be a line of /proc/<pid>/cgroup, a path below the
cgroup v2 root, or a cgroupfs directory. A path that is not on this host (copied
from a log, a bug report or another node) is still explained: its cgroup id is
then empty (null in JSON) and a note says so.`,
		Example: `  errnowatch debug cgroup --pid 1234
  errnowatch debug cgroup /kubepods/besteffort/pod0d0c.../4f1e...
  errnowatch debug cgroup -o json '0::/kubepods.slice/kubepods-pod....slice/cri-containerd-....scope'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (pid == 0) == (len(args) == 0) {
				return fmt.Errorf("give either a cgroup PATH or --pid PID")
			}
			var info cgroup.Info
			var id uint64
			var note string
			mount, err := cgroup.FindV2Mount()
			switch {
			case pid != 0:
				if err != nil {
					return err
				}
				info, id, err = cgroup.DescribePID(pid, mount)
			case err != nil:
				// A path pasted on a machine without cgroup v2 still says
				// what it is; only its id cannot be known.
				info = cgroup.Parse(args[0])
				note = fmt.Sprintf("this host has no cgroup v2 mount (%v), so the cgroup's id is unknown; the other fields are what the path says", err)
				err = nil
				if info.Path == "" {
					err = errEmptyCgroupPath
				}
			default:
				info, id, err = cgroup.Describe(args[0], mount)
				if errors.Is(err, fs.ErrNotExist) && info.Path != "" {
					// A path from a log, a bug report or another node: what
					// it says is the answer the user came for.
					note = fmt.Sprintf("the cgroup is not on this host (no %s), so it has no cgroup id here; the other fields are what the path says",
						filepath.Join(mount, info.Path))
					err = nil
				}
			}
			if err != nil {
				return err
			}
			out := debugCgroupJSON{
				Path: info.Path, Driver: info.Driver, Runtime: info.Runtime, QoS: info.QoS,
				PodUID: info.PodUID, ContainerID: info.ContainerID, IsContainer: info.IsContainer, Note: note,
			}
			if note == "" {
				out.CgroupID = &id
			}
			if kubeconfig != "" || os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
				log, err := g.logger()
				if err != nil {
					return err
				}
				if out.Pod, err = resolvePod(cmd.Context(), kubeconfig, nodeName, info, log); err != nil {
					return err
				}
			}
			switch output {
			case "json":
				return json.NewEncoder(cmd.OutOrStdout()).Encode(out)
			case "table":
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
				idText := "- (not on this host)"
				if out.CgroupID != nil {
					idText = strconv.FormatUint(*out.CgroupID, 10)
				}
				rows := [][2]string{
					{"path", out.Path}, {"cgroup id", idText}, {"driver", dash(out.Driver)},
					{"runtime", dash(out.Runtime)}, {"qos", dash(out.QoS)}, {"pod uid", dash(out.PodUID)},
					{"container id", dash(out.ContainerID)}, {"container", strconv.FormatBool(out.IsContainer)},
				}
				if p := out.Pod; p != nil {
					rows = append(rows, [2]string{"pod", p.Namespace + "/" + p.Name}, [2]string{"pod container", dash(p.Container)},
						[2]string{"workload", dash(p.Workload)}, [2]string{"node", p.Node})
				} else if kubeconfig != "" {
					rows = append(rows, [2]string{"pod", "(no pod on this node has this UID or container ID)"})
				}
				if out.Note != "" {
					rows = append(rows, [2]string{"note", out.Note})
				}
				for _, kv := range rows {
					fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
				}
				return tw.Flush()
			default:
				return fmt.Errorf("unknown output format %q: use -o table or -o json", output)
			}
		},
	}
	cmd.Flags().IntVar(&pid, "pid", 0, "explain the cgroup of this process")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "also resolve the pod through the API server (in a pod, the in-cluster config is used)")
	cmd.Flags().StringVar(&nodeName, "node-name", "", "this node's name (default $NODE_NAME, else the hostname)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

type debugCgroupJSON struct {
	Path string `json:"path"`
	// CgroupID is null when the cgroup is not on this host.
	CgroupID    *uint64   `json:"cgroup_id"`
	Driver      string    `json:"driver"`
	Runtime     string    `json:"runtime"`
	QoS         string    `json:"qos"`
	PodUID      string    `json:"pod_uid"`
	ContainerID string    `json:"container_id"`
	IsContainer bool      `json:"is_container"`
	Pod         *debugPod `json:"pod,omitempty"`
	// Note says why a field is missing (the cgroup is not on this host).
	Note string `json:"note,omitempty"`
}

var errEmptyCgroupPath = errors.New("empty cgroup path: pass a path such as /kubepods/besteffort/pod<uid>/<id>, or --pid PID")

// debugPod is the pod a cgroup resolves to through the API server.
type debugPod struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
	Node      string `json:"node"`
	Container string `json:"container,omitempty"`
	Image     string `json:"image,omitempty"`
	Workload  string `json:"workload,omitempty"`
	Deleted   bool   `json:"deleted,omitempty"`
}

// resolvePod finds the pod behind a parsed cgroup path among this node's
// pods, as the agent would: by the pod UID in the path, else by container ID.
func resolvePod(ctx context.Context, kubeconfig, nodeName string, info cgroup.Info, log *zap.Logger) (*debugPod, error) {
	node, err := kube.NodeName(nodeName)
	if err != nil {
		if node, err = os.Hostname(); err != nil {
			return nil, err
		}
	}
	rc, err := kube.RESTConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	cs, err := kube.NewClient(rc)
	if err != nil {
		return nil, err
	}
	pods, err := kube.New(cs, kube.Options{Node: node, Logger: log})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	go pods.Run(ctx)
	if err := pods.WaitForSync(ctx); err != nil {
		return nil, fmt.Errorf("list the pods of node %s: %w", node, err)
	}
	p, ok := pods.ByUID(info.PodUID)
	if !ok {
		if p, ok = pods.ByContainerID(info.ContainerID); !ok {
			return nil, nil
		}
	}
	out := &debugPod{Namespace: p.Namespace, Name: p.Name, UID: p.UID, Node: p.Node, Deleted: p.Deleted}
	if p.Workload.Kind != "" {
		out.Workload = p.Workload.Kind + "/" + p.Workload.Name
	}
	if c, ok := p.ContainerByID(info.ContainerID); ok {
		out.Container, out.Image = c.Name, c.Image
	}
	return out, nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
