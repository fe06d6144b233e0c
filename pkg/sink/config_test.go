package sink

import (
	"strings"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
)

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`sinks: [{name: Bad_Name, type: webhook}]`, `sinks[0].name`},
		{`sinks: [{name: a, type: webhook, webhook: {url: "https://x.example"}}, {name: a, type: otlp, otlp: {endpoint: "x:4317"}}]`, `sinks[1] "a".name: used by an earlier sink`},
		{`sinks: [{name: a, type: pager}]`, `sinks[0] "a".type: "pager"`},
		{`sinks: [{name: a, type: slack}]`, `sinks[0] "a".chat: missing`},
		{`sinks: [{name: a, type: slack, chat: {url: "https://x.example"}, syslog: {address: "x:1"}}]`, `sinks[0] "a".syslog: not used by a sink of type slack`},
		{`sinks: [{name: a, type: slack, chat: {url: "ftp://x"}}]`, `sinks[0] "a".chat.url: want an http:// or https:// URL`},
		{`sinks: [{name: a, type: slack, chat: {url: "https://x.example", revisions: some}}]`, `sinks[0] "a".chat.revisions`},
		{`sinks: [{name: a, type: syslog, syslog: {address: "nohost"}}]`, `sinks[0] "a".syslog.address`},
		{`sinks: [{name: a, type: syslog, syslog: {address: "h:514", facility: lokal0}}]`, `sinks[0] "a".syslog.facility`},
		{`sinks: [{name: a, type: syslog, syslog: {address: "h:514", format: leef}}]`, `sinks[0] "a".syslog.format`},
		{`sinks: [{name: a, type: splunk-hec, splunkHec: {url: "https://s:8088"}}]`, `sinks[0] "a".splunkHec.token: missing`},
		{`sinks: [{name: a, type: otlp, otlp: {endpoint: "x:4317", headers: {Authorization: {env: X}}}}]`, `sinks[0] "a".otlp.headers`},
		{`sinks: [{name: a, type: otlp, batchSize: 5000, otlp: {endpoint: "x:4317"}}]`, `sinks[0] "a".batchSize`},
		{`sinks: [{name: a, type: otlp, retry: {initial: 1m, max: 1s}, otlp: {endpoint: "x:4317"}}]`, `sinks[0] "a".retry`},
		{`sinks: [{name: a, type: otlp, filter: {minSeverity: urgent}, otlp: {endpoint: "x:4317"}}]`, `unknown severity "urgent"`},
		{`sinks: [{name: a, type: otlp, otlp: {endpont: "x:4317"}}]`, `field endpont not found`},
	} {
		_, err := ParseConfig(strings.NewReader(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n  err = %v\n  want it to say %q", tc.doc, err, tc.want)
		}
	}
}

func TestConfigDefaultsAndDurations(t *testing.T) {
	cfg := parse(t, `
sinks:
- name: chat
  type: mattermost
  filter: {minSeverity: High}
  chat: {url: {file: /run/secret/url}, revisions: throttle, throttle: 15m}
- name: syslog
  type: syslog
  syslog: {address: "[::1]:6514"}
`)
	c, s := cfg.Sinks[0], cfg.Sinks[1]
	if c.Chat.Throttle != 15*time.Minute || c.Filter.MinSeverity != alert.SeverityHigh || c.StartAt != "end" ||
		c.BatchSize != 100 || c.Retry.Initial != 500*time.Millisecond || c.Retry.Max != time.Minute || c.MaxMessageBytes != 16384 {
		t.Errorf("chat sink defaults: %+v", c)
	}
	if s.Syslog.Format != FormatCEF || s.Syslog.Facility != "auth" || s.MaxMessageBytes != 8192 ||
		s.Filter.MinSeverity != alert.SeverityInfo {
		t.Errorf("syslog sink defaults: %+v %+v", s, s.Syslog)
	}
}

func TestSecretResolution(t *testing.T) {
	f := writeSecret(t, "  s3cret  ")
	if v, err := (&Secret{File: f}).resolve("x"); err != nil || v != "s3cret" {
		t.Errorf("file secret = %q, %v", v, err)
	}
	t.Setenv("SINK_TEST_SECRET", "from-env")
	if v, err := (&Secret{Env: "SINK_TEST_SECRET"}).resolve("x"); err != nil || v != "from-env" {
		t.Errorf("env secret = %q, %v", v, err)
	}
	if _, err := (&Secret{Value: "a", Env: "B"}).resolve("sinks[0].x"); err == nil || !strings.Contains(err.Error(), "sinks[0].x: set exactly one") {
		t.Errorf("two sources: %v", err)
	}
	if _, err := (&Secret{File: "/nonexistent/secret"}).resolve("f"); err == nil || !strings.Contains(err.Error(), "mount the Secret") {
		t.Errorf("missing file: %v", err)
	}
}
