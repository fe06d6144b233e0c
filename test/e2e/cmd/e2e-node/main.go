// Command e2e-node starts and stops the single-node Kubernetes cluster the
// whole-system tests run on (package test/e2e/cluster):
//
//	e2e-node up   --dir DIR --bin-dir BIN --repo REPO        (make cluster-up)
//	e2e-node down --dir DIR                                  (make cluster-down)
//
// It is also one of the node's own parts: `e2e-node dns` serves cluster DNS.
// containerd's runc is runc-wrapper, next to this binary.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/errnowatch/errnowatch/test/e2e/cluster"
	"github.com/errnowatch/errnowatch/test/e2e/images"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-node:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: e2e-node up|down|dns|stop|start [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ExitOnError)
	dir := fs.String("dir", "", "the node's directory")
	binDir := fs.String("bin-dir", "bin", "directory of etcd and the Kubernetes binaries (make cluster-bins)")
	repo := fs.String("repo", "", "up: build the test images (test/e2e/images) from this checkout and import them")
	kubeconfig := fs.String("kubeconfig", "", "dns: kubeconfig of the API server")
	listen := fs.String("listen", "0.0.0.0:53", "dns: address to serve on")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "dns":
		return cluster.ServeDNS(ctx, *kubeconfig, *listen)
	case "up":
		self, err := os.Executable()
		if err != nil {
			return err
		}
		bin, err := filepath.Abs(*binDir)
		if err != nil {
			return err
		}
		if old, err := cluster.Open(*dir, os.Stderr); err == nil {
			fmt.Fprintf(os.Stderr, "e2e-node: %s holds a node left by an earlier run: stopping it first\n", *dir)
			if err := old.Down(); err != nil {
				fmt.Fprintln(os.Stderr, "e2e-node:", err)
			}
		}
		// Images first: a failed build then leaves no node behind.
		var tarball string
		if *repo != "" {
			if tarball, err = images.BuildAll(ctx, *repo, filepath.Join(os.TempDir(), "errnowatch-e2e-images")); err != nil {
				return fmt.Errorf("build images: %w", err)
			}
		}
		c, err := cluster.Up(ctx, cluster.Config{Dir: *dir, BinDir: bin, Self: self,
			RuncWrapper: filepath.Join(filepath.Dir(self), "runc-wrapper"), Log: os.Stderr})
		if err != nil {
			return err
		}
		if tarball != "" {
			if err := c.ImportImages(ctx, tarball); err != nil {
				_ = c.Down()
				return err
			}
		}
		fmt.Printf("node %s is up; KUBECONFIG=%s\n", c.NodeName(), c.AdminKubeconfig())
		return nil
	case "down":
		c, err := cluster.Open(*dir, os.Stderr)
		if err != nil {
			return err
		}
		return c.Down()
	case "stop", "start":
		c, err := cluster.Open(*dir, os.Stderr)
		if err != nil {
			return err
		}
		for _, name := range fs.Args() {
			if args[0] == "stop" {
				err = c.Stop(name)
			} else {
				err = c.Start(ctx, name)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown command %q: use up, down, dns, stop or start", args[0])
}
