package broker

// JoinGroup v0-v9: waits (off the reader goroutine) until the rebalance completes. The group state machine lives in internal/groups; differences from Apache Kafka are listed there.
// READ on the group is required (GROUP_AUTHORIZATION_FAILED), as in Kafka.
//
// Only the group's coordinator (the leader of its __consumer_offsets
// partition) answers: after authorization, another broker answers
// NOT_COORDINATOR and this one COORDINATOR_LOAD_IN_PROGRESS while it loads
// the partition, as Kafka's GroupCoordinator does. An empty group id is
// INVALID_GROUP_ID before that check, as in Kafka. Kafka 4's coordinator
// checks the session timeout bounds before ownership, Kafka 3's after; here
// they come after (the client retries at the coordinator either way).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(11, 0, 9, handleJoinGroup) }

func handleJoinGroup(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.JoinGroupRequest)
	if !s.allow(r, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		// Kafka's refusal names no member, generation or protocol.
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		resp.Generation = -1
		if req.Version < 7 {
			resp.Protocol = kmsg.StringPtr("")
		}
		resp.Members = []kmsg.JoinGroupResponseMember{}
		return respond(resp)
	}
	if req.Group != "" { // the coordinator answers INVALID_GROUP_ID
		if code := s.groupCoordinatorCode(req.Group); code != 0 {
			// As the coordinator's own errors: the member id sent back.
			resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
			resp.ErrorCode, resp.MemberID, resp.Generation = code, req.MemberID, -1
			resp.Members = []kmsg.JoinGroupResponseMember{}
			return respond(resp)
		}
	}
	return r.cc.later(func() *reply { return &reply{resp: s.groups.JoinGroup(ctx, req)} })
}
