package collector

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/alertpb/querypb"
	"github.com/errnowatch/errnowatch/pkg/auth"
	"github.com/errnowatch/errnowatch/pkg/store"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
	minHeartbeat    = time.Second
)

type queryService struct {
	errnowatchv1.UnimplementedQueryServiceServer
	s *Server
}

// ListAlerts implements QueryService.
func (qs *queryService) ListAlerts(ctx context.Context, req *errnowatchv1.ListAlertsRequest) (*errnowatchv1.ListAlertsResponse, error) {
	s := qs.s
	f, err := s.admit(ctx, auth.VerbList, req.GetFilter(), nil)
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, alertpb.BadRequest("page_size", fmt.Sprintf("page_size %d is negative", size))
	case size == 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	hash := filterHash(req.GetFilter())
	before, err := decodePageToken(req.GetPageToken(), hash)
	if err != nil {
		return nil, err
	}
	qctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	defer cancel()
	page, more, err := s.reader.List(qctx, f, store.ListOptions{Limit: size, BeforeID: before})
	if err != nil {
		return nil, s.queryError(ctx, "list alerts", err)
	}
	resp := &errnowatchv1.ListAlertsResponse{Alerts: make([]*errnowatchv1.StoredAlert, 0, len(page))}
	bytes := 0
	for i := range page {
		p := querypb.StoredToProto(&page[i])
		// The page ends at its byte budget (always after one alert, so a
		// page is never empty); the token resumes after the last alert
		// sent.
		if bytes += proto.Size(p); bytes > s.cfg.PageBytes && i > 0 {
			more = true
			break
		}
		resp.Alerts = append(resp.Alerts, p)
	}
	if more {
		resp.NextPageToken = encodePageToken(resp.Alerts[len(resp.Alerts)-1].GetAlert().GetId(), hash)
	}
	return resp, nil
}

// SummarizeAlerts implements QueryService.
func (qs *queryService) SummarizeAlerts(ctx context.Context, req *errnowatchv1.SummarizeAlertsRequest) (*errnowatchv1.SummarizeAlertsResponse, error) {
	s := qs.s
	f, err := s.admit(ctx, auth.VerbList, req.GetFilter(), nil)
	if err != nil {
		return nil, err
	}
	qctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	defer cancel()
	sums, err := s.reader.Summarize(qctx, f)
	if err != nil {
		return nil, s.queryError(ctx, "summarize alerts", err)
	}
	resp := &errnowatchv1.SummarizeAlertsResponse{Pods: make([]*errnowatchv1.PodSummary, len(sums))}
	for i := range sums {
		resp.Pods[i] = querypb.SummaryToProto(&sums[i])
	}
	// Worst first: the pods a person should look at lead the table. The
	// store's order (namespace, pod, node) breaks ties.
	slices.SortStableFunc(resp.Pods, func(a, b *errnowatchv1.PodSummary) int { return int(b.MaxSeverity) - int(a.MaxSeverity) })
	return resp, nil
}

// admit is the prologue every query shares, in this order: the filter is
// checked (and, with check, the call's own arguments), then the caller's
// right to verb the filter's namespace, then its query rate.
func (s *Server) admit(ctx context.Context, verb string, p *errnowatchv1.AlertFilter, check func() error) (store.Filter, error) {
	f, err := querypb.FilterFromProto(p)
	if err != nil {
		return store.Filter{}, err
	}
	if check != nil {
		if err := check(); err != nil {
			return store.Filter{}, err
		}
	}
	if err := s.authorize(ctx, verb, f.Namespace); err != nil {
		return store.Filter{}, err
	}
	if err := s.allowQuery(ctx); err != nil {
		return store.Filter{}, err
	}
	return f, nil
}

// StreamAlerts implements QueryService: admit the caller, take a stream
// slot, then run a subscriber (resolve its cursor, pump the store to the
// stream) under a watchdog that cuts off a client that stopped reading.
// The subscriber keeps only its cursor and one page: it reads the store
// after the cursor whenever the signal says the store moved (or a
// heartbeat is due), so however slow it is, it costs one page of memory
// and catches up from the store.
func (qs *queryService) StreamAlerts(req *errnowatchv1.StreamAlertsRequest, stream grpc.ServerStreamingServer[errnowatchv1.StreamAlertsResponse]) error {
	s := qs.s
	ctx := stream.Context()
	var hb time.Duration
	f, err := s.admit(ctx, auth.VerbWatch, req.GetFilter(), func() (err error) {
		hb, err = heartbeatInterval(req, s.cfg.Heartbeat)
		return err
	})
	if err != nil {
		return err
	}
	release, err := s.acquireStream(identityFrom(ctx))
	if err != nil {
		return err
	}
	defer release()
	sub := &subscriber{s: s, req: req, f: f, hb: hb, stream: stream}
	return s.watchdog(ctx, sub)
}

// acquireStream takes one of the collector's stream slots and, for a remote
// caller, one of its own; release gives them back.
func (s *Server) acquireStream(id auth.Identity) (release func(), err error) {
	select {
	case s.subs <- struct{}{}:
	default:
		s.metrics.refuse(refusedStreams, 1)
		return nil, alertpb.Exhausted(fmt.Sprintf("collector already serves %d alert streams; retry later", s.cfg.MaxStreams), 10*time.Second)
	}
	if id.Local {
		return func() { <-s.subs }, nil
	}
	if !s.streams.acquire(callerKey(id)) {
		<-s.subs
		s.metrics.refuse(refusedStreams, 1)
		return nil, alertpb.Exhausted(fmt.Sprintf("%s already has %d open streams; close some", callerKey(id), s.cfg.MaxStreamsPerIdentity), 10*time.Second)
	}
	return func() { s.streams.release(callerKey(id)); <-s.subs }, nil
}

// watchdog runs the subscriber in its own goroutine so that a send blocked
// on a client that stopped reading can be abandoned: returning here ends
// the stream, which unblocks the send.
func (s *Server) watchdog(ctx context.Context, sub *subscriber) error {
	done := make(chan error, 1)
	go func() { done <- sub.run(ctx) }()
	watch := time.NewTicker(max(s.cfg.SendTimeout/4, 10*time.Millisecond))
	defer watch.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-watch.C:
			if start := sub.sending.Load(); start != 0 && time.Since(time.Unix(0, start)) > s.cfg.SendTimeout {
				s.metrics.refuse(refusedSendTimeout, 1)
				return status.Errorf(codes.ResourceExhausted,
					"the stream was not read for %s: read faster, or reconnect with start_after = the last cursor", s.cfg.SendTimeout)
			}
		}
	}
}

// heartbeatInterval validates a stream request's heartbeat interval (def
// when unset).
func heartbeatInterval(req *errnowatchv1.StreamAlertsRequest, def time.Duration) (time.Duration, error) {
	hb := def
	if d := req.GetHeartbeatInterval(); d != nil {
		if err := d.CheckValid(); err != nil {
			return 0, alertpb.BadRequest("heartbeat_interval", err.Error())
		}
		if v := d.AsDuration(); v != 0 {
			if v < minHeartbeat {
				return 0, alertpb.BadRequest("heartbeat_interval", fmt.Sprintf("heartbeat_interval %s is below the minimum %s", v, minHeartbeat))
			}
			hb = v
		}
	}
	return hb, nil
}

// startCursor is where a stream starts: after start_after, or at last
// with from_end. A cursor beyond last is OUT_OF_RANGE: it comes from
// another (or a wiped) database, and following it would silently skip
// every alert up to it.
func startCursor(req *errnowatchv1.StreamAlertsRequest, last uint64) (uint64, error) {
	cursor := req.GetStartAfter()
	switch {
	case req.GetFromEnd():
		return last, nil
	case cursor > last:
		return 0, status.Errorf(codes.OutOfRange,
			"start_after %d is beyond the last stored sequence %d (the collector's database was replaced?): restart with start_after 0 or from_end",
			cursor, last)
	}
	return cursor, nil
}

// subscriber follows the store for one StreamAlerts call.
type subscriber struct {
	s      *Server
	req    *errnowatchv1.StreamAlertsRequest
	f      store.Filter
	hb     time.Duration
	stream grpc.ServerStreamingServer[errnowatchv1.StreamAlertsResponse]
	// sending is when the send in progress began (unix ns), 0 between
	// sends; the handler's watchdog reads it.
	sending atomic.Int64

	// What pump keeps between pages: where the stream is, and its clocks.
	cursor  uint64
	ticker  *time.Ticker
	recheck *time.Timer
}

func (sub *subscriber) send(m *errnowatchv1.StreamAlertsResponse) error {
	sub.sending.Store(time.Now().UnixNano())
	defer sub.sending.Store(0)
	return sub.stream.Send(m)
}

func (sub *subscriber) run(ctx context.Context) error {
	cursor, err := sub.resolveCursor(ctx)
	if err != nil {
		return err
	}
	return sub.pump(ctx, cursor)
}

// resolveCursor is where the stream starts, from the request and the
// store's last sequence (startCursor).
func (sub *subscriber) resolveCursor(ctx context.Context) (uint64, error) {
	s := sub.s
	qctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	last, err := s.reader.LastSeq(qctx)
	cancel()
	if err != nil {
		return 0, s.queryError(ctx, "read store position", err)
	}
	return startCursor(sub.req, last)
}

// pump reads the store after the cursor and sends what it finds, a page at
// a time, until the stream ends: at once again while catching up (a full
// page), else when the store moves or a heartbeat is due. The caller is
// checked again every Reauthorize and when its token expires, so a revoked
// binding or an expired token ends the stream.
func (sub *subscriber) pump(ctx context.Context, cursor uint64) error {
	s := sub.s
	sub.cursor = cursor
	sub.ticker = time.NewTicker(sub.hb)
	defer sub.ticker.Stop()
	sub.recheck = time.NewTimer(recheckIn(s.cfg.Reauthorize, identityFrom(ctx)))
	defer sub.recheck.Stop()
	limit := s.cfg.StreamPage
	for {
		_, moved := s.signal.wait()
		n, bytes, err := sub.sendAfter(ctx, limit)
		if err != nil {
			return err
		}
		full := n == limit
		// The next read is sized so that a page of alerts like these fits
		// the byte budget: large alerts are read a few at a time.
		if n > 0 {
			limit = max(1, min(s.cfg.StreamPage, s.cfg.PageBytes/max(1, bytes/n)))
		}
		if full {
			// Catching up: read on, but keep heartbeats and re-checks on
			// time and stop promptly.
			err = sub.due(ctx)
		} else {
			err = sub.await(ctx, moved)
		}
		if err != nil {
			return err
		}
	}
}

// sendAfter reads up to limit revisions after the cursor, sends them and
// moves the cursor; it returns how many it sent and their encoded size.
func (sub *subscriber) sendAfter(ctx context.Context, limit int) (n, bytes int, err error) {
	s := sub.s
	qctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	revs, next, err := s.reader.ReadAfter(qctx, sub.cursor, sub.f, limit)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return 0, 0, status.FromContextError(ctx.Err()).Err()
		}
		return 0, 0, s.queryError(ctx, "read alerts", err)
	}
	for i := range revs {
		m := &errnowatchv1.StreamAlertsResponse{Event: &errnowatchv1.StreamAlertsResponse_Alert{
			Alert: querypb.StoredToProto(&revs[i]),
		}}
		if err := sub.send(m); err != nil {
			return 0, 0, err
		}
		bytes += proto.Size(m)
	}
	sub.cursor = next
	return len(revs), bytes, nil
}

// due handles, without waiting, whatever is due: a heartbeat, a re-check,
// the end of the call or of the collector.
func (sub *subscriber) due(ctx context.Context) error {
	select {
	case <-sub.ticker.C:
		return sub.heartbeat()
	case <-sub.recheck.C:
		return sub.reauth(ctx)
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-sub.s.stopped.Done():
		return errShuttingDown
	default:
		return nil
	}
}

// await waits for the store to move, handling heartbeats, re-checks and
// the end of the call or of the collector meanwhile.
func (sub *subscriber) await(ctx context.Context, moved <-chan struct{}) error {
	select {
	case <-moved:
		return nil
	case <-sub.ticker.C:
		// Also catches what other writers (another collector on a shared
		// database) stored: the next read finds it.
		return sub.heartbeat()
	case <-sub.recheck.C:
		return sub.reauth(ctx)
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-sub.s.stopped.Done():
		return errShuttingDown
	}
}

var errShuttingDown = status.Error(codes.Unavailable, "collector is shutting down; reconnect with start_after = the last cursor")

func (sub *subscriber) heartbeat() error {
	return sub.send(&errnowatchv1.StreamAlertsResponse{Event: &errnowatchv1.StreamAlertsResponse_Heartbeat{
		Heartbeat: &errnowatchv1.Heartbeat{Cursor: sub.cursor, Time: timestamppb.Now()},
	}})
}

func (sub *subscriber) reauth(ctx context.Context) error {
	s := sub.s
	if err := s.reauthorize(ctx, auth.VerbWatch, sub.f.Namespace); err != nil {
		s.metrics.refuse(refusedReauth, 1)
		return err
	}
	sub.recheck.Reset(recheckIn(s.cfg.Reauthorize, identityFrom(ctx)))
	return nil
}

// queryError maps a store error of a call whose own context is ctx: the
// query deadline is RESOURCE_EXHAUSTED (ask for less), the caller leaving
// is its own code, anything else UNAVAILABLE.
func (s *Server) queryError(ctx context.Context, what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		s.metrics.refuse(refusedQueryDeadline, 1)
		return status.Errorf(codes.ResourceExhausted, "%s took longer than %s: narrow the filter (namespace, pod, since) or ask for smaller pages", what, s.cfg.QueryTimeout)
	}
	return s.storeError(what, err)
}

func (s *Server) storeError(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	s.log.Error("store failed", zap.String("operation", what), zap.Error(err))
	return status.Errorf(codes.Unavailable, "%s: store unavailable (%v); retry later", what, err)
}

// pageToken is what a page token carries: where the next page starts and a
// hash of the filter it belongs to, so a token is never applied to another
// query.
type pageToken struct {
	Version    int    `json:"v"`
	BeforeID   string `json:"b"`
	FilterHash string `json:"f"`
}

func filterHash(f *errnowatchv1.AlertFilter) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(f)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func encodePageToken(beforeID, hash string) string {
	b, _ := json.Marshal(pageToken{Version: 1, BeforeID: beforeID, FilterHash: hash})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodePageToken(tok, hash string) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	var pt pageToken
	if err == nil {
		err = json.Unmarshal(b, &pt)
	}
	if err != nil || pt.Version != 1 || pt.BeforeID == "" {
		return "", alertpb.BadRequest("page_token", "not a page token from this collector; list again without it")
	}
	if pt.FilterHash != hash {
		return "", alertpb.BadRequest("page_token", "the token belongs to a different filter; use the same filter or list again without it")
	}
	return pt.BeforeID, nil
}
