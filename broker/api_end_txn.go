package broker

// EndTxn v0-v5: commits or aborts the producer's transaction through the
// transaction coordinator (internal/txn), which answers once the
// PrepareCommit/PrepareAbort record is durable and writes the markers
// afterwards. v5 is transactions v2 (KIP-890 part 2, advertised with the
// transaction.version feature): every commit or abort bumps the producer
// epoch (a new producer id once the epoch is exhausted), the markers carry
// the bumped epoch, and the response carries the producer id and epoch to
// use next; an abort with nothing in the transaction succeeds and bumps
// the epoch. Authorization as Kafka: WRITE on the transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(26, 0, 5, handleEndTxn) }

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
