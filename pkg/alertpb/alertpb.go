// Package alertpb is the one place where errnowatch's Go alert model meets
// the wire model (api/errnowatch/v1): alerts and their stored body convert
// here, and the gRPC status vocabulary (a batch never to resend, when to
// retry, a bad request) is defined here for both ends. Delivery uses it to
// send, the collector to receive, pkg/store to encode the bodies it stores,
// the CLI to print what it read. The query API's stored revisions,
// summaries and filters convert in querypb, beside it: they are pkg/store's
// types, and pkg/store imports this package.
package alertpb

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alert"
)

var groupByToProto = map[alert.GroupBy]errnowatchv1.GroupBy{
	"":                     errnowatchv1.GroupBy_GROUP_BY_UNSPECIFIED,
	alert.GroupByPod:       errnowatchv1.GroupBy_GROUP_BY_POD,
	alert.GroupByContainer: errnowatchv1.GroupBy_GROUP_BY_CONTAINER,
	alert.GroupByProcess:   errnowatchv1.GroupBy_GROUP_BY_PROCESS,
	alert.GroupByNode:      errnowatchv1.GroupBy_GROUP_BY_NODE,
}

var groupByFromProto = func() map[errnowatchv1.GroupBy]alert.GroupBy {
	m := make(map[errnowatchv1.GroupBy]alert.GroupBy, len(groupByToProto))
	for k, v := range groupByToProto {
		m[v] = k
	}
	return m
}()

// SeverityToProto maps a severity; the numbers are the same on both sides.
func SeverityToProto(s alert.Severity) errnowatchv1.Severity { return errnowatchv1.Severity(s) }

// SeverityFromProto maps a wire severity, rejecting numbers this version
// does not know (a newer peer's, or garbage) instead of storing them.
// SEVERITY_UNSPECIFIED maps to alert.SeverityUnknown.
func SeverityFromProto(s errnowatchv1.Severity) (alert.Severity, error) {
	if _, ok := errnowatchv1.Severity_name[int32(s)]; !ok {
		return alert.SeverityUnknown, fmt.Errorf("unknown severity %d (want 1 info .. 5 critical)", int32(s))
	}
	return alert.Severity(s), nil
}

// ToProto converts an alert for the wire. Unknown group-by keys become
// GROUP_BY_UNSPECIFIED.
func ToProto(a *alert.Alert) *errnowatchv1.Alert {
	p := &errnowatchv1.Alert{
		Id:          a.ID,
		Revision:    a.Revision,
		RuleId:      a.RuleID,
		Severity:    SeverityToProto(a.Severity),
		Tags:        a.Tags,
		Description: a.Description,
		Message:     a.Message,
		GroupBy:     groupByToProto[a.GroupBy],
		FirstSeen:   timeToProto(a.FirstSeen),
		LastSeen:    timeToProto(a.LastSeen),
		Node:        a.Node,
		Namespace:   a.Namespace,
		Pod:         a.Pod,
		PodUid:      a.PodUID,
		Container:   a.Container,
		ContainerId: a.ContainerID,
		Image:       a.Image,
		Host:        a.Host,
		CgroupPath:  a.CgroupPath,
		Total:       a.Total,
	}
	if a.Workload != (alert.Workload{}) {
		p.Workload = &errnowatchv1.Workload{Kind: a.Workload.Kind, Name: a.Workload.Name}
	}
	if len(a.Processes) > 0 {
		p.Processes = make([]*errnowatchv1.Process, len(a.Processes))
		for i, pr := range a.Processes {
			p.Processes[i] = &errnowatchv1.Process{Pid: pr.PID, Comm: pr.Comm, Uid: pr.UID}
		}
	}
	if len(a.Counts) > 0 {
		p.Counts = make([]*errnowatchv1.SyscallCount, len(a.Counts))
		for i, c := range a.Counts {
			p.Counts[i] = &errnowatchv1.SyscallCount{Syscall: c.Syscall, Errno: c.Errno, Count: c.Count}
		}
	}
	if len(a.Targets) > 0 {
		p.Targets = make([]*errnowatchv1.DeniedTarget, len(a.Targets))
		for i, t := range a.Targets {
			p.Targets[i] = &errnowatchv1.DeniedTarget{Syscall: t.Syscall, Errno: t.Errno,
				Kind: targetKindToProto[t.Kind], Target: t.Target, Count: t.Count}
		}
	}
	return p
}

var targetKindToProto = map[alert.TargetKind]errnowatchv1.TargetKind{
	alert.TargetFile:    errnowatchv1.TargetKind_TARGET_KIND_FILE,
	alert.TargetNetwork: errnowatchv1.TargetKind_TARGET_KIND_NETWORK,
}

var targetKindFromProto = map[errnowatchv1.TargetKind]alert.TargetKind{
	errnowatchv1.TargetKind_TARGET_KIND_FILE:    alert.TargetFile,
	errnowatchv1.TargetKind_TARGET_KIND_NETWORK: alert.TargetNetwork,
}

// FromProto converts a wire alert. It fails on enum values this version does
// not know and on malformed timestamps; it does not call Validate, so the
// caller decides what a storable alert is.
func FromProto(p *errnowatchv1.Alert) (alert.Alert, error) {
	sev, err := SeverityFromProto(p.GetSeverity())
	if err != nil {
		return alert.Alert{}, fmt.Errorf("alert %q: %w", p.GetId(), err)
	}
	gb, ok := groupByFromProto[p.GetGroupBy()]
	if !ok {
		return alert.Alert{}, fmt.Errorf("alert %q: unknown group_by %d", p.GetId(), int32(p.GetGroupBy()))
	}
	first, err := timeFromProto(p.GetFirstSeen())
	if err != nil {
		return alert.Alert{}, fmt.Errorf("alert %q: first_seen: %w", p.GetId(), err)
	}
	last, err := timeFromProto(p.GetLastSeen())
	if err != nil {
		return alert.Alert{}, fmt.Errorf("alert %q: last_seen: %w", p.GetId(), err)
	}
	a := alert.Alert{
		ID:          p.GetId(),
		Revision:    p.GetRevision(),
		RuleID:      p.GetRuleId(),
		Severity:    sev,
		Tags:        p.GetTags(),
		Description: p.GetDescription(),
		Message:     p.GetMessage(),
		GroupBy:     gb,
		FirstSeen:   first,
		LastSeen:    last,
		Node:        p.GetNode(),
		Namespace:   p.GetNamespace(),
		Pod:         p.GetPod(),
		PodUID:      p.GetPodUid(),
		Container:   p.GetContainer(),
		ContainerID: p.GetContainerId(),
		Image:       p.GetImage(),
		Workload:    alert.Workload{Kind: p.GetWorkload().GetKind(), Name: p.GetWorkload().GetName()},
		Host:        p.GetHost(),
		CgroupPath:  p.GetCgroupPath(),
		Total:       p.GetTotal(),
	}
	if n := len(p.GetProcesses()); n > 0 {
		a.Processes = make([]alert.Process, n)
		for i, pr := range p.GetProcesses() {
			a.Processes[i] = alert.Process{PID: pr.GetPid(), Comm: pr.GetComm(), UID: pr.GetUid()}
		}
	}
	if n := len(p.GetCounts()); n > 0 {
		a.Counts = make([]alert.Count, n)
		for i, c := range p.GetCounts() {
			a.Counts[i] = alert.Count{Syscall: c.GetSyscall(), Errno: c.GetErrno(), Count: c.GetCount()}
		}
	}
	if n := len(p.GetTargets()); n > 0 {
		a.Targets = make([]alert.Target, n)
		for i, t := range p.GetTargets() {
			kind, ok := targetKindFromProto[t.GetKind()]
			if !ok {
				return alert.Alert{}, fmt.Errorf("alert %q: target %d: unknown kind %d", p.GetId(), i, int32(t.GetKind()))
			}
			a.Targets[i] = alert.Target{Syscall: t.GetSyscall(), Errno: t.GetErrno(), Kind: kind,
				Target: t.GetTarget(), Count: t.GetCount()}
		}
	}
	return a, nil
}

func timeToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// TimeFromProto converts an optional timestamp: nil is the zero time.
func TimeFromProto(ts *timestamppb.Timestamp) (time.Time, error) { return timeFromProto(ts) }

func timeFromProto(ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, fmt.Errorf("invalid timestamp: %w", err)
	}
	return ts.AsTime(), nil
}

// Marshal is the one stored encoding of an alert, whatever the database:
// errnowatch.v1.Alert in protobuf, the API's versioned schema, so rows
// written by an older errnowatch stay readable.
func Marshal(a *alert.Alert) ([]byte, error) {
	b, err := proto.Marshal(ToProto(a))
	if err != nil {
		return nil, fmt.Errorf("encode alert %s: %w", a.ID, err)
	}
	return b, nil
}

// ReceivedBody is the stored body of an alert received as p, which
// FromProto converted to a: the same bytes as Marshal(a), made from the
// wire message the collector already holds instead of converting a back to
// protobuf. p serves only when it holds nothing FromProto drops: fields
// this version does not know (a newer agent's, or a hostile one's padding)
// and an empty workload message; else the body is Marshal(a). Either way
// what is stored is exactly what was converted and validated.
func ReceivedBody(p *errnowatchv1.Alert, a *alert.Alert) ([]byte, error) {
	if !onlyKnown(p) {
		return Marshal(a)
	}
	b, err := proto.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode alert %s: %w", a.ID, err)
	}
	return b, nil
}

// onlyKnown reports whether p and every message in it hold only fields
// FromProto converts, so that re-encoding p is Marshal of its conversion.
func onlyKnown(p *errnowatchv1.Alert) bool {
	known := func(m proto.Message) bool { return len(m.ProtoReflect().GetUnknown()) == 0 }
	if !known(p) {
		return false
	}
	if w := p.GetWorkload(); w != nil && (!known(w) || w.GetKind() == "" && w.GetName() == "") {
		return false
	}
	if ts := p.GetFirstSeen(); ts != nil && !known(ts) {
		return false
	}
	if ts := p.GetLastSeen(); ts != nil && !known(ts) {
		return false
	}
	for _, m := range p.GetProcesses() {
		if !known(m) {
			return false
		}
	}
	for _, m := range p.GetCounts() {
		if !known(m) {
			return false
		}
	}
	for _, m := range p.GetTargets() {
		if !known(m) {
			return false
		}
	}
	return true
}

// Unmarshal decodes what Marshal encoded.
func Unmarshal(b []byte) (alert.Alert, error) {
	var p errnowatchv1.Alert
	if err := proto.Unmarshal(b, &p); err != nil {
		return alert.Alert{}, fmt.Errorf("decode alert: %w", err)
	}
	return FromProto(&p)
}
