package broker

// TLS for SSL and SASL_SSL listeners (and the Raft transport with
// controller-tls): the keystore (certificate chain + private key) and the
// truststore (CA bundle for client certificates) are PEM files read at
// start and read again when their modification time or size changes, so
// certificates rotate without a restart. A file is looked at (stat) at
// most once a second, on the next handshake; a new version that does not
// parse is logged once and the previous one stays in use.
//
// The handshake runs on the connection's goroutine with a deadline; a
// failure is logged at info, counted in
// strata_broker_tls_handshake_failures_total and closes the connection.
// On an SSL listener a verified client certificate names the principal
// ("User:" + the subject DN mapped by ssl.principal.mapping.rules);
// otherwise the principal stays User:ANONYMOUS (SASL_SSL: until SASL).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
)

const (
	tlsHandshakeTimeout = 10 * time.Second
	tlsReloadCheck      = time.Second // stat the files at most this often
)

// tlsMaterial is the broker's TLS state shared by every TLS listener.
type tlsMaterial struct {
	keystore   *fileReloader[*tls.Certificate]
	truststore *fileReloader[*x509.CertPool] // nil without ssl.truststore.location
	minVersion uint16
	maxVersion uint16
	clientAuth tls.ClientAuthType // ssl.client.auth, for SSL listeners
	mapper     *principalMapper
}

// openTLS loads the keystore and truststore when a listener or the Raft
// transport needs them. Missing or unparsable files are ConfigErrors
// naming their key.
func (s *Server) openTLS() error {
	cfg := s.cfg
	c, err := s.metrics.meter.Int64Counter("strata_broker_tls_handshake_failures",
		metric.WithDescription("TLS connections refused: failed handshakes (bad or missing client certificate, wrong protocol version...) and client certificates no ssl.principal.mapping.rules rule matches, by listener."))
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	s.metrics.tlsHandshakeFailures = c

	specs, err := cfg.listenerSpecs()
	if err != nil {
		return err
	}
	need := cfg.ControllerTLS
	for _, sp := range specs {
		need = need || protocolUsesTLS(sp.protocol)
	}
	if !need {
		return nil
	}
	t := &tlsMaterial{}
	if t.minVersion, t.maxVersion, err = parseTLSVersions(cfg.SSLEnabledProtocols); err != nil {
		return &ConfigError{Key: "ssl.enabled.protocols", Msg: err.Error()}
	}
	if t.clientAuth, err = parseClientAuth(cfg.SSLClientAuth); err != nil {
		return &ConfigError{Key: "ssl.client.auth", Msg: err.Error()}
	}
	if t.mapper, err = parsePrincipalRules(cfg.SSLPrincipalMappingRules); err != nil {
		return &ConfigError{Key: "ssl.principal.mapping.rules", Msg: err.Error()}
	}
	log := s.log.With("component", "tls")
	if t.keystore, err = newFileReloader("ssl.keystore.location", cfg.SSLKeystoreLocation, parseKeystore, log, s.now); err != nil {
		return err
	}
	if cfg.SSLTruststoreLocation != "" {
		if t.truststore, err = newFileReloader("ssl.truststore.location", cfg.SSLTruststoreLocation, parseTruststore, log, s.now); err != nil {
			return err
		}
	}
	s.tls = t
	if leaf := t.keystore.get().Leaf; leaf != nil {
		log.Info("TLS keystore loaded", "path", cfg.SSLKeystoreLocation, "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
	}
	return nil
}

// listenerConfig is the server config of an SSL (ssl=true) or SASL_SSL
// listener. Each handshake gets the current certificate and CAs.
func (t *tlsMaterial) listenerConfig(ssl bool) *tls.Config {
	auth := tls.NoClientCert
	if ssl {
		auth = t.clientAuth // Kafka applies unprefixed ssl.client.auth to SSL listeners only
	}
	base := &tls.Config{MinVersion: t.minVersion, MaxVersion: t.maxVersion, ClientAuth: auth}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := &tls.Config{
			MinVersion:   t.minVersion,
			MaxVersion:   t.maxVersion,
			ClientAuth:   auth,
			Certificates: []tls.Certificate{*t.keystore.get()},
			// A resumed session skips certificate verification, so a CA
			// removed from the truststore would still let its clients in.
			// Kafka clients keep connections for long; full handshakes cost
			// little.
			SessionTicketsDisabled: auth != tls.NoClientCert,
		}
		if auth != tls.NoClientCert {
			c.ClientCAs = t.truststore.get()
		}
		return c, nil
	}
	return base
}

// controllerTLS is the mutual-TLS config for the Raft transport
// (controller-tls): the broker's keystore certificate, reloaded like the
// listeners', presented both as server and as client, and peers verified
// against the truststore (read now: a truststore change needs a restart
// here). Dialers must set ServerName (tls.Dial does it from the address).
func (s *Server) controllerTLS() (*tls.Config, error) {
	t := s.tls
	if t == nil || t.truststore == nil {
		return nil, &ConfigError{Key: "controller-tls", Msg: "needs ssl.keystore.location and ssl.truststore.location"}
	}
	pool := t.truststore.get()
	return &tls.Config{
		MinVersion: t.minVersion,
		MaxVersion: t.maxVersion,
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  pool,
		RootCAs:    pool,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return t.keystore.get(), nil
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return t.keystore.get(), nil
		},
	}, nil
}

// tlsHandshake completes the TLS handshake of a connection on a TLS
// listener and, on an SSL listener, takes the principal from a verified
// client certificate. It must run before the first request is read.
// false means the connection is refused (already logged and counted); the
// caller closes it.
func (c *clientConn) tlsHandshake() bool {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return true
	}
	ctx, cancel := context.WithTimeout(c.ctx, tlsHandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		if c.s.ctx.Err() != nil {
			return false // shutting down: not the client's fault
		}
		c.log.Info("TLS handshake failed", "listener", c.listener.name, "err", err)
		c.s.tlsFailure(c.listener)
		return false
	}
	if c.listener.protocol != protoSSL {
		return true // SASL_SSL: SASL names the principal
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return true // no client certificate (ssl.client.auth=none or requested): ANONYMOUS
	}
	dn, err := subjectDN(st.PeerCertificates[0].RawSubject)
	if err == nil {
		var name string
		if name, err = c.s.tls.mapper.name(dn); err == nil {
			c.principal = "User:" + name
			c.log.Debug("TLS client authenticated", "principal", c.principal)
			return true
		}
	}
	c.log.Info("closing connection: no principal for the client certificate", "listener", c.listener.name, "err", err)
	c.s.tlsFailure(c.listener)
	return false
}

// parseKeystore reads the certificate chain (leaf first) and the
// unencrypted private key (PKCS#8, PKCS#1 or SEC 1 EC) from one PEM file.
func parseKeystore(data []byte) (*tls.Certificate, error) {
	var certs, keys int
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE":
			certs++
		case b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED"):
			return nil, errors.New("the private key is encrypted; Strata reads unencrypted PEM keys only (decrypt it with openssl pkey)")
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			keys++
		}
	}
	if certs == 0 {
		return nil, errors.New("no CERTIFICATE block in the PEM file")
	}
	if keys == 0 {
		return nil, errors.New("no PRIVATE KEY block in the PEM file")
	}
	cert, err := tls.X509KeyPair(data, data)
	if err != nil {
		return nil, err
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &cert, nil
}

// parseTruststore reads a PEM bundle of CA certificates.
func parseTruststore(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, errors.New("no CERTIFICATE block in the PEM file")
	}
	return pool, nil
}

// fileReloader holds the parsed content of a file and parses it again
// when the file changes.
type fileReloader[T any] struct {
	key, path string
	parse     func([]byte) (T, error)
	log       *slog.Logger
	now       func() time.Time

	mu      sync.Mutex // guards everything below; held while re-reading
	cur     T
	stamp   fileStamp // version cur was read from
	failed  fileStamp // last version that could not be used (logged once)
	checked time.Time
}

// fileStamp identifies a version of a file: rewriting it in place or
// renaming a new one over it changes one of these.
type fileStamp struct {
	modNanos int64
	size     int64
}

func statFile(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{modNanos: fi.ModTime().UnixNano(), size: fi.Size()}, nil
}

func newFileReloader[T any](key, path string, parse func([]byte) (T, error), log *slog.Logger, now func() time.Time) (*fileReloader[T], error) {
	r := &fileReloader[T]{key: key, path: path, parse: parse, log: log, now: now}
	st, err := statFile(path)
	if err == nil {
		var data []byte
		if data, err = os.ReadFile(path); err == nil {
			r.cur, err = parse(data)
		}
	}
	if err != nil {
		return nil, &ConfigError{Key: key, Msg: fmt.Sprintf("%s: %v", path, err)}
	}
	r.stamp, r.checked = st, now()
	return r, nil
}

// get returns the current content, first reading the file again if it
// changed (looked at no more than once per tlsReloadCheck).
func (r *fileReloader[T]) get() T {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.checked) < tlsReloadCheck && !now.Before(r.checked) {
		return r.cur
	}
	r.checked = now
	st, err := statFile(r.path)
	if err != nil {
		if r.failed != (fileStamp{modNanos: -1}) {
			r.failed = fileStamp{modNanos: -1}
			r.log.Error("cannot read "+r.key+"; keeping the previous one", "path", r.path, "err", err)
		}
		return r.cur
	}
	if st == r.stamp || st == r.failed {
		return r.cur
	}
	data, err := os.ReadFile(r.path)
	var v T
	if err == nil {
		v, err = r.parse(data)
	}
	if err != nil {
		r.failed = st
		r.log.Error("cannot reload "+r.key+"; keeping the previous one", "path", r.path, "err", err)
		return r.cur
	}
	r.cur, r.stamp, r.failed = v, st, fileStamp{}
	r.log.Info("reloaded "+r.key, "path", r.path)
	return r.cur
}
