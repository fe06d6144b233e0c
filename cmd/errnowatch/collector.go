package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"

	"github.com/errnowatch/errnowatch/pkg/auth"
	"github.com/errnowatch/errnowatch/pkg/collector"
	"github.com/errnowatch/errnowatch/pkg/kube"
	"github.com/errnowatch/errnowatch/pkg/store"
	"github.com/errnowatch/errnowatch/pkg/store/postgres"
	"github.com/errnowatch/errnowatch/pkg/store/sqlite"
)

type collectorFlags struct {
	listen                 collector.Listen
	dataDir, storeURL      string
	retention              time.Duration
	retentionMaxAlerts     int64
	authMode, audience     string
	kubeconfig             string
	agentNamespace         string
	agentServiceAccounts   []string
	metricsAddr, healthAdr string
}

func newCollectorCmd(g *globalFlags) *cobra.Command {
	var f collectorFlags
	cmd := &cobra.Command{
		Use:   "collector",
		Short: "Run the collector: store alerts from agents, answer queries, stream to SIEMs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := openStore(ctx, f.storeURL, f.dataDir, log)
			if err != nil {
				return err
			}
			defer st.Close()
			cfg := collector.Config{
				Store: st, Logger: log,
				AgentNamespace:       f.agentNamespace,
				AgentServiceAccounts: normalizeSAs(f.agentServiceAccounts),
				Retention:            store.Retention{MaxAge: f.retention, MaxAlerts: f.retentionMaxAlerts},
			}
			switch f.authMode {
			case "kubernetes":
				rc, err := kube.RESTConfig(f.kubeconfig)
				if err != nil {
					return err
				}
				cs, err := kubernetes.NewForConfig(rc)
				if err != nil {
					return err
				}
				k := auth.NewKubernetes(cs, auth.Options{Audience: f.audience})
				cfg.Authenticator, cfg.Authorizer = k, k
			case "none":
				if f.listen.Address != "" && f.listen.TLS.ClientCAFile == "" {
					return errors.New("--auth none on a TCP listener needs --client-ca: callers are then trusted on their client certificate")
				}
			default:
				return fmt.Errorf("--auth %q: use kubernetes or none", f.authMode)
			}
			srv, err := collector.New(cfg)
			if err != nil {
				return err
			}
			if err := srv.Start(ctx, f.listen); err != nil {
				return err
			}
			stop, err := serveOps(f.metricsAddr, f.healthAdr, st, log)
			if err != nil {
				srv.Close()
				return err
			}
			defer stop()
			log.Info("collector running")
			<-ctx.Done()
			return srv.Close()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen.Address, "listen", ":9443", "TCP address for gRPC with TLS (empty: none)")
	fl.StringVar(&f.listen.TLS.CertFile, "tls-cert", "", "server certificate (PEM); re-read when it changes")
	fl.StringVar(&f.listen.TLS.KeyFile, "tls-key", "", "server key (PEM)")
	fl.StringVar(&f.listen.TLS.ClientCAFile, "client-ca", "", "require client certificates signed by this CA (mutual TLS)")
	fl.StringVar(&f.listen.UnixSocket, "unix-socket", "", "also serve on this unix socket, for local administrators (mode 0600)")
	fl.StringVar(&f.dataDir, "data-dir", "/var/lib/errnowatch", "directory of the embedded store")
	fl.StringVar(&f.storeURL, "store", "", "sqlite:PATH (default sqlite:DATA-DIR/alerts.db) or postgres://USER:PASSWORD@HOST/DB?sslmode=... (shared by collector replicas)")
	fl.DurationVar(&f.retention, "retention", 30*24*time.Hour, "delete alerts not updated for this long (0: keep)")
	fl.Int64Var(&f.retentionMaxAlerts, "retention-max-alerts", 0, "keep at most this many alerts, dropping the least recently updated (0: no bound)")
	fl.StringVar(&f.authMode, "auth", "kubernetes", "how TCP callers are authenticated: kubernetes (TokenReview + SubjectAccessReview) or none (client certificates only)")
	fl.StringVar(&f.audience, "token-audience", auth.DefaultAudience, "audience agent and client tokens must carry")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig for the reviews (default: in-cluster)")
	fl.StringVar(&f.agentNamespace, "agent-namespace", "errnowatch", "ServiceAccounts in this namespace may publish alerts")
	fl.StringSliceVar(&f.agentServiceAccounts, "agent-service-accounts", nil, "more ServiceAccounts that may publish (namespace:name)")
	fl.StringVar(&f.metricsAddr, "metrics-address", ":9090", "serve /metrics here (empty: off)")
	fl.StringVar(&f.healthAdr, "health-address", ":9091", "serve /healthz here (empty: off)")
	return cmd
}

// openStore opens the store a --store URL names.
func openStore(ctx context.Context, url, dataDir string, log *zap.Logger) (store.Store, error) {
	if url == "" {
		url = "sqlite:" + filepath.Join(dataDir, "alerts.db")
	}
	scheme, rest, _ := strings.Cut(url, ":")
	switch scheme {
	case "sqlite":
		if err := os.MkdirAll(filepath.Dir(rest), 0o700); err != nil {
			return nil, fmt.Errorf("--store: %w", err)
		}
		return sqlite.Open(ctx, rest, sqlite.Options{Logger: log})
	case "postgres", "postgresql":
		return postgres.Open(ctx, url, postgres.Options{Logger: log})
	default:
		return nil, fmt.Errorf("--store %q: use sqlite:PATH or postgres://USER@HOST/DB", url)
	}
}

func normalizeSAs(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.Replace(s, ":", "/", 1)
	}
	return out
}

// serveOps serves /metrics (the Go and process collectors, and the store's
// health), /healthz and /readyz (ready while the store answers).
func serveOps(metrics, health string, st store.Store, log *zap.Logger) (func(), error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h, _ := st.(store.Health)
	if h != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "errnowatch_store_undecodable_rows_total",
			Help: "Stored alerts that lists and streams skipped because their body no longer decodes.",
		}, func() float64 { return float64(h.UndecodableRows()) }))
	}
	var servers []*http.Server
	start := func(addr string, h http.Handler) error {
		if addr == "" {
			return nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		s := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, s)
		go s.Serve(l)
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hm := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }
	hm.HandleFunc("/healthz", ok)
	ready := readyHandler(h, log)
	hm.HandleFunc("/readyz", ready)
	stop := func() {
		for _, s := range servers {
			s.Close()
		}
	}
	if metrics == health {
		mux.HandleFunc("/healthz", ok)
		mux.HandleFunc("/readyz", ready)
		return stop, start(metrics, mux)
	}
	if err := start(metrics, mux); err != nil {
		return stop, err
	}
	return stop, start(health, hm)
}

// readyTimeout bounds the store check behind one /readyz.
const readyTimeout = 2 * time.Second

// readyHandler answers /readyz: 200 while the store answers a query, 503
// with the store's error otherwise, so Kubernetes stops sending agents and
// readers to a collector whose store is down.
func readyHandler(h store.Health, log *zap.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h != nil {
			ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
			defer cancel()
			if err := h.Ping(ctx); err != nil {
				// The reason goes to the log, not to an unauthenticated
				// caller: store errors name hosts and users.
				log.Warn("not ready: the store does not answer", zap.Error(err))
				http.Error(w, "store is down; the collector's log says why", http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	}
}
