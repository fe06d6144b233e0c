package embedded

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/collector/client"
)

// TestStartPublishListClose: the embedded collector keeps its store and a
// private socket in its directory; an alert published over the socket is
// listed back, and after Close the socket is gone and the store reopens
// with the alert in it.
func TestStartPublishListClose(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	ctx := context.Background()
	c, err := Start(ctx, Config{Dir: dir, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir: %v, %v; want mode 0700", fi, err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	a := alert.Alert{ID: alert.NewID(now), Revision: 1, RuleID: "embedded-test", Severity: alert.SeverityHigh,
		FirstSeen: now, LastSeen: now, Node: "host", Host: true, CgroupPath: "/", Total: 3, Message: "three failures"}

	cl, err := client.Dial(client.Options{Address: c.Address()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := cl.Ingest.PublishAlerts(cctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&errnowatchv1.PublishAlertsRequest{BatchSequence: 1, Alerts: []*errnowatchv1.Alert{alertpb.ToProto(&a)}}); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil || resp.GetBatchSequence() != 1 || resp.GetStored() != 1 {
		t.Fatalf("publish: %v, %v; want batch 1 with 1 stored", resp, err)
	}
	st.CloseSend()
	list, err := cl.Query.ListAlerts(cctx, &errnowatchv1.ListAlertsRequest{})
	if err != nil || len(list.GetAlerts()) != 1 || list.GetAlerts()[0].GetAlert().GetId() != a.ID {
		t.Fatalf("list: %v, %v; want the published alert", list, err)
	}

	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "collector.sock")); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
	c, err = Start(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatalf("start again: %v", err)
	}
	defer c.Close()
	cl2, err := client.Dial(client.Options{Address: c.Address()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	list, err = cl2.Query.ListAlerts(cctx, &errnowatchv1.ListAlertsRequest{})
	if err != nil || len(list.GetAlerts()) != 1 {
		t.Fatalf("list after restart: %v, %v; want the alert kept", list, err)
	}
}

func TestCloseNil(t *testing.T) {
	var c *Collector
	if err := c.Close(); err != nil {
		t.Errorf("nil Close: %v", err)
	}
}
