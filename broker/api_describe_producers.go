package broker

// DescribeProducers v0 (KIP-664): the producer state a partition's log
// keeps (producer id, epoch, last sequence and timestamp, coordinator epoch
// of the last marker, first offset of the open transaction), as Kafka's
// UnifiedLog.activeProducers reports it. Operators use it to find the
// transaction that holds a partition's last stable offset back (kafka-
// transactions.sh find-hanging).
//
// As in Kafka (KafkaApis.handleDescribeProducersRequest and
// ReplicaManager.activeProducerState), per topic: an invalid name is
// INVALID_TOPIC_EXCEPTION, no READ on the topic TOPIC_AUTHORIZATION_FAILED
// (whether the topic exists or not), an unknown topic or partition
// UNKNOWN_TOPIC_OR_PARTITION; a partition this broker does not host is
// NOT_LEADER_OR_FOLLOWER. Any replica answers, leader or follower, since
// followers rebuild the same state from the batches they copy: Kafka's
// admin client asks the leader unless told a broker id, so a follower can
// be inspected on purpose.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/metadata"
)

func init() { register(61, 0, 0, handleDescribeProducers) }

func handleDescribeProducers(s *Server, _ context.Context, r *request) *reply {
	req := r.msg.(*kmsg.DescribeProducersRequest)
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	canRead := s.batchAuthz(r, kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic)
	for _, rt := range req.Topics {
		st := kmsg.NewDescribeProducersResponseTopic()
		st.Topic = rt.Topic
		var topicErr *kerr.Error
		switch {
		case metadata.ValidTopicName(rt.Topic) != nil:
			topicErr = kerr.InvalidTopicException
		case !canRead.allow(rt.Topic):
			topicErr = kerr.TopicAuthorizationFailed
		}
		for _, p := range rt.Partitions {
			sp := kmsg.NewDescribeProducersResponseTopicPartition()
			sp.Partition = p
			if topicErr != nil {
				sp.ErrorCode = topicErr.Code
			} else {
				s.describeProducers(rt.Topic, p, &sp)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return respond(resp)
}

// describeProducers fills sp from the local replica of topic-p.
func (s *Server) describeProducers(topic string, p int32, sp *kmsg.DescribeProducersResponseTopicPartition) {
	_, part, err := s.parts.get(topic, p)
	if err != nil {
		sp.ErrorCode = errorCode(s.log, err)
		return
	}
	for _, ps := range part.log.ActiveProducers() {
		ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
		ap.ProducerID = ps.ProducerID
		ap.ProducerEpoch = int32(ps.Epoch)
		ap.LastSequence = ps.LastSequence
		ap.LastTimestamp = ps.LastTimestamp
		ap.CoordinatorEpoch = ps.CoordinatorEpoch
		ap.CurrentTxnStartOffset = ps.TxnStartOffset
		sp.ActiveProducers = append(sp.ActiveProducers, ap)
	}
}
