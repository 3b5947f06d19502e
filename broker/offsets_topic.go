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
	_, part, err := o.s.parts.get(offsetsTopicName, p)
	if err != nil {
		return err
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
	info, err := part.log.Append([]proto.Batch{b}, part.leaderEpoch, -1)
	if err != nil {
		return err
	}
	return part.log.WaitDurable(ctx, info.LastOffset+1)
}

// load replays every partition of __consumer_offsets into the coordinator.
func (o *offsetsTopic) load() error {
	t, ok := o.s.parts.topic(offsetsTopicName)
	if !ok {
		return nil
	}
	for _, p := range t.parts {
		if err := o.loadPartition(p); err != nil {
			return fmt.Errorf("load %s-%d: %w", offsetsTopicName, p.index, err)
		}
	}
	return nil
}

func (o *offsetsTopic) loadPartition(p *partition) error {
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
			if b.IsControl() {
				return nil
			}
			return proto.ForEachRecord(b, func(r proto.Record) error {
				if r.Key == nil {
					return nil
				}
				o.s.groups.Load(p.index, r.Key, r.Value)
				return nil
			})
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
