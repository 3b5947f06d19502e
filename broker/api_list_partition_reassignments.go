package broker

// ListPartitionReassignments v0 (KIP-455).
//
// As Kafka's controller: DESCRIBE on CLUSTER is required (else
// CLUSTER_AUTHORIZATION_FAILED at the top level, no topics). Lists the
// partitions with a reassignment in progress: their replicas (the target
// followed by those being removed), the replicas being added and those
// being removed. A null topic list means every partition; a listed topic
// or partition that does not exist or is not being reassigned is left out
// silently, and so is a topic with nothing to show.
//
// Differences from Apache Kafka: topics come sorted by name and partitions
// by index (Kafka's order is its hash maps').

import (
	"context"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/metadata"
)

func init() { register(46, 0, 0, handleListPartitionReassignments) }

func handleListPartitionReassignments(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.ListPartitionReassignmentsRequest)
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	if !s.allowCluster(r, kmsg.ACLOperationDescribe) {
		resp.ErrorCode, resp.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, kmsg.StringPtr(clusterDenied)
		return respond(resp)
	}
	ongoing := s.meta.Reassignments()
	if len(ongoing) == 0 {
		return respond(resp)
	}
	byTopic := map[uuid.UUID][]metadata.Reassignment{}
	for _, ra := range ongoing {
		byTopic[ra.TopicID] = append(byTopic[ra.TopicID], ra) // by partition already
	}
	add := func(name string, ras []metadata.Reassignment, want func(int32) bool) {
		st := kmsg.NewListPartitionReassignmentsResponseTopic()
		st.Topic = name
		for _, ra := range ras {
			if !want(ra.Partition) {
				continue
			}
			sp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
			sp.Partition = ra.Partition
			sp.Replicas, sp.AddingReplicas, sp.RemovingReplicas = ra.Replicas, ra.AddingReplicas, ra.RemovingReplicas
			st.Partitions = append(st.Partitions, sp)
		}
		if len(st.Partitions) > 0 {
			resp.Topics = append(resp.Topics, st)
		}
	}
	if req.Topics == nil {
		for id, ras := range byTopic {
			if t, ok := s.meta.TopicByID(id); ok {
				add(t.Name, ras, func(int32) bool { return true })
			}
		}
		slices.SortFunc(resp.Topics, func(a, b kmsg.ListPartitionReassignmentsResponseTopic) int {
			return strings.Compare(a.Topic, b.Topic)
		})
		return respond(resp)
	}
	for _, rt := range req.Topics {
		t, ok := s.meta.Topic(rt.Topic)
		if !ok {
			continue
		}
		add(t.Name, byTopic[t.ID], func(p int32) bool { return slices.Contains(rt.Partitions, p) })
	}
	return respond(resp)
}
