package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// Config is everything a broker process needs. cmd/strata fills it from
// viper (file, STRATA_* env, flags); tests fill it directly. Field comments
// name the config key: Strata's own keys are kebab-case like the flags,
// broker defaults use Apache Kafka's names.
type Config struct {
	NodeID         int32  // node-id
	DataDir        string // data-dir
	Listen         string // listen: host:port of the Kafka listener
	AdvertisedAddr string // advertised-addr: host:port clients are told; defaults to Listen
	ControllerAddr string // controller-listen: Raft transport address; "" = in-process single voter

	// Cluster (see cluster.go). A single node needs none of these.
	ProcessRoles                         string // process-roles: broker,controller (default), broker or controller
	ControllerVoters                     string // controller-voters: id@host:port,... (KRaft's controller.quorum.voters); "" = this node alone
	ControllerAdvertisedAddr             string // controller-advertised-addr: Raft address of a broker-only node as peers dial it
	BrokerSessionTimeoutMs               int64  // broker.session.timeout.ms: fenced after this long without a heartbeat
	BrokerHeartbeatIntervalMs            int64  // broker.heartbeat.interval.ms
	InterBrokerListenerName              string // inter.broker.listener.name: listener followers fetch through; "" = the first
	ReplicaFetchMaxBytes                 int32  // replica.fetch.max.bytes: per partition
	ReplicaFetchResponseMaxBytes         int32  // replica.fetch.response.max.bytes
	ReplicaFetchWaitMaxMs                int32  // replica.fetch.wait.max.ms
	ReplicaFetchBackoffMs                int32  // replica.fetch.backoff.ms
	OffsetsTopicReplicationFactor        int16  // offsets.topic.replication.factor (capped at the registered brokers)
	TransactionStateLogReplicationFactor int16  // transaction.state.log.replication.factor (capped likewise)
	AdminListen                          string // admin-listen: HTTP /metrics, /healthz, /readyz; "" = off
	AdminPprof                           bool   // admin-pprof: also serve /debug/pprof on the admin listener

	TracingOTLPEndpoint  string // tracing-otlp-endpoint: host:port of an OTLP/HTTP collector; "" = tracing off
	TracingOTLPInsecure  bool   // tracing-otlp-insecure: plain HTTP to the collector (else HTTPS)
	TracingSamplePercent int32  // tracing-sample-percent: share of traces kept, 0..100

	NumPartitions            int32 // num.partitions
	DefaultReplicationFactor int16 // default.replication.factor
	AutoCreateTopicsEnable   bool  // auto.create.topics.enable
	DeleteTopicEnable        bool  // delete.topic.enable
	MessageMaxBytes          int32 // message.max.bytes
	SocketRequestMaxBytes    int32 // socket.request.max.bytes

	LogRetentionMs              int64 // log.retention.ms (log.retention.hours/minutes fold into it)
	LogRetentionBytes           int64 // log.retention.bytes
	LogSegmentBytes             int64 // log.segment.bytes
	LogSegmentMs                int64 // log.roll.ms (log.roll.hours folds into it)
	LogFlushIntervalMessages    int64 // log.flush.interval.messages: 1 = fsync before ack (safe default)
	LogFlushIntervalMs          int64 // log.flush.interval.ms
	LogRetentionCheckIntervalMs int64 // log.retention.check.interval.ms
	LogIndexIntervalBytes       int32 // log.index.interval.bytes
	LogMessageTimestampType     string
	MinInsyncReplicas           int32 // min.insync.replicas

	OffsetsTopicNumPartitions       int32 // offsets.topic.num.partitions
	OffsetsRetentionMinutes         int64 // offsets.retention.minutes
	GroupMinSessionTimeoutMs        int32 // group.min.session.timeout.ms
	GroupMaxSessionTimeoutMs        int32 // group.max.session.timeout.ms
	GroupInitialRebalanceDelayMs    int32 // group.initial.rebalance.delay.ms
	FetchMaxSessions                int32 // max.incremental.fetch.session.cache.slots
	ConnectionsMaxIdleMs            int64 // connections.max.idle.ms
	QueuedMaxRequests               int32 // queued.max.requests (per connection in-flight bound)
	ShutdownTimeout                 time.Duration
	TransactionalIDExpirationMs     int64  // transactional.id.expiration.ms
	TransactionMaxTimeoutMs         int64  // transaction.max.timeout.ms: the largest transaction timeout a producer may ask for
	TransactionAbortCheckIntervalMs int64  // transaction.abort.timed.out.transaction.cleanup.interval.ms
	TransactionVersion              int16  // transaction.version: the finalized feature level offered; 2 = transactions v2 (KIP-890)
	ProducerIDExpirationMs          int64  // producer.id.expiration.ms
	LogCleanerDeleteRetentionMs     int64  // reserved for compaction
	ControlledShutdownEnable        bool   // controlled.shutdown.enable: move leadership away before stopping
	BrokerRack                      string // broker.rack: rack-aware replica placement
	AutoLeaderRebalanceEnable       bool   // reserved
	UncleanLeaderElectionEnable     bool   // unclean.leader.election.enable
	ReplicaLagTimeMaxMs             int64  // replica.lag.time.max.ms: a follower this far behind leaves the ISR
	LogMessageTimestampDifferenceMs int64  // log.message.timestamp.difference.max.ms

	// transaction.state.log.num.partitions; 0 means Kafka's default, 50.
	TransactionStateLogNumPartitions int32

	// Tiered storage.
	ObjectStore              string // object-store: file:///dir or s3://bucket/prefix; "" = file://<data-dir>/objects
	S3Endpoint               string // s3-endpoint
	S3Region                 string // s3-region
	S3PathStyle              bool   // s3-path-style
	S3AccessKey              string // s3-access-key ("" = the default AWS credential chain)
	S3SecretKey              string // s3-secret-key
	RemoteCacheDir           string // remote-cache-dir; "" = <data-dir>/remote-cache
	RemoteCacheBytes         int64  // remote-cache-bytes
	RemoteStorageEnable      bool   // log.remote.storage.enable: remote.storage.enable for new topics
	LogLocalRetentionMs      int64  // log.local.retention.ms (-2 = log.retention.ms)
	LogLocalRetentionBytes   int64  // log.local.retention.bytes (-2 = log.retention.bytes)
	RemoteCopyThreads        int32  // remote.log.manager.copier.thread.pool.size
	RemoteCopyMaxBytesPerSec int64  // remote.log.manager.copy.max.bytes.per.second (0 = unlimited)
	RemoteOrphanGraceMs      int64  // remote-orphan-grace-ms: age before an unreferenced object is swept

	// Listeners and security (see security.go). Listeners empty means one
	// PLAINTEXT listener on Listen advertised as AdvertisedAddr.
	Listeners                   string // listeners: NAME://host:port,...
	AdvertisedListeners         string // advertised.listeners: NAME://host:port,...; missing names advertise their listener
	ListenerSecurityProtocolMap string // listener.security.protocol.map: NAME:PROTOCOL,...
	SSLKeystoreLocation         string // ssl.keystore.location: PEM file with the certificate chain and private key
	SSLKeystoreType             string // ssl.keystore.type: only PEM
	SSLTruststoreLocation       string // ssl.truststore.location: PEM CA bundle that client certificates must chain to
	SSLClientAuth               string // ssl.client.auth: none, requested or required
	SSLEnabledProtocols         string // ssl.enabled.protocols: TLSv1.2,TLSv1.3
	SSLPrincipalMappingRules    string // ssl.principal.mapping.rules: DEFAULT or RULE:pattern/replacement/[LU],...
	SASLEnabledMechanisms       string // sasl.enabled.mechanisms: PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER
	SASLPlainUsers              string // sasl.plain.users: user:password,... (PLAIN's user table)
	SASLOAuthJWKSURL            string // sasl.oauthbearer.jwks.endpoint.url: file:///path or https://...
	SASLOAuthJWKSRefreshMs      int64  // sasl.oauthbearer.jwks.endpoint.refresh.ms
	SASLOAuthExpectedAudience   string // sasl.oauthbearer.expected.audience: comma-separated
	SASLOAuthExpectedIssuer     string // sasl.oauthbearer.expected.issuer
	SASLOAuthSubClaimName       string // sasl.oauthbearer.sub.claim.name
	SASLOAuthClockSkewSeconds   int64  // sasl.oauthbearer.clock.skew.seconds
	SASLOAuthUnsecuredJWT       bool   // sasl.oauthbearer.unsecured.jwt.enable: accept alg=none tokens (development only)
	ConnectionsMaxReauthMs      int64  // connections.max.reauth.ms: 0 = sessions never expire
	ConnectionFailedAuthDelayMs int64  // connection.failed.authentication.delay.ms
	AuthorizerClassName         string // authorizer.class.name: "" = no authorization
	SuperUsers                  string // super.users: User:a;User:b
	AllowEveryoneIfNoACLFound   bool   // allow.everyone.if.no.acl.found
	QuotaWindowNum              int32  // quota.window.num
	QuotaWindowSizeSeconds      int32  // quota.window.size.seconds
	MaxConnectionsPerIP         int32  // max.connections.per.ip
	ControllerTLS               bool   // controller-tls: mTLS on the Raft transport with the ssl.* files

	// ExplicitKeys names the Kafka-style keys the operator set (file, env or
	// flag), so DescribeConfigs can say STATIC_BROKER_CONFIG instead of
	// DEFAULT_CONFIG.
	ExplicitKeys map[string]bool

	Logger *slog.Logger

	clock func() time.Time // nil = time.Now; tests in this package move time
}

// DefaultConfig is the safe single-node configuration `make run` uses.
func DefaultConfig() Config {
	return Config{
		NodeID:                               1,
		DataDir:                              "./data",
		Listen:                               "127.0.0.1:9092",
		AdminListen:                          "127.0.0.1:9644",
		TracingOTLPInsecure:                  true,
		TracingSamplePercent:                 100,
		NumPartitions:                        1,
		DefaultReplicationFactor:             1,
		AutoCreateTopicsEnable:               true,
		DeleteTopicEnable:                    true,
		MessageMaxBytes:                      1048588,
		SocketRequestMaxBytes:                104857600,
		LogRetentionMs:                       168 * 3600 * 1000,
		LogRetentionBytes:                    -1,
		LogSegmentBytes:                      1 << 30,
		LogSegmentMs:                         168 * 3600 * 1000,
		LogFlushIntervalMessages:             1,
		LogFlushIntervalMs:                   1000,
		LogRetentionCheckIntervalMs:          300000,
		LogIndexIntervalBytes:                4096,
		LogMessageTimestampType:              "CreateTime",
		MinInsyncReplicas:                    1,
		OffsetsTopicNumPartitions:            50,
		TransactionStateLogNumPartitions:     50,
		OffsetsRetentionMinutes:              7 * 24 * 60,
		GroupMinSessionTimeoutMs:             6000,
		GroupMaxSessionTimeoutMs:             1800000,
		GroupInitialRebalanceDelayMs:         3000,
		FetchMaxSessions:                     1000,
		ConnectionsMaxIdleMs:                 600000,
		QueuedMaxRequests:                    500,
		ShutdownTimeout:                      10 * time.Second,
		TransactionalIDExpirationMs:          604800000,
		TransactionMaxTimeoutMs:              900000,
		TransactionAbortCheckIntervalMs:      10000,
		TransactionVersion:                   2,
		ProducerIDExpirationMs:               86400000,
		LogCleanerDeleteRetentionMs:          86400000,
		ControlledShutdownEnable:             true,
		ReplicaLagTimeMaxMs:                  30000,
		ProcessRoles:                         "broker,controller",
		BrokerSessionTimeoutMs:               9000,
		BrokerHeartbeatIntervalMs:            2000,
		ReplicaFetchMaxBytes:                 1048576,
		ReplicaFetchResponseMaxBytes:         10485760,
		ReplicaFetchWaitMaxMs:                500,
		ReplicaFetchBackoffMs:                1000,
		OffsetsTopicReplicationFactor:        3,
		TransactionStateLogReplicationFactor: 3,
		LogMessageTimestampDifferenceMs:      -1,
		RemoteCacheBytes:                     1 << 30,
		RemoteStorageEnable:                  true,
		LogLocalRetentionMs:                  -2,
		LogLocalRetentionBytes:               -2,
		RemoteCopyThreads:                    4,
		RemoteOrphanGraceMs:                  600000,
		ListenerSecurityProtocolMap:          "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
		SSLKeystoreType:                      "PEM",
		SSLClientAuth:                        "none",
		SSLEnabledProtocols:                  "TLSv1.2,TLSv1.3",
		SSLPrincipalMappingRules:             "DEFAULT",
		SASLEnabledMechanisms:                "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
		SASLOAuthJWKSRefreshMs:               3600000,
		SASLOAuthSubClaimName:                "sub",
		SASLOAuthClockSkewSeconds:            30,
		ConnectionFailedAuthDelayMs:          100,
		QuotaWindowNum:                       11,
		QuotaWindowSizeSeconds:               1,
		MaxConnectionsPerIP:                  2147483647,
	}
}

// ConfigError names the offending key so operators can find it.
type ConfigError struct {
	Key string
	Msg string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("config %s: %s", e.Key, e.Msg) }

// Validate checks values that would otherwise fail late or silently.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if c.NodeID < 0 {
		bad("node-id", "must be >= 0, got %d", c.NodeID)
	}
	if c.DataDir == "" {
		bad("data-dir", "must not be empty")
	}
	if c.AdminListen != "" {
		if err := validHostPort(c.AdminListen); err != nil {
			bad("admin-listen", "%v", err)
		}
	}
	if c.TracingOTLPEndpoint != "" {
		if err := validHostPort(c.TracingOTLPEndpoint); err != nil {
			bad("tracing-otlp-endpoint", "%v", err)
		}
	}
	if c.TracingSamplePercent < 0 || c.TracingSamplePercent > 100 {
		bad("tracing-sample-percent", "must be between 0 and 100, got %d", c.TracingSamplePercent)
	}
	if c.ControllerAddr != "" {
		if err := validHostPort(c.ControllerAddr); err != nil {
			bad("controller-listen", "%v", err)
		}
	}
	if c.NumPartitions < 1 {
		bad("num.partitions", "must be >= 1, got %d", c.NumPartitions)
	}
	if c.DefaultReplicationFactor < 1 {
		bad("default.replication.factor", "must be >= 1, got %d", c.DefaultReplicationFactor)
	}
	c.validateCluster(bad)
	if c.TransactionMaxTimeoutMs < 1 {
		bad("transaction.max.timeout.ms", "must be >= 1, got %d", c.TransactionMaxTimeoutMs)
	}
	if c.TransactionVersion < 0 || c.TransactionVersion > 2 {
		bad("transaction.version", "must be 0, 1 or 2, got %d", c.TransactionVersion)
	}
	if c.TransactionAbortCheckIntervalMs < 1 {
		bad("transaction.abort.timed.out.transaction.cleanup.interval.ms", "must be >= 1, got %d", c.TransactionAbortCheckIntervalMs)
	}
	if c.MessageMaxBytes < 0 {
		bad("message.max.bytes", "must be >= 0, got %d", c.MessageMaxBytes)
	}
	if c.SocketRequestMaxBytes < 1024 {
		bad("socket.request.max.bytes", "must be >= 1024, got %d", c.SocketRequestMaxBytes)
	}
	if c.LogRetentionMs < -1 || c.LogRetentionMs == 0 {
		bad("log.retention.ms", "must be -1 (unlimited) or > 0, got %d", c.LogRetentionMs)
	}
	if c.LogRetentionBytes < -1 {
		bad("log.retention.bytes", "must be >= -1, got %d", c.LogRetentionBytes)
	}
	if c.LogSegmentBytes < 14 {
		bad("log.segment.bytes", "must be >= 14, got %d", c.LogSegmentBytes)
	}
	if c.LogSegmentMs < 1 {
		bad("log.roll.ms", "must be >= 1, got %d", c.LogSegmentMs)
	}
	if c.LogFlushIntervalMessages < 1 {
		bad("log.flush.interval.messages", "must be >= 1, got %d", c.LogFlushIntervalMessages)
	}
	if c.LogFlushIntervalMs < 0 {
		bad("log.flush.interval.ms", "must be >= 0, got %d", c.LogFlushIntervalMs)
	}
	if c.LogRetentionCheckIntervalMs < 1 {
		bad("log.retention.check.interval.ms", "must be >= 1, got %d", c.LogRetentionCheckIntervalMs)
	}
	if c.LogIndexIntervalBytes < 0 {
		bad("log.index.interval.bytes", "must be >= 0, got %d", c.LogIndexIntervalBytes)
	}
	if c.LogMessageTimestampType != "CreateTime" && c.LogMessageTimestampType != "LogAppendTime" {
		bad("log.message.timestamp.type", "must be CreateTime or LogAppendTime, got %q", c.LogMessageTimestampType)
	}
	if c.MinInsyncReplicas < 1 {
		bad("min.insync.replicas", "must be >= 1, got %d", c.MinInsyncReplicas)
	}
	if c.TransactionStateLogNumPartitions < 0 {
		bad("transaction.state.log.num.partitions", "must be >= 1 (0 means 50), got %d", c.TransactionStateLogNumPartitions)
	}
	if c.OffsetsTopicNumPartitions < 1 {
		bad("offsets.topic.num.partitions", "must be >= 1, got %d", c.OffsetsTopicNumPartitions)
	}
	if c.GroupMinSessionTimeoutMs < 0 || c.GroupMaxSessionTimeoutMs < c.GroupMinSessionTimeoutMs {
		bad("group.max.session.timeout.ms", "must be >= group.min.session.timeout.ms (%d), got %d", c.GroupMinSessionTimeoutMs, c.GroupMaxSessionTimeoutMs)
	}
	if c.GroupInitialRebalanceDelayMs < 0 {
		bad("group.initial.rebalance.delay.ms", "must be >= 0, got %d", c.GroupInitialRebalanceDelayMs)
	}
	if c.FetchMaxSessions < 0 {
		bad("max.incremental.fetch.session.cache.slots", "must be >= 0, got %d", c.FetchMaxSessions)
	}
	if c.ObjectStore != "" && !strings.HasPrefix(c.ObjectStore, "file://") && !strings.HasPrefix(c.ObjectStore, "s3://") {
		bad("object-store", "want file:///path or s3://bucket/prefix, got %q", c.ObjectStore)
	}
	if c.RemoteCacheBytes < 1<<20 {
		bad("remote-cache-bytes", "must be at least 1 MiB, got %d", c.RemoteCacheBytes)
	}
	if c.LogLocalRetentionMs < -2 {
		bad("log.local.retention.ms", "must be >= -2, got %d", c.LogLocalRetentionMs)
	}
	if c.LogLocalRetentionBytes < -2 {
		bad("log.local.retention.bytes", "must be >= -2, got %d", c.LogLocalRetentionBytes)
	}
	if c.RemoteCopyThreads < 1 {
		bad("remote.log.manager.copier.thread.pool.size", "must be >= 1, got %d", c.RemoteCopyThreads)
	}
	if c.RemoteOrphanGraceMs < 1000 {
		bad("remote-orphan-grace-ms", "must be at least 1000 (uploads in flight must not look orphaned), got %d", c.RemoteOrphanGraceMs)
	}
	if c.RemoteCopyMaxBytesPerSec < 0 {
		bad("remote.log.manager.copy.max.bytes.per.second", "must be >= 0, got %d", c.RemoteCopyMaxBytesPerSec)
	}
	if c.QueuedMaxRequests < 1 {
		bad("queued.max.requests", "must be >= 1, got %d", c.QueuedMaxRequests)
	}
	c.validateListeners(bad)
	c.validateSecurity(bad)
	return errors.Join(errs...)
}

func validHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port, got %q", s)
	}
	_ = host
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("bad port in %q", s)
	}
	return nil
}
