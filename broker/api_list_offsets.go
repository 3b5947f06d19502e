package broker

// ListOffsets v1-v9.
//
// -1 latest (the high watermark; without transactions read_committed sees
// the same), -2 earliest (across both tiers), -3 max timestamp (v7+), -4
// earliest local (v8+), -5 latest tiered (v9+, -1 when nothing is tiered),
// and lookups by timestamp through the time index. Differences from Apache Kafka: v0 (old-style offset lists) is
// not served; Kafka 4 dropped it too.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(2, 1, 9, handleListOffsets) }

func handleListOffsets(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			if code := s.listOffset(req.Version, rt.Topic, rp, &sp); code != 0 {
				sp.ErrorCode = code
				sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return respond(resp)
}

func (s *Server) listOffset(version int16, topic string, rp kmsg.ListOffsetsRequestTopicPartition, sp *kmsg.ListOffsetsResponseTopicPartition) int16 {
	_, p, err := s.parts.get(topic, rp.Partition)
	if err != nil {
		return errorCode(s.log, err)
	}
	if version >= 4 && rp.CurrentLeaderEpoch != -1 {
		if rp.CurrentLeaderEpoch < p.leaderEpoch {
			return kerr.FencedLeaderEpoch.Code
		} else if rp.CurrentLeaderEpoch > p.leaderEpoch {
			return kerr.UnknownLeaderEpoch.Code
		}
	}
	l := p.log
	switch ts := rp.Timestamp; {
	case ts == -1:
		sp.Offset = l.HighWatermark()
		sp.LeaderEpoch = p.leaderEpoch
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
		if off >= 0 && off < l.HighWatermark() {
			sp.Offset, sp.Timestamp, sp.LeaderEpoch = off, mts, epoch
		}
	case ts >= 0:
		off, fts, epoch, ok := l.OffsetForTimestamp(ts)
		if ok && off < l.HighWatermark() {
			sp.Offset, sp.Timestamp, sp.LeaderEpoch = off, fts, epoch
		}
	default:
		return kerr.UnsupportedVersion.Code
	}
	return 0
}
