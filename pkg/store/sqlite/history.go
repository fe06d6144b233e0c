package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/errnowatch/errnowatch/pkg/store"
)

// History implements store.HistoryReader.
func (s *Store) History(ctx context.Context, id string) ([]store.Revision, error) {
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	var h []byte
	err := s.rdb.QueryRowContext(ctx, `SELECT history FROM alerts WHERE id = ?`, id).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read alert history: %w", err)
	}
	return store.DecodeHistory(h)
}
