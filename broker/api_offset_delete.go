package broker

// OffsetDelete v0-v0: GROUP_SUBSCRIBED_TO_TOPIC while members subscribe to the topic.
//
// As in Kafka: DELETE on the group is required (else
// GROUP_AUTHORIZATION_FAILED for the request), then READ on each topic
// (TOPIC_AUTHORIZATION_FAILED for its partitions, before its existence is
// looked at); partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION.
// A group-level error from the coordinator is answered as it is.
//
// Only the group's coordinator, the leader of its __consumer_offsets
// partition, answers: another broker answers NOT_COORDINATOR, this one
// COORDINATOR_LOAD_IN_PROGRESS while it loads the partition, as the
// request's error with no partitions (Kafka asks the coordinator even when
// every topic was refused, so this holds then too). An empty group id is
// INVALID_GROUP_ID first.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(47, 0, 0, handleOffsetDelete) }

func handleOffsetDelete(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.OffsetDeleteRequest)
	if !s.allow(r, kmsg.ACLOperationDelete, kmsg.ACLResourceTypeGroup, req.Group) {
		resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		resp.Topics = []kmsg.OffsetDeleteResponseTopic{}
		return respond(resp)
	}
	if req.Group != "" { // the coordinator answers INVALID_GROUP_ID
		if code := s.groupCoordinatorCode(req.Group); code != 0 {
			resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
			resp.ErrorCode = code
			resp.Topics = []kmsg.OffsetDeleteResponseTopic{}
			return respond(resp)
		}
	}
	canRead := s.batchAuthz(r, kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic)
	sub := *req
	sub.Topics = make([]kmsg.OffsetDeleteRequestTopic, 0, len(req.Topics))
	var refused []kmsg.OffsetDeleteResponseTopic
	for _, rt := range req.Topics {
		code := int16(0)
		ts, ok := s.parts.topic(rt.Topic)
		switch {
		case !canRead.allow(rt.Topic):
			code = kerr.TopicAuthorizationFailed.Code
		case !ok:
			code = kerr.UnknownTopicOrPartition.Code
		}
		bad := kmsg.NewOffsetDeleteResponseTopic()
		bad.Topic = rt.Topic
		good := rt
		good.Partitions = nil
		for _, rp := range rt.Partitions {
			c := code
			if c == 0 && (rp.Partition < 0 || int(rp.Partition) >= len(ts.parts)) {
				c = kerr.UnknownTopicOrPartition.Code
			}
			if c == 0 {
				good.Partitions = append(good.Partitions, rp)
				continue
			}
			bp := kmsg.NewOffsetDeleteResponseTopicPartition()
			bp.Partition, bp.ErrorCode = rp.Partition, c
			bad.Partitions = append(bad.Partitions, bp)
		}
		if len(bad.Partitions) > 0 {
			refused = append(refused, bad)
		}
		if len(good.Partitions) > 0 {
			sub.Topics = append(sub.Topics, good)
		}
	}
	resp := s.groups.OffsetDelete(ctx, &sub)
	if resp.ErrorCode == 0 {
		resp.Topics = append(resp.Topics, refused...)
	}
	return respond(resp)
}
