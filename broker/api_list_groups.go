package broker

// ListGroups v0-v5: with the states (v4+) and types (v5+) filters.
// DESCRIBE on the cluster lists every group; otherwise only the groups the
// principal may DESCRIBE are listed (no error), as in Kafka.
//
// Only the groups this broker coordinates are listed (those of the
// __consumer_offsets partitions it leads); the client asks every broker.
// While this broker still loads one of those partitions the answer is
// COORDINATOR_LOAD_IN_PROGRESS with no groups, as Kafka's group
// coordinator answers, so a client never takes a partial list for the
// whole.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(16, 0, 5, handleListGroups) }

func handleListGroups(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.ListGroupsRequest)
	if s.groupsLoading() {
		resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		resp.Groups = []kmsg.ListGroupsResponseGroup{}
		return respond(resp)
	}
	resp := s.groups.ListGroups(ctx, req)
	allowAll := s.allowClusterQuiet(r, kmsg.ACLOperationDescribe)
	kept := resp.Groups[:0]
	for _, g := range resp.Groups {
		// A partition just lost may not be unloaded yet: its groups
		// belong to the new coordinator's list.
		if s.groupCoordinatorCode(g.Group) != 0 {
			continue
		}
		if allowAll || s.allowQuiet(r, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, g.Group) {
			kept = append(kept, g)
		}
	}
	resp.Groups = kept
	return respond(resp)
}

// groupsLoading reports whether this broker leads a __consumer_offsets
// partition whose groups are not loaded yet.
func (s *Server) groupsLoading() bool {
	t, ok := s.parts.topic(offsetsTopicName)
	if !ok {
		return false
	}
	s.gl.mu.Lock()
	defer s.gl.mu.Unlock()
	for i, p := range t.parts {
		if p == nil || !p.isLeader(s.cfg.NodeID) {
			continue
		}
		if st := s.gl.state[int32(i)]; st == nil || !st.loaded {
			return true
		}
	}
	return false
}
