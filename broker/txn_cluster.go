package broker

// Transactions across brokers, as Kafka's TransactionMarkerChannelManager
// and AddPartitionsToTxnManager (KIP-890 part 1) do them.
//
// Markers. The transaction coordinator's markers go to each partition's
// current leader, looked up in the committed metadata: partitions this
// broker leads are written directly (writeMarker), the others are grouped
// by leader and sent as one WriteTxnMarkers v1 per leader. A partition that
// fails (the leader moved, it has none, its broker is unreachable, the
// write timed out) is retried with backoff, its leader looked up afresh
// each time, until it is written or the coordinator gives it up (the
// context ends when the coordinator unloads the transaction's partition or
// the broker stops): Kafka retries markers until they are written, because
// read_committed consumers of the partition wait for them. A partition
// whose topic was deleted counts as done. Writing a marker twice is
// harmless, so a retry after a lost answer is too.
//
// Verification. A transactional batch is accepted only when the
// transactional id's coordinator (the leader of its __transaction_state
// partition) says the producer's ongoing transaction has added the
// partition. The coordinator on this broker is asked directly (verifyTxn),
// one on another broker with AddPartitionsToTxn v4 VerifyOnly; both
// answers map to the same per-partition codes.
//
// Transactions v2 (KIP-890 part 2, Produce v12+): the producer does not
// add partitions itself; the partition leader adds them (addTxnCluster)
// with AddPartitionsToTxn v5, the same way, before it appends. Every
// EndTxn bumps the producer epoch, and the markers carry the bumped epoch,
// so once a partition has its marker the partition log refuses the old
// epoch: a late batch of a finished transaction cannot join the next one.
//
// Requests to other brokers go to their inter-broker listener (dialBroker)
// and need CLUSTER_ACTION there: with an authorizer, the principal a
// broker connects as must be a super user, as in Kafka.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/internal/txn"
)

const (
	writeTxnMarkersVersion = 1
	verifyTxnVersion       = 4 // the broker-to-broker AddPartitionsToTxn (KIP-890)
	addTxnVersion          = 5 // the implicit add of transactions v2 (KIP-890 part 2)
	// addTxnRetryBackoff and addTxnRetryMax bound how long a Produce v12
	// waits for the coordinator to take its partitions (Kafka's
	// add.partitions.to.txn.retry.backoff.ms and .max.ms are 20 and 100;
	// ours waits a little longer because our coordinator also answers
	// CONCURRENT_TRANSACTIONS while another add is being written).
	addTxnRetryBackoff = 10 * time.Millisecond
	addTxnRetryMax     = 500 * time.Millisecond
	// markerRequestTimeout bounds one WriteTxnMarkers: the leader answers
	// once its ISR has the markers (Kafka's request.timeout.ms).
	markerRequestTimeout = 30 * time.Second
	// verifyRequestTimeout bounds one verification: the producer is
	// waiting, and a retriable answer lets it try again.
	verifyRequestTimeout = 10 * time.Second
	// markerWarnAfter is how long markers may keep failing before it is
	// logged as a warning (a leader election takes a moment).
	markerWarnAfter = 10 * time.Second
	// peerIdleConns is how many idle connections to each broker are kept.
	peerIdleConns = 2
)

// defaultMarkerRetry is the backoff between marker attempts.
var defaultMarkerRetry = markerRetry{min: 50 * time.Millisecond, max: time.Second}

type markerRetry struct{ min, max time.Duration }

// txnMarker is one transaction's marker, the same for all its partitions.
type txnMarker struct {
	producerID       int64
	epoch            int16
	commit           bool
	coordinatorEpoch int32
}

// markerRoutes is what writeMarkersRouted needs from the cluster
// (serverMarkerRoutes on a broker; fakes in tests).
type markerRoutes interface {
	// leader is the partition's leader in the current metadata (-1 when it
	// has none); exists is false when the topic or partition is gone.
	leader(tp txn.TopicPartition) (id int32, exists bool)
	// writeLocal writes the marker to a partition this broker leads and
	// waits until it is committed.
	writeLocal(ctx context.Context, m txnMarker, tp txn.TopicPartition) error
	// writeRemote sends the markers of tps to broker id in one request and
	// returns each partition's error code; an error means no answer.
	writeRemote(ctx context.Context, id int32, m txnMarker, tps []txn.TopicPartition) (map[txn.TopicPartition]int16, error)
}

// markerFailure is one partition whose marker is not written yet.
type markerFailure struct {
	tp  txn.TopicPartition
	err error
}

// writeMarkersRouted writes m to every partition of tps through its
// current leader, retrying the partitions that fail until all are written
// or ctx ends (then it returns an error naming what is left).
func writeMarkersRouted(ctx context.Context, r markerRoutes, self int32, m txnMarker, tps []txn.TopicPartition, retry markerRetry, log *slog.Logger) error {
	pending := dedupe(tps)
	backoff := retry.min
	start := time.Now()
	warned := false
	for attempt := 1; ; attempt++ {
		failed := markersRound(ctx, r, self, m, pending)
		if len(failed) == 0 {
			if warned {
				log.Info("transaction markers written after retries", "producer_id", m.producerID, "epoch", m.epoch, "commit", m.commit, "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("transaction markers of producer %d: %d partitions not written (%s-%d: %v): %w",
				m.producerID, len(failed), failed[0].tp.Topic, failed[0].tp.Partition, failed[0].err, ctx.Err())
		}
		level := slog.LevelDebug
		if !warned && (time.Since(start) >= markerWarnAfter || !expectedMarkerError(failed[0].err)) {
			level, warned = slog.LevelWarn, true
		}
		log.Log(ctx, level, "transaction markers not written yet; retrying", "producer_id", m.producerID, "epoch", m.epoch,
			"commit", m.commit, "partitions_left", len(failed), "topic", failed[0].tp.Topic, "partition", failed[0].tp.Partition,
			"err", failed[0].err, "attempt", attempt, "retry_in", backoff)
		sleepCtx(ctx, backoff)
		backoff = min(2*backoff, retry.max)
		pending = pending[:0]
		for _, f := range failed {
			pending = append(pending, f.tp)
		}
	}
}

// markersRound makes one attempt at every pending partition: the local
// ones in order, the remote ones in one request per leader, all leaders at
// once. It returns the partitions still to do.
func markersRound(ctx context.Context, r markerRoutes, self int32, m txnMarker, pending []txn.TopicPartition) []markerFailure {
	var (
		mu     sync.Mutex
		failed []markerFailure
		wg     sync.WaitGroup
	)
	fail := func(tp txn.TopicPartition, err error) {
		mu.Lock()
		failed = append(failed, markerFailure{tp, err})
		mu.Unlock()
	}
	byLeader := map[int32][]txn.TopicPartition{}
	var local []txn.TopicPartition
	for _, tp := range pending {
		id, exists := r.leader(tp)
		switch {
		case !exists:
			// Deleted: there is nobody left to read the transaction.
		case id < 0:
			fail(tp, kerr.LeaderNotAvailable)
		case id == self:
			local = append(local, tp)
		default:
			byLeader[id] = append(byLeader[id], tp)
		}
	}
	if len(local) > 0 {
		// In the coordinator's order, one after the other, as a single
		// broker always wrote them: __consumer_offsets sorts first, so
		// the transaction's offsets are committed by the time its records
		// are readable there.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, tp := range local {
				if err := r.writeLocal(ctx, m, tp); err != nil {
					fail(tp, err)
				}
			}
		}()
	}
	for id, tps := range byLeader {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes, err := r.writeRemote(ctx, id, m, tps)
			for _, tp := range tps {
				switch code, ok := codes[tp]; {
				case err != nil:
					fail(tp, fmt.Errorf("broker %d: %w", id, err))
				case !ok:
					fail(tp, fmt.Errorf("broker %d did not answer for the partition", id))
				case code != 0:
					fail(tp, fmt.Errorf("broker %d: %w", id, kerr.ErrorForCode(code)))
				}
			}
		}()
	}
	wg.Wait()
	return failed
}

// expectedMarkerError reports whether err is the usual kind while
// leadership moves, which is retried without a warning at first.
func expectedMarkerError(err error) bool {
	return errors.Is(err, kerr.NotLeaderForPartition) || errors.Is(err, kerr.LeaderNotAvailable) ||
		errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, errUnknownTopic)
}

func dedupe(tps []txn.TopicPartition) []txn.TopicPartition {
	seen := make(map[txn.TopicPartition]bool, len(tps))
	out := make([]txn.TopicPartition, 0, len(tps))
	for _, tp := range tps {
		if !seen[tp] {
			seen[tp] = true
			out = append(out, tp)
		}
	}
	return out
}

// serverMarkerRoutes routes markers through this broker's metadata, log
// and connections to the other brokers.
type serverMarkerRoutes struct {
	s     *Server
	peers *peerConns
}

func (r serverMarkerRoutes) leader(tp txn.TopicPartition) (int32, bool) {
	return partitionLeader(r.s, tp.Topic, tp.Partition)
}

func (r serverMarkerRoutes) writeLocal(ctx context.Context, m txnMarker, tp txn.TopicPartition) error {
	return r.s.writeMarker(ctx, m.producerID, m.epoch, m.commit, m.coordinatorEpoch, tp.Topic, tp.Partition)
}

func (r serverMarkerRoutes) writeRemote(ctx context.Context, id int32, m txnMarker, tps []txn.TopicPartition) (map[txn.TopicPartition]int16, error) {
	return sendWriteTxnMarkers(ctx, r.peers, id, m, tps)
}

// partitionLeader is a partition's leader in the committed metadata (-1
// for none); exists is false when the topic or partition is not there.
func partitionLeader(s *Server, topic string, partition int32) (leader int32, exists bool) {
	t, ok := s.meta.Topic(topic)
	if !ok || partition < 0 || int(partition) >= len(t.Partitions) {
		return -1, false
	}
	return t.Partitions[partition].Leader, true
}

// sendWriteTxnMarkers sends one WriteTxnMarkers with m for tps to broker id
// and returns each partition's code.
func sendWriteTxnMarkers(ctx context.Context, peers *peerConns, id int32, m txnMarker, tps []txn.TopicPartition) (map[txn.TopicPartition]int16, error) {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.Version = writeTxnMarkersVersion
	rm := kmsg.NewWriteTxnMarkersRequestMarker()
	rm.ProducerID, rm.ProducerEpoch, rm.Committed, rm.CoordinatorEpoch = m.producerID, m.epoch, m.commit, m.coordinatorEpoch
	for _, g := range groupByTopic(tps) {
		rt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		rt.Topic, rt.Partitions = g.topic, g.partitions
		rm.Topics = append(rm.Topics, rt)
	}
	req.Markers = append(req.Markers, rm)
	resp := kmsg.NewPtrWriteTxnMarkersResponse()
	if err := peers.call(ctx, id, req, resp, markerRequestTimeout); err != nil {
		return nil, err
	}
	out := make(map[txn.TopicPartition]int16, len(tps))
	for _, rm := range resp.Markers {
		if rm.ProducerID != m.producerID {
			continue
		}
		for _, rt := range rm.Topics {
			for _, rp := range rt.Partitions {
				out[txn.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}] = rp.ErrorCode
			}
		}
	}
	return out, nil
}

// verifyTxnCluster is verifyTxn wherever the transactional id's
// coordinator is: the one on this broker is asked directly, another
// broker's with AddPartitionsToTxn v4 VerifyOnly. The codes are verifyTxn's:
// 0, INVALID_TXN_STATE, INVALID_PRODUCER_EPOCH, INVALID_PRODUCER_ID_MAPPING,
// or NOT_ENOUGH_REPLICAS (retriable) while the coordinator cannot answer.
func (s *Server) verifyTxnCluster(ctx context.Context, id string, pid int64, epoch int16, tps []txn.TopicPartition) map[txn.TopicPartition]int16 {
	coord, exists := partitionLeader(s, txnStateTopicName, s.txns.PartitionFor(id))
	switch {
	case !exists:
		// No transactional producer was ever initialized in the cluster:
		// nothing to verify against, and the data path must not create
		// the topic.
		return verifyAll(tps, kerr.InvalidTxnState.Code)
	case coord == s.cfg.NodeID:
		s.txnLog.markExists()
		return s.verifyTxn(ctx, id, pid, epoch, tps)
	case coord < 0:
		return verifyAll(tps, kerr.NotEnoughReplicas.Code)
	}
	return s.verifyTxnRemote(ctx, s.txnLog.peerConns(), coord, id, pid, epoch, tps)
}

// verifyTxnRemote asks broker coord's transaction coordinator.
func (s *Server) verifyTxnRemote(ctx context.Context, peers *peerConns, coord int32, id string, pid int64, epoch int16, tps []txn.TopicPartition) map[txn.TopicPartition]int16 {
	resp, code := s.callTxnCoordinator(ctx, peers, coord, verifyTxnRequest(id, pid, epoch, tps))
	if code != 0 {
		return verifyAll(tps, code)
	}
	return verifyTxnCodes(resp, tps)
}

// callTxnCoordinator sends an AddPartitionsToTxn v4+ for one transaction to
// broker coord. Without a usable answer it returns the code every
// partition gets instead: NOT_ENOUGH_REPLICAS (retriable), or
// INVALID_TXN_STATE when the coordinator refuses this broker.
func (s *Server) callTxnCoordinator(ctx context.Context, peers *peerConns, coord int32, req *kmsg.AddPartitionsToTxnRequest) (*kmsg.AddPartitionsToTxnResponse, int16) {
	id := req.Transactions[0].TransactionalID
	resp := kmsg.NewPtrAddPartitionsToTxnResponse()
	if err := peers.call(ctx, coord, req, resp, verifyRequestTimeout); err != nil {
		if ctx.Err() == nil {
			s.log.Debug("cannot verify a transaction with its coordinator", "transactional_id", id, "coordinator", coord, "err", err)
		}
		return nil, kerr.NotEnoughReplicas.Code
	}
	if resp.ErrorCode != 0 {
		// Every transactional produce would log this: at most one line a
		// minute above debug.
		level := slog.LevelDebug
		if peers.shouldWarn() {
			level = slog.LevelWarn
		}
		err := kerr.ErrorForCode(resp.ErrorCode)
		if resp.ErrorCode == kerr.ClusterAuthorizationFailed.Code {
			// As Kafka: the producer is not told about a permission it
			// cannot fix; the operator reads this.
			s.log.Log(ctx, level, "transaction coordinator refused this broker's verification: brokers need CLUSTER_ACTION (make their principal a super user)",
				"coordinator", coord, "err", err)
			return nil, kerr.InvalidTxnState.Code
		}
		s.log.Log(ctx, level, "transaction coordinator failed a verification", "coordinator", coord, "err", err)
		return nil, kerr.NotEnoughReplicas.Code
	}
	return resp, 0
}

// topicPartitions are one topic's partitions of a request.
type topicPartitions struct {
	topic      string
	partitions []int32
}

// groupByTopic groups tps by topic, topics in first-seen order, as the
// requests that carry them nest them.
func groupByTopic(tps []txn.TopicPartition) []topicPartitions {
	var out []topicPartitions
	index := map[string]int{}
	for _, tp := range tps {
		i, ok := index[tp.Topic]
		if !ok {
			i = len(out)
			index[tp.Topic] = i
			out = append(out, topicPartitions{topic: tp.Topic})
		}
		out[i].partitions = append(out[i].partitions, tp.Partition)
	}
	return out
}

// verifyTxnRequest is the VerifyOnly AddPartitionsToTxn v4 for one
// producer's partitions.
func verifyTxnRequest(id string, pid int64, epoch int16, tps []txn.TopicPartition) *kmsg.AddPartitionsToTxnRequest {
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = verifyTxnVersion
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = id, pid, epoch, true
	for _, g := range groupByTopic(tps) {
		rt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
		rt.Topic, rt.Partitions = g.topic, g.partitions
		tx.Topics = append(tx.Topics, rt)
	}
	req.Transactions = append(req.Transactions, tx)
	return req
}

// addTxnCluster is verifyTxnCluster for Produce v12+ (transactions v2,
// KIP-890 part 2): the producer no longer sends AddPartitionsToTxn, so the
// partition leader adds the partitions to its transaction, with
// AddPartitionsToTxn v5 (not VerifyOnly) to the coordinator wherever it
// is. The coordinator answers CONCURRENT_TRANSACTIONS while the producer's
// previous transaction is still writing its markers (the producer got its
// new epoch with the EndTxn answer, before the markers) or while another
// partition's add is being written; that is retried here for up to
// addTxnRetryMax, as Kafka's brokers do (KAFKA-18654), before the producer
// gets a retriable error. The codes are verifyTxnCluster's.
func (s *Server) addTxnCluster(ctx context.Context, id string, pid int64, epoch int16, tps []txn.TopicPartition) map[txn.TopicPartition]int16 {
	req := addTxnRequest(id, pid, epoch, tps)
	deadline := time.Now().Add(addTxnRetryMax)
	backoff := addTxnRetryBackoff
	for {
		resp, code := s.addTxnOnce(ctx, req)
		if code != 0 {
			return verifyAll(tps, code)
		}
		if !addTxnRetriable(resp) || ctx.Err() != nil || time.Now().Add(backoff).After(deadline) {
			return verifyTxnCodes(resp, tps)
		}
		sleepCtx(ctx, backoff)
		backoff = min(2*backoff, addTxnRetryMax/4)
	}
}

// addTxnOnce sends req to the transactional id's coordinator once, the one
// on this broker directly; a code instead of an answer as
// callTxnCoordinator.
func (s *Server) addTxnOnce(ctx context.Context, req *kmsg.AddPartitionsToTxnRequest) (*kmsg.AddPartitionsToTxnResponse, int16) {
	id := req.Transactions[0].TransactionalID
	coord, exists := partitionLeader(s, txnStateTopicName, s.txns.PartitionFor(id))
	switch {
	case !exists:
		// No transactional producer was ever initialized in the cluster;
		// the data path must not create the topic.
		return nil, kerr.InvalidTxnState.Code
	case coord == s.cfg.NodeID:
		s.txnLog.markExists()
		return s.txns.AddPartitionsToTxn(ctx, req), 0
	case coord < 0:
		return nil, kerr.NotEnoughReplicas.Code
	}
	return s.callTxnCoordinator(ctx, s.txnLog.peerConns(), coord, req)
}

// addTxnRetriable: some partition is refused only for now.
func addTxnRetriable(resp *kmsg.AddPartitionsToTxnResponse) bool {
	for _, rtx := range resp.Transactions {
		for _, rt := range rtx.Topics {
			for _, rp := range rt.Partitions {
				switch rp.ErrorCode {
				case kerr.ConcurrentTransactions.Code, kerr.CoordinatorLoadInProgress.Code:
					return true
				}
			}
		}
	}
	return false
}

// addTxnRequest is the AddPartitionsToTxn v5 that adds one producer's
// partitions to its transaction.
func addTxnRequest(id string, pid int64, epoch int16, tps []txn.TopicPartition) *kmsg.AddPartitionsToTxnRequest {
	req := verifyTxnRequest(id, pid, epoch, tps)
	req.Version = addTxnVersion
	req.Transactions[0].VerifyOnly = false
	return req
}

// verifyTxnCodes maps a verification's answer to the codes of the data
// path, as verifyTxn does for the local coordinator: fenced producers get
// INVALID_PRODUCER_EPOCH; coordinator states a producer should wait out
// (loading, moving, completing a transaction) and anything unexpected get
// the retriable NOT_ENOUGH_REPLICAS, as Kafka maps them for Produce; a
// partition the answer leaves out is not in the transaction.
func verifyTxnCodes(resp *kmsg.AddPartitionsToTxnResponse, tps []txn.TopicPartition) map[txn.TopicPartition]int16 {
	out := make(map[txn.TopicPartition]int16, len(tps))
	for _, rtx := range resp.Transactions {
		for _, rt := range rtx.Topics {
			for _, rp := range rt.Partitions {
				code := rp.ErrorCode
				switch code {
				case 0, kerr.InvalidTxnState.Code, kerr.InvalidProducerIDMapping.Code:
				case kerr.ProducerFenced.Code, kerr.InvalidProducerEpoch.Code:
					code = kerr.InvalidProducerEpoch.Code
				default:
					code = kerr.NotEnoughReplicas.Code
				}
				out[txn.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}] = code
			}
		}
	}
	for _, tp := range tps {
		if _, ok := out[tp]; !ok {
			out[tp] = kerr.InvalidTxnState.Code
		}
	}
	return out
}

func verifyAll(tps []txn.TopicPartition, code int16) map[txn.TopicPartition]int16 {
	out := make(map[txn.TopicPartition]int16, len(tps))
	for _, tp := range tps {
		out[tp] = code
	}
	return out
}

// peerConns keeps connections to the other brokers for the requests this
// broker sends them as a client (markers, verifications): one request at
// a time per connection, a few idle ones per broker kept for reuse, so a
// slow marker write never holds up a producer's verification.
type peerConns struct {
	dial     func(ctx context.Context, id int32) (*brokerConn, error)
	lastWarn atomic.Int64 // unix nanoseconds of the last rate-limited warning

	mu     sync.Mutex // guards idle and closed; a leaf
	idle   map[int32][]*brokerConn
	closed bool
}

// shouldWarn reports whether a recurring warning may be logged now (once a
// minute).
func (p *peerConns) shouldWarn() bool {
	now := time.Now().UnixNano()
	last := p.lastWarn.Load()
	return now-last >= int64(time.Minute) && p.lastWarn.CompareAndSwap(last, now)
}

func newPeerConns(dial func(ctx context.Context, id int32) (*brokerConn, error)) *peerConns {
	return &peerConns{dial: dial, idle: map[int32][]*brokerConn{}}
}

// call sends req to broker id and reads its answer into resp.
func (p *peerConns) call(ctx context.Context, id int32, req kmsg.Request, resp kmsg.Response, timeout time.Duration) error {
	c := p.take(id)
	reused := c != nil
	if c == nil {
		var err error
		if c, err = p.dial(ctx, id); err != nil {
			return err
		}
	}
	err := c.roundTrip(ctx, req, resp, timeout)
	var ne net.Error
	if err != nil && reused && ctx.Err() == nil && !(errors.As(err, &ne) && ne.Timeout()) {
		// An idle connection the other broker has closed meanwhile (it
		// restarted, or dropped an idle connection): one fresh try. Both
		// requests sent this way are safe to repeat.
		c.close()
		if c, err = p.dial(ctx, id); err != nil {
			return err
		}
		err = c.roundTrip(ctx, req, resp, timeout)
	}
	if err != nil {
		c.close()
		return err
	}
	p.put(id, c)
	return nil
}

func (p *peerConns) take(id int32) *brokerConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	cs := p.idle[id]
	if len(cs) == 0 {
		return nil
	}
	c := cs[len(cs)-1]
	p.idle[id] = cs[:len(cs)-1]
	return c
}

func (p *peerConns) put(id int32, c *brokerConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[id]) >= peerIdleConns {
		c.close()
		return
	}
	p.idle[id] = append(p.idle[id], c)
}

// close closes the idle connections; connections in use are closed when
// their request ends.
func (p *peerConns) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for id, cs := range p.idle {
		for _, c := range cs {
			c.close()
		}
		delete(p.idle, id)
	}
}
