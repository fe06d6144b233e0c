package collector_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/collector"
	"github.com/errnowatch/errnowatch/pkg/collector/client"
	"github.com/errnowatch/errnowatch/pkg/collector/collectortest"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

// sendBatch publishes one batch of wire alerts on a new stream and returns
// its answer.
func sendBatch(t *testing.T, c *client.Client, seq uint64, ps []*errnowatchv1.Alert) (*errnowatchv1.PublishAlertsResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.Ingest.PublishAlerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Send(&errnowatchv1.PublishAlertsRequest{BatchSequence: seq, Alerts: ps})
	return st.Recv()
}

// TestIngestStoresWhatItValidated: ingest converts, validates and encodes
// each received alert once (store.Batch.AddReceived), storing the received
// message as the body. What a query returns is exactly what was sent, also
// when an agent padded its messages with fields this version does not know
// or sent an empty workload; and an invalid alert is still refused with
// its index and reason, counted as invalid_alert.
func TestIngestStoresWhatItValidated(t *testing.T) {
	reg := prometheus.NewRegistry()
	col := collectortest.Start(t, collector.Config{Registerer: reg}, nil, true, "")
	c := dial(t, client.Options{Address: col.Socket})

	data := storetest.Alerts(storetest.DefaultShape, base, 1, 4)
	data[3].Workload = alert.Workload{}
	ps := toProto(data)
	pad := protowire.AppendString(protowire.AppendTag(nil, 1000, protowire.BytesType), "hostile padding")
	ps[1].ProtoReflect().SetUnknown(pad)
	ps[2].Processes[0].ProtoReflect().SetUnknown(pad)
	ps[2].LastSeen.ProtoReflect().SetUnknown(pad)
	ps[3].Workload = &errnowatchv1.Workload{}
	ack, err := sendBatch(t, c, 1, ps)
	if err != nil || ack.GetStored() != 4 {
		t.Fatalf("publish = %v, %v; want 4 stored", ack, err)
	}
	listed := listAll(t, c, nil, 10)
	if len(listed) != len(data) {
		t.Fatalf("listed %d alerts, want %d", len(listed), len(data))
	}
	for _, st := range listed {
		i := -1
		for k := range data {
			if data[k].ID == st.GetAlert().GetId() {
				i = k
			}
		}
		if i < 0 {
			t.Fatalf("listed an alert that was not sent: %v", st.GetAlert())
		}
		if want := alertpb.ToProto(&data[i]); !proto.Equal(st.GetAlert(), want) {
			t.Errorf("alert %d listed as\n%v\nwant\n%v", i, st.GetAlert(), want)
		}
	}

	bad := toProto(storetest.Alerts(storetest.DefaultShape, base, 10, 3))
	bad[2].Revision = 0
	_, err = sendBatch(t, c, 2, bad)
	want := fmt.Sprintf("batch 2 can never be stored, drop it: alert 2: alert %s: revision must be at least 1", bad[2].GetId())
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != want {
		t.Fatalf("batch with revision 0 = %v; want INVALID_ARGUMENT %q", err, want)
	}
	if n := counter(t, reg, "errnowatch_collector_refused_total", map[string]string{"reason": "invalid_alert"}); n != 1 {
		t.Fatalf("refused invalid_alert = %v, want 1", n)
	}
	if last, _ := col.Store.LastSeq(context.Background()); last != 4 {
		t.Fatalf("LastSeq = %d after the refused batch, want 4", last)
	}
}
