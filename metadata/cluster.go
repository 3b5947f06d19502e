package metadata

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/google/uuid"
)

// Cluster state: broker registrations with incarnations, endpoints and
// fencing, and the partition changes the active controller makes (KRaft's
// ClusterControlManager and ReplicationControlManager records): fencing and
// unfencing with their leader elections and ISR shrinks, ISR changes asked
// for by leaders (AlterPartition), ElectLeaders, reassignments and
// controlled shutdown. The decisions themselves are controller.go's pure
// functions; this file holds the records, the commands' rules, the snapshot
// part and the Store methods.
//
// Invariants kept by every command (and checked by a randomized test):
//   - a partition's leader is -1 or an ISR member that is not fenced and
//     not shutting down; the ISR is a subset of the replicas, without
//     duplicates, and never empties once it had a member;
//   - LeaderEpoch increases on every change of leader, PartitionEpoch on
//     every change of replicas, ISR or leader, and neither ever decreases;
//   - a reassignment's adding and removing replicas are replicas of the
//     partition, disjoint, and the target (replicas minus removing) is
//     never empty.

// legacyListener is the listener name and security protocol of a broker
// registered with RegisterBroker (registerBrokerV1).
const legacyListener = "PLAINTEXT"

// securityProtocols are Kafka's listener security protocols.
var securityProtocols = []string{"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}

type endpointRec struct {
	Listener         string `json:"listener"`
	Host             string `json:"host"`
	Port             int32  `json:"port"`
	SecurityProtocol string `json:"security_protocol"`
}

// brokerRegRec is a broker in the state. A RegisterBroker (v1) broker has
// a nil incarnation, one PLAINTEXT endpoint, and is never fenced or
// shutting down: exactly what snapshot formats 1 to 3 can hold.
type brokerRegRec struct {
	ID                   int32         `json:"id"`
	IncarnationID        uuid.UUID     `json:"incarnation_id"`
	Endpoints            []endpointRec `json:"endpoints"`
	Rack                 string        `json:"rack"`
	Fenced               bool          `json:"fenced"`
	InControlledShutdown bool          `json:"in_controlled_shutdown"`
}

func legacyBrokerRec(b brokerRec) *brokerRegRec {
	return &brokerRegRec{
		ID:        b.ID,
		Endpoints: []endpointRec{{Listener: legacyListener, Host: b.Host, Port: b.Port, SecurityProtocol: legacyListener}},
		Rack:      b.Rack,
	}
}

// v1Shape reports whether r has what a RegisterBroker registration has: no
// incarnation and one PLAINTEXT endpoint. (It may since have been fenced.)
func (r *brokerRegRec) v1Shape() bool {
	return r.IncarnationID == uuid.Nil && len(r.Endpoints) == 1 &&
		r.Endpoints[0].Listener == legacyListener && r.Endpoints[0].SecurityProtocol == legacyListener
}

// legacy returns r as a format 1-3 broker record, if it is one.
func (r *brokerRegRec) legacy() (brokerRec, bool) {
	if !r.v1Shape() || r.Fenced || r.InControlledShutdown {
		return brokerRec{}, false
	}
	e := r.Endpoints[0]
	return brokerRec{ID: r.ID, Host: e.Host, Port: e.Port, Rack: r.Rack}, true
}

func (r *brokerRegRec) equal(o *brokerRegRec) bool {
	return r.ID == o.ID && r.IncarnationID == o.IncarnationID && slices.Equal(r.Endpoints, o.Endpoints) &&
		r.Rack == o.Rack && r.Fenced == o.Fenced && r.InControlledShutdown == o.InControlledShutdown
}

func (r *brokerRegRec) public() Broker {
	b := Broker{
		ID:                   r.ID,
		Rack:                 r.Rack,
		IncarnationID:        r.IncarnationID,
		Fenced:               r.Fenced,
		InControlledShutdown: r.InControlledShutdown,
	}
	if len(r.Endpoints) > 0 {
		b.Host, b.Port = r.Endpoints[0].Host, r.Endpoints[0].Port
	}
	if r.IncarnationID != uuid.Nil {
		// A v1 registration keeps Endpoints nil, as it always was.
		b.Endpoints = make([]Endpoint, len(r.Endpoints))
		for i, e := range r.Endpoints {
			b.Endpoints[i] = Endpoint(e)
		}
	}
	return b
}

// live reports whether broker id may lead and be in an ISR: registered,
// unfenced, not shutting down.
func (st *state) live(id int32) bool {
	b, ok := st.brokers[id]
	return ok && !b.Fenced && !b.InControlledShutdown
}

func validEndpoints(eps []endpointRec) error {
	if len(eps) == 0 {
		return fmt.Errorf("no endpoints: %w", ErrInvalidArgument)
	}
	for i, e := range eps {
		if e.Listener == "" {
			return fmt.Errorf("endpoint %d has no listener name: %w", i, ErrInvalidArgument)
		}
		for _, o := range eps[:i] {
			if o.Listener == e.Listener {
				return fmt.Errorf("listener %q listed twice: %w", e.Listener, ErrInvalidArgument)
			}
		}
		if e.Port < 0 || e.Port > math.MaxUint16 {
			return fmt.Errorf("listener %q: port %d out of range: %w", e.Listener, e.Port, ErrInvalidArgument)
		}
		if !slices.Contains(securityProtocols, e.SecurityProtocol) {
			return fmt.Errorf("listener %q: unknown security protocol %q: %w", e.Listener, e.SecurityProtocol, ErrInvalidArgument)
		}
	}
	return nil
}

// brokerFor returns the registration a fencing-type command names, checking
// the incarnation.
func (st *state) brokerFor(op string, id int32, incarnation uuid.UUID) (*brokerRegRec, error) {
	b, ok := st.brokers[id]
	if !ok {
		return nil, fmt.Errorf("%s broker %d: %w", op, id, ErrUnknownBroker)
	}
	if b.IncarnationID != incarnation {
		return nil, fmt.Errorf("%s broker %d: incarnation %s, current is %s: %w", op, id, incarnation, b.IncarnationID, ErrStaleBrokerIncarnation)
	}
	return b, nil
}

// updatePartitions applies fn to every partition of every topic, in a
// deterministic outcome whatever the map order (each partition's change
// depends only on itself and the brokers). After fn, an ongoing
// reassignment that is now complete completes (KRaft checks on every
// partition change). Epochs are bumped here; changed topics are replaced.
func (st *state) updatePartitions(fn func(t *topicRec, p partitionRec) partitionRec) bool {
	changedAny := false
	for id, t := range st.topics {
		var parts []partitionRec
		for i, p := range t.Partitions {
			key := partKey{id, int32(i)}
			np := fn(t, p)
			if done, ok := completeReassignment(np, st.reassigns[key], st.live); ok {
				np = done
				delete(st.reassigns, key)
				changedAny = true
			}
			np, changed := bumpEpochs(p, np)
			if !changed {
				continue
			}
			if parts == nil {
				parts = slices.Clone(t.Partitions)
			}
			parts[i] = np
		}
		if parts != nil {
			nt := *t
			nt.Partitions = parts
			st.topics[id] = &nt
			changedAny = true
		}
	}
	return changedAny
}

// setPartition replaces one partition of t with p (epochs already set).
func (st *state) setPartition(t *topicRec, p partitionRec) {
	nt := *t
	nt.Partitions = slices.Clone(t.Partitions)
	nt.Partitions[p.Index] = p
	st.topics[nt.ID] = &nt
}

// lookupPartition finds a partition (ErrUnknownTopic for either miss, as
// Kafka's UNKNOWN_TOPIC_OR_PARTITION).
func (st *state) lookupPartition(id uuid.UUID, p int32) (*topicRec, partitionRec, error) {
	t, ok := st.topics[id]
	if !ok {
		return nil, partitionRec{}, fmt.Errorf("%s-%d: %w", id, p, ErrUnknownTopic)
	}
	if p < 0 || int(p) >= len(t.Partitions) {
		return nil, partitionRec{}, fmt.Errorf("%s-%d: topic %q has %d partitions: %w", id, p, t.Name, len(t.Partitions), ErrUnknownTopic)
	}
	return t, t.Partitions[p], nil
}

func (f *fsm) registerBrokerV2(c *registerBrokerV2) (bool, error) {
	if c.ID < 0 {
		return false, fmt.Errorf("register broker %d: negative id: %w", c.ID, ErrInvalidArgument)
	}
	if c.IncarnationID == uuid.Nil {
		return false, fmt.Errorf("register broker %d: no incarnation id: %w", c.ID, ErrInvalidArgument)
	}
	if err := validEndpoints(c.Endpoints); err != nil {
		return false, fmt.Errorf("register broker %d: %w", c.ID, err)
	}
	rec := &brokerRegRec{ID: c.ID, IncarnationID: c.IncarnationID, Endpoints: slices.Clone(c.Endpoints), Rack: c.Rack, Fenced: true}
	old, ok := f.st.brokers[c.ID]
	if ok && old.IncarnationID == c.IncarnationID {
		// A retry, or new endpoints from the same process: the fencing
		// state is the controller's, not the registration's.
		rec.Fenced, rec.InControlledShutdown = old.Fenced, old.InControlledShutdown
		if old.equal(rec) {
			return false, nil
		}
		f.st.brokers[c.ID] = rec
		return true, nil
	}
	// A new process: whatever the old one led or was in sync for, it no
	// longer has (its log may lack the tail). Clean elections only: the
	// returning broker becomes a leader candidate again once unfenced.
	f.st.brokers[c.ID] = rec
	f.st.updatePartitions(func(_ *topicRec, p partitionRec) partitionRec {
		return removeBroker(p, c.ID, f.st.live, false)
	})
	return true, nil
}

func (f *fsm) fenceBroker(c *fenceBrokerV1) (bool, error) {
	b, err := f.st.brokerFor("fence", c.ID, c.IncarnationID)
	if err != nil {
		return false, err
	}
	if b.Fenced {
		return false, nil
	}
	nb := *b
	nb.Fenced = true
	f.st.brokers[c.ID] = &nb
	f.st.updatePartitions(func(t *topicRec, p partitionRec) partitionRec {
		return removeBroker(p, c.ID, f.st.live, uncleanAllowed(t.Configs, c.Unclean))
	})
	return true, nil
}

func (f *fsm) unfenceBroker(c *unfenceBrokerV1) (bool, error) {
	b, err := f.st.brokerFor("unfence", c.ID, c.IncarnationID)
	if err != nil {
		return false, err
	}
	if b.InControlledShutdown {
		return false, fmt.Errorf("unfence broker %d: it is in controlled shutdown: %w", c.ID, ErrInvalidArgument)
	}
	if !b.Fenced {
		return false, nil
	}
	nb := *b
	nb.Fenced = false
	f.st.brokers[c.ID] = &nb
	f.st.updatePartitions(func(t *topicRec, p partitionRec) partitionRec {
		return addBroker(p, c.ID, f.st.live, uncleanAllowed(t.Configs, c.Unclean))
	})
	return true, nil
}

// controlledShutdown moves every leadership and ISR membership off the
// broker. In Kafka the broker stays registered "in controlled shutdown"
// until it leads nothing, then it is fenced; here the move completes within
// the command (a partition with no other live ISR member becomes
// leaderless, as in Kafka), so the same command fences it.
func (f *fsm) controlledShutdown(c *controlledShutdownV1) (bool, error) {
	b, err := f.st.brokerFor("controlled shutdown of", c.ID, c.IncarnationID)
	if err != nil {
		return false, err
	}
	if b.InControlledShutdown {
		return false, nil
	}
	nb := *b
	nb.InControlledShutdown, nb.Fenced = true, true
	f.st.brokers[c.ID] = &nb
	f.st.updatePartitions(func(_ *topicRec, p partitionRec) partitionRec {
		return removeBroker(p, c.ID, f.st.live, false)
	})
	return true, nil
}

func (f *fsm) alterPartition(c *alterPartitionV1) (bool, partitionRec, error) {
	name := fmt.Sprintf("alter partition %s-%d", c.TopicID, c.Partition)
	t, p, err := f.st.lookupPartition(c.TopicID, c.Partition)
	if err != nil {
		return false, partitionRec{}, fmt.Errorf("alter partition %w", err)
	}
	if c.BrokerIncarnationID != uuid.Nil {
		if _, err := f.st.brokerFor(name+" from", c.LeaderID, c.BrokerIncarnationID); err != nil {
			return false, p, err
		}
	}
	if c.LeaderEpoch != p.LeaderEpoch {
		return false, p, fmt.Errorf("%s: leader epoch %d, current is %d: %w", name, c.LeaderEpoch, p.LeaderEpoch, ErrFencedLeaderEpoch)
	}
	if p.Leader == noLeader {
		return false, p, fmt.Errorf("%s: the partition has no leader: %w", name, ErrInvalidArgument)
	}
	if c.LeaderID != p.Leader {
		return false, p, fmt.Errorf("%s: broker %d is not the leader (%d): %w", name, c.LeaderID, p.Leader, ErrInvalidArgument)
	}
	if c.PartitionEpoch != p.PartitionEpoch {
		return false, p, fmt.Errorf("%s: partition epoch %d, current is %d: %w", name, c.PartitionEpoch, p.PartitionEpoch, ErrStalePartitionEpoch)
	}
	for i, r := range c.NewISR {
		if slices.Contains(c.NewISR[:i], r) {
			return false, p, fmt.Errorf("%s: replica %d listed twice in the ISR: %w", name, r, ErrInvalidArgument)
		}
		if !slices.Contains(p.Replicas, r) {
			return false, p, fmt.Errorf("%s: broker %d is not a replica: %w", name, r, ErrIneligibleReplica)
		}
		if !f.st.live(r) {
			return false, p, fmt.Errorf("%s: replica %d is not registered, fenced or shutting down: %w", name, r, ErrIneligibleReplica)
		}
	}
	if !slices.Contains(c.NewISR, p.Leader) {
		return false, p, fmt.Errorf("%s: the new ISR %v leaves out the leader %d: %w", name, c.NewISR, p.Leader, ErrInvalidArgument)
	}
	np := clonePartition(p)
	np.ISR = slices.Clone(c.NewISR)
	key := partKey{c.TopicID, c.Partition}
	done, completed := completeReassignment(np, f.st.reassigns[key], f.st.live)
	if completed {
		np = done
	}
	np, changed := bumpEpochs(p, np)
	if !changed {
		return false, p, nil
	}
	if completed {
		delete(f.st.reassigns, key)
	}
	f.st.setPartition(t, np)
	return true, np, nil
}

func (f *fsm) electLeaders(c *electLeadersV1) (bool, []ElectionResult, error) {
	typ := ElectionType(c.Election)
	if typ != ElectPreferred && typ != ElectUnclean {
		return false, nil, fmt.Errorf("elect leaders: election type %d: %w", c.Election, ErrInvalidArgument)
	}
	if c.All && len(c.Partitions) > 0 {
		return false, nil, fmt.Errorf("elect leaders: both all partitions and a list: %w", ErrInvalidArgument)
	}
	targets := c.Partitions
	if c.All {
		// Kafka's order: by topic name, then partition.
		ts := slices.Collect(maps.Values(f.st.topics))
		slices.SortFunc(ts, func(a, b *topicRec) int { return cmp.Compare(a.Name, b.Name) })
		for _, t := range ts {
			for i := range t.Partitions {
				targets = append(targets, topicPartitionRec{TopicID: t.ID, Partition: int32(i)})
			}
		}
	}
	var (
		results []ElectionResult
		changed bool
	)
	for _, tp := range targets {
		res := ElectionResult{TopicPartition: TopicPartition{TopicID: tp.TopicID, Partition: tp.Partition}}
		t, p, err := f.st.lookupPartition(tp.TopicID, tp.Partition)
		if err == nil {
			var np partitionRec
			if np, err = electLeader(p, typ, f.st.live); err == nil {
				if np, ok := bumpEpochs(p, np); ok {
					f.st.setPartition(t, np)
					changed = true
				}
			}
		}
		if err != nil {
			if c.All && errors.Is(err, ErrElectionNotNeeded) {
				continue // Kafka lists only the partitions it tried
			}
			err = fmt.Errorf("elect leader of %s-%d: %w", tp.TopicID, tp.Partition, err)
		}
		res.Err = err
		results = append(results, res)
	}
	return changed, results, nil
}

func (f *fsm) reassignPartition(c *reassignPartitionV1) (bool, error) {
	name := fmt.Sprintf("reassign %s-%d", c.TopicID, c.Partition)
	t, p, err := f.st.lookupPartition(c.TopicID, c.Partition)
	if err != nil {
		return false, fmt.Errorf("reassign %w", err)
	}
	key := partKey{c.TopicID, c.Partition}
	cur := f.st.reassigns[key]
	var (
		np partitionRec
		nr *reassignRec
	)
	if c.Cancel {
		if len(c.Target) > 0 {
			return false, fmt.Errorf("%s: cancel with a target: %w", name, ErrInvalidArgument)
		}
		if cur == nil {
			return false, fmt.Errorf("%s: %w", name, ErrNoReassignmentInProgress)
		}
		if np, err = revertReassignment(p, cur, f.st.live); err != nil {
			return false, fmt.Errorf("%s: %w", name, err)
		}
	} else {
		if len(c.Target) == 0 {
			return false, fmt.Errorf("%s: empty target: %w", name, ErrInvalidReplicaAssignment)
		}
		for i, r := range c.Target {
			if slices.Contains(c.Target[:i], r) {
				return false, fmt.Errorf("%s: broker %d listed twice: %w", name, r, ErrInvalidReplicaAssignment)
			}
			if _, ok := f.st.brokers[r]; !ok {
				return false, fmt.Errorf("%s: broker %d is not registered: %w", name, r, ErrInvalidReplicaAssignment)
			}
		}
		if cur != nil && slices.Equal(c.Target, without(p.Replicas, cur.Removing...)) {
			return false, nil // the same reassignment again
		}
		if np, nr, err = startReassignment(p, cur, c.Target, f.st.live); err != nil {
			return false, fmt.Errorf("%s: %w", name, err)
		}
		if nr != nil {
			nr.TopicID, nr.Partition = c.TopicID, c.Partition
		}
	}
	np, changed := bumpEpochs(p, np)
	if changed {
		f.st.setPartition(t, np)
	}
	switch {
	case nr != nil:
		f.st.reassigns[key] = nr
		changed = true
	case cur != nil:
		delete(f.st.reassigns, key)
		changed = true
	}
	return changed, nil
}

// checkLeadersLive refuses new partitions led by a broker that is
// registered but fenced or shutting down. Logs written before fencing
// existed never meet such a broker, so this does not change what older
// entries mean.
func (st *state) checkLeadersLive(ps []partitionRec) error {
	for _, p := range ps {
		if b, ok := st.brokers[p.Leader]; ok && (b.Fenced || b.InControlledShutdown) {
			return fmt.Errorf("partition %d: leader %d is fenced: %w", p.Index, p.Leader, ErrInvalidPartitions)
		}
	}
	return nil
}

// Snapshot part (format 4).

// needsFormat4 reports whether the state holds cluster state that formats
// 1 to 3 cannot: a V2 registration (or fencing), or a reassignment.
func (st *state) needsFormat4() bool {
	if len(st.reassigns) > 0 {
		return true
	}
	for _, b := range st.brokers {
		if _, ok := b.legacy(); !ok {
			return true
		}
	}
	return false
}

func legacyBrokerRecs(st *state) []*brokerRec {
	var out []*brokerRec // nil when empty, as formats 1-3 always wrote it
	for _, b := range st.brokers {
		lb, _ := b.legacy()
		out = append(out, &lb)
	}
	slices.SortFunc(out, func(a, b *brokerRec) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func encodeCluster(st *state, snap *snapshotV4) {
	snap.BrokerRegistrations = slices.Collect(maps.Values(st.brokers))
	slices.SortFunc(snap.BrokerRegistrations, func(a, b *brokerRegRec) int { return cmp.Compare(a.ID, b.ID) })
	if len(st.reassigns) > 0 {
		snap.Reassignments = slices.Collect(maps.Values(st.reassigns))
		slices.SortFunc(snap.Reassignments, func(a, b *reassignRec) int {
			return cmp.Or(slices.Compare(a.TopicID[:], b.TopicID[:]), cmp.Compare(a.Partition, b.Partition))
		})
	}
}

// restoreBrokers checks format 4's registrations and puts them into st.
func restoreBrokers(st *state, regs []*brokerRegRec) error {
	for _, b := range regs {
		if b == nil || b.ID < 0 {
			return errors.New("bad broker registration")
		}
		if _, dup := st.brokers[b.ID]; dup {
			return fmt.Errorf("broker %d listed twice", b.ID)
		}
		if err := validEndpoints(b.Endpoints); err != nil {
			return fmt.Errorf("broker %d: %v", b.ID, err)
		}
		if b.IncarnationID == uuid.Nil && !b.v1Shape() {
			return fmt.Errorf("broker %d: no incarnation id", b.ID)
		}
		if b.InControlledShutdown && !b.Fenced {
			return fmt.Errorf("broker %d: in controlled shutdown but not fenced", b.ID)
		}
		st.brokers[b.ID] = b
	}
	return nil
}

// restoreCluster checks what depends on brokers and topics: reassignments
// name existing partitions and fit their replicas, and no fenced broker
// leads. It runs for every format.
func restoreCluster(st *state, reassigns []*reassignRec) error {
	for _, r := range reassigns {
		if r == nil {
			return errors.New("null reassignment")
		}
		_, p, err := st.lookupPartition(r.TopicID, r.Partition)
		if err != nil {
			return fmt.Errorf("reassignment of %v", err)
		}
		key := partKey{r.TopicID, r.Partition}
		if _, dup := st.reassigns[key]; dup {
			return fmt.Errorf("reassignment of %s-%d listed twice", r.TopicID, r.Partition)
		}
		if len(r.Adding) == 0 && len(r.Removing) == 0 {
			return fmt.Errorf("reassignment of %s-%d changes nothing", r.TopicID, r.Partition)
		}
		for i, a := range r.Adding {
			if !slices.Contains(p.Replicas, a) || slices.Contains(r.Removing, a) || slices.Contains(r.Adding[:i], a) {
				return fmt.Errorf("reassignment of %s-%d: bad adding replica %d", r.TopicID, r.Partition, a)
			}
		}
		for i, a := range r.Removing {
			if !slices.Contains(p.Replicas, a) || slices.Contains(r.Removing[:i], a) {
				return fmt.Errorf("reassignment of %s-%d: bad removing replica %d", r.TopicID, r.Partition, a)
			}
		}
		if len(r.Removing) >= len(p.Replicas) {
			return fmt.Errorf("reassignment of %s-%d removes every replica", r.TopicID, r.Partition)
		}
		r.Adding, r.Removing = cloneInt32s(r.Adding), cloneInt32s(r.Removing)
		st.reassigns[key] = r
	}
	for _, t := range st.topics {
		if err := st.checkLeadersLive(t.Partitions); err != nil {
			return fmt.Errorf("topic %q: %v", t.Name, err)
		}
	}
	return nil
}

// Reads.

// publicTopic is t.public() plus the reassignment state of its partitions.
func (st *state) publicTopic(t *topicRec) Topic {
	out := t.public()
	if len(st.reassigns) == 0 {
		return out
	}
	for i := range out.Partitions {
		if r, ok := st.reassigns[partKey{t.ID, int32(i)}]; ok {
			out.Partitions[i].AddingReplicas = cloneInt32s(r.Adding)
			out.Partitions[i].RemovingReplicas = cloneInt32s(r.Removing)
		}
	}
	return out
}

func (f *fsm) broker(id int32) (Broker, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, ok := f.st.brokers[id]
	if !ok {
		return Broker{}, false
	}
	return b.public(), true
}

func (f *fsm) partition(id uuid.UUID, p int32) (Partition, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, _, err := f.st.lookupPartition(id, p)
	if err != nil {
		return Partition{}, false
	}
	return f.st.publicTopic(t).Partitions[p], true
}

func (f *fsm) reassignments() []Reassignment {
	f.mu.RLock()
	out := make([]Reassignment, 0, len(f.st.reassigns))
	for k, r := range f.st.reassigns {
		out = append(out, Reassignment{
			TopicPartition:   TopicPartition{TopicID: k.topic, Partition: k.partition},
			Replicas:         slices.Clone(f.st.topics[k.topic].Partitions[k.partition].Replicas),
			AddingReplicas:   cloneInt32s(r.Adding),
			RemovingReplicas: cloneInt32s(r.Removing),
		})
	}
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b Reassignment) int {
		return cmp.Or(slices.Compare(a.TopicID[:], b.TopicID[:]), cmp.Compare(a.Partition, b.Partition))
	})
	return out
}

// Store methods. Like the others, each is one Raft command; the FSM's
// rejection comes back as the error.

func endpointRecs(eps []Endpoint) []endpointRec {
	out := make([]endpointRec, len(eps))
	for i, e := range eps {
		out[i] = endpointRec(e)
	}
	return out
}

// RegisterBrokerV2 registers a broker process (KRaft's BrokerRegistration).
// A new incarnation replaces the broker's previous registration, which loses
// every leadership and ISR membership it had (the process restarted); the
// new registration starts fenced, and UnfenceBroker admits it. The same
// incarnation again is a retry (or updates endpoints and rack) and keeps
// the fencing state. Refusing a new incarnation while the old one still
// heartbeats (DUPLICATE_BROKER_REGISTRATION) is the controller's call
// (HeartbeatTracker.HasSession), not the FSM's.
func (s *Store) RegisterBrokerV2(ctx context.Context, r BrokerRegistration) error {
	c := &registerBrokerV2{ID: r.ID, IncarnationID: r.IncarnationID, Endpoints: endpointRecs(r.Endpoints), Rack: r.Rack}
	_, err := s.propose(ctx, fmt.Sprintf("register broker %d", r.ID), c)
	return err
}

// FenceBroker fences one incarnation of a broker (its session expired):
// partitions it led elect a new leader from the rest of their ISR, it leaves
// every ISR (except as the last member, when the partition is left without
// a leader), and with unclean leader election allowed (the topic's
// unclean.leader.election.enable, or uncleanDefault when the topic does not
// set it) a partition with no live ISR member takes any live replica.
// Fencing a fenced broker is a no-op; an older incarnation gets
// ErrStaleBrokerIncarnation.
func (s *Store) FenceBroker(ctx context.Context, id int32, incarnation uuid.UUID, uncleanDefault bool) error {
	_, err := s.propose(ctx, fmt.Sprintf("fence broker %d", id), &fenceBrokerV1{ID: id, IncarnationID: incarnation, Unclean: uncleanDefault})
	return err
}

// UnfenceBroker admits a fenced broker (it caught up with the metadata):
// leaderless partitions whose ISR holds it get a leader again, and with
// unclean election allowed, leaderless partitions it is a replica of.
func (s *Store) UnfenceBroker(ctx context.Context, id int32, incarnation uuid.UUID, uncleanDefault bool) error {
	_, err := s.propose(ctx, fmt.Sprintf("unfence broker %d", id), &unfenceBrokerV1{ID: id, IncarnationID: incarnation, Unclean: uncleanDefault})
	return err
}

// ControlledShutdown moves leadership off a broker that is about to stop,
// removes it from every ISR (never emptying one) and fences it. Repeating
// it is a no-op.
func (s *Store) ControlledShutdown(ctx context.Context, id int32, incarnation uuid.UUID) error {
	_, err := s.propose(ctx, fmt.Sprintf("controlled shutdown of broker %d", id), &controlledShutdownV1{ID: id, IncarnationID: incarnation})
	return err
}

// AlterPartition applies a leader's ISR change and returns the partition
// afterwards (with its new partition epoch; unchanged when the ISR was
// already r.NewISR). Errors: ErrUnknownTopic, ErrFencedLeaderEpoch,
// ErrStalePartitionEpoch, ErrIneligibleReplica, ErrStaleBrokerIncarnation,
// ErrInvalidArgument. When the new ISR holds every replica a reassignment
// is adding, the reassignment completes in the same step.
func (s *Store) AlterPartition(ctx context.Context, r AlterPartitionRequest) (Partition, error) {
	res, err := s.propose(ctx, fmt.Sprintf("alter partition %s-%d", r.TopicID, r.Partition), &alterPartitionV1{
		TopicID:             r.TopicID,
		Partition:           r.Partition,
		LeaderID:            r.LeaderID,
		BrokerIncarnationID: r.BrokerIncarnationID,
		LeaderEpoch:         r.LeaderEpoch,
		PartitionEpoch:      r.PartitionEpoch,
		NewISR:              r.NewISR,
	})
	if err != nil {
		return Partition{}, err
	}
	p, ok := s.fsm.partition(r.TopicID, r.Partition)
	if !ok || p.PartitionEpoch < res.partition.PartitionEpoch {
		// Deleted or changed again since: report what this command made.
		p = partitionPublic(res.partition)
	}
	return p, nil
}

func partitionPublic(p partitionRec) Partition {
	return Partition{
		Index:          p.Index,
		Replicas:       slices.Clone(p.Replicas),
		ISR:            cloneInt32s(p.ISR),
		Leader:         p.Leader,
		LeaderEpoch:    p.LeaderEpoch,
		PartitionEpoch: p.PartitionEpoch,
	}
}

// ElectLeaders runs an election on each listed partition and returns a
// result per partition, in order. With partitions nil it tries every
// partition and returns only those where an election was needed, by topic
// name then partition (Kafka's null topic list).
func (s *Store) ElectLeaders(ctx context.Context, typ ElectionType, partitions []TopicPartition) ([]ElectionResult, error) {
	c := &electLeadersV1{Election: int8(typ), All: partitions == nil}
	for _, tp := range partitions {
		c.Partitions = append(c.Partitions, topicPartitionRec(tp))
	}
	res, err := s.propose(ctx, "elect leaders", c)
	if err != nil {
		return nil, err
	}
	return res.elections, nil
}

// ReassignPartition starts (or replaces) a reassignment of one partition to
// target, or cancels the ongoing one when target is nil. Target brokers must
// be registered (ErrInvalidReplicaAssignment); cancelling without one in
// progress gives ErrNoReassignmentInProgress. The reassignment completes
// through AlterPartition once the added replicas are in sync.
func (s *Store) ReassignPartition(ctx context.Context, tp TopicPartition, target []int32) error {
	c := &reassignPartitionV1{TopicID: tp.TopicID, Partition: tp.Partition, Target: target, Cancel: target == nil}
	_, err := s.propose(ctx, fmt.Sprintf("reassign %s-%d", tp.TopicID, tp.Partition), c)
	return err
}

// Broker returns the registered broker with this id.
func (s *Store) Broker(id int32) (Broker, bool) { return s.fsm.broker(id) }

// Partition returns one partition of a topic.
func (s *Store) Partition(topicID uuid.UUID, partition int32) (Partition, bool) {
	return s.fsm.partition(topicID, partition)
}

// Reassignments returns the ongoing reassignments by topic id, then
// partition.
func (s *Store) Reassignments() []Reassignment { return s.fsm.reassignments() }
