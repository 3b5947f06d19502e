package storage

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/strata-broker/strata/proto"
)

// scanBufSize is the read size of recovery scans; bigger batches are read
// whole into their own buffer.
const scanBufSize = 1 << 20

// Open opens (creating if needed) the partition log in dir and recovers it:
// the active segment is always validated batch by batch with CRC32C and a
// torn or corrupt tail truncated; after an unclean shutdown every segment
// from the recovery point on is validated the same way. Indexes that are
// missing or inconsistent are rebuilt from the .log files; producer state
// is loaded from the newest usable snapshot and replayed from there; the
// leader epoch history and the log start offset come from their
// checkpoints (the epoch history is completed from the batches read).
// Everything that survives is fsynced before Open returns, so the high
// watermark starts at the log end.
func Open(dir string, cfg Config, opts Options) (*Log, error) {
	c := cfg.normalize()
	l := &Log{
		dir:         dir,
		logger:      opts.Logger,
		now:         opts.Now,
		prod:        newProducerState(),
		flushReq:    make(chan struct{}, 1),
		stop:        make(chan struct{}),
		flusherDone: make(chan struct{}),
		durableCh:   make(chan struct{}),
		fsys:        osSyncer{},
	}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	l.cfg.Store(&c)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	dirf, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	l.dirf = dirf
	if err := l.load(); err != nil {
		for _, s := range l.segs {
			s.release()
		}
		dirf.Close()
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	if opts.Replicated {
		// The checkpoint is a lower bound of what was committed; without one
		// nothing local is known to be.
		l.replicated = true
		hw := l.logStart
		if l.hwCkpt >= 0 {
			hw = min(max(l.hwCkpt, l.logStart), l.leo)
		}
		l.hw.Store(hw)
		l.hwTarget = hw
	}
	go l.flusher()
	return l, nil
}

// isOwnTemp reports whether name is a temporary file this package writes
// (other files in the directory belong to someone else and are left alone).
func isOwnTemp(name string) bool {
	stem, ok := strings.CutSuffix(name, tmpSuffix)
	if !ok {
		return false
	}
	switch stem {
	case epochFile, logStartFile, remoteEndFile, recoveryFile, cleanShutdownMrk, hwFile, truncateFile, cleanerFile:
		return true
	}
	for _, suf := range []string{indexSuffix, timeIndexSuffix, txnIndexSuffix, snapshotSuffix} {
		if _, ok := parseOffsetName(stem, suf); ok {
			return true
		}
	}
	return false
}

func (l *Log) load() error {
	// A compaction swap cut short by a crash is finished (or undone) first,
	// so what follows sees whole segments only.
	if err := l.recoverCleaner(); err != nil {
		return fmt.Errorf("compaction recovery: %w", err)
	}
	l.loadCleanerState()
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return err
	}
	var bases []int64
	indexFiles := map[int64][]string{}
	for _, e := range ents {
		name := e.Name()
		if isOwnTemp(name) {
			if err := os.Remove(l.path(name)); err != nil {
				return err
			}
			continue
		}
		if b, ok := parseOffsetName(name, logSuffix); ok {
			bases = append(bases, b)
		} else if b, ok := parseOffsetName(name, indexSuffix); ok {
			indexFiles[b] = append(indexFiles[b], name)
		} else if b, ok := parseOffsetName(name, timeIndexSuffix); ok {
			indexFiles[b] = append(indexFiles[b], name)
		} else if b, ok := parseOffsetName(name, txnIndexSuffix); ok {
			indexFiles[b] = append(indexFiles[b], name)
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	for _, b := range bases {
		delete(indexFiles, b)
	}
	for _, names := range indexFiles { // orphans of deleted segments
		for _, n := range names {
			if err := os.Remove(l.path(n)); err != nil {
				return err
			}
		}
	}

	_, err = os.Stat(l.path(cleanShutdownMrk))
	clean := err == nil
	rp, _, err := readOffsetCheckpoint(l.dir, recoveryFile)
	if err != nil {
		l.logger.Warn("ignoring recovery point checkpoint", "dir", l.dir, "err", err)
		rp = 0
	}
	if clean {
		rp = math.MaxInt64
	}
	ls, _, err := readOffsetCheckpoint(l.dir, logStartFile)
	if err != nil {
		l.logger.Warn("ignoring log start offset checkpoint", "dir", l.dir, "err", err)
		ls = 0
	}
	re, _, err := readOffsetCheckpoint(l.dir, remoteEndFile)
	remoteKnown := err == nil
	if err != nil {
		// Without it nothing may be deleted for being remote (remoteEnd 0)
		// until the tiering manager sets it again, and the log start below
		// the local segments is kept rather than raised: forgetting tiered
		// data would be worse than offering it.
		l.logger.Error("ignoring remote end checkpoint", "dir", l.dir, "err", err)
		re = 0
	}
	l.remoteEnd = re
	epochsOK := false
	if b, err := os.ReadFile(l.path(epochFile)); err == nil {
		if es, err := decodeEpochCheckpoint(b); err == nil {
			l.epochs, epochsOK = es, true
		} else {
			l.logger.Warn("rebuilding leader epoch history", "dir", l.dir, "err", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if len(bases) == 0 {
		epochsOK = true // nothing to rebuild from
		l.epochs = l.epochs[:0]
		// Offsets below the remote end exist remotely: never reassign them.
		bases = []int64{max(ls, re)}
	}

	if err := l.loadSegments(bases, clean, rp, epochsOK); err != nil {
		return err
	}
	truncated, err := l.loadTruncateMarker()
	if err != nil {
		return fmt.Errorf("truncation marker: %w", err)
	}
	act := l.active()
	l.leo = act.next
	if !epochsOK {
		l.epochs = l.epochs[:0]
		for _, s := range l.segs {
			if err := walkHeaders(s, 0, s.size, func(h *header, _ int64) bool {
				l.epochs.assign(h.epoch, h.base)
				return true
			}); err != nil {
				return err
			}
		}
	}
	l.epochs.truncateFromEnd(l.leo)

	if len(l.segs) == 1 && act.size == 0 && re > l.leo {
		// An empty log whose offsets up to re are remote (ResetEmpty was
		// cut short by a crash, or a follower fell behind the remote tier):
		// continue after them rather than assign them a second time.
		l.logger.Info("empty log restarts at the remote end", "dir", l.dir, "log_end", l.leo, "remote_end", re)
		if err := l.resetTo(re); err != nil {
			return err
		}
	}
	// The log start may lie below the first local segment only while the
	// remote tier holds everything in between.
	first := l.segs[0].base
	l.logStart = max(first, ls)
	if ls < first && (re >= first || !remoteKnown) {
		l.logStart = ls
	}
	if l.logStart > l.leo {
		// Records were deleted up to an offset the log no longer reaches
		// (it lost an unflushed tail): start over empty at the log start.
		l.logger.Warn("log end below log start offset; emptying log", "dir", l.dir, "log_end", l.leo, "log_start", l.logStart)
		if err := l.resetTo(l.logStart); err != nil {
			return err
		}
	}
	l.epochs.truncateFromStart(l.logStart)

	if err := l.loadProducers(); err != nil {
		return err
	}
	if err := l.loadHW(); err != nil {
		return err
	}

	// From now on a crash must be seen as unclean.
	if clean {
		if err := os.Remove(l.path(cleanShutdownMrk)); err != nil {
			return err
		}
	}
	l.dirGen++ // files may have been created, truncated or removed above
	if !clean {
		l.recoveryPt = rp
	}
	for _, c := range []struct {
		name string
		data []byte
	}{
		{logStartFile, encodeOffsetCheckpoint(l.logStart)},
		{epochFile, encodeEpochCheckpoint(l.epochs)},
	} {
		if err := writeTmpRename(l.dir, c.name, c.data); err != nil {
			return err
		}
	}
	if err := l.flush(); err != nil {
		return err
	}
	l.deleteOldSnapshots()
	if truncated {
		// The snapshots past the cut must be gone for good before the
		// marker is: the log may grow past them again.
		if err := l.fsys.syncDir(l.dirf); err != nil {
			return err
		}
		if err := os.Remove(l.path(truncateFile)); err != nil {
			return err
		}
		if err := l.fsys.syncDir(l.dirf); err != nil {
			return err
		}
	}
	l.durable = l.leo
	l.hw.Store(l.leo)
	return nil
}

// loadSegments opens the segment files and brings each to a trusted state:
// the last one, and with an unclean shutdown every one from the recovery
// point on, is scanned with CRC checks; the others load their index files
// (rebuilt when unusable). A corrupt batch truncates its segment there and
// removes every later segment, since offsets must stay dense.
func (l *Log) loadSegments(bases []int64, clean bool, rp int64, epochsOK bool) error {
	for i, b := range bases {
		f, err := os.OpenFile(l.path(segmentName(b)), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		s := newSegment(b, f)
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		s.size = st.Size()
		if s.size == 0 && i < len(bases)-1 {
			// An empty segment that is not the last holds nothing.
			f.Close()
			if err := l.removeSegmentFiles(b); err != nil {
				return err
			}
			continue
		}
		l.segs = append(l.segs, s)
	}
	var scratch []byte
	for i := 0; i < len(l.segs); i++ {
		s := l.segs[i]
		last := i == len(l.segs)-1
		end := int64(math.MaxInt64)
		if !last {
			end = l.segs[i+1].base
		}
		if last || (!clean && end > rp) {
			fileSize := s.size
			valid, err := l.scanSegment(s, true, &scratch, func(h *header) {
				if epochsOK {
					l.epochs.assign(h.epoch, h.base)
				}
			})
			if err != nil {
				return err
			}
			if valid < fileSize {
				l.logger.Warn("truncating corrupt or torn segment tail", "dir", l.dir, "segment", s.base,
					"valid_bytes", valid, "file_bytes", fileSize, "dropped_segments", len(l.segs)-1-i)
				if err := s.f.Truncate(valid); err != nil {
					return err
				}
				for _, later := range l.segs[i+1:] {
					later.release()
					if err := l.removeSegmentFiles(later.base); err != nil {
						return err
					}
				}
				l.segs = l.segs[:i+1]
				last = true
			}
			s.size, s.synced, s.persisted = valid, 0, false
			s.txns, s.txnStale = nil, true // rebuilt by loadProducers
			if last {
				s.firstTs = -1
				if s.size > 0 {
					var hb [batchHeaderSize]byte
					h, err := readHeader(s.f, 0, timeHdrSize, &hb)
					if err != nil {
						return err
					}
					// segment.ms counts from the first batch's timestamp, as
					// in Kafka; one without a usable timestamp counts from now.
					s.firstTs = l.nowMs()
					if h.maxTs > 0 {
						s.firstTs = min(h.maxTs, s.firstTs)
					}
				}
			} else {
				s.seal()
			}
			continue
		}
		s.sealed, s.synced = true, s.size
		if err := l.loadIndexes(s, end); err != nil {
			l.logger.Warn("rebuilding segment indexes", "dir", l.dir, "segment", s.base, "reason", err)
			if _, err := l.scanSegment(s, false, &scratch, nil); err != nil {
				return err
			}
			s.seal()
			s.persisted = false
		}
		l.loadTxnIndex(s, end)
	}
	return nil
}

// loadIndexes reads a sealed segment's index files and checks them against
// the .log: sizes and ordering, and the last offset index entry must point
// at a batch header with the offset it claims.
func (l *Log) loadIndexes(s *segment, next int64) error {
	ib, err := os.ReadFile(l.path(indexName(s.base)))
	if err != nil {
		return err
	}
	tb, err := os.ReadFile(l.path(timeIndexName(s.base)))
	if err != nil {
		return err
	}
	idx, err := decodeOffsetIndex(ib, s.size)
	if err != nil {
		return err
	}
	tidx, err := decodeTimeIndex(tb, next-s.base)
	if err != nil {
		return err
	}
	if len(tidx) == 0 {
		return fmt.Errorf("empty time index for a non-empty segment: %w", ErrCorrupt)
	}
	if n := len(idx); n > 0 {
		var hb [batchHeaderSize]byte
		h, err := readHeader(s.f, int64(idx[n-1].pos), offsetHdrSize, &hb)
		if err != nil {
			return err
		}
		if h.base != s.base+int64(idx[n-1].rel) {
			return fmt.Errorf("offset index points at offset %d, log has %d: %w", s.base+int64(idx[n-1].rel), h.base, ErrCorrupt)
		}
	}
	s.index, s.tindex = idx, tidx
	lastT := tidx[len(tidx)-1]
	s.maxTs, s.maxTsOff = lastT.ts, s.base+int64(lastT.rel)
	s.next = next
	s.persisted = true
	return nil
}

// scanSegment reads a segment from the start, rebuilding its indexes, and
// returns the length of its prefix of well-formed batches: lengths sane,
// magic 2, offsets increasing, and (verify) CRC32C intact. It reads the
// whole file sequentially; onBatch sees each good batch in order.
func (l *Log) scanSegment(s *segment, verify bool, scratch *[]byte, onBatch func(h *header)) (int64, error) {
	interval := l.config().IndexIntervalBytes
	size := s.size
	s.resetIndexes()
	br := bufio.NewReaderSize(io.NewSectionReader(s.f, 0, size), scanBufSize)
	var crcErr error
	check := func(proto.Batch) error { return nil }
	var pos int64
	expect := s.base
	for pos < size {
		if size-pos < batchHeaderSize {
			break // torn header
		}
		pre, err := br.Peek(logOverhead)
		if err != nil {
			return 0, err
		}
		length := int64(int32(binary.BigEndian.Uint32(pre[hdrBatchLength:])))
		total := logOverhead + length
		if length < batchHeaderSize-logOverhead || pos+total > size {
			break // torn or garbage length
		}
		var raw []byte
		if total <= scanBufSize {
			if raw, err = br.Peek(int(total)); err != nil {
				return 0, err
			}
		} else {
			if int64(cap(*scratch)) < total {
				*scratch = make([]byte, total)
			}
			raw = (*scratch)[:total]
			if _, err := io.ReadFull(br, raw); err != nil {
				return 0, err
			}
		}
		h := parseHeader(raw[:batchHeaderSize])
		if h.magic != 2 || h.lastDelta < 0 || h.base < expect || h.last()-s.base > math.MaxUint32 {
			break
		}
		if verify {
			if crcErr = proto.SplitBatches(raw, true, check); crcErr != nil {
				break
			}
		}
		if total <= scanBufSize {
			if _, err := br.Discard(int(total)); err != nil {
				return 0, err
			}
		}
		s.track(h.base, h.last(), h.maxTs, pos, total, interval)
		if onBatch != nil {
			onBatch(&h)
		}
		expect = h.last() + 1
		pos += total
	}
	if pos < size {
		l.logger.Debug("segment scan stopped", "dir", l.dir, "segment", s.base, "pos", pos, "size", size, "crc_err", crcErr)
	}
	return pos, nil
}

// walkHeaders calls fn for each batch of s in [from, end), reading only
// headers with pread; from must be a batch boundary. fn returns false to
// stop.
func walkHeaders(s *segment, from, end int64, fn func(h *header, pos int64) bool) error {
	var hb [batchHeaderSize]byte
	for pos := from; pos < end; {
		h, err := readHeader(s.f, pos, batchHeaderSize, &hb)
		if err != nil {
			return err
		}
		if !fn(&h, pos) {
			return nil
		}
		pos += h.size()
	}
	return nil
}

// loadProducers restores producer state: the newest snapshot at or below
// the log end that decodes, then the batches after it. Transaction indexes
// marked stale are rebuilt on the way, so the snapshot is taken at or
// below the first of them (txnReplayLimit).
func (l *Log) loadProducers() error {
	from := l.segs[0].base
	limit := l.txnReplayLimit()
	offs := l.listSnapshots()
	for i := len(offs) - 1; i >= 0; i-- {
		off := offs[i]
		if off > limit {
			continue // newer than the replay start (past the log end: deleteOldSnapshots removes it)
		}
		b, err := os.ReadFile(l.path(snapshotName(off)))
		if err == nil {
			var m map[int64]*producerEntry
			if m, err = decodeProducerSnapshot(b); err == nil {
				l.prod.load(m)
				from = off
				break
			}
		}
		l.logger.Warn("skipping producer snapshot", "dir", l.dir, "offset", off, "err", err)
		if err := os.Remove(l.path(snapshotName(off))); err != nil {
			return err
		}
	}
	for _, s := range l.segs {
		if s.next <= from {
			continue
		}
		var rerr error
		if err := walkHeaders(s, s.floorPos(from), s.size, func(h *header, pos int64) bool {
			if h.base >= from {
				rerr = l.replayBatch(s, h, pos)
			}
			return rerr == nil
		}); err != nil {
			return err
		}
		if rerr != nil {
			return rerr
		}
	}
	l.publishReplayedTxns()
	return nil
}

// resetTo removes every segment and starts an empty log at base.
func (l *Log) resetTo(base int64) error {
	for _, s := range l.segs {
		s.release()
		if err := l.removeSegmentFiles(s.base); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(l.path(segmentName(base)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	s := newSegment(base, f)
	s.persisted = true
	l.segs = []*segment{s}
	l.leo = base
	l.epochs = l.epochs[:0]
	return nil
}

// removeSegmentFiles unlinks a segment's files; missing ones are fine.
func (l *Log) removeSegmentFiles(base int64) error {
	var errs []error
	for _, name := range []string{segmentName(base), indexName(base), timeIndexName(base), txnIndexName(base)} {
		if err := os.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
