package broker

// DeleteGroups v0-v2: NON_EMPTY_GROUP for groups with members; tombstones go to __consumer_offsets.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(42, 0, 2, handleDeleteGroups) }

func handleDeleteGroups(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.DeleteGroupsRequest)
	return respond(s.groups.DeleteGroups(ctx, req))
}
