package broker

// OffsetCommit v0-v9: answered once the commit is durable in
// __consumer_offsets. Partitions of topics that do not exist get
// UNKNOWN_TOPIC_OR_PARTITION here, as in Kafka; the rest go to the group
// coordinator (internal/groups), whose differences from Kafka are listed
// there.
//
// Authorization as Kafka: READ on the group (else every partition gets
// GROUP_AUTHORIZATION_FAILED and nothing is committed), then READ on each
// topic (TOPIC_AUTHORIZATION_FAILED for its partitions, checked before the
// topic's existence).
//
// The partitions left (authorized, existing) go to the group's coordinator,
// the leader of its __consumer_offsets partition: on another broker each of
// them gets NOT_COORDINATOR, on this one COORDINATOR_LOAD_IN_PROGRESS while
// it loads that partition, and nothing is committed; the refused ones keep
// their own code. A request with no partition left never reaches the
// coordinator, as in Kafka. The empty group id is valid, as in Kafka.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(8, 0, 9, handleOffsetCommit) }

func handleOffsetCommit(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.OffsetCommitRequest)
	if !s.allow(r, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range req.Topics {
			resp.Topics = append(resp.Topics, offsetCommitRefused(rt.Topic, rt.Partitions, kerr.GroupAuthorizationFailed.Code))
		}
		return respond(resp)
	}
	canRead := s.batchAuthz(r, kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic)
	var refused []kmsg.OffsetCommitResponseTopic
	known := req.Topics[:0:0]
	for _, rt := range req.Topics {
		if !canRead.allow(rt.Topic) {
			refused = append(refused, offsetCommitRefused(rt.Topic, rt.Partitions, kerr.TopicAuthorizationFailed.Code))
			continue
		}
		ts, ok := s.parts.topic(rt.Topic)
		var bad kmsg.OffsetCommitResponseTopic
		good := rt
		good.Partitions = nil
		for _, rp := range rt.Partitions {
			if !ok || rp.Partition < 0 || int(rp.Partition) >= len(ts.parts) {
				bp := kmsg.NewOffsetCommitResponseTopicPartition()
				bp.Partition = rp.Partition
				bp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				bad.Partitions = append(bad.Partitions, bp)
				continue
			}
			good.Partitions = append(good.Partitions, rp)
		}
		if len(bad.Partitions) > 0 {
			bad.Topic = rt.Topic
			refused = append(refused, bad)
		}
		if len(good.Partitions) > 0 {
			known = append(known, good)
		}
	}
	if len(known) == 0 {
		// Nothing left for the coordinator: Kafka answers without it.
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		resp.Topics = refused
		return respond(resp)
	}
	if code := s.groupCoordinatorCode(req.Group); code != 0 {
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range known {
			resp.Topics = append(resp.Topics, offsetCommitRefused(rt.Topic, rt.Partitions, code))
		}
		resp.Topics = append(resp.Topics, refused...)
		return respond(resp)
	}
	if len(refused) == 0 {
		return r.cc.later(func() *reply { return &reply{resp: s.groups.OffsetCommit(ctx, req)} })
	}
	sub := *req
	sub.Topics = known
	return r.cc.later(func() *reply {
		resp := s.groups.OffsetCommit(ctx, &sub)
		resp.Topics = append(resp.Topics, refused...)
		return &reply{resp: resp}
	})
}

// offsetCommitRefused answers every partition of a topic with code.
func offsetCommitRefused(topic string, parts []kmsg.OffsetCommitRequestTopicPartition, code int16) kmsg.OffsetCommitResponseTopic {
	rt := kmsg.NewOffsetCommitResponseTopic()
	rt.Topic = topic
	for _, rp := range parts {
		p := kmsg.NewOffsetCommitResponseTopicPartition()
		p.Partition, p.ErrorCode = rp.Partition, code
		rt.Partitions = append(rt.Partitions, p)
	}
	return rt
}
