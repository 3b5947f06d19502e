package broker

// DescribeGroups v0-v5: member metadata and assignments as the members sent them.
// DESCRIBE on each group is required (GROUP_AUTHORIZATION_FAILED for the
// group otherwise); authorized operations (v3+) are filled in when asked
// for, for groups described without error, as in Kafka. Groups are
// answered in the request's order.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(15, 0, 5, handleDescribeGroups) }

func handleDescribeGroups(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.DescribeGroupsRequest)
	allowed := make([]bool, len(req.Groups))
	sub := *req
	sub.Groups = make([]string, 0, len(req.Groups))
	for i, g := range req.Groups {
		if allowed[i] = s.allow(r, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, g); allowed[i] {
			sub.Groups = append(sub.Groups, g)
		}
	}
	var described []kmsg.DescribeGroupsResponseGroup
	if len(sub.Groups) > 0 {
		described = s.groups.DescribeGroups(ctx, &sub).Groups
	}
	wantOps := req.Version >= 3 && req.IncludeAuthorizedOperations
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	next := 0
	for i, g := range req.Groups {
		if !allowed[i] {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group = g
			rg.ErrorCode = kerr.GroupAuthorizationFailed.Code
			rg.Members = []kmsg.DescribeGroupsResponseGroupMember{}
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		rg := described[next]
		next++
		if wantOps && rg.ErrorCode == 0 {
			rg.AuthorizedOperations = s.authorizedOps(r, kmsg.ACLResourceTypeGroup, rg.Group)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return respond(resp)
}
