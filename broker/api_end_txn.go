package broker

// EndTxn v0-v4: commits or aborts the producer's transaction through the
// transaction coordinator (internal/txn), which answers once the
// PrepareCommit/PrepareAbort record is durable and writes the markers
// afterwards. Authorization as Kafka: WRITE on the transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
//
// Differences from Apache Kafka: v5 (transactions v2, KIP-890) is not
// advertised yet: it needs Produce v12, which adds partitions implicitly.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(26, 0, 4, handleEndTxn) }

func handleEndTxn(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.EndTxnRequest)
	if !s.allow(r, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, req.TransactionalID) {
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		return respond(resp)
	}
	return r.cc.later(func() *reply { return &reply{resp: s.txns.EndTxn(ctx, req)} })
}
