package broker

// Listeners as in Apache Kafka: `listeners` names each socket
// (NAME://host:port), `listener.security.protocol.map` gives each name its
// protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL) and
// `advertised.listeners` what clients are told to connect to. A client is
// always told the address of the listener it came in on (Metadata,
// FindCoordinator, DescribeCluster), so an internal and an external
// network each see addresses they can reach.
//
// Without `listeners` there is one listener named PLAINTEXT on `listen`,
// advertised as `advertised-addr`: Strata's original single-socket setup.
// With `listeners`, `listen` and `advertised-addr` are ignored.
//
// Differences from Apache Kafka: listener names are upper-case only; no
// listener.name.<name>.* overrides (one set of ssl.* files for every TLS
// listener; ssl.client.auth applies to SSL listeners and, as in Kafka
// without a listener prefix, not to SASL_SSL ones); a listener bound to
// all interfaces without an advertised.listeners entry advertises
// 127.0.0.1 (with a warning) where Kafka refuses to start. Only the first
// listener is registered in the metadata quorum (other brokers' listeners
// come with clustering), so other brokers appear at their first listener's
// address in every response.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Security protocols of listener.security.protocol.map.
const (
	protoPlaintext     = "PLAINTEXT"
	protoSSL           = "SSL"
	protoSASLPlaintext = "SASL_PLAINTEXT"
	protoSASLSSL       = "SASL_SSL"
)

// listener is one bound Kafka listener; immutable once New returns.
type listener struct {
	name     string // e.g. PLAINTEXT, INTERNAL, EXTERNAL
	protocol string // PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
	advHost  string // what clients on this listener are told
	advPort  int32
	ln       net.Listener
	tls      *tls.Config // nil unless SSL or SASL_SSL

	attrs metric.MeasurementOption // listener=<name>, built once
}

// sasl reports whether connections must authenticate with SASL first.
func (l *listener) sasl() bool { return l.protocol == protoSASLPlaintext || l.protocol == protoSASLSSL }

// usesTLS reports whether connections start with a TLS handshake.
func (l *listener) usesTLS() bool { return protocolUsesTLS(l.protocol) }

func (l *listener) advertised() string {
	return net.JoinHostPort(l.advHost, strconv.Itoa(int(l.advPort)))
}

func protocolUsesTLS(p string) bool { return p == protoSSL || p == protoSASLSSL }

// listenerSpec is a listener as configured, before binding.
type listenerSpec struct {
	name, protocol string
	bind           string // host:port to listen on
	key            string // the config key the bind address came from
	advHost        string // from advertised.listeners (or advertised-addr); advSet false: not given
	advPort        int
	advSet         bool
}

// listenerSpecs reads listeners, advertised.listeners and
// listener.security.protocol.map. Every error is a *ConfigError.
func (c *Config) listenerSpecs() ([]listenerSpec, error) {
	var specs []listenerSpec
	protos, err := parseProtocolMap(c.ListenerSecurityProtocolMap)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(c.Listeners) == "" {
		// Strata's original setup: one PLAINTEXT listener on listen. Its
		// protocol does not depend on the map, which may not mention it.
		sp := listenerSpec{name: protoPlaintext, protocol: protoPlaintext, bind: c.Listen, key: "listen"}
		if c.AdvertisedAddr != "" && c.AdvertisedAddr != c.Listen {
			host, port, err := splitHostPortNum(c.AdvertisedAddr)
			if err != nil {
				return nil, &ConfigError{Key: "advertised-addr", Msg: err.Error()}
			}
			sp.advHost, sp.advPort, sp.advSet = host, port, true
		}
		specs = append(specs, sp)
	} else {
		ports := map[int]string{}
		for _, entry := range commaList(c.Listeners) {
			name, host, port, err := parseListenerURL(entry)
			if err != nil {
				return nil, &ConfigError{Key: "listeners", Msg: err.Error()}
			}
			for _, sp := range specs {
				if sp.name == name {
					return nil, &ConfigError{Key: "listeners", Msg: fmt.Sprintf("listener name %s is used twice", name)}
				}
			}
			if other, dup := ports[port]; dup && port != 0 {
				return nil, &ConfigError{Key: "listeners", Msg: fmt.Sprintf("listeners %s and %s both use port %d", other, name, port)}
			}
			ports[port] = name
			proto, ok := protos[name]
			if !ok {
				return nil, &ConfigError{Key: "listener.security.protocol.map", Msg: fmt.Sprintf("no security protocol for listener %s (add %s:PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)", name, name)}
			}
			specs = append(specs, listenerSpec{name: name, protocol: proto, bind: net.JoinHostPort(host, strconv.Itoa(port)), key: "listeners"})
		}
		if len(specs) == 0 {
			return nil, &ConfigError{Key: "listeners", Msg: fmt.Sprintf("want NAME://host:port,..., got %q", c.Listeners)}
		}
	}
	seen := map[string]bool{}
	for _, entry := range commaList(c.AdvertisedListeners) {
		name, host, port, err := parseListenerURL(entry)
		if err != nil {
			return nil, &ConfigError{Key: "advertised.listeners", Msg: err.Error()}
		}
		if seen[name] {
			return nil, &ConfigError{Key: "advertised.listeners", Msg: fmt.Sprintf("listener %s is advertised twice", name)}
		}
		seen[name] = true
		if host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
			return nil, &ConfigError{Key: "advertised.listeners", Msg: fmt.Sprintf("%s must name a host clients can reach, got %q", name, entry)}
		}
		i := indexOfListener(specs, name)
		if i < 0 {
			return nil, &ConfigError{Key: "advertised.listeners", Msg: fmt.Sprintf("%s is not a listener (listeners: %s)", name, listenerNames(specs))}
		}
		specs[i].advHost, specs[i].advPort, specs[i].advSet = host, port, true
	}
	return specs, nil
}

func indexOfListener(specs []listenerSpec, name string) int {
	for i, sp := range specs {
		if sp.name == name {
			return i
		}
	}
	return -1
}

func listenerNames(specs []listenerSpec) string {
	names := make([]string, len(specs))
	for i, sp := range specs {
		names[i] = sp.name
	}
	return strings.Join(names, ",")
}

// parseListenerURL reads NAME://host:port (host may be empty, IPv6 in
// brackets).
func parseListenerURL(s string) (name, host string, port int, err error) {
	name, addr, ok := strings.Cut(s, "://")
	if !ok {
		return "", "", 0, fmt.Errorf("want NAME://host:port, got %q", s)
	}
	if err := validListenerName(name); err != nil {
		return "", "", 0, err
	}
	host, port, err = splitHostPortNum(addr)
	if err != nil {
		return "", "", 0, fmt.Errorf("listener %s: %w", name, err)
	}
	return name, host, port, nil
}

func splitHostPortNum(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("want host:port, got %q", addr)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return host, port, nil
}

// validListenerName: upper-case letters, digits and underscores, so a
// name reads the same in every key that mentions it.
func validListenerName(name string) error {
	if name == "" {
		return errors.New("empty listener name")
	}
	for _, c := range name {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("listener name %q: use upper-case letters, digits and underscores", name)
		}
	}
	return nil
}

// parseProtocolMap reads listener.security.protocol.map: NAME:PROTOCOL,...
func parseProtocolMap(s string) (map[string]string, error) {
	bad := func(format string, args ...any) error {
		return &ConfigError{Key: "listener.security.protocol.map", Msg: fmt.Sprintf(format, args...)}
	}
	m := map[string]string{}
	for _, entry := range commaList(s) {
		name, proto, ok := strings.Cut(entry, ":")
		name, proto = strings.TrimSpace(name), strings.TrimSpace(proto)
		if !ok {
			return nil, bad("want NAME:PROTOCOL,..., got %q", entry)
		}
		if err := validListenerName(name); err != nil {
			return nil, bad("%v", err)
		}
		switch proto {
		case protoPlaintext, protoSSL, protoSASLPlaintext, protoSASLSSL:
		default:
			return nil, bad("listener %s: unknown security protocol %q (want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)", name, proto)
		}
		if _, dup := m[name]; dup {
			return nil, bad("listener %s is mapped twice", name)
		}
		m[name] = proto
	}
	return m, nil
}

// validateListeners checks the listener and ssl.* keys (called by
// Validate). Files are read by New, not here.
func (c *Config) validateListeners(bad func(key, format string, args ...any)) {
	if strings.TrimSpace(c.Listeners) == "" {
		// listen and advertised-addr only matter without listeners.
		if err := validHostPort(c.Listen); err != nil {
			bad("listen", "%v", err)
		}
		if c.AdvertisedAddr != "" {
			if err := validHostPort(c.AdvertisedAddr); err != nil {
				bad("advertised-addr", "%v", err)
			} else if h, _, _ := net.SplitHostPort(c.AdvertisedAddr); h == "" || h == "0.0.0.0" || h == "::" {
				bad("advertised-addr", "must name a host clients can reach, got %q", c.AdvertisedAddr)
			}
		}
	}
	specs, err := c.listenerSpecs()
	var ce *ConfigError
	switch {
	case err == nil:
	case errors.As(err, &ce) && (ce.Key == "listen" || ce.Key == "advertised-addr"):
		// reported above
	case ce != nil:
		bad(ce.Key, "%s", ce.Msg)
	default:
		bad("listeners", "%v", err)
	}
	if c.SSLKeystoreType != "PEM" {
		bad("ssl.keystore.type", "only PEM is supported, got %q (convert a JKS or PKCS12 keystore with keytool or openssl)", c.SSLKeystoreType)
	}
	clientAuth, err := parseClientAuth(c.SSLClientAuth)
	if err != nil {
		bad("ssl.client.auth", "%v", err)
	}
	if _, _, err := parseTLSVersions(c.SSLEnabledProtocols); err != nil {
		bad("ssl.enabled.protocols", "%v", err)
	}
	if _, err := parsePrincipalRules(c.SSLPrincipalMappingRules); err != nil {
		bad("ssl.principal.mapping.rules", "%v", err)
	}
	var tlsListener, sslListener string
	for _, sp := range specs {
		if protocolUsesTLS(sp.protocol) && tlsListener == "" {
			tlsListener = sp.name
		}
		if sp.protocol == protoSSL && sslListener == "" {
			sslListener = sp.name
		}
	}
	if c.SSLKeystoreLocation == "" {
		switch {
		case tlsListener != "":
			bad("ssl.keystore.location", "listener %s uses TLS and needs the broker's certificate and key", tlsListener)
		case c.ControllerTLS:
			bad("ssl.keystore.location", "controller-tls needs the broker's certificate and key")
		}
	}
	if c.SSLTruststoreLocation == "" {
		switch {
		case sslListener != "" && clientAuth != tls.NoClientCert:
			bad("ssl.truststore.location", "ssl.client.auth=%s needs the CAs that client certificates must chain to", c.SSLClientAuth)
		case c.ControllerTLS:
			bad("ssl.truststore.location", "controller-tls needs the CAs that other brokers' certificates chain to")
		}
	}
}

func parseClientAuth(s string) (tls.ClientAuthType, error) {
	switch s {
	case "none", "":
		return tls.NoClientCert, nil
	case "requested":
		return tls.VerifyClientCertIfGiven, nil
	case "required":
		return tls.RequireAndVerifyClientCert, nil
	}
	return 0, fmt.Errorf("want none, requested or required, got %q", s)
}

// parseTLSVersions reads ssl.enabled.protocols into a version range.
func parseTLSVersions(s string) (lo, hi uint16, err error) {
	for _, p := range commaList(s) {
		var v uint16
		switch p {
		case "TLSv1.2":
			v = tls.VersionTLS12
		case "TLSv1.3":
			v = tls.VersionTLS13
		case "TLSv1", "TLSv1.1", "SSLv3", "SSLv2Hello":
			return 0, 0, fmt.Errorf("%s is not supported: it is insecure (use TLSv1.2 and/or TLSv1.3)", p)
		default:
			return 0, 0, fmt.Errorf("unknown protocol %q (want TLSv1.2 and/or TLSv1.3)", p)
		}
		if lo == 0 || v < lo {
			lo = v
		}
		hi = max(hi, v)
	}
	if lo == 0 {
		return 0, 0, errors.New("no protocol enabled (want TLSv1.2 and/or TLSv1.3)")
	}
	return lo, hi, nil
}

// openListeners binds every listener. TLS material must be loaded
// (openTLS) first.
func (s *Server) openListeners() error {
	specs, err := s.cfg.listenerSpecs()
	if err != nil {
		return err
	}
	if strings.TrimSpace(s.cfg.Listeners) != "" && (s.cfg.AdvertisedAddr != "" || s.cfg.Listen != DefaultConfig().Listen) {
		s.log.Info("listeners is set: listen and advertised-addr are ignored", "listeners", s.cfg.Listeners)
	}
	for _, sp := range specs {
		ln, err := net.Listen("tcp", sp.bind)
		if err != nil {
			return &ConfigError{Key: sp.key, Msg: fmt.Sprintf("listener %s: %v", sp.name, err)}
		}
		l := &listener{
			name: sp.name, protocol: sp.protocol, ln: ln,
			attrs: metric.WithAttributeSet(attribute.NewSet(attribute.String("listener", sp.name))),
		}
		s.listeners = append(s.listeners, l) // closed by closeResources from here on
		if l.usesTLS() {
			l.tls = s.tls.listenerConfig(l.protocol == protoSSL)
		}
		bindHost, _, _ := net.SplitHostPort(sp.bind)
		_, boundPort, _ := splitHostPortNum(ln.Addr().String())
		host, port := bindHost, boundPort
		if sp.advSet {
			host, port = sp.advHost, sp.advPort
			if port == 0 {
				port = boundPort // listening on :0 (tests) advertises the port it got
			}
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
			if sp.key == "listeners" {
				s.log.Warn("listener binds every interface and has no advertised.listeners entry: advertising 127.0.0.1, which only local clients can reach",
					"listener", sp.name)
			}
		}
		l.advHost, l.advPort = host, int32(port)
		s.log.Info("listener started", "listener", l.name, "protocol", l.protocol, "addr", ln.Addr().String(), "advertised", l.advertised())
	}
	return nil
}

// ListenerAddr is the bound address of the named listener, nil if there
// is none.
func (s *Server) ListenerAddr(name string) net.Addr {
	for _, l := range s.listeners {
		if l.name == name {
			return l.ln.Addr()
		}
	}
	return nil
}

// selfAddr is this broker's address as the client of r must see it: the
// advertised address of the listener the request came in on.
func (s *Server) selfAddr(r *request) (string, int32) {
	l := s.listeners[0]
	if r != nil && r.cc != nil && r.cc.listener != nil {
		l = r.cc.listener
	}
	return l.advHost, l.advPort
}

// acceptLoop serves one listener until it is closed. Connections are
// set up (TLS handshake included) on their own goroutine, so a slow or
// hostile client cannot hold up the others.
func (s *Server) acceptLoop(l *listener) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, keep serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "listener", l.name, "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		c := newClientConn(s, nc, l)
		s.connsMu.Lock()
		if s.ctx.Err() != nil {
			s.connsMu.Unlock()
			c.cancel()
			nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.connsMu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.connsMu.Lock()
			delete(s.conns, c)
			s.connsMu.Unlock()
		}()
	}
}

// tlsFailure counts a refused TLS connection.
func (s *Server) tlsFailure(l *listener) {
	if s.metrics.tlsHandshakeFailures != nil {
		s.metrics.tlsHandshakeFailures.Add(context.Background(), 1, l.attrs)
	}
}

// commaList splits a comma-separated setting, dropping empty entries.
func commaList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
