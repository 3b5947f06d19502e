package broker

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
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
}

// reply is a response in the connection's order. ready is nil for replies
// known at once; otherwise the writer waits for it to be closed.
type reply struct {
	corr  int32
	api   int16
	start time.Time // frame read: request latency runs from here to written
	resp  kmsg.Response
	fetch *fetchReply // spliced records, written with sendfile
	none  bool        // acks=0: nothing goes on the wire
	close bool        // close the connection after this reply (acks=0 errors)
	ready chan struct{}
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

func newClientConn(s *Server, nc net.Conn) *clientConn {
	c := &clientConn{
		s:     s,
		nc:    nc,
		log:   s.log.With("component", "conn", "remote", nc.RemoteAddr().String()),
		queue: make(chan *reply, s.cfg.QueuedMaxRequests),
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
		if c.s.ctx.Err() != nil {
			return
		}
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
		r := &request{hdr: hdr, msg: req, cc: c}
		rep := h(c.s, c.ctx, r)
		if rep == nil {
			continue
		}
		rep.corr, rep.api, rep.start = hdr.CorrelationID, hdr.APIKey, start
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
			continue
		}
		var err error
		if rep.fetch != nil {
			err = c.writeFetch(rep.fetch)
			rep.fetch.release()
		} else {
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
		}
		c.s.observeRequest(rep)
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
	}()
	return rep
}

func respond(resp kmsg.Response) *reply { return &reply{resp: resp} }
