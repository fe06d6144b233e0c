package console

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertfmt"
	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/kube"
	"github.com/errnowatch/errnowatch/pkg/rules"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// session is the sensor, the cgroup resolver, the enrichment and the drain
// clock that both views run on, and the rules when the user gives some.
type session struct {
	sensor   *sensor.Sensor
	resolver *cgroup.Resolver
	pods     *kube.Pods
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

// sessionConfig is what a view asks of the session.
type sessionConfig struct {
	Filter           FilterFlags
	Durations        bool
	RecordsPerWindow int
	Cluster          Cluster
	Rules            []string
	Interval         time.Duration
	Log              *zap.Logger
}

func openSession(cfg sessionConfig) (*session, error) {
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	res, err := cgroup.NewResolver(log, cgroup.Options{})
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	ss := &session{resolver: res, log: log}
	if err := ss.open(cfg); err != nil {
		ss.close()
		return nil, err
	}
	return ss, nil
}

func (ss *session) open(cfg sessionConfig) error {
	f, err := cfg.Filter.Build(ss.resolver.Mount())
	if err != nil {
		return err
	}
	if len(cfg.Rules) > 0 {
		rs, err := rules.Load(cfg.Rules...)
		if err != nil {
			return err
		}
		ss.engine = rules.NewEngine(rs, rules.Config{Interval: cfg.Interval, Node: cfg.Cluster.NodeName}, ss.log)
	}
	if cfg.Cluster.enabled() {
		node, err := kube.NodeName(cfg.Cluster.NodeName)
		if err != nil {
			// On a node the hostname is the node name unless the kubelet
			// was told otherwise.
			if node, err = os.Hostname(); err != nil {
				return err
			}
		}
		rc, err := kube.RESTConfig(cfg.Cluster.Kubeconfig)
		if err != nil {
			return err
		}
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return fmt.Errorf("kubernetes client: %w", err)
		}
		if ss.pods, err = kube.New(cs, kube.Options{Node: node}, ss.log); err != nil {
			return err
		}
		cfg.Cluster.NodeName = node
	}
	if ss.enricher, err = enrich.New(enrich.Options{Node: cfg.Cluster.NodeName, Cgroups: ss.resolver, Pods: ss.pods, Log: ss.log}); err != nil {
		return err
	}
	ss.sensor, err = sensor.Load(sensor.Config{
		Filter:           f,
		Durations:        cfg.Durations,
		RecordsPerWindow: cfg.RecordsPerWindow,
		ExcludeSelf:      true,
	}, ss.log)
	return err
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
	defer cancel()
	go s.resolver.Run(ctx)
	if s.pods != nil {
		go s.pods.Run(ctx)
		if err := s.pods.WaitForSync(ctx); err != nil {
			return fmt.Errorf("wait for this node's pods: %w", err)
		}
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

func (s *session) close() error {
	err := s.sensor.Close()
	s.resolver.Close()
	return err
}

// cgroupPath names a cgroup id, or says it is gone.
func (s *session) cgroupPath(id uint64) string {
	if p, ok := s.resolver.Lookup(id); ok {
		return p
	}
	return fmt.Sprintf("<cgroup %d>", id)
}

// Pod is the workload columns of a record or row, when a pod is known.
type Pod struct {
	Node      string `json:"node,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	PodUID    string `json:"pod_uid,omitempty"`
	Container string `json:"container,omitempty"`
	Image     string `json:"image,omitempty"`
	Workload  string `json:"workload,omitempty"`
}

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
	b := s.enricher.EnrichInterval(iv, records)
	return s.engine.Process(&b)
}

// AlertJSON is how the views print an alert among their lines.
type AlertJSON struct {
	Alert alert.Alert `json:"alert"`
}

func alertLine(a *alert.Alert) string {
	where := a.CgroupPath
	if a.Pod != "" {
		where = a.Namespace + "/" + a.Pod + " " + a.Container
	}
	// Messages name comms and paths a watched process chose.
	return alertfmt.Sanitize(fmt.Sprintf("ALERT %s %s [%s] %s: %s",
		a.LastSeen.Local().Format("15:04:05"), a.Severity, a.RuleID, where, a.Message))
}
