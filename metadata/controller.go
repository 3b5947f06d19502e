package metadata

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Controller decisions: pure functions over partition records and broker
// liveness, shared by the FSM (which must reach the same verdict on every
// replica) and the active-controller loop that will propose commands from
// them. They follow KRaft's PartitionChangeBuilder and placement rules:
//
//   - A leader is elected from the ISR: the first replica, in replica order,
//     that is in the ISR and live (registered, unfenced, not shutting down).
//   - An unclean election (only where allowed) takes the first live replica
//     of all, and the ISR becomes that replica alone.
//   - The ISR never becomes empty: removing its last member leaves that
//     member in it, and the partition leaderless (Kafka without ELR).
//   - PartitionEpoch increases by one on every change of replicas, ISR or
//     leader; LeaderEpoch increases by one on every change of leader,
//     including to and from "no leader" (-1). So one (partition, leader
//     epoch) never names two leaders.
//
// Nothing here reads a clock or a map's iteration order: the FSM calls these
// from Apply. HeartbeatTracker is the exception by design: it is leader-only
// memory, never part of the replicated state (as Kafka keeps heartbeats out
// of the metadata log).

// noLeader is Kafka's leader id for a partition without a leader.
const noLeader int32 = -1

// uncleanConfig is the topic config that allows unclean leader elections.
const uncleanConfig = "unclean.leader.election.enable"

// liveFunc reports whether a broker may lead and be in an ISR.
type liveFunc func(id int32) bool

// firstLive returns the first broker of order that is live, differs from
// exclude and, when among is not nil, is in among; noLeader if none.
func firstLive(order, among []int32, live liveFunc, exclude int32) int32 {
	for _, r := range order {
		if r == exclude || !live(r) {
			continue
		}
		if among != nil && !slices.Contains(among, r) {
			continue
		}
		return r
	}
	return noLeader
}

// without returns s minus the ids in drop, in s's order (nil when empty).
func without(s []int32, drop ...int32) []int32 {
	var out []int32
	for _, v := range s {
		if !slices.Contains(drop, v) {
			out = append(out, v)
		}
	}
	return out
}

// clonePartition deep-copies p's slices so that a changed copy never shares
// memory with a record that is already in a state.
func clonePartition(p partitionRec) partitionRec {
	p.Replicas = slices.Clone(p.Replicas)
	p.ISR = cloneInt32s(p.ISR)
	return p
}

// bumpEpochs sets next's epochs from prev's and reports whether anything
// changed: PartitionEpoch+1 for any change, LeaderEpoch+1 when the leader
// changed. An unchanged partition keeps prev's epochs.
func bumpEpochs(prev, next partitionRec) (partitionRec, bool) {
	next.LeaderEpoch, next.PartitionEpoch = prev.LeaderEpoch, prev.PartitionEpoch
	leaderChanged := next.Leader != prev.Leader
	if !leaderChanged && slices.Equal(next.ISR, prev.ISR) && slices.Equal(next.Replicas, prev.Replicas) {
		return prev, false
	}
	next.PartitionEpoch++
	if leaderChanged {
		next.LeaderEpoch++
	}
	next.ISR = cloneInt32s(next.ISR)
	return next, true
}

// removeBroker is the partition's state once broker b may no longer lead or
// be in sync (it was fenced, or is shutting down). b leaves the ISR unless it
// is the last member; if b led, the next ISR member in replica order leads,
// or with unclean allowed any live replica (the ISR then becomes that
// replica alone), or nobody. Epochs are not bumped here.
func removeBroker(p partitionRec, b int32, live liveFunc, unclean bool) partitionRec {
	np := clonePartition(p)
	if isr := without(p.ISR, b); len(isr) > 0 {
		np.ISR = isr
	}
	if p.Leader != b {
		return np
	}
	np.Leader = firstLive(p.Replicas, np.ISR, live, b)
	if np.Leader == noLeader && unclean {
		if l := firstLive(p.Replicas, nil, live, b); l != noLeader {
			np.Leader, np.ISR = l, []int32{l}
		}
	}
	return np
}

// addBroker is the partition's state once broker b became live (unfenced):
// a leaderless partition whose ISR holds b gets a leader from its ISR; with
// unclean allowed, one where b is only a replica gets b, and ISR [b].
func addBroker(p partitionRec, b int32, live liveFunc, unclean bool) partitionRec {
	if p.Leader != noLeader || !slices.Contains(p.Replicas, b) {
		return p
	}
	np := clonePartition(p)
	if slices.Contains(p.ISR, b) {
		np.Leader = firstLive(p.Replicas, p.ISR, live, noLeader)
		return np
	}
	if unclean {
		if l := firstLive(p.Replicas, nil, live, noLeader); l != noLeader {
			np.Leader, np.ISR = l, []int32{l}
		}
	}
	return np
}

// electLeader runs an ElectLeaders election on p (KRaft's electLeader).
func electLeader(p partitionRec, typ ElectionType, live liveFunc) (partitionRec, error) {
	np := clonePartition(p)
	switch typ {
	case ElectPreferred:
		pref := p.Replicas[0]
		if p.Leader == pref {
			return p, ErrElectionNotNeeded
		}
		if !slices.Contains(p.ISR, pref) || !live(pref) {
			return p, ErrPreferredLeaderNotAvailable
		}
		np.Leader = pref
	case ElectUnclean:
		if p.Leader != noLeader {
			return p, ErrElectionNotNeeded
		}
		if l := firstLive(p.Replicas, p.ISR, live, noLeader); l != noLeader {
			np.Leader = l
			break
		}
		l := firstLive(p.Replicas, nil, live, noLeader)
		if l == noLeader {
			return p, ErrEligibleLeadersNotAvailable
		}
		np.Leader, np.ISR = l, []int32{l}
	default:
		return p, fmt.Errorf("election type %d: %w", typ, ErrInvalidArgument)
	}
	return np, nil
}

// reassignRec is the replicated state of a partition's ongoing
// reassignment (KRaft's adding/removing replicas). The partition's Replicas
// hold the target replicas followed by Removing; Adding are target replicas
// that were not replicas before.
type reassignRec struct {
	TopicID   uuid.UUID `json:"topic_id"`
	Partition int32     `json:"partition"`
	Adding    []int32   `json:"adding"`
	Removing  []int32   `json:"removing"`
}

// revertReassignment undoes r on p: the adding replicas leave the replicas
// and the ISR, and leadership moves off them. It fails, changing nothing,
// when no original replica is left in the ISR (Kafka would then need an
// unclean election; we leave that to an explicit ElectLeaders).
func revertReassignment(p partitionRec, r *reassignRec, live liveFunc) (partitionRec, error) {
	np := clonePartition(p)
	np.Replicas = without(p.Replicas, r.Adding...)
	np.ISR = without(p.ISR, r.Adding...)
	if len(np.ISR) == 0 {
		return p, fmt.Errorf("cancelling would leave no original replica in the ISR: %w", ErrInvalidReplicaAssignment)
	}
	if p.Leader != noLeader && !slices.Contains(np.ISR, p.Leader) {
		np.Leader = firstLive(np.Replicas, np.ISR, live, noLeader)
	}
	return np, nil
}

// startReassignment computes p with a reassignment to target, replacing any
// ongoing one r (which is reverted first, as KRaft does). It returns the new
// partition and the reassignment still to finish, nil when the target is
// reached at once (it equals the replicas, or only removes in-sync-safe
// replicas).
func startReassignment(p partitionRec, r *reassignRec, target []int32, live liveFunc) (partitionRec, *reassignRec, error) {
	base := p
	if r != nil {
		var err error
		if base, err = revertReassignment(p, r, live); err != nil {
			return p, r, err
		}
	}
	if slices.Equal(target, base.Replicas) {
		return base, nil, nil
	}
	adding := without(target, base.Replicas...)
	removing := without(base.Replicas, target...)
	np := clonePartition(base)
	np.Replicas = append(slices.Clone(target), removing...)
	nr := &reassignRec{Adding: adding, Removing: removing}
	if done, ok := completeReassignment(np, nr, live); ok {
		return done, nil, nil
	}
	if len(adding) == 0 && len(removing) == 0 {
		// Same replicas in another order: nothing to catch up.
		return np, nil, nil
	}
	return np, nr, nil
}

// completeReassignment decides whether r is finished on p: every adding
// replica is in the ISR, and the ISR without the removing replicas is not
// empty. Then the removing replicas leave replicas and ISR and, if the
// leader is among them, the first live ISR member of the new replicas
// leads. ok is false (and p returned) while the reassignment must go on.
func completeReassignment(p partitionRec, r *reassignRec, live liveFunc) (partitionRec, bool) {
	if r == nil {
		return p, false
	}
	for _, a := range r.Adding {
		if !slices.Contains(p.ISR, a) {
			return p, false
		}
	}
	isr := without(p.ISR, r.Removing...)
	if len(isr) == 0 {
		return p, false
	}
	np := clonePartition(p)
	np.Replicas = without(p.Replicas, r.Removing...)
	np.ISR = isr
	if p.Leader != noLeader && !slices.Contains(isr, p.Leader) {
		np.Leader = firstLive(np.Replicas, isr, live, noLeader)
	}
	return np, true
}

// uncleanAllowed reads the topic's unclean.leader.election.enable override,
// falling back to def (the cluster default) when the topic has none or an
// unparsable one.
func uncleanAllowed(configs map[string]string, def bool) bool {
	v, ok := configs[uncleanConfig]
	if !ok {
		return def
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		return true
	case "false":
		return false
	}
	return def
}

// PlaceReplicas assigns replicationFactor replicas to each of partitions
// new partitions, using only live brokers (not fenced, not shutting down),
// rack-aware in the manner of Kafka's placers: a partition's replicas are
// spread over as many racks as possible and then over the least loaded
// brokers, and leaders (the first replica) rotate over brokers that
// alternate between racks, so leadership spreads evenly too. startIndex picks where the
// rotation starts (callers pass a random one, or one that continues an
// existing topic); any value works, the result is deterministic for it.
//
// Brokers without a rack form one rack of their own. Errors:
// ErrInvalidReplicationFactor when replicationFactor < 1 or exceeds the
// live brokers, ErrInvalidPartitions when partitions < 1.
func PlaceReplicas(brokers []Broker, partitions, replicationFactor int, startIndex int) ([][]int32, error) {
	if partitions < 1 {
		return nil, fmt.Errorf("place %d partitions: %w", partitions, ErrInvalidPartitions)
	}
	byRack := map[string][]int32{}
	rackOf := map[int32]string{}
	for _, b := range brokers {
		if b.Fenced || b.InControlledShutdown {
			continue
		}
		if _, dup := rackOf[b.ID]; dup {
			continue
		}
		rackOf[b.ID] = b.Rack
		byRack[b.Rack] = append(byRack[b.Rack], b.ID)
	}
	n := len(rackOf)
	if replicationFactor < 1 || replicationFactor > n {
		return nil, fmt.Errorf("replication factor %d with %d live brokers: %w", replicationFactor, n, ErrInvalidReplicationFactor)
	}
	racks := slices.Sorted(maps.Keys(byRack))
	// Interleave the racks: the first broker of every rack, then the
	// second of every rack, ... Consecutive entries then sit in different
	// racks as long as possible.
	ring := make([]int32, 0, n)
	for i := 0; len(ring) < n; i++ {
		for _, r := range racks {
			ids := byRack[r]
			if i == 0 {
				slices.Sort(ids)
			}
			if i < len(ids) {
				ring = append(ring, ids[i])
			}
		}
	}
	start := startIndex % n
	if start < 0 {
		start += n
	}
	out := make([][]int32, partitions)
	used := map[string]int{} // replicas per rack in the partition being placed
	load := map[int32]int{}  // replicas per broker in this placement
	for p := range partitions {
		first := (start + p) % n
		// Each full turn of the ring shifts where followers are taken from,
		// so the same leader does not always get the same followers.
		shift := ((start + p) / n) % max(n-1, 1)
		replicas := make([]int32, 1, replicationFactor)
		replicas[0] = ring[first]
		clear(used)
		used[rackOf[ring[first]]]++
		load[ring[first]]++
		for len(replicas) < replicationFactor {
			// The candidate from the least used rack wins, then the least
			// loaded broker; remaining ties go to ring order after the
			// leader.
			var (
				best              int32
				bestUse, bestLoad = -1, 0
			)
			for k := range n - 1 {
				id := ring[(first+1+(shift+k)%(n-1))%n]
				if slices.Contains(replicas, id) {
					continue
				}
				u, l := used[rackOf[id]], load[id]
				if bestUse < 0 || u < bestUse || u == bestUse && l < bestLoad {
					best, bestUse, bestLoad = id, u, l
				}
			}
			replicas = append(replicas, best)
			used[rackOf[best]]++
			load[best]++
		}
		out[p] = replicas
	}
	return out, nil
}

// HeartbeatTracker is the active controller's memory of broker heartbeats.
// Like Kafka's BrokerHeartbeatManager it lives only on the leader and is
// never replicated: a new leader starts empty and gives every broker a full
// session timeout from the moment it took over (Reset), so a change of
// controller fences nobody by itself. Times come from the caller's clock.
// Safe for concurrent use.
type HeartbeatTracker struct {
	mu          sync.Mutex // guards the fields below
	activeSince time.Time
	last        map[int32]heartbeat
}

type heartbeat struct {
	incarnation uuid.UUID
	at          time.Time
}

// NewHeartbeatTracker returns a tracker whose grace period starts at now.
func NewHeartbeatTracker(now time.Time) *HeartbeatTracker {
	return &HeartbeatTracker{activeSince: now, last: map[int32]heartbeat{}}
}

// Reset forgets every heartbeat and starts a new grace period at now; call
// it when this node becomes the active controller.
func (h *HeartbeatTracker) Reset(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.activeSince = now
	clear(h.last)
}

// Touch records a heartbeat from one incarnation of a broker.
func (h *HeartbeatTracker) Touch(id int32, incarnation uuid.UUID, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.last[id]; ok && old.incarnation == incarnation && old.at.After(now) {
		return // time never runs backwards for a session
	}
	h.last[id] = heartbeat{incarnation: incarnation, at: now}
}

// Forget drops a broker's heartbeats (it was fenced or re-registered).
func (h *HeartbeatTracker) Forget(id int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.last, id)
}

// lastContact is the latest heartbeat of this incarnation, or the start of
// the grace period if there was none.
func (h *HeartbeatTracker) lastContact(id int32, incarnation uuid.UUID) time.Time {
	if hb, ok := h.last[id]; ok && hb.incarnation == incarnation && hb.at.After(h.activeSince) {
		return hb.at
	}
	return h.activeSince
}

// HasSession reports whether this incarnation of the broker heartbeated
// within sessionTimeout (or the grace period has not run out). The
// controller refuses a registration with a new incarnation while the old
// one still has a session (DUPLICATE_BROKER_REGISTRATION), as Kafka does.
func (h *HeartbeatTracker) HasSession(id int32, incarnation uuid.UUID, now time.Time, sessionTimeout time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !now.After(h.lastContact(id, incarnation).Add(sessionTimeout))
}

// Expired returns, sorted, the ids of the brokers to fence: unfenced
// brokers of brokers whose current incarnation has not heartbeated within
// sessionTimeout. Brokers registered with RegisterBroker (no incarnation:
// the single-node path, which does not heartbeat) never expire.
func (h *HeartbeatTracker) Expired(now time.Time, sessionTimeout time.Duration, brokers []Broker) []int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []int32
	for _, b := range brokers {
		if b.Fenced || b.IncarnationID == uuid.Nil {
			continue
		}
		if now.After(h.lastContact(b.ID, b.IncarnationID).Add(sessionTimeout)) {
			out = append(out, b.ID)
		}
	}
	slices.SortFunc(out, cmp.Compare)
	return slices.Compact(out)
}
