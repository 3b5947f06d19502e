package broker

// WriteTxnMarkers v0-v1: a transaction coordinator (on this or another
// broker; txn_cluster.go) has this broker, as the leader, append a
// transaction's commit or abort marker to each partition, with the
// partition's leader epoch, and answers once the markers are committed.
// A partition this broker does not lead gets NOT_LEADER_OR_FOLLOWER (or
// LEADER_NOT_AVAILABLE), one that does not exist
// UNKNOWN_TOPIC_OR_PARTITION: the coordinator looks the leader up again
// and retries. Markers written to __consumer_offsets also decide the
// group's pending transactional offsets. Authorization as Kafka:
// CLUSTER_ACTION on the cluster (CLUSTER_AUTHORIZATION_FAILED for every
// partition), so with an authorizer the brokers' principal must be a
// super user.

import (
	"context"
	"errors"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(27, 0, 1, handleWriteTxnMarkers) }

func handleWriteTxnMarkers(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.WriteTxnMarkersRequest)
	allowed := s.allowCluster(r, kmsg.ACLOperationClusterAction)
	return r.cc.later(func() *reply {
		resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
		// Every partition waits for its own ISR: write them all at once.
		var wg sync.WaitGroup
		for _, m := range req.Markers {
			rm := kmsg.NewWriteTxnMarkersResponseMarker()
			rm.ProducerID = m.ProducerID
			for _, t := range m.Topics {
				rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
				rt.Topic = t.Topic
				rt.Partitions = make([]kmsg.WriteTxnMarkersResponseMarkerTopicPartition, len(t.Partitions))
				for i, p := range t.Partitions {
					rp := &rt.Partitions[i]
					rp.Default()
					rp.Partition = p
					if !allowed {
						rp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
						continue
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := s.writeMarker(ctx, m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch, t.Topic, p); err != nil {
							rp.ErrorCode = errorCode(s.log, err)
							if errors.Is(err, errUnknownTopic) {
								rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
							}
						}
					}()
				}
				rm.Topics = append(rm.Topics, rt)
			}
			resp.Markers = append(resp.Markers, rm)
		}
		wg.Wait()
		return &reply{resp: resp}
	})
}
