// Package embedded runs a collector inside another process (the agent's
// standalone mode, `errnowatch agent --embedded-collector DIR`): a SQLite
// store and a unix socket in one directory, for one host with no cluster.
// It lives on the collector's side of the tree so that a node agent links
// the collector server and SQLite only when its command embeds them.
package embedded

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/collector"
	"github.com/errnowatch/errnowatch/pkg/store/sqlite"
)

// Collector is a collector inside the agent's process, for one host with no
// cluster: its SQLite store and its unix socket live in one directory, and
// `errnowatch alerts ... --server unix://DIR/collector.sock` queries it.
type Collector struct {
	Socket string
	server *collector.Server
	store  *sqlite.Store
}

// Config says where the embedded collector keeps its store and socket.
type Config struct {
	// Dir holds alerts.db and collector.sock; it is made mode 0700.
	Dir string
	// Logger gets the collector's and the store's log; nil discards it.
	Logger *zap.Logger
}

// Start starts a collector with its store in cfg.Dir.
func Start(ctx context.Context, cfg Config) (*Collector, error) {
	dir, log := cfg.Dir, cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded collector: %w", err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "alerts.db"), sqlite.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("embedded collector store: %w", err)
	}
	srv, err := collector.New(collector.Config{Store: st, Logger: log})
	if err != nil {
		st.Close()
		return nil, err
	}
	sock := filepath.Join(dir, "collector.sock")
	if err := srv.Start(ctx, collector.Listen{UnixSocket: sock}); err != nil {
		st.Close()
		return nil, fmt.Errorf("embedded collector: %w", err)
	}
	return &Collector{Socket: sock, server: srv, store: st}, nil
}

// Address is the collector's address for clients.
func (e *Collector) Address() string { return "unix://" + e.Socket }

// Close stops the collector and closes its store.
func (e *Collector) Close() error {
	if e == nil {
		return nil
	}
	return errors.Join(e.server.Close(), e.store.Close())
}

// ServeUI serves the embedded collector's web UI on addr, which must be a
// loopback address: there is no API server to check tokens on one host, so
// it signs in with an access key made fresh for this run, which it returns
// for the person who started the agent (never a fixed password). Close the
// UI before the Collector.
func (c *Collector) ServeUI(addr string) (ui *collector.UIServer, accessKey string, err error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return nil, "", fmt.Errorf("web UI access key: %w", err)
	}
	key := base64.RawURLEncoding.EncodeToString(b)
	u, err := c.server.ServeUI(collector.UIListen{Address: addr, LocalKey: key})
	if err != nil {
		return nil, "", fmt.Errorf("--ui-address %s: %w", addr, err)
	}
	return u, key, nil
}
