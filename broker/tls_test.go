package broker

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// tlsTestCA issues certificates for tests, made fresh for every test.
type tlsTestCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
	pem  []byte
}

var tlsTestSerial atomic.Int64

func newTLSTestCA(t *testing.T, cn string) *tlsTestCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(tlsTestSerial.Add(1)),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tlsTestCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf certificate for subject. Server certificates are
// valid for localhost and 127.0.0.1. It returns the certificate for a
// client config and the keystore PEM (chain, then a PKCS#8 key).
func (ca *tlsTestCA) issue(t *testing.T, subject pkix.Name, server bool) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return ca.issueFor(t, subject, server, key, func(k crypto.Signer) *pem.Block {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	})
}

func (ca *tlsTestCA) issueFor(t *testing.T, subject pkix.Name, server bool, key crypto.Signer, keyBlock func(crypto.Signer) *pem.Block) (tls.Certificate, []byte) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(tlsTestSerial.Add(1)),
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		// Both: the Raft transport presents the broker certificate as a
		// client too (controllerTLS).
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	chain = append(chain, ca.pem...)
	keystore := append(chain, pem.EncodeToMemory(keyBlock(key))...)
	cert, err := tls.X509KeyPair(keystore, keystore)
	if err != nil {
		t.Fatal(err)
	}
	return cert, keystore
}

// writeFileAtomic replaces path the way certificate tooling does: write
// elsewhere, then rename over it.
func writeFileAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// tlsSetup is a CA, a broker keystore and a truststore on disk.
type tlsSetup struct {
	ca         *tlsTestCA
	keystore   string
	truststore string
}

func newTLSSetup(t *testing.T) *tlsSetup {
	t.Helper()
	dir := t.TempDir()
	ts := &tlsSetup{ca: newTLSTestCA(t, "Strata Test CA"), keystore: filepath.Join(dir, "broker.pem"), truststore: filepath.Join(dir, "ca.pem")}
	_, ks := ts.ca.issue(t, pkix.Name{CommonName: "broker-1"}, true)
	writeFileAtomic(t, ts.keystore, ks)
	writeFileAtomic(t, ts.truststore, ts.ca.pem)
	return ts
}

// startTLSServer runs a broker with a PLAINTEXT listener PLAIN (first, so
// the usual helpers use it) and an SSL listener SECURE advertised as
// localhost.
func startTLSServer(t *testing.T, setup *tlsSetup, mutate ...func(*Config)) *testServer {
	t.Helper()
	return startServer(t, append([]func(*Config){func(c *Config) {
		c.Listeners = "PLAIN://127.0.0.1:0,SECURE://127.0.0.1:0"
		c.AdvertisedListeners = "SECURE://localhost:0"
		c.ListenerSecurityProtocolMap = "PLAIN:PLAINTEXT,SECURE:SSL"
		c.SSLKeystoreLocation = setup.keystore
		c.SSLTruststoreLocation = setup.truststore
	}}, mutate...)...)
}

// dialTLS opens a TLS connection to a listener and sends nothing yet.
func dialTLS(t *testing.T, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func rawOver(t *testing.T, c net.Conn) *rawConn {
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// serverPrincipal closes client and returns the principal its server-side
// connection carried. The server is done with the connection first, so
// the read is ordered after every write of the field.
func (ts *testServer) serverPrincipal(t *testing.T, client net.Conn) string {
	t.Helper()
	local := client.LocalAddr().String()
	var c *clientConn
	waitFor(t, "the server side of the connection", func() bool {
		ts.connsMu.Lock()
		defer ts.connsMu.Unlock()
		for cc := range ts.conns {
			if cc.nc.RemoteAddr().String() == local {
				c = cc
				return true
			}
		}
		return false
	})
	client.Close()
	waitFor(t, "the server to close the connection", func() bool {
		ts.connsMu.Lock()
		defer ts.connsMu.Unlock()
		_, open := ts.conns[c]
		return !open
	})
	return c.principal
}

func apiVersions(rc *rawConn) (*kmsg.ApiVersionsResponse, error) {
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1"
	corr := rc.send(req)
	got, body, err := rc.readFrame(10 * time.Second)
	if err != nil {
		return nil, err
	}
	if got != corr {
		rc.t.Fatalf("correlation id %d, want %d", got, corr)
	}
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	if err := resp.ReadFrom(body); err != nil {
		rc.t.Fatal(err)
	}
	return resp, nil
}

func TestTLSListenerProduceConsume(t *testing.T) {
	setup := newTLSSetup(t)
	ts := startTLSServer(t, setup)
	secure := ts.ListenerAddr("SECURE")
	if secure == nil || ts.ListenerAddr("NOPE") != nil {
		t.Fatalf("ListenerAddr(SECURE) = %v, ListenerAddr(NOPE) = %v", secure, ts.ListenerAddr("NOPE"))
	}
	if ts.Addr().String() != ts.ListenerAddr("PLAIN").String() {
		t.Errorf("Addr() = %v, want the first listener %v", ts.Addr(), ts.ListenerAddr("PLAIN"))
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(secure.String()),
		kgo.DialTLSConfig(&tls.Config{RootCAs: setup.ca.pool, MinVersion: tls.VersionTLS12}),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumeTopics("tls"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	if resp, err := adm.CreateTopic(ctx, 1, 1, nil, "tls"); err != nil || resp.Err != nil {
		t.Fatalf("create topic over TLS: %v %v", err, resp.Err)
	}
	brokers, err := adm.ListBrokers(ctx)
	if err != nil || len(brokers) != 1 || brokers[0].Host != "localhost" || brokers[0].Port != int32(secure.(*net.TCPAddr).Port) {
		t.Fatalf("brokers seen over SSL = %+v, %v; want localhost:%d", brokers, err, secure.(*net.TCPAddr).Port)
	}
	want := []string{"a", "b", "c"}
	for _, v := range want {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "tls", Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce over TLS: %v", err)
		}
	}
	var got []string
	for len(got) < len(want) {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("fetch over TLS: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if strings.Join(got, ",") != "a,b,c" {
		t.Errorf("consumed %v, want %v", got, want)
	}

	// The same records through the plaintext listener.
	plain := ts.client(t, kgo.ConsumeTopics("tls"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	n := 0
	for n < 3 {
		fs := plain.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		n += fs.NumRecords()
	}
}

func TestTLSClientAuthRequired(t *testing.T) {
	setup := newTLSSetup(t)
	ts := startTLSServer(t, setup, func(c *Config) {
		c.SSLClientAuth = "required"
		c.SSLPrincipalMappingRules = "RULE:^CN=([^,]+),OU=Clients,.*$/$1/L, DEFAULT"
	})
	addr := ts.ListenerAddr("SECURE").String()
	alice, _ := setup.ca.issue(t, pkix.Name{CommonName: "Alice", OrganizationalUnit: []string{"Clients"}, Organization: []string{"Strata"}}, false)
	bob, _ := setup.ca.issue(t, pkix.Name{CommonName: "bob", Organization: []string{"Strata"}}, false)
	stranger, _ := newTLSTestCA(t, "Other CA").issue(t, pkix.Name{CommonName: "mallory", OrganizationalUnit: []string{"Clients"}}, false)
	failures := func() float64 {
		return metricValue(scrape(t, ts), "strata_broker_tls_handshake_failures_total", `listener="SECURE"`)
	}

	refused := []struct {
		name string
		cfg  *tls.Config
	}{
		{"no certificate", &tls.Config{RootCAs: setup.ca.pool, ServerName: "localhost"}},
		// GetClientCertificate: Go clients would not even send a
		// certificate the server's CA list does not name.
		{"certificate from another CA", &tls.Config{RootCAs: setup.ca.pool, ServerName: "localhost",
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &stranger, nil }}},
		{"TLS 1.1", &tls.Config{RootCAs: setup.ca.pool, ServerName: "localhost", Certificates: []tls.Certificate{alice}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}},
	}
	for i, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			// TLS 1.3 clients finish their side before the server has
			// checked their certificate; the refusal shows on first use.
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tc.cfg)
			if err == nil {
				defer c.Close()
				if _, err = apiVersions(rawOver(t, c)); err == nil {
					t.Fatal("the broker served a client it should have refused")
				}
			}
			waitFor(t, "the refusal to be counted", func() bool { return failures() >= float64(i+1) })
		})
	}

	for _, tc := range []struct {
		name string
		cert tls.Certificate
		want string
	}{
		{"rule maps the CN", alice, "User:alice"},
		{"DEFAULT keeps the DN", bob, "User:CN=bob,O=Strata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialTLS(t, addr, &tls.Config{RootCAs: setup.ca.pool, ServerName: "localhost", Certificates: []tls.Certificate{tc.cert}})
			if _, err := apiVersions(rawOver(t, c)); err != nil {
				t.Fatalf("ApiVersions with a good certificate: %v", err)
			}
			if got := ts.serverPrincipal(t, c); got != tc.want {
				t.Errorf("principal %q, want %q", got, tc.want)
			}
		})
	}

	t.Run("plaintext listener stays anonymous", func(t *testing.T) {
		rc := ts.raw(t)
		if _, err := apiVersions(rc); err != nil {
			t.Fatal(err)
		}
		if got := ts.serverPrincipal(t, rc.c); got != anonymousPrincipal {
			t.Errorf("principal %q, want %q", got, anonymousPrincipal)
		}
	})
}

func TestTLSClientAuthRequested(t *testing.T) {
	setup := newTLSSetup(t)
	ts := startTLSServer(t, setup, func(c *Config) { c.SSLClientAuth = "requested" })
	addr := ts.ListenerAddr("SECURE").String()
	carol, _ := setup.ca.issue(t, pkix.Name{CommonName: "carol"}, false)
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		want  string
	}{
		{"without a certificate", nil, anonymousPrincipal},
		{"with a certificate", []tls.Certificate{carol}, "User:CN=carol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialTLS(t, addr, &tls.Config{RootCAs: setup.ca.pool, ServerName: "localhost", Certificates: tc.certs})
			if _, err := apiVersions(rawOver(t, c)); err != nil {
				t.Fatal(err)
			}
			if got := ts.serverPrincipal(t, c); got != tc.want {
				t.Errorf("principal %q, want %q", got, tc.want)
			}
		})
	}
}

// A client certificate no mapping rule matches is refused, as Kafka
// fails such an authentication.
func TestTLSNoPrincipalRule(t *testing.T) {
	setup := newTLSSetup(t)
	ts := startTLSServer(t, setup, func(c *Config) {
		c.SSLClientAuth = "required"
		c.SSLPrincipalMappingRules = "RULE:^CN=(admin)$/$1/"
	})
	addr := ts.ListenerAddr("SECURE").String()
	admin, _ := setup.ca.issue(t, pkix.Name{CommonName: "admin"}, false)
	bob, _ := setup.ca.issue(t, pkix.Name{CommonName: "bob"}, false)

	c := dialTLS(t, addr, &tls.Config{RootCAs: setup.ca.pool, ServerName: "localhost", Certificates: []tls.Certificate{bob}})
	if _, err := apiVersions(rawOver(t, c)); err == nil {
		t.Fatal("served a client whose certificate no rule maps")
	}
	waitFor(t, "the refusal to be counted", func() bool {
		return metricValue(scrape(t, ts), "strata_broker_tls_handshake_failures_total", `listener="SECURE"`) == 1
	})

	c = dialTLS(t, addr, &tls.Config{RootCAs: setup.ca.pool, ServerName: "localhost", Certificates: []tls.Certificate{admin}})
	if _, err := apiVersions(rawOver(t, c)); err != nil {
		t.Fatal(err)
	}
	if got := ts.serverPrincipal(t, c); got != "User:admin" {
		t.Errorf("principal %q, want User:admin", got)
	}
}

// controllerTLS gives the Raft transport mutual TLS with the broker's
// keystore and truststore.
func TestControllerTLS(t *testing.T) {
	setup := newTLSSetup(t)
	ts := startTLSServer(t, setup, func(c *Config) { c.ControllerTLS = true })
	cfg, err := ts.controllerTLS()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverErr := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			err = c.(*tls.Conn).Handshake()
			c.Close()
			serverErr <- err
		}
	}()
	stranger, _ := newTLSTestCA(t, "Other CA").issue(t, pkix.Name{CommonName: "intruder"}, true)
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{"peer broker", cfg, true},
		{"certificate from another CA", &tls.Config{RootCAs: setup.ca.pool,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &stranger, nil }}, false},
		{"no certificate", &tls.Config{RootCAs: setup.ca.pool}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tls.Dial("tcp", ln.Addr().String(), tc.cfg)
			if err == nil {
				c.Read(make([]byte, 1)) // TLS 1.3: the server's verdict arrives after the client's handshake
				c.Close()
			}
			if err := <-serverErr; (err == nil) != tc.ok {
				t.Fatalf("server handshake: %v, want success %v", err, tc.ok)
			}
		})
	}

	noTrust := DefaultConfig()
	if _, err := (&Server{cfg: noTrust}).controllerTLS(); err == nil {
		t.Error("controllerTLS without TLS material succeeded")
	}
}

// A new keystore file is picked up by new connections without a restart.
func TestTLSKeystoreRotation(t *testing.T) {
	setup := newTLSSetup(t)
	ts := startTLSServer(t, setup)
	addr := ts.ListenerAddr("SECURE").String()
	served := func() string {
		c := dialTLS(t, addr, &tls.Config{RootCAs: setup.ca.pool, ServerName: "localhost"})
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := served(); got != "broker-1" {
		t.Fatalf("served %q, want broker-1", got)
	}
	old := dialTLS(t, addr, &tls.Config{RootCAs: setup.ca.pool, ServerName: "localhost"})

	_, ks := setup.ca.issue(t, pkix.Name{CommonName: "broker-2"}, true)
	writeFileAtomic(t, setup.keystore, ks)
	waitFor(t, "new connections to get the new certificate", func() bool { return served() == "broker-2" })

	// A connection made before the rotation keeps working.
	if _, err := apiVersions(rawOver(t, old)); err != nil {
		t.Fatalf("old connection after rotation: %v", err)
	}
}

// fileReloader: changes are seen at most once per check interval, a
// broken version keeps the previous one and is logged once.
func TestFileReloader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	write := func(s string) { writeFileAtomic(t, path, []byte(s)) }
	write("v1")
	var (
		mu  sync.Mutex
		now = time.Unix(1000, 0)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func() { mu.Lock(); now = now.Add(tlsReloadCheck); mu.Unlock() }
	logs := &countingHandler{}
	parse := func(b []byte) (string, error) {
		if !strings.HasPrefix(string(b), "v") {
			return "", os.ErrInvalid
		}
		return string(b), nil
	}
	r, err := newFileReloader("ssl.keystore.location", path, parse, slog.New(logs), clock)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		write   string
		advance bool
		want    string
		errors  int
	}{
		{"", false, "v1", 0},
		{"v22", false, "v1", 0}, // not looked at within the interval
		{"", true, "v22", 0},
		{"broken", true, "v22", 1},
		{"", true, "v22", 1}, // the same broken version is not logged again
		{"v333", true, "v333", 1},
	}
	for i, st := range steps {
		if st.write != "" {
			write(st.write)
		}
		if st.advance {
			advance()
		}
		if got := r.get(); got != st.want || logs.errors() != st.errors {
			t.Fatalf("step %d: got %q with %d error logs, want %q with %d", i, got, logs.errors(), st.want, st.errors)
		}
	}
	os.Remove(path)
	advance()
	if got := r.get(); got != "v333" || logs.errors() != 2 {
		t.Fatalf("file removed: got %q with %d error logs", got, logs.errors())
	}
}

type countingHandler struct {
	mu sync.Mutex
	n  int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.mu.Lock()
		h.n++
		h.mu.Unlock()
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }
func (h *countingHandler) errors() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

func TestParseKeystore(t *testing.T) {
	ca := newTLSTestCA(t, "CA")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, pkcs8 := ca.issue(t, pkix.Name{CommonName: "pkcs8"}, true)
	_, pkcs1 := ca.issueFor(t, pkix.Name{CommonName: "pkcs1"}, true, rsaKey, func(k crypto.Signer) *pem.Block {
		return &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.(*rsa.PrivateKey))}
	})
	_, sec1 := ca.issueFor(t, pkix.Name{CommonName: "sec1"}, true, ecKey, func(k crypto.Signer) *pem.Block {
		der, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		return &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	})
	_, other := ca.issue(t, pkix.Name{CommonName: "other"}, true)
	certOnly := []byte(strings.Split(string(pkcs8), "-----BEGIN PRIVATE KEY-----")[0])
	otherKey := []byte("-----BEGIN PRIVATE KEY-----" + strings.Split(string(other), "-----BEGIN PRIVATE KEY-----")[1])
	encrypted := append(append([]byte{}, certOnly...), pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}})...)

	for _, tc := range []struct {
		name   string
		data   []byte
		wantCN string // "" = must fail
		chain  int
	}{
		{"PKCS#8", pkcs8, "pkcs8", 2},
		{"PKCS#1 RSA", pkcs1, "pkcs1", 2},
		{"SEC 1 EC", sec1, "sec1", 2},
		{"no key", certOnly, "", 0},
		{"no certificate", otherKey, "", 0},
		{"key of another certificate", append(append([]byte{}, certOnly...), otherKey...), "", 0},
		{"encrypted key", encrypted, "", 0},
		{"not PEM", []byte("hello"), "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := parseKeystore(tc.data)
			if tc.wantCN == "" {
				if err == nil {
					t.Fatal("parsed a keystore that should be refused")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cert.Leaf.Subject.CommonName != tc.wantCN || len(cert.Certificate) != tc.chain {
				t.Errorf("leaf %q with %d certificates, want %q with %d", cert.Leaf.Subject.CommonName, len(cert.Certificate), tc.wantCN, tc.chain)
			}
		})
	}

	if _, err := parseTruststore(ca.pem); err != nil {
		t.Errorf("truststore: %v", err)
	}
	for _, bad := range [][]byte{nil, []byte("x"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})} {
		if _, err := parseTruststore(bad); err == nil {
			t.Errorf("truststore %q parsed", bad)
		}
	}
}
