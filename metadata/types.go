package metadata

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"

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

// Broker is a registered broker's endpoint.
type Broker struct {
	ID   int32
	Host string
	Port int32
	Rack string // "" when the broker has no rack
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
// Leader is -1 when the partition has no leader.
type Partition struct {
	Index          int32
	Replicas, ISR  []int32
	Leader         int32
	LeaderEpoch    int32
	PartitionEpoch int32
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
	Voters []Voter
	Logger *slog.Logger
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
	if !seen[c.NodeID] {
		return fmt.Errorf("metadata config: node %d is not among the voters", c.NodeID)
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

func (c Config) voters() []Voter {
	if len(c.Voters) == 0 {
		return []Voter{{ID: c.NodeID}}
	}
	return c.Voters
}

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
