package broker

// Heartbeat v0-v4: answers REBALANCE_IN_PROGRESS while a rebalance runs, as Kafka does.
// READ on the group is required (GROUP_AUTHORIZATION_FAILED), as in Kafka.
//
// Then only the group's coordinator answers: another broker answers
// NOT_COORDINATOR. While this broker loads the group's partition the
// heartbeat succeeds blindly, as in Kafka (the member's next JoinGroup or
// SyncGroup learns the truth). An empty group id is INVALID_GROUP_ID.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(12, 0, 4, handleHeartbeat) }

func handleHeartbeat(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.HeartbeatRequest)
	if !s.allow(r, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return respond(resp)
	}
	if req.Group != "" { // the coordinator answers INVALID_GROUP_ID
		if code := s.groupCoordinatorCode(req.Group); code != 0 {
			resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
			if code != kerr.CoordinatorLoadInProgress.Code {
				resp.ErrorCode = code
			}
			return respond(resp)
		}
	}
	return respond(s.groups.Heartbeat(ctx, req))
}
