// Package collectortest starts real collectors for tests: a throwaway PKI
// (CA, server and client certificates written as PEM files) and a collector
// over a SQLite store in a temporary directory, listening on 127.0.0.1 with
// TLS and/or a unix socket. Delivery and CLI tests use it to talk to a real
// collector.
package collectortest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/collector"
	"github.com/errnowatch/errnowatch/pkg/collector/client"
	"github.com/errnowatch/errnowatch/pkg/store/sqlite"
)

// PKI is a CA with a server certificate for 127.0.0.1/localhost and a
// client certificate, all as files in a test's temporary directory.
type PKI struct {
	Dir                           string
	CAFile                        string
	ServerCertFile, ServerKeyFile string
	ClientCertFile, ClientKeyFile string
}

// NewPKI makes a fresh CA and certificates; the client certificate's
// common name is clientName.
func NewPKI(t testing.TB, clientName string) *PKI {
	t.Helper()
	dir := t.TempDir()
	p := &PKI{
		Dir:            dir,
		CAFile:         filepath.Join(dir, "ca.pem"),
		ServerCertFile: filepath.Join(dir, "server.pem"),
		ServerKeyFile:  filepath.Join(dir, "server-key.pem"),
		ClientCertFile: filepath.Join(dir, "client.pem"),
		ClientKeyFile:  filepath.Join(dir, "client-key.pem"),
	}
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "errnowatch test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("create CA: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, p.CAFile, "CERTIFICATE", caDER)

	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, certFile, keyFile string, ips []net.IP, dns []string) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
			DNSNames:     dns,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatalf("issue %s: %v", cn, err)
		}
		writePEM(t, certFile, "CERTIFICATE", der)
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	}
	issue(2, "errnowatch-collector", x509.ExtKeyUsageServerAuth, p.ServerCertFile, p.ServerKeyFile,
		[]net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"})
	issue(3, clientName, x509.ExtKeyUsageClientAuth, p.ClientCertFile, p.ClientKeyFile, nil, nil)
	return p
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return k
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// ServerTLS is the collector side of the PKI, with mutual TLS.
func (p *PKI) ServerTLS() collector.TLSFiles {
	return collector.TLSFiles{CertFile: p.ServerCertFile, KeyFile: p.ServerKeyFile, ClientCAFile: p.CAFile}
}

// ClientOptions dials addr as the PKI's client.
func (p *PKI) ClientOptions(addr string) client.Options {
	return client.Options{Address: addr, CAFile: p.CAFile, CertFile: p.ClientCertFile, KeyFile: p.ClientKeyFile}
}

// OpenStore opens dir/alerts.db, closed at the end of the test.
func OpenStore(t testing.TB, dir string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "alerts.db"), sqlite.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Collector is a running collector and its store.
type Collector struct {
	*collector.Server
	Store *sqlite.Store
	// Addr is the TLS address ("127.0.0.1:port"), empty without TCP.
	Addr string
	// Socket is "unix://path", empty without a socket.
	Socket string
}

// Start runs a collector over a new SQLite store in dir (a new temporary
// directory when empty). With a nil cfg.Store it opens one; when pki is
// non-nil it listens on 127.0.0.1 with mutual TLS; when socket is true it
// also listens on a unix socket. Everything stops at the end of the test.
func Start(t testing.TB, cfg collector.Config, pki *PKI, socket bool, dir string) *Collector {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	c := &Collector{}
	if cfg.Store == nil {
		c.Store = OpenStore(t, dir)
		cfg.Store = c.Store
	}
	srv, err := collector.New(cfg)
	if err != nil {
		t.Fatalf("new collector: %v", err)
	}
	var l collector.Listen
	if pki != nil {
		l.Address = "127.0.0.1:0"
		l.TLS = pki.ServerTLS()
	}
	if socket {
		// Socket paths are limited to ~108 bytes; test temp dirs can be
		// longer.
		sdir, err := os.MkdirTemp("", "ew-sock-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(sdir) })
		l.UnixSocket = filepath.Join(sdir, "collector.sock")
		c.Socket = "unix://" + l.UnixSocket
	}
	if err := srv.Start(context.Background(), l); err != nil {
		t.Fatalf("start collector: %v", err)
	}
	// Registered after the store's cleanup, so it runs first.
	t.Cleanup(func() { srv.Close() })
	c.Server = srv
	if pki != nil {
		c.Addr = srv.Addr().String()
	}
	return c
}
