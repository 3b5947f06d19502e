package broker

// SyncGroup v0-v5: waits until the leader's assignment arrives. Assignments pass through byte for byte.
// READ on the group is required (GROUP_AUTHORIZATION_FAILED), checked after
// v5's mandatory protocol type and name, as in Kafka.

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
	// which answers INCONSISTENT_GROUP_PROTOCOL whoever asks.
	return r.cc.later(func() *reply { return &reply{resp: s.groups.SyncGroup(ctx, req)} })
}
