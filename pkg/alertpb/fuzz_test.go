package alertpb_test

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

// FuzzFromProto feeds arbitrary wire bytes through what a collector does
// with a received alert: decode, bound, convert, validate. None of it may
// panic, and an alert that passes must survive the way back unchanged, and
// its stored body (ReceivedBody) must be Marshal's, so what is stored is
// what was sent. Seeds: testdata/fuzz/FuzzFromProto and
// the encodings of generated alerts.
func FuzzFromProto(f *testing.F) {
	for _, a := range storetest.Alerts(storetest.DefaultShape, time.Date(2026, 3, 1, 0, 0, 0, 1, time.UTC), 0, 4) {
		b, err := proto.Marshal(alertpb.ToProto(&a))
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
		if alertpb.CheckLimits(&p, 0) != nil {
			return
		}
		a, err := alertpb.FromProto(&p)
		if err != nil || a.Validate() != nil {
			return
		}
		// The body ingest stores from the message it received is the body
		// of what it converted and validated.
		body, err := alertpb.ReceivedBody(&p, &a)
		if err != nil {
			t.Fatalf("an accepted alert does not encode: %v", err)
		}
		if want, _ := alertpb.Marshal(&a); !bytes.Equal(body, want) {
			t.Fatalf("ReceivedBody differs from Marshal of the converted alert:\n got %x\nwant %x", body, want)
		}
		back, err := alertpb.FromProto(alertpb.ToProto(&a))
		if err != nil {
			t.Fatalf("a converted alert does not convert back: %v", err)
		}
		if !reflect.DeepEqual(back, a) {
			t.Fatalf("round trip changed an accepted alert:\n got %+v\nwant %+v", back, a)
		}
	})
}
