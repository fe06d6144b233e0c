// Package querypb converts the collector's query API between the wire
// (api/errnowatch/v1) and the store's Go types: what a query read from the
// store goes out through it, and a caller's filter comes in through
// FilterFromProto, the one place a filter is checked. It sits beside
// alertpb, whose alert conversion it uses, rather than in it: pkg/store
// encodes stored bodies with alertpb, so alertpb cannot import pkg/store.
package querypb

import (
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/util/validation"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/store"
)

// StoredToProto converts a stored revision for the wire.
func StoredToProto(st *store.Stored) *errnowatchv1.StoredAlert {
	return &errnowatchv1.StoredAlert{
		Sequence:   st.Seq,
		StoredTime: timestamppb.New(st.StoredAt),
		Alert:      alertpb.ToProto(&st.Alert),
	}
}

// SummaryToProto converts a store summary for the wire.
func SummaryToProto(p *store.PodSummary) *errnowatchv1.PodSummary {
	out := &errnowatchv1.PodSummary{
		Namespace:   p.Namespace,
		Pod:         p.Pod,
		Node:        p.Node,
		Alerts:      p.Alerts,
		Failures:    p.Failures,
		MaxSeverity: alertpb.SeverityToProto(p.MaxSeverity),
		LastSeen:    timestamppb.New(p.LastSeen),
	}
	for _, r := range p.Rules {
		out.Rules = append(out.Rules, &errnowatchv1.RuleSummary{
			RuleId: r.RuleID, Alerts: r.Alerts, Failures: r.Failures, MaxSeverity: alertpb.SeverityToProto(r.MaxSeverity),
		})
	}
	for sev := alert.SeverityCritical; sev > alert.SeverityUnknown; sev-- {
		if n := p.BySeverity[sev]; n > 0 {
			out.Severities = append(out.Severities, &errnowatchv1.SeverityCount{Severity: alertpb.SeverityToProto(sev), Alerts: n})
		}
	}
	return out
}

// FilterFromProto validates a filter: names must be valid Kubernetes names,
// the severity known, the time range well-formed.
func FilterFromProto(p *errnowatchv1.AlertFilter) (store.Filter, error) {
	var v []*errdetails.BadRequest_FieldViolation
	bad := func(field string, msgs ...string) {
		if len(msgs) > 0 {
			v = append(v, &errdetails.BadRequest_FieldViolation{Field: "filter." + field, Description: strings.Join(msgs, "; ")})
		}
	}
	f := store.Filter{
		Namespace:    p.GetNamespace(),
		Pod:          p.GetPod(),
		Container:    p.GetContainer(),
		WorkloadKind: p.GetWorkloadKind(),
		WorkloadName: p.GetWorkloadName(),
		Node:         p.GetNode(),
		RuleID:       p.GetRuleId(),
	}
	if f.Namespace != "" {
		bad("namespace", validation.IsDNS1123Label(f.Namespace)...)
	}
	if f.Pod != "" {
		bad("pod", validation.IsDNS1123Subdomain(f.Pod)...)
	}
	if f.Container != "" {
		bad("container", validation.IsDNS1123Label(f.Container)...)
	}
	if f.WorkloadName != "" {
		bad("workload_name", validation.IsDNS1123Subdomain(f.WorkloadName)...)
	}
	if f.Node != "" {
		bad("node", validation.IsDNS1123Subdomain(f.Node)...)
	}
	if f.WorkloadKind != "" && (len(f.WorkloadKind) > 63 || strings.ContainsFunc(f.WorkloadKind, notAlnum)) {
		bad("workload_kind", "must be a Kubernetes kind such as Deployment")
	}
	if len(f.RuleID) > 253 {
		bad("rule_id", "must be at most 253 characters")
	}
	sev, err := alertpb.SeverityFromProto(p.GetMinSeverity())
	if err != nil {
		bad("min_severity", err.Error())
	}
	f.MinSeverity = sev
	if f.Since, err = alertpb.TimeFromProto(p.GetSince()); err != nil {
		bad("since", err.Error())
	}
	if f.Until, err = alertpb.TimeFromProto(p.GetUntil()); err != nil {
		bad("until", err.Error())
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		bad("until", "must be after since")
	}
	if len(v) > 0 {
		return store.Filter{}, alertpb.BadRequestViolations(v)
	}
	return f, nil
}

func notAlnum(r rune) bool {
	return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9')
}
