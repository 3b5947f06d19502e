package sasl

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// OAuthConfig configures OAUTHBEARER token validation (Kafka's
// sasl.oauthbearer.* broker settings).
type OAuthConfig struct {
	JWKSURL        string        // https://..., http://... or file:///path
	Refresh        time.Duration // http(s) JWKS refresh period; 0 = 1h (Kafka's default)
	Audience       []string      // when set, aud must contain one of these
	Issuer         string        // when set, iss must equal it
	SubClaim       string        // claim naming the principal; "" = "sub"
	ClockSkew      time.Duration // tolerance for exp, nbf and iat
	AllowUnsecured bool          // alg=none accepted (and then no JWKS needed)
	HTTPClient     *http.Client  // nil = a client with a 10 s timeout
	Logger         *slog.Logger  // nil = discard
}

const (
	defaultJWKSRefresh = time.Hour
	// fileCheckInterval bounds how often a file JWKS is stat'ed: often enough
	// that a rotated key works within a second, rarely enough to cost nothing.
	fileCheckInterval = time.Second
	// unknownKidInterval bounds JWKS fetches caused by tokens naming a kid we
	// do not have, so a client cannot turn bad tokens into a flood of fetches.
	unknownKidInterval = 10 * time.Second
	fetchTimeout       = 10 * time.Second
	maxJWKSBytes       = 1 << 20
)

// signedAlgs are the JWS algorithms accepted for signed tokens. HMAC
// algorithms are absent on purpose: a JWKS holds public keys, and accepting
// HS* would let anyone holding one sign tokens.
var signedAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.ES256, jose.ES384, jose.ES512,
}

// OAuthValidator checks OAUTHBEARER tokens (JWTs) against a JWKS. It is safe
// for concurrent use. The key set is swapped atomically; refreshes are
// serialized by refreshMu. An http(s) JWKS is refreshed by one background
// goroutine that Close stops and waits for; a file JWKS is re-read lazily by
// the validating goroutine when its modification time changes.
type OAuthValidator struct {
	cfg    OAuthConfig
	log    *slog.Logger
	client *http.Client
	url    string // http(s) source, or ""
	path   string // file source, or ""

	keys atomic.Pointer[[]jose.JSONWebKey] // public signing keys; nil when no JWKS is configured

	refreshMu    sync.Mutex // guards the fields below and serializes loads
	lastStat     time.Time  // file: when it was last stat'ed
	modTime      time.Time  // file: modification time of the loaded version
	size         int64      // file: size of the loaded version
	lastOnDemand time.Time  // http: last fetch caused by an unknown kid

	ctx       context.Context // ends at Close; bounds background fetches
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// NewOAuthValidator loads the JWKS once and fails if it cannot be read or
// holds no usable key. ctx bounds only that first load. For an http(s) JWKS
// a goroutine refreshes it every cfg.Refresh until Close.
func NewOAuthValidator(ctx context.Context, cfg OAuthConfig) (*OAuthValidator, error) {
	if cfg.SubClaim == "" {
		cfg.SubClaim = "sub"
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = defaultJWKSRefresh
	}
	if cfg.ClockSkew < 0 {
		cfg.ClockSkew = 0
	}
	v := &OAuthValidator{cfg: cfg, log: cfg.Logger, client: cfg.HTTPClient}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	v.log = v.log.With("component", "sasl-oauthbearer")
	if v.client == nil {
		v.client = &http.Client{Timeout: fetchTimeout}
	}
	if cfg.JWKSURL == "" {
		if !cfg.AllowUnsecured {
			return nil, errors.New("sasl: OAUTHBEARER needs a JWKS URL unless unsecured tokens are allowed")
		}
		v.ctx, v.cancel = context.WithCancel(context.Background())
		return v, nil
	}
	u, err := url.Parse(cfg.JWKSURL)
	if err != nil {
		return nil, fmt.Errorf("sasl: JWKS URL: %w", err)
	}
	switch u.Scheme {
	case "file":
		v.path = u.Path
		if v.path == "" {
			v.path = u.Opaque
		}
		if v.path == "" {
			return nil, fmt.Errorf("sasl: JWKS URL %q has no path", cfg.JWKSURL)
		}
		if err := v.loadFile(); err != nil {
			return nil, err
		}
	case "http", "https":
		v.url = cfg.JWKSURL
		if err := v.fetch(ctx); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("sasl: JWKS URL %q: scheme must be file, http or https", cfg.JWKSURL)
	}
	v.ctx, v.cancel = context.WithCancel(context.Background())
	if v.url != "" {
		v.wg.Add(1)
		go v.refreshLoop()
	}
	return v, nil
}

// Close stops the background refresh and waits for it. It is idempotent.
func (v *OAuthValidator) Close() {
	v.closeOnce.Do(func() {
		v.cancel()
		v.wg.Wait()
	})
}

func (v *OAuthValidator) refreshLoop() {
	defer v.wg.Done()
	t := time.NewTicker(v.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-v.ctx.Done():
			return
		case <-t.C:
			v.refreshMu.Lock()
			err := v.fetch(v.ctx)
			v.refreshMu.Unlock()
			if err != nil && v.ctx.Err() == nil {
				v.log.Warn("JWKS refresh failed; keeping the last good key set", "url", v.url, "err", err)
			}
		}
	}
}

// fetch downloads the http(s) JWKS and installs it if usable.
func (v *OAuthValidator) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.url, nil)
	if err != nil {
		return fmt.Errorf("sasl: JWKS %s: %w", v.url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return fmt.Errorf("sasl: JWKS %s: %w", v.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sasl: JWKS %s: HTTP status %d", v.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("sasl: JWKS %s: %w", v.url, err)
	}
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("sasl: JWKS %s: larger than %d bytes", v.url, maxJWKSBytes)
	}
	keys, err := v.parseJWKS(body)
	if err != nil {
		return fmt.Errorf("sasl: JWKS %s: %w", v.url, err)
	}
	v.keys.Store(&keys)
	return nil
}

// loadFile reads the file JWKS and installs it if usable. refreshMu must be
// held (or the validator not yet shared).
func (v *OAuthValidator) loadFile() error {
	f, err := os.Open(v.path)
	if err != nil {
		return fmt.Errorf("sasl: JWKS: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("sasl: JWKS: %w", err)
	}
	body, err := io.ReadAll(io.LimitReader(f, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("sasl: JWKS: %w", err)
	}
	// Remember this version even if it is unusable, so a broken file is
	// reported once per change rather than on every check.
	v.modTime, v.size = st.ModTime(), st.Size()
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("sasl: JWKS %s: larger than %d bytes", v.path, maxJWKSBytes)
	}
	keys, err := v.parseJWKS(body)
	if err != nil {
		return fmt.Errorf("sasl: JWKS %s: %w", v.path, err)
	}
	v.keys.Store(&keys)
	return nil
}

// checkFile re-reads the file JWKS when it changed, at most once per
// fileCheckInterval of now.
func (v *OAuthValidator) checkFile(now time.Time) {
	v.refreshMu.Lock()
	defer v.refreshMu.Unlock()
	if d := now.Sub(v.lastStat); d >= 0 && d < fileCheckInterval {
		return
	}
	v.lastStat = now
	st, err := os.Stat(v.path)
	if err != nil {
		v.log.Warn("JWKS file unreadable; keeping the last good key set", "path", v.path, "err", err)
		return
	}
	if st.ModTime().Equal(v.modTime) && st.Size() == v.size {
		return
	}
	if err := v.loadFile(); err != nil {
		v.log.Warn("JWKS file reload failed; keeping the last good key set", "path", v.path, "err", err)
		return
	}
	v.log.Info("JWKS file reloaded", "path", v.path)
}

// refetchForKid fetches an http(s) JWKS again because a token named a kid
// we lack (keys are rotated at the issuer before tokens use them), at most
// once per unknownKidInterval.
func (v *OAuthValidator) refetchForKid(now time.Time) bool {
	v.refreshMu.Lock()
	defer v.refreshMu.Unlock()
	if d := now.Sub(v.lastOnDemand); !v.lastOnDemand.IsZero() && d >= 0 && d < unknownKidInterval {
		return false
	}
	v.lastOnDemand = now
	if err := v.fetch(v.ctx); err != nil {
		v.log.Warn("JWKS fetch for an unknown key id failed; keeping the last good key set", "url", v.url, "err", err)
		return false
	}
	return true
}

// parseJWKS keeps the usable public signing keys of a JWKS document. Keys of
// types we cannot use are skipped (RFC 7517 section 5 says to ignore them)
// rather than failing the whole set, so one exotic key at the issuer does not
// lock everyone out.
func (v *OAuthValidator) parseJWKS(body []byte) ([]jose.JSONWebKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("not a JWKS document: %w", err)
	}
	keys := make([]jose.JSONWebKey, 0, len(doc.Keys))
	for i, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			v.log.Warn("skipping unusable JWKS key", "index", i, "err", err)
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if !k.IsPublic() {
			// A private key published by mistake still verifies through its
			// public half; never keep the private part around.
			k = k.Public()
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey:
			keys = append(keys, k)
		default:
			v.log.Warn("skipping JWKS key of an unsupported type", "index", i, "kid", k.KeyID)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable RSA or EC signing key")
	}
	return keys, nil
}

// candidates returns the keys that may have signed a token with this kid
// and alg: the key with that kid, or every key when the token names none.
func (v *OAuthValidator) candidates(kid, alg string) []jose.JSONWebKey {
	p := v.keys.Load()
	if p == nil {
		return nil
	}
	var out []jose.JSONWebKey
	for _, k := range *p {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		out = append(out, k)
	}
	return out
}

// tokenInfo is what a valid token tells the broker.
type tokenInfo struct {
	principal string
	expiry    time.Time
}

// validate checks a compact JWT and returns its principal and expiry. now is
// also the clock for the JWKS re-read limits, so tests drive both at once.
// Errors wrap ErrAuthFailed and never contain the token.
func (v *OAuthValidator) validate(token string, now time.Time) (tokenInfo, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return tokenInfo{}, authFailed(OAuthBearer, "token is not a compact JWS")
	}
	// Only alg is read here, to route unsecured tokens; go-jose parses the
	// header of signed ones itself.
	var hdr struct {
		Alg string `json:"alg"`
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &hdr) != nil {
		return tokenInfo{}, authFailed(OAuthBearer, "token header is not base64url JSON")
	}
	var payload []byte
	if strings.EqualFold(hdr.Alg, "none") {
		if !v.cfg.AllowUnsecured {
			return tokenInfo{}, authFailed(OAuthBearer, "unsecured token (alg none) refused")
		}
		if hdr.Alg != "none" || parts[2] != "" {
			return tokenInfo{}, authFailed(OAuthBearer, "unsecured token must have alg \"none\" and an empty signature")
		}
		if payload, err = base64.RawURLEncoding.DecodeString(parts[1]); err != nil {
			return tokenInfo{}, authFailed(OAuthBearer, "token payload is not base64url")
		}
	} else {
		if payload, err = v.verify(token, now); err != nil {
			return tokenInfo{}, err
		}
	}
	return v.checkClaims(payload, now)
}

// verify checks the signature of a signed token against the JWKS.
func (v *OAuthValidator) verify(token string, now time.Time) ([]byte, error) {
	if v.path == "" && v.url == "" {
		return nil, authFailed(OAuthBearer, "signed token but no JWKS is configured")
	}
	jws, err := jose.ParseSignedCompact(token, signedAlgs)
	if err != nil {
		return nil, authFailed(OAuthBearer, "token is malformed or uses an algorithm that is not allowed")
	}
	if len(jws.Signatures) != 1 {
		return nil, authFailed(OAuthBearer, "token must carry exactly one signature")
	}
	alg, kid := jws.Signatures[0].Header.Algorithm, jws.Signatures[0].Header.KeyID
	if v.path != "" {
		v.checkFile(now)
	}
	keys := v.candidates(kid, alg)
	if len(keys) == 0 && kid != "" && v.url != "" && v.refetchForKid(now) {
		keys = v.candidates(kid, alg)
	}
	if len(keys) == 0 {
		if kid != "" {
			return nil, authFailed(OAuthBearer, "no JWKS key with the token's key id %q", truncate(kid))
		}
		return nil, authFailed(OAuthBearer, "no JWKS key for algorithm %s", alg)
	}
	for _, k := range keys {
		if payload, err := jws.Verify(k.Key); err == nil {
			return payload, nil
		}
	}
	return nil, authFailed(OAuthBearer, "invalid token signature (key id %q)", truncate(kid))
}

// checkClaims applies the time, issuer and audience rules and extracts the
// principal from the configured claim.
func (v *OAuthValidator) checkClaims(payload []byte, now time.Time) (tokenInfo, error) {
	var claims map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil || claims == nil || dec.More() {
		return tokenInfo{}, authFailed(OAuthBearer, "token claims are not a JSON object")
	}
	skew := v.cfg.ClockSkew
	exp, ok, err := numericDate(claims, "exp")
	switch {
	case err != nil:
		return tokenInfo{}, err
	case !ok:
		return tokenInfo{}, authFailed(OAuthBearer, "token has no exp claim")
	case !now.Before(exp.Add(skew)):
		return tokenInfo{}, authFailed(OAuthBearer, "token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	for _, name := range []string{"nbf", "iat"} {
		t, ok, err := numericDate(claims, name)
		if err != nil {
			return tokenInfo{}, err
		}
		if ok && t.After(now.Add(skew)) {
			return tokenInfo{}, authFailed(OAuthBearer, "token %s claim %s is in the future", name, t.UTC().Format(time.RFC3339))
		}
	}
	if v.cfg.Issuer != "" {
		var iss string
		if raw, ok := claims["iss"]; !ok || json.Unmarshal(raw, &iss) != nil || iss != v.cfg.Issuer {
			return tokenInfo{}, authFailed(OAuthBearer, "token issuer %q is not the expected one", truncate(iss))
		}
	}
	if len(v.cfg.Audience) > 0 && !audienceMatches(claims["aud"], v.cfg.Audience) {
		return tokenInfo{}, authFailed(OAuthBearer, "token audience does not include an expected one")
	}
	var sub string
	if raw, ok := claims[v.cfg.SubClaim]; !ok || json.Unmarshal(raw, &sub) != nil || sub == "" {
		return tokenInfo{}, authFailed(OAuthBearer, "token has no non-empty string %q claim", truncate(v.cfg.SubClaim))
	}
	return tokenInfo{principal: principalOf(sub), expiry: exp}, nil
}

// numericDate reads an RFC 7519 NumericDate (seconds, possibly fractional).
func numericDate(claims map[string]json.RawMessage, name string) (time.Time, bool, error) {
	raw, ok := claims[name]
	if !ok || string(raw) == "null" {
		return time.Time{}, false, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return time.Time{}, false, authFailed(OAuthBearer, "token %s claim is not a number", name)
	}
	f, err := n.Float64()
	// Beyond ~35,000 years the conversion to time.Time would overflow.
	if err != nil || math.IsNaN(f) || math.Abs(f) > 1<<40 {
		return time.Time{}, false, authFailed(OAuthBearer, "token %s claim is out of range", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// audienceMatches: aud is a string or an array of strings (RFC 7519 4.1.3).
func audienceMatches(raw json.RawMessage, want []string) bool {
	if raw == nil {
		return false
	}
	var auds []string
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		auds = []string{one}
	} else if err := json.Unmarshal(raw, &auds); err != nil {
		return false
	}
	for _, a := range auds {
		for _, w := range want {
			if a == w {
				return true
			}
		}
	}
	return false
}
