package metadata

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// closableTransport is what Raft's transports provide. Raft closes it on
// Shutdown; Open closes it itself if Raft never started.
type closableTransport interface {
	raft.Transport
	raft.WithClose
}

// newTransport builds Raft's transport. With TCP it also returns the
// muxStream under it, through which the store serves and sends forwarded
// requests on the same port; with the in-memory transport mux is nil.
func newTransport(cfg Config, hl hclog.Logger) (closableTransport, *muxStream, error) {
	if cfg.RaftAddr == "" {
		// A fixed address: it is recorded in the Raft configuration, so it
		// should not change between restarts.
		_, t := raft.NewInmemTransport(raft.ServerAddress("strata-metadata-" + string(serverID(cfg.NodeID))))
		return t, nil, nil
	}
	// The advertised address is the string peers were given, verbatim:
	// the Raft configuration, leader hints and TLS server names all use
	// it, and every voter must bootstrap identical entries.
	var advertise net.Addr
	for _, v := range cfg.voters() {
		if v.ID == cfg.NodeID && v.Addr != "" {
			advertise = stringAddr(v.Addr)
		}
	}
	if advertise == nil && cfg.RaftAdvertiseAddr != "" {
		advertise = stringAddr(cfg.RaftAdvertiseAddr)
	}
	if advertise != nil {
		if _, _, err := net.SplitHostPort(advertise.String()); err != nil {
			return nil, nil, fmt.Errorf("metadata raft advertise address %q: %w", advertise, err)
		}
	}
	var serverTLS, clientTLS *tls.Config
	if cfg.TLS != nil {
		serverTLS, clientTLS = raftTLSConfigs(cfg.TLS)
	}
	stream, err := listenTCP(cfg.RaftAddr, advertise, serverTLS, clientTLS)
	if err != nil {
		return nil, nil, err
	}
	mux := newMuxStream(stream)
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  mux,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hl,
	}), mux, nil
}

// stringAddr is an advertised address kept as configured (a host name
// stays a host name).
type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

// tlsHandshakeTimeout bounds the server side of a TLS handshake, so that a
// peer (or a port scanner) that connects and says nothing does not hold a
// goroutine beyond it. It equals the transport's RPC timeout, which bounds
// the dialing side.
const tlsHandshakeTimeout = 10 * time.Second

// raftTLSConfigs derives the server and client sides of mutual TLS from
// the caller's config (Config.TLS documents what it must hold).
func raftTLSConfigs(base *tls.Config) (server, client *tls.Config) {
	server = base.Clone()
	server.ClientAuth = tls.RequireAndVerifyClientCert
	if server.ClientCAs == nil {
		server.ClientCAs = base.RootCAs
	}
	client = base.Clone()
	if client.RootCAs == nil {
		client.RootCAs = base.ClientCAs
	}
	if len(client.Certificates) == 0 && client.GetClientCertificate == nil && base.GetCertificate != nil {
		getCert := base.GetCertificate
		client.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			// A reloading GetCertificate ignores the hello; one that picks
			// by server name has none to go on here.
			return getCert(&tls.ClientHelloInfo{})
		}
	}
	for _, c := range []*tls.Config{server, client} {
		if c.MinVersion < tls.VersionTLS12 {
			c.MinVersion = tls.VersionTLS12
		}
	}
	return server, client
}

// tcpStream is a raft.StreamLayer over TCP, optionally with mutual TLS,
// that, unlike raft's own, closes the connections it accepted when it is
// closed. Raft's NetworkTransport serves each inbound connection on a
// goroutine that only ends when the peer hangs up; closing them here is
// what lets Close leave no goroutines behind while peers are still running.
//
// With TLS, Accept returns at once and the handshake runs on the first Read
// or Write, i.e. on raft's per-connection goroutine: a slow or silent
// client never holds up the accept loop. A client that does not speak TLS,
// or has no certificate the CA signed, fails its handshake, and raft drops
// that connection only.
type tcpStream struct {
	ln        *net.TCPListener
	advertise net.Addr
	serverTLS *tls.Config // nil: plain TCP
	clientTLS *tls.Config
	// localIP is the source address of outbound connections (Raft and
	// forwarding): the bind IP when that is a specific address, else nil
	// (the kernel picks). See sourceIP.
	localIP net.IP

	mu     sync.Mutex // guards conns and closed
	conns  map[*trackedConn]struct{}
	closed bool
}

var _ raft.StreamLayer = (*tcpStream)(nil)

func listenTCP(bind string, advertise net.Addr, serverTLS, clientTLS *tls.Config) (*tcpStream, error) {
	// net.Listen rather than tls.Listen: tls.NewListener would hide the raw
	// connections, which Close must reach.
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("metadata raft listen on %s: %w", bind, err)
	}
	s := &tcpStream{
		ln:        ln.(*net.TCPListener),
		advertise: advertise,
		serverTLS: serverTLS,
		clientTLS: clientTLS,
		localIP:   sourceIP(bind),
		conns:     map[*trackedConn]struct{}{},
	}
	if advertise == nil {
		// Peers dial the address recorded in the Raft configuration;
		// 0.0.0.0 or [::] cannot be dialed.
		if a := ln.Addr().(*net.TCPAddr); a.IP == nil || a.IP.IsUnspecified() {
			_ = ln.Close()
			return nil, fmt.Errorf("metadata raft address %s is not advertisable: list this node among the voters with a reachable address", bind)
		}
	}
	return s, nil
}

func (s *tcpStream) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, raw: c, s: s}
	if s.serverTLS != nil {
		tc.Conn = &tlsServerConn{Conn: tls.Server(c, s.serverTLS)}
	}
	s.conns[tc] = struct{}{}
	return tc, nil
}

func (s *tcpStream) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	err := s.ln.Close()
	for c := range conns {
		// The raw connection: closing a TLS one would first try to send
		// close_notify, which can wait on a peer that is not reading.
		_ = c.raw.Close()
	}
	return err
}

func (s *tcpStream) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.ln.Addr()
}

// Dial connects to a peer. With TLS the handshake is part of the dial and
// bounded by timeout; the peer's certificate must name the host of addr
// (the address in the Raft configuration).
func (s *tcpStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	nd := &net.Dialer{Timeout: timeout}
	if s.localIP != nil {
		nd.LocalAddr = &net.TCPAddr{IP: s.localIP}
	}
	if s.clientTLS == nil {
		return nd.Dial("tcp", string(addr))
	}
	d := tls.Dialer{NetDialer: nd, Config: s.clientTLS}
	return d.Dial("tcp", string(addr))
}

// sourceIP returns the IP a node binding Raft to bind should dial from:
// that IP when it is a literal, specific address; nil for a wildcard, an
// empty host or a host name (not resolved here), which leave the choice
// to the kernel.
//
// Dialing from the bind address makes a node's connections come from the
// address it is known by. On loopback the kernel would otherwise use
// 127.0.0.1 for every node, and a fault-injecting proxy (the isolation
// tests give each node its own 127.0.0.x) could not tell whose traffic it
// carries. On a multi-homed host it also keeps the source on the interface
// the operator chose. Go's dialer then skips peer addresses of the other
// IP family, so the peers must be reachable over the bind IP's family.
func sourceIP(bind string) net.IP {
	host, _, err := net.SplitHostPort(bind)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		return nil
	}
	return ip
}

// trackedConn is an accepted connection that leaves the stream's set when
// raft closes it. Conn is what raft uses (the TLS connection, with TLS);
// raw is the TCP connection under it.
type trackedConn struct {
	net.Conn
	raw  net.Conn
	s    *tcpStream
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		err = c.Conn.Close()
	})
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// tlsServerConn runs the server handshake, bounded by tlsHandshakeTimeout,
// before the first Read or Write. (tls.Conn would handshake on first use
// too, but with no time limit: raft sets no deadline on inbound
// connections.)
type tlsServerConn struct {
	*tls.Conn
	once sync.Once
	err  error
}

func (c *tlsServerConn) handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimeout)
		defer cancel()
		if err := c.Conn.HandshakeContext(ctx); err != nil {
			c.err = fmt.Errorf("metadata raft TLS handshake with %s: %w", c.RemoteAddr(), err)
		}
	})
	return c.err
}

func (c *tlsServerConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *tlsServerConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// forwardMarker is the first byte a forwarding client sends on a new
// connection. hashicorp/raft's NetworkTransport starts every connection
// with an RPC type byte, 0 (AppendEntries) to 4 (RequestPreVote) in
// v1.8; a byte far from that range leaves room for the ones it may add.
// With TLS the byte is the first one inside the encrypted stream.
const forwardMarker byte = 0xA7

// classifyTimeout bounds how long an accepted connection may stay silent
// before its first byte tells who it is for. Raft and the forwarding
// client both write at once after dialing.
const classifyTimeout = 10 * time.Second

// muxStream shares the Raft port between Raft and the forwarding server:
// it accepts connections from the TCP stream layer, reads the first byte
// of each, and hands the connection to the forwarding server when it is
// forwardMarker and to Raft (byte replayed) otherwise.
//
// The accept loop starts with start, once the store exists; until then
// connections wait in the listen backlog. Close closes the TCP stream
// (listener and every accepted connection, which ends the per-connection
// goroutines blocked on reads) and waits for all goroutines of the mux.
// The forwarding handler must therefore never block on anything that
// Close does not also end (the store's handlers wait only through
// Store.do, which returns once the store is closing).
type muxStream struct {
	*tcpStream
	raftConns chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	startOnce sync.Once
	wg        sync.WaitGroup
}

var _ raft.StreamLayer = (*muxStream)(nil)

func newMuxStream(s *tcpStream) *muxStream {
	return &muxStream{tcpStream: s, raftConns: make(chan net.Conn), done: make(chan struct{})}
}

// start runs the accept loop; forward serves each connection that starts
// with forwardMarker (the marker already consumed) and must close it.
func (m *muxStream) start(forward func(net.Conn)) {
	m.startOnce.Do(func() {
		m.wg.Add(1)
		go m.acceptLoop(forward)
	})
}

func (m *muxStream) acceptLoop(forward func(net.Conn)) {
	defer m.wg.Done()
	for {
		c, err := m.tcpStream.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (out of file descriptors, ...): back off a little.
			select {
			case <-m.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		m.wg.Add(1)
		go m.classify(c, forward)
	}
}

func (m *muxStream) classify(c net.Conn, forward func(net.Conn)) {
	defer m.wg.Done()
	var first [1]byte
	_ = c.SetReadDeadline(time.Now().Add(classifyTimeout))
	if _, err := io.ReadFull(c, first[:]); err != nil {
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	if first[0] == forwardMarker {
		forward(c)
		return
	}
	pc := &prefixConn{Conn: c, first: first[0], pending: true}
	select {
	case m.raftConns <- pc:
	case <-m.done:
		_ = c.Close()
	}
}

// Accept returns the next connection meant for Raft.
func (m *muxStream) Accept() (net.Conn, error) {
	select {
	case c := <-m.raftConns:
		return c, nil
	case <-m.done:
		return nil, net.ErrClosed
	}
}

// Close closes the listener and every accepted connection and waits for
// the mux's goroutines. Idempotent.
func (m *muxStream) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.done)
		err = m.tcpStream.Close()
		m.wg.Wait()
	})
	return err
}

// prefixConn replays the byte the mux read to classify the connection.
type prefixConn struct {
	net.Conn
	first   byte
	pending bool // only raft's connection goroutine reads: no lock
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if c.pending && len(p) > 0 {
		p[0] = c.first
		c.pending = false
		return 1, nil
	}
	return c.Conn.Read(p)
}
