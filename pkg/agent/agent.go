// Package agent runs errnowatch on a node: it runs the node pipeline
// (pkg/pipeline: sensor → enrich → rules) every drain interval and hands
// its alerts to delivery (spool → collector), and serves the agent's
// metrics and health endpoints (pkg/ops). It adds no behaviour of its own
// beyond the loop, the shutdown order and the Go memory limit it derives
// from the container's (ERRNOWATCH_MEMORY_LIMIT).
package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/collector/client"
	"github.com/errnowatch/errnowatch/pkg/delivery"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/kube"
	"github.com/errnowatch/errnowatch/pkg/ops"
	"github.com/errnowatch/errnowatch/pkg/pipeline"
	"github.com/errnowatch/errnowatch/pkg/rules"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// Config is the agent's configuration.
type Config struct {
	// Node is this node's name (NODE_NAME from the downward API).
	Node string
	// Kubeconfig is a kubeconfig path; "" uses the in-cluster config.
	Kubeconfig string
	// NoKubernetes runs without the API server: failures are attributed to
	// cgroups and pod UIDs only (the standalone mode).
	NoKubernetes bool
	// Rules are rule files or directories (a mounted ConfigMap works).
	Rules []string
	// CgroupRoot is the host's cgroup v2 mount as the agent sees it; ""
	// finds it.
	CgroupRoot string
	// Interval is the drain and rule evaluation interval (default 1 s).
	Interval time.Duration
	// Durations turns on duration mode.
	Durations bool
	// Scope limits the pods watched, in the kernel.
	Scope enrich.Scope
	// Collector is where alerts go; an empty Address keeps them in the
	// spool (and OnAlert) only.
	Collector client.Options
	// SpoolDir holds alerts until the collector acknowledges them.
	SpoolDir      string
	SpoolMaxBytes int64
	// MetricsAddress serves /metrics; HealthAddress serves /healthz and
	// /readyz. Empty: not served.
	MetricsAddress string
	HealthAddress  string
	// MaxRecordsPerInterval bounds the records kept for one interval's
	// rules; more are counted as dropped (the counts stay exact).
	MaxRecordsPerInterval int
	// PodMetrics turns on the per-pod failure counter (metrics.go).
	PodMetrics PodMetrics
	// ShutdownFlush is how long a stopping agent keeps delivering its spool
	// (default 5 s).
	ShutdownFlush time.Duration
	// OnAlert sees every alert raised or updated (the standalone mode
	// prints them).
	OnAlert func(alert.Alert)
	// OnBatch sees every interval's enriched batch (the standalone mode
	// prints a summary).
	OnBatch func(*enrich.Batch)
	// Logger gets the agent's log; nil discards it.
	Logger *zap.Logger
}

func (c *Config) setDefaults() error {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.MaxRecordsPerInterval <= 0 {
		c.MaxRecordsPerInterval = 65536
	}
	if c.ShutdownFlush <= 0 {
		c.ShutdownFlush = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.SpoolDir == "" {
		return errors.New("no spool directory: set --spool-dir (e.g. /var/lib/errnowatch/spool)")
	}
	if len(c.Rules) == 0 {
		return errors.New("no rules: set --rules to a rule file or directory (the chart mounts /etc/errnowatch/rules)")
	}
	if !c.NoKubernetes && c.Node == "" {
		return errors.New("no node name: set --node-name or NODE_NAME (the chart sets it from the downward API)")
	}
	return nil
}

// Agent is a running agent.
type Agent struct {
	cfg  Config
	log  *zap.Logger
	pipe *pipeline.Pipeline
	// The pipeline's stages, for the metrics and Ready.
	sensor   *sensor.Sensor
	resolver *cgroup.Resolver
	pods     *kube.Pods
	enricher *enrich.Enricher
	engine   *rules.Engine
	watcher  *rules.Watcher
	spool    *delivery.Spool
	sender   *delivery.Sender
	conn     *client.Client
	metrics  *metrics
	registry *prometheus.Registry

	attached    atomic.Bool
	recordDrops atomic.Uint64
}

// Run runs the agent until ctx is done, then shuts down in order: stop
// counting, evaluate the last interval, deliver what it can, detach.
func Run(ctx context.Context, cfg Config) error {
	a, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// New loads the rules, the sensor and the enrichment, and opens the
// spool. Whatever it opened is closed again if a later step fails.
func New(ctx context.Context, cfg Config) (a *Agent, err error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if _, err := setMemoryLimit(cfg.Logger); err != nil {
		return nil, err
	}
	a = &Agent{cfg: cfg, log: cfg.Logger, registry: prometheus.NewRegistry()}
	// Every error return below sets a to nil before this runs: close the
	// agent through its own variable, not through the named result.
	opened := a
	defer func() {
		if err != nil {
			opened.close()
		}
	}()

	if a.pipe, err = pipeline.New(pipeline.Config{
		Node:       cfg.Node,
		Kubernetes: !cfg.NoKubernetes,
		Kubeconfig: cfg.Kubeconfig,
		Scope:      cfg.Scope,
		CgroupRoot: cfg.CgroupRoot,
		Sensor:     sensor.Config{Durations: cfg.Durations, ExcludeSelf: true},
		Rules:      cfg.Rules,
		WatchRules: true,
		Interval:   cfg.Interval,
		Logger:     a.log,
	}); err != nil {
		return nil, err
	}
	p := a.pipe
	a.resolver, a.sensor, a.pods, a.enricher, a.engine, a.watcher = p.Resolver, p.Sensor, p.Pods, p.Enricher, p.Engine, p.Watcher
	a.attached.Store(true)

	if a.spool, err = delivery.OpenSpool(cfg.SpoolDir, delivery.SpoolOptions{MaxBytes: cfg.SpoolMaxBytes, Logger: a.log}); err != nil {
		return nil, fmt.Errorf("open spool %s: %w", cfg.SpoolDir, err)
	}
	if cfg.Collector.Address != "" {
		if a.conn, err = client.Dial(cfg.Collector); err != nil {
			return nil, fmt.Errorf("collector: %w", err)
		}
		if a.sender, err = delivery.NewSender(a.spool, a.conn.Conn, delivery.SenderOptions{Node: cfg.Node,
			SensorStatus: a.sensorStatus, Logger: a.log}); err != nil {
			return nil, err
		}
	}
	if a.metrics, err = newMetrics(a); err != nil {
		return nil, err
	}
	return a, nil
}

// Ready tells whether the agent counts, knows its pods and has rules.
func (a *Agent) Ready() (bool, string) {
	switch {
	case !a.attached.Load():
		return false, "sensor not attached"
	case a.pods != nil && !a.pods.Synced():
		return false, "pod informer not synced"
	case a.engine.Rules() == nil:
		return false, "no rules loaded"
	}
	return true, "ok"
}

// Registry is the agent's Prometheus registry.
func (a *Agent) Registry() *prometheus.Registry { return a.registry }

// Run runs the loop until ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	defer a.close()
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	// The memory trim (memlimit.go) is the agent's own goroutine beside
	// the pipeline's; both end with bg.
	var wg sync.WaitGroup
	defer func() { stopBG(); a.pipe.Wait(); wg.Wait() }()
	a.pipe.Start(bg)
	wg.Go(func() {
		if err := a.trimAfterStart(bg); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Error("agent component stopped", zap.String("component", "memory-trim"), zap.Error(err))
		}
	})
	stopServing, err := a.serve()
	defer stopServing()
	if err != nil {
		return err
	}
	if err := a.pipe.WaitForPods(ctx); err != nil {
		return fmt.Errorf("wait for the pod informer to sync: %w", err)
	}
	senderCtx, stopSender := context.WithCancel(context.WithoutCancel(ctx))
	senderDone := make(chan struct{})
	if a.sender != nil {
		go func() {
			defer close(senderDone)
			a.sender.Run(senderCtx)
		}()
	} else {
		close(senderDone)
	}
	a.log.Info("agent running", zap.String("node", a.cfg.Node), zap.Duration("interval", a.cfg.Interval),
		zap.Int("rules", len(a.engine.Rules().Rules)))

	err = a.loop(ctx)

	// Stop counting first: nothing of ours stays attached even if the
	// flush below is cut short.
	a.sensor.Close()
	a.attached.Store(false)
	if a.sender != nil {
		a.flushSpool()
	}
	stopSender()
	<-senderDone
	return err
}

func (a *Agent) loop(ctx context.Context) error {
	tick := time.NewTicker(a.cfg.Interval)
	defer tick.Stop()
	records := a.sensor.Records()
	var batch []sensor.Record
	for {
		select {
		case <-ctx.Done():
			a.interval(batch)
			return nil
		case r, ok := <-records:
			if !ok {
				return errors.New("sensor stopped")
			}
			if len(batch) < a.cfg.MaxRecordsPerInterval {
				batch = append(batch, r)
			} else {
				a.recordDrops.Add(1)
			}
			a.fast(&r)
		case <-tick.C:
			a.interval(batch)
			batch = batch[:0]
		}
	}
}

// fast evaluates the rules one record decides as the record arrives; the
// rest waits for the interval.
func (a *Agent) fast(r *sensor.Record) {
	a.deliver(a.pipe.Fast(r, time.Now()), false)
}

// interval drains the kernel, runs the pipeline's step and spools the
// alerts.
func (a *Agent) interval(records []sensor.Record) {
	iv, err := a.sensor.Drain()
	if err != nil {
		a.log.Error("drain sensor", zap.Error(err))
		return
	}
	// Every interval appends, with no alerts too: that retries the alerts
	// held in memory since the disk last refused an append. The spool
	// counts what it drops.
	a.deliver(a.pipe.Step(iv, records, a.observe), true)
}

// observe sees every interval's enriched batch before the rules do.
func (a *Agent) observe(b *enrich.Batch) {
	a.metrics.observe(b)
	if a.cfg.OnBatch != nil {
		a.cfg.OnBatch(b)
	}
}

// deliver spools and logs alerts. retryHeld asks the spool to append even
// when there are none, so that alerts it holds are retried.
func (a *Agent) deliver(alerts []alert.Alert, retryHeld bool) {
	if len(alerts) == 0 && !retryHeld {
		return
	}
	a.metrics.alerted(alerts)
	if err := a.spool.Append(alerts...); err != nil {
		a.log.Error("spool alerts", zap.Error(err), zap.Int("alerts", len(alerts)))
	}
	for _, al := range alerts {
		a.log.Info("alert", zap.String("rule", al.RuleID), zap.String("severity", al.Severity.String()),
			zap.String("namespace", al.Namespace), zap.String("pod", al.Pod), zap.String("container", al.Container),
			zap.Uint32("revision", al.Revision), zap.String("message", al.Message),
			zap.String("denied", alert.TargetSummary(al.Targets)))
		if a.cfg.OnAlert != nil {
			a.cfg.OnAlert(al)
		}
	}
}

// flushSpool gives the sender a bounded time to deliver what is spooled.
func (a *Agent) flushSpool() {
	deadline := time.Now().Add(a.cfg.ShutdownFlush)
	for time.Now().Before(deadline) {
		if a.sender.Stats().SpoolRecords == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.log.Warn("stopping with alerts still spooled; they are sent when the agent starts again",
		zap.Int("spooled", a.sender.Stats().SpoolRecords))
}

func (a *Agent) serve() (stop func(), err error) {
	return ops.Serve(ops.Options{
		MetricsAddress: a.cfg.MetricsAddress,
		HealthAddress:  a.cfg.HealthAddress,
		Metrics:        promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{Registry: a.registry}),
		Ready: func(w http.ResponseWriter, _ *http.Request) {
			ok, why := a.Ready()
			if !ok {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			fmt.Fprintln(w, why)
		},
	})
}

func (a *Agent) close() {
	a.pipe.Close()
	if a.conn != nil {
		a.conn.Conn.Close()
	}
	if a.spool != nil {
		a.spool.Close()
	}
}

// sensorStatus is the sensor's part of the status every batch to the
// collector carries (the web UI's node list).
func (a *Agent) sensorStatus() *errnowatchv1.AgentStatus {
	st := &errnowatchv1.AgentStatus{SensorAttached: a.attached.Load()}
	if a.sensor == nil {
		return st
	}
	if s, err := a.sensor.Stats(); err == nil {
		st.RingDrops, st.QueueDrops = s.TotalRingDrops(), s.QueueDrops+a.recordDrops.Load()
		st.MapFull, st.Overflowed = s.MapFull, s.Overflowed
	}
	return st
}
