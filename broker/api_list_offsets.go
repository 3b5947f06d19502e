package broker

// ListOffsets v1-v9.
//
// -1 latest (the high watermark; without transactions read_committed sees
// the same), -2 earliest (across both tiers), -3 max timestamp (v7+), -4
// earliest local (v8+), -5 latest tiered (v9+, -1 when nothing is tiered),
// and lookups by timestamp through the time index. DESCRIBE on the topic
// is required (TOPIC_AUTHORIZATION_FAILED per partition otherwise), as in
// Kafka. Differences from Apache Kafka: v0 (old-style offset lists) is not
// served; Kafka 4 dropped it too.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(2, 1, 9, handleListOffsets) }

func handleListOffsets(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.ListOffsetsRequest)
	// DESCRIBE on each topic, decided here once: the lookup itself may
	// run on another goroutine.
	canDescribe := s.batchAuthz(r, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic)
	allowed := make(map[string]bool, len(req.Topics))
	for _, rt := range req.Topics {
		allowed[rt.Topic] = canDescribe.allow(rt.Topic)
	}
	if s.listOffsetsNeedsRemote(req, allowed) {
		// Timestamp lookups into the remote tier wait on the object store.
		return r.cc.later(func() *reply { return &reply{resp: s.listOffsets(ctx, req, allowed)} })
	}
	return respond(s.listOffsets(ctx, req, allowed))
}

func (s *Server) listOffsetsNeedsRemote(req *kmsg.ListOffsetsRequest, allowed map[string]bool) bool {
	for _, rt := range req.Topics {
		if !allowed[rt.Topic] {
			continue
		}
		for _, rp := range rt.Partitions {
			if rp.Timestamp >= 0 || rp.Timestamp == -3 {
				if _, p, err := s.parts.get(rt.Topic, rp.Partition); err == nil && hasTiered(p) {
					return true
				}
			}
		}
	}
	return false
}

// listOffsets answers every partition; those of topics not in allowed get
// TOPIC_AUTHORIZATION_FAILED, whether the topic exists or not.
func (s *Server) listOffsets(ctx context.Context, req *kmsg.ListOffsetsRequest, allowed map[string]bool) *kmsg.ListOffsetsResponse {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			if !allowed[rt.Topic] {
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			} else if code := s.listOffset(ctx, req.Version, req.IsolationLevel == 1, rt.Topic, rp, &sp); code != 0 {
				sp.ErrorCode = code
				sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func (s *Server) listOffset(ctx context.Context, version int16, readCommitted bool, topic string, rp kmsg.ListOffsetsRequestTopicPartition, sp *kmsg.ListOffsetsResponseTopicPartition) int16 {
	topicSt, p, err := s.parts.leader(topic, rp.Partition)
	if err != nil {
		return errorCode(s.log, err)
	}
	if version >= 4 && rp.CurrentLeaderEpoch != -1 {
		if rp.CurrentLeaderEpoch < p.epoch() {
			return kerr.FencedLeaderEpoch.Code
		} else if rp.CurrentLeaderEpoch > p.epoch() {
			return kerr.UnknownLeaderEpoch.Code
		}
	}
	l := p.log
	// read_committed sees the log up to the last stable offset (the first
	// offset of a transaction not yet decided), read_uncommitted up to the
	// high watermark, as in Kafka.
	end := l.HighWatermark()
	if readCommitted {
		end = l.LastStableOffset()
	}
	switch ts := rp.Timestamp; {
	case ts == -1:
		sp.Offset = end
		sp.LeaderEpoch = p.epoch()
	case ts == -2:
		sp.Offset = l.LogStartOffset()
		sp.LeaderEpoch = l.EpochForOffset(sp.Offset)
	case ts == -4 && version >= 8:
		sp.Offset = l.LocalLogStartOffset()
		sp.LeaderEpoch = l.EpochForOffset(sp.Offset)
	case ts == -5 && version >= 9:
		// The highest offset in the remote tier, -1 when nothing is tiered.
		if end := l.RemoteEnd(); end > l.LogStartOffset() {
			sp.Offset = end - 1
			sp.LeaderEpoch = l.EpochForOffset(sp.Offset)
		}
	case ts == -3 && version >= 7:
		off, mts, epoch := l.MaxTimestamp()
		if off >= 0 && off < end {
			sp.Offset, sp.Timestamp, sp.LeaderEpoch = off, mts, epoch
		}
		if hasTiered(p) {
			roff, rts, ok, err := s.remoteMaxTimestamp(ctx, topicSt, p)
			if err != nil {
				s.log.Error("remote max timestamp lookup failed", "topic", topic, "partition", rp.Partition, "err", err)
				return kerr.KafkaStorageError.Code
			}
			if ok && (sp.Offset < 0 || rts >= sp.Timestamp) {
				sp.Offset, sp.Timestamp, sp.LeaderEpoch = roff, rts, l.EpochForOffset(roff)
			}
		}
	case ts >= 0:
		if hasTiered(p) {
			roff, rts, ok, err := s.remoteOffsetForTimestamp(ctx, topicSt, p, ts)
			if err != nil {
				s.log.Error("remote timestamp lookup failed", "topic", topic, "partition", rp.Partition, "err", err)
				return kerr.KafkaStorageError.Code
			}
			if ok {
				sp.Offset, sp.Timestamp, sp.LeaderEpoch = roff, rts, l.EpochForOffset(roff)
				break
			}
		}
		off, fts, epoch, ok := l.OffsetForTimestamp(ts)
		if ok && off < end {
			sp.Offset, sp.Timestamp, sp.LeaderEpoch = off, fts, epoch
		}
	default:
		return kerr.UnsupportedVersion.Code
	}
	return 0
}
