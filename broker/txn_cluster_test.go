package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/internal/txn"
	"github.com/strata-broker/strata/proto"
)

var quickRetry = markerRetry{min: time.Millisecond, max: 5 * time.Millisecond}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func tp(topic string, p int32) txn.TopicPartition {
	return txn.TopicPartition{Topic: topic, Partition: p}
}

// fakeRoutes is a cluster for writeMarkersRouted: leaders per partition
// (absent: deleted), and scripted answers from the local log and the
// other brokers. The hooks run under mu and may change leaders.
type fakeRoutes struct {
	mu       sync.Mutex
	leaders  map[txn.TopicPartition]int32
	written  map[txn.TopicPartition]int // successful writes per partition
	local    []txn.TopicPartition       // every local attempt
	remote   map[int32][][]txn.TopicPartition
	onLocal  func(f *fakeRoutes, tp txn.TopicPartition) error
	onRemote func(f *fakeRoutes, id int32, tp txn.TopicPartition) (int16, error)
}

func newFakeRoutes(leaders map[txn.TopicPartition]int32) *fakeRoutes {
	return &fakeRoutes{leaders: leaders, written: map[txn.TopicPartition]int{}, remote: map[int32][][]txn.TopicPartition{}}
}

func (f *fakeRoutes) leader(tp txn.TopicPartition) (int32, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.leaders[tp]
	return id, ok
}

func (f *fakeRoutes) writeLocal(_ context.Context, _ txnMarker, tp txn.TopicPartition) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.local = append(f.local, tp)
	if f.onLocal != nil {
		if err := f.onLocal(f, tp); err != nil {
			return err
		}
	}
	f.written[tp]++
	return nil
}

func (f *fakeRoutes) writeRemote(_ context.Context, id int32, _ txnMarker, tps []txn.TopicPartition) (map[txn.TopicPartition]int16, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.remote[id] = append(f.remote[id], slices.Clone(tps))
	out := map[txn.TopicPartition]int16{}
	for _, tp := range tps {
		var code int16
		if f.onRemote != nil {
			c, err := f.onRemote(f, id, tp)
			if err != nil {
				return nil, err
			}
			code = c
		}
		out[tp] = code
		if code == 0 {
			f.written[tp]++
		}
	}
	return out, nil
}

func sorted(tps []txn.TopicPartition) []txn.TopicPartition {
	out := slices.Clone(tps)
	slices.SortFunc(out, func(a, b txn.TopicPartition) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	return out
}

// TestMarkersGroupedByLeader: partitions this broker leads are written
// locally, the others in one request per leader; a deleted topic's
// partitions are done without a write; a partition named twice gets one
// marker.
func TestMarkersGroupedByLeader(t *testing.T) {
	f := newFakeRoutes(map[txn.TopicPartition]int32{
		tp("a", 0): 1, tp("a", 1): 2, tp("a", 2): 3, tp("b", 0): 2, tp("b", 1): 1,
	})
	parts := []txn.TopicPartition{tp("a", 0), tp("a", 1), tp("a", 2), tp("b", 0), tp("b", 1), tp("gone", 0), tp("a", 1)}
	m := txnMarker{producerID: 7, epoch: 1, commit: true, coordinatorEpoch: 3}
	if err := writeMarkersRouted(context.Background(), f, 1, m, parts, quickRetry, discardLog()); err != nil {
		t.Fatalf("write markers: %v", err)
	}
	if got, want := sorted(f.local), []txn.TopicPartition{tp("a", 0), tp("b", 1)}; !slices.Equal(got, want) {
		t.Errorf("local writes %v, want %v", got, want)
	}
	if calls := f.remote[2]; len(calls) != 1 || !slices.Equal(sorted(calls[0]), []txn.TopicPartition{tp("a", 1), tp("b", 0)}) {
		t.Errorf("requests to broker 2: %v, want one with a-1 and b-0", calls)
	}
	if calls := f.remote[3]; len(calls) != 1 || !slices.Equal(calls[0], []txn.TopicPartition{tp("a", 2)}) {
		t.Errorf("requests to broker 3: %v, want one with a-2", calls)
	}
	for p, n := range f.written {
		if n != 1 {
			t.Errorf("%v written %d times, want once", p, n)
		}
	}
	if len(f.written) != 5 {
		t.Errorf("%d partitions written, want 5: %v", len(f.written), f.written)
	}
}

// TestMarkersRetryFollowsLeader: a partition whose leader moves, whose
// leader is unreachable, or that has no leader for a while is retried
// with its leader looked up again, until every marker is written.
func TestMarkersRetryFollowsLeader(t *testing.T) {
	f := newFakeRoutes(map[txn.TopicPartition]int32{
		tp("t", 0): 2,  // broker 2 says it is no longer the leader: moved to 3
		tp("t", 1): 3,  // broker 3 unreachable at first
		tp("t", 2): -1, // no leader yet, then this broker
	})
	unreachable := 2
	requests := 0
	f.onRemote = func(f *fakeRoutes, id int32, p txn.TopicPartition) (int16, error) {
		requests++
		if requests >= 2 {
			f.leaders[tp("t", 2)] = 1 // elected meanwhile
		}
		switch {
		case id == 3 && unreachable > 0:
			unreachable--
			return 0, errors.New("connection refused")
		case id == 2 && p == tp("t", 0):
			f.leaders[p] = 3
			return kerr.NotLeaderForPartition.Code, nil
		}
		return 0, nil
	}
	localFails := 1
	f.onLocal = func(f *fakeRoutes, p txn.TopicPartition) error {
		if localFails > 0 {
			localFails--
			return fmt.Errorf("t-2: %w", kerr.NotLeaderForPartition)
		}
		return nil
	}

	m := txnMarker{producerID: 9, epoch: 0, commit: false}
	parts := []txn.TopicPartition{tp("t", 0), tp("t", 1), tp("t", 2)}
	if err := writeMarkersRouted(context.Background(), f, 1, m, parts, quickRetry, discardLog()); err != nil {
		t.Fatalf("write markers: %v", err)
	}
	for _, p := range parts {
		if f.written[p] != 1 {
			t.Errorf("%v written %d times, want once", p, f.written[p])
		}
	}
	if len(f.remote[2]) != 1 {
		t.Errorf("%d requests to broker 2, want 1 (then the leader moved)", len(f.remote[2]))
	}
	if len(f.local) != 2 {
		t.Errorf("%d local attempts for t-2, want 2 (NOT_LEADER_OR_FOLLOWER, then written)", len(f.local))
	}
}

// TestMarkersTopicDeletedWhileRetrying: a partition that keeps failing
// counts as done once its topic is deleted.
func TestMarkersTopicDeletedWhileRetrying(t *testing.T) {
	f := newFakeRoutes(map[txn.TopicPartition]int32{tp("t", 0): 2, tp("u", 0): 2})
	f.onRemote = func(f *fakeRoutes, id int32, p txn.TopicPartition) (int16, error) {
		if p != tp("t", 0) {
			return 0, nil
		}
		if len(f.remote[2]) >= 3 {
			delete(f.leaders, p)
		}
		return kerr.UnknownTopicOrPartition.Code, nil
	}
	err := writeMarkersRouted(context.Background(), f, 1, txnMarker{producerID: 1}, []txn.TopicPartition{tp("t", 0), tp("u", 0)}, quickRetry, discardLog())
	if err != nil {
		t.Fatalf("write markers: %v", err)
	}
	if f.written[tp("u", 0)] != 1 || f.written[tp("t", 0)] != 0 {
		t.Errorf("written %v, want u-0 once and t-0 never", f.written)
	}
}

// TestMarkersUntilContextEnds: markers that cannot be written are retried
// until the coordinator gives them up, and the error says so.
func TestMarkersUntilContextEnds(t *testing.T) {
	f := newFakeRoutes(map[txn.TopicPartition]int32{tp("t", 0): 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.onRemote = func(f *fakeRoutes, id int32, p txn.TopicPartition) (int16, error) {
		if len(f.remote[2]) == 5 {
			cancel()
		}
		return 0, errors.New("connection refused")
	}
	err := writeMarkersRouted(ctx, f, 1, txnMarker{producerID: 1}, []txn.TopicPartition{tp("t", 0)}, quickRetry, discardLog())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if n := len(f.remote[2]); n != 5 {
		t.Errorf("%d attempts, want 5", n)
	}
}

// TestVerifyTxnCodes: the coordinator's answers map to the codes a
// producer acts on, as for the local coordinator.
func TestVerifyTxnCodes(t *testing.T) {
	cases := map[int16]int16{
		0:                                            0,
		kerr.InvalidTxnState.Code:                    kerr.InvalidTxnState.Code,
		kerr.InvalidProducerIDMapping.Code:           kerr.InvalidProducerIDMapping.Code,
		kerr.ProducerFenced.Code:                     kerr.InvalidProducerEpoch.Code,
		kerr.InvalidProducerEpoch.Code:               kerr.InvalidProducerEpoch.Code,
		kerr.NotCoordinator.Code:                     kerr.NotEnoughReplicas.Code,
		kerr.CoordinatorLoadInProgress.Code:          kerr.NotEnoughReplicas.Code,
		kerr.ConcurrentTransactions.Code:             kerr.NotEnoughReplicas.Code,
		kerr.UnknownTopicOrPartition.Code:            kerr.NotEnoughReplicas.Code,
		kerr.OperationNotAttempted.Code:              kerr.NotEnoughReplicas.Code,
		kerr.CoordinatorNotAvailable.Code:            kerr.NotEnoughReplicas.Code,
		kerr.TopicAuthorizationFailed.Code:           kerr.NotEnoughReplicas.Code,
		kerr.TransactionalIDAuthorizationFailed.Code: kerr.NotEnoughReplicas.Code,
	}
	for in, want := range cases {
		req := verifyTxnRequest("id", 5, 2, []txn.TopicPartition{tp("a", 0), tp("a", 1)})
		if req.Version != 4 || len(req.Transactions) != 1 || !req.Transactions[0].VerifyOnly {
			t.Fatalf("request %+v, want one v4 VerifyOnly transaction", req)
		}
		resp := kmsg.NewPtrAddPartitionsToTxnResponse()
		rtx := kmsg.NewAddPartitionsToTxnResponseTransaction()
		rt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
		rt.Topic = "a"
		rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
		rp.Partition, rp.ErrorCode = 0, in
		rt.Partitions = append(rt.Partitions, rp)
		rtx.Topics = append(rtx.Topics, rt)
		resp.Transactions = append(resp.Transactions, rtx)
		got := verifyTxnCodes(resp, []txn.TopicPartition{tp("a", 0), tp("a", 1)})
		if got[tp("a", 0)] != want {
			t.Errorf("coordinator code %v: got %v, want %v", kerr.ErrorForCode(in), kerr.ErrorForCode(got[tp("a", 0)]), kerr.ErrorForCode(want))
		}
		if got[tp("a", 1)] != kerr.InvalidTxnState.Code {
			t.Errorf("partition left out of the answer: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(got[tp("a", 1)]))
		}
	}
}

// peersTo is a peerConns whose every broker is the test server, reached
// as another broker would: a plain connection, no principal set.
func peersTo(t *testing.T, ts *testServer) *peerConns {
	t.Helper()
	p := newPeerConns(func(ctx context.Context, id int32) (*brokerConn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", ts.addr)
		if err != nil {
			return nil, err
		}
		return &brokerConn{nc: nc, fmt: kmsg.NewRequestFormatter(kmsg.FormatterClientID("test-broker"))}, nil
	})
	t.Cleanup(p.close)
	return p
}

// remoteRoutes is the broker's routing with every partition led by
// another broker, 99 (the test server itself, over the wire).
type remoteRoutes struct{ serverMarkerRoutes }

func (r remoteRoutes) leader(p txn.TopicPartition) (int32, bool) {
	if _, exists := partitionLeader(r.s, p.Topic, p.Partition); !exists {
		return -1, false
	}
	return 99, true
}

// TestTxnAcrossBrokersOverTheWire drives the receiving side of both
// inter-broker requests through the Kafka protocol: AddPartitionsToTxn v4
// VerifyOnly answers what the transaction holds without adding anything,
// and WriteTxnMarkers v1 writes the markers so read_committed consumers
// see the transaction.
func TestTxnAcrossBrokersOverTheWire(t *testing.T) {
	ts := startTxnServer(t)
	ts.createTopic(t, "wm", 3)
	rc := ts.raw(t)
	init := kmsg.NewPtrInitProducerIDRequest()
	init.Version, init.TransactionalID, init.TransactionTimeoutMillis = 4, kmsg.StringPtr("x-1"), 60000
	ir := rc.do(init).(*kmsg.InitProducerIDResponse)
	if ir.ErrorCode != 0 {
		t.Fatalf("init producer id: %v", kerr.ErrorForCode(ir.ErrorCode))
	}
	pid, epoch := ir.ProducerID, ir.ProducerEpoch
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.Version, add.TransactionalID, add.ProducerID, add.ProducerEpoch = 3, "x-1", pid, epoch
	add.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "wm", Partitions: []int32{0, 1}}}
	for _, rp := range rc.do(add).(*kmsg.AddPartitionsToTxnResponse).Topics[0].Partitions {
		if rp.ErrorCode != 0 {
			t.Fatalf("add partition %d: %v", rp.Partition, kerr.ErrorForCode(rp.ErrorCode))
		}
	}

	peers := peersTo(t, ts)
	ctx := context.Background()
	verify := func(pid int64, epoch int16, tps ...txn.TopicPartition) map[txn.TopicPartition]int16 {
		return ts.verifyTxnRemote(ctx, peers, 99, "x-1", pid, epoch, tps)
	}
	got := verify(pid, epoch, tp("wm", 0), tp("wm", 1), tp("wm", 2))
	if got[tp("wm", 0)] != 0 || got[tp("wm", 1)] != 0 || got[tp("wm", 2)] != kerr.InvalidTxnState.Code {
		t.Fatalf("verify: %v, want wm-0 and wm-1 in the transaction, wm-2 INVALID_TXN_STATE", got)
	}
	if got := verify(pid, epoch+1, tp("wm", 0)); got[tp("wm", 0)] != kerr.InvalidProducerEpoch.Code {
		t.Errorf("verify with another epoch: %v, want INVALID_PRODUCER_EPOCH", kerr.ErrorForCode(got[tp("wm", 0)]))
	}
	if got := verify(pid+1, epoch, tp("wm", 0)); got[tp("wm", 0)] != kerr.InvalidProducerIDMapping.Code {
		t.Errorf("verify with another producer id: %v, want INVALID_PRODUCER_ID_MAPPING", kerr.ErrorForCode(got[tp("wm", 0)]))
	}
	// Verifying added nothing: wm-2 is still out of the transaction.
	if got := verify(pid, epoch, tp("wm", 2)); got[tp("wm", 2)] != kerr.InvalidTxnState.Code {
		t.Errorf("wm-2 after a verification: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(got[tp("wm", 2)]))
	}

	// The producer's batches, accepted after the (local) verification.
	for p := range int32(2) {
		batch := proto.AppendBatch(nil, proto.BatchSpec{FirstTimestamp: time.Now().UnixMilli(), ProducerID: pid, ProducerEpoch: epoch, BaseSequence: 0, Transactional: true},
			[]proto.Record{{Value: fmt.Appendf(nil, "v%d", p)}})
		req := produceReq(-1, "wm", p, batch)
		req.TransactionID = kmsg.StringPtr("x-1")
		if code := producePart(rc.do(req)).ErrorCode; code != 0 {
			t.Fatalf("produce to wm-%d: %v", p, kerr.ErrorForCode(code))
		}
	}

	// An unknown partition is refused by the leader...
	codes, err := sendWriteTxnMarkers(ctx, peers, 99, txnMarker{producerID: pid, epoch: epoch, commit: true}, []txn.TopicPartition{tp("wm", 7)})
	if err != nil || codes[tp("wm", 7)] != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("marker for wm-7: %v %v, want UNKNOWN_TOPIC_OR_PARTITION", codes, err)
	}
	// ...and the routed writer sends the markers of both partitions to
	// "broker 99"; a deleted topic's partition is skipped.
	routes := remoteRoutes{serverMarkerRoutes{s: ts.Server, peers: peers}}
	m := txnMarker{producerID: pid, epoch: epoch, commit: true}
	if err := writeMarkersRouted(ctx, routes, ts.cfg.NodeID, m, []txn.TopicPartition{tp("wm", 0), tp("wm", 1), tp("deleted", 0)}, quickRetry, discardLog()); err != nil {
		t.Fatalf("write markers over the wire: %v", err)
	}
	cl := ts.client(t, kgo.ConsumeTopics("wm"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var seen []string
	for len(seen) < 2 {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("read_committed consumer saw %v, want v0 and v1 once committed", seen)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { seen = append(seen, string(r.Value)) })
	}
	if slices.Sort(seen); !slices.Equal(seen, []string{"v0", "v1"}) {
		t.Fatalf("read_committed consumer saw %v, want v0 and v1", seen)
	}
}

// TestTxnAcrossBrokersNeedsClusterAction: with an authorizer, a broker
// whose principal lacks CLUSTER_ACTION cannot verify or write markers; the
// producer gets INVALID_TXN_STATE (as in Kafka, not an authorization error
// about a permission that is not its own).
func TestTxnAcrossBrokersNeedsClusterAction(t *testing.T) {
	ts := startAuthzServer(t)
	ts.adminTopic(t, "data", 1)
	peers := peersTo(t, ts)
	ctx := context.Background()
	got := ts.verifyTxnRemote(ctx, peers, 99, "tx", 1, 0, []txn.TopicPartition{tp("data", 0)})
	if got[tp("data", 0)] != kerr.InvalidTxnState.Code {
		t.Errorf("verification without CLUSTER_ACTION: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(got[tp("data", 0)]))
	}
	codes, err := sendWriteTxnMarkers(ctx, peers, 99, txnMarker{producerID: 1, commit: true}, []txn.TopicPartition{tp("data", 0)})
	if err != nil || codes[tp("data", 0)] != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("markers without CLUSTER_ACTION: %v %v, want CLUSTER_AUTHORIZATION_FAILED", codes, err)
	}
	if hw := ts.hw(t, "data", 0); hw != 0 {
		t.Errorf("high watermark %d after refused markers, want 0", hw)
	}
}

// TestPeerConnsReuseAndRedial: connections are reused, and one the other
// broker closed meanwhile is replaced without failing the request.
func TestPeerConnsReuseAndRedial(t *testing.T) {
	ts := startServer(t)
	var mu sync.Mutex
	dials := 0
	var last net.Conn
	p := newPeerConns(func(ctx context.Context, id int32) (*brokerConn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", ts.addr)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		dials++
		last = nc
		mu.Unlock()
		return &brokerConn{nc: nc, fmt: kmsg.NewRequestFormatter(kmsg.FormatterClientID("test-broker"))}, nil
	})
	defer p.close()
	ping := func() {
		t.Helper()
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 12
		req.Topics = []kmsg.MetadataRequestTopic{}
		if err := p.call(context.Background(), 5, req, kmsg.NewPtrMetadataResponse(), 5*time.Second); err != nil {
			t.Fatalf("call: %v", err)
		}
	}
	ping()
	ping()
	if dials != 1 {
		t.Fatalf("%d dials for two sequential requests, want 1", dials)
	}
	// The idle connection dies (as when the peer restarts; closed here
	// from this side): the next request dials again and succeeds.
	mu.Lock()
	last.Close()
	mu.Unlock()
	ping()
	if dials != 2 {
		t.Fatalf("%d dials after the idle connection died, want 2", dials)
	}
}
