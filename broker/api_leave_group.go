package broker

// LeaveGroup v0-v5: single member (v0-v2) or batched members (v3+, KIP-345).
// READ on the group is required (GROUP_AUTHORIZATION_FAILED for the whole
// request, no member results), as in Kafka.
//
// Then only the group's coordinator answers: another broker answers
// NOT_COORDINATOR, this one COORDINATOR_LOAD_IN_PROGRESS while it loads the
// group's partition, both for the whole request with no member results,
// as Kafka's GroupCoordinator does. An empty group id is INVALID_GROUP_ID.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(13, 0, 5, handleLeaveGroup) }

func handleLeaveGroup(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.LeaveGroupRequest)
	code := int16(0)
	switch {
	case !s.allow(r, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group):
		code = kerr.GroupAuthorizationFailed.Code
	case req.Group != "": // the coordinator answers INVALID_GROUP_ID
		code = s.groupCoordinatorCode(req.Group)
	}
	if code != 0 {
		resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
		resp.ErrorCode = code
		resp.Members = []kmsg.LeaveGroupResponseMember{}
		return respond(resp)
	}
	return respond(s.groups.LeaveGroup(ctx, req))
}
