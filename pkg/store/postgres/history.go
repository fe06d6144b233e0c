package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/errnowatch/errnowatch/pkg/store"
)

// History implements store.HistoryReader.
func (s *Store) History(ctx context.Context, id string) ([]store.Revision, error) {
	leave, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
	var h []byte
	err = s.pool.QueryRow(ctx, `SELECT history FROM alerts WHERE id = $1`, id).Scan(&h)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read alert history: %w", err)
	}
	return store.DecodeHistory(h)
}
