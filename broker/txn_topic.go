package broker

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-broker/strata/broker/internal/txn"
	"github.com/strata-broker/strata/proto"
)

const txnStateTopicName = "__transaction_state"

// txnTopic stores the transaction coordinator's records in the internal
// __transaction_state topic (Kafka's TransactionLog schema, so Kafka's
// tools read it) and writes the coordinator's transaction markers to the
// partitions' leaders (txn_cluster.go: directly for the partitions this
// broker leads, WriteTxnMarkers to the others). The topic is created on
// first use (FindCoordinator or InitProducerId for a transactional id), as
// Kafka does; its partitions are loaded into the coordinator by the
// brokers that lead them (coordinators.go).
type txnTopic struct {
	s      *Server
	mu     sync.Mutex // serializes creation and loading
	loaded atomic.Bool

	peersOnce sync.Once
	peers     *peerConns // connections to other brokers, for markers and verification
}

var (
	_ txn.Log          = (*txnTopic)(nil)
	_ txn.MarkerWriter = (*txnTopic)(nil)
	_ txn.ProducerIDs  = (*producerIDs)(nil)
)

// NextID hands out one producer id for the transaction coordinator.
func (p *producerIDs) NextID(ctx context.Context) (int64, error) { return p.allocate(ctx) }

func (s *Server) txnStatePartitions() int32 {
	if n := s.cfg.TransactionStateLogNumPartitions; n > 0 {
		return n
	}
	return 50
}

// ensure creates __transaction_state if needed. Its partitions are loaded
// into the coordinator by the brokers that lead them (coordinators.go).
func (t *txnTopic) ensure(ctx context.Context) error {
	if t.loaded.Load() {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.loaded.Load() {
		return nil
	}
	if _, ok := t.s.meta.Topic(txnStateTopicName); !ok {
		_, err := t.s.createTopic(ctx, createTopicSpec{
			name:        txnStateTopicName,
			partitions:  t.s.txnStatePartitions(),
			replication: -1,
			internal:    true,
			// Compacted like Kafka's; not tiered (see offsetsTopic.ensure).
			configs: map[string]string{"cleanup.policy": "compact", "segment.bytes": "104857600", "remote.storage.enable": "false"},
		})
		if err != nil && !isTopicExists(err) {
			return err
		}
	}
	t.loaded.Store(true)
	return nil
}

// Append writes one coordinator record and waits until it is durable.
func (t *txnTopic) Append(ctx context.Context, p int32, key, value []byte) error {
	_, part, err := t.s.parts.leader(txnStateTopicName, p)
	if err != nil {
		return fmt.Errorf("%w: %v", txn.ErrNotCoordinator, err)
	}
	raw := proto.AppendBatch(nil, proto.BatchSpec{FirstTimestamp: time.Now().UnixMilli(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
		[]proto.Record{{Key: key, Value: value}})
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

// Replay feeds the coordinator every record of partition p.
func (t *txnTopic) Replay(ctx context.Context, p int32, fn func(key, value []byte)) error {
	_, part, err := t.s.parts.get(txnStateTopicName, p)
	if err != nil {
		return fmt.Errorf("%w: %v", txn.ErrNotCoordinator, err)
	}
	return forEachBatch(part, func(b proto.Batch) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if b.IsControl() {
			return nil
		}
		return proto.ForEachRecord(b, func(r proto.Record) error {
			if r.Key != nil {
				fn(r.Key, r.Value)
			}
			return nil
		})
	})
}

// markExists records that the topic exists (another broker created it),
// so ensure has nothing left to do.
func (t *txnTopic) markExists() { t.loaded.Store(true) }

// peerConns returns the connections to other brokers, made on first use
// and closed when the broker stops.
func (t *txnTopic) peerConns() *peerConns {
	t.peersOnce.Do(func() {
		t.peers = newPeerConns(t.s.dialBroker)
		context.AfterFunc(t.s.ctx, t.peers.close)
	})
	return t.peers
}

// WriteMarkers writes the transaction's marker to each partition through
// its current leader and returns once every partition has it, committed
// (a partition that no longer exists counts as done), or ctx ended: the
// coordinator ends it when it unloads the transaction's partition. For
// __consumer_offsets partitions the group coordinator then commits or
// drops the transaction's pending offsets. Writing a marker twice is
// harmless: the second ends nothing.
func (t *txnTopic) WriteMarkers(ctx context.Context, producerID int64, epoch int16, commit bool, coordinatorEpoch int32, partitions []txn.TopicPartition) error {
	m := txnMarker{producerID: producerID, epoch: epoch, commit: commit, coordinatorEpoch: coordinatorEpoch}
	routes := serverMarkerRoutes{s: t.s, peers: t.peerConns()}
	return writeMarkersRouted(ctx, routes, t.s.cfg.NodeID, m, partitions, defaultMarkerRetry, t.s.log.With("component", "txn-markers"))
}

// writeMarker appends one transaction marker to a partition this broker
// leads and waits until it is committed: errUnknownTopic if the partition
// does not exist here, NOT_LEADER_OR_FOLLOWER or LEADER_NOT_AVAILABLE when
// this broker does not lead it.
func (s *Server) writeMarker(ctx context.Context, producerID int64, epoch int16, commit bool, coordinatorEpoch int32, topic string, partition int32) error {
	_, p, err := s.parts.leader(topic, partition)
	if err != nil {
		return err
	}
	off, err := p.log.AppendTxnMarker(producerID, epoch, commit, coordinatorEpoch, p.epoch())
	if err != nil {
		return fmt.Errorf("marker %s-%d: %w", topic, partition, err)
	}
	if topic == offsetsTopicName {
		s.offsets.noteMarker(partition, producerID, epoch)
	}
	if err := awaitCommitted(ctx, p, off+1); err != nil {
		return fmt.Errorf("marker %s-%d: %w", topic, partition, err)
	}
	if topic == offsetsTopicName {
		return s.groups.CompleteTxn(ctx, partition, producerID, commit)
	}
	return nil
}
