package broker

// Metadata v0-v12.
//
// Differences from Apache Kafka: a topic auto-created by this request is
// returned ready (its logs are opened before the answer) instead of with
// LEADER_NOT_AVAILABLE; clients handle both. Authorized operations are
// not computed yet (no ACLs): they are reported as not requested.

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/metadata"
)

func init() { register(3, 0, 12, handleMetadata) }

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func handleMetadata(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	resp.ClusterID = kmsg.StringPtr(s.meta.ClusterID())
	resp.ControllerID = s.cfg.NodeID
	for _, b := range s.meta.Brokers() {
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID, mb.Host, mb.Port = b.ID, b.Host, b.Port
		if b.Rack != "" {
			mb.Rack = kmsg.StringPtr(b.Rack)
		}
		resp.Brokers = append(resp.Brokers, mb)
	}
	allowAuto := s.cfg.AutoCreateTopicsEnable && (req.Version < 4 || req.AllowAutoTopicCreation)

	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		for _, t := range s.meta.Topics() {
			resp.Topics = append(resp.Topics, s.metadataTopic(req.Version, t))
		}
		return respond(resp)
	}
	for _, rt := range req.Topics {
		var (
			t  metadata.Topic
			ok bool
		)
		if rt.Topic == nil && rt.TopicID != ([16]byte{}) {
			t, ok = s.meta.TopicByID(uuid.UUID(rt.TopicID))
			if !ok {
				mt := kmsg.NewMetadataResponseTopic()
				mt.TopicID = rt.TopicID
				mt.ErrorCode = kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, mt)
				continue
			}
			resp.Topics = append(resp.Topics, s.metadataTopic(req.Version, t))
			continue
		}
		name := ""
		if rt.Topic != nil {
			name = *rt.Topic
		}
		t, ok = s.meta.Topic(name)
		if !ok {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = kmsg.StringPtr(name)
			switch {
			case metadata.ValidTopicName(name) != nil:
				mt.ErrorCode = kerr.InvalidTopicException.Code
			case allowAuto:
				if err := s.autoCreateTopic(ctx, name); err != nil {
					mt.ErrorCode = errorCode(s.log, err)
					if mt.ErrorCode == kerr.InvalidPartitions.Code || mt.ErrorCode == kerr.InvalidReplicationFactor.Code {
						mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
					}
				} else if t, ok = s.meta.Topic(name); !ok {
					mt.ErrorCode = kerr.LeaderNotAvailable.Code
				} else {
					resp.Topics = append(resp.Topics, s.metadataTopic(req.Version, t))
					continue
				}
			default:
				mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			}
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		resp.Topics = append(resp.Topics, s.metadataTopic(req.Version, t))
	}
	return respond(resp)
}

func (s *Server) metadataTopic(version int16, t metadata.Topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = kmsg.StringPtr(t.Name)
	mt.TopicID = t.ID
	mt.IsInternal = t.Internal
	for _, p := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.Index
		mp.Leader = p.Leader
		mp.LeaderEpoch = p.LeaderEpoch
		mp.Replicas = append([]int32(nil), p.Replicas...)
		mp.ISR = append([]int32(nil), p.ISR...)
		mp.OfflineReplicas = []int32{}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}
