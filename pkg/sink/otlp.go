package sink

import (
	"context"
	"fmt"
	"net"
	"strconv"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/errnowatch/errnowatch/pkg/alert"
)

// otlpSender exports batches as OTLP log records over gRPC
// (LogsService/Export), with the messages of the OpenTelemetry proto
// module.
type otlpSender struct {
	conn    *grpc.ClientConn
	client  collogs.LogsServiceClient
	headers metadata.MD
	max     int
	// rejected counts records the receiver refused in a partial success:
	// they are dead letters.
	rejected func(n int, reason string)
}

func newOTLP(spec *OTLPSpec, field string, max int, rejected func(int, string)) (*otlpSender, error) {
	creds := insecure.NewCredentials()
	if !spec.Insecure {
		t := spec.TLS
		if t == nil {
			t = &TLS{}
		}
		host := spec.Endpoint
		if h, _, err := net.SplitHostPort(spec.Endpoint); err == nil {
			host = h
		}
		cfg, err := t.config(field+".tls", host)
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(cfg)
	}
	md := metadata.MD{}
	for k, v := range spec.Headers {
		val, err := v.resolve(field + ".headers." + k)
		if err != nil {
			return nil, err
		}
		md.Set(k, val)
	}
	conn, err := grpc.NewClient(spec.Endpoint, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("%s.endpoint: %w", field, err)
	}
	return &otlpSender{conn: conn, client: collogs.NewLogsServiceClient(conn), headers: md, max: max, rejected: rejected}, nil
}

func (o *otlpSender) send(ctx context.Context, recs []Record) (int, error) {
	var lrs []*logs.LogRecord
	for i := range recs {
		var lr *logs.LogRecord
		_, err := fit(recs[i], o.max, func(r *Record) ([]byte, error) {
			lr = logRecord(r)
			return proto.Marshal(lr)
		})
		if err != nil {
			if i == 0 {
				return 0, err
			}
			break
		}
		lrs = append(lrs, lr)
	}
	req := &collogs.ExportLogsServiceRequest{ResourceLogs: []*logs.ResourceLogs{{
		Resource: &resource.Resource{Attributes: []*common.KeyValue{str("service.name", "errnowatch-collector")}},
		ScopeLogs: []*logs.ScopeLogs{{
			Scope:      &common.InstrumentationScope{Name: "errnowatch"},
			LogRecords: lrs,
		}},
	}}}
	if len(o.headers) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, o.headers)
	}
	resp, err := o.client.Export(ctx, req)
	if err != nil {
		// OTLP/gRPC: these codes say the data was refused for good.
		switch status.Code(err) {
		case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange, codes.Unimplemented,
			codes.AlreadyExists, codes.NotFound:
			return 0, permanent(fmt.Errorf("OTLP export refused: %w", err))
		}
		return 0, fmt.Errorf("OTLP export: %w", err)
	}
	if ps := resp.GetPartialSuccess(); ps != nil && ps.GetRejectedLogRecords() > 0 {
		// Which ones is not said, and resending would not help.
		o.rejected(int(ps.GetRejectedLogRecords()), "rejected")
	}
	return len(lrs), nil
}

func (o *otlpSender) close() error { return o.conn.Close() }

func str(k, v string) *common.KeyValue {
	return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: v}}}
}

func num(k string, v int64) *common.KeyValue {
	return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: v}}}
}

func otlpSeverity(s alert.Severity) logs.SeverityNumber {
	switch s {
	case alert.SeverityCritical:
		return logs.SeverityNumber_SEVERITY_NUMBER_FATAL
	case alert.SeverityHigh:
		return logs.SeverityNumber_SEVERITY_NUMBER_ERROR
	case alert.SeverityMedium:
		return logs.SeverityNumber_SEVERITY_NUMBER_WARN
	}
	return logs.SeverityNumber_SEVERITY_NUMBER_INFO
}

// logRecord is an alert revision as an OTLP log record: the message as
// body, Kubernetes resource names under the semantic-convention keys, the
// rest under errnowatch.*. Protobuf strings must be UTF-8: Sanitize
// escapes anything else.
func logRecord(r *Record) *logs.LogRecord {
	attrs := []*common.KeyValue{
		str("errnowatch.alert.id", r.ID),
		num("errnowatch.alert.revision", int64(r.Revision)),
		str("errnowatch.rule", plain(r.RuleID, 256)),
		num("errnowatch.sequence", int64(r.Sequence)),
		num("errnowatch.failures", int64(r.Total)),
	}
	for _, kv := range [][2]string{{"k8s.namespace.name", r.Namespace}, {"k8s.pod.name", r.Pod},
		{"k8s.pod.uid", r.PodUID}, {"k8s.container.name", r.Container}, {"k8s.node.name", r.Node},
		{"container.id", r.ContainerID}, {"container.image.name", r.Image},
		{"errnowatch.workload.kind", r.Workload.Kind}, {"errnowatch.workload.name", r.Workload.Name},
		{"errnowatch.denied", alert.TargetSummary(r.Targets)}, {"errnowatch.description", r.Description}} {
		if kv[1] != "" {
			attrs = append(attrs, str(kv[0], plain(kv[1], 2048)))
		}
	}
	for i, p := range r.Processes {
		attrs = append(attrs, str("errnowatch.process."+strconv.Itoa(i), fmt.Sprintf("%d %s uid=%d", p.PID, plain(p.Comm, 64), p.UID)))
	}
	return &logs.LogRecord{
		TimeUnixNano:         uint64(r.LastSeen.UnixNano()),
		ObservedTimeUnixNano: uint64(r.StoredTime.UnixNano()),
		SeverityNumber:       otlpSeverity(r.Severity),
		SeverityText:         r.Severity.String(),
		Body:                 &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: plain(r.Message, fieldCut)}},
		Attributes:           attrs,
		EventName:            "errnowatch.alert",
	}
}
