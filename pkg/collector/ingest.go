package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/auth"
	"github.com/errnowatch/errnowatch/pkg/store"
)

type ingestService struct {
	errnowatchv1.UnimplementedIngestServiceServer
	s *Server
}

type received struct {
	req *errnowatchv1.PublishAlertsRequest
	err error
}

// PublishAlerts stores each batch, then acknowledges it. Batches are handled
// in order, so acknowledgements come in the order batches were sent.
func (is *ingestService) PublishAlerts(stream grpc.BidiStreamingServer[errnowatchv1.PublishAlertsRequest, errnowatchv1.PublishAlertsResponse]) error {
	s := is.s
	ctx := stream.Context()
	id := identityFrom(ctx)
	node, err := s.mayPublish(ctx, id)
	if err != nil {
		return err
	}
	if !id.Local {
		if !s.streams.acquire(callerKey(id)) {
			s.metrics.refuse(refusedStreams, 1)
			return alertpb.Exhausted(fmt.Sprintf("%s already has %d open streams; close some", callerKey(id), s.cfg.MaxStreamsPerIdentity), 10*time.Second)
		}
		defer s.streams.release(callerKey(id))
	}
	lim := s.limits.forIngest(callerKey(id))
	log := s.log.With(zap.String("identity", id.Username))

	// Receive in a goroutine so that shutdown ends the stream even while
	// the agent is idle, and the next batch decodes while one commits. It
	// ends when the stream does: grpc cancels ctx when this handler returns.
	in := make(chan received)
	go func() {
		for {
			req, err := stream.Recv()
			select {
			case in <- received{req, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	// Storing runs beside the loop below: while batches of this stream
	// commit, the next is checked and encoded (check), so the store's one
	// writer finds it ready. Outside the store a stream holds at most four
	// batches: the one the receiver decoded, the one being checked, one in
	// checked and one being submitted. Inside it, up to storeDepth wait
	// for the writer or their answer, within the store's own bound on all
	// streams' batches (sqlite's writeQueue).
	// Answers go in the order batches came; a batch that fails its check
	// ends the stream only after the batches before it are answered.
	checked := make(chan checkedBatch, 1)
	storeEnded := make(chan error, 1)
	go func() {
		storeEnded <- s.storeInOrder(ctx, stream, lim, checked)
	}()
	err = is.receive(ctx, id, node, log, in, checked, storeEnded)
	close(checked)
	if serr := <-storeEnded; serr != nil {
		return serr // the earlier failure, which the agent must see first
	}
	return err
}

// receive takes the stream's batches, rechecks the publisher, keeps each
// batch's agent status and checks its alerts, handing each checked batch to
// the storer until the stream ends, a batch fails, or the storer stops
// (its error, read from storeEnded, is put back for the handler).
func (is *ingestService) receive(ctx context.Context, id auth.Identity, node string, log *zap.Logger,
	in <-chan received, checked chan<- checkedBatch, storeEnded chan error) error {
	s := is.s
	// The publisher is checked again every Reauthorize and at its token's
	// expiry: a deleted agent pod or an expired token ends the stream (the
	// agent reconnects with its renewed token).
	recheck := time.NewTimer(recheckIn(s.cfg.Reauthorize, id))
	defer recheck.Stop()
	for {
		var r received
		select {
		case r = <-in:
		case err := <-storeEnded:
			storeEnded <- err
			return nil
		case <-recheck.C:
			id2, err := s.reauthenticate(ctx)
			if err == nil {
				var n2 string
				n2, err = s.mayPublish(ctx, id2)
				if err == nil && n2 != node {
					err = status.Errorf(codes.PermissionDenied, "the agent's node changed from %q to %q", node, n2)
				}
			}
			if err != nil {
				s.metrics.refuse(refusedReauth, 1)
				return err
			}
			recheck.Reset(recheckIn(s.cfg.Reauthorize, id2))
			continue
		case <-s.stopped.Done():
			return status.Error(codes.Unavailable, "collector is shutting down; resend unacknowledged batches to another replica or later")
		}
		if errors.Is(r.err, io.EOF) {
			return nil
		}
		if r.err != nil {
			return r.err
		}
		if st := r.req.GetStatus(); st != nil {
			s.keepStatus(ctx, log, node, st)
		}
		b, err := s.check(node, r.req)
		if err != nil {
			if status.Code(err) == codes.InvalidArgument {
				log.Warn("refused a batch", zap.Uint64(alertpb.MetaBatchSequence, r.req.GetBatchSequence()), zap.Error(err))
			}
			return err
		}
		select {
		case checked <- b:
		case err := <-storeEnded:
			storeEnded <- err
			return nil
		}
	}
}

// checkedBatch is a received batch whose alerts passed check, ready to
// store.
type checkedBatch struct {
	seq   uint64
	batch store.Batch
}

// storeDepth is how many batches of one stream may be in the store at once,
// if the store is a store.Submitter (SQLite's one writer is): the agent's
// window (delivery.DefaultWindow). While the writer commits one group, the
// stream's next batches already wait for the next, so groups stay large
// (fewer commits and WAL pages, rollup rows shared by more alerts) instead
// of holding one batch per stream. What all streams hand the store ahead
// of its writer is bounded by the store (sqlite's writeQueue). The store
// writes a stream's batches in the order they were submitted, and the
// answers go in that order too.
const storeDepth = 8

// answerFunc waits for a submitted batch's result and makes its answer.
type answerFunc func() (*errnowatchv1.PublishAlertsResponse, error)

// storeInOrder submits the checked batches to the store in order and
// answers each in order, until checked closes or a batch fails; it returns
// that failure.
func (s *Server) storeInOrder(ctx context.Context, stream grpc.BidiStreamingServer[errnowatchv1.PublishAlertsRequest, errnowatchv1.PublishAlertsResponse],
	lim *rate.Limiter, checked <-chan checkedBatch) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// One batch's answer is awaited below, storeDepth-2 wait here, and
	// the launcher holds one more it has submitted: storeDepth in all.
	order := make(chan answerFunc, storeDepth-2)
	go func() {
		defer close(order)
		for b := range checked {
			if ctx.Err() != nil {
				return
			}
			answer, ok := s.submit(ctx, lim, b)
			select {
			case order <- answer:
			case <-ctx.Done():
				return
			}
			if !ok {
				return // submit failed: nothing after it goes to the store
			}
		}
	}()
	for answer := range order {
		resp, err := answer()
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

// check makes a received batch ready to store. node, when set, is the only
// node the publisher may name: an alert for another node fails the batch
// with PERMISSION_DENIED (the agent keeps it; its node name is
// misconfigured, or it is not an agent).
//
// This is the boundary where received alerts are checked, once: each is
// bounded (alertpb.CheckLimits), then converted, validated and encoded for
// the store by store.Batch.AddReceived, whose body is the received message
// itself; the store writes the batch as it is.
func (s *Server) check(node string, req *errnowatchv1.PublishAlertsRequest) (checkedBatch, error) {
	seq := req.GetBatchSequence()
	n := len(req.GetAlerts())
	if n > s.cfg.MaxBatchAlerts {
		s.metrics.refuse(refusedBatch, 1)
		return checkedBatch{}, alertpb.InvalidBatch(seq, fmt.Sprintf("batch has %d alerts, at most %d are allowed: send smaller batches", n, s.cfg.MaxBatchAlerts))
	}
	var batch store.Batch
	batch.Grow(n)
	for i, p := range req.GetAlerts() {
		if err := alertpb.CheckLimits(p, s.cfg.MaxAlertBytes); err != nil {
			s.metrics.refuse(refusedTooLarge, 1)
			return checkedBatch{}, alertpb.InvalidBatch(seq, fmt.Sprintf("alert %d: %v", i, err))
		}
		a, err := batch.AddReceived(p)
		if err != nil {
			s.metrics.refuse(refusedInvalid, 1)
			return checkedBatch{}, alertpb.InvalidBatch(seq, fmt.Sprintf("alert %d: %v", i, err))
		}
		if node != "" && a.Node != node {
			s.metrics.refuse(refusedWrongNode, 1)
			return checkedBatch{}, status.Errorf(codes.PermissionDenied,
				"batch %d, alert %d is for node %q but this agent runs on node %q: an agent publishes its own node's alerts only (check its NODE_NAME)",
				seq, i, a.Node, node)
		}
	}
	return checkedBatch{seq: seq, batch: batch}, nil
}

// submit hands a checked batch to the store, within the publisher's rate,
// and returns what waits for its answer. ok is false when the batch did
// not go to the store; its answer is then the error.
func (s *Server) submit(ctx context.Context, lim *rate.Limiter, b checkedBatch) (answer answerFunc, ok bool) {
	seq, batch, n := b.seq, b.batch, b.batch.Len()
	fail := func(err error) (answerFunc, bool) {
		return func() (*errnowatchv1.PublishAlertsResponse, error) { return nil, err }, false
	}
	if n == 0 {
		// A heartbeat: the agent's status, kept on receipt; nothing to store.
		return func() (*errnowatchv1.PublishAlertsResponse, error) {
			return &errnowatchv1.PublishAlertsResponse{BatchSequence: seq}, nil
		}, true
	}
	if err := waitBudget(ctx, lim, n, s.cfg.IngestMaxWait); err != nil {
		if status.Code(err) == codes.ResourceExhausted {
			s.metrics.refuse(refusedPublishRate, 1)
		}
		return fail(err)
	}
	var wait func() (store.InsertResult, error)
	if sub, isSub := s.inserter.(store.Submitter); isSub {
		w, err := sub.Submit(ctx, batch)
		if err != nil {
			return fail(s.storeFailed(seq, err))
		}
		wait = w
	} else {
		res, err := s.inserter.Insert(ctx, batch)
		if err != nil {
			return fail(s.storeFailed(seq, err))
		}
		wait = func() (store.InsertResult, error) { return res, nil }
	}
	return func() (*errnowatchv1.PublishAlertsResponse, error) {
		res, err := wait()
		if err != nil {
			return nil, s.storeFailed(seq, err)
		}
		return s.stored(seq, res)
	}, true
}

// storeFailed is the status of a batch the store did not take or commit.
func (s *Server) storeFailed(seq uint64, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	s.log.Error("storing a batch failed", zap.Uint64(alertpb.MetaBatchSequence, seq), zap.Error(err))
	return status.Errorf(codes.Unavailable, "store did not take batch %d (%v); resend it later", seq, err)
}

// stored counts a committed batch and makes its answer.
func (s *Server) stored(seq uint64, res store.InsertResult) (*errnowatchv1.PublishAlertsResponse, error) {
	s.metrics.stored(len(res.New), res.Duplicates)
	if k := len(res.New); k > 0 {
		s.signal.publish(res.New[k-1].Seq)
	}
	if k := len(res.Foreign); k > 0 {
		// The rest of the batch is stored; the refusal tells the publisher
		// (a forger, since a real agent's IDs are its own) what was not.
		s.metrics.refuse(refusedForeign, k)
		s.log.Warn("refused updates of alerts another node raised", zap.Uint64(alertpb.MetaBatchSequence, seq), zap.Strings("alerts", res.Foreign))
		return nil, status.Errorf(codes.PermissionDenied,
			"batch %d: %d alerts (first %s) were raised by another node, and only that node may update them; the batch's other alerts are stored",
			seq, k, res.Foreign[0])
	}
	return &errnowatchv1.PublishAlertsResponse{
		BatchSequence: seq,
		Stored:        uint32(len(res.New)),
		Duplicates:    uint32(res.Duplicates),
	}, nil
}

// waitBudget spends n tokens, waiting at most maxWait for them: short bursts
// are smoothed, sustained overload is refused so the agent backs off and
// keeps the alerts in its spool.
func waitBudget(ctx context.Context, lim *rate.Limiter, n int, maxWait time.Duration) error {
	if n == 0 {
		return nil
	}
	r := lim.ReserveN(time.Now(), n)
	if !r.OK() {
		return status.Errorf(codes.InvalidArgument, "batch of %d alerts exceeds the rate limit burst; send smaller batches", n)
	}
	d := r.Delay()
	if d > maxWait {
		r.Cancel()
		return alertpb.Exhausted(fmt.Sprintf("publish rate limit exceeded (%g alerts/s); back off and resend", lim.Limit()), d)
	}
	if d == 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return status.FromContextError(ctx.Err()).Err()
	}
}
