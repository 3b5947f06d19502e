package broker

// ListGroups v0-v5: with the states (v4+) and types (v5+) filters.
// DESCRIBE on the cluster lists every group; otherwise only the groups the
// principal may DESCRIBE are listed (no error), as in Kafka.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(16, 0, 5, handleListGroups) }

func handleListGroups(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.ListGroupsRequest)
	resp := s.groups.ListGroups(ctx, req)
	if !s.allowClusterQuiet(r, kmsg.ACLOperationDescribe) {
		kept := resp.Groups[:0]
		for _, g := range resp.Groups {
			if s.allowQuiet(r, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, g.Group) {
				kept = append(kept, g)
			}
		}
		resp.Groups = kept
	}
	return respond(resp)
}
