package ui

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/util/cache"

	"github.com/errnowatch/errnowatch/pkg/auth"
	"github.com/errnowatch/errnowatch/pkg/store"
)

//go:embed assets
var assets embed.FS

// Source is what the UI reads: the collector's store.
type Source interface {
	List(ctx context.Context, f store.Filter, opts store.ListOptions) ([]store.Stored, bool, error)
	ReadAfter(ctx context.Context, after uint64, f store.Filter, limit int) ([]store.Stored, uint64, error)
	LastSeq(ctx context.Context) (uint64, error)
	store.UIReader
	store.HistoryReader
	NodeStatuses(ctx context.Context) ([]store.NodeStatus, error)
}

// Wake returns the newest stored sequence and a channel closed when a newer
// one is stored: the collector's signal to its alert streams.
type Wake func() (last uint64, next <-chan struct{})

// Config is what the UI serves and how it guards it. Zero values get the
// defaults named on each field.
type Config struct {
	Source Source
	Wake   Wake
	Logger *zap.Logger
	// Authenticator checks the token a person signs in with; Authorizer
	// decides which namespaces they see (nil: all). With no Authenticator,
	// LocalKey must be set.
	Authenticator auth.Authenticator
	Authorizer    auth.Authorizer
	// LocalKey, when set, is a secret that signs in as a local
	// administrator who sees everything: the standalone agent prints a
	// random one at start. Never a fixed password.
	LocalKey string
	// Registerer gets errnowatch_ui_refused_total and
	// errnowatch_ui_live_streams; nil keeps them unexported.
	Registerer prometheus.Registerer

	// PageSize is how many alerts a list shows; default 50, at most
	// MaxPageSize.
	PageSize int
	// QueryTimeout bounds the store queries of one page; default 5s.
	QueryTimeout time.Duration
	// MaxStreams bounds open live streams in all (default 64) and
	// MaxStreamsPerIdentity each person's (default 4: a few tabs).
	MaxStreams, MaxStreamsPerIdentity int
	// Reauthorize is how often a live stream's person is checked again
	// (and at the token's expiry); default 1m.
	Reauthorize time.Duration
	// Heartbeat is the live stream's keep-alive interval; default 15s.
	Heartbeat time.Duration
	// RequestsPerSecond is each remote address's request rate, with bursts
	// of twice that; default 20.
	RequestsPerSecond float64
	// MaxNamespaces bounds how many namespaces a person limited to some is
	// checked for (the busiest first); default 256.
	MaxNamespaces int
}

// MaxPageSize bounds Config.PageSize and the page size a URL may ask for.
const MaxPageSize = 200

// Server is the UI as an http.Handler.
type Server struct {
	cfg       Config
	log       *zap.Logger
	src       Source
	metrics   *metrics
	pages     map[string]*template.Template
	static    http.Handler
	csrfKey   []byte
	peers     *cache.LRUExpireCache
	scopes    *cache.LRUExpireCache
	ruleDescs *cache.LRUExpireCache // rule ID → ruleDescription
	mux       *http.ServeMux
	streamsMu sync.Mutex
	streams   map[string]int
	nstreams  int
}

// New checks cfg and returns the UI.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Source == nil || cfg.Wake == nil:
		return nil, errors.New("ui needs a source and a wake-up")
	case cfg.Authenticator == nil && cfg.LocalKey == "":
		return nil, errors.New("ui needs token authentication or a local access key: it never serves without sign-in")
	case cfg.LocalKey != "" && len(cfg.LocalKey) < 16:
		return nil, errors.New("ui local access key is too short: use at least 16 random characters")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.PageSize, 50)
	cfg.PageSize = min(cfg.PageSize, MaxPageSize)
	def(&cfg.MaxStreams, 64)
	def(&cfg.MaxStreamsPerIdentity, 4)
	def(&cfg.MaxNamespaces, 256)
	cfg.MaxNamespaces = min(cfg.MaxNamespaces, store.MaxRollupNamespaces)
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = 5 * time.Second
	}
	if cfg.Reauthorize <= 0 {
		cfg.Reauthorize = time.Minute
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.RequestsPerSecond <= 0 {
		cfg.RequestsPerSecond = 20
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	static, err := fs.Sub(assets, "assets/static")
	if err != nil {
		return nil, fmt.Errorf("ui assets: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("ui csrf key: %w", err)
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		src:       cfg.Source,
		metrics:   newMetrics(cfg.Registerer),
		pages:     pages,
		static:    http.StripPrefix("/static/", http.FileServer(http.FS(static))),
		csrfKey:   key,
		peers:     cache.NewLRUExpireCache(4096),
		scopes:    cache.NewLRUExpireCache(1024),
		ruleDescs: cache.NewLRUExpireCache(1024),
		streams:   map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /static/", s.serveStatic)
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.signedIn(s.logout))
	mux.HandleFunc("GET /{$}", s.signedIn(s.overview))
	mux.HandleFunc("GET /timeline", s.signedIn(s.timeline))
	mux.HandleFunc("GET /alerts/{id}", s.signedIn(s.alertPage))
	mux.HandleFunc("GET /rules", s.signedIn(s.rules))
	mux.HandleFunc("GET /events", s.signedIn(s.events))
	s.mux = mux
	return s, nil
}

// Limits of a request, before any handler reads it.
const (
	maxQueryBytes = 2048
	maxBodyBytes  = 16 << 10
	maxHeaderURL  = 4096
)

// ServeHTTP implements http.Handler: security headers on every answer,
// then the per-address rate, then the request's size, then the page.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// No inline script or style anywhere: scripts and styles come from
	// /static only; the page may not be framed, nor post elsewhere.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on the page's own form posts, which sameOrigin refuses.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Strict-Transport-Security", "max-age=31536000")
	if !s.allowPeer(r) {
		s.metrics.refuse(refusedPeerRate)
		h.Set("Retry-After", "1")
		http.Error(w, "too many requests from your address; slow down", http.StatusTooManyRequests)
		return
	}
	if len(r.URL.RawQuery) > maxQueryBytes || len(r.RequestURI) > maxHeaderURL {
		s.metrics.refuse(refusedBadInput)
		http.Error(w, fmt.Sprintf("the query is longer than %d bytes: use fewer or shorter filters", maxQueryBytes), http.StatusRequestURITooLong)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	s.mux.ServeHTTP(w, r)
}

func (s *Server) serveStatic(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	s.static.ServeHTTP(w, r)
}

func (s *Server) allowPeer(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	v, ok := s.peers.Get(host)
	if !ok {
		v = rate.NewLimiter(rate.Limit(s.cfg.RequestsPerSecond), int(2*s.cfg.RequestsPerSecond))
		s.peers.Add(host, v, 10*time.Minute)
	}
	return v.(*rate.Limiter).Allow()
}
