package broker

// ListGroups v0-v5: with the states (v4+) and types (v5+) filters.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(16, 0, 5, handleListGroups) }

func handleListGroups(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.ListGroupsRequest)
	return respond(s.groups.ListGroups(ctx, req))
}
