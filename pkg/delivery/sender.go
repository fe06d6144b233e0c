package delivery

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/util/wait"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
)

// Defaults for SenderOptions.
const (
	DefaultBatchAlerts = 200
	// DefaultBatchBytes counts spooled JSON, which is larger than the
	// protobuf sent, so a batch stays well under the collector's 4 MiB
	// message limit.
	DefaultBatchBytes         = 1 << 20
	DefaultWindow             = 8
	DefaultDropReportInterval = time.Minute
)

// DefaultBackoff waits about 0.5 s after the first failure, doubling up to
// 30 s, each wait stretched by up to half again at random so that a node's
// worth of agents do not reconnect to a restarted collector in step.
func DefaultBackoff() wait.Backoff {
	return wait.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: math.MaxInt32, Cap: 30 * time.Second}
}

// SenderOptions tune a Sender. The zero value takes the defaults.
type SenderOptions struct {
	// Node names the agent's node in the alert that reports drops.
	Node string
	// BatchAlerts and BatchBytes bound one batch (defaults 200 alerts and
	// 1 MiB of spooled JSON); the collector accepts up to 1000 alerts.
	BatchAlerts int
	BatchBytes  int
	// Window is how many batches may wait for the collector's answer at
	// once (default 8).
	Window int
	// Backoff paces reconnects (default DefaultBackoff). It starts over
	// once a stream has had a batch acknowledged or stayed up longer than
	// Backoff.Cap.
	Backoff wait.Backoff
	// DropReportInterval is how often, while connected, drops that happened
	// since the last report are reported (default 1 minute).
	DropReportInterval time.Duration
	// Heartbeat is how often, while connected and idle, the sender sends a
	// batch of no alerts that carries the agent's status (default
	// DefaultHeartbeat); every batch carries it too.
	Heartbeat time.Duration
	// SensorStatus, when set, gives the sensor's part of the status the
	// batches carry (attached, drops, full map, overflow); the sender adds
	// the node and the spool's backlog.
	SensorStatus func() *errnowatchv1.AgentStatus
	Logger       *zap.Logger
}

// DefaultHeartbeat is SenderOptions.Heartbeat's default.
const DefaultHeartbeat = 15 * time.Second

// Stats is what the agent exports about delivery.
type Stats struct {
	// SpoolRecords and SpoolBytes are the spool's depth: records waiting
	// for acknowledgement and segment bytes on disk.
	SpoolRecords int
	SpoolBytes   int64
	// OldestUnackedAge is how long the oldest waiting record has been
	// spooled; zero when none waits.
	OldestUnackedAge time.Duration
	// Sent counts alerts sent, resends included; Resent counts those sent
	// before by this process (after a reconnect). Acked counts alerts the
	// collector acknowledged; of those, Stored were new revisions and
	// Duplicates were already stored.
	Sent, Resent, Acked, Stored, Duplicates uint64
	// Dropped counts alerts dropped because the spool was full, since the
	// spool was opened; PendingDrops are those not yet reported.
	Dropped, PendingDrops uint64
	// Rejected counts alerts the collector refused as invalid (dropped).
	Rejected uint64
	// InFlight is the number of batches waiting for an answer.
	InFlight int
	// Connected is true while a stream to the collector is open.
	Connected bool
	// Reconnects counts streams opened after the first.
	Reconnects uint64
}

// Sender streams the spool to the collector.
type Sender struct {
	spool  *Spool
	conn   grpc.ClientConnInterface
	client errnowatchv1.IngestServiceClient
	opts   SenderOptions
	log    *zap.Logger

	sent, resent, acked, stored, duplicates, rejected, reconnects atomic.Uint64
	inFlight                                                      atomic.Int64
	connected                                                     atomic.Bool

	running atomic.Bool
	// Only the Run goroutine touches these.
	highest        uint64 // largest seq sent by this process
	isolateThrough uint64 // seqs up to here go one per batch, to find a rejected alert
	streams        uint64
}

// NewSender returns a sender that drains spool over conn, typically the
// collector client's connection. If conn is a *grpc.ClientConn, the sender
// resets its connection backoff before each retry so that its own backoff,
// not gRPC's (up to two minutes), decides when to try again.
func NewSender(spool *Spool, conn grpc.ClientConnInterface, opts SenderOptions) (*Sender, error) {
	if spool == nil || conn == nil {
		return nil, errors.New("sender needs a spool and a collector connection")
	}
	if opts.BatchAlerts == 0 {
		opts.BatchAlerts = DefaultBatchAlerts
	}
	if opts.BatchBytes == 0 {
		opts.BatchBytes = DefaultBatchBytes
	}
	if opts.Window == 0 {
		opts.Window = DefaultWindow
	}
	if opts.Backoff == (wait.Backoff{}) {
		opts.Backoff = DefaultBackoff()
	}
	if opts.DropReportInterval == 0 {
		opts.DropReportInterval = DefaultDropReportInterval
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.BatchAlerts < 0 || opts.BatchBytes < 0 || opts.Window < 0 || opts.DropReportInterval < 0 || opts.Heartbeat < 0 {
		return nil, fmt.Errorf("sender batch size, window, drop report interval and heartbeat must be positive")
	}
	return &Sender{
		spool:  spool,
		conn:   conn,
		client: errnowatchv1.NewIngestServiceClient(conn),
		opts:   opts,
		log:    opts.Logger,
	}, nil
}

// status is what every batch tells the collector of this agent.
func (s *Sender) status() *errnowatchv1.AgentStatus {
	st := &errnowatchv1.AgentStatus{}
	if s.opts.SensorStatus != nil {
		if sensor := s.opts.SensorStatus(); sensor != nil {
			st = sensor
		}
	}
	sp := s.spool.Stats()
	st.Node, st.SpoolRecords, st.SpoolDropped = s.opts.Node, uint64(max(sp.Records, 0)), sp.Dropped
	if !sp.Oldest.IsZero() {
		st.SpoolOldestSeconds = uint64(max(time.Since(sp.Oldest), 0) / time.Second)
	}
	return st
}

// Stats returns the spool's depth and the sender's counters.
func (s *Sender) Stats() Stats {
	sp := s.spool.Stats()
	st := Stats{
		SpoolRecords: sp.Records,
		SpoolBytes:   sp.Bytes,
		Sent:         s.sent.Load(),
		Resent:       s.resent.Load(),
		Acked:        s.acked.Load(),
		Stored:       s.stored.Load(),
		Duplicates:   s.duplicates.Load(),
		Dropped:      sp.Dropped,
		PendingDrops: sp.PendingDrops,
		Rejected:     s.rejected.Load(),
		InFlight:     int(s.inFlight.Load()),
		Connected:    s.connected.Load(),
		Reconnects:   s.reconnects.Load(),
	}
	if !sp.Oldest.IsZero() {
		st.OldestUnackedAge = max(time.Since(sp.Oldest), 0)
	}
	return st
}

// Run sends until ctx is done, reconnecting after every failure, and
// returns nil then. What was sent but not acknowledged stays in the spool
// for the next stream or the next Run.
func (s *Sender) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("sender is already running")
	}
	defer s.running.Store(false)
	backoff := s.opts.Backoff
	for {
		began := time.Now()
		progressed, err := s.stream(ctx)
		s.connected.Store(false)
		s.inFlight.Store(0)
		if ctx.Err() != nil {
			return nil
		}
		// A stream that lived long was healthy even if it had nothing to
		// send; one refused at once (say, for credentials) was not.
		if progressed || time.Since(began) > s.opts.Backoff.Cap {
			backoff = s.opts.Backoff
		}
		d := backoff.Step()
		if ask, ok := alertpb.RetryDelay(err); ok && ask > d {
			d = ask // the collector's rate limit says when
		}
		logAt := s.log.Warn
		switch status.Code(err) {
		case codes.Unauthenticated, codes.PermissionDenied:
			// Retrying will not help until someone fixes the credentials,
			// but an agent that gives up would need a restart afterwards.
			logAt = s.log.Error
		}
		logAt("alert stream to the collector ended; alerts stay spooled until it is back",
			zap.Error(err), zap.Duration("retry_in", d))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if rc, ok := s.conn.(interface{ ResetConnectBackoff() }); ok {
			rc.ResetConnectBackoff()
		}
	}
}

// batch is one request waiting for its answer.
type batch struct {
	seq uint64 // batch_sequence: the last spool seq in it
	n   int
}

// stream runs one PublishAlerts stream until it fails or ctx ends. It
// reports whether the collector acknowledged anything, which resets the
// backoff.
func (s *Sender) stream(ctx context.Context) (progressed bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	st, err := s.client.PublishAlerts(sctx)
	if err != nil {
		return false, fmt.Errorf("open alert stream: %w", err)
	}
	if s.streams++; s.streams > 1 {
		s.reconnects.Add(1)
	}
	s.connected.Store(true)
	s.log.Info("alert stream to the collector open", zap.Uint64("acked_through", s.spool.Acked()))

	answers := make(chan *errnowatchv1.PublishAlertsResponse)
	ended := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			r, err := st.Recv()
			if err != nil {
				ended <- err
				return
			}
			select {
			case answers <- r:
			case <-sctx.Done():
				return
			}
		}
	}()

	ticker := time.NewTicker(s.opts.DropReportInterval)
	defer ticker.Stop()
	heartbeat := time.NewTicker(s.opts.Heartbeat)
	defer heartbeat.Stop()
	w := &window{cursor: s.spool.Acked()}
	dropsDue := true
	for {
		if err := s.fill(st, w); err != nil {
			return progressed, err
		}
		// Report drops once the collector takes alerts again (an answer,
		// or nothing waiting), so the report finds room in the spool.
		if dropsDue && (progressed || len(w.batches) == 0) {
			dropsDue = false
			if s.reportDrops() {
				continue // send the report
			}
		}
		select {
		case <-ctx.Done():
			return progressed, ctx.Err()
		case r := <-answers:
			if err := s.answer(w, r); err != nil {
				return progressed, err
			}
			progressed = true
		case err := <-ended:
			return s.endStatus(progressed, w.batches, err)
		case <-s.spool.Appended():
		case <-ticker.C:
			dropsDue = true
		case <-heartbeat.C:
			s.heartbeat(st, w)
		}
	}
}

// window is what one stream has sent and not yet had answered.
type window struct {
	cursor  uint64  // the last spool seq sent
	batches []batch // sent, oldest first, waiting for their answers
	broken  bool    // Send failed: take the answers still coming, then the status
}

// fill sends batches from the spool until the window is full, the spool has
// nothing more, or the stream broke. Only a spool that cannot be read is an
// error; a broken stream shows in its status, which Recv returns after the
// answers sent before it.
func (s *Sender) fill(st grpc.BidiStreamingClient[errnowatchv1.PublishAlertsRequest, errnowatchv1.PublishAlertsResponse], w *window) error {
	for !w.broken && len(w.batches) < s.opts.Window {
		limit := s.opts.BatchAlerts
		if w.cursor < s.isolateThrough {
			limit = 1
		}
		recs, err := s.spool.Read(w.cursor, limit, s.opts.BatchBytes)
		if err != nil {
			return fmt.Errorf("read spool: %w", err)
		}
		if len(recs) == 0 {
			return nil
		}
		req := &errnowatchv1.PublishAlertsRequest{
			BatchSequence: recs[len(recs)-1].Seq,
			Alerts:        make([]*errnowatchv1.Alert, len(recs)),
			Status:        s.status(),
		}
		resent := 0
		for i := range recs {
			req.Alerts[i] = alertpb.ToProto(&recs[i].Alert)
			if recs[i].Seq <= s.highest {
				resent++
			}
		}
		if err := st.Send(req); err != nil {
			w.broken = true
			return nil
		}
		s.sent.Add(uint64(len(recs)))
		s.resent.Add(uint64(resent))
		s.highest = max(s.highest, req.BatchSequence)
		w.cursor = req.BatchSequence
		w.batches = append(w.batches, batch{seq: req.BatchSequence, n: len(recs)})
		s.inFlight.Store(int64(len(w.batches)))
	}
	return nil
}

// heartbeat sends a batch of no alerts with the agent's status, so that the
// collector hears from an agent with nothing to report; the window keeps
// its place, since the collector answers it like any batch. A full window
// or a broken stream skips it: the collector hears the status with the
// next batch.
func (s *Sender) heartbeat(st grpc.BidiStreamingClient[errnowatchv1.PublishAlertsRequest, errnowatchv1.PublishAlertsResponse], w *window) {
	if w.broken || len(w.batches) >= s.opts.Window {
		return
	}
	if err := st.Send(&errnowatchv1.PublishAlertsRequest{BatchSequence: w.cursor, Status: s.status()}); err != nil {
		w.broken = true
		return
	}
	w.batches = append(w.batches, batch{seq: w.cursor})
	s.inFlight.Store(int64(len(w.batches)))
}

// reportDrops spools the report of alerts dropped while the spool was
// full, if any; it reports whether there is one to send.
func (s *Sender) reportDrops() bool {
	n, err := s.spool.ReportDrops(s.opts.Node)
	if err != nil {
		s.log.Error("cannot spool the report of dropped alerts", zap.Error(err))
		return false
	}
	if n > 0 {
		s.log.Warn("reporting alerts dropped while the spool was full", zap.Uint64("dropped", n))
	}
	return n > 0
}

// answer takes the collector's answer to the oldest batch in the window:
// the batch is acknowledged in the spool and leaves the window. An answer
// out of order ends the stream.
func (s *Sender) answer(w *window, r *errnowatchv1.PublishAlertsResponse) error {
	if len(w.batches) == 0 || r.GetBatchSequence() != w.batches[0].seq {
		want := "none"
		if len(w.batches) > 0 {
			want = strconv.FormatUint(w.batches[0].seq, 10)
		}
		return fmt.Errorf("collector answered batch %d, expected %s", r.GetBatchSequence(), want)
	}
	b := w.batches[0]
	w.batches = w.batches[1:]
	s.inFlight.Store(int64(len(w.batches)))
	if b.n == 0 {
		return nil // a heartbeat: nothing to acknowledge
	}
	if err := s.spool.Ack(b.seq); err != nil {
		// The batch will be sent again after a restart; the collector
		// counts it as duplicates.
		s.log.Warn("cannot record acknowledgement in the spool", zap.Error(err))
	}
	s.acked.Add(uint64(b.n))
	s.stored.Add(uint64(r.GetStored()))
	s.duplicates.Add(uint64(r.GetDuplicates()))
	return nil
}

// endStatus handles the status a stream ended with. INVALID_ARGUMENT names
// the first unanswered batch as one the collector will never store: a
// batch of one alert is dropped; a larger batch is sent again one alert at
// a time so that only the bad alert is lost. Either is progress: the next
// stream will not meet the same refusal, so the backoff starts over.
func (s *Sender) endStatus(progressed bool, window []batch, err error) (bool, error) {
	seq, rejected := alertpb.RejectedBatch(err)
	if !rejected || len(window) == 0 || seq != window[0].seq {
		return progressed, err
	}
	b := window[0]
	if b.n > 1 {
		s.isolateThrough = b.seq
		s.log.Warn("collector rejected a batch; sending its alerts one by one to find the bad one",
			zap.Uint64("batch", b.seq), zap.Int("alerts", b.n), zap.Error(err))
		return true, err
	}
	s.log.Error("collector rejected an alert as invalid; dropping it", zap.Uint64("seq", b.seq), zap.Error(err))
	if aerr := s.spool.Ack(b.seq); aerr != nil {
		return progressed, errors.Join(err, fmt.Errorf("drop rejected alert: %w", aerr))
	}
	s.rejected.Add(1)
	return true, err
}
