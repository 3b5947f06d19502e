package metadata

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
)

// Sentinel errors. Callers match them with errors.Is; the broker maps them to
// Kafka error codes (NOT_CONTROLLER, TOPIC_ALREADY_EXISTS,
// UNKNOWN_TOPIC_OR_PARTITION / UNKNOWN_TOPIC_ID, INVALID_TOPIC_EXCEPTION,
// INVALID_PARTITIONS, INVALID_REQUEST).
var (
	// ErrNotLeader: this node is not the Raft leader, or lost leadership
	// while the command was in flight (then the command may or may not have
	// been applied; a retry of a create then sees ErrTopicExists, as in Kafka).
	ErrNotLeader = errors.New("metadata: not the raft leader")
	// ErrTopicExists: a topic with this name, or this topic id, exists.
	ErrTopicExists = errors.New("metadata: topic already exists")
	// ErrUnknownTopic: no topic with this id or, for a per-partition
	// command (remote manifests), no such partition in it; Kafka folds both
	// into UNKNOWN_TOPIC_OR_PARTITION.
	ErrUnknownTopic = errors.New("metadata: unknown topic")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("metadata: store closed")
	// ErrInvalidTopic: bad topic name (Kafka rules), a name that collides
	// with an existing one once '.' and '_' are unified, or a reserved id.
	ErrInvalidTopic = errors.New("metadata: invalid topic")
	// ErrInvalidPartitions: partitions are not numbered densely after the
	// existing ones, or their replicas/ISR/leader are inconsistent.
	ErrInvalidPartitions = errors.New("metadata: invalid partitions")
	// ErrInvalidArgument: any other malformed request (negative broker id,
	// non-positive producer id count, a config both set and deleted, a remote
	// segment that is not contiguous with its manifest, ...).
	ErrInvalidArgument = errors.New("metadata: invalid argument")
)

// Sentinel errors of the cluster commands (cluster.go). The broker maps them
// to the Kafka error codes named in each comment.
var (
	// ErrUnknownBroker: no broker registered with this id
	// (BROKER_ID_NOT_REGISTERED).
	ErrUnknownBroker = errors.New("metadata: unknown broker")
	// ErrStaleBrokerIncarnation: the command names an incarnation of the
	// broker that a newer registration replaced (STALE_BROKER_EPOCH).
	ErrStaleBrokerIncarnation = errors.New("metadata: stale broker incarnation")
	// ErrStaleBrokerEpoch: a broker heartbeat from a broker the active
	// controller does not know, or from an incarnation that is not the
	// registered one (STALE_BROKER_EPOCH, as Kafka answers both); the
	// broker registers again.
	ErrStaleBrokerEpoch = errors.New("metadata: stale broker epoch")
	// ErrFencedLeaderEpoch: an AlterPartition from a leader whose leader
	// epoch is not the partition's current one (FENCED_LEADER_EPOCH).
	ErrFencedLeaderEpoch = errors.New("metadata: fenced leader epoch")
	// ErrStalePartitionEpoch: an AlterPartition based on an older partition
	// epoch than the current one (INVALID_UPDATE_VERSION).
	ErrStalePartitionEpoch = errors.New("metadata: stale partition epoch")
	// ErrIneligibleReplica: a proposed ISR member is not a replica, not
	// registered, fenced or shutting down (INELIGIBLE_REPLICA). It wraps
	// ErrInvalidArgument, so a caller that only knows that one still
	// classifies it as a bad request.
	ErrIneligibleReplica = fmt.Errorf("%w: ineligible replica", ErrInvalidArgument)
	// ErrInvalidReplicationFactor: more replicas asked for than there are
	// live brokers, or fewer than one (INVALID_REPLICATION_FACTOR).
	ErrInvalidReplicationFactor = errors.New("metadata: invalid replication factor")
	// ErrInvalidReplicaAssignment: a reassignment target that is empty,
	// lists a broker twice or names an unregistered broker
	// (INVALID_REPLICA_ASSIGNMENT).
	ErrInvalidReplicaAssignment = errors.New("metadata: invalid replica assignment")
	// ErrNoReassignmentInProgress: cancelling a reassignment that does not
	// exist (NO_REASSIGNMENT_IN_PROGRESS).
	ErrNoReassignmentInProgress = errors.New("metadata: no reassignment in progress")
	// ErrElectionNotNeeded: the partition already has the leader the
	// election asked for (ELECTION_NOT_NEEDED).
	ErrElectionNotNeeded = errors.New("metadata: election not needed")
	// ErrPreferredLeaderNotAvailable: the preferred replica is not in the
	// ISR or not live (PREFERRED_LEADER_NOT_AVAILABLE).
	ErrPreferredLeaderNotAvailable = errors.New("metadata: preferred leader not available")
	// ErrEligibleLeadersNotAvailable: no live replica could become leader
	// (ELIGIBLE_LEADERS_NOT_AVAILABLE).
	ErrEligibleLeadersNotAvailable = errors.New("metadata: eligible leaders not available")
)

// Broker is a registered broker.
//
// A broker registered with RegisterBroker (the single-node path) has one
// PLAINTEXT endpoint, Host:Port, is never fenced and has no incarnation id;
// Endpoints is nil for it (AllEndpoints lists the implied one). A broker
// registered with RegisterBrokerV2 has its listeners in Endpoints, and Host
// and Port repeat the first of them.
type Broker struct {
	ID   int32
	Host string
	Port int32
	Rack string // "" when the broker has no rack
	// IncarnationID identifies one run of the broker process (KRaft's
	// incarnation id); uuid.Nil for a RegisterBroker registration.
	IncarnationID uuid.UUID
	Endpoints     []Endpoint
	// Fenced brokers lead no partition and are in no ISR (except as the
	// last member of a leaderless partition's ISR); Metadata leaves them
	// out. A V2 registration starts fenced.
	Fenced bool
	// InControlledShutdown: the broker asked to shut down; it has been
	// moved off every leadership and ISR and is fenced.
	InControlledShutdown bool
}

// AllEndpoints returns b's endpoints: Endpoints, or for a broker registered
// with RegisterBroker its one implied PLAINTEXT endpoint.
func (b Broker) AllEndpoints() []Endpoint {
	if b.Endpoints != nil {
		return b.Endpoints
	}
	return []Endpoint{{Listener: legacyListener, Host: b.Host, Port: b.Port, SecurityProtocol: legacyListener}}
}

// Endpoint is one listener of a broker. SecurityProtocol is one of
// PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL.
type Endpoint struct {
	Listener         string
	Host             string
	Port             int32
	SecurityProtocol string
}

// BrokerRegistration is what a broker sends when it starts (KRaft's
// BrokerRegistration). IncarnationID must be new for every process start.
type BrokerRegistration struct {
	ID            int32
	IncarnationID uuid.UUID
	Endpoints     []Endpoint
	Rack          string
}

// TopicPartition names one partition.
type TopicPartition struct {
	TopicID   uuid.UUID
	Partition int32
}

// ElectionType is Kafka's ElectLeaders election type.
type ElectionType int8

const (
	// ElectPreferred makes the first replica the leader if it is in the
	// ISR and live.
	ElectPreferred ElectionType = 0
	// ElectUnclean gives a leaderless partition a leader: a live ISR
	// member if there is one, else any live replica (losing what the
	// others had and it did not).
	ElectUnclean ElectionType = 1
)

// ElectionResult is the outcome of an election for one partition. Err is
// nil on success, or wraps ErrUnknownTopic, ErrElectionNotNeeded,
// ErrPreferredLeaderNotAvailable or ErrEligibleLeadersNotAvailable.
type ElectionResult struct {
	TopicPartition
	Err error
}

// AlterPartitionRequest is a partition leader's ISR change (KRaft's
// AlterPartition). LeaderID, LeaderEpoch and PartitionEpoch are what the
// leader believes is current; the change applies only if they are.
// BrokerIncarnationID, when not uuid.Nil, must be the leader's current
// incarnation (Kafka's broker epoch check).
type AlterPartitionRequest struct {
	TopicPartition
	LeaderID            int32
	BrokerIncarnationID uuid.UUID
	LeaderEpoch         int32
	PartitionEpoch      int32
	NewISR              []int32
}

// Reassignment is a partition's ongoing reassignment. While it runs the
// partition's Replicas are the target replicas followed by those being
// removed; AddingReplicas catch up and join the ISR, then the reassignment
// completes and RemovingReplicas leave.
type Reassignment struct {
	TopicPartition
	Replicas         []int32
	AddingReplicas   []int32
	RemovingReplicas []int32
}

// Topic is a topic and its partitions. Partitions[i].Index == i.
type Topic struct {
	Name       string
	ID         uuid.UUID
	Internal   bool
	Configs    map[string]string // topic-level overrides only, Kafka names
	Partitions []Partition
}

// Partition is one partition's replica assignment and leadership.
// Leader is -1 when the partition has no leader. AddingReplicas and
// RemovingReplicas are nil unless a reassignment is in progress (see
// Reassignment).
type Partition struct {
	Index          int32
	Replicas, ISR  []int32
	Leader         int32
	LeaderEpoch    int32
	PartitionEpoch int32

	AddingReplicas, RemovingReplicas []int32
}

// RemoteEpoch is a leader epoch that starts inside a remote segment.
type RemoteEpoch struct {
	Epoch       int32
	StartOffset int64
}

// RemoteSegment is one segment uploaded to object storage, as recorded in
// its partition's remote manifest. ID is the upload id the object keys
// derive from; the offsets are inclusive.
type RemoteSegment struct {
	ID                       string
	BaseOffset, LastOffset   int64
	Size                     int64
	MaxTimestamp             int64
	Epochs                   []RemoteEpoch // stored as given, in the caller's order
	IndexSize, TimeIndexSize int64
	// TxnIndexSize and ProducerSnapshotSize are the sizes of the segment's
	// optional transaction index and producer snapshot objects; 0: none.
	TxnIndexSize, ProducerSnapshotSize int64
}

// RemoteManifest is the committed list of a partition's remote segments:
// sorted by offset and contiguous (each BaseOffset is the previous
// LastOffset+1). LogStartOffset never decreases; it is at least the
// LastOffset+1 of every segment ever removed from the manifest. The zero
// value is a partition with nothing recorded.
type RemoteManifest struct {
	LogStartOffset int64
	Segments       []RemoteSegment
}

// Voter is a Raft voter: a controller node and its Raft address.
type Voter struct {
	ID   int32
	Addr string
}

// Config configures a Store.
type Config struct {
	NodeID int32
	// Dir holds raft.db (log and stable store) and snapshots/.
	Dir string
	// RaftAddr is the TCP address Raft binds to. "" selects the in-memory
	// transport: a single voter, no port.
	RaftAddr string
	// Voters bootstrap a fresh cluster; default: only this node. When Dir
	// already holds Raft state the membership comes from the log instead;
	// the count here then only picks the timeouts (fast for one voter).
	// Every voter of a fresh cluster must be given the same list (KRaft's
	// controller.quorum.voters; ParseVoters reads that syntax): each one
	// bootstraps it, and Raft requires the bootstrap entries to be equal.
	// A node that is not a controller uses the list to find the quorum.
	Voters []Voter
	// Roles: what this node plays (KRaft's process.roles). The zero value
	// is broker and controller (combined). A controller must be among the
	// Voters; a broker-only node must not be, and joins the quorum as a
	// Raft non-voter: it receives and applies the committed log (that is
	// how brokers follow the metadata) but never votes.
	Roles Roles
	// RaftAdvertiseAddr is the address the leader dials to replicate to a
	// node that is not a voter; default: the address RaftAddr bound to
	// (which then must not be a wildcard). A voter's address is its entry
	// in Voters, so it must leave this empty.
	RaftAdvertiseAddr string
	Logger            *slog.Logger
	// TLS, when set, runs the Raft TCP transport (RaftAddr != "") over
	// mutual TLS; nil means plain TCP. It is ignored by the in-memory
	// transport. The caller supplies this node's certificate
	// (Certificates or GetCertificate; the same certificate is presented
	// as client and as server certificate, so it needs both the server and
	// client auth extended key usages, and names covering every address
	// peers dial: IP SANs for IP voter addresses), RootCAs to verify peers'
	// server certificates and ClientCAs to verify their client certificates
	// (either one stands for the other when only one is set; one is
	// required, never the system roots). The store uses clones: as server
	// config with ClientAuth forced to RequireAndVerifyClientCert, and as
	// client config; TLS 1.2 is the minimum. Certificate rotation works
	// through GetCertificate (also used for the client side when
	// Certificates and GetClientCertificate are empty).
	TLS *tls.Config
	// BrokerSessionTimeout is Kafka's broker.session.timeout.ms: the
	// active controller fences a registered (RegisterBrokerV2) broker that
	// has not heartbeated for this long. 0 means 9s, Kafka's default.
	BrokerSessionTimeout time.Duration
	// UncleanLeaderElection is the broker default of
	// unclean.leader.election.enable, used by the active controller when it
	// fences or unfences a broker and the topic does not set it.
	UncleanLeaderElection bool

	// tune lets tests adjust the Raft configuration (e.g. TrailingLogs).
	tune func(*raft.Config)
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.NodeID < 0 {
		return fmt.Errorf("metadata config: node id %d must be >= 0", c.NodeID)
	}
	if c.Dir == "" {
		return errors.New("metadata config: dir is required")
	}
	if c.BrokerSessionTimeout < 0 {
		return fmt.Errorf("metadata config: broker session timeout %v must not be negative", c.BrokerSessionTimeout)
	}
	if c.Roles&^(RoleBroker|RoleController) != 0 {
		return fmt.Errorf("metadata config: unknown roles %#x", uint8(c.Roles))
	}
	voters := c.voters()
	seen := make(map[int32]bool, len(voters))
	for _, v := range voters {
		if v.ID < 0 {
			return fmt.Errorf("metadata config: voter id %d must be >= 0", v.ID)
		}
		if seen[v.ID] {
			return fmt.Errorf("metadata config: voter %d listed twice", v.ID)
		}
		seen[v.ID] = true
		if v.ID != c.NodeID && v.Addr == "" {
			return fmt.Errorf("metadata config: voter %d has no address", v.ID)
		}
	}
	if c.roles().IsController() {
		if !seen[c.NodeID] {
			return fmt.Errorf("metadata config: node %d is a controller but is not among the voters", c.NodeID)
		}
		if c.RaftAdvertiseAddr != "" {
			return fmt.Errorf("metadata config: node %d is a voter: its raft address is its entry in the voters, not RaftAdvertiseAddr", c.NodeID)
		}
		for _, v := range voters {
			if v.ID == c.NodeID && v.Addr != "" && c.RaftAddr != "" && !bindMatches(c.RaftAddr, v.Addr) {
				return fmt.Errorf("metadata config: node %d binds raft to %s but the voters list it at %s (ports must be equal, and hosts too when both are IP addresses)", c.NodeID, c.RaftAddr, v.Addr)
			}
		}
	} else {
		if len(c.Voters) == 0 {
			return fmt.Errorf("metadata config: broker-only node %d needs the controller voters to find the metadata quorum", c.NodeID)
		}
		if seen[c.NodeID] {
			return fmt.Errorf("metadata config: broker-only node %d is listed among the voters: give it the controller role or another id", c.NodeID)
		}
		if c.RaftAddr == "" {
			return fmt.Errorf("metadata config: broker-only node %d needs a raft address: it receives the metadata log over TCP as a non-voter", c.NodeID)
		}
	}
	if c.RaftAddr == "" && len(voters) > 1 {
		return errors.New("metadata config: the in-memory transport (empty raft address) supports a single voter only")
	}
	if c.TLS != nil && c.RaftAddr != "" {
		if len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil {
			return errors.New("metadata config: raft TLS needs this node's certificate (Certificates or GetCertificate)")
		}
		if c.TLS.RootCAs == nil && c.TLS.ClientCAs == nil {
			return errors.New("metadata config: raft TLS needs the CA that signs the voters' certificates (RootCAs or ClientCAs)")
		}
	}
	return nil
}

// bindMatches reports whether a node binding bind can be reached at the
// advertised address adv. Host names are not resolved here (Validate does
// no I/O), so only two differing IP literals, or differing ports, are a
// mismatch; a wildcard bind address matches any host.
func bindMatches(bind, adv string) bool {
	bh, bp, err1 := net.SplitHostPort(bind)
	ah, ap, err2 := net.SplitHostPort(adv)
	if err1 != nil || err2 != nil {
		return bind == adv
	}
	if bp != ap {
		return false
	}
	bip, aip := net.ParseIP(bh), net.ParseIP(ah)
	if bh == "" || bip != nil && bip.IsUnspecified() {
		return true
	}
	if bip == nil || aip == nil {
		return true
	}
	return bip.Equal(aip)
}

func (c Config) voters() []Voter {
	if len(c.Voters) == 0 {
		return []Voter{{ID: c.NodeID}}
	}
	return c.Voters
}

func (c Config) roles() Roles {
	if c.Roles == 0 {
		return RoleBroker | RoleController
	}
	return c.Roles
}

// isVoter reports whether this node is in the static voter list (and
// therefore bootstraps the cluster and campaigns).
func (c Config) isVoter() bool { return c.roles().IsController() }

// maxTopicNameLen is Kafka's limit: 255 minus room for a partition suffix
// in directory names.
const maxTopicNameLen = 249

// ValidTopicName checks a topic name against Kafka's rules: 1 to 249
// characters from [a-zA-Z0-9._-], and not "." or "..". Errors wrap
// ErrInvalidTopic.
func ValidTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("topic name is empty: %w", ErrInvalidTopic)
	case name == "." || name == "..":
		return fmt.Errorf("topic name %q is not allowed: %w", name, ErrInvalidTopic)
	case len(name) > maxTopicNameLen:
		return fmt.Errorf("topic name is %d characters, the limit is %d: %w", len(name), maxTopicNameLen, ErrInvalidTopic)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q has illegal character %q (allowed: ASCII letters, digits, '.', '_', '-'): %w", name, c, ErrInvalidTopic)
		}
	}
	return nil
}

// topicNamesCollide reports whether two distinct names map to the same metric
// name once '.' is replaced by '_' (Kafka refuses such pairs).
func topicNamesCollide(a, b string) bool {
	if a == b || len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == '.' {
			x = '_'
		}
		if y == '.' {
			y = '_'
		}
		if x != y {
			return false
		}
	}
	return true
}
