package broker

// InitProducerId v0-v5, for idempotent and transactional producers.
//
// Producer ids come in blocks from the metadata quorum, so they are unique
// across restarts (and, later, across brokers). A request carrying its
// current id and epoch (KIP-360, v3+) gets a fresh id, as Kafka does for
// producers without a transactional id.
//
// Authorization as Kafka: with a transactional id, WRITE on it
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); without one, IDEMPOTENT_WRITE
// on the cluster or WRITE on at least one topic (KIP-679), else
// CLUSTER_AUTHORIZATION_FAILED.
//
// With a transactional id the transaction coordinator (internal/txn)
// answers: epoch bumps fence older producers, an ongoing transaction is
// aborted first.

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/metadata"
)

func init() { register(22, 0, 5, handleInitProducerID) }

const producerIDBlock = 1000

type producerIDs struct {
	meta *metadata.Store
	mu   sync.Mutex // guards next, end
	next int64
	end  int64
}

func (p *producerIDs) allocate(ctx context.Context) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next >= p.end {
		first, err := p.meta.AllocateProducerIDs(ctx, producerIDBlock)
		if err != nil {
			return -1, fmt.Errorf("allocate producer id block: %w", err)
		}
		p.next, p.end = first, first+producerIDBlock
	}
	id := p.next
	p.next++
	return id, nil
}

func handleInitProducerID(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil && !s.allow(r, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, *req.TransactionalID) {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return respond(resp)
	}
	if req.TransactionalID == nil && !s.allowClusterQuiet(r, kmsg.ACLOperationIdempotentWrite) &&
		!s.allowAny(r, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic) {
		s.denied(r, kmsg.ACLOperationIdempotentWrite, kmsg.ACLResourceTypeCluster, clusterResourceName)
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return respond(resp)
	}
	if req.TransactionalID != nil {
		return r.cc.later(func() *reply {
			if err := s.txnLog.ensure(ctx); err != nil {
				s.log.Warn("cannot create "+txnStateTopicName, "err", err)
				resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
				return &reply{resp: resp}
			}
			return &reply{resp: s.txns.InitProducerID(ctx, req)}
		})
	}
	// Like Kafka, a non-transactional producer always gets a fresh id, even
	// when it names its current one (KIP-360): new id, fresh sequences.
	id, err := s.pids.allocate(ctx)
	if err != nil {
		resp.ErrorCode = errorCode(s.log, err)
		if resp.ErrorCode == kerr.UnknownServerError.Code || resp.ErrorCode == kerr.NotController.Code {
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		}
		return respond(resp)
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return respond(resp)
}
