package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/errnowatch/errnowatch/pkg/store"
)

var _ store.SinkCursors = (*Store)(nil)

// sinkCursorsMigration (migration 4) keeps each sink's acknowledged cursor
// and its delivery lease. Leases run on the server's clock_timestamp(), so
// replicas with skewed clocks still agree on who holds one.
const sinkCursorsMigration = `CREATE TABLE sink_cursors (
		sink    text        PRIMARY KEY,
		cursor  bigint      NOT NULL,
		owner   text        NOT NULL,
		expires timestamptz NOT NULL
	);`

// ClaimSink implements store.SinkCursors. INSERT … ON CONFLICT takes the
// row lock, so two replicas claiming at once serialize and one gets no row.
func (s *Store) ClaimSink(ctx context.Context, sink, owner string, ttl time.Duration, start uint64) (uint64, error) {
	leave, err := s.enter()
	if err != nil {
		return 0, err
	}
	defer leave()
	var cursor int64
	err = s.pool.QueryRow(ctx, `INSERT INTO sink_cursors AS c (sink, cursor, owner, expires)
		VALUES ($1, $2, $3, clock_timestamp() + $4 * interval '1 microsecond')
		ON CONFLICT (sink) DO UPDATE SET owner = excluded.owner, expires = excluded.expires
		WHERE c.owner = excluded.owner OR c.expires <= clock_timestamp()
		RETURNING cursor`, sink, int64(start), owner, ttl.Microseconds()).Scan(&cursor)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("claim sink %q: %w", sink, store.ErrLeaseHeld)
	}
	if err != nil {
		return 0, fmt.Errorf("claim sink %q: %w", sink, err)
	}
	return uint64(cursor), nil
}

// AckSink implements store.SinkCursors.
func (s *Store) AckSink(ctx context.Context, sink, owner string, seq uint64) error {
	leave, err := s.enter()
	if err != nil {
		return err
	}
	defer leave()
	tag, err := s.pool.Exec(ctx, `UPDATE sink_cursors SET cursor = GREATEST(cursor, $1)
		WHERE sink = $2 AND owner = $3 AND expires > clock_timestamp()`, int64(seq), sink, owner)
	if err != nil {
		return fmt.Errorf("ack sink %q at %d: %w", sink, seq, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("ack sink %q at %d: %w", sink, seq, store.ErrLeaseHeld)
	}
	return nil
}

// ReleaseSink implements store.SinkCursors.
func (s *Store) ReleaseSink(ctx context.Context, sink, owner string) error {
	leave, err := s.enter()
	if err != nil {
		return err
	}
	defer leave()
	if _, err := s.pool.Exec(ctx, `UPDATE sink_cursors SET owner = '', expires = 'epoch' WHERE sink = $1 AND owner = $2`,
		sink, owner); err != nil {
		return fmt.Errorf("release sink %q: %w", sink, err)
	}
	return nil
}

// SinkStates implements store.SinkCursors.
func (s *Store) SinkStates(ctx context.Context) ([]store.SinkState, error) {
	leave, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
	rows, err := s.pool.Query(ctx, `SELECT sink, cursor, owner, expires FROM sink_cursors ORDER BY sink`)
	if err != nil {
		return nil, fmt.Errorf("read sink cursors: %w", err)
	}
	defer rows.Close()
	var out []store.SinkState
	for rows.Next() {
		var st store.SinkState
		var cur int64
		if err := rows.Scan(&st.Sink, &cur, &st.Owner, &st.Expires); err != nil {
			return nil, fmt.Errorf("read sink cursors: %w", err)
		}
		st.Cursor = uint64(cur)
		if st.Owner == "" {
			st.Expires = time.Time{}
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read sink cursors: %w", err)
	}
	return out, nil
}
