package storage

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
)

// Batch header layout (record batch v2). Only the fields storage needs.
const (
	hdrBaseOffset      = 0
	hdrBatchLength     = 8
	hdrLeaderEpoch     = 12
	hdrMagic           = 16
	hdrAttributes      = 21
	hdrLastOffsetDelta = 23
	hdrFirstTimestamp  = 27
	hdrMaxTimestamp    = 35
	hdrProducerID      = 43
	hdrProducerEpoch   = 51
	hdrBaseSequence    = 53
	hdrRecordCount     = 57
	batchHeaderSize    = 61
	logOverhead        = 12 // baseOffset + batchLength precede what batchLength counts
	offsetHdrSize      = hdrLastOffsetDelta + 4
	timeHdrSize        = hdrMaxTimestamp + 8

	attrControl = 1 << 5
)

const (
	offsetEntrySize = 8  // relative offset uint32, position uint32
	timeEntrySize   = 12 // max timestamp int64, relative offset uint32
)

type offsetEntry struct {
	rel uint32 // base offset of a batch, relative to the segment base
	pos uint32 // its file position
}

type timeEntry struct {
	ts  int64  // the largest batch max timestamp so far in the segment
	rel uint32 // base offset (relative) of the first batch that reached it
}

// segment is one .log file and its in-memory indexes.
//
// Fields below are written with Log.mu and Log.segMu both held and read with
// either, except refs (atomic), synced and persisted (written by the flush
// round under segMu alone, read under segMu) and the mu-only bookkeeping
// marked so. Bytes of the file below size never change while the segment
// is in the log.
type segment struct {
	base int64
	f    *os.File
	refs atomic.Int32 // the log's reference plus one per ReadResult

	size      int64 // bytes of whole batches
	next      int64 // offset after the last batch; base when empty
	index     []offsetEntry
	tindex    []timeEntry
	maxTs     int64 // largest batch max timestamp, -1 when empty
	maxTsOff  int64 // base offset of the first batch carrying maxTs
	firstTs   int64 // segment.ms is measured from here (ms)
	sealed    bool  // rolled: no more appends
	synced    int64 // bytes known fsynced
	persisted bool  // index files written and fsynced for the current contents

	sinceIndex int64 // bytes appended since the last offset index entry (mu only)

	segTxns // transaction index (txnindex.go)
}

func newSegment(base int64, f *os.File) *segment {
	s := &segment{base: base, f: f, next: base, maxTs: -1, maxTsOff: -1, firstTs: -1}
	s.refs.Store(1)
	return s
}

func (s *segment) ref() { s.refs.Add(1) }

// release drops a reference; the last one closes the file. The file may
// have been unlinked long before: readers keep reading it until then.
func (s *segment) release() {
	if n := s.refs.Add(-1); n == 0 {
		s.f.Close()
	} else if n < 0 {
		panic("storage: segment released more often than referenced")
	}
}

// track records a batch written at pos: indexes, timestamps, next offset.
// The offset index gets an entry when more than interval bytes were written
// since the previous one, so a lookup scans at most about interval bytes of
// headers; the time index gets one at the same moments when the max
// timestamp grew.
func (s *segment) track(base, last, maxTs, pos, size int64, interval int32) {
	if s.sinceIndex >= int64(interval) {
		s.index = append(s.index, offsetEntry{rel: uint32(base - s.base), pos: uint32(pos)})
		s.sinceIndex = 0
		if n := len(s.tindex); s.maxTs >= 0 && (n == 0 || s.maxTs > s.tindex[n-1].ts) {
			s.tindex = append(s.tindex, timeEntry{ts: s.maxTs, rel: uint32(s.maxTsOff - s.base)})
		}
	}
	s.sinceIndex += size
	if maxTs > s.maxTs {
		s.maxTs, s.maxTsOff = maxTs, base
	}
	s.next = last + 1
}

// seal closes the time index with the segment's max timestamp, so a sealed
// segment's max timestamp can be read back from its .timeindex.
func (s *segment) seal() {
	s.sealed = true
	if n := len(s.tindex); s.maxTs >= 0 && (n == 0 || s.maxTs > s.tindex[n-1].ts) {
		s.tindex = append(s.tindex, timeEntry{ts: s.maxTs, rel: uint32(s.maxTsOff - s.base)})
	}
}

// resetIndexes forgets all derived state before a rebuild.
func (s *segment) resetIndexes() {
	s.index, s.tindex = s.index[:0], s.tindex[:0]
	s.maxTs, s.maxTsOff, s.next, s.sinceIndex = -1, -1, s.base, 0
	s.persisted = false
}

// floorPos is the position of the last indexed batch whose base offset is
// <= off (0 if none): a batch boundary at or before off's batch.
func (s *segment) floorPos(off int64) int64 {
	if off < s.base {
		return 0
	}
	rel := off - s.base
	i := sort.Search(len(s.index), func(i int) bool { return int64(s.index[i].rel) > rel })
	if i == 0 {
		return 0
	}
	return int64(s.index[i-1].pos)
}

// floorPosByPos is the last indexed batch boundary <= pos (0 if none).
func (s *segment) floorPosByPos(pos int64) int64 {
	i := sort.Search(len(s.index), func(i int) bool { return int64(s.index[i].pos) > pos })
	if i == 0 {
		return 0
	}
	return int64(s.index[i-1].pos)
}

// timeFloor is an offset from which scanning forward finds the first batch
// with max timestamp >= ts: every batch before the returned offset has a
// smaller max timestamp. Time index entries name the first batch that
// reached each maximum, which makes this hold.
func (s *segment) timeFloor(ts int64) int64 {
	i := sort.Search(len(s.tindex), func(i int) bool { return s.tindex[i].ts >= ts })
	if i == 0 {
		return s.base
	}
	return s.base + int64(s.tindex[i-1].rel)
}

// Index files hold the in-memory entries as they are, big endian.

func encodeOffsetIndex(es []offsetEntry) []byte {
	b := make([]byte, 0, len(es)*offsetEntrySize)
	for _, e := range es {
		b = binary.BigEndian.AppendUint32(b, e.rel)
		b = binary.BigEndian.AppendUint32(b, e.pos)
	}
	return b
}

func encodeTimeIndex(es []timeEntry) []byte {
	b := make([]byte, 0, len(es)*timeEntrySize)
	for _, e := range es {
		b = binary.BigEndian.AppendUint64(b, uint64(e.ts))
		b = binary.BigEndian.AppendUint32(b, e.rel)
	}
	return b
}

// decodeOffsetIndex parses and sanity-checks an offset index for a segment
// of size bytes: entries strictly increasing in offset and position, all
// inside the file.
func decodeOffsetIndex(b []byte, size int64) ([]offsetEntry, error) {
	if len(b)%offsetEntrySize != 0 {
		return nil, fmt.Errorf("offset index length %d: %w", len(b), ErrCorrupt)
	}
	es := make([]offsetEntry, len(b)/offsetEntrySize)
	for i := range es {
		e := offsetEntry{rel: binary.BigEndian.Uint32(b[i*8:]), pos: binary.BigEndian.Uint32(b[i*8+4:])}
		if int64(e.pos)+batchHeaderSize > size || (i > 0 && (e.rel <= es[i-1].rel || e.pos <= es[i-1].pos)) {
			return nil, fmt.Errorf("offset index entry %d: %w", i, ErrCorrupt)
		}
		es[i] = e
	}
	return es, nil
}

// decodeTimeIndex parses a time index: timestamps strictly increasing,
// relative offsets below limit (the segment's next offset - base).
func decodeTimeIndex(b []byte, limit int64) ([]timeEntry, error) {
	if len(b)%timeEntrySize != 0 {
		return nil, fmt.Errorf("time index length %d: %w", len(b), ErrCorrupt)
	}
	es := make([]timeEntry, len(b)/timeEntrySize)
	for i := range es {
		e := timeEntry{ts: int64(binary.BigEndian.Uint64(b[i*12:])), rel: binary.BigEndian.Uint32(b[i*12+8:])}
		if int64(e.rel) >= limit || (i > 0 && (e.ts <= es[i-1].ts || e.rel < es[i-1].rel)) {
			return nil, fmt.Errorf("time index entry %d: %w", i, ErrCorrupt)
		}
		es[i] = e
	}
	return es, nil
}

// File naming: base offsets zero-padded to 20 digits, so names sort like
// offsets.

func offsetName(off int64, suffix string) string {
	return fmt.Sprintf("%020d%s", off, suffix)
}

func segmentName(base int64) string    { return offsetName(base, logSuffix) }
func indexName(base int64) string      { return offsetName(base, indexSuffix) }
func timeIndexName(base int64) string  { return offsetName(base, timeIndexSuffix) }
func snapshotName(offset int64) string { return offsetName(offset, snapshotSuffix) }
func parseOffsetName(name, suffix string) (int64, bool) {
	stem, ok := strings.CutSuffix(name, suffix)
	if !ok || len(stem) != 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(stem, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// lastSeq is the sequence of a batch's last record; sequences wrap from
// MaxInt32 to 0 like Kafka's.
func lastSeq(base, lastOffsetDelta int32) int32 {
	if base > math.MaxInt32-lastOffsetDelta {
		return lastOffsetDelta - (math.MaxInt32 - base) - 1
	}
	return base + lastOffsetDelta
}

// header is the part of a stored batch header storage reads back.
type header struct {
	base      int64
	length    int32 // batchLength: bytes after the 12-byte prefix
	epoch     int32 // partition leader epoch
	magic     int8
	attrs     int16
	lastDelta int32
	firstTs   int64
	maxTs     int64
	pid       int64
	pepoch    int16
	baseSeq   int32
}

func (h *header) last() int64     { return h.base + int64(h.lastDelta) }
func (h *header) size() int64     { return logOverhead + int64(h.length) }
func (h *header) isControl() bool { return h.attrs&attrControl != 0 }

// parseHeader decodes as much of b as it holds (offsetHdrSize, timeHdrSize
// or batchHeaderSize bytes).
func parseHeader(b []byte) header {
	be := binary.BigEndian
	h := header{
		base:   int64(be.Uint64(b[hdrBaseOffset:])),
		length: int32(be.Uint32(b[hdrBatchLength:])),
		pid:    -1,
	}
	if len(b) >= offsetHdrSize {
		h.epoch = int32(be.Uint32(b[hdrLeaderEpoch:]))
		h.magic = int8(b[hdrMagic])
		h.attrs = int16(be.Uint16(b[hdrAttributes:]))
		h.lastDelta = int32(be.Uint32(b[hdrLastOffsetDelta:]))
	}
	if len(b) >= timeHdrSize {
		h.firstTs = int64(be.Uint64(b[hdrFirstTimestamp:]))
		h.maxTs = int64(be.Uint64(b[hdrMaxTimestamp:]))
	}
	if len(b) >= batchHeaderSize {
		h.pid = int64(be.Uint64(b[hdrProducerID:]))
		h.pepoch = int16(be.Uint16(b[hdrProducerEpoch:]))
		h.baseSeq = int32(be.Uint32(b[hdrBaseSequence:]))
	}
	return h
}

// readHeader preads n header bytes (offsetHdrSize..batchHeaderSize) of the
// batch at pos. It never touches the payload.
func readHeader(f *os.File, pos int64, n int, buf *[batchHeaderSize]byte) (header, error) {
	if _, err := f.ReadAt(buf[:n], pos); err != nil {
		return header{}, fmt.Errorf("read batch header at %d: %w", pos, err)
	}
	h := parseHeader(buf[:n])
	if h.length < batchHeaderSize-logOverhead || h.lastDelta < 0 {
		return h, fmt.Errorf("batch header at %d: %w", pos, ErrCorrupt)
	}
	return h, nil
}
