package metadata

import (
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
	stream, err := listenTCP(cfg.RaftAddr, advertise)
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

// tcpStream is a raft.StreamLayer over TCP that, unlike raft's own, closes
// the connections it accepted when it is closed. Raft's NetworkTransport
// serves each inbound connection on a goroutine that only ends when the peer
// hangs up; closing them here is what lets Close leave no goroutines behind
// while peers are still running.
type tcpStream struct {
	ln        *net.TCPListener
	advertise net.Addr

	mu     sync.Mutex // guards conns and closed
	conns  map[*trackedConn]struct{}
	closed bool
}

var _ raft.StreamLayer = (*tcpStream)(nil)

func listenTCP(bind string, advertise net.Addr) (*tcpStream, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("metadata raft listen on %s: %w", bind, err)
	}
	s := &tcpStream{ln: ln.(*net.TCPListener), advertise: advertise, conns: map[*trackedConn]struct{}{}}
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
	tc := &trackedConn{Conn: c, s: s}
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
		_ = c.Conn.Close()
	}
	return err
}

func (s *tcpStream) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.ln.Addr()
}

func (s *tcpStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

type trackedConn struct {
	net.Conn
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
