package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// faultNet is the network between the nodes of a test cluster: one TCP
// proxy per node port that other nodes dial (Raft, replica fetches),
// which can cut a node off from the others and heal it again.
//
// Nodes are told apart by IP: node N owns 127.0.0.1N and binds the source
// address of its outgoing inter-node connections to it, so a connection's
// source says which node dialled and the proxy it arrives at says which
// node it is for. Isolate(n) closes every connection to or from n and
// refuses new ones, in both directions; the test's own clients talk to
// the brokers' client listeners directly and are never cut.
//
// A refused connection is accepted and closed at once rather than
// black-holed: peers see the failure immediately instead of after their
// own timeouts, which keeps the tests fast without changing what a
// partition means to the broker (no byte gets through).
type faultNet struct {
	t     *testing.T
	ipOf  map[int]string // node id -> IP
	nodes map[string]int // IP -> node id

	mu       sync.Mutex
	isolated map[int]bool
	conns    map[*proxiedConn]struct{}
	// unattributed counts connections whose source IP is no node's: a
	// broker that does not bind its source address. Isolating a node
	// then only cuts traffic towards it, not from it.
	unattributed int
	closed       bool

	wg sync.WaitGroup // accept loops and pumps
}

// proxiedConn is one connection through a proxy: from a node (0 when the
// source IP is unknown) to a node.
type proxiedConn struct {
	from, to int
	down     net.Conn // from the dialler

	mu     sync.Mutex
	up     net.Conn // to the target, once dialled
	closed bool
}

// setUp records the connection to the target; false means c was closed
// meanwhile (the link was cut) and up should be dropped.
func (c *proxiedConn) setUp(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.up = up
	return true
}

func (c *proxiedConn) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	up := c.up
	c.mu.Unlock()
	c.down.Close()
	if up != nil {
		up.Close()
	}
}

// newFaultNet returns a network for nodes with the given IPs; it closes
// every proxy and connection at cleanup.
func newFaultNet(t *testing.T, ipOf map[int]string) *faultNet {
	fn := &faultNet{
		t:        t,
		ipOf:     ipOf,
		nodes:    map[string]int{},
		isolated: map[int]bool{},
		conns:    map[*proxiedConn]struct{}{},
	}
	for id, ip := range ipOf {
		fn.nodes[ip] = id
	}
	t.Cleanup(fn.close)
	return fn
}

// Forward starts a proxy for node's port target, listening on a free
// port of the node's IP, and returns the proxy's address: the one to
// advertise to the other nodes.
func (fn *faultNet) Forward(node int, target string) string {
	fn.t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(fn.ipOf[node], "0"))
	if err != nil {
		fn.t.Fatalf("proxy for node %d: %v", node, err)
	}
	fn.serve(ln, node, target)
	return ln.Addr().String()
}

// ForwardSamePort picks a port free both on 127.0.0.1 and on node's IP,
// proxies 127.0.0.1:port to node's IP:port, and returns the node's
// address (for it to bind) and the proxy's as localhost:port (for peers
// to dial). This is for the Raft port: the metadata quorum insists that
// a voter binds the port its entry in controller-voters names, and the
// same IP too when the entry is an IP address, so the proxy can differ
// from the node only by a host name.
func (fn *faultNet) ForwardSamePort(node int) (bind, proxy string) {
	fn.t.Helper()
	var last error
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fn.t.Fatalf("proxy for node %d: %v", node, err)
		}
		port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		bind = net.JoinHostPort(fn.ipOf[node], port)
		probe, err := net.Listen("tcp", bind)
		if err != nil {
			last = err
			ln.Close()
			continue
		}
		probe.Close()
		fn.serve(ln, node, bind)
		return bind, net.JoinHostPort("localhost", port)
	}
	fn.t.Fatalf("no port free on both 127.0.0.1 and %s: %v", fn.ipOf[node], last)
	return "", ""
}

// serve proxies what ln accepts to node's target until cleanup.
func (fn *faultNet) serve(ln net.Listener, node int, target string) {
	fn.t.Helper()
	fn.mu.Lock()
	if fn.closed {
		fn.mu.Unlock()
		ln.Close()
		fn.t.Fatal("Forward on a closed faultNet")
	}
	fn.wg.Add(1)
	fn.mu.Unlock()
	go fn.acceptLoop(ln, node, target)
	fn.t.Cleanup(func() { ln.Close() })
}

func (fn *faultNet) acceptLoop(ln net.Listener, node int, target string) {
	defer fn.wg.Done()
	for {
		down, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: not worth a busy loop.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		fn.handle(down, node, target)
	}
}

// handle connects down to target unless the link is cut, and pumps bytes
// both ways until either side closes or the link is cut.
func (fn *faultNet) handle(down net.Conn, to int, target string) {
	from := 0
	if host, _, err := net.SplitHostPort(down.RemoteAddr().String()); err == nil {
		from = fn.nodes[host]
	}
	c := &proxiedConn{from: from, to: to, down: down}
	fn.mu.Lock()
	if from == 0 {
		fn.unattributed++
	}
	if fn.closed || fn.cut(from, to) {
		fn.mu.Unlock()
		down.Close()
		return
	}
	fn.conns[c] = struct{}{}
	fn.wg.Add(1)
	fn.mu.Unlock()
	go func() {
		defer fn.wg.Done()
		defer fn.forget(c)
		up, err := net.DialTimeout("tcp", target, 2*time.Second)
		if err != nil {
			c.close()
			return
		}
		// Isolate may have closed c while we dialled.
		if !c.setUp(up) {
			up.Close()
			return
		}
		var pumps sync.WaitGroup
		pumps.Add(2)
		pump := func(dst, src net.Conn) {
			defer pumps.Done()
			_, _ = io.Copy(dst, src)
			// Either direction ending ends the connection: Kafka and Raft
			// never half-close, and a half-open link would hide a cut.
			c.close()
		}
		go pump(up, down)
		go pump(down, up)
		pumps.Wait()
	}()
}

func (fn *faultNet) forget(c *proxiedConn) {
	fn.mu.Lock()
	delete(fn.conns, c)
	fn.mu.Unlock()
	c.close()
}

// cut reports whether traffic from one node to another is blocked;
// fn.mu is held.
func (fn *faultNet) cut(from, to int) bool {
	return fn.isolated[from] || fn.isolated[to]
}

// Isolate cuts nodes off from every other node: their current
// inter-node connections, in and out, are closed, and new ones refused.
func (fn *faultNet) Isolate(nodes ...int) {
	fn.mu.Lock()
	for _, n := range nodes {
		fn.isolated[n] = true
	}
	var doomed []*proxiedConn
	for c := range fn.conns {
		if fn.cut(c.from, c.to) {
			doomed = append(doomed, c)
		}
	}
	fn.mu.Unlock()
	for _, c := range doomed {
		c.close()
	}
}

// Heal lets every node talk to every other again.
func (fn *faultNet) Heal() {
	fn.mu.Lock()
	clear(fn.isolated)
	fn.mu.Unlock()
}

// Unattributed is how many connections came from an IP that is no
// node's; see faultNet.unattributed.
func (fn *faultNet) Unattributed() int {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	return fn.unattributed
}

// Links describes the open connections, for failure messages.
func (fn *faultNet) Links() string {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	count := map[[2]int]int{}
	for c := range fn.conns {
		count[[2]int{c.from, c.to}]++
	}
	var parts []string
	for k, n := range count {
		parts = append(parts, fmt.Sprintf("%d->%d:%d", k[0], k[1], n))
	}
	return strings.Join(parts, " ")
}

func (fn *faultNet) close() {
	fn.mu.Lock()
	fn.closed = true
	conns := make([]*proxiedConn, 0, len(fn.conns))
	for c := range fn.conns {
		conns = append(conns, c)
	}
	fn.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	// The listeners close in their own cleanups, registered after this
	// one and so run before it: every accept loop is on its way out.
	fn.wg.Wait()
}

// nodeIP is node n's loopback address: 127.0.0.1n (127.0.0.11 for node 1).
func nodeIP(n int) string { return fmt.Sprintf("127.0.0.1%d", n) }

// requireNodeIPs skips the test when this machine cannot bind the nodes'
// loopback addresses (Linux routes all of 127/8 to lo; others may not).
func requireNodeIPs(t *testing.T, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(nodeIP(i), "0"))
		if err != nil {
			if inCI() {
				t.Fatalf("cannot bind %s: %v", nodeIP(i), err)
			}
			t.Skipf("cannot bind %s, needed for one IP per node: %v", nodeIP(i), err)
		}
		ln.Close()
	}
}

// TestClusterFaultProxy pins down the proxy the cluster tests rely on:
// bytes pass both ways; isolating a node closes its connections and
// refuses new ones whether it is the target or the source; other links
// keep working; Heal restores everything.
func TestClusterFaultProxy(t *testing.T) {
	requireNodeIPs(t, 3)
	fn := newFaultNet(t, map[int]string{1: nodeIP(1), 2: nodeIP(2), 3: nodeIP(3)})
	// An echo server per node, reached through its proxy.
	proxy := map[int]string{}
	for n := 1; n <= 3; n++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(nodeIP(n), "0"))
		if err != nil {
			t.Fatal(err)
		}
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			conns []net.Conn
		)
		t.Cleanup(func() {
			ln.Close()
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _ = io.Copy(c, c)
				}()
			}
		}()
		proxy[n] = fn.Forward(n, ln.Addr().String())
	}
	// dialFrom connects from node from's IP to node to's proxy.
	dialFrom := func(from, to int) net.Conn {
		t.Helper()
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(nodeIP(from))}}
		c, err := d.Dial("tcp", proxy[to])
		if err != nil {
			t.Fatalf("dial %d->%d: %v", from, to, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// works reports whether c echoes a message.
	works := func(c net.Conn) error {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != "ping" {
			return fmt.Errorf("echo %q", buf)
		}
		return nil
	}
	mustWork := func(what string, c net.Conn) {
		t.Helper()
		if err := works(c); err != nil {
			t.Errorf("%s: %v, want an echo", what, err)
		}
	}
	mustFail := func(what string, c net.Conn) {
		t.Helper()
		if err := works(c); err == nil {
			t.Errorf("%s: echoed, want the connection cut", what)
		}
	}

	c12, c21, c23 := dialFrom(1, 2), dialFrom(2, 1), dialFrom(2, 3)
	mustWork("1->2", c12)
	mustWork("2->1", c21)
	mustWork("2->3", c23)

	fn.Isolate(1)
	mustFail("open 1->2 after Isolate(1)", c12)
	mustFail("open 2->1 after Isolate(1)", c21)
	mustWork("open 2->3 after Isolate(1)", c23)
	mustFail("new 1->3 while 1 is isolated", dialFrom(1, 3))
	mustFail("new 3->1 while 1 is isolated", dialFrom(3, 1))
	mustWork("new 3->2 while 1 is isolated", dialFrom(3, 2))

	fn.Heal()
	mustWork("new 1->3 after Heal", dialFrom(1, 3))
	mustWork("new 3->1 after Heal", dialFrom(3, 1))
	if n := fn.Unattributed(); n != 0 {
		t.Errorf("%d connections not attributed to a node, want 0", n)
	}
}
