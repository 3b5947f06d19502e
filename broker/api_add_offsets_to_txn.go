package broker

// AddOffsetsToTxn v0-v3: adds the group's __consumer_offsets partition to
// the producer's transaction, so the markers also decide the offsets the
// producer then commits with TxnOffsetCommit. Authorization as Kafka:
// WRITE on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
// then READ on the group (GROUP_AUTHORIZATION_FAILED).
//
// Differences from Apache Kafka: v4 (transactions v2) is not advertised.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(25, 0, 3, handleAddOffsetsToTxn) }

func handleAddOffsetsToTxn(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.AddOffsetsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	switch {
	case !s.allow(r, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, req.TransactionalID):
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return respond(resp)
	case !s.allow(r, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group):
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return respond(resp)
	}
	return r.cc.later(func() *reply {
		// The markers go to the group's partition, which must exist.
		if err := s.offsets.ensure(ctx); err != nil {
			s.log.Warn("cannot create "+offsetsTopicName, "err", err)
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return &reply{resp: resp}
		}
		return &reply{resp: s.txns.AddOffsetsToTxn(ctx, req)}
	})
}
