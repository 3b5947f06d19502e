package broker

// JoinGroup v0-v9: waits (off the reader goroutine) until the rebalance completes. The group state machine lives in internal/groups; differences from Apache Kafka are listed there.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(11, 0, 9, handleJoinGroup) }

func handleJoinGroup(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.JoinGroupRequest)
	return r.cc.later(func() *reply { return &reply{resp: s.groups.JoinGroup(ctx, req)} })
}
