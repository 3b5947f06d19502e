package broker

// CreateTopics v0-v7.
//
// Validation as Kafka: legal and non-colliding names, partitions and
// replication factor (or a manual assignment, not both), every config
// known and in range; validate-only checks everything and changes
// nothing. Topics are committed through the metadata quorum and their logs
// are open before the answer. v5+ answers with the resulting configs and
// v7 with the topic id.
//
// Authorization as Kafka: CREATE on the cluster, or on each topic
// (TOPIC_AUTHORIZATION_FAILED, checked after the duplicate check and
// before anything else); the resulting configs, partition count and
// replication factor only with DESCRIBE_CONFIGS on the topic (else
// TopicConfigErrorCode TOPIC_AUTHORIZATION_FAILED).

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(19, 0, 7, handleCreateTopics) }

func handleCreateTopics(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	clusterCreate := s.allowClusterQuiet(r, kmsg.ACLOperationCreate)
	canCreate := s.batchAuthz(r, kmsg.ACLOperationCreate, kmsg.ACLResourceTypeTopic)
	canDescribeConfigs := s.batchAuthz(r, kmsg.ACLOperationDescribeConfigs, kmsg.ACLResourceTypeTopic).quietly()
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		fail := func(err error) {
			st.ErrorCode = errorCode(s.log, err)
			if req.Version >= 1 {
				st.ErrorMessage = kmsg.StringPtr(err.Error())
			}
		}
		spec := createTopicSpec{name: rt.Topic, partitions: rt.NumPartitions, replication: rt.ReplicationFactor, configs: map[string]string{}, validateOnly: req.ValidateOnly}
		var err error
		switch {
		case seen[rt.Topic] > 1:
			err = fmt.Errorf("topic %q named more than once: %w", rt.Topic, kerr.InvalidRequest)
		case !clusterCreate && !canCreate.allow(rt.Topic):
			st.ErrorCode = kerr.TopicAuthorizationFailed.Code
			if req.Version >= 1 {
				st.ErrorMessage = kmsg.StringPtr(authzMessage(st.ErrorCode))
			}
			resp.Topics = append(resp.Topics, st)
			continue
		case len(rt.ReplicaAssignment) > 0 && (rt.NumPartitions != -1 || rt.ReplicationFactor != -1):
			err = fmt.Errorf("both replica assignment and partitions/replication factor given: %w", kerr.InvalidRequest)
		case len(rt.ReplicaAssignment) > 0:
			err = s.checkAssignment(rt.ReplicaAssignment)
			spec.partitions, spec.replication = int32(len(rt.ReplicaAssignment)), int16(len(rt.ReplicaAssignment[0].Replicas))
			for _, a := range rt.ReplicaAssignment {
				spec.assignment = append(spec.assignment, slices.Clone(a.Replicas))
			}
		}
		for _, c := range rt.Configs {
			if c.Value == nil {
				continue // null means the default
			}
			spec.configs[c.Name] = *c.Value
		}
		if err == nil {
			var t = spec
			mt, cerr := s.createTopic(ctx, t)
			err = cerr
			if err == nil {
				st.TopicID = mt.ID
				st.NumPartitions = int32(len(mt.Partitions))
				st.ReplicationFactor = int16(len(mt.Partitions[0].Replicas))
				if req.Version >= 5 && !canDescribeConfigs.allow(rt.Topic) {
					st.NumPartitions, st.ReplicationFactor = -1, -1
					st.ConfigErrorCode = kerr.TopicAuthorizationFailed.Code
				} else if req.Version >= 5 {
					for _, dc := range s.describeTopicConfigs(mt.Configs, nil, false) {
						c := kmsg.NewCreateTopicsResponseTopicConfig()
						c.Name, c.Value, c.ReadOnly, c.Source, c.IsSensitive = dc.Name, dc.Value, dc.ReadOnly, int8(dc.Source), dc.IsSensitive
						st.Configs = append(st.Configs, c)
					}
				}
			}
		}
		if err != nil {
			fail(err)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return respond(resp)
}

// checkAssignment validates a manual replica assignment: every partition
// in order, the same replication factor, known brokers, no duplicates.
func (s *Server) checkAssignment(as []kmsg.CreateTopicsRequestTopicReplicaAssignment) error {
	known := map[int32]bool{}
	for _, b := range s.meta.Brokers() {
		known[b.ID] = true
	}
	rf := len(as[0].Replicas)
	for i, a := range as {
		if a.Partition != int32(i) {
			return fmt.Errorf("replica assignment partitions must be 0..%d in order: %w", len(as)-1, kerr.InvalidReplicaAssignment)
		}
		if len(a.Replicas) != rf || rf == 0 {
			return fmt.Errorf("all partitions need the same non-zero replication factor: %w", kerr.InvalidReplicaAssignment)
		}
		dup := map[int32]bool{}
		for _, b := range a.Replicas {
			if !known[b] || dup[b] {
				return fmt.Errorf("replica %d unknown or repeated: %w", b, kerr.InvalidReplicaAssignment)
			}
			dup[b] = true
		}
	}
	return nil
}
