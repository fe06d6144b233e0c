package sensor

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDecodeRecord feeds arbitrary bytes to DecodeRecord, as a BPF object
// that disagrees with this binary (or a kernel bug) might hand it. It must
// never panic, and a record it accepts has a comm that fits TASK_COMM_LEN
// with no NUL in it. The seeds in testdata/fuzz/FuzzDecodeRecord run in
// plain go test.
func FuzzDecodeRecord(f *testing.F) {
	clock := Clock{Boot: time.Unix(1_700_000_000, 0)}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b, clock)
		if err != nil {
			return
		}
		if len(r.Comm) > 16 || bytes.IndexByte([]byte(r.Comm), 0) >= 0 {
			t.Fatalf("decoded comm %q", r.Comm)
		}
		if r.Time != clock.Wall(r.MonoNS) {
			t.Fatalf("time %v does not match the timestamp %d", r.Time, r.MonoNS)
		}
	})
}
