// Package alert is the alert model shared by the rule engine (which raises
// alerts), delivery (which ships them), the collector and its stores.
//
// An alert is raised once per rule and key (pod, container, process or node)
// and then updated while the pattern goes on: every update keeps the alert's
// ID and raises its Revision, so that stores keep one row per alert and a
// re-sent revision is never stored twice.
package alert

import (
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// Severity orders alerts; higher is worse.
type Severity int

// Severities, lowest first. The zero value is invalid so that a forgotten
// field is caught by Validate.
const (
	SeverityUnknown Severity = iota
	SeverityInfo
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"unknown", "info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity accepts the lowercase names ("high") in any case.
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if i > 0 && strings.EqualFold(s, n) {
			return Severity(i), nil
		}
	}
	return SeverityUnknown, fmt.Errorf("unknown severity %q (want one of info, low, medium, high, critical)", s)
}

// MarshalText makes severities readable in JSON and YAML.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses what MarshalText wrote.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// GroupBy is the key a rule aggregates on.
type GroupBy string

// Keys a rule can group failures by.
const (
	GroupByPod       GroupBy = "pod"
	GroupByContainer GroupBy = "container"
	GroupByProcess   GroupBy = "process"
	GroupByNode      GroupBy = "node"
)

// Workload is the controller that owns a pod, resolved through ReplicaSets
// and Jobs to the Deployment or CronJob a person wrote.
type Workload struct {
	Kind string `json:"kind,omitempty"`
	Name string `json:"name,omitempty"`
}

// Process is one process seen in the sampled failure records of an alert.
type Process struct {
	PID  uint32 `json:"pid"`
	Comm string `json:"comm"`
	UID  uint32 `json:"uid"`
}

// Count is an exact failure count for one syscall and errno in the window
// that matched.
type Count struct {
	Syscall string `json:"syscall"`
	Errno   string `json:"errno"`
	Count   uint64 `json:"count"`
}

// Target is something failing calls were denied: a file path or a socket
// address, with how many sampled records named it.
type Target struct {
	Syscall string     `json:"syscall"`
	Errno   string     `json:"errno"`
	Kind    TargetKind `json:"kind"`
	// Target is the path ("old -> new" for two), or the address as
	// 10.0.0.1:80, [::1]:443 or a unix socket path; at most MaxTargetLen
	// bytes, cut short with "..." when longer.
	Target string `json:"target"`
	// Count is how many sampled records named it: a lower bound of the
	// calls, since the kernel samples the first records of each counter.
	Count uint64 `json:"count"`
}

// TargetKind says what a Target names.
type TargetKind string

// Target kinds.
const (
	TargetFile    TargetKind = "file"
	TargetNetwork TargetKind = "network"
)

// Bounds of Alert.Targets.
const (
	MaxTargets   = 8
	MaxTargetLen = 256
)

// TargetSummary is the targets as one line, grouped by syscall and errno,
// busiest first: "openat EACCES /etc/shadow ×5, /etc/gshadow ×1; connect
// ECONNREFUSED 10.0.0.5:2379 ×2".
func TargetSummary(ts []Target) string {
	var b strings.Builder
	for i, t := range ts {
		same := i > 0 && ts[i-1].Syscall == t.Syscall && ts[i-1].Errno == t.Errno
		switch {
		case same:
			b.WriteString(", ")
		case i > 0:
			b.WriteString("; ")
		}
		if !same {
			b.WriteString(t.Syscall + " " + t.Errno + " ")
		}
		fmt.Fprintf(&b, "%s ×%d", t.Target, t.Count)
	}
	return b.String()
}

// Alert is one failure pattern seen by one rule for one key.
type Alert struct {
	// ID is a ULID: unique and ordered by the time the alert was first raised.
	ID string `json:"id"`
	// Revision is 1 when the alert is raised and grows with every update.
	Revision uint32 `json:"revision"`

	RuleID      string   `json:"rule_id"`
	Severity    Severity `json:"severity"`
	Tags        []string `json:"tags,omitempty"`
	Description string   `json:"description,omitempty"`
	Message     string   `json:"message"`
	GroupBy     GroupBy  `json:"group_by,omitempty"`

	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`

	Node        string   `json:"node,omitempty"`
	Namespace   string   `json:"namespace,omitempty"`
	Pod         string   `json:"pod,omitempty"`
	PodUID      string   `json:"pod_uid,omitempty"`
	Container   string   `json:"container,omitempty"`
	ContainerID string   `json:"container_id,omitempty"`
	Image       string   `json:"image,omitempty"`
	Workload    Workload `json:"workload,omitzero"`
	// Host is true for failures from processes outside any pod.
	Host       bool   `json:"host,omitempty"`
	CgroupPath string `json:"cgroup_path,omitempty"`

	Processes []Process `json:"processes,omitempty"`
	Counts    []Count   `json:"counts,omitempty"`
	// Targets are the paths and addresses the sampled records were denied,
	// grouped by syscall and errno, busiest group first; at most
	// MaxTargets.
	Targets []Target `json:"targets,omitempty"`
	// Total is the sum of Counts.
	Total uint64 `json:"total"`
}

// NewID returns a fresh ULID for an alert first seen at t.
func NewID(t time.Time) string {
	return ulid.MustNew(ulid.Timestamp(t), rand.Reader).String()
}

// Validate reports the first thing that makes a an alert no store should
// keep.
func (a *Alert) Validate() error {
	switch {
	case a.ID == "":
		return fmt.Errorf("alert has no id")
	case len(a.ID) > 64:
		return fmt.Errorf("alert id %.20q... is longer than 64 characters", a.ID)
	case a.Revision == 0:
		return fmt.Errorf("alert %s: revision must be at least 1", a.ID)
	case a.RuleID == "":
		return fmt.Errorf("alert %s has no rule id", a.ID)
	case a.Severity <= SeverityUnknown || a.Severity > SeverityCritical:
		return fmt.Errorf("alert %s: invalid severity %d", a.ID, int(a.Severity))
	case a.FirstSeen.IsZero() || a.LastSeen.Before(a.FirstSeen):
		return fmt.Errorf("alert %s: first_seen must be set and not after last_seen", a.ID)
	case len(a.Targets) > MaxTargets:
		return fmt.Errorf("alert %s: %d targets, at most %d", a.ID, len(a.Targets), MaxTargets)
	}
	for _, t := range a.Targets {
		if len(t.Target) > MaxTargetLen+3 {
			return fmt.Errorf("alert %s: target %.20q... is longer than %d bytes", a.ID, t.Target, MaxTargetLen)
		}
	}
	return nil
}
