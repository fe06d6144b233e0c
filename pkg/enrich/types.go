// Package enrich is where a sensor event gains its workload: it turns a
// cgroup id into the node, namespace, pod, container and owning workload,
// using the cgroup hierarchy (pkg/cgroup) and the node's pods (pkg/kube).
// It hands enriched records and counts on to the rule engine.
package enrich

import (
	"github.com/errnowatch/errnowatch/pkg/kube"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// Meta is what errnowatch knows about the workload behind one cgroup.
type Meta struct {
	Node        string
	Namespace   string
	Pod         string
	PodUID      string
	Container   string
	ContainerID string
	Image       string
	Workload    kube.Workload
	// Labels is the filtered set of pod labels kept for rules and alerts.
	Labels map[string]string
	// Host is true for processes outside any pod.
	Host bool
	// Unresolved is true when the cgroup is in a pod (PodUID and, for a
	// container, ContainerID come from its path) but the API did not name
	// the pod or its container within the enricher's hold, or when the
	// cgroup itself is unknown (then only Node is set). A container that no
	// status will ever name (the pod's sandbox, once every container has
	// reported its id) is not unresolved: it has the pod and no Container.
	Unresolved bool
	// CgroupPath is the cgroup v2 path relative to the cgroup root,
	// e.g. "/kubepods/besteffort/pod<uid>/<id>".
	CgroupPath string
}

// Record is a sensor record with its workload.
type Record struct {
	sensor.Record
	Meta *Meta
}

// Count is an exact sensor count with its workload.
type Count struct {
	sensor.Count
	Meta *Meta
}

// Histogram is a latency histogram with its workload.
type Histogram struct {
	sensor.Histogram
	Meta *Meta
}

// Batch is one interval's enriched data: exact counts and histograms from
// the kernel's aggregates, plus the sampled records that arrived during it.
type Batch struct {
	Interval   sensor.Interval
	Counts     []Count
	Histograms []Histogram
	Records    []Record
}
