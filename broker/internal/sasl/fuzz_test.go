package sasl

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Every target asserts that parsing never panics, that failures wrap one of
// the package's sentinels, and that nothing authenticates without the
// credential the test configured.

func checkFuzzErr(t *testing.T, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, ErrAuthFailed) && !errors.Is(err, ErrMalformed) {
		t.Fatalf("error wraps neither ErrAuthFailed nor ErrMalformed: %v", err)
	}
}

func FuzzPlain(f *testing.F) {
	for _, s := range []string{
		"\x00alice\x00alice-secret", "alice\x00alice\x00alice-secret", "bob\x00alice\x00alice-secret",
		"\x00alice\x00wrong", "\x00\x00", "", "\x00alice\x00alice-secret\x00", "\xff\x00alice\x00x",
	} {
		f.Add([]byte(s))
	}
	cfg := plainConfig()
	f.Fuzz(func(t *testing.T, msg []byte) {
		s, err := cfg.Start(Plain)
		if err != nil {
			t.Fatal(err)
		}
		_, done, err := s.Step(msg)
		checkFuzzErr(t, err)
		if !done {
			if err == nil || s.Principal() != "" {
				t.Fatalf("not done but err %v principal %q", err, s.Principal())
			}
			return
		}
		valid := map[string]string{
			"\x00alice\x00alice-secret": "User:alice", "alice\x00alice\x00alice-secret": "User:alice",
			"\x00bob\x00b0b": "User:bob", "bob\x00bob\x00b0b": "User:bob",
		}
		if want, ok := valid[string(msg)]; !ok || s.Principal() != want {
			t.Fatalf("authenticated %q as %q", msg, s.Principal())
		}
	})
}

// FuzzScram feeds arbitrary client-first and client-final messages. "@N" in
// the final message is replaced by the nonce the server chose, so the
// fuzzer can get past the nonce check; it still cannot know the password,
// so no exchange may succeed.
func FuzzScram(f *testing.F) {
	for _, s := range [][2]string{
		{"n,,n=alice,r=abc", "c=biws,r=@N,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
		{"y,,n=mallory,r=abc", "c=eSws,r=@N,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
		{"n,a=alice,n=alice,r=abc,x=1", "c=bixhPWFsaWNlLA==,r=@N,x=1,p=AAAA"},
		{"n,,n=a=2Cb=3Dc,r=abc", "c=biws,r=@N,p="},
		{"p=x,,n=alice,r=abc", ""},
		{"n,,m=1,n=alice,r=abc", ""},
		{"n,,n=alice,r=abc,tokenauth=true", ""},
		{"n,,n=alice,r=abc", "c=biws,r=@Nx,p=AAAA"},
		{"n,,n=alice,r=abc", ",p="},
	} {
		f.Add([]byte(s[0]), []byte(s[1]), false)
		f.Add([]byte(s[0]), []byte(s[1]), true)
	}
	cfg, _ := scramConfig()
	f.Fuzz(func(t *testing.T, first, final []byte, sha512 bool) {
		mech := ScramSHA256
		if sha512 {
			mech = ScramSHA512
		}
		s, err := cfg.Start(mech)
		if err != nil {
			t.Fatal(err)
		}
		reply, done, err := s.Step(first)
		checkFuzzErr(t, err)
		if done {
			t.Fatalf("client-first %q completed the exchange", first)
		}
		if err != nil {
			if reply != nil {
				t.Fatalf("reply %q with error %v", reply, err)
			}
			return
		}
		nonce, _, _ := strings.Cut(strings.TrimPrefix(string(reply), "r="), ",")
		final = bytes.ReplaceAll(final, []byte("@N"), []byte(nonce))
		reply, done, err = s.Step(final)
		checkFuzzErr(t, err)
		if done || err == nil || reply != nil || s.Principal() != "" {
			t.Fatalf("client-final %q: done %v err %v reply %q principal %q", final, done, err, reply, s.Principal())
		}
	})
}

// FuzzOAuthBearer mutates initial responses around tokens this test signed.
// Only the signed token's claims (sub alice, the seed's exp) may ever
// authenticate; unsigned tokens claim "mallory" and must never get through.
func FuzzOAuthBearer(f *testing.F) {
	ks := testKeys()
	path := filepath.Join(f.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwksJSON(f, ks["es256"], ks["rs"]), 0o600); err != nil {
		f.Fatal(err)
	}
	v, err := NewOAuthValidator(context.Background(), OAuthConfig{
		JWKSURL: "file://" + path, Audience: []string{"strata"}, Issuer: "https://issuer.example",
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(v.Close)
	exp := testNow.Add(time.Hour)
	good := []string{
		sign(f, ks["es256"], "es256", claimsAt(testNow)),
		sign(f, ks["rs"], "rs", claimsAt(testNow)),
	}
	forged := []string{
		unsecured(claimsAt(testNow, set("sub", "mallory"))),
		sign(f, ks["rs2"], "rs", claimsAt(testNow, set("sub", "mallory"))),
		sign(f, ks["es384"], "", claimsAt(testNow, set("sub", "mallory"))),
	}
	for _, tok := range append(good, forged...) {
		f.Add([]byte("n,,\x01auth=Bearer " + tok + "\x01\x01"))
		f.Add([]byte("n,a=alice,\x01host=h\x01auth=Bearer " + tok + "\x01port=1\x01\x01"))
	}
	f.Add([]byte("p=x,,\x01auth=Bearer a.b.c\x01\x01"))
	f.Add([]byte("n,,\x01\x01"))
	cfg := &Config{Mechanisms: []string{OAuthBearer}, OAuth: v, Now: func() time.Time { return testNow }}
	f.Fuzz(func(t *testing.T, msg []byte) {
		s, err := cfg.Start(OAuthBearer)
		if err != nil {
			t.Fatal(err)
		}
		reply, done, err := s.Step(msg)
		checkFuzzErr(t, err)
		if reply != nil {
			t.Fatalf("reply %q", reply)
		}
		if !done {
			if err == nil || s.Principal() != "" {
				t.Fatalf("not done but err %v principal %q", err, s.Principal())
			}
			return
		}
		if s.Principal() != "User:alice" || !s.Expiry().Equal(time.Unix(exp.Unix(), 0)) {
			t.Fatalf("authenticated %q as %q until %v", msg, s.Principal(), s.Expiry())
		}
	})
}
