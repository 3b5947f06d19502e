package broker

// DeleteGroups v0-v2: NON_EMPTY_GROUP for groups with members; tombstones go to __consumer_offsets.
// DELETE on each group is required (GROUP_AUTHORIZATION_FAILED for the
// group otherwise), as in Kafka. Groups are answered in the request's order.
//
// Each authorized group is deleted only by its coordinator, the leader of
// its __consumer_offsets partition: another broker answers NOT_COORDINATOR
// for that group, this one COORDINATOR_LOAD_IN_PROGRESS while it loads the
// partition, as Kafka's GroupCoordinator does. The empty group id is
// valid, as in Kafka.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(42, 0, 2, handleDeleteGroups) }

func handleDeleteGroups(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.DeleteGroupsRequest)
	codes := make([]int16, len(req.Groups)) // non-zero: answered here
	sub := *req
	sub.Groups = make([]string, 0, len(req.Groups))
	for i, g := range req.Groups {
		codes[i] = kerr.GroupAuthorizationFailed.Code
		if s.allow(r, kmsg.ACLOperationDelete, kmsg.ACLResourceTypeGroup, g) {
			codes[i] = s.groupCoordinatorCode(g)
		}
		if codes[i] == 0 {
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
		if codes[i] != 0 {
			rg := kmsg.NewDeleteGroupsResponseGroup()
			rg.Group, rg.ErrorCode = g, codes[i]
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		resp.Groups = append(resp.Groups, deleted[next])
		next++
	}
	return respond(resp)
}
