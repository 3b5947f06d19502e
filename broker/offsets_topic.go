package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/strata-broker/strata/broker/internal/groups"
	"github.com/strata-broker/strata/proto"
	"github.com/strata-broker/strata/storage"
)

// offsetsTopic stores the group coordinator's records in the internal
// __consumer_offsets topic, in Kafka's own key/value schema, so committed
// offsets survive restarts (and, with replication, coordinator moves).
// The topic is created on first use, as Kafka does.
type offsetsTopic struct {
	s      *Server
	mu     sync.Mutex // serializes creation
	loaded bool

	// Transactional batches (TxnOffsetCommit) carry the producer's id and
	// epoch, and the log checks their sequence like any idempotent
	// producer's. seqs holds the next sequence per partition and producer,
	// rebuilt by load and kept in step with markers (a new epoch starts at
	// 0, as the log expects).
	seqMu sync.Mutex
	seqs  map[txnSeqKey]txnSeq
}

type txnSeqKey struct {
	p   int32
	pid int64
}

type txnSeq struct {
	epoch int16
	next  int32
}

// nextSeq reserves n sequence numbers for the producer's next batch.
func (o *offsetsTopic) nextSeq(p int32, pid int64, epoch int16, n int32) int32 {
	o.seqMu.Lock()
	defer o.seqMu.Unlock()
	if o.seqs == nil {
		o.seqs = make(map[txnSeqKey]txnSeq)
	}
	k := txnSeqKey{p, pid}
	st, ok := o.seqs[k]
	if !ok || st.epoch != epoch {
		st = txnSeq{epoch: epoch}
	}
	seq := st.next
	st.next += n
	o.seqs[k] = st
	return seq
}

// seen records a batch found in (or written to) the log.
func (o *offsetsTopic) seen(p int32, pid int64, epoch int16, next int32) {
	o.seqMu.Lock()
	defer o.seqMu.Unlock()
	if o.seqs == nil {
		o.seqs = make(map[txnSeqKey]txnSeq)
	}
	o.seqs[txnSeqKey{p, pid}] = txnSeq{epoch: epoch, next: next}
}

// noteMarker: a marker with a new epoch resets the producer's sequences.
func (o *offsetsTopic) noteMarker(p int32, pid int64, epoch int16) {
	o.seqMu.Lock()
	defer o.seqMu.Unlock()
	if st, ok := o.seqs[txnSeqKey{p, pid}]; ok && st.epoch != epoch {
		o.seqs[txnSeqKey{p, pid}] = txnSeq{epoch: epoch}
	}
}

var _ groups.Log = (*offsetsTopic)(nil)

// ensure creates __consumer_offsets if it does not exist yet.
func (o *offsetsTopic) ensure(ctx context.Context) error {
	if _, ok := o.s.parts.topic(offsetsTopicName); ok {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.s.parts.topic(offsetsTopicName); ok {
		return nil
	}
	_, err := o.s.createTopic(ctx, createTopicSpec{
		name:        offsetsTopicName,
		partitions:  o.s.cfg.OffsetsTopicNumPartitions,
		replication: -1,
		internal:    true,
		// compact once the cleaner exists; segments stay small so
		// retention of old commits can work on whole segments meanwhile.
		// Not tiered: compacted topics tier only once compaction can
		// rewrite remote segments.
		configs: map[string]string{"cleanup.policy": "compact", "segment.bytes": "104857600", "remote.storage.enable": "false"},
	})
	if isTopicExists(err) {
		return nil
	}
	return err
}

// Append writes the coordinator's records to one partition and waits
// until they are durable.
func (o *offsetsTopic) Append(ctx context.Context, p int32, recs []groups.KV) error {
	if err := o.ensure(ctx); err != nil {
		return fmt.Errorf("%w: %v", groups.ErrCoordinatorNotAvailable, err)
	}
	_, part, err := o.s.parts.leader(offsetsTopicName, p)
	if err != nil {
		return fmt.Errorf("%w: %v", groups.ErrNotCoordinator, err)
	}
	rs := make([]proto.Record, len(recs))
	for i, kv := range recs {
		rs[i] = proto.Record{OffsetDelta: int32(i), Key: kv.Key, Value: kv.Value}
	}
	raw := proto.AppendBatch(nil, proto.BatchSpec{FirstTimestamp: time.Now().UnixMilli(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, rs)
	b, err := proto.ParseBatchHeader(raw)
	if err != nil {
		return err
	}
	b.Raw = raw
	info, err := part.log.Append([]proto.Batch{b}, part.epoch(), -1)
	if err != nil {
		return err
	}
	return awaitCommitted(ctx, part, info.LastOffset+1)
}

// AppendTxn writes TxnOffsetCommit records in one transactional batch of
// the producer and waits until they are durable.
func (o *offsetsTopic) AppendTxn(ctx context.Context, p int32, pid int64, epoch int16, recs []groups.KV) error {
	if err := o.ensure(ctx); err != nil {
		return fmt.Errorf("%w: %v", groups.ErrCoordinatorNotAvailable, err)
	}
	_, part, err := o.s.parts.leader(offsetsTopicName, p)
	if err != nil {
		return fmt.Errorf("%w: %v", groups.ErrNotCoordinator, err)
	}
	rs := make([]proto.Record, len(recs))
	for i, kv := range recs {
		rs[i] = proto.Record{OffsetDelta: int32(i), Key: kv.Key, Value: kv.Value}
	}
	seq := o.nextSeq(p, pid, epoch, int32(len(rs)))
	raw := proto.AppendBatch(nil, proto.BatchSpec{FirstTimestamp: time.Now().UnixMilli(), ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, Transactional: true}, rs)
	b, err := proto.ParseBatchHeader(raw)
	if err != nil {
		return err
	}
	b.Raw = raw
	info, err := part.log.Append([]proto.Batch{b}, part.epoch(), -1)
	if err != nil {
		// Nothing was written: hand the numbers out again (the group
		// coordinator serializes appends per partition, so none is in
		// flight after this one).
		o.seen(p, pid, epoch, seq)
		return err
	}
	return awaitCommitted(ctx, part, info.LastOffset+1)
}

// loadPartition replays one partition of __consumer_offsets into the
// group coordinator (this broker has just become its leader).
func (o *offsetsTopic) loadPartition(p *partition) error {
	return forEachBatch(p, func(b proto.Batch) error {
		if b.IsControl() {
			// A transaction marker decides the producer's pending
			// TxnOffsetCommit offsets, as it did when it was written.
			o.noteMarker(p.index, b.ProducerID, b.ProducerEpoch)
			return proto.ForEachRecord(b, func(r proto.Record) error {
				if len(r.Key) >= 4 {
					commit := r.Key[2] == 0 && r.Key[3] == 1
					return o.s.groups.CompleteTxn(context.Background(), p.index, b.ProducerID, commit)
				}
				return nil
			})
		}
		txnl := b.IsTransactional() && b.ProducerID >= 0
		if txnl {
			o.seen(p.index, b.ProducerID, b.ProducerEpoch, b.BaseSequence+b.LastOffsetDelta+1)
		}
		return proto.ForEachRecord(b, func(r proto.Record) error {
			switch {
			case r.Key == nil:
			case txnl:
				o.s.groups.LoadTxnOffset(p.index, b.ProducerID, r.Key, r.Value)
			default:
				o.s.groups.Load(p.index, r.Key, r.Value)
			}
			return nil
		})
	})
}

// forEachBatch calls fn for every batch of p's log, from the log start to
// the end at the time of the call (CRCs checked).
func forEachBatch(p *partition, fn func(proto.Batch) error) error {
	off := p.log.LogStartOffset()
	end := p.log.LogEndOffset()
	for off < end {
		rr, err := p.log.Read(off, end, 1<<20, true)
		if err != nil {
			if errors.Is(err, storage.ErrOffsetOutOfRange) {
				return nil
			}
			return err
		}
		if rr.Len == 0 {
			rr.Release()
			return nil
		}
		buf := make([]byte, 0, rr.Len)
		w := &sliceWriter{b: buf}
		_, err = rr.WriteTo(w)
		rr.Release()
		if err != nil {
			return err
		}
		err = proto.SplitBatches(w.b, true, func(b proto.Batch) error {
			next := b.BaseOffset + int64(b.LastOffsetDelta) + 1
			if next > off {
				off = next
			}
			return fn(b)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
