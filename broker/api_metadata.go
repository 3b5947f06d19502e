package broker

// Metadata v0-v12.
//
// Differences from Apache Kafka: a topic auto-created by this request is
// returned ready (its logs are opened before the answer) instead of with
// LEADER_NOT_AVAILABLE; clients handle both.
//
// Authorization as Kafka: DESCRIBE on each topic (list-all leaves out the
// others; named topics without it get TOPIC_AUTHORIZATION_FAILED whether
// they exist or not), CREATE on the cluster or the topic to auto-create
// one (else TOPIC_AUTHORIZATION_FAILED); authorized operations (v8+) when
// asked for, the cluster's (v8-v10) only with DESCRIBE on the cluster.

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
	resp.ControllerID = s.controllerID()
	live := s.liveBrokers(r)
	for _, b := range live {
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID, mb.Host, mb.Port = b.id, b.host, b.port
		if b.rack != "" {
			mb.Rack = kmsg.StringPtr(b.rack)
		}
		resp.Brokers = append(resp.Brokers, mb)
	}
	allowAuto := s.cfg.AutoCreateTopicsEnable && (req.Version < 4 || req.AllowAutoTopicCreation)

	// Authorization, as Kafka: DESCRIBE on each topic (a list-all request
	// silently leaves out the rest; a named topic without it is
	// TOPIC_AUTHORIZATION_FAILED whether it exists or not), CREATE on the
	// cluster or the topic to auto-create one.
	if req.Version >= 8 && req.Version <= 10 && req.IncludeClusterAuthorizedOperations {
		resp.AuthorizedOperations = 0
		if s.allowCluster(r, kmsg.ACLOperationDescribe) {
			resp.AuthorizedOperations = s.authorizedOps(r, kmsg.ACLResourceTypeCluster, clusterResourceName)
		}
	}
	topicOps := req.Version >= 8 && req.IncludeTopicAuthorizedOperations
	// described adds a topic the principal may describe (found or not),
	// with its authorized operations when asked for.
	described := func(mt kmsg.MetadataResponseTopic) {
		if topicOps && mt.Topic != nil {
			mt.AuthorizedOperations = s.authorizedOps(r, kmsg.ACLResourceTypeTopic, *mt.Topic)
		}
		resp.Topics = append(resp.Topics, mt)
	}

	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		canDescribe := s.batchAuthz(r, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic).quietly()
		for _, t := range s.meta.Topics() {
			if canDescribe.allow(t.Name) {
				described(s.metadataTopic(req.Version, t))
			}
		}
		return respond(resp)
	}
	canDescribe := s.batchAuthz(r, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic)
	canCreateTopic := s.batchAuthz(r, kmsg.ACLOperationCreate, kmsg.ACLResourceTypeTopic)
	clusterCreate := -1 // asked at most once, and only when something would be created
	mayCreate := func(name string) bool {
		if clusterCreate < 0 {
			clusterCreate = 0
			if s.allowClusterQuiet(r, kmsg.ACLOperationCreate) {
				clusterCreate = 1
			}
		}
		return clusterCreate == 1 || canCreateTopic.allow(name)
	}
	refused := func(name *string, id [16]byte, internal bool) {
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic, mt.TopicID, mt.IsInternal = name, id, internal
		mt.ErrorCode = kerr.TopicAuthorizationFailed.Code
		resp.Topics = append(resp.Topics, mt)
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
			if !canDescribe.allow(t.Name) {
				// Topic ids are not secret (they cannot be guessed): the
				// id is echoed, the name is not.
				refused(nil, rt.TopicID, false)
				continue
			}
			described(s.metadataTopic(req.Version, t))
			continue
		}
		name := ""
		if rt.Topic != nil {
			name = *rt.Topic
		}
		if !canDescribe.allow(name) {
			refused(kmsg.StringPtr(name), [16]byte{}, false)
			continue
		}
		t, ok = s.meta.Topic(name)
		if !ok {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = kmsg.StringPtr(name)
			switch {
			case allowAuto && !mayCreate(name):
				refused(kmsg.StringPtr(name), [16]byte{}, name == offsetsTopicName)
				continue
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
					described(s.metadataTopic(req.Version, t))
					continue
				}
			default:
				mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			}
			described(mt)
			continue
		}
		described(s.metadataTopic(req.Version, t))
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
		for _, id := range p.Replicas {
			if b, ok := s.meta.Broker(id); !ok || b.Fenced {
				mp.OfflineReplicas = append(mp.OfflineReplicas, id)
			}
		}
		if p.Leader < 0 {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}
