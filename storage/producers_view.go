package storage

import "sort"

// ProducerState is what the log holds about one producer id, as Kafka's
// DescribeProducers reports it (UnifiedLog.activeProducers).
type ProducerState struct {
	ProducerID int64
	Epoch      int16
	// LastSequence is the last sequence of the producer's last data batch
	// in its current epoch; -1 when it wrote none in that epoch (a batch or
	// marker with a newer epoch forgets the older epoch's batches).
	LastSequence int32
	// LastTimestamp is the max timestamp of its last batch, data or marker.
	LastTimestamp int64
	// CoordinatorEpoch is the coordinator epoch of its last transaction
	// marker; -1 when none was seen.
	CoordinatorEpoch int32
	// TxnStartOffset is the first offset of its open transaction; -1 when
	// none is open.
	TxnStartOffset int64
}

// ActiveProducers lists the producer ids the log keeps state for, sorted by
// id. It is a copy: the log changes under it as soon as it returns.
func (l *Log) ActiveProducers() []ProducerState {
	// The producer state is guarded by mu (writers only): holding it costs
	// an append at most the time to copy the map, which is bounded by the
	// number of producers, like producerLastOffsets.
	l.mu.Lock()
	out := make([]ProducerState, 0, len(l.prod.m))
	for pid, e := range l.prod.m {
		txnStart := int64(-1)
		if e.txnOngoing {
			txnStart = e.txnFirst
		}
		out = append(out, ProducerState{
			ProducerID:       pid,
			Epoch:            e.epoch,
			LastSequence:     e.lastSeq(),
			LastTimestamp:    e.lastTs,
			CoordinatorEpoch: e.coordEpoch,
			TxnStartOffset:   txnStart,
		})
	}
	l.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ProducerID < out[j].ProducerID })
	return out
}
