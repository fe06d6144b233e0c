package collector

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/ui"
)

// UIListen says where the collector serves its web UI (pkg/ui).
type UIListen struct {
	// Address is a TCP host:port.
	Address string
	// TLS is the UI's certificate and key (usually the collector's own;
	// a client CA is not used: browsers sign in with a token). Without
	// it the UI is served in clear text, which is allowed only on a
	// loopback address with a LocalKey (the standalone agent).
	TLS TLSFiles
	// LocalKey, when set, signs in as a local administrator (see
	// ui.Config.LocalKey).
	LocalKey string
	// Options tunes the UI; its Source, Wake, Logger, Authenticator,
	// Authorizer and Registerer are the collector's.
	Options ui.Config
}

// UIServer is a running web UI.
type UIServer struct {
	srv    *http.Server
	addr   net.Addr
	scheme string
	stop   context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

// ServeUI serves the web UI over the collector's store, authentication
// and ingest signal: its live alerts wake on the same signal as
// StreamAlerts subscribers. Close the UIServer before the collector.
func (s *Server) ServeUI(l UIListen) (*UIServer, error) {
	src, ok := s.reader.(ui.Source)
	if !ok {
		return nil, fmt.Errorf("the %T store cannot serve the web UI", s.reader)
	}
	cfg := l.Options
	cfg.Source, cfg.Wake, cfg.Logger = src, s.signal.wait, s.log.Named("ui")
	cfg.Authenticator, cfg.Authorizer, cfg.Registerer = s.cfg.Authenticator, s.cfg.Authorizer, s.cfg.Registerer
	cfg.LocalKey = l.LocalKey
	var tlsCfg *tls.Config
	if l.TLS.CertFile != "" || l.TLS.KeyFile != "" {
		files := l.TLS
		files.ClientCAFile = ""
		var err error
		if tlsCfg, err = serverTLS(files, s.log); err != nil {
			return nil, fmt.Errorf("web UI: %w", err)
		}
	} else if l.LocalKey == "" || !loopback(l.Address) {
		return nil, errors.New("web UI needs a TLS certificate and key (tokens never travel in clear text); only a standalone agent's local UI on a loopback address may go without")
	}
	h, err := ui.New(cfg)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", l.Address)
	if err != nil {
		return nil, fmt.Errorf("web UI: listen on %s: %w", l.Address, err)
	}
	base, stop := context.WithCancel(context.Background())
	u := &UIServer{addr: lis.Addr(), scheme: "https", stop: stop}
	u.srv = &http.Server{
		Handler:           h,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Pages are written within this; live streams extend it on each
		// flush.
		WriteTimeout:   60 * time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 32 << 10,
		BaseContext:    func(net.Listener) context.Context { return base },
		ErrorLog:       zap.NewStdLog(s.log.Named("ui.http")),
	}
	if tlsCfg != nil {
		lis = tls.NewListener(lis, tlsCfg)
	} else {
		u.scheme = "http"
	}
	u.wg.Go(func() {
		if err := u.srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("web UI stopped", zap.Error(err))
		}
	})
	s.log.Info("serving the web UI", zap.String("url", u.URL()))
	return u, nil
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Addr is the bound address (useful with port 0).
func (u *UIServer) Addr() net.Addr { return u.addr }

// URL is where a browser finds the UI; a loopback address is named
// localhost, which browsers treat as a secure origin for its cookies.
func (u *UIServer) URL() string {
	host, port, _ := net.SplitHostPort(u.addr.String())
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		host = "localhost"
	} else if ip != nil && ip.IsUnspecified() {
		host = "<this host>"
	}
	return u.scheme + "://" + net.JoinHostPort(host, port) + "/"
}

// Close ends live streams and stops serving.
func (u *UIServer) Close() error {
	u.once.Do(func() {
		u.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := u.srv.Shutdown(ctx); err != nil {
			u.err = u.srv.Close()
		}
		u.wg.Wait()
	})
	return u.err
}
