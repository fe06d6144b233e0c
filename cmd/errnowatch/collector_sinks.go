package main

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/sink"
	"github.com/errnowatch/errnowatch/pkg/store"
)

// startSinks runs the sinks of the file at path (none when path is
// empty) until the returned stop is called; stop waits for them, so call
// it before closing the store.
func startSinks(ctx context.Context, path string, st store.Store, reg prometheus.Registerer, log *zap.Logger) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	cfg, err := sink.LoadConfig(path)
	if err != nil {
		return nil, fmt.Errorf("--sinks-config: %w", err)
	}
	ss, ok := st.(sink.Store)
	if !ok {
		return nil, fmt.Errorf("--sinks-config: the %T store keeps no sink cursors", st)
	}
	svc, err := sink.New(cfg, ss, sink.Options{Logger: log.Named("sink"), Metrics: sink.NewMetrics(reg)})
	if err != nil {
		return nil, fmt.Errorf("--sinks-config %s: %w", path, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = svc.Run(ctx)
	}()
	log.Info("sinks running", zap.Int("sinks", len(cfg.Sinks)))
	return func() { cancel(); <-done }, nil
}
