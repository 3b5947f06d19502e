package metadata

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
)

// Records held in the state. They are also the wire format of commands and
// snapshots (see the JSON tags), so they are kept apart from the public
// Broker/Topic/Partition types: the API may grow without changing what is on
// disk. Once a record is in a state it is never modified: Apply replaces it
// with a changed copy. That keeps Snapshot cheap (copy the maps of pointers)
// and lets readers copy out under a read lock.
//
// Canonical form (so that a snapshot round trip is exact): empty slices and
// maps are nil; partitions are in index order with Index == position.

type brokerRec struct {
	ID   int32  `json:"id"`
	Host string `json:"host"`
	Port int32  `json:"port"`
	Rack string `json:"rack"`
}

type partitionRec struct {
	Index          int32   `json:"index"`
	Replicas       []int32 `json:"replicas"`
	ISR            []int32 `json:"isr"`
	Leader         int32   `json:"leader"`
	LeaderEpoch    int32   `json:"leader_epoch"`
	PartitionEpoch int32   `json:"partition_epoch"`
}

type topicRec struct {
	Name       string            `json:"name"`
	ID         uuid.UUID         `json:"id"`
	Internal   bool              `json:"internal"`
	Configs    map[string]string `json:"configs"`
	Partitions []partitionRec    `json:"partitions"`
}

// state is the whole cluster metadata. Only the FSM goroutine writes it.
type state struct {
	clusterID string
	// brokers: every registration, v1 ones included (cluster.go).
	brokers        map[int32]*brokerRegRec
	topics         map[uuid.UUID]*topicRec
	names          map[string]uuid.UUID // derived index: name -> id
	nextProducerID int64
	// manifests holds remote manifests of existing partitions only; a
	// partition with nothing recorded has no entry (never a zero record).
	manifests map[partKey]*manifestRec
	// Security (security.go). ACL bindings are values; SCRAM records and
	// the per-entity quota maps are immutable once stored, like the rest.
	acls   map[aclRec]struct{}
	scram  map[scramKeyRec]*scramRec
	quotas map[quotaEntityRec]map[string]float64
	// reassigns holds the ongoing reassignments of existing partitions
	// (cluster.go).
	reassigns map[partKey]*reassignRec
}

func newState() *state {
	return &state{
		brokers:   map[int32]*brokerRegRec{},
		topics:    map[uuid.UUID]*topicRec{},
		names:     map[string]uuid.UUID{},
		manifests: map[partKey]*manifestRec{},
		acls:      map[aclRec]struct{}{},
		scram:     map[scramKeyRec]*scramRec{},
		quotas:    map[quotaEntityRec]map[string]float64{},
		reassigns: map[partKey]*reassignRec{},
	}
}

// clone copies the maps; records are shared because they are immutable.
func (s *state) clone() *state {
	return &state{
		clusterID:      s.clusterID,
		brokers:        maps.Clone(s.brokers),
		topics:         maps.Clone(s.topics),
		names:          maps.Clone(s.names),
		nextProducerID: s.nextProducerID,
		manifests:      maps.Clone(s.manifests),
		acls:           maps.Clone(s.acls),
		scram:          maps.Clone(s.scram),
		quotas:         maps.Clone(s.quotas),
		reassigns:      maps.Clone(s.reassigns),
	}
}

// applyResult is what the FSM returns to the proposer through the Raft
// future. err carries the deterministic rejection of a command (the command
// is in the log either way; a rejected one changed nothing).
type applyResult struct {
	err        error
	producerID int64  // AllocateProducerIDs: first id of the block
	clusterID  string // InitCluster: the cluster id in force afterwards
	// DeleteACLs: the bindings that existed and were removed, in command
	// order.
	removedACLs []aclRec
	// AlterPartition: the partition after the command.
	partition partitionRec
	// ElectLeaders: one result per partition tried.
	elections []ElectionResult
}

// fsm is the raft.FSM of the metadata state.
type fsm struct {
	mu      sync.RWMutex // guards st (the pointer) and changed
	st      *state
	changed chan struct{} // closed and replaced after every change
	// secVersion counts applied security changes and restores. It is
	// bumped under mu after the new state is in place, so a reader that
	// loads it and then reads the state never sees an older state than the
	// version it holds.
	secVersion atomic.Uint64
	// appliedIndex is the Raft index of the last command Apply has run.
	// Raft's own AppliedIndex moves when entries are handed to the FSM
	// goroutine, before they are applied, so read-your-writes waits on
	// this one (see Store.awaitApplied).
	appliedIndex atomic.Uint64
}

var _ raft.FSM = (*fsm)(nil)

func newFSM() *fsm {
	return &fsm{st: newState(), changed: make(chan struct{})}
}

// Apply applies one committed log entry. An entry this binary cannot decode
// is fatal: skipping it would make this replica's state diverge from the
// replicas that understood it.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	c, err := decodeCommand(l.Data)
	if err != nil {
		panic(fmt.Sprintf("metadata: cannot apply raft log entry %d (term %d): %v; "+
			"stopping rather than skipping it, which would make this replica diverge; "+
			"run a strata binary that knows this command", l.Index, l.Term, err))
	}
	res := f.apply(c)
	f.appliedIndex.Store(l.Index)
	return res
}

// apply runs one decoded command. It must depend only on the state and the
// command: no clock, no randomness, no map iteration order in its outcome.
func (f *fsm) apply(c command) applyResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	var (
		res      applyResult
		changed  bool
		security bool
	)
	switch c := c.(type) {
	case *initClusterV1:
		changed, res = f.initCluster(c)
	case *registerBrokerV1:
		changed, res.err = f.registerBroker(c)
	case *createTopicV1:
		changed, res.err = f.createTopic(c)
	case *deleteTopicV1:
		changed, res.err = f.deleteTopic(c)
	case *createPartitionsV1:
		changed, res.err = f.createPartitions(c)
	case *alterTopicConfigsV1:
		changed, res.err = f.alterTopicConfigs(c)
	case *allocateProducerIDsV1:
		changed, res = f.allocateProducerIDs(c)
	case *addRemoteSegmentV1:
		changed, res.err = f.addRemoteSegment(c)
	case *removeRemoteSegmentsV1:
		changed, res.err = f.removeRemoteSegments(c)
	case *replaceRemoteSegmentsV1:
		changed, res.err = f.replaceRemoteSegments(c)
	case *createACLsV1:
		security = true
		changed, res.err = f.createACLs(c)
	case *deleteACLsV1:
		security = true
		changed, res.removedACLs, res.err = f.deleteACLs(c)
	case *alterScramCredentialsV1:
		security = true
		changed, res.err = f.alterScramCredentials(c)
	case *alterClientQuotasV1:
		security = true
		changed, res.err = f.alterClientQuotas(c)
	case *registerBrokerV2:
		changed, res.err = f.registerBrokerV2(c)
	case *fenceBrokerV1:
		changed, res.err = f.fenceBroker(c)
	case *unfenceBrokerV1:
		changed, res.err = f.unfenceBroker(c)
	case *controlledShutdownV1:
		changed, res.err = f.controlledShutdown(c)
	case *alterPartitionV1:
		changed, res.partition, res.err = f.alterPartition(c)
	case *electLeadersV1:
		changed, res.elections, res.err = f.electLeaders(c)
	case *reassignPartitionV1:
		changed, res.err = f.reassignPartition(c)
	default:
		t, v := c.kind()
		panic(fmt.Sprintf("metadata: decoded command %s v%d has no FSM handler", t, v))
	}
	if changed {
		if security {
			f.secVersion.Add(1)
		}
		close(f.changed)
		f.changed = make(chan struct{})
	}
	return res
}

func (f *fsm) initCluster(c *initClusterV1) (bool, applyResult) {
	if f.st.clusterID != "" {
		// Two leaders in a row may both have seen an empty id before either
		// InitCluster committed; the first one applied wins.
		return false, applyResult{clusterID: f.st.clusterID}
	}
	if c.ClusterID == "" {
		return false, applyResult{err: fmt.Errorf("init cluster: empty cluster id: %w", ErrInvalidArgument)}
	}
	f.st.clusterID = c.ClusterID
	return true, applyResult{clusterID: c.ClusterID}
}

func (f *fsm) registerBroker(c *registerBrokerV1) (bool, error) {
	b := c.Broker
	if b.ID < 0 {
		return false, fmt.Errorf("register broker %d: negative id: %w", b.ID, ErrInvalidArgument)
	}
	if b.Port < 0 || b.Port > math.MaxUint16 {
		return false, fmt.Errorf("register broker %d: port %d out of range: %w", b.ID, b.Port, ErrInvalidArgument)
	}
	// Version 1 keeps its meaning: the broker is (re)registered unfenced
	// with one PLAINTEXT endpoint, replacing any registration.
	rec := legacyBrokerRec(b)
	if old, ok := f.st.brokers[b.ID]; ok && old.equal(rec) {
		return false, nil
	}
	f.st.brokers[b.ID] = rec
	return true, nil
}

func (f *fsm) createTopic(c *createTopicV1) (bool, error) {
	t := c.Topic
	if err := ValidTopicName(t.Name); err != nil {
		return false, fmt.Errorf("create topic: %w", err)
	}
	if err := validTopicID(t.ID); err != nil {
		return false, fmt.Errorf("create topic %q: %w", t.Name, err)
	}
	if _, ok := f.st.names[t.Name]; ok {
		return false, fmt.Errorf("create topic %q: %w", t.Name, ErrTopicExists)
	}
	if other, ok := f.st.topics[t.ID]; ok {
		return false, fmt.Errorf("create topic %q: id %s is used by topic %q: %w", t.Name, t.ID, other.Name, ErrTopicExists)
	}
	for name := range f.st.names {
		if topicNamesCollide(name, t.Name) {
			return false, fmt.Errorf("create topic %q: collides with existing topic %q ('.' and '_' are the same in metric names): %w", t.Name, name, ErrInvalidTopic)
		}
	}
	if len(t.Partitions) == 0 {
		return false, fmt.Errorf("create topic %q: no partitions: %w", t.Name, ErrInvalidPartitions)
	}
	parts, err := newPartitions(0, t.Partitions)
	if err == nil {
		err = f.st.checkLeadersLive(parts)
	}
	if err != nil {
		return false, fmt.Errorf("create topic %q: %w", t.Name, err)
	}
	if err := validConfigKeys(t.Configs, nil); err != nil {
		return false, fmt.Errorf("create topic %q: %w", t.Name, err)
	}
	rec := &topicRec{
		Name:       t.Name,
		ID:         t.ID,
		Internal:   t.Internal,
		Configs:    cloneConfigs(t.Configs),
		Partitions: parts,
	}
	f.st.topics[rec.ID] = rec
	f.st.names[rec.Name] = rec.ID
	return true, nil
}

func (f *fsm) deleteTopic(c *deleteTopicV1) (bool, error) {
	t, ok := f.st.topics[c.ID]
	if !ok {
		return false, fmt.Errorf("delete topic %s: %w", c.ID, ErrUnknownTopic)
	}
	delete(f.st.topics, t.ID)
	delete(f.st.names, t.Name)
	// The manifests go with the topic: the broker deletes the objects,
	// driven by the manifests it read before proposing this. (Logs written
	// before manifests existed have none to drop, so DeleteTopic v1 still
	// means the same on every replica.)
	for i := range t.Partitions {
		delete(f.st.manifests, partKey{t.ID, int32(i)})
		delete(f.st.reassigns, partKey{t.ID, int32(i)})
	}
	return true, nil
}

func (f *fsm) createPartitions(c *createPartitionsV1) (bool, error) {
	t, ok := f.st.topics[c.TopicID]
	if !ok {
		return false, fmt.Errorf("create partitions %s: %w", c.TopicID, ErrUnknownTopic)
	}
	if len(c.Partitions) == 0 {
		return false, fmt.Errorf("create partitions %q: nothing to add: %w", t.Name, ErrInvalidPartitions)
	}
	parts, err := newPartitions(len(t.Partitions), c.Partitions)
	if err == nil {
		err = f.st.checkLeadersLive(parts)
	}
	if err != nil {
		return false, fmt.Errorf("create partitions %q: %w", t.Name, err)
	}
	nt := *t
	nt.Partitions = append(slices.Clip(t.Partitions), parts...)
	f.st.topics[nt.ID] = &nt
	return true, nil
}

func (f *fsm) alterTopicConfigs(c *alterTopicConfigsV1) (bool, error) {
	t, ok := f.st.topics[c.TopicID]
	if !ok {
		return false, fmt.Errorf("alter configs %s: %w", c.TopicID, ErrUnknownTopic)
	}
	if err := validConfigKeys(c.Set, c.Delete); err != nil {
		return false, fmt.Errorf("alter configs %q: %w", t.Name, err)
	}
	cfg := maps.Clone(t.Configs)
	if cfg == nil {
		cfg = map[string]string{}
	}
	maps.Copy(cfg, c.Set)
	for _, k := range c.Delete {
		delete(cfg, k)
	}
	if len(cfg) == 0 {
		cfg = nil
	}
	if maps.Equal(cfg, t.Configs) {
		return false, nil
	}
	nt := *t
	nt.Configs = cfg
	f.st.topics[nt.ID] = &nt
	return true, nil
}

func (f *fsm) allocateProducerIDs(c *allocateProducerIDsV1) (bool, applyResult) {
	if c.Count <= 0 {
		return false, applyResult{err: fmt.Errorf("allocate %d producer ids: count must be positive: %w", c.Count, ErrInvalidArgument)}
	}
	first := f.st.nextProducerID
	if first > math.MaxInt64-c.Count {
		return false, applyResult{err: fmt.Errorf("allocate %d producer ids: producer id space exhausted at %d: %w", c.Count, first, ErrInvalidArgument)}
	}
	f.st.nextProducerID = first + c.Count
	return true, applyResult{producerID: first}
}

// reservedTopicID is Kafka's id of the __cluster_metadata topic; like the
// zero id it never names a user topic.
var reservedTopicID = uuid.UUID{15: 1}

func validTopicID(id uuid.UUID) error {
	if id == uuid.Nil || id == reservedTopicID {
		return fmt.Errorf("reserved topic id %s: %w", id, ErrInvalidTopic)
	}
	return nil
}

// newPartitions validates partitions to be appended after `existing` ones
// and returns them in canonical form. Epochs start at 0 whatever the caller
// sent: they count changes made through this FSM.
func newPartitions(existing int, ps []partitionRec) ([]partitionRec, error) {
	if len(ps) > math.MaxInt32-existing {
		return nil, fmt.Errorf("%d partitions: %w", existing+len(ps), ErrInvalidPartitions)
	}
	out := make([]partitionRec, len(ps))
	for i, p := range ps {
		if err := validPartition(p, int32(existing+i)); err != nil {
			return nil, err
		}
		out[i] = partitionRec{
			Index:    p.Index,
			Replicas: slices.Clone(p.Replicas),
			ISR:      cloneInt32s(p.ISR),
			Leader:   p.Leader,
		}
	}
	return out, nil
}

func validPartition(p partitionRec, index int32) error {
	if p.Index != index {
		return fmt.Errorf("partition index %d where %d was expected (partitions are numbered densely): %w", p.Index, index, ErrInvalidPartitions)
	}
	if len(p.Replicas) == 0 {
		return fmt.Errorf("partition %d: no replicas: %w", p.Index, ErrInvalidPartitions)
	}
	for i, r := range p.Replicas {
		if r < 0 {
			return fmt.Errorf("partition %d: negative replica %d: %w", p.Index, r, ErrInvalidPartitions)
		}
		if slices.Contains(p.Replicas[:i], r) {
			return fmt.Errorf("partition %d: replica %d listed twice: %w", p.Index, r, ErrInvalidPartitions)
		}
	}
	for i, r := range p.ISR {
		if !slices.Contains(p.Replicas, r) {
			return fmt.Errorf("partition %d: in-sync replica %d is not a replica: %w", p.Index, r, ErrInvalidPartitions)
		}
		if slices.Contains(p.ISR[:i], r) {
			return fmt.Errorf("partition %d: in-sync replica %d listed twice: %w", p.Index, r, ErrInvalidPartitions)
		}
	}
	if p.Leader != -1 && !slices.Contains(p.ISR, p.Leader) {
		return fmt.Errorf("partition %d: leader %d is not in the ISR: %w", p.Index, p.Leader, ErrInvalidPartitions)
	}
	return nil
}

func validConfigKeys(set map[string]string, del []string) error {
	for k := range set {
		if k == "" {
			return fmt.Errorf("empty config name: %w", ErrInvalidArgument)
		}
	}
	for _, k := range del {
		if k == "" {
			return fmt.Errorf("empty config name: %w", ErrInvalidArgument)
		}
		if _, ok := set[k]; ok {
			return fmt.Errorf("config %q is both set and deleted: %w", k, ErrInvalidArgument)
		}
	}
	return nil
}

func cloneConfigs(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

func cloneInt32s(s []int32) []int32 {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

// Reads. Each takes the read lock and copies out, so callers own what they
// get and the FSM goroutine never waits on a slow reader for long.

func (f *fsm) clusterID() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.clusterID
}

func (f *fsm) watch() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

func (f *fsm) brokers() []Broker {
	f.mu.RLock()
	out := make([]Broker, 0, len(f.st.brokers))
	for _, b := range f.st.brokers {
		out = append(out, b.public())
	}
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b Broker) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func (f *fsm) topics() []Topic {
	f.mu.RLock()
	out := make([]Topic, 0, len(f.st.topics))
	for _, t := range f.st.topics {
		out = append(out, f.st.publicTopic(t))
	}
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b Topic) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func (f *fsm) topic(name string) (Topic, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	id, ok := f.st.names[name]
	if !ok {
		return Topic{}, false
	}
	return f.st.publicTopic(f.st.topics[id]), true
}

func (f *fsm) topicByID(id uuid.UUID) (Topic, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.st.topics[id]
	if !ok {
		return Topic{}, false
	}
	return f.st.publicTopic(t), true
}

func (f *fsm) nextProducerID() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.nextProducerID
}

// public deep-copies a record into the API type.
func (t *topicRec) public() Topic {
	out := Topic{
		Name:     t.Name,
		ID:       t.ID,
		Internal: t.Internal,
		Configs:  cloneConfigs(t.Configs),
	}
	if len(t.Partitions) > 0 {
		out.Partitions = make([]Partition, len(t.Partitions))
		for i, p := range t.Partitions {
			out.Partitions[i] = Partition{
				Index:          p.Index,
				Replicas:       slices.Clone(p.Replicas),
				ISR:            cloneInt32s(p.ISR),
				Leader:         p.Leader,
				LeaderEpoch:    p.LeaderEpoch,
				PartitionEpoch: p.PartitionEpoch,
			}
		}
	}
	return out
}

// Snapshots.
//
// A snapshot is one JSON object whose "format" field says how to read the
// rest. Restore refuses a format it does not know (an error, not a panic:
// raft then keeps the state it had, so nothing diverges).
//
// Formats:
//
//	1: cluster id, brokers, topics, next producer id.
//	2: format 1 plus "remote_manifests".
//	3: format 2 plus "acls", "scram_credentials" and "client_quotas".
//	4: format 3 plus "broker_registrations" (which replace "brokers",
//	   then always null) and "reassignments" (cluster.go).
//
// Persist writes the oldest format that can hold the state: format 1 as
// long as no remote manifest and no security state exists, format 2 while
// there is no security state, format 3 while every broker is a RegisterBroker
// (v1) one and no reassignment runs. A voter still running an older binary can
// then install snapshots from upgraded peers until the new feature is
// actually used (which needs every voter upgraded anyway, for the
// commands).

const (
	snapshotFormatV1 = 1
	snapshotFormatV2 = 2
	snapshotFormatV3 = 3
	snapshotFormatV4 = 4
)

type snapshotV1 struct {
	Format         int          `json:"format"`
	ClusterID      string       `json:"cluster_id"`
	Brokers        []*brokerRec `json:"brokers"`
	Topics         []*topicRec  `json:"topics"`
	NextProducerID int64        `json:"next_producer_id"`
}

// snapshotV2's JSON is snapshotV1's fields (embedded) followed by
// remote_manifests, sorted by topic id, then partition.
type snapshotV2 struct {
	snapshotV1
	RemoteManifests []*manifestRec `json:"remote_manifests"`
}

// snapshotV3's JSON is snapshotV2's fields followed by the security state:
// ACLs sorted as Store.ACLs returns them, SCRAM credentials by user then
// mechanism, client quotas by entity (absent, then default, then named
// components; user, then client id, then ip).
type snapshotV3 struct {
	snapshotV2
	ACLs             []aclRec    `json:"acls"`
	ScramCredentials []*scramRec `json:"scram_credentials"`
	ClientQuotas     []*quotaRec `json:"client_quotas"`
}

// snapshotV4's JSON is snapshotV3's fields (with "brokers" null) followed by
// every broker registration by id and the reassignments by topic id, then
// partition. A format 4 document without anything that needs it is not
// canonical and is refused.
type snapshotV4 struct {
	snapshotV3
	BrokerRegistrations []*brokerRegRec `json:"broker_registrations"`
	Reassignments       []*reassignRec  `json:"reassignments"`
}

// Snapshot captures the state. Raft calls it on the FSM goroutine, so
// nothing applies meanwhile; copying the maps is enough because records are
// immutable, and the encoding happens later in Persist, concurrently with
// new applies.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &fsmSnapshot{st: f.st.clone()}, nil
}

// Restore replaces the whole state with the snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("restore metadata snapshot: %w", err)
	}
	st, err := decodeSnapshot(data)
	if err != nil {
		return fmt.Errorf("restore metadata snapshot: %w", err)
	}
	f.mu.Lock()
	f.st = st
	// The security state may differ in any way: caches must reload.
	f.secVersion.Add(1)
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	return nil
}

type fsmSnapshot struct{ st *state }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(encodeSnapshot(s.st)); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist metadata snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// encodeSnapshot returns the document to marshal: a *snapshotV1, a
// *snapshotV2 when there are remote manifests, a *snapshotV3 when there is
// security state.
func encodeSnapshot(st *state) any {
	cluster := st.needsFormat4()
	snap := snapshotV1{
		Format:         snapshotFormatV1,
		ClusterID:      st.clusterID,
		Topics:         slices.Collect(maps.Values(st.topics)),
		NextProducerID: st.nextProducerID,
	}
	if !cluster {
		snap.Brokers = legacyBrokerRecs(st)
	}
	slices.SortFunc(snap.Topics, func(a, b *topicRec) int { return cmp.Compare(a.Name, b.Name) })
	if len(st.manifests) == 0 && !st.hasSecurity() && !cluster {
		return &snap
	}
	snap.Format = snapshotFormatV2
	v2 := snapshotV2{snapshotV1: snap}
	if len(st.manifests) > 0 {
		v2.RemoteManifests = slices.Collect(maps.Values(st.manifests))
		slices.SortFunc(v2.RemoteManifests, compareManifests)
	}
	if !st.hasSecurity() && !cluster {
		return &v2
	}
	v2.Format = snapshotFormatV3
	v3 := &snapshotV3{snapshotV2: v2}
	encodeSecurity(st, v3)
	if !cluster {
		return v3
	}
	v3.Format = snapshotFormatV4
	v4 := &snapshotV4{snapshotV3: *v3}
	encodeCluster(st, v4)
	return v4
}

// decodeSnapshot parses and checks a snapshot. It never panics, whatever the
// input, and returns the state in canonical form.
func decodeSnapshot(data []byte) (*state, error) {
	var hdr struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(data, &hdr); err != nil {
		return nil, fmt.Errorf("%w: %v", errUnsupportedSnapshot, err)
	}
	var (
		snap      snapshotV1
		manifests []*manifestRec
		security  snapshotV3 // only its security fields
		cluster   snapshotV4 // only its cluster fields
	)
	switch hdr.Format {
	case snapshotFormatV1:
		if err := decodeStrict(data, &snap); err != nil {
			return nil, fmt.Errorf("%w: %v", errUnsupportedSnapshot, err)
		}
	case snapshotFormatV2:
		var v2 snapshotV2
		if err := decodeStrict(data, &v2); err != nil {
			return nil, fmt.Errorf("%w: %v", errUnsupportedSnapshot, err)
		}
		snap, manifests = v2.snapshotV1, v2.RemoteManifests
	case snapshotFormatV3:
		if err := decodeStrict(data, &security); err != nil {
			return nil, fmt.Errorf("%w: %v", errUnsupportedSnapshot, err)
		}
		snap, manifests = security.snapshotV1, security.RemoteManifests
	case snapshotFormatV4:
		if err := decodeStrict(data, &cluster); err != nil {
			return nil, fmt.Errorf("%w: %v", errUnsupportedSnapshot, err)
		}
		if len(cluster.Brokers) > 0 {
			return nil, fmt.Errorf("%w: format 4 lists brokers under broker_registrations only", errUnsupportedSnapshot)
		}
		security = cluster.snapshotV3
		snap, manifests = security.snapshotV1, security.RemoteManifests
	default:
		return nil, fmt.Errorf("%w: format %d (this binary reads %d to %d)", errUnsupportedSnapshot, hdr.Format, snapshotFormatV1, snapshotFormatV4)
	}
	st := newState()
	st.clusterID = snap.ClusterID
	st.nextProducerID = snap.NextProducerID
	if st.nextProducerID < 0 {
		return nil, fmt.Errorf("%w: negative next producer id", errUnsupportedSnapshot)
	}
	for _, b := range snap.Brokers {
		if b == nil || b.ID < 0 {
			return nil, fmt.Errorf("%w: bad broker entry", errUnsupportedSnapshot)
		}
		if _, dup := st.brokers[b.ID]; dup {
			return nil, fmt.Errorf("%w: broker %d listed twice", errUnsupportedSnapshot, b.ID)
		}
		st.brokers[b.ID] = legacyBrokerRec(*b)
	}
	if err := restoreBrokers(st, cluster.BrokerRegistrations); err != nil {
		return nil, fmt.Errorf("%w: %v", errUnsupportedSnapshot, err)
	}
	for _, t := range snap.Topics {
		if t == nil {
			return nil, fmt.Errorf("%w: null topic", errUnsupportedSnapshot)
		}
		if err := ValidTopicName(t.Name); err != nil {
			return nil, fmt.Errorf("%w: %v", errUnsupportedSnapshot, err)
		}
		if err := validTopicID(t.ID); err != nil {
			return nil, fmt.Errorf("%w: topic %q: %v", errUnsupportedSnapshot, t.Name, err)
		}
		if _, dup := st.names[t.Name]; dup {
			return nil, fmt.Errorf("%w: topic %q listed twice", errUnsupportedSnapshot, t.Name)
		}
		if _, dup := st.topics[t.ID]; dup {
			return nil, fmt.Errorf("%w: topic id %s listed twice", errUnsupportedSnapshot, t.ID)
		}
		if len(t.Partitions) == 0 {
			return nil, fmt.Errorf("%w: topic %q has no partitions", errUnsupportedSnapshot, t.Name)
		}
		for i := range t.Partitions {
			p := &t.Partitions[i]
			if err := validPartition(*p, int32(i)); err != nil {
				return nil, fmt.Errorf("%w: topic %q: %v", errUnsupportedSnapshot, t.Name, err)
			}
			p.ISR = cloneInt32s(p.ISR)
		}
		t.Configs = cloneConfigs(t.Configs)
		st.topics[t.ID] = t
		st.names[t.Name] = t.ID
	}
	// After the topics: a manifest must name an existing partition.
	if err := restoreManifests(st, manifests); err != nil {
		return nil, fmt.Errorf("%w: %v", errUnsupportedSnapshot, err)
	}
	if err := restoreSecurity(st, security.ACLs, security.ScramCredentials, security.ClientQuotas); err != nil {
		return nil, fmt.Errorf("%w: %v", errUnsupportedSnapshot, err)
	}
	if err := restoreCluster(st, cluster.Reassignments); err != nil {
		return nil, fmt.Errorf("%w: %v", errUnsupportedSnapshot, err)
	}
	if hdr.Format == snapshotFormatV4 && !st.needsFormat4() {
		return nil, fmt.Errorf("%w: format 4 without broker registrations or reassignments that need it", errUnsupportedSnapshot)
	}
	return st, nil
}
