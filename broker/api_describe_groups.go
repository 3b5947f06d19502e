package broker

// DescribeGroups v0-v5: member metadata and assignments as the members sent them.
// DESCRIBE on each group is required (GROUP_AUTHORIZATION_FAILED for the
// group otherwise); authorized operations (v3+) are filled in when asked
// for, for groups described without error, as in Kafka. Groups are
// answered in the request's order.
//
// Each authorized group is described only by its coordinator, the leader
// of its __consumer_offsets partition: another broker answers
// NOT_COORDINATOR for that group, this one COORDINATOR_LOAD_IN_PROGRESS
// while it loads the partition, as Kafka's GroupCoordinator does. The
// empty group id is valid, as in Kafka.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(15, 0, 5, handleDescribeGroups) }

func handleDescribeGroups(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.DescribeGroupsRequest)
	codes := make([]int16, len(req.Groups)) // non-zero: answered here
	sub := *req
	sub.Groups = make([]string, 0, len(req.Groups))
	for i, g := range req.Groups {
		codes[i] = kerr.GroupAuthorizationFailed.Code
		if s.allow(r, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, g) {
			codes[i] = s.groupCoordinatorCode(g)
		}
		if codes[i] == 0 {
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
		if codes[i] != 0 {
			// Kafka's error entry: no state, protocol or members.
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group = g
			rg.ErrorCode = codes[i]
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
