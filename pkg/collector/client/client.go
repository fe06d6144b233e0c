// Package client dials a collector for the agent's delivery and the CLI:
// TLS or mutual TLS over TCP, or a local unix socket, with the caller's
// ServiceAccount token attached to every call and re-read when the kubelet
// rotates it. What its callers' errors mean (retry, back off, drop a
// batch) is alertpb's status vocabulary, shared with the collector.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
)

// Options says how to reach a collector.
type Options struct {
	// Address is host:port for TLS over TCP, or unix:///path/to/socket.
	Address string
	// CAFile verifies the collector's certificate; empty uses the system
	// roots.
	CAFile string
	// CertFile and KeyFile are this client's certificate for mutual TLS.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the collector's
	// certificate.
	ServerName string
	// TokenFile holds a bearer token (a projected ServiceAccount token with
	// audience errnowatch); it is re-read when it changes. Token is used
	// when TokenFile is empty.
	TokenFile string
	Token     string
	// DialOptions are appended (e.g. interceptors in tests).
	DialOptions []grpc.DialOption
}

// Client is a connection to a collector with its two services.
type Client struct {
	Conn   *grpc.ClientConn
	Ingest errnowatchv1.IngestServiceClient
	Query  errnowatchv1.QueryServiceClient
}

// Dial prepares a connection; like grpc.NewClient it connects lazily, so
// an unreachable collector shows up as UNAVAILABLE on the first call.
func Dial(opts Options) (*Client, error) {
	if opts.Address == "" {
		return nil, errors.New("no collector address: set host:port or unix:///path")
	}
	unix := strings.HasPrefix(opts.Address, "unix:")
	dial := []grpc.DialOption{
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		// Summaries of a large cluster can exceed gRPC's 4 MiB default.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20)),
	}
	if unix {
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		tlsCfg, err := clientTLS(opts)
		if err != nil {
			return nil, err
		}
		dial = append(dial, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	}
	if opts.TokenFile != "" || opts.Token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(&tokenCreds{file: opts.TokenFile, token: opts.Token, secure: !unix}))
	}
	dial = append(dial, opts.DialOptions...)
	conn, err := grpc.NewClient(opts.Address, dial...)
	if err != nil {
		return nil, fmt.Errorf("dial collector %s: %w", opts.Address, err)
	}
	return &Client{
		Conn:   conn,
		Ingest: errnowatchv1.NewIngestServiceClient(conn),
		Query:  errnowatchv1.NewQueryServiceClient(conn),
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.Conn.Close() }

func clientTLS(opts Options) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: opts.ServerName}
	if opts.CAFile != "" {
		ca := &caFile{path: opts.CAFile}
		if _, err := ca.pool(); err != nil {
			return nil, err
		}
		// The CA is re-read when its file changes, so a rotated CA (a
		// ConfigMap update) applies to the next connection without a
		// restart. Go's own verification reads RootCAs once; this does the
		// same checks (chain to the CA, the server's name) with the current
		// file.
		cfg.InsecureSkipVerify = true //nolint:gosec // verified in VerifyConnection below
		cfg.VerifyConnection = ca.verify
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("client certificate and key go together: set both or neither")
	}
	if opts.CertFile != "" {
		// Re-read on every handshake so a rotated client certificate is
		// picked up by the next connection.
		certFile, keyFile := opts.CertFile, opts.KeyFile
		if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("load client certificate: %w", err)
			}
			return &c, nil
		}
	}
	return cfg, nil
}

// tokenCreds attaches "authorization: Bearer <token>", re-reading the file
// when it changes (see unchanged).
type tokenCreds struct {
	file   string
	token  string
	secure bool

	mu    sync.Mutex
	info  os.FileInfo // of the file last read
	cache string
}

func (t *tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	tok, err := t.current()
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity keeps tokens off clear-text TCP; the unix socket
// is local.
func (t *tokenCreds) RequireTransportSecurity() bool { return t.secure }

func (t *tokenCreds) current() (string, error) {
	if t.file == "" {
		return t.token, nil
	}
	fi, err := os.Stat(t.file)
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cache != "" && unchanged(fi, t.info) {
		return t.cache, nil
	}
	b, err := os.ReadFile(t.file)
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", t.file)
	}
	t.cache, t.info = tok, fi
	return tok, nil
}

// caFile is a CA bundle re-read when its modification time or size
// changes; a file that stops parsing keeps the last good pool.
type caFile struct {
	path string

	mu   sync.Mutex
	info os.FileInfo // of the file last read
	last *x509.CertPool
}

func (c *caFile) pool() (*x509.CertPool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fi, err := os.Stat(c.path)
	if err != nil {
		if c.last != nil {
			return c.last, nil
		}
		return nil, fmt.Errorf("read collector CA: %w", err)
	}
	if c.last != nil && unchanged(fi, c.info) {
		return c.last, nil
	}
	pem, err := os.ReadFile(c.path)
	if err != nil {
		if c.last != nil {
			return c.last, nil
		}
		return nil, fmt.Errorf("read collector CA: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		if c.last != nil {
			return c.last, nil
		}
		return nil, fmt.Errorf("collector CA %s holds no PEM certificate", c.path)
	}
	c.last, c.info = p, fi
	return p, nil
}

// unchanged says whether fi is the file last read as was: the same inode
// (a ConfigMap or projected token update renames a new file into place,
// and two writes within one tick of the file system's clock can leave the
// same modification time and size), modification time and size.
func unchanged(fi, was os.FileInfo) bool {
	return was != nil && os.SameFile(fi, was) && fi.ModTime().Equal(was.ModTime()) && fi.Size() == was.Size()
}

func (c *caFile) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("collector sent no certificate")
	}
	roots, err := c.pool()
	if err != nil {
		return err
	}
	inter := x509.NewCertPool()
	for _, cert := range cs.PeerCertificates[1:] {
		inter.AddCert(cert)
	}
	_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		DNSName:       cs.ServerName,
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("collector certificate not trusted by %s: %w", c.path, err)
	}
	return nil
}
