package alertpb_test

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

func TestRoundTripKeepsEveryField(t *testing.T) {
	base := time.Date(2026, 3, 1, 0, 0, 0, 123456789, time.UTC)
	// 0 is a host alert, 1 a pod alert: both shapes round-trip.
	for _, a := range storetest.Alerts(storetest.DefaultShape, base, 0, 2) {
		a.Tags = []string{"a", "b"}
		got, err := alertpb.FromProto(alertpb.ToProto(&a))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, a) {
			t.Fatalf("round trip changed the alert:\n got %+v\nwant %+v", got, a)
		}
	}
}

func TestUnknownEnumsAndBadTimesAreRejected(t *testing.T) {
	a := storetest.Alerts(storetest.DefaultShape, time.Now(), 1, 1)[0]
	for name, mutate := range map[string]func(*errnowatchv1.Alert){
		"severity 9":      func(p *errnowatchv1.Alert) { p.Severity = 9 },
		"group_by 42":     func(p *errnowatchv1.Alert) { p.GroupBy = 42 },
		"first_seen nano": func(p *errnowatchv1.Alert) { p.FirstSeen = &timestamppb.Timestamp{Nanos: -1} },
		"last_seen year":  func(p *errnowatchv1.Alert) { p.LastSeen = &timestamppb.Timestamp{Seconds: 1 << 40} },
	} {
		p := alertpb.ToProto(&a)
		mutate(p)
		if _, err := alertpb.FromProto(p); err == nil {
			t.Errorf("%s: alertpb.FromProto accepted it", name)
		}
	}
	// Unspecified severity converts (Validate rejects it later) so that
	// filters can use it for "any".
	if s, err := alertpb.SeverityFromProto(errnowatchv1.Severity_SEVERITY_UNSPECIFIED); err != nil || s != alert.SeverityUnknown {
		t.Fatalf("SEVERITY_UNSPECIFIED = %v, %v", s, err)
	}
}

func TestUnknownTargetKindIsRejected(t *testing.T) {
	a := storetest.Alerts(storetest.DefaultShape, time.Now(), 1, 1)[0]
	p := alertpb.ToProto(&a)
	if len(p.Targets) != 2 || p.Targets[1].Kind != errnowatchv1.TargetKind_TARGET_KIND_NETWORK {
		t.Fatalf("targets on the wire: %v", p.Targets)
	}
	p.Targets[0].Kind = 7
	if _, err := alertpb.FromProto(p); err == nil {
		t.Error("alertpb.FromProto accepted target kind 7")
	}
}

// fullAlert is a wire alert with every field of every message set, so that
// a field added to the API and not to the conversion shows up here.
func fullAlert(t *testing.T) *errnowatchv1.Alert {
	t.Helper()
	first := time.Date(2026, 3, 1, 0, 0, 1, 5, time.UTC)
	p := &errnowatchv1.Alert{
		Id: alert.NewID(first), Revision: 3, RuleId: "rule", Severity: errnowatchv1.Severity_SEVERITY_HIGH,
		Tags: []string{"a", "b"}, Description: "d", Message: "m", GroupBy: errnowatchv1.GroupBy_GROUP_BY_PROCESS,
		FirstSeen: timestamppb.New(first), LastSeen: timestamppb.New(first.Add(time.Second + 7)),
		Node: "node", Namespace: "ns", Pod: "pod", PodUid: "uid", Container: "c", ContainerId: "cid", Image: "img",
		Workload: &errnowatchv1.Workload{Kind: "Deployment", Name: "dep"}, Host: true, CgroupPath: "/cg",
		Processes: []*errnowatchv1.Process{{Pid: 1, Comm: "sh", Uid: 2}},
		Counts:    []*errnowatchv1.SyscallCount{{Syscall: "openat", Errno: "EACCES", Count: 4}},
		Total:     4,
		Targets: []*errnowatchv1.DeniedTarget{{Syscall: "openat", Errno: "EACCES",
			Kind: errnowatchv1.TargetKind_TARGET_KIND_FILE, Target: "/etc/shadow", Count: 1}},
	}
	var unset []string
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		fds := m.Descriptor().Fields()
		for i := range fds.Len() {
			fd := fds.Get(i)
			switch {
			case !m.Has(fd):
				unset = append(unset, string(fd.FullName()))
			case fd.IsList() && fd.Message() != nil:
				for k := range m.Get(fd).List().Len() {
					walk(m.Get(fd).List().Get(k).Message())
				}
			case fd.Message() != nil:
				walk(m.Get(fd).Message())
			}
		}
	}
	walk(p.ProtoReflect())
	if len(unset) > 0 {
		t.Fatalf("fullAlert leaves %v unset: set them, and convert them in ToProto and FromProto", unset)
	}
	return p
}

func TestEveryWireFieldConverts(t *testing.T) {
	p := fullAlert(t)
	a, err := alertpb.FromProto(p)
	if err != nil {
		t.Fatal(err)
	}
	if back := alertpb.ToProto(&a); !proto.Equal(back, p) {
		t.Fatalf("a field is lost converting to Go and back:\n got %v\nwant %v", back, p)
	}
}

// TestReceivedBodyIsMarshal: the body stored from a received message is
// byte for byte the body Marshal makes of its conversion, whether the
// message is re-encoded or holds what the conversion drops.
func TestReceivedBodyIsMarshal(t *testing.T) {
	unknown := protowire.AppendString(protowire.AppendTag(nil, 99, protowire.BytesType), "padding")
	cases := map[string]func(p *errnowatchv1.Alert){
		"as sent":                   func(*errnowatchv1.Alert) {},
		"unknown field":             func(p *errnowatchv1.Alert) { p.ProtoReflect().SetUnknown(unknown) },
		"unknown field in process":  func(p *errnowatchv1.Alert) { p.Processes[0].ProtoReflect().SetUnknown(unknown) },
		"unknown field in target":   func(p *errnowatchv1.Alert) { p.Targets[0].ProtoReflect().SetUnknown(unknown) },
		"unknown field in count":    func(p *errnowatchv1.Alert) { p.Counts[0].ProtoReflect().SetUnknown(unknown) },
		"unknown field in workload": func(p *errnowatchv1.Alert) { p.Workload.ProtoReflect().SetUnknown(unknown) },
		"unknown field in time":     func(p *errnowatchv1.Alert) { p.LastSeen.ProtoReflect().SetUnknown(unknown) },
		"empty workload":            func(p *errnowatchv1.Alert) { p.Workload = &errnowatchv1.Workload{} },
		"no workload":               func(p *errnowatchv1.Alert) { p.Workload = nil },
	}
	for name, mutate := range cases {
		p := fullAlert(t)
		mutate(p)
		a, err := alertpb.FromProto(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := alertpb.ReceivedBody(p, &a)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := alertpb.Marshal(&a)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: ReceivedBody is not Marshal's body:\n got %x\nwant %x", name, got, want)
		}
	}
}
