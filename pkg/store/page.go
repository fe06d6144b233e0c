package store

import "fmt"

// Fetch reads up to want rows of a List by ID descending, starting below
// before (empty: at the newest). It returns the alerts that decoded, how
// many rows it read (decoded or not), and the ID of the last row read, so
// that a page moves past rows it had to skip.
type Fetch func(before string, want int) (out []Stored, rows int, lastID string, err error)

// Page builds one List page with fetch: it reads until the page (and one
// more alert, to know whether more follow) is full or the rows end, so that
// skipped rows never end a page early. Both stores page this way.
func Page(opts ListOptions, fetch Fetch) (page []Stored, more bool, err error) {
	if opts.Limit <= 0 {
		return nil, false, fmt.Errorf("list limit must be positive, got %d", opts.Limit)
	}
	before := opts.BeforeID
	for len(page) <= opts.Limit {
		want := opts.Limit + 1 - len(page)
		out, rows, lastID, err := fetch(before, want)
		if err != nil {
			return nil, false, err
		}
		page = append(page, out...)
		if rows < want {
			break
		}
		before = lastID
	}
	more = len(page) > opts.Limit
	if more {
		page = page[:opts.Limit]
	}
	return page, more, nil
}

// DeleteOldest deletes up to excess rows in chunks of at most chunk with del,
// which deletes the n oldest and returns how many went, until excess is
// reached or del deletes nothing. It returns how many went in all. Both
// stores trim a node's quota and the global cap this way.
func DeleteOldest(excess, chunk int64, del func(n int64) (int64, error)) (int64, error) {
	var total int64
	for excess > 0 {
		got, err := del(min(excess, chunk))
		if err != nil {
			return total, err
		}
		total += got
		excess -= got
		if got == 0 {
			break
		}
	}
	return total, nil
}

// Rows is the part of a result set that NodeExcess reads; the rows of
// database/sql and of pgx both have it. The caller closes them.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// NodeExcess reads rows of (node, alerts) and returns, for each node, how
// many alerts it has over quota: what retention's per-node cap deletes.
func NodeExcess(rows Rows, quota int64) (map[string]int64, error) {
	over := map[string]int64{}
	for rows.Next() {
		var node string
		var n int64
		if err := rows.Scan(&node, &n); err != nil {
			return nil, err
		}
		over[node] = n - quota
	}
	return over, rows.Err()
}
