package sasl

import (
	"bytes"
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/sasl/scram"
)

var scramMechs = []string{ScramSHA256, ScramSHA512}

// scramStore is a credential table keyed by user and mechanism, filled the
// way AlterUserScramCredentials would: from a salted password.
type scramStore map[[2]string]Credential

func (s scramStore) add(mech, user, pass string) {
	salt := randomBytes(24)
	s[[2]string{user, mech}] = CredentialFromSalted(mech, salt, SaltPassword(mech, pass, salt, MinIterations), MinIterations)
}

func (s scramStore) lookup(user, mech string) (Credential, bool) {
	c, ok := s[[2]string{user, mech}]
	return c, ok
}

// testScramStore is built once: PBKDF2 dominates the tests' run time. It is
// only read afterwards, so sharing it between tests is safe.
var testScramStore = sync.OnceValue(func() scramStore {
	st := scramStore{}
	for _, m := range scramMechs {
		st.add(m, "alice", "alice-secret")
		st.add(m, "a,b=c", "weird name")
	}
	st.add(ScramSHA256, "only256", "pw-256")
	return st
})

func scramConfig() (*Config, scramStore) {
	st := testScramStore()
	return &Config{Mechanisms: []string{Plain, ScramSHA256, ScramSHA512}, Scram: st.lookup}, st
}

func TestScramWithFranzClient(t *testing.T) {
	tests := []struct {
		name      string
		auth      scram.Auth
		mechs     []string // nil = both
		want      error
		wantSteps int
	}{
		{name: "success", auth: scram.Auth{User: "alice", Pass: "alice-secret"}, wantSteps: 2},
		{name: "escaped user name", auth: scram.Auth{User: "a,b=c", Pass: "weird name"}, wantSteps: 2},
		{name: "authzid equal to user", auth: scram.Auth{Zid: "alice", User: "alice", Pass: "alice-secret"}, wantSteps: 2},
		{name: "wrong password", auth: scram.Auth{User: "alice", Pass: "alice-secreT"}, want: ErrAuthFailed, wantSteps: 2},
		{name: "unknown user takes a full exchange", auth: scram.Auth{User: "mallory", Pass: "x"}, want: ErrAuthFailed, wantSteps: 2},
		{name: "no credential for this mechanism", auth: scram.Auth{User: "only256", Pass: "pw-256"}, mechs: []string{ScramSHA512}, want: ErrAuthFailed, wantSteps: 2},
		{name: "credential for the other mechanism", auth: scram.Auth{User: "only256", Pass: "pw-256"}, mechs: []string{ScramSHA256}, wantSteps: 2},
		{name: "authzid of another user", auth: scram.Auth{Zid: "bob", User: "alice", Pass: "alice-secret"}, want: ErrAuthFailed, wantSteps: 1},
		{name: "delegation token refused", auth: scram.Auth{User: "alice", Pass: "alice-secret", IsToken: true}, want: ErrAuthFailed, wantSteps: 1},
	}
	for _, tt := range tests {
		mechs := tt.mechs
		if mechs == nil {
			mechs = scramMechs
		}
		for _, mech := range mechs {
			t.Run(mech+"/"+tt.name, func(t *testing.T) {
				cfg, _ := scramConfig()
				m := tt.auth.AsSha256Mechanism()
				if mech == ScramSHA512 {
					m = tt.auth.AsSha512Mechanism()
				}
				r := exchange(t, cfg, m)
				wantErr(t, r.err, tt.want)
				if r.steps != tt.wantSteps {
					t.Errorf("server steps = %d, want %d", r.steps, tt.wantSteps)
				}
				if tt.want != nil {
					if r.sess.Principal() != "" {
						t.Errorf("failed session has principal %q", r.sess.Principal())
					}
					if strings.Contains(r.err.Error(), tt.auth.Pass) {
						t.Errorf("error %q reveals the password", r.err)
					}
					return
				}
				if p := r.sess.Principal(); p != "User:"+tt.auth.User {
					t.Errorf("principal = %q, want User:%s", p, tt.auth.User)
				}
				if !r.sess.Expiry().IsZero() {
					t.Error("SCRAM session has an expiry")
				}
				if _, _, err := r.sess.Step([]byte("c=biws")); !errors.Is(err, ErrMalformed) {
					t.Errorf("Step after success = %v, want ErrMalformed", err)
				}
			})
		}
	}
}

// TestScramRFC7677Example replays the example exchange of RFC 7677 section 3
// (user "user", password "pencil") with the server nonce pinned.
func TestScramRFC7677Example(t *testing.T) {
	const (
		clientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
		serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
		clientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
		serverFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
	)
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	cred := CredentialFromSalted(ScramSHA256, salt, SaltPassword(ScramSHA256, "pencil", salt, 4096), 4096)
	cfg := &Config{Mechanisms: []string{ScramSHA256}, Scram: func(user, mech string) (Credential, bool) {
		return cred, user == "user" && mech == ScramSHA256
	}}
	s, err := cfg.Start(ScramSHA256)
	if err != nil {
		t.Fatal(err)
	}
	s.(*scramSession).serverNonce = func() string { return "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" }
	reply, done, err := s.Step([]byte(clientFirst))
	if err != nil || done || string(reply) != serverFirst {
		t.Fatalf("client-first: reply %q done %v err %v; want %q", reply, done, err, serverFirst)
	}
	reply, done, err = s.Step([]byte(clientFinal))
	if err != nil || !done || string(reply) != serverFinal {
		t.Fatalf("client-final: reply %q done %v err %v; want %q", reply, done, err, serverFinal)
	}
	if s.Principal() != "User:user" {
		t.Fatalf("principal = %q", s.Principal())
	}
}

// testScramClient computes client-final messages itself, so tests can alter
// one field while keeping the proof consistent with what was sent: then a
// failure proves that the server checked that field, not just the proof.
type testScramClient struct {
	mech, pass string
	gs2, bare  string
}

func newTestScramClient(mech, gs2, user, pass string) *testScramClient {
	return &testScramClient{mech: mech, pass: pass, gs2: gs2, bare: "n=" + user + ",r=clientNONCE"}
}

func (c *testScramClient) first() []byte { return []byte(c.gs2 + c.bare) }

// final builds "c=<cb>,r=<nonce><ext>,p=<proof>"; cb == "" means the right
// one. It returns the message and the server-final the server should send.
func (c *testScramClient) final(t *testing.T, serverFirst []byte, cb, nonce, ext string) (string, string) {
	t.Helper()
	attrs := map[string]string{}
	for _, kv := range strings.Split(string(serverFirst), ",") {
		attrs[kv[:1]] = kv[2:]
	}
	salt, err := base64.StdEncoding.DecodeString(attrs["s"])
	if err != nil {
		t.Fatalf("server salt: %v", err)
	}
	iters, err := strconv.Atoi(attrs["i"])
	if err != nil {
		t.Fatalf("server iterations: %v", err)
	}
	if cb == "" {
		cb = base64.StdEncoding.EncodeToString([]byte(c.gs2))
	}
	if nonce == "" {
		nonce = attrs["r"]
	}
	h := scramHash(c.mech)
	salted := SaltPassword(c.mech, c.pass, salt, iters)
	cred := CredentialFromSalted(c.mech, salt, salted, iters)
	clientKey := hmacSum(h, salted, []byte("Client Key"))
	withoutProof := "c=" + cb + ",r=" + nonce + ext
	authMsg := []byte(c.bare + "," + string(serverFirst) + "," + withoutProof)
	proof := hmacSum(h, cred.StoredKey, authMsg)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	serverSig := hmacSum(h, cred.ServerKey, authMsg)
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof),
		"v=" + base64.StdEncoding.EncodeToString(serverSig)
}

func TestScramClientFinalChecks(t *testing.T) {
	flipProof := func(m string) string {
		i := strings.LastIndex(m, ",p=") + 3
		p, _ := base64.StdEncoding.DecodeString(m[i:])
		p[0] ^= 1
		return m[:i] + base64.StdEncoding.EncodeToString(p)
	}
	tests := []struct {
		name           string
		gs2            string
		cb, nonce, ext string
		edit           func(string) string
		want           error
		pass           string
	}{
		{name: "n flag", gs2: "n,,"},
		{name: "y flag echoes eSws", gs2: "y,,"},
		{name: "authzid in gs2 header", gs2: "n,a=alice,"},
		{name: "extension before the proof", gs2: "n,,", ext: ",x=1"},
		{name: "wrong password", gs2: "n,,", pass: "nope", want: ErrAuthFailed},
		{name: "channel binding of the other flag", gs2: "n,,", cb: "eSws", want: ErrAuthFailed},
		{name: "y flag but biws", gs2: "y,,", cb: "biws", want: ErrAuthFailed},
		{name: "channel binding without authzid", gs2: "n,a=alice,", cb: "biws", want: ErrAuthFailed},
		{name: "channel binding not base64 of anything", gs2: "n,,", cb: "cD10bHMtdW5pcXVlLCw=", want: ErrAuthFailed},
		{name: "tampered nonce", gs2: "n,,", nonce: "clientNONCEforged", want: ErrAuthFailed},
		{name: "client nonce only", gs2: "n,,", nonce: "clientNONCE", want: ErrAuthFailed},
		{name: "wrong proof", gs2: "n,,", edit: flipProof, want: ErrAuthFailed},
		{name: "short proof", gs2: "n,,", edit: func(m string) string { return m[:strings.LastIndex(m, ",p=")] + ",p=AAAA" }, want: ErrAuthFailed},
		{name: "proof not base64", gs2: "n,,", edit: func(m string) string { return m + "!" }, want: ErrMalformed},
		{name: "no proof", gs2: "n,,", edit: func(m string) string { return m[:strings.LastIndex(m, ",p=")] }, want: ErrMalformed},
		{name: "no channel binding", gs2: "n,,", edit: func(m string) string { return m[strings.Index(m, ",")+1:] }, want: ErrMalformed},
		{name: "proof not last", gs2: "n,,", edit: func(m string) string { return m + ",x=1" }, want: ErrMalformed},
	}
	for _, mech := range scramMechs {
		for _, tt := range tests {
			t.Run(mech+"/"+tt.name, func(t *testing.T) {
				cfg, _ := scramConfig()
				s, err := cfg.Start(mech)
				if err != nil {
					t.Fatal(err)
				}
				pass := tt.pass
				if pass == "" {
					pass = "alice-secret"
				}
				c := newTestScramClient(mech, tt.gs2, "alice", pass)
				sf, done, err := s.Step(c.first())
				if err != nil || done {
					t.Fatalf("client-first: done %v err %v", done, err)
				}
				if !bytes.HasPrefix(sf, []byte("r=clientNONCE")) {
					t.Fatalf("server-first %q does not extend the client nonce", sf)
				}
				final, wantFinal := c.final(t, sf, tt.cb, tt.nonce, tt.ext)
				if tt.edit != nil {
					final = tt.edit(final)
				}
				reply, done, err := s.Step([]byte(final))
				wantErr(t, err, tt.want)
				if tt.want != nil {
					if done || reply != nil || s.Principal() != "" {
						t.Fatalf("failed step: done %v reply %q principal %q", done, reply, s.Principal())
					}
					return
				}
				if !done || !hmac.Equal(reply, []byte(wantFinal)) || s.Principal() != "User:alice" {
					t.Fatalf("got done %v reply %q principal %q; want server-final %q", done, reply, s.Principal(), wantFinal)
				}
			})
		}
	}
}

func TestScramClientFirstRefused(t *testing.T) {
	tests := []struct {
		name, msg string
		want      error
	}{
		{"empty", "", ErrMalformed},
		{"flag only", "n", ErrMalformed},
		{"unknown flag", "x,,n=alice,r=abc", ErrMalformed},
		{"channel binding requested", "p=tls-server-end-point,,n=alice,r=abc", ErrAuthFailed},
		{"no second comma", "n,n=alice", ErrMalformed},
		{"bad authzid field", "n,b=alice,n=alice,r=abc", ErrMalformed},
		{"authzid bad escape", "n,a=al=ice,n=alice,r=abc", ErrMalformed},
		{"authzid of someone else", "n,a=bob,n=alice,r=abc", ErrAuthFailed},
		{"bare missing", "n,,", ErrMalformed},
		{"no nonce", "n,,n=alice", ErrMalformed},
		{"nonce first", "n,,r=abc,n=alice", ErrMalformed},
		{"empty user", "n,,n=,r=abc", ErrMalformed},
		{"bad escape", "n,,n=al=2Cice=2,r=abc", ErrMalformed},
		{"lower-case escape", "n,,n=a=2c,r=abc", ErrMalformed},
		{"NUL in user", "n,,n=al\x00ice,r=abc", ErrMalformed},
		{"invalid utf8 user", "n,,n=al\xffice,r=abc", ErrMalformed},
		{"empty nonce", "n,,n=alice,r=", ErrMalformed},
		{"space in nonce", "n,,n=alice,r=ab c", ErrMalformed},
		{"non-ascii nonce", "n,,n=alice,r=ab\xc3\xa9", ErrMalformed},
		{"mandatory extension", "n,,m=ext,n=alice,r=abc", ErrAuthFailed},
		{"bad extension", "n,,n=alice,r=abc,=1", ErrMalformed},
		{"extension without value", "n,,n=alice,r=abc,foo", ErrMalformed},
		{"duplicate extension", "n,,n=alice,r=abc,x=1,x=2", ErrMalformed},
		{"token auth", "n,,n=alice,r=abc,tokenauth=true", ErrAuthFailed},
		{"token auth upper case", "n,,n=alice,r=abc,tokenauth=TRUE", ErrAuthFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := scramConfig()
			s, _ := cfg.Start(ScramSHA256)
			reply, done, err := s.Step([]byte(tt.msg))
			if done || reply != nil || !errors.Is(err, tt.want) {
				t.Fatalf("Step = reply %q done %v err %v; want %v", reply, done, err, tt.want)
			}
			if _, _, err := s.Step([]byte("c=biws,r=abc,p=AAAA")); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Step after failure = %v, want ErrMalformed", err)
			}
		})
	}
	// Extensions other than tokenauth=true are ignored, as in Kafka.
	cfg, _ := scramConfig()
	s, _ := cfg.Start(ScramSHA256)
	if _, _, err := s.Step([]byte("n,,n=alice,r=abc,tokenauth=false,foo=bar")); err != nil {
		t.Fatalf("harmless extensions refused: %v", err)
	}
}

// serverFirstOf starts an exchange for user and returns the salt and
// iteration parts of the server-first message.
func serverFirstOf(t *testing.T, cfg *Config, mech, user string) (salt, iters string) {
	t.Helper()
	s, _ := cfg.Start(mech)
	sf, done, err := s.Step([]byte("n,,n=" + user + ",r=abc"))
	if err != nil || done {
		t.Fatalf("client-first for %q: done %v err %v", user, done, err)
	}
	parts := strings.Split(string(sf), ",")
	if len(parts) != 3 || !strings.HasPrefix(parts[0], "r=abc") || len(parts[0]) < len("r=abc")+16 {
		t.Fatalf("server-first %q: want r=<client nonce + server nonce>,s=,i=", sf)
	}
	return parts[1], parts[2]
}

func TestScramUnknownUserIsNotRevealed(t *testing.T) {
	for _, mech := range scramMechs {
		t.Run(mech, func(t *testing.T) {
			cfg, _ := scramConfig()
			s1, i1 := serverFirstOf(t, cfg, mech, "mallory")
			s2, i2 := serverFirstOf(t, cfg, mech, "mallory")
			if s1 != s2 || i1 != i2 {
				t.Errorf("unknown user got different salts or counts: %s %s / %s %s", s1, i1, s2, i2)
			}
			if i1 != "i=4096" {
				t.Errorf("unknown user iterations %s, want i=4096", i1)
			}
			if s3, _ := serverFirstOf(t, cfg, mech, "eve"); s3 == s1 {
				t.Errorf("two unknown users got the same salt %s", s1)
			}
			// A real user's salt is stable too, so repetition reveals nothing.
			r1, _ := serverFirstOf(t, cfg, mech, "alice")
			r2, _ := serverFirstOf(t, cfg, mech, "alice")
			if r1 != r2 {
				t.Errorf("known user salt changed: %s / %s", r1, r2)
			}
		})
	}
}

func TestScramUnusableStoredCredential(t *testing.T) {
	cfg := &Config{Mechanisms: []string{ScramSHA256}, Scram: func(user, mech string) (Credential, bool) {
		return Credential{Iterations: 4096, Salt: []byte("salt"), StoredKey: []byte("short"), ServerKey: []byte("short")}, true
	}}
	c := newTestScramClient(ScramSHA256, "n,,", "alice", "pw")
	s, _ := cfg.Start(ScramSHA256)
	sf, _, err := s.Step(c.first())
	if err != nil {
		t.Fatalf("client-first: %v", err)
	}
	final, _ := c.final(t, sf, "", "", "")
	if _, done, err := s.Step([]byte(final)); done || !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("client-final = done %v err %v; want ErrAuthFailed", done, err)
	}
}

func TestDecodeSaslName(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"alice", "alice", true},
		{"a=2Cb", "a,b", true},
		{"a=3Db", "a=b", true},
		{"=2C=3D", ",=", true},
		{"ünïcode", "ünïcode", true},
		{"", "", false},
		{"a=", "", false},
		{"a=2", "", false},
		{"a=2c", "", false},
		{"a=41", "", false},
		{"a\x00b", "", false},
		{"a\xffb", "", false},
	}
	for _, tt := range tests {
		got, ok := decodeSaslName(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("decodeSaslName(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCredentialHelpers(t *testing.T) {
	if c := CredentialFromSalted("SCRAM-SHA-1", []byte("s"), []byte("k"), 4096); c.StoredKey != nil || c.ServerKey != nil {
		t.Errorf("unknown mechanism gave a credential: %+v", c)
	}
	if k := SaltPassword("SCRAM-SHA-1", "pw", []byte("s"), 4096); k != nil {
		t.Errorf("unknown mechanism gave a salted password")
	}
	if k := SaltPassword(ScramSHA256, "pw", []byte("s"), 0); k != nil {
		t.Errorf("zero iterations gave a salted password")
	}
	for mech, size := range map[string]int{ScramSHA256: 32, ScramSHA512: 64} {
		salt := []byte("salt")
		c := CredentialFromSalted(mech, salt, SaltPassword(mech, "pw", salt, MinIterations), MinIterations)
		if len(c.StoredKey) != size || len(c.ServerKey) != size || c.Iterations != MinIterations || !bytes.Equal(c.Salt, salt) {
			t.Errorf("%s credential: %+v", mech, c)
		}
		salt[0] = 'X'
		if c.Salt[0] == 'X' {
			t.Errorf("%s credential aliases the caller's salt", mech)
		}
	}
}
