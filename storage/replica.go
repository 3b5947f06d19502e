package storage

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sort"

	"github.com/strata-broker/strata/proto"
)

// What a partition replica needs from its log beyond a single node's: a
// follower copies the leader's batches byte for byte (AppendReplicated),
// cuts a divergent tail after a leader change (TruncateTo), and the high
// watermark becomes the leader's decision instead of the durable end
// (SetReplicated, AdvanceHighWatermark, SetHighWatermark). A new leader
// opens its epoch at the log end (AssignLeaderEpoch).

var (
	// ErrOffsetMismatch: replicated batches do not continue the log exactly
	// (the first base offset is not the log end, or the batches are not
	// contiguous). The follower's position and the leader's answer disagree;
	// the caller fetches again from LogEndOffset.
	ErrOffsetMismatch = errors.New("storage: replicated batches do not continue the log end")
	// ErrStaleLeaderEpoch: AssignLeaderEpoch with an epoch older than the
	// latest in the epoch history.
	ErrStaleLeaderEpoch = errors.New("storage: leader epoch older than the latest known")
)

// hwCheckpointIntervalMs bounds how often the flusher rewrites the high
// watermark checkpoint in replicated mode (Kafka's
// replica.high.watermark.checkpoint.interval.ms default). The checkpoint is
// a lower bound: after a crash the high watermark restarts at most this far
// behind and the leader moves it again.
const hwCheckpointIntervalMs = 5000

// Steps of TruncateTo at which tests simulate a crash (Log.testHook).
const (
	truncStepIntent   = "intent"   // recovery point and marker durable, nothing cut
	truncStepCut      = "cut"      // files cut, nothing fsynced after the cut
	truncStepDurable  = "durable"  // cut, producer state and checkpoints durable, marker still there
	truncStepFinished = "finished" // marker removed
)

// AppendReplicated appends record batches exactly as the leader wrote them,
// as a follower's Fetch returns them: whole batches with their base offsets
// and partition leader epochs set. Every batch is checked before anything
// is written: framing, magic 2 and CRC32C (a partial trailing batch is an
// error: the caller trims what Fetch cut off), and offsets ascending from
// LogEndOffset (else ErrOffsetMismatch); gaps between batches are kept, as
// a compacted leader log has them. The bytes are written
// unchanged; the epoch history learns each new partition leader epoch at
// the first batch carrying it; idempotent producer state records the
// batches without validating sequences (the leader did), as Kafka
// followers do; indexes and segment rolls are as for Append, decided batch
// by batch, so a follower that replicates a leader's appends rolls where
// the leader rolled (unless segment.ms differs).
//
// Durability is Append's: call WaitDurable with LastOffset+1. Empty data
// appends nothing. If writing fails after a roll split the batches, the
// batches of the earlier segments stay (LogEndOffset says how far it got);
// none is ever written partially.
func (l *Log) AppendReplicated(data []byte) (AppendInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return AppendInfo{}, fmt.Errorf("append replicated %s: %w", l.dir, ErrClosed)
	}
	if err := l.failure(); err != nil {
		return AppendInfo{}, fmt.Errorf("append replicated %s: %w", l.dir, err)
	}
	first := l.leo
	info := AppendInfo{FirstOffset: first, LastOffset: first - 1, LogAppendTime: -1, LogStartOffset: l.logStart}
	if len(data) == 0 {
		return info, nil
	}
	bs := l.repl[:0]
	defer func() {
		clear(bs) // do not keep the caller's buffer alive
		l.repl = bs[:0]
	}()
	expect := first
	err := proto.SplitBatches(data, true, func(b proto.Batch) error {
		if b.LastOffsetDelta < 0 {
			return fmt.Errorf("batch at offset %d: last offset delta %d: %w", b.BaseOffset, b.LastOffsetDelta, ErrCorrupt)
		}
		// A gap is fine (the leader's compaction removed whole batches);
		// going back is not.
		if b.BaseOffset < expect {
			return fmt.Errorf("batch base offset %d, log end %d: %w", b.BaseOffset, expect, ErrOffsetMismatch)
		}
		expect = b.BaseOffset + int64(b.LastOffsetDelta) + 1
		bs = append(bs, b)
		return nil
	})
	switch {
	case err == nil:
	case errors.Is(err, ErrOffsetMismatch), errors.Is(err, ErrCorrupt):
		return AppendInfo{}, fmt.Errorf("append replicated %s: %w", l.dir, err)
	default: // proto's framing and CRC errors
		return AppendInfo{}, fmt.Errorf("append replicated %s: %w: %w", l.dir, ErrCorrupt, err)
	}

	cfg := l.config()
	for i := 0; i < len(bs); {
		act := l.active()
		total := int64(len(bs[i].Raw))
		if l.shouldRoll(act, cfg, total, lastOf(&bs[i])) {
			if err := l.roll(); err != nil {
				return AppendInfo{}, fmt.Errorf("append replicated %s: roll: %w", l.dir, err)
			}
			act = l.active()
		}
		// Take the following batches while Append, fed them one at a time,
		// would not roll.
		j := i + 1
		for ; j < len(bs); j++ {
			n := int64(len(bs[j].Raw))
			if act.size+total+n > cfg.SegmentBytes || lastOf(&bs[j])-act.base > math.MaxUint32 {
				break
			}
			total += n
		}
		l.prod.stageReplicated(bs[i:j])
		if err := l.writeBatches(bs[i:j], bs[i].BaseOffset, total, writeMode{}); err != nil {
			return AppendInfo{}, fmt.Errorf("append replicated %s at offset %d: %w", l.dir, bs[i].BaseOffset, err)
		}
		i = j
	}
	info.LastOffset = expect - 1
	return info, nil
}

func lastOf(b *proto.Batch) int64 { return b.BaseOffset + int64(b.LastOffsetDelta) }

// tailCut is where TruncateTo cuts: segments [0, keep) stay, the last of
// them shortened to pos bytes, and the log then ends at next.
type tailCut struct {
	keep int
	pos  int64
	next int64
	seg  *segment // the kept last segment's rebuilt indexes (not in the log)
}

// planCut finds the cut for TruncateTo(offset): at the first batch whose
// last offset is >= offset, so a batch holding offset goes whole (offsets
// written by one append are never split). It reads batch headers of the
// segment it cuts to rebuild that segment's indexes, without touching the
// log. Callers hold mu (or are Open), and offset >= the first segment's base
// or lies below it (the first segment is then emptied).
func (l *Log) planCut(offset int64) (tailCut, error) {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset })
	i = max(i-1, 0)
	s := l.segs[i]
	cut := tailCut{keep: i + 1, pos: s.size, next: s.next}
	tmp := newSegment(s.base, s.f)
	interval := l.config().IndexIntervalBytes
	err := walkHeaders(s, 0, s.size, func(h *header, pos int64) bool {
		if h.last() >= offset {
			cut.pos, cut.next = pos, h.base
			return false
		}
		tmp.track(h.base, h.last(), h.maxTs, pos, h.size(), interval)
		return true
	})
	if err != nil {
		return tailCut{}, err
	}
	if cut.pos == 0 {
		cut.next = s.base
	}
	tmp.size = cut.pos
	cut.seg = tmp
	return cut, nil
}

// applyCut publishes a planned cut to readers and cuts the files: the kept
// last segment becomes the active one, shorter, and the later segments are
// unlinked (readers holding them keep their open files). Nothing is
// fsynced here. Callers hold mu and flushMu (or are Open).
func (l *Log) applyCut(cut tailCut) error {
	target := l.segs[cut.keep-1]
	gone := l.segs[cut.keep:]
	l.segMu.Lock()
	l.segs = append([]*segment(nil), l.segs[:cut.keep]...)
	target.size, target.next = cut.pos, cut.next
	target.index, target.tindex = cut.seg.index, cut.seg.tindex
	target.maxTs, target.maxTsOff, target.sinceIndex = cut.seg.maxTs, cut.seg.maxTsOff, cut.seg.sinceIndex
	target.sealed, target.persisted = false, false
	target.synced = min(target.synced, cut.pos)
	target.txns = trimTxns(target.txns, cut.next) // aborts whose marker goes
	switch {
	case cut.pos == 0:
		target.firstTs = -1
	case target.firstTs < 0:
		target.firstTs = l.nowMs() // segment.ms of a revived segment counts from now
	}
	l.leo = cut.next
	l.epochs.truncateFromEnd(cut.next)
	snaps := l.pendingSnaps[:0]
	for _, sj := range l.pendingSnaps {
		if sj.offset <= cut.next {
			snaps = append(snaps, sj)
		}
	}
	l.pendingSnaps = snaps
	l.dirGen++
	l.segMu.Unlock()

	var errs []error
	if err := target.f.Truncate(cut.pos); err != nil {
		errs = append(errs, err)
	}
	for _, s := range gone {
		if err := l.removeSegmentFiles(s.base); err != nil {
			errs = append(errs, err)
		}
		s.release()
	}
	// The target's index files describe its longer past; it is active now
	// (indexes are written again when it is sealed or at Close).
	for _, name := range []string{indexName(target.base), timeIndexName(target.base), txnIndexName(target.base)} {
		if err := os.Remove(l.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// TruncateTo removes every record at or after offset: what a follower does
// to a divergent tail after a leader change (the offset comes from
// OffsetForLeaderEpoch). The cut is at a batch boundary: a batch holding
// offset goes whole, so LogEndOffset may end up below offset (it never
// does for the offsets replication uses: epoch ends and high watermarks are
// batch boundaries). Segments past the cut are deleted with their indexes,
// the epoch history loses the epochs starting at or after the new end,
// producer state is rebuilt as of the new end (newest snapshot at or below
// it, then the batches after), and the high watermark, its target and the
// durable end are lowered to at most the new end. Everything is durable
// before it returns.
//
// offset >= LogEndOffset truncates nothing; like Kafka it still drops
// epochs starting at or after offset. offset below the log start, or a cut
// that would land below it, is ErrOffsetOutOfRange; offset below the local
// log start or the remote end (data committed in the remote tier) is
// ErrOffsetTiered.
//
// Crash safety: the recovery point is lowered and a marker (truncate-to)
// written before anything is cut; Open finishes an interrupted truncation
// from the marker, so a crash at any point leaves no record at or past the
// cut. Readers holding ranges past the cut may read short or new bytes (as
// in Kafka); replication only cuts above the high watermark, where
// consumers do not read. WaitDurable calls for offsets past the cut wait
// until the log grows back there.
func (l *Log) TruncateTo(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return fmt.Errorf("truncate %s: %w", l.dir, ErrClosed)
	}
	if err := l.failure(); err != nil {
		return fmt.Errorf("truncate %s: %w", l.dir, err)
	}
	if offset < l.logStart {
		return fmt.Errorf("truncate %s to %d (log start %d): %w", l.dir, offset, l.logStart, ErrOffsetOutOfRange)
	}
	if offset >= l.leo {
		l.segMu.Lock()
		changed := l.epochs.truncateFromEnd(offset)
		l.segMu.Unlock()
		if changed {
			if err := l.writeEpochCheckpoint(); err != nil {
				return fmt.Errorf("truncate %s to %d: %w", l.dir, offset, err)
			}
		}
		return nil
	}
	if offset < l.segs[0].base || offset < l.remoteEnd {
		return fmt.Errorf("truncate %s to %d (local log start %d, remote end %d): %w", l.dir, offset, l.segs[0].base, l.remoteEnd, ErrOffsetTiered)
	}
	// Start from a log whose every byte and pending producer snapshot is
	// durable, so the cut only removes.
	if err := l.flush(); err != nil {
		return fmt.Errorf("truncate %s: %w", l.dir, err)
	}
	cut, err := l.planCut(offset)
	if err != nil {
		return fmt.Errorf("truncate %s to %d: %w", l.dir, offset, err)
	}
	if cut.next < l.logStart {
		return fmt.Errorf("truncate %s to %d: cut at %d is below the log start %d: %w", l.dir, offset, cut.next, l.logStart, ErrOffsetOutOfRange)
	}
	// No flush round may interleave: it would publish sizes and a durable
	// end from before the cut.
	l.flushMu.Lock()
	defer l.flushMu.Unlock()

	// Intent: the next Open must CRC-scan the segments the cut touches and
	// finish the cut.
	target := l.segs[cut.keep-1]
	if l.recoveryPt > target.base {
		if err := writeFileAtomic(l.dirf, l.dir, recoveryFile, encodeOffsetCheckpoint(target.base)); err != nil {
			return fmt.Errorf("truncate %s: %w", l.dir, err)
		}
		l.recoveryPt = target.base
	}
	if err := writeFileAtomic(l.dirf, l.dir, truncateFile, encodeOffsetCheckpoint(cut.next)); err != nil {
		return fmt.Errorf("truncate %s: %w", l.dir, err)
	}
	l.hook(truncStepIntent)

	// From here a failure leaves the log between two states: stop it; the
	// marker makes the next Open finish the cut.
	if err := l.finishCut(cut); err != nil {
		err = fmt.Errorf("truncate %s to %d: %w", l.dir, cut.next, err)
		l.fail(err)
		return err
	}
	l.logger.Info("truncated log", "dir", l.dir, "offset", offset, "log_end", cut.next)
	return nil
}

// finishCut is TruncateTo after its intent is durable. Callers hold mu and
// flushMu.
func (l *Log) finishCut(cut tailCut) error {
	if err := l.applyCut(cut); err != nil {
		return err
	}
	l.hook(truncStepCut)
	target := l.active()
	if err := l.fsys.syncData(target.f); err != nil {
		return err
	}
	l.segMu.Lock()
	target.synced = target.size
	l.segMu.Unlock()

	// Producer snapshots past the cut describe batches that are gone; one
	// left behind would be trusted once the log grows past it again.
	for _, off := range l.listSnapshots() {
		if off > cut.next {
			if err := os.Remove(l.path(snapshotName(off))); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	l.prod = newProducerState()
	if err := l.loadProducers(); err != nil {
		return err
	}
	if err := l.writeEpochCheckpoint(); err != nil { // fsyncs the directory too
		return err
	}
	if err := l.lowerHW(cut.next); err != nil {
		return err
	}
	if err := l.fsys.syncDir(l.dirf); err != nil {
		return err
	}
	l.dirSynced = l.dirGen
	l.hook(truncStepDurable)
	if err := os.Remove(l.path(truncateFile)); err != nil {
		return err
	}
	if err := l.fsys.syncDir(l.dirf); err != nil {
		return err
	}
	l.hook(truncStepFinished)
	return nil
}

// lowerHW brings the durable end, the high watermark and its target down
// to at most end after a cut, and the high watermark checkpoint with them
// (one above end would expose records written after the cut at the next
// Open).
func (l *Log) lowerHW(end int64) error {
	l.hwCkptMu.Lock()
	defer l.hwCkptMu.Unlock()
	l.fmu.Lock()
	l.durable = min(l.durable, end)
	l.hwTarget = min(l.hwTarget, end)
	if l.hw.Load() > end {
		l.hw.Store(end)
	}
	hw, rep := l.hw.Load(), l.replicated
	l.fmu.Unlock()
	if !rep && l.hwCkpt <= hw {
		return nil
	}
	return l.writeHWCheckpointLocked(hw)
}

// hook lets tests stop TruncateTo at a step (see crash tests).
func (l *Log) hook(step string) {
	if l.testHook != nil {
		l.testHook(step)
	}
}

// SetReplicated switches the high watermark between the single-node rule
// (off, the default: it follows the durable end in safe mode, the log end
// when relaxed) and replication (on: it moves only by AdvanceHighWatermark
// on a leader and SetHighWatermark on a follower). Turning it on keeps the
// current value; turning it off raises it to what the single-node rule
// gives. In replicated mode the high watermark is checkpointed
// (high-watermark) by the flusher at most every few seconds and at Close,
// and Open with Options.Replicated restores it from there.
func (l *Log) SetReplicated(on bool) {
	l.segMu.RLock()
	leo := l.leo
	l.segMu.RUnlock()
	l.fmu.Lock()
	defer l.fmu.Unlock()
	if on == l.replicated {
		return
	}
	l.replicated = on
	if on {
		l.hwTarget = l.hw.Load()
		l.requestFlush() // the flusher writes the first checkpoint
		return
	}
	if l.config().relaxed() {
		l.advanceHWLocked(leo)
	} else {
		l.advanceHWLocked(l.durable)
	}
}

// Replicated reports whether the log is in replicated high watermark mode.
func (l *Log) Replicated() bool {
	l.fmu.Lock()
	defer l.fmu.Unlock()
	return l.replicated
}

// advanceHWAutoLocked is the single-node rule's advance; in replicated mode
// only the leader's calls move the high watermark. Callers hold fmu.
func (l *Log) advanceHWAutoLocked(to int64) {
	if !l.replicated {
		l.advanceHWLocked(to)
	}
}

// AdvanceHighWatermark is the leader's: every replica in the ISR holds the
// offsets below to. The high watermark moves up to to, but never past the
// durable end in safe mode (a leader does not expose what a crash of its
// own could take back; the flusher completes the move as fsyncs finish) nor
// past the log end. It never moves down. It reports whether it moved now
// and wakes Changed waiters if so. Outside replicated mode it does nothing.
func (l *Log) AdvanceHighWatermark(to int64) bool {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	l.fmu.Lock()
	defer l.fmu.Unlock()
	if !l.replicated || l.fclosed {
		return false
	}
	to = min(to, l.leo)
	l.hwTarget = max(l.hwTarget, to)
	limit := l.durable
	if l.config().relaxed() {
		limit = l.leo
	}
	before := l.hw.Load()
	l.advanceHWLocked(min(l.hwTarget, limit))
	moved := l.hw.Load() > before
	if moved && l.nowMs()-l.hwCkptAt.Load() >= hwCheckpointIntervalMs {
		l.requestFlush() // the flusher writes the checkpoint
	}
	return moved
}

// SetHighWatermark is the follower's: it takes the leader's high watermark,
// capped at its own log end and raised to its log start. Like Kafka's
// follower it may move the high watermark down (a new leader's may be
// behind the old one's); Changed waiters wake when it moves up. Outside
// replicated mode it does nothing.
func (l *Log) SetHighWatermark(hw int64) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	hw = max(min(hw, l.leo), l.logStart)
	l.fmu.Lock()
	defer l.fmu.Unlock()
	if !l.replicated || l.fclosed {
		return
	}
	l.hwTarget = hw
	if hw > l.hw.Load() {
		l.advanceHWLocked(hw)
		if l.nowMs()-l.hwCkptAt.Load() >= hwCheckpointIntervalMs {
			l.requestFlush()
		}
	} else {
		l.hw.Store(hw)
	}
}

// DurableEnd is the offset below which every record is fsynced (with the
// directory entries of its files). In safe mode it is what a leader may
// count itself as holding when it advances the high watermark.
func (l *Log) DurableEnd() int64 {
	l.fmu.Lock()
	defer l.fmu.Unlock()
	return l.durable
}

// AssignLeaderEpoch opens leader epoch epoch at the log end, as a new
// leader does before taking writes, so OffsetForLeaderEpoch answers for it
// at once; it is persisted before it returns. Assigning the latest epoch
// again does nothing; an older one is ErrStaleLeaderEpoch. An epoch that
// has written nothing by the next Open is forgotten there (as in Kafka);
// the leader assigns it again.
func (l *Log) AssignLeaderEpoch(epoch int32) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return fmt.Errorf("assign leader epoch %s: %w", l.dir, ErrClosed)
	}
	l.segMu.Lock()
	latest := int32(-1)
	if n := len(l.epochs); n > 0 {
		latest = l.epochs[n-1].epoch
	}
	if epoch == latest {
		l.segMu.Unlock()
		return nil
	}
	if epoch < latest || epoch < 0 {
		l.segMu.Unlock()
		return fmt.Errorf("assign leader epoch %s: %d, latest %d: %w", l.dir, epoch, latest, ErrStaleLeaderEpoch)
	}
	prev := append(epochCache(nil), l.epochs...)
	l.epochs.assign(epoch, l.leo)
	l.segMu.Unlock()
	if err := l.writeEpochCheckpoint(); err != nil {
		l.segMu.Lock()
		l.epochs = prev
		l.segMu.Unlock()
		return fmt.Errorf("assign leader epoch %s: %d: %w", l.dir, epoch, err)
	}
	return nil
}

// checkpointHW writes the high watermark checkpoint in replicated mode
// when it changed and, unless force, the last write is old enough.
func (l *Log) checkpointHW(force bool) error {
	l.hwCkptMu.Lock()
	defer l.hwCkptMu.Unlock()
	l.fmu.Lock()
	hw, rep := l.hw.Load(), l.replicated
	l.fmu.Unlock()
	if !rep || hw == l.hwCkpt {
		return nil
	}
	if !force && l.hwCkpt >= 0 && l.nowMs()-l.hwCkptAt.Load() < hwCheckpointIntervalMs {
		return nil
	}
	return l.writeHWCheckpointLocked(hw)
}

// writeHWCheckpointLocked persists hw. Callers hold hwCkptMu.
func (l *Log) writeHWCheckpointLocked(hw int64) error {
	if err := writeFileAtomic(l.dirf, l.dir, hwFile, encodeOffsetCheckpoint(hw)); err != nil {
		return err
	}
	l.hwCkpt = hw
	l.hwCkptAt.Store(l.nowMs())
	return nil
}

// loadTruncateMarker finishes, at Open, a TruncateTo that a crash
// interrupted: the marker holds the new log end; segments from the
// recovery point on were CRC-scanned already. It reports whether a marker
// was found (Open removes it once the log is durable).
func (l *Log) loadTruncateMarker() (bool, error) {
	end, ok, err := readOffsetCheckpoint(l.dir, truncateFile)
	if err != nil {
		// Written atomically, so damage is not a torn write; guessing could
		// resurrect a divergent tail.
		return false, err
	}
	if !ok {
		return false, nil
	}
	if end < l.active().next {
		l.logger.Warn("finishing an interrupted truncation", "dir", l.dir, "log_end", l.active().next, "truncate_to", end)
		cut, err := l.planCut(end)
		if err != nil {
			return false, err
		}
		if err := l.applyCut(cut); err != nil {
			return false, err
		}
	}
	return true, nil
}

// loadHW reads the high watermark checkpoint at Open (-1 when absent or
// unreadable: the log then starts replicated mode at its log start), and
// lowers it to the log end if it lies past it.
func (l *Log) loadHW() error {
	hw, ok, err := readOffsetCheckpoint(l.dir, hwFile)
	if err != nil {
		l.logger.Warn("ignoring high watermark checkpoint", "dir", l.dir, "err", err)
		ok = false
	}
	l.hwCkpt = -1
	if !ok {
		return nil
	}
	if hw > l.leo {
		hw = l.leo
		if err := writeTmpRename(l.dir, hwFile, encodeOffsetCheckpoint(hw)); err != nil {
			return err
		}
	}
	l.hwCkpt = hw
	return nil
}
