// Package collector is the cluster-side end of alert delivery: gRPC services
// (api/errnowatch/v1) over a store's roles (store.Inserter for ingest,
// store.Reader for queries and streams, store.Retainer for retention). Agents publish batches that are
// acknowledged only once committed; people and tools list and summarize
// alerts; SIEMs follow a resumable stream fed from the store.
//
// Every TCP listener speaks TLS (mutual TLS with a client CA); a unix socket
// in a directory only its owner may enter serves local administrators
// without credentials. Over TCP, callers present a Kubernetes
// ServiceAccount token that auth checks (TokenReview, with the errnowatch
// audience) and reads are authorized per namespace (SubjectAccessReview).
// Only the listed agent ServiceAccounts publish, each for its own node
// only, and only the node that raised an alert updates it.
//
// Every input is bounded: calls per remote address before authentication,
// alerts per second and queries per second per caller, an alert's encoded
// size and each field's length, a batch's alerts, a page's bytes, a query's
// time, a stream send's time and each caller's streams. Stream subscribers
// read from the store rather than from per-subscriber queues, and are
// checked again at their token's expiry and every few minutes, so no client
// can make the collector grow or keep reading after losing its access.
// What is refused is counted in errnowatch_collector_refused_total.
package collector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/auth"
	"github.com/errnowatch/errnowatch/pkg/store"
)

// Config is what a collector serves and how it guards it. Zero values get
// the defaults named on each field.
type Config struct {
	Store  store.Store
	Logger *zap.Logger

	// Authenticator checks bearer tokens on TCP connections. When nil, TCP
	// callers are trusted on their verified client certificate alone, so
	// Listen.TLS.ClientCAFile must be set.
	Authenticator auth.Authenticator
	// Authorizer decides per-namespace reads; nil allows every
	// authenticated caller to read everything.
	Authorizer auth.Authorizer
	// AgentServiceAccounts ("namespace/name") may publish, and nobody else
	// with a token: not other ServiceAccounts of the agents' namespace (the
	// chart's SIEM reader lives there too).
	AgentServiceAccounts []string
	// Nodes binds each publishing agent to its node: alerts naming another
	// node are refused. With token authentication it should always be set;
	// nil trusts agents to name their node.
	Nodes auth.NodeResolver
	// Registerer gets the collector's metrics; nil keeps them unexported.
	Registerer prometheus.Registerer

	// MaxBatchAlerts bounds one PublishAlerts batch; default 1000.
	MaxBatchAlerts int
	// MaxRecvMsgBytes bounds any request message; default 4 MiB.
	MaxRecvMsgBytes int
	// MaxAlertBytes bounds one encoded alert; default
	// alertpb.DefaultMaxAlertBytes (64 KiB). Fields are bounded too
	// (alertpb.CheckLimits).
	MaxAlertBytes int
	// PageBytes bounds the encoded alerts of one ListAlerts page and of one
	// stream read; default 1 MiB (clients accept 4 MiB messages).
	PageBytes int
	// QueryTimeout bounds each store query a caller causes; default 30s.
	QueryTimeout time.Duration
	// SendTimeout bounds each message sent on a stream: a subscriber that
	// stops reading is cut off instead of holding a stream; default 30s.
	SendTimeout time.Duration
	// PeerCallsPerSecond is each remote address's rate of calls, counted
	// before authentication, so unauthenticated floods cost no API server
	// review; default 100 with bursts of twice that.
	PeerCallsPerSecond float64
	// MaxStreamsPerIdentity bounds one caller's concurrent streams (alert
	// streams and publish streams); default 16.
	MaxStreamsPerIdentity int
	// Reauthorize is how often a long-lived stream's caller is checked
	// again (and at its token's expiry, whichever is first); the stream
	// ends when the check fails. Default 5m.
	Reauthorize time.Duration
	// IngestAlertsPerSecond is each caller's sustained publish rate;
	// default 50000. A batch over the budget waits up to IngestMaxWait
	// (default 2s), then fails with RESOURCE_EXHAUSTED.
	IngestAlertsPerSecond float64
	IngestMaxWait         time.Duration
	// QueriesPerSecond is each caller's rate of List/Summarize/Stream calls;
	// default 20 with bursts of twice that.
	QueriesPerSecond float64
	// MaxStreams bounds concurrent StreamAlerts subscribers; default 256.
	MaxStreams int
	// StreamPage is how many alerts a subscriber reads from the store at a
	// time, which bounds its memory; default 256.
	StreamPage int
	// Heartbeat is the default StreamAlerts heartbeat interval; default
	// 15s.
	Heartbeat time.Duration

	// Retention is applied every RetentionInterval (default 1m); zero
	// Retention keeps everything.
	Retention         store.Retention
	RetentionInterval time.Duration
	// ShutdownTimeout bounds how long Close waits for calls in flight;
	// default 5s.
	ShutdownTimeout time.Duration
}

// Listen says where to serve.
type Listen struct {
	// Address is a TCP host:port; empty serves no TCP.
	Address string
	TLS     TLSFiles
	// UnixSocket is a path; empty serves no socket. Its directory is made
	// (or must already be) owned by the collector's user and mode 0700, the
	// socket mode 0600, and each connecting peer's credentials
	// (SO_PEERCRED) must be root's or the collector's own user: whoever can
	// connect is a trusted local administrator.
	UnixSocket string
}

// TLSFiles are PEM files for a TCP listener. The key pair is re-read when the
// files change, so rotated certificates apply without a restart.
type TLSFiles struct {
	CertFile, KeyFile string
	// ClientCAFile, when set, makes TLS mutual: clients need a certificate
	// signed by one of these CAs.
	ClientCAFile string
}

// Server is a running collector.
type Server struct {
	cfg Config
	log *zap.Logger
	// Each service holds the store role it uses.
	inserter store.Inserter
	reader   store.Reader
	retainer store.Retainer
	statuses nodeStatuses
	signal   *signal
	limits   *limiters
	metrics  *metrics
	agents   map[string]bool
	subs     chan struct{} // semaphore of StreamAlerts subscribers
	streams  *streamCount  // each identity's open streams

	tcp, unix   *grpc.Server
	tcpAddr     net.Addr
	unixPath    string
	stop        context.CancelFunc
	stopped     context.Context // done when Close starts: streams end
	wg          sync.WaitGroup
	closeOnce   sync.Once
	closeResult error
}

// New checks cfg and returns a server that is not yet serving.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("collector needs a store")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.MaxBatchAlerts, 1000)
	def(&cfg.MaxRecvMsgBytes, 4<<20)
	def(&cfg.MaxStreams, 256)
	def(&cfg.StreamPage, 256)
	def(&cfg.MaxAlertBytes, alertpb.DefaultMaxAlertBytes)
	def(&cfg.PageBytes, 1<<20)
	def(&cfg.MaxStreamsPerIdentity, 16)
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = 30 * time.Second
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 30 * time.Second
	}
	if cfg.PeerCallsPerSecond <= 0 {
		cfg.PeerCallsPerSecond = 100
	}
	if cfg.Reauthorize <= 0 {
		cfg.Reauthorize = 5 * time.Minute
	}
	if cfg.IngestAlertsPerSecond <= 0 {
		cfg.IngestAlertsPerSecond = 50000
	}
	if cfg.IngestMaxWait <= 0 {
		cfg.IngestMaxWait = 2 * time.Second
	}
	if cfg.QueriesPerSecond <= 0 {
		cfg.QueriesPerSecond = 20
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.RetentionInterval <= 0 {
		cfg.RetentionInterval = time.Minute
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	agents := map[string]bool{}
	for _, sa := range cfg.AgentServiceAccounts {
		agents[sa] = true
	}
	return &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		inserter: cfg.Store,
		reader:   cfg.Store,
		retainer: cfg.Store,
		statuses: newNodeStatuses(cfg.Store),
		signal:   newSignal(),
		limits:   newLimiters(cfg),
		metrics:  newMetrics(cfg.Registerer),
		agents:   agents,
		subs:     make(chan struct{}, cfg.MaxStreams),
		streams:  &streamCount{max: cfg.MaxStreamsPerIdentity, n: map[string]int{}},
	}, nil
}

// Start binds the listeners and serves until Close. ctx only bounds
// startup.
func (s *Server) Start(ctx context.Context, l Listen) error {
	if l.Address == "" && l.UnixSocket == "" {
		return errors.New("nothing to listen on: set a TCP address or a unix socket")
	}
	last, err := s.reader.LastSeq(ctx)
	if err != nil {
		return fmt.Errorf("read store position: %w", err)
	}
	s.signal.publish(last)
	stopped, stop := context.WithCancel(context.Background())
	s.stopped, s.stop = stopped, stop

	if l.Address != "" {
		if l.TLS.CertFile == "" || l.TLS.KeyFile == "" {
			stop()
			return errors.New("TCP listener needs a TLS certificate and key (alerts and tokens never travel in clear text); set them or serve on a unix socket only")
		}
		if s.cfg.Authenticator == nil && l.TLS.ClientCAFile == "" {
			stop()
			return errors.New("no token authentication and no client CA: anyone could read every alert; enable Kubernetes authentication or set a client CA for mutual TLS")
		}
		tlsCfg, err := serverTLS(l.TLS, s.log)
		if err != nil {
			stop()
			return err
		}
		lis, err := net.Listen("tcp", l.Address)
		if err != nil {
			stop()
			return fmt.Errorf("listen on %s: %w", l.Address, err)
		}
		s.tcp = s.newGRPC(false, credentials.NewTLS(tlsCfg))
		s.tcpAddr = lis.Addr()
		s.serve(s.tcp, lis)
		s.log.Info("serving alerts over TLS", zap.Stringer("address", lis.Addr()), zap.Bool("mtls", l.TLS.ClientCAFile != ""))
	}
	if l.UnixSocket != "" {
		lis, err := listenUnix(l.UnixSocket)
		if err != nil {
			s.closeServers()
			stop()
			return err
		}
		s.unix = s.newGRPC(true, peerCredentials{TransportCredentials: insecure.NewCredentials(), refused: func() { s.metrics.refuse(refusedUnauth, 1) }})
		s.unixPath = l.UnixSocket
		s.serve(s.unix, lis)
		s.log.Info("serving alerts on unix socket", zap.String("path", l.UnixSocket))
	}
	if s.cfg.Retention != (store.Retention{}) {
		s.wg.Go(s.retain)
	}
	if w, ok := s.reader.(store.Watcher); ok {
		s.wg.Go(func() { s.watch(w) })
	}
	return nil
}

// watch wakes stream subscribers for alerts other collectors sharing the
// store stored; heartbeats would find them too, only up to one heartbeat
// later.
func (s *Server) watch(w store.Watcher) {
	for {
		err := w.Watch(s.stopped, s.signal.publish)
		if s.stopped.Err() != nil {
			return
		}
		s.log.Warn("watching the store for other collectors' alerts failed; retrying", zap.Error(err))
		select {
		case <-s.stopped.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// Addr is the bound TCP address (useful with port 0), or nil.
func (s *Server) Addr() net.Addr { return s.tcpAddr }

// Close ends streams, waits up to ShutdownTimeout for calls in flight, then
// cuts connections. It does not close the store.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			s.stop()
		}
		s.closeServers()
		s.wg.Wait()
		if s.unixPath != "" {
			if err := os.Remove(s.unixPath); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.closeResult = fmt.Errorf("remove socket: %w", err)
			}
		}
	})
	return s.closeResult
}

func (s *Server) closeServers() {
	var wg sync.WaitGroup
	for _, g := range []*grpc.Server{s.tcp, s.unix} {
		if g == nil {
			continue
		}
		wg.Go(func() {
			done := make(chan struct{})
			go func() { g.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-time.After(s.cfg.ShutdownTimeout):
				g.Stop()
				<-done
			}
		})
	}
	wg.Wait()
}

func (s *Server) serve(g *grpc.Server, lis net.Listener) {
	s.wg.Go(func() {
		if err := g.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("grpc server stopped", zap.Error(err))
		}
	})
}

func (s *Server) newGRPC(local bool, creds credentials.TransportCredentials) *grpc.Server {
	g := grpc.NewServer(
		grpc.Creds(creds),
		grpc.MaxRecvMsgSize(s.cfg.MaxRecvMsgBytes),
		grpc.MaxConcurrentStreams(128),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.ChainUnaryInterceptor(s.unaryAuth(local)),
		grpc.ChainStreamInterceptor(s.streamAuth(local)),
	)
	errnowatchv1.RegisterIngestServiceServer(g, &ingestService{s: s})
	errnowatchv1.RegisterQueryServiceServer(g, &queryService{s: s})
	return g
}

func listenUnix(path string) (net.Listener, error) {
	if err := privateDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	// A socket left by a crashed collector would make Listen fail; only a
	// socket is removed, never another kind of file.
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("unix socket path %s exists and is not a socket: remove it or choose another path", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on unix socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return nil, fmt.Errorf("restrict unix socket %s: %w", path, err)
	}
	return lis, nil
}

func (s *Server) retain() {
	t := time.NewTicker(s.cfg.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopped.Done():
			return
		case <-t.C:
		}
		n, err := s.retainer.Retain(s.stopped, s.cfg.Retention)
		switch {
		case err != nil && s.stopped.Err() == nil:
			s.log.Warn("retention failed; will retry", zap.Error(err))
		case n > 0:
			s.log.Info("retention deleted alerts", zap.Int64("alerts", n))
		}
	}
}

// Run serves until ctx ends, then closes the server (not the store).
func Run(ctx context.Context, cfg Config, l Listen) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	if err := s.Start(ctx, l); err != nil {
		return err
	}
	<-ctx.Done()
	return s.Close()
}
