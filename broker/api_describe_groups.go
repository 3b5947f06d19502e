package broker

// DescribeGroups v0-v5: member metadata and assignments as the members sent them.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(15, 0, 5, handleDescribeGroups) }

func handleDescribeGroups(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.DescribeGroupsRequest)
	return respond(s.groups.DescribeGroups(ctx, req))
}
