package sink

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/errnowatch/errnowatch/pkg/alert"
)

// Sink types.
const (
	TypeWebhook    = "webhook"
	TypeSlack      = "slack"
	TypeTeams      = "teams"
	TypeMattermost = "mattermost"
	TypeSplunkHEC  = "splunk-hec"
	TypeSyslog     = "syslog"
	TypeOTLP       = "otlp"
)

// Bounds of a configuration.
const (
	maxConfigBytes = 1 << 20
	maxSinks       = 32
	maxSecretBytes = 64 << 10
	maxBatch       = 1000
)

// Config is the sinks file (--sinks-config): the chart renders it from the
// values' sinks: list into a ConfigMap. Secrets never appear in it: they
// are named by file (a mounted Secret) or environment variable (from a
// secretKeyRef).
type Config struct {
	Sinks []Spec `yaml:"sinks"`
}

// Spec is one sink.
type Spec struct {
	// Name identifies the sink: its cursor in the store and its metrics'
	// sink label. Lowercase letters, digits and '-'; renaming a sink
	// starts a new cursor.
	Name string `yaml:"name"`
	// Type is one of webhook, slack, teams, mattermost, splunk-hec,
	// syslog, otlp.
	Type string `yaml:"type"`
	// StartAt says where a sink claimed the first time begins: "end"
	// (default: only alerts stored from now on) or "beginning" (every
	// stored alert).
	StartAt string `yaml:"startAt"`
	Filter  Filter `yaml:"filter"`
	// BatchSize is the most revisions one delivery carries (default 100;
	// chat sinks send one message per alert whatever it says).
	BatchSize int   `yaml:"batchSize"`
	Retry     Retry `yaml:"retry"`
	// Timeout bounds one delivery attempt (default 10s).
	Timeout time.Duration `yaml:"timeout"`
	// MaxMessageBytes bounds one encoded alert (default 16384; syslog
	// default 8192, what rsyslog accepts unconfigured). Longer alerts lose
	// their targets, processes and counts, then their message is cut; one
	// that still does not fit is dead-lettered.
	MaxMessageBytes int `yaml:"maxMessageBytes"`

	Webhook   *WebhookSpec `yaml:"webhook"`
	Chat      *ChatSpec    `yaml:"chat"`
	SplunkHEC *HECSpec     `yaml:"splunkHec"`
	Syslog    *SyslogSpec  `yaml:"syslog"`
	OTLP      *OTLPSpec    `yaml:"otlp"`
}

// Filter selects the alerts a sink delivers; empty lists match all.
type Filter struct {
	Namespaces []string `yaml:"namespaces"`
	Rules      []string `yaml:"rules"`
	// MinSeverity keeps alerts at this severity or worse (default info).
	MinSeverity alert.Severity `yaml:"minSeverity"`
}

// Retry is the backoff between failed attempts: Initial, doubling up to
// Max. MaxAttempts 0 (the default) retries a failure the destination may
// get over (a connection refused, a timeout, 5xx, 429, 401/403) until it
// succeeds, so nothing is lost while the destination is down (the lag metric
// grows instead); a rejection that cannot succeed (400, 413, 422, an OTLP
// partial success) is dead-lettered at once. MaxAttempts n > 0
// dead-letters after n failed attempts.
type Retry struct {
	Initial     time.Duration `yaml:"initial"`
	Max         time.Duration `yaml:"max"`
	MaxAttempts int           `yaml:"maxAttempts"`
}

// Secret is a value taken from a file (a mounted Secret key) or an
// environment variable (set from a secretKeyRef); Value is for what is not
// secret (e.g. a URL without a token). Exactly one must be set. It is read
// once, at start.
type Secret struct {
	Value string `yaml:"value"`
	File  string `yaml:"file"`
	Env   string `yaml:"env"`
}

// UnmarshalYAML takes a plain string as Value.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		s.Value = n.Value
		return nil
	}
	type plain Secret
	return n.Decode((*plain)(s))
}

func (s *Secret) isSet() bool { return s != nil && (s.Value != "" || s.File != "" || s.Env != "") }

// resolve returns the secret, trimmed of surrounding white space (a
// Secret created from a file often ends in a newline).
func (s *Secret) resolve(field string) (string, error) {
	n := 0
	for _, v := range []string{s.Value, s.File, s.Env} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return "", fmt.Errorf("%s: set exactly one of value, file or env", field)
	}
	switch {
	case s.File != "":
		f, err := os.Open(s.File)
		if err != nil {
			return "", fmt.Errorf("%s: read file: %w (mount the Secret there)", field, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
		if err != nil {
			return "", fmt.Errorf("%s: read %s: %w", field, s.File, err)
		}
		if len(b) > maxSecretBytes {
			return "", fmt.Errorf("%s: %s is over %d bytes", field, s.File, maxSecretBytes)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("%s: %s is empty", field, s.File)
		}
		return v, nil
	case s.Env != "":
		v := strings.TrimSpace(os.Getenv(s.Env))
		if v == "" {
			return "", fmt.Errorf("%s: environment variable %s is not set or empty (set it from a secretKeyRef)", field, s.Env)
		}
		return v, nil
	}
	return s.Value, nil
}

// TLS configures a client's TLS. Files are PEM, usually a mounted Secret.
type TLS struct {
	// CAFile verifies the server; empty uses the system roots.
	CAFile string `yaml:"caFile"`
	// CertFile and KeyFile are a client certificate, for mutual TLS.
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `yaml:"serverName"`
}

func (t *TLS) config(field, host string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if t.ServerName != "" {
		cfg.ServerName = t.ServerName
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.caFile: %w", field, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.caFile: %s holds no PEM certificate", field, t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, fmt.Errorf("%s: set both certFile and keyFile, or neither", field)
	}
	if t.CertFile != "" {
		c, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s.certFile: %w", field, err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}

// WebhookSpec is a generic JSON webhook: one POST per alert revision, the
// body the JSON of `errnowatch alerts stream -o json`.
type WebhookSpec struct {
	URL Secret `yaml:"url"`
	// HMACKey, when set, signs every request (see docs/sinks.md).
	HMACKey Secret `yaml:"hmacKey"`
	TLS     *TLS   `yaml:"tls"`
}

// Revision policies of chat sinks.
const (
	RevisionsFirst    = "first"    // only the first revision the sink sees of an alert
	RevisionsEvery    = "every"    // every revision
	RevisionsThrottle = "throttle" // at most one message per alert per Throttle
)

// ChatSpec is a Slack, Teams or Mattermost incoming webhook.
type ChatSpec struct {
	// URL carries the webhook's token: take it from a Secret.
	URL Secret `yaml:"url"`
	// Revisions is first (default), every or throttle.
	Revisions string `yaml:"revisions"`
	// Throttle is the least time between two messages about one alert
	// with Revisions throttle (default 10m).
	Throttle time.Duration `yaml:"throttle"`
}

// HECSpec is Splunk's HTTP Event Collector.
type HECSpec struct {
	// URL is the collector's base, e.g. https://splunk:8088; events go to
	// /services/collector/event below it.
	URL   Secret `yaml:"url"`
	Token Secret `yaml:"token"`
	// Index, Source and SourceType are set on every event when not empty
	// (defaults: source errnowatch, sourcetype errnowatch:alert).
	Index      string `yaml:"index"`
	Source     string `yaml:"source"`
	SourceType string `yaml:"sourceType"`
	TLS        *TLS   `yaml:"tls"`
}

// Syslog payload formats.
const (
	FormatCEF  = "cef"
	FormatJSON = "json"
)

// SyslogSpec is RFC 5424 syslog over TCP (RFC 6587 octet counting) or TLS
// (RFC 5425).
type SyslogSpec struct {
	// Address is host:port.
	Address string `yaml:"address"`
	// TLS, when set, connects with TLS (RFC 5425).
	TLS *TLS `yaml:"tls"`
	// Format of the MSG part: cef (default) or json.
	Format string `yaml:"format"`
	// Facility is a syslog facility name (default auth).
	Facility string `yaml:"facility"`
	// AppName is the APP-NAME field (default errnowatch).
	AppName string `yaml:"appName"`
}

// OTLPSpec is OTLP logs over gRPC.
type OTLPSpec struct {
	// Endpoint is host:port of the OTLP gRPC receiver.
	Endpoint string `yaml:"endpoint"`
	// Insecure sends without TLS (only for a receiver on the same node or
	// a mesh that encrypts).
	Insecure bool `yaml:"insecure"`
	TLS      *TLS `yaml:"tls"`
	// Headers are sent with every export, e.g. an authorization token:
	// values are Secrets.
	Headers map[string]Secret `yaml:"headers"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ParseConfig reads and checks a sinks file. Errors name the field, e.g.
// sinks[1] "soc".syslog.address.
func ParseConfig(r io.Reader) (*Config, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read sinks config: %w", err)
	}
	if len(b) > maxConfigBytes {
		return nil, fmt.Errorf("sinks config is over %d bytes", maxConfigBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse sinks config: %w", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// LoadConfig reads the sinks file at path.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open sinks config: %w", err)
	}
	defer f.Close()
	c, err := ParseConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func (c *Config) validate() error {
	if len(c.Sinks) > maxSinks {
		return fmt.Errorf("sinks: %d sinks, at most %d", len(c.Sinks), maxSinks)
	}
	seen := map[string]bool{}
	for i := range c.Sinks {
		s := &c.Sinks[i]
		field := fmt.Sprintf("sinks[%d]", i)
		if !nameRE.MatchString(s.Name) {
			return fmt.Errorf("%s.name: %q must be 1-63 lowercase letters, digits or '-'", field, s.Name)
		}
		field = fmt.Sprintf("sinks[%d] %q", i, s.Name)
		if seen[s.Name] {
			return fmt.Errorf("%s.name: used by an earlier sink", field)
		}
		seen[s.Name] = true
		if err := s.validate(field); err != nil {
			return err
		}
	}
	return nil
}

func (s *Spec) validate(field string) error {
	switch s.StartAt {
	case "":
		s.StartAt = "end"
	case "end", "beginning":
	default:
		return fmt.Errorf("%s.startAt: %q, want end or beginning", field, s.StartAt)
	}
	if s.BatchSize == 0 {
		s.BatchSize = 100
	}
	if s.BatchSize < 0 || s.BatchSize > maxBatch {
		return fmt.Errorf("%s.batchSize: %d, want 1 to %d", field, s.BatchSize, maxBatch)
	}
	if s.Timeout == 0 {
		s.Timeout = 10 * time.Second
	}
	if s.Timeout < 0 {
		return fmt.Errorf("%s.timeout: must be positive", field)
	}
	if s.Retry.Initial == 0 {
		s.Retry.Initial = 500 * time.Millisecond
	}
	if s.Retry.Max == 0 {
		s.Retry.Max = time.Minute
	}
	if s.Retry.Initial < 0 || s.Retry.Max < s.Retry.Initial {
		return fmt.Errorf("%s.retry: want 0 < initial <= max, got initial %s max %s", field, s.Retry.Initial, s.Retry.Max)
	}
	if s.Retry.MaxAttempts < 0 {
		return fmt.Errorf("%s.retry.maxAttempts: must not be negative", field)
	}
	if s.MaxMessageBytes == 0 {
		s.MaxMessageBytes = 16384
		if s.Type == TypeSyslog {
			s.MaxMessageBytes = 8192
		}
	}
	if s.MaxMessageBytes < 1024 || s.MaxMessageBytes > 1<<20 {
		return fmt.Errorf("%s.maxMessageBytes: %d, want 1024 to 1048576", field, s.MaxMessageBytes)
	}
	if s.Filter.MinSeverity == alert.SeverityUnknown {
		s.Filter.MinSeverity = alert.SeverityInfo
	}
	blocks := map[string]bool{"webhook": s.Webhook != nil, "chat": s.Chat != nil, "splunkHec": s.SplunkHEC != nil,
		"syslog": s.Syslog != nil, "otlp": s.OTLP != nil}
	want := map[string]string{TypeWebhook: "webhook", TypeSlack: "chat", TypeTeams: "chat", TypeMattermost: "chat",
		TypeSplunkHEC: "splunkHec", TypeSyslog: "syslog", TypeOTLP: "otlp"}[s.Type]
	if want == "" {
		return fmt.Errorf("%s.type: %q, want one of webhook, slack, teams, mattermost, splunk-hec, syslog, otlp", field, s.Type)
	}
	for b, set := range blocks {
		if set && b != want {
			return fmt.Errorf("%s.%s: not used by a sink of type %s (configure %s: instead)", field, b, s.Type, want)
		}
	}
	if !blocks[want] {
		return fmt.Errorf("%s.%s: missing: a sink of type %s needs it", field, want, s.Type)
	}
	switch want {
	case "webhook":
		return checkURL(field+".webhook.url", &s.Webhook.URL)
	case "chat":
		return s.Chat.validate(field + ".chat")
	case "splunkHec":
		if !s.SplunkHEC.Token.isSet() {
			return fmt.Errorf("%s.splunkHec.token: missing (take it from a Secret: file or env)", field)
		}
		return checkURL(field+".splunkHec.url", &s.SplunkHEC.URL)
	case "syslog":
		return s.Syslog.validate(field + ".syslog")
	default:
		return s.OTLP.validate(field + ".otlp")
	}
}

func (c *ChatSpec) validate(field string) error {
	switch c.Revisions {
	case "":
		c.Revisions = RevisionsFirst
	case RevisionsFirst, RevisionsEvery, RevisionsThrottle:
	default:
		return fmt.Errorf("%s.revisions: %q, want first, every or throttle", field, c.Revisions)
	}
	if c.Throttle == 0 {
		c.Throttle = 10 * time.Minute
	}
	if c.Throttle < time.Second {
		return fmt.Errorf("%s.throttle: %s, want at least 1s", field, c.Throttle)
	}
	return checkURL(field+".url", &c.URL)
}

// checkURL checks a URL given as a plain value now; one from a file or env
// is checked when the sink starts.
func checkURL(field string, s *Secret) error {
	if !s.isSet() {
		return fmt.Errorf("%s: missing", field)
	}
	if s.Value == "" {
		return nil
	}
	_, err := parseURL(field, s.Value)
	return err
}

func parseURL(field, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse echoes the URL, and it may hold a token.
		return nil, fmt.Errorf("%s: not a URL", field)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s: want an http:// or https:// URL with a host", field)
	}
	return u, nil
}

func (s *SyslogSpec) validate(field string) error {
	if _, _, err := net.SplitHostPort(s.Address); err != nil || s.Address == "" {
		return fmt.Errorf("%s.address: %q, want host:port", field, s.Address)
	}
	switch s.Format {
	case "":
		s.Format = FormatCEF
	case FormatCEF, FormatJSON:
	default:
		return fmt.Errorf("%s.format: %q, want cef or json", field, s.Format)
	}
	if s.Facility == "" {
		s.Facility = "auth"
	}
	if _, ok := facilities[s.Facility]; !ok {
		return fmt.Errorf("%s.facility: %q is not a syslog facility name (e.g. auth, authpriv, local0)", field, s.Facility)
	}
	if s.AppName == "" {
		s.AppName = "errnowatch"
	}
	if len(s.AppName) > 48 || strings.IndexFunc(s.AppName, func(r rune) bool { return r <= 32 || r >= 127 }) >= 0 {
		return fmt.Errorf("%s.appName: want 1-48 printable ASCII characters without spaces", field)
	}
	return nil
}

func (o *OTLPSpec) validate(field string) error {
	if _, _, err := net.SplitHostPort(o.Endpoint); err != nil || o.Endpoint == "" {
		return fmt.Errorf("%s.endpoint: %q, want host:port", field, o.Endpoint)
	}
	if o.Insecure && o.TLS != nil {
		return fmt.Errorf("%s: insecure and tls exclude each other", field)
	}
	for k, v := range o.Headers {
		if k == "" || strings.ToLower(k) != k {
			return fmt.Errorf("%s.headers: %q, header names must be lowercase (gRPC metadata)", field, k)
		}
		if !v.isSet() {
			return fmt.Errorf("%s.headers.%s: empty", field, k)
		}
	}
	return nil
}
