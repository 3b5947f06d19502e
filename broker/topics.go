package broker

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
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
	assignment   [][]int32 // explicit replicas per partition (CreateTopics ReplicaAssignment); nil = placed
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
		if spec.internal {
			// Kafka's offsets.topic.replication.factor and
			// transaction.state.log.replication.factor (3), capped at the
			// brokers registered, so a single node or a two-node
			// development cluster still gets its internal topics.
			rf := s.cfg.OffsetsTopicReplicationFactor
			if spec.name == txnStateTopicName {
				rf = s.cfg.TransactionStateLogReplicationFactor
			}
			spec.replication = min(rf, int16(len(s.meta.Brokers())))
		}
	}
	if spec.partitions <= 0 || spec.partitions > maxPartitionsPerRequest {
		return t, fmt.Errorf("%w: number of partitions must be between 1 and %d, got %d", errInvalidPartitions, maxPartitionsPerRequest, spec.partitions)
	}
	if spec.replication <= 0 {
		return t, fmt.Errorf("%w: replication factor must be larger than 0, got %d", errInvalidReplication, spec.replication)
	}
	if brokers := int16(len(s.liveBrokerIDs())); spec.replication > brokers {
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
	if _, set := t.Configs["remote.storage.enable"]; !set && spec.internal {
		// Compacted topics may be tiered (remote segments are compacted
		// too), but internal ones stay local whatever
		// log.remote.storage.enable says: coordinators load them at every
		// failover. Written into the topic so it can never flip later.
		t.Configs["remote.storage.enable"] = "false"
	}
	if spec.assignment != nil {
		for i, rs := range spec.assignment {
			t.Partitions = append(t.Partitions, metadata.Partition{Index: int32(i), Replicas: rs, ISR: rs, Leader: rs[0]})
		}
	} else {
		ps, err := s.placePartitions(0, spec.partitions, spec.replication)
		if err != nil {
			return t, err
		}
		t.Partitions = ps
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

// placePartitions places partitions first..first+n-1 with rf replicas
// each over the live brokers (metadata.PlaceReplicas: rack-aware, leaders
// spread); every replica starts in the ISR, the first leads.
func (s *Server) placePartitions(first, n int32, rf int16) ([]metadata.Partition, error) {
	brokers := s.meta.Brokers()
	assign, err := metadata.PlaceReplicas(brokers, int(n), int(rf), int(first)+rand.IntN(max(len(brokers), 1)))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errInvalidReplication, err)
	}
	out := make([]metadata.Partition, n)
	for i, rs := range assign {
		out[i] = metadata.Partition{Index: first + int32(i), Replicas: rs, ISR: slices.Clone(rs), Leader: rs[0]}
	}
	return out, nil
}

// liveBrokerIDs are the brokers new replicas can be placed on.
func (s *Server) liveBrokerIDs() []int32 {
	var out []int32
	for _, b := range s.meta.Brokers() {
		if !b.Fenced && !b.InControlledShutdown {
			out = append(out, b.ID)
		}
	}
	return out
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
