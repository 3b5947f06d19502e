package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

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

// serverFor gives handlers the server without a global.
func (r *request) server() *Server { return r.cc.s }
