package sasl

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	franz "github.com/twmb/franz-go/pkg/sasl"
)

// result is what one client-driven exchange produced.
type result struct {
	sess  Session
	steps int // server Steps taken, including the failing one
	err   error
}

// exchange runs a franz-go client mechanism against a server session the
// way the broker does: the client's initial token, then alternate Step and
// Challenge until one side ends. A success requires the client to accept the
// server's last reply too (SCRAM's server signature).
func exchange(t *testing.T, cfg *Config, mech franz.Mechanism) result {
	t.Helper()
	sess, err := cfg.Start(mech.Name())
	if err != nil {
		t.Fatalf("Start(%s): %v", mech.Name(), err)
	}
	cs, msg, err := mech.Authenticate(context.Background(), "broker:9092")
	if err != nil {
		t.Fatalf("client Authenticate: %v", err)
	}
	r := result{sess: sess}
	for {
		reply, done, err := sess.Step(msg)
		r.steps++
		if err != nil {
			r.err = err
			return r
		}
		cdone, next, cerr := cs.Challenge(reply)
		if cerr != nil {
			r.err = fmt.Errorf("client rejected the server's reply: %w", cerr)
			return r
		}
		switch {
		case done && !cdone:
			r.err = errors.New("server finished but the client expects more")
			return r
		case done:
			return r
		case cdone:
			r.err = errors.New("client finished but the server expects more")
			return r
		}
		msg = next
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// wantErr checks err against the expected sentinel (nil = success).
func wantErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("error = %v, want %v", err, want)
	}
}
