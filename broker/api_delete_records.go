package broker

// DeleteRecords v0-v2.
//
// Raises the log start offset (checkpointed, so it survives restarts) and
// deletes whole segments below it. Offset -1 means the high watermark.
// DELETE on the topic is required (TOPIC_AUTHORIZATION_FAILED per
// partition, whether the topic exists or not), as in Kafka.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(21, 0, 2, handleDeleteRecords) }

func handleDeleteRecords(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.DeleteRecordsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	canDelete := s.batchAuthz(r, kmsg.ACLOperationDelete, kmsg.ACLResourceTypeTopic)
	for _, rt := range req.Topics {
		allowed := canDelete.allow(rt.Topic)
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			if !allowed {
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			ts, p, err := s.parts.get(rt.Topic, rp.Partition)
			switch {
			case err != nil:
				sp.ErrorCode = errorCode(s.log, err)
			case ts.internal:
				sp.ErrorCode = kerr.InvalidTopicException.Code
			default:
				off := rp.Offset
				hw := p.log.HighWatermark()
				if off == -1 {
					off = hw
				}
				if off < 0 || off > hw {
					sp.ErrorCode = kerr.OffsetOutOfRange.Code
					break
				}
				low, err := p.log.DeleteRecordsBefore(off)
				if err != nil {
					sp.ErrorCode = errorCode(s.log, err)
					break
				}
				if err := s.tier.DeleteRecordsBefore(ctx, ts.id, p.index, low); err != nil {
					// The log start already moved: the records are gone for
					// clients; retention retries the remote cleanup.
					s.log.Warn("deleting remote segments below the new log start failed", "topic", rt.Topic, "partition", rp.Partition, "err", err)
				}
				sp.LowWatermark = low
				s.log.Info("deleted records", "topic", rt.Topic, "partition", rp.Partition, "log_start_offset", low)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return respond(resp)
}
