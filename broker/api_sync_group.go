package broker

// SyncGroup v0-v5: waits until the leader's assignment arrives. Assignments pass through byte for byte.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(14, 0, 5, handleSyncGroup) }

func handleSyncGroup(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.SyncGroupRequest)
	return r.cc.later(func() *reply { return &reply{resp: s.groups.SyncGroup(ctx, req)} })
}
