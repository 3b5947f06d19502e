package broker

// A partition replica's role, and the leader's side of replication.
//
// Every partition whose replica set includes this broker has a local log.
// Its partState comes from committed metadata (applyState, on every
// reconcile): the leader takes writes and serves fetches; a follower
// replicates from the leader (fetcher.go); a replica of a leaderless
// partition waits. The leader tracks each follower's log end from the
// follower's fetches (Kafka's Replica state): the high watermark is the
// smallest log end across the ISR, a follower that has not caught up
// within replica.lag.time.max.ms leaves the ISR and one that catches up
// joins it, both through AlterPartition to the controller (isrLoop).
//
// Lock order: reconcileMu, then partition.amu (applyState), then
// partition.rmu, a leaf never held while calling into the log's blocking
// operations or the metadata quorum.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/metadata"
)

// partState is one partition's assignment and leadership as committed in
// metadata; immutable once published.
type partState struct {
	leader         int32
	leaderEpoch    int32
	partitionEpoch int32
	replicas       []int32
	isr            []int32
}

func (st *partState) inISR(id int32) bool { return slices.Contains(st.isr, id) }

// followerPos is the leader's view of one follower (Kafka's Replica).
type followerPos struct {
	leo int64 // log end offset from its last fetch; -1 until it fetched in this epoch
	// lastCaughtUp is the last time the follower had everything the leader
	// had (or had at its previous fetch): the ISR lag clock.
	lastCaughtUp time.Time
	// lastFetchAt and leaderEndAtLastFetch implement Kafka's rule that a
	// follower fetching at the leader's previous log end was caught up at
	// the time of its previous fetch.
	lastFetchAt          time.Time
	leaderEndAtLastFetch int64
}

// leaderSide is the leader's replication state of one partition, guarded
// by partition.rmu.
type leaderSide struct {
	followers  map[int32]*followerPos
	epochStart int64     // log end when this leader epoch began: a follower must reach it to join the ISR
	altering   bool      // an AlterPartition is in flight
	retryAt    time.Time // after a refused AlterPartition: not before this
	// lost is closed when this leadership (epoch) ends: acks=all waiters
	// answer NOT_LEADER_OR_FOLLOWER at once instead of timing out.
	lost chan struct{}
}

// state is the partition's committed assignment; nil before the first
// applyState.
func (p *partition) state() *partState { return p.st.Load() }

// epoch is the current leader epoch as this broker knows it.
func (p *partition) epoch() int32 {
	if st := p.st.Load(); st != nil {
		return st.leaderEpoch
	}
	return -1
}

// isLeader reports whether this broker leads the partition.
func (p *partition) isLeader(self int32) bool {
	st := p.st.Load()
	return st != nil && st.leader == self
}

// replicated reports whether the partition has replicas besides the
// leader, so acknowledgements wait for the high watermark.
func (st *partState) replicated() bool { return len(st.replicas) > 1 }

// applyState takes the partition's committed state from metadata and acts
// on a change of role or epoch.
func (ps *partitions) applyState(t *topicState, p *partition, mp metadata.Partition) {
	s := ps.s
	self := s.cfg.NodeID
	p.amu.Lock()
	defer p.amu.Unlock()
	prev := p.st.Load()
	st := &partState{
		leader: mp.Leader, leaderEpoch: mp.LeaderEpoch, partitionEpoch: mp.PartitionEpoch,
		replicas: slices.Clone(mp.Replicas), isr: slices.Clone(mp.ISR),
	}
	if prev != nil && prev.leader == st.leader && prev.leaderEpoch == st.leaderEpoch && prev.partitionEpoch == st.partitionEpoch {
		return
	}
	if prev != nil && (st.leaderEpoch < prev.leaderEpoch || (st.leaderEpoch == prev.leaderEpoch && st.partitionEpoch < prev.partitionEpoch)) {
		return // an older view (an AlterPartition answer raced a reconcile)
	}
	wasLeader := prev != nil && prev.leader == self
	isLeader := st.leader == self
	newEpoch := prev == nil || prev.leaderEpoch != st.leaderEpoch
	switch {
	case isLeader && (!wasLeader || newEpoch):
		p.log.SetReplicated(st.replicated())
		if err := p.log.AssignLeaderEpoch(st.leaderEpoch); err != nil {
			s.log.Error("cannot open leader epoch; not leading", "topic", t.name, "partition", p.index, "epoch", st.leaderEpoch, "err", err)
			return
		}
		now := time.Now()
		ls := &leaderSide{followers: map[int32]*followerPos{}, epochStart: p.log.LogEndOffset()}
		for _, r := range st.replicas {
			if r != self {
				ls.followers[r] = &followerPos{leo: -1, lastCaughtUp: now, leaderEndAtLastFetch: -1}
			}
		}
		p.rmu.Lock()
		if p.lead != nil && p.lead.lost != nil {
			close(p.lead.lost) // the previous epoch's waiters
		}
		ls.lost = make(chan struct{})
		p.lead = ls
		p.rmu.Unlock()
		p.st.Store(st)
		s.fetchers.remove(p)
		s.tier.AddPartition(t.name, t.id, p.index, p.log, t.cfg.tier)
		ps.maybeAdvanceHW(p)
		s.log.Info("leading partition", "topic", t.name, "partition", p.index, "leader_epoch", st.leaderEpoch, "isr", st.isr, "log_end", ls.epochStart)
		s.coordinatorsGained(t, p)
	case isLeader:
		// Same epoch, new ISR or replica set (AlterPartition, reassignment).
		p.log.SetReplicated(st.replicated())
		p.rmu.Lock()
		if p.lead != nil {
			now := time.Now()
			for _, r := range st.replicas {
				if _, ok := p.lead.followers[r]; !ok && r != self {
					p.lead.followers[r] = &followerPos{leo: -1, lastCaughtUp: now, leaderEndAtLastFetch: -1}
				}
			}
			for r := range p.lead.followers {
				if !slices.Contains(st.replicas, r) {
					delete(p.lead.followers, r)
				}
			}
		}
		p.rmu.Unlock()
		p.st.Store(st)
		ps.maybeAdvanceHW(p)
	default:
		p.st.Store(st)
		if wasLeader {
			p.rmu.Lock()
			if p.lead != nil && p.lead.lost != nil {
				close(p.lead.lost)
			}
			p.lead = nil
			p.rmu.Unlock()
			s.tier.RemovePartition(t.id, p.index)
			s.coordinatorsLost(t, p)
			s.log.Info("no longer leading partition", "topic", t.name, "partition", p.index, "leader", st.leader, "leader_epoch", st.leaderEpoch)
		}
		p.log.SetReplicated(true)
		if st.leader >= 0 {
			s.fetchers.add(t, p, st.leader, st.leaderEpoch)
		} else {
			s.fetchers.remove(p)
		}
	}
}

// stopReplica is for a partition this broker no longer hosts (reassigned
// away): replication stops and the log is deleted.
func (ps *partitions) stopReplica(t *topicState, p *partition) {
	s := ps.s
	s.fetchers.remove(p)
	if p.isLeader(s.cfg.NodeID) {
		s.coordinatorsLost(t, p)
	}
	s.tier.RemovePartition(t.id, p.index)
	if err := p.log.Delete(); err != nil {
		s.log.Error("delete log of a replica moved away", "topic", t.name, "partition", p.index, "err", err)
		return
	}
	s.log.Info("deleted replica moved to other brokers", "topic", t.name, "partition", p.index)
}

// followerFetched records a follower's fetch at offset (its log end) and
// moves the high watermark. It reports whether the follower should join
// the ISR, for the ISR loop to act on at once.
func (ps *partitions) followerFetched(p *partition, follower int32, offset int64, now time.Time) {
	leaderEnd := p.log.LogEndOffset()
	p.rmu.Lock()
	ls := p.lead
	if ls == nil {
		p.rmu.Unlock()
		return
	}
	f, ok := ls.followers[follower]
	if !ok {
		p.rmu.Unlock()
		return
	}
	switch {
	case offset >= leaderEnd:
		f.lastCaughtUp = now
	case f.leaderEndAtLastFetch >= 0 && offset >= f.leaderEndAtLastFetch:
		f.lastCaughtUp = f.lastFetchAt
	}
	f.leo, f.lastFetchAt, f.leaderEndAtLastFetch = offset, now, leaderEnd
	st := p.st.Load()
	join := st != nil && !st.inISR(follower) && offset >= p.log.HighWatermark() && offset >= ls.epochStart && !ls.altering
	p.rmu.Unlock()
	ps.maybeAdvanceHW(p)
	if join {
		ps.s.pokeISR()
	}
}

// maybeAdvanceHW moves the leader's high watermark to the smallest log end
// across the ISR (this broker's own counts at its log end; the log caps
// it at what is durable).
func (ps *partitions) maybeAdvanceHW(p *partition) {
	st := p.st.Load()
	if st == nil || st.leader != ps.s.cfg.NodeID || !st.replicated() {
		return
	}
	hw := p.log.LogEndOffset()
	p.rmu.Lock()
	ls := p.lead
	if ls == nil {
		p.rmu.Unlock()
		return
	}
	for _, r := range st.isr {
		if r == ps.s.cfg.NodeID {
			continue
		}
		f, ok := ls.followers[r]
		if !ok || f.leo < 0 {
			p.rmu.Unlock()
			return // not heard from in this epoch: nothing is known to be replicated
		}
		hw = min(hw, f.leo)
	}
	p.rmu.Unlock()
	p.log.AdvanceHighWatermark(hw)
}

// pokeISR wakes the ISR loop for a prompt expansion.
func (s *Server) pokeISR() {
	select {
	case s.isrPoke <- struct{}{}:
	default:
	}
}

// isrLoop shrinks and expands the ISR of the partitions this broker leads,
// as Kafka's leader does: a follower that has not caught up within
// replica.lag.time.max.ms leaves, one that has reached the high watermark
// (and this epoch's start) joins. Changes go to the controller as
// AlterPartition; the committed result comes back through applyState.
func (s *Server) isrLoop() {
	defer s.wg.Done()
	lag := time.Duration(s.cfg.ReplicaLagTimeMaxMs) * time.Millisecond
	tick := time.NewTicker(min(lag/2, 500*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		case <-s.isrPoke:
		}
		now := time.Now()
		for _, t := range s.parts.all() {
			for _, p := range t.parts {
				if p != nil {
					s.checkISR(t, p, now, lag)
				}
			}
		}
	}
}

func (s *Server) checkISR(t *topicState, p *partition, now time.Time, lag time.Duration) {
	self := s.cfg.NodeID
	st := p.st.Load()
	if st == nil || st.leader != self {
		return
	}
	hw := p.log.HighWatermark()
	p.rmu.Lock()
	ls := p.lead
	if ls == nil || ls.altering || now.Before(ls.retryAt) {
		p.rmu.Unlock()
		return
	}
	newISR := []int32{}
	changed := false
	for _, r := range st.replicas {
		if r == self {
			newISR = append(newISR, r)
			continue
		}
		f := ls.followers[r]
		in := st.inISR(r)
		switch {
		case in && f != nil && now.Sub(f.lastCaughtUp) > lag:
			changed = true // out: lagging
		case in:
			newISR = append(newISR, r)
		case f != nil && f.leo >= 0 && f.leo >= hw && f.leo >= ls.epochStart && s.eligibleForISR(r):
			newISR = append(newISR, r)
			changed = true // in: caught up
		}
	}
	if !changed {
		p.rmu.Unlock()
		return
	}
	ls.altering = true
	p.rmu.Unlock()
	defer func() {
		p.rmu.Lock()
		ls.altering = false
		p.rmu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	got, err := s.meta.AlterPartition(ctx, metadata.AlterPartitionRequest{
		TopicPartition:      metadata.TopicPartition{TopicID: t.id, Partition: p.index},
		LeaderID:            self,
		BrokerIncarnationID: s.incarnation,
		LeaderEpoch:         st.leaderEpoch,
		PartitionEpoch:      st.partitionEpoch,
		NewISR:              newISR,
	})
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Warn("ISR change refused or failed; retrying", "topic", t.name, "partition", p.index, "isr", st.isr, "new_isr", newISR, "err", err)
		}
		p.rmu.Lock()
		ls.retryAt = time.Now().Add(time.Second)
		p.rmu.Unlock()
		return
	}
	s.metrics.isrChange(len(newISR) < len(st.isr))
	s.log.Info("ISR changed", "topic", t.name, "partition", p.index, "from", st.isr, "to", got.ISR, "partition_epoch", got.PartitionEpoch)
	s.parts.applyState(t, p, got)
}

// eligibleForISR: as in Kafka (KIP-841), only a registered broker that is
// neither fenced nor shutting down may join an ISR.
func (s *Server) eligibleForISR(id int32) bool {
	b, ok := s.meta.Broker(id)
	return ok && !b.Fenced && !b.InControlledShutdown
}

// awaitHW waits until offsets below end are committed (the high
// watermark passed them) for acks=all on a replicated partition.
func awaitHW(ctx context.Context, p *partition, end int64) error {
	p.rmu.Lock()
	var lost chan struct{}
	if p.lead != nil {
		lost = p.lead.lost
	}
	p.rmu.Unlock()
	for {
		ch := p.log.Changed()
		if p.log.HighWatermark() >= end {
			return nil
		}
		select {
		case <-ch:
		case <-lost:
			return fmt.Errorf("leadership moved before the in-sync replicas had the records: %w", kerr.NotLeaderForPartition)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// partitionFields are the replication fields of partition (kept here so
// partitions.go reads as the replica manager).
type partitionFields struct {
	amu  sync.Mutex // serializes applyState (reconcile and the ISR loop)
	fmu  sync.Mutex // serializes a follower's appends and truncations with the check that its fetcher still owns it
	st   atomic.Pointer[partState]
	rmu  sync.Mutex
	lead *leaderSide // nil unless leading
}
