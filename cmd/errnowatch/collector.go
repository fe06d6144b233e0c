package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/auth"
	"github.com/errnowatch/errnowatch/pkg/collector"
	"github.com/errnowatch/errnowatch/pkg/kube"
	"github.com/errnowatch/errnowatch/pkg/ops"
	"github.com/errnowatch/errnowatch/pkg/store"
	"github.com/errnowatch/errnowatch/pkg/store/postgres"
	"github.com/errnowatch/errnowatch/pkg/store/sqlite"
)

type collectorFlags struct {
	listen                    collector.Listen
	dataDir, store, storeFile string
	retention                 time.Duration
	retentionMaxAlerts        int64
	retentionMaxAlertsPerNode int64
	authMode, audience        string
	kubeconfig                string
	agentServiceAccounts      []string
	metricsAddr, healthAdr    string
	uiAddr                    string
	sinksConfig               string
}

// storeEnv names the environment variable that may hold the store address
// (a postgres:// URL carries a password: never in argv, where every user of
// the node can read it in /proc).
const storeEnv = "ERRNOWATCH_STORE"

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
			url, err := storeAddress(f.store, f.storeFile, os.Getenv(storeEnv))
			if err != nil {
				return err
			}
			st, err := openStore(ctx, url, f.dataDir, log)
			if err != nil {
				return err
			}
			defer st.Close()
			reg := prometheus.NewRegistry()
			cfg := collector.Config{
				Store: st, Logger: log, Registerer: reg,
				AgentServiceAccounts: normalizeSAs(f.agentServiceAccounts),
				Retention: store.Retention{MaxAge: f.retention, MaxAlerts: f.retentionMaxAlerts,
					MaxAlertsPerNode: f.retentionMaxAlertsPerNode},
			}
			switch f.authMode {
			case "kubernetes":
				rc, err := kube.RESTConfig(f.kubeconfig)
				if err != nil {
					return err
				}
				cs, err := kube.NewClient(rc)
				if err != nil {
					return err
				}
				k := auth.NewKubernetes(cs, auth.Options{Audience: f.audience, Registerer: reg})
				cfg.Authenticator, cfg.Authorizer, cfg.Nodes = k, k, k
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
			stopSinks, err := startSinks(ctx, f.sinksConfig, st, reg, log)
			if err != nil {
				return err
			}
			defer stopSinks()
			if err := srv.Start(ctx, f.listen); err != nil {
				return err
			}
			if f.uiAddr != "" {
				// The web UI: same TLS certificate, tokens and RBAC as the API.
				u, err := srv.ServeUI(collector.UIListen{Address: f.uiAddr,
					TLS: collector.TLSFiles{CertFile: f.listen.TLS.CertFile, KeyFile: f.listen.TLS.KeyFile}})
				if err != nil {
					srv.Close()
					return err
				}
				defer u.Close()
			}
			stop, err := serveOps(reg, f.metricsAddr, f.healthAdr, st, log)
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
	fl.StringVar(&f.listen.UnixSocket, "unix-socket", "", "also serve on this unix socket, for local administrators (in a directory of mode 0700; peers must be root or this user)")
	fl.StringVar(&f.dataDir, "data-dir", "/var/lib/errnowatch", "directory of the embedded store")
	fl.StringVar(&f.store, "store", "", "sqlite:PATH of the embedded store (default sqlite:DATA-DIR/alerts.db); a postgres address goes in --store-file or "+storeEnv+", never on the command line")
	fl.StringVar(&f.storeFile, "store-file", "", "file holding the store address: sqlite:PATH or postgres://USER:PASSWORD@HOST/DB (shared by collector replicas; TLS sslmode=verify-full unless the address says otherwise); or set "+storeEnv+"; default sqlite:DATA-DIR/alerts.db")
	fl.DurationVar(&f.retention, "retention", 30*24*time.Hour, "delete alerts not updated for this long (0: keep)")
	fl.Int64Var(&f.retentionMaxAlerts, "retention-max-alerts", 0, "keep at most this many alerts, dropping the least recently updated (0: no bound)")
	fl.Int64Var(&f.retentionMaxAlertsPerNode, "retention-max-alerts-per-node", 0, "keep at most this many alerts of each node, dropping its least recently updated, before --retention-max-alerts applies: one node's flood cannot evict other nodes' alerts (0: no bound)")
	fl.StringVar(&f.authMode, "auth", "kubernetes", "how TCP callers are authenticated: kubernetes (TokenReview + SubjectAccessReview) or none (client certificates only)")
	fl.StringVar(&f.audience, "token-audience", auth.DefaultAudience, "audience agent and client tokens must carry")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig for the reviews (default: in-cluster)")
	fl.StringSliceVar(&f.agentServiceAccounts, "agent-service-accounts", nil, "the agents' ServiceAccounts (namespace:name): they alone may publish alerts, each for its own node")
	fl.StringVar(&f.uiAddr, "ui-address", "", "serve the web UI here over TLS (--tls-cert, --tls-key), signed in with Kubernetes tokens (empty: off)")
	fl.StringVar(&f.metricsAddr, "metrics-address", ":9090", "serve /metrics here (empty: off)")
	fl.StringVar(&f.healthAdr, "health-address", ":9091", "serve /healthz here (empty: off)")
	fl.StringVar(&f.sinksConfig, "sinks-config", "", "YAML file of alert sinks (webhook, slack, teams, mattermost, splunk-hec, syslog, otlp; docs/sinks.md) the collector delivers to (empty: none)")
	return cmd
}

// storeAddress picks the store address: --store (SQLite only), else
// --store-file, else the environment; empty means the default SQLite store.
func storeAddress(flag, file, env string) (string, error) {
	switch {
	case flag != "" && !strings.HasPrefix(flag, "sqlite:"):
		// Not echoed: it may be a postgres URL with its password.
		return "", fmt.Errorf("--store takes only sqlite:PATH: a postgres address holds a password that every user of the node could read in the process list; put it in a file named by --store-file or in $%s", storeEnv)
	case flag != "":
		return flag, nil
	case file == "":
		return strings.TrimSpace(env), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--store-file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// openStore opens the store an address names. Errors never repeat the
// address: a postgres one holds a password.
func openStore(ctx context.Context, url, dataDir string, log *zap.Logger) (store.Store, error) {
	if url == "" {
		url = "sqlite:" + filepath.Join(dataDir, "alerts.db")
	}
	scheme, rest, _ := strings.Cut(url, ":")
	switch scheme {
	case "sqlite":
		if err := os.MkdirAll(filepath.Dir(rest), 0o700); err != nil {
			return nil, fmt.Errorf("store directory: %w", err)
		}
		return sqlite.Open(ctx, rest, sqlite.Options{Logger: log})
	case "postgres", "postgresql":
		dsn, err := verifyFull(url)
		if err != nil {
			return nil, err
		}
		st, err := postgres.Open(ctx, dsn, postgres.Options{Logger: log})
		if err != nil {
			return nil, redactPassword(err, dsn)
		}
		return st, nil
	default:
		return nil, fmt.Errorf("store address with scheme %q: use sqlite:PATH or postgres://USER@HOST/DB", scheme)
	}
}

// verifyFull defaults a postgres URL to TLS that checks the server's
// certificate and name (libpq's default, "prefer", falls back to clear
// text and accepts any certificate). An explicit sslmode is kept.
func verifyFull(raw string) (string, error) {
	u, err := neturl.Parse(raw)
	if err != nil {
		// url.Parse errors quote the URL; say where it is wrong instead.
		return "", errors.New("store address is not a valid postgres:// URL (check the scheme, the host and that special characters in the password are %-encoded)")
	}
	q := u.Query()
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "verify-full")
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// redactPassword replaces the address's password in err's text.
func redactPassword(err error, dsn string) error {
	u, perr := neturl.Parse(dsn)
	if perr != nil || u.User == nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pw, "xxxxx"))
}

func normalizeSAs(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.Replace(s, ":", "/", 1)
	}
	return out
}

// serveOps serves /metrics (reg, with the Go and process collectors and
// the store's health added), /healthz and /readyz (ready while the store
// answers).
func serveOps(reg *prometheus.Registry, metrics, health string, st store.Store, log *zap.Logger) (func(), error) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h := registerStoreMetrics(reg, st)
	return ops.Serve(ops.Options{
		MetricsAddress: metrics,
		HealthAddress:  health,
		Metrics:        promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Ready:          readyHandler(h, log),
	})
}

// checkpointCounter is a store that checkpoints its log apart from its
// writes and counts the checkpoints that failed (SQLite).
type checkpointCounter interface {
	CheckpointErrors() uint64
}

// registerStoreMetrics adds the store's health counters that it has to reg,
// and returns its Health (nil if it has none) for /readyz.
func registerStoreMetrics(reg prometheus.Registerer, st store.Store) store.Health {
	h, _ := st.(store.Health)
	if h != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "errnowatch_store_undecodable_rows_total",
			Help: "Stored alerts that lists and streams skipped because their body no longer decodes.",
		}, func() float64 { return float64(h.UndecodableRows()) }))
	}
	if c, ok := st.(checkpointCounter); ok {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "errnowatch_store_checkpoint_errors_total",
			Help: "Background checkpoints of the store's write-ahead log that failed; while they fail the log grows " +
				"until the writer's own checkpoint copies it, and the collector's log says why.",
		}, func() float64 { return float64(c.CheckpointErrors()) }))
	}
	return h
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
