// Command errnowatch is the one binary of errnowatch: the node agent, the
// collector, the standalone views and the user's client. This package only
// parses flags and wires the stages in pkg/ together.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "errnowatch:", err)
		stop()
		os.Exit(1)
	}
}

type globalFlags struct {
	logLevel  string
	logFormat string
}

func newRoot() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "errnowatch",
		Short: "Failing syscalls as a security signal, counted exactly in the kernel",
		Long: `errnowatch watches every syscall that fails (EPERM, EACCES, ENOENT, ECONNREFUSED...)
with an eBPF program on raw_syscalls:sys_exit, counts them exactly per cgroup,
syscall and errno in the kernel, and turns patterns of failures into alerts.

Standalone on this host (as root):
  errnowatch top              exact failure counts, every second
  errnowatch trace            sampled failure records, live`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "console", "log format: console or json")
	root.AddCommand(newAgentCmd(g), newCollectorCmd(g), newAlertsCmd(g), newRulesCmd(g), newTraceCmd(g), newTopCmd(g), newDebugCmd(g))
	return root
}

// logger builds the one zap logger a command passes down; logs go to stderr
// so that stdout stays clean for tables and JSON lines.
func (g *globalFlags) logger() (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(g.logLevel)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	cfg := zap.NewProductionConfig()
	switch g.logFormat {
	case "json":
	case "console":
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableStacktrace = true
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
	default:
		return nil, fmt.Errorf("--log-format %q: use console or json", g.logFormat)
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.OutputPaths = []string{"stderr"}
	return cfg.Build()
}
