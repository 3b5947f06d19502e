package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/internal/sasl"
)

// SASL on a connection, as Kafka's SaslServerAuthenticator does it:
//
//   - A SASL listener accepts only ApiVersions, SaslHandshake and
//     SaslAuthenticate until authentication succeeds; anything else closes
//     the connection (Kafka's IllegalSaslStateException).
//   - SaslHandshake v1 picks the mechanism; its tokens then travel in
//     SaslAuthenticate requests. SaslHandshake v0 (old clients) means the
//     tokens follow as bare size-prefixed frames with no Kafka header.
//   - A failed authentication is answered with SASL_AUTHENTICATION_FAILED
//     after connection.failed.authentication.delay.ms, then the connection
//     closes, which slows down password guessing.
//   - Sessions have a lifetime (KIP-368): connections.max.reauth.ms, and
//     the expiry of an OAUTHBEARER token if sooner. Clients re-authenticate
//     in place with a new SaslHandshake + SaslAuthenticate, which must keep
//     the same principal; a request other than those after expiry closes the
//     connection.
//
// All of this state is touched only by the connection's reader goroutine,
// which runs the handlers' synchronous parts.

type saslPhase uint8

const (
	saslOff          saslPhase = iota // not a SASL listener
	saslHandshake                     // waiting for SaslHandshake
	saslAuthenticate                  // mechanism chosen, waiting for SaslAuthenticate
	saslRaw                           // SaslHandshake v0: bare tokens follow
	saslDone                          // authenticated
)

type saslState struct {
	phase   saslPhase
	mech    string
	session sasl.Session
	expiry  time.Time // zero: the session never expires
	reauth  bool      // a re-authentication of a done session is under way
}

const (
	apiKeySaslHandshake    = 17
	apiKeySaslAuthenticate = 36
)

func init() {
	register(apiKeySaslHandshake, 0, 1, handleSaslHandshake)
	register(apiKeySaslAuthenticate, 0, 2, handleSaslAuthenticate)
}

// saslGate decides, before dispatch, whether a request may run on this
// connection. false closes the connection.
func (c *clientConn) saslGate(key int16) bool {
	st := &c.sasl
	switch st.phase {
	case saslOff:
		return true
	case saslDone:
		if !st.expiry.IsZero() && !c.s.now().Before(st.expiry) && key != apiKeySaslHandshake && key != apiKeySaslAuthenticate {
			c.log.Info("closing connection: SASL session expired without re-authentication", "principal", c.principal)
			return false
		}
		return true
	case saslAuthenticate:
		if st.reauth {
			// Requests already sent on an authenticated connection may
			// interleave with a re-authentication.
			return true
		}
	}
	if key == apiKeyApiVersions || key == apiKeySaslHandshake || key == apiKeySaslAuthenticate {
		return true
	}
	c.log.Warn("closing connection: request before SASL authentication", "api_key", key)
	return false
}

func handleSaslHandshake(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.SASLHandshakeRequest)
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = s.saslCfg.Mechanisms
	c := r.cc
	st := &c.sasl
	switch {
	case st.phase == saslHandshake:
	case st.phase == saslDone && r.version() >= 1 && st.session != nil:
		// KIP-368 re-authentication, with the mechanism used before.
		if req.Mechanism != st.mech {
			c.log.Info("closing connection: re-authentication with another SASL mechanism", "mechanism", req.Mechanism, "was", st.mech)
			resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
			return c.closeAfter(respond(resp))
		}
		st.reauth = true
	default:
		resp.ErrorCode = kerr.IllegalSaslState.Code
		if st.phase == saslOff {
			return respond(resp) // a non-SASL listener: Kafka answers and carries on
		}
		c.log.Info("closing connection: unexpected SaslHandshake", "phase", st.phase)
		return c.closeAfter(respond(resp))
	}
	session, err := s.saslCfg.Start(req.Mechanism)
	if err != nil {
		c.log.Info("closing connection: unsupported SASL mechanism", "mechanism", req.Mechanism, "enabled", s.saslCfg.Mechanisms)
		s.secMetrics.authFailure(req.Mechanism)
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		return c.closeAfter(respond(resp))
	}
	st.mech, st.session = req.Mechanism, session
	if r.version() == 0 {
		st.phase = saslRaw
	} else {
		st.phase = saslAuthenticate
	}
	return respond(resp)
}

func handleSaslAuthenticate(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.SASLAuthenticateRequest)
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	c := r.cc
	st := &c.sasl
	if st.phase != saslAuthenticate {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		msg := "SaslAuthenticate without a preceding SaslHandshake"
		resp.ErrorMessage = &msg
		if st.phase == saslOff {
			return respond(resp)
		}
		c.log.Info("closing connection: unexpected SaslAuthenticate", "phase", st.phase)
		return c.closeAfter(respond(resp))
	}
	out, done, err := st.session.Step(req.SASLAuthBytes)
	if err == nil && done && st.reauth && st.session.Principal() != c.principal {
		err = fmt.Errorf("%w: re-authentication as %s on a connection of %s", sasl.ErrAuthFailed, st.session.Principal(), c.principal)
	}
	if err != nil {
		return c.authFailed(resp, err)
	}
	resp.SASLAuthBytes = out
	if !done {
		return respond(resp)
	}
	lifetime := c.authSucceeded()
	if r.version() >= 1 {
		resp.SessionLifetimeMillis = lifetime.Milliseconds()
	}
	return respond(resp)
}

// saslRawToken handles one bare token after SaslHandshake v0. false
// closes the connection (a failure has no response in this framing).
func (c *clientConn) saslRawToken(frame []byte) bool {
	st := &c.sasl
	out, done, err := st.session.Step(frame)
	if err != nil {
		c.s.secMetrics.authFailure(st.mech)
		c.log.Info("authentication failed", "mechanism", st.mech, "err", err)
		c.sleepFailedAuthDelay()
		return false
	}
	c.queue <- &reply{raw: out, rawSet: true, start: time.Now()}
	if done {
		c.authSucceeded()
	}
	return true
}

// authSucceeded records a completed exchange and returns the session
// lifetime to tell the client (0: no expiry).
func (c *clientConn) authSucceeded() time.Duration {
	st := &c.sasl
	now := c.s.now()
	var lifetime time.Duration
	if ms := c.s.cfg.ConnectionsMaxReauthMs; ms > 0 {
		lifetime = time.Duration(ms) * time.Millisecond
	}
	if exp := st.session.Expiry(); !exp.IsZero() {
		if d := exp.Sub(now); lifetime == 0 || d < lifetime {
			lifetime = max(d, time.Millisecond)
		}
	}
	st.expiry = time.Time{}
	if lifetime > 0 {
		st.expiry = now.Add(lifetime)
	}
	if !st.reauth {
		c.principal = st.session.Principal()
		c.log = c.log.With("principal", c.principal)
		c.log.Debug("authenticated", "mechanism", st.mech, "session_lifetime", lifetime)
	} else {
		c.log.Debug("re-authenticated", "mechanism", st.mech, "session_lifetime", lifetime)
	}
	c.s.secMetrics.authSuccess(st.mech)
	st.phase, st.reauth = saslDone, false
	return lifetime
}

// authFailed answers a failed exchange the way Kafka does: a generic
// message (the reason goes to the log only), after a delay, then close.
func (c *clientConn) authFailed(resp *kmsg.SASLAuthenticateResponse, err error) *reply {
	st := &c.sasl
	c.s.secMetrics.authFailure(st.mech)
	level := "authentication failed"
	if errors.Is(err, sasl.ErrMalformed) {
		level = "authentication failed: malformed SASL message"
	}
	c.log.Info(level, "mechanism", st.mech, "err", err)
	resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
	msg := "Authentication failed during authentication due to invalid credentials with SASL mechanism " + st.mech
	resp.ErrorMessage = &msg
	resp.SASLAuthBytes = nil
	st.phase = saslHandshake
	c.closing = true
	return c.later(func() *reply {
		c.sleepFailedAuthDelay()
		return &reply{resp: resp, close: true}
	})
}

func (c *clientConn) sleepFailedAuthDelay() {
	d := time.Duration(c.s.cfg.ConnectionFailedAuthDelayMs) * time.Millisecond
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

// closeAfter marks rep as the connection's last: the reader stops and the
// writer closes the connection once rep is written.
func (c *clientConn) closeAfter(rep *reply) *reply {
	rep.close = true
	c.closing = true
	return rep
}
