package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/strata-broker/strata/proto"
)

// FileRange is a run of whole batches inside a segment file, to be sent
// with sendfile or read with ReadAt.
type FileRange struct {
	File     *os.File
	Pos, Len int64
}

// ReadResult is the answer to Read: whole batches only, possibly spanning
// segments. It holds references on its segments: their files stay open
// (even if retention unlinks them) until Release.
type ReadResult struct {
	Ranges []FileRange
	Len    int64
	segs   []*segment
}

// Release drops the segment references; call it once the ranges are
// written. Calling it again on the same value does nothing.
func (r *ReadResult) Release() {
	for _, s := range r.segs {
		s.release()
	}
	r.segs, r.Ranges = nil, nil
}

// WriteTo copies the batches to w (tests and internal readers; the broker
// sends the ranges with sendfile instead).
func (r *ReadResult) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for _, fr := range r.Ranges {
		m, err := io.Copy(w, io.NewSectionReader(fr.File, fr.Pos, fr.Len))
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (r *ReadResult) add(s *segment, pos, n int64) {
	r.Ranges = append(r.Ranges, FileRange{File: s.f, Pos: pos, Len: n})
	r.segs = append(r.segs, s)
	r.Len += n
}

// segmentFor is the index of the segment that holds offset (the last one
// with base <= offset, 0 if offset precedes all). Callers hold segMu.
func (l *Log) segmentFor(offset int64) int {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset })
	return max(i-1, 0)
}

// Read returns whole batches starting with the one containing offset, up to
// maxBytes, never including a batch that reaches maxOffset (exclusive;
// callers pass the high watermark or the last stable offset) nor past the
// log end. With minOneBatch a first batch bigger than maxBytes is returned
// whole (KIP-74). offset below the log start or past the log end is
// ErrOffsetOutOfRange; offset in [LogStartOffset, LocalLogStartOffset) is
// ErrOffsetTiered (the remote tier serves it); offset at the log end (or at
// maxOffset) gives an empty result.
//
// Positions come from the sparse offset index plus a walk over batch
// headers (27-byte preads); payloads are never read.
func (l *Log) Read(offset, maxOffset int64, maxBytes int32, minOneBatch bool) (ReadResult, error) {
	var rr ReadResult
	var hb [batchHeaderSize]byte
	remaining := max(int64(maxBytes), 0)
	cur := offset
	for firstRound := true; ; firstRound = false {
		l.segMu.RLock()
		if len(l.segs) == 0 {
			l.segMu.RUnlock()
			rr.Release()
			return ReadResult{}, fmt.Errorf("read %s: %w", l.dir, ErrClosed)
		}
		if firstRound && (offset < l.logStart || offset > l.leo) {
			ls, leo := l.logStart, l.leo
			l.segMu.RUnlock()
			return ReadResult{}, fmt.Errorf("read %s offset %d (log start %d, end %d): %w", l.dir, offset, ls, leo, ErrOffsetOutOfRange)
		}
		if firstRound && offset < l.segs[0].base {
			local := l.segs[0].base
			l.segMu.RUnlock()
			return ReadResult{}, fmt.Errorf("read %s offset %d (local log start %d): %w", l.dir, offset, local, ErrOffsetTiered)
		}
		maxOffset = min(maxOffset, l.leo)
		if cur >= maxOffset {
			l.segMu.RUnlock()
			break
		}
		i := l.segmentFor(cur)
		s := l.segs[i]
		segEnd, segNext := s.size, s.next
		nextBase := int64(-1)
		if i+1 < len(l.segs) {
			nextBase = l.segs[i+1].base
		}
		startHint := s.floorPos(cur)
		maxHint := int64(-1)
		if maxOffset < segNext {
			maxHint = s.floorPos(maxOffset)
		}
		bytesHint := s.floorPosByPos(startHint + remaining)
		s.ref()
		l.segMu.RUnlock()

		start, err := seekBatch(s.f, startHint, segEnd, cur, &hb)
		end := segEnd
		if err == nil && maxHint >= 0 {
			end, err = seekBatch(s.f, max(maxHint, start), segEnd, maxOffset, &hb)
		}
		if err != nil {
			s.release()
			rr.Release()
			return ReadResult{}, fmt.Errorf("read %s offset %d: %w", l.dir, offset, err)
		}
		if start >= end {
			s.release()
			if maxHint >= 0 || nextBase < 0 {
				break
			}
			cur = max(cur+1, nextBase) // offsets missing between segments
			continue
		}
		if n := end - start; n <= remaining {
			rr.add(s, start, n)
			remaining -= n
			if maxHint >= 0 || nextBase < 0 {
				break
			}
			cur = max(segNext, nextBase)
			continue
		}
		// Not everything fits: stop at the last batch boundary within
		// maxBytes, or take one oversized first batch.
		e, err := lastBoundary(s.f, max(bytesHint, start), start+remaining, &hb)
		if err == nil && e == start && minOneBatch && rr.Len == 0 {
			var h header
			if h, err = readHeader(s.f, start, offsetHdrSize, &hb); err == nil {
				e = start + h.size()
			}
		}
		if err != nil {
			s.release()
			rr.Release()
			return ReadResult{}, fmt.Errorf("read %s offset %d: %w", l.dir, offset, err)
		}
		if e > start {
			rr.add(s, start, e-start)
		} else {
			s.release()
		}
		break
	}
	return rr, nil
}

// seekBatch returns the position of the first batch at or after pos (a
// batch boundary) whose last offset is >= target, or end if none.
func seekBatch(f *os.File, pos, end, target int64, hb *[batchHeaderSize]byte) (int64, error) {
	for pos < end {
		h, err := readHeader(f, pos, offsetHdrSize, hb)
		if err != nil {
			return 0, err
		}
		if h.last() >= target {
			return pos, nil
		}
		pos += h.size()
	}
	return end, nil
}

// lastBoundary returns the last batch boundary <= limit, walking headers
// from pos (a boundary <= limit). limit is inside the readable part of the
// file.
func lastBoundary(f *os.File, pos, limit int64, hb *[batchHeaderSize]byte) (int64, error) {
	for pos < limit {
		h, err := readHeader(f, pos, offsetHdrSize, hb)
		if err != nil {
			return 0, err
		}
		next := pos + h.size()
		if next > limit {
			break
		}
		pos = next
	}
	return pos, nil
}

// errFound stops a record walk early.
var errFound = errors.New("found")

// OffsetForTimestamp finds the first batch (at or after the log start) with
// max timestamp >= ts and, inside it, the first record with timestamp >= ts:
// ListOffsets by timestamp. epoch is that batch's leader epoch. Only local
// segments are searched: for a tiered log the caller asks the remote tier
// about timestamps older than LocalLogStartOffset.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, epoch int32, ok bool) {
	var hb [batchHeaderSize]byte
	from := int64(-1)
	for {
		l.segMu.RLock()
		from = max(from, l.logStart)
		var s *segment
		for _, c := range l.segs {
			if c.next > from && c.maxTs >= ts {
				s = c
				break
			}
		}
		if s == nil {
			l.segMu.RUnlock()
			return -1, -1, -1, false
		}
		from = max(from, s.timeFloor(ts))
		pos, end, next := s.floorPos(from), s.size, s.next
		s.ref()
		l.segMu.RUnlock()

		for pos < end {
			h, err := readHeader(s.f, pos, timeHdrSize, &hb)
			if err != nil {
				l.logger.Warn("offset for timestamp: reading batch header", "dir", l.dir, "segment", s.base, "err", err)
				break
			}
			if h.last() >= from && h.maxTs >= ts {
				off, rts, ep, found, err := findRecord(s.f, pos, h.size(), func(o, t int64) bool { return o >= from && t >= ts })
				if err != nil {
					l.logger.Warn("offset for timestamp: reading batch", "dir", l.dir, "segment", s.base, "err", err)
				} else if found {
					s.release()
					return off, rts, ep, true
				}
			}
			pos += h.size()
		}
		s.release()
		from = next
	}
}

// MaxTimestamp returns the record with the largest timestamp in the log
// (the first one if several share it), for ListOffsets MAX_TIMESTAMP;
// (-1, -1, -1) when the log holds no timestamps. Like OffsetForTimestamp it
// sees local segments only.
func (l *Log) MaxTimestamp() (offset, timestamp int64, epoch int32) {
	l.segMu.RLock()
	var s *segment
	for _, c := range l.segs {
		if c.maxTs >= 0 && (s == nil || c.maxTs > s.maxTs) {
			s = c
		}
	}
	if s == nil {
		l.segMu.RUnlock()
		return -1, -1, -1
	}
	maxTs, at := s.maxTs, s.maxTsOff
	pos, end := s.floorPos(at), s.size
	s.ref()
	l.segMu.RUnlock()
	defer s.release()

	var hb [batchHeaderSize]byte
	pos, err := seekBatch(s.f, pos, end, at, &hb)
	if err == nil && pos < end {
		var h header
		if h, err = readHeader(s.f, pos, offsetHdrSize, &hb); err == nil {
			off, _, ep, found, ferr := findRecord(s.f, pos, h.size(), func(_, t int64) bool { return t >= maxTs })
			if err = ferr; err == nil && found {
				return off, maxTs, ep
			}
		}
	}
	if err != nil {
		l.logger.Warn("max timestamp: reading batch", "dir", l.dir, "segment", s.base, "err", err)
	}
	return at, maxTs, l.EpochForOffset(at)
}

// findRecord reads the batch at pos (size bytes) and returns the first
// record for which match(offset, timestamp) holds. LogAppendTime batches
// give every record the batch's max timestamp.
func findRecord(f *os.File, pos, size int64, match func(off, ts int64) bool) (off, ts int64, epoch int32, found bool, err error) {
	raw := make([]byte, size)
	if _, err := f.ReadAt(raw, pos); err != nil {
		return 0, 0, 0, false, err
	}
	err = proto.SplitBatches(raw, false, func(b proto.Batch) error {
		return proto.ForEachRecord(b, func(r proto.Record) error {
			o, t := b.BaseOffset+int64(r.OffsetDelta), b.FirstTimestamp+r.TimestampDelta
			if b.LogAppendTime() {
				t = b.MaxTimestamp
			}
			if match(o, t) {
				off, ts, epoch, found = o, t, b.PartitionLeaderEpoch, true
				return errFound
			}
			return nil
		})
	})
	if errors.Is(err, errFound) {
		err = nil
	}
	return off, ts, epoch, found, err
}
