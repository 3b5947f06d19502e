package metadata

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
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

func newTransport(cfg Config, hl hclog.Logger) (closableTransport, error) {
	if cfg.RaftAddr == "" {
		// A fixed address: it is recorded in the Raft configuration, so it
		// should not change between restarts.
		_, t := raft.NewInmemTransport(raft.ServerAddress("strata-metadata-" + string(serverID(cfg.NodeID))))
		return t, nil
	}
	var advertise net.Addr
	for _, v := range cfg.voters() {
		if v.ID == cfg.NodeID && v.Addr != "" {
			a, err := net.ResolveTCPAddr("tcp", v.Addr)
			if err != nil {
				return nil, fmt.Errorf("metadata raft advertise address %q: %w", v.Addr, err)
			}
			advertise = a
		}
	}
	var serverTLS, clientTLS *tls.Config
	if cfg.TLS != nil {
		serverTLS, clientTLS = raftTLSConfigs(cfg.TLS)
	}
	stream, err := listenTCP(cfg.RaftAddr, advertise, serverTLS, clientTLS)
	if err != nil {
		return nil, err
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hl,
	}), nil
}

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
	if s.clientTLS == nil {
		return net.DialTimeout("tcp", string(addr), timeout)
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: s.clientTLS}
	return d.Dial("tcp", string(addr))
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
