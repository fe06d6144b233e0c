package alertpb

import (
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

func TestRoundTripKeepsEveryField(t *testing.T) {
	base := time.Date(2026, 3, 1, 0, 0, 0, 123456789, time.UTC)
	// 0 is a host alert, 1 a pod alert: both shapes round-trip.
	for _, a := range storetest.Alerts(storetest.DefaultShape, base, 0, 2) {
		a.Tags = []string{"a", "b"}
		got, err := FromProto(ToProto(&a))
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
		p := ToProto(&a)
		mutate(p)
		if _, err := FromProto(p); err == nil {
			t.Errorf("%s: FromProto accepted it", name)
		}
	}
	// Unspecified severity converts (Validate rejects it later) so that
	// filters can use it for "any".
	if s, err := SeverityFromProto(errnowatchv1.Severity_SEVERITY_UNSPECIFIED); err != nil || s != alert.SeverityUnknown {
		t.Fatalf("SEVERITY_UNSPECIFIED = %v, %v", s, err)
	}
}

func TestUnknownTargetKindIsRejected(t *testing.T) {
	a := storetest.Alerts(storetest.DefaultShape, time.Now(), 1, 1)[0]
	p := ToProto(&a)
	if len(p.Targets) != 2 || p.Targets[1].Kind != errnowatchv1.TargetKind_TARGET_KIND_NETWORK {
		t.Fatalf("targets on the wire: %v", p.Targets)
	}
	p.Targets[0].Kind = 7
	if _, err := FromProto(p); err == nil {
		t.Error("FromProto accepted target kind 7")
	}
}
