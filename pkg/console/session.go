package console

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/kube"
	"github.com/errnowatch/errnowatch/pkg/pipeline"
	"github.com/errnowatch/errnowatch/pkg/rules"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// session is the node pipeline (sensor, cgroup resolver, enrichment, and
// the rules when the user gives some) and the drain clock that both views
// run on.
type session struct {
	pipe     *pipeline.Pipeline
	sensor   *sensor.Sensor
	resolver *cgroup.Resolver
	enricher *enrich.Enricher
	engine   *rules.Engine
	log      *zap.Logger
}

// Cluster says how the views name pods: with a kubeconfig (or in a pod) they
// watch this node's pods; without, they show cgroups only.
type Cluster struct {
	Kubeconfig string
	NodeName   string
}

func (c Cluster) enabled() bool {
	return c.Kubeconfig != "" || os.Getenv("KUBERNETES_SERVICE_HOST") != ""
}

// node is the node whose pods the views name: the flag, NODE_NAME, or else
// the hostname, which on a node is the node name unless the kubelet was
// told otherwise.
func (c Cluster) node() (string, error) {
	if !c.enabled() {
		return c.NodeName, nil
	}
	node, err := kube.NodeName(c.NodeName)
	if err != nil {
		return os.Hostname()
	}
	return node, nil
}

// sessionConfig is what a view asks of the session.
type sessionConfig struct {
	Filter           FilterFlags
	Durations        bool
	RecordsPerWindow int
	Cluster          Cluster
	Rules            []string
	Interval         time.Duration
	Logger           *zap.Logger
}

func openSession(cfg sessionConfig) (*session, error) {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	node, err := cfg.Cluster.node()
	if err != nil {
		return nil, err
	}
	p, err := pipeline.New(pipeline.Config{
		Node:         node,
		Kubernetes:   cfg.Cluster.enabled(),
		Kubeconfig:   cfg.Cluster.Kubeconfig,
		Sensor:       sensor.Config{Durations: cfg.Durations, RecordsPerWindow: cfg.RecordsPerWindow, ExcludeSelf: true},
		SensorFilter: cfg.Filter.Build,
		Rules:        cfg.Rules,
		Interval:     cfg.Interval,
		Logger:       log,
	})
	if err != nil {
		return nil, err
	}
	return &session{pipe: p, sensor: p.Sensor, resolver: p.Resolver, enricher: p.Enricher, engine: p.Engine, log: log}, nil
}

// run delivers records and drained intervals until ctx is done or count
// intervals have passed (count 0: no limit), then detaches.
func (s *session) run(ctx context.Context, every time.Duration, count int,
	onRecord func(sensor.Record) error, onInterval func(sensor.Interval) error) (err error) {
	defer func() {
		if cerr := s.close(); err == nil {
			err = cerr
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer s.pipe.Wait()
	defer cancel()
	s.pipe.Start(ctx)
	if err := s.pipe.WaitForPods(ctx); err != nil {
		return fmt.Errorf("wait for this node's pods: %w", err)
	}

	tick := time.NewTicker(every)
	defer tick.Stop()
	records := s.sensor.Records()
	for n := 0; count == 0 || n < count; {
		select {
		case <-ctx.Done():
			return nil
		case r, ok := <-records:
			if !ok {
				return nil
			}
			if onRecord != nil {
				if err := onRecord(r); err != nil {
					return err
				}
			}
		case <-tick.C:
			iv, err := s.sensor.Drain()
			if err != nil {
				return err
			}
			n++
			if onInterval != nil {
				if err := onInterval(iv); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (s *session) close() error { return s.pipe.Close() }

// cgroupPath names a cgroup id, or says it is gone.
func (s *session) cgroupPath(id uint64) string {
	if p, ok := s.resolver.Lookup(id); ok {
		return p
	}
	return fmt.Sprintf("<cgroup %d>", id)
}

// Pod is the workload columns of a record or row, when a pod is known: the
// trace line's own (enrich.LinePod), so top rows and trace lines name pods
// the same way and `rules test` reads both.
type Pod = enrich.LinePod

// pod returns what is known of the pod behind a cgroup.
func (s *session) pod(id uint64) Pod {
	m, _ := s.enricher.Lookup(id)
	if m == nil || m.Host {
		return Pod{}
	}
	p := Pod{Node: m.Node, Namespace: m.Namespace, Pod: m.Pod, PodUID: m.PodUID, Container: m.Container, Image: m.Image}
	if m.Workload.Kind != "" {
		p.Workload = m.Workload.Kind + "/" + m.Workload.Name
	}
	return p
}

// evaluate runs the rules on one interval and the records that came with
// it; without rules it does nothing.
func (s *session) evaluate(iv sensor.Interval, records []sensor.Record) []alert.Alert {
	if s.engine == nil {
		return nil
	}
	return s.pipe.Step(iv, records, nil)
}

// AlertJSON is how the views print an alert among their lines.
type AlertJSON struct {
	Alert alert.Alert `json:"alert"`
}
