package broker

// AddPartitionsToTxn v0-v5: adds partitions to the producer's transaction.
// v4+ is the brokers' version (KIP-890): it batches several transactions
// and, with VerifyOnly, only checks that each partition is in the ongoing
// transaction, without adding it; a partition leader on another broker
// asks this way before it accepts a transactional batch (txn_cluster.go).
// v5 (no new fields) is what a partition leader sends to add a partition
// for a transactions v2 producer (Produce v12), VerifyOnly unset.
// A transactional id this broker does not coordinate gets NOT_COORDINATOR.
// Authorization as Kafka: v4 needs CLUSTER_ACTION
// (CLUSTER_AUTHORIZATION_FAILED; with an authorizer the brokers' principal
// must be a super user); then per transaction WRITE on the
// transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED for all its
// partitions) and WRITE on each topic (TOPIC_AUTHORIZATION_FAILED).
// Partitions that do not exist get UNKNOWN_TOPIC_OR_PARTITION; when any
// partition of a transaction fails, the others get OPERATION_NOT_ATTEMPTED
// and nothing is added, as in Kafka.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(24, 0, 5, handleAddPartitionsToTxn) }

type txnTopicParts struct {
	topic string
	parts []int32
}

// txnPartitionErrors checks one transaction's partitions. nil means all
// may be added; otherwise every partition's code (topic -> partition ->
// code).
func (s *Server) txnPartitionErrors(r *request, id string, topics []txnTopicParts) map[string]map[int32]int16 {
	out := map[string]map[int32]int16{}
	fail := false
	idOK := s.allow(r, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, id)
	canWrite := s.batchAuthz(r, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic)
	for _, t := range topics {
		m := out[t.topic]
		if m == nil {
			m = map[int32]int16{}
			out[t.topic] = m
		}
		ts, exists := s.parts.topic(t.topic)
		for _, p := range t.parts {
			var code int16
			switch {
			case !idOK:
				code = kerr.TransactionalIDAuthorizationFailed.Code
			case !canWrite.allow(t.topic):
				code = kerr.TopicAuthorizationFailed.Code
			case !exists || p < 0 || int(p) >= len(ts.parts):
				code = kerr.UnknownTopicOrPartition.Code
			}
			if code != 0 {
				fail = true
			}
			m[p] = code
		}
	}
	if !fail {
		return nil
	}
	for _, m := range out {
		for p, code := range m {
			if code == 0 {
				m[p] = kerr.OperationNotAttempted.Code
			}
		}
	}
	return out
}

func handleAddPartitionsToTxn(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.AddPartitionsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version < 4 {
		var topics []txnTopicParts
		for _, t := range req.Topics {
			topics = append(topics, txnTopicParts{t.Topic, t.Partitions})
		}
		if errs := s.txnPartitionErrors(r, req.TransactionalID, topics); errs != nil {
			for _, t := range req.Topics {
				rt := kmsg.NewAddPartitionsToTxnResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
					rp.Partition, rp.ErrorCode = p, errs[t.Topic][p]
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			return respond(resp)
		}
		return r.cc.later(func() *reply { return &reply{resp: s.txns.AddPartitionsToTxn(ctx, req)} })
	}
	if !s.allowCluster(r, kmsg.ACLOperationClusterAction) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return respond(resp)
	}
	refused := map[int]kmsg.AddPartitionsToTxnResponseTransaction{}
	sub := *req
	sub.Transactions = nil
	for i, tx := range req.Transactions {
		var topics []txnTopicParts
		for _, t := range tx.Topics {
			topics = append(topics, txnTopicParts{t.Topic, t.Partitions})
		}
		errs := s.txnPartitionErrors(r, tx.TransactionalID, topics)
		if errs == nil {
			sub.Transactions = append(sub.Transactions, tx)
			continue
		}
		rtx := kmsg.NewAddPartitionsToTxnResponseTransaction()
		rtx.TransactionalID = tx.TransactionalID
		for _, t := range tx.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
				rp.Partition, rp.ErrorCode = p, errs[t.Topic][p]
				rt.Partitions = append(rt.Partitions, rp)
			}
			rtx.Topics = append(rtx.Topics, rt)
		}
		refused[i] = rtx
	}
	return r.cc.later(func() *reply {
		got := s.txns.AddPartitionsToTxn(ctx, &sub)
		j := 0
		for i := range req.Transactions {
			if rtx, ok := refused[i]; ok {
				resp.Transactions = append(resp.Transactions, rtx)
				continue
			}
			resp.Transactions = append(resp.Transactions, got.Transactions[j])
			j++
		}
		return &reply{resp: resp}
	})
}
