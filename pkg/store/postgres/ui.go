package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/errnowatch/errnowatch/pkg/store"
)

var _ store.UIReader = (*Store)(nil)

// Rollups implements store.UIReader.
func (s *Store) Rollups(ctx context.Context, q store.RollupQuery) ([]store.RollupRow, error) {
	leave, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
	if err := q.Check(); err != nil {
		return nil, err
	}
	query, args := store.RollupSQL(q, func(i int) string { return "$" + strconv.Itoa(i) })
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read rollups: %w", err)
	}
	defer rows.Close()
	return store.ReadRollups(q, rows)
}

// Get implements store.UIReader.
func (s *Store) Get(ctx context.Context, id string) (store.Stored, bool, error) {
	leave, err := s.enter()
	if err != nil {
		return store.Stored{}, false, err
	}
	defer leave()
	rows, err := s.pool.Query(ctx, `SELECT `+selectCols+` FROM alerts WHERE id = $1`, id)
	if err != nil {
		return store.Stored{}, false, fmt.Errorf("get alert: %w", err)
	}
	sc, err := s.scanStored(rows)
	if err != nil {
		return store.Stored{}, false, err
	}
	if len(sc.out) == 0 {
		if sc.rows > 0 {
			return store.Stored{}, false, errors.New("get alert: the stored alert does not decode (see the collector's log)")
		}
		return store.Stored{}, false, nil
	}
	return sc.out[0], true, nil
}
