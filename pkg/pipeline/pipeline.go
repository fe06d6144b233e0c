// Package pipeline builds the node's stages once, in order, and runs the
// step of each interval: the cgroup resolver, the pod informer, the sensor,
// the enricher and the rules engine; then, every interval, what the sensor
// drained is enriched (cgroup → pod) and evaluated (→ alerts). It hands the
// enriched batch and the alerts to its caller: the node agent (pkg/agent)
// spools them, the standalone views (pkg/console) print them. It owns no
// loop of its own: each caller reads records and drains at its own pace.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/kube"
	"github.com/errnowatch/errnowatch/pkg/rules"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// Config is what the node pipeline is built from. Zero values get the
// defaults named on each field.
type Config struct {
	// Node is this node's name, put in every Meta and alert.
	Node string
	// Kubernetes turns on the pod informer, from Kubeconfig ("" uses the
	// in-cluster config). Without it, failures are attributed to cgroups
	// and pod UIDs only.
	Kubernetes bool
	Kubeconfig string
	// Scope limits the pods watched, in the kernel; it needs Kubernetes.
	Scope enrich.Scope
	// CgroupRoot is the host's cgroup v2 mount as this process sees it; ""
	// finds it.
	CgroupRoot string
	// Sensor configures the sensor; SensorFilter, when set, builds its
	// Filter once the cgroup mount is known (the views' --cgroup flags).
	Sensor       sensor.Config
	SensorFilter func(mount string) (sensor.Filter, error)
	// Rules are rule files or directories; none: no engine, Step only
	// enriches. WatchRules reloads them when they change (Watcher).
	Rules      []string
	WatchRules bool
	// Interval is the drain and rule evaluation interval (default 1 s).
	Interval time.Duration
	Logger   *zap.Logger
}

// Pipeline is the node's stages, built once. The fields are for the
// caller's metrics and lookups; Engine and Watcher are nil without rules,
// Pods without Kubernetes.
type Pipeline struct {
	Resolver *cgroup.Resolver
	Sensor   *sensor.Sensor
	Pods     *kube.Pods
	Enricher *enrich.Enricher
	Engine   *rules.Engine
	Watcher  *rules.Watcher

	log       *zap.Logger
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New builds the stages: rules (so a bad rule fails before anything is
// attached), cgroups, the sensor, the pod informer, the enricher. Whatever
// it opened is closed again if a later step fails.
func New(cfg Config) (p *Pipeline, err error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if !cfg.Kubernetes && !cfg.Scope.Empty() {
		return nil, errors.New("a pod scope (--namespaces, --pod-selector) needs the Kubernetes API")
	}
	p = &Pipeline{log: cfg.Logger}
	opened := p
	defer func() {
		if err != nil {
			opened.Close()
		}
	}()
	if len(cfg.Rules) > 0 {
		rs, err := rules.Load(cfg.Rules...)
		if err != nil {
			return nil, fmt.Errorf("load rules: %w", err)
		}
		p.Engine = rules.NewEngine(rs, rules.Config{Interval: cfg.Interval, Node: cfg.Node, Logger: p.log})
		if cfg.WatchRules {
			p.Watcher = rules.NewWatcher(cfg.Rules, rs, p.Engine, rules.WatchOptions{Logger: p.log})
		}
	}
	mount := ""
	if cfg.CgroupRoot != "" {
		if mount, err = cgroup.V2Under(cfg.CgroupRoot); err != nil {
			return nil, err
		}
	}
	if p.Resolver, err = cgroup.NewResolver(cgroup.Options{Logger: p.log, Mount: mount}); err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	sc := cfg.Sensor
	if cfg.SensorFilter != nil {
		if sc.Filter, err = cfg.SensorFilter(p.Resolver.Mount()); err != nil {
			return nil, err
		}
	}
	sc.Logger = p.log
	if p.Sensor, err = sensor.Load(sc); err != nil {
		return nil, err
	}
	if cfg.Kubernetes {
		if p.Pods, err = openPods(cfg, p.log); err != nil {
			return nil, err
		}
	}
	eo := enrich.Options{Node: cfg.Node, Cgroups: p.Resolver, Pods: p.Pods, Logger: p.log}
	if !cfg.Scope.Empty() {
		eo.Scope, eo.Filter = cfg.Scope, p.Sensor
	}
	if p.Enricher, err = enrich.New(eo); err != nil {
		return nil, err
	}
	return p, nil
}

func openPods(cfg Config, log *zap.Logger) (*kube.Pods, error) {
	rc, err := kube.RESTConfig(cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cs, err := kube.NewClient(rc)
	if err != nil {
		return nil, err
	}
	keys, err := cfg.Scope.LabelKeys()
	if err != nil {
		return nil, err
	}
	return kube.New(cs, kube.Options{Node: cfg.Node, Labels: kube.DefaultLabelFilter().With(keys...), Logger: log})
}

// Start runs the stages' background work (cgroup events, the pod informer,
// the enricher's scope, the rules watch) on goroutines the pipeline owns,
// until ctx ends; Wait waits for them.
func (p *Pipeline) Start(ctx context.Context) {
	goRun := func(name string, fn func(context.Context) error) {
		p.wg.Go(func() {
			if err := fn(ctx); err != nil && !errors.Is(err, context.Canceled) {
				p.log.Error("agent component stopped", zap.String("component", name), zap.Error(err))
			}
		})
	}
	goRun("cgroups", p.Resolver.Run)
	if p.Watcher != nil {
		goRun("rules-watch", p.Watcher.Run)
	}
	if p.Pods != nil {
		goRun("pods", p.Pods.Run)
	}
	goRun("enrich", p.Enricher.Run)
}

// Wait waits for the goroutines of Start, which end with its context.
func (p *Pipeline) Wait() { p.wg.Wait() }

// WaitForPods waits until the pod informer has synced; without Kubernetes
// it returns at once.
func (p *Pipeline) WaitForPods(ctx context.Context) error {
	if p.Pods == nil {
		return nil
	}
	return p.Pods.WaitForSync(ctx)
}

// Step is the work of one interval: enrich what the sensor drained with
// the records that came with it, show the batch to see (if set; the agent's
// metrics and summary), then evaluate the rules (none without an engine).
func (p *Pipeline) Step(iv sensor.Interval, records []sensor.Record, see func(*enrich.Batch)) []alert.Alert {
	b := p.Enricher.EnrichInterval(iv, records)
	if see != nil {
		see(&b)
	}
	if p.Engine == nil {
		return nil
	}
	return p.Engine.Process(&b)
}

// Fast evaluates the rules one record decides as it arrives
// (rules.Engine.Fast), for a failure in a cgroup the enricher already
// knows; the rest waits for Step.
func (p *Pipeline) Fast(r *sensor.Record, now time.Time) []alert.Alert {
	if p.Engine == nil || r.Errno() == 0 {
		return nil
	}
	m, ok := p.Enricher.Lookup(r.CgroupID)
	if !ok {
		return nil
	}
	return p.Engine.Fast(&enrich.Record{Record: *r, Meta: m}, now)
}

// Close detaches the sensor and stops watching cgroups. It is nil-safe and
// idempotent; it returns the sensor's error.
func (p *Pipeline) Close() error {
	if p == nil {
		return nil
	}
	p.closeOnce.Do(func() {
		p.closeErr = p.Sensor.Close()
		if p.Resolver != nil {
			p.Resolver.Close()
		}
	})
	return p.closeErr
}
