package sink

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
)

// facilities are RFC 5424's facility codes by their usual names.
var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7, "uucp": 8,
	"cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14, "solaris-cron": 15,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// syslogSeverity maps alert severities to RFC 5424 severities.
func syslogSeverity(s alert.Severity) int {
	switch s {
	case alert.SeverityCritical:
		return 2 // critical
	case alert.SeverityHigh:
		return 3 // error
	case alert.SeverityMedium:
		return 4 // warning
	case alert.SeverityLow:
		return 5 // notice
	}
	return 6 // informational
}

// sdID is the structured-data ID of errnowatch's element: the private
// enterprise number 32473 is the one RFC 5612 reserves for documentation
// and examples; errnowatch has none of its own.
const sdID = "errnowatch@32473"

// syslogSender writes RFC 5424 messages with RFC 6587 octet-counting
// framing ("LEN SP MSG") over TCP or TLS. TCP syslog has no application
// acknowledgement, so every batch goes on its own connection, which the
// sender half-closes and then waits for the receiver to close: a receiver
// that closes its end has read every byte before the end of the stream, so
// the batch is acknowledged only when it was consumed. A receiver that dies
// before reading answers with a reset or a timeout instead, and the batch
// is sent again.
type syslogSender struct {
	addr     string
	tls      *tls.Config
	format   string
	facility int
	appName  string
	hostname string
	max      int
	timeout  time.Duration
}

func (s *syslogSender) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: s.timeout}
	if s.tls != nil {
		td := &tls.Dialer{NetDialer: d, Config: s.tls}
		return td.DialContext(ctx, "tcp", s.addr)
	}
	return d.DialContext(ctx, "tcp", s.addr)
}

func (s *syslogSender) send(ctx context.Context, recs []Record) (int, error) {
	frames := make([][]byte, 0, len(recs))
	for i := range recs {
		m, err := fit(recs[i], s.max, s.message)
		if err != nil {
			if i == 0 {
				return 0, err
			}
			break
		}
		frames = append(frames, m)
	}
	conn, err := s.dial(ctx)
	if err != nil {
		return 0, fmt.Errorf("connect to syslog %s: %w", s.addr, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(s.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline) //nolint:errcheck // a failed deadline shows as a failed write
	w := bufio.NewWriterSize(conn, 64<<10)
	for _, f := range frames {
		w.WriteString(strconv.Itoa(len(f)))
		w.WriteByte(' ')
		w.Write(f)
	}
	if err := w.Flush(); err != nil {
		return 0, fmt.Errorf("write to syslog %s: %w", s.addr, err)
	}
	if err := closeWrite(conn); err != nil {
		return 0, fmt.Errorf("end stream to syslog %s: %w", s.addr, err)
	}
	// Wait for the receiver to close its end; anything it says is
	// ignored (syslog receivers say nothing).
	if _, err := io.Copy(io.Discard, io.LimitReader(conn, maxResponse)); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, fmt.Errorf("syslog %s did not close the connection within %s: delivery unconfirmed", s.addr, s.timeout)
		}
		return 0, fmt.Errorf("syslog %s: %w", s.addr, err)
	}
	return len(frames), nil
}

func closeWrite(c net.Conn) error {
	switch c := c.(type) {
	case *tls.Conn:
		return c.CloseWrite()
	case *net.TCPConn:
		return c.CloseWrite()
	}
	return errors.New("connection cannot half-close")
}

func (s *syslogSender) close() error { return nil }

// message is one RFC 5424 message:
// <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG.
func (s *syslogSender) message(r *Record) ([]byte, error) {
	var payload []byte
	var err error
	if s.format == FormatJSON {
		payload, err = json.Marshal(r)
	} else {
		payload = []byte(CEF(r))
	}
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "<%d>1 %s %s %s - %s ", s.facility*8+syslogSeverity(r.Severity),
		r.LastSeen.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), headerField(s.hostname, 255), headerField(s.appName, 48),
		msgID(r.RuleID))
	b.WriteString(structuredData(r))
	b.WriteByte(' ')
	b.Write(payload)
	return []byte(b.String()), nil
}

// header fields are PRINTUSASCII (33-126) of bounded length, "-" when empty.
func headerField(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 33 || r > 126 {
			return '_'
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n]
	}
	if s == "" {
		return "-"
	}
	return s
}

func msgID(rule string) string { return headerField(rule, 32) }

// structuredData is the errnowatch SD element. PARAM-VALUEs escape '"',
// '\' and ']' with a backslash (RFC 5424 6.3.3) and are valid UTF-8
// (Sanitize escapes invalid bytes and control characters).
func structuredData(r *Record) string {
	params := [][2]string{{"id", r.ID}, {"revision", strconv.FormatUint(uint64(r.Revision), 10)},
		{"rule", r.RuleID}, {"severity", r.Severity.String()}, {"sequence", strconv.FormatUint(r.Sequence, 10)},
		{"namespace", r.Namespace}, {"pod", r.Pod}, {"container", r.Container}, {"node", r.Node},
		{"total", strconv.FormatUint(r.Total, 10)}}
	var b strings.Builder
	b.WriteString("[" + sdID)
	for _, p := range params {
		if p[1] == "" {
			continue
		}
		b.WriteString(" " + p[0] + `="` + SDEscape(plain(p[1], 256)) + `"`)
	}
	b.WriteString("]")
	return b.String()
}

// SDEscape escapes an RFC 5424 SD-PARAM value.
func SDEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`).Replace(s)
}

// cefSeverity maps alert severities to CEF's 0-10.
func cefSeverity(s alert.Severity) int {
	return [...]int{0, 1, 3, 5, 8, 10}[min(max(int(s), 0), 5)]
}

// cefHeader escapes a CEF header field: '\' and '|'.
func cefHeader(s string) string {
	return strings.NewReplacer(`\`, `\\`, `|`, `\|`).Replace(s)
}

// cefValue escapes a CEF extension value: '\', '=' and line breaks (CEF's
// \n and \r); the other control characters are Sanitize's escapes already.
func cefValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `=`, `\=`, "\n", `\n`, "\r", `\r`).Replace(s)
}

// CEF is the alert as an ArcSight Common Event Format line.
func CEF(r *Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CEF:0|errnowatch|errnowatch|1|%s|%s|%d|", cefHeader(plain(r.RuleID, 128)),
		cefHeader(plain(r.RuleID+": "+r.Message, 512)), cefSeverity(r.Severity))
	ext := [][2]string{
		{"rt", strconv.FormatInt(r.LastSeen.UnixMilli(), 10)},
		{"start", strconv.FormatInt(r.FirstSeen.UnixMilli(), 10)},
		{"cat", r.RuleID},
		{"msg", r.Message},
		{"dvchost", r.Node},
		{"externalId", r.ID},
		{"cnt", strconv.FormatUint(r.Total, 10)},
		{"cn1Label", "revision"}, {"cn1", strconv.FormatUint(uint64(r.Revision), 10)},
		{"cn2Label", "sequence"}, {"cn2", strconv.FormatUint(r.Sequence, 10)},
		{"cs1Label", "namespace"}, {"cs1", r.Namespace},
		{"cs2Label", "pod"}, {"cs2", r.Pod},
		{"cs3Label", "container"}, {"cs3", r.Container},
		{"cs4Label", "image"}, {"cs4", r.Image},
		{"cs5Label", "workload"}, {"cs5", strings.Trim(r.Workload.Kind+"/"+r.Workload.Name, "/")},
		{"cs6Label", "denied"}, {"cs6", alert.TargetSummary(r.Targets)},
	}
	sep := ""
	for i := 0; i < len(ext); i++ {
		k, v := ext[i][0], ext[i][1]
		if strings.HasSuffix(k, "Label") { // a label goes only with its value
			if ext[i+1][1] == "" {
				i++
				continue
			}
		}
		if v == "" {
			continue
		}
		b.WriteString(sep + k + "=" + cefValue(plain(v, 1024)))
		sep = " "
	}
	return b.String()
}

func splitHostPort(addr string) (string, string, error) { return net.SplitHostPort(addr) }
