package metadata

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// fastRaft shortens Raft's timeouts so elections in tests take about a
// second. Not shorter: under the race detector on a busy 2-core machine,
// heartbeats starved for a few hundred milliseconds made leadership move
// round and round and the cluster stopped making progress. Leadership may
// still move: tests write through writeRetry or rely on forwarding, never
// on who leads.
func fastRaft(rc *raft.Config) {
	rc.HeartbeatTimeout = 600 * time.Millisecond
	rc.ElectionTimeout = 600 * time.Millisecond
	rc.LeaderLeaseTimeout = 300 * time.Millisecond
}

// testCluster runs Stores on loopback TCP in this process, each with its
// own directory, that can be stopped and restarted.
type testCluster struct {
	t      *testing.T
	voters []Voter
	cfgs   map[int32]Config
	stores map[int32]*Store
}

func newTestCluster(t *testing.T, n int, tune func(*raft.Config), tlsFor func(name string) *tls.Config) *testCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-node raft takes a few seconds")
	}
	c := &testCluster{t: t, cfgs: map[int32]Config{}, stores: map[int32]*Store{}}
	addrs := freeAddrs(t, n)
	for i, a := range addrs {
		c.voters = append(c.voters, Voter{ID: int32(i + 1), Addr: a})
	}
	for _, v := range c.voters {
		cfg := Config{NodeID: v.ID, Dir: t.TempDir(), RaftAddr: v.Addr, Voters: c.voters, Logger: testLogger(t), tune: tune}
		if tlsFor != nil {
			cfg.TLS = tlsFor(v.Addr)
		}
		c.cfgs[v.ID] = cfg
	}
	return c
}

// addBroker configures a broker-only node (a Raft non-voter).
func (c *testCluster) addBroker(id int32, tlsFor func(string) *tls.Config) {
	addr := freeAddrs(c.t, 1)[0]
	cfg := c.cfgs[c.voters[0].ID]
	cfg.NodeID, cfg.Dir, cfg.RaftAddr, cfg.Roles = id, c.t.TempDir(), addr, RoleBroker
	if tlsFor != nil {
		cfg.TLS = tlsFor(addr)
	}
	c.cfgs[id] = cfg
}

func (c *testCluster) open(ids ...int32) {
	c.t.Helper()
	if len(ids) == 0 {
		for _, v := range c.voters {
			ids = append(ids, v.ID)
		}
	}
	for _, id := range ids {
		s, err := Open(c.cfgs[id])
		if err != nil {
			c.t.Fatalf("open node %d: %v", id, err)
		}
		c.t.Cleanup(func() { _ = s.Close() })
		c.stores[id] = s
	}
	for _, id := range ids {
		if err := c.stores[id].WaitReady(waitCtx(c.t)); err != nil {
			c.t.Fatalf("node %d: %v", id, err)
		}
	}
}

func (c *testCluster) stop(id int32) {
	c.t.Helper()
	mustClose(c.t, c.stores[id])
	delete(c.stores, id)
}

func (c *testCluster) stopAll() {
	for id := range c.stores {
		c.stop(id)
	}
}

func (c *testCluster) running() []*Store {
	var out []*Store
	for _, s := range c.stores {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *Store) int { return int(a.cfg.NodeID - b.cfg.NodeID) })
	return out
}

// leader waits until one running store leads and every running store knows
// it, and returns it.
func (c *testCluster) leader(ctx context.Context) *Store {
	c.t.Helper()
	var leader *Store
	eventually(c.t, ctx, "a leader known to every node", func() bool {
		leader = nil
		for _, s := range c.stores {
			if s.raft.State() == raft.Leader {
				leader = s
			}
		}
		if leader == nil {
			return false
		}
		for _, s := range c.stores {
			if id, ok := s.LeaderID(); !ok || id != leader.cfg.NodeID {
				return false
			}
		}
		return true
	})
	return leader
}

// follower returns a running store that is not the leader.
func (c *testCluster) follower(ctx context.Context) *Store {
	l := c.leader(ctx)
	for _, s := range c.running() {
		if s != l {
			return s
		}
	}
	c.t.Fatal("no follower running")
	return nil
}

// clusterCtx bounds a multi-node test: elections, restarts and catch-up
// under -race on a loaded machine need more than waitCtx's 10 s.
func clusterCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond: Raft exposes leadership and log positions only by
// polling. Changes of the applied state are awaited with Watch instead.
func eventually(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// awaitState waits until s's applied state satisfies cond.
func awaitState(t *testing.T, ctx context.Context, s *Store, what string, cond func() bool) {
	t.Helper()
	for {
		watch := s.Watch()
		if cond() {
			return
		}
		select {
		case <-watch:
		case <-ctx.Done():
			t.Fatalf("node %d: timed out waiting for %s", s.cfg.NodeID, what)
		}
	}
}

// sameState waits until every store has applied what want has (compared
// through the public reads and the next producer id).
func sameState(t *testing.T, ctx context.Context, want *Store, stores ...*Store) {
	t.Helper()
	for _, s := range stores {
		awaitState(t, ctx, s, fmt.Sprintf("the state of node %d", want.cfg.NodeID), func() bool {
			return s.ClusterID() == want.ClusterID() &&
				reflect.DeepEqual(s.Topics(), want.Topics()) &&
				reflect.DeepEqual(s.Brokers(), want.Brokers()) &&
				s.fsm.nextProducerID() == want.fsm.nextProducerID()
		})
	}
}

// writeRetry retries a write whose outcome was unknown (ErrNotLeader after
// a leadership change mid-flight); done tells whether an error means the
// first attempt was applied after all.
func writeRetry(t *testing.T, ctx context.Context, write func() error, applied func(error) bool) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		err := write()
		if err == nil || attempt > 0 && applied != nil && applied(err) {
			return
		}
		if !errors.Is(err, ErrNotLeader) || ctx.Err() != nil {
			t.Fatalf("write: %v", err)
		}
	}
}

func createTopicRetry(t *testing.T, ctx context.Context, s *Store, tp Topic) {
	t.Helper()
	writeRetry(t, ctx, func() error { return s.CreateTopic(ctx, tp) },
		func(err error) bool { return errors.Is(err, ErrTopicExists) })
}

func TestQuorumFailoverAndCatchUp(t *testing.T) {
	ctx := clusterCtx(t)
	c := newTestCluster(t, 3, fastRaft, nil)
	c.open()

	// A write on a follower is forwarded to the leader and replicated.
	f := c.follower(ctx)
	createTopicRetry(t, ctx, f, testTopic("orders", 3))
	if _, ok := f.Topic("orders"); !ok {
		t.Fatal("the forwarding follower does not see its own write on return")
	}
	sameState(t, ctx, f, c.running()...)

	// Results and sentinel errors round-trip through forwarding.
	var first int64
	writeRetry(t, ctx, func() (err error) { first, err = f.AllocateProducerIDs(ctx, 100); return err }, nil)
	if next := f.fsm.nextProducerID(); next != first+100 {
		t.Errorf("producer block starts at %d, next free is %d", first, next)
	}
	if err := f.CreateTopic(ctx, testTopic("orders", 1)); !errors.Is(err, ErrTopicExists) {
		t.Errorf("duplicate topic through a follower: %v, want ErrTopicExists", err)
	}
	if _, err := f.AllocateProducerIDs(ctx, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad allocation through a follower: %v, want ErrInvalidArgument", err)
	}

	// Kill the leader: the two others elect a new one, and a write on a
	// survivor works.
	old := c.leader(ctx)
	oldID := old.cfg.NodeID
	c.stop(oldID)
	newLeader := c.leader(ctx)
	if newLeader.cfg.NodeID == oldID {
		t.Fatal("the closed node still leads")
	}
	survivor := c.follower(ctx)
	createTopicRetry(t, ctx, survivor, testTopic("after-failover", 1))
	writeRetry(t, ctx, func() error {
		return survivor.RegisterBroker(ctx, Broker{ID: 7, Host: "h7", Port: 9092})
	}, nil)

	// Restart it: it catches up to the same state.
	c.open(oldID)
	sameState(t, ctx, newLeader, c.running()...)
	c.stopAll()
}

func TestQuorumNonVoter(t *testing.T) {
	ctx := clusterCtx(t)
	c := newTestCluster(t, 3, fastRaft, nil)
	c.open()
	createTopicRetry(t, ctx, c.leader(ctx), testTopic("before-join", 1))

	const brokerID = 10
	c.addBroker(brokerID, nil)
	c.open(brokerID)
	b := c.stores[brokerID]
	if b.raft.State() == raft.Leader {
		t.Fatal("a broker-only node leads")
	}
	// It received the log from before it joined, and follows new changes.
	sameState(t, ctx, c.leader(ctx), b)
	createTopicRetry(t, ctx, c.leader(ctx), testTopic("after-join", 2))
	sameState(t, ctx, c.leader(ctx), b)
	// Its writes are forwarded.
	createTopicRetry(t, ctx, b, testTopic("from-broker", 1))
	sameState(t, ctx, b, c.running()...)

	// DescribeQuorum, asked anywhere, lists the voters and the observer.
	var q QuorumInfo
	eventually(t, ctx, "every replica reporting its log end", func() bool {
		var err error
		if q, err = b.DescribeQuorum(ctx); err != nil {
			t.Fatal(err)
		}
		for _, r := range append(slices.Clone(q.Voters), q.Observers...) {
			if r.LogEndOffset < q.HighWatermark || r.LastFetchTimestamp < 0 || r.LastCaughtUpTimestamp < 0 {
				return false
			}
		}
		return true
	})
	leader := c.leader(ctx)
	if q.LeaderID != leader.cfg.NodeID || q.LeaderEpoch < 1 || q.HighWatermark < 1 {
		t.Errorf("quorum %+v, want leader %d, positive epoch and high watermark", q, leader.cfg.NodeID)
	}
	if ids := replicaIDs(q.Voters); !reflect.DeepEqual(ids, []int32{1, 2, 3}) {
		t.Errorf("voters %v", ids)
	}
	if ids := replicaIDs(q.Observers); !reflect.DeepEqual(ids, []int32{brokerID}) {
		t.Errorf("observers %v, want [%d]", ids, brokerID)
	}
	if q.Observers[0].Addr != c.cfgs[brokerID].RaftAddr {
		t.Errorf("observer address %q, want %q", q.Observers[0].Addr, c.cfgs[brokerID].RaftAddr)
	}

	// A restart of the broker rejoins idempotently, with its state.
	c.stop(brokerID)
	c.open(brokerID)
	b = c.stores[brokerID]
	sameState(t, ctx, c.leader(ctx), b)

	// Membership is an admin action, forwarded like the rest: promote the
	// broker to voter, then remove it.
	if err := b.AddVoter(ctx, brokerID, c.cfgs[brokerID].RaftAddr); err != nil {
		t.Fatal(err)
	}
	if err := b.AddVoter(ctx, brokerID, c.cfgs[brokerID].RaftAddr); err != nil {
		t.Errorf("AddVoter again: %v", err)
	}
	q = describe(t, ctx, c.stores[1])
	if ids := replicaIDs(q.Voters); !reflect.DeepEqual(ids, []int32{1, 2, 3, brokerID}) || len(q.Observers) != 0 {
		t.Errorf("after AddVoter: voters %v, observers %v", ids, replicaIDs(q.Observers))
	}
	if err := c.stores[2].RemoveServer(ctx, brokerID); err != nil {
		t.Fatal(err)
	}
	if err := c.stores[2].RemoveServer(ctx, brokerID); err != nil {
		t.Errorf("RemoveServer again: %v", err)
	}
	q = describe(t, ctx, c.stores[3])
	if ids := replicaIDs(q.Voters); !reflect.DeepEqual(ids, []int32{1, 2, 3}) || len(q.Observers) != 0 {
		t.Errorf("after RemoveServer: voters %v, observers %v", ids, replicaIDs(q.Observers))
	}
	// Removed, the broker hears from no leader any more.
	c.stop(brokerID)

	// A non-voter may not take a voter's id (it would move the voter).
	leader = c.leader(ctx)
	r := leader.handleLocal(ctx, &fwdRequest{Kind: fwdAddNonvoter, Op: "steal", ID: 1, Addr: "127.0.0.1:1"})
	if r.status != fwdNotLeader && !errors.Is(r.err, ErrInvalidArgument) {
		t.Errorf("adding a non-voter under a voter's id: %+v", r)
	}
	c.stopAll()
}

func describe(t *testing.T, ctx context.Context, s *Store) QuorumInfo {
	t.Helper()
	q, err := s.DescribeQuorum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func replicaIDs(rs []ReplicaState) []int32 {
	var out []int32
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func TestQuorumRestartAllFromSnapshots(t *testing.T) {
	ctx := clusterCtx(t)
	c := newTestCluster(t, 3, func(rc *raft.Config) {
		fastRaft(rc)
		rc.SnapshotThreshold = 8
		rc.TrailingLogs = 2
	}, nil)
	c.open()
	for i := range 20 {
		createTopicRetry(t, ctx, c.running()[i%3], testTopic(fmt.Sprintf("t%02d", i), 1))
	}
	writeRetry(t, ctx, func() error { _, err := c.running()[1].AllocateProducerIDs(ctx, 1000); return err }, nil)
	leader := c.leader(ctx)
	sameState(t, ctx, leader, c.running()...)
	for _, s := range c.running() {
		// Each replica snapshots its own state; the threshold above would
		// do it too, but at a time of Raft's choosing.
		if err := s.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			t.Fatalf("node %d snapshot: %v", s.cfg.NodeID, err)
		}
		if first, err := s.bolt.FirstIndex(); err != nil || first <= 2 {
			t.Fatalf("node %d: log starts at %d (%v): no snapshot compacted it", s.cfg.NodeID, first, err)
		}
	}
	wantTopics, wantBrokers, wantCID, wantNext := leader.Topics(), leader.Brokers(), leader.ClusterID(), leader.fsm.nextProducerID()
	c.stopAll()

	c.open()
	for _, s := range c.running() {
		awaitState(t, ctx, s, "the state from before the restart", func() bool {
			return s.ClusterID() == wantCID && reflect.DeepEqual(s.Topics(), wantTopics) &&
				reflect.DeepEqual(s.Brokers(), wantBrokers) && s.fsm.nextProducerID() == wantNext
		})
	}
	var first int64
	writeRetry(t, ctx, func() (err error) { first, err = c.running()[0].AllocateProducerIDs(ctx, 1); return err }, nil)
	if first != wantNext {
		t.Errorf("after the restart producer ids resume at %d, want %d", first, wantNext)
	}
	c.stopAll()
}

func TestQuorumTLSForwarding(t *testing.T) {
	ctx := clusterCtx(t)
	ca := newTestCA(t, "cluster CA")
	tlsFor := func(name string) *tls.Config { return ca.nodeTLS(t, name) }
	c := newTestCluster(t, 3, fastRaft, tlsFor)
	c.addBroker(10, tlsFor)
	c.open()
	c.open(10)
	for _, s := range []*Store{c.follower(ctx), c.stores[10]} {
		createTopicRetry(t, ctx, s, testTopic(fmt.Sprintf("over-tls-%d", s.cfg.NodeID), 1))
	}
	sameState(t, ctx, c.leader(ctx), c.running()...)
	q := describe(t, ctx, c.stores[10])
	if len(q.Voters) != 3 || len(q.Observers) != 1 {
		t.Errorf("quorum over TLS: %+v", q)
	}
	c.stopAll()
}

func TestForwardNoLeader(t *testing.T) {
	// One voter of three running: no leader can be elected, and a write
	// gives up with ErrNotLeader at the caller's deadline.
	c := newTestCluster(t, 3, fastRaft, nil)
	s, err := Open(c.cfgs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.CreateTopic(ctx, testTopic("t", 1))
	if !errors.Is(err, ErrNotLeader) || !strings.Contains(err.Error(), "before the deadline") {
		t.Errorf("write without a leader: %v, want ErrNotLeader at the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v", d)
	}
	// Close while a write is waiting for a leader ends it with ErrClosed.
	done := make(chan error, 1)
	go func() { done <- s.CreateTopic(context.Background(), testTopic("t", 1)) }()
	mustClose(t, s)
	if err := <-done; !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNotLeader) {
		t.Errorf("write interrupted by Close: %v", err)
	}
}

func TestParseVoters(t *testing.T) {
	tests := []struct {
		in      string
		want    []Voter
		wantErr string
	}{
		{"1@host1:9093,2@host2:9093,3@10.0.0.3:9093", []Voter{{1, "host1:9093"}, {2, "host2:9093"}, {3, "10.0.0.3:9093"}}, ""},
		{" 0@[::1]:9093 ", []Voter{{0, "[::1]:9093"}}, ""},
		{"", nil, "empty list"},
		{"1@h:1,", nil, "entry 2"},
		{"host:9093", nil, "no '@'"},
		{"x@h:1", nil, "node id"},
		{"-1@h:1", nil, "node id"},
		{"99999999999@h:1", nil, "node id"},
		{"1@h", nil, "address"},
		{"1@:9093", nil, "no host"},
		{"1@h:0", nil, "port"},
		{"1@h:70000", nil, "port"},
		{"1@h:1,1@g:1", nil, "node id 1 listed twice"},
		{"1@h:1,2@h:1", nil, "address h:1 listed twice"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseVoters(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("ParseVoters(%q) = %v, %v; want an error naming %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseVoters(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseRoles(t *testing.T) {
	tests := []struct {
		in   string
		want Roles
		ok   bool
	}{
		{"broker,controller", RoleBroker | RoleController, true},
		{"controller, broker", RoleBroker | RoleController, true},
		{"broker", RoleBroker, true},
		{"controller", RoleController, true},
		{"", 0, false},
		{"broker,", 0, false},
		{"voter", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseRoles(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRoles(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if !Roles(0).IsBroker() || !Roles(0).IsController() || Roles(0).String() != "broker,controller" {
		t.Error("the zero Roles is not combined mode")
	}
	if RoleBroker.IsController() || RoleController.IsBroker() {
		t.Error("single roles mixed up")
	}
}

func TestConfigValidateRoles(t *testing.T) {
	three := []Voter{{1, "127.0.0.1:9001"}, {2, "127.0.0.1:9002"}, {3, "127.0.0.1:9003"}}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"combined voter", Config{NodeID: 1, Dir: "d", RaftAddr: "127.0.0.1:9001", Voters: three}, ""},
		{"controller only", Config{NodeID: 2, Dir: "d", RaftAddr: "0.0.0.0:9002", Voters: three, Roles: RoleController}, ""},
		{"host name voter", Config{NodeID: 1, Dir: "d", RaftAddr: "10.0.0.1:9001", Voters: []Voter{{1, "node1:9001"}, {2, "node2:9001"}}}, ""},
		{"controller not a voter", Config{NodeID: 4, Dir: "d", RaftAddr: "127.0.0.1:9004", Voters: three}, "not among the voters"},
		{"wrong port", Config{NodeID: 1, Dir: "d", RaftAddr: "127.0.0.1:9999", Voters: three}, "binds raft to"},
		{"wrong ip", Config{NodeID: 1, Dir: "d", RaftAddr: "127.0.0.2:9001", Voters: three}, "binds raft to"},
		{"voter with advertise", Config{NodeID: 1, Dir: "d", RaftAddr: "127.0.0.1:9001", Voters: three, RaftAdvertiseAddr: "x:1"}, "RaftAdvertiseAddr"},
		{"broker", Config{NodeID: 10, Dir: "d", RaftAddr: "127.0.0.1:0", Voters: three, Roles: RoleBroker}, ""},
		{"broker without voters", Config{NodeID: 10, Dir: "d", RaftAddr: "127.0.0.1:0", Roles: RoleBroker}, "needs the controller voters"},
		{"broker with a voter's id", Config{NodeID: 2, Dir: "d", RaftAddr: "127.0.0.1:0", Voters: three, Roles: RoleBroker}, "listed among the voters"},
		{"broker in memory", Config{NodeID: 10, Dir: "d", Voters: three, Roles: RoleBroker}, "needs a raft address"},
		{"unknown role bits", Config{NodeID: 1, Dir: "d", Roles: 8}, "unknown roles"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Validate() = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
