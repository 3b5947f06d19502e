package metadata

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/google/uuid"
)

// The Raft log is a persistent format: every entry written by any past
// binary must decode to the same command forever. Each entry is an envelope
//
//	type    uint16 big endian  (cmdType)
//	version uint16 big endian  (payload version of that type)
//	payload                    (for every version so far: one JSON object)
//
// Rules for changing it:
//   - Never renumber a type or change what an existing (type, version)
//     means. A change of fields or of semantics is a new version; a new
//     operation is a new type.
//   - Payloads are decoded strictly (unknown fields are an error): an old
//     binary must never silently ignore a field a newer one relies on.
//   - A binary that meets a type it does not know, or a version newer than it
//     knows, stops (the FSM panics) rather than skip the entry: skipping would
//     let its state diverge from the other replicas. Upgrade every voter
//     before the leader starts writing the new version.

// cmdType identifies a command. Numbers are persistent; never reuse one.
type cmdType uint16

const (
	cmdInitCluster          cmdType = 1
	cmdRegisterBroker       cmdType = 2
	cmdCreateTopic          cmdType = 3
	cmdDeleteTopic          cmdType = 4
	cmdCreatePartitions     cmdType = 5
	cmdAlterTopicConfigs    cmdType = 6
	cmdAllocateProducerIDs  cmdType = 7
	cmdAddRemoteSegment     cmdType = 8
	cmdRemoveRemoteSegments cmdType = 9
	cmdCreateACLs           cmdType = 10
	cmdDeleteACLs           cmdType = 11
	cmdAlterScramCreds      cmdType = 12
	cmdAlterClientQuotas    cmdType = 13
	// Cluster control (cluster.go). RegisterBroker's version 2 (incarnation,
	// endpoints, fencing) is the same operation, so the same type.
	cmdFenceBroker        cmdType = 14
	cmdUnfenceBroker      cmdType = 15
	cmdControlledShutdown cmdType = 16
	cmdAlterPartition     cmdType = 17
	cmdElectLeaders       cmdType = 18
	cmdReassignPartition  cmdType = 19
	// Compaction of tiered topics (remote_replace.go).
	cmdReplaceRemoteSegments cmdType = 20
)

func (t cmdType) String() string {
	switch t {
	case cmdInitCluster:
		return "InitCluster"
	case cmdRegisterBroker:
		return "RegisterBroker"
	case cmdCreateTopic:
		return "CreateTopic"
	case cmdDeleteTopic:
		return "DeleteTopic"
	case cmdCreatePartitions:
		return "CreatePartitions"
	case cmdAlterTopicConfigs:
		return "AlterTopicConfigs"
	case cmdAllocateProducerIDs:
		return "AllocateProducerIDs"
	case cmdAddRemoteSegment:
		return "AddRemoteSegment"
	case cmdRemoveRemoteSegments:
		return "RemoveRemoteSegments"
	case cmdCreateACLs:
		return "CreateACLs"
	case cmdDeleteACLs:
		return "DeleteACLs"
	case cmdAlterScramCreds:
		return "AlterScramCredentials"
	case cmdAlterClientQuotas:
		return "AlterClientQuotas"
	case cmdFenceBroker:
		return "FenceBroker"
	case cmdUnfenceBroker:
		return "UnfenceBroker"
	case cmdControlledShutdown:
		return "ControlledShutdown"
	case cmdAlterPartition:
		return "AlterPartition"
	case cmdElectLeaders:
		return "ElectLeaders"
	case cmdReassignPartition:
		return "ReassignPartition"
	case cmdReplaceRemoteSegments:
		return "ReplaceRemoteSegments"
	}
	return fmt.Sprintf("cmdType(%d)", uint16(t))
}

// maxVersion is the newest payload version of each type this binary can
// apply. A type missing here is unknown.
var maxVersion = map[cmdType]uint16{
	cmdInitCluster:           1,
	cmdRegisterBroker:        2,
	cmdCreateTopic:           1,
	cmdDeleteTopic:           1,
	cmdCreatePartitions:      1,
	cmdAlterTopicConfigs:     1,
	cmdAllocateProducerIDs:   1,
	cmdAddRemoteSegment:      1,
	cmdRemoveRemoteSegments:  1,
	cmdCreateACLs:            1,
	cmdDeleteACLs:            1,
	cmdAlterScramCreds:       1,
	cmdAlterClientQuotas:     1,
	cmdFenceBroker:           1,
	cmdUnfenceBroker:         1,
	cmdControlledShutdown:    1,
	cmdAlterPartition:        1,
	cmdElectLeaders:          1,
	cmdReassignPartition:     1,
	cmdReplaceRemoteSegments: 1,
}

const envelopeHeaderSize = 4

var (
	errUnknownCommand      = errors.New("unknown command type")
	errUnsupportedVersion  = errors.New("command version newer than this binary supports")
	errMalformedCommand    = errors.New("malformed command")
	errUnsupportedSnapshot = errors.New("unsupported snapshot format")
)

// command is a decoded log entry payload.
type command interface {
	kind() (cmdType, uint16)
}

// Payloads, version 1. Field names are the JSON tags; Go names may change.

type initClusterV1 struct {
	ClusterID string `json:"cluster_id"`
}

type registerBrokerV1 struct {
	Broker brokerRec `json:"broker"`
}

type createTopicV1 struct {
	Topic topicRec `json:"topic"`
}

type deleteTopicV1 struct {
	ID uuid.UUID `json:"id"`
}

type createPartitionsV1 struct {
	TopicID    uuid.UUID      `json:"topic_id"`
	Partitions []partitionRec `json:"partitions"`
}

type alterTopicConfigsV1 struct {
	TopicID uuid.UUID         `json:"topic_id"`
	Set     map[string]string `json:"set"`
	Delete  []string          `json:"delete"`
}

type allocateProducerIDsV1 struct {
	Count int64 `json:"count"`
}

// addRemoteSegmentV1 appends one uploaded segment to a partition's remote
// manifest (fsm.addRemoteSegment has the rules).
type addRemoteSegmentV1 struct {
	TopicID   uuid.UUID        `json:"topic_id"`
	Partition int32            `json:"partition"`
	Segment   remoteSegmentRec `json:"segment"`
}

// removeRemoteSegmentsV1 drops a prefix of a partition's remote manifest
// and raises its log start offset (fsm.removeRemoteSegments has the rules).
type removeRemoteSegmentsV1 struct {
	TopicID        uuid.UUID `json:"topic_id"`
	Partition      int32     `json:"partition"`
	IDs            []string  `json:"ids"`
	LogStartOffset int64     `json:"log_start_offset"`
}

// createACLsV1 adds ACL bindings (security.go has the rules for this and
// the next three).
type createACLsV1 struct {
	ACLs []aclRec `json:"acls"`
}

// deleteACLsV1 removes exact ACL bindings.
type deleteACLsV1 struct {
	ACLs []aclRec `json:"acls"`
}

// alterScramCredentialsV1 replaces or adds credentials and deletes others.
type alterScramCredentialsV1 struct {
	Upserts []scramRec    `json:"upserts"`
	Deletes []scramKeyRec `json:"deletes"`
}

// alterClientQuotasV1 sets and removes quota keys of client-quota entities.
type alterClientQuotasV1 struct {
	Alterations []quotaAlterationRec `json:"alterations"`
}

// Cluster control payloads (cluster.go has the rules).

// registerBrokerV2 registers one incarnation of a broker process, fenced.
type registerBrokerV2 struct {
	ID            int32         `json:"id"`
	IncarnationID uuid.UUID     `json:"incarnation_id"`
	Endpoints     []endpointRec `json:"endpoints"`
	Rack          string        `json:"rack"`
}

// fenceBrokerV1 fences a broker and moves leadership and ISR membership
// off it. Unclean is the cluster default for unclean.leader.election.enable
// (a topic's own setting wins).
type fenceBrokerV1 struct {
	ID            int32     `json:"id"`
	IncarnationID uuid.UUID `json:"incarnation_id"`
	Unclean       bool      `json:"unclean"`
}

// unfenceBrokerV1 admits a fenced broker and gives leaderless partitions a
// leader where it can lead. Unclean as in fenceBrokerV1.
type unfenceBrokerV1 struct {
	ID            int32     `json:"id"`
	IncarnationID uuid.UUID `json:"incarnation_id"`
	Unclean       bool      `json:"unclean"`
}

// controlledShutdownV1 moves everything off a broker about to stop.
type controlledShutdownV1 struct {
	ID            int32     `json:"id"`
	IncarnationID uuid.UUID `json:"incarnation_id"`
}

// alterPartitionV1 is a leader's ISR change. A nil BrokerIncarnationID
// skips the incarnation check.
type alterPartitionV1 struct {
	TopicID             uuid.UUID `json:"topic_id"`
	Partition           int32     `json:"partition"`
	LeaderID            int32     `json:"leader_id"`
	BrokerIncarnationID uuid.UUID `json:"broker_incarnation_id"`
	LeaderEpoch         int32     `json:"leader_epoch"`
	PartitionEpoch      int32     `json:"partition_epoch"`
	NewISR              []int32   `json:"new_isr"`
}

type topicPartitionRec struct {
	TopicID   uuid.UUID `json:"topic_id"`
	Partition int32     `json:"partition"`
}

// electLeadersV1 runs elections of one type (Kafka's codes: 0 preferred,
// 1 unclean) on the listed partitions, or on all when All is set.
type electLeadersV1 struct {
	Election   int8                `json:"election"`
	All        bool                `json:"all"`
	Partitions []topicPartitionRec `json:"partitions"`
}

// reassignPartitionV1 starts or replaces a reassignment to Target, or
// cancels the ongoing one.
type reassignPartitionV1 struct {
	TopicID   uuid.UUID `json:"topic_id"`
	Partition int32     `json:"partition"`
	Target    []int32   `json:"target"`
	Cancel    bool      `json:"cancel"`
}

func (*initClusterV1) kind() (cmdType, uint16)           { return cmdInitCluster, 1 }
func (*registerBrokerV1) kind() (cmdType, uint16)        { return cmdRegisterBroker, 1 }
func (*createTopicV1) kind() (cmdType, uint16)           { return cmdCreateTopic, 1 }
func (*deleteTopicV1) kind() (cmdType, uint16)           { return cmdDeleteTopic, 1 }
func (*createPartitionsV1) kind() (cmdType, uint16)      { return cmdCreatePartitions, 1 }
func (*alterTopicConfigsV1) kind() (cmdType, uint16)     { return cmdAlterTopicConfigs, 1 }
func (*allocateProducerIDsV1) kind() (cmdType, uint16)   { return cmdAllocateProducerIDs, 1 }
func (*addRemoteSegmentV1) kind() (cmdType, uint16)      { return cmdAddRemoteSegment, 1 }
func (*removeRemoteSegmentsV1) kind() (cmdType, uint16)  { return cmdRemoveRemoteSegments, 1 }
func (*createACLsV1) kind() (cmdType, uint16)            { return cmdCreateACLs, 1 }
func (*deleteACLsV1) kind() (cmdType, uint16)            { return cmdDeleteACLs, 1 }
func (*alterScramCredentialsV1) kind() (cmdType, uint16) { return cmdAlterScramCreds, 1 }
func (*alterClientQuotasV1) kind() (cmdType, uint16)     { return cmdAlterClientQuotas, 1 }
func (*registerBrokerV2) kind() (cmdType, uint16)        { return cmdRegisterBroker, 2 }
func (*fenceBrokerV1) kind() (cmdType, uint16)           { return cmdFenceBroker, 1 }
func (*unfenceBrokerV1) kind() (cmdType, uint16)         { return cmdUnfenceBroker, 1 }
func (*controlledShutdownV1) kind() (cmdType, uint16)    { return cmdControlledShutdown, 1 }
func (*alterPartitionV1) kind() (cmdType, uint16)        { return cmdAlterPartition, 1 }
func (*electLeadersV1) kind() (cmdType, uint16)          { return cmdElectLeaders, 1 }
func (*reassignPartitionV1) kind() (cmdType, uint16)     { return cmdReassignPartition, 1 }

// encodeCommand builds the envelope for c.
func encodeCommand(c command) ([]byte, error) {
	t, v := c.kind()
	payload, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode %s v%d: %w", t, v, err)
	}
	buf := make([]byte, envelopeHeaderSize, envelopeHeaderSize+len(payload))
	binary.BigEndian.PutUint16(buf[0:], uint16(t))
	binary.BigEndian.PutUint16(buf[2:], v)
	return append(buf, payload...), nil
}

// decodeCommand parses an envelope. It never panics; the FSM decides that
// an undecodable entry is fatal.
func decodeCommand(data []byte) (command, error) {
	if len(data) < envelopeHeaderSize {
		return nil, fmt.Errorf("%w: %d-byte entry is shorter than the envelope header", errMalformedCommand, len(data))
	}
	t := cmdType(binary.BigEndian.Uint16(data[0:]))
	v := binary.BigEndian.Uint16(data[2:])
	max, ok := maxVersion[t]
	if !ok {
		return nil, fmt.Errorf("%w %d (version %d)", errUnknownCommand, uint16(t), v)
	}
	if v == 0 || v > max {
		return nil, fmt.Errorf("%s version %d: %w (max %d)", t, v, errUnsupportedVersion, max)
	}
	var c command
	switch t {
	case cmdInitCluster:
		c = new(initClusterV1)
	case cmdRegisterBroker:
		if v == 1 {
			c = new(registerBrokerV1)
		} else {
			c = new(registerBrokerV2)
		}
	case cmdCreateTopic:
		c = new(createTopicV1)
	case cmdDeleteTopic:
		c = new(deleteTopicV1)
	case cmdCreatePartitions:
		c = new(createPartitionsV1)
	case cmdAlterTopicConfigs:
		c = new(alterTopicConfigsV1)
	case cmdAllocateProducerIDs:
		c = new(allocateProducerIDsV1)
	case cmdAddRemoteSegment:
		c = new(addRemoteSegmentV1)
	case cmdRemoveRemoteSegments:
		c = new(removeRemoteSegmentsV1)
	case cmdCreateACLs:
		c = new(createACLsV1)
	case cmdDeleteACLs:
		c = new(deleteACLsV1)
	case cmdAlterScramCreds:
		c = new(alterScramCredentialsV1)
	case cmdAlterClientQuotas:
		c = new(alterClientQuotasV1)
	case cmdFenceBroker:
		c = new(fenceBrokerV1)
	case cmdUnfenceBroker:
		c = new(unfenceBrokerV1)
	case cmdControlledShutdown:
		c = new(controlledShutdownV1)
	case cmdAlterPartition:
		c = new(alterPartitionV1)
	case cmdElectLeaders:
		c = new(electLeadersV1)
	case cmdReassignPartition:
		c = new(reassignPartitionV1)
	case cmdReplaceRemoteSegments:
		c = new(replaceRemoteSegmentsV1)
	}
	if err := decodeStrict(data[envelopeHeaderSize:], c); err != nil {
		return nil, fmt.Errorf("%w: %s v%d: %v", errMalformedCommand, t, v, err)
	}
	return c, nil
}

// decodeStrict decodes exactly one JSON value into v, rejecting unknown
// fields and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
