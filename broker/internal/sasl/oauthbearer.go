package sasl

import (
	"strings"
	"time"
)

// oauthSession is the server side of RFC 7628 as Kafka uses it: a single
// client message
//
//	gs2-header %x01 "auth=Bearer " token %x01 *(key "=" value %x01) %x01
//
// On failure RFC 7628 has the server send a JSON error and wait for a
// dummy %x01 from the client; here the session ends at once and the broker
// answers SaslAuthenticate with an error, which is what Kafka clients expect.
type oauthSession struct {
	v         *OAuthValidator
	now       func() time.Time
	finished  bool
	principal string
	expiry    time.Time
}

func (s *oauthSession) Principal() string { return s.principal }
func (s *oauthSession) Expiry() time.Time { return s.expiry }

func (s *oauthSession) Step(msg []byte) ([]byte, bool, error) {
	if s.finished {
		return nil, false, errFinished(OAuthBearer)
	}
	s.finished = true
	authzid, token, err := parseOAuthBearer(msg)
	if err != nil {
		return nil, false, err
	}
	info, err := s.v.validate(token, s.now())
	if err != nil {
		return nil, false, err
	}
	if authzid != "" && principalOf(authzid) != info.principal {
		return nil, false, authFailed(OAuthBearer, "authorization id differs from the token's principal %q", truncate(info.principal))
	}
	s.principal, s.expiry = info.principal, info.expiry
	return nil, true, nil
}

// parseOAuthBearer splits the client's initial response into the gs2
// authorization id and the bearer token. Extensions are checked for syntax
// and otherwise ignored, as Kafka ignores those no callback validates.
func parseOAuthBearer(msg []byte) (authzid, token string, err error) {
	m := string(msg)
	_, authzid, rest, err := parseGS2Header(OAuthBearer, m)
	if err != nil {
		return "", "", err
	}
	// rest is %x01 kvpair %x01 ... kvpair %x01 %x01 with at least one pair.
	body, ok := strings.CutPrefix(rest, "\x01")
	if !ok {
		return "", "", malformed(OAuthBearer, "missing separator after the gs2 header")
	}
	body, ok = strings.CutSuffix(body, "\x01\x01")
	if !ok || body == "" {
		return "", "", malformed(OAuthBearer, "message does not end with the key-value pairs and a final separator")
	}
	seen := make(map[string]struct{}, 2)
	auth := ""
	for _, kv := range strings.Split(body, "\x01") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !isAlpha(k) || !oauthValue(v) {
			return "", "", malformed(OAuthBearer, "bad key-value pair")
		}
		if _, dup := seen[k]; dup {
			return "", "", malformed(OAuthBearer, "duplicate key")
		}
		seen[k] = struct{}{}
		if k == "auth" {
			auth = v
		}
	}
	if _, ok := seen["auth"]; !ok {
		return "", "", malformed(OAuthBearer, "no auth key")
	}
	// RFC 6750: "Bearer" (case-insensitive scheme) 1*SP b64token.
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", "", malformed(OAuthBearer, "auth value is not a bearer token")
	}
	tok = strings.TrimLeft(tok, " ")
	if !b64token(tok) {
		return "", "", malformed(OAuthBearer, "bearer token has characters outside b64token")
	}
	return authzid, tok, nil
}

// oauthValue: RFC 7628 value = *(VCHAR / SP / HTAB / CR / LF).
func oauthValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(0x21 <= c && c <= 0x7e || c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			return false
		}
	}
	return true
}

func isAlpha(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func b64token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	return strings.IndexFunc(body, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' ||
			strings.ContainsRune("-._~+/", r))
	}) < 0
}
