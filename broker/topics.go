package broker

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/google/uuid"

	"github.com/strata-broker/strata/metadata"
)

const (
	offsetsTopicName = "__consumer_offsets"
	// maxPartitionsPerRequest bounds what one request can make this broker
	// create on disk; a hostile or mistaken client cannot exhaust inodes.
	maxPartitionsPerRequest = 10000
)

type createTopicSpec struct {
	name         string
	partitions   int32 // -1 = num.partitions
	replication  int16 // -1 = default.replication.factor
	configs      map[string]string
	internal     bool
	validateOnly bool
}

// createTopic validates a topic as Kafka does and, unless validateOnly,
// commits it to the metadata quorum and opens its logs before returning,
// so the caller can use the topic at once.
func (s *Server) createTopic(ctx context.Context, spec createTopicSpec) (metadata.Topic, error) {
	var t metadata.Topic
	if err := metadata.ValidTopicName(spec.name); err != nil {
		return t, fmt.Errorf("%w: %v", errInvalidTopic, err)
	}
	if spec.partitions == -1 {
		spec.partitions = s.cfg.NumPartitions
	}
	if spec.replication == -1 {
		spec.replication = s.cfg.DefaultReplicationFactor
	}
	if spec.partitions <= 0 || spec.partitions > maxPartitionsPerRequest {
		return t, fmt.Errorf("%w: number of partitions must be between 1 and %d, got %d", errInvalidPartitions, maxPartitionsPerRequest, spec.partitions)
	}
	if spec.replication <= 0 {
		return t, fmt.Errorf("%w: replication factor must be larger than 0, got %d", errInvalidReplication, spec.replication)
	}
	if brokers := int16(len(s.meta.Brokers())); spec.replication > brokers {
		return t, fmt.Errorf("%w: replication factor %d larger than available brokers %d", errInvalidReplication, spec.replication, brokers)
	}
	if err := s.validateTopicConfigs(spec.configs, nil); err != nil {
		return t, err
	}
	if _, ok := s.meta.Topic(spec.name); ok {
		return t, fmt.Errorf("topic %q: %w", spec.name, metadata.ErrTopicExists)
	}
	// Kafka refuses names that differ only by '.' vs '_': they collide in
	// metric names.
	norm := strings.ReplaceAll(spec.name, ".", "_")
	for _, other := range s.meta.Topics() {
		if strings.ReplaceAll(other.Name, ".", "_") == norm {
			return t, fmt.Errorf("%w: topic %q collides with existing topic %q", errInvalidTopic, spec.name, other.Name)
		}
	}
	t = metadata.Topic{Name: spec.name, ID: uuid.New(), Internal: spec.internal, Configs: maps.Clone(spec.configs)}
	if t.Configs == nil {
		t.Configs = map[string]string{}
	}
	if _, set := t.Configs["remote.storage.enable"]; !set && hasCompact(t.Configs["cleanup.policy"]) {
		// The cleaner compacts local segments only (compaction of remote
		// segments is still to come), so a compacted topic is not tiered
		// unless asked for, whatever log.remote.storage.enable says. Written
		// into the topic so it can never flip later.
		t.Configs["remote.storage.enable"] = "false"
	}
	for i := int32(0); i < spec.partitions; i++ {
		t.Partitions = append(t.Partitions, s.newPartitionAssignment(i))
	}
	if spec.validateOnly {
		return t, nil
	}
	if err := s.meta.CreateTopic(ctx, t); err != nil {
		return t, err
	}
	if err := s.parts.reconcile(); err != nil {
		return t, err
	}
	s.log.Info("created topic", "topic", t.Name, "topic_id", t.ID.String(), "partitions", spec.partitions, "configs", t.Configs)
	return t, nil
}

func hasCompact(policy string) bool {
	for _, p := range strings.Split(policy, ",") {
		if strings.TrimSpace(p) == "compact" {
			return true
		}
	}
	return false
}

// newPartitionAssignment places a partition. With one broker, everything
// lives here; the cluster issue brings rack-aware placement.
func (s *Server) newPartitionAssignment(i int32) metadata.Partition {
	return metadata.Partition{Index: i, Replicas: []int32{s.cfg.NodeID}, ISR: []int32{s.cfg.NodeID}, Leader: s.cfg.NodeID}
}

// autoCreateTopic creates a topic on behalf of Metadata or FindCoordinator;
// a concurrent creation of the same topic is not an error.
func (s *Server) autoCreateTopic(ctx context.Context, name string) error {
	_, err := s.createTopic(ctx, createTopicSpec{name: name, partitions: -1, replication: -1})
	if err != nil && isTopicExists(err) {
		return nil
	}
	return err
}

func isTopicExists(err error) bool {
	return err != nil && errorsIs(err, metadata.ErrTopicExists)
}
