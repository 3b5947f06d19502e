package storage

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/strata-broker/strata/proto"
)

// Compaction of segments that live outside the Log: the tiering layer's
// remote segments of a compacted tiered topic. The record rules are
// Compact's own (cleaner.mapBatch and cleaner.filter), so a remote segment
// loses exactly what the same segment would lose locally: records
// superseded by a later record of their key, tombstones past their delete
// horizon, keyless records; control and transactional batches stay whole;
// offsets never change and the segment's last batch always stays (empty if
// need be), so a cleaned segment still ends where it did.

// SegmentCleaner is one cleaning pass over segments the caller reads: it
// builds the key -> latest offset map from the dirty ones (AddToMap, in
// offset order), then rewrites segments against it (Clean). It is not safe
// for concurrent use.
type SegmentCleaner struct {
	c        cleaner
	res      CompactResult
	interval int32
	full     bool
	end      int64
}

// NewSegmentCleaner starts a pass with the log's clock, index interval and
// producer state: the batch holding a producer's last data offset survives
// (empty if need be) wherever it lives, as in Compact. opts.Now, when set,
// is the pass's clock; MaxOffsetMapBytes bounds the map.
func (l *Log) NewSegmentCleaner(opts CompactOptions) *SegmentCleaner {
	now := opts.Now
	if now.IsZero() {
		now = l.now()
	}
	s := &SegmentCleaner{interval: l.config().IndexIntervalBytes, end: -1}
	s.c = cleaner{
		m:          newOffsetMap(opts.MaxOffsetMapBytes),
		nowMs:      now.UnixMilli(),
		horizonMs:  now.UnixMilli() + opts.DeleteRetention.Milliseconds(),
		prodLast:   l.producerLastOffsets(),
		res:        &s.res,
		minHorizon: math.MaxInt64,
		arena:      make([]byte, 0, 4096),
	}
	return s
}

// AddToMap records in the map the keys of the records at offsets >= from
// of one segment (its first size bytes, read from r, whole batches). Feed
// segments in offset order. When the next batch might not fit, the map is
// full: AddToMap returns full with end the base offset of that batch, the
// map covers [from of the first call, end), and later calls add nothing
// and report full again. A map that fills before its first batch is
// ErrOffsetMapTooSmall.
func (s *SegmentCleaner) AddToMap(r io.Reader, size, from int64) (end int64, full bool, err error) {
	if s.full {
		return s.end, true, nil
	}
	err = readBatchStream(r, size, &s.c.buf, func(b proto.Batch, _ bool) error {
		fit, err := s.c.mapBatch(b, from)
		if err == nil && !fit {
			s.full, s.end = true, b.BaseOffset
			return errFound
		}
		return err
	})
	if err != nil && !errors.Is(err, errFound) {
		return 0, false, err
	}
	if s.full && s.c.m.count == 0 {
		return s.end, true, fmt.Errorf("batch at offset %d: %w", s.end, ErrOffsetMapTooSmall)
	}
	return s.end, s.full, nil
}

// CleanedSegment is what Clean wrote.
type CleanedSegment struct {
	// Changed is false when every batch was kept as it was: what was
	// written equals the input and need not replace it.
	Changed bool
	Size    int64 // bytes written
	// Index and TimeIndex are the bytes of the .index and .timeindex files
	// of the written segment, as the log itself writes them.
	Index, TimeIndex []byte
	// MaxTimestamp is the largest max timestamp of a written batch (-1
	// when none has one).
	MaxTimestamp                                      int64
	RecordsRemoved, TombstonesRemoved, InvalidRecords int64
}

// Clean writes the cleaned batches of one segment (size bytes read from
// r, base offset base) to w, with the map AddToMap built. Every batch must
// lie at or above base, within 2^32 offsets of it (the index is relative).
// The last batch stays, empty if it loses every record, so the segment
// ends where it did; batches keep their offsets, and a tombstone kept for
// the first time gets its delete horizon (now + DeleteRetention).
func (s *SegmentCleaner) Clean(r io.Reader, size, base int64, w io.Writer) (CleanedSegment, error) {
	before := s.res
	ns := newSegment(base, nil) // index bookkeeping only: no file
	bw := bufio.NewWriterSize(w, 1<<20)
	var out CleanedSegment
	var pos int64
	err := readBatchStream(r, size, &s.c.buf, func(b proto.Batch, last bool) error {
		if b.BaseOffset < base || b.LastOffset()-base > math.MaxUint32 {
			return fmt.Errorf("batch [%d, %d] outside segment %d: %w", b.BaseOffset, b.LastOffset(), base, ErrCorrupt)
		}
		raw, ch, err := s.c.filter(b, last)
		if err != nil {
			return err
		}
		out.Changed = out.Changed || ch
		if raw == nil {
			return nil
		}
		if _, err := bw.Write(raw); err != nil {
			return err
		}
		n := int64(len(raw))
		ns.track(b.BaseOffset, b.LastOffset(), b.MaxTimestamp, pos, n, s.interval)
		pos += n
		return nil
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return CleanedSegment{}, fmt.Errorf("clean segment %d: %w", base, err)
	}
	ns.seal()
	out.Size = pos
	out.Index = encodeOffsetIndex(ns.index)
	out.TimeIndex = encodeTimeIndex(ns.tindex)
	out.MaxTimestamp = ns.maxTs
	out.RecordsRemoved = s.res.RecordsRemoved - before.RecordsRemoved
	out.TombstonesRemoved = s.res.TombstonesRemoved - before.TombstonesRemoved
	out.InvalidRecords = s.res.InvalidRecords - before.InvalidRecords
	return out, nil
}

// NextHorizon is the earliest delete horizon (Unix ms) of a tombstone the
// pass kept, math.MaxInt64 when it kept none: from then on a pass can
// remove it.
func (s *SegmentCleaner) NextHorizon() int64 { return s.c.minHorizon }

// remoteCleanerFile is the remote cleaner's checkpoint in the log
// directory: "0\n<first dirty offset>\n<next delete horizon ms>\n".
const remoteCleanerFile = "remote-cleaner-checkpoint"

// RemoteCleanerCheckpoint returns what the cleaner of this partition's
// remote segments last recorded here (WriteRemoteCleanerCheckpoint): the
// first offset its next pass must map, and the earliest delete horizon of
// a tombstone it kept (math.MaxInt64: none). ok is false when nothing was
// recorded; a damaged file reads as nothing recorded, which only costs a
// pass over the whole remote tier.
func (l *Log) RemoteCleanerCheckpoint() (firstDirty, nextHorizon int64, ok bool) {
	b, err := os.ReadFile(filepath.Join(l.dir, remoteCleanerFile))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			l.logger.Warn("ignoring remote cleaner checkpoint", "dir", l.dir, "err", err)
		}
		return 0, 0, false
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) == 3 && lines[0] == checkpointVersion {
		off, err1 := strconv.ParseInt(lines[1], 10, 64)
		h, err2 := strconv.ParseInt(lines[2], 10, 64)
		if err1 == nil && err2 == nil && off >= 0 {
			return off, h, true
		}
	}
	l.logger.Warn("ignoring malformed remote cleaner checkpoint", "dir", l.dir)
	return 0, 0, false
}

// WriteRemoteCleanerCheckpoint durably records the remote cleaner's state
// (see RemoteCleanerCheckpoint). The local log never reads it: remote and
// local segments are cleaned by separate passes with their own
// checkpoints.
func (l *Log) WriteRemoteCleanerCheckpoint(firstDirty, nextHorizon int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	data := checkpointVersion + "\n" + strconv.FormatInt(firstDirty, 10) + "\n" + strconv.FormatInt(nextHorizon, 10) + "\n"
	return writeFileAtomic(l.dirf, l.dir, remoteCleanerFile, []byte(data))
}
