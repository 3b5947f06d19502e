package metadata

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// No exceptions: Close must leave none of raft's or our goroutines.
	goleak.VerifyTestMain(m)
}

// testLogger sends store logs to t.Log at Debug when -v is set, so a failure
// shows what raft was doing. Messages logged after the test ends are dropped.
func testLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	w := &tWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openReady opens a store on dir and waits until it is ready.
func openReady(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.WaitReady(waitCtx(t)); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	return s
}

func mustClose(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func testTopic(name string, partitions int) Topic {
	t := Topic{Name: name, Configs: map[string]string{"retention.ms": "3600000"}}
	for i := range partitions {
		t.Partitions = append(t.Partitions, Partition{Index: int32(i), Replicas: []int32{1}, Leader: 1})
	}
	return t
}

func TestStoreSingleNode(t *testing.T) {
	ctx := waitCtx(t)
	s := openReady(t, Config{NodeID: 1, Dir: t.TempDir()})

	cid := s.ClusterID()
	if raw, err := base64.RawURLEncoding.DecodeString(cid); err != nil || len(cid) != 22 || len(raw) != 16 {
		t.Fatalf("cluster id %q is not 22 characters of base64url for 16 bytes (%v)", cid, err)
	}
	if id, ok := s.LeaderID(); !ok || id != 1 {
		t.Errorf("LeaderID = %d, %v; want 1, true", id, ok)
	}

	if err := s.RegisterBroker(ctx, Broker{ID: 1, Host: "localhost", Port: 9092}); err != nil {
		t.Fatal(err)
	}
	if got := s.Brokers(); !reflect.DeepEqual(got, []Broker{{ID: 1, Host: "localhost", Port: 9092}}) {
		t.Errorf("Brokers = %+v", got)
	}

	watch := s.Watch()
	if err := s.CreateTopic(ctx, testTopic("orders", 2)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-watch:
	default:
		t.Error("Watch did not fire on CreateTopic")
	}
	orders, ok := s.Topic("orders")
	if !ok || orders.ID == uuid.Nil || len(orders.Partitions) != 2 {
		t.Fatalf("Topic(orders) = %+v, %v", orders, ok)
	}
	// The ISR defaults to the replicas.
	if isr := orders.Partitions[1].ISR; !reflect.DeepEqual(isr, []int32{1}) {
		t.Errorf("ISR %v, want [1]", isr)
	}
	if byID, ok := s.TopicByID(orders.ID); !ok || !reflect.DeepEqual(byID, orders) {
		t.Errorf("TopicByID = %+v, %v", byID, ok)
	}

	if err := s.CreateTopic(ctx, testTopic("orders", 1)); !errors.Is(err, ErrTopicExists) {
		t.Errorf("duplicate CreateTopic: %v, want ErrTopicExists", err)
	}
	if err := s.CreateTopic(ctx, testTopic("bad/name", 1)); !errors.Is(err, ErrInvalidTopic) {
		t.Errorf("CreateTopic with a bad name: %v, want ErrInvalidTopic", err)
	}
	fixedID := uuid.MustParse("11111111-2222-4333-8444-555555555555")
	withID := testTopic("payments", 1)
	withID.ID = fixedID
	if err := s.CreateTopic(ctx, withID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Topic("payments"); got.ID != fixedID {
		t.Errorf("payments id %s, want the caller's %s", got.ID, fixedID)
	}

	if err := s.CreatePartitions(ctx, orders.ID, []Partition{{Index: 2, Replicas: []int32{1}, Leader: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AlterTopicConfigs(ctx, orders.ID, map[string]string{"cleanup.policy": "compact"}, []string{"retention.ms"}); err != nil {
		t.Fatal(err)
	}
	orders, _ = s.Topic("orders")
	if len(orders.Partitions) != 3 || !maps.Equal(orders.Configs, map[string]string{"cleanup.policy": "compact"}) {
		t.Errorf("after changes: %+v", orders)
	}

	first, err := s.AllocateProducerIDs(ctx, 1000)
	if err != nil || first != 0 {
		t.Fatalf("AllocateProducerIDs = %d, %v; want 0", first, err)
	}
	if first, err = s.AllocateProducerIDs(ctx, 1000); err != nil || first != 1000 {
		t.Fatalf("second block = %d, %v; want 1000", first, err)
	}
	if _, err := s.AllocateProducerIDs(ctx, -1); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("AllocateProducerIDs(-1): %v", err)
	}

	if err := s.DeleteTopic(ctx, orders.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic(ctx, orders.ID); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("second DeleteTopic: %v, want ErrUnknownTopic", err)
	}
	if names := topicNames(s.Topics()); !reflect.DeepEqual(names, []string{"payments"}) {
		t.Errorf("Topics = %v", names)
	}
	mustClose(t, s)
}

func topicNames(ts []Topic) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

func TestStoreRestart(t *testing.T) {
	ctx := waitCtx(t)
	dir := t.TempDir()
	s := openReady(t, Config{NodeID: 3, Dir: dir})
	cid := s.ClusterID()
	for i := range 5 {
		if err := s.CreateTopic(ctx, testTopic(fmt.Sprintf("t%d", i), i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RegisterBroker(ctx, Broker{ID: 3, Host: "h", Port: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AllocateProducerIDs(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	before := s.Topics()
	mustClose(t, s)

	s = openReady(t, Config{NodeID: 3, Dir: dir})
	if s.ClusterID() != cid {
		t.Errorf("cluster id %q after restart, want %q", s.ClusterID(), cid)
	}
	if got := s.Topics(); !reflect.DeepEqual(got, before) {
		t.Errorf("topics after restart\n got: %+v\nwant: %+v", got, before)
	}
	if len(s.Brokers()) != 1 {
		t.Errorf("brokers after restart: %+v", s.Brokers())
	}
	if first, err := s.AllocateProducerIDs(ctx, 1000); err != nil || first != 1000 {
		t.Errorf("producer ids after restart start at %d (%v), want 1000", first, err)
	}
	if err := s.CreateTopic(ctx, testTopic("after", 1)); err != nil {
		t.Errorf("write after restart: %v", err)
	}
	mustClose(t, s)
}

func TestStoreRestartFromSnapshot(t *testing.T) {
	ctx := waitCtx(t)
	dir := t.TempDir()
	cfg := Config{NodeID: 1, Dir: dir, tune: func(rc *raft.Config) {
		// Keep almost no log behind a snapshot, so the restart must use it.
		rc.TrailingLogs = 1
		rc.SnapshotThreshold = 1 << 30
	}}
	s := openReady(t, cfg)
	for i := range 10 {
		if err := s.CreateTopic(ctx, testTopic(fmt.Sprintf("snap%d", i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AllocateProducerIDs(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	if err := s.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	// The log tail after the snapshot.
	if err := s.CreateTopic(ctx, testTopic("tail", 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AllocateProducerIDs(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	first, err := s.bolt.FirstIndex()
	if err != nil || first <= 2 {
		t.Fatalf("log starts at %d (%v): the snapshot did not compact it", first, err)
	}
	before := s.Topics()
	cid := s.ClusterID()
	mustClose(t, s)

	s = openReady(t, cfg)
	if got := s.Topics(); !reflect.DeepEqual(got, before) {
		t.Errorf("topics after restart\n got: %v\nwant: %v", topicNames(got), topicNames(before))
	}
	if s.ClusterID() != cid {
		t.Errorf("cluster id %q, want %q", s.ClusterID(), cid)
	}
	if got, err := s.AllocateProducerIDs(ctx, 1); err != nil || got != 2000 {
		t.Errorf("next producer id %d (%v), want 2000", got, err)
	}
	mustClose(t, s)
}

func TestStoreTCPSingleVoter(t *testing.T) {
	ctx := waitCtx(t)
	dir := t.TempDir()
	s := openReady(t, Config{NodeID: 0, Dir: dir, RaftAddr: "127.0.0.1:0"})
	if err := s.CreateTopic(ctx, testTopic("t", 1)); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)

	s = openReady(t, Config{NodeID: 0, Dir: dir, RaftAddr: "127.0.0.1:0"})
	if _, ok := s.Topic("t"); !ok {
		t.Error("topic lost across a TCP restart")
	}
	mustClose(t, s)
}

func TestStoreClose(t *testing.T) {
	ctx := waitCtx(t)
	s := openReady(t, Config{NodeID: 1, Dir: t.TempDir()})
	mustClose(t, s)
	mustClose(t, s) // idempotent

	if err := s.CreateTopic(ctx, testTopic("t", 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close: %v, want ErrClosed", err)
	}
	if _, err := s.do(ctx, func() raft.Future { panic("must not run") }); !errors.Is(err, ErrClosed) {
		t.Errorf("do after Close: %v", err)
	}
	if err := s.WaitReady(ctx); err != nil {
		t.Errorf("WaitReady after a successful start and Close: %v", err)
	}
	// Reads keep serving the last state.
	if s.ClusterID() == "" {
		t.Error("ClusterID empty after Close")
	}
}

func TestStoreCloseBeforeReady(t *testing.T) {
	s, err := Open(Config{NodeID: 1, Dir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	select {
	case <-s.ready:
	default:
		if err := s.WaitReady(context.Background()); !errors.Is(err, ErrClosed) {
			t.Errorf("WaitReady on a store closed before it was ready: %v", err)
		}
	}
}

func TestStoreWriteContextDone(t *testing.T) {
	s := openReady(t, Config{NodeID: 1, Dir: t.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.CreateTopic(ctx, testTopic("t", 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateTopic with a done ctx: %v", err)
	}
	if _, ok := s.Topic("t"); ok {
		t.Error("a command refused up front was applied")
	}
	mustClose(t, s)
}

// blockedFuture is a raft future that resolves when release is closed.
type blockedFuture struct{ release chan struct{} }

func (f blockedFuture) Error() error { <-f.release; return nil }

func TestDoOnlyStopsWaiting(t *testing.T) {
	s := openReady(t, Config{NodeID: 1, Dir: t.TempDir()})
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	go func() {
		<-started
		cancel()
	}()
	_, err := s.do(ctx, func() raft.Future { close(started); return blockedFuture{release} })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("do: %v, want context.Canceled", err)
	}
	// The operation is still owned by the store until it resolves.
	if n := s.inflight.count(); n != 1 {
		t.Errorf("%d operations in flight, want 1", n)
	}
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned while an operation was still in flight")
	case <-time.After(50 * time.Millisecond):
		// Close is draining; the 5 s drain bound is far away.
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if n := s.inflight.count(); n != 0 {
		t.Errorf("%d operations in flight after Close", n)
	}
}

func TestStoreConcurrentWritesAndReads(t *testing.T) {
	ctx := waitCtx(t)
	s := openReady(t, Config{NodeID: 1, Dir: t.TempDir()})
	var wg sync.WaitGroup
	blocks := make(chan int64, 40)
	for w := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 10 {
				if err := s.CreateTopic(ctx, testTopic(fmt.Sprintf("w%d-%d", w, i), 1)); err != nil {
					t.Error(err)
				}
				first, err := s.AllocateProducerIDs(ctx, 10)
				if err != nil {
					t.Error(err)
				}
				blocks <- first
			}
		}()
		go func() {
			defer wg.Done()
			for range 50 {
				for _, tp := range s.Topics() {
					_ = tp.Partitions[0].Replicas[0]
				}
				select {
				case <-s.Watch():
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	// The readers wait on Watch; keep the state changing until they are done.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for i := 0; ; i++ {
		select {
		case <-done:
			close(blocks)
			seen := map[int64]bool{}
			for b := range blocks {
				if seen[b] || b%10 != 0 {
					t.Errorf("producer id block %d repeated or misaligned", b)
				}
				seen[b] = true
			}
			if n := len(s.Topics()); n < 40 {
				t.Errorf("%d topics, want at least 40", n)
			}
			mustClose(t, s)
			return
		default:
		}
		if err := s.RegisterBroker(ctx, Broker{ID: 1, Port: int32(i % 60000)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenLockedDir(t *testing.T) {
	dir := t.TempDir()
	s := openReady(t, Config{NodeID: 1, Dir: dir})
	start := time.Now()
	if s2, err := Open(Config{NodeID: 1, Dir: dir}); err == nil {
		_ = s2.Close()
		t.Fatal("a second Open of the same dir succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v to fail", d)
	}
	mustClose(t, s)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"single voter default", Config{NodeID: 1, Dir: "d"}, true},
		{"explicit self", Config{NodeID: 1, Dir: "d", Voters: []Voter{{ID: 1}}}, true},
		{"tcp cluster", Config{NodeID: 1, Dir: "d", RaftAddr: "127.0.0.1:1", Voters: []Voter{{ID: 1, Addr: "127.0.0.1:1"}, {ID: 2, Addr: "127.0.0.1:2"}}}, true},
		{"no dir", Config{NodeID: 1}, false},
		{"negative node id", Config{NodeID: -1, Dir: "d"}, false},
		{"self not a voter", Config{NodeID: 1, Dir: "d", Voters: []Voter{{ID: 2, Addr: "a"}}}, false},
		{"duplicate voter", Config{NodeID: 1, Dir: "d", RaftAddr: "x", Voters: []Voter{{ID: 1}, {ID: 1}}}, false},
		{"peer without address", Config{NodeID: 1, Dir: "d", RaftAddr: "x", Voters: []Voter{{ID: 1}, {ID: 2}}}, false},
		{"in-memory with peers", Config{NodeID: 1, Dir: "d", Voters: []Voter{{ID: 1}, {ID: 2, Addr: "a"}}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if _, err := Open(Config{NodeID: 1}); err == nil {
		t.Error("Open accepted an invalid config")
	}
}

func TestValidTopicName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"orders", true},
		{"__consumer_offsets", true},
		{"a.b-c_D9", true},
		{strings.Repeat("x", 249), true},
		{strings.Repeat("x", 250), false},
		{"", false},
		{".", false},
		{"..", false},
		{"...", true},
		{"with space", false},
		{"slash/name", false},
		{"ünïcode", false},
		{"tab\t", false},
	}
	for _, tc := range tests {
		err := ValidTopicName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidTopicName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("ValidTopicName(%q) = %v, does not wrap ErrInvalidTopic", tc.name, err)
		}
	}
}

func TestNewClusterID(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		id, err := newClusterID()
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != 22 || strings.HasPrefix(id, "-") || seen[id] {
			t.Fatalf("bad or repeated cluster id %q", id)
		}
		seen[id] = true
	}
}

// freeAddrs reserves n loopback addresses for a multi-voter test. The ports
// are released before raft binds them; a collision fails the test loudly.
func freeAddrs(t *testing.T, n int) []string {
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l.Addr().String())
		defer l.Close()
	}
	return out
}

func TestStoreThreeVoters(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-voter election takes a few seconds")
	}
	ctx := clusterCtx(t)
	addrs := freeAddrs(t, 3)
	voters := []Voter{{ID: 1, Addr: addrs[0]}, {ID: 2, Addr: addrs[1]}, {ID: 3, Addr: addrs[2]}}
	fast := func(rc *raft.Config) {
		rc.HeartbeatTimeout = 600 * time.Millisecond
		rc.ElectionTimeout = 600 * time.Millisecond
		rc.LeaderLeaseTimeout = 300 * time.Millisecond
	}
	stores := make([]*Store, 3)
	for i, v := range voters {
		s, err := Open(Config{NodeID: v.ID, Dir: t.TempDir(), RaftAddr: v.Addr, Voters: voters, Logger: testLogger(t), tune: fast})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		stores[i] = s
	}
	for _, s := range stores {
		if err := s.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// With timeouts this short, a loaded machine may move leadership at any
	// time: find the leader by waiting for agreement, and write through a
	// follower, which forwards to whoever leads (createTopicRetry retries
	// a write whose outcome a leadership change left unknown).
	var leader *Store
	var followers []*Store
	eventually(t, ctx, "a leader known to every voter", func() bool {
		leader, followers = nil, nil
		for _, s := range stores {
			if s.raft.State() == raft.Leader {
				leader = s
			} else {
				followers = append(followers, s)
			}
		}
		if leader == nil || len(followers) != 2 {
			return false
		}
		for _, f := range followers {
			if id, ok := f.LeaderID(); !ok || id != leader.cfg.NodeID {
				return false
			}
		}
		return true
	})
	writer := followers[0]
	createTopicRetry(t, ctx, writer, testTopic("t", 1))
	want, ok := writer.Topic("t")
	if !ok {
		t.Fatal("a follower's forwarded write is not visible in its reads on return")
	}
	for _, f := range stores {
		for {
			watch := f.Watch()
			if got, ok := f.Topic("t"); ok {
				if !reflect.DeepEqual(got, want) || f.ClusterID() != writer.ClusterID() {
					t.Errorf("node %d has %+v / %q, node %d %+v / %q", f.cfg.NodeID, got, f.ClusterID(), writer.cfg.NodeID, want, writer.ClusterID())
				}
				break
			}
			select {
			case <-watch:
			case <-ctx.Done():
				t.Fatalf("node %d never saw the topic", f.cfg.NodeID)
			}
		}
	}
	for _, s := range stores {
		mustClose(t, s)
	}
}

func TestOpenCreatesDir(t *testing.T) {
	// Open creates the directory itself.
	dir := t.TempDir() + "/nested/metadata"
	s := openReady(t, Config{NodeID: 1, Dir: dir})
	mustClose(t, s)
	if _, err := os.Stat(dir + "/raft.db"); err != nil {
		t.Errorf("raft.db not in the configured dir: %v", err)
	}
}
