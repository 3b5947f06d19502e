package broker

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestListenerConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		wantKey string // "" = valid
		wantMsg string // part of the message, when set
	}{
		{"defaults", func(*Config) {}, "", ""},
		{"one listener", func(c *Config) { c.Listeners = "PLAINTEXT://127.0.0.1:9092" }, "", ""},
		{"listen is ignored with listeners", func(c *Config) {
			c.Listen = "0.0.0.0:1234"
			c.Listeners = "PLAINTEXT://:9092"
		}, "", ""},
		{"several, IPv6, port 0 twice", func(c *Config) {
			c.Listeners = "PLAINTEXT://[::1]:9092, INTERNAL_2://:0,EXTERNAL://0.0.0.0:0"
			c.ListenerSecurityProtocolMap = "PLAINTEXT:PLAINTEXT,INTERNAL_2:SASL_PLAINTEXT,EXTERNAL:PLAINTEXT"
			c.AdvertisedListeners = "EXTERNAL://broker.example.com:9094"
		}, "", ""},
		{"bad listen is ignored with listeners", func(c *Config) {
			c.Listen = "nonsense"
			c.Listeners = "PLAINTEXT://:9092"
		}, "", ""},
		{"bad listen without listeners", func(c *Config) { c.Listen = "nonsense" }, "listen", "host:port"},
		{"advertised-addr 0.0.0.0", func(c *Config) { c.AdvertisedAddr = "0.0.0.0:9092" }, "advertised-addr", "reach"},
		{"advertised-addr without port", func(c *Config) { c.AdvertisedAddr = "kafka" }, "advertised-addr", "host:port"},
		{"lower-case name", func(c *Config) { c.Listeners = "plaintext://:9092" }, "listeners", "upper-case"},
		{"no scheme", func(c *Config) { c.Listeners = "127.0.0.1:9092" }, "listeners", "NAME://host:port"},
		{"no port", func(c *Config) { c.Listeners = "PLAINTEXT://localhost" }, "listeners", ""},
		{"bad port", func(c *Config) { c.Listeners = "PLAINTEXT://:99999" }, "listeners", "bad port"},
		{"only commas", func(c *Config) { c.Listeners = " , " }, "listeners", ""},
		{"name twice", func(c *Config) { c.Listeners = "PLAINTEXT://:9092,PLAINTEXT://:9093" }, "listeners", "twice"},
		{"port twice", func(c *Config) { c.Listeners = "PLAINTEXT://:9092,SASL_PLAINTEXT://127.0.0.1:9092" }, "listeners", "port 9092"},
		{"name not in the map", func(c *Config) { c.Listeners = "CLIENTS://:9092" }, "listener.security.protocol.map", "CLIENTS"},
		{"unknown protocol", func(c *Config) {
			c.Listeners = "CLIENTS://:9092"
			c.ListenerSecurityProtocolMap = "CLIENTS:TLS"
		}, "listener.security.protocol.map", "TLS"},
		{"map entry without protocol", func(c *Config) { c.ListenerSecurityProtocolMap = "PLAINTEXT" }, "listener.security.protocol.map", ""},
		{"map name twice", func(c *Config) {
			c.Listeners = "A://:9092"
			c.ListenerSecurityProtocolMap = "A:PLAINTEXT,A:SSL"
		}, "listener.security.protocol.map", "twice"},
		{"advertised unknown name", func(c *Config) { c.AdvertisedListeners = "EXTERNAL://h:1" }, "advertised.listeners", "not a listener"},
		{"advertised 0.0.0.0", func(c *Config) { c.AdvertisedListeners = "PLAINTEXT://0.0.0.0:9092" }, "advertised.listeners", "reach"},
		{"advertised ::", func(c *Config) { c.AdvertisedListeners = "PLAINTEXT://[::]:9092" }, "advertised.listeners", "reach"},
		{"advertised without host", func(c *Config) { c.AdvertisedListeners = "PLAINTEXT://:9092" }, "advertised.listeners", "reach"},
		{"advertised twice", func(c *Config) { c.AdvertisedListeners = "PLAINTEXT://a:1,PLAINTEXT://b:1" }, "advertised.listeners", "twice"},
		{"advertised default listener", func(c *Config) { c.AdvertisedListeners = "PLAINTEXT://kafka.example.com:9092" }, "", ""},
		{"SSL without keystore", func(c *Config) { c.Listeners = "SSL://:9093" }, "ssl.keystore.location", "SSL"},
		{"SASL_SSL without keystore", func(c *Config) {
			c.Listeners = "EXT://:9093"
			c.ListenerSecurityProtocolMap = "EXT:SASL_SSL"
		}, "ssl.keystore.location", "EXT"},
		{"SSL with keystore", func(c *Config) {
			c.Listeners = "SSL://:9093"
			c.SSLKeystoreLocation = "/k.pem"
		}, "", ""},
		{"JKS", func(c *Config) { c.SSLKeystoreType = "JKS" }, "ssl.keystore.type", "PEM"},
		{"client auth unknown", func(c *Config) { c.SSLClientAuth = "want" }, "ssl.client.auth", "none, requested or required"},
		{"client auth required without truststore", func(c *Config) {
			c.Listeners = "SSL://:9093"
			c.SSLKeystoreLocation = "/k.pem"
			c.SSLClientAuth = "required"
		}, "ssl.truststore.location", "required"},
		{"client auth requested without truststore", func(c *Config) {
			c.Listeners = "SSL://:9093"
			c.SSLKeystoreLocation = "/k.pem"
			c.SSLClientAuth = "requested"
		}, "ssl.truststore.location", "requested"},
		{"client auth required with truststore", func(c *Config) {
			c.Listeners = "SSL://:9093"
			c.SSLKeystoreLocation = "/k.pem"
			c.SSLTruststoreLocation = "/ca.pem"
			c.SSLClientAuth = "required"
		}, "", ""},
		{"TLSv1.3 only", func(c *Config) { c.SSLEnabledProtocols = "TLSv1.3" }, "", ""},
		{"TLSv1.1", func(c *Config) { c.SSLEnabledProtocols = "TLSv1.2,TLSv1.1" }, "ssl.enabled.protocols", "TLSv1.1 is not supported"},
		{"TLSv1", func(c *Config) { c.SSLEnabledProtocols = "TLSv1" }, "ssl.enabled.protocols", "TLSv1 is not supported"},
		{"unknown protocol version", func(c *Config) { c.SSLEnabledProtocols = "TLSv2" }, "ssl.enabled.protocols", "unknown"},
		{"no protocol version", func(c *Config) { c.SSLEnabledProtocols = "" }, "ssl.enabled.protocols", ""},
		{"bad mapping rule", func(c *Config) { c.SSLPrincipalMappingRules = "RULE:^CN=(.*)$" }, "ssl.principal.mapping.rules", "invalid rule"},
		{"controller-tls without files", func(c *Config) { c.ControllerTLS = true }, "ssl.keystore.location", "controller-tls"},
		{"controller-tls without truststore", func(c *Config) {
			c.ControllerTLS = true
			c.SSLKeystoreLocation = "/k.pem"
		}, "ssl.truststore.location", "controller-tls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mutate(&cfg)
			err := cfg.Validate()
			if tc.wantKey == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !hasConfigError(err, tc.wantKey, tc.wantMsg) {
				t.Fatalf("Validate = %v; want a ConfigError for %s mentioning %q", err, tc.wantKey, tc.wantMsg)
			}
		})
	}
}

// hasConfigError looks through errors.Join'ed errors for a ConfigError
// with key whose message contains msg.
func hasConfigError(err error, key, msg string) bool {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else if err != nil {
		errs = []error{err}
	}
	for _, e := range errs {
		var ce *ConfigError
		if errors.As(e, &ce) && ce.Key == key && strings.Contains(ce.Msg, msg) {
			return true
		}
	}
	return false
}

// Files are read by New: missing or broken ones fail it with the key.
func TestListenerConfigFiles(t *testing.T) {
	setup := newTLSSetup(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		wantKey string
	}{
		{"missing keystore", func(c *Config) { c.SSLKeystoreLocation = filepath.Join(dir, "nope.pem") }, "ssl.keystore.location"},
		{"keystore not PEM", func(c *Config) { c.SSLKeystoreLocation = garbage }, "ssl.keystore.location"},
		{"keystore without key", func(c *Config) { c.SSLKeystoreLocation = setup.truststore }, "ssl.keystore.location"},
		{"missing truststore", func(c *Config) { c.SSLTruststoreLocation = filepath.Join(dir, "nope.pem") }, "ssl.truststore.location"},
		{"truststore not PEM", func(c *Config) { c.SSLTruststoreLocation = garbage }, "ssl.truststore.location"},
		{"port in use", func(c *Config) { c.Listeners = "PLAIN://" + busy.Addr().String() + ",SECURE://127.0.0.1:0" }, "listeners"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.DataDir = t.TempDir()
			cfg.AdminListen = ""
			cfg.Listeners = "PLAIN://127.0.0.1:0,SECURE://127.0.0.1:0"
			cfg.ListenerSecurityProtocolMap = "PLAIN:PLAINTEXT,SECURE:SSL"
			cfg.SSLKeystoreLocation = setup.keystore
			cfg.SSLTruststoreLocation = setup.truststore
			cfg.SSLClientAuth = "required"
			tc.mutate(&cfg)
			s, err := New(cfg)
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Key != tc.wantKey {
				t.Fatalf("New = %v, want a ConfigError for %s", err, tc.wantKey)
			}
		})
	}
}

// Each listener advertises its own address in Metadata, FindCoordinator
// and DescribeCluster, as Kafka does.
func TestListenerAdvertisedAddresses(t *testing.T) {
	setup := newTLSSetup(t)
	ts := startTLSServer(t, setup)
	plainPort := int32(ts.ListenerAddr("PLAIN").(*net.TCPAddr).Port)
	securePort := int32(ts.ListenerAddr("SECURE").(*net.TCPAddr).Port)
	for _, tc := range []struct {
		name     string
		conn     func(t *testing.T) *rawConn
		wantHost string
		wantPort int32
	}{
		{"PLAIN", func(t *testing.T) *rawConn { return ts.raw(t) }, "127.0.0.1", plainPort},
		{"SECURE", func(t *testing.T) *rawConn {
			return rawOver(t, dialTLS(t, ts.ListenerAddr("SECURE").String(), &tls.Config{RootCAs: setup.ca.pool, ServerName: "localhost"}))
		}, "localhost", securePort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := tc.conn(t)
			want := net.JoinHostPort(tc.wantHost, strconv.Itoa(int(tc.wantPort)))

			for _, v := range []int16{0, 12} {
				req := kmsg.NewPtrMetadataRequest()
				req.Version = v
				resp := rc.do(req).(*kmsg.MetadataResponse)
				if len(resp.Brokers) != 1 || net.JoinHostPort(resp.Brokers[0].Host, strconv.Itoa(int(resp.Brokers[0].Port))) != want {
					t.Errorf("Metadata v%d brokers %+v, want %s", v, resp.Brokers, want)
				}
			}

			fc := kmsg.NewPtrFindCoordinatorRequest()
			fc.Version = 3
			fc.CoordinatorKey = "g"
			r3 := rc.do(fc).(*kmsg.FindCoordinatorResponse)
			if r3.ErrorCode != 0 || net.JoinHostPort(r3.Host, strconv.Itoa(int(r3.Port))) != want {
				t.Errorf("FindCoordinator v3: %d %s:%d, want %s", r3.ErrorCode, r3.Host, r3.Port, want)
			}
			fc = kmsg.NewPtrFindCoordinatorRequest()
			fc.Version = 4
			fc.CoordinatorKeys = []string{"g1", "g2"}
			r4 := rc.do(fc).(*kmsg.FindCoordinatorResponse)
			for _, c := range r4.Coordinators {
				if c.ErrorCode != 0 || net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port))) != want {
					t.Errorf("FindCoordinator v4 %s: %d %s:%d, want %s", c.Key, c.ErrorCode, c.Host, c.Port, want)
				}
			}

			dc := kmsg.NewPtrDescribeClusterRequest()
			dc.Version = 0
			rd := rc.do(dc).(*kmsg.DescribeClusterResponse)
			if len(rd.Brokers) != 1 || net.JoinHostPort(rd.Brokers[0].Host, strconv.Itoa(int(rd.Brokers[0].Port))) != want {
				t.Errorf("DescribeCluster brokers %+v, want %s", rd.Brokers, want)
			}
		})
	}
}

// Without listeners the broker keeps its original single PLAINTEXT
// listener on listen, advertised as advertised-addr.
func TestDefaultListener(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.AdvertisedAddr = "kafka.example.com:19092" })
	if a := ts.ListenerAddr("PLAINTEXT"); a == nil || a.String() != ts.Addr().String() {
		t.Fatalf("ListenerAddr(PLAINTEXT) = %v, want %v", a, ts.Addr())
	}
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	resp := ts.raw(t).do(req).(*kmsg.MetadataResponse)
	if len(resp.Brokers) != 1 || resp.Brokers[0].Host != "kafka.example.com" || resp.Brokers[0].Port != 19092 {
		t.Errorf("brokers %+v, want kafka.example.com:19092", resp.Brokers)
	}
}

func FuzzListenerSpecs(f *testing.F) {
	f.Add("PLAINTEXT://127.0.0.1:9092,SSL://[::1]:0", "SSL://localhost:9093", "PLAINTEXT:PLAINTEXT,SSL:SSL")
	f.Add("", "PLAINTEXT://h:1", "")
	f.Fuzz(func(t *testing.T, listeners, advertised, protoMap string) {
		cfg := DefaultConfig()
		cfg.Listeners, cfg.AdvertisedListeners, cfg.ListenerSecurityProtocolMap = listeners, advertised, protoMap
		specs, err := cfg.listenerSpecs()
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a ConfigError", err)
			}
			return
		}
		if len(specs) == 0 {
			t.Fatal("no listener and no error")
		}
		names := map[string]bool{}
		for _, sp := range specs {
			if names[sp.name] {
				t.Fatalf("listener %s twice", sp.name)
			}
			names[sp.name] = true
			if _, _, err := splitHostPortNum(sp.bind); err != nil {
				t.Fatalf("bind address %q: %v", sp.bind, err)
			}
			switch sp.protocol {
			case protoPlaintext, protoSSL, protoSASLPlaintext, protoSASLSSL:
			default:
				t.Fatalf("protocol %q", sp.protocol)
			}
		}
	})
}
