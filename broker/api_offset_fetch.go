package broker

// OffsetFetch v0-v9: v8+ fetches several groups at once. Without transactions RequireStable never blocks.
//
// Authorization as Kafka: DESCRIBE on each group (else
// GROUP_AUTHORIZATION_FAILED for it: the group error, or on every
// requested partition before v2, which has no group error), then DESCRIBE
// on each topic: asking for all topics silently leaves out the ones the
// principal may not describe; named ones get TOPIC_AUTHORIZATION_FAILED
// (offset -1) after the authorized ones. A group-level error from the
// coordinator is answered as it is.
//
// Each authorized group is then answered only by its coordinator, the
// leader of its __consumer_offsets partition: another broker answers
// NOT_COORDINATOR, this one COORDINATOR_LOAD_IN_PROGRESS while it loads the
// partition, as Kafka's GroupCoordinator does. The error goes where
// GROUP_AUTHORIZATION_FAILED goes: the group's entry (v8+), the request's
// error (v2-v7), or every requested partition (v0-v1). The empty group id
// is valid, as in Kafka.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(9, 0, 9, handleOffsetFetch) }

func handleOffsetFetch(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.OffsetFetchRequest)
	if req.Version >= 8 {
		return respond(s.offsetFetchGroups(ctx, r, req))
	}
	return respond(s.offsetFetchGroup(ctx, r, req))
}

// offsetFetchGroup is the single-group OffsetFetch (v0-v7).
func (s *Server) offsetFetchGroup(ctx context.Context, r *request, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	code := kerr.GroupAuthorizationFailed.Code
	if s.allow(r, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, req.Group) {
		code = s.groupCoordinatorCode(req.Group)
	}
	if code != 0 {
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.ErrorCode = code
		if req.Version < 2 {
			for _, t := range req.Topics {
				resp.Topics = append(resp.Topics, offsetFetchRefused(t.Topic, t.Partitions, code))
			}
		}
		return resp
	}
	if s.authz == nil {
		return s.groups.OffsetFetch(ctx, req)
	}
	canDescribe := s.batchAuthz(r, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic)
	sub := *req
	var refused []kmsg.OffsetFetchRequestTopic
	if req.Topics != nil {
		// Never nil: an explicit list whose topics are all refused must
		// not turn into "all topics".
		sub.Topics = make([]kmsg.OffsetFetchRequestTopic, 0, len(req.Topics))
		for _, t := range req.Topics {
			if canDescribe.allow(t.Topic) {
				sub.Topics = append(sub.Topics, t)
			} else {
				refused = append(refused, t)
			}
		}
	}
	resp := s.groups.OffsetFetch(ctx, &sub)
	if resp.ErrorCode != 0 {
		return resp
	}
	if req.Topics == nil {
		kept := resp.Topics[:0]
		for _, t := range resp.Topics {
			if canDescribe.allow(t.Topic) {
				kept = append(kept, t)
			}
		}
		resp.Topics = kept
		return resp
	}
	for _, t := range refused {
		resp.Topics = append(resp.Topics, offsetFetchRefused(t.Topic, t.Partitions, kerr.TopicAuthorizationFailed.Code))
	}
	return resp
}

// offsetFetchGroups is the batched OffsetFetch (v8+): the groups this
// broker may answer for go to the coordinator in one call and the answer
// is put back together in the request's order.
func (s *Server) offsetFetchGroups(ctx context.Context, r *request, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	type plan struct {
		code    int16 // GROUP_AUTHORIZATION_FAILED or not the coordinator
		all     bool
		refused []kmsg.OffsetFetchRequestGroupTopic
		idx     int // in sub.Groups
	}
	canDescribe := s.batchAuthz(r, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic)
	plans := make([]plan, len(req.Groups))
	sub := *req
	sub.Groups = nil
	for i, g := range req.Groups {
		p := &plans[i]
		if !s.allow(r, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, g.Group) {
			p.code = kerr.GroupAuthorizationFailed.Code
			continue
		}
		if p.code = s.groupCoordinatorCode(g.Group); p.code != 0 {
			continue
		}
		sg := g
		if g.Topics == nil {
			p.all = true
		} else {
			sg.Topics = make([]kmsg.OffsetFetchRequestGroupTopic, 0, len(g.Topics))
			for _, t := range g.Topics {
				if canDescribe.allow(t.Topic) {
					sg.Topics = append(sg.Topics, t)
				} else {
					p.refused = append(p.refused, t)
				}
			}
		}
		p.idx = len(sub.Groups)
		sub.Groups = append(sub.Groups, sg)
	}
	var out *kmsg.OffsetFetchResponse
	if len(sub.Groups) > 0 {
		out = s.groups.OffsetFetch(ctx, &sub)
	}
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	for i, g := range req.Groups {
		p := plans[i]
		if p.code != 0 {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group = g.Group
			rg.ErrorCode = p.code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		rg := out.Groups[p.idx]
		if rg.ErrorCode == 0 && p.all {
			kept := rg.Topics[:0]
			for _, t := range rg.Topics {
				if canDescribe.allow(t.Topic) {
					kept = append(kept, t)
				}
			}
			rg.Topics = kept
		} else if rg.ErrorCode == 0 {
			for _, t := range p.refused {
				rt := kmsg.NewOffsetFetchResponseGroupTopic()
				rt.Topic = t.Topic
				for _, part := range t.Partitions {
					rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					rp.Partition, rp.Offset, rp.Metadata = part, -1, kmsg.StringPtr("")
					rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
					rt.Partitions = append(rt.Partitions, rp)
				}
				rg.Topics = append(rg.Topics, rt)
			}
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

// offsetFetchRefused answers every partition of a topic with code and no
// committed offset.
func offsetFetchRefused(topic string, parts []int32, code int16) kmsg.OffsetFetchResponseTopic {
	rt := kmsg.NewOffsetFetchResponseTopic()
	rt.Topic = topic
	for _, part := range parts {
		rp := kmsg.NewOffsetFetchResponseTopicPartition()
		rp.Partition, rp.Offset, rp.Metadata, rp.ErrorCode = part, -1, kmsg.StringPtr(""), code
		rt.Partitions = append(rt.Partitions, rp)
	}
	return rt
}
