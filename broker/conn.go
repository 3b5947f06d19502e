package broker

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/proto"
	"github.com/strata-broker/strata/storage"
)

// clientConn is one Kafka client connection. The reader goroutine decodes
// requests and runs each handler's synchronous part in arrival order (so
// produce requests on one connection append in order); the writer
// goroutine sends replies in that same order, waiting for deferred ones
// (fsync, long poll, rebalance). Pipelined produce requests therefore share
// fsyncs. The queue between them bounds requests in flight.
type clientConn struct {
	s      *Server
	nc     net.Conn
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	queue  chan *reply
	wg     sync.WaitGroup // deferred reply goroutines

	// principal is who the connection acts as: "User:ANONYMOUS" until TLS
	// or SASL says otherwise. Written only by the reader goroutine before
	// it dispatches requests, so handlers read it without locking.
	principal string
	host      string    // remote IP, for ACL host matching and quotas
	listener  *listener // the listener it came in on: protocol, advertised address

	sasl      saslState    // reader goroutine only
	closing   bool         // a handler ended the connection: read no more (reader only)
	muteUntil atomic.Int64 // unix nanos: quota throttling, no reads before then (KIP-219)
}

// reply is a response in the connection's order. ready is nil for replies
// known at once; otherwise the writer waits for it to be closed.
type reply struct {
	corr   int32
	api    int16
	start  time.Time // frame read: request latency runs from here to written
	resp   kmsg.Response
	fetch  *fetchReply // spliced records, written with sendfile
	none   bool        // acks=0: nothing goes on the wire
	close  bool        // close the connection after this reply (acks=0 errors, failed SASL)
	raw    []byte      // a bare SASL token (SaslHandshake v0), sent size-prefixed
	rawSet bool
	// Quota throttles for the response's throttle_time_ms: throttle is set
	// by the handler (or its deferred part), quotaThrottle by the reader.
	throttle      time.Duration
	quotaThrottle time.Duration
	ready         chan struct{}
	// For observeRequest's latency breakdown (Kafka's RequestMetrics) and
	// request span: handled..local is the handler's synchronous part,
	// local..done the deferred part (done is zero without one), sending..
	// written the response send. A fetch reply carries resp too, only for
	// its error codes: the chunks are what is written.
	handled, local, done, sending time.Time
	version                       int16
	clientID                      *string
	principal                     string
}

type fetchReply struct {
	chunks  []proto.Chunk
	sources []recordSource
}

func (f *fetchReply) release() {
	for _, r := range f.sources {
		r.release()
	}
}

// recordSource is record bytes a fetch sends with sendfile: file ranges of
// whole batches, held open until the reply is written. Local reads come
// from segment files, remote ones from the tiering cache.
type recordSource interface {
	ranges() []storage.FileRange
	size() int64
	release()
}

type localRecords struct{ rr storage.ReadResult }

func (l *localRecords) ranges() []storage.FileRange { return l.rr.Ranges }
func (l *localRecords) size() int64                 { return l.rr.Len }
func (l *localRecords) release()                    { l.rr.Release() }

func newClientConn(s *Server, nc net.Conn, l *listener) *clientConn {
	if l.tls != nil {
		nc = tls.Server(nc, l.tls) // handshake on the connection's goroutine (tlsHandshake)
	}
	c := &clientConn{
		s:     s,
		nc:    nc,
		log:   s.log.With("component", "conn", "remote", nc.RemoteAddr().String()),
		queue: make(chan *reply, s.cfg.QueuedMaxRequests),

		principal: anonymousPrincipal,
		host:      remoteHost(nc),
		listener:  l,
	}
	if l.sasl() {
		c.sasl.phase = saslHandshake // nothing but ApiVersions and SASL until authenticated
	}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	return c
}

// shutdown makes the reader stop at its next read; the writer then
// drains what was already accepted.
func (c *clientConn) shutdown() {
	c.nc.SetReadDeadline(time.Now())
}

func (c *clientConn) serve() {
	if !c.s.admit(c.host) {
		c.cancel()
		c.nc.Close()
		return
	}
	defer c.s.connLimits.release(c.host)
	if !c.tlsHandshake() {
		c.cancel()
		c.nc.Close()
		return
	}
	c.log.Debug("connection opened")
	c.s.metrics.connections.Add(context.Background(), 1)
	defer c.s.metrics.connections.Add(context.Background(), -1)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	c.readLoop()
	close(c.queue)
	<-writerDone
	c.cancel()
	c.wg.Wait()
	c.nc.Close()
	c.log.Debug("connection closed")
}

func (c *clientConn) readLoop() {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	idle := time.Duration(c.s.cfg.ConnectionsMaxIdleMs) * time.Millisecond
	for {
		if c.s.ctx.Err() != nil || c.closing {
			return
		}
		c.waitUnmuted()
		if idle > 0 {
			c.nc.SetReadDeadline(time.Now().Add(idle))
		}
		// A fresh buffer per request: decoded requests alias it (record
		// batches are appended straight from it), and deferred replies may
		// still hold it while the next request is read.
		frame, err := proto.ReadFrame(br, c.s.cfg.SocketRequestMaxBytes, nil)
		start := time.Now()
		if err != nil {
			switch {
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), c.s.ctx.Err() != nil:
			case errors.Is(err, proto.ErrFrameTooLarge):
				c.log.Warn("closing connection: request frame too large", "err", err, "max", c.s.cfg.SocketRequestMaxBytes)
			default:
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					c.log.Debug("closing idle connection")
				} else {
					c.log.Info("closing connection: read failed", "err", err)
				}
			}
			return
		}
		if c.sasl.phase == saslRaw {
			if !c.saslRawToken(frame) {
				return
			}
			continue
		}
		hdr, req, err := proto.ParseRequest(frame)
		if err != nil {
			if hdr.APIKey == apiKeyApiVersions && errors.Is(err, proto.ErrUnsupportedVersion) {
				// Lessons #1: answer with a v0 body listing what we support
				// so the client retries with a version we know.
				c.queue <- &reply{corr: hdr.CorrelationID, resp: apiVersionsFallback()}
				continue
			}
			// Kafka closes the connection on requests it cannot parse.
			c.log.Warn("closing connection: bad request", "api_key", hdr.APIKey, "api_version", hdr.APIVersion, "err", err)
			return
		}
		h, ok := handlerFor(hdr.APIKey, hdr.APIVersion)
		if !ok && hdr.APIKey == apiKeyApiVersions {
			c.queue <- &reply{corr: hdr.CorrelationID, resp: apiVersionsFallback()}
			continue
		}
		if !ok {
			c.log.Warn("closing connection: unsupported api", "api_key", hdr.APIKey, "api_version", hdr.APIVersion)
			return
		}
		if !c.saslGate(hdr.APIKey) {
			return
		}
		r := &request{hdr: hdr, msg: req, cc: c}
		handled := time.Now()
		rep := h(c.s, c.ctx, r)
		local := time.Now()
		throttle := c.s.recordQuotas(r, len(frame), local.Sub(start))
		if rep == nil {
			continue
		}
		rep.corr, rep.api, rep.start = hdr.CorrelationID, hdr.APIKey, start
		rep.quotaThrottle = throttle
		rep.handled, rep.local = handled, local
		rep.version, rep.clientID, rep.principal = hdr.APIVersion, hdr.ClientID, c.principal
		select {
		case c.queue <- rep:
		case <-c.s.ctx.Done():
			return
		}
	}
}

func (c *clientConn) writeLoop() {
	var buf []byte
	failed := false
	for rep := range c.queue {
		if rep.ready != nil {
			<-rep.ready
		}
		rep.sending = time.Now()
		if failed || rep.none {
			if rep.fetch != nil {
				rep.fetch.release()
			}
			if rep.close && !failed {
				// Kafka's way of telling an acks=0 producer that something
				// failed: it has no response to read, so drop the connection.
				failed = true
				c.nc.Close()
			}
			if rep.none && rep.api == apiKeyProduce {
				// acks=0 produce: handled, nothing to send; still a request.
				c.s.observeRequest(rep)
			}
			continue
		}
		var err error
		if rep.rawSet {
			buf = binary.BigEndian.AppendUint32(buf[:0], uint32(len(rep.raw)))
			buf = append(buf, rep.raw...)
			_, err = c.nc.Write(buf)
		} else if rep.fetch != nil {
			err = c.writeFetch(rep.fetch)
			rep.fetch.release()
		} else {
			c.setThrottle(rep)
			buf = proto.AppendResponse(buf[:0], rep.corr, rep.resp)
			_, err = c.nc.Write(buf)
			if cap(buf) > 1<<20 {
				buf = nil // do not pin a huge buffer for an idle connection
			}
		}
		if err != nil {
			failed = true
			c.log.Debug("write failed", "err", err)
			c.nc.Close() // unblocks the reader
		} else if rep.close {
			failed = true
			c.nc.Close()
		}
		if !rep.rawSet {
			c.s.observeRequest(rep)
		}
	}
}

func (c *clientConn) writeFetch(f *fetchReply) error {
	for _, ch := range f.chunks {
		if ch.Records == nil {
			if _, err := c.nc.Write(ch.Bytes); err != nil {
				return err
			}
			continue
		}
		src := ch.Records.(recordSource)
		for _, fr := range src.ranges() {
			if err := sendFile(c.nc, fr.File, fr.Pos, fr.Len); err != nil {
				return err
			}
		}
	}
	return nil
}

// later runs fn off the reader goroutine and returns a reply the writer
// waits for. fn's reply fields are copied into the returned reply.
func (c *clientConn) later(fn func() *reply) *reply {
	rep := &reply{ready: make(chan struct{})}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(rep.ready)
		out := fn()
		rep.resp, rep.fetch, rep.none, rep.close = out.resp, out.fetch, out.none, out.close
		rep.throttle = max(rep.throttle, out.throttle)
		rep.done = time.Now()
	}()
	return rep
}

func respond(resp kmsg.Response) *reply { return &reply{resp: resp} }
