package broker

// LeaveGroup v0-v5: single member (v0-v2) or batched members (v3+, KIP-345).
// READ on the group is required (GROUP_AUTHORIZATION_FAILED for the whole
// request, no member results), as in Kafka.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(13, 0, 5, handleLeaveGroup) }

func handleLeaveGroup(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.LeaveGroupRequest)
	if !s.allow(r, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		resp.Members = []kmsg.LeaveGroupResponseMember{}
		return respond(resp)
	}
	return respond(s.groups.LeaveGroup(ctx, req))
}
