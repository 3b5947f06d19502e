package broker

import (
	"context"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Client quotas (KIP-13, KIP-124, KIP-219): usage is recorded per request;
// a client over its quota gets the throttle time in the response's
// throttle_time_ms and its connection is muted (no further requests are
// read) for that long, so even a client that ignores the field is held to
// the rate. Produce counts request bytes, Fetch response bytes (recorded
// by the fetch handler when it knows them), and every request its handler
// time against request_percentage.

const apiKeyProduce = 0

// quotaUser is the user quota entity name for a principal ("User:alice"
// -> "alice"), as Kafka's sanitized user principal name.
func quotaUser(principal string) string {
	if _, name, ok := strings.Cut(principal, ":"); ok {
		return name
	}
	return principal
}

func (r *request) clientID() string {
	if r.hdr.ClientID == nil {
		return ""
	}
	return *r.hdr.ClientID
}

// recordQuotas records a request's produce bytes and handler time and
// returns the throttle it earned (the connection is muted for it).
func (s *Server) recordQuotas(r *request, frameBytes int, handlerTime time.Duration) time.Duration {
	user, client := quotaUser(r.principal()), r.clientID()
	var throttle time.Duration
	if r.hdr.APIKey == apiKeyProduce {
		if t := s.quotas.RecordProduce(user, client, int64(frameBytes)); t > 0 {
			s.secMetrics.throttle.Record(context.Background(), t.Seconds(), s.secMetrics.quotaProduce)
			throttle = t
		}
	}
	if t := s.quotas.RecordRequestTime(user, client, handlerTime); t > 0 {
		s.secMetrics.throttle.Record(context.Background(), t.Seconds(), s.secMetrics.quotaRequest)
		throttle = max(throttle, t)
	}
	if throttle > 0 {
		r.cc.mute(throttle)
	}
	return throttle
}

// fetchThrottle records response bytes against the consumer quota and
// returns the throttle in milliseconds for the response.
func (s *Server) fetchThrottle(r *request, bytes int64) int32 {
	t := s.quotas.RecordFetch(quotaUser(r.principal()), r.clientID(), bytes)
	if t <= 0 {
		return 0
	}
	s.secMetrics.throttle.Record(context.Background(), t.Seconds(), s.secMetrics.quotaFetch)
	r.cc.mute(t)
	return int32(min(t.Milliseconds(), 1<<31-1))
}

// mute stops the reader from taking another request for d.
func (c *clientConn) mute(d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		cur := c.muteUntil.Load()
		if cur >= until || c.muteUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

func (c *clientConn) waitUnmuted() {
	d := time.Until(time.Unix(0, c.muteUntil.Load()))
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.ctx.Done():
	}
}

// setThrottle puts the larger of the reply's throttles into its response.
func (c *clientConn) setThrottle(rep *reply) {
	t := max(rep.throttle, rep.quotaThrottle)
	if t <= 0 || rep.resp == nil {
		return
	}
	tr, ok := rep.resp.(kmsg.SetThrottleResponse)
	if !ok {
		return
	}
	ms := int32(min(t.Milliseconds(), 1<<31-1))
	if cur, _ := rep.resp.(kmsg.ThrottleResponse).Throttle(); cur < ms {
		tr.SetThrottle(ms)
	}
}
