package broker

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/strata-broker/strata/metadata"
)

func startSASLServer(t *testing.T, mutate ...func(*Config)) *testServer {
	t.Helper()
	return startServer(t, append([]func(*Config){func(c *Config) {
		c.Listeners = "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0"
		c.SASLPlainUsers = "alice:alice-secret,bob:bob-secret"
		c.ConnectionFailedAuthDelayMs = 0
	}}, mutate...)...)
}

func (ts *testServer) rawAt(t *testing.T, listener string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", ts.ListenerAddr(listener).String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return rawOver(t, c)
}

// expectClosed fails unless the broker closes the connection without
// sending anything more.
func (rc *rawConn) expectClosed(t *testing.T) {
	t.Helper()
	if _, _, err := rc.readFrame(5 * time.Second); err != io.EOF {
		var ne net.Error
		if ok := errorsAs(err, &ne); ok && ne.Timeout() {
			t.Fatal("connection still open")
		}
		if err == nil {
			t.Fatal("got a response, want the connection closed")
		}
	}
}

func errorsAs(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}

func doSaslHandshake(rc *rawConn, version int16, mech string) *kmsg.SASLHandshakeResponse {
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.Version, req.Mechanism = version, mech
	return rc.do(req).(*kmsg.SASLHandshakeResponse)
}

func doSaslAuthenticate(rc *rawConn, token []byte) *kmsg.SASLAuthenticateResponse {
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.Version = 2
	req.SASLAuthBytes = token
	return rc.do(req).(*kmsg.SASLAuthenticateResponse)
}

func plainToken(user, pass string) []byte { return []byte("\x00" + user + "\x00" + pass) }

func metadataOK(t *testing.T, rc *rawConn) {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	resp := rc.do(req).(*kmsg.MetadataResponse)
	if len(resp.Brokers) != 1 {
		t.Fatalf("metadata after authentication: %+v", resp)
	}
}

// SaslHandshake v0 is followed by bare tokens without Kafka headers, as
// old clients send them.
func TestSASLHandshakeV0RawTokens(t *testing.T) {
	ts := startSASLServer(t)
	rc := ts.rawAt(t, "SASL_PLAINTEXT")
	if resp := doSaslHandshake(rc, 0, "PLAIN"); resp.ErrorCode != 0 {
		t.Fatalf("handshake v0: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	tok := plainToken("alice", "alice-secret")
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(tok)))
	if _, err := rc.c.Write(append(frame, tok...)); err != nil {
		t.Fatal(err)
	}
	var sz [4]byte
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(rc.br, sz[:]); err != nil {
		t.Fatalf("read raw token reply: %v", err)
	}
	if n := binary.BigEndian.Uint32(sz[:]); n != 0 {
		t.Fatalf("PLAIN's reply token has %d bytes, want 0", n)
	}
	metadataOK(t, rc)
	if got := ts.serverPrincipal(t, rc.c); got != "User:alice" {
		t.Errorf("principal %q, want User:alice", got)
	}

	// A wrong password in the bare framing has no response: the broker closes.
	rc = ts.rawAt(t, "SASL_PLAINTEXT")
	doSaslHandshake(rc, 0, "PLAIN")
	tok = plainToken("alice", "wrong")
	frame = binary.BigEndian.AppendUint32(nil, uint32(len(tok)))
	rc.c.Write(append(frame, tok...))
	rc.expectClosed(t)
}

func TestSASLStateMachine(t *testing.T) {
	ts := startSASLServer(t)

	t.Run("handshake on a PLAINTEXT listener", func(t *testing.T) {
		rc := ts.rawAt(t, "PLAINTEXT")
		if resp := doSaslHandshake(rc, 1, "PLAIN"); resp.ErrorCode != kerr.IllegalSaslState.Code {
			t.Fatalf("error %v, want ILLEGAL_SASL_STATE", kerr.ErrorForCode(resp.ErrorCode))
		}
		metadataOK(t, rc) // the connection is still usable
	})
	t.Run("request before authentication closes", func(t *testing.T) {
		rc := ts.rawAt(t, "SASL_PLAINTEXT")
		rc.send(kmsg.NewPtrMetadataRequest())
		rc.expectClosed(t)
	})
	t.Run("ApiVersions before authentication", func(t *testing.T) {
		rc := ts.rawAt(t, "SASL_PLAINTEXT")
		if _, err := apiVersions(rc); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unsupported mechanism", func(t *testing.T) {
		rc := ts.rawAt(t, "SASL_PLAINTEXT")
		resp := doSaslHandshake(rc, 1, "GSSAPI")
		if resp.ErrorCode != kerr.UnsupportedSaslMechanism.Code {
			t.Fatalf("error %v, want UNSUPPORTED_SASL_MECHANISM", kerr.ErrorForCode(resp.ErrorCode))
		}
		if len(resp.SupportedMechanisms) != 3 {
			t.Errorf("mechanisms %v, want the three enabled", resp.SupportedMechanisms)
		}
		rc.expectClosed(t)
	})
	t.Run("wrong password", func(t *testing.T) {
		rc := ts.rawAt(t, "SASL_PLAINTEXT")
		doSaslHandshake(rc, 1, "PLAIN")
		resp := doSaslAuthenticate(rc, plainToken("alice", "nope"))
		if resp.ErrorCode != kerr.SaslAuthenticationFailed.Code || resp.ErrorMessage == nil {
			t.Fatalf("error %v, want SASL_AUTHENTICATION_FAILED with a message", kerr.ErrorForCode(resp.ErrorCode))
		}
		rc.expectClosed(t)
	})
	t.Run("re-authentication keeps the principal", func(t *testing.T) {
		rc := ts.rawAt(t, "SASL_PLAINTEXT")
		doSaslHandshake(rc, 1, "PLAIN")
		if resp := doSaslAuthenticate(rc, plainToken("alice", "alice-secret")); resp.ErrorCode != 0 {
			t.Fatalf("authenticate: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		doSaslHandshake(rc, 1, "PLAIN")
		if resp := doSaslAuthenticate(rc, plainToken("alice", "alice-secret")); resp.ErrorCode != 0 {
			t.Fatalf("re-authenticate: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		metadataOK(t, rc)
		doSaslHandshake(rc, 1, "PLAIN")
		if resp := doSaslAuthenticate(rc, plainToken("bob", "bob-secret")); resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
			t.Fatalf("re-authentication as another user: %v, want SASL_AUTHENTICATION_FAILED", kerr.ErrorForCode(resp.ErrorCode))
		}
		rc.expectClosed(t)
	})
}

// A SASL session with connections.max.reauth.ms tells the client its
// lifetime and ends when it passes without re-authentication.
func TestSASLSessionLifetime(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	ts := startSASLServer(t, func(c *Config) {
		c.ConnectionsMaxReauthMs = 60000
		c.clock = func() time.Time { return time.Unix(0, now.Load()) }
	})
	rc := ts.rawAt(t, "SASL_PLAINTEXT")
	doSaslHandshake(rc, 1, "PLAIN")
	resp := doSaslAuthenticate(rc, plainToken("alice", "alice-secret"))
	if resp.ErrorCode != 0 || resp.SessionLifetimeMillis != 60000 {
		t.Fatalf("authenticate: %v, lifetime %d ms, want 60000", kerr.ErrorForCode(resp.ErrorCode), resp.SessionLifetimeMillis)
	}
	metadataOK(t, rc)
	now.Add(int64(61 * time.Second))
	rc.send(kmsg.NewPtrMetadataRequest())
	rc.expectClosed(t)
}

// A franz-go client authenticates over SASL_PLAINTEXT and produces.
func TestSASLPlainClient(t *testing.T) {
	ts := startSASLServer(t)
	addr := ts.ListenerAddr("SASL_PLAINTEXT").String()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism()),
		kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "sasl-plain", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// max.connections.per.ip closes connections beyond the limit at once.
func TestMaxConnectionsPerIP(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxConnectionsPerIP = 2 })
	a, b := ts.raw(t), ts.raw(t)
	if _, err := apiVersions(a); err != nil {
		t.Fatal(err)
	}
	if _, err := apiVersions(b); err != nil {
		t.Fatal(err)
	}
	c := ts.raw(t)
	c.send(kmsg.NewPtrApiVersionsRequest())
	c.expectClosed(t)
	a.c.Close()
	waitFor(t, "a slot freed by a closed connection", func() bool {
		d := ts.raw(t)
		_, err := apiVersions(d)
		d.c.Close()
		return err == nil
	})
}

// With controller-tls the broker's Raft transport runs over mutual TLS:
// a one-voter quorum on a real TCP port starts and takes metadata writes.
func TestControllerTLSQuorum(t *testing.T) {
	setup := newTLSSetup(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raftAddr := l.Addr().String()
	l.Close()
	ts := startTLSServer(t, setup, func(c *Config) {
		c.ControllerAddr = raftAddr
		c.ControllerTLS = true
	})
	ts.createTopic(t, "over-tls-raft", 1)
	// A plain TCP peer is refused by the transport and does not hurt it.
	c, err := net.DialTimeout("tcp", raftAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("not a TLS handshake"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, c)
	c.Close()
	ts.createTopic(t, "still-working", 1)
}

// The connection_creation_rate quota on an IP closes connections opened
// faster than the rate, and counts them.
func TestConnectionCreationRateQuota(t *testing.T) {
	ts := startServer(t)
	err := ts.meta.AlterClientQuotas(context.Background(), []metadata.QuotaAlteration{{
		Entity: metadata.QuotaEntity{IP: metadata.QuotaName{Set: true, Name: "127.0.0.1"}},
		Set:    map[string]float64{"connection_creation_rate": 1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ts.refreshSecurity()
	refused := 0
	for i := 0; i < 20; i++ {
		rc := ts.raw(t)
		rc.send(kmsg.NewPtrApiVersionsRequest())
		if _, _, err := rc.readFrame(5 * time.Second); err != nil {
			refused++
		}
		rc.c.Close()
	}
	// Kafka measures the rate over the whole quota window (11 samples of
	// 1 s: at least 10 s), so a burst of about 10 gets through and the
	// rest of a fast burst is refused.
	if refused < 8 || refused == 20 {
		t.Fatalf("%d of 20 rapid connections refused, want the burst beyond about 10", refused)
	}
}
