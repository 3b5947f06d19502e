package storage

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/strata-broker/strata/proto"
)

// Log compaction (cleanup.policy=compact), after Kafka's log cleaner: for
// every key only the record with the highest offset survives, tombstones
// (null values) go once delete.retention.ms has passed, and no offset ever
// changes. See doc.go ("Compaction") for the on-disk protocol.

// ErrOffsetMapTooSmall: the offset map cannot hold the keys of even one
// batch (CompactOptions.MaxOffsetMapBytes is too small for the data).
var ErrOffsetMapTooSmall = errors.New("storage: offset map too small for one batch")

// errCleanAborted: the log changed under a cleaning pass (retention,
// DeleteRecordsBefore or TruncateTo removed or cut a segment the pass
// read), so its output is thrown away.
var errCleanAborted = errors.New("storage: segments changed during cleaning")

// attrDeleteHorizon is batch attribute bit 6 (KIP-534): the batch's first
// timestamp field holds the time after which its tombstones may be
// removed, and its records' timestamp deltas are relative to it.
const attrDeleteHorizon = 1 << 6

// attrCodecMask selects the compression codec bits of the attributes.
const attrCodecMask = 0x07

// Steps of a segment swap at which tests simulate a crash (Log.testHook).
const (
	compactStepCleaned = "compact-cleaned" // .cleaned files durable, nothing renamed
	compactStepSwap    = "compact-swap"    // .swap files durable: committed
	compactStepDeleted = "compact-deleted" // replaced segments' files removed
	compactStepRenamed = "compact-renamed" // .swap renamed to the final names
)

// CompactOptions are the topic configs of one cleaning, named after
// Kafka's. Durations are whole milliseconds in Kafka; any precision works
// here.
type CompactOptions struct {
	// Now is the cleaner's clock (the log's Options.Now when zero): record
	// ages for the lags and tombstone delete horizons are measured with it.
	Now time.Time
	// DeleteRetention is delete.retention.ms: a tombstone survives at least
	// this long after the first cleaning that kept it, so a consumer that
	// reads from the start in that time sees the delete.
	DeleteRetention time.Duration
	// MinCompactionLag is min.compaction.lag.ms: a segment holding a record
	// (by timestamp) younger than this is not cleaned, nor is anything after
	// it.
	MinCompactionLag time.Duration
	// MaxCompactionLag is max.compaction.lag.ms (<= 0: none, Kafka's
	// default of Long.MAX): a dirty segment whose first batch is older
	// makes cleaning due whatever the dirty ratio (KIP-354).
	MaxCompactionLag time.Duration
	// MinCleanableDirtyRatio is min.cleanable.dirty.ratio: Compact cleans
	// only when the dirty ratio exceeds it (or cleaning is due anyway).
	MinCleanableDirtyRatio float64
	// MaxOffsetMapBytes bounds the key -> offset map of a pass
	// (DefaultMaxOffsetMapBytes when zero). When the dirty part has more
	// distinct keys than fit, Compact cleans in several passes.
	MaxOffsetMapBytes int64
}

// CompactResult reports what Compact did.
type CompactResult struct {
	// Cleaned is false when nothing was due (ratio below the minimum, or
	// nothing cleanable); the fields below DirtyRatio are then zero.
	Cleaned    bool
	DirtyRatio float64
	MustClean  bool
	// FirstDirty is the first dirty offset before; CleanedTo the one after
	// (the cleaner checkpoint).
	FirstDirty, CleanedTo int64
	Passes                int
	// SegmentsReplaced old segments were swapped for SegmentsWritten new
	// ones (fewer when small segments were merged).
	SegmentsReplaced, SegmentsWritten int
	BytesBefore, BytesAfter           int64 // of the replaced / new segments
	RecordsRemoved                    int64 // superseded by a later record of the same key
	TombstonesRemoved                 int64 // past their delete horizon
	InvalidRecords                    int64 // without a key: dropped, as Kafka's cleaner does
}

// cleanPlan is a view of the log for one pass: the local sealed segments
// (referenced), which prefix of them may be cleaned, and the checkpoint.
type cleanPlan struct {
	segs             []*segment // every non-active segment, each referenced
	ends             []int64    // ends[i]: base of the segment after segs[i]
	sizes            []int64
	nClean           int // segs[:nClean] are cleanable
	firstDirty       int64
	firstUncleanable int64
	cleanBytes       int64
	dirtyBytes       int64
	ratio            float64
	must             bool
	remote           bool
}

func (p *cleanPlan) release() {
	for _, s := range p.segs {
		s.release()
	}
	p.segs = nil
}

// planClean computes the cleanable range as Kafka's cleaner manager does,
// at segment granularity: from the first local segment up to the first
// segment that is active, reaches past the high watermark, is not yet
// durable with its indexes, or holds a record younger than the minimum
// compaction lag. The dirty part starts at the cleaner checkpoint.
func (l *Log) planClean(now time.Time, opts CompactOptions) (*cleanPlan, error) {
	nowMs := now.UnixMilli()
	hw := l.HighWatermark()
	l.segMu.RLock()
	if len(l.segs) == 0 {
		l.segMu.RUnlock()
		return nil, ErrClosed
	}
	p := &cleanPlan{remote: l.config().RemoteEnabled}
	fd := l.cleanerCkpt.Load()
	if fd < l.logStart || fd > l.leo {
		fd = l.logStart // no checkpoint, or one the log no longer reaches
	}
	p.firstDirty = max(fd, l.segs[0].base)
	n := len(l.segs) - 1
	p.nClean = n
	lagMs := opts.MinCompactionLag.Milliseconds()
	for i := range n {
		s, next := l.segs[i], l.segs[i+1].base
		s.ref()
		p.segs = append(p.segs, s)
		p.ends = append(p.ends, next)
		p.sizes = append(p.sizes, s.size)
		if p.nClean == n && (next > hw || !s.durableSealed() || (lagMs > 0 && s.maxTs > nowMs-lagMs)) {
			p.nClean = i
		}
	}
	p.firstUncleanable = l.segs[p.nClean].base
	l.segMu.RUnlock()

	for i := range p.nClean {
		if p.ends[i] <= p.firstDirty {
			p.cleanBytes += p.sizes[i]
		} else {
			p.dirtyBytes += p.sizes[i]
		}
	}
	if t := p.cleanBytes + p.dirtyBytes; t > 0 {
		p.ratio = float64(p.dirtyBytes) / float64(t)
	}
	if maxLag := opts.MaxCompactionLag.Milliseconds(); maxLag > 0 && p.dirtyBytes > 0 {
		// KIP-354: the oldest dirty record is taken from each dirty
		// segment's first batch (timestamps need not grow), active segment
		// excluded. Batches without a timestamp do not count.
		var hb [batchHeaderSize]byte
		for i, s := range p.segs {
			if p.ends[i] <= p.firstDirty || p.sizes[i] == 0 {
				continue
			}
			h, err := readHeader(s.f, 0, timeHdrSize, &hb)
			if err != nil {
				p.release()
				return nil, err
			}
			if h.maxTs >= 0 && nowMs-h.maxTs > maxLag {
				p.must = true
				break
			}
		}
	}
	if p.nClean > 0 && l.nextHorizon.Load() <= nowMs {
		p.must = true // a kept tombstone may go now
	}
	return p, nil
}

// CleanableDirtyRatio reports the dirty ratio Kafka's cleaner schedules by:
// bytes of cleanable segments at or after the first dirty offset over bytes
// of all cleanable segments (0 when there are none), the first dirty offset
// (the cleaner checkpoint, or the log start), and whether cleaning is due
// whatever the ratio: a dirty segment older than max.compaction.lag.ms, or
// a tombstone kept by an earlier cleaning whose delete horizon has passed.
func (l *Log) CleanableDirtyRatio(opts CompactOptions) (ratio float64, firstDirty int64, mustClean bool) {
	now := opts.Now
	if now.IsZero() {
		now = l.now()
	}
	p, err := l.planClean(now, opts)
	if err != nil {
		return 0, l.LogStartOffset(), false
	}
	p.release()
	return p.ratio, p.firstDirty, p.must
}

// Compact cleans the log once if cleaning is due (dirty ratio above
// MinCleanableDirtyRatio, or CleanableDirtyRatio's mustClean), and returns
// what it did. Only sealed segments wholly below the high watermark and
// older than MinCompactionLag are touched; the active segment never is.
//
// A pass builds a map of key -> latest offset over the dirty part (as far
// as the map holds, at batch granularity), then rewrites every cleanable
// segment from the first one up to where the map ends, in groups merged up
// to segment.bytes: a record stays if no later record of its key is in the
// map; a tombstone also needs its delete horizon (set to Now +
// DeleteRetention by the first cleaning that keeps it) not to have passed;
// records without a key are dropped (Kafka rejects them on compacted
// topics and its cleaner drops them). Control batches and transactional
// batches are kept whole and stay out of the map, until transactions
// exist (issue 5): an aborted record must never hide a committed one.
//
// Offsets never change: a rewritten batch keeps its base offset, last
// offset delta, producer id, epoch and base sequence, leader epoch, max
// timestamp and codec; its records keep their offset deltas and
// timestamps. A batch left without records is dropped, except the last
// batch of a group (so each new segment ends where the old ones did) and a
// producer's last batch (idempotent producer state is rebuilt from it),
// which stay as empty batches. Each group is written to .cleaned files and
// swapped in by renames that recovery completes or undoes (doc.go). Then
// the checkpoint moves to where the map ended; passes repeat until the
// dirty part is done.
//
// Compact runs concurrently with appends and reads: it holds the log's
// writer lock only to swap a group in. Readers keep reading replaced
// segments through the ReadResults they hold. One Compact runs at a time.
func (l *Log) Compact(opts CompactOptions) (CompactResult, error) {
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	if l.closed.Load() {
		return CompactResult{}, fmt.Errorf("compact %s: %w", l.dir, ErrClosed)
	}
	now := opts.Now
	if now.IsZero() {
		now = l.now()
	}
	p, err := l.planClean(now, opts)
	if err != nil {
		return CompactResult{}, fmt.Errorf("compact %s: %w", l.dir, err)
	}
	res := CompactResult{DirtyRatio: p.ratio, MustClean: p.must, FirstDirty: p.firstDirty, CleanedTo: p.firstDirty}
	if p.nClean == 0 || !(p.must || (p.dirtyBytes > 0 && p.ratio > opts.MinCleanableDirtyRatio)) {
		p.release()
		return res, nil
	}
	res.Cleaned = true
	c := &cleaner{
		l:          l,
		m:          newOffsetMap(opts.MaxOffsetMapBytes),
		nowMs:      now.UnixMilli(),
		horizonMs:  now.UnixMilli() + opts.DeleteRetention.Milliseconds(),
		prodLast:   l.producerLastOffsets(),
		res:        &res,
		minHorizon: math.MaxInt64,
		arena:      make([]byte, 0, 4096),
	}
	upper := p.firstUncleanable
	for {
		res.Passes++
		end, err := c.pass(p)
		p.release()
		if err != nil {
			return res, fmt.Errorf("compact %s: %w", l.dir, err)
		}
		if err := l.writeCleanerCheckpoint(end); err != nil {
			return res, fmt.Errorf("compact %s: checkpoint: %w", l.dir, err)
		}
		res.CleanedTo = end
		if end >= upper {
			break
		}
		if p, err = l.planClean(now, opts); err != nil {
			return res, fmt.Errorf("compact %s: %w", l.dir, err)
		}
		// The first plan's bound holds for every pass, so Compact ends even
		// while new segments become cleanable.
		for p.nClean > 0 && p.segs[p.nClean-1].base >= upper {
			p.nClean--
		}
		if p.nClean == 0 || p.firstDirty >= upper {
			p.release()
			break
		}
	}
	l.nextHorizon.Store(c.minHorizon)
	return res, nil
}

// producerLastOffsets returns each producer's last data offset, so the
// batch holding it survives cleaning (as an empty batch if need be) and a
// replay of the log rebuilds the producer's sequence state.
func (l *Log) producerLastOffsets() map[int64]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[int64]int64, len(l.prod.m))
	for pid, e := range l.prod.m {
		if e.n > 0 {
			m[pid] = e.batches[e.n-1].lastOff
		}
	}
	return m
}

func (l *Log) writeCleanerCheckpoint(off int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	if err := writeFileAtomic(l.dirf, l.dir, cleanerFile, encodeOffsetCheckpoint(off)); err != nil {
		return err
	}
	l.cleanerCkpt.Store(off)
	return nil
}

// span is a run of the cleaner's arena; n < 0 stands for null.
type span struct{ off, n int }

type keptRecord struct {
	attrs      int8
	ts         int64 // absolute
	offDelta   int32
	key, val   span
	hdr0, hdrN int // into cleaner.hdrs
}

type keptHeader struct{ key, val span }

// cleaner is the state of one Compact call.
type cleaner struct {
	l          *Log
	m          *offsetMap
	nowMs      int64
	horizonMs  int64 // delete horizon given to batches whose tombstones are kept for the first time
	prodLast   map[int64]int64
	res        *CompactResult
	minHorizon int64 // earliest delete horizon among kept tombstones

	buf   []byte // batch read buffer
	out   []byte // rebuilt batch
	arena []byte // copies of kept keys, values and headers of one batch
	kept  []keptRecord
	hdrs  []keptHeader
	recs  []proto.Record
	precs []proto.Header
}

// pass builds the offset map from the first dirty offset, rewrites the
// cleanable segments below where it ended and returns that offset.
func (c *cleaner) pass(p *cleanPlan) (int64, error) {
	c.m.reset()
	end, sources, err := c.buildMap(p)
	if err != nil {
		return 0, err
	}
	k := 0
	for k < p.nClean && p.segs[k].base < end {
		k++
	}
	// Segments the map was built from must still be there, unchanged, when
	// a group is swapped in: a map entry whose record was truncated away
	// must not remove older values.
	check := make(map[*segment]int64, len(sources))
	for _, i := range sources {
		check[p.segs[i]] = p.sizes[i]
	}
	for i := 0; i < k; {
		j := c.groupEnd(p, i, k)
		ns, err := c.rewrite(p, i, j)
		if err != nil {
			return 0, err
		}
		if ns != nil {
			err := c.l.swapCleaned(p.segs[i:j], p.sizes[i:j], ns, check)
			if errors.Is(err, errCleanAborted) {
				c.l.logger.Info("compaction pass aborted: log changed", "dir", c.l.dir, "base", ns.base)
				c.l.discardCleaned(ns)
				return end, nil
			}
			if err != nil {
				c.l.discardCleaned(ns)
				return 0, err
			}
			for _, s := range p.segs[i:j] {
				if _, ok := check[s]; ok {
					delete(check, s)
					check[ns] = ns.size
				}
			}
			c.res.SegmentsReplaced += j - i
			c.res.SegmentsWritten++
			for _, n := range p.sizes[i:j] {
				c.res.BytesBefore += n
			}
			c.res.BytesAfter += ns.size
		}
		i = j
	}
	return end, nil
}

// buildMap fills the offset map from p.firstDirty up to the first
// uncleanable offset or, when the map fills up, the batch that did not fit
// (which is returned). It returns the indexes of the segments it read.
func (c *cleaner) buildMap(p *cleanPlan) (int64, []int, error) {
	end := p.firstUncleanable
	var sources []int
	full := false
	for i := 0; i < p.nClean && !full; i++ {
		if p.ends[i] <= p.firstDirty {
			continue
		}
		sources = append(sources, i)
		err := readStoredBatches(p.segs[i].f, p.sizes[i], &c.buf, func(b proto.Batch, _ bool) error {
			fit, err := c.mapBatch(b, p.firstDirty)
			if err == nil && !fit {
				end, full = b.BaseOffset, true
				return errFound
			}
			return err
		})
		if err != nil && !errors.Is(err, errFound) {
			return 0, nil, fmt.Errorf("offset map from segment %d: %w", p.segs[i].base, err)
		}
	}
	if end <= p.firstDirty && p.firstDirty < p.firstUncleanable {
		return 0, nil, fmt.Errorf("first dirty offset %d: %w", p.firstDirty, ErrOffsetMapTooSmall)
	}
	return max(end, p.firstDirty), sources, nil
}

// mapBatch records the keys of b's records at offsets >= from in the
// offset map. Control and transactional batches stay out of it. fit is
// false, with nothing recorded, when the batch's records might not fit.
func (c *cleaner) mapBatch(b proto.Batch, from int64) (fit bool, err error) {
	if b.LastOffset() < from || b.IsControl() || b.IsTransactional() {
		return true, nil
	}
	if !c.m.room(int(b.NumRecords)) {
		return false, nil
	}
	return true, proto.ForEachRecord(b, func(r proto.Record) error {
		if off := b.BaseOffset + int64(r.OffsetDelta); r.Key != nil && off >= from {
			c.m.put(r.Key, off)
		}
		return nil
	})
}

// groupEnd returns j such that segs[i:j] are rewritten as one segment:
// as many as fit segment.bytes together (by their current sizes, as
// Kafka groups them), their index entries the index bound, and their
// offsets 32-bit relative ones. Tiered logs never merge: the tiering
// manager names segments by base offset.
func (c *cleaner) groupEnd(p *cleanPlan, i, k int) int {
	cfg := c.l.config()
	maxEntries := int(cfg.SegmentIndexBytes) / timeEntrySize
	size, entries := p.sizes[i], c.indexEntries(p.segs[i])
	j := i + 1
	for ; j < k && !p.remote; j++ {
		e := c.indexEntries(p.segs[j])
		if size+p.sizes[j] > cfg.SegmentBytes || entries+e > maxEntries || p.ends[j]-1-p.segs[i].base > math.MaxUint32 {
			break
		}
		size += p.sizes[j]
		entries += e
	}
	return j
}

func (c *cleaner) indexEntries(s *segment) int {
	c.l.segMu.RLock()
	defer c.l.segMu.RUnlock()
	return max(len(s.index), len(s.tindex)) + 1
}

// rewrite writes the cleaned contents of segs[i:j] to .cleaned files (data
// and indexes fsynced) and returns the new segment, or nil when nothing
// would change (one segment, every batch kept as it is).
func (c *cleaner) rewrite(p *cleanPlan, i, j int) (*segment, error) {
	l := c.l
	base := p.segs[i].base
	f, err := os.OpenFile(l.path(segmentName(base)+cleanedSuffix), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	ns := newSegment(base, f)
	ns.sealed = true
	interval := l.config().IndexIntervalBytes
	w := bufio.NewWriterSize(f, 1<<20)
	changed := j-i > 1
	var pos int64
	for g := i; g < j; g++ {
		lastSeg := g == j-1
		err := readStoredBatches(p.segs[g].f, p.sizes[g], &c.buf, func(b proto.Batch, last bool) error {
			out, ch, err := c.filter(b, lastSeg && last)
			if err != nil {
				return err
			}
			changed = changed || ch
			if out == nil {
				return nil
			}
			if _, err := w.Write(out); err != nil {
				return err
			}
			n := int64(len(out))
			ns.track(b.BaseOffset, b.LastOffset(), b.MaxTimestamp, pos, n, interval)
			pos += n
			return nil
		})
		if err != nil {
			l.discardCleaned(ns)
			return nil, fmt.Errorf("clean segment %d: %w", p.segs[g].base, err)
		}
	}
	if !changed {
		l.discardCleaned(ns)
		return nil, nil
	}
	err = w.Flush()
	if err == nil {
		err = datasync(f)
	}
	if err == nil {
		ns.size, ns.synced = pos, pos
		ns.seal()
		err = writeSynced(l.path(indexName(base)+cleanedSuffix), encodeOffsetIndex(ns.index))
	}
	if err == nil {
		err = writeSynced(l.path(timeIndexName(base)+cleanedSuffix), encodeTimeIndex(ns.tindex))
	}
	if err == nil {
		// Transaction markers and transactional batches are all kept, so
		// the aborted transactions of the group stay exactly as indexed.
		l.segMu.RLock()
		for _, s := range p.segs[i:j] {
			ns.txns = append(ns.txns, s.txns...)
			ns.txnStale = ns.txnStale || s.txnStale
		}
		l.segMu.RUnlock()
		if !ns.txnStale { // a missing file makes Open rebuild it
			err = writeSynced(l.path(txnIndexName(base)+cleanedSuffix), encodeTxnIndex(ns.txns))
		}
	}
	if err != nil {
		l.discardCleaned(ns)
		return nil, err
	}
	ns.persisted = true
	return ns, nil
}

// filter returns what becomes of one stored batch: itself (changed false),
// a rebuilt batch, or nil when it goes. keepEmpty keeps a batch that loses
// every record as an empty one. The result aliases b or the cleaner's
// buffer until the next call.
func (c *cleaner) filter(b proto.Batch, keepEmpty bool) ([]byte, bool, error) {
	if b.IsControl() || b.IsTransactional() {
		return b.Raw, false, nil
	}
	hasHorizon := b.Attributes&attrDeleteHorizon != 0
	c.arena, c.kept, c.hdrs = c.arena[:0], c.kept[:0], c.hdrs[:0]
	var removed, tombs, invalid, keptTombs int64
	err := proto.ForEachRecord(b, func(r proto.Record) error {
		off := b.BaseOffset + int64(r.OffsetDelta)
		switch {
		case r.Key == nil:
			invalid++
			return nil
		case c.m.get(r.Key) > off:
			removed++
			return nil
		case r.Value == nil:
			if hasHorizon && c.nowMs >= b.FirstTimestamp {
				tombs++
				return nil
			}
			keptTombs++
		}
		c.keep(&r, b.FirstTimestamp)
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("batch at offset %d: %v: %w", b.BaseOffset, err, ErrCorrupt)
	}
	setHorizon := keptTombs > 0 && !hasHorizon
	if keptTombs > 0 {
		h := b.FirstTimestamp
		if setHorizon {
			h = c.horizonMs
		}
		c.minHorizon = min(c.minHorizon, h)
	}
	if removed+tombs+invalid == 0 && !setHorizon {
		return b.Raw, false, nil
	}
	c.res.RecordsRemoved += removed
	c.res.TombstonesRemoved += tombs
	c.res.InvalidRecords += invalid
	if len(c.kept) == 0 {
		if last, ok := c.prodLast[b.ProducerID]; !keepEmpty && !(b.ProducerID >= 0 && ok && last == b.LastOffset()) {
			return nil, true, nil
		}
		c.out = proto.AppendBatch(c.out[:0], proto.BatchSpec{
			BaseOffset: b.BaseOffset, FirstTimestamp: b.FirstTimestamp,
			ProducerID: b.ProducerID, ProducerEpoch: b.ProducerEpoch, BaseSequence: b.BaseSequence,
		}, nil)
		// An empty batch has nothing to compress.
		finishHeader(c.out, &b, b.Attributes&^attrCodecMask)
		return c.out, true, nil
	}
	first, attrs := b.FirstTimestamp, b.Attributes
	if setHorizon {
		first, attrs = c.horizonMs, attrs|attrDeleteHorizon
	}
	c.recs, c.precs = c.recs[:0], c.precs[:0]
	for i := range c.hdrs {
		h := &c.hdrs[i]
		c.precs = append(c.precs, proto.Header{Key: string(c.bytes(h.key)), Value: c.bytes(h.val)})
	}
	for i := range c.kept {
		k := &c.kept[i]
		r := proto.Record{Attributes: k.attrs, TimestampDelta: k.ts - first, OffsetDelta: k.offDelta, Key: c.bytes(k.key), Value: c.bytes(k.val)}
		if k.hdrN > 0 {
			r.Headers = c.precs[k.hdr0 : k.hdr0+k.hdrN]
		}
		c.recs = append(c.recs, r)
	}
	c.out = proto.AppendBatch(c.out[:0], proto.BatchSpec{
		BaseOffset: b.BaseOffset, FirstTimestamp: first,
		ProducerID: b.ProducerID, ProducerEpoch: b.ProducerEpoch, BaseSequence: b.BaseSequence,
		Codec: b.Codec(), KeepOffsetDeltas: true,
	}, c.recs)
	finishHeader(c.out, &b, attrs)
	return c.out, true, nil
}

// finishHeader gives a rebuilt batch the original's leader epoch,
// attributes, last offset delta (so the next offset stays where it was)
// and max timestamp, then its CRC.
func finishHeader(raw []byte, b *proto.Batch, attrs int16) {
	be := binary.BigEndian
	be.PutUint32(raw[hdrLeaderEpoch:], uint32(b.PartitionLeaderEpoch))
	be.PutUint16(raw[hdrAttributes:], uint16(attrs))
	be.PutUint32(raw[hdrLastOffsetDelta:], uint32(b.LastOffsetDelta))
	be.PutUint64(raw[hdrMaxTimestamp:], uint64(b.MaxTimestamp))
	be.PutUint32(raw[hdrMagic+1:], proto.CRC32C(raw[hdrAttributes:]))
}

// keep copies a record into the arena (its slices alias a buffer reused
// for the next record).
func (c *cleaner) keep(r *proto.Record, firstTs int64) {
	k := keptRecord{attrs: r.Attributes, ts: firstTs + r.TimestampDelta, offDelta: r.OffsetDelta, hdr0: len(c.hdrs), hdrN: len(r.Headers)}
	k.key, k.val = c.copy(r.Key), c.copy(r.Value)
	for _, h := range r.Headers {
		c.hdrs = append(c.hdrs, keptHeader{key: c.copy([]byte(h.Key)), val: c.copy(h.Value)})
	}
	c.kept = append(c.kept, k)
}

func (c *cleaner) copy(p []byte) span {
	if p == nil {
		return span{n: -1}
	}
	s := span{off: len(c.arena), n: len(p)}
	c.arena = append(c.arena, p...)
	return s
}

// bytes returns a span's bytes; an empty span gives an empty, non-nil
// slice (the arena is never nil), so empty values stay apart from nulls.
func (c *cleaner) bytes(s span) []byte {
	if s.n < 0 {
		return nil
	}
	return c.arena[s.off : s.off+s.n : s.off+s.n]
}

// readStoredBatches reads the batches of a segment file's first size bytes
// in order, CRC-checked, into buf (reused: fn must not keep the batch).
// last is true for the final batch.
func readStoredBatches(f *os.File, size int64, buf *[]byte, fn func(b proto.Batch, last bool) error) error {
	return readBatchStream(io.NewSectionReader(f, 0, size), size, buf, fn)
}

// readBatchStream is readStoredBatches over the first size bytes of r (a
// segment that is not a local file: a remote object being downloaded).
func readBatchStream(r io.Reader, size int64, buf *[]byte, fn func(b proto.Batch, last bool) error) error {
	br := bufio.NewReaderSize(r, 256<<10)
	for pos := int64(0); pos < size; {
		if size-pos < batchHeaderSize {
			return fmt.Errorf("torn batch at %d: %w", pos, ErrCorrupt)
		}
		pre, err := br.Peek(logOverhead)
		if err != nil {
			return err
		}
		length := int64(int32(binary.BigEndian.Uint32(pre[hdrBatchLength:])))
		total := logOverhead + length
		if length < batchHeaderSize-logOverhead || pos+total > size {
			return fmt.Errorf("batch length %d at %d: %w", length, pos, ErrCorrupt)
		}
		if int64(cap(*buf)) < total {
			*buf = make([]byte, total)
		}
		raw := (*buf)[:total]
		if _, err := io.ReadFull(br, raw); err != nil {
			return err
		}
		var b proto.Batch
		if err := proto.SplitBatches(raw, true, func(x proto.Batch) error { b = x; return nil }); err != nil || b.Magic != 2 {
			return fmt.Errorf("batch at %d: %v: %w", pos, err, ErrCorrupt)
		}
		pos += total
		if err := fn(b, pos == size); err != nil {
			return err
		}
	}
	return nil
}

// writeSynced creates path with data and fsyncs it.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// discardCleaned closes and removes a new segment that is not swapped in.
func (l *Log) discardCleaned(ns *segment) {
	ns.release()
	for _, name := range []string{segmentName(ns.base), indexName(ns.base), timeIndexName(ns.base), txnIndexName(ns.base)} {
		if err := os.Remove(l.path(name + cleanedSuffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.logger.Warn("removing cleaned file", "dir", l.dir, "file", name+cleanedSuffix, "err", err)
		}
	}
}

// swapCleaned replaces the segments old (with the sizes the pass read)
// by ns on disk and in memory. check lists segments that must still be in
// the log with these sizes (the offset map's sources). The steps, each
// made durable by a directory fsync before the next:
//
//  1. the .cleaned files exist (rewrite fsynced them);
//  2. they are renamed to .swap, the .log last: the commit point;
//  3. the replaced segments' files are removed;
//  4. the .swap files get their final names, the .log last.
//
// Recovery (recoverCleaner) removes .cleaned files and completes a .swap.
// A failure after the commit point fails the log: reopening completes it.
func (l *Log) swapCleaned(old []*segment, sizes []int64, ns *segment, check map[*segment]int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	if err := l.failure(); err != nil {
		return err
	}
	at := make(map[*segment]int, len(l.segs))
	for i, s := range l.segs {
		at[s] = i
	}
	i, ok := at[old[0]]
	ok = ok && i+len(old) < len(l.segs)
	for k := 0; ok && k < len(old); k++ {
		ok = l.segs[i+k] == old[k] && old[k].size == sizes[k]
	}
	for s, size := range check {
		if j, in := at[s]; !in || j == len(l.segs)-1 || s.size != size {
			ok = false
		}
	}
	if !ok {
		return errCleanAborted
	}
	base := ns.base
	l.hook(compactStepCleaned)
	kinds := []string{indexName(base), timeIndexName(base), txnIndexName(base), segmentName(base)}
	for _, n := range kinds {
		err := os.Rename(l.path(n+cleanedSuffix), l.path(n+swapSuffix))
		if err != nil && !(errors.Is(err, os.ErrNotExist) && n == txnIndexName(base)) {
			return err // before the commit point: old segments are intact
		}
	}
	if err := l.dirf.Sync(); err != nil {
		return l.failSwap(err)
	}
	l.hook(compactStepSwap)
	for _, s := range old {
		if err := l.removeSegmentFiles(s.base); err != nil {
			return l.failSwap(err)
		}
	}
	if err := l.dirf.Sync(); err != nil {
		return l.failSwap(err)
	}
	l.hook(compactStepDeleted)
	for _, n := range kinds {
		err := os.Rename(l.path(n+swapSuffix), l.path(n))
		if err != nil && !(errors.Is(err, os.ErrNotExist) && n == txnIndexName(base)) {
			return l.failSwap(err)
		}
	}
	if err := l.dirf.Sync(); err != nil {
		return l.failSwap(err)
	}
	l.hook(compactStepRenamed)

	segs := make([]*segment, 0, len(l.segs)-len(old)+1)
	segs = append(segs, l.segs[:i]...)
	segs = append(segs, ns)
	segs = append(segs, l.segs[i+len(old):]...)
	l.segMu.Lock()
	l.segs = segs
	l.segMu.Unlock()
	for _, s := range old {
		s.release() // readers holding it keep the unlinked file open
	}
	return nil
}

func (l *Log) failSwap(err error) error {
	err = fmt.Errorf("swap cleaned segment: %w", err)
	l.fail(err)
	return err
}

// recoverCleaner finishes or undoes a segment swap a crash interrupted,
// before the segments are loaded: .cleaned files are removed (the swap was
// not committed), and a .log.swap file replaces every segment whose base
// lies in its offset range (its last batch ends where the replaced
// segments ended, since cleaning always keeps a group's last batch), then
// takes its final name, with its index files if they made it.
func (l *Log) recoverCleaner() error {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return err
	}
	var swaps, bases []int64
	var indexSwaps []string
	changed := false
	for _, e := range ents {
		name := e.Name()
		if stem, ok := strings.CutSuffix(name, cleanedSuffix); ok && isSegmentFileName(stem) {
			if err := os.Remove(l.path(name)); err != nil {
				return err
			}
			changed = true
		} else if stem, ok := strings.CutSuffix(name, swapSuffix); ok && isSegmentFileName(stem) {
			if b, ok := parseOffsetName(stem, logSuffix); ok {
				swaps = append(swaps, b)
			} else {
				indexSwaps = append(indexSwaps, name)
			}
		} else if b, ok := parseOffsetName(name, logSuffix); ok {
			bases = append(bases, b)
		}
	}
	for _, b := range swaps {
		end, err := swapEnd(l.path(segmentName(b) + swapSuffix))
		if err != nil {
			return err
		}
		changed = true
		names := []string{indexName(b), timeIndexName(b), txnIndexName(b), segmentName(b)}
		if end <= b {
			// Cleaning never writes an empty segment and fsyncs before the
			// commit: this is damage, not a swap to finish. Keep what the
			// old segments still hold.
			l.logger.Error("dropping unreadable compaction swap file", "dir", l.dir, "base", b)
			for _, n := range names {
				if err := os.Remove(l.path(n + swapSuffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			continue
		}
		l.logger.Warn("completing an interrupted compaction swap", "dir", l.dir, "base", b, "end", end)
		for _, o := range bases {
			if o >= b && o < end {
				if err := l.removeSegmentFiles(o); err != nil {
					return err
				}
			}
		}
		if err := l.dirf.Sync(); err != nil {
			return err
		}
		for _, n := range names {
			err := os.Rename(l.path(n+swapSuffix), l.path(n))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	for _, name := range indexSwaps {
		// Renamed before the .log, so without it the swap was not committed
		// (or it was just completed above).
		if err := os.Remove(l.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		changed = true
	}
	if changed {
		return l.dirf.Sync()
	}
	return nil
}

func isSegmentFileName(name string) bool {
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix, txnIndexSuffix} {
		if _, ok := parseOffsetName(name, suf); ok {
			return true
		}
	}
	return false
}

// swapEnd is the offset after the last well-formed batch of a .swap file.
func swapEnd(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	end := int64(-1)
	var hb [batchHeaderSize]byte
	for pos := int64(0); pos+batchHeaderSize <= st.Size(); {
		h, err := readHeader(f, pos, offsetHdrSize, &hb)
		if err != nil || h.magic != 2 || pos+h.size() > st.Size() {
			break
		}
		end = h.last() + 1
		pos += h.size()
	}
	return end, nil
}

// loadCleanerState reads the cleaner checkpoint at Open. A bad one only
// costs a cleaning from the log start.
func (l *Log) loadCleanerState() {
	l.nextHorizon.Store(math.MaxInt64)
	off, ok, err := readOffsetCheckpoint(l.dir, cleanerFile)
	if err != nil {
		l.logger.Warn("ignoring cleaner checkpoint", "dir", l.dir, "err", err)
		return
	}
	if ok {
		l.cleanerCkpt.Store(off)
	}
}
