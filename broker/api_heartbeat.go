package broker

// Heartbeat v0-v4: answers REBALANCE_IN_PROGRESS while a rebalance runs, as Kafka does.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(12, 0, 4, handleHeartbeat) }

func handleHeartbeat(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.HeartbeatRequest)
	return respond(s.groups.Heartbeat(ctx, req))
}
