package delivery

import (
	"bytes"
	"encoding/binary"
	"errors"
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
