package broker

// DescribeQuorum v0-v2 (KIP-595; replica timestamps from v1, KIP-836;
// nodes, directory ids and error messages from v2, KIP-853).
//
// Describes the metadata quorum, which is the Raft group of
// metadata.Store, as Kafka describes its KRaft quorum: the one partition
// __cluster_metadata-0, its leader (the active controller), the leader
// epoch (the Raft term), the high watermark (the commit index), and the
// voters and observers (Raft non-voters) with their log end offsets and
// last fetch and caught-up times. As in Kafka the request must name exactly
// that one partition, else every partition it names gets
// UNKNOWN_TOPIC_OR_PARTITION; DESCRIBE on CLUSTER is required (else
// CLUSTER_AUTHORIZATION_FAILED at the top level); with no reachable leader
// the partition answers NOT_LEADER_OR_FOLLOWER. Any node answers: the store
// asks the leader. v2 lists each voter's listeners under Nodes.
//
// Differences from Apache Kafka: offsets are Raft log indexes (entry i is
// offset i-1, so the high watermark and log end offsets are exclusive ends
// as in Kafka), and a follower's log end offset and times are what the
// replica reports when asked, since hashicorp/raft keeps the leader's
// view private (see metadata.ReplicaState). Directory ids are zero (no
// KIP-853 directory ids). A voter's listeners are its broker listeners
// (this node's advertised listeners, another node's registered endpoints),
// since Strata's controllers have no Kafka listener of their own; a voter
// that is not a registered broker is listed without listeners.

import (
	"context"
	"errors"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/metadata"
)

func init() { register(55, 0, 2, handleDescribeQuorum) }

// clusterMetadataTopic and clusterMetadataPartition name Kafka's metadata
// log, the one partition DescribeQuorum describes.
const (
	clusterMetadataTopic     = "__cluster_metadata"
	clusterMetadataPartition = 0
)

func handleDescribeQuorum(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.DescribeQuorumRequest)
	resp := req.ResponseKind().(*kmsg.DescribeQuorumResponse)
	if !s.allowCluster(r, kmsg.ACLOperationDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		resp.ErrorMessage = kmsg.StringPtr(clusterDenied)
		return respond(resp)
	}
	if len(req.Topics) != 1 || req.Topics[0].Topic != clusterMetadataTopic ||
		len(req.Topics[0].Partitions) != 1 || req.Topics[0].Partitions[0].Partition != clusterMetadataPartition {
		for _, rt := range req.Topics {
			st := kmsg.NewDescribeQuorumResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewDescribeQuorumResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.UnknownTopicOrPartition.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return respond(resp)
	}
	// The store may poll the other replicas (bounded by its own timeout):
	// answer off the reader goroutine.
	return r.cc.later(func() *reply {
		q, err := s.meta.DescribeQuorum(ctx)
		st := kmsg.NewDescribeQuorumResponseTopic()
		st.Topic = clusterMetadataTopic
		sp := kmsg.NewDescribeQuorumResponseTopicPartition()
		sp.Partition = clusterMetadataPartition
		switch {
		case errors.Is(err, metadata.ErrNotLeader):
			// Kafka's answer from a node that is not the leader.
			sp.ErrorCode, sp.LeaderID, sp.LeaderEpoch, sp.HighWatermark = kerr.NotLeaderForPartition.Code, -1, -1, -1
			sp.ErrorMessage = kmsg.StringPtr(err.Error())
		case err != nil:
			resp.ErrorCode = errorCode(s.log, err)
			resp.ErrorMessage = kmsg.StringPtr(err.Error())
			return respond(resp)
		default:
			sp.LeaderID, sp.LeaderEpoch, sp.HighWatermark = q.LeaderID, q.LeaderEpoch, q.HighWatermark
			sp.CurrentVoters = replicaStates(q.Voters)
			sp.Observers = replicaStates(q.Observers)
			if req.Version >= 2 {
				for _, v := range q.Voters {
					resp.Nodes = append(resp.Nodes, s.quorumNode(v.ID))
				}
			}
		}
		st.Partitions = append(st.Partitions, sp)
		resp.Topics = append(resp.Topics, st)
		return respond(resp)
	})
}

func replicaStates(in []metadata.ReplicaState) []kmsg.DescribeQuorumResponseTopicPartitionReplicaState {
	out := make([]kmsg.DescribeQuorumResponseTopicPartitionReplicaState, 0, len(in))
	for _, m := range in {
		rs := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
		rs.ReplicaID = m.ID
		rs.LogEndOffset = m.LogEndOffset
		rs.LastFetchTimestamp = m.LastFetchTimestamp
		rs.LastCaughtUpTimestamp = m.LastCaughtUpTimestamp
		out = append(out, rs)
	}
	return out
}

// quorumNode is a voter's entry in the v2 Nodes list: its broker
// listeners.
func (s *Server) quorumNode(id int32) kmsg.DescribeQuorumResponseNode {
	n := kmsg.NewDescribeQuorumResponseNode()
	n.NodeID = id
	n.Listeners = []kmsg.DescribeQuorumResponseNodeListener{}
	addListener := func(name, host string, port int32) {
		if port < 0 || port > math.MaxUint16 {
			return
		}
		l := kmsg.NewDescribeQuorumResponseNodeListener()
		l.Name, l.Host, l.Port = name, host, uint16(port)
		n.Listeners = append(n.Listeners, l)
	}
	if id == s.cfg.NodeID {
		for _, l := range s.listeners {
			addListener(l.name, l.advHost, l.advPort)
		}
		return n
	}
	if b, ok := s.meta.Broker(id); ok {
		for _, e := range b.AllEndpoints() {
			addListener(e.Listener, e.Host, e.Port)
		}
	}
	return n
}
