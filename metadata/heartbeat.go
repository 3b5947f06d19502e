package metadata

// Broker liveness, as KRaft's BrokerHeartbeatManager and the fencing half
// of its ClusterControlManager do it:
//
//   - Brokers heartbeat to the active controller (the Raft leader; other
//     nodes forward, fwdBrokerHeartbeat). A heartbeat is answered from the
//     leader's applied state and its in-memory HeartbeatTracker only: it
//     never appends to the Raft log, so a cluster of idle brokers writes
//     nothing.
//   - The controller loop (one goroutine on every controller node, idle
//     unless the node leads) turns the tracker into commands: it fences an
//     unfenced broker whose session expired and unfences a fenced one that
//     heartbeats again. The FSM then moves leaderships and ISRs
//     (fenceBroker, unfenceBroker). Fencing and unfencing name the
//     incarnation, so a command racing a re-registration is refused by the
//     FSM instead of hitting the new process.
//   - A node that becomes leader first applies the whole log (a Raft
//     barrier), then resets the tracker: every broker gets a full session
//     timeout from that moment (Kafka's grace period after a controller
//     change). Until then heartbeats wait (up to readyWait, then a
//     retriable ErrNotLeader), so that it never calls a broker unknown, or
//     stale, because its own state still lags the log.
//   - Unfencing needs a heartbeat this leader actually received: the grace
//     period keeps unfenced brokers unfenced, it never admits one that was
//     fenced (it may be dead).

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
)

// defaultBrokerSessionTimeout is Kafka's broker.session.timeout.ms default.
const defaultBrokerSessionTimeout = 9 * time.Second

// HeartbeatReply is the active controller's answer to a broker heartbeat.
type HeartbeatReply struct {
	// Fenced: the broker is fenced in the metadata the leader has
	// committed and applied (as of before this heartbeat; the controller
	// loop unfences it shortly after if it may lead again).
	Fenced bool
}

// heartbeatState is the Store's part for broker liveness.
type heartbeatState struct {
	tracker *HeartbeatTracker
	// readyTerm is the Raft term in which this node, as leader, applied
	// the whole log and reset the tracker; heartbeats are answered only in
	// that term.
	readyTerm atomic.Uint64
	// ticks counts the loop's passes as ready leader (tests wait on it).
	ticks atomic.Uint64
	// wake asks the loop to look at leadership now (a heartbeat reached a
	// leader that is not ready yet).
	wake chan struct{}

	mu      sync.Mutex    // guards readied
	readied chan struct{} // closed (and replaced) whenever readyTerm is set
}

func newHeartbeatState(now time.Time) heartbeatState {
	return heartbeatState{tracker: NewHeartbeatTracker(now), wake: make(chan struct{}, 1), readied: make(chan struct{})}
}

// readyWait bounds how long a heartbeat that reaches a leader still
// applying the log waits for it before being refused (retriably).
const readyWait = time.Second

func (h *heartbeatState) readyChan() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.readied
}

func (h *heartbeatState) setReady(term uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.readyTerm.Store(term)
	close(h.readied)
	h.readied = make(chan struct{})
}

func (h *heartbeatState) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (c Config) sessionTimeout() time.Duration {
	if c.BrokerSessionTimeout <= 0 {
		return defaultBrokerSessionTimeout
	}
	return c.BrokerSessionTimeout
}

// heartbeatTick is how often the controller loop checks sessions: an
// eighth of the session timeout, so a broker is fenced at most an eighth
// late, within [50ms, 1s].
func (c Config) heartbeatTick() time.Duration {
	return max(50*time.Millisecond, min(time.Second, c.sessionTimeout()/8))
}

// BrokerHeartbeat records a heartbeat of one incarnation of a broker with
// the active controller (forwarded to the Raft leader from any node) and
// says whether the broker is fenced. A broker the controller does not know,
// or whose registered incarnation differs, gets an error wrapping
// ErrStaleBrokerEpoch: it must register again. While no leader is ready
// (an election, or a new leader still applying the log) the call retries
// until ctx ends, then fails with ErrNotLeader.
func (s *Store) BrokerHeartbeat(ctx context.Context, id int32, incarnation uuid.UUID) (HeartbeatReply, error) {
	op := fmt.Sprintf("heartbeat of broker %d", id)
	if id < 0 || incarnation == uuid.Nil {
		return HeartbeatReply{}, fmt.Errorf("%s: a heartbeat needs a broker id >= 0 and its incarnation id: %w", op, ErrInvalidArgument)
	}
	if s.inflight.isClosed() {
		return HeartbeatReply{}, fmt.Errorf("%s: %w", op, ErrClosed)
	}
	r, err := s.execute(ctx, &fwdRequest{Kind: fwdBrokerHeartbeat, Op: op, ID: id, Incarnation: incarnation})
	if err != nil {
		return HeartbeatReply{}, err
	}
	return HeartbeatReply{Fenced: r.fenced}, nil
}

// IsActiveController reports whether this node is the Raft leader, i.e.
// the active controller.
func (s *Store) IsActiveController() bool { return s.raft.State() == raft.Leader }

// heartbeatLocal answers a heartbeat on the leader (handleLocal checked
// leadership). It reads the state before touching the tracker, so Fenced
// is the state this heartbeat found.
func (s *Store) heartbeatLocal(ctx context.Context, req *fwdRequest) fwdResponse {
	if !s.awaitActive(ctx) {
		if s.raft.State() != raft.Leader {
			return s.notLeaderResponse()
		}
		return fwdResponse{status: fwdFailed, err: fmt.Errorf("%s: the new active controller is still applying the metadata log: %w", req.Op, ErrNotLeader)}
	}
	b, ok := s.fsm.broker(req.ID)
	switch {
	case !ok:
		return fwdResponse{status: fwdFailed, err: fmt.Errorf("%s: the broker is not registered: %w", req.Op, ErrStaleBrokerEpoch)}
	case b.IncarnationID != req.Incarnation:
		return fwdResponse{status: fwdFailed, err: fmt.Errorf("%s: incarnation %s, the registered one is %s: %w", req.Op, req.Incarnation, b.IncarnationID, ErrStaleBrokerEpoch)}
	}
	s.hb.tracker.Touch(req.ID, req.Incarnation, s.q.now())
	if b.Fenced && !b.InControlledShutdown {
		// A (re)starting broker waits for this: unfence it now rather
		// than at the next tick.
		s.hb.poke()
	}
	return fwdResponse{fenced: b.Fenced}
}

// awaitActive waits (up to readyWait) until this leader is ready to
// answer heartbeats in its current term: right after an election the
// controller loop is still applying the log. It reports false if the node
// is not ready (or no longer leads) by then.
func (s *Store) awaitActive(ctx context.Context) bool {
	var timeout <-chan time.Time
	for {
		ch := s.hb.readyChan()
		if s.hb.readyTerm.Load() == s.raft.CurrentTerm() {
			return true
		}
		if s.raft.State() != raft.Leader {
			return false
		}
		s.hb.poke()
		if timeout == nil {
			t := time.NewTimer(readyWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ch:
		case <-timeout:
			return false
		case <-ctx.Done():
			return false
		case <-s.closing:
			return false
		}
	}
}

// heardFrom reports whether this incarnation of the broker heartbeated to
// this leader (since its grace period began) within sessionTimeout. Unlike
// HasSession the grace period alone does not count.
func (h *HeartbeatTracker) heardFrom(id int32, incarnation uuid.UUID, now time.Time, sessionTimeout time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	hb, ok := h.last[id]
	return ok && hb.incarnation == incarnation && !hb.at.Before(h.activeSince) && !now.After(hb.at.Add(sessionTimeout))
}

// startController starts the controller loop; Close stops it (it ends on
// s.closing and Close waits for s.wg).
func (s *Store) startController() {
	ch := make(chan raft.Observation, 1)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	s.raft.RegisterObserver(obs)
	s.wg.Add(1)
	go s.runController(ch, obs)
}

// runController is the active controller's loop: a pass per tick, and one
// at once when leadership changes (Raft's observation; dropped ones are
// harmless, every pass reads the state afresh).
func (s *Store) runController(leaderChanges <-chan raft.Observation, obs *raft.Observer) {
	defer s.wg.Done()
	defer s.raft.DeregisterObserver(obs)
	tick := time.NewTicker(s.cfg.heartbeatTick())
	defer tick.Stop()
	for {
		s.controllerPass()
		select {
		case <-s.closing:
			return
		case <-tick.C:
		case <-leaderChanges:
		case <-s.hb.wake:
		}
	}
}

// controllerPass does one round of session checks if this node leads.
func (s *Store) controllerPass() {
	if s.raft.State() != raft.Leader {
		return
	}
	if term := s.raft.CurrentTerm(); s.hb.readyTerm.Load() != term && !s.becomeActive(term) {
		return
	}
	timeout := s.cfg.sessionTimeout()
	for _, b := range s.Brokers() {
		if b.IncarnationID == uuid.Nil {
			continue // RegisterBroker (single node): never heartbeats
		}
		now := s.q.now()
		switch {
		case !b.Fenced && !s.hb.tracker.HasSession(b.ID, b.IncarnationID, now, timeout):
			s.log.Warn("fencing broker: no heartbeat within broker.session.timeout.ms", "broker", b.ID, "incarnation", b.IncarnationID, "timeout", timeout)
			s.controllerPropose(fmt.Sprintf("fence broker %d", b.ID), &fenceBrokerV1{ID: b.ID, IncarnationID: b.IncarnationID, Unclean: s.cfg.UncleanLeaderElection})
		case b.Fenced && !b.InControlledShutdown && s.hb.tracker.heardFrom(b.ID, b.IncarnationID, now, timeout):
			s.log.Info("unfencing broker: it heartbeats", "broker", b.ID, "incarnation", b.IncarnationID)
			s.controllerPropose(fmt.Sprintf("unfence broker %d", b.ID), &unfenceBrokerV1{ID: b.ID, IncarnationID: b.IncarnationID, Unclean: s.cfg.UncleanLeaderElection})
		}
	}
	s.hb.ticks.Add(1)
}

// becomeActive runs when this node leads in a term it has not prepared
// yet: once every earlier entry is applied, the brokers' sessions restart
// from now. It reports whether the node is still the leader of term.
func (s *Store) becomeActive(term uint64) bool {
	ctx, cancel := context.WithTimeout(s.q.stopCtx, enqueueTimeout)
	defer cancel()
	if _, err := s.do(ctx, func() raft.Future { return s.raft.Barrier(enqueueTimeout) }); err != nil {
		s.controllerError("active controller barrier", err)
		return false
	}
	if s.raft.State() != raft.Leader || s.raft.CurrentTerm() != term {
		return false
	}
	s.hb.tracker.Reset(s.q.now())
	s.hb.setReady(term)
	s.log.Info("active controller: every broker has a session timeout of grace", "term", term, "timeout", s.cfg.sessionTimeout())
	return true
}

// controllerPropose applies c on this node only: a leader that lost
// leadership must not forward its verdict, made from its own heartbeat
// memory, to the next leader (whose memory differs). Failures are retried
// by the next pass, which reads the state afresh; the FSM makes repeats
// no-ops.
func (s *Store) controllerPropose(op string, c command) {
	data, err := encodeCommand(c)
	if err != nil {
		s.controllerError(op, err)
		return
	}
	ctx, cancel := context.WithTimeout(s.q.stopCtx, enqueueTimeout)
	defer cancel()
	r := s.handleLocal(ctx, &fwdRequest{Kind: fwdPropose, Op: op, Command: data})
	if r.status == fwdNotLeader {
		s.controllerError(op, s.notLeader(op))
		return
	}
	if r.err != nil {
		s.controllerError(op, r.err)
	}
}

func (s *Store) controllerError(op string, err error) {
	switch {
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrClosed), errors.Is(err, raft.ErrNotLeader),
		errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, context.Canceled):
		// Leadership moved or the store is closing: the next leader's
		// loop takes over.
		s.log.Debug("metadata controller: "+op+" abandoned", "err", err)
	case errors.Is(err, ErrStaleBrokerIncarnation), errors.Is(err, ErrUnknownBroker):
		// The broker re-registered meanwhile: the next pass sees it.
		s.log.Debug("metadata controller: "+op+" overtaken by a registration", "err", err)
	default:
		s.log.Warn("metadata controller: "+op+" failed, retrying at the next check", "err", err)
	}
}
