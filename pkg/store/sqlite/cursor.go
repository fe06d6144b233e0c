package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/errnowatch/errnowatch/pkg/store"
)

var _ store.SinkCursors = (*Store)(nil)

// sinkCursorsMigration (migration 3) keeps each sink's acknowledged cursor
// and its delivery lease. Times are unix ns of this host's clock: one
// SQLite file has one collector process.
const sinkCursorsMigration = `CREATE TABLE sink_cursors (
		sink    TEXT    PRIMARY KEY,
		cursor  INTEGER NOT NULL,
		owner   TEXT    NOT NULL,
		expires INTEGER NOT NULL -- unix ns
	);`

// ClaimSink implements store.SinkCursors.
func (s *Store) ClaimSink(ctx context.Context, sink, owner string, ttl time.Duration, start uint64) (uint64, error) {
	if s.isClosed() {
		return 0, store.ErrClosed
	}
	now := time.Now()
	var cursor uint64
	err := s.wdb.QueryRowContext(ctx, `INSERT INTO sink_cursors (sink, cursor, owner, expires) VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (sink) DO UPDATE SET owner = excluded.owner, expires = excluded.expires
		WHERE sink_cursors.owner = excluded.owner OR sink_cursors.expires <= ?5
		RETURNING cursor`, sink, start, owner, now.Add(ttl).UnixNano(), now.UnixNano()).Scan(&cursor)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("claim sink %q: %w", sink, store.ErrLeaseHeld)
	}
	if err != nil {
		return 0, fmt.Errorf("claim sink %q: %w", sink, err)
	}
	return cursor, nil
}

// AckSink implements store.SinkCursors.
func (s *Store) AckSink(ctx context.Context, sink, owner string, seq uint64) error {
	if s.isClosed() {
		return store.ErrClosed
	}
	res, err := s.wdb.ExecContext(ctx, `UPDATE sink_cursors SET cursor = max(cursor, ?1)
		WHERE sink = ?2 AND owner = ?3 AND expires > ?4`, seq, sink, owner, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("ack sink %q at %d: %w", sink, seq, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("ack sink %q at %d: %w", sink, seq, err)
	} else if n == 0 {
		return fmt.Errorf("ack sink %q at %d: %w", sink, seq, store.ErrLeaseHeld)
	}
	return nil
}

// ReleaseSink implements store.SinkCursors.
func (s *Store) ReleaseSink(ctx context.Context, sink, owner string) error {
	if s.isClosed() {
		return store.ErrClosed
	}
	if _, err := s.wdb.ExecContext(ctx, `UPDATE sink_cursors SET owner = '', expires = 0 WHERE sink = ? AND owner = ?`,
		sink, owner); err != nil {
		return fmt.Errorf("release sink %q: %w", sink, err)
	}
	return nil
}

// SinkStates implements store.SinkCursors.
func (s *Store) SinkStates(ctx context.Context) ([]store.SinkState, error) {
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT sink, cursor, owner, expires FROM sink_cursors ORDER BY sink`)
	if err != nil {
		return nil, fmt.Errorf("read sink cursors: %w", err)
	}
	defer rows.Close()
	var out []store.SinkState
	for rows.Next() {
		var st store.SinkState
		var exp int64
		if err := rows.Scan(&st.Sink, &st.Cursor, &st.Owner, &exp); err != nil {
			return nil, fmt.Errorf("read sink cursors: %w", err)
		}
		if exp > 0 {
			st.Expires = time.Unix(0, exp)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read sink cursors: %w", err)
	}
	return out, nil
}
