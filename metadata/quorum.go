package metadata

// The quorum across processes: roles and the voter list, proposals that
// reach the leader from any node (forward.go carries them), membership
// changes and DescribeQuorum.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Roles are the parts a node plays, as in KRaft's process.roles. The zero
// value means both (combined mode).
type Roles uint8

const (
	// RoleBroker serves clients; alone, the node follows the metadata log
	// as a Raft non-voter.
	RoleBroker Roles = 1 << iota
	// RoleController makes the node a Raft voter; the Raft leader is the
	// active controller.
	RoleController
)

// IsController reports whether r includes the controller role (the zero
// value does).
func (r Roles) IsController() bool { return r == 0 || r&RoleController != 0 }

// IsBroker reports whether r includes the broker role (the zero value
// does).
func (r Roles) IsBroker() bool { return r == 0 || r&RoleBroker != 0 }

// String gives the process.roles spelling.
func (r Roles) String() string {
	switch {
	case r.IsBroker() && r.IsController():
		return "broker,controller"
	case r.IsController():
		return "controller"
	default:
		return "broker"
	}
}

// ParseRoles reads KRaft's process.roles: "broker", "controller", or both
// separated by a comma (in any order).
func ParseRoles(s string) (Roles, error) {
	var r Roles
	for part := range strings.SplitSeq(s, ",") {
		switch p := strings.TrimSpace(part); p {
		case "broker":
			r |= RoleBroker
		case "controller":
			r |= RoleController
		case "":
			return 0, fmt.Errorf("process roles %q: empty role", s)
		default:
			return 0, fmt.Errorf("process roles %q: unknown role %q (want broker and/or controller)", s, p)
		}
	}
	return r, nil
}

// ParseVoters reads KRaft's controller.quorum.voters syntax,
// "1@host:port,2@host:port,3@host:port": each voter's node id and the
// address of its Raft port. Ids must be unique and non-negative, addresses
// unique, ports in 1..65535.
func ParseVoters(s string) ([]Voter, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("controller voters: empty list (want id@host:port,...)")
	}
	var out []Voter
	ids := map[int32]bool{}
	addrs := map[string]bool{}
	for i, part := range strings.Split(s, ",") {
		e := strings.TrimSpace(part)
		n := i + 1
		idStr, addr, ok := strings.Cut(e, "@")
		if !ok {
			return nil, fmt.Errorf("controller voters: entry %d %q has no '@' (want id@host:port)", n, e)
		}
		id, err := strconv.ParseInt(idStr, 10, 32)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("controller voters: entry %d %q: node id %q is not an integer in 0..%d", n, e, idStr, int32(^uint32(0)>>1))
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("controller voters: entry %d %q: address %q: %v", n, e, addr, err)
		}
		if host == "" {
			return nil, fmt.Errorf("controller voters: entry %d %q: address %q has no host", n, e, addr)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("controller voters: entry %d %q: port %q is not in 1..65535", n, e, port)
		}
		if ids[int32(id)] {
			return nil, fmt.Errorf("controller voters: node id %d listed twice", id)
		}
		if addrs[addr] {
			return nil, fmt.Errorf("controller voters: address %s listed twice", addr)
		}
		ids[int32(id)], addrs[addr] = true, true
		out = append(out, Voter{ID: int32(id), Addr: addr})
	}
	return out, nil
}

// QuorumInfo is the leader's view of the metadata quorum, shaped for
// Kafka's DescribeQuorum (API key 55). Offsets are Raft log indexes: with
// entry i standing for offset i-1, LogEndOffset (the last index) and
// HighWatermark (the commit index) are exclusive ends, as in Kafka.
type QuorumInfo struct {
	LeaderID int32 `json:"leader_id"`
	// LeaderEpoch is the Raft term (saturating at MaxInt32).
	LeaderEpoch   int32          `json:"leader_epoch"`
	HighWatermark int64          `json:"high_watermark"`
	Voters        []ReplicaState `json:"voters"`
	Observers     []ReplicaState `json:"observers"` // Raft non-voters
}

// ReplicaState is one member of the quorum, by node id. Values hashicorp/raft
// does not expose to the leader are approximated:
//   - LogEndOffset is the replica's own last log index, asked from it when
//     DescribeQuorum runs (the leader's replication progress is private to
//     hashicorp/raft); -1 when the replica did not answer.
//   - LastFetchTimestamp (Unix ms) is when the replica last heard from the
//     leader, as it reports; for the leader itself, now; -1 if unknown.
//   - LastCaughtUpTimestamp (Unix ms) is that same time when the replica's
//     last index had reached the leader's at the start of the query, else
//     the last such time this leader saw in an earlier DescribeQuorum; -1
//     if none.
type ReplicaState struct {
	ID                    int32  `json:"id"`
	Addr                  string `json:"addr"`
	LogEndOffset          int64  `json:"log_end_offset"`
	LastFetchTimestamp    int64  `json:"last_fetch_timestamp"`
	LastCaughtUpTimestamp int64  `json:"last_caught_up_timestamp"`
}

const (
	// leaderWaitTimeout bounds the search for a leader when the caller's
	// context has no deadline.
	leaderWaitTimeout = enqueueTimeout
	// replicaPollTimeout bounds how long DescribeQuorum waits for each
	// replica's report.
	replicaPollTimeout = 2 * time.Second
	maxRetryBackoff    = 200 * time.Millisecond
	maxJoinBackoff     = 2 * time.Second
)

// quorumState is the Store's part for the quorum across processes.
type quorumState struct {
	mux *muxStream // nil with the in-memory transport: no forwarding
	// stopCtx ends when Close starts shutting Raft down; forwarded work
	// and the join loop derive from it.
	stopCtx context.Context
	stop    context.CancelFunc
	now     func() time.Time

	mu       sync.Mutex      // guards caughtUp
	caughtUp map[int32]int64 // last time each replica was seen caught up (Unix ms)
}

func newQuorumState(mux *muxStream) quorumState {
	ctx, cancel := context.WithCancel(context.Background())
	return quorumState{mux: mux, stopCtx: ctx, stop: cancel, now: time.Now, caughtUp: map[int32]int64{}}
}

// AddVoter adds node id, reachable at addr (its Raft port), as a voter, or
// promotes it if it is a non-voter. Run on the leader (forwarded from any
// other node). Idempotent. The node should have caught up as a non-voter
// first: a voter that lags slows commits down.
func (s *Store) AddVoter(ctx context.Context, id int32, addr string) error {
	op := fmt.Sprintf("add voter %d at %s", id, addr)
	if err := s.membershipCheck(op, id, addr, true); err != nil {
		return err
	}
	_, err := s.execute(ctx, &fwdRequest{Kind: fwdAddVoter, Op: op, ID: id, Addr: addr})
	return err
}

// RemoveServer removes node id (voter or non-voter) from the quorum.
// Idempotent. Nothing is ever removed automatically: a broker that stops
// stays a non-voter until an administrator removes it.
func (s *Store) RemoveServer(ctx context.Context, id int32) error {
	op := fmt.Sprintf("remove server %d", id)
	if err := s.membershipCheck(op, id, "", false); err != nil {
		return err
	}
	_, err := s.execute(ctx, &fwdRequest{Kind: fwdRemoveServer, Op: op, ID: id})
	return err
}

func (s *Store) membershipCheck(op string, id int32, addr string, needAddr bool) error {
	if s.q.mux == nil {
		return fmt.Errorf("%s: membership changes need the TCP transport (a raft address): %w", op, ErrInvalidArgument)
	}
	if id < 0 {
		return fmt.Errorf("%s: node id must be >= 0: %w", op, ErrInvalidArgument)
	}
	if needAddr {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s: %v: %w", op, err, ErrInvalidArgument)
		}
	}
	return nil
}

// DescribeQuorum returns the leader's view of the quorum (asked of the
// leader when this node is not it).
func (s *Store) DescribeQuorum(ctx context.Context) (QuorumInfo, error) {
	r, err := s.execute(ctx, &fwdRequest{Kind: fwdDescribeQuorum, Op: "describe quorum"})
	if err != nil {
		return QuorumInfo{}, err
	}
	if r.quorum == nil {
		return QuorumInfo{}, errors.New("describe quorum: no answer from the leader")
	}
	return *r.quorum, nil
}

// propose encodes c, applies it through Raft on the leader (forwarding
// when this node is not it) and returns the FSM's verdict.
func (s *Store) propose(ctx context.Context, op string, c command) (applyResult, error) {
	if err := ctx.Err(); err != nil {
		return applyResult{}, fmt.Errorf("%s: %w", op, err)
	}
	if s.inflight.isClosed() {
		return applyResult{}, fmt.Errorf("%s: %w", op, ErrClosed)
	}
	data, err := encodeCommand(c)
	if err != nil {
		return applyResult{}, fmt.Errorf("%s: %w", op, err)
	}
	r, err := s.execute(ctx, &fwdRequest{Kind: fwdPropose, Op: op, Command: data})
	return r.result, err
}

// execute runs req on the leader: here when this node leads, else over
// the forwarding channel, following leader changes until ctx ends (or
// leaderWaitTimeout when ctx has no deadline). A refusal before anything
// changed (not the leader) is retried; an unknown outcome of a proposal
// (the leader lost leadership, or the connection, after taking it) is not,
// and is reported as ErrNotLeader saying the command may still be applied.
// ErrNotLeader otherwise means no leader was found before the deadline.
func (s *Store) execute(ctx context.Context, req *fwdRequest) (fwdResponse, error) {
	if s.q.mux == nil {
		// In-memory transport: a single voter, nobody to forward to.
		r := s.handleLocal(ctx, req)
		if r.status == fwdNotLeader {
			return r, s.notLeader(req.Op)
		}
		return r, r.err
	}
	callerCtx := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.q.stopCtx, cancel)()
	if _, ok := ctx.Deadline(); !ok {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, leaderWaitTimeout)
		defer c2()
	}
	backoff := 5 * time.Millisecond
	var hint string
	var followed bool
	var lastErr error
	for {
		if s.inflight.isClosed() {
			return fwdResponse{}, fmt.Errorf("%s: %w", req.Op, ErrClosed)
		}
		var r fwdResponse
		answered := false
		leaderAddr, _ := s.raft.LeaderWithID()
		if s.raft.State() == raft.Leader {
			r, answered = s.handleLocal(ctx, req), true
		} else if target := cmpOr(hint, string(leaderAddr)); target != "" {
			var sent bool
			var err error
			r, sent, err = s.roundTrip(ctx, target, req)
			switch {
			case err == nil:
				answered = true
				if r.status != fwdNotLeader {
					s.awaitApplied(ctx, r.index, req.Kind == fwdPropose)
				}
			case sent && !req.Kind.idempotent():
				switch {
				case s.q.stopCtx.Err() != nil:
					return fwdResponse{}, fmt.Errorf("%s: closed while waiting for the leader at %s, the command may still be applied: %w", req.Op, target, ErrClosed)
				case callerCtx.Err() != nil:
					return fwdResponse{}, fmt.Errorf("%s: stopped waiting for the leader at %s, the command may still be applied: %w", req.Op, target, callerCtx.Err())
				}
				return fwdResponse{}, fmt.Errorf("%s: the connection to the leader at %s broke before its answer, the command may still be applied: %w (%v)", req.Op, target, ErrNotLeader, err)
			default:
				lastErr = fmt.Errorf("forward to %s: %w", target, err)
			}
		}
		hint = ""
		if answered {
			switch {
			case r.status == fwdNotLeader:
				if r.leaderAddr != "" && r.leaderAddr != string(leaderAddr) {
					hint = r.leaderAddr // try it right away
				}
				lastErr = nil
			case req.Kind.idempotent() && errors.Is(r.err, ErrNotLeader):
				lastErr = r.err // leadership moved mid-change: safe to redo
			default:
				return r, r.err
			}
		}
		if hint != "" && !followed {
			followed = true // once: two nodes naming each other must not spin
			continue
		}
		followed = false
		select {
		case <-ctx.Done():
			switch {
			case s.q.stopCtx.Err() != nil:
				return fwdResponse{}, fmt.Errorf("%s: %w", req.Op, ErrClosed)
			case callerCtx.Err() != nil && !errors.Is(callerCtx.Err(), context.DeadlineExceeded):
				return fwdResponse{}, fmt.Errorf("%s: %w", req.Op, callerCtx.Err())
			case lastErr != nil:
				return fwdResponse{}, fmt.Errorf("%s: %w: no leader reachable before the deadline (last error: %v)", req.Op, ErrNotLeader, lastErr)
			}
			return fwdResponse{}, fmt.Errorf("%s: %w: no leader known before the deadline", req.Op, ErrNotLeader)
		case <-time.After(backoff):
			backoff = min(2*backoff, maxRetryBackoff)
		}
	}
}

// awaitApplied waits until this node has applied the entry at index, so
// that a forwarded write is visible in this node's reads when the call
// returns, as it is on the leader. If ctx ends first the write still
// succeeded; only its local visibility lags.
func (s *Store) awaitApplied(ctx context.Context, index uint64, command bool) {
	if index == 0 {
		return
	}
	// Rejected commands and configuration entries do not fire Watch, so
	// poll Raft's applied index as well; a follower applies within a
	// heartbeat of the commit.
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		watch := s.fsm.watch()
		if s.appliedThrough(index, command) {
			return
		}
		select {
		case <-watch:
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// appliedThrough reports whether this node reflects the entry at index.
// Raft's AppliedIndex alone is not enough for commands: it moves when
// entries are handed to the FSM goroutine, before Apply has run them. The
// FSM's own index covers commands, and a snapshot at or past index
// (restored or taken) covers everything below it. Configuration entries
// (membership changes) never reach the FSM: Raft's index is their answer.
func (s *Store) appliedThrough(index uint64, command bool) bool {
	if !command {
		return s.raft.AppliedIndex() >= index
	}
	if s.fsm.appliedIndex.Load() >= index {
		return true
	}
	if s.raft.AppliedIndex() < index {
		return false
	}
	v, err := strconv.ParseUint(s.raft.Stats()["last_snapshot_index"], 10, 64)
	return err == nil && v >= index
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// handleLocal runs req on this node, for a local caller or a forwarding
// peer. Everything but replica-state needs this node to be the leader;
// otherwise it answers fwdNotLeader with the leader it knows of.
func (s *Store) handleLocal(ctx context.Context, req *fwdRequest) fwdResponse {
	if req.Kind == fwdReplicaState {
		return fwdResponse{replica: s.replicaReport()}
	}
	if s.raft.State() != raft.Leader {
		return s.notLeaderResponse()
	}
	switch req.Kind {
	case fwdPropose:
		return s.applyLocal(ctx, req)
	case fwdAddNonvoter, fwdAddVoter, fwdRemoveServer:
		return s.changeMembership(ctx, req)
	case fwdDescribeQuorum:
		return s.describeLocal(ctx, req)
	case fwdBrokerHeartbeat:
		return s.heartbeatLocal(ctx, req)
	}
	return fwdResponse{status: fwdFailed, err: fmt.Errorf("%s: unknown request %s: %w", req.Op, req.Kind, ErrInvalidArgument)}
}

func (s *Store) notLeaderResponse() fwdResponse {
	addr, id := s.raft.LeaderWithID()
	r := fwdResponse{status: fwdNotLeader, leaderID: -1}
	if n, err := strconv.ParseInt(string(id), 10, 32); err == nil && id != "" {
		r.leaderID, r.leaderAddr = int32(n), string(addr)
	}
	return r
}

// failure turns an error from Raft into an answer: a clean refusal
// (raft.ErrNotLeader: nothing was appended) becomes fwdNotLeader.
func (s *Store) failure(op string, err error) fwdResponse {
	if errors.Is(err, raft.ErrNotLeader) {
		return s.notLeaderResponse()
	}
	return fwdResponse{status: fwdFailed, err: s.raftError(op, err)}
}

func (s *Store) applyLocal(ctx context.Context, req *fwdRequest) fwdResponse {
	// The entry will be applied by every replica, and one it cannot decode
	// stops them all: refuse it here, while refusing is harmless.
	if _, err := decodeCommand(req.Command); err != nil {
		return fwdResponse{status: fwdFailed, err: fmt.Errorf("%s: the leader cannot decode the command (a newer binary?): %v: %w", req.Op, err, ErrInvalidArgument)}
	}
	var f raft.ApplyFuture
	resp, err := s.do(ctx, func() raft.Future { f = s.raft.Apply(req.Command, enqueueTimeout); return f })
	if err != nil {
		return s.failure(req.Op, err)
	}
	res, ok := resp.(applyResult)
	if !ok {
		return fwdResponse{status: fwdFailed, err: fmt.Errorf("%s: unexpected FSM response %T", req.Op, resp)}
	}
	return fwdResponse{result: res, err: res.err, index: f.Index()}
}

func (s *Store) configuration(ctx context.Context) (raft.Configuration, error) {
	var f raft.ConfigurationFuture
	if _, err := s.do(ctx, func() raft.Future { f = s.raft.GetConfiguration(); return f }); err != nil {
		return raft.Configuration{}, err
	}
	return f.Configuration(), nil
}

func (s *Store) changeMembership(ctx context.Context, req *fwdRequest) fwdResponse {
	conf, err := s.configuration(ctx)
	if err != nil {
		return s.failure(req.Op, err)
	}
	id, addr := serverID(req.ID), raft.ServerAddress(req.Addr)
	var cur *raft.Server
	for i := range conf.Servers {
		if conf.Servers[i].ID == id {
			cur = &conf.Servers[i]
		}
	}
	var op func() raft.Future
	switch req.Kind {
	case fwdAddNonvoter:
		if cur != nil && cur.Address == addr {
			return fwdResponse{} // already a member (a voter stays one)
		}
		if cur != nil && cur.Suffrage == raft.Voter {
			// hashicorp/raft would move the voter to the new address.
			return fwdResponse{status: fwdFailed, err: fmt.Errorf("%s: node %d is a voter at %s; a non-voter may not take its id: %w", req.Op, req.ID, cur.Address, ErrInvalidArgument)}
		}
		op = func() raft.Future { return s.raft.AddNonvoter(id, addr, 0, enqueueTimeout) }
	case fwdAddVoter:
		if cur != nil && cur.Address == addr && cur.Suffrage == raft.Voter {
			return fwdResponse{}
		}
		op = func() raft.Future { return s.raft.AddVoter(id, addr, 0, enqueueTimeout) }
	case fwdRemoveServer:
		if cur == nil {
			return fwdResponse{}
		}
		op = func() raft.Future { return s.raft.RemoveServer(id, 0, enqueueTimeout) }
	}
	var f raft.Future
	if _, err := s.do(ctx, func() raft.Future { f = op(); return f }); err != nil {
		return s.failure(req.Op, err)
	}
	s.log.Info("metadata quorum changed", "change", req.Kind.String(), "node", req.ID, "addr", req.Addr)
	var index uint64
	if idx, ok := f.(raft.IndexFuture); ok {
		index = idx.Index()
	}
	return fwdResponse{index: index}
}

// replicaReport is this node's own position, for the leader's
// DescribeQuorum.
func (s *Store) replicaReport() *replicaReport {
	r := &replicaReport{NodeID: s.cfg.NodeID, LastIndex: s.raft.LastIndex(), LastContactMs: -1}
	if s.raft.State() == raft.Leader {
		r.LastContactMs = s.q.now().UnixMilli()
	} else if lc := s.raft.LastContact(); !lc.IsZero() {
		r.LastContactMs = lc.UnixMilli()
	}
	return r
}

func (s *Store) describeLocal(ctx context.Context, req *fwdRequest) fwdResponse {
	conf, err := s.configuration(ctx)
	if err != nil {
		return s.failure(req.Op, err)
	}
	// Sampled before asking the replicas: one that has reached this index
	// by the time it answers was caught up at that time.
	leaderLast := s.raft.LastIndex()
	info := &QuorumInfo{
		LeaderID:      s.cfg.NodeID,
		LeaderEpoch:   int32(min(s.raft.CurrentTerm(), uint64(1<<31-1))),
		HighWatermark: int64(s.raft.CommitIndex()),
		Voters:        []ReplicaState{},
		Observers:     []ReplicaState{},
	}
	reports := make([]*replicaReport, len(conf.Servers))
	pollCtx, cancel := context.WithTimeout(ctx, replicaPollTimeout)
	var wg sync.WaitGroup
	for i, srv := range conf.Servers {
		if srv.ID == serverID(s.cfg.NodeID) {
			continue
		}
		wg.Go(func() {
			r, _, err := s.roundTrip(pollCtx, string(srv.Address), &fwdRequest{Kind: fwdReplicaState, Op: "replica state"})
			if err == nil && r.status == fwdOK && r.replica != nil && serverID(r.replica.NodeID) == srv.ID {
				reports[i] = r.replica
			}
		})
	}
	wg.Wait()
	cancel()

	nowMs := s.q.now().UnixMilli()
	s.q.mu.Lock()
	for i, srv := range conf.Servers {
		n, err := strconv.ParseInt(string(srv.ID), 10, 32)
		if err != nil {
			continue // not one of ours
		}
		id := int32(n)
		st := ReplicaState{ID: id, Addr: string(srv.Address), LogEndOffset: -1, LastFetchTimestamp: -1, LastCaughtUpTimestamp: -1}
		switch rep := reports[i]; {
		case id == s.cfg.NodeID:
			st.LogEndOffset = int64(s.raft.LastIndex())
			st.LastFetchTimestamp, st.LastCaughtUpTimestamp = nowMs, nowMs
		case rep != nil:
			st.LogEndOffset = int64(rep.LastIndex)
			st.LastFetchTimestamp = rep.LastContactMs
			if rep.LastIndex >= leaderLast && rep.LastContactMs >= 0 {
				s.q.caughtUp[id] = max(s.q.caughtUp[id], rep.LastContactMs)
			}
		}
		if t, ok := s.q.caughtUp[id]; ok && id != s.cfg.NodeID {
			st.LastCaughtUpTimestamp = t
		}
		if srv.Suffrage == raft.Voter {
			info.Voters = append(info.Voters, st)
		} else {
			info.Observers = append(info.Observers, st)
		}
	}
	s.q.mu.Unlock()
	byID := func(a, b ReplicaState) int { return int(a.ID) - int(b.ID) }
	slices.SortFunc(info.Voters, byID)
	slices.SortFunc(info.Observers, byID)
	return fwdResponse{quorum: info}
}

// join asks the leader to add this broker-only node as a non-voter, until
// it has (idempotent on the leader, so a restart asks again, which also
// updates a changed address). It tries each voter, following the leader
// hint of those that do not lead.
func (s *Store) join() {
	defer s.wg.Done()
	req := &fwdRequest{Kind: fwdAddNonvoter, Op: fmt.Sprintf("join as non-voter %d", s.cfg.NodeID), ID: s.cfg.NodeID, Addr: string(s.trans.LocalAddr())}
	backoff := 20 * time.Millisecond
	for {
		for _, v := range s.cfg.Voters {
			target := v.Addr
			for hops := 0; hops < 3 && target != ""; hops++ {
				ctx, cancel := context.WithTimeout(s.q.stopCtx, enqueueTimeout)
				r, _, err := s.roundTrip(ctx, target, req)
				cancel()
				switch {
				case s.q.stopCtx.Err() != nil:
					return
				case err != nil:
					s.log.Debug("metadata: join attempt failed", "voter", target, "err", err)
					target = ""
				case r.status == fwdNotLeader:
					target = r.leaderAddr
				case r.err != nil:
					s.log.Warn("metadata: the leader refused to add this node as a non-voter", "leader", target, "err", r.err)
					target = ""
				default:
					s.log.Info("metadata: joined the quorum as a non-voter", "leader", target, "addr", req.Addr)
					return
				}
			}
		}
		select {
		case <-s.q.stopCtx.Done():
			return
		case <-time.After(backoff):
			backoff = min(2*backoff, maxJoinBackoff)
		}
	}
}
