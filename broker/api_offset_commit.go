package broker

// OffsetCommit v0-v9: answered once the commit is durable in
// __consumer_offsets. Partitions of topics that do not exist get
// UNKNOWN_TOPIC_OR_PARTITION here, as in Kafka; the rest go to the group
// coordinator (internal/groups), whose differences from Kafka are listed
// there.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(8, 0, 9, handleOffsetCommit) }

func handleOffsetCommit(s *Server, ctx context.Context, r *request) *reply {
	ctx = r.groupCtx(ctx)
	req := r.msg.(*kmsg.OffsetCommitRequest)
	var unknown []kmsg.OffsetCommitResponseTopic
	known := req.Topics[:0:0]
	for _, rt := range req.Topics {
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
			unknown = append(unknown, bad)
		}
		if len(good.Partitions) > 0 {
			known = append(known, good)
		}
	}
	if len(unknown) == 0 {
		return r.cc.later(func() *reply { return &reply{resp: s.groups.OffsetCommit(ctx, req)} })
	}
	sub := *req
	sub.Topics = known
	return r.cc.later(func() *reply {
		var resp *kmsg.OffsetCommitResponse
		if len(known) > 0 {
			resp = s.groups.OffsetCommit(ctx, &sub)
		} else {
			resp = req.ResponseKind().(*kmsg.OffsetCommitResponse)
		}
		resp.Topics = append(resp.Topics, unknown...)
		return &reply{resp: resp}
	})
}
