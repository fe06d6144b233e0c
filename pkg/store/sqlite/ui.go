package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/errnowatch/errnowatch/pkg/store"
)

var _ store.UIReader = (*Store)(nil)

// Rollups implements store.UIReader.
func (s *Store) Rollups(ctx context.Context, q store.RollupQuery) ([]store.RollupRow, error) {
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	if err := q.Check(); err != nil {
		return nil, err
	}
	query, args := store.RollupSQL(q, func(int) string { return "?" })
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read rollups: %w", err)
	}
	defer rows.Close()
	return store.ReadRollups(q, rows)
}

// Get implements store.UIReader.
func (s *Store) Get(ctx context.Context, id string) (store.Stored, bool, error) {
	if s.isClosed() {
		return store.Stored{}, false, store.ErrClosed
	}
	sc, err := s.queryStored(ctx, s.rdb, `SELECT `+selectCols+` FROM alerts WHERE id = ?`, id)
	if err != nil {
		return store.Stored{}, false, fmt.Errorf("get alert: %w", err)
	}
	if len(sc.out) == 0 {
		if sc.rows > 0 {
			return store.Stored{}, false, errors.New("get alert: the stored alert does not decode (see the collector's log)")
		}
		return store.Stored{}, false, nil
	}
	return sc.out[0], true, nil
}
