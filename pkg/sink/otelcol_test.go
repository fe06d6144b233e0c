package sink

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/collector/collectortest"
)

// otelcolBinary is bin/otelcol (make otelcol), or $ERRNOWATCH_OTELCOL. A
// missing binary fails the test: make test builds it first.
func otelcolBinary(t testing.TB) string {
	if p := os.Getenv("ERRNOWATCH_OTELCOL"); p != "" {
		return p
	}
	p, err := filepath.Abs("../../bin/otelcol")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: build it with `make otelcol` (an OpenTelemetry Collector from its Go modules in "+
			"tools/otelcol; make test does this first), or point ERRNOWATCH_OTELCOL at one: %v", p, err)
	}
	return p
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// otelcol runs the real OpenTelemetry Collector with its OTLP gRPC and
// syslog (RFC 5424, octet counting, optional TLS) receivers, each writing
// to its own file exporter. Every start writes new files, so a killed
// run's output stays readable.
type otelcol struct {
	t                    testing.TB
	bin, dir             string
	otlpAddr, syslogAddr string
	tlsCert, tlsKey      string
	runs                 int
	cmd                  *exec.Cmd
}

func startOtelcol(t testing.TB, pki *collectortest.PKI) *otelcol {
	o := &otelcol{t: t, bin: otelcolBinary(t), dir: t.TempDir(), otlpAddr: freePort(t), syslogAddr: freePort(t)}
	if pki != nil {
		o.tlsCert, o.tlsKey = pki.ServerCertFile, pki.ServerKeyFile
	}
	o.start()
	t.Cleanup(func() { o.stop(syscall.SIGKILL) })
	return o
}

func (o *otelcol) start() {
	o.t.Helper()
	o.runs++
	tls := ""
	if o.tlsCert != "" {
		tls = fmt.Sprintf("\n      tls: {cert_file: %s, key_file: %s}", o.tlsCert, o.tlsKey)
	}
	// rotation: the file exporter's unbuffered writer (without it, it
	// buffers for a second and a killed collector loses what it
	// acknowledged).
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %[1]s
  syslog:
    protocol: rfc5424
    enable_octet_counting: true
    tcp:
      listen_address: %[2]s%[3]s
exporters:
  file/otlp:
    path: %[4]s/otlp-%[5]d.json
    rotation: {max_megabytes: 1024}
  file/syslog:
    path: %[4]s/syslog-%[5]d.json
    rotation: {max_megabytes: 1024}
service:
  pipelines:
    logs/otlp: {receivers: [otlp], exporters: [file/otlp]}
    logs/syslog: {receivers: [syslog], exporters: [file/syslog]}
`, o.otlpAddr, o.syslogAddr, tls, o.dir, o.runs)
	path := filepath.Join(o.dir, fmt.Sprintf("config-%d.yaml", o.runs))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		o.t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(o.dir, fmt.Sprintf("otelcol-%d.log", o.runs)))
	if err != nil {
		o.t.Fatal(err)
	}
	defer logf.Close()
	o.cmd = exec.Command(o.bin, "--config=file:"+path)
	o.cmd.Stdout, o.cmd.Stderr = logf, logf
	if err := o.cmd.Start(); err != nil {
		o.t.Fatalf("start %s: %v", o.bin, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range []string{o.otlpAddr, o.syslogAddr} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(logf.Name())
				o.t.Fatalf("otelcol does not listen on %s: %v\n%s", addr, err, log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// stop ends the collector with sig and waits for it.
func (o *otelcol) stop(sig syscall.Signal) {
	if o.cmd == nil {
		return
	}
	_ = o.cmd.Process.Signal(sig)
	_ = o.cmd.Wait()
	o.cmd = nil
}

// records reads every log record the file exporter wrote for receiver
// ("otlp" or "syslog"), over all runs.
func (o *otelcol) records(receiver string) []*logs.LogRecord {
	o.t.Helper()
	var out []*logs.LogRecord
	for run := 1; run <= o.runs; run++ {
		b, err := os.ReadFile(filepath.Join(o.dir, fmt.Sprintf("%s-%d.json", receiver, run)))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			o.t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			var ld logs.LogsData
			if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(sc.Bytes(), &ld); err != nil {
				// A killed collector may leave a torn last line.
				continue
			}
			for _, rl := range ld.ResourceLogs {
				for _, sl := range rl.ScopeLogs {
					out = append(out, sl.LogRecords...)
				}
			}
		}
	}
	return out
}

func attr(lr *logs.LogRecord, key string) string {
	for _, kv := range lr.Attributes {
		if kv.Key == key {
			if s := kv.Value.GetStringValue(); s != "" {
				return s
			}
			return fmt.Sprint(kv.Value.GetIntValue())
		}
	}
	return ""
}

// sdParam is a parameter of the errnowatch SD element as the syslog
// receiver parsed it.
func sdParam(lr *logs.LogRecord, key string) string {
	for _, kv := range lr.Attributes {
		if kv.Key != "structured_data" {
			continue
		}
		for _, el := range kv.Value.GetKvlistValue().GetValues() {
			if el.Key != sdID {
				continue
			}
			for _, p := range el.Value.GetKvlistValue().GetValues() {
				if p.Key == key {
					return p.Value.GetStringValue()
				}
			}
		}
	}
	return ""
}

func TestOTLPToOpenTelemetryCollector(t *testing.T) {
	oc := startOtelcol(t, nil)
	st := openStore(t)
	start(t, st, fmt.Sprintf(`
sinks:
- name: otlp
  type: otlp
  startAt: beginning
  otlp: {endpoint: "%s", insecure: true}
`, oc.otlpAddr), Options{})
	h := hostile()
	insert(t, st, append(gen(100, 99), h.Alert))
	eventually(t, 20*time.Second, "100 log records exported", func() bool { return len(oc.records("otlp")) >= 100 })
	recs := oc.records("otlp")
	var found bool
	for _, lr := range recs {
		if attr(lr, "errnowatch.alert.id") != h.ID {
			continue
		}
		found = true
		if attr(lr, "k8s.pod.name") != h.Pod || attr(lr, "k8s.namespace.name") != h.Namespace ||
			lr.SeverityNumber != logs.SeverityNumber_SEVERITY_NUMBER_INFO || lr.SeverityText != "low" ||
			!strings.HasPrefix(lr.Body.GetStringValue(), "opened *bold*") || strings.ContainsAny(lr.Body.GetStringValue(), "\n\x1b") {
			t.Errorf("hostile alert's record: %v", lr)
		}
	}
	if !found || len(recs) != 100 {
		t.Fatalf("%d records (want 100), hostile one found: %v", len(recs), found)
	}
}

func TestSyslogOverTLSToOpenTelemetryCollector(t *testing.T) {
	pki := collectortest.NewPKI(t, "unused")
	oc := startOtelcol(t, pki)
	st := openStore(t)
	start(t, st, fmt.Sprintf(`
sinks:
- name: syslog
  type: syslog
  startAt: beginning
  syslog: {address: "%s", format: json, tls: {caFile: %s}}
`, oc.syslogAddr, pki.CAFile), Options{})
	h := hostile()
	insert(t, st, append(gen(100, 49), h.Alert))
	eventually(t, 20*time.Second, "50 syslog messages received", func() bool { return len(oc.records("syslog")) >= 50 })
	recs := oc.records("syslog")
	var found bool
	for _, lr := range recs {
		if attr(lr, "appname") != "errnowatch" || attr(lr, "version") != "1" || sdParam(lr, "id") == "" {
			t.Fatalf("the receiver did not parse an RFC 5424 message with our SD element: %v", lr)
		}
		if sdParam(lr, "id") != h.ID {
			continue
		}
		found = true
		if got := sdParam(lr, "pod"); got != h.Pod {
			t.Errorf("SD pod parsed as %q, want %q", got, h.Pod)
		}
		var r Record
		if err := protojsonRecord(attr(lr, "message"), &r); err != nil || r.ID != h.ID || r.Processes[0].Comm != h.Processes[0].Comm {
			t.Errorf("JSON payload %q: %v", attr(lr, "message"), err)
		}
		if attr(lr, "priority") != fmt.Sprint(4*8+syslogSeverity(alert.SeverityLow)) {
			t.Errorf("priority %s", attr(lr, "priority"))
		}
	}
	if !found || len(recs) != 50 {
		t.Fatalf("%d messages (want 50), hostile one found: %v", len(recs), found)
	}
}

// TestReceiverKilledDuringBurst stores a burst of alerts while the
// receiver is stopped and started again: every alert arrives, and the
// duplicates stay within what at-least-once allows, which the test
// measures. OTLP's receiver answers only after its exporter wrote, so it
// is killed with SIGKILL; syslog has no acknowledgement in the protocol
// (the sink's is the receiver closing the connection after reading), so
// a receiver that dies after reading loses what it had not written
// itself: it gets SIGTERM, which flushes.
func TestReceiverKilledDuringBurst(t *testing.T) {
	for _, tc := range []struct {
		name, receiver string
		sig            syscall.Signal
	}{
		{"otlp", "otlp", syscall.SIGKILL},
		{"syslog", "syslog", syscall.SIGTERM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const total, chunk, batch = 3000, 50, 100
			oc := startOtelcol(t, nil)
			st := openStore(t)
			addr := oc.otlpAddr
			sinkCfg := fmt.Sprintf(`otlp: {endpoint: "%s", insecure: true}`, addr)
			if tc.receiver == "syslog" {
				sinkCfg = fmt.Sprintf(`syslog: {address: "%s"}`, oc.syslogAddr)
			}
			run := start(t, st, fmt.Sprintf(`
sinks:
- name: burst
  type: %s
  startAt: beginning
  batchSize: %d
  timeout: 3s
  retry: {initial: 50ms, max: 500ms}
  %s
`, tc.receiver, batch, sinkCfg), Options{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < total; i += chunk {
					insert(t, st, gen(1000+i, chunk))
					time.Sleep(10 * time.Millisecond)
				}
			}()
			eventually(t, 30*time.Second, "a third delivered", func() bool {
				return run.counter(run.m.delivered, "burst") >= total/3
			})
			oc.stop(tc.sig)
			time.Sleep(time.Second) // the sink retries against a closed port meanwhile
			oc.start()
			wg.Wait()
			eventually(t, 60*time.Second, "every alert delivered", func() bool {
				return run.counter(run.m.delivered, "burst") >= total && testutilGauge(run.m.lag, "burst") == 0
			})
			seen := map[string]int{}
			for _, lr := range oc.records(tc.receiver) {
				id := attr(lr, "errnowatch.alert.id")
				if tc.receiver == "syslog" {
					id = sdParam(lr, "id")
				}
				seen[id]++
			}
			dups := 0
			for _, n := range seen {
				dups += n - 1
			}
			missing := total - len(seen)
			t.Logf("%s: receiver stopped with %s once during a burst of %d alerts: %d missing, %d delivered twice "+
				"(bound: one batch of %d), %v retries", tc.name, tc.sig, total, missing, dups, batch,
				run.counter(run.m.retries, "burst"))
			if missing != 0 {
				t.Errorf("%d alerts never arrived", missing)
			}
			if dups > batch {
				t.Errorf("%d duplicates, more than the one in-flight batch (%d) at-least-once allows", dups, batch)
			}
			if d := run.counter(run.m.deadLetters, "burst", deadAttempts) + run.counter(run.m.deadLetters, "burst", deadRejected); d != 0 {
				t.Errorf("%v dead letters", d)
			}
		})
	}
}

// TestCollectorRestartedDuringBurst stops the sinks' side (the errnowatch
// collector) in the middle of a burst and starts a new one on the same
// store: it resumes after the acknowledged cursor, nothing is lost, and
// what arrives twice is at most the batch in flight when it stopped.
func TestCollectorRestartedDuringBurst(t *testing.T) {
	const total, chunk, batch = 3000, 50, 100
	oc := startOtelcol(t, nil)
	path := filepath.Join(t.TempDir(), "alerts.db")
	st := openStoreAt(t, path)
	cfg := fmt.Sprintf(`
sinks:
- name: burst
  type: otlp
  startAt: beginning
  batchSize: %d
  otlp: {endpoint: "%s", insecure: true}
`, batch, oc.otlpAddr)
	run := start(t, st, cfg, Options{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < total; i += chunk {
			insert(t, st, gen(5000+i, chunk))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	eventually(t, 30*time.Second, "a third delivered", func() bool {
		return run.counter(run.m.delivered, "burst") >= total/3
	})
	run.stop() // cancels the export in flight: it is not acknowledged
	run = start(t, st, cfg, Options{})
	wg.Wait()
	want := func() bool {
		seen := map[string]bool{}
		for _, lr := range oc.records("otlp") {
			seen[attr(lr, "errnowatch.alert.id")] = true
		}
		return len(seen) >= total
	}
	eventually(t, 60*time.Second, "every alert delivered", want)
	seen := map[string]int{}
	for _, lr := range oc.records("otlp") {
		seen[attr(lr, "errnowatch.alert.id")]++
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	t.Logf("collector restarted once during a burst of %d alerts: %d missing, %d delivered twice (bound: one batch of %d)",
		total, total-len(seen), dups, batch)
	if len(seen) != total || dups > batch {
		t.Errorf("%d of %d alerts arrived, %d duplicates (bound %d)", len(seen), total, dups, batch)
	}
}
