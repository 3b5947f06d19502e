package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// clusterArgs are the settings every test cluster runs with: failure
// detection in about two seconds (a broker is fenced after
// broker.session.timeout.ms without a heartbeat; a follower leaves the ISR
// after replica.lag.time.max.ms) and replicated internal topics, so the
// tests exercise failover instead of waiting for it. offsets.topic has
// three partitions rather than fifty to keep the metadata small.
var clusterArgs = []string{
	"--set", "broker.session.timeout.ms=2000",
	"--set", "broker.heartbeat.interval.ms=300",
	"--set", "replica.lag.time.max.ms=2000",
	"--set", "default.replication.factor=3",
	"--set", "min.insync.replicas=2",
	"--set", "offsets.topic.replication.factor=3",
	"--set", "offsets.topic.num.partitions=3",
	"--set", "transaction.state.log.replication.factor=3",
	"--set", "group.initial.rebalance.delay.ms=0",
}

// clusterNode is one broker process of a test cluster. Node N owns the
// loopback address 127.0.0.1N for all its ports. Its Kafka listener
// CLIENT is what the test's clients use, directly; its REPL listener and
// its Raft port are advertised to the other nodes as fault-proxy
// addresses, so every byte between nodes crosses the test's faultNet.
type clusterNode struct {
	*brokerProc // Addr is ClientAddr

	ID         int32
	IP         string
	ClientAddr string // CLIENT://, advertised as is
	ReplAddr   string // REPL:// as bound
	ReplProxy  string // REPL:// as advertised (inter.broker.listener.name)
	RaftAddr   string // controller-listen
	RaftProxy  string // this voter's address in controller-voters: localhost:<RaftAddr's port>
	AdminAddr  string

	// cl is pinned to ClientAddr: requests sent through its seed broker
	// are answered by this node and no other.
	cl *kgo.Client
}

// testCluster is a set of broker processes forming one cluster.
type testCluster struct {
	t      *testing.T
	Nodes  []*clusterNode // Nodes[i].ID == i+1
	Net    *faultNet
	ledger leaderLedger
}

// startCluster starts n combined broker+controller nodes, all voters,
// and waits until every node serves Kafka and lists all n brokers. extra
// are more serve arguments for every node.
//
// At cleanup the nodes are killed, not stopped: cleanup is no place to
// test controlled shutdown, and a graceful stop of the last nodes of a
// quorum can only wait for timeouts.
func startCluster(t *testing.T, n int, extra ...string) *testCluster {
	t.Helper()
	requireBinary(t)
	requireNodeIPs(t, n)
	ipOf := map[int]string{}
	for i := 1; i <= n; i++ {
		ipOf[i] = nodeIP(i)
	}
	c := &testCluster{t: t, Net: newFaultNet(t, ipOf)}
	c.ledger.seen = map[ledgerKey]ledgerClaim{}

	keep := os.Getenv("E2E_KEEP") != ""
	base := t.TempDir()
	if keep {
		var err error
		if base, err = os.MkdirTemp("", "strata-e2e-"+sanitize(t.Name())+"-"); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= n; i++ {
		nd := &clusterNode{ID: int32(i), IP: ipOf[i]}
		nd.ClientAddr = freeAddrOn(t, nd.IP)
		nd.ReplAddr = freeAddrOn(t, nd.IP)
		nd.AdminAddr = freeAddrOn(t, nd.IP)
		nd.ReplProxy = c.Net.Forward(i, nd.ReplAddr)
		nd.RaftAddr, nd.RaftProxy = c.Net.ForwardSamePort(i)
		c.Nodes = append(c.Nodes, nd)
	}
	var voters []string
	for _, nd := range c.Nodes {
		voters = append(voters, fmt.Sprintf("%d@%s", nd.ID, nd.RaftProxy))
	}
	for _, nd := range c.Nodes {
		dir := filepath.Join(base, fmt.Sprintf("node%d", nd.ID))
		// --set wins over every other layer, so it overrides what
		// brokerProc.launch passes for a single node (--node-id=1; its
		// --listen is ignored once listeners is set) and fastArgs.
		args := append(append([]string{}, fastArgs...),
			"--set", fmt.Sprintf("node-id=%d", nd.ID),
			"--set", "controller-listen="+nd.RaftAddr,
			"--set", "controller-voters="+strings.Join(voters, ","),
			"--set", fmt.Sprintf("listeners=CLIENT://%s,REPL://%s", nd.ClientAddr, nd.ReplAddr),
			"--set", fmt.Sprintf("advertised.listeners=CLIENT://%s,REPL://%s", nd.ClientAddr, nd.ReplProxy),
			"--set", "listener.security.protocol.map=CLIENT:PLAINTEXT,REPL:PLAINTEXT",
			"--set", "inter.broker.listener.name=REPL",
			"--set", "admin-listen="+nd.AdminAddr,
		)
		args = append(append(args, clusterArgs...), extra...)
		nd.brokerProc = &brokerProc{
			t:       t,
			DataDir: filepath.Join(dir, "data"),
			Addr:    nd.ClientAddr,
			args:    args,
			logPath: filepath.Join(dir, "strata.log"),
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(nd.ClientAddr), kgo.DialTimeout(time.Second),
			kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		nd.cl = cl
	}
	t.Cleanup(func() {
		c.killAll()
		for _, nd := range c.Nodes {
			nd.cl.Close()
			if t.Failed() {
				t.Logf("node %d log (%s):\n%s", nd.ID, nd.logPath, tail(nd.logPath, 24<<10))
			}
		}
		if keep {
			t.Logf("kept %s", base)
		}
	})
	c.StartAll()
	return c
}

// freeAddrOn is freeAddr on a given IP.
func freeAddrOn(t *testing.T, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// StartAll launches every node that is not running, and only then waits
// for them: a node may not serve before a quorum of voters is up, so
// starting them one by one could wait forever.
func (c *testCluster) StartAll() {
	c.t.Helper()
	var started []*clusterNode
	for _, nd := range c.Nodes {
		if nd.running() {
			continue
		}
		nd.launch()
		started = append(started, nd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, nd := range started {
		nd.WaitReady(ctx)
	}
	c.waitBrokers(ctx)
}

// running reports whether the node's process has been started and has
// not exited.
func (nd *clusterNode) running() bool {
	nd.mu.Lock()
	started := nd.cmd != nil
	nd.mu.Unlock()
	if !started {
		return false
	}
	select {
	case <-nd.exited():
		return false
	default:
		return true
	}
}

// restartIn starts a stopped node again, on the same data dir and ports,
// and waits until it serves and the cluster lists it.
func (nd *clusterNode) restartIn(c *testCluster) {
	c.t.Helper()
	nd.Restart()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.waitBrokers(ctx)
}

// killAll SIGKILLs every running node at once and waits for them.
func (c *testCluster) killAll() {
	for _, nd := range c.Nodes {
		if nd.running() {
			nd.signal(syscall.SIGKILL)
		}
	}
	for _, nd := range c.Nodes {
		nd.mu.Lock()
		done := nd.done
		nd.mu.Unlock()
		if done != nil {
			<-done
		}
	}
}

// TerminateAll sends SIGTERM to every node at once and waits up to limit
// for all of them to exit; it fails the test (and kills the rest) if one
// does not, or exits with an error.
func (c *testCluster) TerminateAll(limit time.Duration) {
	c.t.Helper()
	for _, nd := range c.Nodes {
		nd.signal(syscall.SIGTERM)
	}
	deadline := time.After(limit)
	for _, nd := range c.Nodes {
		select {
		case <-nd.exited():
		case <-deadline:
			c.killAll()
			c.t.Fatalf("node %d did not exit within %v of SIGTERM", nd.ID, limit)
		}
		var ee *exec.ExitError
		if err := nd.exitErr(); errors.As(err, &ee) {
			c.t.Errorf("node %d exited with code %d after SIGTERM, want 0", nd.ID, ee.ExitCode())
		} else if err != nil {
			c.t.Errorf("node %d: %v", nd.ID, err)
		}
	}
}

// Node returns the node with the given broker id.
func (c *testCluster) Node(id int32) *clusterNode {
	c.t.Helper()
	if id < 1 || int(id) > len(c.Nodes) {
		c.t.Fatalf("no node %d", id)
	}
	return c.Nodes[id-1]
}

// live are the nodes whose process runs.
func (c *testCluster) live() []*clusterNode {
	var out []*clusterNode
	for _, nd := range c.Nodes {
		if nd.running() {
			out = append(out, nd)
		}
	}
	return out
}

// clientAddrs are the CLIENT listeners of the given nodes (all when none).
func (c *testCluster) clientAddrs(nodes ...*clusterNode) []string {
	if len(nodes) == 0 {
		nodes = c.Nodes
	}
	var out []string
	for _, nd := range nodes {
		out = append(out, nd.ClientAddr)
	}
	return out
}

// Client returns a franz-go client seeded with every node, closed at
// cleanup. Metadata may be refreshed every 250 ms (kgo's default
// minimum age is 5 s), so that the client finds a new leader about as
// fast as the cluster elects it.
func (c *testCluster) Client(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	base := []kgo.Opt{
		kgo.SeedBrokers(c.clientAddrs()...),
		kgo.MetadataMinAge(250 * time.Millisecond),
		kgo.DialTimeout(2 * time.Second),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// Admin returns a kadm client on c.Client.
func (c *testCluster) Admin() *kadm.Client {
	return kadm.NewClient(c.Client(kgo.MetadataMinAge(10 * time.Millisecond)))
}

// request sends req to node nd itself (never to another broker) with a
// short deadline.
func (nd *clusterNode) request(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := nd.cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", nd.ID, err)
	}
	return resp, nil
}

// Metadata asks node nd for topics (none: brokers only) and records
// every partition leader it claims in the cluster's ledger.
func (c *testCluster) Metadata(ctx context.Context, nd *clusterNode, topics ...string) (*kmsg.MetadataResponse, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	for _, tp := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(tp)
		req.Topics = append(req.Topics, rt)
	}
	kr, err := nd.request(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := kr.(*kmsg.MetadataResponse)
	c.ledger.observe(nd.ID, resp)
	return resp, nil
}

// partitionView is one partition as a node's Metadata describes it.
type partitionView struct {
	Leader, Epoch int32
	Replicas, ISR []int32
	Err           int16
}

func (v partitionView) String() string {
	s := fmt.Sprintf("leader %d epoch %d replicas %v isr %v", v.Leader, v.Epoch, v.Replicas, v.ISR)
	if v.Err != 0 {
		s += " error " + kerr.ErrorForCode(v.Err).Error()
	}
	return s
}

// Partitions returns node nd's view of topic's partitions.
func (c *testCluster) Partitions(ctx context.Context, nd *clusterNode, topic string) (map[int32]partitionView, error) {
	resp, err := c.Metadata(ctx, nd, topic)
	if err != nil {
		return nil, err
	}
	for _, rt := range resp.Topics {
		if rt.Topic == nil || *rt.Topic != topic {
			continue
		}
		if rt.ErrorCode != 0 {
			return nil, fmt.Errorf("node %d: topic %s: %w", nd.ID, topic, kerr.ErrorForCode(rt.ErrorCode))
		}
		out := map[int32]partitionView{}
		for _, rp := range rt.Partitions {
			out[rp.Partition] = partitionView{rp.Leader, rp.LeaderEpoch, rp.Replicas, rp.ISR, rp.ErrorCode}
		}
		return out, nil
	}
	return nil, fmt.Errorf("node %d: topic %s not in Metadata", nd.ID, topic)
}

// partitionFromAny is the first answer among the live nodes, preferring
// nodes other than skip (an isolated node may have a stale view).
func (c *testCluster) partitionFromAny(ctx context.Context, topic string, p int32, skip ...int32) (partitionView, error) {
	var errs []error
	for _, nd := range c.live() {
		if slices.Contains(skip, nd.ID) {
			continue
		}
		ps, err := c.Partitions(ctx, nd, topic)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		v, ok := ps[p]
		if !ok {
			errs = append(errs, fmt.Errorf("node %d: no partition %d", nd.ID, p))
			continue
		}
		return v, nil
	}
	return partitionView{}, errors.Join(errs...)
}

// waitBrokers waits until every live node lists every live node as a
// broker.
func (c *testCluster) waitBrokers(ctx context.Context) {
	c.t.Helper()
	waitFor(ctx, c.t, "every live node to list every live broker", func() (bool, string) {
		var want []int32
		for _, nd := range c.live() {
			want = append(want, nd.ID)
		}
		for _, nd := range c.live() {
			resp, err := c.Metadata(ctx, nd)
			if err != nil {
				return false, err.Error()
			}
			var got []int32
			for _, b := range resp.Brokers {
				got = append(got, b.NodeID)
			}
			sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
			for _, id := range want {
				if !slices.Contains(got, id) {
					return false, fmt.Sprintf("node %d lists brokers %v, want %v", nd.ID, got, want)
				}
			}
		}
		return true, ""
	})
}

// waitLeader waits until topic's partition p has a live leader other than
// old with an epoch above oldEpoch, as the live nodes other than skip see
// it, and returns it.
func (c *testCluster) waitLeader(ctx context.Context, topic string, p, old, oldEpoch int32, skip ...int32) partitionView {
	c.t.Helper()
	var v partitionView
	waitUpTo(ctx, c.t, 30*time.Second, fmt.Sprintf("a new leader of %s/%d (was %d at epoch %d)", topic, p, old, oldEpoch), func() (bool, string) {
		var err error
		v, err = c.partitionFromAny(ctx, topic, p, skip...)
		if err != nil {
			return false, err.Error()
		}
		if v.Leader < 0 || v.Leader == old || v.Epoch <= oldEpoch || !c.Node(v.Leader).running() {
			return false, v.String()
		}
		return true, ""
	})
	return v
}

// waitFullISR waits until every partition of each topic has a leader and
// all its replicas in the ISR, as every live node sees it.
func (c *testCluster) waitFullISR(ctx context.Context, d time.Duration, topics ...string) {
	c.t.Helper()
	waitUpTo(ctx, c.t, d, fmt.Sprintf("full ISRs of %v", topics), func() (bool, string) {
		for _, nd := range c.live() {
			for _, topic := range topics {
				ps, err := c.Partitions(ctx, nd, topic)
				if err != nil {
					return false, err.Error()
				}
				if len(ps) == 0 {
					return false, fmt.Sprintf("node %d: %s has no partitions", nd.ID, topic)
				}
				for p, v := range ps {
					if v.Err != 0 || v.Leader < 0 || len(v.ISR) != len(v.Replicas) {
						return false, fmt.Sprintf("node %d: %s/%d: %s", nd.ID, topic, p, v)
					}
				}
			}
		}
		return true, ""
	})
}

// activeController is the Raft leader of the metadata quorum, from
// DescribeQuorum (LeaderId), as the first live node that knows answers.
func (c *testCluster) activeController(ctx context.Context) (int32, error) {
	var errs []error
	for _, nd := range c.live() {
		req := kmsg.NewPtrDescribeQuorumRequest()
		rt := kmsg.NewDescribeQuorumRequestTopic()
		rt.Topic = "__cluster_metadata"
		rp := kmsg.NewDescribeQuorumRequestTopicPartition()
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		kr, err := nd.request(ctx, req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		resp := kr.(*kmsg.DescribeQuorumResponse)
		if resp.ErrorCode != 0 {
			errs = append(errs, fmt.Errorf("node %d: DescribeQuorum: %w", nd.ID, kerr.ErrorForCode(resp.ErrorCode)))
			continue
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			errs = append(errs, fmt.Errorf("node %d: DescribeQuorum: %d topics", nd.ID, len(resp.Topics)))
			continue
		}
		qp := resp.Topics[0].Partitions[0]
		if qp.ErrorCode != 0 || qp.LeaderID < 0 {
			errs = append(errs, fmt.Errorf("node %d: DescribeQuorum: leader %d, error %v", nd.ID, qp.LeaderID, kerr.ErrorForCode(qp.ErrorCode)))
			continue
		}
		return qp.LeaderID, nil
	}
	return -1, errors.Join(errs...)
}

// waitController waits until a live node other than old is the active
// controller and returns it.
func (c *testCluster) waitController(ctx context.Context, old int32) int32 {
	c.t.Helper()
	var id int32
	waitUpTo(ctx, c.t, 30*time.Second, fmt.Sprintf("a new active controller (was %d)", old), func() (bool, string) {
		var err error
		id, err = c.activeController(ctx)
		if err != nil {
			return false, err.Error()
		}
		if id == old || !c.Node(id).running() {
			return false, fmt.Sprintf("controller %d", id)
		}
		return true, ""
	})
	return id
}

// logCoordinators logs, for a failure message, which node each live node
// names as group's coordinator and how it sees __consumer_offsets.
func (c *testCluster) logCoordinators(ctx context.Context, group string) {
	c.t.Helper()
	for _, nd := range c.live() {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKeys = []string{group}
		req.CoordinatorKey = group
		kr, err := nd.request(ctx, req)
		if err != nil {
			c.t.Logf("node %d: FindCoordinator: %v", nd.ID, err)
		} else {
			c.t.Logf("node %d: FindCoordinator: %+v", nd.ID, kr.(*kmsg.FindCoordinatorResponse))
		}
		ps, err := c.Partitions(ctx, nd, "__consumer_offsets")
		c.t.Logf("node %d: __consumer_offsets %v (%v)", nd.ID, ps, err)
	}
}

// createReplicatedTopic creates topic with rf replicas per partition.
func createReplicatedTopic(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, partitions int32, rf int16, configs map[string]*string) kadm.CreateTopicResponse {
	t.Helper()
	resp, err := adm.CreateTopic(ctx, partitions, rf, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s (RF %d): %v", topic, rf, err)
	}
	return resp
}

// committedOffsets polls up to d until group's committed offsets of
// topic are want (and no other partition has one); if they never are it
// says what OffsetFetch last answered.
//
// Each attempt uses a new client seeded with the live nodes, so that what
// is checked is the cluster's answer, not a client's cached coordinator.
func (c *testCluster) committedOffsets(ctx context.Context, d time.Duration, group, topic string, want map[int32]int64) (bool, string) {
	return pollUpTo(ctx, d, func() (bool, string) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.clientAddrs(c.live()...)...), kgo.DialTimeout(time.Second),
			kgo.RetryTimeout(3*time.Second))
		if err != nil {
			return false, err.Error()
		}
		defer cl.Close()
		resps, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
		if err != nil {
			return false, err.Error()
		}
		got := map[int32]int64{}
		var errs []error
		resps.Each(func(o kadm.OffsetResponse) {
			if o.Err != nil {
				errs = append(errs, fmt.Errorf("%s/%d: %w", o.Topic, o.Partition, o.Err))
			} else if o.Topic == topic {
				got[o.Partition] = o.At
			}
		})
		if len(errs) > 0 || !maps.Equal(got, want) {
			return false, fmt.Sprintf("committed %v, want %v (errors: %v)", got, want, errors.Join(errs...))
		}
		return true, ""
	})
}

// pollUpTo is waitFor that returns instead of failing the test, for
// checks after which the test can usefully go on.
func pollUpTo(ctx context.Context, d time.Duration, cond func() (bool, string)) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		ok, why := cond()
		if ok {
			return true, ""
		}
		select {
		case <-ctx.Done():
			return false, why
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// leaderLedger remembers which broker each node named as the leader of
// a partition under each leader epoch: two different leaders under one
// epoch is split brain, whoever reported them.
type leaderLedger struct {
	mu   sync.Mutex
	seen map[ledgerKey]ledgerClaim
	bad  []string
}

type ledgerKey struct {
	topic     string
	partition int32
	epoch     int32
}

type ledgerClaim struct {
	leader, reporter int32
}

func (l *leaderLedger) observe(reporter int32, resp *kmsg.MetadataResponse) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, rt := range resp.Topics {
		if rt.Topic == nil {
			continue
		}
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 || rp.Leader < 0 || rp.LeaderEpoch < 0 {
				continue
			}
			k := ledgerKey{*rt.Topic, rp.Partition, rp.LeaderEpoch}
			if prev, ok := l.seen[k]; ok {
				if prev.leader != rp.Leader {
					l.bad = append(l.bad, fmt.Sprintf("%s/%d epoch %d: node %d said leader %d, node %d said leader %d",
						k.topic, k.partition, k.epoch, prev.reporter, prev.leader, reporter, rp.Leader))
				}
				continue
			}
			l.seen[k] = ledgerClaim{rp.Leader, reporter}
		}
	}
}

// checkNoSplitBrain fails the test for every epoch that had two leaders
// in any Metadata answer the test received.
func (c *testCluster) checkNoSplitBrain() {
	c.t.Helper()
	c.ledger.mu.Lock()
	defer c.ledger.mu.Unlock()
	for _, b := range c.ledger.bad {
		c.t.Errorf("two leaders under one epoch: %s", b)
	}
}

// seqProducer writes numbered records with an idempotent acks=all
// producer until stopped: record i has value i and goes to partition
// i % partitions, so every partition must hold an increasing subsequence
// and every acknowledged number exactly once, at the offset acknowledged.
type seqProducer struct {
	t          *testing.T
	topic      string
	partitions int32
	cl         *kgo.Client

	mu       sync.Mutex
	acked    map[int]ackPos
	perPart  map[int32]int64 // acknowledgements per partition
	failed   int
	lastErr  error
	produced atomic.Int64

	stop atomic.Bool
	wg   sync.WaitGroup
}

type ackPos struct {
	partition int32
	offset    int64
}

func startSeqProducer(ctx context.Context, c *testCluster, topic string, partitions int32) *seqProducer {
	sp := &seqProducer{
		t: c.t, topic: topic, partitions: partitions,
		acked: map[int]ackPos{}, perPart: map[int32]int64{},
	}
	sp.cl = c.Client(
		kgo.ClientID("e2e-cluster-producer"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.MaxBufferedRecords(1000),
		kgo.UnknownTopicRetries(-1),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
	)
	sp.wg.Add(1)
	go func() {
		defer sp.wg.Done()
		// About a thousand records a second: enough to catch every kill
		// mid-write, few enough to read back in seconds.
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; !sp.stop.Load() && ctx.Err() == nil; i++ {
			if i%10 == 0 {
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
			}
			n := i
			r := &kgo.Record{Topic: topic, Partition: int32(i) % partitions, Value: []byte(strconv.Itoa(i))}
			// Blocks while MaxBufferedRecords are in flight.
			sp.cl.Produce(ctx, r, func(r *kgo.Record, err error) {
				sp.mu.Lock()
				defer sp.mu.Unlock()
				if err != nil {
					sp.failed++
					sp.lastErr = err
					return
				}
				sp.acked[n] = ackPos{r.Partition, r.Offset}
				sp.perPart[r.Partition]++
			})
			sp.produced.Store(int64(i + 1))
		}
	}()
	return sp
}

// acks is how many records were acknowledged on each partition so far.
func (sp *seqProducer) acks() map[int32]int64 {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return maps.Clone(sp.perPart)
}

// waitProgress waits until every partition has n more acknowledgements
// than in since, within d.
func (sp *seqProducer) waitProgress(ctx context.Context, d time.Duration, what string, since map[int32]int64, n int64) {
	sp.t.Helper()
	waitUpTo(ctx, sp.t, d, what, func() (bool, string) {
		now := sp.acks()
		for p := range sp.partitions {
			if now[p] < since[p]+n {
				sp.mu.Lock()
				last := sp.lastErr
				sp.mu.Unlock()
				return false, fmt.Sprintf("acks per partition %v, were %v; %d produced; last error %v", now, since, sp.produced.Load(), last)
			}
		}
		return true, ""
	})
}

// Stop ends producing and waits for every record's outcome.
func (sp *seqProducer) Stop(ctx context.Context) {
	sp.t.Helper()
	sp.stop.Store(true)
	sp.wg.Wait()
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := sp.cl.Flush(fctx); err != nil {
		sp.t.Fatalf("flush: %v", err)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.t.Logf("produced %d, acknowledged %d, failed %d (last error %v)", sp.produced.Load(), len(sp.acked), sp.failed, sp.lastErr)
}

// check verifies a complete read of the topic: offsets dense from 0, each
// partition's numbers increasing and produced there, no number twice,
// and every acknowledged number at its acknowledged offset.
func (sp *seqProducer) check(t *testing.T, what string, logged map[int32][]offsetRec) {
	t.Helper()
	total := int(sp.produced.Load())
	problems := 0
	report := func(format string, args ...any) {
		t.Helper()
		if problems++; problems <= 20 {
			t.Errorf("%s: "+format, append([]any{what}, args...)...)
		}
	}
	seen := map[int]ackPos{}
	for p, rs := range logged {
		prev := -1
		for i, r := range rs {
			if want := int64(i); r.Offset != want {
				report("partition %d: record %d is at offset %d, want %d (gap or duplicate offset)", p, i, r.Offset, want)
			}
			n, err := strconv.Atoi(string(r.Value))
			if err != nil || n < 0 || n >= total || int32(n)%sp.partitions != p {
				report("partition %d offset %d: record %q was never produced there", p, r.Offset, r.Value)
				continue
			}
			if first, dup := seen[n]; dup {
				report("record %d twice: at %d/%d and %d/%d", n, first.partition, first.offset, p, r.Offset)
			}
			seen[n] = ackPos{p, r.Offset}
			if n <= prev {
				report("partition %d: record %d at offset %d after record %d (order lost)", p, n, r.Offset, prev)
			}
			prev = n
		}
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	lost := 0
	for n, at := range sp.acked {
		got, ok := seen[n]
		switch {
		case !ok:
			if lost++; lost <= 10 {
				report("acknowledged record %d (at %d/%d) is missing", n, at.partition, at.offset)
			}
		case got != at:
			report("acknowledged record %d at %d/%d is in the log at %d/%d", n, at.partition, at.offset, got.partition, got.offset)
		}
	}
	if lost > 0 {
		t.Errorf("%s: %d of %d acknowledged records lost", what, lost, len(sp.acked))
	}
	if problems > 20 {
		t.Errorf("%s: %d problems in all (first 20 shown)", what, problems)
	}
}
