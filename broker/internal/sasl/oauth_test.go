package sasl

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
)

// testKey is a signing key with the kid and alg it is published under.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func (k testKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// RSA key generation is slow; the tests share a few keys.
var testKeys = sync.OnceValue(func() map[string]testKey {
	rsa1, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa2, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	return map[string]testKey{
		"rs":    {"rs", jose.RS256, rsa1},
		"rs2":   {"rs2", jose.RS256, rsa2},
		"ps":    {"ps", jose.PS256, rsa1},
		"rs512": {"rs512", jose.RS512, rsa2},
		"es256": {"es256", jose.ES256, ec256},
		"es384": {"es384", jose.ES384, ec384},
		"es512": {"es512", jose.ES512, ec521},
	}
})

func jwksJSON(t testing.TB, keys ...testKey) []byte {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.jwk())
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign makes a compact JWS of claims; kid "" leaves the header without one.
func sign(t testing.TB, k testKey, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func unsecured(claims map[string]any) string {
	payload, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString(payload) + "."
}

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func claimsAt(now time.Time, edits ...func(map[string]any)) map[string]any {
	c := map[string]any{
		"sub": "alice",
		"iss": "https://issuer.example",
		"aud": "strata",
		"iat": now.Add(-time.Minute).Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	for _, e := range edits {
		e(c)
	}
	return c
}

func set(k string, v any) func(map[string]any) { return func(c map[string]any) { c[k] = v } }
func del(k string) func(map[string]any)        { return func(c map[string]any) { delete(c, k) } }

func writeJWKS(t testing.TB, path string, body []byte, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// fileValidator serves keys from a file JWKS with the usual test settings.
func fileValidator(t testing.TB, edit func(*OAuthConfig), keys ...testKey) (*OAuthValidator, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, path, jwksJSON(t, keys...), testNow.Add(-time.Hour))
	cfg := OAuthConfig{
		JWKSURL:   "file://" + path,
		Audience:  []string{"other", "strata"},
		Issuer:    "https://issuer.example",
		ClockSkew: 30 * time.Second,
	}
	if edit != nil {
		edit(&cfg)
	}
	v, err := NewOAuthValidator(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewOAuthValidator: %v", err)
	}
	t.Cleanup(v.Close)
	return v, path
}

// clock is a settable time source for Config.Now.
type clock struct{ t atomic.Pointer[time.Time] }

func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }
func (c *clock) set(t time.Time)  { c.t.Store(&t) }
func (c *clock) now() time.Time   { return *c.t.Load() }

func oauthConfig(v *OAuthValidator, c *clock) *Config {
	return &Config{Mechanisms: []string{OAuthBearer}, OAuth: v, Now: c.now}
}

func authWithToken(tok string) oauth.Auth { return oauth.Auth{Token: tok} }

func TestOAuthBearerTokens(t *testing.T) {
	ks := testKeys()
	published := []testKey{ks["rs"], ks["ps"], ks["rs512"], ks["es256"], ks["es384"], ks["es512"]}
	tests := []struct {
		name  string
		cfg   func(*OAuthConfig)
		token func(t *testing.T) string
		auth  func(tok string) oauth.Auth // nil = token only
		want  error
		who   string // expected principal on success; "" = User:alice
	}{
		{name: "RS256", token: func(t *testing.T) string { return sign(t, ks["rs"], "rs", claimsAt(testNow)) }},
		{name: "PS256", token: func(t *testing.T) string { return sign(t, ks["ps"], "ps", claimsAt(testNow)) }},
		{name: "RS512", token: func(t *testing.T) string { return sign(t, ks["rs512"], "rs512", claimsAt(testNow)) }},
		{name: "ES256", token: func(t *testing.T) string { return sign(t, ks["es256"], "es256", claimsAt(testNow)) }},
		{name: "ES384", token: func(t *testing.T) string { return sign(t, ks["es384"], "es384", claimsAt(testNow)) }},
		{name: "ES512", token: func(t *testing.T) string { return sign(t, ks["es512"], "es512", claimsAt(testNow)) }},
		{name: "no kid tries every key", token: func(t *testing.T) string { return sign(t, ks["es256"], "", claimsAt(testNow)) }},
		{name: "audience array", token: func(t *testing.T) string {
			return sign(t, ks["rs"], "rs", claimsAt(testNow, set("aud", []string{"x", "strata"})))
		}},
		{name: "fractional exp", token: func(t *testing.T) string {
			return sign(t, ks["rs"], "rs", claimsAt(testNow, set("exp", float64(testNow.Add(time.Hour).Unix())+0.5)))
		}},
		{name: "expired within clock skew", token: func(t *testing.T) string {
			return sign(t, ks["rs"], "rs", claimsAt(testNow, set("exp", testNow.Add(-10*time.Second).Unix())))
		}},
		{name: "extensions and authzid equal to sub", token: func(t *testing.T) string { return sign(t, ks["rs"], "rs", claimsAt(testNow)) },
			auth: func(tok string) oauth.Auth {
				return oauth.Auth{Zid: "alice", Token: tok, Extensions: map[string]string{"traceId": "abc 123"}}
			}},
		{name: "custom principal claim", cfg: func(c *OAuthConfig) { c.SubClaim = "client_id" },
			token: func(t *testing.T) string {
				return sign(t, ks["rs"], "rs", claimsAt(testNow, set("client_id", "svc-1")))
			},
			who: "User:svc-1"},
		{name: "no issuer or audience configured", cfg: func(c *OAuthConfig) { c.Issuer, c.Audience = "", nil },
			token: func(t *testing.T) string { return sign(t, ks["rs"], "rs", claimsAt(testNow, del("iss"), del("aud"))) }},

		{name: "expired", want: ErrAuthFailed, token: func(t *testing.T) string {
			return sign(t, ks["rs"], "rs", claimsAt(testNow, set("exp", testNow.Add(-31*time.Second).Unix())))
		}},
		{name: "no exp", want: ErrAuthFailed, token: func(t *testing.T) string { return sign(t, ks["rs"], "rs", claimsAt(testNow, del("exp"))) }},
		{name: "exp not a number", want: ErrAuthFailed, token: func(t *testing.T) string {
			return sign(t, ks["rs"], "rs", claimsAt(testNow, set("exp", "tomorrow")))
		}},
		{name: "exp out of range", want: ErrAuthFailed, token: func(t *testing.T) string {
			return sign(t, ks["rs"], "rs", claimsAt(testNow, set("exp", 1e300)))
		}},
		{name: "nbf in the future", want: ErrAuthFailed, token: func(t *testing.T) string {
			return sign(t, ks["rs"], "rs", claimsAt(testNow, set("nbf", testNow.Add(time.Minute).Unix())))
		}},
		{name: "iat in the future", want: ErrAuthFailed, token: func(t *testing.T) string {
			return sign(t, ks["rs"], "rs", claimsAt(testNow, set("iat", testNow.Add(time.Minute).Unix())))
		}},
		{name: "wrong issuer", want: ErrAuthFailed, token: func(t *testing.T) string {
			return sign(t, ks["rs"], "rs", claimsAt(testNow, set("iss", "https://evil.example")))
		}},
		{name: "no issuer", want: ErrAuthFailed, token: func(t *testing.T) string { return sign(t, ks["rs"], "rs", claimsAt(testNow, del("iss"))) }},
		{name: "wrong audience", want: ErrAuthFailed, token: func(t *testing.T) string {
			return sign(t, ks["rs"], "rs", claimsAt(testNow, set("aud", []string{"billing", "hr"})))
		}},
		{name: "no audience", want: ErrAuthFailed, token: func(t *testing.T) string { return sign(t, ks["rs"], "rs", claimsAt(testNow, del("aud"))) }},
		{name: "no sub", want: ErrAuthFailed, token: func(t *testing.T) string { return sign(t, ks["rs"], "rs", claimsAt(testNow, del("sub"))) }},
		{name: "sub not a string", want: ErrAuthFailed, token: func(t *testing.T) string { return sign(t, ks["rs"], "rs", claimsAt(testNow, set("sub", 42))) }},
		{name: "bad signature", want: ErrAuthFailed, token: func(t *testing.T) string {
			// Signed by an unpublished key under a published kid.
			return sign(t, ks["rs2"], "rs", claimsAt(testNow))
		}},
		{name: "tampered payload", want: ErrAuthFailed, token: func(t *testing.T) string {
			tok := sign(t, ks["rs"], "rs", claimsAt(testNow))
			p := strings.Split(tok, ".")
			p[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin","exp":9999999999,"iss":"https://issuer.example","aud":"strata"}`))
			return strings.Join(p, ".")
		}},
		{name: "unknown kid", want: ErrAuthFailed, token: func(t *testing.T) string { return sign(t, ks["rs2"], "rs2", claimsAt(testNow)) }},
		{name: "alg other than the key's", want: ErrAuthFailed, token: func(t *testing.T) string {
			k := ks["rs"]
			k.alg = jose.RS384
			return sign(t, k, "rs", claimsAt(testNow))
		}},
		{name: "HS256 with a public key as secret", want: ErrAuthFailed, token: func(t *testing.T) string {
			der, _ := json.Marshal(ks["rs"].jwk())
			s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: der}, (&jose.SignerOptions{}).WithHeader("kid", "rs"))
			payload, _ := json.Marshal(claimsAt(testNow))
			obj, _ := s.Sign(payload)
			tok, _ := obj.CompactSerialize()
			return tok
		}},
		{name: "alg none refused", want: ErrAuthFailed, token: func(t *testing.T) string { return unsecured(claimsAt(testNow)) }},
		{name: "not a JWT", want: ErrMalformed, token: func(t *testing.T) string { return "not a jwt" }},
		{name: "two parts", want: ErrAuthFailed, token: func(t *testing.T) string { return "abc.def" }},
		{name: "authzid of someone else", want: ErrAuthFailed,
			token: func(t *testing.T) string { return sign(t, ks["rs"], "rs", claimsAt(testNow)) },
			auth:  func(tok string) oauth.Auth { return oauth.Auth{Zid: "bob", Token: tok} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := fileValidator(t, tt.cfg, published...)
			tok := tt.token(t)
			auth := authWithToken(tok)
			if tt.auth != nil {
				auth = tt.auth(tok)
			}
			r := exchange(t, oauthConfig(v, newClock(testNow)), auth.AsMechanism())
			wantErr(t, r.err, tt.want)
			if r.steps != 1 {
				t.Errorf("steps = %d, want 1", r.steps)
			}
			if tt.want != nil {
				if r.sess.Principal() != "" || !r.sess.Expiry().IsZero() {
					t.Errorf("failed session has principal %q expiry %v", r.sess.Principal(), r.sess.Expiry())
				}
				if len(tok) > 20 && strings.Contains(r.err.Error(), tok[len(tok)-20:]) {
					t.Errorf("error %q reveals the token", r.err)
				}
				return
			}
			who := tt.who
			if who == "" {
				who = "User:alice"
			}
			if r.sess.Principal() != who {
				t.Errorf("principal = %q, want %q", r.sess.Principal(), who)
			}
			if e := r.sess.Expiry(); e.IsZero() || e.Before(testNow.Add(-time.Minute)) || e.After(testNow.Add(time.Hour+time.Second)) {
				t.Errorf("expiry = %v, want the token's exp", e)
			}
		})
	}
}

func TestOAuthBearerExpiryIsExp(t *testing.T) {
	v, _ := fileValidator(t, nil, testKeys()["rs"])
	exp := testNow.Add(42 * time.Minute)
	tok := sign(t, testKeys()["rs"], "rs", claimsAt(testNow, set("exp", exp.Unix())))
	r := exchange(t, oauthConfig(v, newClock(testNow)), authWithToken(tok).AsMechanism())
	if r.err != nil || !r.sess.Expiry().Equal(exp) {
		t.Fatalf("err %v expiry %v; want %v", r.err, r.sess.Expiry(), exp)
	}
}

func TestOAuthBearerUnsecured(t *testing.T) {
	ks := testKeys()
	tests := []struct {
		name  string
		jwks  bool // also configure a JWKS
		allow bool
		token string
		want  error
	}{
		{name: "allowed without JWKS", allow: true, token: unsecured(claimsAt(testNow))},
		{name: "allowed with JWKS", allow: true, jwks: true, token: unsecured(claimsAt(testNow))},
		{name: "signed accepted too", allow: true, jwks: true, token: sign(t, ks["rs"], "rs", claimsAt(testNow))},
		{name: "signed without JWKS", allow: true, token: sign(t, ks["rs"], "rs", claimsAt(testNow)), want: ErrAuthFailed},
		{name: "refused by default", jwks: true, token: unsecured(claimsAt(testNow)), want: ErrAuthFailed},
		{name: "claims still checked", allow: true, token: unsecured(claimsAt(testNow, set("exp", testNow.Add(-time.Hour).Unix()))), want: ErrAuthFailed},
		{name: "unsecured with a signature", allow: true, token: unsecured(claimsAt(testNow)) + "c2ln", want: ErrAuthFailed},
		{name: "alg NONE", allow: true, token: base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"NONE"}`)) + "." +
			strings.Split(unsecured(claimsAt(testNow)), ".")[1] + ".", want: ErrAuthFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v *OAuthValidator
			if tt.jwks {
				v, _ = fileValidator(t, func(c *OAuthConfig) { c.AllowUnsecured = tt.allow }, ks["rs"])
			} else {
				var err error
				v, err = NewOAuthValidator(context.Background(), OAuthConfig{AllowUnsecured: tt.allow, Audience: []string{"strata"}})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(v.Close)
			}
			r := exchange(t, oauthConfig(v, newClock(testNow)), authWithToken(tt.token).AsMechanism())
			wantErr(t, r.err, tt.want)
			if tt.want == nil && r.sess.Principal() != "User:alice" {
				t.Errorf("principal = %q", r.sess.Principal())
			}
		})
	}
}

func TestOAuthBearerMessageGrammar(t *testing.T) {
	ks := testKeys()
	v, _ := fileValidator(t, nil, ks["rs"])
	tok := sign(t, ks["rs"], "rs", claimsAt(testNow))
	tests := []struct {
		name, msg string
		want      error
	}{
		{"minimal", "n,,\x01auth=Bearer " + tok + "\x01\x01", nil},
		{"y flag", "y,,\x01auth=Bearer " + tok + "\x01\x01", nil},
		{"lower-case scheme, two spaces", "n,,\x01auth=bearer  " + tok + "\x01\x01", nil},
		{"extensions", "n,a=alice,\x01host=b1\x01auth=Bearer " + tok + "\x01port=9092\x01\x01", nil},
		{"channel binding", "p=tls-unique,,\x01auth=Bearer " + tok + "\x01\x01", ErrAuthFailed},
		{"empty", "", ErrMalformed},
		{"no gs2 header", "\x01auth=Bearer " + tok + "\x01\x01", ErrMalformed},
		{"no leading separator", "n,,auth=Bearer " + tok + "\x01\x01", ErrMalformed},
		{"no final separator", "n,,\x01auth=Bearer " + tok + "\x01", ErrMalformed},
		{"no pairs", "n,,\x01\x01", ErrMalformed},
		{"no auth", "n,,\x01host=b1\x01\x01", ErrMalformed},
		{"empty pair", "n,,\x01auth=Bearer " + tok + "\x01\x01\x01", ErrMalformed},
		{"duplicate auth", "n,,\x01auth=Bearer " + tok + "\x01auth=Bearer " + tok + "\x01\x01", ErrMalformed},
		{"bad key", "n,,\x01auth=Bearer " + tok + "\x01ho-st=x\x01\x01", ErrMalformed},
		{"control char in value", "n,,\x01auth=Bearer " + tok + "\x01host=a\x00b\x01\x01", ErrMalformed},
		{"basic scheme", "n,,\x01auth=Basic " + tok + "\x01\x01", ErrMalformed},
		{"no space", "n,,\x01auth=Bearer" + tok + "\x01\x01", ErrMalformed},
		{"empty token", "n,,\x01auth=Bearer \x01\x01", ErrMalformed},
		{"token with bad characters", "n,,\x01auth=Bearer " + tok + "!\x01\x01", ErrMalformed},
		{"bad authzid", "n,a=al=ice,\x01auth=Bearer " + tok + "\x01\x01", ErrMalformed},
		{"other authzid", "n,a=bob,\x01auth=Bearer " + tok + "\x01\x01", ErrAuthFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := oauthConfig(v, newClock(testNow)).Start(OAuthBearer)
			if err != nil {
				t.Fatal(err)
			}
			reply, done, err := s.Step([]byte(tt.msg))
			wantErr(t, err, tt.want)
			if done != (tt.want == nil) || reply != nil {
				t.Fatalf("done %v reply %q", done, reply)
			}
			if _, _, err := s.Step([]byte(tt.msg)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("second Step = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestOAuthJWKSFileRotation(t *testing.T) {
	ks := testKeys()
	v, path := fileValidator(t, nil, ks["rs"])
	clk := newClock(testNow)
	cfg := oauthConfig(v, clk)
	try := func(k testKey) error {
		return exchange(t, cfg, authWithToken(sign(t, k, k.kid, claimsAt(testNow))).AsMechanism()).err
	}
	if err := try(ks["es256"]); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("key not yet published: %v", err)
	}
	// The issuer rotates: the file now holds only the new key.
	writeJWKS(t, path, jwksJSON(t, ks["es256"]), testNow)
	clk.set(testNow.Add(500 * time.Millisecond))
	if err := try(ks["es256"]); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("file re-checked within a second of the last check: %v", err)
	}
	clk.set(testNow.Add(1500 * time.Millisecond))
	if err := try(ks["es256"]); err != nil {
		t.Fatalf("rotated key refused: %v", err)
	}
	if err := try(ks["rs"]); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("key removed from the file still accepted: %v", err)
	}
	// A broken rewrite keeps the last good set.
	writeJWKS(t, path, []byte("{not json"), testNow.Add(time.Hour))
	clk.set(testNow.Add(3 * time.Second))
	if err := try(ks["es256"]); err != nil {
		t.Fatalf("broken JWKS file dropped the good keys: %v", err)
	}
}

// jwksServer serves a JWKS that tests can change, counting requests.
type jwksServer struct {
	*httptest.Server
	body     atomic.Pointer[[]byte]
	status   atomic.Int32
	requests atomic.Int32
	hit      chan int32 // receives the request count after each request, if not full
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{hit: make(chan int32, 100)}
	s.setBody(body)
	s.status.Store(http.StatusOK)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.requests.Add(1)
		defer func() {
			select {
			case s.hit <- n:
			default:
			}
		}()
		if st := int(s.status.Load()); st != http.StatusOK {
			w.WriteHeader(st)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) setBody(b []byte) { s.body.Store(&b) }

// syncBuffer collects log output written from the refresh goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestOAuthJWKSOverHTTP(t *testing.T) {
	ks := testKeys()
	srv := newJWKSServer(t, jwksJSON(t, ks["rs"]))
	v, err := NewOAuthValidator(context.Background(), OAuthConfig{JWKSURL: srv.URL + "/jwks", Refresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times at start, want 1", n)
	}
	clk := newClock(testNow)
	cfg := oauthConfig(v, clk)
	try := func(k testKey) error {
		return exchange(t, cfg, authWithToken(sign(t, k, k.kid, claimsAt(testNow, del("aud"), del("iss")))).AsMechanism()).err
	}
	if err := try(ks["rs"]); err != nil {
		t.Fatalf("published key: %v", err)
	}
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("a known kid caused a fetch (%d requests)", n)
	}

	// A token with a kid we lack makes the validator look again.
	srv.setBody(jwksJSON(t, ks["rs"], ks["es256"]))
	if err := try(ks["es256"]); err != nil {
		t.Fatalf("new key after on-demand fetch: %v", err)
	}
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("requests = %d, want 2", n)
	}
	// ... but at most once per 10 s.
	srv.setBody(jwksJSON(t, ks["rs"], ks["es256"], ks["es384"]))
	clk.set(testNow.Add(5 * time.Second))
	if err := try(ks["es384"]); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("within 10 s of the last fetch: %v", err)
	}
	if err := try(ks["rs2"]); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("unknown kid: %v", err)
	}
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("unknown kids within 10 s caused fetches: %d requests", n)
	}
	clk.set(testNow.Add(11 * time.Second))
	if err := try(ks["es384"]); err != nil {
		t.Fatalf("after 10 s: %v", err)
	}
	if n := srv.requests.Load(); n != 3 {
		t.Fatalf("requests = %d, want 3", n)
	}
	// A failed on-demand fetch keeps the last good set.
	srv.status.Store(http.StatusInternalServerError)
	clk.set(testNow.Add(30 * time.Second))
	if err := try(ks["rs2"]); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("unknown kid with the server failing: %v", err)
	}
	if err := try(ks["es384"]); err != nil {
		t.Fatalf("last good set lost after a failed fetch: %v", err)
	}
}

func TestOAuthJWKSPeriodicRefresh(t *testing.T) {
	ks := testKeys()
	srv := newJWKSServer(t, jwksJSON(t, ks["rs"]))
	logs := &syncBuffer{}
	v, err := NewOAuthValidator(context.Background(), OAuthConfig{
		JWKSURL: srv.URL, Refresh: 5 * time.Millisecond, AllowUnsecured: false,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	cfg := oauthConfig(v, newClock(testNow))
	try := func(k testKey) error {
		return exchange(t, cfg, authWithToken(sign(t, k, k.kid, claimsAt(testNow))).AsMechanism()).err
	}

	// The refresh picks up a new key without any token asking for it.
	srv.setBody(jwksJSON(t, ks["es256"]))
	waitRefreshed(t, srv)
	if err := try(ks["es256"]); err != nil {
		t.Fatalf("refreshed key: %v", err)
	}

	// Refresh failures keep the last good set and are logged.
	srv.status.Store(http.StatusServiceUnavailable)
	waitRefreshed(t, srv)
	if err := try(ks["es256"]); err != nil {
		t.Fatalf("last good set lost: %v", err)
	}
	if !strings.Contains(logs.String(), "JWKS refresh failed") || !strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("no warning logged:\n%s", logs)
	}
	v.Close()
	v.Close() // idempotent
}

// waitRefreshed waits until the refresh loop has fully handled a request
// that saw the server's current state. The handler signals before the
// validator has the response, and a request may be in flight when the test
// changes the server: request n+1 answered, then, since the loop is
// sequential, request n+2 starting proves n+1 was installed (or logged).
func waitRefreshed(t *testing.T, srv *jwksServer) {
	t.Helper()
	target := srv.requests.Load() + 3
	timeout := time.After(10 * time.Second)
	for {
		select {
		case n := <-srv.hit:
			if n >= target {
				return
			}
		case <-timeout:
			t.Fatal("JWKS not refreshed")
		}
	}
}

func TestNewOAuthValidatorErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return "file://" + p
	}
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	failing := newJWKSServer(t, nil)
	failing.status.Store(http.StatusBadGateway)
	tests := []struct {
		name string
		cfg  OAuthConfig
	}{
		{"no JWKS and unsecured not allowed", OAuthConfig{}},
		{"bad scheme", OAuthConfig{JWKSURL: "ftp://example.com/jwks"}},
		{"missing file", OAuthConfig{JWKSURL: "file://" + filepath.Join(dir, "nope.json")}},
		{"not JSON", OAuthConfig{JWKSURL: write("bad.json", "{")}},
		{"no keys", OAuthConfig{JWKSURL: write("empty.json", `{"keys":[]}`)}},
		{"only unusable keys", OAuthConfig{JWKSURL: write("oct.json", `{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"XYZ"}]}`)}},
		{"unreachable URL", OAuthConfig{JWKSURL: downURL}},
		{"HTTP error", OAuthConfig{JWKSURL: failing.URL}},
		{"unreachable even if unsecured is allowed", OAuthConfig{JWKSURL: downURL, AllowUnsecured: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewOAuthValidator(context.Background(), tt.cfg)
			if err == nil {
				v.Close()
				t.Fatal("NewOAuthValidator succeeded")
			}
		})
	}
}

func TestJWKSSkipsUnusableKeys(t *testing.T) {
	ks := testKeys()
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	json.Unmarshal(jwksJSON(t, ks["rs"]), &doc)
	encKey := ks["es256"].jwk()
	encKey.Use = "enc"
	encJSON, _ := json.Marshal(encKey)
	doc.Keys = append(doc.Keys, json.RawMessage(`{"kty":"oct","k":"c2VjcmV0","kid":"hmac"}`), json.RawMessage(`{"kty":"EC","crv":"P-999"}`), encJSON)
	body, _ := json.Marshal(doc)
	path := filepath.Join(t.TempDir(), "jwks.json")
	os.WriteFile(path, body, 0o600)
	v, err := NewOAuthValidator(context.Background(), OAuthConfig{JWKSURL: "file://" + path})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	cfg := oauthConfig(v, newClock(testNow))
	if err := exchange(t, cfg, authWithToken(sign(t, ks["rs"], "rs", claimsAt(testNow))).AsMechanism()).err; err != nil {
		t.Fatalf("usable key next to unusable ones: %v", err)
	}
	if err := exchange(t, cfg, authWithToken(sign(t, ks["es256"], "es256", claimsAt(testNow))).AsMechanism()).err; !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("encryption key used for signatures: %v", err)
	}
}
