package delivery

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/errnowatch/errnowatch/pkg/alert"
)

// Defaults for SpoolOptions.
const (
	DefaultMaxBytes   = 256 << 20
	DefaultMaxRecords = 1 << 20
	// DefaultMaxHeldBytes bounds the encoded alerts kept in memory while
	// the disk refuses appends: about 4000 alerts of a few KiB.
	DefaultMaxHeldBytes = 16 << 20
	// maxSegmentBytes caps the default segment size: the bytes bound is
	// enforced by deleting whole segments, so smaller segments drop less at
	// a time.
	maxSegmentBytes = 16 << 20
	segmentSuffix   = ".seg"
	lockFile        = "lock"
)

// SpoolOptions bound a spool. The zero value takes the defaults.
type SpoolOptions struct {
	// MaxBytes bounds the segment files on disk (default 256 MiB). When an
	// append would pass it, the oldest segment is deleted and its
	// unacknowledged records are counted as dropped. One record larger than
	// the whole bound is still kept, so the bound may be passed by one record.
	MaxBytes int64
	// MaxRecords bounds the records waiting for acknowledgement (default
	// 1Mi). Past it the oldest waiting record is dropped. The in-memory index
	// costs 12 bytes per spooled record.
	MaxRecords int
	// SegmentBytes is the size at which a new segment file is started
	// (default MaxBytes/16, at most 16 MiB).
	SegmentBytes int64
	// MaxHeldBytes bounds the encoded alerts kept in memory while appends
	// to disk fail (disk full, I/O errors), default 16 MiB. They are
	// written, in order and ahead of newer alerts, at the next Append or
	// Flush that succeeds; past the bound the oldest held alert is dropped
	// and counted.
	MaxHeldBytes int64
	// Logger receives warnings about torn or damaged segments. Nil logs nothing.
	Logger *zap.Logger
}

func (o *SpoolOptions) setDefaults() error {
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxRecords == 0 {
		o.MaxRecords = DefaultMaxRecords
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = min(max(o.MaxBytes/16, 4<<10), maxSegmentBytes, o.MaxBytes)
	}
	if o.MaxHeldBytes == 0 {
		o.MaxHeldBytes = DefaultMaxHeldBytes
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	switch {
	case o.MaxHeldBytes < 0:
		return fmt.Errorf("spool held-bytes bound must not be negative (%d)", o.MaxHeldBytes)
	case o.MaxBytes < 0 || o.MaxRecords < 0 || o.SegmentBytes < 0:
		return fmt.Errorf("spool bounds must not be negative (max bytes %d, max records %d, segment bytes %d)",
			o.MaxBytes, o.MaxRecords, o.SegmentBytes)
	case o.SegmentBytes > 1<<30:
		// Record offsets in the index are 32-bit.
		return fmt.Errorf("spool segment size %d is over the 1 GiB limit", o.SegmentBytes)
	case o.SegmentBytes > o.MaxBytes:
		return fmt.Errorf("spool segment size %d is larger than the spool bound %d: lower the segment size or raise the bound",
			o.SegmentBytes, o.MaxBytes)
	}
	return nil
}

// Record is one spooled alert as handed to the sender.
type Record struct {
	// Seq orders records; the collector acknowledges up to a Seq.
	Seq uint64
	// Spooled is when the record was appended.
	Spooled time.Time
	Alert   alert.Alert
}

// SpoolStats describes a spool at one moment.
type SpoolStats struct {
	// Records and Bytes are the records waiting for acknowledgement and the
	// size of the segment files on disk.
	Records  int
	Bytes    int64
	Segments int
	// Oldest is when the oldest waiting record was spooled; zero when none waits.
	Oldest time.Time
	// Dropped counts alerts dropped since Open, for every reason; Drops
	// splits it by reason.
	Dropped uint64
	Drops   DropCounts
	// PendingDrops counts dropped records not yet reported to the collector.
	PendingDrops uint64
	// Held and HeldBytes are the alerts kept in memory because the last
	// append to disk failed; AppendErrors counts the appends that failed.
	Held         int
	HeldBytes    int64
	AppendErrors uint64
}

// held is an encoded alert waiting in memory for the disk to take it.
type held struct {
	payload []byte
	at      int64 // when Append took it, Unix nanoseconds
}

// segment is the in-memory index of one segment file.
type segment struct {
	base    uint64 // seq of its first record (and its file name)
	path    string
	size    int64
	offsets []uint32 // offset of record base+i in the file
	times   []int64  // append time of record base+i, Unix nanoseconds
}

func (g *segment) count() int { return len(g.offsets) }

// last is the seq of its last record; only meaningful when count() > 0.
func (g *segment) last() uint64 { return g.base + uint64(len(g.offsets)) - 1 }

// end is the offset one past record i.
func (g *segment) end(i int) int64 {
	if i+1 < len(g.offsets) {
		return int64(g.offsets[i+1])
	}
	return g.size
}

// Spool is a bounded, crash-safe queue of alerts on disk. It is safe for
// concurrent use: the rule engine appends while the sender reads and acks.
type Spool struct {
	dir  string
	opts SpoolOptions
	log  *zap.Logger

	dirf *os.File // held for fsyncs of the directory
	lock *os.File // flock'ed so that two agents never share a spool

	appended chan struct{}

	mu      sync.Mutex
	closed  bool
	segs    []*segment // by base; the last one is active
	active  *os.File   // the last segment, open for appending
	acked   uint64     // every seq <= acked is acknowledged or dropped
	next    uint64     // seq of the next record
	live    int        // records with seq > acked
	bytes   int64      // bytes of the segment files
	pending *DropReport
	drops   DropCounts
	// held are encoded alerts, oldest first, that an append could not
	// write; heldBytes is the sum of their sizes.
	held      []held
	heldBytes int64
	appendErr uint64
	trash     []string // evicted segment files to delete once the state is saved
	dirty     bool     // acked or pending changed since the state was saved
	bad       map[uint64]bool
}

// OpenSpool opens (creating it if needed) the spool in dir. A torn or
// damaged record ends its segment: the segment is truncated there, with a
// warning, and records lost between segments are counted as dropped.
func OpenSpool(dir string, opts SpoolOptions) (*Spool, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create spool directory: %w", err)
	}
	s := &Spool{
		dir:      dir,
		opts:     opts,
		log:      opts.Logger.With(zap.String("spool", dir)),
		appended: make(chan struct{}, 1),
		bad:      map[uint64]bool{},
	}
	ok := false
	defer func() {
		if !ok {
			s.closeFiles()
		}
	}()
	var err error
	if s.lock, err = os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600); err != nil {
		return nil, fmt.Errorf("open spool lock: %w", err)
	}
	if err := unix.Flock(int(s.lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil, fmt.Errorf("spool %s is in use by another process (%w): stop it or give this one another spool directory", dir, err)
	}
	if s.dirf, err = os.Open(dir); err != nil {
		return nil, fmt.Errorf("open spool directory: %w", err)
	}
	st, err := readState(dir)
	if err != nil {
		// The state is only an optimisation for the collector: without it
		// everything spooled is sent again, and resends are idempotent.
		s.log.Warn("spool state unreadable; re-sending everything spooled", zap.Error(err))
		st = spoolState{}
	}
	if st.Acked > math.MaxUint64/2 {
		// No spool reaches 2^63 records; a state that says so is damaged,
		// and sequence numbers past it would wrap to 0.
		s.log.Warn("spool state holds an impossible acknowledged sequence; re-sending everything spooled",
			zap.Uint64("acked", st.Acked))
		st = spoolState{Pending: st.Pending}
	}
	s.acked = st.Acked
	s.pending = st.Pending
	if s.pending != nil {
		// The report may have been appended before a crash kept the state
		// from recording that; sending it again at a higher revision
		// updates the same alert instead of raising a second one.
		s.pending.Revision++
		s.pending.repair(time.Now())
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	if err := s.saveState(); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// load scans the segments, truncates torn tails and opens the active segment.
func (s *Spool) load() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("list spool: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, stateFile+".tmp") {
			os.Remove(filepath.Join(s.dir, name)) // left by a crash mid-write
			continue
		}
		base, ok := strings.CutSuffix(name, segmentSuffix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		n, err := strconv.ParseUint(base, 10, 64)
		if err != nil {
			s.log.Warn("ignoring file with a segment suffix but no sequence number", zap.String("file", name))
			continue
		}
		g, err := s.scan(n, filepath.Join(s.dir, name))
		if err != nil {
			return err
		}
		s.segs = append(s.segs, g)
	}
	slices.SortFunc(s.segs, func(a, b *segment) int { return cmp.Compare(a.base, b.base) })

	// Drop what is done, empty or unusable, and count records lost to damage
	// in the middle: a segment cut short leaves a gap before the next one.
	var keep []*segment
	var prev *segment // the last segment seen that holds records
	for i, g := range s.segs {
		if g.count() > 0 {
			if prev != nil {
				if g.base <= prev.last() {
					return fmt.Errorf("spool segments %s and %s overlap: move the spool directory away to start afresh",
						prev.path, g.path)
				}
				if from := max(prev.last()+1, s.acked+1); g.base > from {
					lost := g.base - from
					s.noteDrop(dropDamaged, lost, time.Unix(0, prev.times[prev.count()-1]), g.firstTime())
					s.log.Warn("spool records lost to damage", zap.Uint64("count", lost))
				}
			}
			prev = g
		}
		isLast := i == len(s.segs)-1
		done := g.count() > 0 && g.last() <= s.acked
		if done || (g.count() == 0 && !isLast) || g.size < int64(len(segmentMagic)) {
			if err := os.Remove(g.path); err != nil {
				return fmt.Errorf("remove spent spool segment: %w", err)
			}
			continue
		}
		keep = append(keep, g)
	}
	s.segs = keep

	s.next = s.acked + 1
	for _, g := range s.segs {
		s.bytes += g.size
		if g.count() > 0 {
			s.next = max(s.next, g.last()+1)
			for i := range g.count() {
				if g.base+uint64(i) > s.acked {
					s.live++
				}
			}
		} else {
			s.next = max(s.next, g.base)
		}
	}
	if n := len(s.segs); n > 0 && s.segs[n-1].size < s.opts.SegmentBytes {
		last := s.segs[n-1]
		if last.count() == 0 && last.base != s.next {
			// An empty segment named for a seq already used: start afresh.
			if err := os.Remove(last.path); err != nil {
				return fmt.Errorf("remove empty spool segment: %w", err)
			}
			s.bytes -= last.size
			s.segs = s.segs[:n-1]
			return s.newSegment()
		}
		f, err := os.OpenFile(last.path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return fmt.Errorf("open spool segment: %w", err)
		}
		s.active = f
		return nil
	}
	return s.newSegment()
}

func (g *segment) firstTime() time.Time {
	if g.count() == 0 {
		return time.Time{}
	}
	return time.Unix(0, g.times[0])
}

// scan indexes one segment file and truncates it after its last good record.
func (s *Spool) scan(base uint64, path string) (*segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open spool segment: %w", err)
	}
	defer f.Close()
	g := &segment{base: base, path: path}
	sr, err := newSegmentReader(f)
	if err != nil {
		if !errors.Is(err, errCorrupt) {
			return nil, fmt.Errorf("scan spool segment %s: %w", path, err)
		}
		// A segment whose header never made it to disk holds nothing.
		s.log.Warn("spool segment has no valid header; removing it", zap.String("file", path), zap.Error(err))
		return g, nil // size 0: removed by load
	}
	for {
		off := sr.off
		rec, err := sr.next()
		if err == nil && rec.seq != base+uint64(g.count()) {
			err = fmt.Errorf("record at offset %d has seq %d, want %d: %w", off, rec.seq, base+uint64(g.count()), errCorrupt)
		}
		if errors.Is(err, io.EOF) {
			g.size = off
			return g, nil
		}
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				return nil, fmt.Errorf("scan spool segment %s: %w", path, err)
			}
			// A torn tail is what a crash mid-append leaves; that append was
			// never reported durable, so cutting it loses nothing promised.
			s.log.Warn("truncating spool segment after its last good record",
				zap.String("file", path), zap.Int64("offset", off), zap.Error(err))
			if err := f.Truncate(off); err != nil {
				return nil, fmt.Errorf("truncate torn spool segment: %w", err)
			}
			if err := f.Sync(); err != nil {
				return nil, fmt.Errorf("sync truncated spool segment: %w", err)
			}
			g.size = off
			return g, nil
		}
		g.offsets = append(g.offsets, uint32(off))
		g.times = append(g.times, rec.time)
	}
}

// newSegment starts a segment for s.next and makes it the active one.
func (s *Spool) newSegment() error {
	g := &segment{base: s.next, path: filepath.Join(s.dir, fmt.Sprintf("%020d%s", s.next, segmentSuffix))}
	f, err := os.OpenFile(g.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("create spool segment: %w", err)
	}
	if _, err := f.WriteString(segmentMagic); err != nil {
		f.Close()
		os.Remove(g.path)
		return fmt.Errorf("write spool segment header: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(g.path)
		return fmt.Errorf("sync spool segment: %w", err)
	}
	if err := s.dirf.Sync(); err != nil {
		f.Close()
		os.Remove(g.path)
		return fmt.Errorf("sync spool directory: %w", err)
	}
	g.size = int64(len(segmentMagic))
	s.segs = append(s.segs, g)
	s.bytes += g.size
	s.active = f
	return nil
}

// roll seals the active segment and starts the next.
func (s *Spool) roll() error {
	if err := s.active.Sync(); err != nil {
		return fmt.Errorf("sync spool segment: %w", err)
	}
	if err := s.active.Close(); err != nil {
		return fmt.Errorf("close spool segment: %w", err)
	}
	s.active = nil
	return s.newSegment()
}

// Append spools alerts as one batch: they are written and fsynced together,
// and Append returns once they are on disk. An alert that fails Validate or
// encodes to more than 1 MiB is dropped alone (counted, and reported to the
// collector), so that nothing the collector would refuse gets stuck at the
// head of the spool and the valid alerts of the batch are kept. When the
// spool is full, the oldest records are dropped to make room.
//
// When the disk refuses the write (full, or failing), the alerts not
// written are held in memory, up to MaxHeldBytes, and written ahead of newer
// ones by the next Append or Flush; Append with no alerts just retries them.
// The error then says how many are held: they are not lost yet.
func (s *Spool) Append(alerts ...alert.Alert) error {
	now := time.Now()
	recs := make([]held, 0, len(alerts))
	var invalid []error
	for i := range alerts {
		b, err := encodeAlert(&alerts[i])
		if err != nil {
			invalid = append(invalid, err)
			continue
		}
		recs = append(recs, held{payload: b, at: now.UnixNano()})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("spool is closed")
	}
	if len(invalid) > 0 {
		s.noteDrop(dropInvalid, uint64(len(invalid)), now, now)
		s.log.Error("dropping alerts that cannot be spooled", zap.Int("dropped", len(invalid)),
			zap.Error(errors.Join(invalid...)))
	}
	for _, r := range recs {
		s.hold(r)
	}
	err := s.flushLocked()
	if len(invalid) > 0 {
		err = errors.Join(fmt.Errorf("dropped %d invalid alerts: %w", len(invalid), errors.Join(invalid...)), err)
	}
	return err
}

// encodeAlert checks an alert and encodes it as a spool record payload.
func encodeAlert(a *alert.Alert) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("spool alert %s: %w", a.ID, err)
	}
	b, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encode alert %s: %w", a.ID, err)
	}
	if len(b) > maxPayload {
		return nil, fmt.Errorf("alert %s encodes to %d bytes, more than the spool's %d per alert", a.ID, len(b), maxPayload)
	}
	return b, nil
}

// Flush writes the alerts held in memory since an append failed. The agent
// calls it (through Append) every interval, so that held alerts reach the
// disk soon after it takes writes again.
func (s *Spool) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("spool is closed")
	}
	return s.flushLocked()
}

// hold queues r behind the alerts already held, dropping the oldest held
// ones to stay within MaxHeldBytes. One alert larger than the bound is
// still held alone.
func (s *Spool) hold(r held) {
	for len(s.held) > 0 && s.heldBytes+int64(len(r.payload)) > s.opts.MaxHeldBytes {
		old := s.held[0]
		s.held[0] = held{}
		s.held = s.held[1:]
		s.heldBytes -= int64(len(old.payload))
		t := time.Unix(0, old.at)
		s.noteDrop(dropUnwritable, 1, t, t)
	}
	s.held = append(s.held, r)
	s.heldBytes += int64(len(r.payload))
}

// flushLocked writes the held alerts, keeping those the disk refused.
func (s *Spool) flushLocked() error {
	if len(s.held) == 0 {
		// Nothing to write, but a state the last append could not save
		// (drop counts) is saved now.
		if s.dirty {
			return s.commit()
		}
		return nil
	}
	n := len(s.held)
	wrote, err := s.appendLocked(s.held)
	clear(s.held[:wrote])
	s.held = s.held[wrote:]
	s.heldBytes = 0
	for _, r := range s.held {
		s.heldBytes += int64(len(r.payload))
	}
	if len(s.held) == 0 {
		s.held = nil // let the backing array go
	}
	if err != nil {
		s.appendErr++
		if len(s.held) > 0 {
			return fmt.Errorf("spool %d of %d alerts, %d held in memory to retry (%d bytes, bound %d): %w",
				wrote, n, len(s.held), s.heldBytes, s.opts.MaxHeldBytes, err)
		}
		return fmt.Errorf("spool %d alerts: %w", n, err)
	}
	return nil
}

// appendLocked writes recs in order and returns how many it wrote; a write
// error stops it there.
func (s *Spool) appendLocked(recs []held) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	var werr error
	wrote := 0
	for _, r := range recs {
		if s.active == nil {
			// A roll whose new segment could not be created (disk full)
			// left none open; try again.
			if werr = s.newSegment(); werr != nil {
				break
			}
		}
		frame := encodeRecord(s.next, r.at, r.payload)
		g := s.segs[len(s.segs)-1]
		if g.size+int64(len(frame)) > s.opts.SegmentBytes && g.count() > 0 {
			if werr = s.roll(); werr != nil {
				break
			}
		}
		for s.bytes+int64(len(frame)) > s.opts.MaxBytes {
			evicted, err := s.evictOldest()
			if err != nil {
				werr = err
				break
			}
			if !evicted {
				break
			}
		}
		if werr != nil {
			break
		}
		g = s.segs[len(s.segs)-1]
		if n, err := s.active.Write(frame); err != nil {
			// Leave no partial frame for the next append to build on.
			if n > 0 {
				_ = s.active.Truncate(g.size)
			}
			werr = fmt.Errorf("write spool record: %w", err)
			break
		}
		g.offsets = append(g.offsets, uint32(g.size))
		g.times = append(g.times, r.at)
		g.size += int64(len(frame))
		s.bytes += int64(len(frame))
		s.next++
		s.live++
		wrote++
		for s.live > s.opts.MaxRecords {
			s.dropOldest()
		}
	}
	if wrote > 0 && s.active != nil {
		// The records are in the page cache and indexed either way: a
		// failed fsync risks them only in a crash, so they are not held.
		if err := s.active.Sync(); err != nil {
			werr = errors.Join(werr, fmt.Errorf("sync spool segment: %w", err))
		}
	}
	if err := s.commit(); err != nil {
		werr = errors.Join(werr, err)
	}
	if wrote > 0 {
		select {
		case s.appended <- struct{}{}:
		default:
		}
	}
	return wrote, werr
}

// evictOldest deletes the oldest segment to make room, counting its
// waiting records as dropped. The file itself goes once the state that no
// longer needs it is saved.
func (s *Spool) evictOldest() (bool, error) {
	g := s.segs[0]
	if len(s.segs) == 1 {
		if g.count() == 0 {
			return false, nil
		}
		if err := s.roll(); err != nil {
			return false, err
		}
	}
	if g.count() > 0 && g.last() > s.acked {
		first := 0
		if s.acked >= g.base {
			first = int(s.acked - g.base + 1)
		}
		n := g.count() - first
		s.noteDrop(dropFull, uint64(n), time.Unix(0, g.times[first]), time.Unix(0, g.times[g.count()-1]))
		s.live -= n
		s.acked = g.last()
		s.dirty = true
	}
	s.segs = s.segs[1:]
	s.bytes -= g.size
	s.trash = append(s.trash, g.path)
	return true, nil
}

// dropOldest drops the oldest waiting record.
func (s *Spool) dropOldest() {
	gi, ri, ok := s.locate(s.acked + 1)
	if !ok {
		return
	}
	g := s.segs[gi]
	t := time.Unix(0, g.times[ri])
	s.noteDrop(dropFull, 1, t, t)
	s.acked = g.base + uint64(ri)
	s.live--
}

// noteDrop adds to the report of drops not yet sent.
func (s *Spool) noteDrop(why dropReason, n uint64, first, last time.Time) {
	if n == 0 {
		return
	}
	s.drops.add(why, n)
	s.dirty = true
	if s.pending == nil {
		s.pending = &DropReport{ID: alert.NewID(first), Revision: 1, First: first, Last: last}
	}
	p := s.pending
	p.Count += n
	p.Reasons.add(why, n)
	if first.Before(p.First) {
		p.First = first
	}
	if last.After(p.Last) {
		p.Last = last
	}
}

// locate finds the first spooled record with a seq at or above seq.
func (s *Spool) locate(seq uint64) (segIdx, recIdx int, ok bool) {
	for i, g := range s.segs {
		if g.count() == 0 || g.last() < seq {
			continue
		}
		if seq <= g.base {
			return i, 0, true
		}
		return i, int(seq - g.base), true
	}
	return 0, 0, false
}

// commit saves the state, then deletes what it no longer needs: evicted
// segments and sealed segments whose records are all done.
func (s *Spool) commit() error {
	if s.dirty || len(s.trash) > 0 {
		if err := s.saveState(); err != nil {
			return err
		}
	}
	var errs []error
	for _, p := range s.trash {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove spool segment: %w", err))
		}
	}
	s.trash = s.trash[:0]
	for len(s.segs) > 1 && s.segs[0].count() > 0 && s.segs[0].last() <= s.acked {
		g := s.segs[0]
		if err := os.Remove(g.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove acknowledged spool segment: %w", err))
			break
		}
		s.segs = s.segs[1:]
		s.bytes -= g.size
	}
	return errors.Join(errs...)
}

func (s *Spool) saveState() error {
	if err := writeState(s.dirf, spoolState{Acked: s.acked, Pending: s.pending}); err != nil {
		return err
	}
	s.dirty = false
	return nil
}

// Ack records that the collector stored every record up to and including
// seq. Segments whose records are all acknowledged are deleted.
func (s *Spool) Ack(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("spool is closed")
	}
	if seq <= s.acked {
		return nil
	}
	if seq >= s.next {
		return fmt.Errorf("ack of seq %d, but the spool has only reached %d", seq, s.next-1)
	}
	for _, g := range s.segs {
		if g.count() == 0 || g.last() <= s.acked || g.base > seq {
			continue
		}
		lo, hi := max(g.base, s.acked+1), min(g.last(), seq)
		s.live -= int(hi - lo + 1)
	}
	s.acked = seq
	s.dirty = true
	return s.commit()
}

// Acked returns the seq up to which every record is acknowledged or dropped;
// a sender that reconnects starts reading after it.
func (s *Spool) Acked() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

// Read returns up to maxRecords waiting records with a seq above after,
// oldest first, stopping before maxBytes of encoded alerts unless that would
// return none. Records dropped since the caller last read are skipped.
func (s *Spool) Read(after uint64, maxRecords int, maxBytes int) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("spool is closed")
	}
	gi, ri, ok := s.locate(max(after, s.acked) + 1)
	if !ok || maxRecords <= 0 {
		return nil, nil
	}
	var out []Record
	budget := int64(maxBytes)
	for ; gi < len(s.segs) && len(out) < maxRecords; gi, ri = gi+1, 0 {
		g := s.segs[gi]
		if g.count() == 0 {
			continue
		}
		// Take a span of whole records that fits the limits, then read it
		// with one pread.
		j := ri
		for j < g.count() && len(out)+(j-ri) < maxRecords {
			size := g.end(j) - int64(g.offsets[j])
			if budget < size && (len(out) > 0 || j > ri) {
				break
			}
			budget -= size
			j++
		}
		if j == ri {
			break
		}
		recs, err := s.readSpan(g, ri, j)
		if err != nil {
			return out, err
		}
		out = append(out, recs...)
		if j < g.count() {
			break // out of budget
		}
	}
	return out, nil
}

func (s *Spool) readSpan(g *segment, from, to int) ([]Record, error) {
	f, err := os.Open(g.path)
	if err != nil {
		return nil, fmt.Errorf("open spool segment: %w", err)
	}
	defer f.Close()
	start := int64(g.offsets[from])
	buf := make([]byte, g.end(to-1)-start)
	if _, err := f.ReadAt(buf, start); err != nil {
		return nil, fmt.Errorf("read spool segment %s: %w", g.path, err)
	}
	recs, err := decodeRecords(buf)
	if err != nil {
		return nil, fmt.Errorf("spool segment %s changed on disk under the agent: %w", g.path, err)
	}
	out := make([]Record, 0, len(recs))
	for i, rec := range recs {
		want := g.base + uint64(from+i)
		if rec.seq != want {
			return nil, fmt.Errorf("spool segment %s holds seq %d where %d belongs: %w", g.path, rec.seq, want, errCorrupt)
		}
		var a alert.Alert
		if err := json.Unmarshal(rec.payload, &a); err != nil {
			// A record that passed its CRC but is not an alert was written
			// by a different format; skipping it beats blocking the spool.
			if !s.bad[rec.seq] {
				s.bad[rec.seq] = true
				t := time.Unix(0, rec.time)
				s.noteDrop(dropDamaged, 1, t, t)
				s.log.Error("skipping spooled record that is not an alert", zap.Uint64("seq", rec.seq), zap.Error(err))
			}
			continue
		}
		out = append(out, Record{Seq: rec.seq, Spooled: time.Unix(0, rec.time), Alert: a})
	}
	return out, nil
}

// Appended signals (without blocking the appender) that records were
// appended since the last receive. Only one reader (the sender) should
// wait on it.
func (s *Spool) Appended() <-chan struct{} { return s.appended }

// DroppedRuleID is the rule ID of the alert that reports spool drops.
const DroppedRuleID = "errnowatch.delivery.dropped"

// ReportDrops appends the alert reporting the records dropped so far, if
// any, and starts a new count. The sender calls it when the collector is
// reachable, so that the report is not itself dropped by the outage that
// caused it. It returns the count reported.
func (s *Spool) ReportDrops(node string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		return 0, nil
	}
	rep := *s.pending
	a := dropAlert(rep, node)
	b, err := json.Marshal(&a)
	if err != nil {
		return 0, fmt.Errorf("encode drop alert: %w", err)
	}
	// Held alerts go first: they are older, and the report counts drops
	// up to now.
	if err := s.flushLocked(); err != nil {
		return 0, err
	}
	// Cleared before the append so that drops the append itself causes
	// start the next report; the state saved after the fsync records both.
	s.pending = nil
	s.dirty = true
	if _, err := s.appendLocked([]held{{payload: b, at: time.Now().UnixNano()}}); err != nil {
		// The report may have reached the disk before the error; sending it
		// again at a higher revision updates that alert rather than adding one.
		p := rep
		p.Revision++
		if s.pending != nil {
			p.Count += s.pending.Count
			p.Last = s.pending.Last
			p.Reasons.addAll(s.pending.Reasons)
		}
		s.pending = &p
		s.dirty = true
		return 0, err
	}
	return rep.Count, nil
}

func dropAlert(rep DropReport, node string) alert.Alert {
	return alert.Alert{
		ID:       rep.ID,
		Revision: rep.Revision,
		RuleID:   DroppedRuleID,
		Severity: alert.SeverityHigh,
		Tags:     []string{"errnowatch", "delivery"},
		Description: "The agent dropped alerts before the collector had them: the oldest when its spool was full, " +
			"alerts the disk refused past the in-memory bound, and alerts that failed validation. " +
			"Alerts raised in that time may be missing; raise the spool bound, free the spool's disk or " +
			"restore the collector sooner, and check the agent's log for the invalid alerts.",
		Message: fmt.Sprintf("agent dropped %d alerts spooled between %s and %s (%s)",
			rep.Count, rep.First.UTC().Format(time.RFC3339), rep.Last.UTC().Format(time.RFC3339), rep.Reasons),
		GroupBy:   alert.GroupByNode,
		FirstSeen: rep.First,
		LastSeen:  rep.Last,
		Node:      node,
		Host:      true,
	}
}

// Stats returns the spool's depth and drop counts.
func (s *Spool) Stats() SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SpoolStats{Records: s.live, Bytes: s.bytes, Segments: len(s.segs), Dropped: s.drops.total(), Drops: s.drops,
		Held: len(s.held), HeldBytes: s.heldBytes, AppendErrors: s.appendErr}
	if s.pending != nil {
		st.PendingDrops = s.pending.Count
	}
	if gi, ri, ok := s.locate(s.acked + 1); ok {
		st.Oldest = time.Unix(0, s.segs[gi].times[ri])
	}
	return st
}

// Close writes what is held in memory if the disk takes it, syncs the
// active segment, saves the state and releases the directory for another
// process. Held alerts the disk still refuses are lost with the process:
// they are counted as dropped, in the state saved if it can be. Stop the
// sender (end its Run) first: a sender reading a closed spool retries until
// its context ends.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	var errs []error
	if err := s.flushLocked(); err != nil {
		errs = append(errs, err)
		for _, r := range s.held {
			t := time.Unix(0, r.at)
			s.noteDrop(dropUnwritable, 1, t, t)
		}
		s.log.Error("closing the spool loses the alerts held in memory", zap.Int("dropped", len(s.held)))
		s.held, s.heldBytes = nil, 0
	}
	s.closed = true
	if s.active != nil {
		if err := s.active.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("sync spool segment: %w", err))
		}
	}
	if err := s.commit(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, s.closeFiles())
	return errors.Join(errs...)
}

func (s *Spool) closeFiles() error {
	var errs []error
	for _, f := range []*os.File{s.active, s.dirf, s.lock} {
		if f != nil {
			errs = append(errs, f.Close()) // closing the lock file releases the flock
		}
	}
	s.active, s.dirf, s.lock = nil, nil, nil
	return errors.Join(errs...)
}
