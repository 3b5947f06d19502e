package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// snapshotJob is a producer state snapshot taken at a roll (under mu, so it
// is exact for offset) and written by the next flush.
type snapshotJob struct {
	offset int64
	data   []byte
}

type flushItem struct {
	s          *segment
	size       int64
	sync       bool // data to fdatasync
	writeIndex bool // sealed segment whose index files are not persisted
}

// requestFlush wakes the flusher; requests made while it is busy coalesce
// into one more round, which is what makes commits group.
func (l *Log) requestFlush() {
	select {
	case l.flushReq <- struct{}{}:
	default:
	}
}

// flusher owns the fsyncs of the log. In safe mode it runs a round
// whenever something was appended or someone waits; a round covers every
// append made before it started, so concurrent producers share fsyncs. In
// relaxed mode it runs when flush.messages records accumulated or flush.ms
// passed. It stops when Close closes stop.
func (l *Log) flusher() {
	defer close(l.flusherDone)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var tick <-chan time.Time
		if cfg := l.config(); cfg.relaxed() {
			if d := cfg.flushInterval(); d > 0 {
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				tick = timer.C
			}
		}
		select {
		case <-l.stop:
			return
		case <-l.flushReq:
		case <-tick:
		}
		// Errors are sticky in failErr and reported to waiters.
		_ = l.flush()
		if err := l.checkpointHW(false); err != nil {
			l.logger.Warn("high watermark checkpoint failed", "dir", l.dir, "err", err)
		}
	}
}

// flush makes every offset below the log end at its start durable: it
// fdatasyncs segments with unsynced bytes (rolled ones included), persists
// the indexes of sealed segments and pending producer snapshots, fsyncs the
// directory when files were created, then advances the durable frontier
// (and the high watermark in safe mode) and wakes waiters.
func (l *Log) flush() error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	if err := l.failure(); err != nil {
		return err
	}
	l.unflushedMsg.Store(0)

	l.segMu.Lock()
	if len(l.segs) == 0 { // closed
		l.segMu.Unlock()
		return nil
	}
	target := l.leo
	var work []flushItem
	for _, s := range l.segs {
		it := flushItem{s: s, size: s.size, sync: s.synced < s.size, writeIndex: s.sealed && !s.persisted}
		if it.sync || it.writeIndex {
			s.ref()
			work = append(work, it)
		}
	}
	dirGen := l.dirGen
	snaps := l.pendingSnaps
	l.pendingSnaps = nil
	l.segMu.Unlock()

	defer func() {
		for _, it := range work {
			it.s.release()
		}
	}()
	did := len(work) > 0
	needDir := dirGen != l.dirSynced || len(snaps) > 0
	var err error
	for _, it := range work {
		if it.sync {
			if err = l.fsys.syncData(it.s.f); err != nil {
				break
			}
		}
	}
	if err == nil {
		for i := range work {
			it := &work[i]
			if it.writeIndex {
				if werr := l.writeIndexFiles(it.s); werr != nil {
					// Indexes are rebuilt when missing or bad; keep the data
					// durable and retry next round.
					l.logger.Warn("writing segment indexes failed", "dir", l.dir, "base", it.s.base, "err", werr)
					it.writeIndex = false
				} else {
					needDir = true
				}
			}
		}
		for _, sj := range snaps {
			if werr := writeTmpRename(l.dir, snapshotName(sj.offset), sj.data); werr != nil {
				// Producer state is then replayed from an older snapshot.
				l.logger.Warn("writing producer snapshot failed", "dir", l.dir, "offset", sj.offset, "err", werr)
			}
		}
		if needDir {
			did = true
			if err = l.fsys.syncDir(l.dirf); err == nil {
				l.dirSynced = dirGen
			}
		}
	}
	if err != nil {
		err = fmt.Errorf("flush %s: %w", l.dir, err)
		l.fail(err)
		return err
	}
	if did {
		l.fsyncRounds.Add(1)
	}

	l.segMu.Lock()
	for _, it := range work {
		if it.size > it.s.synced {
			it.s.synced = it.size
		}
		if it.writeIndex {
			it.s.persisted = true
		}
	}
	// The recovery point is the base of the first segment that a crash
	// could still damage: everything before it is synced with its indexes.
	rp := l.leo
	for _, s := range l.segs {
		if !s.sealed || !s.persisted || s.synced < s.size {
			rp = s.base
			break
		}
	}
	l.segMu.Unlock()

	l.fmu.Lock()
	if target > l.durable {
		l.durable = target
		close(l.durableCh)
		l.durableCh = make(chan struct{})
	}
	if l.replicated {
		// Catch up with what the leader's replicas hold, as far as this
		// round made durable (AdvanceHighWatermark caps at the durable end).
		l.advanceHWLocked(min(l.hwTarget, l.durable))
	} else if !l.config().relaxed() {
		l.advanceHWLocked(l.durable)
	}
	l.fmu.Unlock()

	if rp > l.recoveryPt {
		if werr := writeFileAtomic(l.dirf, l.dir, recoveryFile, encodeOffsetCheckpoint(rp)); werr != nil {
			l.logger.Warn("recovery point checkpoint failed; the next unclean open rescans more", "dir", l.dir, "err", werr)
		} else {
			l.recoveryPt = rp
		}
	}
	return nil
}

// WaitDurable blocks until every offset < end is fsynced, with the segment
// files' directory entries. Concurrent callers share fsyncs. With relaxed
// flushing it returns at once.
func (l *Log) WaitDurable(ctx context.Context, end int64) error {
	if l.config().relaxed() {
		if err := l.failure(); err != nil {
			return fmt.Errorf("wait durable %s: %w", l.dir, err)
		}
		return nil
	}
	for {
		l.fmu.Lock()
		ferr, durable, ch, closed := l.failErr, l.durable, l.durableCh, l.fclosed
		l.fmu.Unlock()
		switch {
		case ferr != nil:
			return fmt.Errorf("wait durable %s: %w", l.dir, ferr)
		case durable >= end:
			return nil
		case closed:
			return fmt.Errorf("wait durable %s up to %d: %w", l.dir, end, ErrClosed)
		}
		l.requestFlush()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Sync makes everything appended so far durable, whatever the flush policy.
func (l *Log) Sync() error {
	if l.closed.Load() {
		return fmt.Errorf("sync %s: %w", l.dir, ErrClosed)
	}
	return l.flush()
}

// writeIndexFiles persists a segment's in-memory indexes. The files are
// replaced atomically, so a crash leaves the old or the new version, never
// a truncated one that would still look plausible.
func (l *Log) writeIndexFiles(s *segment) error {
	l.segMu.RLock()
	idx, tidx, txidx := encodeOffsetIndex(s.index), encodeTimeIndex(s.tindex), encodeTxnIndex(s.txns)
	l.segMu.RUnlock()
	if err := writeTmpRename(l.dir, indexName(s.base), idx); err != nil {
		return err
	}
	if err := writeTmpRename(l.dir, txnIndexName(s.base), txidx); err != nil {
		return err
	}
	return writeTmpRename(l.dir, timeIndexName(s.base), tidx)
}

// deleteOldSnapshots removes producer snapshots no longer useful: those
// below the first segment (their replay start is gone) except the newest,
// and any past the log end. Callers hold mu.
func (l *Log) deleteOldSnapshots() {
	l.segMu.RLock()
	if len(l.segs) == 0 {
		l.segMu.RUnlock()
		return
	}
	first, leo := l.segs[0].base, l.leo
	l.segMu.RUnlock()
	offs := l.listSnapshots()
	for i, off := range offs {
		newest := i == len(offs)-1
		if off > leo || (off < first && !newest) {
			if err := os.Remove(filepath.Join(l.dir, snapshotName(off))); err != nil {
				l.logger.Warn("removing producer snapshot failed", "dir", l.dir, "offset", off, "err", err)
			}
		}
	}
}

// listSnapshots returns the offsets of the snapshot files, ascending.
func (l *Log) listSnapshots() []int64 {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil
	}
	var offs []int64
	for _, e := range ents {
		if off, ok := parseOffsetName(e.Name(), snapshotSuffix); ok {
			offs = append(offs, off)
		}
	}
	return offs // ReadDir sorts by name, and names sort like offsets
}
