package sasl

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"time"
	"unicode/utf8"
)

// plainSession is RFC 4616: one message "authzid NUL authcid NUL passwd".
type plainSession struct {
	users     map[string]string
	finished  bool
	principal string
}

func (s *plainSession) Principal() string { return s.principal }
func (s *plainSession) Expiry() time.Time { return time.Time{} }

func (s *plainSession) Step(msg []byte) ([]byte, bool, error) {
	if s.finished {
		return nil, false, errFinished(Plain)
	}
	s.finished = true
	user, err := s.check(msg)
	if err != nil {
		return nil, false, err
	}
	s.principal = principalOf(user)
	return nil, true, nil
}

func (s *plainSession) check(msg []byte) (string, error) {
	authzid, rest, ok := bytes.Cut(msg, []byte{0})
	if !ok {
		return "", malformed(Plain, "expected authzid NUL authcid NUL password")
	}
	authcid, passwd, ok := bytes.Cut(rest, []byte{0})
	if !ok || bytes.IndexByte(passwd, 0) >= 0 {
		return "", malformed(Plain, "expected authzid NUL authcid NUL password")
	}
	if len(authcid) == 0 || len(passwd) == 0 {
		return "", malformed(Plain, "empty user name or password")
	}
	if !utf8.Valid(authzid) || !utf8.Valid(authcid) || !utf8.Valid(passwd) {
		return "", malformed(Plain, "credentials are not UTF-8")
	}
	user := string(authcid)
	if len(authzid) > 0 && string(authzid) != user {
		// Kafka has no proxy authorization: acting as someone else is refused.
		return "", authFailed(Plain, "user %q asked for a different authorization id", truncate(user))
	}
	want, known := s.users[user]
	// Comparing digests keeps the comparison constant-time in the length of
	// the password too; unknown users are compared against an empty password
	// so both failures cost the same.
	got := sha256.Sum256(passwd)
	exp := sha256.Sum256([]byte(want))
	match := subtle.ConstantTimeCompare(got[:], exp[:]) == 1
	switch {
	case !known:
		return "", authFailed(Plain, "unknown user %q", truncate(user))
	case !match:
		return "", authFailed(Plain, "wrong password for user %q", truncate(user))
	}
	return user, nil
}
