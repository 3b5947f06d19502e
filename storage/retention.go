package storage

import (
	"errors"
	"fmt"
)

// EnforceRetention applies segment.ms (rolling an old active segment, so
// a quiet partition's data can age out) and then deletes, oldest first,
// sealed segments that lie wholly below the high watermark and are past
// retention.ms (by their largest timestamp), or not needed to keep the log
// within retention.bytes, or wholly below the log start offset. The active
// segment is never deleted. The log start offset moves up to the first
// remaining segment.
//
// With RemoteEnabled the rules are local.retention.ms/bytes (the bytes
// counted over the local segments), a segment must also lie wholly below
// RemoteEnd (its upload is recorded), and the log start offset stays where
// it is: the deleted offsets still exist in the remote tier. retention.ms
// and retention.bytes are then not applied here; they span both tiers, so
// the tiering manager applies them through DeleteRecordsBefore.
func (l *Log) EnforceRetention() (deletedSegments int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return 0, fmt.Errorf("retention %s: %w", l.dir, ErrClosed)
	}
	cfg := l.config()
	if l.segmentMsDue(l.active(), cfg) {
		if err := l.roll(); err != nil {
			return 0, fmt.Errorf("retention %s: roll: %w", l.dir, err)
		}
	}
	now, hw := l.nowMs(), l.HighWatermark()
	segs := l.segs
	n := len(segs)
	upper := func(i int) int64 { return segs[i+1].base }
	// limit: a segment may go only if every offset of it is below it.
	limit, retMs, retBytes := hw, cfg.RetentionMs, cfg.RetentionBytes
	if cfg.RemoteEnabled {
		// remoteEnd is read without segMu: it is written under mu too.
		limit = min(hw, l.remoteEnd)
		retMs, retBytes = cfg.localRetentionMs(), cfg.localRetentionBytes()
	}
	i := 0
	if retMs >= 0 {
		for i < n-1 && upper(i) <= limit && segs[i].maxTs < now-retMs {
			i++
		}
	}
	if retBytes >= 0 {
		var total int64
		for _, s := range segs[i:] {
			total += s.size
		}
		diff := total - retBytes
		for i < n-1 && upper(i) <= limit && diff >= segs[i].size {
			diff -= segs[i].size
			i++
		}
	}
	// Below the log start nothing is readable in any tier.
	for i < n-1 && upper(i) <= l.logStart {
		i++
	}
	if i == 0 {
		return 0, nil
	}
	if err := l.deleteSegments(i, !cfg.RemoteEnabled); err != nil {
		return i, fmt.Errorf("retention %s: %w", l.dir, err)
	}
	return i, nil
}

// DeleteRecordsBefore raises the log start offset to offset (checkpointed
// before anything is removed) and deletes the segments wholly below it.
// offset -1 means the high watermark, as in DeleteRecords; an offset past
// the high watermark is ErrOffsetOutOfRange. A lower offset than the
// current log start changes nothing. With data in the remote tier the new
// log start may lie below LocalLogStartOffset: then only the checkpoint
// (and the epoch history) moves, and the remote side is the tiering
// manager's to delete.
func (l *Log) DeleteRecordsBefore(offset int64) (logStart int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return 0, fmt.Errorf("delete records %s: %w", l.dir, ErrClosed)
	}
	hw := l.HighWatermark()
	if offset == -1 {
		offset = hw
	}
	if offset < 0 || offset > hw {
		return l.logStart, fmt.Errorf("delete records %s before %d (high watermark %d): %w", l.dir, offset, hw, ErrOffsetOutOfRange)
	}
	if offset <= l.logStart {
		return l.logStart, nil
	}
	if err := l.setLogStart(offset); err != nil {
		return l.logStart, fmt.Errorf("delete records %s: %w", l.dir, err)
	}
	k := 0
	for k < len(l.segs)-1 && l.segs[k+1].base <= offset {
		k++
	}
	if k > 0 {
		if err := l.deleteSegments(k, true); err != nil {
			return l.logStart, fmt.Errorf("delete records %s: %w", l.dir, err)
		}
	}
	return l.logStart, nil
}

// setLogStart raises the log start offset and persists it with the trimmed
// epoch history (the history is trimmed only here: local segments that go
// while their data stays remote keep their epochs). Callers hold mu.
func (l *Log) setLogStart(off int64) error {
	l.segMu.Lock()
	if off <= l.logStart {
		l.segMu.Unlock()
		return nil
	}
	l.logStart = off
	epochsChanged := l.epochs.truncateFromStart(off)
	l.segMu.Unlock()
	if err := writeFileAtomic(l.dirf, l.dir, logStartFile, encodeOffsetCheckpoint(off)); err != nil {
		return err
	}
	if epochsChanged {
		return l.writeEpochCheckpoint()
	}
	return nil
}

// deleteSegments removes the k oldest segments (never the active one).
// Readers holding them keep their open files until they release them.
// raiseLogStart moves the log start offset up to the first remaining
// segment; it is false when the deleted offsets live on in the remote tier.
// Callers hold mu.
func (l *Log) deleteSegments(k int, raiseLogStart bool) error {
	l.segMu.Lock()
	gone := append([]*segment(nil), l.segs[:k]...)
	l.segs = append([]*segment(nil), l.segs[k:]...)
	first := l.segs[0].base
	l.segMu.Unlock()

	var errs []error
	if raiseLogStart {
		// Raise the log start first: if a crash undoes some unlinks, the
		// resurrected segments are below it and go away at the next
		// retention. (Remote deletions need no such step: the remote-end
		// checkpoint already covers them, so resurrected ones go again.)
		if err := l.setLogStart(first); err != nil {
			errs = append(errs, err)
		}
	}
	for _, s := range gone {
		l.logger.Debug("deleting segment", "dir", l.dir, "base", s.base, "bytes", s.size)
		if err := l.removeSegmentFiles(s.base); err != nil {
			errs = append(errs, err)
		}
		s.release()
	}
	l.deleteOldSnapshots()
	return errors.Join(errs...)
}
