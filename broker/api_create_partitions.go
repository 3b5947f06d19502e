package broker

// CreatePartitions v0-v3.
//
// The count can only grow; a manual assignment must name known brokers.
// Existing partitions and their data are untouched. ALTER on the topic is
// required (TOPIC_AUTHORIZATION_FAILED, whether the topic exists or not),
// as in Kafka.

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/metadata"
)

func init() { register(37, 0, 3, handleCreatePartitions) }

func handleCreatePartitions(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	canAlter := s.batchAuthz(r, kmsg.ACLOperationAlter, kmsg.ACLResourceTypeTopic)
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		err := func() error {
			if seen[rt.Topic] > 1 {
				return fmt.Errorf("topic %q named more than once: %w", rt.Topic, kerr.InvalidRequest)
			}
			if !canAlter.allow(rt.Topic) {
				return errTopicAuthz
			}
			t, ok := s.meta.Topic(rt.Topic)
			if !ok {
				return kerr.UnknownTopicOrPartition
			}
			cur := int32(len(t.Partitions))
			if rt.Count <= cur {
				return fmt.Errorf("%w: topic %s has %d partitions, requested %d: the count can only grow", errInvalidPartitions, rt.Topic, cur, rt.Count)
			}
			if rt.Count-cur > maxPartitionsPerRequest {
				return fmt.Errorf("%w: at most %d new partitions per request", errInvalidPartitions, maxPartitionsPerRequest)
			}
			if rt.Assignment != nil && int32(len(rt.Assignment)) != rt.Count-cur {
				return fmt.Errorf("assignment names %d partitions, %d are being added: %w", len(rt.Assignment), rt.Count-cur, kerr.InvalidReplicaAssignment)
			}
			rf := len(t.Partitions[0].Replicas)
			live := map[int32]bool{}
			for _, id := range s.liveBrokerIDs() {
				live[id] = true
			}
			for _, a := range rt.Assignment {
				if len(a.Replicas) != rf {
					return fmt.Errorf("assignment has %d replicas, the topic's replication factor is %d: %w", len(a.Replicas), rf, kerr.InvalidReplicaAssignment)
				}
				dup := map[int32]bool{}
				for _, b := range a.Replicas {
					if !live[b] || dup[b] {
						return fmt.Errorf("broker %d in assignment is unknown, not live or repeated: %w", b, kerr.InvalidReplicaAssignment)
					}
					dup[b] = true
				}
			}
			if req.ValidateOnly {
				return nil
			}
			var add []metadata.Partition
			if rt.Assignment != nil {
				for i, a := range rt.Assignment {
					rs := slices.Clone(a.Replicas)
					add = append(add, metadata.Partition{Index: cur + int32(i), Replicas: rs, ISR: slices.Clone(rs), Leader: rs[0]})
				}
			} else {
				var err error
				if add, err = s.placePartitions(cur, rt.Count-cur, int16(rf)); err != nil {
					return err
				}
			}
			if err := s.meta.CreatePartitions(ctx, t.ID, add); err != nil {
				return err
			}
			s.log.Info("added partitions", "topic", rt.Topic, "from", cur, "to", rt.Count)
			return s.parts.reconcile()
		}()
		if err != nil {
			st.ErrorCode = errorCode(s.log, err)
			st.ErrorMessage = kmsg.StringPtr(err.Error())
		}
		resp.Topics = append(resp.Topics, st)
	}
	return respond(resp)
}
