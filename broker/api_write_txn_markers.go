package broker

// WriteTxnMarkers v0-v1: appends a transaction's commit or abort marker to
// each partition, with the partition's leader epoch. On this single node
// the transaction coordinator writes its markers directly; this API is
// served for completeness (and for tools). Markers written to
// __consumer_offsets also decide the group's pending transactional
// offsets. Authorization as Kafka: CLUSTER_ACTION on the cluster
// (CLUSTER_AUTHORIZATION_FAILED for every partition).

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(27, 0, 1, handleWriteTxnMarkers) }

func handleWriteTxnMarkers(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.WriteTxnMarkersRequest)
	allowed := s.allowCluster(r, kmsg.ACLOperationClusterAction)
	return r.cc.later(func() *reply {
		resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
		for _, m := range req.Markers {
			rm := kmsg.NewWriteTxnMarkersResponseMarker()
			rm.ProducerID = m.ProducerID
			for _, t := range m.Topics {
				rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
					rp.Partition = p
					if !allowed {
						rp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
					} else if err := s.writeMarker(ctx, m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch, t.Topic, p); err != nil {
						rp.ErrorCode = errorCode(s.log, err)
						if errors.Is(err, errUnknownTopic) {
							rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
						}
					}
					rt.Partitions = append(rt.Partitions, rp)
				}
				rm.Topics = append(rm.Topics, rt)
			}
			resp.Markers = append(resp.Markers, rm)
		}
		return &reply{resp: resp}
	})
}
