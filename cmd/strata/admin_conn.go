package main

// Connection flags shared by every admin command: TLS (optionally with a
// client certificate) and SASL PLAIN/SCRAM, each with a STRATA_*
// environment fallback so that scripts can keep secrets out of argv,
// which every user of the machine can read through ps.
//
// The flags are checked before anything is dialled: a combination that
// cannot be what the operator meant (a CA without --tls, a user without a
// mechanism, a certificate file without a key) is a usage error naming
// the flag or variable, because a client that silently ignored it would
// connect in the clear or without credentials and fail in a confusing way
// later.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

const (
	envTLS           = envPrefix + "TLS"
	envTLSCA         = envPrefix + "TLS_CA"
	envTLSCert       = envPrefix + "TLS_CERT"
	envTLSKey        = envPrefix + "TLS_KEY"
	envTLSServerName = envPrefix + "TLS_SERVER_NAME"
	envSASLMechanism = envPrefix + "SASL_MECHANISM"
	envSASLUser      = envPrefix + "SASL_USER"
	envSASLPassword  = envPrefix + "SASL_PASSWORD"
)

// adminEnvVars are the environment variables the admin CLI reads. None of
// them is a serve config key (a test checks), so exporting them for the
// CLI never changes a broker's configuration.
var adminEnvVars = []string{
	envBootstrap, envTLS, envTLSCA, envTLSCert, envTLSKey, envTLSServerName,
	envSASLMechanism, envSASLUser, envSASLPassword, envUserPassword,
}

// saslMechanisms are the mechanisms the CLI can authenticate with.
// OAUTHBEARER is left out: it needs a token source, not a password.
var saslMechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// connFlags are the connection flags as parsed; resolve combines them
// with the environment.
type connFlags struct {
	tls                                 bool
	tlsCA, tlsCert, tlsKey, tlsServer   string
	saslMechanism, saslUser, saslPasswd string
}

func addConnFlags(fs *pflag.FlagSet) *connFlags {
	c := &connFlags{}
	fs.BoolVar(&c.tls, "tls", false, "connect with TLS (env "+envTLS+"=true)")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "PEM `FILE` of the CAs to trust (env "+envTLSCA+"; default: the system's roots)")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM `FILE` of a client certificate for mutual TLS; may hold the key too (env "+envTLSCert+")")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM `FILE` of the private key of --tls-cert, if not in that file (env "+envTLSKey+")")
	fs.StringVar(&c.tlsServer, "tls-server-name", "", "`NAME` to verify the broker's certificate against (env "+envTLSServerName+"; default: the host dialled)")
	fs.StringVar(&c.saslMechanism, "sasl-mechanism", "", "authenticate with SASL `MECHANISM`: "+strings.Join(saslMechanisms, ", ")+" (env "+envSASLMechanism+")")
	fs.StringVar(&c.saslUser, "sasl-user", "", "SASL `USER` name (env "+envSASLUser+")")
	fs.StringVar(&c.saslPasswd, "sasl-password", "", "SASL `PASSWORD`; prefer env "+envSASLPassword+": flags are visible to other users in ps")
	return c
}

// connSetting is one resolved value and where it came from ("--tls-ca" or
// "STRATA_TLS_CA"), for messages.
type connSetting struct{ val, from string }

// connConfig is how to reach and authenticate to the broker.
type connConfig struct {
	tls       *tls.Config // nil: plaintext
	mechanism string      // "": no SASL
	user      string
	sasl      sasl.Mechanism
}

// resolve applies flags over the environment (getenv) and checks the
// combination; every error is a usageError naming a flag or variable.
func (c *connFlags) resolve(fs *pflag.FlagSet, getenv func(string) string) (connConfig, error) {
	pick := func(flag, env, val string) connSetting {
		if fs.Changed(flag) {
			return connSetting{val, "--" + flag}
		}
		if v := getenv(env); v != "" {
			return connSetting{v, env}
		}
		return connSetting{}
	}
	useTLS := c.tls
	if !fs.Changed("tls") {
		if v := getenv(envTLS); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return connConfig{}, usagef("%s=%q: want true or false", envTLS, v)
			}
			useTLS = b
		}
	}
	ca := pick("tls-ca", envTLSCA, c.tlsCA)
	cert := pick("tls-cert", envTLSCert, c.tlsCert)
	key := pick("tls-key", envTLSKey, c.tlsKey)
	server := pick("tls-server-name", envTLSServerName, c.tlsServer)
	mech := pick("sasl-mechanism", envSASLMechanism, c.saslMechanism)
	user := pick("sasl-user", envSASLUser, c.saslUser)
	pass := pick("sasl-password", envSASLPassword, c.saslPasswd)

	var cc connConfig
	for _, s := range []connSetting{ca, cert, key, server} {
		if s.from != "" && !useTLS {
			return cc, usagef("%s needs --tls (or %s=true)", s.from, envTLS)
		}
	}
	for _, s := range []connSetting{ca, cert, key, server, user} {
		if s.from != "" && s.val == "" {
			return cc, usagef("%s is empty", s.from)
		}
	}
	if key.from != "" && cert.from == "" {
		return cc, usagef("%s needs --tls-cert", key.from)
	}
	if useTLS {
		var err error
		if cc.tls, err = clientTLS(ca, cert, key, server.val); err != nil {
			return connConfig{}, err
		}
	}

	if mech.from == "" {
		for _, s := range []connSetting{user, pass} {
			if s.from != "" {
				return cc, usagef("%s needs --sasl-mechanism (%s)", s.from, strings.Join(saslMechanisms, ", "))
			}
		}
		return cc, nil
	}
	cc.mechanism = strings.ToUpper(mech.val)
	if user.from == "" {
		return connConfig{}, usagef("%s %s needs --sasl-user", mech.from, cc.mechanism)
	}
	if pass.val == "" {
		return connConfig{}, usagef("%s %s needs a password: set %s (or --sasl-password)", mech.from, cc.mechanism, envSASLPassword)
	}
	cc.user = user.val
	switch cc.mechanism {
	case "PLAIN":
		cc.sasl = plain.Auth{User: user.val, Pass: pass.val}.AsMechanism()
	case "SCRAM-SHA-256":
		cc.sasl = scram.Auth{User: user.val, Pass: pass.val}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		cc.sasl = scram.Auth{User: user.val, Pass: pass.val}.AsSha512Mechanism()
	default:
		return connConfig{}, usagef("%s %q: want %s", mech.from, mech.val, strings.Join(saslMechanisms, ", "))
	}
	return cc, nil
}

// clientTLS builds the TLS config. Files that cannot be used are usage
// errors: like a bad config key for serve, the operator must fix them.
func clientTLS(ca, cert, key connSetting, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if ca.from != "" {
		data, err := os.ReadFile(ca.val)
		if err != nil {
			return nil, usagef("%s: %v", ca.from, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, usagef("%s %s: no PEM certificate in it", ca.from, ca.val)
		}
		cfg.RootCAs = pool
	}
	if cert.from != "" {
		keyFile, keyFrom := key.val, key.from
		if keyFrom == "" {
			keyFile, keyFrom = cert.val, cert.from
		}
		pair, err := tls.LoadX509KeyPair(cert.val, keyFile)
		if err != nil {
			if key.from == "" {
				return nil, usagef("%s %s: %v (put the key in that file too, or give --tls-key)", cert.from, cert.val, err)
			}
			return nil, usagef("%s %s with %s %s: %v", cert.from, cert.val, keyFrom, keyFile, err)
		}
		// Always present the certificate the operator named. Go's default
		// would hold back one whose issuer is not among the CAs the
		// broker lists as acceptable, and the broker's refusal of a
		// client without a certificate would hide the real mistake.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	}
	return cfg, nil
}

// opts are the client options for the connection.
func (c connConfig) opts() []kgo.Opt {
	var opts []kgo.Opt
	if c.tls != nil {
		opts = append(opts, kgo.DialTLSConfig(c.tls))
	}
	if c.sasl != nil {
		opts = append(opts, kgo.SASL(c.sasl))
	}
	return opts
}

// explain puts what the operator can do about a failed connection in
// front of the client's error: franz-go's errors name the protocol step,
// not the flag to change.
func (c connConfig) explain(err error) error {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		header    tls.RecordHeaderError
		op        *net.OpError
		firstEOF  *kgo.ErrFirstReadEOF
	)
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return fmt.Errorf("authentication failed: the broker refused user %q with %s (wrong user name or password?): %w", c.user, c.mechanism, err)
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Errorf("authentication failed: the listener does not offer %s: %w", c.mechanism, err)
	case errors.Is(err, kerr.IllegalSaslState):
		return fmt.Errorf("authentication failed: the listener does not take SASL with %s (is it a SASL_* listener?): %w", c.mechanism, err)
	case errors.As(err, &unknownCA):
		return fmt.Errorf("TLS: the broker's certificate is not signed by a trusted CA (give its CA with --tls-ca): %w", err)
	case errors.As(err, &hostname):
		return fmt.Errorf("TLS: the broker's certificate is not for the host dialled (see --tls-server-name): %w", err)
	case errors.As(err, &invalid):
		return fmt.Errorf("TLS: the broker's certificate is not valid: %w", err)
	case errors.As(err, &header):
		return fmt.Errorf("TLS: the listener does not speak TLS (drop --tls, or use the SSL/SASL_SSL listener's address): %w", err)
	case errors.As(err, &op) && op.Op == "remote error":
		// A TLS alert from the broker: with a client certificate
		// required, the usual cause is a missing or untrusted one.
		return fmt.Errorf("TLS: the broker refused the handshake (does it need a client certificate, --tls-cert?): %w", err)
	case errors.As(err, &firstEOF) && c.tls != nil:
		return fmt.Errorf("TLS: the listener closed the connection at once, as one that does not speak TLS does "+
			"(drop --tls, or use an SSL or SASL_SSL listener's address): %w", err)
	case errors.As(err, &firstEOF) && c.mechanism == "":
		return fmt.Errorf("the listener closed the connection at once (does it need --tls or --sasl-mechanism?): %w", err)
	case errors.As(err, &firstEOF):
		return fmt.Errorf("the listener closed the connection at once (does it need --tls?): %w", err)
	}
	return err
}
