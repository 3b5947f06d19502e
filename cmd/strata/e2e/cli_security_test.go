package e2e

// The admin CLI against a secured broker: over SASL_SSL as the super
// user it manages SCRAM users (who then log in with franz-go and with the
// CLI itself), ACLs and quotas; over an mTLS listener it authenticates
// with a client certificate; bad credentials and certificates exit 1 with
// one clear line, and flag mistakes exit 2 before anything is dialled.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// cliSec is one way of running the CLI against a secured broker: the
// environment and the flags of a connection.
type cliSec struct {
	env  []string
	args []string
}

// with returns a copy with more environment variables.
func (c cliSec) with(env ...string) cliSec {
	return cliSec{env: append(append([]string{}, c.env...), env...), args: c.args}
}

// runStrataStdin is runStrata with standard input.
func runStrataStdin(t *testing.T, env []string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	requireBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, strataBin, args...)
	cmd.Env = append(brokerEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("strata %v still running after 15 s; stderr:\n%s", args, stderr.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// run runs the CLI and returns its exit code and output.
func (c cliSec) run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return runStrataStdin(t, c.env, stdin, append(append([]string{}, args...), c.args...)...)
}

// ok runs the CLI and fails unless it exits 0.
func (c cliSec) ok(t *testing.T, args ...string) string {
	t.Helper()
	return c.okIn(t, "", args...)
}

func (c cliSec) okIn(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, stdout, stderr := c.run(t, stdin, args...)
	if code != 0 {
		t.Fatalf("strata %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// json runs the CLI with --output json and decodes its output into into.
func (c cliSec) json(t *testing.T, into any, args ...string) {
	t.Helper()
	out := c.ok(t, append(args, "--output", "json")...)
	reflect.ValueOf(into).Elem().SetZero()
	if err := json.Unmarshal([]byte(out), into); err != nil {
		t.Fatalf("strata %s --output json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// fails runs the CLI, which must exit with code and print exactly one
// line on stderr that names the command and contains every want.
func (c cliSec) fails(t *testing.T, code int, wants []string, args ...string) string {
	t.Helper()
	got, stdout, stderr := c.run(t, "", args...)
	name := "strata " + args[0] + " " + args[1] + ": "
	first, _, _ := strings.Cut(stderr, "\n")
	ok := got == code && strings.HasPrefix(first, name)
	for _, w := range wants {
		ok = ok && strings.Contains(first, w)
	}
	if code == 1 && strings.Count(stderr, "\n") != 1 {
		ok = false
	}
	if !ok {
		t.Errorf("strata %s: exit %d, want %d with one line %q...%q on stderr\nstdout:\n%s\nstderr:\n%s",
			strings.Join(args, " "), got, code, name, wants, stdout, stderr)
	}
	return stderr
}

type cliCred struct {
	User       string
	Mechanism  string
	Iterations int32
}

type cliACL struct {
	ResourceType string `json:"resource_type"`
	ResourceName string `json:"resource_name"`
	PatternType  string `json:"pattern_type"`
	Principal    string
	Host         string
	Operation    string
	Permission   string
}

type cliQuota struct {
	Entity []struct {
		Type    string
		Name    string
		Default bool
	}
	Values map[string]float64
}

func TestCLISecurity(t *testing.T) {
	t.Parallel()
	pki, jwks := newPKI(t), newJWKS(t)
	addrs := secAddrs{Plain: freeAddr(t), SSL: freeAddr(t), SASLPlain: freeAddr(t), SASLSSL: freeAddr(t)}
	s := startSecBroker(t, addrs, pki, jwks,
		// ssl.client.auth applies to the SSL listener only: SASL_SSL
		// clients need no certificate.
		"--set", "ssl.client.auth=required",
		"--set", "ssl.principal.mapping.rules="+secMappingRules,
		"--set", "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
		"--set", "sasl.plain.users=admin:admin-secret",
		"--set", "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"--set", "super.users=User:admin;User:cli-ops",
	)
	// The super user over SASL_SSL, the password in the environment.
	admin := cliSec{
		env:  []string{"STRATA_BOOTSTRAP=" + addrs.SASLSSL, "STRATA_SASL_PASSWORD=admin-secret"},
		args: []string{"--tls", "--tls-ca", pki.CAFile, "--sasl-mechanism", "PLAIN", "--sasl-user", "admin", "--timeout", "10s"},
	}

	t.Run("users", func(t *testing.T) { cliSecUsers(t, s, admin) })
	t.Run("acls", func(t *testing.T) { cliSecACLs(t, s, admin) })
	t.Run("quotas", func(t *testing.T) { cliSecQuotas(t, s, admin) })
	t.Run("wrong password", func(t *testing.T) { cliSecWrongPassword(t, s, admin) })
	t.Run("mTLS", func(t *testing.T) { cliSecMTLS(t, s) })
	t.Run("usage errors", func(t *testing.T) { cliSecUsage(t, s, admin) })
}

// cliSecUsers: SCRAM credentials made by the CLI let franz-go and the CLI
// itself log in; list shows mechanisms and iterations; delete removes one
// mechanism and that login stops working.
func cliSecUsers(t *testing.T, s *secBroker, admin cliSec) {
	ctx := testContext(t, 60*time.Second)
	// The password from standard input, then from the environment.
	out := admin.okIn(t, "carol-256-secret\n", "users", "set", "carol", "--mechanism", "SCRAM-SHA-256", "--iterations", "4096")
	mustContain(t, "users set", out, "set SCRAM-SHA-256 credential of user carol (4096 iterations)")
	var change struct{ Action, User, Mechanism string }
	admin.with("STRATA_USER_PASSWORD=carol-512-secret").json(t, &change, "users", "set", "carol", "--mechanism", "scram-sha-512")
	if change.Action != "set" || change.User != "carol" || change.Mechanism != "SCRAM-SHA-512" {
		t.Errorf("users set --output json: %+v", change)
	}

	out = admin.ok(t, "users", "list")
	mustContain(t, "users list", out, "USER   MECHANISM      ITERATIONS\n",
		"carol  SCRAM-SHA-256  4096\n", "carol  SCRAM-SHA-512  8192\n")
	var creds struct{ Credentials []cliCred }
	admin.json(t, &creds, "users", "list", "carol")
	want := []cliCred{{"carol", "SCRAM-SHA-256", 4096}, {"carol", "SCRAM-SHA-512", 8192}}
	if !reflect.DeepEqual(creds.Credentials, want) {
		t.Errorf("users list carol --output json: %+v, want %+v", creds.Credentials, want)
	}

	// franz-go logs in with both.
	for mech, pass := range map[string]string{"SCRAM-SHA-256": "carol-256-secret", "SCRAM-SHA-512": "carol-512-secret"} {
		waitUpTo(ctx, t, 10*time.Second, "carol to log in with "+mech, func() (bool, string) {
			err := firstRequestErr(ctx, t, kgoAt(s.addrs.SASLSSL, tlsConfig(s.pki.caPool, nil), scramMech(mech, "carol", pass)))
			return err == nil, fmt.Sprint(err)
		})
	}

	// So does the CLI, and what carol may do is what her ACLs say: she
	// may not describe credentials until she has DESCRIBE on the cluster.
	carol := cliSec{
		env:  []string{"STRATA_BOOTSTRAP=" + s.addrs.SASLSSL, "STRATA_SASL_PASSWORD=carol-512-secret"},
		args: []string{"--tls", "--tls-ca", s.pki.CAFile, "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "carol", "--timeout", "10s"},
	}
	carol.fails(t, 1, []string{"CLUSTER_AUTHORIZATION_FAILED"}, "users", "list")
	admin.ok(t, "acls", "create", "--principal", "User:carol", "--operation", "describe", "--cluster")
	mustContain(t, "users list as carol", carol.ok(t, "users", "list"), "carol  SCRAM-SHA-512  8192")

	out = admin.ok(t, "users", "delete", "carol", "--mechanism", "SCRAM-SHA-512")
	mustContain(t, "users delete", out, "deleted SCRAM-SHA-512 credential of user carol")
	admin.json(t, &creds, "users", "list")
	if !reflect.DeepEqual(creds.Credentials, want[:1]) {
		t.Errorf("users list after delete: %+v, want %+v", creds.Credentials, want[:1])
	}
	err := firstRequestErr(ctx, t, kgoAt(s.addrs.SASLSSL, tlsConfig(s.pki.caPool, nil), scramMech("SCRAM-SHA-512", "carol", "carol-512-secret")))
	if !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("SCRAM-SHA-512 login after its credential was deleted: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	admin.fails(t, 1, []string{"RESOURCE_NOT_FOUND"}, "users", "delete", "carol", "--mechanism", "SCRAM-SHA-512")
	admin.fails(t, 1, []string{"carol2"}, "users", "list", "carol2")

	// A password never comes from a flag, and an empty one is refused
	// before anything is sent.
	admin.fails(t, 2, []string{"unknown flag: --password"}, "users", "set", "dave", "--mechanism", "SCRAM-SHA-256", "--password", "x")
	admin.fails(t, 2, []string{"no password", "STRATA_USER_PASSWORD"}, "users", "set", "dave", "--mechanism", "SCRAM-SHA-256")
	admin.fails(t, 2, []string{"--iterations 100"}, "users", "set", "dave", "--mechanism", "SCRAM-SHA-256", "--iterations", "100")
}

// cliSecACLs: create, list (table, JSON, filters) and delete, checked
// against the broker with kadm.
func cliSecACLs(t *testing.T, s *secBroker, admin cliSec) {
	ctx := testContext(t, 60*time.Second)
	out := admin.ok(t, "acls", "create", "--principal", "User:alice", "--operation", "read,write", "--topic", "cli-orders")
	mustContain(t, "acls create", out, "created 2 ACL(s):",
		"RESOURCE-TYPE  NAME        PATTERN  PRINCIPAL   HOST  OPERATION  PERMISSION",
		"TOPIC          cli-orders  LITERAL  User:alice  *     READ       ALLOW",
		"TOPIC          cli-orders  LITERAL  User:alice  *     WRITE      ALLOW")
	var change struct {
		Action string
		ACLs   []cliACL
	}
	admin.json(t, &change, "acls", "create", "--principal", "User:alice", "--operation", "READ", "--group", "cli-",
		"--prefixed", "--deny", "--host", "10.0.0.1")
	wantDeny := cliACL{"GROUP", "cli-", "PREFIXED", "User:alice", "10.0.0.1", "READ", "DENY"}
	if change.Action != "created" || len(change.ACLs) != 1 || change.ACLs[0] != wantDeny {
		t.Errorf("acls create --output json: %+v", change)
	}

	// The broker has them.
	described, err := kadm.NewClient(newKgo(t, kgoAt(s.addrs.SASLPlain, nil, plainMech("admin", "admin-secret")))).
		DescribeACLs(ctx, kadm.NewACLs().AnyResource().Allow("User:alice").AllowHosts().Deny("User:alice").DenyHosts().
			Operations().ResourcePatternType(kadm.ACLPatternAny))
	if err != nil {
		t.Fatalf("DescribeACLs: %v", err)
	}
	n := 0
	for _, r := range described {
		n += len(r.Described)
	}
	if n != 3 {
		t.Errorf("the broker has %d ACLs of User:alice, want 3: %+v", n, described)
	}

	var list struct{ ACLs []cliACL }
	admin.json(t, &list, "acls", "list", "--principal", "User:alice")
	if len(list.ACLs) != 3 || list.ACLs[0] != wantDeny { // GROUP sorts before TOPIC
		t.Errorf("acls list --principal User:alice: %+v", list.ACLs)
	}
	admin.json(t, &list, "acls", "list", "--topic", "cli-orders", "--operation", "write")
	if len(list.ACLs) != 1 || list.ACLs[0].Operation != "WRITE" || list.ACLs[0].ResourceName != "cli-orders" {
		t.Errorf("acls list --topic cli-orders --operation write: %+v", list.ACLs)
	}
	admin.json(t, &list, "acls", "list", "--deny")
	if len(list.ACLs) != 1 || list.ACLs[0] != wantDeny {
		t.Errorf("acls list --deny: %+v", list.ACLs)
	}
	// match: every entry that applies to the group cli-app, through the
	// prefix cli-.
	admin.json(t, &list, "acls", "list", "--group", "cli-app", "--pattern", "match")
	if len(list.ACLs) != 1 || list.ACLs[0] != wantDeny {
		t.Errorf("acls list --group cli-app --pattern match: %+v", list.ACLs)
	}
	out = admin.ok(t, "acls", "list", "--principal", "User:alice")
	mustContain(t, "acls list", out, "GROUP          cli-        PREFIXED  User:alice  10.0.0.1  READ       DENY")

	admin.fails(t, 2, []string{"refusing to delete every ACL"}, "acls", "delete")
	out = admin.ok(t, "acls", "delete", "--principal", "User:alice", "--topic", "cli-orders")
	mustContain(t, "acls delete", out, "deleted 2 ACL(s):", "User:alice  *     READ       ALLOW", "User:alice  *     WRITE      ALLOW")
	admin.json(t, &change, "acls", "delete", "--principal", "User:alice")
	if change.Action != "deleted" || len(change.ACLs) != 1 || change.ACLs[0] != wantDeny {
		t.Errorf("acls delete --output json: %+v", change)
	}
	mustContain(t, "acls delete of nothing", admin.ok(t, "acls", "delete", "--principal", "User:alice"), "no ACL matched: nothing deleted")
	admin.json(t, &list, "acls", "list", "--principal", "User:alice")
	if len(list.ACLs) != 0 {
		t.Errorf("acls list after delete: %+v", list.ACLs)
	}

	admin.fails(t, 2, []string{`--operation "fly"`}, "acls", "create", "--principal", "User:alice", "--operation", "fly", "--topic", "t")
	admin.fails(t, 2, []string{"name a resource"}, "acls", "create", "--principal", "User:alice", "--operation", "read")
	admin.fails(t, 2, []string{"--topic and --group"}, "acls", "list", "--topic", "t", "--group", "g")
}

// cliSecQuotas: set, list and remove for a user, a default and an ip
// entity, checked against the broker with kadm; the broker's refusals
// reach the operator.
func cliSecQuotas(t *testing.T, s *secBroker, admin cliSec) {
	ctx := testContext(t, 60*time.Second)
	out := admin.ok(t, "quotas", "set", "--user", "bob", "producer_byte_rate=1048576", "consumer_byte_rate=2097152")
	mustContain(t, "quotas set", out, "set quotas of user=bob", "  consumer_byte_rate=2097152", "  producer_byte_rate=1048576")
	admin.ok(t, "quotas", "set", "--user", "bob", "--client-default", "request_percentage=12.5")
	admin.ok(t, "quotas", "set", "--user-default", "producer_byte_rate=524288")
	admin.ok(t, "quotas", "set", "--ip", "10.0.0.1", "connection_creation_rate=10")

	bob := "bob"
	desc, err := kadm.NewClient(newKgo(t, kgoAt(s.addrs.SASLPlain, nil, plainMech("admin", "admin-secret")))).
		DescribeClientQuotas(ctx, true, []kadm.DescribeClientQuotaComponent{{Type: "user", MatchName: &bob}})
	if err != nil || len(desc) != 1 || len(desc[0].Values) != 2 {
		t.Errorf("DescribeClientQuotas user=bob (strict): %+v, %v", desc, err)
	}

	out = admin.ok(t, "quotas", "list")
	mustContain(t, "quotas list", out,
		"ENTITY                        KEY                       VALUE\n",
		"ip=10.0.0.1                   connection_creation_rate  10\n",
		"user=<default>                producer_byte_rate        524288\n",
		"user=bob                      consumer_byte_rate        2097152\n",
		"user=bob                      producer_byte_rate        1048576\n",
		"user=bob,client-id=<default>  request_percentage        12.5\n")
	var list struct{ Quotas []cliQuota }
	admin.json(t, &list, "quotas", "list", "--user", "bob")
	if len(list.Quotas) != 2 || list.Quotas[0].Values["producer_byte_rate"] != 1048576 ||
		list.Quotas[1].Values["request_percentage"] != 12.5 || !list.Quotas[1].Entity[1].Default {
		t.Errorf("quotas list --user bob: %+v", list.Quotas)
	}
	admin.json(t, &list, "quotas", "list", "--user", "bob", "--strict")
	if len(list.Quotas) != 1 || len(list.Quotas[0].Entity) != 1 || list.Quotas[0].Entity[0].Name != "bob" {
		t.Errorf("quotas list --user bob --strict: %+v", list.Quotas)
	}
	admin.json(t, &list, "quotas", "list", "--ip-default")
	if len(list.Quotas) != 0 {
		t.Errorf("quotas list --ip-default: %+v", list.Quotas)
	}

	out = admin.ok(t, "quotas", "remove", "--user", "bob", "producer_byte_rate")
	mustContain(t, "quotas remove", out, "removed quotas of user=bob", "  producer_byte_rate")
	admin.json(t, &list, "quotas", "list", "--user", "bob", "--strict")
	if len(list.Quotas) != 1 || len(list.Quotas[0].Values) != 1 || list.Quotas[0].Values["consumer_byte_rate"] != 2097152 {
		t.Errorf("quotas list after remove: %+v", list.Quotas)
	}
	admin.ok(t, "quotas", "remove", "--user", "bob", "consumer_byte_rate")
	admin.ok(t, "quotas", "remove", "--user", "bob", "--client-default", "request_percentage")
	admin.ok(t, "quotas", "remove", "--user-default", "producer_byte_rate")
	admin.ok(t, "quotas", "remove", "--ip", "10.0.0.1", "connection_creation_rate")
	admin.json(t, &list, "quotas", "list")
	if len(list.Quotas) != 0 {
		t.Errorf("quotas list after removing everything: %+v", list.Quotas)
	}

	admin.fails(t, 1, []string{"INVALID_REQUEST", "no_such_rate"}, "quotas", "set", "--user", "bob", "no_such_rate=1")
	admin.fails(t, 1, []string{"INVALID_REQUEST", "greater than 0"}, "quotas", "set", "--user", "bob", "producer_byte_rate=-5")
	admin.fails(t, 2, []string{"name the entity"}, "quotas", "set", "producer_byte_rate=1")
	admin.fails(t, 2, []string{"--ip cannot be combined"}, "quotas", "set", "--ip", "10.0.0.1", "--user", "bob", "connection_creation_rate=1")
	admin.fails(t, 2, []string{`"producer_byte_rate=fast": the value must be a number`}, "quotas", "set", "--user", "bob", "producer_byte_rate=fast")
}

// cliSecWrongPassword: a wrong password or user exits 1 at once with one
// line that says authentication failed and never shows the password.
func cliSecWrongPassword(t *testing.T, s *secBroker, admin cliSec) {
	for _, c := range []struct {
		name string
		cli  cliSec
	}{
		{"PLAIN", admin.with("STRATA_SASL_PASSWORD=not-the-password")},
		{"SCRAM-SHA-256", cliSec{
			env:  []string{"STRATA_BOOTSTRAP=" + s.addrs.SASLSSL, "STRATA_SASL_PASSWORD=not-the-password"},
			args: []string{"--tls", "--tls-ca", s.pki.CAFile, "--sasl-mechanism", "SCRAM-SHA-256", "--sasl-user", "mallory", "--timeout", "10s"},
		}},
		{"SASL_PLAINTEXT", cliSec{
			env:  []string{"STRATA_SASL_PASSWORD=not-the-password"},
			args: []string{"--bootstrap", s.addrs.SASLPlain, "--sasl-mechanism", "PLAIN", "--sasl-user", "admin", "--timeout", "10s"},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			stderr := c.cli.fails(t, 1, []string{"authentication failed", "SASL_AUTHENTICATION_FAILED"}, "topics", "list")
			if strings.Contains(stderr, "not-the-password") {
				t.Errorf("stderr shows the password:\n%s", stderr)
			}
			if d := time.Since(start); d > 8*time.Second {
				t.Errorf("the CLI took %v to report a wrong password", d)
			}
		})
	}
}

// cliSecMTLS: the CLI with a client certificate on the listener that
// requires one, as separate files and as one file; no certificate, or a
// CA the CLI does not trust, exit 1 naming the TLS problem.
func cliSecMTLS(t *testing.T, s *secBroker) {
	ops := s.pki.client(t, "cli-ops", false) // User:cli-ops, a super user
	combined := filepath.Join(t.TempDir(), "cli-ops.pem")
	certPEM, err := os.ReadFile(ops.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(ops.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(combined, append(certPEM, keyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--bootstrap", s.addrs.SSL, "--tls", "--tls-ca", s.pki.CAFile, "--timeout", "10s"}

	sep := cliSec{args: append(append([]string{}, base...), "--tls-cert", ops.CertFile, "--tls-key", ops.KeyFile)}
	out := sep.ok(t, "cluster", "describe")
	mustContain(t, "cluster describe over mTLS", out, "Cluster ID: ", s.addrs.SSL[strings.LastIndexByte(s.addrs.SSL, ':')+1:])
	sep.ok(t, "topics", "create", "cli-mtls", "--partitions", "1")

	// The same from the environment, key and certificate in one file.
	env := cliSec{env: []string{"STRATA_BOOTSTRAP=" + s.addrs.SSL, "STRATA_TLS=true", "STRATA_TLS_CA=" + s.pki.CAFile,
		"STRATA_TLS_CERT=" + combined}, args: []string{"--timeout", "10s"}}
	mustContain(t, "topics list over mTLS", env.ok(t, "topics", "list"), "cli-mtls")

	noCert := cliSec{args: base}
	noCert.fails(t, 1, []string{"TLS"}, "topics", "list")
	untrusting := cliSec{args: []string{"--bootstrap", s.addrs.SSL, "--tls", "--tls-ca", s.pki.UntrustedCA,
		"--tls-cert", ops.CertFile, "--tls-key", ops.KeyFile, "--timeout", "10s"}}
	untrusting.fails(t, 1, []string{"not signed by a trusted CA", "--tls-ca"}, "topics", "list")
	// Plain Kafka protocol at a TLS client: the CLI says so.
	plainAtTLS := cliSec{args: []string{"--bootstrap", s.addrs.Plain, "--tls", "--tls-ca", s.pki.CAFile, "--timeout", "10s"}}
	plainAtTLS.fails(t, 1, []string{"does not speak TLS"}, "topics", "list")
}

// cliSecUsage: connection flag mistakes exit 2 naming the flag (or the
// variable) without dialling.
func cliSecUsage(t *testing.T, s *secBroker, admin cliSec) {
	none := cliSec{env: []string{"STRATA_BOOTSTRAP=" + s.addrs.SASLSSL}}
	none.fails(t, 2, []string{"--tls-ca needs --tls"}, "topics", "list", "--tls-ca", s.pki.CAFile)
	none.fails(t, 2, []string{"--sasl-user needs --sasl-mechanism"}, "topics", "list", "--sasl-user", "admin")
	none.fails(t, 2, []string{"needs a password", "STRATA_SASL_PASSWORD"}, "topics", "list", "--sasl-mechanism", "PLAIN", "--sasl-user", "admin")
	none.fails(t, 2, []string{`--sasl-mechanism "GSSAPI"`}, "topics", "list", "--sasl-mechanism", "GSSAPI", "--sasl-user", "admin", "--sasl-password", "x")
	none.fails(t, 2, []string{"--tls-cert", "no-such.pem"}, "topics", "list", "--tls", "--tls-cert", "no-such.pem")
	none.with("STRATA_TLS_CA="+s.pki.CAFile).fails(t, 2, []string{"STRATA_TLS_CA needs --tls"}, "topics", "list")
	// The password flag works too (documented as visible in ps).
	mustContain(t, "--sasl-password", admin.ok(t, "cluster", "describe", "--sasl-password", "admin-secret"), "Cluster ID: ")
}
