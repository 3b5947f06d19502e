package broker

// LeaveGroup v0-v5: single member (v0-v2) or batched members (v3+, KIP-345).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(13, 0, 5, handleLeaveGroup) }

func handleLeaveGroup(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.LeaveGroupRequest)
	return respond(s.groups.LeaveGroup(ctx, req))
}
