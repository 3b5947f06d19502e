package broker

// SyncGroup v0-v5: waits until the leader's assignment arrives. Assignments pass through byte for byte.
// READ on the group is required (GROUP_AUTHORIZATION_FAILED), checked after
// v5's mandatory protocol type and name, as in Kafka.
//
// Then, as in Kafka's GroupCoordinator, only the group's coordinator
// answers: another broker answers NOT_COORDINATOR; while this one loads
// the group's partition it answers REBALANCE_IN_PROGRESS, not
// COORDINATOR_LOAD_IN_PROGRESS: the rebalance in flight was lost with the
// old coordinator, so the member must rejoin, and the Java client treats
// COORDINATOR_LOAD_IN_PROGRESS from SyncGroup as fatal.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(14, 0, 5, handleSyncGroup) }

func handleSyncGroup(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.SyncGroupRequest)
	missingProtocol := req.Version >= 5 && (req.ProtocolType == nil || req.Protocol == nil)
	if !missingProtocol && !s.allow(r, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		resp.MemberAssignment = []byte{}
		return respond(resp)
	}
	// A v5 request without protocol type or name goes to the coordinator,
	// which answers INCONSISTENT_GROUP_PROTOCOL whoever asks; so does an
	// empty group id (INVALID_GROUP_ID).
	if !missingProtocol && req.Group != "" {
		if code := s.groupCoordinatorCode(req.Group); code != 0 {
			if code == kerr.CoordinatorLoadInProgress.Code {
				code = kerr.RebalanceInProgress.Code
			}
			resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
			resp.ErrorCode = code
			resp.MemberAssignment = []byte{}
			return respond(resp)
		}
	}
	return r.cc.later(func() *reply { return &reply{resp: s.groups.SyncGroup(ctx, req)} })
}
