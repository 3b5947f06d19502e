package broker

// TxnOffsetCommit v0-v5: offsets committed as part of a transaction
// (consume-transform-produce). The group coordinator writes them to
// __consumer_offsets in a transactional batch and keeps them pending until
// the transaction's marker (internal/groups). The producer must have added
// the group's partition with AddOffsetsToTxn first (checked with the
// transaction coordinator, as Kafka does since KIP-890 part 1: otherwise
// INVALID_TXN_STATE and nothing is written, so no offsets are left
// pending without a marker to decide them).
//
// Authorization as Kafka: WRITE on the transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), READ on the group
// (GROUP_AUTHORIZATION_FAILED), both for every partition; then READ on each
// topic (TOPIC_AUTHORIZATION_FAILED) and UNKNOWN_TOPIC_OR_PARTITION for
// partitions that do not exist; the others are committed.
//
// Those others go to the group's coordinator, the leader of its
// __consumer_offsets partition, as in Kafka's GroupCoordinator: an empty
// group id fails them with INVALID_GROUP_ID; on another broker they get
// NOT_COORDINATOR, and on this one COORDINATOR_LOAD_IN_PROGRESS while it
// loads the partition (COORDINATOR_NOT_AVAILABLE before v2, whose clients
// did not know the error, as Kafka answers). This is checked before the
// transaction is verified, as Kafka 3's coordinator does (Kafka 4 verifies
// first, which a broker not leading the partition also fails with
// NOT_COORDINATOR).
//
// v5 is transactions v2 (KIP-890 part 2): the producer sends no
// AddOffsetsToTxn; the group's partition is added to its transaction here,
// through the transaction coordinator, before the offsets are written (not
// offered when transaction.version is below 2).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/internal/txn"
)

func init() { register(28, 0, 5, handleTxnOffsetCommit) }

func handleTxnOffsetCommit(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.TxnOffsetCommitRequest)
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	all := func(code int16) *kmsg.TxnOffsetCommitResponse {
		for _, t := range req.Topics {
			resp.Topics = append(resp.Topics, txnOffsetRefused(t, code))
		}
		return resp
	}
	switch {
	case !s.allow(r, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, req.TransactionalID):
		return respond(all(kerr.TransactionalIDAuthorizationFailed.Code))
	case !s.allow(r, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group):
		return respond(all(kerr.GroupAuthorizationFailed.Code))
	}
	canRead := s.batchAuthz(r, kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic)
	var refused []kmsg.TxnOffsetCommitResponseTopic
	sub := *req
	sub.Topics = nil
	for _, t := range req.Topics {
		if !canRead.allow(t.Topic) {
			refused = append(refused, txnOffsetRefused(t, kerr.TopicAuthorizationFailed.Code))
			continue
		}
		ts, ok := s.parts.topic(t.Topic)
		good, bad := t, t
		good.Partitions, bad.Partitions = nil, nil
		for _, p := range t.Partitions {
			if !ok || p.Partition < 0 || int(p.Partition) >= len(ts.parts) {
				bad.Partitions = append(bad.Partitions, p)
			} else {
				good.Partitions = append(good.Partitions, p)
			}
		}
		if len(bad.Partitions) > 0 {
			refused = append(refused, txnOffsetRefused(bad, kerr.UnknownTopicOrPartition.Code))
		}
		if len(good.Partitions) > 0 {
			sub.Topics = append(sub.Topics, good)
		}
	}
	if len(sub.Topics) > 0 {
		code := kerr.InvalidGroupID.Code
		if req.Group != "" {
			code = s.groupCoordinatorCode(req.Group)
		}
		if code == kerr.CoordinatorLoadInProgress.Code && req.Version < 2 {
			code = kerr.CoordinatorNotAvailable.Code
		}
		if code != 0 {
			for _, t := range sub.Topics {
				resp.Topics = append(resp.Topics, txnOffsetRefused(t, code))
			}
			resp.Topics = append(resp.Topics, refused...)
			return respond(resp)
		}
	}
	return r.cc.later(func() *reply {
		out := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		if len(sub.Topics) > 0 {
			tp := txn.TopicPartition{Topic: offsetsTopicName, Partition: s.groups.PartitionFor(req.Group)}
			check := s.verifyTxnCluster
			if req.Version >= 5 {
				check = s.addTxnCluster // transactions v2: added implicitly
			}
			codes := check(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, []txn.TopicPartition{tp})
			if code := codes[tp]; code != 0 {
				for _, t := range sub.Topics {
					out.Topics = append(out.Topics, txnOffsetRefused(t, code))
				}
			} else {
				out = s.groups.TxnOffsetCommit(ctx, &sub)
			}
		}
		out.Topics = append(out.Topics, refused...)
		return &reply{resp: out}
	})
}

func txnOffsetRefused(t kmsg.TxnOffsetCommitRequestTopic, code int16) kmsg.TxnOffsetCommitResponseTopic {
	rt := kmsg.NewTxnOffsetCommitResponseTopic()
	rt.Topic = t.Topic
	for _, p := range t.Partitions {
		rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
		rp.Partition, rp.ErrorCode = p.Partition, code
		rt.Partitions = append(rt.Partitions, rp)
	}
	return rt
}

// verifyTxn asks the transaction coordinator whether the producer's
// ongoing transaction has added each partition (AddPartitionsToTxn
// VerifyOnly, as Kafka's brokers do since KIP-890 part 1). It returns each
// partition's code, in the error space of data-path requests: 0,
// INVALID_TXN_STATE (not in the transaction), INVALID_PRODUCER_EPOCH
// (fenced), INVALID_PRODUCER_ID_MAPPING, or NOT_ENOUGH_REPLICAS for
// retriable coordinator states, as Kafka maps them for Produce.
func (s *Server) verifyTxn(ctx context.Context, id string, pid int64, epoch int16, tps []txn.TopicPartition) map[txn.TopicPartition]int16 {
	if !s.txnLog.loaded.Load() {
		// No transactional producer was ever initialized here (the
		// topic is loaded at startup when it exists): nothing to verify
		// against, and the data path must not create the topic.
		return verifyAll(tps, kerr.InvalidTxnState.Code)
	}
	return verifyTxnCodes(s.txns.AddPartitionsToTxn(ctx, verifyTxnRequest(id, pid, epoch, tps)), tps)
}
