package broker

// FindCoordinator v0-v4 (v4 batches keys, KIP-699).
//
// A group's coordinator is the leader of its __consumer_offsets partition,
// a transactional id's the leader of its __transaction_state partition
// (COORDINATOR_NOT_AVAILABLE while there is none), at its endpoint on the
// listener the client used; both topics are created on the first lookup,
// as Kafka does. Each key needs DESCRIBE on its group
// (GROUP_AUTHORIZATION_FAILED) or transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), checked first, as in Kafka.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(10, 0, 4, handleFindCoordinator) }

func handleFindCoordinator(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, key := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = key
		c.NodeID, c.Host, c.Port = -1, "", -1
		switch {
		case req.CoordinatorType == 0 && !s.allow(r, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, key):
			c.ErrorCode = kerr.GroupAuthorizationFailed.Code
		case req.CoordinatorType == 1 && !s.allow(r, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId, key):
			c.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		case req.CoordinatorType == 1:
			if err := s.txnLog.ensure(ctx); err != nil {
				s.log.Warn("cannot create "+txnStateTopicName, "err", err)
				c.ErrorCode = kerr.CoordinatorNotAvailable.Code
			} else {
				s.locateCoordinator(r, &c, txnStateTopicName, s.txns.PartitionFor(key))
			}
		case req.CoordinatorType != 0:
			c.ErrorCode = kerr.CoordinatorNotAvailable.Code
		default:
			if err := s.offsets.ensure(ctx); err != nil {
				s.log.Warn("cannot create "+offsetsTopicName, "err", err)
				c.ErrorCode = kerr.CoordinatorNotAvailable.Code
			} else {
				s.locateCoordinator(r, &c, offsetsTopicName, s.groups.PartitionFor(key))
			}
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	if req.Version < 4 {
		c := resp.Coordinators[0]
		resp.ErrorCode, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.NodeID, c.Host, c.Port
		resp.Coordinators = nil
	}
	return respond(resp)
}

// locateCoordinator fills c with the leader of topic's partition.
func (s *Server) locateCoordinator(r *request, c *kmsg.FindCoordinatorResponseCoordinator, topic string, partition int32) {
	leader := s.coordinatorLeader(topic, partition)
	host, port, ok := s.nodeAddr(r, leader)
	if leader < 0 || !ok {
		c.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return
	}
	c.NodeID, c.Host, c.Port = leader, host, port
}
