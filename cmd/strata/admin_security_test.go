package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// testCerts writes a self-signed CA, a client certificate and its key
// (separately and in one file) to a temp dir.
type testCerts struct {
	CA, Cert, Key, Combined, Garbage string
	leaf                             []byte // DER of the client certificate
}

func newTestCerts(t *testing.T) testCerts {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "cli"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	write := func(name string, data ...[]byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, bytes.Join(data, nil), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return testCerts{
		CA:       write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		Cert:     write("cert.pem", certPEM),
		Key:      write("key.pem", keyPEM),
		Combined: write("combined.pem", certPEM, keyPEM),
		Garbage:  write("garbage.pem", []byte("not a certificate\n")),
		leaf:     leafDER,
	}
}

// resolveConn parses args as connection flags and resolves them against
// env.
func resolveConn(args []string, env map[string]string) (connConfig, error) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	c := addConnFlags(fs)
	if err := fs.Parse(args); err != nil {
		return connConfig{}, err
	}
	return c.resolve(fs, func(k string) string { return env[k] })
}

func TestConnFlags(t *testing.T) {
	certs := newTestCerts(t)
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // "" = valid
		tls     bool
		mech    string
		user    string
	}{
		{name: "nothing: plaintext, no SASL"},
		{name: "tls with system roots", args: []string{"--tls"}, tls: true},
		{name: "tls from env", env: map[string]string{envTLS: "true", envTLSCA: certs.CA}, tls: true},
		{name: "flag turns env tls off", args: []string{"--tls=false"}, env: map[string]string{envTLS: "1"}},
		{name: "bad STRATA_TLS", env: map[string]string{envTLS: "yes please"}, wantErr: `STRATA_TLS="yes please": want true or false`},
		{name: "ca without tls", args: []string{"--tls-ca", certs.CA}, wantErr: "--tls-ca needs --tls (or STRATA_TLS=true)"},
		{name: "env ca without tls", env: map[string]string{envTLSCA: certs.CA}, wantErr: "STRATA_TLS_CA needs --tls"},
		{name: "cert without tls", args: []string{"--tls-cert", certs.Cert}, wantErr: "--tls-cert needs --tls"},
		{name: "server name without tls", args: []string{"--tls-server-name", "b"}, wantErr: "--tls-server-name needs --tls"},
		{name: "key without cert", args: []string{"--tls", "--tls-key", certs.Key}, wantErr: "--tls-key needs --tls-cert"},
		{name: "empty ca", args: []string{"--tls", "--tls-ca", ""}, wantErr: "--tls-ca is empty"},
		{name: "missing ca file", args: []string{"--tls", "--tls-ca", "/no/such/ca.pem"}, wantErr: "--tls-ca: open /no/such/ca.pem"},
		{name: "ca without certificates", args: []string{"--tls", "--tls-ca", certs.Garbage}, wantErr: "no PEM certificate in it"},
		{name: "cert and key", args: []string{"--tls", "--tls-ca", certs.CA, "--tls-cert", certs.Cert, "--tls-key", certs.Key}, tls: true},
		{name: "key inside the cert file", args: []string{"--tls", "--tls-cert", certs.Combined}, tls: true},
		{name: "cert file without a key", args: []string{"--tls", "--tls-cert", certs.Cert}, wantErr: "--tls-cert " + certs.Cert},
		{name: "key that is not a key", args: []string{"--tls", "--tls-cert", certs.Cert, "--tls-key", certs.Garbage}, wantErr: "--tls-key " + certs.Garbage},
		{name: "PLAIN", args: []string{"--sasl-mechanism", "PLAIN", "--sasl-user", "admin", "--sasl-password", "pw"}, mech: "PLAIN", user: "admin"},
		{name: "SCRAM from env", env: map[string]string{envSASLMechanism: "scram-sha-512", envSASLUser: "u", envSASLPassword: "pw"}, mech: "SCRAM-SHA-512", user: "u"},
		{name: "SCRAM over TLS", args: []string{"--tls", "--sasl-mechanism", "SCRAM-SHA-256", "--sasl-user", "u"},
			env: map[string]string{envSASLPassword: "pw"}, tls: true, mech: "SCRAM-SHA-256", user: "u"},
		{name: "flag user over env user", args: []string{"--sasl-mechanism", "PLAIN", "--sasl-user", "flag"},
			env: map[string]string{envSASLUser: "env", envSASLPassword: "pw"}, mech: "PLAIN", user: "flag"},
		{name: "unknown mechanism", args: []string{"--sasl-mechanism", "GSSAPI", "--sasl-user", "u", "--sasl-password", "p"},
			wantErr: `--sasl-mechanism "GSSAPI": want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`},
		{name: "OAUTHBEARER is not for the CLI", env: map[string]string{envSASLMechanism: "OAUTHBEARER", envSASLUser: "u", envSASLPassword: "p"},
			wantErr: `STRATA_SASL_MECHANISM "OAUTHBEARER"`},
		{name: "mechanism without user", args: []string{"--sasl-mechanism", "PLAIN", "--sasl-password", "p"}, wantErr: "--sasl-mechanism PLAIN needs --sasl-user"},
		{name: "mechanism without password", args: []string{"--sasl-mechanism", "PLAIN", "--sasl-user", "u"},
			wantErr: "needs a password: set STRATA_SASL_PASSWORD (or --sasl-password)"},
		{name: "user without mechanism", args: []string{"--sasl-user", "u"}, wantErr: "--sasl-user needs --sasl-mechanism"},
		{name: "password without mechanism", args: []string{"--sasl-password", "p"}, wantErr: "--sasl-password needs --sasl-mechanism"},
		{name: "env password without mechanism", env: map[string]string{envSASLPassword: "p"}, wantErr: "STRATA_SASL_PASSWORD needs --sasl-mechanism"},
		{name: "empty user", args: []string{"--sasl-mechanism", "PLAIN", "--sasl-user", "", "--sasl-password", "p"}, wantErr: "--sasl-user is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, err := resolveConn(tc.args, tc.env)
			if tc.wantErr != "" {
				if _, ok := errors.AsType[usageError](err); !ok || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a usage error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (cc.tls != nil) != tc.tls || cc.mechanism != tc.mech || cc.user != tc.user || (cc.sasl != nil) != (tc.mech != "") {
				t.Errorf("got tls=%t mechanism=%q user=%q sasl=%v; want tls=%t mechanism=%q user=%q",
					cc.tls != nil, cc.mechanism, cc.user, cc.sasl, tc.tls, tc.mech, tc.user)
			}
			if cc.sasl != nil && cc.sasl.Name() != tc.mech {
				t.Errorf("SASL mechanism %s, want %s", cc.sasl.Name(), tc.mech)
			}
			if want := btoi(cc.tls != nil) + btoi(cc.sasl != nil); len(cc.opts()) != want {
				t.Errorf("%d client options, want %d", len(cc.opts()), want)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestClientTLSConfig(t *testing.T) {
	certs := newTestCerts(t)
	cc, err := resolveConn([]string{"--tls", "--tls-ca", certs.CA, "--tls-cert", certs.Combined, "--tls-server-name", "broker-1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := cc.tls
	if c.MinVersion != tls.VersionTLS12 || c.ServerName != "broker-1" || c.RootCAs == nil {
		t.Errorf("tls config: min version %x, server name %q, roots %v", c.MinVersion, c.ServerName, c.RootCAs)
	}
	// The certificate is sent whatever CAs the broker says it accepts.
	got, err := c.GetClientCertificate(&tls.CertificateRequestInfo{AcceptableCAs: [][]byte{[]byte("some other CA")}})
	if err != nil || len(got.Certificate) != 1 || !bytes.Equal(got.Certificate[0], certs.leaf) {
		t.Errorf("GetClientCertificate = %v, %v; want the client certificate", got, err)
	}

	cc, err = resolveConn([]string{"--tls"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cc.tls.RootCAs != nil || cc.tls.GetClientCertificate != nil {
		t.Error("plain --tls must use the system roots and send no certificate")
	}
}

func TestAdminEnvVarsAreNotServeKeys(t *testing.T) {
	for _, name := range adminEnvVars {
		if k := envIndex[name]; k != nil {
			t.Errorf("%s is both an admin CLI variable and the env of serve's key %s", name, k.Name)
		}
		if !strings.HasPrefix(name, envPrefix) {
			t.Errorf("%s does not start with %s", name, envPrefix)
		}
	}
}

func TestExplainConnErrors(t *testing.T) {
	scram := connConfig{mechanism: "SCRAM-SHA-256", user: "alice"}
	withTLS := connConfig{tls: &tls.Config{}}
	for _, tc := range []struct {
		name string
		cc   connConfig
		err  error
		want string // prefix; "" = unchanged
	}{
		{"wrong password", scram, fmt.Errorf("metadata: %w: bad", kerr.SaslAuthenticationFailed),
			`authentication failed: the broker refused user "alice" with SCRAM-SHA-256 (wrong user name or password?): metadata: SASL_AUTHENTICATION_FAILED`},
		{"mechanism not offered", scram, fmt.Errorf("metadata: %w", kerr.UnsupportedSaslMechanism),
			"authentication failed: the listener does not offer SCRAM-SHA-256"},
		{"not a SASL listener", scram, kerr.IllegalSaslState, "authentication failed: the listener does not take SASL with SCRAM-SHA-256"},
		{"untrusted CA", withTLS, fmt.Errorf("dial: %w", x509.UnknownAuthorityError{}), "TLS: the broker's certificate is not signed by a trusted CA (give its CA with --tls-ca)"},
		{"wrong host", withTLS, x509.HostnameError{Certificate: &x509.Certificate{}, Host: "h"}, "TLS: the broker's certificate is not for the host dialled (see --tls-server-name)"},
		{"plaintext answer to TLS", withTLS, tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, "TLS: the listener does not speak TLS"},
		{"TLS alert", withTLS, &net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}, "TLS: the broker refused the handshake (does it need a client certificate, --tls-cert?)"},
		{"closed after TLS dial", withTLS, &kgo.ErrFirstReadEOF{}, "TLS: the listener closed the connection at once, as one that does not speak TLS does"},
		{"closed, no TLS or SASL", connConfig{}, &kgo.ErrFirstReadEOF{}, "the listener closed the connection at once (does it need --tls or --sasl-mechanism?)"},
		{"closed, SASL without TLS", scram, &kgo.ErrFirstReadEOF{}, "the listener closed the connection at once (does it need --tls?)"},
		{"other errors unchanged", scram, errors.New("metadata: context deadline exceeded"), ""},
		{"local network errors unchanged", withTLS, &net.OpError{Op: "dial", Err: errors.New("connection refused")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.cc.explain(tc.err)
			if !errors.Is(got, tc.err) && got != tc.err {
				t.Errorf("explain lost the error: %v", got)
			}
			want := tc.want
			if want == "" {
				want = tc.err.Error()
			}
			if !strings.HasPrefix(got.Error(), want) {
				t.Errorf("explain = %q, want it to start with %q", got, want)
			}
		})
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine(errors.Join(errors.New("a\n  b"), errors.New("c"))); got != "a; b; c" {
		t.Errorf("oneLine = %q", got)
	}
}

func TestCheckArgs(t *testing.T) {
	fixed := adminCommand{args: []string{"USER"}}
	some := adminCommand{more: "KEY=VALUE", moreMin: 1}
	optional := adminCommand{more: "USER"}
	for _, tc := range []struct {
		c       adminCommand
		n       int
		syn     string
		wantErr string
	}{
		{fixed, 1, "USER", ""},
		{fixed, 2, "USER", "want 1 argument(s) (USER), got 2"},
		{some, 0, "KEY=VALUE...", "want at least 1 argument(s) (KEY=VALUE...), got 0"},
		{some, 3, "KEY=VALUE...", ""},
		{optional, 0, "[USER...]", ""},
		{optional, 5, "[USER...]", ""},
	} {
		if got := tc.c.synopsis(); got != tc.syn {
			t.Errorf("synopsis = %q, want %q", got, tc.syn)
		}
		err := tc.c.checkArgs(tc.n)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
			t.Errorf("%s with %d args: err %v, want %q", tc.syn, tc.n, err, tc.wantErr)
		}
	}
}

func TestParseACLOperations(t *testing.T) {
	ops, err := parseACLOperations([]string{"read", "Describe-Configs", " WRITE", "read", "idempotent_write"}, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []kadm.ACLOperation{kadm.OpRead, kadm.OpDescribeConfigs, kadm.OpWrite, kadm.OpIdempotentWrite}
	if fmt.Sprint(ops) != fmt.Sprint(want) {
		t.Errorf("ops = %v, want %v", ops, want)
	}
	if _, err := parseACLOperations([]string{"any"}, false); err == nil {
		t.Error("ANY must be refused for creating")
	}
	if ops, err := parseACLOperations([]string{"any"}, true); err != nil || len(ops) != 1 || ops[0] != kadm.OpAny {
		t.Errorf("ANY in a filter: %v, %v", ops, err)
	}
	if _, err := parseACLOperations([]string{"fly"}, true); err == nil || !strings.Contains(err.Error(), `--operation "fly": want one of all,read,write,`) {
		t.Errorf("unknown operation: %v", err)
	}
}

func TestQuotaParsing(t *testing.T) {
	vals, err := parseQuotaValues([]string{"producer_byte_rate=1048576", "request_percentage=12.5"})
	if err != nil || vals["producer_byte_rate"] != 1048576 || vals["request_percentage"] != 12.5 || len(vals) != 2 {
		t.Errorf("parseQuotaValues = %v, %v", vals, err)
	}
	for _, bad := range [][]string{{"producer_byte_rate"}, {"=5"}, {"a=fast"}, {"a=1", "a=2"}} {
		if _, err := parseQuotaValues(bad); err == nil {
			t.Errorf("parseQuotaValues(%q): want a usage error", bad)
		}
	}
	keys, err := parseQuotaKeys([]string{"a", "b"})
	if err != nil || strings.Join(keys, ",") != "a,b" {
		t.Errorf("parseQuotaKeys = %v, %v", keys, err)
	}
	for _, bad := range [][]string{{"a=1"}, {""}, {"a", "a"}} {
		if _, err := parseQuotaKeys(bad); err == nil {
			t.Errorf("parseQuotaKeys(%q): want a usage error", bad)
		}
	}

	alice, app := "alice", "app"
	got := fromKadmEntity(kadm.ClientQuotaEntity{{Type: "client-id", Name: &app}, {Type: "user", Name: &alice}})
	if entityString(got) != "user=alice,client-id=app" {
		t.Errorf("entity components out of order: %s", entityString(got))
	}
	back := toKadmEntity([]quotaComponent{{Type: "user", Default: true}, {Type: "client-id", Name: "app"}})
	if back.String() != "{user=<default>, client-id=app}" {
		t.Errorf("toKadmEntity = %s", back)
	}
}

func TestNewUserPassword(t *testing.T) {
	old := adminStdin
	t.Cleanup(func() { adminStdin = old })
	for _, tc := range []struct {
		env, stdin, want string
		wantErr          bool
	}{
		{env: "from-env", stdin: "ignored\n", want: "from-env"},
		{stdin: "s3cret\n", want: "s3cret"},
		{stdin: "s3cret\r\nsecond line\n", want: "s3cret"},
		{stdin: "no newline", want: "no newline"},
		{stdin: " spaces kept \n", want: " spaces kept "},
		{stdin: "", wantErr: true},
		{stdin: "\n", wantErr: true},
	} {
		t.Setenv(envUserPassword, tc.env)
		adminStdin = strings.NewReader(tc.stdin)
		got, err := newUserPassword("u")
		if tc.wantErr {
			if _, ok := errors.AsType[usageError](err); !ok {
				t.Errorf("stdin %q: err %v, want a usage error", tc.stdin, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("env %q stdin %q: %q, %v; want %q", tc.env, tc.stdin, got, err, tc.want)
		}
	}
}

// TestSecurityCommandUsageErrors: mistakes in the security commands' own
// flags exit 2 naming the flag, before any request (the bootstrap address
// has nothing listening, which would be exit 1).
func TestSecurityCommandUsageErrors(t *testing.T) {
	t.Setenv(envBootstrap, closedAddr(t))
	t.Setenv(envUserPassword, "")
	old := adminStdin
	t.Cleanup(func() { adminStdin = old })
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"users", "set", "alice"}, "--mechanism is required"},
		{[]string{"users", "set", "alice", "--mechanism", "MD5"}, `--mechanism "MD5": want SCRAM-SHA-256 or SCRAM-SHA-512`},
		{[]string{"users", "set", "alice", "--mechanism", "SCRAM-SHA-256", "--iterations", "20000"}, "--iterations 20000: want 4096 to 16384"},
		{[]string{"users", "set", "alice", "--mechanism", "SCRAM-SHA-256", "--password", "x"}, "unknown flag: --password"},
		{[]string{"users", "set", "--mechanism", "SCRAM-SHA-256"}, "want 1 argument(s) (USER), got 0"},
		{[]string{"users", "delete", "alice"}, "--mechanism is required"},
		{[]string{"acls", "create", "--operation", "read", "--topic", "t"}, "--principal is required"},
		{[]string{"acls", "create", "--principal", "alice", "--operation", "read", "--topic", "t"}, `--principal "alice": want TYPE:NAME`},
		{[]string{"acls", "create", "--principal", "User:a", "--topic", "t"}, "--operation is required"},
		{[]string{"acls", "create", "--principal", "User:a", "--operation", "any", "--topic", "t"}, `--operation "any"`},
		{[]string{"acls", "create", "--principal", "User:a", "--operation", "read"}, "name a resource"},
		{[]string{"acls", "create", "--principal", "User:a", "--operation", "read", "--topic", "t", "--cluster"}, "--topic and --cluster: give only one of"},
		{[]string{"acls", "create", "--principal", "User:a", "--operation", "read", "--topic", ""}, "--topic needs a name"},
		{[]string{"acls", "create", "--principal", "User:a", "--operation", "read", "--cluster", "--prefixed"}, "--prefixed does not apply to --cluster"},
		{[]string{"acls", "create", "--principal", "User:a", "--operation", "read", "--topic", "t", "--host", ""}, "--host is empty"},
		{[]string{"acls", "list", "--pattern", "fuzzy"}, `--pattern "fuzzy": want any, match, literal or prefixed`},
		{[]string{"acls", "list", "--pattern", "literal", "--prefixed"}, "--prefixed contradicts --pattern literal"},
		{[]string{"acls", "list", "--group", "g", "--transactional-id", "x"}, "--group and --transactional-id: give only one of"},
		{[]string{"acls", "list", "--principal", "nobody"}, `--principal "nobody"`},
		{[]string{"acls", "delete"}, "refusing to delete every ACL: give filter flags (see --help), or --all"},
		{[]string{"acls", "delete", "--all", "--topic", "t"}, "--all deletes every ACL: it takes no filter flags"},
		{[]string{"quotas", "set", "producer_byte_rate=1"}, "name the entity"},
		{[]string{"quotas", "set", "--user", "bob"}, "want at least 1 argument(s) (KEY=VALUE...), got 0"},
		{[]string{"quotas", "set", "--user", "bob", "--user-default", "a=1"}, "give --user or --user-default, not both"},
		{[]string{"quotas", "set", "--client-id", "", "a=1"}, "--client-id needs a name (--client-default is the default entity)"},
		{[]string{"quotas", "set", "--ip-default", "--client-default", "a=1"}, "--ip cannot be combined with --user or --client-id"},
		{[]string{"quotas", "set", "--user", "bob", "producer_byte_rate"}, `"producer_byte_rate": want KEY=VALUE`},
		{[]string{"quotas", "remove", "--user", "bob", "producer_byte_rate=1"}, "quotas remove takes keys only"},
		{[]string{"quotas", "list", "--ip", "10.0.0.1", "--user", "bob"}, "--ip cannot be combined"},
		{[]string{"quotas", "list", "--tls-cert", "c.pem"}, "--tls-cert needs --tls"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			adminStdin = strings.NewReader("")
			var stdout, stderr bytes.Buffer
			code := run(append(tc.args, "--timeout", "2s"), &stdout, &stderr)
			name := "strata " + tc.args[0] + " " + tc.args[1] + ": "
			if code != exitUsage || !strings.HasPrefix(stderr.String(), name) || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, want %d with %q%q on stderr:\n%s", code, exitUsage, name, tc.want, stderr.String())
			}
		})
	}
}

func TestAdminHelpSeparatesFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"acls", "create", "--help"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	own, global, ok := strings.Cut(out, "Global flags:")
	if !ok || !strings.Contains(own, "--principal") || strings.Contains(own, "--sasl-user") ||
		!strings.Contains(global, "--sasl-user") || !strings.Contains(global, "--tls-ca") ||
		!strings.Contains(global, "visible to other users in ps") || strings.Contains(global, "--principal") {
		t.Errorf("acls create --help:\n%s", out)
	}

	stdout.Reset()
	run([]string{"quotas", "--help"}, &stdout, &stderr)
	for _, want := range []string{"set KEY=VALUE...", "remove KEY...", "Connection flags: --tls", "STRATA_SASL_PASSWORD"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("quotas --help lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestUserTables(t *testing.T) {
	r := userListResult{Credentials: []scramCredential{
		{User: "alice", Mechanism: "SCRAM-SHA-256", Iterations: 4096},
		{User: "alice", Mechanism: "SCRAM-SHA-512", Iterations: 8192},
	}}
	checkRender(t, r, []string{
		"USER   MECHANISM      ITERATIONS\n",
		"alice  SCRAM-SHA-256  4096\n",
		"alice  SCRAM-SHA-512  8192\n",
	}, `{"credentials":[{"user":"alice","mechanism":"SCRAM-SHA-256","iterations":4096},{"user":"alice","mechanism":"SCRAM-SHA-512","iterations":8192}]}`)
	checkRender(t, userListResult{Credentials: []scramCredential{}}, []string{"USER  MECHANISM  ITERATIONS\n"}, `{"credentials":[]}`)
	checkRender(t, userChange{Action: "set", User: "bob", Mechanism: "SCRAM-SHA-512", Iterations: 8192},
		[]string{"set SCRAM-SHA-512 credential of user bob (8192 iterations)\n"},
		`{"action":"set","user":"bob","mechanism":"SCRAM-SHA-512","iterations":8192}`)
	checkRender(t, userChange{Action: "deleted", User: "bob", Mechanism: "SCRAM-SHA-256"},
		[]string{"deleted SCRAM-SHA-256 credential of user bob\n"},
		`{"action":"deleted","user":"bob","mechanism":"SCRAM-SHA-256"}`)
}

func TestACLTables(t *testing.T) {
	read := aclBinding{"TOPIC", "orders", "LITERAL", "User:alice", "*", "READ", "ALLOW"}
	deny := aclBinding{"GROUP", "orders-", "PREFIXED", "User:mallory", "10.0.0.1", "ALL", "DENY"}
	acls := sortACLs([]aclBinding{read, deny, read})
	if len(acls) != 2 || acls[0] != deny || acls[1] != read {
		t.Fatalf("sortACLs: %+v", acls)
	}
	checkRender(t, aclListResult{ACLs: acls}, []string{
		"RESOURCE-TYPE  NAME     PATTERN   PRINCIPAL     HOST      OPERATION  PERMISSION\n",
		"GROUP          orders-  PREFIXED  User:mallory  10.0.0.1  ALL        DENY\n",
		"TOPIC          orders   LITERAL   User:alice    *         READ       ALLOW\n",
	}, `{"acls":[{"resource_type":"GROUP","resource_name":"orders-","pattern_type":"PREFIXED","principal":"User:mallory","host":"10.0.0.1","operation":"ALL","permission":"DENY"},`+
		`{"resource_type":"TOPIC","resource_name":"orders","pattern_type":"LITERAL","principal":"User:alice","host":"*","operation":"READ","permission":"ALLOW"}]}`)
	checkRender(t, aclChange{Action: "created", ACLs: []aclBinding{read}}, []string{"created 1 ACL(s):\n", "TOPIC          orders  LITERAL"}, "")
	checkRender(t, aclChange{Action: "deleted", ACLs: []aclBinding{}}, []string{"no ACL matched: nothing deleted\n"}, `{"action":"deleted","acls":[]}`)
	if got := read.String(); got != "ALLOW User:alice READ on TOPIC orders (LITERAL) from host *" {
		t.Errorf("binding string %q", got)
	}
}

func TestQuotaTables(t *testing.T) {
	r := quotaListResult{Quotas: []quotaEntry{
		{Entity: []quotaComponent{{Type: "ip", Name: "10.0.0.1"}}, Values: map[string]float64{"connection_creation_rate": 10}},
		{Entity: []quotaComponent{{Type: "user", Name: "bob"}, {Type: "client-id", Default: true}},
			Values: map[string]float64{"request_percentage": 12.5, "producer_byte_rate": 1048576}},
	}}
	checkRender(t, r, []string{
		"ENTITY                        KEY                       VALUE\n",
		"ip=10.0.0.1                   connection_creation_rate  10\n",
		"user=bob,client-id=<default>  producer_byte_rate        1048576\n",
		"user=bob,client-id=<default>  request_percentage        12.5\n",
	}, `{"quotas":[{"entity":[{"type":"ip","name":"10.0.0.1"}],"values":{"connection_creation_rate":10}},`+
		`{"entity":[{"type":"user","name":"bob"},{"type":"client-id","default":true}],"values":{"producer_byte_rate":1048576,"request_percentage":12.5}}]}`)
	checkRender(t, quotaChange{Action: "set", Entity: []quotaComponent{{Type: "user", Default: true}},
		Set: map[string]float64{"producer_byte_rate": 1048576, "consumer_byte_rate": 2e6}},
		[]string{"set quotas of user=<default>\n  consumer_byte_rate=2000000\n  producer_byte_rate=1048576\n"},
		`{"action":"set","entity":[{"type":"user","default":true}],"set":{"consumer_byte_rate":2000000,"producer_byte_rate":1048576}}`)
	checkRender(t, quotaChange{Action: "removed", Entity: []quotaComponent{{Type: "user", Name: "bob"}}, Removed: []string{"producer_byte_rate"}},
		[]string{"removed quotas of user=bob\n  producer_byte_rate\n"},
		`{"action":"removed","entity":[{"type":"user","name":"bob"}],"removed":["producer_byte_rate"]}`)
}

// checkRender checks that the table holds every one of wantTable and
// that the JSON output is wantJSON (compacted; "" skips it).
func checkRender(t *testing.T, r adminResult, wantTable []string, wantJSON string) {
	t.Helper()
	var buf bytes.Buffer
	if err := writeResult(&buf, r, "table"); err != nil {
		t.Fatal(err)
	}
	for _, w := range wantTable {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("%T table lacks %q:\n%s", r, w, buf.String())
		}
	}
	if wantJSON == "" {
		return
	}
	buf.Reset()
	if err := writeResult(&buf, r, "json"); err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, buf.Bytes()); err != nil {
		t.Fatalf("%T json does not parse: %v\n%s", r, err, buf.String())
	}
	if compact.String() != wantJSON {
		t.Errorf("%T json:\n%s\nwant\n%s", r, compact.String(), wantJSON)
	}
}
