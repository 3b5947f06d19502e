package sasl

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sasl/plain"
)

func plainConfig() *Config {
	return &Config{
		Mechanisms: []string{Plain},
		PlainUsers: map[string]string{"alice": "alice-secret", "bob": "b0b"},
	}
}

func TestPlainWithFranzClient(t *testing.T) {
	tests := []struct {
		name          string
		zid, user, pw string
		want          error
	}{
		{name: "success", user: "alice", pw: "alice-secret"},
		{name: "authzid equal to user", zid: "bob", user: "bob", pw: "b0b"},
		{name: "wrong password", user: "alice", pw: "alice-secreT", want: ErrAuthFailed},
		{name: "password of another user", user: "alice", pw: "b0b", want: ErrAuthFailed},
		{name: "password prefix", user: "alice", pw: "alice-s", want: ErrAuthFailed},
		{name: "unknown user", user: "mallory", pw: "alice-secret", want: ErrAuthFailed},
		{name: "authzid of another user", zid: "bob", user: "alice", pw: "alice-secret", want: ErrAuthFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := exchange(t, plainConfig(), plain.Auth{Zid: tt.zid, User: tt.user, Pass: tt.pw}.AsMechanism())
			wantErr(t, r.err, tt.want)
			if r.steps != 1 {
				t.Errorf("steps = %d, want 1", r.steps)
			}
			if tt.want != nil {
				if p := r.sess.Principal(); p != "" {
					t.Errorf("failed session has principal %q", p)
				}
				if strings.Contains(r.err.Error(), tt.pw) {
					t.Errorf("error %q reveals the password", r.err)
				}
				return
			}
			if p := r.sess.Principal(); p != "User:"+tt.user {
				t.Errorf("principal = %q, want User:%s", p, tt.user)
			}
			if !r.sess.Expiry().IsZero() {
				t.Errorf("PLAIN session has an expiry")
			}
		})
	}
}

func TestPlainMalformed(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want error
	}{
		{"empty", "", ErrMalformed},
		{"no separator", "alice", ErrMalformed},
		{"two fields", "alice\x00alice-secret", ErrMalformed},
		{"four fields", "\x00alice\x00alice-secret\x00", ErrMalformed},
		{"empty user", "\x00\x00alice-secret", ErrMalformed},
		{"empty password", "\x00alice\x00", ErrMalformed},
		{"invalid utf8", "\x00al\xffice\x00alice-secret", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := plainConfig().Start(Plain)
			if err != nil {
				t.Fatal(err)
			}
			_, done, err := s.Step([]byte(tt.msg))
			if done || !errors.Is(err, tt.want) {
				t.Fatalf("Step = done %v, err %v; want %v", done, err, tt.want)
			}
		})
	}
}

func TestPlainSessionEndsAfterOneMessage(t *testing.T) {
	for _, first := range []string{"\x00alice\x00alice-secret", "\x00alice\x00wrong"} {
		s, _ := plainConfig().Start(Plain)
		s.Step([]byte(first))
		_, done, err := s.Step([]byte("\x00alice\x00alice-secret"))
		if done || !errors.Is(err, ErrMalformed) {
			t.Fatalf("second Step after %q = done %v, err %v; want ErrMalformed", first, done, err)
		}
	}
}

func TestStartRefusesMechanismsNotEnabled(t *testing.T) {
	cfg := &Config{Mechanisms: []string{Plain, ScramSHA256, OAuthBearer, "GSSAPI"}}
	for _, m := range []string{ScramSHA512, "plain", "GSSAPI", "", OAuthBearer /* no validator */} {
		if _, err := cfg.Start(m); !errors.Is(err, ErrUnsupportedMechanism) {
			t.Errorf("Start(%q) = %v, want ErrUnsupportedMechanism", m, err)
		}
	}
	for _, m := range []string{Plain, ScramSHA256} {
		if _, err := cfg.Start(m); err != nil {
			t.Errorf("Start(%q) = %v", m, err)
		}
	}
}
