package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// The transaction index (<base>.txnindex) lists the transactions aborted by
// a marker in its segment, in marker order, in Kafka's entry format so the
// file can be uploaded with the segment and read like Kafka's:
//
//	version int16 (0) | producerId int64 | firstOffset int64 |
//	lastOffset int64 (the abort marker's offset) | lastStableOffset int64
//
// 34 bytes an entry, big endian, nothing else in the file. lastStableOffset
// is the partition's last stable offset once the abort is applied: the
// first offset of the earliest transaction still open (of another
// producer), or lastOffset+1 when none is. It lets a search stop: no abort
// indexed later can have started below it.
//
// Like the offset and time indexes, it lives in memory (segment.txns) and
// is written whole, by rename, when the segment is sealed and at Close.
// Every sealed segment has one (empty when nothing was aborted), so a
// missing file means "rebuild": Open then replays the log's transactions
// from a producer snapshot at or below the segment (see loadProducers).

const (
	txnIndexSuffix    = ".txnindex"
	abortedTxnSize    = 34
	abortedTxnVersion = 0
)

func txnIndexName(base int64) string { return offsetName(base, txnIndexSuffix) }

// abortedTxn is one transaction index entry.
type abortedTxn struct {
	pid   int64
	first int64 // offset of the transaction's first batch
	last  int64 // offset of its abort marker
	lso   int64 // last stable offset after the abort
}

// segTxns is a segment's transaction state: written with Log.mu and
// Log.segMu held, read with either (like the segment's other indexes).
type segTxns struct {
	txns []abortedTxn
	// txnStale: txns may be incomplete (the file was missing or bad, or the
	// segment was rescanned); Open rebuilds it from the log.
	txnStale bool
}

func encodeTxnIndex(es []abortedTxn) []byte {
	be := binary.BigEndian
	b := make([]byte, 0, len(es)*abortedTxnSize)
	for _, e := range es {
		b = be.AppendUint16(b, abortedTxnVersion)
		b = be.AppendUint64(b, uint64(e.pid))
		b = be.AppendUint64(b, uint64(e.first))
		b = be.AppendUint64(b, uint64(e.last))
		b = be.AppendUint64(b, uint64(e.lso))
	}
	return b
}

// decodeTxnIndex parses a transaction index of the segment holding offsets
// [base, next) and checks what must hold: version 0, a non-negative first
// offset not after the marker, markers inside the segment and strictly
// increasing (one marker per offset), and a non-negative last stable
// offset.
func decodeTxnIndex(b []byte, base, next int64) ([]abortedTxn, error) {
	if len(b)%abortedTxnSize != 0 {
		return nil, fmt.Errorf("transaction index length %d: %w", len(b), ErrCorrupt)
	}
	be := binary.BigEndian
	es := make([]abortedTxn, len(b)/abortedTxnSize)
	for i := range es {
		p := b[i*abortedTxnSize:]
		if v := int16(be.Uint16(p)); v != abortedTxnVersion {
			return nil, fmt.Errorf("transaction index entry %d: version %d: %w", i, v, ErrCorrupt)
		}
		e := abortedTxn{
			pid:   int64(be.Uint64(p[2:])),
			first: int64(be.Uint64(p[10:])),
			last:  int64(be.Uint64(p[18:])),
			lso:   int64(be.Uint64(p[26:])),
		}
		if e.first < 0 || e.first > e.last || e.last < base || e.last >= next || e.lso < 0 ||
			(i > 0 && e.last <= es[i-1].last) {
			return nil, fmt.Errorf("transaction index entry %d %+v (segment [%d, %d)): %w", i, e, base, next, ErrCorrupt)
		}
		es[i] = e
	}
	return es, nil
}

// collectAborted appends to out the entries of es whose transaction
// overlaps [from, to) (it ends at or after from and starts before to), as
// Kafka's collectAbortedTxns. complete reports that no later entry, in this
// segment or a later one, can overlap: an entry's last stable offset
// reached to.
func collectAborted(es []abortedTxn, from, to int64, out []AbortedTxn) (_ []AbortedTxn, complete bool) {
	for _, e := range es {
		if e.last >= from && e.first < to {
			out = append(out, AbortedTxn{ProducerID: e.pid, FirstOffset: e.first})
		}
		if e.lso >= to {
			return out, true
		}
	}
	return out, false
}

// loadTxnIndex reads a sealed segment's transaction index at Open; a
// missing or bad one marks the segment for a rebuild.
func (l *Log) loadTxnIndex(s *segment, next int64) {
	b, err := os.ReadFile(l.path(txnIndexName(s.base)))
	if err == nil {
		var es []abortedTxn
		if es, err = decodeTxnIndex(b, s.base, next); err == nil {
			s.txns, s.txnStale = es, false
			return
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		l.logger.Info("rebuilding missing transaction index", "dir", l.dir, "segment", s.base)
	} else {
		l.logger.Warn("rebuilding transaction index", "dir", l.dir, "segment", s.base, "err", err)
	}
	s.txns, s.txnStale = nil, true
}

// trimTxns drops the entries whose marker is at or after end (TruncateTo).
func trimTxns(es []abortedTxn, end int64) []abortedTxn {
	n := len(es)
	for n > 0 && es[n-1].last >= end {
		n--
	}
	return es[:n]
}
