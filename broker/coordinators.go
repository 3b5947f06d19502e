package broker

// The group and transaction coordinators follow the leadership of their
// internal topics' partitions, as in Kafka: the leader of
// __consumer_offsets-N coordinates the groups that hash to N (and the
// leader of __transaction_state-N the transactional ids that hash to N).
// Gaining a partition loads its state from the log (COORDINATOR_LOAD_IN_PROGRESS
// meanwhile); losing it unloads the state (NOT_COORDINATOR, the client
// finds the new coordinator).

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// groupLoads tracks which __consumer_offsets partitions the group
// coordinator has loaded.
type groupLoads struct {
	mu    sync.Mutex
	state map[int32]*groupLoad
}

type groupLoad struct {
	loaded bool
	gen    uint64 // bumped at every gain and loss, so a stale load does not publish
}

func (s *Server) coordinatorsGained(t *topicState, p *partition) {
	switch t.name {
	case offsetsTopicName:
		s.gl.mu.Lock()
		if s.gl.state == nil {
			s.gl.state = map[int32]*groupLoad{}
		}
		st := s.gl.state[p.index]
		if st == nil {
			st = &groupLoad{}
			s.gl.state[p.index] = st
		}
		first := st.gen == 0
		st.loaded = false
		st.gen++
		gen := st.gen
		if first && p.log.LogEndOffset() == 0 {
			// Nothing to load, and nothing stale to drop: this process never
			// led the partition before, so groups the coordinator holds for
			// it were made here (the topic was just created for them).
			st.loaded = true
			s.gl.mu.Unlock()
			return
		}
		s.gl.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			backoff := 100 * time.Millisecond
			for {
				s.groups.Unload(p.index)
				err := s.offsets.loadPartition(p)
				s.gl.mu.Lock()
				current := st.gen == gen
				if err == nil && current {
					st.loaded = true
				}
				s.gl.mu.Unlock()
				if err == nil || !current || s.ctx.Err() != nil {
					s.log.Debug("group coordinator loaded partition", "partition", p.index, "err", err)
					return
				}
				// Groups of this partition answer COORDINATOR_LOAD_IN_PROGRESS
				// meanwhile; a lost leadership ends the retries.
				s.log.Error("loading group state failed; retrying", "partition", p.index, "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
				case <-s.ctx.Done():
					return
				}
				backoff = min(2*backoff, 10*time.Second)
			}
		}()
	case txnStateTopicName:
		epoch := p.epoch()
		if p.log.LogEndOffset() == 0 {
			// An empty partition loads at once: the client that made the
			// topic gets its answer without a NOT_COORDINATOR round.
			// Bounded: reconcile waits here, and must never wait on a busy
			// coordinator loop for long.
			ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
			err := s.txns.LoadPartition(ctx, p.index, epoch)
			cancel()
			if err == nil || s.ctx.Err() != nil {
				return
			}
			s.log.Warn("loading transaction state at once failed; loading in the background", "partition", p.index, "err", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.txns.LoadPartition(s.ctx, p.index, epoch); err != nil && s.ctx.Err() == nil {
				s.log.Error("loading transaction state failed", "partition", p.index, "err", err)
			}
		}()
	}
}

func (s *Server) coordinatorsLost(t *topicState, p *partition) {
	switch t.name {
	case offsetsTopicName:
		s.gl.mu.Lock()
		if st := s.gl.state[p.index]; st != nil {
			st.loaded = false
			st.gen++
		}
		s.gl.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.groups.Unload(p.index)
		}()
	case txnStateTopicName:
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.txns.Unload(p.index)
		}()
	}
}

// groupCoordinatorCode says whether this broker coordinates group: 0,
// NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS (COORDINATOR_NOT_AVAILABLE
// when __consumer_offsets cannot be created).
func (s *Server) groupCoordinatorCode(group string) int16 {
	t, ok := s.parts.topic(offsetsTopicName)
	if !ok {
		// Kafka creates the topic at the first FindCoordinator; a client
		// that skipped it (or a broker whose view is behind) creates or
		// finds it here, so no broker answers for a group it does not
		// coordinate.
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		err := s.offsets.ensure(ctx)
		cancel()
		if t, ok = s.parts.topic(offsetsTopicName); err != nil || !ok {
			s.log.Warn("cannot create "+offsetsTopicName, "err", err)
			return kerr.CoordinatorNotAvailable.Code
		}
	}
	idx := s.groups.PartitionFor(group)
	if int(idx) >= len(t.parts) || t.parts[idx] == nil || !t.parts[idx].isLeader(s.cfg.NodeID) {
		if s.takingLeadership(t, idx) {
			// Metadata says this broker leads it and the replica is still
			// taking the role: the client waits instead of looking again.
			return kerr.CoordinatorLoadInProgress.Code
		}
		return kerr.NotCoordinator.Code
	}
	s.gl.mu.Lock()
	defer s.gl.mu.Unlock()
	if st := s.gl.state[idx]; st == nil || !st.loaded {
		return kerr.CoordinatorLoadInProgress.Code
	}
	return 0
}

// takingLeadership reports whether committed metadata makes this broker
// the leader of t's partition idx under an epoch its replica has not taken
// yet (reconcile is on its way).
func (s *Server) takingLeadership(t *topicState, idx int32) bool {
	mt, ok := s.meta.Topic(t.name)
	if !ok || int(idx) >= len(mt.Partitions) || mt.Partitions[idx].Leader != s.cfg.NodeID {
		return false
	}
	if int(idx) >= len(t.parts) || t.parts[idx] == nil {
		return true
	}
	st := t.parts[idx].state()
	return st == nil || st.leaderEpoch < mt.Partitions[idx].LeaderEpoch
}

// coordinatorLeader is the leader of the internal topic's partition that
// owns key, for FindCoordinator; -1 when it has none.
func (s *Server) coordinatorLeader(topic string, partition int32) int32 {
	t, ok := s.meta.Topic(topic)
	if !ok || int(partition) >= len(t.Partitions) {
		return -1
	}
	return t.Partitions[partition].Leader
}

// awaitGroupsLoaded waits until the group coordinator has loaded every
// __consumer_offsets partition this broker leads, so a broker that says it
// is ready answers group requests at once.
func (s *Server) awaitGroupsLoaded(ctx context.Context) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s.gl.mu.Lock()
		done := true
		for _, st := range s.gl.state {
			done = done && st.loaded
		}
		s.gl.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("load group state: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// awaitCommitted waits until the records below end are committed: on a
// replicated partition when the high watermark passes them (every ISR
// member has them), else when they are durable here.
func awaitCommitted(ctx context.Context, p *partition, end int64) error {
	if p.log.Replicated() {
		return awaitHW(ctx, p, end)
	}
	return p.log.WaitDurable(ctx, end)
}

// offsetsTopicAppeared drops groups the coordinator made for partitions
// another broker leads: before __consumer_offsets exists every broker
// answers for itself, and the one that created the topic keeps only what
// it leads.
func (s *Server) offsetsTopicAppeared(t *topicState, mt []int32) {
	for idx, leader := range mt {
		if leader != s.cfg.NodeID {
			s.groups.Unload(int32(idx))
		}
	}
}
