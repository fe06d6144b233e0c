package collector_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/internal/testenv"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/collector"
	"github.com/errnowatch/errnowatch/pkg/collector/client"
	"github.com/errnowatch/errnowatch/pkg/collector/collectortest"
	"github.com/errnowatch/errnowatch/pkg/store"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

func TestMain(m *testing.M) {
	code := testenv.Main(m)
	removeMillion()
	if code == 0 {
		// klog's flush daemon lives for the process once client-go loads.
		if err := goleak.Find(goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1")); err != nil {
			fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func dial(t testing.TB, opts client.Options) *client.Client {
	t.Helper()
	c, err := client.Dial(opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func toProto(as []alert.Alert) []*errnowatchv1.Alert {
	out := make([]*errnowatchv1.Alert, len(as))
	for i := range as {
		out[i] = alertpb.ToProto(&as[i])
	}
	return out
}

// publish sends batches on one stream and returns the acknowledgements.
func publish(t testing.TB, c *client.Client, batches ...[]alert.Alert) ([]*errnowatchv1.PublishAlertsResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := c.Ingest.PublishAlerts(ctx)
	if err != nil {
		return nil, err
	}
	for i, b := range batches {
		if err := st.Send(&errnowatchv1.PublishAlertsRequest{BatchSequence: uint64(i + 1), Alerts: toProto(b)}); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
	}
	if err := st.CloseSend(); err != nil {
		return nil, err
	}
	var acks []*errnowatchv1.PublishAlertsResponse
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return acks, nil
		}
		if err != nil {
			return acks, err
		}
		acks = append(acks, r)
	}
}

func listAll(t testing.TB, c *client.Client, f *errnowatchv1.AlertFilter, pageSize int32) []*errnowatchv1.StoredAlert {
	t.Helper()
	var out []*errnowatchv1.StoredAlert
	req := &errnowatchv1.ListAlertsRequest{Filter: f, PageSize: pageSize}
	for {
		resp, err := c.Query.ListAlerts(context.Background(), req)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		out = append(out, resp.Alerts...)
		if resp.NextPageToken == "" {
			return out
		}
		req.PageToken = resp.NextPageToken
	}
}

func TestMutualTLSIngestListAndSummarize(t *testing.T) {
	pki := collectortest.NewPKI(t, "siem-1")
	col := collectortest.Start(t, collector.Config{}, pki, false, "")
	c := dial(t, pki.ClientOptions(col.Addr))

	data := storetest.Alerts(storetest.DefaultShape, base, 0, 120)
	acks, err := publish(t, c, data[:50], data[50:], data[:10])
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	want := []string{"1:50:0", "2:70:0", "3:0:10"}
	var got []string
	for _, a := range acks {
		got = append(got, fmt.Sprintf("%d:%d:%d", a.BatchSequence, a.Stored, a.Duplicates))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("acks (batch:stored:duplicates) = %v, want %v", got, want)
	}

	f := &errnowatchv1.AlertFilter{Namespace: "ns-2", Pod: "pod-2-1"}
	listed := listAll(t, c, f, 3)
	var wantIDs []string
	for i := range data {
		if data[i].Namespace == "ns-2" && data[i].Pod == "pod-2-1" {
			wantIDs = append(wantIDs, data[i].ID)
		}
	}
	slices.Reverse(wantIDs)
	var gotIDs []string
	for _, st := range listed {
		gotIDs = append(gotIDs, st.Alert.Id)
		if st.Sequence == 0 || st.StoredTime == nil {
			t.Fatalf("stored alert without sequence or time: %v", st)
		}
	}
	if len(wantIDs) == 0 || !slices.Equal(gotIDs, wantIDs) {
		t.Fatalf("per-pod list = %v, want %v", gotIDs, wantIDs)
	}

	sum, err := c.Query.SummarizeAlerts(context.Background(), &errnowatchv1.SummarizeAlertsRequest{Filter: &errnowatchv1.AlertFilter{Namespace: "ns-2"}})
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for i, p := range sum.Pods {
		if p.Namespace != "ns-2" {
			t.Fatalf("summary for namespace ns-2 has pod %s/%s", p.Namespace, p.Pod)
		}
		if i > 0 && p.MaxSeverity > sum.Pods[i-1].MaxSeverity {
			t.Fatalf("summary not sorted worst first")
		}
		total += p.Alerts
	}
	var wantTotal uint64
	for i := range data {
		if data[i].Namespace == "ns-2" {
			wantTotal++
		}
	}
	if total != wantTotal {
		t.Fatalf("summary counts %d alerts in ns-2, want %d", total, wantTotal)
	}
}

func TestMutualTLSRefusesClientsWithoutTrustedCertificate(t *testing.T) {
	pki := collectortest.NewPKI(t, "agent")
	col := collectortest.Start(t, collector.Config{}, pki, false, "")

	noCert := client.Options{Address: col.Addr, CAFile: pki.CAFile}
	other := collectortest.NewPKI(t, "intruder")
	wrongCA := client.Options{Address: col.Addr, CAFile: pki.CAFile, CertFile: other.ClientCertFile, KeyFile: other.ClientKeyFile}
	for name, opts := range map[string]client.Options{"no client certificate": noCert, "certificate from another CA": wrongCA} {
		c := dial(t, opts)
		_, err := publish(t, c, storetest.Alerts(storetest.DefaultShape, base, 0, 5))
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s: publish = %v, want UNAVAILABLE (handshake refused)", name, err)
		}
	}
	// The client must also refuse a collector it cannot verify.
	c := dial(t, client.Options{Address: col.Addr, CAFile: other.CAFile, CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile})
	if _, err := c.Query.ListAlerts(context.Background(), &errnowatchv1.ListAlertsRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("client trusting another CA: list = %v, want UNAVAILABLE", err)
	}
	if last, _ := col.Store.LastSeq(context.Background()); last != 0 {
		t.Fatalf("refused clients stored alerts up to sequence %d", last)
	}
}

func TestStartRefusesUnsafeListeners(t *testing.T) {
	st := collectortest.Start(t, collector.Config{}, nil, true, "").Store
	pki := collectortest.NewPKI(t, "x")
	for name, l := range map[string]collector.Listen{
		"tcp without tls":                     {Address: "127.0.0.1:0"},
		"tls without client CA or token auth": {Address: "127.0.0.1:0", TLS: collector.TLSFiles{CertFile: pki.ServerCertFile, KeyFile: pki.ServerKeyFile}},
		"nothing":                             {},
	} {
		srv, err := collector.New(collector.Config{Store: st})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(context.Background(), l); err == nil {
			srv.Close()
			t.Errorf("%s: Start succeeded, want a refusal", name)
		}
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	notSocket := filepath.Join(dir, "file")
	if err := os.WriteFile(notSocket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, _ := collector.New(collector.Config{Store: st})
	if err := srv.Start(context.Background(), collector.Listen{UnixSocket: notSocket}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		srv.Close()
		t.Errorf("unix socket over a regular file: %v, want a refusal", err)
	}
}

func TestUnixSocketServesLocalAdmin(t *testing.T) {
	col := collectortest.Start(t, collector.Config{}, nil, true, "")
	fi, err := os.Stat(strings.TrimPrefix(col.Socket, "unix://"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %o, want 0600", fi.Mode().Perm())
	}
	c := dial(t, client.Options{Address: col.Socket})
	if _, err := publish(t, c, storetest.Alerts(storetest.DefaultShape, base, 0, 7)); err != nil {
		t.Fatalf("publish over the socket: %v", err)
	}
	if got := listAll(t, c, nil, 100); len(got) != 7 {
		t.Fatalf("listed %d alerts over the socket, want 7", len(got))
	}
	// Close removes the socket.
	if err := col.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(strings.TrimPrefix(col.Socket, "unix://")); !os.IsNotExist(err) {
		t.Fatalf("socket still there after Close: %v", err)
	}
}

func TestIngestIsIdempotentAcrossStreams(t *testing.T) {
	col := collectortest.Start(t, collector.Config{}, nil, true, "")
	c := dial(t, client.Options{Address: col.Socket})
	batch := storetest.Alerts(storetest.DefaultShape, base, 0, 40)
	up := storetest.Update(batch[3], time.Minute)
	for round := range 3 {
		acks, err := publish(t, c, batch, []alert.Alert{up})
		if err != nil {
			t.Fatal(err)
		}
		wantStored, wantDup := uint32(40), uint32(0)
		if round > 0 {
			wantStored, wantDup = 0, 40
		}
		if acks[0].Stored != wantStored || acks[0].Duplicates != wantDup {
			t.Fatalf("round %d: ack %v, want %d stored %d duplicates", round, acks[0], wantStored, wantDup)
		}
	}
	got := listAll(t, c, nil, 1000)
	if len(got) != 40 {
		t.Fatalf("%d alerts stored after resending 3 times, want 40", len(got))
	}
	last, _ := col.Store.LastSeq(context.Background())
	if last != 41 {
		t.Fatalf("LastSeq = %d, want 41 (40 alerts and one update, each stored once)", last)
	}
}

// TestPipelinedBatchesAreStoredInOrder sends a stream's batches without
// waiting for answers, as the agent's window does, each with the next
// revision of one alert: the collector stores several of a stream's
// batches at once (storeDepth), yet each revision must be stored as new,
// in order, and answered in order.
func TestPipelinedBatchesAreStoredInOrder(t *testing.T) {
	col := collectortest.Start(t, collector.Config{}, nil, true, "")
	c := dial(t, client.Options{Address: col.Socket})
	const n = 30
	fresh := storetest.Alerts(storetest.DefaultShape, base, 0, 1+n*4)
	a := fresh[0]
	batches := make([][]alert.Alert, n)
	for k := range n {
		if k > 0 {
			a = storetest.Update(a, time.Second)
		}
		batches[k] = append([]alert.Alert{a}, fresh[1+k*4:1+(k+1)*4]...)
	}
	acks, err := publish(t, c, batches...)
	if err != nil {
		t.Fatal(err)
	}
	if len(acks) != n {
		t.Fatalf("%d answers, want %d", len(acks), n)
	}
	for k, ack := range acks {
		if ack.BatchSequence != uint64(k+1) || ack.Stored != 5 || ack.Duplicates != 0 {
			t.Fatalf("answer %d: %v, want batch %d with 5 stored, none duplicate", k, ack, k+1)
		}
	}
	got := listAll(t, c, &errnowatchv1.AlertFilter{Namespace: a.Namespace, Pod: a.Pod}, 1000)
	i := slices.IndexFunc(got, func(g *errnowatchv1.StoredAlert) bool { return g.Alert.Id == a.ID })
	if i < 0 || got[i].Alert.Revision != n {
		t.Fatalf("alert %s not stored at revision %d (found at %d of %d)", a.ID, n, i, len(got))
	}
}

func TestBadInputGetsInvalidArgumentAndStoresNothing(t *testing.T) {
	col := collectortest.Start(t, collector.Config{MaxBatchAlerts: 10, MaxRecvMsgBytes: 64 << 10}, nil, true, "")
	c := dial(t, client.Options{Address: col.Socket})
	good := storetest.Alerts(storetest.DefaultShape, base, 0, 5)

	cases := map[string]struct {
		batch func() []*errnowatchv1.Alert
		code  codes.Code
	}{
		"oversized batch": {func() []*errnowatchv1.Alert { return toProto(storetest.Alerts(storetest.DefaultShape, base, 0, 11)) }, codes.InvalidArgument},
		"unknown severity": {func() []*errnowatchv1.Alert {
			p := toProto(good)
			p[2].Severity = 17
			return p
		}, codes.InvalidArgument},
		"unknown group_by": {func() []*errnowatchv1.Alert {
			p := toProto(good)
			p[4].GroupBy = 9
			return p
		}, codes.InvalidArgument},
		"missing id": {func() []*errnowatchv1.Alert {
			p := toProto(good)
			p[0].Id = ""
			return p
		}, codes.InvalidArgument},
		"revision 0": {func() []*errnowatchv1.Alert {
			p := toProto(good)
			p[1].Revision = 0
			return p
		}, codes.InvalidArgument},
		"message over the size limit": {func() []*errnowatchv1.Alert {
			p := toProto(good)
			p[0].Message = strings.Repeat("x", 80<<10)
			return p
		}, codes.ResourceExhausted},
	}
	for name, tc := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		st, err := c.Ingest.PublishAlerts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = st.Send(&errnowatchv1.PublishAlertsRequest{BatchSequence: 77, Alerts: tc.batch()})
		_, err = st.Recv()
		cancel()
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
			continue
		}
		if tc.code == codes.InvalidArgument {
			if seq, ok := alertpb.RejectedBatch(err); !ok || seq != 77 {
				t.Errorf("%s: RejectedBatch = %d, %v; want 77, true", name, seq, ok)
			}
			if !strings.Contains(status.Convert(err).Message(), "drop it") {
				t.Errorf("%s: message %q does not say what to do", name, status.Convert(err).Message())
			}
		}
	}

	badReq := map[string]*errnowatchv1.ListAlertsRequest{
		"namespace with capitals":  {Filter: &errnowatchv1.AlertFilter{Namespace: "Team_A"}},
		"pod name with slash":      {Filter: &errnowatchv1.AlertFilter{Pod: "a/b"}},
		"unknown min severity":     {Filter: &errnowatchv1.AlertFilter{MinSeverity: 12}},
		"since after until":        {Filter: &errnowatchv1.AlertFilter{Since: timestamppb.New(base), Until: timestamppb.New(base.Add(-time.Hour))}},
		"invalid timestamp":        {Filter: &errnowatchv1.AlertFilter{Since: &timestamppb.Timestamp{Nanos: 2e9}}},
		"negative page size":       {PageSize: -1},
		"garbage page token":       {PageToken: "not-a-token"},
		"workload kind with space": {Filter: &errnowatchv1.AlertFilter{WorkloadKind: "Deploy ment"}},
	}
	for name, req := range badReq {
		if _, err := c.Query.ListAlerts(context.Background(), req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("list with %s: %v, want INVALID_ARGUMENT", name, err)
		}
	}
	if last, _ := col.Store.LastSeq(context.Background()); last != 0 {
		t.Fatalf("bad batches stored alerts up to sequence %d", last)
	}

	// A page token only works with the filter it came from.
	if _, err := publish(t, c, good); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Query.ListAlerts(context.Background(), &errnowatchv1.ListAlertsRequest{PageSize: 2})
	if err != nil || resp.NextPageToken == "" {
		t.Fatalf("first page: %v, token %q", err, resp.GetNextPageToken())
	}
	_, err = c.Query.ListAlerts(context.Background(), &errnowatchv1.ListAlertsRequest{PageSize: 2, PageToken: resp.NextPageToken,
		Filter: &errnowatchv1.AlertFilter{Namespace: "ns-1"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("page token with another filter: %v, want INVALID_ARGUMENT", err)
	}
	// Streams check their arguments too.
	s, err := c.Query.StreamAlerts(context.Background(), &errnowatchv1.StreamAlertsRequest{HeartbeatInterval: durationpb.New(time.Millisecond)})
	if err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("stream with a 1ms heartbeat: %v, want INVALID_ARGUMENT", err)
	}
	// A cursor beyond the store (from a replaced database) is refused, not
	// followed past alerts it would skip.
	s, err = c.Query.StreamAlerts(context.Background(), &errnowatchv1.StreamAlertsRequest{StartAfter: 1000})
	if err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.OutOfRange {
		t.Fatalf("stream after sequence 1000 of 5: %v, want OUT_OF_RANGE", err)
	}
}

func TestQueryRateLimitIsResourceExhausted(t *testing.T) {
	col := collectortest.Start(t, collector.Config{QueriesPerSecond: 1}, nil, true, "")
	c := dial(t, client.Options{Address: col.Socket})
	var err error
	for range 10 {
		if _, err = c.Query.ListAlerts(context.Background(), &errnowatchv1.ListAlertsRequest{}); err != nil {
			break
		}
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("10 immediate queries at 1/s: %v, want RESOURCE_EXHAUSTED", err)
	}
	if d, ok := alertpb.RetryDelay(err); !ok || d <= 0 {
		t.Fatalf("RESOURCE_EXHAUSTED without a retry delay: %v", err)
	}
	if !alertpb.Retryable(err) {
		t.Fatalf("Retryable(%v) = false", err)
	}
}

func TestIngestRateLimitIsResourceExhausted(t *testing.T) {
	col := collectortest.Start(t, collector.Config{IngestAlertsPerSecond: 10, MaxBatchAlerts: 20, IngestMaxWait: 100 * time.Millisecond}, nil, true, "")
	c := dial(t, client.Options{Address: col.Socket})
	// The bucket holds one full batch (20); the second needs 2s of budget,
	// more than the 100ms the collector waits.
	acks, err := publish(t, c, storetest.Alerts(storetest.DefaultShape, base, 0, 20), storetest.Alerts(storetest.DefaultShape, base, 20, 20))
	if status.Code(err) != codes.ResourceExhausted || len(acks) != 1 {
		t.Fatalf("publish over the rate: %d acks, %v; want 1 ack then RESOURCE_EXHAUSTED", len(acks), err)
	}
	if got := listAll(t, c, nil, 100); len(got) != 20 {
		t.Fatalf("%d alerts stored, want only the first batch's 20", len(got))
	}
}

// streamUntil reads a stream and returns what it got; stop says when to
// quit (after the message it was given).
func streamUntil(t *testing.T, c *client.Client, req *errnowatchv1.StreamAlertsRequest, stop func(*errnowatchv1.StreamAlertsResponse) bool) []*errnowatchv1.StreamAlertsResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := c.Query.StreamAlerts(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var got []*errnowatchv1.StreamAlertsResponse
	for {
		m, err := s.Recv()
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		got = append(got, m)
		if stop(m) {
			return got
		}
	}
}

func TestStreamResumesGaplessAcross20Reconnects(t *testing.T) {
	col := collectortest.Start(t, collector.Config{StreamPage: 16}, nil, true, "")
	c := dial(t, client.Options{Address: col.Socket})

	// Ingest while the SIEM reads: 60 batches of 25 new alerts, each batch
	// also updating an alert of the batch before, so revisions move.
	const batches, size = 60, 25
	all := storetest.Alerts(storetest.DefaultShape, base, 0, batches*size)
	ingestDone := make(chan error, 1)
	go func() {
		st, err := c.Ingest.PublishAlerts(context.Background())
		if err != nil {
			ingestDone <- err
			return
		}
		for b := range batches {
			batch := slices.Clone(all[b*size : (b+1)*size])
			if b > 0 {
				batch = append(batch, storetest.Update(all[(b-1)*size+b%size], time.Second))
			}
			if err := st.Send(&errnowatchv1.PublishAlertsRequest{BatchSequence: uint64(b), Alerts: toProto(batch)}); err != nil {
				ingestDone <- err
				return
			}
			if _, err := st.Recv(); err != nil {
				ingestDone <- err
				return
			}
		}
		ingestDone <- st.CloseSend()
	}()

	var seqs []uint64
	latest := map[string]uint32{} // id -> highest revision received
	var cursor uint64
	hb := durationpb.New(time.Second)
	for reconnect := range 20 {
		n := 0
		streamUntil(t, c, &errnowatchv1.StreamAlertsRequest{StartAfter: cursor, HeartbeatInterval: hb}, func(m *errnowatchv1.StreamAlertsResponse) bool {
			if a := m.GetAlert(); a != nil {
				seqs = append(seqs, a.Sequence)
				latest[a.Alert.Id] = max(latest[a.Alert.Id], a.Alert.Revision)
				cursor = a.Sequence
				n++
			} else {
				cursor = m.GetHeartbeat().GetCursor()
			}
			// Leave after a few alerts, at a different point each time.
			return n >= 7+reconnect*3 || m.GetHeartbeat() != nil
		})
	}
	if err := <-ingestDone; err != nil {
		t.Fatalf("ingest: %v", err)
	}
	last, _ := col.Store.LastSeq(context.Background())
	// Final connection: read to the end.
	if cursor < last {
		streamUntil(t, c, &errnowatchv1.StreamAlertsRequest{StartAfter: cursor, HeartbeatInterval: hb}, func(m *errnowatchv1.StreamAlertsResponse) bool {
			if a := m.GetAlert(); a != nil {
				seqs = append(seqs, a.Sequence)
				latest[a.Alert.Id] = max(latest[a.Alert.Id], a.Alert.Revision)
				return a.Sequence == last
			}
			return m.GetHeartbeat().GetCursor() >= last
		})
	}
	if !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != len(seqs) {
		t.Fatalf("sequences across reconnects are not strictly increasing (duplicates or reordering)")
	}
	// Gapless: every revision the store holds now was received, and every
	// alert's final revision is the one received last.
	stored, _, err := col.Store.ReadAfter(context.Background(), 0, store.Filter{}, 100000)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != batches*size {
		t.Fatalf("store holds %d alerts, want %d", len(stored), batches*size)
	}
	for _, st := range stored {
		if _, ok := slices.BinarySearch(seqs, st.Seq); !ok {
			t.Fatalf("stored sequence %d (alert %s revision %d) never reached the SIEM", st.Seq, st.Alert.ID, st.Alert.Revision)
		}
		if latest[st.Alert.ID] != st.Alert.Revision {
			t.Fatalf("alert %s: SIEM's latest revision %d, store has %d", st.Alert.ID, latest[st.Alert.ID], st.Alert.Revision)
		}
	}
}

func TestStreamFilterFromEndAndHeartbeatCursor(t *testing.T) {
	col := collectortest.Start(t, collector.Config{}, nil, true, "")
	c := dial(t, client.Options{Address: col.Socket})
	if _, err := publish(t, c, storetest.Alerts(storetest.DefaultShape, base, 0, 30)); err != nil {
		t.Fatal(err)
	}
	before, _ := col.Store.LastSeq(context.Background())
	// from_end skips what is stored; the first heartbeat carries the end.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := c.Query.StreamAlerts(ctx, &errnowatchv1.StreamAlertsRequest{
		FromEnd:           true,
		StartAfter:        1,
		HeartbeatInterval: durationpb.New(time.Second),
		Filter:            &errnowatchv1.AlertFilter{Namespace: "ns-1", MinSeverity: errnowatchv1.Severity_SEVERITY_HIGH},
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Recv()
	if err != nil || m.GetHeartbeat().GetCursor() != before {
		t.Fatalf("first message from_end = %v, %v; want a heartbeat at cursor %d", m, err, before)
	}
	// Live tail: only new matching alerts arrive.
	fresh := storetest.Alerts(storetest.DefaultShape, base, 30, 40)
	if _, err := publish(t, c, fresh); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range fresh {
		if fresh[i].Namespace == "ns-1" && fresh[i].Severity >= alert.SeverityHigh {
			want = append(want, fresh[i].ID)
		}
	}
	var got []string
	for len(got) < len(want) {
		m, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if a := m.GetAlert(); a != nil {
			got = append(got, a.Alert.Id)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("live tail got %v, want %v", got, want)
	}
	// Nothing else matches, so the next message is a heartbeat at the end.
	last, _ := col.Store.LastSeq(context.Background())
	m, err = s.Recv()
	if err != nil || m.GetHeartbeat().GetCursor() != last {
		t.Fatalf("after the tail: %v, %v; want a heartbeat at cursor %d", m, err, last)
	}
}

func TestSlowSubscriberStaysBoundedAndCatchesUp(t *testing.T) {
	col := collectortest.Start(t, collector.Config{}, nil, true, "")
	pub := dial(t, client.Options{Address: col.Socket})
	// The subscriber's own connection with a fixed 64 KiB window, so that
	// what sits unread is bounded by flow control and the measurement
	// below sees the collector, not a client buffer grown by BDP probing.
	sub := dial(t, client.Options{Address: col.Socket, DialOptions: []grpc.DialOption{
		grpc.WithInitialWindowSize(64 << 10), grpc.WithInitialConnWindowSize(64 << 10),
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := sub.Query.StreamAlerts(ctx, &errnowatchv1.StreamAlertsRequest{HeartbeatInterval: durationpb.New(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}

	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	// The subscriber reads nothing while 50 batches of 1000 alerts (about
	// 50 MiB as Go values) are stored and signalled.
	const batches, size = 50, 1000
	st, err := pub.Ingest.PublishAlerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for b := range batches {
		if err := st.Send(&errnowatchv1.PublishAlertsRequest{BatchSequence: uint64(b),
			Alerts: toProto(storetest.Alerts(storetest.DefaultShape, base, b*size, size))}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	grown := int64(heap()) - int64(before)
	t.Logf("heap grew by %d KiB while a subscriber stalled over %d alerts", grown/1024, batches*size)
	if grown > 16<<20 {
		t.Fatalf("heap grew by %d MiB while a subscriber stalled: it is buffering alerts", grown>>20)
	}
	// Now it reads: everything arrives, in order, once.
	var prev uint64
	for n := 0; n < batches*size; {
		m, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		a := m.GetAlert()
		if a == nil {
			continue
		}
		if a.Sequence != prev+1 {
			t.Fatalf("after sequence %d got %d: the slow subscriber missed or repeated alerts", prev, a.Sequence)
		}
		prev = a.Sequence
		n++
	}
}

func TestRotatedServerCertificateIsServedWithoutRestart(t *testing.T) {
	pki := collectortest.NewPKI(t, "agent")
	col := collectortest.Start(t, collector.Config{}, pki, false, "")
	next := collectortest.NewPKI(t, "agent")
	// A client that trusts only the next CA fails until the files change.
	trustsNext := client.Options{Address: col.Addr, CAFile: next.CAFile, CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile}
	if _, err := dial(t, trustsNext).Query.ListAlerts(context.Background(), &errnowatchv1.ListAlertsRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("before rotation: %v, want UNAVAILABLE", err)
	}
	for src, dst := range map[string]string{next.ServerCertFile: pki.ServerCertFile, next.ServerKeyFile: pki.ServerKeyFile} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Minute)
		if err := os.Chtimes(dst, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dial(t, trustsNext).Query.ListAlerts(context.Background(), &errnowatchv1.ListAlertsRequest{}); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
}

func TestRetentionRunsInTheBackground(t *testing.T) {
	col := collectortest.Start(t, collector.Config{
		Retention: store.Retention{MaxAlerts: 10}, RetentionInterval: 20 * time.Millisecond,
	}, nil, true, "")
	c := dial(t, client.Options{Address: col.Socket})
	if _, err := publish(t, c, storetest.Alerts(storetest.DefaultShape, base, 0, 30)); err != nil {
		t.Fatal(err)
	}
	// Wait for the retention loop (bounded), then check what it kept.
	var got []*errnowatchv1.StoredAlert
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = listAll(t, c, nil, 100); len(got) == 10 {
			break
		}
	}
	if len(got) != 10 {
		t.Fatalf("%d alerts after retention to 10", len(got))
	}
	for _, a := range got {
		if a.Sequence <= 20 {
			t.Fatalf("retention kept sequence %d, want the 10 newest (21..30)", a.Sequence)
		}
	}
}
