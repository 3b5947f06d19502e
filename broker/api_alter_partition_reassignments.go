package broker

// AlterPartitionReassignments v0-v1 (KIP-455; AllowReplicationFactorChange
// from v1, KIP-860).
//
// As Kafka's controller: ALTER on CLUSTER is required; a denial answers
// CLUSTER_AUTHORIZATION_FAILED at the top level and in every requested
// partition. Each partition gets its own result:
//   - UNKNOWN_TOPIC_OR_PARTITION for a topic or partition that does not
//     exist;
//   - null replicas cancel the partition's reassignment (the adding
//     replicas leave again), NO_REASSIGNMENT_IN_PROGRESS when there is
//     none;
//   - a target that is empty, names a broker twice or names a broker that
//     is not registered is INVALID_REPLICA_ASSIGNMENT;
//   - with AllowReplicationFactorChange false (v1), a target whose size is
//     not the partition's replication factor (its replicas before any
//     ongoing reassignment) is INVALID_REPLICATION_FACTOR;
//   - otherwise the reassignment starts (replacing an ongoing one) and the
//     answer is NONE once that is committed, not once it completes. A target
//     equal to the current replicas, or the same replicas in another order,
//     completes at once; a target that is already being reassigned to is a
//     no-op.
// A reassignment finishes when the adding replicas have joined the ISR
// (metadata.Store.AlterPartition); ListPartitionReassignments shows it
// until then.
//
// Differences from Apache Kafka: each partition is its own metadata
// command, so one request's partitions are not applied atomically (a
// failure of one never undoes another, as in Kafka, but a crash half-way
// applies only some). TimeoutMillis <= 0 waits as long as the metadata
// quorum's own bound. On a single node the only possible target is the one
// broker, so every valid request completes at once.

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/metadata"
)

func init() { register(45, 0, 1, handleAlterPartitionReassignments) }

func handleAlterPartitionReassignments(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.AlterPartitionAssignmentsRequest)
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	resp.AllowReplicationFactorChange = req.AllowReplicationFactorChange
	if !s.allowCluster(r, kmsg.ACLOperationAlter) {
		code := kerr.ClusterAuthorizationFailed.Code
		resp.ErrorCode, resp.ErrorMessage = code, kmsg.StringPtr(clusterDenied)
		for _, rt := range req.Topics {
			st := kmsg.NewAlterPartitionAssignmentsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
				sp.Partition, sp.ErrorCode, sp.ErrorMessage = rp.Partition, code, kmsg.StringPtr(clusterDenied)
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return respond(resp)
	}
	allowRF := req.Version < 1 || req.AllowReplicationFactorChange
	return r.cc.later(func() *reply {
		ctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
		defer cancel()
		for _, rt := range req.Topics {
			st := kmsg.NewAlterPartitionAssignmentsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
				sp.Partition = rp.Partition
				if err := s.reassign(ctx, rt.Topic, rp.Partition, rp.Replicas, allowRF); err != nil {
					sp.ErrorCode = errorCode(s.log, err)
					sp.ErrorMessage = kmsg.StringPtr(err.Error())
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return respond(resp)
	})
}

// reassign starts, replaces or (target nil) cancels one partition's
// reassignment. The checks here give Kafka's codes and messages before
// anything is proposed; the metadata command checks again against the
// state it applies to.
func (s *Server) reassign(ctx context.Context, topic string, partition int32, target []int32, allowRF bool) error {
	t, ok := s.meta.Topic(topic)
	if !ok {
		return fmt.Errorf("unable to find a topic named %s: %w", topic, kerr.UnknownTopicOrPartition)
	}
	p, ok := s.meta.Partition(t.ID, partition)
	if !ok {
		return fmt.Errorf("unable to find partition %s-%d: %w", topic, partition, kerr.UnknownTopicOrPartition)
	}
	tp := metadata.TopicPartition{TopicID: t.ID, Partition: partition}
	if target == nil {
		if p.AddingReplicas == nil && p.RemovingReplicas == nil {
			return fmt.Errorf("partition %s-%d: %w", topic, partition, kerr.NoReassignmentInProgress)
		}
		if err := s.meta.ReassignPartition(ctx, tp, nil); err != nil {
			return fmt.Errorf("cancel reassignment of %s-%d: %w", topic, partition, err)
		}
		s.log.Info("cancelled partition reassignment", "topic", topic, "partition", partition)
		return nil
	}
	if len(target) == 0 {
		return fmt.Errorf("the target replica list of %s-%d is empty: %w", topic, partition, kerr.InvalidReplicaAssignment)
	}
	for i, b := range target {
		if slices.Contains(target[:i], b) {
			return fmt.Errorf("the target replicas of %s-%d include broker %d more than once: %w", topic, partition, b, kerr.InvalidReplicaAssignment)
		}
		if _, ok := s.meta.Broker(b); !ok {
			return fmt.Errorf("the target replicas of %s-%d include broker %d, but no such broker is registered: %w", topic, partition, b, kerr.InvalidReplicaAssignment)
		}
	}
	if rf := len(originalReplicas(p)); !allowRF && len(target) != rf {
		return fmt.Errorf("the replication factor of %s-%d would change from %d to %d but allowReplicationFactorChange is false: %w",
			topic, partition, rf, len(target), kerr.InvalidReplicationFactor)
	}
	if err := s.meta.ReassignPartition(ctx, tp, target); err != nil {
		return fmt.Errorf("reassign %s-%d to %v: %w", topic, partition, target, err)
	}
	s.log.Info("partition reassignment submitted", "topic", topic, "partition", partition, "target", target)
	return nil
}

// originalReplicas are a partition's replicas before its ongoing
// reassignment, if any (the replicas without those being added).
func originalReplicas(p metadata.Partition) []int32 {
	out := make([]int32, 0, len(p.Replicas))
	for _, r := range p.Replicas {
		if !slices.Contains(p.AddingReplicas, r) {
			out = append(out, r)
		}
	}
	return out
}
