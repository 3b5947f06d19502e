package sasl

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Kafka's bounds on SCRAM iteration counts (AlterUserScramCredentials
// refuses others).
const (
	MinIterations = 4096
	MaxIterations = 16384
)

// Credential is what the server stores for one SCRAM user and mechanism
// (RFC 5802 section 3); the password itself is never kept.
type Credential struct {
	Iterations                 int
	Salt, StoredKey, ServerKey []byte
}

func scramHash(mech string) func() hash.Hash {
	switch mech {
	case ScramSHA256:
		return sha256.New
	case ScramSHA512:
		return sha512.New
	}
	return nil
}

// SaltPassword is Hi() of RFC 5802 (PBKDF2 with HMAC of the mechanism's
// hash). It returns nil for an unknown mechanism or a non-positive count.
// Like Kafka, the password is used as its UTF-8 bytes without SASLprep.
func SaltPassword(mech string, password string, salt []byte, iterations int) []byte {
	h := scramHash(mech)
	if h == nil || iterations < 1 {
		return nil
	}
	k, err := pbkdf2.Key(h, password, salt, iterations, h().Size())
	if err != nil {
		return nil
	}
	return k
}

// CredentialFromSalted computes StoredKey/ServerKey from a salted password (what
// AlterUserScramCredentials carries). mech is ScramSHA256 or ScramSHA512.
// An unknown mechanism gives the zero Credential, which never authenticates:
// the input comes from clients, so it must not be able to crash the broker.
func CredentialFromSalted(mech string, salt, saltedPassword []byte, iterations int) Credential {
	h := scramHash(mech)
	if h == nil {
		return Credential{}
	}
	clientKey := hmacSum(h, saltedPassword, []byte("Client Key"))
	d := h()
	d.Write(clientKey)
	return Credential{
		Iterations: iterations,
		Salt:       bytes.Clone(salt),
		StoredKey:  d.Sum(nil),
		ServerKey:  hmacSum(h, saltedPassword, []byte("Server Key")),
	}
}

func hmacSum(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

// fakeSecret keys the credentials invented for unknown users. It is random
// per process: were it fixed (or derived from public data) a prober could
// compute the fake salt of any name and spot it in the server-first message.
var fakeSecret = sync.OnceValue(func() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
})

// fakeCredential stands in for a user that does not exist (or whose stored
// credential is unusable): the exchange then looks the same as for a real
// user and fails only at the proof. The salt depends only on the name, so
// asking twice gives the same answer, as it would for a real user.
func fakeCredential(h func() hash.Hash, mech, user string) Credential {
	seed := hmacSum(sha256.New, fakeSecret(), []byte(mech+"\x00"+user))
	return Credential{
		Iterations: MinIterations,
		Salt:       seed,
		StoredKey:  hmacSum(h, seed, []byte("stored")),
		ServerKey:  hmacSum(h, seed, []byte("server")),
	}
}

type scramState int8

const (
	scramWantFirst scramState = iota
	scramWantFinal
	scramDone // succeeded or failed; any further message is an error
)

// scramSession is the server side of RFC 5802 / RFC 7677 without channel
// binding, as Kafka runs it.
type scramSession struct {
	mech   string
	h      func() hash.Hash
	lookup func(user, mech string) (Credential, bool)
	state  scramState

	user      string
	gs2Header string // as sent, e.g. "n,," or "y,a=bob,"
	cred      Credential
	// fake is the reason to fail once the proof arrives, for users that must
	// not be revealed as unknown before then.
	fake        string
	firstBare   string // client-first-message-bare
	serverFirst string
	nonce       string // client nonce + server nonce
	principal   string
	// serverNonce, when set, replaces the random server nonce so tests can
	// replay RFC 7677's example exchange byte for byte.
	serverNonce func() string
}

func newScramSession(mech string, lookup func(user, mech string) (Credential, bool)) *scramSession {
	return &scramSession{mech: mech, h: scramHash(mech), lookup: lookup}
}

func (s *scramSession) Principal() string { return s.principal }
func (s *scramSession) Expiry() time.Time { return time.Time{} }

func (s *scramSession) Step(msg []byte) ([]byte, bool, error) {
	switch s.state {
	case scramWantFirst:
		s.state = scramDone
		reply, err := s.clientFirst(string(msg))
		if err != nil {
			return nil, false, err
		}
		s.state = scramWantFinal
		return reply, false, nil
	case scramWantFinal:
		s.state = scramDone
		reply, err := s.clientFinal(string(msg))
		if err != nil {
			return nil, false, err
		}
		s.principal = principalOf(s.user)
		return reply, true, nil
	}
	return nil, false, errFinished(s.mech)
}

// clientFirst handles gs2-header client-first-message-bare:
//
//	("n" / "y") "," ["a=" saslname] "," ["m=" ...] "n=" saslname "," "r=" nonce ["," ext]*
func (s *scramSession) clientFirst(msg string) ([]byte, error) {
	gs2, authzid, bare, err := parseGS2Header(s.mech, msg)
	if err != nil {
		return nil, err
	}
	s.gs2Header = gs2
	s.firstBare = bare
	if strings.HasPrefix(bare, "m=") {
		return nil, authFailed(s.mech, "client sent a mandatory extension, none is supported")
	}
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 {
		return nil, malformed(s.mech, "client-first message lacks user name or nonce")
	}
	name, ok := strings.CutPrefix(attrs[0], "n=")
	if !ok {
		return nil, malformed(s.mech, "client-first message does not start with the user name")
	}
	user, ok := decodeSaslName(name)
	if !ok {
		return nil, malformed(s.mech, "bad user name encoding")
	}
	cnonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok || !printableNonce(cnonce) {
		return nil, malformed(s.mech, "missing or non-printable client nonce")
	}
	ext, err := s.extensions(attrs[2:])
	if err != nil {
		return nil, err
	}
	if v, ok := ext["tokenauth"]; ok && strings.EqualFold(v, "true") {
		return nil, authFailed(s.mech, "delegation token authentication is not supported (user %q)", truncate(user))
	}
	if authzid != "" && authzid != user {
		return nil, authFailed(s.mech, "user %q asked for a different authorization id", truncate(user))
	}
	s.user = user

	cred, found := Credential{}, false
	if s.lookup != nil {
		cred, found = s.lookup(user, s.mech)
	}
	size := s.h().Size()
	switch {
	case !found:
		s.fake = "unknown user"
	case cred.Iterations < 1 || len(cred.Salt) == 0 || len(cred.StoredKey) != size || len(cred.ServerKey) != size:
		s.fake = "stored credential is unusable"
	}
	if s.fake != "" {
		cred = fakeCredential(s.h, s.mech, user)
	}
	s.cred = cred

	if s.serverNonce != nil {
		s.nonce = cnonce + s.serverNonce()
	} else {
		// 192 bits from crypto/rand; base64url keeps it within RFC 5802's
		// printable set (no ',').
		var rnd [24]byte
		rand.Read(rnd[:])
		s.nonce = cnonce + base64.RawURLEncoding.EncodeToString(rnd[:])
	}
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(cred.Salt) +
		",i=" + strconv.Itoa(cred.Iterations)
	return []byte(s.serverFirst), nil
}

// extensions parses attr=value pairs after the nonce. Kafka uses them for
// KIP-48 (tokenauth); anything else is ignored, as Kafka does.
func (s *scramSession) extensions(attrs []string) (map[string]string, error) {
	if len(attrs) == 0 {
		return nil, nil
	}
	ext := make(map[string]string, len(attrs))
	for _, a := range attrs {
		k, v, ok := strings.Cut(a, "=")
		if !ok || !isAlnum(k) {
			return nil, malformed(s.mech, "bad extension")
		}
		if _, dup := ext[k]; dup {
			return nil, malformed(s.mech, "duplicate extension")
		}
		ext[k] = v
	}
	return ext, nil
}

// clientFinal handles
//
//	"c=" base64(gs2-header) "," "r=" nonce ["," ext]* "," "p=" base64(proof)
func (s *scramSession) clientFinal(msg string) ([]byte, error) {
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, malformed(s.mech, "client-final message has no proof")
	}
	withoutProof, proofB64 := msg[:i], msg[i+len(",p="):]
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 {
		return nil, malformed(s.mech, "client-final message lacks channel binding or nonce")
	}
	cb, ok := strings.CutPrefix(attrs[0], "c=")
	if !ok {
		return nil, malformed(s.mech, "client-final message does not start with channel binding")
	}
	nonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok {
		return nil, malformed(s.mech, "client-final message lacks the nonce")
	}
	if _, err := s.extensions(attrs[2:]); err != nil {
		return nil, err
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil {
		return nil, malformed(s.mech, "proof is not base64")
	}
	// Without channel binding the client echoes its gs2 header ("biws" for
	// "n,,", "eSws" for "y,,"); anything else means the header was altered in
	// transit or the client believes it negotiated something else.
	if cb != base64.StdEncoding.EncodeToString([]byte(s.gs2Header)) {
		return nil, authFailed(s.mech, "channel binding does not match the gs2 header (user %q)", truncate(s.user))
	}
	// Kafka accepts a client-final nonce that ends with the combined
	// nonce, and librdkafka relies on it: it sends its own nonce again in
	// front. The proof covers the message as sent, so this loosens nothing.
	if !strings.HasSuffix(nonce, s.nonce) {
		return nil, authFailed(s.mech, "nonce does not match (user %q)", truncate(s.user))
	}
	if len(proof) != s.h().Size() {
		return nil, authFailed(s.mech, "proof has the wrong length (user %q)", truncate(s.user))
	}

	authMsg := make([]byte, 0, len(s.firstBare)+len(s.serverFirst)+len(withoutProof)+2)
	authMsg = append(authMsg, s.firstBare...)
	authMsg = append(authMsg, ',')
	authMsg = append(authMsg, s.serverFirst...)
	authMsg = append(authMsg, ',')
	authMsg = append(authMsg, withoutProof...)

	// ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the client
	// knows the password iff H(ClientKey) == StoredKey.
	clientKey := hmacSum(s.h, s.cred.StoredKey, authMsg)
	subtle.XORBytes(clientKey, clientKey, proof)
	d := s.h()
	d.Write(clientKey)
	valid := subtle.ConstantTimeCompare(d.Sum(nil), s.cred.StoredKey) == 1
	if s.fake != "" {
		return nil, authFailed(s.mech, "%s %q", s.fake, truncate(s.user))
	}
	if !valid {
		return nil, authFailed(s.mech, "invalid proof (wrong password?) for user %q", truncate(s.user))
	}
	serverSig := hmacSum(s.h, s.cred.ServerKey, authMsg)
	reply := make([]byte, 0, 2+base64.StdEncoding.EncodedLen(len(serverSig)))
	reply = append(reply, "v="...)
	reply = base64.StdEncoding.AppendEncode(reply, serverSig)
	return reply, nil
}

// decodeSaslName undoes RFC 5802's escaping: "=2C" is ',' and "=3D" is '=';
// any other '=' (and NUL, and invalid UTF-8) makes the name malformed.
func decodeSaslName(s string) (string, bool) {
	if s == "" || !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return "", false
	}
	if strings.IndexByte(s, '=') < 0 {
		return s, true
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}

// printableNonce: RFC 5802 "printable", %x21-7E except ','.
func printableNonce(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

func isAlnum(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
