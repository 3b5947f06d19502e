package broker

// OffsetForLeaderEpoch v0-v4.
//
// Answers, for a leader epoch, the largest epoch <= it that this log has
// and the offset where the next epoch starts (or the log end offset), so
// consumers can detect truncation (KIP-320). Authorization as Kafka:
// CLUSTER_ACTION on the cluster (replicas) covers every topic, otherwise
// DESCRIBE on each topic (consumers) or TOPIC_AUTHORIZATION_FAILED per
// partition. Differences from Apache Kafka: none known.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(23, 0, 4, handleOffsetForLeaderEpoch) }

func handleOffsetForLeaderEpoch(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	var canDescribe *authzBatch
	if !s.allowClusterQuiet(r, kmsg.ACLOperationClusterAction) {
		canDescribe = s.batchAuthz(r, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic)
	}
	for _, rt := range req.Topics {
		allowed := canDescribe == nil || canDescribe.allow(rt.Topic)
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			if !allowed {
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			_, p, err := s.parts.leader(rt.Topic, rp.Partition)
			switch {
			case err != nil:
				sp.ErrorCode = errorCode(s.log, err)
			case req.Version >= 2 && rp.CurrentLeaderEpoch != -1 && rp.CurrentLeaderEpoch < p.epoch():
				sp.ErrorCode = kerr.FencedLeaderEpoch.Code
			case req.Version >= 2 && rp.CurrentLeaderEpoch > p.epoch():
				sp.ErrorCode = kerr.UnknownLeaderEpoch.Code
			default:
				sp.LeaderEpoch, sp.EndOffset = p.log.EndOffsetForEpoch(rp.LeaderEpoch)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return respond(resp)
}
