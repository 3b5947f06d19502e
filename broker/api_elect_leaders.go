package broker

// ElectLeaders v0-v2 (KIP-183; election types from v1, KIP-460).
//
// As Kafka's controller: ALTER on CLUSTER is required; a denial answers
// CLUSTER_AUTHORIZATION_FAILED at the top level (v1+) and in every
// requested partition. v0 always runs a PREFERRED election; v1+ takes
// PREFERRED (0) or UNCLEAN (1), and any other type fails the whole request
// with INVALID_REQUEST the same way. Each listed partition gets a result:
// NONE when the leader changed, ELECTION_NOT_NEEDED when it already has
// the leader asked for (the preferred replica, or any leader for an
// unclean election), PREFERRED_LEADER_NOT_AVAILABLE when the preferred
// replica is not a live ISR member, ELIGIBLE_LEADERS_NOT_AVAILABLE when no
// live replica can lead, UNKNOWN_TOPIC_OR_PARTITION for a topic or
// partition that does not exist. A null topic list elects across every
// partition and reports only the partitions where an election was needed
// (every topic is still listed, possibly with no partitions, as Kafka
// does). The elections of one request are one metadata command.
//
// Differences from Apache Kafka: TimeoutMillis <= 0 waits as long as the
// metadata quorum's own bound instead of timing out at once; when the
// wait ends first the request is answered REQUEST_TIMED_OUT and the
// elections may still be applied (as in Kafka). Topics are listed by name.
//
// The metadata changes; on a single node (RF=1, the only broker is the
// preferred replica and leads everything) no election is ever needed.

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/metadata"
)

func init() { register(43, 0, 2, handleElectLeaders) }

func handleElectLeaders(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.ElectLeadersRequest)
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	if !s.allowCluster(r, kmsg.ACLOperationAlter) {
		electLeadersFailed(req, resp, kerr.ClusterAuthorizationFailed.Code, clusterDenied)
		return respond(resp)
	}
	typ := metadata.ElectPreferred
	if req.Version >= 1 {
		typ = metadata.ElectionType(req.ElectionType)
	}
	if typ != metadata.ElectPreferred && typ != metadata.ElectUnclean {
		electLeadersFailed(req, resp, kerr.InvalidRequest.Code, fmt.Sprintf("unknown election type %d", req.ElectionType))
		return respond(resp)
	}
	return r.cc.later(func() *reply {
		ctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
		defer cancel()
		if err := s.electLeaders(ctx, req, resp, typ); err != nil {
			resp.Topics = nil
			electLeadersFailed(req, resp, errorCode(s.log, err), err.Error())
		}
		return respond(resp)
	})
}

// electLeaders runs the elections and fills resp with their results.
func (s *Server) electLeaders(ctx context.Context, req *kmsg.ElectLeadersRequest, resp *kmsg.ElectLeadersResponse, typ metadata.ElectionType) error {
	if req.Topics == nil {
		return s.electAll(ctx, resp, typ)
	}
	// Results in request order; partitions of unknown topics are answered
	// here, the rest by the one election command.
	type slot struct{ t, p int }
	var (
		tps   []metadata.TopicPartition
		slots []slot
	)
	for i, rt := range req.Topics {
		st := kmsg.NewElectLeadersResponseTopic()
		st.Topic = rt.Topic
		topic, known := s.meta.Topic(rt.Topic)
		for j, p := range rt.Partitions {
			sp := kmsg.NewElectLeadersResponseTopicPartition()
			sp.Partition = p
			if !known {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				sp.ErrorMessage = kmsg.StringPtr("no such topic as " + rt.Topic)
			} else {
				tps = append(tps, metadata.TopicPartition{TopicID: topic.ID, Partition: p})
				slots = append(slots, slot{i, j})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if len(tps) == 0 {
		return nil
	}
	results, err := s.meta.ElectLeaders(ctx, typ, tps)
	if err != nil {
		return err
	}
	if len(results) != len(tps) {
		return fmt.Errorf("elect leaders: %d results for %d partitions", len(results), len(tps))
	}
	for k, res := range results {
		sl := slots[k]
		rt := req.Topics[sl.t]
		s.setElectionResult(&resp.Topics[sl.t].Partitions[sl.p], rt.Topic, res.Err)
	}
	return nil
}

// electAll is the null topic list: every topic is listed, with the
// partitions where an election was needed.
func (s *Server) electAll(ctx context.Context, resp *kmsg.ElectLeadersResponse, typ metadata.ElectionType) error {
	topics := s.meta.Topics()
	results, err := s.meta.ElectLeaders(ctx, typ, nil)
	if err != nil {
		return err
	}
	byID := make(map[uuid.UUID]int, len(topics))
	for _, t := range topics {
		byID[t.ID] = len(resp.Topics)
		st := kmsg.NewElectLeadersResponseTopic()
		st.Topic = t.Name
		st.Partitions = []kmsg.ElectLeadersResponseTopicPartition{}
		resp.Topics = append(resp.Topics, st)
	}
	for _, res := range results {
		i, ok := byID[res.TopicID]
		if !ok {
			// Created after the listing above.
			t, exists := s.meta.TopicByID(res.TopicID)
			if !exists {
				continue // and deleted again: nothing to report under a name
			}
			i = len(resp.Topics)
			byID[res.TopicID] = i
			st := kmsg.NewElectLeadersResponseTopic()
			st.Topic = t.Name
			resp.Topics = append(resp.Topics, st)
		}
		sp := kmsg.NewElectLeadersResponseTopicPartition()
		sp.Partition = res.Partition
		s.setElectionResult(&sp, resp.Topics[i].Topic, res.Err)
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, sp)
	}
	return nil
}

// setElectionResult records one partition's outcome. Kafka's messages for
// the election outcomes are the error codes' own descriptions; an unknown
// partition names itself.
func (s *Server) setElectionResult(sp *kmsg.ElectLeadersResponseTopicPartition, topic string, err error) {
	if err == nil {
		return
	}
	sp.ErrorCode = errorCode(s.log, err)
	switch sp.ErrorCode {
	case kerr.UnknownTopicOrPartition.Code:
		sp.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("no such partition as %s-%d", topic, sp.Partition))
	default:
		if ke := kerr.TypedErrorForCode(sp.ErrorCode); ke != nil {
			sp.ErrorMessage = kmsg.StringPtr(ke.Description)
		}
	}
}

// electLeadersFailed answers the whole request with one error: top level
// (v1+) and in every requested partition, as Kafka's error response does.
func electLeadersFailed(req *kmsg.ElectLeadersRequest, resp *kmsg.ElectLeadersResponse, code int16, msg string) {
	resp.ErrorCode = code
	for _, rt := range req.Topics {
		st := kmsg.NewElectLeadersResponseTopic()
		st.Topic = rt.Topic
		for _, p := range rt.Partitions {
			sp := kmsg.NewElectLeadersResponseTopicPartition()
			sp.Partition, sp.ErrorCode, sp.ErrorMessage = p, code, kmsg.StringPtr(msg)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
}

// requestTimeout bounds ctx by a request's TimeoutMillis when it is
// positive (Kafka's admin requests carry one). The metadata store bounds
// the wait on its own otherwise.
func requestTimeout(ctx context.Context, ms int32) (context.Context, context.CancelFunc) {
	if ms <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
}
