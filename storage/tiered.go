package storage

import (
	"errors"
	"fmt"
	"os"
)

// What tiered storage needs from the local log: which sealed segments can
// be uploaded and their bytes, where the remote tier ends (so local
// retention knows what it may delete), the split between the global and the
// local log start, and a way to restart an empty log after the remote tier.

var (
	// ErrOffsetTiered: the offset is at or above the log start offset but
	// below the first local segment; the remote tier holds it.
	ErrOffsetTiered = errors.New("storage: offset is below the local log start")
	// ErrNotEmpty: ResetEmpty was called on a log that holds batches.
	ErrNotEmpty = errors.New("storage: log is not empty")
)

// EpochEntry says that leader epoch Epoch wrote its first offset (in the
// range it is reported for) at StartOffset.
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}

// SealedSegment describes a rolled segment whose bytes and index files are
// durable, as a candidate for upload.
type SealedSegment struct {
	BaseOffset int64
	// NextOffset is the base offset of the following segment: the segment
	// covers [BaseOffset, NextOffset), so consecutive segments are
	// contiguous even across offsets that hold no batch.
	NextOffset int64
	Size       int64 // bytes of the .log file
	// MaxTimestamp is the largest batch max timestamp, -1 when none.
	MaxTimestamp int64
	// Epochs are the leader epochs of [BaseOffset, NextOffset): the epoch
	// in force at BaseOffset first (StartOffset = BaseOffset), then those
	// starting inside, as far as the epoch history knows them.
	Epochs []EpochEntry
}

// SealedSegments returns the local segments ready for upload, oldest first:
// rolled, every byte fsynced, index files written and fsynced, and wholly
// below the high watermark. It is a prefix of the local segments: it stops
// at the first one that is not ready yet, so what it returns is contiguous.
func (l *Log) SealedSegments() []SealedSegment {
	hw := l.HighWatermark()
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	var out []SealedSegment
	for i := 0; i+1 < len(l.segs); i++ {
		s, next := l.segs[i], l.segs[i+1].base
		if !s.durableSealed() || next > hw {
			break
		}
		out = append(out, SealedSegment{
			BaseOffset:   s.base,
			NextOffset:   next,
			Size:         s.size,
			MaxTimestamp: s.maxTs,
			Epochs:       l.epochs.within(s.base, next),
		})
	}
	return out
}

// durableSealed reports whether a segment is rolled and its data and index
// files are durable (its directory entry too: it was created before the
// flush round that persisted its indexes, and that round fsynced the
// directory). Callers hold segMu.
func (s *segment) durableSealed() bool {
	return s.sealed && s.persisted && s.synced >= s.size
}

// within lists the epochs of [base, end): the one in force at base,
// starting at base, then those that start inside.
func (c epochCache) within(base, end int64) []EpochEntry {
	var out []EpochEntry
	if e := c.epochFor(base); e >= 0 {
		out = append(out, EpochEntry{Epoch: e, StartOffset: base})
	}
	for _, x := range c {
		if x.start > base && x.start < end {
			out = append(out, EpochEntry{Epoch: x.epoch, StartOffset: x.start})
		}
	}
	return out
}

// SegmentFiles is an open sealed segment for upload: its .log file and
// copies of its index files' bytes (exactly what the .index and .timeindex
// files hold). It keeps a reference on the segment, so the file stays open
// even if retention deletes the segment meanwhile, until Release.
//
// Log is shared with the partition log: read it only with ReadAt (or an
// io.SectionReader over it); never Read, Seek or Close it.
type SegmentFiles struct {
	Log              *os.File
	Index, TimeIndex []byte
	// TxnIndex is a copy of the segment's transaction index (Kafka's
	// .txnindex format: 34-byte aborted transaction entries; empty when
	// nothing was aborted in the segment), and TxnIndexPath the file that
	// holds the same bytes while the segment is in the log, for tiering to
	// upload with the segment.
	TxnIndex     []byte
	TxnIndexPath string
	// ProducerSnapshot is the producer snapshot taken when the segment was
	// rolled (producer state as of its end, the snapshot file named after
	// the next segment's base), for tiering to upload so a log restarted
	// at the remote end can restore its producers. Nil when that file is
	// gone (retention, a failed write), does not decode, or holds no
	// producer.
	ProducerSnapshot []byte
	Size             int64 // bytes of Log that belong to the segment
	seg              *segment
}

// Release drops the segment reference. Calling it again does nothing; it
// must not race with itself.
func (f *SegmentFiles) Release() {
	if f.seg != nil {
		f.seg.release()
		f.seg = nil
	}
	f.Log = nil
}

// OpenSegment opens the sealed segment with this base offset, one that
// SealedSegments reports. Any other base (the active segment, one not yet
// durable, one already deleted) is ErrOffsetOutOfRange.
func (l *Log) OpenSegment(base int64) (*SegmentFiles, error) {
	hw := l.HighWatermark()
	l.segMu.RLock()
	if len(l.segs) == 0 {
		l.segMu.RUnlock()
		return nil, fmt.Errorf("open segment %s base %d: %w", l.dir, base, ErrClosed)
	}
	i := l.segmentFor(base)
	s := l.segs[i]
	if s.base != base || i+1 >= len(l.segs) || !s.durableSealed() || l.segs[i+1].base > hw {
		l.segMu.RUnlock()
		return nil, fmt.Errorf("open segment %s base %d: no durable sealed segment there: %w", l.dir, base, ErrOffsetOutOfRange)
	}
	s.ref()
	files := &SegmentFiles{
		Log:          s.f,
		Index:        encodeOffsetIndex(s.index),
		TimeIndex:    encodeTimeIndex(s.tindex),
		TxnIndex:     encodeTxnIndex(s.txns),
		TxnIndexPath: l.path(txnIndexName(s.base)),
		Size:         s.size,
		seg:          s,
	}
	snapPath := l.path(snapshotName(l.segs[i+1].base))
	l.segMu.RUnlock()
	// Outside the lock: a snapshot of many producers is megabytes. It is
	// optional, so one deleted meanwhile is just not there.
	files.ProducerSnapshot = readProducerSnapshot(snapPath)
	return files, nil
}

// readProducerSnapshot returns the snapshot file's bytes if it decodes and
// lists at least one producer, else nil.
func readProducerSnapshot(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	if m, err := decodeProducerSnapshot(b); err != nil || len(m) == 0 {
		return nil
	}
	return b
}

// TxnIndex is a parsed transaction index (the .txnindex bytes of a
// segment, SegmentFiles.TxnIndex), for tiering to answer
// AbortedTransactions for remote segments exactly as the local log does.
type TxnIndex struct{ es []abortedTxn }

// TxnIndexEntrySize is the size of one transaction index entry; an
// index's length is a multiple of it.
const TxnIndexEntrySize = abortedTxnSize

// ParseTxnIndex checks and parses the transaction index of a segment
// holding offsets [base, next): Kafka's entry format, every abort marker
// inside the segment, in increasing order. Anything else is ErrCorrupt.
func ParseTxnIndex(b []byte, base, next int64) (*TxnIndex, error) {
	es, err := decodeTxnIndex(b, base, next)
	if err != nil {
		return nil, err
	}
	return &TxnIndex{es: es}, nil
}

// Len is the number of aborted transactions indexed.
func (x *TxnIndex) Len() int { return len(x.es) }

// Collect appends the aborted transactions overlapping [from, to) (see
// Log.AbortedTransactions). complete reports that no entry in a later
// segment can overlap either, so a search over consecutive segments stops.
func (x *TxnIndex) Collect(from, to int64, out []AbortedTxn) (_ []AbortedTxn, complete bool) {
	return collectAborted(x.es, from, to, out)
}

// LocalLogStartOffset is the first offset held locally: the first local
// segment's base, or the log start offset when that is higher (records
// deleted inside the first segment), or the log end when the log is
// closed. It is never below LogStartOffset; offsets between the two are
// in the remote tier (ListOffsets -4, earliest local).
func (l *Log) LocalLogStartOffset() int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if len(l.segs) == 0 {
		return l.leo
	}
	return max(l.segs[0].base, l.logStart)
}

// SetRemoteEnd records that every offset below offset is in the remote tier
// (uploaded and committed to the remote manifest); from then on
// EnforceRetention may delete local segments wholly below it when
// RemoteEnabled. It only ever rises: lower values are ignored. It is
// persisted (checkpoint remote-end) before it takes effect, so after a
// crash the log still knows what is tiered; if that write fails the value
// is not taken (the error is logged) and the caller's next call retries.
func (l *Log) SetRemoteEnd(offset int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() || offset <= l.remoteEnd {
		return
	}
	if err := writeFileAtomic(l.dirf, l.dir, remoteEndFile, encodeOffsetCheckpoint(offset)); err != nil {
		l.logger.Error("remote end checkpoint failed; local segments stay", "dir", l.dir, "remote_end", offset, "err", err)
		return
	}
	l.segMu.Lock()
	l.remoteEnd = offset
	l.segMu.Unlock()
}

// RemoteEnd is the offset below which everything is recorded in the remote
// tier; 0 (the initial value) means nothing is.
func (l *Log) RemoteEnd() int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return l.remoteEnd
}

// ResetEmpty restarts a log that holds no batches at nextOffset, with the
// given log start offset: for a broker whose data directory was lost while
// the remote tier kept the partition, nextOffset being the remote end. The
// active segment is recreated at nextOffset; the log end, the high
// watermark and the remote end become nextOffset, the log start logStart
// (so [logStart, nextOffset) reads as ErrOffsetTiered). Moving the log end
// forgets the leader epoch history (it cannot describe offsets the log
// never held). Everything is persisted before it returns; a crash half way
// leaves an empty log that the next Open restarts at the remote end if
// that checkpoint was written.
//
// A log holding batches gives ErrNotEmpty; logStart outside [0, nextOffset]
// or nextOffset below the log end gives ErrOffsetOutOfRange (offsets never
// go back).
func (l *Log) ResetEmpty(nextOffset, logStart int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return fmt.Errorf("reset %s: %w", l.dir, ErrClosed)
	}
	if err := l.failure(); err != nil {
		return fmt.Errorf("reset %s: %w", l.dir, err)
	}
	act := l.active()
	if len(l.segs) != 1 || act.size != 0 {
		return fmt.Errorf("reset %s: %d segments, active one %d bytes: %w", l.dir, len(l.segs), act.size, ErrNotEmpty)
	}
	if logStart < 0 || logStart > nextOffset || nextOffset < l.leo {
		return fmt.Errorf("reset %s to %d with log start %d (log end %d): %w", l.dir, nextOffset, logStart, l.leo, ErrOffsetOutOfRange)
	}
	jump := nextOffset != act.base

	// Order of durable steps: whatever prefix a crash keeps, Open finds an
	// empty log; once the remote end is written, Open restarts it at
	// nextOffset with this log start (see load). The epoch history goes
	// first so no stale epoch can describe the skipped offsets.
	epochs := l.epochs
	if jump {
		epochs = nil
	} else {
		epochs = append(epochCache(nil), epochs...)
		epochs.truncateFromStart(logStart)
	}
	if err := writeFileAtomic(l.dirf, l.dir, epochFile, encodeEpochCheckpoint(epochs)); err != nil {
		return fmt.Errorf("reset %s: %w", l.dir, err)
	}
	if err := writeFileAtomic(l.dirf, l.dir, logStartFile, encodeOffsetCheckpoint(logStart)); err != nil {
		return fmt.Errorf("reset %s: %w", l.dir, err)
	}
	if err := writeFileAtomic(l.dirf, l.dir, remoteEndFile, encodeOffsetCheckpoint(nextOffset)); err != nil {
		return fmt.Errorf("reset %s: %w", l.dir, err)
	}
	var seg *segment
	if jump {
		f, err := os.OpenFile(l.path(segmentName(nextOffset)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return fmt.Errorf("reset %s: %w", l.dir, err)
		}
		seg = newSegment(nextOffset, f)
		seg.persisted = true // nothing to persist yet
	}

	l.segMu.Lock()
	if jump {
		l.segs = []*segment{seg}
		l.dirGen++
	}
	l.leo = nextOffset
	l.logStart = logStart
	l.remoteEnd = nextOffset
	l.epochs = epochs
	l.segMu.Unlock()

	var errs []error
	if jump {
		act.release()
		// Both files being there after a crash is fine: Open drops an
		// empty segment that is not the last.
		if err := l.removeSegmentFiles(act.base); err != nil {
			errs = append(errs, err)
		}
		// Producer snapshots beyond the old end are from an earlier life.
		l.deleteOldSnapshots()
	}
	// Makes the new file's directory entry durable and moves the durable
	// frontier (and, in safe mode, the high watermark) to nextOffset.
	if err := l.flush(); err != nil {
		errs = append(errs, err)
	}
	l.fmu.Lock()
	l.advanceHWLocked(nextOffset)
	l.fmu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reset %s: %w", l.dir, err)
	}
	l.logger.Info("reset empty log", "dir", l.dir, "log_end", nextOffset, "log_start", logStart)
	return nil
}
