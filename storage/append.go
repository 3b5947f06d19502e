package storage

import (
	"fmt"
	"math"
	"os"

	"github.com/strata-broker/strata/proto"
)

// AppendInfo describes an append. For a duplicate idempotent batch it holds
// the offsets the original got, and nothing was written.
type AppendInfo struct {
	FirstOffset, LastOffset, LogAppendTime, LogStartOffset int64
	Duplicate                                              bool
}

// Append assigns offsets to already validated batches (rewriting base
// offset and partition leader epoch in b.Raw in place), checks idempotent
// producer sequences atomically with the write, applies LogAppendTime when
// logAppendTime >= 0, writes all batches with one system call when they are
// contiguous in memory (one pwritev otherwise), updates the indexes and
// rolls segments. All batches of one call are appended or none.
//
// Append does not wait for durability: call WaitDurable with
// LastOffset+1.
func (l *Log) Append(batches []proto.Batch, leaderEpoch int32, logAppendTime int64) (AppendInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return AppendInfo{}, fmt.Errorf("append %s: %w", l.dir, ErrClosed)
	}
	if err := l.failure(); err != nil {
		return AppendInfo{}, fmt.Errorf("append %s: %w", l.dir, err)
	}
	cfg := l.config()
	firstOffset := l.leo
	info := AppendInfo{FirstOffset: firstOffset, LastOffset: firstOffset - 1, LogAppendTime: -1, LogStartOffset: l.logStart}
	if len(batches) == 0 {
		return info, nil
	}
	var total int64
	for i := range batches {
		b := &batches[i]
		if len(b.Raw) < batchHeaderSize || b.LastOffsetDelta < 0 {
			return AppendInfo{}, fmt.Errorf("append %s: batch %d of %d bytes: %w", l.dir, i, len(b.Raw), ErrCorrupt)
		}
		total += int64(len(b.Raw))
		info.LastOffset += int64(b.LastOffsetDelta) + 1
	}

	dup, err := l.prod.stage(batches, firstOffset, logAppendTime)
	if err != nil {
		return AppendInfo{}, fmt.Errorf("append %s: %w", l.dir, err)
	}
	if dup != nil {
		// Kafka answers a duplicate with the original batch's offsets and,
		// for LogAppendTime topics, its timestamp.
		info = AppendInfo{FirstOffset: dup.firstOff, LastOffset: dup.lastOff, LogAppendTime: -1, LogStartOffset: l.logStart, Duplicate: true}
		if logAppendTime >= 0 {
			info.LogAppendTime = dup.maxTs
		}
		return info, nil
	}

	act := l.active()
	if l.shouldRoll(act, cfg, total, info.LastOffset) {
		if err := l.roll(); err != nil {
			return AppendInfo{}, fmt.Errorf("append %s: roll: %w", l.dir, err)
		}
	}
	if err := l.writeBatches(batches, firstOffset, total, writeMode{stamp: true, leaderEpoch: leaderEpoch, logAppendTime: logAppendTime}); err != nil {
		return AppendInfo{}, fmt.Errorf("append %s: %w", l.dir, err)
	}
	if logAppendTime >= 0 {
		info.LogAppendTime = logAppendTime
	}
	return info, nil
}

// writeMode says how writeBatches treats the batches' headers.
type writeMode struct {
	// stamp: Append's batches get their base offsets, leaderEpoch and (for
	// logAppendTime >= 0) LogAppendTime written into their headers, and the
	// epoch history learns leaderEpoch at the first offset. Without it the
	// batches are a replica's copies, written as they are, and the epoch
	// history learns each batch's own partition leader epoch.
	stamp         bool
	leaderEpoch   int32
	logAppendTime int64
}

// writeBatches writes batches at the log end into the active segment (the
// caller decided about rolling), publishes them to readers (indexes, LEO,
// epoch history), commits the producer state staged for them and pokes the
// flusher. total is their size in bytes. A failed write is undone, so the
// segment keeps whole batches only. Callers hold mu.
func (l *Log) writeBatches(batches []proto.Batch, firstOffset, total int64, m writeMode) error {
	cfg := l.config()
	act := l.active()
	if act.size+total > math.MaxUint32 {
		return fmt.Errorf("%d bytes do not fit a segment: %w", total, ErrCorrupt)
	}

	if m.stamp {
		off := firstOffset
		for i := range batches {
			raw := batches[i].Raw
			proto.SetBaseOffset(raw, off)
			proto.SetPartitionLeaderEpoch(raw, m.leaderEpoch)
			if m.logAppendTime >= 0 {
				proto.SetLogAppendTime(raw, m.logAppendTime)
			}
			off += int64(batches[i].LastOffsetDelta) + 1
		}
	}

	pos := act.size
	if err := writeBuffers(act.f, l.coalesce(batches), pos); err != nil {
		// Undo a partial write so the file keeps only whole batches; if that
		// fails too the segment's tail is unknown and the log must stop.
		if terr := act.f.Truncate(pos); terr != nil {
			l.fail(fmt.Errorf("write %s failed (%v) and could not be undone: %w", act.f.Name(), err, terr))
		}
		return err
	}

	epochChanged := false
	l.segMu.Lock()
	if act.size == 0 {
		act.firstTs = l.nowMs()
	}
	p, o := pos, firstOffset
	for i := range batches {
		b := &batches[i]
		maxTs := b.MaxTimestamp
		if m.stamp && m.logAppendTime >= 0 {
			maxTs = m.logAppendTime
		}
		n := int64(len(b.Raw))
		if !m.stamp {
			// Replicated batches keep the leader's offsets, which a
			// compacted leader log may leave gaps between.
			o = b.BaseOffset
		}
		last := o + int64(b.LastOffsetDelta)
		act.track(o, last, maxTs, p, n, cfg.IndexIntervalBytes)
		if !m.stamp && l.epochs.assign(b.PartitionLeaderEpoch, o) {
			epochChanged = true
		}
		p, o = p+n, last+1
	}
	act.size = p
	act.persisted = false
	l.leo = o
	if l.appended != nil {
		close(l.appended)
		l.appended = nil
	}
	if m.stamp {
		epochChanged = l.epochs.assign(m.leaderEpoch, firstOffset)
	}
	l.commitProducers(act)
	l.segMu.Unlock()

	if epochChanged {
		// The cache is rebuilt from the batches' leader epochs on recovery,
		// so a failed checkpoint costs a rescan, not correctness.
		if err := l.writeEpochCheckpoint(); err != nil {
			l.logger.Warn("leader epoch checkpoint failed", "dir", l.dir, "err", err)
		}
	}

	if cfg.relaxed() {
		l.fmu.Lock()
		l.advanceHWAutoLocked(o)
		l.fmu.Unlock()
		if l.unflushedMsg.Add(o-firstOffset) >= cfg.FlushMessages || cfg.FlushMs == 0 {
			l.requestFlush()
		}
	} else {
		// Safe mode: the high watermark only moves with fsyncs, so keep the
		// flusher busy even when no producer waits (acks=0/1).
		l.requestFlush()
	}
	return nil
}

// coalesce returns the batches' bytes as few buffers: batches adjacent in
// memory (the usual case: one Produce request's records field) merge into
// one slice, so the write is one pwrite without copying.
func (l *Log) coalesce(batches []proto.Batch) [][]byte {
	bufs := l.bufs[:0]
	for i := range batches {
		raw := batches[i].Raw
		if n := len(bufs); n > 0 {
			prev := bufs[n-1]
			if cap(prev) >= len(prev)+len(raw) && &prev[:len(prev)+1][len(prev)] == &raw[0] {
				bufs[n-1] = prev[:len(prev)+len(raw)]
				continue
			}
		}
		bufs = append(bufs, raw)
	}
	l.bufs = bufs
	return bufs
}

// shouldRoll decides whether an append of size bytes ending at lastOffset
// needs a fresh segment: segment.bytes, segment.ms, a full index, or
// relative offsets that would not fit 32 bits. An empty active segment
// takes the append whatever its size.
func (l *Log) shouldRoll(act *segment, cfg *Config, size, lastOffset int64) bool {
	if act.size == 0 {
		return false
	}
	maxEntries := int(cfg.SegmentIndexBytes)
	return act.size+size > cfg.SegmentBytes ||
		l.segmentMsDue(act, cfg) ||
		len(act.index) >= maxEntries/offsetEntrySize ||
		len(act.tindex) >= maxEntries/timeEntrySize ||
		lastOffset-act.base > math.MaxUint32
}

func (l *Log) segmentMsDue(act *segment, cfg *Config) bool {
	return act.size > 0 && act.firstTs >= 0 && l.nowMs()-act.firstTs > cfg.SegmentMs
}

// roll seals the active segment and starts a new one at the log end. The
// new file's directory entry, the sealed segment's data and indexes, and a
// producer snapshot at the new base are made durable by the next flush,
// which WaitDurable waits for. Callers hold mu.
func (l *Log) roll() error {
	old := l.active()
	if old.size == 0 {
		return nil
	}
	base := l.leo
	f, err := os.OpenFile(l.path(segmentName(base)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	seg := newSegment(base, f)
	seg.persisted = true // nothing to persist yet
	snap := snapshotJob{offset: base, data: l.prod.encode()}

	l.segMu.Lock()
	old.seal()
	l.segs = append(l.segs, seg)
	l.dirGen++
	l.pendingSnaps = append(l.pendingSnaps, snap)
	l.segMu.Unlock()

	l.logger.Debug("rolled segment", "dir", l.dir, "base", base, "previous", old.base, "previous_bytes", old.size)
	l.requestFlush()
	return nil
}
