package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/collector"
	"github.com/errnowatch/errnowatch/pkg/store/sqlite"
)

// Embedded is a collector inside the agent's process, for one host with no
// cluster: its SQLite store and its unix socket live in one directory, and
// `errnowatch alerts ... --server unix://DIR/collector.sock` queries it.
type Embedded struct {
	Socket string
	server *collector.Server
	store  *sqlite.Store
}

// StartEmbedded starts a collector with its store in dir.
func StartEmbedded(ctx context.Context, dir string, log *zap.Logger) (*Embedded, error) {
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
	return &Embedded{Socket: sock, server: srv, store: st}, nil
}

// Address is the collector's address for clients.
func (e *Embedded) Address() string { return "unix://" + e.Socket }

// Close stops the collector and closes its store.
func (e *Embedded) Close() error {
	if e == nil {
		return nil
	}
	return errors.Join(e.server.Close(), e.store.Close())
}
