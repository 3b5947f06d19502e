package metadata

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
)

// heartbeater plays a broker's heartbeat loop against a store, which the
// test may switch (to survive the store's shutdown).
type heartbeater struct {
	id          int32
	incarnation uuid.UUID
	ctx         context.Context // ends at halt, interrupting a heartbeat
	cancel      context.CancelFunc
	done        chan struct{}

	mu     sync.Mutex
	via    *Store
	lastOK time.Time // start of the latest successful heartbeat
	ok     int       // successful heartbeats
}

func startHeartbeats(t *testing.T, via *Store, id int32, incarnation uuid.UUID, every time.Duration) *heartbeater {
	h := &heartbeater{id: id, incarnation: incarnation, via: via, done: make(chan struct{})}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	t.Cleanup(h.halt) // before the stores close: cleanups run last first
	go func() {
		defer close(h.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			h.mu.Lock()
			s := h.via
			h.mu.Unlock()
			start := time.Now()
			ctx, cancel := context.WithTimeout(h.ctx, 2*time.Second)
			_, err := s.BrokerHeartbeat(ctx, h.id, h.incarnation)
			cancel()
			if err == nil {
				h.mu.Lock()
				h.lastOK, h.ok = start, h.ok+1
				h.mu.Unlock()
			}
			select {
			case <-h.ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

func (h *heartbeater) setVia(s *Store) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.via = s
}

// halt stops the heartbeats and waits for the loop to end. Idempotent.
func (h *heartbeater) halt() {
	h.cancel()
	<-h.done
}

func (h *heartbeater) stats() (lastOK time.Time, ok int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastOK, h.ok
}

func withSessionTimeout(c *testCluster, d time.Duration) {
	for id, cfg := range c.cfgs {
		cfg.BrokerSessionTimeout = d
		c.cfgs[id] = cfg
	}
}

func registerV2(t *testing.T, ctx context.Context, s *Store, id int32, incarnation uuid.UUID) {
	t.Helper()
	r := BrokerRegistration{ID: id, IncarnationID: incarnation,
		Endpoints: []Endpoint{{Listener: "PLAINTEXT", Host: "127.0.0.1", Port: 9000 + id, SecurityProtocol: "PLAINTEXT"}}}
	// The same incarnation again is a retry: safe to repeat.
	writeRetry(t, ctx, func() error { return s.RegisterBrokerV2(ctx, r) }, nil)
}

func awaitBroker(t *testing.T, ctx context.Context, s *Store, id int32, what string, cond func(Broker) bool) {
	t.Helper()
	awaitState(t, ctx, s, fmt.Sprintf("broker %d %s", id, what), func() bool {
		b, ok := s.Broker(id)
		return ok && cond(b)
	})
}

func fenced(b Broker) bool   { return b.Fenced }
func unfenced(b Broker) bool { return !b.Fenced }

// controllerPasses is how many session checks the leaders of c ran.
func controllerPasses(stores ...*Store) uint64 {
	var n uint64
	for _, s := range stores {
		n += s.hb.ticks.Load()
	}
	return n
}

// awaitPasses waits until the leaders ran n more session checks.
func awaitPasses(t *testing.T, ctx context.Context, n uint64, stores func() []*Store) {
	t.Helper()
	start := controllerPasses(stores()...)
	eventually(t, ctx, fmt.Sprintf("%d controller passes", n), func() bool {
		return controllerPasses(stores()...) >= start+n
	})
}

func partitionOf(t *testing.T, s *Store, topic string, p int) Partition {
	t.Helper()
	tp, ok := s.Topic(topic)
	if !ok || p >= len(tp.Partitions) {
		t.Fatalf("node %d: no partition %s-%d", s.cfg.NodeID, topic, p)
	}
	return tp.Partitions[p]
}

func wantPartition(t *testing.T, s *Store, topic string, p int, leader int32, isr ...int32) {
	t.Helper()
	got := partitionOf(t, s, topic, p)
	if got.Leader != leader || !slices.Equal(got.ISR, isr) {
		t.Errorf("%s-%d: leader %d ISR %v, want leader %d ISR %v", topic, p, got.Leader, got.ISR, leader, isr)
	}
}

// A broker that heartbeats is admitted, one that goes silent is fenced
// after the session timeout (and loses its leaderships and ISR places),
// and one that comes back is admitted again; all through a follower,
// whose heartbeats are forwarded to the leader.
func TestControllerFencesSilentBrokers(t *testing.T) {
	ctx := clusterCtx(t)
	const timeout = 600 * time.Millisecond
	c := newTestCluster(t, 3, fastRaft, nil)
	withSessionTimeout(c, timeout)
	c.open()
	f := c.follower(ctx)
	inc11, inc12 := inc(11, 0), inc(12, 0)
	registerV2(t, ctx, f, 11, inc11)
	registerV2(t, ctx, f, 12, inc12)

	// Registered brokers start fenced and the grace period admits none of
	// them: only a heartbeat does.
	awaitPasses(t, ctx, 3, c.running)
	for _, id := range []int32{11, 12} {
		if b, _ := f.Broker(id); !b.Fenced {
			t.Fatalf("broker %d unfenced without a heartbeat", id)
		}
	}

	// Heartbeats for unknown brokers and other incarnations are stale, on
	// the leader and through a follower (the sentinel crosses the wire).
	for _, s := range []*Store{f, c.leader(ctx)} {
		for _, tc := range []struct {
			id  int32
			inc uuid.UUID
		}{{11, inc(11, 1)}, {99, inc(99, 0)}} {
			if _, err := s.BrokerHeartbeat(ctx, tc.id, tc.inc); !errors.Is(err, ErrStaleBrokerEpoch) {
				t.Errorf("node %d: heartbeat of broker %d incarnation %s: %v, want ErrStaleBrokerEpoch", s.cfg.NodeID, tc.id, tc.inc, err)
			}
		}
	}

	// The reply tells a broker that it is fenced.
	if r, err := f.BrokerHeartbeat(ctx, 11, inc11); err != nil || !r.Fenced {
		t.Fatalf("first heartbeat of broker 11 = %+v, %v; want fenced", r, err)
	}
	h11 := startHeartbeats(t, f, 11, inc11, timeout/6)
	h12 := startHeartbeats(t, f, 12, inc12, timeout/6)
	awaitBroker(t, ctx, f, 11, "unfenced", unfenced)
	awaitBroker(t, ctx, f, 12, "unfenced", unfenced)
	if r, err := f.BrokerHeartbeat(ctx, 12, inc12); err != nil || r.Fenced {
		t.Fatalf("heartbeat of unfenced broker 12 = %+v, %v", r, err)
	}

	createTopicRetry(t, ctx, f, Topic{Name: "hb", Partitions: []Partition{
		{Index: 0, Replicas: []int32{11, 12}, Leader: 11},
		{Index: 1, Replicas: []int32{11}, Leader: 11},
		{Index: 2, Replicas: []int32{12, 11}, Leader: 12},
	}})

	// Broker 11 goes silent.
	h11.halt()
	lastOK, _ := h11.stats()
	awaitBroker(t, ctx, f, 11, "fenced", fenced)
	if since := time.Since(lastOK); since < timeout {
		t.Errorf("broker 11 fenced %v after a heartbeat, before its session timeout %v", since, timeout)
	}
	wantPartition(t, f, "hb", 0, 12, 12) // leadership moved within the ISR
	wantPartition(t, f, "hb", 1, -1, 11) // no one else: leaderless, last ISR member kept
	wantPartition(t, f, "hb", 2, 12, 12) // a follower leaves the ISR
	if b, _ := f.Broker(12); b.Fenced {
		t.Error("broker 12 was fenced while it heartbeats")
	}

	// It comes back: unfenced, and the partition it alone can lead is led
	// again; where others lead it must catch up first (AlterPartition).
	if r, err := f.BrokerHeartbeat(ctx, 11, inc11); err != nil || !r.Fenced {
		t.Fatalf("heartbeat of fenced broker 11 = %+v, %v; want fenced", r, err)
	}
	startHeartbeats(t, f, 11, inc11, timeout/6)
	awaitBroker(t, ctx, f, 11, "unfenced again", unfenced)
	awaitState(t, ctx, f, "hb-1 led by broker 11", func() bool { return partitionOf(t, f, "hb", 1).Leader == 11 })
	if p := partitionOf(t, f, "hb", 1); p.LeaderEpoch != 2 || !slices.Equal(p.ISR, []int32{11}) {
		t.Errorf("hb-1 after broker 11 returned: %+v", p)
	}
	wantPartition(t, f, "hb", 0, 12, 12)
	h12.halt()
}

// A new leader forgets its predecessor's heartbeats: it gives every broker
// a full session timeout before fencing it, so a broker that keeps
// heartbeating is never fenced by the change, and one that stopped is.
func TestControllerChangeGivesGrace(t *testing.T) {
	ctx := clusterCtx(t)
	const timeout = 800 * time.Millisecond
	c := newTestCluster(t, 3, fastRaft, nil)
	withSessionTimeout(c, timeout)
	c.open()
	via := c.running()[0]
	registerV2(t, ctx, via, 21, inc(21, 0))
	registerV2(t, ctx, via, 22, inc(22, 0))
	h21 := startHeartbeats(t, via, 21, inc(21, 0), timeout/8)
	h22 := startHeartbeats(t, via, 22, inc(22, 0), timeout/8)
	awaitBroker(t, ctx, via, 21, "unfenced", unfenced)
	awaitBroker(t, ctx, via, 22, "unfenced", unfenced)
	createTopicRetry(t, ctx, via, Topic{Name: "lc", Partitions: []Partition{
		{Index: 0, Replicas: []int32{21}, Leader: 21},
		{Index: 1, Replicas: []int32{22}, Leader: 22},
	}})

	old := c.leader(ctx)
	for _, s := range c.running() {
		if s != old {
			via = s
		}
	}
	h21.setVia(via)
	h22.setVia(via)
	sameState(t, ctx, old, via)
	epoch := partitionOf(t, via, "lc", 0).LeaderEpoch

	h22.halt()
	c.stop(old.cfg.NodeID)
	if nl := c.leader(ctx); nl == old {
		t.Fatal("the stopped node still leads")
	}
	awaitBroker(t, ctx, via, 22, "fenced by the new leader", fenced)
	wantPartition(t, via, "lc", 1, -1, 22)
	// Broker 21's partition never changed leader: 21 was never fenced,
	// not even for a moment, although the new leader had no heartbeat
	// from it when it took over.
	if p := partitionOf(t, via, "lc", 0); p.Leader != 21 || p.LeaderEpoch != epoch {
		t.Errorf("lc-0 after the controller change: %+v, want leader 21 at epoch %d", p, epoch)
	}
	if b, _ := via.Broker(21); b.Fenced {
		t.Error("broker 21 fenced although it kept heartbeating")
	}
	h21.halt()
}

// On the in-memory single voter: the loop runs there too, controlled
// shutdown is not undone by heartbeats, a new incarnation is admitted, and
// RegisterBroker (v1) brokers never expire.
func TestControllerSingleNode(t *testing.T) {
	ctx := waitCtx(t)
	const timeout = 400 * time.Millisecond
	s := openReady(t, Config{NodeID: 1, Dir: t.TempDir(), BrokerSessionTimeout: timeout})
	if !s.IsActiveController() {
		t.Fatal("the single voter is not the active controller")
	}
	stores := func() []*Store { return []*Store{s} }

	if _, err := s.BrokerHeartbeat(ctx, 1, uuid.Nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("heartbeat without an incarnation: %v", err)
	}
	if _, err := s.BrokerHeartbeat(ctx, 7, inc(7, 0)); !errors.Is(err, ErrStaleBrokerEpoch) {
		t.Errorf("heartbeat of an unregistered broker: %v", err)
	}
	if err := s.RegisterBroker(ctx, Broker{ID: 1, Host: "h", Port: 9092}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BrokerHeartbeat(ctx, 1, inc(1, 0)); !errors.Is(err, ErrStaleBrokerEpoch) {
		t.Errorf("heartbeat naming an incarnation of a v1 broker: %v", err)
	}

	// Broker 2 heartbeats and is admitted; then it shuts down in a
	// controlled way and keeps heartbeating (as Kafka brokers do while
	// they stop): it stays fenced.
	registerV2(t, ctx, s, 2, inc(2, 0))
	h2 := startHeartbeats(t, s, 2, inc(2, 0), timeout/8)
	awaitBroker(t, ctx, s, 2, "unfenced", unfenced)
	if err := s.ControlledShutdown(ctx, 2, inc(2, 0)); err != nil {
		t.Fatal(err)
	}
	_, before := h2.stats()
	eventually(t, ctx, "two more heartbeats of broker 2", func() bool { _, n := h2.stats(); return n >= before+2 })
	awaitPasses(t, ctx, 3, stores)
	if b, _ := s.Broker(2); !b.Fenced || !b.InControlledShutdown {
		t.Fatalf("broker 2 in controlled shutdown after heartbeats: %+v", b)
	}
	if r, err := s.BrokerHeartbeat(ctx, 2, inc(2, 0)); err != nil || !r.Fenced {
		t.Errorf("heartbeat of broker 2 in controlled shutdown = %+v, %v; want fenced", r, err)
	}
	h2.halt()

	// The restarted process registers a new incarnation and is admitted.
	registerV2(t, ctx, s, 2, inc(2, 1))
	if _, err := s.BrokerHeartbeat(ctx, 2, inc(2, 0)); !errors.Is(err, ErrStaleBrokerEpoch) {
		t.Errorf("heartbeat of the replaced incarnation: %v", err)
	}
	startHeartbeats(t, s, 2, inc(2, 1), timeout/8)
	awaitBroker(t, ctx, s, 2, "unfenced after restarting", func(b Broker) bool { return !b.Fenced && !b.InControlledShutdown })

	// Broker 3 is admitted by hand and never heartbeats: fenced after the
	// session timeout. The v1 broker, which cannot heartbeat, is not.
	registerV2(t, ctx, s, 3, inc(3, 0))
	if err := s.UnfenceBroker(ctx, 3, inc(3, 0), false); err != nil {
		t.Fatal(err)
	}
	awaitBroker(t, ctx, s, 3, "fenced", fenced)
	if b, _ := s.Broker(1); b.Fenced {
		t.Error("the RegisterBroker broker was fenced")
	}
	if b, _ := s.Broker(2); b.Fenced {
		t.Error("heartbeating broker 2 was fenced")
	}
}

func TestForwardHeartbeatRoundTrip(t *testing.T) {
	req := &fwdRequest{Kind: fwdBrokerHeartbeat, Op: "heartbeat", ID: 4, Incarnation: inc(4, 2)}
	frame, err := encodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRequest(frameBody(t, frame))
	if err != nil || !reflect.DeepEqual(got, req) {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, req)
	}
	// Other kinds do not carry the field: older nodes decode them strictly.
	other, _ := encodeRequest(&fwdRequest{Kind: fwdRemoveServer, ID: 1})
	if body := string(frameBody(t, other)); body != "\x01\x04{\"id\":1}" {
		t.Errorf("remove-server body %q", body)
	}
	for name, bad := range map[string]*fwdRequest{
		"no incarnation": {Kind: fwdBrokerHeartbeat, ID: 4},
		"negative id":    {Kind: fwdBrokerHeartbeat, ID: -1, Incarnation: inc(1, 0)},
	} {
		frame, _ := encodeRequest(bad)
		if _, err := decodeRequest(frameBody(t, frame)); !errors.Is(err, errBadForward) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, want := range []bool{true, false} {
		frame, err := encodeResponse(fwdBrokerHeartbeat, fwdResponse{fenced: want})
		if err != nil {
			t.Fatal(err)
		}
		r, err := decodeResponse(frameBody(t, frame), fwdBrokerHeartbeat)
		if err != nil || r.fenced != want || r.err != nil {
			t.Errorf("response fenced=%v came back as %+v, %v", want, r, err)
		}
	}
}

func TestSourceIP(t *testing.T) {
	for bind, want := range map[string]net.IP{
		"127.0.0.2:9093": net.ParseIP("127.0.0.2"),
		"[::1]:9093":     net.ParseIP("::1"),
		"0.0.0.0:9093":   nil,
		"[::]:9093":      nil,
		":9093":          nil,
		"localhost:9093": nil,
		"not an address": nil,
		"10.1.2.3:0":     net.ParseIP("10.1.2.3"),
	} {
		if got := sourceIP(bind); !got.Equal(want) {
			t.Errorf("sourceIP(%q) = %v, want %v", bind, got, want)
		}
	}
}

// A node bound to a specific loopback address dials from it, so that a
// proxy in the middle can tell the nodes apart (the isolation tests).
func TestDialBindsSourceIP(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2 on this machine: %v", err)
	}
	_ = probe.Close()
	ca := newTestCA(t, "cluster CA")
	for _, withTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", withTLS), func(t *testing.T) {
			var serverTLS, clientTLS *tls.Config
			if withTLS {
				serverTLS, clientTLS = raftTLSConfigs(ca.nodeTLS(t, "node"))
			}
			server, err := listenTCP("127.0.0.1:0", nil, serverTLS, clientTLS)
			if err != nil {
				t.Fatal(err)
			}
			defer server.Close()
			client, err := listenTCP("127.0.0.2:0", nil, serverTLS, clientTLS)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()

			type accepted struct {
				remote net.Addr
				err    error
			}
			got := make(chan accepted, 1)
			go func() {
				c, err := server.Accept()
				if err != nil {
					got <- accepted{err: err}
					return
				}
				defer c.Close()
				var b [1]byte
				_, err = c.Read(b[:]) // with TLS, the handshake runs here
				got <- accepted{remote: c.RemoteAddr(), err: err}
			}()
			conn, err := client.Dial(raft.ServerAddress(server.Addr().String()), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write([]byte{1}); err != nil {
				t.Fatal(err)
			}
			a := <-got
			if a.err != nil {
				t.Fatal(a.err)
			}
			if ip := a.remote.(*net.TCPAddr).IP; !ip.Equal(net.ParseIP("127.0.0.2")) {
				t.Errorf("the server saw the dial come from %v, want 127.0.0.2", ip)
			}
		})
	}
}
