package collector_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/collector"
	"github.com/errnowatch/errnowatch/pkg/collector/client"
	"github.com/errnowatch/errnowatch/pkg/collector/collectortest"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

// bulky returns n valid alerts of about 40 KiB each: 300 counts with long
// names, within every field bound.
func bulky(start, n int) []alert.Alert {
	as := storetest.Alerts(storetest.DefaultShape, base, start, n)
	for i := range as {
		as[i].Counts = make([]alert.Count, 300)
		for j := range as[i].Counts {
			as[i].Counts[j] = alert.Count{Syscall: strings.Repeat("s", 60) + fmt.Sprint(j), Errno: strings.Repeat("E", 60), Count: 1}
		}
		as[i].Total = 300
	}
	return as
}

func TestOversizeAlertIsInvalidArgument(t *testing.T) {
	reg := prometheus.NewRegistry()
	col := collectortest.Start(t, collector.Config{Registerer: reg}, nil, true, "")
	c := dial(t, client.Options{Address: col.Socket})
	huge := storetest.Alerts(storetest.DefaultShape, base, 0, 2)
	huge[1].Message = strings.Repeat("x", 1<<20)
	_, err := publish(t, c, huge)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "alert 1:") ||
		!strings.Contains(status.Convert(err).Message(), "at most 65536") {
		t.Fatalf("batch with a 1 MiB alert: %v, want INVALID_ARGUMENT naming alert 1 and the bound", err)
	}
	if got := refused(t, reg, "alert_too_large"); got != 1 {
		t.Fatalf("refused{alert_too_large} = %v, want 1", got)
	}
	long := storetest.Alerts(storetest.DefaultShape, base, 2, 1)
	long[0].Namespace = strings.Repeat("n", 64)
	if _, err := publish(t, c, long); status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "namespace is 64 bytes") {
		t.Fatalf("alert with a 64-byte namespace: %v, want INVALID_ARGUMENT", err)
	}
	if n, _ := col.Store.LastSeq(context.Background()); n != 0 {
		t.Fatalf("store at sequence %d after refused batches, want 0", n)
	}
}

func TestListPageKeepsToItsByteBudget(t *testing.T) {
	const budget = 256 << 10
	col := collectortest.Start(t, collector.Config{PageBytes: budget}, nil, true, "")
	c := dial(t, client.Options{Address: col.Socket})
	data := bulky(0, 60)
	if _, err := publish(t, c, data[:30], data[30:]); err != nil {
		t.Fatal(err)
	}
	one := proto.Size(&errnowatchv1.StoredAlert{Alert: toProto(data[:1])[0]})
	req := &errnowatchv1.ListAlertsRequest{PageSize: 1000}
	seen := map[string]bool{}
	pages := 0
	for {
		resp, err := c.Query.ListAlerts(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if n := proto.Size(resp); n > budget+one {
			t.Fatalf("page %d is %d bytes, want at most the %d budget (plus the alert that crossed it)", pages, n, budget)
		}
		for _, a := range resp.Alerts {
			if seen[a.Alert.Id] {
				t.Fatalf("alert %s on two pages", a.Alert.Id)
			}
			seen[a.Alert.Id] = true
		}
		if resp.NextPageToken == "" {
			break
		}
		req.PageToken = resp.NextPageToken
	}
	if len(seen) != 60 || pages < 60*one/budget {
		t.Fatalf("%d alerts on %d pages, want all 60 on at least %d pages of ~%d-byte alerts", len(seen), pages, 60*one/budget, one)
	}
}

func TestQueryOverItsDeadlineIsResourceExhausted(t *testing.T) {
	reg := prometheus.NewRegistry()
	col := collectortest.Start(t, collector.Config{Registerer: reg, QueryTimeout: time.Nanosecond}, nil, true, "")
	c := dial(t, client.Options{Address: col.Socket})
	_, err := c.Query.ListAlerts(context.Background(), &errnowatchv1.ListAlertsRequest{})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "narrow the filter") {
		t.Fatalf("list with a 1ns query deadline: %v, want RESOURCE_EXHAUSTED saying what to do", err)
	}
	if got := refused(t, reg, "query_deadline"); got != 1 {
		t.Fatalf("refused{query_deadline} = %v, want 1", got)
	}
}

// TestStreamNotReadIsCutOff: a subscriber that stops reading holds no
// stream (and no goroutine) past the send deadline.
func TestStreamNotReadIsCutOff(t *testing.T) {
	reg := prometheus.NewRegistry()
	col := collectortest.Start(t, collector.Config{Registerer: reg, SendTimeout: 200 * time.Millisecond}, nil, true, "")
	c := dial(t, client.Options{Address: col.Socket})
	// Far more than the HTTP/2 windows hold, so sends block.
	data := bulky(0, 400)
	for i := 0; i < len(data); i += 100 {
		if _, err := publish(t, c, data[i:i+100]); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := c.Query.StreamAlerts(ctx, &errnowatchv1.StreamAlertsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Read nothing until the collector has given up on the stream.
	for refused(t, reg, "send_timeout") == 0 {
		time.Sleep(50 * time.Millisecond)
	}
	n := 0
	for {
		_, err := s.Recv()
		if err == nil {
			n++
			continue
		}
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "not read") {
			t.Fatalf("stream after %d alerts: %v, want RESOURCE_EXHAUSTED saying it was not read", n, err)
		}
		break
	}
	if n >= len(data) {
		t.Fatalf("received all %d alerts; the stream was never blocked", n)
	}
}

func TestUnixSocketNeedsAPrivateDirectory(t *testing.T) {
	st := collectortest.OpenStore(t, t.TempDir())
	shared := t.TempDir()
	if err := os.Chmod(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	srv, err := collector.New(collector.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Start(context.Background(), collector.Listen{UnixSocket: filepath.Join(shared, "c.sock")})
	if err == nil || !strings.Contains(err.Error(), "mode 0755") {
		srv.Close()
		t.Fatalf("socket in a 0755 directory: %v, want a refusal naming the mode", err)
	}
	// A directory that does not exist yet is made 0700.
	fresh := filepath.Join(t.TempDir(), "run")
	srv2, err := collector.New(collector.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv2.Start(context.Background(), collector.Listen{UnixSocket: filepath.Join(fresh, "c.sock")}); err != nil {
		t.Fatalf("socket in a new directory: %v", err)
	}
	defer srv2.Close()
	fi, err := os.Stat(fresh)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
}

// TestUnixSocketRefusesOtherUsers: with the directory and socket opened to
// everyone by mistake, a peer that is neither root nor the collector's user
// is still refused, on the kernel's word (SO_PEERCRED).
func TestUnixSocketRefusesOtherUsers(t *testing.T) {
	if os.Getenv("EW_UNIX_CLIENT") != "" {
		c, err := client.Dial(client.Options{Address: os.Getenv("EW_UNIX_CLIENT")})
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = c.Query.ListAlerts(ctx, &errnowatchv1.ListAlertsRequest{})
			c.Close()
		}
		fmt.Printf("code=%s\n", status.Code(err))
		return
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test runs as root (it starts a client as another user)")
	}
	reg := prometheus.NewRegistry()
	col := collectortest.Start(t, collector.Config{Registerer: reg}, nil, true, "")
	sock := strings.TrimPrefix(col.Socket, "unix://")
	for _, p := range []string{filepath.Dir(sock), sock} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	// The test binary's own directory is root's; the other user runs a
	// copy it may read.
	binDir, err := os.MkdirTemp("", "ew-client-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	bin := filepath.Join(binDir, "client.test")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(uid uint32) string {
		cmd := exec.Command(bin, "-test.run=^TestUnixSocketRefusesOtherUsers$")
		cmd.Dir = "/"
		cmd.Env = append(os.Environ(), "EW_UNIX_CLIENT="+col.Socket)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("client as uid %d: %v\n%s", uid, err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(l, "code="); ok {
				return v
			}
		}
		t.Fatalf("client as uid %d printed no result:\n%s", uid, out)
		return ""
	}
	if got := run(65534); got != codes.Unavailable.String() {
		t.Fatalf("client as nobody: %s, want Unavailable (connection refused at handshake)", got)
	}
	if got := refused(t, reg, "unauthenticated"); got < 1 {
		t.Fatalf("refused{unauthenticated} = %v after a foreign peer, want at least 1", got)
	}
	if got := run(0); got != codes.OK.String() {
		t.Fatalf("client as root: %s, want OK", got)
	}
}
