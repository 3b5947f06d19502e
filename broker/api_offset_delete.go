package broker

// OffsetDelete v0-v0: GROUP_SUBSCRIBED_TO_TOPIC while members subscribe to the topic.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(47, 0, 0, handleOffsetDelete) }

func handleOffsetDelete(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.OffsetDeleteRequest)
	return respond(s.groups.OffsetDelete(ctx, req))
}
