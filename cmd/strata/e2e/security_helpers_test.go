package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// ---------------------------------------------------------------------
// Certificates, made fresh for every test run.

// testPKI is a CA with a server certificate for 127.0.0.1/localhost, a
// second CA the broker does not trust, and client certificates from
// either. Keys are ECDSA P-256: quick to make, and OpenSSL (kcat) and Go
// both take them.
type testPKI struct {
	dir            string
	CAFile         string // PEM CA certificate: the broker's truststore and the clients' root
	UntrustedCA    string // PEM CA certificate of the CA nobody trusts
	ServerKeystore string // PEM server chain + key: ssl.keystore.location

	caPool, untrustedPool *x509.CertPool
	ca, untrusted         signer
}

type signer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// clientCert is a client certificate as files (kcat) and as a
// tls.Certificate (Go clients).
type clientCert struct {
	CertFile, KeyFile string
	TLS               tls.Certificate
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	p.ca = newCA(t, "Strata e2e CA")
	p.untrusted = newCA(t, "Strata e2e untrusted CA")
	p.CAFile = writePEM(t, p.dir, "ca.pem", certPEM(p.ca.cert))
	p.UntrustedCA = writePEM(t, p.dir, "untrusted-ca.pem", certPEM(p.untrusted.cert))
	p.caPool, p.untrustedPool = x509.NewCertPool(), x509.NewCertPool()
	p.caPool.AddCert(p.ca.cert)
	p.untrustedPool.AddCert(p.untrusted.cert)
	p.ServerKeystore = filepath.Join(p.dir, "server-keystore.pem")
	p.writeServerKeystore(t, p.ServerKeystore, "strata-broker")
	return p
}

func newCA(t *testing.T, cn string) signer {
	t.Helper()
	key := newECKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Strata"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return signer{cert: cert, key: key}
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (s signer) issue(t *testing.T, tmpl *x509.Certificate) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := newECKey(t)
	tmpl.SerialNumber = serial(t)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.cert, &key.PublicKey, s.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func writePEM(t *testing.T, dir, name string, data ...[]byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, bytes.Join(data, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeServerKeystore writes a server certificate with common name cn
// (chain first, then the key, as ssl.keystore.location wants) to path,
// atomically so a broker watching the file never reads half of it.
func (p *testPKI) writeServerKeystore(t *testing.T, path, cn string) *x509.Certificate {
	t.Helper()
	cert, key := p.ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: []string{"Strata"}},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	tmp := writePEM(t, p.dir, filepath.Base(path)+".tmp", certPEM(cert), certPEM(p.ca.cert), keyPEM(t, key))
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return cert
}

// client issues a client certificate whose subject is
// CN=<cn>,OU=e2e,O=Strata, from the trusted CA or the untrusted one.
func (p *testPKI) client(t *testing.T, cn string, untrusted bool) clientCert {
	t.Helper()
	ca, tag := p.ca, "trusted"
	if untrusted {
		ca, tag = p.untrusted, "untrusted"
	}
	cert, key := ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, OrganizationalUnit: []string{"e2e"}, Organization: []string{"Strata"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	certData, keyData := certPEM(cert), keyPEM(t, key)
	cc := clientCert{
		CertFile: writePEM(t, p.dir, fmt.Sprintf("client-%s-%s.pem", cn, tag), certData),
		KeyFile:  writePEM(t, p.dir, fmt.Sprintf("client-%s-%s.key", cn, tag), keyData),
	}
	var err error
	if cc.TLS, err = tls.X509KeyPair(certData, keyData); err != nil {
		t.Fatal(err)
	}
	return cc
}

// tlsConfig is a client TLS config trusting roots and presenting cert
// (nil: none). The certificate is always sent: Go's default would hold
// back one that the server's list of acceptable CAs does not name, and
// the tests must see the broker refuse a forged certificate itself.
func tlsConfig(roots *x509.CertPool, cert *clientCert) *tls.Config {
	c := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert.TLS, nil }
	}
	return c
}

// ---------------------------------------------------------------------
// OAUTHBEARER: an RSA JWKS file and JWTs signed by hand (RS256), so the
// tests depend on no JOSE library.

const (
	jwtIssuer   = "https://idp.strata.test"
	jwtAudience = "strata-brokers"
	jwtKeyID    = "e2e-key-1"
)

type testJWKS struct {
	URL   string          // file:///.../jwks.json
	key   *rsa.PrivateKey // published in the JWKS
	other *rsa.PrivateKey // not published: tokens it signs are forgeries
}

func newJWKS(t *testing.T) *testJWKS {
	t.Helper()
	j := &testJWKS{}
	var err error
	if j.key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if j.other, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	doc := map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": jwtKeyID,
		"n": b64(j.key.N.Bytes()),
		"e": b64(big.NewInt(int64(j.key.E)).Bytes()),
	}}}
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	j.URL = "file://" + path
	return j
}

// claims are a valid token's claims for sub, living ttl from now.
func jwtClaims(sub string, ttl time.Duration) map[string]any {
	now := time.Now()
	return map[string]any{
		"sub": sub, "iss": jwtIssuer, "aud": jwtAudience,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(ttl).Unix(),
		"scope": "kafka",
	}
}

// token signs claims with the published key.
func (j *testJWKS) token(claims map[string]any) string {
	return signJWT(j.key, jwtKeyID, claims)
}

// signJWT makes a compact RS256 JWS; key nil makes an unsigned alg=none
// token. It panics rather than taking a *testing.T because token
// sources run on client goroutines, and nothing here fails for inputs
// the tests make.
func signJWT(key *rsa.PrivateKey, kid string, claims map[string]any) string {
	hdr := map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid}
	if key == nil {
		hdr = map[string]string{"alg": "none", "typ": "JWT"}
	}
	h, err := json.Marshal(hdr)
	if err != nil {
		panic(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	signing := b64(h) + "." + b64(c)
	if key == nil {
		return signing + "."
	}
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	return signing + "." + b64(sig)
}

// ---------------------------------------------------------------------
// A broker with every kind of listener.

// secAddrs are one broker's listener addresses.
type secAddrs struct {
	Plain, SSL, SASLPlain, SASLSSL string // "" = no such listener
	Admin                          string // HTTP: /metrics, /readyz
}

func (a secAddrs) listeners() string {
	var l []string
	for _, x := range []struct{ name, addr string }{
		{"PLAINTEXT", a.Plain}, {"SSL", a.SSL}, {"SASL_PLAINTEXT", a.SASLPlain}, {"SASL_SSL", a.SASLSSL},
	} {
		if x.addr != "" {
			l = append(l, x.name+"://"+x.addr)
		}
	}
	return strings.Join(l, ",")
}

type secBroker struct {
	*brokerProc
	addrs secAddrs
	pki   *testPKI
	jwks  *testJWKS
}

// startSecBroker starts a broker with addrs' listeners (each "" listener
// left out, addrs.Plain required: the harness's --listen), the test PKI
// and JWKS, and extra serve arguments, and waits until every listener
// accepts connections.
func startSecBroker(t *testing.T, addrs secAddrs, pki *testPKI, jwks *testJWKS, extra ...string) *secBroker {
	t.Helper()
	addrs.Admin = freeAddr(t)
	args := []string{
		"--listeners=" + addrs.listeners(),
		"--set", "ssl.keystore.location=" + pki.ServerKeystore,
		"--set", "ssl.truststore.location=" + pki.CAFile,
		"--set", "sasl.oauthbearer.jwks.endpoint.url=" + jwks.URL,
		"--set", "sasl.oauthbearer.expected.issuer=" + jwtIssuer,
		"--set", "sasl.oauthbearer.expected.audience=" + jwtAudience,
	}
	b := startBrokerWith(t, brokerOptions{Addr: addrs.Plain, AdminAddr: addrs.Admin}, append(args, extra...)...)
	s := &secBroker{brokerProc: b, addrs: addrs, pki: pki, jwks: jwks}
	// /readyz says the broker is up; each listener must also be bound.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for name, addr := range map[string]string{"SSL": addrs.SSL, "SASL_PLAINTEXT": addrs.SASLPlain, "SASL_SSL": addrs.SASLSSL} {
		if addr == "" {
			continue
		}
		waitFor(ctx, t, name+" listener on "+addr, func() (bool, string) {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return false, err.Error()
			}
			c.Close()
			return true, ""
		})
	}
	return s
}

// ---------------------------------------------------------------------
// franz-go.

func plainMech(user, pass string) sasl.Mechanism {
	return plain.Auth{User: user, Pass: pass}.AsMechanism()
}

func scramMech(mech, user, pass string) sasl.Mechanism {
	a := scram.Auth{User: user, Pass: pass}
	if mech == "SCRAM-SHA-512" {
		return a.AsSha512Mechanism()
	}
	return a.AsSha256Mechanism()
}

func oauthMech(token string) sasl.Mechanism {
	return oauth.Auth{Token: token}.AsMechanism()
}

// kgoAt are client options for one listener; tlsCfg nil means no TLS,
// mech nil no SASL.
func kgoAt(addr string, tlsCfg *tls.Config, mech sasl.Mechanism, extra ...kgo.Opt) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.DialTimeout(5 * time.Second),
		kgo.MetadataMinAge(10 * time.Millisecond),
		kgo.RetryTimeout(10 * time.Second),
		// A broker that never answers right fails the check in seconds.
		kgo.RecordDeliveryTimeout(15 * time.Second),
	}
	if tlsCfg != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsCfg))
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	return append(opts, extra...)
}

func newKgo(t *testing.T, opts []kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// admin is the super user over SASL_PLAINTEXT with PLAIN.
func (s *secBroker) admin(t *testing.T) *kadm.Client {
	t.Helper()
	return kadm.NewClient(newKgo(t, kgoAt(s.addrs.SASLPlain, nil, plainMech("admin", "admin-secret"))))
}

// secRecords are n records for topic; keys and values are plain text so
// kcat can carry them as lines.
func secRecords(topic string, n int) (keys, values []string) {
	for i := range n {
		keys = append(keys, fmt.Sprintf("k%03d", i))
		values = append(values, fmt.Sprintf("%s-value-%03d-%s", topic, i, strings.Repeat("x", i%50)))
	}
	return keys, values
}

// franzRoundTrip produces n records to partition 0 of topic and reads
// them back with a second client, both built from opts.
func franzRoundTrip(ctx context.Context, t *testing.T, opts []kgo.Opt, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	keys, values := secRecords(topic, n)
	prod := newKgo(t, append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner())))
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: 0, Key: []byte(keys[i]), Value: []byte(values[i])}
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("franz-go produce to %s: %v", topic, err)
	}
	cons := newKgo(t, append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		topic: {0: kgo.NewOffset().AtStart()},
	})))
	var gotK, gotV []string
	for len(gotK) < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("franz-go consume %s: got %d of %d records before %v", topic, len(gotK), n, ctx.Err())
		}
		for _, fe := range fs.Errors() {
			t.Fatalf("franz-go consume %s: %v", topic, fe.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			gotK, gotV = append(gotK, string(r.Key)), append(gotV, string(r.Value))
		})
	}
	sameRecords(t, "franz-go "+topic, keys, values, gotK, gotV)
}

func sameRecords(t *testing.T, what string, keys, values, gotK, gotV []string) {
	t.Helper()
	if len(gotK) != len(keys) {
		t.Fatalf("%s: read %d records, wrote %d", what, len(gotK), len(keys))
	}
	for i := range keys {
		if gotK[i] != keys[i] || gotV[i] != values[i] {
			t.Fatalf("%s: record %d is %q=%q, want %q=%q", what, i, gotK[i], gotV[i], keys[i], values[i])
		}
	}
}

// firstRequestErr builds a client from opts and returns the error of
// its first request (nil if the broker answered), so connection-level
// failures (TLS, SASL) surface as they do to an application.
func firstRequestErr(ctx context.Context, t *testing.T, opts []kgo.Opt) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append(opts, kgo.RequestRetries(0))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	_, err = req.RequestWith(ctx, cl)
	return err
}

// metadataWith is metadataTopics on a client of its own, closed after.
func metadataWith(ctx context.Context, t *testing.T, opts []kgo.Opt, topics ...string) map[string]kmsg.MetadataResponseTopic {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	return metadataTopics(ctx, t, cl, topics...)
}

// waitUpTo is waitFor bounded by d, so a missing feature fails its
// check in seconds rather than using up the whole test's time.
func waitUpTo(ctx context.Context, t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	waitFor(ctx, t, what, cond)
}

// metadataTopics asks for topics (nil: all) and returns the response's
// topics by name.
func metadataTopics(ctx context.Context, t *testing.T, cl *kgo.Client, topics ...string) map[string]kmsg.MetadataResponseTopic {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = true
	if topics != nil {
		req.Topics = []kmsg.MetadataRequestTopic{}
		for _, tp := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(tp)
			req.Topics = append(req.Topics, rt)
		}
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("metadata %v: %v", topics, err)
	}
	out := map[string]kmsg.MetadataResponseTopic{}
	for _, rt := range resp.Topics {
		if rt.Topic != nil {
			out[*rt.Topic] = rt
		}
	}
	return out
}

// ---------------------------------------------------------------------
// Sarama.

func saramaSecConfig(clientID string) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.ClientID = clientID
	cfg.Net.DialTimeout = 5 * time.Second
	cfg.Metadata.Retry.Max = 1
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Consumer.Return.Errors = true
	return cfg
}

func saramaTLS(cfg *sarama.Config, tc *tls.Config) *sarama.Config {
	cfg.Net.TLS.Enable = true
	cfg.Net.TLS.Config = tc
	return cfg
}

func saramaSASL(cfg *sarama.Config, mech sarama.SASLMechanism, user, pass string) *sarama.Config {
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Handshake = true
	cfg.Net.SASL.Version = sarama.SASLHandshakeV1
	cfg.Net.SASL.Mechanism = mech
	cfg.Net.SASL.User, cfg.Net.SASL.Password = user, pass
	switch mech {
	case sarama.SASLTypeSCRAMSHA256:
		cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &saramaScram{} }
	case sarama.SASLTypeSCRAMSHA512:
		cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &saramaScram{sha512: true} }
	}
	return cfg
}

func saramaOAuth(cfg *sarama.Config, token string) *sarama.Config {
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Handshake = true
	cfg.Net.SASL.Version = sarama.SASLHandshakeV1
	cfg.Net.SASL.Mechanism = sarama.SASLTypeOAuth
	cfg.Net.SASL.TokenProvider = staticToken(token)
	return cfg
}

type staticToken string

func (s staticToken) Token() (*sarama.AccessToken, error) {
	return &sarama.AccessToken{Token: string(s)}, nil
}

// saramaScram adapts franz-go's SCRAM client to Sarama's SCRAMClient, so
// Sarama is tested with SCRAM without another module.
type saramaScram struct {
	sha512     bool
	user, pass string
	sess       sasl.Session
	done       bool
}

func (s *saramaScram) Begin(user, pass, _ string) error {
	s.user, s.pass = user, pass
	return nil
}

func (s *saramaScram) Step(challenge string) (string, error) {
	if s.sess == nil {
		mech := "SCRAM-SHA-256"
		if s.sha512 {
			mech = "SCRAM-SHA-512"
		}
		sess, first, err := scramMech(mech, s.user, s.pass).Authenticate(context.Background(), "")
		s.sess = sess
		return string(first), err
	}
	done, out, err := s.sess.Challenge([]byte(challenge))
	s.done = done
	return string(out), err
}

func (s *saramaScram) Done() bool { return s.done }

// saramaRoundTrip produces n records to partition 0 of topic through addr
// with cfg, then consumes them from the start.
func saramaRoundTrip(ctx context.Context, t *testing.T, addr string, cfg *sarama.Config, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	keys, values := secRecords(topic, n)
	p, err := sarama.NewSyncProducer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("sarama producer: %v", err)
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, n)
	for i := range msgs {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Partition: 0,
			Key: sarama.StringEncoder(keys[i]), Value: sarama.StringEncoder(values[i])}
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatalf("sarama produce to %s: %v", topic, err)
	}
	c, err := sarama.NewConsumer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("sarama consumer: %v", err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatalf("sarama consume %s: %v", topic, err)
	}
	defer pc.Close()
	var gotK, gotV []string
	for len(gotK) < n {
		select {
		case m := <-pc.Messages():
			gotK, gotV = append(gotK, string(m.Key)), append(gotV, string(m.Value))
		case err := <-pc.Errors():
			t.Fatalf("sarama consume %s: %v", topic, err)
		case <-ctx.Done():
			t.Fatalf("sarama consume %s: got %d of %d records before %v", topic, len(gotK), n, ctx.Err())
		}
	}
	sameRecords(t, "sarama "+topic, keys, values, gotK, gotV)
}

// saramaConnectErr is the error Sarama gives when it cannot get going
// (nil if it can).
func saramaConnectErr(addr string, cfg *sarama.Config) error {
	cfg.Metadata.Retry.Max = 0
	cl, err := sarama.NewClient([]string{addr}, cfg)
	if err == nil {
		cl.Close()
	}
	return err
}

// ---------------------------------------------------------------------
// kcat (librdkafka).

// kcatSSL are kcat's -X settings for TLS trusting ca, with an optional
// client certificate.
func kcatSSL(ca string, cert *clientCert) []string {
	x := []string{"-X", "ssl.ca.location=" + ca}
	if cert != nil {
		x = append(x, "-X", "ssl.certificate.location="+cert.CertFile, "-X", "ssl.key.location="+cert.KeyFile)
	}
	return x
}

func kcatSASL(mech, user, pass string) []string {
	return []string{"-X", "sasl.mechanisms=" + mech, "-X", "sasl.username=" + user, "-X", "sasl.password=" + pass}
}

// kcatRun runs kcat against addr with protocol (plaintext, ssl,
// sasl_plaintext, sasl_ssl), settings x and args, feeding stdin; it
// returns stdout, stderr and the error.
func kcatRun(ctx context.Context, t *testing.T, addr, protocol string, x []string, stdin string, args ...string) (string, string, error) {
	t.Helper()
	kcat := requireKcat(t)
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	all := append([]string{"-b", addr, "-X", "security.protocol=" + protocol}, x...)
	all = append(all, args...)
	cmd := exec.CommandContext(ctx, kcat, all...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// kcatRoundTrip produces n records to partition 0 of topic with kcat and
// consumes them back with kcat.
func kcatRoundTrip(ctx context.Context, t *testing.T, addr, protocol string, x []string, topic string, n int) {
	t.Helper()
	keys, values := secRecords(topic, n)
	var in strings.Builder
	for i := range keys {
		fmt.Fprintf(&in, "%s|%s\n", keys[i], values[i])
	}
	if out, errs, err := kcatRun(ctx, t, addr, protocol, x, in.String(),
		"-P", "-t", topic, "-p", "0", "-K", "|", "-X", "acks=all"); err != nil {
		t.Fatalf("kcat (%s) produce to %s: %v\n%s%s", protocol, topic, err, out, errs)
	}
	out, errs, err := kcatRun(ctx, t, addr, protocol, x, "",
		"-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q", "-f", `%k|%s\n`)
	if err != nil {
		t.Fatalf("kcat (%s) consume %s: %v\n%s", protocol, topic, err, errs)
	}
	var gotK, gotV []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "|")
		gotK, gotV = append(gotK, k), append(gotV, v)
	}
	sameRecords(t, "kcat ("+protocol+") "+topic, keys, values, gotK, gotV)
}

// ---------------------------------------------------------------------
// Raw protocol, for what clients hide: exact session lifetimes, what a
// connection gets before it authenticates, when it is closed.

type rawConn struct {
	c    net.Conn
	corr int32
}

func dialRawConn(t *testing.T, addr string, tc *tls.Config) *rawConn {
	t.Helper()
	r, err := tryDialRaw(t, addr, tc)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return r
}

// tryDialRaw connects, with a TLS handshake when tc is set. A server
// refusing the client's certificate fails the handshake under TLS 1.2,
// but only the first read under TLS 1.3, so refusal tests accept either.
func tryDialRaw(t *testing.T, addr string, tc *tls.Config) (*rawConn, error) {
	t.Helper()
	var c net.Conn
	var err error
	if tc != nil {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tc)
	} else {
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{c: c}, nil
}

// refusesRaw reports whether a client with tc gets no answer to
// ApiVersions: the handshake fails, or the connection fails or closes
// before a response.
func refusesRaw(t *testing.T, addr string, tc *tls.Config) (bool, string) {
	t.Helper()
	r, err := tryDialRaw(t, addr, tc)
	if err != nil {
		return true, err.Error()
	}
	if err := r.send(kmsg.NewPtrApiVersionsRequest()); err != nil {
		return true, err.Error()
	}
	return r.closedWithoutAnswer()
}

// send writes req at the version it carries.
func (r *rawConn) send(req kmsg.Request) error {
	r.corr++
	msg := reqHeader(req.Key(), req.GetVersion(), r.corr, req.IsFlexible())
	msg = req.AppendTo(msg)
	_ = r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := r.c.Write(frame(msg))
	return err
}

// roundTrip sends req and reads its response; any failure to get a
// whole response (a closed connection, a TLS alert) is the error.
func (r *rawConn) roundTrip(req kmsg.Request) (kmsg.Response, error) {
	if err := r.send(req); err != nil {
		return nil, err
	}
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(r.c, size[:]); err != nil {
		return nil, fmt.Errorf("read response size: %w", err)
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > 1<<20 {
		return nil, fmt.Errorf("response size %d", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.c, body); err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if corr := int32(binary.BigEndian.Uint32(body)); corr != r.corr {
		return nil, fmt.Errorf("correlation id %d, want %d", corr, r.corr)
	}
	body = body[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	// ApiVersions answers with header v0 even when flexible.
	if resp.IsFlexible() && req.Key() != 18 {
		if len(body) == 0 || body[0] != 0 {
			return nil, errors.New("response header with tagged fields")
		}
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decode %T: %w", resp, err)
	}
	return resp, nil
}

// closedWithoutAnswer reports whether the broker closed the connection
// (or failed it, as a TLS alert does) without sending a response.
func (r *rawConn) closedWithoutAnswer() (bool, string) {
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	n, err := r.c.Read(b[:])
	var ne net.Error
	switch {
	case n > 0:
		return false, "the broker answered"
	case errors.As(err, &ne) && ne.Timeout():
		return false, "the broker kept the connection open without answering"
	}
	return true, fmt.Sprint(err)
}

// saslPlainRaw authenticates r with PLAIN through SaslHandshake v1 and
// SaslAuthenticate v2 and returns the SaslAuthenticate response.
func saslPlainRaw(t *testing.T, r *rawConn, user, pass string) *kmsg.SASLAuthenticateResponse {
	t.Helper()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version = 1
	hs.Mechanism = "PLAIN"
	resp, err := r.roundTrip(hs)
	if err != nil {
		t.Fatalf("SaslHandshake: %v", err)
	}
	if code := resp.(*kmsg.SASLHandshakeResponse).ErrorCode; code != 0 {
		t.Fatalf("SaslHandshake PLAIN: error %d", code)
	}
	au := kmsg.NewPtrSASLAuthenticateRequest()
	au.Version = 2
	au.SASLAuthBytes = []byte("\x00" + user + "\x00" + pass)
	resp, err = r.roundTrip(au)
	if err != nil {
		t.Fatalf("SaslAuthenticate: %v", err)
	}
	return resp.(*kmsg.SASLAuthenticateResponse)
}

func rawMetadata() kmsg.Request {
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	req.Topics = []kmsg.MetadataRequestTopic{}
	return req
}

// ---------------------------------------------------------------------
// /metrics.

// scrapeCounter sums the samples of a Prometheus counter whose labels
// contain every one of filters (`mechanism="PLAIN"`), and returns the
// matching series lines too.
func scrapeCounter(t *testing.T, adminAddr, name string, filters ...string) (float64, []string) {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, f := range filters {
			if !strings.Contains(line, f) {
				continue next
			}
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum += v
		lines = append(lines, line)
	}
	return sum, lines
}
