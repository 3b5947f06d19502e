package broker

// ListTransactions v0-v2: the transactions of this broker's transaction
// coordinator, filtered by state, producer id, duration (v1) and
// transactional id pattern (v2, Go RE2 syntax). Authorization as Kafka:
// only transactional ids the principal may DESCRIBE are listed.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(66, 0, 2, handleListTransactions) }

func handleListTransactions(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.ListTransactionsRequest)
	return r.cc.later(func() *reply {
		resp := s.txns.ListTransactions(ctx, req)
		kept := resp.TransactionStates[:0]
		for _, ts := range resp.TransactionStates {
			if s.allowQuiet(r, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId, ts.TransactionalID) {
				kept = append(kept, ts)
			}
		}
		resp.TransactionStates = kept
		return &reply{resp: resp}
	})
}
