package storage

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"

	"github.com/strata-broker/strata/proto"
)

// producerWindow is how many recent batches per producer id are remembered
// for duplicate detection: Kafka's max.in.flight.requests.per.connection
// bound for idempotent producers.
const producerWindow = 5

// batchMeta is what is remembered of one idempotent batch.
type batchMeta struct {
	firstSeq, lastSeq int32
	firstOff, lastOff int64
	maxTs             int64
}

// producerEntry is the idempotence state of one producer id.
type producerEntry struct {
	epoch   int16
	n       uint8
	batches [producerWindow]batchMeta // oldest first
	lastTs  int64
}

func (e *producerEntry) lastSeq() int32 {
	if e.n == 0 {
		return -1
	}
	return e.batches[e.n-1].lastSeq
}

func (e *producerEntry) push(m batchMeta) {
	if int(e.n) == producerWindow {
		copy(e.batches[:], e.batches[1:])
		e.n--
	}
	e.batches[e.n] = m
	e.n++
}

// findDuplicate returns the cached batch with the same epoch and sequence
// range, if any.
func (e *producerEntry) findDuplicate(epoch int16, first, last int32) (batchMeta, bool) {
	if epoch != e.epoch {
		return batchMeta{}, false
	}
	for _, m := range e.batches[:e.n] {
		if m.firstSeq == first && m.lastSeq == last {
			return m, true
		}
	}
	return batchMeta{}, false
}

// apply updates the entry with a batch that is (or was) written. A new
// epoch forgets the old epoch's batches; control batches (transaction
// markers) carry no sequence and only move the epoch.
func (e *producerEntry) apply(epoch int16, control bool, m batchMeta) {
	if epoch != e.epoch {
		e.epoch = epoch
		e.n = 0
	}
	if !control {
		e.push(m)
	}
	e.lastTs = m.maxTs
}

// inSequence: next follows last, wrapping at MaxInt32.
func inSequence(last, next int32) bool {
	return next == last+1 || (next == 0 && last == math.MaxInt32)
}

type stagedEntry struct {
	pid     int64
	known   bool // the producer had committed state before this append
	e       producerEntry
	control bool
}

// producerState tracks idempotent producers. Guarded by Log.mu.
type producerState struct {
	m      map[int64]*producerEntry
	staged []stagedEntry // scratch of one Append
}

func newProducerState() producerState {
	return producerState{m: make(map[int64]*producerEntry)}
}

// stage validates the idempotent batches of one append against the
// committed state and the earlier batches of the same append, following
// Kafka's ProducerStateManager for client appends. firstOffset is the
// offset the first batch will get. A duplicate of a cached batch is
// returned as dup; nothing is staged then. logAppendTime >= 0 replaces the
// batches' max timestamps.
func (ps *producerState) stage(batches []proto.Batch, firstOffset, logAppendTime int64) (dup *batchMeta, err error) {
	ps.staged = ps.staged[:0]
	off := firstOffset
	for i := range batches {
		b := &batches[i]
		first, last := off, off+int64(b.LastOffsetDelta)
		off = last + 1
		if b.ProducerID < 0 {
			continue
		}
		control := b.IsControl()
		ls := lastSeq(b.BaseSequence, b.LastOffsetDelta)
		cur := ps.m[b.ProducerID]
		if cur != nil && !control {
			if m, ok := cur.findDuplicate(b.ProducerEpoch, b.BaseSequence, ls); ok {
				return &m, nil
			}
		}
		st := ps.stagedFor(b.ProducerID, cur)
		if err := st.check(b); err != nil {
			return nil, err
		}
		maxTs := b.MaxTimestamp
		if logAppendTime >= 0 {
			maxTs = logAppendTime
		}
		st.e.apply(b.ProducerEpoch, control, batchMeta{firstSeq: b.BaseSequence, lastSeq: ls, firstOff: first, lastOff: last, maxTs: maxTs})
	}
	return nil, nil
}

func (ps *producerState) stagedFor(pid int64, cur *producerEntry) *stagedEntry {
	for i := range ps.staged {
		if ps.staged[i].pid == pid {
			return &ps.staged[i]
		}
	}
	st := stagedEntry{pid: pid, known: cur != nil, e: producerEntry{epoch: -1}}
	if cur != nil {
		st.e = *cur
	}
	ps.staged = append(ps.staged, st)
	return &ps.staged[len(ps.staged)-1]
}

func (st *stagedEntry) check(b *proto.Batch) error {
	if b.ProducerEpoch < st.e.epoch {
		return fmt.Errorf("producer %d epoch %d older than current %d: %w", b.ProducerID, b.ProducerEpoch, st.e.epoch, ErrInvalidProducerEpoch)
	}
	if b.IsControl() || !st.known {
		// An unknown producer (never seen, or its state was removed with the
		// data) may start at any sequence.
		return nil
	}
	if b.ProducerEpoch != st.e.epoch {
		if b.BaseSequence != 0 {
			return fmt.Errorf("producer %d new epoch %d must start at sequence 0, got %d: %w", b.ProducerID, b.ProducerEpoch, b.BaseSequence, ErrOutOfOrderSequence)
		}
		return nil
	}
	if last := st.e.lastSeq(); !inSequence(last, b.BaseSequence) {
		return fmt.Errorf("producer %d epoch %d: sequence %d after %d: %w", b.ProducerID, b.ProducerEpoch, b.BaseSequence, last, ErrOutOfOrderSequence)
	}
	return nil
}

// stageReplicated stages the idempotent batches a follower copies from its
// leader. Like Kafka's replication path it checks nothing (the leader did)
// and only records each producer's epoch and last batches, so that this
// replica, once leader, detects duplicates and gaps as the old leader
// would. The batches carry their final offsets.
func (ps *producerState) stageReplicated(batches []proto.Batch) {
	ps.staged = ps.staged[:0]
	for i := range batches {
		b := &batches[i]
		if b.ProducerID < 0 {
			continue
		}
		st := ps.stagedFor(b.ProducerID, ps.m[b.ProducerID])
		st.e.apply(b.ProducerEpoch, b.IsControl(), batchMeta{
			firstSeq: b.BaseSequence, lastSeq: lastSeq(b.BaseSequence, b.LastOffsetDelta),
			firstOff: b.BaseOffset, lastOff: b.BaseOffset + int64(b.LastOffsetDelta), maxTs: b.MaxTimestamp,
		})
	}
}

// commit makes the staged state current, after the batches were written.
func (ps *producerState) commit() {
	for i := range ps.staged {
		st := &ps.staged[i]
		if p := ps.m[st.pid]; p != nil {
			*p = st.e
		} else {
			e := st.e
			ps.m[st.pid] = &e
		}
	}
	ps.staged = ps.staged[:0]
}

// replay applies a stored batch without checks (recovery, like Kafka's
// loading of producer state from the log).
func (ps *producerState) replay(h *header) {
	if h.pid < 0 {
		return
	}
	e := ps.m[h.pid]
	if e == nil {
		e = &producerEntry{epoch: -1}
		ps.m[h.pid] = e
	}
	e.apply(h.pepoch, h.isControl(), batchMeta{
		firstSeq: h.baseSeq, lastSeq: lastSeq(h.baseSeq, h.lastDelta),
		firstOff: h.base, lastOff: h.last(), maxTs: h.maxTs,
	})
}

// Snapshot format (ours), big endian:
//
//	version uint16 (1) | crc32c uint32 of everything after it | count uint32
//	count * ( pid int64 | epoch int16 | lastTs int64 | n uint8 |
//	          n * (firstSeq int32 | lastSeq int32 | firstOff int64 | lastOff int64 | maxTs int64) )
//
// Entries are sorted by producer id so equal states give equal files.
const (
	snapshotVersion = 1
	snapshotHdr     = 2 + 4 + 4
	snapEntryHdr    = 8 + 2 + 8 + 1
	snapBatchSize   = 4 + 4 + 8 + 8 + 8
)

func (ps *producerState) encode() []byte {
	pids := make([]int64, 0, len(ps.m))
	size := snapshotHdr
	for pid, e := range ps.m {
		pids = append(pids, pid)
		size += snapEntryHdr + int(e.n)*snapBatchSize
	}
	sort.Slice(pids, func(i, j int) bool { return pids[i] < pids[j] })
	be := binary.BigEndian
	b := make([]byte, snapshotHdr, size)
	be.PutUint16(b, snapshotVersion)
	be.PutUint32(b[6:], uint32(len(pids)))
	for _, pid := range pids {
		e := ps.m[pid]
		b = be.AppendUint64(b, uint64(pid))
		b = be.AppendUint16(b, uint16(e.epoch))
		b = be.AppendUint64(b, uint64(e.lastTs))
		b = append(b, e.n)
		for _, m := range e.batches[:e.n] {
			b = be.AppendUint32(b, uint32(m.firstSeq))
			b = be.AppendUint32(b, uint32(m.lastSeq))
			b = be.AppendUint64(b, uint64(m.firstOff))
			b = be.AppendUint64(b, uint64(m.lastOff))
			b = be.AppendUint64(b, uint64(m.maxTs))
		}
	}
	be.PutUint32(b[2:], proto.CRC32C(b[6:]))
	return b
}

func decodeProducerSnapshot(b []byte) (map[int64]*producerEntry, error) {
	be := binary.BigEndian
	if len(b) < snapshotHdr || be.Uint16(b) != snapshotVersion || be.Uint32(b[2:]) != proto.CRC32C(b[6:]) {
		return nil, fmt.Errorf("producer snapshot header or checksum: %w", ErrCorrupt)
	}
	count := int(be.Uint32(b[6:]))
	p := b[snapshotHdr:]
	m := make(map[int64]*producerEntry, min(count, len(p)/snapEntryHdr))
	for range count {
		if len(p) < snapEntryHdr {
			return nil, fmt.Errorf("producer snapshot truncated: %w", ErrCorrupt)
		}
		pid := int64(be.Uint64(p))
		e := &producerEntry{epoch: int16(be.Uint16(p[8:])), lastTs: int64(be.Uint64(p[10:])), n: p[18]}
		p = p[snapEntryHdr:]
		if int(e.n) > producerWindow || len(p) < int(e.n)*snapBatchSize {
			return nil, fmt.Errorf("producer snapshot entry %d: %w", pid, ErrCorrupt)
		}
		for i := range int(e.n) {
			e.batches[i] = batchMeta{
				firstSeq: int32(be.Uint32(p)), lastSeq: int32(be.Uint32(p[4:])),
				firstOff: int64(be.Uint64(p[8:])), lastOff: int64(be.Uint64(p[16:])), maxTs: int64(be.Uint64(p[24:])),
			}
			p = p[snapBatchSize:]
		}
		m[pid] = e
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("producer snapshot has %d trailing bytes: %w", len(p), ErrCorrupt)
	}
	return m, nil
}
