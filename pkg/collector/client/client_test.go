package client_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/auth"
	"github.com/errnowatch/errnowatch/pkg/collector"
	"github.com/errnowatch/errnowatch/pkg/collector/client"
	"github.com/errnowatch/errnowatch/pkg/collector/collectortest"
)

// tokenLog accepts any token and remembers which it saw, so the test sees
// what the client sent over a real TLS connection.
type tokenLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *tokenLog) Authenticate(_ context.Context, token string) (auth.Identity, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, token)
	return auth.Identity{Username: "system:serviceaccount:errnowatch:agent"}, nil
}

func (l *tokenLog) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.seen) == 0 {
		return ""
	}
	return l.seen[len(l.seen)-1]
}

func TestTokenFileIsReReadWhenRotated(t *testing.T) {
	pki := collectortest.NewPKI(t, "unused")
	log := &tokenLog{}
	srv, err := collector.New(collector.Config{Store: collectortest.OpenStore(t, t.TempDir()), Authenticator: log})
	if err != nil {
		t.Fatal(err)
	}
	files := pki.ServerTLS()
	files.ClientCAFile = ""
	if err := srv.Start(context.Background(), collector.Listen{Address: "127.0.0.1:0", TLS: files}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte("first-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(client.Options{Address: srv.Addr().String(), CAFile: pki.CAFile, TokenFile: tokFile})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	list := func() {
		t.Helper()
		if _, err := c.Query.ListAlerts(context.Background(), &errnowatchv1.ListAlertsRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	list()
	if got := log.last(); got != "first-token" {
		t.Fatalf("collector saw token %q, want first-token (trimmed)", got)
	}
	// The kubelet rotates projected tokens by replacing the file.
	if err := os.WriteFile(tokFile, []byte("second-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(tokFile, later, later); err != nil {
		t.Fatal(err)
	}
	list()
	if got := log.last(); got != "second-token" {
		t.Fatalf("after rotation the collector saw %q, want second-token", got)
	}
	// An emptied token file fails the call on the client, before sending.
	if err := os.WriteFile(tokFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	evenLater := later.Add(time.Hour)
	if err := os.Chtimes(tokFile, evenLater, evenLater); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Query.ListAlerts(context.Background(), &errnowatchv1.ListAlertsRequest{}); status.Code(err) != codes.Unavailable && status.Code(err) != codes.Unauthenticated {
		t.Fatalf("empty token file: %v, want the call to fail", err)
	}
}

func TestDialChecksItsOptions(t *testing.T) {
	pki := collectortest.NewPKI(t, "x")
	for name, o := range map[string]client.Options{
		"no address":        {},
		"cert without key":  {Address: "127.0.0.1:1", CertFile: pki.ClientCertFile},
		"missing CA file":   {Address: "127.0.0.1:1", CAFile: filepath.Join(t.TempDir(), "none.pem")},
		"CA file not PEM":   {Address: "127.0.0.1:1", CAFile: pki.ClientKeyFile + ".nope"},
		"key does not load": {Address: "127.0.0.1:1", CertFile: pki.ClientCertFile, KeyFile: pki.ServerKeyFile},
	} {
		if c, err := client.Dial(o); err == nil {
			c.Close()
			t.Errorf("%s: Dial succeeded", name)
		}
	}
}

// TestCAFileIsReReadWhenRotated: a client whose CA file does not (yet) hold
// the collector's CA fails; once the file is updated (a rotated CA in a
// ConfigMap), the same client connects, without being made anew.
func TestCAFileIsReReadWhenRotated(t *testing.T) {
	pki := collectortest.NewPKI(t, "client")
	other := collectortest.NewPKI(t, "client")
	col := collectortest.Start(t, collector.Config{}, pki, false, "")
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	copyFile := func(from string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		// Write and rename, as the kubelet updates a ConfigMap volume.
		tmp := caFile + ".new"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, caFile); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(other.CAFile)
	opts := pki.ClientOptions(col.Addr)
	opts.CAFile = caFile
	opts.DialOptions = []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1, MaxDelay: 10 * time.Millisecond}})}
	c, err := client.Dial(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Query.ListAlerts(ctx, &errnowatchv1.ListAlertsRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("list with another CA: %v, want UNAVAILABLE", err)
	}
	copyFile(pki.CAFile)
	for {
		_, err := c.Query.ListAlerts(ctx, &errnowatchv1.ListAlertsRequest{})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("list after the CA file was updated: %v", err)
		}
	}
}
