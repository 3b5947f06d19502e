package broker

// AddRaftVoter v0-v1 (KIP-853; AckWhenCommitted from v1, KIP-1186).
//
// Makes a node a voter of the metadata quorum (the Raft group of
// metadata.Store). As in Kafka: ALTER on CLUSTER is required (else
// CLUSTER_AUTHORIZATION_FAILED); a ClusterID other than this cluster's is
// INCONSISTENT_CLUSTER_ID (null is accepted); a node id that already votes
// is DUPLICATE_VOTER; a node that is not following the quorum, or lags
// behind it, is REQUEST_TIMED_OUT, so that a mistyped or cold node never
// becomes a voter that slows or blocks commits. The answer comes once the
// new voter set is committed. Any broker answers: the change is forwarded
// through the metadata quorum to its leader (Kafka's brokers forward the
// request to the active controller). With no reachable leader the answer
// is NOT_CONTROLLER; a TimeoutMillis that runs out first is
// REQUEST_TIMED_OUT (the change may still be applied, as in Kafka).
//
// The new voter is promoted from observer (a Raft non-voter): start it
// with process-roles=broker and controller-voters naming the quorum, let
// it catch up (DescribeQuorum lists it under observers), then add it.
//
// Differences from Apache Kafka: the voter's Raft address is the first
// listener of the request (host:port; Kafka picks the listener named like
// its controller listener, which Strata does not have), and it must be
// the address the node follows the quorum from (controller-listen, or
// controller-advertised-addr), else INVALID_REQUEST; an empty listener
// list is INVALID_REQUEST. VoterDirectoryID is ignored (Strata has no
// KIP-853 directory ids) and nothing checks kraft.version. "Caught up"
// means the observer's log end had reached the quorum's high watermark
// when DescribeQuorum last asked it, not Kafka's fetch-based test.
// AckWhenCommitted=false is answered as true: hashicorp/raft reports a
// membership change once it is committed. The checks and the change are
// two steps, so a concurrent change can slip between them; the change
// itself is idempotent.

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/metadata"
)

func init() { register(80, 0, 1, handleAddRaftVoter) }

func handleAddRaftVoter(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.AddRaftVoterRequest)
	resp := req.ResponseKind().(*kmsg.AddRaftVoterResponse)
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
	if req.VoterID < 0 {
		return fail(kerr.InvalidRequest.Code, fmt.Sprintf("voter id %d: must be >= 0", req.VoterID))
	}
	if len(req.Listeners) == 0 {
		return fail(kerr.InvalidRequest.Code, "no listener: the first listener names the new voter's Raft address")
	}
	l := req.Listeners[0]
	if l.Host == "" || l.Port == 0 {
		return fail(kerr.InvalidRequest.Code, fmt.Sprintf("listener %q: host %q port %d is not an address", l.Name, l.Host, l.Port))
	}
	addr := net.JoinHostPort(l.Host, strconv.Itoa(int(l.Port)))
	return r.cc.later(func() *reply {
		ctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
		defer cancel()
		err := s.addRaftVoter(ctx, req.VoterID, addr)
		s.log.Info("AddRaftVoter", "principal", r.principal(), "client_host", r.clientHost(),
			"voter", req.VoterID, "addr", addr, "outcome", quorumOutcome(err))
		if err != nil {
			return fail(errorCode(s.log, err), err.Error())
		}
		return respond(resp)
	})
}

// addRaftVoter checks the change against the leader's view of the quorum,
// then makes it. Refusals wrap a *kerr.Error, which errorCode passes on.
func (s *Server) addRaftVoter(ctx context.Context, id int32, addr string) error {
	q, err := s.meta.DescribeQuorum(ctx)
	if err != nil {
		return err
	}
	if v, ok := quorumMember(q.Voters, id); ok {
		return fmt.Errorf("node %d is already a voter (at %s): %w", id, v.Addr, kerr.DuplicateVoter)
	}
	o, ok := quorumMember(q.Observers, id)
	switch {
	case !ok:
		return fmt.Errorf("node %d does not follow the metadata quorum: start it with process-roles=broker and controller-voters, "+
			"wait until DescribeQuorum lists it as an observer, then add it: %w", id, kerr.RequestTimedOut)
	case o.Addr != addr:
		return fmt.Errorf("node %d follows the metadata quorum from %s, not %s: name that address: %w", id, o.Addr, addr, kerr.InvalidRequest)
	case o.LogEndOffset < q.HighWatermark:
		return fmt.Errorf("node %d lags behind the metadata quorum (log end %d, high watermark %d): retry once it has caught up: %w",
			id, o.LogEndOffset, q.HighWatermark, kerr.RequestTimedOut)
	}
	return s.meta.AddVoter(ctx, id, addr)
}

func quorumMember(rs []metadata.ReplicaState, id int32) (metadata.ReplicaState, bool) {
	i := slices.IndexFunc(rs, func(r metadata.ReplicaState) bool { return r.ID == id })
	if i < 0 {
		return metadata.ReplicaState{}, false
	}
	return rs[i], true
}

// quorumOutcome is the log line's outcome of a membership request: who
// changed the quorum matters when it later misbehaves.
func quorumOutcome(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// checkQuorumClusterID is Kafka's check of a quorum request's cluster id:
// null (older clients) or this cluster's.
func (s *Server) checkQuorumClusterID(id *string) error {
	if id == nil || *id == s.meta.ClusterID() {
		return nil
	}
	return fmt.Errorf("cluster id %q is not this cluster's (%s)", *id, s.meta.ClusterID())
}

// The client side, for the admin CLI (cmd may not import kmsg, and kadm
// has no quorum calls): the requests a Kafka tool would send, answered by
// any broker.
