package broker

import (
	"context"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/internal/groups"
	"github.com/strata-broker/strata/proto"
)

// request is one decoded request on a connection.
type request struct {
	hdr proto.RequestHeader
	msg kmsg.Request
	cc  *clientConn
}

func (r *request) version() int16 { return r.hdr.APIVersion }

// handler runs a request's synchronous part on the connection's reader
// goroutine and returns its reply; work that waits (fsync, long poll,
// rebalance) goes through clientConn.later.
type handler func(s *Server, ctx context.Context, r *request) *reply

type apiEntry struct {
	min, max int16
	h        handler
}

const apiKeyApiVersions = 18

// apis is the one registry of what Strata serves: dispatch and the
// ApiVersions response both read it, so we never advertise a version we
// do not handle. Each entry's handler file says how it differs from Kafka.
var apis = map[int16]apiEntry{}

func register(key, minV, maxV int16, h handler) {
	if _, dup := apis[key]; dup {
		panic("duplicate api registration")
	}
	apis[key] = apiEntry{minV, maxV, h}
}

func handlerFor(key, version int16) (handler, bool) {
	e, ok := apis[key]
	if !ok || version < e.min || version > e.max {
		return nil, false
	}
	return e.h, true
}

// groupCtx carries the client id and host the group coordinator names
// members after, as Kafka does ("clientId-uuid", "/1.2.3.4").
func (r *request) groupCtx(ctx context.Context) context.Context {
	id := ""
	if r.hdr.ClientID != nil {
		id = *r.hdr.ClientID
	}
	return groups.WithClient(ctx, id, "/"+r.cc.host)
}

// anonymousPrincipal is Kafka's principal for unauthenticated connections.
const anonymousPrincipal = "User:ANONYMOUS"

// principal is who the request acts as ("User:<name>").
func (r *request) principal() string { return r.cc.principal }

// clientHost is the client's IP address without the port.
func (r *request) clientHost() string { return r.cc.host }

func remoteHost(nc net.Conn) string {
	host := nc.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return host
}
