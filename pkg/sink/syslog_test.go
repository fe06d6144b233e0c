package sink

import (
	"regexp"
	"strings"
	"testing"
)

// sdRE is RFC 5424's SD-ELEMENT grammar for one element whose PARAM-VALUEs
// may hold only escaped '"', '\' and ']'.
var sdRE = regexp.MustCompile(`^\[errnowatch@32473(?: [!#-<>-\\^-~]{1,32}="(?:[^"\\\]]|\\["\\\]])*")*\]$`)

// cefRE is a CEF line whose header fields escape '|' and '\' and whose
// extension values escape '=' and '\'.
var cefRE = regexp.MustCompile(`^CEF:0\|errnowatch\|errnowatch\|1\|(?:[^|\\]|\\[|\\])*\|(?:[^|\\]|\\[|\\])*\|\d+\|` +
	`[A-Za-z0-9]+=(?:[^=\\\n\r]|\\[=\\nr])*(?: [A-Za-z0-9]+=(?:[^=\\\n\r]|\\[=\\nr])*)*$`)

func TestSyslogMessageEscapesHostileFields(t *testing.T) {
	r := hostile()
	s := &syslogSender{format: FormatCEF, facility: facilities["auth"], appName: "errnowatch", hostname: "node a", max: 8192}
	b, err := s.message(&r)
	if err != nil {
		t.Fatal(err)
	}
	m := string(b)
	// <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG
	hdr := regexp.MustCompile(`^<(\d+)>1 (\S+) (\S+) (\S+) - (\S+) `).FindStringSubmatch(m)
	if hdr == nil || hdr[1] != "37" || hdr[3] != "node_a" || hdr[5] != "rule-1" {
		t.Fatalf("header of %q: %q (want PRI 4*8+5=37, a hostname without spaces, MSGID rule-1)", m, hdr)
	}
	rest := m[len(hdr[0]):]
	end := strings.Index(rest, "] CEF:0|")
	if end < 0 {
		t.Fatalf("no SD element before the CEF payload: %q", rest)
	}
	if sd := rest[:end+1]; !sdRE.MatchString(sd) {
		t.Errorf("SD element does not parse as RFC 5424 SD-ELEMENT: %q", sd)
	}
	if cef := rest[end+2:]; !cefRE.MatchString(cef) {
		t.Errorf("CEF payload does not parse: %q", cef)
	}
	if strings.ContainsAny(m, "\n\r\x1b\u202e") {
		t.Errorf("message holds a raw line break, escape or bidi character: %q", m)
	}
}

func FuzzSyslogMessage(f *testing.F) {
	h := hostile()
	f.Add(h.Message, h.Pod, h.Namespace, h.RuleID)
	f.Add("\xff\xfe]\"\\=|", "a]b", "c\"d", "r\\")
	s := &syslogSender{format: FormatCEF, facility: 4, appName: "errnowatch", hostname: "n", max: 8192}
	f.Fuzz(func(t *testing.T, msg, pod, ns, rule string) {
		r := hostile()
		r.Message, r.Pod, r.Namespace, r.RuleID = msg, pod, ns, rule
		b, err := fit(r, s.max, s.message)
		if err != nil {
			return // too large is a counted dead letter
		}
		m := string(b)
		if len(b) > s.max || strings.ContainsAny(m, "\n\r") {
			t.Fatalf("message over the bound or with a line break: %q", m)
		}
		i := strings.Index(m, " [errnowatch@32473")
		j := strings.Index(m, "] CEF:0|")
		if i < 0 || j < i {
			t.Fatalf("no SD element: %q", m)
		}
		if !sdRE.MatchString(m[i+1 : j+1]) {
			t.Fatalf("SD element does not parse: %q", m[i+1:j+1])
		}
		if !cefRE.MatchString(m[j+2:]) {
			t.Fatalf("CEF does not parse: %q", m[j+2:])
		}
	})
}
