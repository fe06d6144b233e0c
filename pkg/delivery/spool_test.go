package delivery

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/errnowatch/errnowatch/pkg/alert"
)

// testAlert is a valid alert whose message says which one it is.
func testAlert(t testing.TB, i int) alert.Alert {
	t.Helper()
	now := time.Now()
	return alert.Alert{
		ID:        alert.NewID(now),
		Revision:  1,
		RuleID:    "test.rule",
		Severity:  alert.SeverityMedium,
		Message:   fmt.Sprintf("alert %d %s", i, strings.Repeat("x", 200)),
		FirstSeen: now,
		LastSeen:  now,
		Node:      "node-a",
		Counts:    []alert.Count{{Syscall: "openat", Errno: "EACCES", Count: uint64(i)}},
		Total:     uint64(i),
	}
}

func appendN(t testing.TB, s *Spool, n int) []alert.Alert {
	t.Helper()
	var out []alert.Alert
	for i := range n {
		a := testAlert(t, i)
		if err := s.Append(a); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		out = append(out, a)
	}
	return out
}

func readAll(t testing.TB, s *Spool) []Record {
	t.Helper()
	var out []Record
	after := uint64(0)
	for {
		recs, err := s.Read(after, 7, 4<<10)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
		after = recs[len(recs)-1].Seq
	}
}

func ids(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, fmt.Sprintf("%s/%d", r.Alert.ID, r.Alert.Revision))
	}
	return out
}

func alertIDs(as []alert.Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, fmt.Sprintf("%s/%d", a.ID, a.Revision))
	}
	return out
}

func openSpool(t testing.TB, dir string, o SpoolOptions) *Spool {
	t.Helper()
	s, err := OpenSpool(dir, o)
	if err != nil {
		t.Fatalf("open spool: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

// diskBytes adds up the segment files as the file system sees them.
func diskBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	for _, p := range segFiles(t, dir) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

func TestSpoolReopenKeepsUnacked(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, SpoolOptions{SegmentBytes: 4 << 10})
	want := appendN(t, s, 40)
	got := readAll(t, s)
	if !slices.Equal(ids(got), alertIDs(want)) {
		t.Fatalf("read back %d records, want the 40 appended in order", len(got))
	}
	if got[0].Alert.Message != want[0].Message || got[0].Alert.Counts[0] != want[0].Counts[0] {
		t.Fatalf("record 0 = %+v, want %+v", got[0].Alert, want[0])
	}
	if err := s.Ack(got[14].Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openSpool(t, dir, SpoolOptions{SegmentBytes: 4 << 10})
	got2 := readAll(t, s2)
	if !slices.Equal(ids(got2), alertIDs(want[15:])) {
		t.Fatalf("after reopen read %d records, want the 25 unacknowledged", len(got2))
	}
	if got2[0].Seq != got[15].Seq {
		t.Fatalf("seq after reopen = %d, want %d", got2[0].Seq, got[15].Seq)
	}
	st := s2.Stats()
	if st.Records != 25 || st.Bytes != diskBytes(t, dir) || st.Oldest.IsZero() {
		t.Fatalf("stats %+v, want 25 records and %d bytes", st, diskBytes(t, dir))
	}
	// New records continue the sequence after the old ones.
	more := appendN(t, s2, 3)
	got3 := readAll(t, s2)
	if !slices.Equal(ids(got3), append(alertIDs(want[15:]), alertIDs(more)...)) {
		t.Fatalf("after more appends read %v", ids(got3))
	}
	if last := got3[len(got3)-1].Seq; last != got[39].Seq+3 {
		t.Fatalf("last seq %d, want %d", last, got[39].Seq+3)
	}
}

func TestSpoolTornTailIsTruncated(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, SpoolOptions{})
	want := appendN(t, s, 5)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segFiles(t, dir)
	if len(segs) != 1 {
		t.Fatalf("%d segments, want 1", len(segs))
	}
	good, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of the sixth append: its header and half its
	// payload reached the disk.
	torn := encodeRecord(6, time.Now().UnixNano(), []byte(`{"id":"torn","revision":1}`))
	if err := os.WriteFile(segs[0], append(slices.Clone(good), torn[:headerLen+5]...), 0o600); err != nil {
		t.Fatal(err)
	}

	s2 := openSpool(t, dir, SpoolOptions{})
	if got := readAll(t, s2); !slices.Equal(ids(got), alertIDs(want)) {
		t.Fatalf("after torn tail read %v, want the 5 whole records", ids(got))
	}
	fi, err := os.Stat(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != int64(len(good)) {
		t.Fatalf("segment is %d bytes after open, want it cut back to %d", fi.Size(), len(good))
	}
	// The spool goes on where the torn record would have been.
	more := appendN(t, s2, 1)
	got := readAll(t, s2)
	if !slices.Equal(ids(got), append(alertIDs(want), alertIDs(more)...)) || got[5].Seq != 6 {
		t.Fatalf("after append read %v", ids(got))
	}
	if s2.Stats().PendingDrops != 0 {
		t.Fatalf("a torn tail was never acknowledged to the appender, so it is not a drop: %+v", s2.Stats())
	}
}

func TestSpoolDamagedMiddleCountsLostRecords(t *testing.T) {
	dir := t.TempDir()
	o := SpoolOptions{SegmentBytes: 4 << 10}
	s := openSpool(t, dir, o)
	want := appendN(t, s, 30)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segFiles(t, dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments, want at least 3", len(segs))
	}
	// Flip a payload byte of the second record of the first segment: it and
	// the rest of that segment are lost, the segments after it are whole.
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	sr, err := newSegmentReader(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	first, err := sr.next()
	if err != nil {
		t.Fatal(err)
	}
	inFirst := 0
	for sr2, _ := newSegmentReader(strings.NewReader(string(b))); ; inFirst++ {
		if _, err := sr2.next(); err != nil {
			break
		}
	}
	off := len(segmentMagic) + len(first.raw) + headerLen + 3
	b[off] ^= 0xff
	if err := os.WriteFile(segs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}

	s2 := openSpool(t, dir, o)
	got := readAll(t, s2)
	wantIDs := append(alertIDs(want[:1]), alertIDs(want[inFirst:])...)
	if !slices.Equal(ids(got), wantIDs) {
		t.Fatalf("read %d records, want %d: the first and those after the damaged segment", len(got), len(wantIDs))
	}
	if st := s2.Stats(); st.PendingDrops != uint64(inFirst-1) || st.Dropped != uint64(inFirst-1) {
		t.Fatalf("stats %+v, want %d records counted as dropped", st, inFirst-1)
	}
}

func TestSpoolRecordBoundDropsOldest(t *testing.T) {
	dir := t.TempDir()
	o := SpoolOptions{MaxRecords: 10, SegmentBytes: 4 << 10}
	s := openSpool(t, dir, o)
	before := time.Now()
	want := appendN(t, s, 25)
	got := readAll(t, s)
	if !slices.Equal(ids(got), alertIDs(want[15:])) {
		t.Fatalf("read %d records, want the newest 10", len(got))
	}
	st := s.Stats()
	if st.Records != 10 || st.Dropped != 15 || st.PendingDrops != 15 || st.Bytes != diskBytes(t, dir) {
		t.Fatalf("stats %+v, want 10 records, 15 dropped, %d bytes", st, diskBytes(t, dir))
	}
	// The drop count survives a restart.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openSpool(t, dir, o)
	if st := s2.Stats(); st.PendingDrops != 15 || st.Records != 10 {
		t.Fatalf("after reopen stats %+v, want 15 pending drops and 10 records", st)
	}
	// The sender reports once the collector acknowledges again, which
	// makes room for the report itself.
	if err := s2.Ack(got[0].Seq); err != nil {
		t.Fatal(err)
	}
	n, err := s2.ReportDrops("node-a")
	if err != nil || n != 15 {
		t.Fatalf("report drops = %d, %v; want 15", n, err)
	}
	recs := readAll(t, s2)
	last := recs[len(recs)-1].Alert
	if last.RuleID != DroppedRuleID || last.Severity != alert.SeverityHigh || last.Node != "node-a" ||
		!strings.Contains(last.Message, "dropped 15 alerts") || last.FirstSeen.Before(before.Truncate(time.Second)) ||
		last.Validate() != nil {
		t.Fatalf("drop alert %+v", last)
	}
	// Reopened once with the report pending, so it is revision 2 of the same alert.
	if last.Revision != 2 {
		t.Fatalf("drop alert revision %d, want 2 after one reopen", last.Revision)
	}
	if st := s2.Stats(); st.PendingDrops != 0 {
		t.Fatalf("pending drops %d after the report", st.PendingDrops)
	}
	if n, err := s2.ReportDrops("node-a"); n != 0 || err != nil {
		t.Fatalf("second report = %d, %v; want nothing to report", n, err)
	}
}

func TestSpoolByteBoundEvictsOldestSegments(t *testing.T) {
	dir := t.TempDir()
	o := SpoolOptions{MaxBytes: 16 << 10, SegmentBytes: 4 << 10}
	s := openSpool(t, dir, o)
	want := appendN(t, s, 200)
	st := s.Stats()
	if st.Bytes > o.MaxBytes || diskBytes(t, dir) != st.Bytes {
		t.Fatalf("spool holds %d bytes (disk %d), bound %d", st.Bytes, diskBytes(t, dir), o.MaxBytes)
	}
	got := readAll(t, s)
	if len(got) == 0 || uint64(len(got))+st.Dropped != 200 || st.Records != len(got) {
		t.Fatalf("kept %d, dropped %d of 200 (stats %+v)", len(got), st.Dropped, st)
	}
	if !slices.Equal(ids(got), alertIDs(want[200-len(got):])) {
		t.Fatal("the records kept are not the newest")
	}
	// Acknowledged records are not drops when they are evicted.
	if err := s.Ack(got[len(got)-1].Seq); err != nil {
		t.Fatal(err)
	}
	dropped := st.Dropped
	appendN(t, s, 100)
	if st := s.Stats(); st.Dropped-dropped >= 100 || st.Bytes > o.MaxBytes {
		t.Fatalf("after ack and 100 more: %+v; evicting acknowledged records counted as drops", st)
	}
}

func TestSpoolAckDeletesSegments(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, SpoolOptions{SegmentBytes: 4 << 10})
	appendN(t, s, 60)
	recs := readAll(t, s)
	nseg := len(segFiles(t, dir))
	if nseg < 4 {
		t.Fatalf("%d segments, want several", nseg)
	}
	// Acking into the middle of the second segment frees only the first.
	firstSegLen := 0
	for _, r := range recs {
		if r.Seq < s.segs[1].base {
			firstSegLen++
		}
	}
	if err := s.Ack(recs[firstSegLen].Seq); err != nil {
		t.Fatal(err)
	}
	if n := len(segFiles(t, dir)); n != nseg-1 {
		t.Fatalf("%d segments after acking the first, want %d", n, nseg-1)
	}
	if err := s.Ack(recs[len(recs)-1].Seq); err != nil {
		t.Fatal(err)
	}
	// Only the active segment is left, and it will be reused.
	if n := len(segFiles(t, dir)); n != 1 {
		t.Fatalf("%d segments after acking everything, want 1", n)
	}
	if st := s.Stats(); st.Records != 0 || !st.Oldest.IsZero() || st.Bytes != diskBytes(t, dir) {
		t.Fatalf("stats %+v after acking everything", st)
	}
	if err := s.Ack(recs[len(recs)-1].Seq + 1); err == nil {
		t.Fatal("acking past the end of the spool succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openSpool(t, dir, SpoolOptions{SegmentBytes: 4 << 10})
	if got := readAll(t, s2); len(got) != 0 {
		t.Fatalf("reopened spool returned %d acknowledged records", len(got))
	}
	more := appendN(t, s2, 1)
	got := readAll(t, s2)
	if len(got) != 1 || got[0].Alert.ID != more[0].ID || got[0].Seq != recs[len(recs)-1].Seq+1 {
		t.Fatalf("after reopen read %+v, want the new record with the next seq", ids(got))
	}
}

func TestSpoolIsExclusive(t *testing.T) {
	dir := t.TempDir()
	openSpool(t, dir, SpoolOptions{})
	if s, err := OpenSpool(dir, SpoolOptions{}); err == nil {
		s.Close()
		t.Fatal("a second open of a spool in use succeeded")
	}
}

func TestSpoolDropsAnInvalidAlertAlone(t *testing.T) {
	s := openSpool(t, t.TempDir(), SpoolOptions{})
	bad := testAlert(t, 1)
	bad.Revision = 0
	good := []alert.Alert{testAlert(t, 0), testAlert(t, 2)}
	err := s.Append(good[0], bad, good[1])
	if err == nil || !strings.Contains(err.Error(), "dropped 1 invalid alerts") || !strings.Contains(err.Error(), bad.ID) {
		t.Fatalf("append of a batch with an alert without revision returned %v", err)
	}
	if got := readAll(t, s); !slices.Equal(ids(got), alertIDs(good)) {
		t.Fatalf("spooled %v, want the valid alerts %v", ids(got), alertIDs(good))
	}
	if st := s.Stats(); st.Dropped != 1 || st.Drops != (DropCounts{Invalid: 1}) || st.PendingDrops != 1 {
		t.Fatalf("stats after one invalid alert: %+v", st)
	}
	n, err := s.ReportDrops("node-a")
	if err != nil || n != 1 {
		t.Fatalf("report drops: %d, %v", n, err)
	}
	recs := readAll(t, s)
	last := recs[len(recs)-1].Alert
	if last.RuleID != DroppedRuleID || !strings.Contains(last.Message, "dropped 1 alerts") ||
		!strings.Contains(last.Message, "(1 invalid)") {
		t.Fatalf("drop report %s: %q", last.RuleID, last.Message)
	}
}

// smallDisk mounts a tmpfs of 256 KiB on a temporary directory, so that
// appends meet a real ENOSPC. fill takes every free byte with a file; free
// deletes it.
func smallDisk(t *testing.T) (dir string, fill, free func()) {
	t.Helper()
	dir = t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0700"); err != nil {
		t.Fatalf("mount a tmpfs for the full-disk test (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	filler := filepath.Join(dir, "filler")
	fill = func() {
		f, err := os.Create(filler)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 4096)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, unix.ENOSPC) {
					t.Fatalf("fill the tmpfs: %v", err)
				}
				return
			}
		}
	}
	free = func() {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	}
	return dir, fill, free
}

// oneRecordSegments makes every append after the first start a segment,
// which takes a new page even when the disk has a few bytes left in the
// last one: appends to a full disk then always fail.
var oneRecordSegments = SpoolOptions{MaxBytes: 1 << 20, SegmentBytes: 512}

func TestSpoolHoldsAlertsWhileTheDiskIsFull(t *testing.T) {
	dir, fill, free := smallDisk(t)
	s := openSpool(t, filepath.Join(dir, "spool"), oneRecordSegments)
	want := appendN(t, s, 1)
	fill()
	var later []alert.Alert
	for i := range 3 {
		a := testAlert(t, 10+i)
		later = append(later, a)
		err := s.Append(a)
		if !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), fmt.Sprintf("%d held in memory", i+1)) {
			t.Fatalf("append %d to a full disk returned %v", i, err)
		}
	}
	st := s.Stats()
	if st.Held != 3 || st.AppendErrors != 3 || st.Dropped != 0 || st.Records != 1 {
		t.Fatalf("stats while the disk is full: %+v", st)
	}
	if got := readAll(t, s); !slices.Equal(ids(got), alertIDs(want)) {
		t.Fatalf("readable while the disk is full: %v, want %v", ids(got), alertIDs(want))
	}
	if err := s.Flush(); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("flush to a full disk returned %v", err)
	}

	free()
	next := testAlert(t, 20)
	if err := s.Append(next); err != nil {
		t.Fatalf("append once the disk has room: %v", err)
	}
	want = append(append(want, later...), next)
	if got := readAll(t, s); !slices.Equal(ids(got), alertIDs(want)) {
		t.Fatalf("spooled %v, want the held alerts in order before the new one: %v", ids(got), alertIDs(want))
	}
	if st := s.Stats(); st.Held != 0 || st.HeldBytes != 0 || st.Dropped != 0 || st.Records != 5 {
		t.Fatalf("stats after the retry: %+v", st)
	}
	// They are on disk, not only indexed: a reopened spool has them.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openSpool(t, filepath.Join(dir, "spool"), oneRecordSegments)
	if got := readAll(t, s); !slices.Equal(ids(got), alertIDs(want)) {
		t.Fatalf("reopened spool holds %v, want %v", ids(got), alertIDs(want))
	}
}

func TestSpoolHeldBoundDropsTheOldestAndReportsThem(t *testing.T) {
	dir, fill, free := smallDisk(t)
	// Room for two of the five alerts and not three: their encodings differ
	// by a few bytes (a timestamp's digits), so two and a half of the
	// largest.
	var all []alert.Alert
	var size int64
	for i := range 5 {
		a := testAlert(t, 10+i)
		all = append(all, a)
		size = max(size, int64(len(mustEncode(t, a))))
	}
	opts := oneRecordSegments
	opts.MaxHeldBytes = 2*size + size/2
	s := openSpool(t, filepath.Join(dir, "spool"), opts)
	appendN(t, s, 1)
	fill()
	for i, a := range all {
		if err := s.Append(a); !errors.Is(err, unix.ENOSPC) {
			t.Fatalf("append %d to a full disk returned %v", i, err)
		}
	}
	st := s.Stats()
	if st.Held != 2 || st.Drops != (DropCounts{Unwritable: 3}) || st.PendingDrops != 3 {
		t.Fatalf("stats after 5 appends held within 2 alerts: %+v", st)
	}
	// Reporting needs the disk: it fails and keeps the report.
	if n, err := s.ReportDrops("node-a"); err == nil || n != 0 {
		t.Fatalf("report drops to a full disk: %d, %v", n, err)
	}
	free()
	n, err := s.ReportDrops("node-a")
	if err != nil || n != 3 {
		t.Fatalf("report drops once the disk has room: %d, %v", n, err)
	}
	recs := readAll(t, s)
	if len(recs) != 4 {
		t.Fatalf("spool holds %d records, want the first alert, the 2 newest held and the report: %v", len(recs), ids(recs))
	}
	if got, want := ids(recs[1:3]), alertIDs(all[3:]); !slices.Equal(got, want) {
		t.Fatalf("held alerts written %v, want the newest %v", got, want)
	}
	rep := recs[3].Alert
	if rep.RuleID != DroppedRuleID || !strings.Contains(rep.Message, "dropped 3 alerts") ||
		!strings.Contains(rep.Message, "(3 because the disk refused writes)") {
		t.Fatalf("drop report %s: %q", rep.RuleID, rep.Message)
	}
	if st := s.Stats(); st.PendingDrops != 0 || st.Held != 0 {
		t.Fatalf("stats after the report: %+v", st)
	}
}

func TestSpoolCloseCountsHeldAlertsAsDropped(t *testing.T) {
	dir, fill, _ := smallDisk(t)
	s, err := OpenSpool(filepath.Join(dir, "spool"), oneRecordSegments)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 1)
	fill()
	if err := s.Append(testAlert(t, 1), testAlert(t, 2)); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("append to a full disk returned %v", err)
	}
	if err := s.Close(); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("close with alerts the disk refuses returned %v", err)
	}
	if st := s.Stats(); st.Held != 0 || st.Drops != (DropCounts{Unwritable: 2}) {
		t.Fatalf("stats after close: %+v", st)
	}
}

func mustEncode(t testing.TB, a alert.Alert) []byte {
	t.Helper()
	b, err := encodeAlert(&a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
