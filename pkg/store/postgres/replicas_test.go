package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/durationpb"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/collector"
	"github.com/errnowatch/errnowatch/pkg/collector/client"
	"github.com/errnowatch/errnowatch/pkg/collector/collectortest"
	"github.com/errnowatch/errnowatch/pkg/store"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

// publishOne sends one batch on a new PublishAlerts stream and waits for its
// acknowledgement.
func publishOne(ctx context.Context, c *client.Client, seq uint64, batch []alert.Alert) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.Ingest.PublishAlerts(ctx)
	if err != nil {
		return err
	}
	pb := make([]*errnowatchv1.Alert, len(batch))
	for i := range batch {
		pb[i] = alertpb.ToProto(&batch[i])
	}
	if err := st.Send(&errnowatchv1.PublishAlertsRequest{BatchSequence: seq, Alerts: pb}); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	r, err := st.Recv()
	if err != nil {
		return err
	}
	if r.GetBatchSequence() != seq {
		return fmt.Errorf("ack for batch %d, want %d", r.GetBatchSequence(), seq)
	}
	return nil
}

// TestCollectorReplicas runs three collectors on one database. Agents
// publish to all of them at once (each batch twice, to two replicas, as an
// agent does when an acknowledgement is lost), one replica is killed midway
// (agents move on and resend), and a SIEM client hops between replicas with
// its cursor: every alert must be stored once and the stream must be
// gapless and free of duplicates.
func TestCollectorReplicas(t *testing.T) {
	dsn := srv.DB(t)
	const (
		replicas  = 3
		agents    = 6
		batches   = 30
		batchSize = 20
		total     = agents * batches * batchSize
	)
	var (
		colls   [replicas]*collectortest.Collector
		stores  [replicas]*Store
		clients [replicas]*client.Client
	)
	for i := range replicas {
		stores[i] = open(t, dsn)
		st := stores[i]
		t.Cleanup(func() { st.Close() })
		colls[i] = collectortest.Start(t, collector.Config{Store: stores[i]}, nil, true, "")
		c, err := client.Dial(client.Options{Address: colls[i].Socket})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		clients[i] = c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

	var acked atomic.Int64
	var killOnce sync.Once
	kill := func() {
		killOnce.Do(func() {
			colls[2].Close()
			stores[2].Close()
		})
	}
	// send delivers a batch to some replica, starting at first and moving
	// on when one fails.
	send := func(first int, seq uint64, batch []alert.Alert) (int, error) {
		var err error
		for k := range replicas * 3 {
			r := (first + k) % replicas
			if err = publishOne(ctx, clients[r], seq, batch); err == nil {
				return r, nil
			}
		}
		return -1, fmt.Errorf("no replica took batch %d: %w", seq, err)
	}
	var ag errgroup.Group
	for w := range agents {
		ag.Go(func() error {
			for b := range batches {
				batch := storetest.Alerts(storetest.DefaultShape, base, (w*batches+b)*batchSize, batchSize)
				r, err := send(w+b, uint64(b+1), batch)
				if err != nil {
					return err
				}
				if _, err := send(r+1, uint64(b+1), batch); err != nil {
					return err
				}
				if acked.Add(1) == agents*batches/2 {
					kill()
				}
			}
			return nil
		})
	}

	// The SIEM client: streams from one replica, hops to the next after a
	// few alerts or when its replica goes away, always resuming from its
	// cursor.
	type result struct {
		seqs []uint64
		ids  map[string]int
		err  error
	}
	siem := make(chan result, 1)
	go func() {
		res := result{ids: map[string]int{}}
		defer func() { siem <- res }()
		var cursor uint64
		for hop := 0; len(res.seqs) < total; hop++ {
			if ctx.Err() != nil {
				res.err = fmt.Errorf("stream stopped at cursor %d with %d of %d alerts: %w", cursor, len(res.seqs), total, ctx.Err())
				return
			}
			sctx, scancel := context.WithCancel(ctx)
			st, err := clients[hop%replicas].Query.StreamAlerts(sctx, &errnowatchv1.StreamAlertsRequest{
				StartAfter: cursor, HeartbeatInterval: durationpb.New(time.Second),
			})
			if err != nil {
				scancel()
				continue
			}
			for got := 0; got < 37; {
				m, err := st.Recv()
				if err != nil {
					break
				}
				if a := m.GetAlert(); a != nil {
					res.seqs = append(res.seqs, a.GetSequence())
					res.ids[a.GetAlert().GetId()]++
					cursor = a.GetSequence()
					got++
				} else if hb := m.GetHeartbeat(); hb != nil {
					cursor = max(cursor, hb.GetCursor())
					break
				}
			}
			scancel()
		}
	}()

	if err := ag.Wait(); err != nil {
		cancel()
		<-siem
		t.Fatalf("agents: %v", err)
	}
	res := <-siem
	if res.err != nil {
		t.Fatal(res.err)
	}
	last, err := stores[0].LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last != total {
		t.Fatalf("last sequence %d, want %d (one per alert, duplicates take none)", last, total)
	}
	n := 0
	for page, more, before := []store.Stored(nil), true, ""; more; {
		page, more, err = stores[1].List(ctx, store.Filter{}, store.ListOptions{Limit: 1000, BeforeID: before})
		if err != nil {
			t.Fatal(err)
		}
		n += len(page)
		if len(page) > 0 {
			before = page[len(page)-1].Alert.ID
		}
	}
	if n != total {
		t.Fatalf("store holds %d alerts, want %d", n, total)
	}
	if len(res.seqs) != total || len(res.ids) != total {
		t.Fatalf("SIEM saw %d revisions of %d alerts, want %d of %d", len(res.seqs), len(res.ids), total, total)
	}
	for i, s := range res.seqs {
		if s != uint64(i+1) {
			t.Fatalf("stream revision %d has sequence %d, want %d (gap or duplicate)", i, s, i+1)
		}
	}
}
