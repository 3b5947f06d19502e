package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/strata-broker/strata/proto"
)

// Transactions, as the partition log sees them (Kafka's ProducerStateManager
// and transaction index): a transactional batch of an idempotent producer
// opens a transaction at its first offset, later transactional batches of
// the same producer continue it, and a control batch written for the
// transaction coordinator (AppendTxnMarker) ends it, committed or aborted.
// Consumers in read_committed stop at LastStableOffset and drop the records
// of the transactions AbortedTransactions reports for the range they read.

var (
	// ErrInvalidTxnState: a non-transactional batch from a producer whose
	// transaction is open (INVALID_TXN_STATE).
	ErrInvalidTxnState = errors.New("storage: invalid transaction state")
	// ErrTransactionCoordinatorFenced: a transaction marker carries a
	// coordinator epoch older than one the producer's markers already had
	// (TRANSACTION_COORDINATOR_FENCED): a zombie coordinator wrote it.
	ErrTransactionCoordinatorFenced = errors.New("storage: transaction coordinator fenced")
)

// attrTransactional is batch attribute bit 4.
const attrTransactional = 1 << 4

// Control record types (the int16 after the version in a control record's
// key). Kafka's other control types are not transaction markers.
const (
	controlAbort  = 0
	controlCommit = 1
)

// AbortedTxn is an aborted transaction a Fetch response lists for
// read_committed consumers: the records of ProducerID from FirstOffset up
// to its abort marker are to be dropped.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64
}

// txnMarker is what an end transaction marker says.
type txnMarker struct {
	commit     bool
	coordEpoch int32
}

// completedTxn is a transaction a marker ended: [first, last], last being
// the marker's offset.
type completedTxn struct {
	pid         int64
	first, last int64
	abort       bool
}

// txnRange is a transaction that holds the last stable offset back: open
// (last < 0) or ended by a marker the high watermark has not passed yet.
type txnRange struct {
	pid         int64
	first, last int64
}

// appendMarkerBatch appends an end transaction marker batch exactly as
// Kafka writes one: transactional and control attributes, no sequence, one
// record with key {version 0, type} and value {version 0, coordinator
// epoch}.
func appendMarkerBatch(dst []byte, pid int64, epoch int16, commit bool, coordEpoch int32, ts int64) []byte {
	var key [4]byte
	var val [6]byte
	typ := uint16(controlAbort)
	if commit {
		typ = controlCommit
	}
	binary.BigEndian.PutUint16(key[2:], typ)
	binary.BigEndian.PutUint32(val[2:], uint32(coordEpoch))
	spec := proto.BatchSpec{FirstTimestamp: ts, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: -1, Transactional: true, Control: true}
	return proto.AppendBatch(dst, spec, []proto.Record{{Key: key[:], Value: val[:]}})
}

// parseMarkerBatch reads the end transaction marker in a control batch.
// ok is false for any other control batch (or a malformed one), which
// then only moves its producer's epoch.
func parseMarkerBatch(b *proto.Batch) (mk txnMarker, ok bool) {
	if !b.IsControl() || b.NumRecords < 1 {
		return txnMarker{}, false
	}
	err := proto.ForEachRecord(*b, func(r proto.Record) error {
		be := binary.BigEndian
		if len(r.Key) < 4 || int16(be.Uint16(r.Key)) < 0 || len(r.Value) < 6 || int16(be.Uint16(r.Value)) < 0 {
			return errFound
		}
		switch be.Uint16(r.Key[2:]) {
		case controlAbort:
		case controlCommit:
			mk.commit = true
		default:
			return errFound
		}
		mk.coordEpoch = int32(be.Uint32(r.Value[2:]))
		ok = true
		return errFound // the first record is the marker
	})
	if err != nil && !errors.Is(err, errFound) {
		return txnMarker{}, false
	}
	return mk, ok
}

// maxMarkerBatch bounds what recovery reads to decode a control batch; a
// marker batch is 80-odd bytes.
const maxMarkerBatch = 64 << 10

// readMarker reads the control batch of size bytes at pos and decodes its
// marker.
func readMarker(f *os.File, pos, size int64) (txnMarker, bool, error) {
	if size > maxMarkerBatch {
		return txnMarker{}, false, nil
	}
	raw := make([]byte, size)
	if _, err := f.ReadAt(raw, pos); err != nil {
		return txnMarker{}, false, fmt.Errorf("read control batch at %d: %w", pos, err)
	}
	b, err := proto.ParseBatchHeader(raw)
	if err != nil {
		return txnMarker{}, false, nil
	}
	mk, ok := parseMarkerBatch(&b)
	return mk, ok, nil
}

// checkTxn refuses a non-transactional data batch from a producer whose
// transaction is open, as Kafka does.
func (st *stagedEntry) checkTxn(b *proto.Batch) error {
	if !b.IsControl() && !b.IsTransactional() && st.e.txnOngoing {
		return fmt.Errorf("producer %d: non-transactional batch while its transaction from offset %d is open: %w", b.ProducerID, st.e.txnFirst, ErrInvalidTxnState)
	}
	return nil
}

// applyData records a data batch at offset first: a transactional one
// opens a transaction unless one is open.
func (e *producerEntry) applyData(transactional bool, first int64) {
	if transactional && !e.txnOngoing {
		e.txnOngoing, e.txnFirst = true, first
	}
}

// applyEnd records a marker at offset off; it returns the transaction it
// ends, if one was open. The epoch was applied already.
func (e *producerEntry) applyEnd(pid int64, mk txnMarker, off int64) (completedTxn, bool) {
	e.coordEpoch = mk.coordEpoch
	if !e.txnOngoing {
		return completedTxn{}, false
	}
	first := e.txnFirst
	e.txnOngoing, e.txnFirst = false, 0
	return completedTxn{pid: pid, first: first, last: off, abort: !mk.commit}, true
}

func (ps *producerState) resetStaged() {
	ps.staged = ps.staged[:0]
	ps.completed = ps.completed[:0]
}

// stageEnd applies a marker at off to a staged entry.
func (ps *producerState) stageEnd(st *stagedEntry, mk txnMarker, off int64) {
	if c, ok := st.e.applyEnd(st.pid, mk, off); ok {
		ps.completed = append(ps.completed, c)
	}
}

// stageMarker validates and stages a marker the coordinator writes at off,
// following Kafka's checks for markers of client origin: the producer epoch
// may not be older than the producer's, nor the coordinator epoch older
// than its last marker's. A producer with no open transaction (or never
// seen) takes the marker, which then ends nothing.
func (ps *producerState) stageMarker(pid int64, epoch int16, mk txnMarker, off, ts int64) error {
	ps.resetStaged()
	st := ps.stagedFor(pid, ps.m[pid])
	if epoch < st.e.epoch {
		return fmt.Errorf("marker for producer %d: epoch %d older than current %d: %w", pid, epoch, st.e.epoch, ErrInvalidProducerEpoch)
	}
	if mk.coordEpoch < st.e.coordEpoch {
		return fmt.Errorf("marker for producer %d: coordinator epoch %d older than %d: %w", pid, mk.coordEpoch, st.e.coordEpoch, ErrTransactionCoordinatorFenced)
	}
	st.e.apply(epoch, true, batchMeta{maxTs: ts})
	ps.stageEnd(st, mk, off)
	return nil
}

// load installs producer entries read from a snapshot.
func (ps *producerState) load(m map[int64]*producerEntry) {
	ps.m = m
	clear(ps.ongoing)
	for pid, e := range m {
		if e.txnOngoing {
			ps.ongoing[pid] = e.txnFirst
		}
	}
}

// abortLSO is the last stable offset recorded with the abort of c: the
// first offset of the earliest other transaction still open (more may end
// later in the same append: pending), else the marker's offset + 1, as
// Kafka computes it.
func (ps *producerState) abortLSO(c completedTxn, pending []completedTxn) int64 {
	lso := c.last + 1
	for pid, first := range ps.ongoing {
		if pid != c.pid {
			lso = min(lso, first)
		}
	}
	for _, o := range pending {
		if o.pid != c.pid {
			lso = min(lso, o.first)
		}
	}
	return lso
}

// commitProducers makes the staged producer state current after its
// batches were written to act, indexes the transactions they aborted in
// act, and publishes the transactions that hold the last stable offset
// back. Callers hold mu and segMu (exclusively), so readers see the new log
// end, the aborted transactions and the new last stable offset together,
// before any high watermark advance that covers the batches.
func (l *Log) commitProducers(act *segment) {
	ps := &l.prod
	if !ps.commit() {
		return
	}
	for i, c := range ps.completed {
		if c.abort {
			act.txns = append(act.txns, abortedTxn{pid: c.pid, first: c.first, last: c.last, lso: ps.abortLSO(c, ps.completed[i+1:])})
		}
	}
	// Rebuild the unstable set in place: ended transactions stay until the
	// high watermark passes their marker (as Kafka keeps "unreplicated"
	// ones), so the last stable offset never runs ahead of a marker that a
	// crash or a leader change could still take back.
	hw := l.hw.Load()
	keep := l.unstable[:0]
	for _, t := range l.unstable {
		if t.last >= hw {
			keep = append(keep, t)
		}
	}
	for _, c := range ps.completed {
		if c.last >= hw {
			keep = append(keep, txnRange{pid: c.pid, first: c.first, last: c.last})
		}
	}
	for pid, first := range ps.ongoing {
		keep = append(keep, txnRange{pid: pid, first: first, last: -1})
	}
	l.unstable = keep
	ps.completed = ps.completed[:0]
}

// replayBatch applies a stored batch to producer state during recovery or
// after a truncation, reading the marker of a control batch, and indexes
// an abort in s when s's transaction index is being rebuilt.
func (l *Log) replayBatch(s *segment, h *header, pos int64) error {
	var mk *txnMarker
	if h.pid >= 0 && h.isControl() {
		m, ok, err := readMarker(s.f, pos, h.size())
		if err != nil {
			return err
		}
		if ok {
			mk = &m
		}
	}
	done, ended := l.prod.replay(h, mk)
	if ended && done.abort && s.txnStale {
		s.txns = append(s.txns, abortedTxn{pid: done.pid, first: done.first, last: done.last, lso: l.prod.abortLSO(done, nil)})
	}
	return nil
}

// publishReplayedTxns ends a replay of producer state (loadProducers):
// rebuilt transaction indexes become trusted (sealed ones are written by
// the next flush) and the open transactions are published.
func (l *Log) publishReplayedTxns() {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	for _, s := range l.segs {
		if s.txnStale {
			s.txnStale = false
			if s.sealed {
				s.persisted = false
			}
		}
	}
	l.unstable = l.unstable[:0]
	for pid, first := range l.prod.ongoing {
		l.unstable = append(l.unstable, txnRange{pid: pid, first: first, last: -1})
	}
}

// txnReplayLimit is the offset at or below which producer state must be
// restored from a snapshot so that every transaction index being rebuilt
// sees its segment's batches from the start.
func (l *Log) txnReplayLimit() int64 {
	for _, s := range l.segs {
		if s.txnStale {
			return s.base
		}
	}
	return l.leo
}

// AppendTxnMarker writes the end transaction marker the transaction
// coordinator sends for producerID (WriteTxnMarkers): a control batch,
// exactly as Kafka writes it, at the log end, with leaderEpoch as its
// partition leader epoch. It ends the producer's open transaction,
// committed or aborted; an abort is recorded in the active segment's
// transaction index (.txnindex, made durable with the segment). A marker
// for a producer with no open transaction (or one never seen) is written
// too, as Kafka does, and ends nothing.
//
// A producer epoch older than the producer's current one is
// ErrInvalidProducerEpoch and a coordinator epoch older than its last
// marker's is ErrTransactionCoordinatorFenced; nothing is written then.
// The marker is durable once WaitDurable(offset+1) returns.
func (l *Log) AppendTxnMarker(producerID int64, producerEpoch int16, commit bool, coordinatorEpoch int32, leaderEpoch int32) (offset int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return -1, fmt.Errorf("append marker %s: %w", l.dir, ErrClosed)
	}
	if err := l.failure(); err != nil {
		return -1, fmt.Errorf("append marker %s: %w", l.dir, err)
	}
	if producerID < 0 {
		return -1, fmt.Errorf("append marker %s: producer id %d: %w", l.dir, producerID, ErrInvalidTxnState)
	}
	offset = l.leo
	ts := l.nowMs()
	raw := appendMarkerBatch(nil, producerID, producerEpoch, commit, coordinatorEpoch, ts)
	b, err := proto.ParseBatchHeader(raw)
	if err != nil {
		return -1, fmt.Errorf("append marker %s: %w", l.dir, err)
	}
	if err := l.prod.stageMarker(producerID, producerEpoch, txnMarker{commit: commit, coordEpoch: coordinatorEpoch}, offset, ts); err != nil {
		return -1, fmt.Errorf("append marker %s: %w", l.dir, err)
	}
	size := int64(len(raw))
	if l.shouldRoll(l.active(), l.config(), size, offset) {
		if err := l.roll(); err != nil {
			return -1, fmt.Errorf("append marker %s: roll: %w", l.dir, err)
		}
	}
	if err := l.writeBatches([]proto.Batch{b}, offset, size, writeMode{stamp: true, leaderEpoch: leaderEpoch, logAppendTime: -1}); err != nil {
		return -1, fmt.Errorf("append marker %s: %w", l.dir, err)
	}
	return offset, nil
}

// LastStableOffset is where read_committed consumers stop: the first offset
// of the earliest transaction still undecided (open, or ended by a marker
// the high watermark has not passed yet), never below the log start, and
// never above the high watermark.
func (l *Log) LastStableOffset() int64 {
	// The high watermark first: transactions are published before the high
	// watermark moves past their batches (commitProducers), so every
	// transaction below hw is in the set read next.
	hw := l.hw.Load()
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	first := hw
	for _, t := range l.unstable {
		if t.last < 0 || t.last >= hw {
			first = min(first, t.first)
		}
	}
	return min(max(first, l.logStart), hw)
}

// AbortedTransactions lists the aborted transactions that overlap the
// offsets [from, to) (they end at or after from and start before to), for
// a read_committed Fetch that returns the batches from from up to to (to is
// the offset after the last batch returned, as Kafka's upper bound). They
// are collected, in marker order, from the transaction indexes of the
// segment holding from and the later ones, stopping as soon as an entry
// shows that no later abort can overlap (Kafka's collectAbortedTxns). Only
// local segments are searched: for offsets below LocalLogStartOffset the
// remote tier's transaction indexes answer.
func (l *Log) AbortedTransactions(from, to int64) []AbortedTxn {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if len(l.segs) == 0 || from >= to {
		return nil
	}
	var out []AbortedTxn
	for i := l.segmentFor(from); i < len(l.segs); i++ {
		var complete bool
		if out, complete = collectAborted(l.segs[i].txns, from, to, out); complete {
			break
		}
	}
	return out
}
