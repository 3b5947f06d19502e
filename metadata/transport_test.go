package metadata

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// testCA is a certificate authority made up for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func nextSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err)
	}
	return n
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
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
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a node certificate for 127.0.0.1, usable as server and client.
func (ca *testCA) issue(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// nodeTLS is what a broker would pass as Config.TLS.
func (ca *testCA) nodeTLS(t *testing.T, name string) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{ca.issue(t, name)}, RootCAs: ca.pool, ClientCAs: ca.pool}
}

func TestRaftTLSConfigs(t *testing.T) {
	ca := newTestCA(t, "ca")
	cert := ca.issue(t, "n")
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }
	base := &tls.Config{GetCertificate: getCert, RootCAs: ca.pool, MinVersion: tls.VersionTLS10}
	server, client := raftTLSConfigs(base)
	if server.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("server ClientAuth %v, want RequireAndVerifyClientCert", server.ClientAuth)
	}
	if server.ClientCAs != ca.pool {
		t.Error("server does not verify clients against RootCAs when ClientCAs is unset")
	}
	if server.MinVersion != tls.VersionTLS12 || client.MinVersion != tls.VersionTLS12 {
		t.Errorf("min versions %x/%x, want TLS 1.2", server.MinVersion, client.MinVersion)
	}
	if client.GetClientCertificate == nil {
		t.Fatal("client side presents no certificate when only GetCertificate is set")
	}
	if got, err := client.GetClientCertificate(&tls.CertificateRequestInfo{}); err != nil || !reflect.DeepEqual(got.Certificate, cert.Certificate) {
		t.Errorf("client certificate %v, %v", got, err)
	}
	if base.ClientAuth != tls.NoClientCert || base.ClientCAs != nil || base.MinVersion != tls.VersionTLS10 || base.GetClientCertificate != nil {
		t.Error("the caller's config was modified")
	}

	_, client = raftTLSConfigs(&tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: ca.pool})
	if client.RootCAs != ca.pool {
		t.Error("client does not verify servers against ClientCAs when RootCAs is unset")
	}
}

func TestConfigValidateTLS(t *testing.T) {
	ca := newTestCA(t, "ca")
	cert := ca.issue(t, "n")
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" = valid
	}{
		{"full", Config{Dir: "d", RaftAddr: "127.0.0.1:0", TLS: ca.nodeTLS(t, "n")}, ""},
		{"GetCertificate and RootCAs", Config{Dir: "d", RaftAddr: "127.0.0.1:0", TLS: &tls.Config{
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }, RootCAs: ca.pool}}, ""},
		{"in-memory transport ignores TLS", Config{Dir: "d", TLS: &tls.Config{}}, ""},
		{"no certificate", Config{Dir: "d", RaftAddr: "127.0.0.1:0", TLS: &tls.Config{RootCAs: ca.pool}}, "certificate"},
		{"no CA", Config{Dir: "d", RaftAddr: "127.0.0.1:0", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}, "CA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate = %v, want an error mentioning %q", err, tc.wantErr)
			}
		})
	}
}

// expectRefused checks that the server ends a connection: a read returns
// an error (EOF or a TLS alert) within the test's patience.
func expectRefused(t *testing.T, what string, c net.Conn) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("%s: the server kept the connection open", what)
	}
}

func TestStoreTLSSingleVoter(t *testing.T) {
	ctx := waitCtx(t)
	ca := newTestCA(t, "cluster CA")
	dir := t.TempDir()
	cfg := Config{NodeID: 1, Dir: dir, RaftAddr: "127.0.0.1:0", TLS: ca.nodeTLS(t, "node 1")}
	s := openReady(t, cfg)
	if err := s.CreateTopic(ctx, testTopic("t", 1)); err != nil {
		t.Fatal(err)
	}
	addr := string(s.trans.LocalAddr())

	// A client that does not speak TLS gets its connection closed.
	plain, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.Write([]byte("\x00\x01 this is not a TLS client hello\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	expectRefused(t, "plain TCP client", plain)
	// One that connects and says nothing occupies only its own connection
	// (until the handshake timeout or Close).
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	// TLS clients without a certificate of the cluster CA are refused.
	other := newTestCA(t, "someone else's CA")
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"no client certificate", &tls.Config{RootCAs: ca.pool}},
		{"certificate of another CA", &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{other.issue(t, "intruder")}}},
	} {
		c, err := tls.Dial("tcp", addr, tc.cfg)
		if err != nil {
			continue // refused during the handshake already (TLS 1.2)
		}
		expectRefused(t, tc.name, c)
		_ = c.Close()
	}
	// A client with the cluster's certificate completes the handshake.
	good, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, Certificates: cfg.TLS.Certificates})
	if err != nil {
		t.Fatalf("handshake with a cluster certificate: %v", err)
	}
	if st := good.ConnectionState(); st.Version < tls.VersionTLS12 {
		t.Errorf("negotiated TLS version %x", st.Version)
	}
	_ = good.Close()

	// The store still works.
	if err := s.CreateACLs(ctx, []ACL{ACL(aliceReadsOrders)}); err != nil {
		t.Fatalf("write after the refused clients: %v", err)
	}
	// Close does not wait for the idle client.
	mustClose(t, s)

	s = openReady(t, cfg)
	if _, ok := s.Topic("t"); !ok || len(s.ACLs()) != 1 {
		t.Error("state lost across a TLS restart")
	}
	mustClose(t, s)
}

func TestRaftTLSDialRejectsUntrustedServer(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	other := newTestCA(t, "impostor CA")
	srvServer, srvClient := raftTLSConfigs(other.nodeTLS(t, "impostor"))
	impostor, err := listenTCP("127.0.0.1:0", nil, srvServer, srvClient)
	if err != nil {
		t.Fatal(err)
	}
	defer impostor.Close()
	accepted := make(chan error, 1)
	go func() {
		c, err := impostor.Accept()
		if err != nil {
			accepted <- err
			return
		}
		defer c.Close()
		_, err = c.Read(make([]byte, 1)) // runs the server handshake
		accepted <- err
	}()

	cliServer, cliClient := raftTLSConfigs(ca.nodeTLS(t, "node 1"))
	node, err := listenTCP("127.0.0.1:0", nil, cliServer, cliClient)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	c, err := node.Dial(raft.ServerAddress(impostor.Addr().String()), 5*time.Second)
	if err == nil {
		_ = c.Close()
		t.Fatal("dialed a peer whose certificate the cluster CA did not sign")
	}
	var unknownCA x509.UnknownAuthorityError
	if !errors.As(err, &unknownCA) {
		t.Errorf("dial error %v, want an unknown authority error", err)
	}
	if err := <-accepted; err == nil {
		t.Error("the impostor's handshake succeeded")
	}
}

func TestStoreTLSThreeVoters(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-voter election takes a few seconds")
	}
	ctx := waitCtx(t)
	ca := newTestCA(t, "cluster CA")
	addrs := freeAddrs(t, 3)
	voters := []Voter{{ID: 1, Addr: addrs[0]}, {ID: 2, Addr: addrs[1]}, {ID: 3, Addr: addrs[2]}}
	fast := func(rc *raft.Config) {
		rc.HeartbeatTimeout = 600 * time.Millisecond
		rc.ElectionTimeout = 600 * time.Millisecond
		rc.LeaderLeaseTimeout = 300 * time.Millisecond
	}
	stores := make([]*Store, 3)
	for i, v := range voters {
		s, err := Open(Config{NodeID: v.ID, Dir: t.TempDir(), RaftAddr: v.Addr, Voters: voters, Logger: testLogger(t), tune: fast,
			TLS: ca.nodeTLS(t, v.Addr)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		stores[i] = s
	}
	for _, s := range stores {
		if err := s.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	creds := []ScramCredential{ScramCredential(cred("alice", 2, 4096))}
	// With timeouts this short, a loaded machine may move leadership
	// mid-write; the upsert is idempotent, so retry on the current leader.
	for written := false; !written; {
		for _, s := range stores {
			if s.raft.State() != raft.Leader {
				continue
			}
			err := s.AlterScramCredentials(ctx, creds, nil)
			if err == nil {
				written = true
				break
			}
			if !errors.Is(err, ErrNotLeader) {
				t.Fatal(err)
			}
		}
		if !written {
			select {
			case <-ctx.Done():
				t.Fatal("no leader accepted the write")
			case <-time.After(10 * time.Millisecond): // an election is under way
			}
		}
	}
	// Replication over mutual TLS: every voter applies it.
	for _, s := range stores {
		for {
			watch := s.Watch()
			if got := s.ScramCredentials(); reflect.DeepEqual(got, creds) {
				break
			}
			select {
			case <-watch:
			case <-ctx.Done():
				t.Fatalf("node %d never saw the credential", s.cfg.NodeID)
			}
		}
	}
	for _, s := range stores {
		mustClose(t, s)
	}
}
