package broker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/strata-broker/strata/broker/internal/acl"
	"github.com/strata-broker/strata/broker/internal/quota"
	"github.com/strata-broker/strata/broker/internal/sasl"
)

// Security wiring: SASL mechanisms, the authorizer and client quotas are
// built from the config at start; ACLs, SCRAM credentials and quotas live
// in the metadata quorum and reach the in-memory authorizer and quota
// manager through refreshSecurity whenever metadata's SecurityVersion
// moves.

// authorizerClassNames are the authorizer.class.name values that turn ACL
// enforcement on: Kafka's own class names, so existing configs carry over.
var authorizerClassNames = map[string]bool{
	"org.apache.kafka.metadata.authorizer.StandardAuthorizer": true,
	"kafka.security.authorizer.AclAuthorizer":                 true,
	"kafka.security.auth.SimpleAclAuthorizer":                 true,
}

var knownMechanisms = map[string]bool{sasl.Plain: true, sasl.ScramSHA256: true, sasl.ScramSHA512: true, sasl.OAuthBearer: true}

// scramMechanismCode is DescribeUserScramCredentials' code for a mechanism.
func scramMechanismCode(mech string) int8 {
	switch mech {
	case sasl.ScramSHA256:
		return 1
	case sasl.ScramSHA512:
		return 2
	}
	return 0
}

func splitSep(s, sep string) []string {
	var out []string
	for _, f := range strings.Split(s, sep) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parsePlainUsers reads sasl.plain.users: user:password,...
func parsePlainUsers(s string) (map[string]string, error) {
	users := map[string]string{}
	for _, f := range splitSep(s, ",") {
		user, pass, ok := strings.Cut(f, ":")
		if !ok || user == "" || pass == "" {
			return nil, fmt.Errorf("want user:password,..., got an entry %q", strings.SplitN(f, ":", 2)[0]+":...")
		}
		if _, dup := users[user]; dup {
			return nil, fmt.Errorf("user %q listed twice", user)
		}
		users[user] = pass
	}
	return users, nil
}

// validateSecurity checks the SASL, authorizer and quota keys.
func (c *Config) validateSecurity(bad func(key, format string, args ...any)) {
	for _, m := range splitSep(c.SASLEnabledMechanisms, ",") {
		if !knownMechanisms[m] {
			bad("sasl.enabled.mechanisms", "unknown mechanism %q (want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)", m)
		}
		if m == sasl.OAuthBearer && c.SASLOAuthJWKSURL == "" && !c.SASLOAuthUnsecuredJWT {
			bad("sasl.oauthbearer.jwks.endpoint.url", "OAUTHBEARER is enabled but no JWKS is configured (set it, or sasl.oauthbearer.unsecured.jwt.enable=true for development)")
		}
	}
	if u := c.SASLOAuthJWKSURL; u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "file://") {
		bad("sasl.oauthbearer.jwks.endpoint.url", "want https://..., http://... or file:///path, got %q", u)
	}
	if c.SASLOAuthJWKSRefreshMs < 1000 {
		bad("sasl.oauthbearer.jwks.endpoint.refresh.ms", "must be >= 1000, got %d", c.SASLOAuthJWKSRefreshMs)
	}
	if c.SASLOAuthClockSkewSeconds < 0 {
		bad("sasl.oauthbearer.clock.skew.seconds", "must be >= 0, got %d", c.SASLOAuthClockSkewSeconds)
	}
	if c.SASLOAuthSubClaimName == "" {
		bad("sasl.oauthbearer.sub.claim.name", "must not be empty")
	}
	if _, err := parsePlainUsers(c.SASLPlainUsers); err != nil {
		bad("sasl.plain.users", "%v", err)
	}
	if c.ConnectionsMaxReauthMs < 0 {
		bad("connections.max.reauth.ms", "must be >= 0, got %d", c.ConnectionsMaxReauthMs)
	}
	if c.ConnectionFailedAuthDelayMs < 0 {
		bad("connection.failed.authentication.delay.ms", "must be >= 0, got %d", c.ConnectionFailedAuthDelayMs)
	}
	if n := c.AuthorizerClassName; n != "" && !authorizerClassNames[n] {
		bad("authorizer.class.name", "unknown authorizer %q (want empty, or org.apache.kafka.metadata.authorizer.StandardAuthorizer)", n)
	}
	for _, p := range splitSep(c.SuperUsers, ";") {
		if typ, name, ok := strings.Cut(p, ":"); !ok || typ == "" || name == "" {
			bad("super.users", "want Type:name;Type:name (for example User:admin), got %q", p)
		}
	}
	if c.QuotaWindowNum < 2 {
		bad("quota.window.num", "must be >= 2, got %d", c.QuotaWindowNum)
	}
	if c.QuotaWindowSizeSeconds < 1 {
		bad("quota.window.size.seconds", "must be >= 1, got %d", c.QuotaWindowSizeSeconds)
	}
	if c.MaxConnectionsPerIP < 1 {
		bad("max.connections.per.ip", "must be >= 1, got %d", c.MaxConnectionsPerIP)
	}
}

// openSecurity builds the SASL config, the authorizer and the quota
// manager. Called from New once metadata is ready.
func (s *Server) openSecurity(ctx context.Context) error {
	cfg := s.cfg
	m, err := newSecurityMetrics(s.metrics.meter)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	s.secMetrics = m
	users, _ := parsePlainUsers(cfg.SASLPlainUsers) // validated
	mechs := splitSep(cfg.SASLEnabledMechanisms, ",")
	s.saslCfg = &sasl.Config{
		Mechanisms: mechs,
		PlainUsers: users,
		Scram: func(user, mech string) (sasl.Credential, bool) {
			c, ok := s.meta.ScramCredential(user, scramMechanismCode(mech))
			if !ok {
				return sasl.Credential{}, false
			}
			return sasl.Credential{Iterations: int(c.Iterations), Salt: c.Salt, StoredKey: c.StoredKey, ServerKey: c.ServerKey}, true
		},
		Now: s.now,
	}
	for _, mech := range mechs {
		if mech != sasl.OAuthBearer || !s.hasSASLListener() {
			continue
		}
		v, err := sasl.NewOAuthValidator(ctx, sasl.OAuthConfig{
			JWKSURL:        cfg.SASLOAuthJWKSURL,
			Refresh:        time.Duration(cfg.SASLOAuthJWKSRefreshMs) * time.Millisecond,
			Audience:       splitSep(cfg.SASLOAuthExpectedAudience, ","),
			Issuer:         cfg.SASLOAuthExpectedIssuer,
			SubClaim:       cfg.SASLOAuthSubClaimName,
			ClockSkew:      time.Duration(cfg.SASLOAuthClockSkewSeconds) * time.Second,
			AllowUnsecured: cfg.SASLOAuthUnsecuredJWT,
			Logger:         s.log.With("component", "oauthbearer"),
		})
		if err != nil {
			return &ConfigError{Key: "sasl.oauthbearer.jwks.endpoint.url", Msg: err.Error()}
		}
		s.saslCfg.OAuth = v
		if cfg.SASLOAuthUnsecuredJWT {
			s.log.Warn("OAUTHBEARER accepts unsigned tokens (sasl.oauthbearer.unsecured.jwt.enable): for development only")
		}
	}
	if cfg.AuthorizerClassName != "" {
		s.authz = acl.New(acl.Config{SuperUsers: splitSep(cfg.SuperUsers, ";"), AllowIfNoACL: cfg.AllowEveryoneIfNoACLFound})
	}
	s.quotas = quota.New(quota.Config{
		Samples: int(cfg.QuotaWindowNum),
		Window:  time.Duration(cfg.QuotaWindowSizeSeconds) * time.Second,
	})
	s.connLimits = newConnLimits(int(cfg.MaxConnectionsPerIP))
	s.refreshSecurity()
	return nil
}

// hasSASLListener reports whether any listener speaks SASL.
func (s *Server) hasSASLListener() bool {
	for _, l := range s.listeners {
		if l.sasl() {
			return true
		}
	}
	return false
}

// refreshSecurity pushes changed ACLs and quotas from metadata into the
// authorizer and quota manager. Cheap when nothing changed.
func (s *Server) refreshSecurity() {
	s.secMu.Lock()
	defer s.secMu.Unlock()
	v := s.meta.SecurityVersion()
	if s.secLoaded && v == s.secVersion {
		return
	}
	if s.authz != nil {
		s.authz.Update(s.meta.ACLs())
	}
	s.quotas.Update(s.meta.ClientQuotas())
	s.secVersion, s.secLoaded = v, true
}

func (s *Server) closeSecurity() {
	if s.saslCfg != nil && s.saslCfg.OAuth != nil {
		s.saslCfg.OAuth.Close()
	}
}

func (s *Server) now() time.Time {
	if s.cfg.clock != nil {
		return s.cfg.clock()
	}
	return time.Now()
}

// connLimits enforces max.connections.per.ip.
type connLimits struct {
	max  int
	mu   sync.Mutex
	open map[string]int
}

func newConnLimits(max int) *connLimits { return &connLimits{max: max, open: map[string]int{}} }

func (l *connLimits) acquire(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip] >= l.max {
		return false
	}
	l.open[ip]++
	return true
}

func (l *connLimits) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
	}
}

// admit decides whether a new connection from ip may be served: the
// per-IP connection count and the connection_creation_rate quota. A
// refused connection is closed at once, with a log line and a metric.
func (s *Server) admit(ip string) bool {
	if !s.connLimits.acquire(ip) {
		s.log.Warn("closing connection: too many connections from one address", "ip", ip, "max.connections.per.ip", s.cfg.MaxConnectionsPerIP)
		s.secMetrics.connRejected.Add(context.Background(), 1, s.secMetrics.reasonTooMany)
		return false
	}
	if !s.quotas.AllowConnection(ip) {
		s.connLimits.release(ip)
		s.log.Warn("closing connection: connection_creation_rate quota exceeded", "ip", ip)
		s.secMetrics.connRejected.Add(context.Background(), 1, s.secMetrics.reasonRate)
		return false
	}
	return true
}

// securityMetrics are the authentication, connection-limit and throttle
// instruments.
type securityMetrics struct {
	authFailures  metric.Int64Counter
	authSuccesses metric.Int64Counter
	connRejected  metric.Int64Counter
	throttle      metric.Float64Histogram

	mu                        sync.Mutex
	mechAttrs                 map[string]metric.MeasurementOption
	reasonTooMany, reasonRate metric.MeasurementOption
	quotaProduce, quotaFetch  metric.MeasurementOption
	quotaRequest              metric.MeasurementOption
}

func newSecurityMetrics(mt metric.Meter) (*securityMetrics, error) {
	m := &securityMetrics{mechAttrs: map[string]metric.MeasurementOption{}}
	var err error
	if m.authFailures, err = mt.Int64Counter("strata_broker_authentication_failures", metric.WithDescription("Failed SASL authentications, by mechanism.")); err != nil {
		return nil, err
	}
	if m.authSuccesses, err = mt.Int64Counter("strata_broker_authentications", metric.WithDescription("Successful SASL authentications and re-authentications, by mechanism.")); err != nil {
		return nil, err
	}
	if m.connRejected, err = mt.Int64Counter("strata_broker_connections_rejected", metric.WithDescription("Connections closed at once by max.connections.per.ip or the connection_creation_rate quota, by reason.")); err != nil {
		return nil, err
	}
	if m.throttle, err = mt.Float64Histogram("strata_broker_throttle_time", metric.WithUnit("s"),
		metric.WithDescription("Throttle time given to clients over their quota, by quota."),
		metric.WithExplicitBucketBoundaries(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)); err != nil {
		return nil, err
	}
	attr := func(k, v string) metric.MeasurementOption {
		return metric.WithAttributeSet(attribute.NewSet(attribute.String(k, v)))
	}
	m.reasonTooMany, m.reasonRate = attr("reason", "max_connections_per_ip"), attr("reason", "connection_creation_rate")
	m.quotaProduce, m.quotaFetch, m.quotaRequest = attr("quota", "producer_byte_rate"), attr("quota", "consumer_byte_rate"), attr("quota", "request_percentage")
	return m, nil
}

func (m *securityMetrics) mech(name string) metric.MeasurementOption {
	if !knownMechanisms[name] {
		name = "unknown" // a client's string must not mint label values
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.mechAttrs[name]
	if !ok {
		o = metric.WithAttributeSet(attribute.NewSet(attribute.String("mechanism", name)))
		m.mechAttrs[name] = o
	}
	return o
}

func (m *securityMetrics) authFailure(mech string) {
	m.authFailures.Add(context.Background(), 1, m.mech(mech))
}

func (m *securityMetrics) authSuccess(mech string) {
	m.authSuccesses.Add(context.Background(), 1, m.mech(mech))
}
