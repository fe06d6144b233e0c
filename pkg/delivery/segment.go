package delivery

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// A segment file starts with segmentMagic and holds records back to back:
//
//	crc     uint32 LE  CRC-32C of every byte after it (length .. payload)
//	length  uint32 LE  payload length
//	seq     uint64 LE  sequence number, one more than the record before
//	time    int64  LE  append time, Unix nanoseconds
//	payload length bytes of JSON (alert.Alert)
//
// The CRC covers the length so that a flipped length bit cannot make the
// reader take garbage for a record; the length is capped (maxPayload) so
// that a corrupt length cannot make it allocate gigabytes.
const (
	segmentMagic = "EWSPOOL\x01"
	headerLen    = 4 + 4 + 8 + 8
	// maxPayload bounds one alert's JSON. Alerts are a few KiB; a rule that
	// lists thousands of processes is cut off here rather than spooled.
	maxPayload = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks bytes that are not a whole, valid record: a torn tail
// or damage. The reader stops there; what came before is good.
var errCorrupt = errors.New("corrupt spool record")

// record is one framed alert as read from a segment.
type record struct {
	seq     uint64
	time    int64 // Unix nanoseconds when it was appended
	payload []byte
	// raw is the whole frame, header included, for checks and size.
	raw []byte
}

// encodeRecord frames payload; the result is written as one piece.
func encodeRecord(seq uint64, unixNano int64, payload []byte) []byte {
	b := make([]byte, headerLen+len(payload))
	binary.LittleEndian.PutUint32(b[4:], uint32(len(payload)))
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint64(b[16:], uint64(unixNano))
	copy(b[headerLen:], payload)
	binary.LittleEndian.PutUint32(b[0:], crc32.Checksum(b[4:], castagnoli))
	return b
}

// segmentReader reads the records of one segment in order.
type segmentReader struct {
	r   *bufio.Reader
	off int64 // offset of the next record; after an error, of the first bad byte
}

// newSegmentReader checks the magic; a file too short to hold it is a
// segment whose creation was torn and reads as errCorrupt at offset 0.
func newSegmentReader(r io.Reader) (*segmentReader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var m [len(segmentMagic)]byte
	if _, err := io.ReadFull(br, m[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("empty segment: %w", errCorrupt)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("short segment header: %w", errCorrupt)
		}
		return nil, fmt.Errorf("read segment header: %w", err)
	}
	if string(m[:]) != segmentMagic {
		return nil, fmt.Errorf("bad segment magic %q: %w", m[:], errCorrupt)
	}
	return &segmentReader{r: br, off: int64(len(segmentMagic))}, nil
}

// next returns the next record, io.EOF at a clean end, or an error wrapping
// errCorrupt at the first byte that does not start a valid record. Once it
// has returned an error it must not be called again.
func (sr *segmentReader) next() (record, error) {
	var h [headerLen]byte
	n, err := io.ReadFull(sr.r, h[:])
	switch {
	case n == 0 && errors.Is(err, io.EOF):
		return record{}, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return record{}, fmt.Errorf("torn record header at offset %d: %w", sr.off, errCorrupt)
	case err != nil:
		return record{}, fmt.Errorf("read record at offset %d: %w", sr.off, err)
	}
	length := binary.LittleEndian.Uint32(h[4:])
	if length > maxPayload {
		return record{}, fmt.Errorf("record at offset %d claims %d bytes: %w", sr.off, length, errCorrupt)
	}
	raw := make([]byte, headerLen+int(length))
	copy(raw, h[:])
	if _, err := io.ReadFull(sr.r, raw[headerLen:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return record{}, fmt.Errorf("torn record payload at offset %d: %w", sr.off, errCorrupt)
		}
		return record{}, fmt.Errorf("read record at offset %d: %w", sr.off, err)
	}
	if crc32.Checksum(raw[4:], castagnoli) != binary.LittleEndian.Uint32(raw) {
		return record{}, fmt.Errorf("crc mismatch at offset %d: %w", sr.off, errCorrupt)
	}
	sr.off += int64(len(raw))
	return record{
		seq:     binary.LittleEndian.Uint64(raw[8:]),
		time:    int64(binary.LittleEndian.Uint64(raw[16:])),
		payload: raw[headerLen:],
		raw:     raw,
	}, nil
}

// decodeRecords parses a span of whole records read from a segment at a
// known offset; the spool's index promises they are valid, but the bytes
// are checked again because the disk is not the index.
func decodeRecords(b []byte) ([]record, error) {
	var out []record
	for len(b) > 0 {
		if len(b) < headerLen {
			return out, fmt.Errorf("short record header: %w", errCorrupt)
		}
		length := binary.LittleEndian.Uint32(b[4:])
		if length > maxPayload || int(length) > len(b)-headerLen {
			return out, fmt.Errorf("record claims %d bytes: %w", length, errCorrupt)
		}
		raw := b[:headerLen+int(length)]
		if crc32.Checksum(raw[4:], castagnoli) != binary.LittleEndian.Uint32(raw) {
			return out, fmt.Errorf("crc mismatch: %w", errCorrupt)
		}
		out = append(out, record{
			seq:     binary.LittleEndian.Uint64(raw[8:]),
			time:    int64(binary.LittleEndian.Uint64(raw[16:])),
			payload: raw[headerLen:],
			raw:     raw,
		})
		b = b[len(raw):]
	}
	return out, nil
}
