// Package alertfmt prints what the collector answers for people and
// machines: alert lists as a table, a wide table or JSON lines; per-pod
// summaries as a table; single alerts as they fire as one line (Line); the SIEM stream as JSON lines or OCSF Detection
// Findings. The CLI picks a format from a flag and hands the collector's
// messages to these writers. Text meant for a terminal goes through
// Sanitize, which escapes the control characters a watched process can put
// in its comm or paths; the console views use it too.
package alertfmt

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
)

// ListFormat is how `alerts list` prints.
type ListFormat string

// List formats.
const (
	ListTable ListFormat = "table"
	ListWide  ListFormat = "wide"
	ListJSON  ListFormat = "json"
)

// ParseListFormat accepts table, wide or json.
func ParseListFormat(s string) (ListFormat, error) {
	switch f := ListFormat(strings.ToLower(s)); f {
	case ListTable, ListWide, ListJSON:
		return f, nil
	}
	return "", fmt.Errorf("unknown output format %q: use table, wide or json", s)
}

// StreamFormat is how `alerts stream` prints.
type StreamFormat string

// Stream formats.
const (
	StreamJSON StreamFormat = "json"
	StreamOCSF StreamFormat = "ocsf"
)

// ParseStreamFormat accepts json or ocsf.
func ParseStreamFormat(s string) (StreamFormat, error) {
	switch f := StreamFormat(strings.ToLower(s)); f {
	case StreamJSON, StreamOCSF:
		return f, nil
	}
	return "", fmt.Errorf("unknown stream format %q: use json or ocsf", s)
}

// Record is the JSON form of a stored alert: the alert's own fields
// (pkg/alert's JSON) plus where the store put it. Sequence is the cursor to
// resume a stream after this alert.
type Record struct {
	Sequence   uint64    `json:"sequence"`
	StoredTime time.Time `json:"stored_time"`
	alert.Alert
}

// NewRecord converts a stored alert from the wire.
func NewRecord(st *errnowatchv1.StoredAlert) (Record, error) {
	a, err := alertpb.FromProto(st.GetAlert())
	if err != nil {
		return Record{}, fmt.Errorf("decode alert at sequence %d: %w", st.GetSequence(), err)
	}
	stored, err := alertpb.TimeFromProto(st.GetStoredTime())
	if err != nil {
		return Record{}, fmt.Errorf("decode stored time at sequence %d: %w", st.GetSequence(), err)
	}
	return Record{Sequence: st.GetSequence(), StoredTime: stored, Alert: a}, nil
}

// WriteList prints alerts in format f; now dates the AGE column.
func WriteList(w io.Writer, f ListFormat, alerts []*errnowatchv1.StoredAlert, now time.Time) error {
	if f == ListJSON {
		enc := json.NewEncoder(w)
		for _, st := range alerts {
			r, err := NewRecord(st)
			if err != nil {
				return err
			}
			if err := enc.Encode(r); err != nil {
				return fmt.Errorf("write alert: %w", err)
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if f == ListWide {
		fmt.Fprintln(tw, "LAST SEEN\tSEVERITY\tNAMESPACE\tPOD\tCONTAINER\tNODE\tWORKLOAD\tRULE\tFAILURES\tTOP FAILURE\tDENIED\tFIRST SEEN\tID\tREV\tMESSAGE")
	} else {
		fmt.Fprintln(tw, "LAST SEEN\tSEVERITY\tNAMESPACE\tPOD\tRULE\tFAILURES\tMESSAGE")
	}
	for _, st := range alerts {
		r, err := NewRecord(st)
		if err != nil {
			return err
		}
		a := &r.Alert
		// Every string cell goes through Sanitize: messages carry comms
		// and paths a watched process chose, and the rest come over the
		// wire from whoever could publish.
		ns, pod := orDash(Sanitize(a.Namespace)), orDash(Sanitize(a.Pod))
		if a.Host {
			pod = "(host)"
		}
		if f == ListWide {
			wl := "-"
			if a.Workload.Name != "" {
				wl = Sanitize(a.Workload.Kind + "/" + a.Workload.Name)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\n",
				age(a.LastSeen, now), a.Severity, ns, pod, orDash(Sanitize(a.Container)), orDash(Sanitize(a.Node)), wl,
				Sanitize(a.RuleID), a.Total, Sanitize(topFailure(a)), orDash(oneLine(alert.TargetSummary(a.Targets))),
				a.FirstSeen.UTC().Format(time.RFC3339), Sanitize(a.ID), a.Revision, oneLine(a.Message))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n",
			age(a.LastSeen, now), a.Severity, ns, pod, Sanitize(a.RuleID), a.Total, oneLine(a.Message))
	}
	return tw.Flush()
}

// Line is an alert on one line, as the standalone views and `agent
// --print-alerts` print each alert as it fires:
// "ALERT 15:04:05 high [rule] namespace/pod container: message", with the
// cgroup path in place of the pod for host alerts. It is sanitized: the
// message names comms and paths a watched process chose.
func Line(a *alert.Alert) string {
	where := a.CgroupPath
	if a.Pod != "" {
		where = a.Namespace + "/" + a.Pod + " " + a.Container
	}
	return Sanitize(fmt.Sprintf("ALERT %s %s [%s] %s: %s",
		a.LastSeen.Local().Format("15:04:05"), a.Severity, a.RuleID, where, a.Message))
}

// WriteSummary prints one line per pod (host alerts: per node), worst
// first as the collector sorted them.
func WriteSummary(w io.Writer, pods []*errnowatchv1.PodSummary, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tPOD\tALERTS\tFAILURES\tWORST\tCRIT\tHIGH\tMED\tLOW\tINFO\tRULES\tLAST SEEN")
	for _, p := range pods {
		var bySev [alert.SeverityCritical + 1]uint64
		for _, sc := range p.GetSeverities() {
			if s := int(sc.GetSeverity()); s > 0 && s < len(bySev) {
				bySev[s] += sc.GetAlerts()
			}
		}
		var rules []string
		for _, r := range p.GetRules() {
			rules = append(rules, fmt.Sprintf("%s(%d)", Sanitize(r.GetRuleId()), r.GetAlerts()))
		}
		pod := orDash(Sanitize(p.GetPod()))
		if p.GetPod() == "" && p.GetNode() != "" {
			pod = "(host " + Sanitize(p.GetNode()) + ")"
		}
		last, _ := alertpb.TimeFromProto(p.GetLastSeen())
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n",
			orDash(Sanitize(p.GetNamespace())), pod, p.GetAlerts(), p.GetFailures(), alert.Severity(p.GetMaxSeverity()),
			bySev[alert.SeverityCritical], bySev[alert.SeverityHigh], bySev[alert.SeverityMedium],
			bySev[alert.SeverityLow], bySev[alert.SeverityInfo], strings.Join(rules, ","), age(last, now))
	}
	return tw.Flush()
}

// StreamWriter prints stream events one JSON object per line. Heartbeats
// are not printed: a consumer resumes from the last alert's sequence.
type StreamWriter struct {
	enc    *json.Encoder
	format StreamFormat
}

// NewStreamWriter writes alerts to w in format f.
func NewStreamWriter(w io.Writer, f StreamFormat) *StreamWriter {
	return &StreamWriter{enc: json.NewEncoder(w), format: f}
}

// Write prints one stored alert.
func (s *StreamWriter) Write(st *errnowatchv1.StoredAlert) error {
	r, err := NewRecord(st)
	if err != nil {
		return err
	}
	var v any = r
	if s.format == StreamOCSF {
		v = OCSF(&r)
	}
	if err := s.enc.Encode(v); err != nil {
		return fmt.Errorf("write alert: %w", err)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine folds a message's whitespace runs into single spaces, then
// escapes what is left that a terminal would act on.
func oneLine(s string) string { return Sanitize(strings.Join(strings.Fields(s), " ")) }

func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if d := now.Sub(t); d > 0 {
		return duration.HumanDuration(d) + " ago"
	}
	return "now"
}

// topFailure names the syscall and errno with the most failures.
func topFailure(a *alert.Alert) string {
	var top *alert.Count
	for i := range a.Counts {
		if top == nil || a.Counts[i].Count > top.Count {
			top = &a.Counts[i]
		}
	}
	if top == nil {
		return "-"
	}
	return fmt.Sprintf("%s=%s(%d)", top.Syscall, top.Errno, top.Count)
}
