package broker

// DeleteGroups v0-v2: NON_EMPTY_GROUP for groups with members; tombstones go to __consumer_offsets.
// DELETE on each group is required (GROUP_AUTHORIZATION_FAILED for the
// group otherwise), as in Kafka. Groups are answered in the request's order.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(42, 0, 2, handleDeleteGroups) }

func handleDeleteGroups(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.DeleteGroupsRequest)
	allowed := make([]bool, len(req.Groups))
	sub := *req
	sub.Groups = make([]string, 0, len(req.Groups))
	for i, g := range req.Groups {
		if allowed[i] = s.allow(r, kmsg.ACLOperationDelete, kmsg.ACLResourceTypeGroup, g); allowed[i] {
			sub.Groups = append(sub.Groups, g)
		}
	}
	var deleted []kmsg.DeleteGroupsResponseGroup
	if len(sub.Groups) > 0 {
		deleted = s.groups.DeleteGroups(ctx, &sub).Groups
	}
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	next := 0
	for i, g := range req.Groups {
		if !allowed[i] {
			rg := kmsg.NewDeleteGroupsResponseGroup()
			rg.Group, rg.ErrorCode = g, kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		resp.Groups = append(resp.Groups, deleted[next])
		next++
	}
	return respond(resp)
}
