package collector

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/util/validation"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alertpb/querypb"
)

// The fuzz targets below run their seed corpora (testdata/fuzz/...) in
// every `go test`; `make fuzz` runs each for a while.

// FuzzPageToken: a page token is client input. Decoding never panics,
// refuses with INVALID_ARGUMENT, and a token this collector made decodes to
// what it was made from, for its own filter only.
func FuzzPageToken(f *testing.F) {
	f.Add(encodePageToken("01HZZZZZZZZZZZZZZZZZZZZZZZ", "0011223344556677"), "0011223344556677")
	f.Add("eyJ2IjoxLCJiIjoiIiwiZiI6IiJ9", "")
	f.Add("!!!", "x")
	f.Fuzz(func(t *testing.T, tok, hash string) {
		before, err := decodePageToken(tok, hash)
		if err != nil {
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("decodePageToken(%q) = %v, want INVALID_ARGUMENT", tok, err)
			}
			return
		}
		if tok != "" && before == "" {
			t.Fatalf("token %q decoded to an empty position", tok)
		}
		if before == "" {
			return
		}
		again, err := decodePageToken(encodePageToken(before, hash), hash)
		if err != nil || again != before {
			t.Fatalf("re-encoded token decodes to %q, %v; want %q", again, err, before)
		}
		if _, err := decodePageToken(encodePageToken(before, hash), hash+"x"); err == nil {
			t.Fatalf("a token was accepted for another filter")
		}
	})
}

// FuzzAlertFilter: a filter is client input that reaches SQL. Whatever
// the bytes, filterFromProto either refuses with INVALID_ARGUMENT or returns
// names Kubernetes accepts, within their length bounds, and a time range
// that is well-formed; its hash is stable.
func FuzzAlertFilter(f *testing.F) {
	for _, p := range []*errnowatchv1.AlertFilter{
		{},
		{Namespace: "shop", Pod: "web-7d9f", Container: "app", Node: "node-1", RuleId: "privesc", MinSeverity: errnowatchv1.Severity_SEVERITY_HIGH},
		{WorkloadKind: "Deployment", WorkloadName: "web", Since: timestamppb.New(time.Unix(1, 0)), Until: timestamppb.New(time.Unix(2, 0))},
		{Namespace: "Bad_NS", Since: &timestamppb.Timestamp{Nanos: -1}},
	} {
		b, err := proto.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p errnowatchv1.AlertFilter
		if proto.Unmarshal(b, &p) != nil {
			return
		}
		got, err := querypb.FilterFromProto(&p)
		if err != nil {
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("filterFromProto = %v, want INVALID_ARGUMENT", err)
			}
			return
		}
		for name, v := range map[string]string{"namespace": got.Namespace, "container": got.Container} {
			if v != "" && len(validation.IsDNS1123Label(v)) > 0 {
				t.Fatalf("accepted %s %q", name, v)
			}
		}
		for name, v := range map[string]string{"pod": got.Pod, "node": got.Node, "workload_name": got.WorkloadName} {
			if v != "" && len(validation.IsDNS1123Subdomain(v)) > 0 {
				t.Fatalf("accepted %s %q", name, v)
			}
		}
		if len(got.RuleID) > 253 || len(got.WorkloadKind) > 63 || strings.ContainsAny(got.WorkloadKind, " ;'\"") {
			t.Fatalf("accepted rule %q / kind %q", got.RuleID, got.WorkloadKind)
		}
		if !got.Since.IsZero() && !got.Until.IsZero() && !got.Since.Before(got.Until) {
			t.Fatalf("accepted since %v not before until %v", got.Since, got.Until)
		}
		if filterHash(&p) != filterHash(proto.Clone(&p).(*errnowatchv1.AlertFilter)) {
			t.Fatalf("filter hash is not stable")
		}
	})
}

// FuzzStreamRequest: a stream request is validated (filter, heartbeat) and
// its cursor checked against the store's last sequence before anything is
// read: a stream never starts beyond the store, and refusals are
// INVALID_ARGUMENT or OUT_OF_RANGE.
func FuzzStreamRequest(f *testing.F) {
	for _, r := range []*errnowatchv1.StreamAlertsRequest{
		{},
		{StartAfter: 1234, HeartbeatInterval: durationpb.New(5 * time.Second)},
		{FromEnd: true, Filter: &errnowatchv1.AlertFilter{Namespace: "shop"}},
		{StartAfter: 1 << 63, HeartbeatInterval: durationpb.New(time.Millisecond)},
		{HeartbeatInterval: &durationpb.Duration{Seconds: -1, Nanos: 5}},
	} {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint64(1000))
	}
	f.Fuzz(func(t *testing.T, b []byte, last uint64) {
		var r errnowatchv1.StreamAlertsRequest
		if proto.Unmarshal(b, &r) != nil {
			return
		}
		_, err := querypb.FilterFromProto(r.GetFilter())
		var hb time.Duration
		if err == nil {
			hb, err = heartbeatInterval(&r, 15*time.Second)
		}
		if err != nil {
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("stream options = %v, want INVALID_ARGUMENT", err)
			}
			return
		}
		if hb < minHeartbeat {
			t.Fatalf("accepted heartbeat %s below %s", hb, minHeartbeat)
		}
		cursor, err := startCursor(&r, last)
		switch {
		case err != nil && status.Code(err) != codes.OutOfRange:
			t.Fatalf("startCursor = %v, want OUT_OF_RANGE", err)
		case err != nil && (r.GetFromEnd() || r.GetStartAfter() <= last):
			t.Fatalf("startCursor refused start_after %d (from_end %v) with last %d", r.GetStartAfter(), r.GetFromEnd(), last)
		case err == nil && cursor > last:
			t.Fatalf("stream starts at %d beyond the last sequence %d", cursor, last)
		case err == nil && !r.GetFromEnd() && cursor != r.GetStartAfter():
			t.Fatalf("stream starts at %d, asked for %d", cursor, r.GetStartAfter())
		}
	})
}
