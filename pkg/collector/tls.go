package collector

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
)

// serverTLS builds the TLS config of a TCP listener: TLS 1.2 or later, the
// key pair re-read when its files change, client certificates required and
// verified when a client CA is given.
func serverTLS(files TLSFiles, log *zap.Logger) (*tls.Config, error) {
	r := &certReloader{certFile: files.CertFile, keyFile: files.KeyFile, log: log}
	if err := r.load(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.get,
	}
	if files.ClientCAFile != "" {
		pem, err := os.ReadFile(files.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s holds no PEM certificate", files.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// certReloader serves the current key pair and reloads it when either file's
// modification time changes (cert-manager and kubelet rotate them in place).
type certReloader struct {
	certFile, keyFile string
	log               *zap.Logger

	mu              sync.Mutex
	cert            *tls.Certificate
	certMod, keyMod time.Time
}

func modTime(path string) (time.Time, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

func (r *certReloader) load() error {
	cm, err := modTime(r.certFile)
	if err != nil {
		return fmt.Errorf("stat TLS certificate: %w", err)
	}
	km, err := modTime(r.keyFile)
	if err != nil {
		return fmt.Errorf("stat TLS key: %w", err)
	}
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS key pair %s, %s: %w", r.certFile, r.keyFile, err)
	}
	r.mu.Lock()
	r.cert, r.certMod, r.keyMod = &c, cm, km
	r.mu.Unlock()
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cm, err1 := modTime(r.certFile)
	km, err2 := modTime(r.keyFile)
	r.mu.Lock()
	changed := err1 == nil && err2 == nil && (!cm.Equal(r.certMod) || !km.Equal(r.keyMod))
	cert := r.cert
	r.mu.Unlock()
	if changed {
		// A half-written pair fails to load; keep serving the old one and
		// try again on the next handshake.
		if err := r.load(); err != nil {
			r.log.Warn("TLS key pair changed but does not load; keeping the previous one", zap.Error(err))
			return cert, nil
		}
		r.mu.Lock()
		cert = r.cert
		r.mu.Unlock()
		r.log.Info("reloaded TLS key pair", zap.String("cert", r.certFile))
	}
	return cert, nil
}
