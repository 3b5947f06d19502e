package main

import (
	"fmt"
	"strings"

	"github.com/strata-broker/strata/broker"
)

// options is what `strata serve` runs with: the broker's config plus the
// process-level settings that are none of the broker's business.
type options struct {
	Broker    broker.Config
	LogLevel  string // log-level: debug, info, warn, error
	LogFormat string // log-format: text, json
}

func defaultOptions() options {
	return options{Broker: broker.DefaultConfig(), LogLevel: "info", LogFormat: "text"}
}

// configKey is one row of the single table that drives parsing, flag and
// env binding, and the README's config reference, so none can drift from
// the others.
type configKey struct {
	Name string
	Doc  string
	// field points at what the key sets: *int16, *int32, *int64, *bool or
	// *string inside opts.
	field func(o *options) any
	// unit multiplies the parsed number into the field's unit
	// (log.retention.hours -> milliseconds). 0 means 1.
	unit int64
	// minusOneUnlimited keeps -1 as -1 instead of scaling it, for keys
	// where -1 means "no limit" in any unit.
	minusOneUnlimited bool
	// rank orders keys that share a field when set at the same level:
	// Kafka lets the finest unit win (ms > minutes > hours).
	rank int
	// flag exposes the key as --Name as well.
	flag bool
}

// Env is the environment variable for the key: STRATA_ + the key in upper
// case with dots and dashes as underscores.
func (k *configKey) Env() string {
	return envPrefix + strings.NewReplacer(".", "_", "-", "_").Replace(strings.ToUpper(k.Name))
}

const envPrefix = "STRATA_"

const (
	hourMs   = 3600 * 1000
	minuteMs = 60 * 1000
)

// configKeys lists every key the config file, --set and STRATA_* accept.
// Strata's own keys are kebab-case like the flags; broker defaults use
// Apache Kafka's names and meanings.
var configKeys = []configKey{
	{Name: "node-id", flag: true, Doc: "Broker (and Raft voter) id.",
		field: func(o *options) any { return &o.Broker.NodeID }},
	{Name: "data-dir", flag: true, Doc: "Directory holding partition logs and metadata; created if missing.",
		field: func(o *options) any { return &o.Broker.DataDir }},
	{Name: "listen", flag: true, Doc: "host:port of the Kafka listener (a PLAINTEXT listener); ignored when listeners is set.",
		field: func(o *options) any { return &o.Broker.Listen }},
	{Name: "advertised-addr", flag: true, Doc: "host:port clients are told to connect to; empty means the listen address. Ignored when listeners is set (use advertised.listeners).",
		field: func(o *options) any { return &o.Broker.AdvertisedAddr }},
	{Name: "controller-listen", flag: true, Doc: "host:port the Raft transport of the metadata quorum binds (0.0.0.0 is fine: peers dial the controller-voters entry). Every node of a multi-node cluster needs it, broker-only nodes too, which receive the metadata log on it as Raft non-voters. Empty runs a single in-process voter with no port.",
		field: func(o *options) any { return &o.Broker.ControllerAddr }},
	{Name: "process-roles", flag: true, Doc: "What this node does, as KRaft's process.roles: broker,controller (combined: a Raft voter of the metadata quorum that also hosts partitions and serves clients) broker (follows the metadata log as a Raft non-voter) or controller (a voter only: no Kafka listeners, no partitions; its admin listener still serves /metrics and /readyz).",
		field: func(o *options) any { return &o.Broker.ProcessRoles }},
	{Name: "controller-voters", flag: true, Doc: "The metadata quorum as id@host:port,... (KRaft's controller.quorum.voters): each controller's node-id and the Raft address its peers dial. Give every node of a cluster the same list; a controller must be in it with the port of its controller-listen. It bootstraps a fresh cluster only: afterwards membership is in the Raft log. Empty means this node alone, a one-voter quorum.",
		field: func(o *options) any { return &o.Broker.ControllerVoters }},
	{Name: "controller-advertised-addr", flag: true, Doc: "host:port the active controller dials to stream the metadata log to a broker-only node; empty means controller-listen, which must then not be a wildcard. Controllers leave it empty: their address is their controller-voters entry.",
		field: func(o *options) any { return &o.Broker.ControllerAdvertisedAddr }},
	{Name: "admin-listen", flag: true, Doc: "host:port of the HTTP admin listener (/metrics, /healthz, /readyz); empty disables it.",
		field: func(o *options) any { return &o.Broker.AdminListen }},
	{Name: "admin-pprof", flag: true, Doc: "Also serve Go profiles at /debug/pprof on the admin listener.",
		field: func(o *options) any { return &o.Broker.AdminPprof }},
	{Name: "tracing-otlp-endpoint", flag: true, Doc: "host:port of an OTLP/HTTP trace collector (spans per request and per object-store call); empty turns tracing off.",
		field: func(o *options) any { return &o.Broker.TracingOTLPEndpoint }},
	{Name: "tracing-otlp-insecure", Doc: "Send spans over plain HTTP; false uses HTTPS.",
		field: func(o *options) any { return &o.Broker.TracingOTLPInsecure }},
	{Name: "tracing-sample-percent", Doc: "Percentage of Kafka requests and object-store calls traced, 0 to 100.",
		field: func(o *options) any { return &o.Broker.TracingSamplePercent }},
	{Name: "log-level", flag: true, Doc: "debug, info, warn or error.",
		field: func(o *options) any { return &o.LogLevel }},
	{Name: "log-format", flag: true, Doc: "text or json (log lines go to stderr).",
		field: func(o *options) any { return &o.LogFormat }},

	{Name: "num.partitions", Doc: "Partitions of an auto-created topic or a CreateTopics request that leaves it to the broker.",
		field: func(o *options) any { return &o.Broker.NumPartitions }},
	{Name: "default.replication.factor", Doc: "Replication factor of auto-created topics and of CreateTopics requests that leave it to the broker (-1). More replicas than there are available brokers fails the creation with INVALID_REPLICATION_FACTOR, as in Kafka.",
		field: func(o *options) any { return &o.Broker.DefaultReplicationFactor }},
	{Name: "auto.create.topics.enable", Doc: "Create a topic when a Metadata request that allows it names an unknown topic.",
		field: func(o *options) any { return &o.Broker.AutoCreateTopicsEnable }},
	{Name: "delete.topic.enable", Doc: "Allow DeleteTopics.",
		field: func(o *options) any { return &o.Broker.DeleteTopicEnable }},
	{Name: "message.max.bytes", Doc: "Largest record batch accepted (topic default for max.message.bytes).",
		field: func(o *options) any { return &o.Broker.MessageMaxBytes }},
	{Name: "socket.request.max.bytes", Doc: "Largest request frame; a bigger size prefix closes the connection.",
		field: func(o *options) any { return &o.Broker.SocketRequestMaxBytes }},
	{Name: "log.retention.hours", Doc: "Topic default for retention.ms, in hours.", unit: hourMs, minusOneUnlimited: true, rank: 0,
		field: func(o *options) any { return &o.Broker.LogRetentionMs }},
	{Name: "log.retention.minutes", Doc: "Same in minutes; wins over log.retention.hours.", unit: minuteMs, minusOneUnlimited: true, rank: 1,
		field: func(o *options) any { return &o.Broker.LogRetentionMs }},
	{Name: "log.retention.ms", Doc: "Same in milliseconds; wins over both; -1 keeps data forever.", rank: 2,
		field: func(o *options) any { return &o.Broker.LogRetentionMs }},
	{Name: "log.retention.bytes", Doc: "Topic default for retention.bytes per partition; -1 is unlimited.",
		field: func(o *options) any { return &o.Broker.LogRetentionBytes }},
	{Name: "log.segment.bytes", Doc: "Topic default for segment.bytes: roll the active segment at this size.",
		field: func(o *options) any { return &o.Broker.LogSegmentBytes }},
	{Name: "log.roll.hours", Doc: "Topic default for segment.ms, in hours.", unit: hourMs, rank: 0,
		field: func(o *options) any { return &o.Broker.LogSegmentMs }},
	{Name: "log.roll.ms", Doc: "Same in milliseconds; wins over log.roll.hours.", rank: 1,
		field: func(o *options) any { return &o.Broker.LogSegmentMs }},
	{Name: "log.flush.interval.messages", Doc: "Topic default for flush.messages: 1 fsyncs (with group commit) before acknowledging; larger trades durability for speed.",
		field: func(o *options) any { return &o.Broker.LogFlushIntervalMessages }},
	{Name: "log.flush.interval.ms", Doc: "Topic default for flush.ms, used when flush.messages is relaxed.",
		field: func(o *options) any { return &o.Broker.LogFlushIntervalMs }},
	{Name: "log.retention.check.interval.ms", Doc: "How often retention is enforced.",
		field: func(o *options) any { return &o.Broker.LogRetentionCheckIntervalMs }},
	{Name: "log.index.interval.bytes", Doc: "Topic default for index.interval.bytes: bytes between offset index entries.",
		field: func(o *options) any { return &o.Broker.LogIndexIntervalBytes }},
	{Name: "log.message.timestamp.type", Doc: "Topic default for message.timestamp.type: CreateTime or LogAppendTime.",
		field: func(o *options) any { return &o.Broker.LogMessageTimestampType }},
	{Name: "min.insync.replicas", Doc: "Topic default for min.insync.replicas: an acks=all write fails with NOT_ENOUGH_REPLICAS (or NOT_ENOUGH_REPLICAS_AFTER_APPEND) while the ISR is smaller. With replication factor 3, 2 survives one broker down without refusing writes.",
		field: func(o *options) any { return &o.Broker.MinInsyncReplicas }},
	{Name: "offsets.topic.num.partitions", Doc: "Partitions of __consumer_offsets (fixed once the topic exists).",
		field: func(o *options) any { return &o.Broker.OffsetsTopicNumPartitions }},
	{Name: "offsets.topic.replication.factor", Doc: "Replication factor of __consumer_offsets when it is created. Unlike Kafka, which refuses to create it until that many brokers are up, Strata caps it at the number of registered brokers, so a single node works with the default; the topic keeps the factor it was created with.",
		field: func(o *options) any { return &o.Broker.OffsetsTopicReplicationFactor }},
	{Name: "transactional.id.expiration.ms", Doc: "How long a transactional id unused by its producer is remembered.",
		field: func(o *options) any { return &o.Broker.TransactionalIDExpirationMs }},
	{Name: "transaction.max.timeout.ms", Doc: "The largest transaction.timeout.ms a transactional producer may ask for; InitProducerId with more gets INVALID_TRANSACTION_TIMEOUT.",
		field: func(o *options) any { return &o.Broker.TransactionMaxTimeoutMs }},
	{Name: "transaction.abort.timed.out.transaction.cleanup.interval.ms", Doc: "How often the transaction coordinator looks for transactions past their timeout and aborts them.",
		field: func(o *options) any { return &o.Broker.TransactionAbortCheckIntervalMs }},
	{Name: "transaction.version", Doc: "The transaction.version feature level clients are offered (Kafka sets it with kafka-features): 2 is transactions v2 (KIP-890: Produce v12 adds partitions implicitly, every commit or abort bumps the producer epoch); 0 or 1 keeps clients on the older protocol.",
		field: func(o *options) any { return &o.Broker.TransactionVersion }},
	{Name: "transaction.state.log.num.partitions", Doc: "Partitions of __transaction_state (fixed once the topic exists).",
		field: func(o *options) any { return &o.Broker.TransactionStateLogNumPartitions }},
	{Name: "transaction.state.log.replication.factor", Doc: "Replication factor of __transaction_state when it is created; capped at the registered brokers like offsets.topic.replication.factor.",
		field: func(o *options) any { return &o.Broker.TransactionStateLogReplicationFactor }},
	{Name: "offsets.retention.minutes", Doc: "How long committed offsets of an empty group are kept.",
		field: func(o *options) any { return &o.Broker.OffsetsRetentionMinutes }},
	{Name: "group.min.session.timeout.ms", Doc: "Smallest session timeout a group member may ask for.",
		field: func(o *options) any { return &o.Broker.GroupMinSessionTimeoutMs }},
	{Name: "group.max.session.timeout.ms", Doc: "Largest session timeout a group member may ask for.",
		field: func(o *options) any { return &o.Broker.GroupMaxSessionTimeoutMs }},
	{Name: "group.initial.rebalance.delay.ms", Doc: "Wait for more members before the first rebalance of an empty group.",
		field: func(o *options) any { return &o.Broker.GroupInitialRebalanceDelayMs }},
	{Name: "max.incremental.fetch.session.cache.slots", Doc: "Fetch sessions (KIP-227) kept at once.",
		field: func(o *options) any { return &o.Broker.FetchMaxSessions }},
	{Name: "queued.max.requests", Doc: "Requests in flight per connection before the broker stops reading it.",
		field: func(o *options) any { return &o.Broker.QueuedMaxRequests }},
	{Name: "connections.max.idle.ms", Doc: "Close connections idle for this long.",
		field: func(o *options) any { return &o.Broker.ConnectionsMaxIdleMs }},

	// Cluster: membership, failure detection and replication (Kafka's
	// names and meanings; a single node needs none of them).
	{Name: "broker.rack", Doc: "Rack (or zone) of this broker. When brokers name racks, new replicas of a partition are spread over as many racks as possible; empty means no rack.",
		field: func(o *options) any { return &o.Broker.BrokerRack }},
	{Name: "broker.session.timeout.ms", Doc: "How long the active controller waits for a broker's heartbeat before fencing it: a fenced broker leaves every ISR and leads no partition until it heartbeats again.",
		field: func(o *options) any { return &o.Broker.BrokerSessionTimeoutMs }},
	{Name: "broker.heartbeat.interval.ms", Doc: "How often a broker heartbeats to the active controller; keep it well below broker.session.timeout.ms.",
		field: func(o *options) any { return &o.Broker.BrokerHeartbeatIntervalMs }},
	{Name: "controlled.shutdown.enable", Doc: "On SIGTERM, ask the controller to move this broker's partition leaderships to other ISR members before stopping, so clients see no offline partition.",
		field: func(o *options) any { return &o.Broker.ControlledShutdownEnable }},
	{Name: "unclean.leader.election.enable", Doc: "Elect a leader outside the ISR when no ISR member is alive. Keeps the partition available but loses the acknowledged records the new leader lacks; off by default, as in Kafka.",
		field: func(o *options) any { return &o.Broker.UncleanLeaderElectionEnable }},
	{Name: "inter.broker.listener.name", Doc: "Listener (a name in listeners) whose advertised address followers use to fetch from partition leaders. Empty means the first listener (Kafka would use PLAINTEXT, or security.inter.broker.protocol). It may be PLAINTEXT or SSL (the broker presents its ssl.keystore.location certificate), not SASL yet.",
		field: func(o *options) any { return &o.Broker.InterBrokerListenerName }},
	{Name: "replica.lag.time.max.ms", Doc: "A follower that has not caught up to the leader's log end within this long is removed from the ISR; it rejoins once it catches up.",
		field: func(o *options) any { return &o.Broker.ReplicaLagTimeMaxMs }},
	{Name: "replica.fetch.max.bytes", Doc: "Bytes a follower asks for per partition in one fetch (a batch larger than this still comes whole).",
		field: func(o *options) any { return &o.Broker.ReplicaFetchMaxBytes }},
	{Name: "replica.fetch.response.max.bytes", Doc: "Bytes a follower asks for across all partitions in one fetch.",
		field: func(o *options) any { return &o.Broker.ReplicaFetchResponseMaxBytes }},
	{Name: "replica.fetch.wait.max.ms", Doc: "How long the leader holds a follower's fetch while it has no new data; keep it below replica.lag.time.max.ms.",
		field: func(o *options) any { return &o.Broker.ReplicaFetchWaitMaxMs }},
	{Name: "replica.fetch.backoff.ms", Doc: "How long a follower waits before fetching again after a fetch from the leader failed.",
		field: func(o *options) any { return &o.Broker.ReplicaFetchBackoffMs }},

	// Tiered storage: sealed segments go to an object store.
	{Name: "object-store", flag: true, Doc: "Where sealed segments go: file:///dir or s3://bucket/prefix; empty means file://DATA-DIR/objects. Every broker of a cluster must use the same store (one bucket, or a directory they all see): a partition's new leader reads what the old one uploaded.",
		field: func(o *options) any { return &o.Broker.ObjectStore }},
	{Name: "s3-endpoint", flag: true, Doc: "S3 endpoint URL (MinIO, SeaweedFS, ...); empty means AWS.",
		field: func(o *options) any { return &o.Broker.S3Endpoint }},
	{Name: "s3-region", flag: true, Doc: "S3 region.",
		field: func(o *options) any { return &o.Broker.S3Region }},
	{Name: "s3-path-style", flag: true, Doc: "Address buckets as endpoint/bucket rather than bucket.endpoint.",
		field: func(o *options) any { return &o.Broker.S3PathStyle }},
	{Name: "s3-access-key", Doc: "S3 access key; empty uses the default AWS credential chain.",
		field: func(o *options) any { return &o.Broker.S3AccessKey }},
	{Name: "s3-secret-key", Doc: "S3 secret key (prefer the environment variable to a file or flag).",
		field: func(o *options) any { return &o.Broker.S3SecretKey }},
	{Name: "remote-cache-dir", Doc: "Local cache of remote segments; empty means DATA-DIR/remote-cache.",
		field: func(o *options) any { return &o.Broker.RemoteCacheDir }},
	{Name: "remote-cache-bytes", Doc: "Size bound of the remote segment cache.",
		field: func(o *options) any { return &o.Broker.RemoteCacheBytes }},
	{Name: "log.remote.storage.enable", Doc: "Topic default for remote.storage.enable.",
		field: func(o *options) any { return &o.Broker.RemoteStorageEnable }},
	{Name: "log.local.retention.ms", Doc: "Topic default for local.retention.ms: how long uploaded data stays on local disk; -2 means log.retention.ms.",
		field: func(o *options) any { return &o.Broker.LogLocalRetentionMs }},
	{Name: "log.local.retention.bytes", Doc: "Topic default for local.retention.bytes; -2 means log.retention.bytes.",
		field: func(o *options) any { return &o.Broker.LogLocalRetentionBytes }},
	{Name: "remote.log.manager.copier.thread.pool.size", Doc: "Concurrent segment uploads.",
		field: func(o *options) any { return &o.Broker.RemoteCopyThreads }},
	{Name: "remote.log.manager.copy.max.bytes.per.second", Doc: "Upload rate limit; 0 is unlimited.",
		field: func(o *options) any { return &o.Broker.RemoteCopyMaxBytesPerSec }},
	{Name: "remote-orphan-grace-ms", Doc: "How old an object that no manifest references must be before the orphan sweep deletes it; longer than any upload takes.",
		field: func(o *options) any { return &o.Broker.RemoteOrphanGraceMs }},
	{Name: "listeners", flag: true, Doc: "Listeners, as in Kafka: NAME://host:port,... (for example PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093). Empty means one PLAINTEXT listener on listen.",
		field: func(o *options) any { return &o.Broker.Listeners }},
	{Name: "advertised.listeners", Doc: "What clients are told per listener: NAME://host:port,... A listener not named here advertises its own address.",
		field: func(o *options) any { return &o.Broker.AdvertisedListeners }},
	{Name: "listener.security.protocol.map", Doc: "NAME:PROTOCOL,... mapping each listener name to PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
		field: func(o *options) any { return &o.Broker.ListenerSecurityProtocolMap }},
	{Name: "ssl.keystore.location", Doc: "PEM file holding the broker's certificate chain and private key (unencrypted); reloaded when it changes.",
		field: func(o *options) any { return &o.Broker.SSLKeystoreLocation }},
	{Name: "ssl.keystore.type", Doc: "Only PEM is supported (convert JKS or PKCS12 with keytool or openssl).",
		field: func(o *options) any { return &o.Broker.SSLKeystoreType }},
	{Name: "ssl.truststore.location", Doc: "PEM bundle of the CAs that client certificates must chain to; reloaded when it changes.",
		field: func(o *options) any { return &o.Broker.SSLTruststoreLocation }},
	{Name: "ssl.client.auth", Doc: "none, requested or required: whether SSL listeners ask clients for certificates.",
		field: func(o *options) any { return &o.Broker.SSLClientAuth }},
	{Name: "ssl.enabled.protocols", Doc: "TLS versions SSL listeners accept: TLSv1.2 and/or TLSv1.3.",
		field: func(o *options) any { return &o.Broker.SSLEnabledProtocols }},
	{Name: "ssl.principal.mapping.rules", Doc: "How a client certificate's subject becomes a principal: DEFAULT (the whole DN) or RULE:pattern/replacement/[LU],... as in Kafka.",
		field: func(o *options) any { return &o.Broker.SSLPrincipalMappingRules }},
	{Name: "sasl.enabled.mechanisms", Doc: "SASL mechanisms SASL listeners offer: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER.",
		field: func(o *options) any { return &o.Broker.SASLEnabledMechanisms }},
	{Name: "sasl.plain.users", Doc: "PLAIN's users: user:password,... (use SCRAM for credentials kept out of config files).",
		field: func(o *options) any { return &o.Broker.SASLPlainUsers }},
	{Name: "sasl.oauthbearer.jwks.endpoint.url", Doc: "JWKS that OAUTHBEARER tokens are verified against: https://... or file:///path.",
		field: func(o *options) any { return &o.Broker.SASLOAuthJWKSURL }},
	{Name: "sasl.oauthbearer.jwks.endpoint.refresh.ms", Doc: "How often the JWKS is fetched again.",
		field: func(o *options) any { return &o.Broker.SASLOAuthJWKSRefreshMs }},
	{Name: "sasl.oauthbearer.expected.audience", Doc: "Comma-separated audiences of which a token's aud must contain one; empty skips the check.",
		field: func(o *options) any { return &o.Broker.SASLOAuthExpectedAudience }},
	{Name: "sasl.oauthbearer.expected.issuer", Doc: "The iss a token must carry; empty skips the check.",
		field: func(o *options) any { return &o.Broker.SASLOAuthExpectedIssuer }},
	{Name: "sasl.oauthbearer.sub.claim.name", Doc: "The claim that names the principal.",
		field: func(o *options) any { return &o.Broker.SASLOAuthSubClaimName }},
	{Name: "sasl.oauthbearer.clock.skew.seconds", Doc: "Leeway for exp, nbf and iat.",
		field: func(o *options) any { return &o.Broker.SASLOAuthClockSkewSeconds }},
	{Name: "sasl.oauthbearer.unsecured.jwt.enable", Doc: "Accept unsigned (alg=none) OAUTHBEARER tokens. For development only; never in production.",
		field: func(o *options) any { return &o.Broker.SASLOAuthUnsecuredJWT }},
	{Name: "connections.max.reauth.ms", Doc: "Longest a SASL session lasts before the client must re-authenticate (KIP-368); 0 means never.",
		field: func(o *options) any { return &o.Broker.ConnectionsMaxReauthMs }},
	{Name: "connection.failed.authentication.delay.ms", Doc: "How long the broker waits before closing a connection whose authentication failed.",
		field: func(o *options) any { return &o.Broker.ConnectionFailedAuthDelayMs }},
	{Name: "authorizer.class.name", Doc: "Empty for no authorization, or Kafka's org.apache.kafka.metadata.authorizer.StandardAuthorizer (or kafka.security.authorizer.AclAuthorizer) to enforce ACLs.",
		field: func(o *options) any { return &o.Broker.AuthorizerClassName }},
	{Name: "super.users", Doc: "Principals allowed everything: User:admin;User:ops",
		field: func(o *options) any { return &o.Broker.SuperUsers }},
	{Name: "allow.everyone.if.no.acl.found", Doc: "With an authorizer, allow access to resources that have no ACL at all.",
		field: func(o *options) any { return &o.Broker.AllowEveryoneIfNoACLFound }},
	{Name: "quota.window.num", Doc: "Samples a client quota rate is measured over.",
		field: func(o *options) any { return &o.Broker.QuotaWindowNum }},
	{Name: "quota.window.size.seconds", Doc: "Length of each quota sample.",
		field: func(o *options) any { return &o.Broker.QuotaWindowSizeSeconds }},
	{Name: "max.connections.per.ip", Doc: "Most connections one IP address may hold open.",
		field: func(o *options) any { return &o.Broker.MaxConnectionsPerIP }},
	{Name: "controller-tls", flag: true, Doc: "Run the Raft transport over mutual TLS with the ssl.keystore.location and ssl.truststore.location files.",
		field: func(o *options) any { return &o.Broker.ControllerTLS }},
}

// keyIndex maps a key name to its row.
var keyIndex = func() map[string]*configKey {
	m := make(map[string]*configKey, len(configKeys))
	for i := range configKeys {
		k := &configKeys[i]
		if _, dup := m[k.Name]; dup {
			panic("duplicate config key " + k.Name)
		}
		m[k.Name] = k
	}
	return m
}()

// envIndex maps an environment variable name to its key.
var envIndex = func() map[string]*configKey {
	m := make(map[string]*configKey, len(configKeys))
	for i := range configKeys {
		k := &configKeys[i]
		if other, dup := m[k.Env()]; dup {
			panic(fmt.Sprintf("config keys %s and %s share env %s", other.Name, k.Name, k.Env()))
		}
		m[k.Env()] = k
	}
	return m
}()

// defaultString renders the key's default in the key's own unit, or ""
// when the default is not a whole number of that unit.
func (k *configKey) defaultString() string {
	o := defaultOptions()
	switch p := k.field(&o).(type) {
	case *int16:
		return fmt.Sprint(*p)
	case *int32:
		return fmt.Sprint(*p)
	case *int64:
		v := *p
		if k.unit > 1 {
			if v == -1 && k.minusOneUnlimited {
				return "-1"
			}
			if v%k.unit != 0 {
				return ""
			}
			v /= k.unit
		}
		return fmt.Sprint(v)
	case *bool:
		return fmt.Sprint(*p)
	case *string:
		return *p
	default:
		panic(fmt.Sprintf("config key %s: unsupported field type %T", k.Name, p))
	}
}

// typeName is how the README and --help describe the key's values.
func (k *configKey) typeName() string {
	o := defaultOptions()
	switch k.field(&o).(type) {
	case *int16, *int32, *int64:
		return "int"
	case *bool:
		return "bool"
	default:
		return "string"
	}
}

// closestKey suggests a known key for a misspelt one ("" if none is near).
func closestKey(name string) string {
	best, bestD := "", 3
	for _, k := range configKeys {
		if d := editDistance(name, k.Name); d < bestD {
			best, bestD = k.Name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
