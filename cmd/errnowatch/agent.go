package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/errnowatch/errnowatch/pkg/agent"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/syscalls"
)

func newAgentCmd(g *globalFlags) *cobra.Command {
	var c agent.Config
	var configFile, embedded string
	var printAlerts bool
	var summaryEvery time.Duration
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent: sensor, pod enrichment, rules and delivery to the collector",
		Long: `Runs errnowatch on one node, as the Helm chart's DaemonSet does: counts failing
syscalls in the kernel, names the pod behind each cgroup, evaluates the rules
every interval and delivers alerts to the collector through an on-disk spool.
Flags may also come from --config, a YAML file whose keys are flag names.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile != "" {
				if err := applyConfigFile(cmd.Flags(), configFile); err != nil {
					return err
				}
			}
			log, err := g.logger()
			if err != nil {
				return err
			}
			if c.Node == "" {
				c.Node = os.Getenv("NODE_NAME")
			}
			c.Log = log
			if embedded != "" {
				e, err := agent.StartEmbedded(cmd.Context(), embedded, log)
				if err != nil {
					return err
				}
				defer e.Close()
				c.Collector.Address = e.Address()
				fmt.Fprintf(cmd.ErrOrStderr(), "errnowatch: alerts are stored in %s; list them with: errnowatch alerts list --server %s\n",
					embedded, e.Address())
			}
			if printAlerts {
				out := cmd.OutOrStdout()
				c.OnAlert = func(a alert.Alert) {
					where := a.CgroupPath
					if a.Pod != "" {
						where = a.Namespace + "/" + a.Pod + " " + a.Container
					}
					fmt.Fprintf(out, "%s  %-8s %-28s %s  %s\n", a.LastSeen.Local().Format("15:04:05"), a.Severity, a.RuleID, where, a.Message)
				}
			}
			if summaryEvery > 0 {
				c.OnBatch = summarizer(cmd.OutOrStdout(), summaryEvery)
			}
			return agent.Run(cmd.Context(), c)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&configFile, "config", "", "YAML file of flag values (keys are flag names); flags on the command line win")
	fl.StringVar(&c.Node, "node-name", "", "this node's name (default $NODE_NAME)")
	fl.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster configuration)")
	fl.BoolVar(&c.NoKubernetes, "no-kubernetes", false, "run without the Kubernetes API: attribute failures to cgroups only")
	fl.StringSliceVar(&c.Rules, "rules", nil, "rule files or directories (a mounted ConfigMap works; reloaded on change)")
	fl.StringVar(&c.CgroupRoot, "cgroup-root", "", "the host's /sys/fs/cgroup as mounted in this container (default: find the v2 mount)")
	fl.DurationVar(&c.Interval, "interval", time.Second, "drain and rule evaluation interval")
	fl.BoolVar(&c.Durations, "duration", false, "measure syscall durations (attaches sys_enter; latency histograms)")
	fl.StringSliceVar(&c.Scope.Namespaces, "namespaces", nil, "watch only pods in these namespaces")
	fl.StringSliceVar(&c.Scope.ExcludeNamespaces, "exclude-namespaces", nil, "ignore pods in these namespaces")
	fl.StringVar(&c.Scope.Selector, "pod-selector", "", "watch only pods matching this label selector")
	fl.StringVar(&c.Scope.ExcludeSelector, "exclude-pod-selector", "", "ignore pods matching this label selector")
	addCollectorFlags(fl, &c)
	fl.StringVar(&embedded, "embedded-collector", "", "run a collector in this process with its SQLite store in this directory (one host, no cluster)")
	fl.BoolVar(&printAlerts, "print-alerts", false, "print every alert raised or updated on stdout")
	fl.DurationVar(&summaryEvery, "print-summary", 0, "print the top failures on stdout this often (0: never)")
	fl.StringVar(&c.SpoolDir, "spool-dir", "/var/lib/errnowatch/spool", "directory that holds alerts until the collector acknowledges them")
	fl.Int64Var(&c.SpoolMaxBytes, "spool-max-bytes", 256<<20, "bound of the spool on disk; past it the oldest alerts are dropped and counted")
	fl.StringVar(&c.MetricsAddress, "metrics-address", ":9090", "serve /metrics here (empty: off)")
	fl.StringVar(&c.HealthAddress, "health-address", ":9091", "serve /healthz and /readyz here (empty: off)")
	fl.BoolVar(&c.PodMetrics.Enabled, "pod-metrics", false, "also export failures per pod (errnowatch_pod_failures_total), at most --pod-metrics-max-series pods")
	fl.IntVar(&c.PodMetrics.MaxSeries, "pod-metrics-max-series", 500, "most pod series --pod-metrics exports; later pods are counted in namespace and pod \"_other\"")
	return cmd
}

func addCollectorFlags(fl *pflag.FlagSet, c *agent.Config) {
	fl.StringVar(&c.Collector.Address, "collector", "", "collector address: host:port (TLS) or unix:///path")
	fl.StringVar(&c.Collector.CAFile, "collector-ca", "", "CA that signed the collector's certificate")
	fl.StringVar(&c.Collector.CertFile, "collector-cert", "", "client certificate for mutual TLS")
	fl.StringVar(&c.Collector.KeyFile, "collector-key", "", "client key for mutual TLS")
	fl.StringVar(&c.Collector.ServerName, "collector-server-name", "", "name to verify in the collector's certificate")
	fl.StringVar(&c.Collector.TokenFile, "token-file", "", "bearer token file (a projected ServiceAccount token with audience errnowatch)")
}

// maxConfigFileBytes bounds --config: a file of flag values is a few KiB.
const maxConfigFileBytes = 1 << 20

// readBounded reads a file of at most max bytes.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("file is larger than %d bytes", max)
	}
	return data, nil
}

// applyConfigFile sets every flag the file names that the command line did
// not. An unknown key is an error that names the closest flag.
func applyConfigFile(fl *pflag.FlagSet, path string) error {
	data, err := readBounded(path, maxConfigFileBytes)
	if err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var names []string
	fl.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	for _, k := range keys {
		f := fl.Lookup(k)
		if f == nil || k == "config" {
			hint := ""
			if s := syscalls.Suggest(k, names); s != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", s)
			}
			return fmt.Errorf("--config %s: unknown setting %q%s", path, k, hint)
		}
		if f.Changed {
			continue
		}
		var v string
		switch x := values[k].(type) {
		case []any:
			parts := make([]string, len(x))
			for i, p := range x {
				parts[i] = fmt.Sprint(p)
			}
			v = strings.Join(parts, ",")
		default:
			v = fmt.Sprint(x)
		}
		if err := fl.Set(k, v); err != nil {
			return fmt.Errorf("--config %s: %s: %w", path, k, err)
		}
	}
	return nil
}

// summarizer prints, every period, how many failures were counted and the
// three most frequent (workload, syscall, errno).
func summarizer(w io.Writer, every time.Duration) func(*enrich.Batch) {
	type key struct{ where, syscall, errno string }
	totals := map[key]uint64{}
	var sum uint64
	start := time.Now()
	arch := syscalls.Native()
	return func(b *enrich.Batch) {
		for i := range b.Counts {
			c := &b.Counts[i]
			if c.Errno == 0 {
				continue
			}
			where := "?"
			if m := c.Meta; m != nil {
				where = m.CgroupPath
				if m.Pod != "" {
					where = m.Namespace + "/" + m.Pod
				}
			}
			totals[key{where, syscalls.Name(arch, int(c.Syscall), c.Compat), syscalls.ErrnoName(c.Errno)}] += c.Count.Count
			sum += c.Count.Count
		}
		if time.Since(start) < every {
			return
		}
		top := make([]key, 0, len(totals))
		for k := range totals {
			top = append(top, k)
		}
		sort.Slice(top, func(i, j int) bool { return totals[top[i]] > totals[top[j]] })
		var parts []string
		for i, k := range top {
			if i == 3 {
				break
			}
			parts = append(parts, fmt.Sprintf("%d %s %s (%s)", totals[k], k.syscall, k.errno, k.where))
		}
		fmt.Fprintf(w, "%s  %d failed syscalls in %s, exact; most: %s\n", time.Now().Format("15:04:05"), sum,
			time.Since(start).Round(time.Second), strings.Join(parts, ", "))
		clear(totals)
		sum, start = 0, time.Now()
	}
}
