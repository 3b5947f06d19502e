package broker

// Produce v3-v12 (record batch v2 only, as Kafka 4 requires).
//
// Every batch of a partition is validated before anything is written;
// offsets are assigned under the partition log's lock together with the
// idempotent-producer sequence check. acks=1 and acks=all are answered
// after the data is durable (fsync with group commit, unless flush.messages
// relaxes it). WRITE on each topic is required (TOPIC_AUTHORIZATION_FAILED
// per partition, nothing written for it) and transactional batches need
// WRITE on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED for
// the whole request), as in Kafka. A transactional batch is accepted only
// while its producer id and epoch own an ongoing transaction that has added
// the partition (asked of the transaction coordinator, as Kafka verifies
// since KIP-890 part 1): otherwise INVALID_TXN_STATE, INVALID_PRODUCER_EPOCH
// for a fenced producer, or the retriable NOT_ENOUGH_REPLICAS while the
// coordinator is busy. From v12 (transactions v2, KIP-890 part 2) the
// producer no longer adds partitions: a transactional batch adds its
// partition to the producer's transaction here, through the coordinator,
// before it is appended; every EndTxn bumps the epoch, and the markers'
// bumped epoch makes the log refuse late batches of the old one.
// Differences from Apache Kafka: v13 (topic ids) is not served; per-record
// errors (RecordErrors) are not reported, the batch error and ErrorMessage
// are; the check and the append are not atomic (an EndTxn racing a
// produce of the same producer can leave its batch after the marker, as
// before KIP-890 part 2; with v12 the epoch bump closes that window).

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/internal/txn"
	"github.com/strata-broker/strata/proto"
)

func init() { register(0, 3, 12, handleProduce) }

type producedPartition struct {
	resp   *kmsg.ProduceResponseTopicPartition
	p      *partition
	end    int64 // wait until offsets below end are durable (acks=1) or committed (acks=all)
	minISR int32 // min.insync.replicas of the topic
}

func handleProduce(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	var waits []producedPartition
	anyErr := false
	now := time.Now().UnixMilli()

	// Authorization, as Kafka: transactional batches need WRITE on the
	// transactional id (none given counts as a denial) or the whole
	// request fails; then WRITE on each topic, checked before the topic's
	// existence so a denied name never reveals whether it exists.
	if hasTransactionalBatches(req) && (req.TransactionID == nil ||
		!s.allow(r, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, *req.TransactionID)) {
		return produceRefused(req, resp, kerr.TransactionalIDAuthorizationFailed.Code)
	}
	canWrite := s.batchAuthz(r, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic)
	var txnCodes map[txn.TopicPartition]int16
	if req.TransactionID != nil && hasTransactionalBatches(req) {
		txnCodes = s.verifyProduceTxn(ctx, req, canWrite)
	}

	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		for i, rp := range rt.Partitions {
			sp := &st.Partitions[i]
			sp.Default()
			sp.Partition = rp.Partition
			if !canWrite.allow(rt.Topic) {
				sp.ErrorCode, sp.BaseOffset = kerr.TopicAuthorizationFailed.Code, -1
				anyErr = true
				continue
			}
			p, end, err := s.produceOne(req, rt.Topic, rp, now, sp, txnCodes)
			if err != nil {
				sp.ErrorCode = errorCode(s.log, err)
				if req.Version >= 8 {
					sp.ErrorMessage = kmsg.StringPtr(err.Error())
				}
				anyErr = true
				s.log.Debug("produce rejected", "topic", rt.Topic, "partition", rp.Partition, "err", err)
				continue
			}
			minISR := int32(1)
			if ts, ok := s.parts.topic(rt.Topic); ok {
				minISR = ts.cfg.minInsyncReplicas
			}
			waits = append(waits, producedPartition{resp: sp, p: p, end: end, minISR: minISR})
		}
		resp.Topics = append(resp.Topics, st)
	}
	// waits point into each st.Partitions, allocated once above, so the
	// pointers stay valid while resp.Topics grows.
	if req.Acks == 0 {
		return &reply{none: true, close: anyErr}
	}
	if len(waits) == 0 {
		return respond(resp)
	}
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	s.produceWaiters.Add(1)
	return r.cc.later(func() *reply {
		defer s.produceWaiters.Add(-1)
		wctx, cancel := context.WithTimeout(ctx, max(timeout, time.Millisecond))
		defer cancel()
		for _, w := range waits {
			var err error
			if req.Acks == -1 && w.p.log.Replicated() {
				// acks=all: every ISR member has it. Kafka then still
				// checks the ISR against min.insync.replicas: a shrunk ISR
				// got the write, but not as many copies as asked for.
				if err = awaitHW(wctx, w.p, w.end); err == nil {
					if st := w.p.state(); st == nil || int32(len(st.isr)) < w.minISR {
						err = kerr.NotEnoughReplicasAfterAppend
					}
				}
			} else {
				err = w.p.log.WaitDurable(wctx, w.end)
			}
			if err != nil {
				w.resp.ErrorCode = errorCode(s.log, err)
				if ctx.Err() == nil && wctx.Err() != nil {
					w.resp.ErrorCode = kerr.RequestTimedOut.Code
				}
			}
		}
		return &reply{resp: resp}
	})
}

// hasTransactionalBatches reports whether any partition's records start
// with a transactional batch. Kafka looks at the first batch only; a
// malformed one is left to validation, which rejects it anyway.
func hasTransactionalBatches(req *kmsg.ProduceRequest) bool {
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			if b, err := proto.ParseBatchHeader(rp.Records); err == nil && b.IsTransactional() {
				return true
			}
		}
	}
	return false
}

// verifyProduceTxn checks, for every partition whose records start with a
// transactional batch, that the batch's producer id and epoch own the
// request's ongoing transaction and that it has added the partition. From
// v12 (transactions v2) it adds the partition itself, starting the
// transaction if needed (txn_cluster.go: addTxnCluster).
func (s *Server) verifyProduceTxn(ctx context.Context, req *kmsg.ProduceRequest, canWrite *authzBatch) map[txn.TopicPartition]int16 {
	type producer struct {
		pid   int64
		epoch int16
	}
	byProducer := map[producer][]txn.TopicPartition{}
	for _, rt := range req.Topics {
		if !canWrite.allow(rt.Topic) {
			continue
		}
		for _, rp := range rt.Partitions {
			if req.Version >= 12 {
				// Added, not only checked: only partitions this broker
				// leads (the others fail before their check is read).
				if ts, _, err := s.parts.leader(rt.Topic, rp.Partition); err != nil || ts.internal {
					continue
				}
			}
			if b, err := proto.ParseBatchHeader(rp.Records); err == nil && b.IsTransactional() {
				k := producer{b.ProducerID, b.ProducerEpoch}
				byProducer[k] = append(byProducer[k], txn.TopicPartition{Topic: rt.Topic, Partition: rp.Partition})
			}
		}
	}
	out := map[txn.TopicPartition]int16{}
	for k, tps := range byProducer {
		if req.Version >= 12 {
			maps.Copy(out, s.addTxnCluster(ctx, *req.TransactionID, k.pid, k.epoch, tps))
			continue
		}
		maps.Copy(out, s.verifyTxnCluster(ctx, *req.TransactionID, k.pid, k.epoch, tps))
	}
	return out
}

// produceRefused fails every partition of the request with code and
// writes nothing. An acks=0 producer reads no response, so, as Kafka
// does, its connection is closed instead.
func produceRefused(req *kmsg.ProduceRequest, resp *kmsg.ProduceResponse, code int16) *reply {
	if req.Acks == 0 {
		return &reply{none: true, close: true}
	}
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition, sp.ErrorCode, sp.BaseOffset = rp.Partition, code, -1
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return respond(resp)
}

// produceOne validates and appends one partition's batches, filling the
// success fields of sp. end is the offset below which everything must be
// durable before the producer is answered.
func (s *Server) produceOne(req *kmsg.ProduceRequest, topic string, rp kmsg.ProduceRequestTopicPartition, now int64, sp *kmsg.ProduceResponseTopicPartition, txnCodes map[txn.TopicPartition]int16) (p *partition, end int64, err error) {
	if req.Acks != 0 && req.Acks != 1 && req.Acks != -1 {
		return nil, 0, kerr.InvalidRequiredAcks
	}
	ts, p, err := s.parts.leader(topic, rp.Partition)
	if err != nil {
		return nil, 0, err
	}
	if ts.internal {
		return nil, 0, fmt.Errorf("cannot append to internal topic %s: %w", topic, kerr.InvalidTopicException)
	}
	if rp.Records == nil {
		return nil, 0, fmt.Errorf("null records: %w", kerr.CorruptMessage)
	}
	batches, err := proto.ValidateProduceBatches(rp.Records, ts.cfg.maxMessageBytes)
	if err != nil {
		return nil, 0, fmt.Errorf("produce %s-%d: %w", topic, rp.Partition, err)
	}
	for i := range batches {
		b := &batches[i]
		if b.Codec() == proto.CodecZstd && req.Version < 7 {
			// Kafka: zstd needs Produce v7+ (KIP-110), so old clients that
			// cannot read it never get it from a consumer either.
			return nil, 0, fmt.Errorf("zstd needs produce v7+: %w", kerr.UnsupportedCompressionType)
		}
		if b.IsTransactional() {
			code, ok := txnCodes[txn.TopicPartition{Topic: topic, Partition: rp.Partition}]
			if !ok {
				return nil, 0, fmt.Errorf("transactional batch of producer %d not verified: %w", b.ProducerID, kerr.InvalidTxnState)
			}
			if code != 0 {
				return nil, 0, fmt.Errorf("transactional batch of producer %d epoch %d: %w", b.ProducerID, b.ProducerEpoch, kerr.ErrorForCode(code))
			}
		}
		if !ts.cfg.logAppendTime && timestampOutOfBounds(b, now, ts.cfg) {
			return nil, 0, fmt.Errorf("timestamp outside message.timestamp.before/after.max.ms: %w", errInvalidTimestamp)
		}
	}
	st := p.state()
	if isr := int32(len(st.isr)); req.Acks == -1 && isr < int32(ts.cfg.minInsyncReplicas) {
		return nil, 0, fmt.Errorf("in-sync replicas %v below min.insync.replicas %d: %w", st.isr, ts.cfg.minInsyncReplicas, kerr.NotEnoughReplicas)
	}
	lat := int64(-1)
	if ts.cfg.logAppendTime {
		lat = now
	}
	info, err := p.log.Append(batches, st.leaderEpoch, lat)
	if err != nil {
		return nil, 0, fmt.Errorf("append %s-%d: %w", topic, rp.Partition, err)
	}
	s.parts.maybeAdvanceHW(p) // an ISR of this broker alone commits at once
	if !info.Duplicate {
		var n, msgs int64
		for i := range batches {
			n += int64(len(batches[i].Raw))
			msgs += int64(batches[i].NumRecords)
		}
		s.metrics.bytesIn.Add(context.Background(), n, ts.attrs)
		s.metrics.messagesIn.Add(context.Background(), msgs, ts.attrs)
	}
	sp.BaseOffset = info.FirstOffset
	sp.LogAppendTime = -1
	if ts.cfg.logAppendTime {
		sp.LogAppendTime = info.LogAppendTime
	}
	sp.LogStartOffset = info.LogStartOffset
	return p, info.LastOffset + 1, nil
}

// timestampOutOfBounds applies message.timestamp.before/after.max.ms to a
// batch's first and max timestamps (Long.MAX bounds never trigger).
func timestampOutOfBounds(b *proto.Batch, now int64, cfg topicConfig) bool {
	if cfg.tsAfterMaxMs < now && b.MaxTimestamp > now+cfg.tsAfterMaxMs {
		return true
	}
	if cfg.tsBeforeMaxMs < now && b.FirstTimestamp < now-cfg.tsBeforeMaxMs {
		return true
	}
	return false
}
