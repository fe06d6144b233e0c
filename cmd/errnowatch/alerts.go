package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/util/wait"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertfmt"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/collector/client"
)

// alertQuery is the filter flags the alerts commands share, kubectl style.
type alertQuery struct {
	server                          client.Options
	namespace, pod, container, node string
	workload, rule, severity        string
	since, until                    time.Duration
}

func addQueryFlags(cmd *cobra.Command, q *alertQuery) {
	fl := cmd.Flags()
	fl.StringVar(&q.server.Address, "server", "unix:///var/run/errnowatch/collector.sock", "collector address: host:port (TLS) or unix:///path")
	fl.StringVar(&q.server.CAFile, "ca", "", "CA of the collector's certificate")
	fl.StringVar(&q.server.CertFile, "cert", "", "client certificate (mutual TLS)")
	fl.StringVar(&q.server.KeyFile, "key", "", "client key (mutual TLS)")
	fl.StringVar(&q.server.ServerName, "server-name", "", "name to verify in the collector's certificate")
	fl.StringVar(&q.server.TokenFile, "token-file", "", "bearer token file (a ServiceAccount token with audience errnowatch)")
	fl.StringVar(&q.server.Token, "token", "", "bearer token")
	fl.StringVarP(&q.namespace, "namespace", "n", "", "only this namespace (empty: all, which needs cluster-wide access)")
	fl.StringVar(&q.pod, "pod", "", "only this pod")
	fl.StringVar(&q.container, "container", "", "only this container")
	fl.StringVar(&q.node, "node", "", "only this node")
	fl.StringVar(&q.workload, "workload", "", "only this workload, as KIND/NAME (e.g. Deployment/web)")
	fl.StringVar(&q.rule, "rule", "", "only this rule id")
	fl.StringVar(&q.severity, "severity", "", "only this severity or worse: info, low, medium, high, critical")
	fl.DurationVar(&q.since, "since", 0, "only alerts active in this last period (e.g. 1h)")
	fl.DurationVar(&q.until, "until", 0, "only alerts that started before this long ago")
}

func (q *alertQuery) filter() (*errnowatchv1.AlertFilter, error) {
	f := &errnowatchv1.AlertFilter{Namespace: q.namespace, Pod: q.pod, Container: q.container, Node: q.node, RuleId: q.rule}
	if q.workload != "" {
		kind, name, ok := strings.Cut(q.workload, "/")
		if !ok || kind == "" || name == "" {
			return nil, fmt.Errorf("--workload %q: use KIND/NAME, e.g. Deployment/web", q.workload)
		}
		f.WorkloadKind, f.WorkloadName = kind, name
	}
	if q.severity != "" {
		s, err := alert.ParseSeverity(q.severity)
		if err != nil {
			return nil, fmt.Errorf("--severity: %w", err)
		}
		f.MinSeverity = alertpb.SeverityToProto(s)
	}
	now := time.Now()
	if q.since > 0 {
		f.Since = timestamppb.New(now.Add(-q.since))
	}
	if q.until > 0 {
		f.Until = timestamppb.New(now.Add(-q.until))
	}
	return f, nil
}

// open checks the filter flags and prepares the connection to the
// collector; the caller closes it.
func (q *alertQuery) open() (*errnowatchv1.AlertFilter, *client.Client, error) {
	f, err := q.filter()
	if err != nil {
		return nil, nil, err
	}
	c, err := client.Dial(q.server)
	if err != nil {
		return nil, nil, err
	}
	return f, c, nil
}

func newAlertsCmd(_ *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "Query the collector's alerts: list, summary, stream",
	}
	cmd.AddCommand(newAlertsListCmd(), newAlertsSummaryCmd(), newAlertsStreamCmd())
	return cmd
}

func newAlertsListCmd() *cobra.Command {
	var q alertQuery
	var output string
	var limit int
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List alerts, newest first",
		Example: "  errnowatch alerts list -n shop --pod web-7d9f --since 1h -o wide",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := alertfmt.ParseListFormat(output)
			if err != nil {
				return err
			}
			f, c, err := q.open()
			if err != nil {
				return err
			}
			defer c.Conn.Close()
			var all []*errnowatchv1.StoredAlert
			token := ""
			for {
				size := int32(min(1000, limit-len(all)))
				resp, err := c.Query.ListAlerts(cmd.Context(), &errnowatchv1.ListAlertsRequest{Filter: f, PageSize: size, PageToken: token})
				if err != nil {
					return explainRPC(err, q.server.Address)
				}
				all = append(all, resp.Alerts...)
				token = resp.NextPageToken
				if token == "" || len(all) >= limit {
					break
				}
			}
			return alertfmt.WriteList(cmd.OutOrStdout(), format, all, time.Now())
		},
	}
	addQueryFlags(cmd, &q)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, wide or json (one object per line)")
	cmd.Flags().IntVar(&limit, "limit", 500, "at most this many alerts")
	return cmd
}

func newAlertsSummaryCmd() *cobra.Command {
	var q alertQuery
	cmd := &cobra.Command{
		Use:     "summary",
		Short:   "Count alerts per pod, by rule and severity",
		Example: "  errnowatch alerts summary -n shop",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, c, err := q.open()
			if err != nil {
				return err
			}
			defer c.Conn.Close()
			resp, err := c.Query.SummarizeAlerts(cmd.Context(), &errnowatchv1.SummarizeAlertsRequest{Filter: f})
			if err != nil {
				return explainRPC(err, q.server.Address)
			}
			return alertfmt.WriteSummary(cmd.OutOrStdout(), resp.Pods, time.Now())
		},
	}
	addQueryFlags(cmd, &q)
	return cmd
}

func newAlertsStreamCmd() *cobra.Command {
	var q alertQuery
	var format string
	var startAfter uint64
	var fromEnd bool
	var heartbeat time.Duration
	cmd := &cobra.Command{
		Use:   "stream",
		Short: "Stream alerts as JSON lines for a SIEM, resuming where it left off",
		Long: `Writes every stored alert revision matching the filters, one JSON object per line,
then follows new ones. Each line carries its store sequence; restart with
--start-after SEQUENCE to resume with nothing missed and nothing repeated. The
command itself reconnects with its last cursor when the collector goes away.`,
		Example: "  errnowatch alerts stream --format ocsf --start-after 1234 --server collector.errnowatch:9443 --ca ca.crt --token-file token",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sf, err := alertfmt.ParseStreamFormat(format)
			if err != nil {
				return err
			}
			f, c, err := q.open()
			if err != nil {
				return err
			}
			defer c.Conn.Close()
			w := alertfmt.NewStreamWriter(cmd.OutOrStdout(), sf)
			cursor := startAfter
			backoff := wait.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.5, Cap: 30 * time.Second, Steps: 1 << 30}
			ctx := cmd.Context()
			for {
				req := &errnowatchv1.StreamAlertsRequest{Filter: f, StartAfter: cursor, FromEnd: fromEnd && cursor == 0}
				if heartbeat > 0 {
					req.HeartbeatInterval = durationpb.New(heartbeat)
				}
				stream, err := c.Query.StreamAlerts(ctx, req)
				if err == nil {
					for {
						var ev *errnowatchv1.StreamAlertsResponse
						if ev, err = stream.Recv(); err != nil {
							break
						}
						if a := ev.GetAlert(); a != nil {
							if err = w.Write(a); err != nil {
								return err
							}
							cursor = a.Sequence
							backoff.Duration = 500 * time.Millisecond
						} else if hb := ev.GetHeartbeat(); hb != nil && hb.Cursor > cursor {
							cursor = hb.Cursor
						}
						fromEnd = false
					}
				}
				if ctx.Err() != nil {
					return nil
				}
				if !alertpb.Retryable(err) && status.Code(err) != codes.Unavailable && !errors.Is(err, io.EOF) {
					return explainRPC(err, q.server.Address)
				}
				d := backoff.Step()
				if rd, ok := alertpb.RetryDelay(err); ok && rd > d {
					d = rd
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(d):
				}
			}
		},
	}
	addQueryFlags(cmd, &q)
	fl := cmd.Flags()
	fl.StringVar(&format, "format", "json", "json (errnowatch's alert) or ocsf (OCSF Detection Finding, class 2004)")
	fl.Uint64Var(&startAfter, "start-after", 0, "resume after this store sequence (0: from the first stored alert)")
	fl.BoolVar(&fromEnd, "from-end", false, "skip what is stored; only new alerts")
	fl.DurationVar(&heartbeat, "heartbeat", 0, "heartbeat interval asked of the collector (default 15s)")
	return cmd
}

// explainRPC turns a gRPC error into a message that says what to do.
func explainRPC(err error, addr string) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("collector at %s is not reachable: %s (is it running? check --server, --ca)", addr, st.Message())
	case codes.Unauthenticated:
		return fmt.Errorf("the collector did not accept our credentials: %s (check --token-file, --cert/--key)", st.Message())
	case codes.PermissionDenied:
		return fmt.Errorf("not allowed: %s (ask for list/watch on alerts.errnowatch.io in the namespace, or give -n NAMESPACE)", st.Message())
	}
	return fmt.Errorf("%s: %s", st.Code(), st.Message())
}
