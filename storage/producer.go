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

// producerEntry is the idempotence and transaction state of one producer
// id.
type producerEntry struct {
	epoch   int16
	n       uint8
	batches [producerWindow]batchMeta // oldest first
	lastTs  int64

	// coordEpoch is the coordinator epoch of the producer's last
	// transaction marker (-1: none seen); older markers are fenced.
	coordEpoch int32
	// txnOngoing: a transaction of this producer is open (its first
	// transactional batch is at txnFirst, its marker is not written yet).
	txnOngoing bool
	txnFirst   int64 // meaningful only when txnOngoing
}

// newProducerEntry is the state of a producer id not seen before.
func newProducerEntry() producerEntry { return producerEntry{epoch: -1, coordEpoch: -1} }

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

// producerState tracks idempotent producers and their transactions.
// Guarded by Log.mu.
type producerState struct {
	m      map[int64]*producerEntry
	staged []stagedEntry // scratch of one Append
	// ongoing mirrors the entries' open transactions: producer id -> first
	// offset (txn.go).
	ongoing map[int64]int64
	// completed lists the transactions the staged batches end, in log order
	// (scratch of one append, consumed by commitTxns).
	completed []completedTxn
}

func newProducerState() producerState {
	return producerState{m: make(map[int64]*producerEntry), ongoing: make(map[int64]int64)}
}

// stage validates the idempotent batches of one append against the
// committed state and the earlier batches of the same append, following
// Kafka's ProducerStateManager for client appends. firstOffset is the
// offset the first batch will get. A duplicate of a cached batch is
// returned as dup; nothing is staged then. logAppendTime >= 0 replaces the
// batches' max timestamps.
func (ps *producerState) stage(batches []proto.Batch, firstOffset, logAppendTime int64) (dup *batchMeta, err error) {
	ps.resetStaged()
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
		if err := st.checkTxn(b); err != nil {
			return nil, err
		}
		maxTs := b.MaxTimestamp
		if logAppendTime >= 0 {
			maxTs = logAppendTime
		}
		st.e.apply(b.ProducerEpoch, control, batchMeta{firstSeq: b.BaseSequence, lastSeq: ls, firstOff: first, lastOff: last, maxTs: maxTs})
		if !control {
			st.e.applyData(b.IsTransactional(), first)
		}
	}
	return nil, nil
}

func (ps *producerState) stagedFor(pid int64, cur *producerEntry) *stagedEntry {
	for i := range ps.staged {
		if ps.staged[i].pid == pid {
			return &ps.staged[i]
		}
	}
	st := stagedEntry{pid: pid, known: cur != nil, e: newProducerEntry()}
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
	ps.resetStaged()
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
		if !b.IsControl() {
			st.e.applyData(b.IsTransactional(), b.BaseOffset)
		} else if mk, ok := parseMarkerBatch(b); ok {
			ps.stageEnd(st, mk, b.BaseOffset)
		}
	}
}

// commit makes the staged state current, after the batches were written.
// It reports whether a transaction opened or ended (the caller then
// publishes the change: commitTxns).
func (ps *producerState) commit() (txnChanged bool) {
	for i := range ps.staged {
		st := &ps.staged[i]
		changed := st.e.txnOngoing
		if p := ps.m[st.pid]; p != nil {
			changed = p.txnOngoing != st.e.txnOngoing || p.txnFirst != st.e.txnFirst
			*p = st.e
		} else {
			e := st.e
			ps.m[st.pid] = &e
		}
		if !changed {
			continue // the common case: no transaction began or ended
		}
		txnChanged = true
		if st.e.txnOngoing {
			ps.ongoing[st.pid] = st.e.txnFirst
		} else {
			delete(ps.ongoing, st.pid)
		}
	}
	ps.staged = ps.staged[:0]
	return txnChanged || len(ps.completed) > 0
}

// replay applies a stored batch without checks (recovery, like Kafka's
// loading of producer state from the log). mk is the batch's transaction
// marker when it is one; a marker that ends an open transaction returns it.
func (ps *producerState) replay(h *header, mk *txnMarker) (done completedTxn, ended bool) {
	if h.pid < 0 {
		return completedTxn{}, false
	}
	e := ps.m[h.pid]
	if e == nil {
		ne := newProducerEntry()
		e = &ne
		ps.m[h.pid] = e
	}
	e.apply(h.pepoch, h.isControl(), batchMeta{
		firstSeq: h.baseSeq, lastSeq: lastSeq(h.baseSeq, h.lastDelta),
		firstOff: h.base, lastOff: h.last(), maxTs: h.maxTs,
	})
	switch {
	case !h.isControl():
		e.applyData(h.attrs&attrTransactional != 0, h.base)
	case mk != nil:
		done, ended = e.applyEnd(h.pid, *mk, h.base)
	}
	if e.txnOngoing {
		ps.ongoing[h.pid] = e.txnFirst
	} else {
		delete(ps.ongoing, h.pid)
	}
	return done, ended
}

// Snapshot format (ours), big endian:
//
//	version uint16 (2) | crc32c uint32 of everything after it | count uint32
//	count * ( pid int64 | epoch int16 | lastTs int64 |
//	          coordEpoch int32 | txnFirst int64 (-1: no open transaction) | n uint8 |
//	          n * (firstSeq int32 | lastSeq int32 | firstOff int64 | lastOff int64 | maxTs int64) )
//
// Version 1 (before transactions) lacks coordEpoch and txnFirst; it still
// loads, as producers with no transaction open and no marker seen.
// Entries are sorted by producer id so equal states give equal files.
const (
	snapshotVersion   = 2
	snapshotVersionV1 = 1
	snapshotHdr       = 2 + 4 + 4
	snapEntryHdrV1    = 8 + 2 + 8 + 1
	snapEntryHdr      = snapEntryHdrV1 + 4 + 8
	snapBatchSize     = 4 + 4 + 8 + 8 + 8
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
		b = be.AppendUint32(b, uint32(e.coordEpoch))
		txnFirst := int64(-1)
		if e.txnOngoing {
			txnFirst = e.txnFirst
		}
		b = be.AppendUint64(b, uint64(txnFirst))
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
	if len(b) < snapshotHdr || be.Uint32(b[2:]) != proto.CRC32C(b[6:]) {
		return nil, fmt.Errorf("producer snapshot header or checksum: %w", ErrCorrupt)
	}
	version := be.Uint16(b)
	entryHdr := snapEntryHdr
	switch version {
	case snapshotVersion:
	case snapshotVersionV1:
		entryHdr = snapEntryHdrV1
	default:
		return nil, fmt.Errorf("producer snapshot version %d: %w", version, ErrCorrupt)
	}
	count := int(be.Uint32(b[6:]))
	p := b[snapshotHdr:]
	m := make(map[int64]*producerEntry, min(count, len(p)/entryHdr))
	for range count {
		if len(p) < entryHdr {
			return nil, fmt.Errorf("producer snapshot truncated: %w", ErrCorrupt)
		}
		pid := int64(be.Uint64(p))
		e := &producerEntry{epoch: int16(be.Uint16(p[8:])), lastTs: int64(be.Uint64(p[10:])), coordEpoch: -1}
		if version == snapshotVersionV1 {
			e.n = p[18]
		} else {
			e.coordEpoch = int32(be.Uint32(p[18:]))
			switch first := int64(be.Uint64(p[22:])); {
			case first >= 0:
				e.txnOngoing, e.txnFirst = true, first
			case first != -1:
				return nil, fmt.Errorf("producer snapshot entry %d: transaction first offset %d: %w", pid, first, ErrCorrupt)
			}
			e.n = p[30]
		}
		p = p[entryHdr:]
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
