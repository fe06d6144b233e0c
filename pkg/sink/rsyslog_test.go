package sink

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startRsyslog runs a private rsyslogd (Debian's rsyslog, in DEPS_TEST)
// with its own configuration: imtcp on a loopback port, every message
// written to a file as APP-NAME, MSGID, STRUCTURED-DATA and MSG, fields that
// rsyslog's own RFC 5424 parser extracted. It returns the address and the
// file.
func startRsyslog(t *testing.T) (addr, out string) {
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		bin = "/usr/sbin/rsyslogd"
		if _, serr := os.Stat(bin); serr != nil {
			t.Fatalf("rsyslogd is missing: install Debian's rsyslog (make deps does; it is in DEPS_TEST): %v", err)
		}
	}
	dir := t.TempDir()
	addr = freePort(t)
	_, port, _ := net.SplitHostPort(addr)
	out = filepath.Join(dir, "messages")
	conf := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`
global(workDirectory="%[1]s")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="%[2]s")
template(name="fields" type="string" string="%%app-name%%<SEP>%%msgid%%<SEP>%%structured-data%%<SEP>%%msg%%\n")
*.* action(type="omfile" file="%[3]s" template="fields")
`, dir, port, out)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr, out
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd does not listen on %s: %v\n%s", addr, err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func TestSyslogCEFToRsyslog(t *testing.T) {
	addr, out := startRsyslog(t)
	st := openStore(t)
	start(t, st, fmt.Sprintf(`
sinks:
- name: rsyslog
  type: syslog
  startAt: beginning
  syslog: {address: "%s", format: cef, facility: local3}
`, addr), Options{})
	h := hostile()
	alerts := append(gen(200, 59), h.Alert)
	insert(t, st, alerts)
	eventually(t, 20*time.Second, "60 messages in rsyslog's file", func() bool { return len(readLines(out)) >= 60 })
	lines := readLines(out)
	if len(lines) != 60 {
		t.Fatalf("%d lines, want 60", len(lines))
	}
	var found bool
	for _, l := range lines {
		f := strings.SplitN(l, "<SEP>", 4)
		if len(f) != 4 || f[0] != "errnowatch" || !strings.HasPrefix(f[1], "rule-") || !sdRE.MatchString(f[2]) {
			t.Fatalf("rsyslog did not parse an RFC 5424 message with our SD element: %q", l)
		}
		if !strings.Contains(f[2], `id="`+h.ID+`"`) {
			continue
		}
		found = true
		if !cefRE.MatchString(f[3]) {
			t.Errorf("CEF payload as rsyslog stored it does not parse: %q", f[3])
		}
		if !strings.Contains(f[2], `pod="pwn-<!channel>-@here-`+"`x`"+`"`) || !strings.Contains(f[3], `cs1=ns|a\=b\\`) {
			t.Errorf("hostile fields not as escaped: %q", l)
		}
	}
	if !found {
		t.Fatalf("the hostile alert's message is missing")
	}
}
