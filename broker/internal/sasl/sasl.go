package sasl

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Mechanism names as they appear in SaslHandshake and sasl.enabled.mechanisms.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
	OAuthBearer = "OAUTHBEARER"
)

var (
	// ErrUnsupportedMechanism: the mechanism is unknown, not enabled, or lacks
	// what it needs (OAUTHBEARER without a validator).
	ErrUnsupportedMechanism = errors.New("sasl: unsupported mechanism")
	// ErrAuthFailed: the client's credential was refused. The wrapping error
	// says why in terms that are safe to log (never a password or a token);
	// clients should get a generic message so failures cannot be told apart.
	ErrAuthFailed = errors.New("sasl: authentication failed")
	// ErrMalformed: the client's message does not follow the mechanism's grammar.
	ErrMalformed = errors.New("sasl: malformed message")
)

// Config is the server side of every mechanism on one listener. It is read
// only after construction, so one Config serves all connections at once.
type Config struct {
	Mechanisms []string          // enabled
	PlainUsers map[string]string // user -> password
	// Scram looks up the stored credential of user for mech (ScramSHA256 or
	// ScramSHA512). It is called once per exchange, on the connection's goroutine.
	Scram func(user, mech string) (Credential, bool)
	OAuth *OAuthValidator  // nil: OAUTHBEARER not available
	Now   func() time.Time // nil = time.Now
}

// Session is one authentication exchange. It is not safe for concurrent use:
// a connection drives its own session.
type Session interface {
	// Step takes the client's next token, returns the server's reply token. done=true when
	// authentication succeeded (reply may still be non-empty: SCRAM server-final). err wraps
	// ErrAuthFailed or ErrMalformed; the session is then dead.
	Step(client []byte) (reply []byte, done bool, err error)
	Principal() string // "User:<name>" once done
	Expiry() time.Time // zero unless the credential expires (OAUTHBEARER exp)
}

// Start begins an exchange for one SaslHandshake mechanism.
func (c *Config) Start(mechanism string) (Session, error) {
	enabled := false
	for _, m := range c.Mechanisms {
		if m == mechanism {
			enabled = true
			break
		}
	}
	if !enabled {
		return nil, fmt.Errorf("%w: %q is not enabled", ErrUnsupportedMechanism, truncate(mechanism))
	}
	switch mechanism {
	case Plain:
		return &plainSession{users: c.PlainUsers}, nil
	case ScramSHA256, ScramSHA512:
		return newScramSession(mechanism, c.Scram), nil
	case OAuthBearer:
		if c.OAuth == nil {
			return nil, fmt.Errorf("%w: %s has no token validator configured", ErrUnsupportedMechanism, OAuthBearer)
		}
		return &oauthSession{v: c.OAuth, now: c.now}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupportedMechanism, truncate(mechanism))
}

func (c *Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// parseGS2Header splits the GS2 header (RFC 5801) that SCRAM and
// OAUTHBEARER messages start with:
//
//	("n" / "y" / "p=" cb-name) "," ["a=" saslname] ","
//
// Channel binding ("p=") is refused: Kafka has none, and a client that
// demands it must not be authenticated without it. "y" (the client could
// bind but believes the server cannot) is accepted: it is true, so there is
// no downgrade to detect.
func parseGS2Header(mech, msg string) (header, authzid, rest string, err error) {
	switch {
	case strings.HasPrefix(msg, "p="):
		return "", "", "", authFailed(mech, "client asked for channel binding, which is not supported")
	case strings.HasPrefix(msg, "n,"), strings.HasPrefix(msg, "y,"):
	default:
		return "", "", "", malformed(mech, "bad gs2 header")
	}
	authzField, rest, ok := strings.Cut(msg[2:], ",")
	if !ok {
		return "", "", "", malformed(mech, "bad gs2 header")
	}
	if authzField != "" {
		a, ok := strings.CutPrefix(authzField, "a=")
		if !ok {
			return "", "", "", malformed(mech, "bad gs2 authorization id")
		}
		if authzid, ok = decodeSaslName(a); !ok {
			return "", "", "", malformed(mech, "bad gs2 authorization id")
		}
	}
	return msg[:len(msg)-len(rest)], authzid, rest, nil
}

// principalOf is Kafka's KafkaPrincipal toString for a user.
func principalOf(user string) string { return "User:" + user }

func authFailed(mech, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrAuthFailed, mech, fmt.Sprintf(format, args...))
}

func malformed(mech, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformed, mech, fmt.Sprintf(format, args...))
}

// errFinished is returned by a session stepped after it succeeded or failed:
// a client that keeps talking after the end is broken or probing.
func errFinished(mech string) error {
	return malformed(mech, "message after the exchange ended")
}

// truncate bounds client-supplied strings (user names, claim values) before
// they go into error messages, which end up in logs; callers quote with %q so
// control characters cannot forge log lines.
func truncate(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}
