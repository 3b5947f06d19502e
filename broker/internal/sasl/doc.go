// Package sasl is the server side of the SASL mechanisms Strata offers on
// SASL_PLAINTEXT and SASL_SSL listeners: PLAIN (RFC 4616), SCRAM-SHA-256 and
// SCRAM-SHA-512 (RFC 5802, RFC 7677) and OAUTHBEARER (RFC 7628) with JWT
// bearer tokens checked against a JWKS.
//
// The broker turns a SaslHandshake into Config.Start and feeds each
// SaslAuthenticate's bytes to Session.Step; the package knows nothing of
// Kafka framing. It behaves as Apache Kafka's SASL servers do where clients
// can tell (message grammar, SCRAM's server-first and server-final, no
// authorization identity other than the authenticated user, no channel
// binding, no delegation tokens).
//
// # Invariants
//
//   - A session succeeds only after it has verified a credential: a PLAIN
//     password (compared in constant time), a SCRAM proof (RFC 5802's
//     H(ClientProof XOR ClientSignature) == StoredKey, in constant time), or
//     a JWT whose signature, exp, nbf, iat, iss and aud pass.
//   - A failed or finished session refuses every further message.
//   - Errors wrap ErrAuthFailed (the credential was refused) or ErrMalformed
//     (the message broke the grammar) and say why in words that are safe to
//     log: user names and key ids, quoted and truncated, never passwords,
//     proofs or tokens. They are for the broker's log and metrics; clients
//     should get one generic message so an attacker learns nothing from it.
//   - SCRAM does not reveal whether a user exists: an unknown user (or one
//     without a credential for the mechanism) gets a server-first message
//     with a salt derived from the name under a per-process secret and the
//     usual iteration count, and the exchange fails only at the proof.
//   - OAUTHBEARER accepts unsigned (alg "none") tokens only when
//     OAuthConfig.AllowUnsecured is set, and never HMAC-signed ones.
//
// # Concurrency
//
// A Config is read-only after construction and is shared by every
// connection. A Session belongs to one connection and is not safe for
// concurrent use. An OAuthValidator is safe for concurrent use: its key set
// is replaced atomically; reloads are serialized by one mutex. For an
// http(s) JWKS one goroutine, owned by the validator and stopped by Close,
// refreshes it every OAuthConfig.Refresh; a token naming an unknown key id
// triggers an extra fetch at most once per 10 s. A file JWKS is re-read by
// the validating goroutine when the file's modification time or size
// changes, checked at most once a second. A failed reload keeps the last
// good key set and logs a warning.
package sasl
