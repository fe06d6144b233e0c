package alertpb

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
)

// DefaultMaxAlertBytes bounds one encoded alert a collector accepts. An
// agent's alerts are a few KiB at most (16 processes, the counts of one
// pattern, a message); the bound leaves room for that many times over while
// keeping one batch, one list page and one stream page small.
const DefaultMaxAlertBytes = 64 << 10

// Field limits: what a Kubernetes object name, a kernel comm, a path or a
// rule's message can be, with margin. A field over its limit is not
// truncated: the alert is refused, so nothing stored is silently altered.
const (
	MaxRuleIDLen      = 253
	MaxTags           = 32
	MaxTagLen         = 128
	MaxDescriptionLen = 2048
	MaxMessageLen     = 4096
	MaxNameLen        = 253 // node, pod, workload names: DNS subdomains
	MaxLabelLen       = 63  // namespace, container, kind: DNS labels
	MaxUIDLen         = 64
	MaxContainerIDLen = 128
	MaxImageLen       = 1024
	MaxCgroupPathLen  = 4096 // PATH_MAX
	MaxProcesses      = 64
	MaxCommLen        = 64 // TASK_COMM_LEN is 16; room for a "[...]" marker
	MaxCounts         = 1024
	MaxCountNameLen   = 64
)

// CheckLimits reports the first bound p breaks: its encoded size (maxBytes,
// DefaultMaxAlertBytes when not positive), a field's length or a list's
// length. It runs before FromProto on everything a collector receives.
func CheckLimits(p *errnowatchv1.Alert, maxBytes int) error {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxAlertBytes
	}
	if n := proto.Size(p); n > maxBytes {
		return fmt.Errorf("alert %.64q is %d bytes encoded, at most %d are allowed", p.GetId(), n, maxBytes)
	}
	for _, f := range []struct {
		name string
		v    string
		max  int
	}{
		{"rule_id", p.GetRuleId(), MaxRuleIDLen},
		{"description", p.GetDescription(), MaxDescriptionLen},
		{"message", p.GetMessage(), MaxMessageLen},
		{"node", p.GetNode(), MaxNameLen},
		{"namespace", p.GetNamespace(), MaxLabelLen},
		{"pod", p.GetPod(), MaxNameLen},
		{"pod_uid", p.GetPodUid(), MaxUIDLen},
		{"container", p.GetContainer(), MaxLabelLen},
		{"container_id", p.GetContainerId(), MaxContainerIDLen},
		{"image", p.GetImage(), MaxImageLen},
		{"workload.kind", p.GetWorkload().GetKind(), MaxLabelLen},
		{"workload.name", p.GetWorkload().GetName(), MaxNameLen},
		{"cgroup_path", p.GetCgroupPath(), MaxCgroupPathLen},
	} {
		if len(f.v) > f.max {
			return fmt.Errorf("alert %.64q: %s is %d bytes, at most %d are allowed", p.GetId(), f.name, len(f.v), f.max)
		}
	}
	if n := len(p.GetTags()); n > MaxTags {
		return fmt.Errorf("alert %.64q has %d tags, at most %d are allowed", p.GetId(), n, MaxTags)
	}
	for i, t := range p.GetTags() {
		if len(t) > MaxTagLen {
			return fmt.Errorf("alert %.64q: tag %d is %d bytes, at most %d are allowed", p.GetId(), i, len(t), MaxTagLen)
		}
	}
	if n := len(p.GetProcesses()); n > MaxProcesses {
		return fmt.Errorf("alert %.64q names %d processes, at most %d are allowed", p.GetId(), n, MaxProcesses)
	}
	for i, pr := range p.GetProcesses() {
		if len(pr.GetComm()) > MaxCommLen {
			return fmt.Errorf("alert %.64q: process %d comm is %d bytes, at most %d are allowed", p.GetId(), i, len(pr.GetComm()), MaxCommLen)
		}
	}
	if n := len(p.GetCounts()); n > MaxCounts {
		return fmt.Errorf("alert %.64q has %d counts, at most %d are allowed", p.GetId(), n, MaxCounts)
	}
	for i, c := range p.GetCounts() {
		if len(c.GetSyscall()) > MaxCountNameLen || len(c.GetErrno()) > MaxCountNameLen {
			return fmt.Errorf("alert %.64q: count %d names a syscall or errno over %d bytes", p.GetId(), i, MaxCountNameLen)
		}
	}
	return nil
}
