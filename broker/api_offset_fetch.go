package broker

// OffsetFetch v0-v9: v8+ fetches several groups at once. Without transactions RequireStable never blocks.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(9, 0, 9, handleOffsetFetch) }

func handleOffsetFetch(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.OffsetFetchRequest)
	return respond(s.groups.OffsetFetch(ctx, req))
}
