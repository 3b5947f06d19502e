package broker

// DescribeTransactions v0: state, producer id and epoch, timeout, start
// time and partitions of each transactional id, from the transaction
// coordinator. Authorization as Kafka: DESCRIBE on each transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED for that id).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(65, 0, 0, handleDescribeTransactions) }

func handleDescribeTransactions(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.DescribeTransactionsRequest)
	var allowed []string
	denied := map[int]bool{}
	for i, id := range req.TransactionalIDs {
		if s.allow(r, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId, id) {
			allowed = append(allowed, id)
		} else {
			denied[i] = true
		}
	}
	return r.cc.later(func() *reply {
		sub := *req
		sub.TransactionalIDs = allowed
		got := s.txns.DescribeTransactions(ctx, &sub)
		resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
		j := 0
		for i, id := range req.TransactionalIDs {
			if denied[i] {
				ts := kmsg.NewDescribeTransactionsResponseTransactionState()
				ts.TransactionalID, ts.ErrorCode = id, kerr.TransactionalIDAuthorizationFailed.Code
				resp.TransactionStates = append(resp.TransactionStates, ts)
				continue
			}
			resp.TransactionStates = append(resp.TransactionStates, got.TransactionStates[j])
			j++
		}
		return &reply{resp: resp}
	})
}
