package e2e

// End-to-end security: TLS, SASL (PLAIN, SCRAM, OAUTHBEARER), ACLs,
// quotas and their metrics, against the real binary with franz-go, kcat
// (librdkafka) and Sarama. Each check is what a user relies on: the
// right clients get in and work, the wrong ones are refused with
// Kafka's error code, and a principal learns nothing it may not see.
//
// Two brokers keep the run short: TestSecurity shares one broker with
// all four listener kinds, optional client certificates and the
// StandardAuthorizer; TestSecurityStrict runs one that requires client
// certificates and expires SASL sessions after 3 s (KIP-368), whose
// settings would get in the way of everything else.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// Principals of the shared broker. The super users are one per way of
// authenticating, so each mechanism's test proves the broker derived the
// right principal (a wrong one would be refused) without depending on
// ACLs; alice has no rights but those the ACL test gives her; bob is
// the quota'd user.
const (
	secPlainUsers = "admin:admin-secret,alice:alice-secret,bob:bob-secret"
	secSuperUsers = "User:admin;User:bob;User:carol;User:ssl-super;User:oauth-admin"
	// The rule turns a certificate subject CN=x,OU=..,O=.. into User:x.
	secMappingRules = `RULE:^CN=([^,]+).*$/$1/,DEFAULT`
)

func TestSecurity(t *testing.T) {
	t.Parallel()
	pki, jwks := newPKI(t), newJWKS(t)
	addrs := secAddrs{Plain: freeAddr(t), SSL: freeAddr(t), SASLPlain: freeAddr(t), SASLSSL: freeAddr(t)}
	s := startSecBroker(t, addrs, pki, jwks,
		"--set", "ssl.client.auth=requested",
		"--set", "ssl.principal.mapping.rules="+secMappingRules,
		"--set", "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER",
		"--set", "sasl.plain.users="+secPlainUsers,
		"--set", "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"--set", "super.users="+secSuperUsers,
		// Kafka measures a quota over quota.window.num samples and, until
		// they have all elapsed, over (num-1) windows: with the default 11
		// a new client may send 10 s worth at once. Two 1 s samples let a
		// 4 s run see the steady rate.
		"--set", "quota.window.num=2",
		"--set", "quota.window.size.seconds=1",
	)

	t.Run("Listeners", func(t *testing.T) { secListeners(t, s) })
	t.Run("TLS", func(t *testing.T) { secTLS(t, s) })
	t.Run("SASL", func(t *testing.T) { secSASL(t, s) })
	t.Run("OAUTHBEARER", func(t *testing.T) { secOAuth(t, s) })
	t.Run("ACL", func(t *testing.T) { secACL(t, s) })
	t.Run("Quota", func(t *testing.T) { secQuota(t, s) })
	t.Run("Metrics", func(t *testing.T) { secMetrics(t, s) })
	t.Run("Log", func(t *testing.T) { secLog(t, s) })

	// All the refusals above left the broker serving.
	select {
	case <-s.exited():
		t.Fatalf("strata exited: %v", s.exitErr())
	default:
	}
}

// secListeners: each listener advertises its own endpoint (a client that
// came in over SASL_SSL must not be sent to the PLAINTEXT port), and an
// unauthenticated principal sees no topics.
func secListeners(t *testing.T, s *secBroker) {
	ctx := testContext(t, 30*time.Second)
	createTopic(ctx, t, s.admin(t), "listeners-hidden", 1, nil)
	super := clientCertFor(t, s, "ssl-super")
	for _, l := range []struct {
		name, addr string
		opts       []kgo.Opt
	}{
		{"PLAINTEXT", s.addrs.Plain, kgoAt(s.addrs.Plain, nil, nil)},
		{"SSL", s.addrs.SSL, kgoAt(s.addrs.SSL, tlsConfig(s.pki.caPool, &super), nil)},
		{"SASL_PLAINTEXT", s.addrs.SASLPlain, kgoAt(s.addrs.SASLPlain, nil, plainMech("admin", "admin-secret"))},
		{"SASL_SSL", s.addrs.SASLSSL, kgoAt(s.addrs.SASLSSL, tlsConfig(s.pki.caPool, nil), plainMech("admin", "admin-secret"))},
	} {
		t.Run(l.name, func(t *testing.T) {
			cl := newKgo(t, l.opts)
			req := kmsg.NewPtrMetadataRequest()
			req.Topics = []kmsg.MetadataRequestTopic{}
			resp, err := req.RequestWith(ctx, cl)
			if err != nil {
				t.Fatalf("metadata over %s: %v", l.name, err)
			}
			if len(resp.Brokers) != 1 {
				t.Fatalf("metadata over %s lists %d brokers, want 1", l.name, len(resp.Brokers))
			}
			b := resp.Brokers[0]
			if got := fmt.Sprintf("%s:%d", b.Host, b.Port); got != l.addr {
				t.Errorf("over %s the broker advertises %s, want that listener's %s", l.name, got, l.addr)
			}
		})
	}
	t.Run("anonymous sees no topics", func(t *testing.T) {
		for name, opts := range map[string][]kgo.Opt{
			"PLAINTEXT":   kgoAt(s.addrs.Plain, nil, nil),
			"SSL no cert": kgoAt(s.addrs.SSL, tlsConfig(s.pki.caPool, nil), nil),
		} {
			cl := newKgo(t, opts)
			if got := metadataTopics(ctx, t, cl); len(got) != 0 {
				t.Errorf("User:ANONYMOUS over %s sees topics %v", name, slices.Sorted(maps.Keys(got)))
			}
			got := metadataTopics(ctx, t, cl, "listeners-hidden")["listeners-hidden"]
			if got.ErrorCode != kerr.TopicAuthorizationFailed.Code {
				t.Errorf("User:ANONYMOUS over %s: metadata for an existing topic gives error %d, want TOPIC_AUTHORIZATION_FAILED",
					name, got.ErrorCode)
			}
		}
	})
}

// testTopic creates a one-partition topic named after the running
// (sub)test, so every round trip starts from an empty log.
func testTopic(ctx context.Context, t *testing.T, adm *kadm.Client) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", ".", " ", "_", "#", "_").Replace(t.Name()))
	createTopic(ctx, t, adm, name, 1, nil)
	return name
}

func clientCertFor(t *testing.T, s *secBroker, cn string) clientCert {
	t.Helper()
	return s.pki.client(t, cn, false)
}

// secTLS: the three clients produce and consume over SSL; clients that
// do not trust the broker's CA, that speak only old TLS, or that present
// a certificate from a CA the broker does not trust are refused; a
// certificate's principal, mapped by ssl.principal.mapping.rules, gets
// exactly what its ACLs give it.
func secTLS(t *testing.T, s *secBroker) {
	ctx := testContext(t, 90*time.Second)
	adm := s.admin(t)
	super := clientCertFor(t, s, "ssl-super")
	trusting := tlsConfig(s.pki.caPool, &super)

	t.Run("franz-go", func(t *testing.T) {
		franzRoundTrip(ctx, t, kgoAt(s.addrs.SSL, trusting, nil), testTopic(ctx, t, adm), 20)
	})
	t.Run("kcat", func(t *testing.T) {
		kcatRoundTrip(ctx, t, s.addrs.SSL, "ssl", kcatSSL(s.pki.CAFile, &super), testTopic(ctx, t, adm), 20)
	})
	t.Run("sarama", func(t *testing.T) {
		saramaRoundTrip(ctx, t, s.addrs.SSL, saramaTLS(saramaSecConfig("e2e-tls"), trusting), testTopic(ctx, t, adm), 20)
	})

	t.Run("client does not trust the CA", func(t *testing.T) {
		err := firstRequestErr(ctx, t, kgoAt(s.addrs.SSL, tlsConfig(s.pki.untrustedPool, &super), nil))
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("franz-go trusting another CA: got %v, want an unknown-authority error", err)
		}
		cfg := saramaTLS(saramaSecConfig("e2e-tls-untrusting"), tlsConfig(s.pki.untrustedPool, &super))
		if err := saramaConnectErr(s.addrs.SSL, cfg); !errors.As(err, &unknown) {
			t.Errorf("sarama trusting another CA: got %v, want an unknown-authority error", err)
		}
		out, errs, _ := kcatRun(ctx, t, s.addrs.SSL, "ssl", kcatSSL(s.pki.UntrustedCA, &super), "", "-L", "-m", "3")
		if strings.Contains(out, "broker") || !strings.Contains(strings.ToLower(errs), "certificate verify failed") {
			t.Errorf("kcat trusting another CA got metadata or no verify error:\nstdout: %s\nstderr: %s", out, errs)
		}
	})
	t.Run("TLS 1.1 refused", func(t *testing.T) {
		tc := tlsConfig(s.pki.caPool, nil)
		tc.MinVersion, tc.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		c, err := tls.Dial("tcp", s.addrs.SSL, tc)
		if err == nil {
			c.Close()
			t.Error("a TLS 1.1 handshake succeeded; ssl.enabled.protocols defaults to TLSv1.2,TLSv1.3")
		}
	})
	t.Run("certificate from an untrusted CA", func(t *testing.T) {
		// Requested, not required: a client may come without a
		// certificate, but one that shows a certificate the broker
		// cannot verify must not get in under that name.
		forged := s.pki.client(t, "ssl-super", true)
		if ok, why := refusesRaw(t, s.addrs.SSL, tlsConfig(s.pki.caPool, &forged)); !ok {
			t.Errorf("a client certificate from an untrusted CA: %s", why)
		}
	})

	t.Run("certificate principal and ACLs", func(t *testing.T) {
		// CN=tls-app,OU=e2e,O=Strata maps to User:tls-app, which may do
		// only what ACLs name.
		app := s.pki.client(t, "tls-app", false)
		opts := kgoAt(s.addrs.SSL, tlsConfig(s.pki.caPool, &app), nil, kgo.RecordDeliveryTimeout(10*time.Second))
		for _, tp := range []string{"tls-app", "tls-app-kcat", "tls-other"} {
			createTopic(ctx, t, adm, tp, 1, nil)
		}
		err := produceOne(ctx, t, opts, "tls-app")
		if !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("User:tls-app without ACLs: produce gave %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		createACLs(ctx, t, adm, kadm.NewACLs().Allow("User:tls-app").Topics("tls-app", "tls-app-kcat").
			Operations(kadm.OpRead, kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral))
		waitUpTo(ctx, t, 10*time.Second, "User:tls-app to see tls-app", func() (bool, string) {
			got := metadataWith(ctx, t, opts, "tls-app")["tls-app"]
			return got.ErrorCode == 0, fmt.Sprintf("error %d", got.ErrorCode)
		})
		franzRoundTrip(ctx, t, opts, "tls-app", 10)
		kcatRoundTrip(ctx, t, s.addrs.SSL, "ssl", kcatSSL(s.pki.CAFile, &app), "tls-app-kcat", 10)
		// Only what the ACLs name.
		if got := metadataWith(ctx, t, opts, "tls-other")["tls-other"]; got.ErrorCode != kerr.TopicAuthorizationFailed.Code {
			t.Errorf("User:tls-app reads metadata of tls-other: error %d, want TOPIC_AUTHORIZATION_FAILED", got.ErrorCode)
		}
	})
}

// produceOne produces one record with a fresh client and returns the
// produce error.
func produceOne(ctx context.Context, t *testing.T, opts []kgo.Opt, topic string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cl := newKgo(t, opts)
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr()
}

func createACLs(ctx context.Context, t *testing.T, adm *kadm.Client, b *kadm.ACLBuilder) {
	t.Helper()
	res, err := adm.CreateACLs(ctx, b)
	if err != nil {
		t.Fatalf("CreateACLs: %v", err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("CreateACLs %s %v on %v %s: %v (%s)", r.Principal, r.Operation, r.Type, r.Name, r.Err, r.ErrMessage)
		}
	}
}

// secSASL: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 over SASL_PLAINTEXT
// and SASL_SSL with franz-go, kcat and Sarama; wrong passwords and
// unknown users refused with SASL_AUTHENTICATION_FAILED by every client,
// alike, and the broker serves on.
func secSASL(t *testing.T, s *secBroker) {
	ctx := testContext(t, 90*time.Second)
	adm := s.admin(t)

	// SCRAM credentials come from the admin, through the API, with a
	// different password per mechanism so the right one is checked.
	scramPass := map[string]string{"SCRAM-SHA-256": "carol-256-secret", "SCRAM-SHA-512": "carol-512-secret"}
	// One request per mechanism: KRaft refuses to alter one user twice in
	// one request (DUPLICATE_RESOURCE).
	for _, up := range []kadm.UpsertSCRAM{
		{User: "carol", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: scramPass["SCRAM-SHA-256"]},
		{User: "carol", Mechanism: kadm.ScramSha512, Iterations: 8192, Password: scramPass["SCRAM-SHA-512"]},
	} {
		res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{up})
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			t.Fatalf("AlterUserSCRAMs %s %v: %v", up.User, up.Mechanism, err)
		}
	}
	desc, err := adm.DescribeUserSCRAMs(ctx, "carol")
	if err != nil {
		t.Fatalf("DescribeUserSCRAMs: %v", err)
	}
	if got := desc["carol"]; got.Err != nil || len(got.CredInfos) != 2 {
		t.Errorf("DescribeUserSCRAMs carol: %+v, want both mechanisms", got)
	} else {
		iters := map[kadm.ScramMechanism]int32{}
		for _, ci := range got.CredInfos {
			iters[ci.Mechanism] = ci.Iterations
		}
		if iters[kadm.ScramSha256] != 4096 || iters[kadm.ScramSha512] != 8192 {
			t.Errorf("DescribeUserSCRAMs carol iterations %v, want 4096 (SHA-256) and 8192 (SHA-512)", iters)
		}
	}
	// Credentials travel through the metadata log; wait until they log in.
	waitUpTo(ctx, t, 10*time.Second, "carol's SCRAM credentials to work", func() (bool, string) {
		err := firstRequestErr(ctx, t, kgoAt(s.addrs.SASLPlain, nil, scramMech("SCRAM-SHA-512", "carol", scramPass["SCRAM-SHA-512"])))
		return err == nil, fmt.Sprint(err)
	})

	type login struct{ mech, user, pass string }
	logins := []login{
		{"PLAIN", "admin", "admin-secret"},
		{"SCRAM-SHA-256", "carol", scramPass["SCRAM-SHA-256"]},
		{"SCRAM-SHA-512", "carol", scramPass["SCRAM-SHA-512"]},
	}
	for _, l := range logins {
		mech := saslMech(l.mech, l.user, l.pass)
		t.Run(l.mech+"/franz-go/SASL_PLAINTEXT", func(t *testing.T) {
			franzRoundTrip(ctx, t, kgoAt(s.addrs.SASLPlain, nil, mech), testTopic(ctx, t, adm), 10)
		})
		t.Run(l.mech+"/franz-go/SASL_SSL", func(t *testing.T) {
			franzRoundTrip(ctx, t, kgoAt(s.addrs.SASLSSL, tlsConfig(s.pki.caPool, nil), mech), testTopic(ctx, t, adm), 10)
		})
		t.Run(l.mech+"/kcat/SASL_PLAINTEXT", func(t *testing.T) {
			kcatRoundTrip(ctx, t, s.addrs.SASLPlain, "sasl_plaintext", kcatSASL(l.mech, l.user, l.pass), testTopic(ctx, t, adm), 10)
		})
		t.Run(l.mech+"/kcat/SASL_SSL", func(t *testing.T) {
			x := append(kcatSASL(l.mech, l.user, l.pass), kcatSSL(s.pki.CAFile, nil)...)
			kcatRoundTrip(ctx, t, s.addrs.SASLSSL, "sasl_ssl", x, testTopic(ctx, t, adm), 10)
		})
		t.Run(l.mech+"/sarama/SASL_PLAINTEXT", func(t *testing.T) {
			cfg := saramaSASL(saramaSecConfig("e2e-sasl"), saramaMech[l.mech], l.user, l.pass)
			saramaRoundTrip(ctx, t, s.addrs.SASLPlain, cfg, testTopic(ctx, t, adm), 10)
		})
		t.Run(l.mech+"/sarama/SASL_SSL", func(t *testing.T) {
			cfg := saramaSASL(saramaTLS(saramaSecConfig("e2e-sasl"), tlsConfig(s.pki.caPool, nil)), saramaMech[l.mech], l.user, l.pass)
			saramaRoundTrip(ctx, t, s.addrs.SASLSSL, cfg, testTopic(ctx, t, adm), 10)
		})
	}

	t.Run("refused", func(t *testing.T) {
		for _, l := range logins {
			t.Run(l.mech, func(t *testing.T) {
				t.Parallel()
				secSASLRefused(ctx, t, s, l.mech, l.user, l.pass)
			})
		}
	})

	t.Run("mechanism not enabled", func(t *testing.T) {
		// The SaslHandshake answer lists what is enabled.
		r := dialRawConn(t, s.addrs.SASLPlain, nil)
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version = 1
		hs.Mechanism = "GSSAPI"
		resp, err := r.roundTrip(hs)
		if err != nil {
			t.Fatalf("SaslHandshake GSSAPI: %v", err)
		}
		got := resp.(*kmsg.SASLHandshakeResponse)
		if got.ErrorCode != kerr.UnsupportedSaslMechanism.Code {
			t.Errorf("SaslHandshake GSSAPI: error %d, want UNSUPPORTED_SASL_MECHANISM", got.ErrorCode)
		}
		want := []string{"OAUTHBEARER", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
		if m := slices.Sorted(slices.Values(got.SupportedMechanisms)); !slices.Equal(m, want) {
			t.Errorf("SaslHandshake lists mechanisms %v, want %v", m, want)
		}
	})
	t.Run("no requests before authentication", func(t *testing.T) {
		// ApiVersions is allowed (clients need it to pick versions);
		// anything else on a SASL listener before SASL ends the
		// connection, as in Kafka.
		r := dialRawConn(t, s.addrs.SASLPlain, nil)
		av := kmsg.NewPtrApiVersionsRequest()
		av.Version = 3
		av.ClientSoftwareName, av.ClientSoftwareVersion = "e2e", "1"
		if _, err := r.roundTrip(av); err != nil {
			t.Fatalf("ApiVersions before SASL: %v", err)
		}
		if err := r.send(rawMetadata()); err != nil {
			t.Fatal(err)
		}
		if ok, why := r.closedWithoutAnswer(); !ok {
			t.Errorf("Metadata before SASL on SASL_PLAINTEXT: %s", why)
		}
	})

	// After every refusal the broker still lets good clients in.
	if err := firstRequestErr(ctx, t, kgoAt(s.addrs.SASLPlain, nil, plainMech("admin", "admin-secret"))); err != nil {
		t.Errorf("after the refusals, admin cannot connect: %v", err)
	}
}

var saramaMech = map[string]sarama.SASLMechanism{
	"PLAIN": sarama.SASLTypePlaintext, "SCRAM-SHA-256": sarama.SASLTypeSCRAMSHA256, "SCRAM-SHA-512": sarama.SASLTypeSCRAMSHA512,
}

func saslMech(mech, user, pass string) sasl.Mechanism {
	if mech == "PLAIN" {
		return plainMech(user, pass)
	}
	return scramMech(mech, user, pass)
}

// secSASLRefused: a wrong password and an unknown user are refused with
// SASL_AUTHENTICATION_FAILED by franz-go and Sarama, and by kcat for the
// wrong password (librdkafka reports any failed SaslAuthenticate as
// "SASL authentication error: <the broker's message>").
func secSASLRefused(ctx context.Context, t *testing.T, s *secBroker, mech, user, pass string) {
	var msgs []string
	for _, b := range []struct{ user, pass string }{{user, pass + "-wrong"}, {"mallory", pass}} {
		err := firstRequestErr(ctx, t, kgoAt(s.addrs.SASLPlain, nil, saslMech(mech, b.user, b.pass)))
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Errorf("franz-go %s as %s with a bad password: got %v, want SASL_AUTHENTICATION_FAILED", mech, b.user, err)
		} else {
			msgs = append(msgs, strings.ReplaceAll(err.Error(), b.user, "<user>"))
		}
		cfg := saramaSASL(saramaSecConfig("e2e-sasl-bad"), saramaMech[mech], b.user, b.pass)
		if err := saramaConnectErr(s.addrs.SASLPlain, cfg); !errors.Is(err, sarama.ErrSASLAuthenticationFailed) {
			t.Errorf("sarama %s as %s with a bad password: got %v, want SASL_AUTHENTICATION_FAILED", mech, b.user, err)
		}
	}
	// An unknown user and a wrong password read the same, so the error
	// does not tell which user names exist.
	if len(msgs) == 2 && msgs[0] != msgs[1] {
		t.Errorf("wrong password and unknown user are told apart:\n%s\n%s", msgs[0], msgs[1])
	}
	out, errs, _ := kcatRun(ctx, t, s.addrs.SASLPlain, "sasl_plaintext", kcatSASL(mech, user, pass+"-wrong"), "", "-L", "-m", "2")
	if strings.Contains(out, "broker") || !strings.Contains(strings.ToLower(errs), "sasl authentication error") {
		t.Errorf("kcat %s with a bad password got metadata or no SASL authentication error:\nstdout: %s\nstderr: %s", mech, out, errs)
	}
}

// secOAuth: signed JWTs from the test JWKS let franz-go and Sarama in;
// expired, forged, unsigned, wrong-issuer and wrong-audience tokens do not.
func secOAuth(t *testing.T, s *secBroker) {
	ctx := testContext(t, 60*time.Second)
	adm := s.admin(t)
	good := s.jwks.token(jwtClaims("oauth-admin", time.Hour))

	t.Run("franz-go/SASL_PLAINTEXT", func(t *testing.T) {
		franzRoundTrip(ctx, t, kgoAt(s.addrs.SASLPlain, nil, oauthMech(good)), testTopic(ctx, t, adm), 10)
	})
	t.Run("franz-go/SASL_SSL", func(t *testing.T) {
		franzRoundTrip(ctx, t, kgoAt(s.addrs.SASLSSL, tlsConfig(s.pki.caPool, nil), oauthMech(good)), testTopic(ctx, t, adm), 10)
	})
	t.Run("sarama/SASL_PLAINTEXT", func(t *testing.T) {
		saramaRoundTrip(ctx, t, s.addrs.SASLPlain, saramaOAuth(saramaSecConfig("e2e-oauth"), good), testTopic(ctx, t, adm), 10)
	})

	claims := func(edit func(map[string]any)) map[string]any {
		c := jwtClaims("oauth-admin", time.Hour)
		edit(c)
		return c
	}
	bad := []struct{ name, token string }{
		{"expired", s.jwks.token(claims(func(c map[string]any) {
			// Well past sasl.oauthbearer.clock.skew.seconds (30 s).
			c["iat"], c["nbf"], c["exp"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
		}))},
		{"signed by another key", signJWT(s.jwks.other, jwtKeyID, jwtClaims("oauth-admin", time.Hour))},
		{"unknown key id", signJWT(s.jwks.key, "no-such-key", jwtClaims("oauth-admin", time.Hour))},
		{"unsigned", signJWT(nil, "", jwtClaims("oauth-admin", time.Hour))},
		{"wrong issuer", s.jwks.token(claims(func(c map[string]any) { c["iss"] = "https://evil.example" }))},
		{"wrong audience", s.jwks.token(claims(func(c map[string]any) { c["aud"] = "someone-else" }))},
		{"tampered", tamper(s.jwks.token(jwtClaims("oauth-admin", time.Hour)))},
	}
	for _, b := range bad {
		t.Run("refused/"+b.name, func(t *testing.T) {
			err := firstRequestErr(ctx, t, kgoAt(s.addrs.SASLPlain, nil, oauthMech(b.token)))
			if !errors.Is(err, kerr.SaslAuthenticationFailed) {
				t.Errorf("franz-go with a token %s: got %v, want SASL_AUTHENTICATION_FAILED", b.name, err)
			}
			if err := saramaConnectErr(s.addrs.SASLPlain, saramaOAuth(saramaSecConfig("e2e-oauth-bad"), b.token)); err == nil {
				t.Errorf("sarama with a token %s got in", b.name)
			}
		})
	}
}

// tamper swaps the token's subject for another after signing.
func tamper(token string) string {
	parts := strings.Split(token, ".")
	claims := fmt.Sprintf(`{"sub":"admin","iss":%q,"aud":%q,"exp":%d}`, jwtIssuer, jwtAudience, time.Now().Add(time.Hour).Unix())
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(claims))
	return strings.Join(parts, ".")
}

// secACL: alice, with no ACLs, is refused reading, writing, creating,
// listing and joining groups, with Kafka's codes and without learning
// which topics exist; ACLs the admin creates (literal and prefixed) give
// her exactly those rights, and deleting them takes them away.
func secACL(t *testing.T, s *secBroker) {
	ctx := testContext(t, 90*time.Second)
	adm := s.admin(t)
	for _, tp := range []string{"acl-secret", "acl-orders", "acl-pub-1"} {
		createTopic(ctx, t, adm, tp, 1, nil)
	}
	admin := newKgo(t, kgoAt(s.addrs.SASLPlain, nil, plainMech("admin", "admin-secret")))
	for _, tp := range []string{"acl-secret", "acl-pub-1"} {
		if err := admin.ProduceSync(ctx, &kgo.Record{Topic: tp, Value: []byte("hello from admin")}).FirstErr(); err != nil {
			t.Fatalf("admin produce to %s: %v", tp, err)
		}
	}
	aliceOpts := func(extra ...kgo.Opt) []kgo.Opt {
		return kgoAt(s.addrs.SASLPlain, nil, plainMech("alice", "alice-secret"),
			append([]kgo.Opt{kgo.RecordDeliveryTimeout(10 * time.Second)}, extra...)...)
	}
	alice := func() *kgo.Client { return newKgo(t, aliceOpts()) }
	// Fetch v12 names topics; v13+ needs a topic id alice cannot learn.
	aliceV12 := func() *kgo.Client { return newKgo(t, aliceOpts(kgo.MaxVersions(kversion.V3_0_0()))) }

	listAll := func() []string { return slices.Sorted(maps.Keys(metadataWith(ctx, t, aliceOpts()))) }
	fetchErr := func(topic string) int16 {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis, req.MaxBytes = 0, 1<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.PartitionMaxBytes, rp.LogStartOffset = 0, 1<<20, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		fr, err := req.RequestWith(ctx, aliceV12().SeedBrokers()[0])
		if err != nil {
			t.Fatalf("alice fetch %s: %v", topic, err)
		}
		if fr.ErrorCode != 0 {
			return fr.ErrorCode
		}
		if len(fr.Topics) != 1 || len(fr.Topics[0].Partitions) != 1 {
			t.Fatalf("alice fetch %s: response %+v", topic, fr.Topics)
		}
		p := fr.Topics[0].Partitions[0]
		if p.ErrorCode != 0 && len(p.RecordBatches) > 0 {
			t.Errorf("alice fetch %s: error %d but records sent along", topic, p.ErrorCode)
		}
		return p.ErrorCode
	}
	groupErrs := func(group string) (find, join int16) {
		t.Helper()
		cl := alice()
		fc := kmsg.NewPtrFindCoordinatorRequest()
		fc.CoordinatorKey, fc.CoordinatorKeys = group, []string{group}
		fresp, err := fc.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("alice FindCoordinator %s: %v", group, err)
		}
		find = fresp.ErrorCode
		if len(fresp.Coordinators) > 0 {
			find = fresp.Coordinators[0].ErrorCode
		}
		jg := kmsg.NewPtrJoinGroupRequest()
		jg.Group, jg.ProtocolType = group, "consumer"
		jg.SessionTimeoutMillis, jg.RebalanceTimeoutMillis = 10000, 10000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", (&kmsg.ConsumerMemberMetadata{Topics: []string{"acl-pub-1"}}).AppendTo(nil)
		jg.Protocols = append(jg.Protocols, p)
		// Straight to the broker: the single node is every group's
		// coordinator, and FindCoordinator was just refused.
		jresp, err := jg.RequestWith(ctx, cl.SeedBrokers()[0])
		if err != nil {
			t.Fatalf("alice JoinGroup %s: %v", group, err)
		}
		return find, jresp.ErrorCode
	}
	createErr := func(topic string) error {
		t.Helper()
		resp, err := kadm.NewClient(alice()).CreateTopics(ctx, 1, 1, nil, topic)
		if err != nil {
			t.Fatalf("alice CreateTopics %s: %v", topic, err)
		}
		got, ok := resp[topic]
		if !ok {
			t.Fatalf("alice CreateTopics %s: topic missing from the response", topic)
		}
		return got.Err
	}
	adminHas := func(topic string) bool {
		t.Helper()
		_, ok := metadataTopics(ctx, t, admin)[topic]
		return ok
	}
	refusedEverywhere := func(t *testing.T, phase string, topics ...string) {
		t.Helper()
		if got := listAll(); len(got) != 0 {
			t.Errorf("%s: alice lists topics %v, want none", phase, got)
		}
		for _, tp := range topics {
			if err := produceOne(ctx, t, aliceOpts(), tp); !errors.Is(err, kerr.TopicAuthorizationFailed) {
				t.Errorf("%s: alice produce to %s: %v, want TOPIC_AUTHORIZATION_FAILED", phase, tp, err)
			}
			if code := fetchErr(tp); code != kerr.TopicAuthorizationFailed.Code {
				t.Errorf("%s: alice fetch %s: error %d, want TOPIC_AUTHORIZATION_FAILED", phase, tp, code)
			}
		}
	}

	t.Run("no ACLs", func(t *testing.T) {
		refusedEverywhere(t, "no ACLs", "acl-secret", "acl-orders", "acl-no-such-topic")
		// Asking by name tells nothing either: an existing and a missing
		// topic read the same, and asking does not auto-create.
		md := metadataTopics(ctx, t, alice(), "acl-secret", "acl-no-such-topic")
		for _, tp := range []string{"acl-secret", "acl-no-such-topic"} {
			got, ok := md[tp]
			switch {
			case !ok:
				t.Errorf("alice metadata for %s: topic missing from the response", tp)
			case got.ErrorCode != kerr.TopicAuthorizationFailed.Code:
				t.Errorf("alice metadata for %s: error %d, want TOPIC_AUTHORIZATION_FAILED", tp, got.ErrorCode)
			case len(got.Partitions) != 0 || got.TopicID != [16]byte{} || got.IsInternal:
				t.Errorf("alice metadata for %s leaks partitions %d / topic id %x", tp, len(got.Partitions), got.TopicID)
			}
		}
		if adminHas("acl-no-such-topic") {
			t.Error("alice's metadata request auto-created acl-no-such-topic")
		}
		if err := createErr("acl-alice-new"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Errorf("alice CreateTopics: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		if adminHas("acl-alice-new") {
			t.Error("alice created acl-alice-new")
		}
		if find, join := groupErrs("acl-grp-1"); find != kerr.GroupAuthorizationFailed.Code || join != kerr.GroupAuthorizationFailed.Code {
			t.Errorf("alice FindCoordinator / JoinGroup acl-grp-1: errors %d / %d, want GROUP_AUTHORIZATION_FAILED", find, join)
		}
		// Nor may she see or grant ACLs.
		res, err := kadm.NewClient(alice()).CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").
			Topics("acl-secret").Operations(kadm.OpAll))
		if err != nil || len(res) != 1 || !errors.Is(res[0].Err, kerr.ClusterAuthorizationFailed) {
			t.Errorf("alice CreateACLs: %v %+v, want CLUSTER_AUTHORIZATION_FAILED", err, res)
		}
		dres, err := kadm.NewClient(alice()).DescribeACLs(ctx, kadm.NewACLs().AnyResource().
			ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpAny).Allow().AllowHosts().Deny().DenyHosts())
		if err == nil {
			for _, r := range dres {
				if !errors.Is(r.Err, kerr.ClusterAuthorizationFailed) {
					err = fmt.Errorf("result %+v", r)
				}
			}
		}
		if err != nil || len(dres) == 0 {
			t.Errorf("alice DescribeACLs: %v, want CLUSTER_AUTHORIZATION_FAILED", err)
		}
		// kcat (librdkafka) is told the same.
		x := kcatSASL("PLAIN", "alice", "alice-secret")
		out, errs, _ := kcatRun(ctx, t, s.addrs.SASLPlain, "sasl_plaintext", x, "", "-L", "-t", "acl-secret", "-m", "5")
		if !strings.Contains(strings.ToLower(out+errs), "topic authorization failed") {
			t.Errorf("kcat -L as alice: want Topic authorization failed\nstdout: %s\nstderr: %s", out, errs)
		}
		out, errs, _ = kcatRun(ctx, t, s.addrs.SASLPlain, "sasl_plaintext", x, "sneaky\n", "-P", "-t", "acl-secret",
			"-X", "message.timeout.ms=5000")
		if !strings.Contains(strings.ToLower(out+errs), "authorization failed") {
			t.Errorf("kcat -P as alice: want an authorization failure\nstdout: %s\nstderr: %s", out, errs)
		}
		out, errs, _ = kcatRun(ctx, t, s.addrs.SASLPlain, "sasl_plaintext", x, "", "-C", "-t", "acl-secret", "-o", "beginning", "-e")
		if strings.Contains(out, "hello from admin") || !strings.Contains(strings.ToLower(out+errs), "authorization failed") {
			t.Errorf("kcat -C as alice: want an authorization failure and no data\nstdout: %s\nstderr: %s", out, errs)
		}
	})

	t.Run("granted", func(t *testing.T) {
		createACLs(ctx, t, adm, kadm.NewACLs().Allow("User:alice").Topics("acl-orders").
			Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral))
		createACLs(ctx, t, adm, kadm.NewACLs().Allow("User:alice").Topics("acl-pub-").Groups("acl-grp-").
			Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternPrefixed))
		want := []string{"acl-orders", "acl-pub-1"}
		waitUpTo(ctx, t, 10*time.Second, "alice to see the topics her ACLs name", func() (bool, string) {
			got := listAll()
			return slices.Equal(got, want), fmt.Sprint(got)
		})
		// WRITE on acl-orders: she writes but does not read it.
		if err := produceOne(ctx, t, aliceOpts(), "acl-orders"); err != nil {
			t.Errorf("alice produce to acl-orders (WRITE granted): %v", err)
		}
		if code := fetchErr("acl-orders"); code != kerr.TopicAuthorizationFailed.Code {
			t.Errorf("alice fetch acl-orders (WRITE only): error %d, want TOPIC_AUTHORIZATION_FAILED", code)
		}
		// READ on acl-pub-*: she consumes it in an acl-grp-* group but
		// does not write it.
		if err := produceOne(ctx, t, aliceOpts(), "acl-pub-1"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Errorf("alice produce to acl-pub-1 (READ only): %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		cons := newKgo(t, aliceOpts(kgo.ConsumerGroup("acl-grp-1"), kgo.ConsumeTopics("acl-pub-1"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())))
		var got []string
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		for len(got) == 0 && pctx.Err() == nil {
			fs := cons.PollFetches(pctx)
			if pctx.Err() != nil {
				break
			}
			for _, fe := range fs.Errors() {
				t.Fatalf("alice consume acl-pub-1 in acl-grp-1: %v", fe.Err)
			}
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		if len(got) != 1 || got[0] != "hello from admin" {
			t.Errorf("alice read %q from acl-pub-1, want the admin's record", got)
		}
		if err := cons.CommitUncommittedOffsets(ctx); err != nil {
			t.Errorf("alice commit in acl-grp-1: %v", err)
		}
		// Everything else stays shut.
		md := metadataTopics(ctx, t, alice(), "acl-secret")
		if md["acl-secret"].ErrorCode != kerr.TopicAuthorizationFailed.Code {
			t.Errorf("alice metadata for acl-secret after grants: error %d", md["acl-secret"].ErrorCode)
		}
		if code := fetchErr("acl-secret"); code != kerr.TopicAuthorizationFailed.Code {
			t.Errorf("alice fetch acl-secret after grants: error %d", code)
		}
		if _, join := groupErrs("other-group"); join != kerr.GroupAuthorizationFailed.Code {
			t.Errorf("alice JoinGroup other-group: error %d, want GROUP_AUTHORIZATION_FAILED", join)
		}
		if err := createErr("acl-pub-2"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Errorf("alice CreateTopics acl-pub-2 (READ only): %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		// DescribeACLs shows the admin what was granted.
		dres, err := adm.DescribeACLs(ctx, kadm.NewACLs().Allow("User:alice").AllowHosts().AnyResource().
			ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpAny))
		n := 0
		for _, r := range dres {
			if r.Err != nil {
				err = r.Err
			}
			n += len(r.Described)
		}
		if err != nil || n != 3 {
			t.Errorf("DescribeACLs for User:alice: %d bindings (%v), want 3", n, err)
		}
	})

	t.Run("revoked", func(t *testing.T) {
		res, err := adm.DeleteACLs(ctx, kadm.NewACLs().Allow("User:alice").AllowHosts().AnyResource().
			ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpAny))
		n := 0
		for _, r := range res {
			if r.Err != nil {
				err = r.Err
			}
			n += len(r.Deleted)
		}
		if err != nil || n != 3 {
			t.Fatalf("DeleteACLs for User:alice: deleted %d (%v), want 3", n, err)
		}
		waitUpTo(ctx, t, 10*time.Second, "alice to lose sight of every topic", func() (bool, string) {
			got := listAll()
			return len(got) == 0, fmt.Sprint(got)
		})
		refusedEverywhere(t, "after DeleteACLs", "acl-orders", "acl-pub-1")
		if find, join := groupErrs("acl-grp-1"); find != kerr.GroupAuthorizationFailed.Code || join != kerr.GroupAuthorizationFailed.Code {
			t.Errorf("after DeleteACLs, alice FindCoordinator / JoinGroup acl-grp-1: %d / %d, want GROUP_AUTHORIZATION_FAILED", find, join)
		}
	})
}

// throttles counts responses that carried a throttle time, and adds
// the times up.
type throttles struct{ n, total atomic.Int64 }

func (h *throttles) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	if d > 0 {
		h.n.Add(1)
		h.total.Add(int64(d))
	}
}

// secQuota: a producer_byte_rate quota set through AlterClientQuotas
// holds a producer near the rate (a benchmark-style check with a wide
// margin) with throttled responses, while an unquota'd user in the same
// run goes much faster; DescribeClientQuotas shows the quota.
func secQuota(t *testing.T, s *secBroker) {
	ctx := testContext(t, 60*time.Second)
	adm := s.admin(t)
	const quota = 256 << 10 // bytes/s
	bob := "bob"
	entity := kadm.ClientQuotaEntity{{Type: "user", Name: &bob}}
	res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{
		Entity: entity, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: quota}},
	}})
	if err == nil && len(res) == 1 {
		err = res[0].Err
	}
	if err != nil {
		t.Fatalf("AlterClientQuotas: %v", err)
	}
	t.Cleanup(func() {
		_, _ = adm.AlterClientQuotas(context.Background(), []kadm.AlterClientQuotaEntry{{
			Entity: entity, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Remove: true}},
		}})
	})
	desc, err := adm.DescribeClientQuotas(ctx, false, []kadm.DescribeClientQuotaComponent{{Type: "user", MatchName: &bob}})
	if err != nil {
		t.Fatalf("DescribeClientQuotas: %v", err)
	}
	if len(desc) != 1 || desc[0].Entity.String() != "{user=bob}" || len(desc[0].Values) != 1 ||
		desc[0].Values[0].Key != "producer_byte_rate" || desc[0].Values[0].Value != quota {
		t.Errorf("DescribeClientQuotas user=bob: %+v, want producer_byte_rate=%d", desc, quota)
	}

	createTopic(ctx, t, adm, "quota-bob", 1, nil)
	createTopic(ctx, t, adm, "quota-admin", 1, nil)
	type result struct {
		rate      float64 // bytes/s acknowledged after the warm-up
		throttled int64
		throttle  time.Duration // summed
		err       error
	}
	// Small batches keep each request a fraction of a second's quota, so
	// throttling is smooth enough to measure over a few seconds.
	run := func(user, pass, topic string) result {
		h := &throttles{}
		cl := newKgo(t, kgoAt(s.addrs.SASLPlain, nil, plainMech(user, pass),
			kgo.ProducerBatchMaxBytes(64<<10), kgo.MaxBufferedBytes(512<<10), kgo.ProducerLinger(0),
			// Kafka's producer quota counts request bytes: uncompressed
			// values make acknowledged bytes comparable with it.
			kgo.ProducerBatchCompression(kgo.NoCompression()),
			kgo.WithHooks(h)))
		value := make([]byte, 8<<10)
		const warmUp, measure = time.Second, 4 * time.Second
		start := time.Now()
		from, until := start.Add(warmUp), start.Add(warmUp+measure)
		pctx, cancel := context.WithDeadline(ctx, until)
		defer cancel()
		var acked atomic.Int64
		var firstErr atomic.Value
		for pctx.Err() == nil && firstErr.Load() == nil {
			cl.Produce(pctx, &kgo.Record{Topic: topic, Value: value}, func(r *kgo.Record, err error) {
				now := time.Now()
				switch {
				case err != nil:
					if pctx.Err() == nil {
						firstErr.CompareAndSwap(nil, err)
					}
				case now.After(from) && now.Before(until):
					acked.Add(int64(len(r.Value)))
				}
			})
		}
		r := result{rate: float64(acked.Load()) / measure.Seconds(), throttled: h.n.Load(), throttle: time.Duration(h.total.Load())}
		if e, ok := firstErr.Load().(error); ok {
			r.err = e
		}
		return r
	}
	var quotaed, free result
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); quotaed = run("bob", "bob-secret", "quota-bob") }()
	go func() { defer wg.Done(); free = run("admin", "admin-secret", "quota-admin") }()
	wg.Wait()
	t.Logf("quota %d KiB/s: bob (quota'd) %.0f KiB/s with %d throttled responses (%v in all); admin (no quota) %.0f KiB/s",
		quota>>10, quotaed.rate/1024, quotaed.throttled, quotaed.throttle, free.rate/1024)
	if quotaed.err != nil || free.err != nil {
		t.Fatalf("produce failed: bob %v, admin %v", quotaed.err, free.err)
	}
	if quotaed.rate > 2*quota {
		t.Errorf("bob produced %.0f KiB/s, over twice the %d KiB/s quota", quotaed.rate/1024, quota>>10)
	}
	if quotaed.rate < quota/4 {
		t.Errorf("bob produced %.0f KiB/s, starved far below the %d KiB/s quota", quotaed.rate/1024, quota>>10)
	}
	if quotaed.throttled == 0 {
		t.Error("no produce response to bob carried a throttle time")
	}
	if free.rate < 3*quota || free.rate < 2*quotaed.rate {
		t.Errorf("admin (no quota) produced only %.0f KiB/s next to bob's %.0f KiB/s", free.rate/1024, quotaed.rate/1024)
	}
}

// secMetrics: failed logins are counted by mechanism and refused
// requests as authorization denials, by principal.
func secMetrics(t *testing.T, s *secBroker) {
	ctx := testContext(t, 30*time.Second)
	const authFailures = "strata_broker_authentication_failures_total"
	const denials = "strata_broker_authorization_denials_total"
	mechs := []string{"PLAIN", "SCRAM-SHA-256", "OAUTHBEARER"}
	before := map[string]float64{}
	for _, m := range mechs {
		before[m], _ = scrapeCounter(t, s.addrs.Admin, authFailures, `mechanism="`+m+`"`)
	}
	deniedBefore, _ := scrapeCounter(t, s.addrs.Admin, denials)

	bad := map[string][]kgo.Opt{
		"PLAIN":         kgoAt(s.addrs.SASLPlain, nil, plainMech("alice", "not-her-password")),
		"SCRAM-SHA-256": kgoAt(s.addrs.SASLPlain, nil, scramMech("SCRAM-SHA-256", "nobody", "x")),
		"OAUTHBEARER":   kgoAt(s.addrs.SASLPlain, nil, oauthMech(signJWT(s.jwks.other, jwtKeyID, jwtClaims("oauth-admin", time.Hour)))),
	}
	for _, m := range mechs {
		if err := firstRequestErr(ctx, t, bad[m]); !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Errorf("bad %s login: %v, want SASL_AUTHENTICATION_FAILED", m, err)
		}
	}
	createTopic(ctx, t, s.admin(t), "metrics-secret", 1, nil)
	alice := newKgo(t, kgoAt(s.addrs.SASLPlain, nil, plainMech("alice", "alice-secret")))
	if md := metadataTopics(ctx, t, alice, "metrics-secret"); md["metrics-secret"].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("alice metadata for metrics-secret: error %d, want TOPIC_AUTHORIZATION_FAILED", md["metrics-secret"].ErrorCode)
	}

	for _, m := range mechs {
		after, lines := scrapeCounter(t, s.addrs.Admin, authFailures, `mechanism="`+m+`"`)
		if after-before[m] < 1 {
			t.Errorf("%s{mechanism=%q} went from %v to %v after a failed login; series: %v", authFailures, m, before[m], after, lines)
		}
	}
	after, lines := scrapeCounter(t, s.addrs.Admin, denials)
	if after-deniedBefore < 1 {
		t.Errorf("%s went from %v to %v after a refused request", denials, deniedBefore, after)
	}
	if _, alices := scrapeCounter(t, s.addrs.Admin, denials, "User:alice"); len(alices) == 0 {
		t.Errorf("%s has no series for User:alice: %v", denials, lines)
	}
}

// secLog: ACL and credential changes leave an audit line naming who
// changed what, and no password or token reaches the log, whatever
// failed above.
func secLog(t *testing.T, s *secBroker) {
	// The harness's own "=== e2e: start" lines carry the command line,
	// secrets included; only what the broker wrote counts.
	var audit, broker []string
	for _, line := range strings.Split(s.Log(), "\n") {
		if strings.HasPrefix(line, "=== e2e:") {
			continue
		}
		broker = append(broker, line)
		if strings.Contains(line, "audit") {
			audit = append(audit, line)
		}
	}
	log := strings.Join(broker, "\n")
	for _, want := range [][]string{
		{"CreateAcls", "User:admin", "User:alice"},
		{"DeleteAcls", "User:admin", "User:alice"},
		{"AlterUserScramCredentials", "User:admin", "carol"},
	} {
		found := false
		for _, line := range audit {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(strings.ToLower(line), strings.ToLower(w))
			}
			found = found || ok
		}
		if !found {
			t.Errorf("no audit line with %q among %d audit lines", want, len(audit))
		}
	}
	for _, secret := range []string{"admin-secret", "alice-secret", "bob-secret", "carol-256-secret", "carol-512-secret",
		"not-her-password", s.jwks.token(jwtClaims("oauth-admin", time.Hour))[:40]} {
		if strings.Contains(log, secret) {
			t.Errorf("the broker log contains the secret %q", secret)
		}
	}
}

// TestSecurityStrict: ssl.client.auth=required refuses clients without a
// certificate the broker trusts; the keystore is reloaded when it
// changes; SASL sessions expire after connections.max.reauth.ms and
// clients that re-authenticate (KIP-368) keep working while one that
// does not is cut off. No authorizer: these are about authentication.
func TestSecurityStrict(t *testing.T) {
	t.Parallel()
	pki, jwks := newPKI(t), newJWKS(t)
	addrs := secAddrs{Plain: freeAddr(t), SSL: freeAddr(t), SASLPlain: freeAddr(t)}
	s := startSecBroker(t, addrs, pki, jwks,
		"--set", "ssl.client.auth=required",
		"--set", "sasl.enabled.mechanisms=PLAIN,OAUTHBEARER",
		"--set", "sasl.plain.users=admin:admin-secret",
		"--set", "connections.max.reauth.ms=3000",
	)
	ctx := testContext(t, 60*time.Second)
	adm := s.Admin() // PLAINTEXT, and no authorizer
	good := pki.client(t, "app", false)

	t.Run("mTLS", func(t *testing.T) {
		t.Run("trusted certificate", func(t *testing.T) {
			createTopic(ctx, t, adm, "strict-mtls", 1, nil)
			franzRoundTrip(ctx, t, kgoAt(addrs.SSL, tlsConfig(pki.caPool, &good), nil), "strict-mtls", 10)
			createTopic(ctx, t, adm, "strict-mtls-kcat", 1, nil)
			kcatRoundTrip(ctx, t, addrs.SSL, "ssl", kcatSSL(pki.CAFile, &good), "strict-mtls-kcat", 10)
		})
		forged := pki.client(t, "app", true)
		for name, cert := range map[string]*clientCert{"no certificate": nil, "certificate from an untrusted CA": &forged} {
			t.Run(name, func(t *testing.T) {
				if ok, why := refusesRaw(t, addrs.SSL, tlsConfig(pki.caPool, cert)); !ok {
					t.Errorf("raw TLS client: %s", why)
				}
				if err := firstRequestErr(ctx, t, kgoAt(addrs.SSL, tlsConfig(pki.caPool, cert), nil)); err == nil {
					t.Error("franz-go got an answer")
				}
				x := kcatSSL(pki.CAFile, nil)
				if cert != nil {
					x = kcatSSL(pki.CAFile, cert)
				}
				if out, errs, _ := kcatRun(ctx, t, addrs.SSL, "ssl", x, "", "-L", "-m", "3"); strings.Contains(out, "broker") {
					t.Errorf("kcat got metadata:\n%s%s", out, errs)
				}
			})
		}
	})

	t.Run("keystore reloaded", func(t *testing.T) {
		serverCN := func() (string, string) {
			c, err := tls.Dial("tcp", addrs.SSL, tlsConfig(pki.caPool, &good))
			if err != nil {
				return "", err.Error()
			}
			defer c.Close()
			return c.ConnectionState().PeerCertificates[0].Subject.CommonName, ""
		}
		if cn, why := serverCN(); cn != "strata-broker" {
			t.Fatalf("server certificate CN %q (%s), want strata-broker", cn, why)
		}
		pki.writeServerKeystore(t, pki.ServerKeystore, "strata-broker-renewed")
		waitUpTo(ctx, t, 15*time.Second, "the broker to serve the renewed certificate", func() (bool, string) {
			cn, why := serverCN()
			return cn == "strata-broker-renewed", cn + why
		})
	})

	t.Run("reauthentication", func(t *testing.T) {
		createTopic(ctx, t, adm, "strict-reauth", 1, nil)
		t.Run("session lifetime", func(t *testing.T) {
			t.Parallel()
			// The broker tells the client how long its session lasts,
			// and closes a connection used after that without a new
			// authentication.
			r := dialRawConn(t, addrs.SASLPlain, nil)
			resp := saslPlainRaw(t, r, "admin", "admin-secret")
			if resp.ErrorCode != 0 {
				t.Fatalf("SaslAuthenticate: error %d", resp.ErrorCode)
			}
			if l := resp.SessionLifetimeMillis; l <= 0 || l > 3000 {
				t.Fatalf("session_lifetime_ms %d, want 1..3000 (connections.max.reauth.ms)", l)
			}
			if _, err := r.roundTrip(rawMetadata()); err != nil {
				t.Fatalf("metadata within the session: %v", err)
			}
			// Waiting out the session is the point of this check.
			time.Sleep(time.Duration(resp.SessionLifetimeMillis)*time.Millisecond + 500*time.Millisecond)
			if err := r.send(rawMetadata()); err == nil {
				if ok, why := r.closedWithoutAnswer(); !ok {
					t.Errorf("a request after the session expired: %s", why)
				}
			}
		})
		for _, m := range []string{"PLAIN", "OAUTHBEARER"} {
			t.Run("franz-go "+m, func(t *testing.T) {
				t.Parallel()
				// Count authentications: the credentials are asked for
				// each time (a fresh token, as an application's token
				// source would give).
				var auths atomic.Int64
				mech := plain.Plain(func(context.Context) (plain.Auth, error) {
					auths.Add(1)
					return plain.Auth{User: "admin", Pass: "admin-secret"}, nil
				})
				if m == "OAUTHBEARER" {
					mech = oauth.Oauth(func(context.Context) (oauth.Auth, error) {
						auths.Add(1)
						return oauth.Auth{Token: jwks.token(jwtClaims("svc", 10*time.Minute))}, nil
					})
				}
				failed := &requestErrors{}
				cl := newKgo(t, kgoAt(addrs.SASLPlain, nil, mech, kgo.WithHooks(failed)))
				if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "strict-reauth", Value: []byte("first")}).FirstErr(); err != nil {
					t.Fatalf("first produce: %v", err)
				}
				authsBefore := auths.Load()
				// Keep producing across more than two 3 s sessions.
				start := time.Now()
				n := 0
				for time.Since(start) < 7*time.Second {
					if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "strict-reauth", Value: []byte(m)}).FirstErr(); err != nil {
						t.Fatalf("produce %d after %v: %v", n, time.Since(start), err)
					}
					n++
					select {
					case <-ctx.Done():
						t.Fatal(ctx.Err())
					case <-time.After(100 * time.Millisecond):
					}
				}
				// franz-go would retry a request the broker cut off, so
				// the produces succeeding is not enough: no request may
				// have failed on the wire.
				if n, first := failed.get(); n != 0 {
					t.Errorf("%d requests failed on the wire while producing across sessions, first: %v", n, first)
				}
				if got := auths.Load() - authsBefore; got < 2 {
					t.Errorf("%d re-authentications in 7 s of 3 s sessions, want at least 2", got)
				}
			})
		}
	})
}

// requestErrors counts requests that failed on the wire (a write or a
// read error: the connection was cut under them).
type requestErrors struct {
	mu    sync.Mutex
	n     int
	first error
}

func (r *requestErrors) OnBrokerE2E(_ kgo.BrokerMetadata, _ int16, e kgo.BrokerE2E) {
	if err := e.Err(); err != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.n == 0 {
			r.first = err
		}
		r.n++
	}
}

func (r *requestErrors) get() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n, r.first
}
