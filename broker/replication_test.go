package broker

// In-process clusters: several Servers in this test process, each a Raft
// voter on loopback, so replication runs under the race detector. The
// end-to-end tests (cmd/strata/e2e) kill real processes.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type testCluster struct {
	t     *testing.T
	cfgs  []Config
	nodes []*clusterNode
}

type clusterNode struct {
	srv    *Server
	addr   string
	cancel context.CancelFunc
	done   chan error
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startTestCluster starts n combined broker+controller nodes (ids 1..n).
func startTestCluster(t *testing.T, n int, mutate ...func(*Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, cfgs: make([]Config, n), nodes: make([]*clusterNode, n)}
	var voters []string
	for i := range n {
		cfg := DefaultConfig()
		cfg.NodeID = int32(i + 1)
		cfg.DataDir = t.TempDir()
		cfg.Listen = freeLoopbackAddr(t)
		cfg.ControllerAddr = freeLoopbackAddr(t)
		cfg.AdminListen = ""
		cfg.GroupInitialRebalanceDelayMs = 0
		cfg.OffsetsTopicNumPartitions = 3
		cfg.BrokerSessionTimeoutMs = 1500
		cfg.BrokerHeartbeatIntervalMs = 100
		cfg.ReplicaLagTimeMaxMs = 1500
		cfg.ReplicaFetchBackoffMs = 100
		cfg.ReplicaFetchWaitMaxMs = 200
		cfg.DefaultReplicationFactor = int16(n)
		cfg.ShutdownTimeout = 5 * time.Second
		if testing.Verbose() {
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", i+1)
		}
		for _, m := range mutate {
			m(&cfg)
		}
		tc.cfgs[i] = cfg
		voters = append(voters, fmt.Sprintf("%d@%s", i+1, cfg.ControllerAddr))
	}
	for i := range tc.cfgs {
		tc.cfgs[i].ControllerVoters = strings.Join(voters, ",")
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = tc.start(i)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for i := range tc.nodes {
			tc.stop(i)
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return tc
}

func (tc *testCluster) start(i int) error {
	s, err := New(tc.cfgs[i])
	if err != nil {
		return fmt.Errorf("node %d: %w", i+1, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &clusterNode{srv: s, cancel: cancel, done: make(chan error, 1)}
	if a := s.Addr(); a != nil { // nil on a controller-only node
		n.addr = a.String()
	}
	go func() { n.done <- s.Run(ctx) }()
	tc.nodes[i] = n
	return nil
}

// stop shuts node i down (idempotent). Controlled shutdown follows the
// node's config.
func (tc *testCluster) stop(i int) {
	n := tc.nodes[i]
	if n == nil {
		return
	}
	tc.nodes[i] = nil
	n.cancel()
	if err := <-n.done; err != nil {
		tc.t.Errorf("node %d: Run: %v", i+1, err)
	}
}

func (tc *testCluster) seeds() []string {
	var out []string
	for _, n := range tc.nodes {
		if n != nil && n.addr != "" {
			out = append(out, n.addr)
		}
	}
	return out
}

func (tc *testCluster) client(opts ...kgo.Opt) *kgo.Client {
	tc.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(tc.seeds()...), kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }), kgo.MetadataMinAge(10 * time.Millisecond)}, opts...)...)
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.t.Cleanup(cl.Close)
	return cl
}

// partition returns node index i's view of topic's partition p.
func (tc *testCluster) partition(i int, topic string, p int32) *partition {
	n := tc.nodes[i]
	if n == nil {
		return nil
	}
	t, ok := n.srv.parts.topic(topic)
	if !ok || int(p) >= len(t.parts) {
		return nil
	}
	return t.parts[p]
}

// leaderIndex is the node index leading topic-p in committed metadata as
// seen by a running node, or -1.
func (tc *testCluster) leaderIndex(topic string, p int32) int {
	for _, n := range tc.nodes {
		if n == nil {
			continue
		}
		mt, ok := n.srv.meta.Topic(topic)
		if !ok || int(p) >= len(mt.Partitions) {
			return -1
		}
		return int(mt.Partitions[p].Leader) - 1
	}
	return -1
}

func (tc *testCluster) isr(topic string, p int32) []int32 {
	for _, n := range tc.nodes {
		if n != nil {
			if mt, ok := n.srv.meta.Topic(topic); ok {
				return mt.Partitions[p].ISR
			}
		}
	}
	return nil
}

// createTopic creates a topic and waits until every running node has
// applied it and taken its role, as clients would by retrying.
func (tc *testCluster) createTopic(topic string, partitions int32, rf int16, configs map[string]*string) {
	tc.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(tc.seeds()...))
	if err != nil {
		tc.t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), partitions, rf, configs, topic); err != nil {
		tc.t.Fatal(err)
	}
	for i, n := range tc.nodes {
		if n == nil || n.srv.controllerOnly {
			continue
		}
		waitFor(tc.t, fmt.Sprintf("node %d to apply topic %s", i+1, topic), func() bool {
			t, ok := n.srv.parts.topic(topic)
			if !ok {
				return false
			}
			for _, p := range t.parts {
				if p != nil && p.state() == nil {
					return false
				}
			}
			return true
		})
	}
}

func produceNumbered(t *testing.T, cl *kgo.Client, topic string, from, to int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := from; i < to; i++ {
		r := &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%d", i)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
}

func consumeReplicated(t *testing.T, tc *testCluster, topic string, want int) []string {
	t.Helper()
	cl := tc.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []string
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records", len(out), want)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
	return out
}

func TestReplicationFailover(t *testing.T) {
	tc := startTestCluster(t, 3, func(c *Config) { c.ControlledShutdownEnable = false })
	cl := tc.client(kgo.RequiredAcks(kgo.AllISRAcks()))
	tc.createTopic("rep", 1, 3, map[string]*string{"min.insync.replicas": kmsg.StringPtr("2")})
	produceNumbered(t, cl, "rep", 0, 200)

	// Every replica holds every acknowledged record.
	for i := range tc.nodes {
		waitFor(t, fmt.Sprintf("node %d to replicate", i+1), func() bool {
			p := tc.partition(i, "rep", 0)
			return p != nil && p.log.LogEndOffset() == 200
		})
	}
	old := tc.leaderIndex("rep", 0)
	if old < 0 {
		t.Fatal("no leader")
	}
	oldEpoch := tc.partition(old, "rep", 0).epoch()
	tc.stop(old)

	// The controller fences the stopped broker; another ISR member leads
	// under a newer epoch and acks=all writes go on with two replicas.
	waitFor(t, "a new leader", func() bool {
		l := tc.leaderIndex("rep", 0)
		return l >= 0 && l != old
	})
	produceNumbered(t, cl, "rep", 200, 300)
	nl := tc.leaderIndex("rep", 0)
	if e := tc.partition(nl, "rep", 0).epoch(); e <= oldEpoch {
		t.Fatalf("new leader epoch %d, old %d", e, oldEpoch)
	}
	if isr := tc.isr("rep", 0); slices.Contains(isr, int32(old+1)) {
		t.Fatalf("stopped broker %d still in the ISR %v", old+1, isr)
	}

	// The old leader comes back as a follower, catches up and rejoins the ISR.
	if err := tc.start(old); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the restarted broker back in the ISR", func() bool {
		return len(tc.isr("rep", 0)) == 3
	})
	got := consumeReplicated(t, tc, "rep", 300)
	for i, v := range got {
		if v != fmt.Sprint(i) {
			t.Fatalf("record %d is %q: lost, duplicated or reordered", i, v)
		}
	}
	waitFor(t, "the restarted broker to hold every record", func() bool {
		p := tc.partition(old, "rep", 0)
		return p != nil && p.log.LogEndOffset() == 300 && p.log.HighWatermark() == 300
	})
}

func TestReplicationMinInsyncReplicas(t *testing.T) {
	tc := startTestCluster(t, 3, func(c *Config) { c.ControlledShutdownEnable = false })
	tc.createTopic("strict", 1, 3, map[string]*string{"min.insync.replicas": kmsg.StringPtr("3")})
	produceNumbered(t, tc.client(kgo.RequiredAcks(kgo.AllISRAcks())), "strict", 0, 10)
	leader := tc.leaderIndex("strict", 0)
	follower := (leader + 1) % 3
	tc.stop(follower)
	waitFor(t, "the leader to see the ISR shrink", func() bool {
		st := tc.partition(leader, "strict", 0).state()
		return st != nil && len(st.isr) == 2
	})

	// With two in-sync replicas and min.insync.replicas=3, acks=all is
	// refused before anything is written; acks=1 still works.
	rc := dialRaw(t, tc.nodes[leader].addr)
	produce := func(acks int16) int16 {
		return producePart(rc.do(produceReq(acks, "strict", 0, batchOf(-1, -1, -1, "x")))).ErrorCode
	}
	before := tc.partition(leader, "strict", 0).log.LogEndOffset()
	if code := produce(-1); code != kerr.NotEnoughReplicas.Code {
		t.Fatalf("acks=all with 2 of 3 in sync: %v, want NOT_ENOUGH_REPLICAS", kerr.ErrorForCode(code))
	}
	if after := tc.partition(leader, "strict", 0).log.LogEndOffset(); after != before {
		t.Fatalf("a refused acks=all write was appended: log end %d -> %d", before, after)
	}
	if code := produce(1); code != 0 {
		t.Fatalf("acks=1: %v", kerr.ErrorForCode(code))
	}
}

// Followers refuse client writes and reads: NOT_LEADER_OR_FOLLOWER sends
// the client to the leader.
func TestReplicationFollowerRefusesClients(t *testing.T) {
	tc := startTestCluster(t, 2)
	tc.createTopic("two", 1, 2, nil)
	leader := tc.leaderIndex("two", 0)
	follower := 1 - leader
	rc := dialRaw(t, tc.nodes[follower].addr)
	if code := producePart(rc.do(produceReq(-1, "two", 0, batchOf(-1, -1, -1, "x")))).ErrorCode; code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("produce to a follower: %v, want NOT_LEADER_OR_FOLLOWER", kerr.ErrorForCode(code))
	}
	// Metadata from either broker (once it has applied the topic) names
	// the same leader and both brokers.
	for _, n := range tc.nodes {
		c, err := kgo.NewClient(kgo.SeedBrokers(n.addr))
		if err != nil {
			t.Fatal(err)
		}
		adm := kadm.NewClient(c)
		var md kadm.Metadata
		waitFor(t, "metadata from "+n.addr, func() bool {
			md, err = adm.Metadata(context.Background(), "two")
			return err == nil && md.Topics["two"].Err == nil
		})
		c.Close()
		if len(md.Brokers) != 2 || md.Topics["two"].Partitions[0].Leader != int32(leader+1) {
			t.Fatalf("metadata from %s: brokers %v, leader %d; want 2 brokers, leader %d", n.addr, md.Brokers, md.Topics["two"].Partitions[0].Leader, leader+1)
		}
	}
}

// KRaft's separate roles: a controller-only node (no Kafka listener, no
// logs) is the whole quorum and the active controller; two broker-only
// nodes follow the metadata log as Raft non-voters, replicate between
// them, and fail over when one stops.
func TestReplicationSeparateRoles(t *testing.T) {
	tc := startTestCluster(t, 1, func(c *Config) {
		c.ProcessRoles = "controller"
		c.ControlledShutdownEnable = false
	})
	if tc.nodes[0].srv.Addr() != nil || !tc.nodes[0].srv.meta.IsActiveController() {
		t.Fatal("the controller-only node has a Kafka listener or is not the active controller")
	}
	tc.addBrokerOnly(2)
	tc.addBrokerOnly(3)
	for _, n := range tc.nodes {
		waitFor(t, "every node to see both brokers unfenced", func() bool { return len(n.srv.liveBrokerIDs()) == 2 })
	}
	tc.createTopic("roles", 1, 2, nil)
	cl := tc.client(kgo.RequiredAcks(kgo.AllISRAcks()))
	produceNumbered(t, cl, "roles", 0, 50)
	leader := tc.leaderIndex("roles", 0)
	if leader != 1 && leader != 2 {
		t.Fatalf("leader index %d: want one of the broker-only nodes", leader)
	}
	tc.stop(leader)
	waitFor(t, "the other broker to lead", func() bool {
		l := tc.leaderIndex("roles", 0)
		return l >= 1 && l != leader
	})
	produceNumbered(t, cl, "roles", 50, 100)
	got := consumeReplicated(t, tc, "roles", 100)
	for i, v := range got {
		if v != fmt.Sprint(i) {
			t.Fatalf("record %d is %q", i, v)
		}
	}
}

// A reassignment of a mostly tiered partition copies only the hot tail:
// the new replica starts its log at the remote end (the bucket serves the
// rest), joins the ISR and the reassignment completes; every record still
// reads back through the new leader.
func TestReassignTieredPartition(t *testing.T) {
	objects := "file://" + t.TempDir()
	tc := startTestCluster(t, 2, func(c *Config) {
		c.ObjectStore = objects
		c.DefaultReplicationFactor = 1
		c.LogRetentionCheckIntervalMs = 100
	})
	tc.createTopic("cold", 1, 1, map[string]*string{"segment.bytes": kmsg.StringPtr("4000"), "local.retention.bytes": kmsg.StringPtr("1")})
	cl := tc.client(kgo.RequiredAcks(kgo.AllISRAcks()))
	produceNumbered(t, cl, "cold", 0, 2000)
	from := tc.leaderIndex("cold", 0)
	to := 1 - from
	src := tc.partition(from, "cold", 0)
	waitFor(t, "most of the partition to be tiered and leave local disk", func() bool {
		tc.nodes[from].srv.parts.enforceRetention()
		return src.log.RemoteEnd() > 1500 && src.log.LocalLogStartOffset() >= src.log.RemoteEnd()-4000
	})
	remoteEnd := src.log.RemoteEnd()

	adm := kadm.NewClient(cl)
	var req kadm.AlterPartitionAssignmentsReq
	req.Assign("cold", 0, []int32{int32(to + 1)})
	if res, err := adm.AlterPartitionAssignments(context.Background(), req); err != nil || res.Error() != nil {
		t.Fatalf("reassign: %v %v", err, res.Error())
	}
	waitFor(t, "the reassignment to complete", func() bool {
		mt, ok := tc.nodes[to].srv.meta.Topic("cold")
		return ok && slices.Equal(mt.Partitions[0].Replicas, []int32{int32(to + 1)}) && mt.Partitions[0].Leader == int32(to+1) &&
			len(tc.nodes[to].srv.meta.Reassignments()) == 0
	})
	dst := tc.partition(to, "cold", 0)
	if dst == nil {
		t.Fatal("the new replica has no log")
	}
	// The new replica never held the tiered offsets locally.
	if first := dst.log.LocalLogStartOffset(); first < remoteEnd {
		t.Fatalf("new replica's local log starts at %d, below the remote end %d: it copied tiered data", first, remoteEnd)
	}
	got := consumeReplicated(t, tc, "cold", 2000)
	for i, v := range got {
		if v != fmt.Sprint(i) {
			t.Fatalf("record %d is %q", i, v)
		}
	}
}

// A follower that was down while the leader tiered and deleted everything
// past the follower's log end restarts at the remote end instead of
// copying tiered data, and rejoins the ISR.
func TestFollowerBehindRemoteEndRejoins(t *testing.T) {
	objects := "file://" + t.TempDir()
	// Three voters, so the quorum survives the follower's absence.
	tc := startTestCluster(t, 3, func(c *Config) {
		c.ObjectStore = objects
		c.LogRetentionCheckIntervalMs = 100
		c.ControlledShutdownEnable = false
	})
	tc.createTopic("behind", 1, 2, map[string]*string{"segment.bytes": kmsg.StringPtr("4000"), "local.retention.bytes": kmsg.StringPtr("1"), "min.insync.replicas": kmsg.StringPtr("1")})
	cl := tc.client(kgo.RequiredAcks(kgo.AllISRAcks()))
	produceNumbered(t, cl, "behind", 0, 200)
	leader := tc.leaderIndex("behind", 0)
	follower := -1
	for _, r := range tc.partition(leader, "behind", 0).state().replicas {
		if int(r-1) != leader {
			follower = int(r - 1)
		}
	}
	waitFor(t, "the follower to replicate", func() bool { return tc.partition(follower, "behind", 0).log.LogEndOffset() == 200 })
	tc.stop(follower)
	produceNumbered(t, cl, "behind", 200, 2000)
	lp := tc.partition(leader, "behind", 0)
	waitFor(t, "the leader to tier and drop what the follower lacks", func() bool {
		tc.nodes[leader].srv.parts.enforceRetention()
		return lp.log.LocalLogStartOffset() > 400
	})
	if err := tc.start(follower); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the follower back in the ISR", func() bool { return len(tc.isr("behind", 0)) == 2 })
	fp := tc.partition(follower, "behind", 0)
	if fp.log.LogEndOffset() != 2000 || fp.log.LocalLogStartOffset() <= 200 {
		t.Fatalf("follower log end %d, local start %d: want 2000 and past its old end 200", fp.log.LogEndOffset(), fp.log.LocalLogStartOffset())
	}
}
