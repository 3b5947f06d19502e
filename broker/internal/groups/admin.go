package groups

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeGroups handles DescribeGroups v0-v5 (and v6's GROUP_ID_NOT_FOUND).
// Unknown groups are reported as Dead, as Kafka does. Member metadata and
// assignments are only shown for Stable groups. AuthorizedOperations is
// left at "not computed"; ACLs are the broker's business.
func (c *Coordinator) DescribeGroups(ctx context.Context, req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	ids := slices.Clone(req.Groups)
	groups := await(c, ctx, func(reply func([]kmsg.DescribeGroupsResponseGroup)) {
		out := make([]kmsg.DescribeGroupsResponseGroup, len(ids))
		for i, id := range ids {
			out[i] = c.describe(id, req.Version)
		}
		reply(out)
	}, func() []kmsg.DescribeGroupsResponseGroup { return nil }, func() []kmsg.DescribeGroupsResponseGroup { return nil })
	if groups == nil && len(ids) > 0 {
		code := kerr.NotCoordinator.Code
		if ctx.Err() != nil {
			code = kerr.CoordinatorNotAvailable.Code
		}
		for _, id := range ids {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group, rg.ErrorCode = id, code
			groups = append(groups, rg)
		}
	}
	resp.Groups = groups
	return resp
}

func (c *Coordinator) describe(id string, version int16) kmsg.DescribeGroupsResponseGroup {
	rg := kmsg.NewDescribeGroupsResponseGroup()
	rg.Group = id
	rg.Members = []kmsg.DescribeGroupsResponseGroupMember{}
	g := c.groups[id]
	if g == nil {
		rg.State = stateDead.String()
		if version >= 6 {
			rg.ErrorCode = kerr.GroupIDNotFound.Code
		}
		return rg
	}
	rg.State = g.state.String()
	rg.ProtocolType = g.protocolType
	stable := g.state == stateStable && g.hasProtocol
	if stable {
		rg.Protocol = g.protocol
	}
	for _, m := range g.order {
		rm := kmsg.NewDescribeGroupsResponseGroupMember()
		rm.MemberID = m.id
		rm.InstanceID = m.instanceID
		rm.ClientID = m.clientID
		rm.ClientHost = m.clientHost
		rm.ProtocolMetadata, rm.MemberAssignment = []byte{}, []byte{}
		if stable {
			if md := m.metadata(g.protocol); md != nil {
				rm.ProtocolMetadata = md
			}
			if m.assignment != nil {
				rm.MemberAssignment = m.assignment
			}
		}
		rg.Members = append(rg.Members, rm)
	}
	return rg
}

// ListGroups handles ListGroups v0-v5: every group this coordinator knows,
// filtered by state (v4+) and type (v5+; all groups here are "classic"),
// both case-insensitively as Kafka does.
func (c *Coordinator) ListGroups(ctx context.Context, req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	var states, types []string
	if req.Version >= 4 {
		states = lower(req.StatesFilter)
	}
	if req.Version >= 5 {
		types = lower(req.TypesFilter)
	}
	type result struct {
		err    int16
		groups []kmsg.ListGroupsResponseGroup
	}
	r := await(c, ctx, func(reply func(result)) {
		var out []kmsg.ListGroupsResponseGroup
		if len(types) > 0 && !slices.Contains(types, classicGroupType) {
			reply(result{})
			return
		}
		for _, g := range c.groups {
			if g.state == stateDead {
				continue
			}
			if len(states) > 0 && !slices.Contains(states, strings.ToLower(g.state.String())) {
				continue
			}
			lg := kmsg.NewListGroupsResponseGroup()
			lg.Group = g.id
			lg.ProtocolType = g.protocolType
			lg.GroupState = g.state.String()
			lg.GroupType = classicGroupType
			out = append(out, lg)
		}
		reply(result{groups: out})
	}, func() result { return result{err: kerr.CoordinatorNotAvailable.Code} },
		func() result { return result{err: kerr.NotCoordinator.Code} })
	resp.ErrorCode = r.err
	listed := r.groups
	slices.SortFunc(listed, func(a, b kmsg.ListGroupsResponseGroup) int { return strings.Compare(a.Group, b.Group) })
	resp.Groups = listed
	if resp.Groups == nil {
		resp.Groups = []kmsg.ListGroupsResponseGroup{}
	}
	return resp
}

func lower(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.ToLower(s)
	}
	return out
}
