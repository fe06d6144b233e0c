package store

import (
	"errors"
	"fmt"
	"testing"
)

// TestPageSkipsUndecodable pages over rows of which every third does not
// decode: pages stay full and more is exact.
func TestPageSkipsUndecodable(t *testing.T) {
	const n = 20
	fetch := func(before string, want int) ([]Stored, int, string, error) {
		start := n
		if before != "" {
			fmt.Sscanf(before, "%d", &start)
		}
		var out []Stored
		rows, last := 0, ""
		for id := start - 1; id >= 0 && rows < want; id-- {
			rows++
			last = fmt.Sprint(id)
			if id%3 != 0 {
				out = append(out, Stored{Seq: uint64(id)})
			}
		}
		return out, rows, last, nil
	}
	var got []uint64
	for _, limit := range []int{1, 4, 100} {
		got = got[:0]
		page, more, err := Page(ListOptions{Limit: limit}, fetch)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page {
			got = append(got, s.Seq)
		}
		wantLen := min(limit, 13) // 20 rows, 7 of them (0,3,…,18) skipped
		if len(page) != wantLen || more != (limit < 13) {
			t.Errorf("limit %d: page %v more %v", limit, got, more)
		}
		if len(got) > 0 && got[0] != 19 {
			t.Errorf("limit %d: page starts at %d, want 19", limit, got[0])
		}
	}
	if _, _, err := Page(ListOptions{}, fetch); err == nil {
		t.Error("a zero limit was accepted")
	}
}

func TestDeleteOldest(t *testing.T) {
	rows := int64(12)
	var chunks []int64
	del := func(n int64) (int64, error) {
		chunks = append(chunks, n)
		got := min(n, rows)
		rows -= got
		return got, nil
	}
	total, err := DeleteOldest(10, 4, del)
	if err != nil || total != 10 || fmt.Sprint(chunks) != "[4 4 2]" {
		t.Errorf("total %d err %v chunks %v", total, err, chunks)
	}
	// Fewer rows than the excess (another replica deleted them): stop.
	chunks = nil
	total, err = DeleteOldest(10, 4, del)
	if err != nil || total != 2 || fmt.Sprint(chunks) != "[4 4]" {
		t.Errorf("total %d err %v chunks %v", total, err, chunks)
	}
	boom := errors.New("boom")
	if _, err := DeleteOldest(1, 4, func(int64) (int64, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Errorf("err %v", err)
	}
}
