package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/errnowatch/errnowatch/pkg/console"
)

func addClusterFlags(cmd *cobra.Command, c *console.Cluster, rules *[]string) {
	fl := cmd.Flags()
	fl.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig: name the pods behind cgroups (in a pod, the in-cluster config is used)")
	fl.StringVar(&c.NodeName, "node-name", "", "this node's name in the cluster (default $NODE_NAME, else the hostname)")
	fl.StringSliceVar(rules, "rules", nil, "rule files or directories: evaluate them every interval and print the alerts")
}

func addFilterFlags(cmd *cobra.Command, f *console.FilterFlags) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.Syscalls, "syscall", nil, "only these syscalls (names, comma-separated or repeated); !name ignores one instead")
	fl.StringSliceVar(&f.Errnos, "errno", nil, "only these errnos (ENOENT, EACCES, ... or numbers)")
	fl.StringSliceVar(&f.Cgroups, "cgroup", nil, "only these cgroups (paths below the cgroup v2 mount, or ids)")
	fl.BoolVar(&f.All, "all", false, "successful exits too, not only failures")
	fl.Uint32Var(&f.Sample, "sample", 0, "with --all: count 1 in N successful exits")
}

func newTraceCmd(g *globalFlags) *cobra.Command {
	var o console.TraceOptions
	var pids []uint
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Print failing syscalls live on this host (sampled records, rate-limited in the kernel)",
		Example: `  errnowatch trace
  errnowatch trace --errno EACCES,EPERM -o json
  errnowatch trace --syscall openat,execve --comm bash --duration`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			for _, p := range pids {
				o.PIDs = append(o.PIDs, uint32(p))
			}
			o.Out, o.Logger = cmd.OutOrStdout(), log
			return console.Trace(cmd.Context(), o)
		},
	}
	addFilterFlags(cmd, &o.Filter)
	addClusterFlags(cmd, &o.Cluster, &o.Rules)
	fl := cmd.Flags()
	fl.UintSliceVar(&pids, "pid", nil, "only these process ids")
	fl.StringSliceVar(&o.Comms, "comm", nil, "only these process names (comm)")
	fl.BoolVar(&o.Durations, "duration", false, "measure each syscall's duration (attaches sys_enter too)")
	fl.StringVarP(&o.Output, "output", "o", "table", "output format: table or json")
	fl.IntVar(&o.RecordsPerWindow, "records-per-second", 8, "records per (cgroup, syscall, errno) and second; the counts stay exact")
	return cmd
}

func newTopCmd(g *globalFlags) *cobra.Command {
	var o console.TopOptions
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show the exact failure counts per cgroup, syscall and errno, every interval",
		Example: `  errnowatch top
  errnowatch top --interval 5s --count 3 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			o.Out, o.Logger = cmd.OutOrStdout(), log
			o.Clear = o.Output == "table" && term.IsTerminal(int(os.Stdout.Fd()))
			return console.Top(cmd.Context(), o)
		},
	}
	addFilterFlags(cmd, &o.Filter)
	addClusterFlags(cmd, &o.Cluster, &o.Rules)
	fl := cmd.Flags()
	fl.DurationVar(&o.Interval, "interval", time.Second, "how often to drain and print the counts")
	fl.IntVar(&o.Count, "count", 0, "exit after this many intervals (0: run until interrupted)")
	fl.IntVar(&o.Limit, "limit", 20, "rows in the table")
	fl.StringVarP(&o.Output, "output", "o", "table", "output format: table or json")
	return cmd
}
