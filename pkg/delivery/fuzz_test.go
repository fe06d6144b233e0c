package delivery

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzSegmentReader feeds arbitrary bytes to the segment reader, as a
// damaged disk or a crash might leave them. The reader must never panic,
// never hand out a record whose CRC does not match, and must agree with the
// span decoder the spool uses for reads. The seed corpus in
// testdata/fuzz/FuzzSegmentReader (whole, torn and damaged segments) runs in
// plain go test.
func FuzzSegmentReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		sr, err := newSegmentReader(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("header error %v does not say corrupt", err)
			}
			return
		}
		var recs []record
		for {
			rec, err := sr.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				if !errors.Is(err, errCorrupt) {
					t.Fatalf("record error %v does not say corrupt", err)
				}
				break
			}
			if len(rec.raw) < headerLen || len(rec.payload) > maxPayload ||
				int(binary.LittleEndian.Uint32(rec.raw[4:])) != len(rec.payload) {
				t.Fatalf("record of %d bytes with a %d-byte payload", len(rec.raw), len(rec.payload))
			}
			if crc32.Checksum(rec.raw[4:], castagnoli) != binary.LittleEndian.Uint32(rec.raw) {
				t.Fatalf("record at seq %d has a bad crc", rec.seq)
			}
			recs = append(recs, rec)
		}
		if sr.off > int64(len(data)) {
			t.Fatalf("reader claims %d good bytes of %d", sr.off, len(data))
		}
		// The good prefix decodes to the same records through the span
		// decoder, and the rest of the bytes never panic it.
		again, err := decodeRecords(data[len(segmentMagic):sr.off])
		if err != nil || len(again) != len(recs) {
			t.Fatalf("span decoder read %d records (%v), the reader %d", len(again), err, len(recs))
		}
		for i := range again {
			if again[i].seq != recs[i].seq || !bytes.Equal(again[i].raw, recs[i].raw) {
				t.Fatalf("record %d differs between the readers", i)
			}
		}
		_, _ = decodeRecords(data)
	})
}

// TestSegmentReaderSeeds pins what the reader makes of the seed segments,
// so that the fuzz corpus is known to hold whole and damaged records.
func TestSegmentReaderSeeds(t *testing.T) {
	for name, want := range map[string]int{
		"whole": 3, "torn-payload": 2, "torn-header": 2, "flipped-byte": 0,
		"huge-length": 0, "magic-only": 0, "bad-magic": -1, "short-magic": -1, "empty": -1,
	} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata/fuzz/FuzzSegmentReader", name))
			if err != nil {
				t.Fatal(err)
			}
			_, lit, ok := strings.Cut(strings.TrimSpace(string(b)), "[]byte(")
			if !ok {
				t.Fatalf("seed %s is not a []byte corpus entry", name)
			}
			data, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
			if err != nil {
				t.Fatal(err)
			}
			sr, err := newSegmentReader(strings.NewReader(data))
			if want < 0 {
				if !errors.Is(err, errCorrupt) {
					t.Fatalf("header of %s read with %v, want corrupt", name, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for {
				rec, err := sr.next()
				if err != nil {
					if errors.Is(err, io.EOF) != (name == "whole" || name == "magic-only") {
						t.Fatalf("%s ended with %v", name, err)
					}
					break
				}
				n++
				if rec.seq != uint64(n) {
					t.Fatalf("record %d has seq %d", n, rec.seq)
				}
			}
			if n != want {
				t.Fatalf("%s holds %d good records, want %d", name, n, want)
			}
		})
	}
}

// FuzzOpenSpool opens a spool directory as a crash or a damaged disk might
// leave it: an arbitrary state file and two segment files. Open may refuse
// it with an error, but must not panic; a spool it opens must read without
// error, count what it cannot read as dropped, take a new alert after the
// old ones, and open again after Close. The seeds are a real spool's files,
// whole, torn and damaged (f.Add), and the state files in
// testdata/fuzz/FuzzOpenSpool.
func FuzzOpenSpool(f *testing.F) {
	state, seg1, seg2 := realSpoolFiles(f)
	f.Add(state, seg1, seg2)
	f.Add(state, seg1[:len(seg1)-7], seg2)                         // torn tail in the middle segment
	f.Add(state, seg1, seg2[:len(seg2)-1])                         // torn tail in the last one
	f.Add([]byte(`{"acked":2}`), seg1, seg2)                       // part acknowledged
	f.Add([]byte(`{"acked":`), seg1, seg2)                         // torn state
	f.Add(state, seg1[:len(segmentMagic)], seg2)                   // a segment with only its header
	f.Add(state, flip(seg1, len(seg1)/2), seg2)                    // damage in the middle
	f.Add([]byte(`{"pending_drops":{"count":3}}`), []byte{}, seg2) // lost segment
	f.Fuzz(func(t *testing.T, state, seg1, seg2 []byte) {
		dir := t.TempDir()
		for name, b := range map[string][]byte{
			stateFile: state, fmt.Sprintf("%020d%s", 1, segmentSuffix): seg1, fmt.Sprintf("%020d%s", 4, segmentSuffix): seg2,
		} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		s, err := OpenSpool(dir, SpoolOptions{})
		if err != nil {
			return
		}
		defer s.Close()
		before := s.Stats()
		recs := readAll(t, s)
		after := s.Stats()
		if damaged := after.Drops.Damaged - before.Drops.Damaged; uint64(len(recs))+damaged != uint64(before.Records) {
			t.Fatalf("read %d records and %d undecodable of %d waiting", len(recs), damaged, before.Records)
		}
		// A drop report (read from the state, or counted at open) must be
		// an alert the collector takes.
		if n, err := s.ReportDrops("node-a"); err != nil {
			t.Fatalf("report drops: %v", err)
		} else if n > 0 {
			rep := readAll(t, s)
			last := rep[len(rep)-1].Alert
			if err := last.Validate(); err != nil || last.RuleID != DroppedRuleID {
				t.Fatalf("drop report %s is invalid: %v", last.RuleID, err)
			}
			recs = rep
		}
		a := testAlert(t, 1)
		if err := s.Append(a); err != nil {
			t.Fatalf("append to an opened spool: %v", err)
		}
		recs2 := readAll(t, s)
		if len(recs2) != len(recs)+1 || recs2[len(recs2)-1].Alert.ID != a.ID ||
			(len(recs) > 0 && recs2[len(recs2)-1].Seq <= recs[len(recs)-1].Seq) {
			t.Fatalf("after an append the spool reads %v, before %v", ids(recs2), ids(recs))
		}
		if err := s.Ack(recs2[len(recs2)-1].Seq); err != nil {
			t.Fatalf("ack everything: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		s2, err := OpenSpool(dir, SpoolOptions{})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer s2.Close()
		if got := readAll(t, s2); len(got) != 0 {
			t.Fatalf("everything was acknowledged, yet the reopened spool reads %v", ids(got))
		}
	})
}

// realSpoolFiles writes five alerts to a spool with small segments and
// returns its state file and two segment files (seqs 1-3 and 4-5).
func realSpoolFiles(f *testing.F) (state, seg1, seg2 []byte) {
	dir := f.TempDir()
	s, err := OpenSpool(dir, SpoolOptions{MaxBytes: 1 << 20, SegmentBytes: 1700})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 5 {
		if err := s.Append(testAlert(f, i)); err != nil {
			f.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		f.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if len(segs) != 2 || filepath.Base(segs[1]) != fmt.Sprintf("%020d%s", 4, segmentSuffix) {
		f.Fatalf("seed spool has segments %v, want seqs 1-3 and 4-5", segs)
	}
	return read(stateFile), read(filepath.Base(segs[0])), read(filepath.Base(segs[1]))
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}
