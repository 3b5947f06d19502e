package broker

// RemoveRaftVoter v0 (KIP-853).
//
// Removes a voter from the metadata quorum (the Raft group of
// metadata.Store). As in Kafka: ALTER on CLUSTER is required (else
// CLUSTER_AUTHORIZATION_FAILED); a ClusterID other than this cluster's is
// INCONSISTENT_CLUSTER_ID (null is accepted); a node id that is not a
// voter (an observer included) is VOTER_NOT_FOUND. The answer comes once
// the new voter set is committed; a leader that removes itself then
// steps down. Any broker answers: the change is forwarded through the
// metadata quorum to its leader (Kafka's brokers forward the request to
// the active controller); with no reachable leader the answer is
// NOT_CONTROLLER.
//
// Differences from Apache Kafka: the node leaves the quorum altogether
// (hashicorp/raft's RemoveServer), where Kafka's stays an observer: a
// node that still runs a broker stops following the metadata log until
// it restarts as process-roles=broker, when it joins again as an
// observer. Removing the last voter is INVALID_REQUEST (Kafka does not
// check yet). VoterDirectoryID is ignored (Strata has no directory ids).
// The request has no timeout: the metadata quorum's own bound applies.
// The voter check asks the leader for the quorum as DescribeQuorum does,
// which waits up to a couple of seconds for a replica that does not answer
// (a dead voter, the usual one to remove).

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(81, 0, 0, handleRemoveRaftVoter) }

func handleRemoveRaftVoter(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.RemoveRaftVoterRequest)
	resp := req.ResponseKind().(*kmsg.RemoveRaftVoterResponse)
	fail := func(code int16, msg string) *reply {
		resp.ErrorCode, resp.ErrorMessage = code, kmsg.StringPtr(msg)
		return respond(resp)
	}
	if !s.allowCluster(r, kmsg.ACLOperationAlter) {
		return fail(kerr.ClusterAuthorizationFailed.Code, clusterDenied)
	}
	if err := s.checkQuorumClusterID(req.ClusterID); err != nil {
		return fail(kerr.InconsistentClusterID.Code, err.Error())
	}
	return r.cc.later(func() *reply {
		err := s.removeRaftVoter(ctx, req.VoterID)
		s.log.Info("RemoveRaftVoter", "principal", r.principal(), "client_host", r.clientHost(),
			"voter", req.VoterID, "outcome", quorumOutcome(err))
		if err != nil {
			return fail(errorCode(s.log, err), err.Error())
		}
		return respond(resp)
	})
}

// removeRaftVoter checks the change against the leader's view of the
// quorum, then makes it. Refusals wrap a *kerr.Error, which errorCode
// passes on.
func (s *Server) removeRaftVoter(ctx context.Context, id int32) error {
	q, err := s.meta.DescribeQuorum(ctx)
	if err != nil {
		return err
	}
	if _, ok := quorumMember(q.Voters, id); !ok {
		return fmt.Errorf("node %d is not a voter of the metadata quorum: %w", id, kerr.VoterNotFound)
	}
	if len(q.Voters) == 1 {
		return fmt.Errorf("node %d is the only voter: the metadata quorum would have none: %w", id, kerr.InvalidRequest)
	}
	return s.meta.RemoveServer(ctx, id)
}
