package alertpb

import (
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

// FuzzFromProto feeds arbitrary wire bytes through what a collector does
// with a received alert: decode, bound, convert, validate. None of it may
// panic, and an alert that passes must survive the way back unchanged, so
// what is stored is what was sent. Seeds: testdata/fuzz/FuzzFromProto and
// the encodings of generated alerts.
func FuzzFromProto(f *testing.F) {
	for _, a := range storetest.Alerts(storetest.DefaultShape, time.Date(2026, 3, 1, 0, 0, 0, 1, time.UTC), 0, 4) {
		b, err := proto.Marshal(ToProto(&a))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p errnowatchv1.Alert
		if proto.Unmarshal(b, &p) != nil {
			return
		}
		if CheckLimits(&p, 0) != nil {
			return
		}
		a, err := FromProto(&p)
		if err != nil || a.Validate() != nil {
			return
		}
		back, err := FromProto(ToProto(&a))
		if err != nil {
			t.Fatalf("a converted alert does not convert back: %v", err)
		}
		if !reflect.DeepEqual(back, a) {
			t.Fatalf("round trip changed an accepted alert:\n got %+v\nwant %+v", back, a)
		}
	})
}
