package alertfmt

import (
	"bufio"
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

var (
	base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now  = base.Add(5 * time.Minute)
)

// stored returns alerts 0 (a host alert) and 1 (a pod alert) as the
// collector sends them.
func stored(t *testing.T) ([]alert.Alert, []*errnowatchv1.StoredAlert) {
	t.Helper()
	as := storetest.Alerts(storetest.DefaultShape, base, 0, 2)
	as[1].Message = "openat failed\nwith EACCES"
	out := make([]*errnowatchv1.StoredAlert, len(as))
	for i := range as {
		out[i] = &errnowatchv1.StoredAlert{Sequence: uint64(10 + i), StoredTime: timestamppb.New(base.Add(time.Minute)), Alert: alertpb.ToProto(&as[i])}
	}
	return as, out
}

func TestParseFormats(t *testing.T) {
	for _, s := range []string{"table", "WIDE", "json"} {
		if _, err := ParseListFormat(s); err != nil {
			t.Errorf("ParseListFormat(%q): %v", s, err)
		}
	}
	if _, err := ParseListFormat("yaml"); err == nil || !strings.Contains(err.Error(), "table, wide or json") {
		t.Errorf("ParseListFormat(yaml) = %v, want an error listing the choices", err)
	}
	if f, err := ParseStreamFormat("OCSF"); err != nil || f != StreamOCSF {
		t.Errorf("ParseStreamFormat(OCSF) = %v, %v", f, err)
	}
	if _, err := ParseStreamFormat("table"); err == nil {
		t.Errorf("ParseStreamFormat(table) accepted")
	}
}

func TestTableAndWide(t *testing.T) {
	as, st := stored(t)
	var b bytes.Buffer
	if err := WriteList(&b, ListTable, st, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "LAST SEEN") {
		t.Fatalf("table:\n%s", b.String())
	}
	pod := strings.Fields(lines[2])
	// LAST SEEN is "4m58s ago" (last seen 1.001s after base; two fields); then severity, namespace, pod,
	// rule, failures, message.
	want := []string{"4m58s", "ago", as[1].Severity.String(), as[1].Namespace, as[1].Pod, as[1].RuleID, "2", "openat", "failed", "with", "EACCES"}
	if !reflect.DeepEqual(pod, want) {
		t.Fatalf("pod row = %q, want %q", pod, want)
	}
	if host := strings.Fields(lines[1]); host[3] != "-" || host[4] != "(host)" {
		t.Fatalf("host row = %q, want namespace - and pod (host)", host)
	}
	b.Reset()
	if err := WriteList(&b, ListWide, st, now); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"TOP FAILURE", as[1].ID, "openat=EACCES(2)", "Deployment/" + as[1].Workload.Name, as[1].Container, as[1].Node,
		"DENIED", "openat EACCES /etc/shadow-1 ×2; connect ECONNREFUSED [fd00::5]:2379 ×1"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("wide output lacks %q:\n%s", s, b.String())
		}
	}
}

func TestJSONLinesRoundTrip(t *testing.T) {
	as, st := stored(t)
	var b bytes.Buffer
	if err := WriteList(&b, ListJSON, st, now); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&b)
	i := 0
	for ; sc.Scan(); i++ {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if r.Sequence != uint64(10+i) || !r.StoredTime.Equal(base.Add(time.Minute)) || !reflect.DeepEqual(r.Alert, as[i]) {
			t.Fatalf("line %d decodes to %+v, want sequence %d and %+v", i, r, 10+i, as[i])
		}
		if !strings.Contains(sc.Text(), `"severity":"`+as[i].Severity.String()+`"`) {
			t.Fatalf("severity not written by name: %s", sc.Text())
		}
	}
	if i != 2 {
		t.Fatalf("%d JSON lines, want 2", i)
	}
}

func TestSummaryTable(t *testing.T) {
	pods := []*errnowatchv1.PodSummary{
		{Namespace: "team-a", Pod: "api-1", Alerts: 3, Failures: 40, MaxSeverity: errnowatchv1.Severity_SEVERITY_CRITICAL,
			LastSeen: timestamppb.New(base),
			Rules:    []*errnowatchv1.RuleSummary{{RuleId: "denied-open", Alerts: 2}, {RuleId: "ptrace", Alerts: 1}},
			Severities: []*errnowatchv1.SeverityCount{{Severity: errnowatchv1.Severity_SEVERITY_CRITICAL, Alerts: 1},
				{Severity: errnowatchv1.Severity_SEVERITY_LOW, Alerts: 2}}},
		{Node: "worker-2", Alerts: 1, Failures: 5, MaxSeverity: errnowatchv1.Severity_SEVERITY_INFO, LastSeen: timestamppb.New(base),
			Severities: []*errnowatchv1.SeverityCount{{Severity: errnowatchv1.Severity_SEVERITY_INFO, Alerts: 1}}},
	}
	var b bytes.Buffer
	if err := WriteSummary(&b, pods, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("summary:\n%s", b.String())
	}
	want := []string{"team-a", "api-1", "3", "40", "critical", "1", "0", "0", "2", "0", "denied-open(2),ptrace(1)", "5m", "ago"}
	if got := strings.Fields(lines[1]); !reflect.DeepEqual(got, want) {
		t.Fatalf("pod row = %q, want %q", got, want)
	}
	if got := strings.Fields(lines[2]); got[0] != "-" || got[1] != "(host" || got[2] != "worker-2)" {
		t.Fatalf("host row = %q", got)
	}
}

func TestOCSFDetectionFinding(t *testing.T) {
	as, st := stored(t)
	up := storetest.Update(as[1], time.Minute)
	st = append(st, &errnowatchv1.StoredAlert{Sequence: 12, StoredTime: timestamppb.New(now), Alert: alertpb.ToProto(&up)})
	var b bytes.Buffer
	w := NewStreamWriter(&b, StreamOCSF)
	for _, s := range st {
		if err := w.Write(s); err != nil {
			t.Fatal(err)
		}
	}
	var got []map[string]any
	dec := json.NewDecoder(&b)
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if len(got) != 3 {
		t.Fatalf("%d findings, want 3", len(got))
	}
	for i, f := range got {
		if f["class_uid"] != 2004.0 || f["category_uid"] != 2.0 || f["metadata"].(map[string]any)["version"] != "1.1.0" {
			t.Fatalf("finding %d is not an OCSF 1.1 Detection Finding: %v", i, f)
		}
	}
	pod, host, upd := got[1], got[0], got[2]
	res := pod["resources"].([]any)[0].(map[string]any)
	if res["type"] != "Pod" || res["name"] != as[1].Pod || res["namespace"] != as[1].Namespace || res["uid"] != as[1].PodUID ||
		res["data"].(map[string]any)["container"] != as[1].Container {
		t.Fatalf("pod resource = %v", res)
	}
	if hr := host["resources"].([]any)[0].(map[string]any); hr["type"] != "Node" || hr["name"] != as[0].Node {
		t.Fatalf("host resource = %v", hr)
	}
	if pod["type_uid"] != 200401.0 || pod["activity_id"] != 1.0 || upd["type_uid"] != 200402.0 || upd["activity_id"] != 2.0 {
		t.Fatalf("activities: revision 1 %v/%v, revision 2 %v/%v", pod["type_uid"], pod["activity_id"], upd["type_uid"], upd["activity_id"])
	}
	if pod["severity_id"] != float64(as[1].Severity) || pod["time"] != float64(as[1].LastSeen.UnixMilli()) || pod["count"] != float64(as[1].Total) {
		t.Fatalf("severity/time/count = %v %v %v", pod["severity_id"], pod["time"], pod["count"])
	}
	fi := upd["finding_info"].(map[string]any)
	if fi["uid"] != as[1].ID || fi["title"] != as[1].RuleID || fi["analytic"].(map[string]any)["type_id"] != 1.0 {
		t.Fatalf("finding_info = %v", fi)
	}
	md := upd["metadata"].(map[string]any)
	if md["sequence"] != 12.0 || md["uid"] != as[1].ID+"/2" {
		t.Fatalf("metadata = %v", md)
	}
	// The plain JSON stream carries the same alerts with their sequence.
	b.Reset()
	if err := NewStreamWriter(&b, StreamJSON).Write(st[2]); err != nil {
		t.Fatal(err)
	}
	var r Record
	if err := json.Unmarshal(b.Bytes(), &r); err != nil || r.Sequence != 12 || r.Revision != 2 {
		t.Fatalf("json stream line %s: %+v, %v", b.String(), r, err)
	}
}

// Denied targets become OCSF evidence: a path a file object, an IP address
// a network endpoint, a unix socket a file of type Local Socket.
func TestOCSFEvidences(t *testing.T) {
	got := ocsfEvidences([]alert.Target{
		{Syscall: "openat", Errno: "EACCES", Kind: alert.TargetFile, Target: "/etc/shadow", Count: 5},
		{Syscall: "connect", Errno: "ECONNREFUSED", Kind: alert.TargetNetwork, Target: "[fd00::5]:2379", Count: 2},
		{Syscall: "connect", Errno: "EACCES", Kind: alert.TargetNetwork, Target: "/run/containerd/containerd.sock", Count: 1},
	})
	want := []OCSFEvidence{
		{File: &OCSFFile{Name: "shadow", Path: "/etc/shadow", TypeID: 1, Type: "Regular File"},
			Data: OCSFEvidenceData{Syscall: "openat", Errno: "EACCES", Count: 5}},
		{DstEndpoint: &OCSFNetworkEndpoint{IP: "fd00::5", Port: 2379},
			Data: OCSFEvidenceData{Syscall: "connect", Errno: "ECONNREFUSED", Count: 2}},
		{File: &OCSFFile{Name: "containerd.sock", Path: "/run/containerd/containerd.sock", TypeID: 5, Type: "Local Socket"},
			Data: OCSFEvidenceData{Syscall: "connect", Errno: "EACCES", Count: 1}},
	}
	if !reflect.DeepEqual(got, want) {
		b1, _ := json.Marshal(got)
		b2, _ := json.Marshal(want)
		t.Errorf("evidences\n%s\nwant\n%s", b1, b2)
	}
}
