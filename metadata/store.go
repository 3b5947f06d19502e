package metadata

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/strata-broker/strata/metadata/internal/raftlog"
)

const (
	// enqueueTimeout bounds only the hand-over of a command to Raft's leader
	// loop (raft.Apply's timeout); once handed over, a command runs to its
	// end whatever the caller does. It is generous because giving up here
	// is the only way a write is refused for being slow.
	enqueueTimeout = 30 * time.Second
	// closeDrainTimeout is how long Close lets commands already handed to
	// Raft finish before it shuts Raft down.
	closeDrainTimeout = 5 * time.Second
	// boltOpenTimeout turns "another process holds raft.db" into an error
	// instead of a hang (bbolt takes an flock).
	boltOpenTimeout   = time.Second
	snapshotsRetained = 2
	logCacheSize      = 512
)

// Store is the cluster metadata: a Raft node whose FSM holds brokers, topics,
// partitions, remote manifests and producer id blocks. Writes go through the Raft log; reads are
// served from this node's applied state.
type Store struct {
	cfg  Config
	log  *slog.Logger
	fsm  *fsm
	raft *raft.Raft
	bolt *raftboltdb.BoltStore
	// trans is closed by Raft on Shutdown; kept to close a TCP transport's
	// pooled outbound connections, which its Close leaves open.
	trans closableTransport
	// q: forwarding to the leader, membership, DescribeQuorum (quorum.go).
	q quorumState
	// hb: broker heartbeats and the controller loop (heartbeat.go).
	hb heartbeatState

	observations chan raft.Observation
	observer     *raft.Observer

	inflight tracker       // goroutines blocked on Raft futures
	closing  chan struct{} // closed once in-flight commands drained, before Raft stops
	wg       sync.WaitGroup

	ready     chan struct{} // closed once the node is ready (see WaitReady)
	readyOnce sync.Once

	closeOnce sync.Once
	closeErr  error
}

// Open opens (or creates) the metadata store in cfg.Dir and starts Raft. A
// fresh directory is bootstrapped with cfg's voters; an existing one resumes
// from its snapshot and log. Open does not wait for a leader: call WaitReady.
func Open(cfg Config) (_ *Store, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// The caller names the component (the broker passes component=metadata);
	// the node id tells stores apart when several share a process.
	logger = logger.With("node", cfg.NodeID)
	hl := raftlog.New(logger).Named("raft")

	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("open metadata dir: %w", err)
	}
	dbPath := filepath.Join(cfg.Dir, "raft.db")
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path:        dbPath,
		BoltOptions: &bbolt.Options{Timeout: boltOpenTimeout},
		// NoSync stays false: a vote or log entry acknowledged to peers
		// must survive a crash.
	})
	if err != nil {
		return nil, fmt.Errorf("open metadata log %s (is another process using it?): %w", dbPath, err)
	}
	defer func() {
		if err != nil {
			_ = bolt.Close()
		}
	}()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, snapshotsRetained, hl.Named("snapshot"))
	if err != nil {
		return nil, fmt.Errorf("open metadata snapshots in %s: %w", cfg.Dir, err)
	}
	logs, err := raft.NewLogCache(logCacheSize, bolt)
	if err != nil {
		return nil, fmt.Errorf("metadata log cache: %w", err)
	}
	trans, mux, err := newTransport(cfg, hl.Named("transport"))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = trans.Close()
		}
	}()
	rc := raftConfig(cfg, hl)

	existing, err := raft.HasExistingState(logs, bolt, snaps)
	if err != nil {
		return nil, fmt.Errorf("inspect metadata state in %s: %w", cfg.Dir, err)
	}
	// Every voter of a fresh cluster bootstraps the same configuration
	// (the addresses exactly as configured: Raft compares the entries);
	// whichever wins the first election commits it. A node that is not a
	// voter starts empty and receives the configuration from the leader
	// once it has joined.
	if !existing && cfg.isVoter() {
		conf := raft.Configuration{}
		for _, v := range cfg.voters() {
			addr := raft.ServerAddress(v.Addr)
			if v.Addr == "" {
				addr = trans.LocalAddr()
			}
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: serverID(v.ID), Address: addr})
		}
		if err := raft.BootstrapCluster(rc, logs, bolt, snaps, trans, conf); err != nil {
			return nil, fmt.Errorf("bootstrap metadata cluster: %w", err)
		}
	}

	f := newFSM()
	r, err := raft.NewRaft(rc, f, logs, bolt, snaps, trans)
	if err != nil {
		return nil, fmt.Errorf("start metadata raft: %w", err)
	}
	s := &Store{
		cfg:          cfg,
		log:          logger,
		fsm:          f,
		raft:         r,
		bolt:         bolt,
		trans:        trans,
		observations: make(chan raft.Observation, 1),
		closing:      make(chan struct{}),
		ready:        make(chan struct{}),
		q:            newQuorumState(mux),
		hb:           newHeartbeatState(time.Now()),
	}
	s.observer = raft.NewObserver(s.observations, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(s.observer)
	s.wg.Add(1)
	go s.run()
	if mux != nil {
		mux.start(s.serveForward)
	}
	if !cfg.isVoter() {
		s.wg.Add(1)
		go s.join()
	}
	if cfg.roles().IsController() {
		s.startController()
	}
	logger.Info("metadata store opened", "dir", cfg.Dir, "raft_addr", trans.LocalAddr(), "bootstrapped", !existing && cfg.isVoter(), "roles", cfg.roles().String())
	return s, nil
}

func raftConfig(cfg Config, hl hclog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = serverID(cfg.NodeID)
	rc.Logger = hl
	// Metadata entries are small; snapshot every few thousand of them and
	// keep as many behind the snapshot so a briefly absent voter catches up
	// from the log rather than by a snapshot transfer.
	rc.SnapshotThreshold = 4096
	rc.TrailingLogs = 4096
	rc.SnapshotInterval = 60 * time.Second
	if len(cfg.voters()) == 1 {
		// Nobody else can be leader: elect ourselves fast at start and
		// restart. Multi-voter clusters keep Raft's defaults, which
		// tolerate GC pauses and slow networks.
		rc.HeartbeatTimeout = 100 * time.Millisecond
		rc.ElectionTimeout = 100 * time.Millisecond
		rc.LeaderLeaseTimeout = 100 * time.Millisecond
	}
	if cfg.tune != nil {
		cfg.tune(rc)
	}
	return rc
}

func serverID(id int32) raft.ServerID {
	return raft.ServerID(strconv.FormatInt(int64(id), 10))
}

// run owns readiness: on gaining leadership it waits until every earlier
// entry is applied (a barrier) and, on a fresh cluster, proposes the cluster
// id; a follower is ready once it knows a leader and the cluster id.
func (s *Store) run() {
	defer s.wg.Done()
	leaderCh := s.raft.LeaderCh()
	for {
		var watch <-chan struct{}
		select {
		case <-s.ready:
		default:
			s.checkFollowerReady()
			watch = s.fsm.watch()
		}
		select {
		case <-s.closing:
			return
		case isLeader := <-leaderCh:
			if isLeader {
				s.leaderStarted()
			}
		case <-s.observations:
		case <-watch:
		}
	}
}

func (s *Store) leaderStarted() {
	ctx := context.Background() // bounded by Close through do()
	if _, err := s.do(ctx, func() raft.Future { return s.raft.Barrier(enqueueTimeout) }); err != nil {
		// Losing leadership or closing meanwhile is routine; the next
		// LeaderCh signal starts over.
		lvl := slog.LevelWarn
		if errors.Is(err, ErrClosed) || errors.Is(err, raft.ErrRaftShutdown) ||
			errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrNotLeader) {
			lvl = slog.LevelDebug
		}
		s.log.Log(ctx, lvl, "metadata leader barrier failed", "err", err)
		return
	}
	if s.fsm.clusterID() == "" {
		id, err := newClusterID()
		if err != nil {
			s.log.Error("metadata: cannot generate a cluster id", "err", err)
			return
		}
		res, err := s.propose(ctx, "init cluster", &initClusterV1{ClusterID: id})
		if err != nil {
			if !errors.Is(err, ErrClosed) {
				s.log.Warn("metadata: cluster id not initialized", "err", err)
			}
			return
		}
		s.log.Info("cluster initialized", "cluster_id", res.clusterID)
	}
	s.markReady()
}

func (s *Store) checkFollowerReady() {
	if s.raft.State() == raft.Leader || s.fsm.clusterID() == "" {
		return
	}
	if _, ok := s.LeaderID(); ok {
		s.markReady()
	}
}

func (s *Store) markReady() {
	s.readyOnce.Do(func() {
		close(s.ready)
		leader, _ := s.LeaderID()
		s.log.Info("metadata ready", "cluster_id", s.fsm.clusterID(), "leader", leader)
	})
}

// WaitReady blocks until this node has become ready once: it is the leader
// and has applied the whole log (and the cluster id exists), or it is a
// follower that knows the leader and the cluster id.
func (s *Store) WaitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	default:
	}
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for metadata: %w", ctx.Err())
	case <-s.closing:
		return ErrClosed
	}
}

// LeaderID returns the node id of the current Raft leader, if one is known.
func (s *Store) LeaderID() (int32, bool) {
	_, id := s.raft.LeaderWithID()
	if id == "" {
		return -1, false
	}
	n, err := strconv.ParseInt(string(id), 10, 32)
	if err != nil {
		return -1, false
	}
	return int32(n), true
}

// Close stops the store: commands already handed to Raft get a few seconds
// to finish, then Raft shuts down and the log is closed. Idempotent; every
// call returns the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Store) close() error {
	drained := s.inflight.close()
	select {
	case <-drained:
	case <-time.After(closeDrainTimeout):
		s.log.Warn("metadata: closing with commands still in flight", "count", s.inflight.count())
	}
	close(s.closing)
	s.q.stop()
	s.raft.DeregisterObserver(s.observer)
	// Shutdown waits for Raft's goroutines and closes the transport.
	err := s.raft.Shutdown().Error()
	if nt, ok := s.trans.(*raft.NetworkTransport); ok {
		nt.CloseStreams()
	}
	s.wg.Wait()
	if berr := s.bolt.Close(); berr != nil {
		err = errors.Join(err, fmt.Errorf("close metadata log: %w", berr))
	}
	s.log.Info("metadata store closed")
	return err
}

// tracker counts goroutines blocked on Raft futures. Close lets them finish
// before it stops Raft because hashicorp/raft does not resolve a future
// whose entry is still queued for the FSM at shutdown: a waiter on it would
// never return.
type tracker struct {
	mu     sync.Mutex
	closed bool
	n      int
	idle   chan struct{} // made by close; closed when n reaches 0
}

func (t *tracker) add() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.n++
	return true
}

func (t *tracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
}

func (t *tracker) close() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	ch := make(chan struct{})
	if t.n == 0 {
		close(ch)
	} else {
		t.idle = ch
	}
	return ch
}

func (t *tracker) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

func (t *tracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

type futureResult struct {
	resp any
	err  error
}

// do starts a Raft operation on a goroutine and waits for its future, for
// ctx, or for Close. The operation itself never sees ctx: once Raft has a
// command it must run to the end (a command abandoned half way, applied on
// some replicas and not others, is exactly the divergence Raft prevents), so
// a caller that gives up only stops waiting. The goroutine finishes when
// Raft resolves the future; Close waits for it.
func (s *Store) do(ctx context.Context, op func() raft.Future) (any, error) {
	if !s.inflight.add() {
		return nil, ErrClosed
	}
	done := make(chan futureResult, 1)
	go func() {
		defer s.inflight.done()
		f := op()
		var r futureResult
		if r.err = f.Error(); r.err == nil {
			if af, ok := f.(raft.ApplyFuture); ok {
				r.resp = af.Response()
			}
		}
		done <- r
	}()
	select {
	case r := <-done:
		return r.resp, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.closing:
		select {
		case r := <-done:
			return r.resp, r.err
		default:
			return nil, ErrClosed
		}
	}
}

// propose (quorum.go) sends commands to the leader, forwarding when needed.

func (s *Store) notLeader(op string) error {
	if id, ok := s.LeaderID(); ok {
		return fmt.Errorf("%s: %w (leader is node %d)", op, ErrNotLeader, id)
	}
	return fmt.Errorf("%s: %w (no leader known)", op, ErrNotLeader)
}

func (s *Store) raftError(op string, err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return s.notLeader(op)
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%s: leadership lost before the command committed, it may still be applied: %w", op, ErrNotLeader)
	case errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, ErrClosed):
		return fmt.Errorf("%s: %w", op, ErrClosed)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: stopped waiting, the command may still be applied: %w", op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Writes. Each is one Raft command; FSM rejections (ErrTopicExists, ...)
// come back as the error. On ErrNotLeader nothing was applied, except when
// the message says leadership was lost mid-flight.

// RegisterBroker records (or updates) a broker's endpoint.
func (s *Store) RegisterBroker(ctx context.Context, b Broker) error {
	_, err := s.propose(ctx, fmt.Sprintf("register broker %d", b.ID), &registerBrokerV1{
		Broker: brokerRec{ID: b.ID, Host: b.Host, Port: b.Port, Rack: b.Rack},
	})
	return err
}

// CreateTopic creates t. A zero t.ID gets a random id (read it back with
// Topic). A partition with no ISR gets ISR = Replicas. Leader epochs and
// partition epochs start at 0 whatever t says. Name, id and partition
// numbering are checked by the FSM (ErrTopicExists, ErrInvalidTopic,
// ErrInvalidPartitions); topic configs are stored as given: validating them
// is the broker's job.
func (s *Store) CreateTopic(ctx context.Context, t Topic) error {
	if t.ID == uuid.Nil {
		id, err := newID()
		if err != nil {
			return fmt.Errorf("create topic %q: %w", t.Name, err)
		}
		t.ID = id
	}
	_, err := s.propose(ctx, fmt.Sprintf("create topic %q", t.Name), &createTopicV1{Topic: topicRec{
		Name:       t.Name,
		ID:         t.ID,
		Internal:   t.Internal,
		Configs:    t.Configs,
		Partitions: partitionRecs(t.Partitions),
	}})
	return err
}

// DeleteTopic removes the topic with this id (ErrUnknownTopic if none).
func (s *Store) DeleteTopic(ctx context.Context, id uuid.UUID) error {
	_, err := s.propose(ctx, "delete topic "+id.String(), &deleteTopicV1{ID: id})
	return err
}

// CreatePartitions appends partitions to a topic; their indexes must follow
// the existing ones densely. As in CreateTopic, a missing ISR defaults to the
// replicas.
func (s *Store) CreatePartitions(ctx context.Context, id uuid.UUID, add []Partition) error {
	_, err := s.propose(ctx, "create partitions "+id.String(), &createPartitionsV1{
		TopicID:    id,
		Partitions: partitionRecs(add),
	})
	return err
}

// AlterTopicConfigs sets and deletes topic config overrides in one step. A
// name may not be both set and deleted.
func (s *Store) AlterTopicConfigs(ctx context.Context, id uuid.UUID, set map[string]string, del []string) error {
	_, err := s.propose(ctx, "alter configs "+id.String(), &alterTopicConfigsV1{TopicID: id, Set: set, Delete: del})
	return err
}

// AllocateProducerIDs reserves n consecutive producer ids and returns the
// first. Blocks never overlap, across restarts and leader changes.
func (s *Store) AllocateProducerIDs(ctx context.Context, n int64) (int64, error) {
	res, err := s.propose(ctx, fmt.Sprintf("allocate %d producer ids", n), &allocateProducerIDsV1{Count: n})
	if err != nil {
		return 0, err
	}
	return res.producerID, nil
}

func partitionRecs(ps []Partition) []partitionRec {
	out := make([]partitionRec, len(ps))
	for i, p := range ps {
		isr := p.ISR
		if len(isr) == 0 {
			isr = p.Replicas
		}
		// Epochs are left out: the FSM starts them at 0.
		out[i] = partitionRec{
			Index:    p.Index,
			Replicas: slices.Clone(p.Replicas),
			ISR:      slices.Clone(isr),
			Leader:   p.Leader,
		}
	}
	return out
}

// Reads: from this node's applied state, safe for concurrent use; results
// are copies the caller owns. On a follower they may lag the leader.

// ClusterID returns the cluster id ("" until the first leader set it).
func (s *Store) ClusterID() string { return s.fsm.clusterID() }

// Brokers returns the registered brokers by id.
func (s *Store) Brokers() []Broker { return s.fsm.brokers() }

// Topics returns all topics by name.
func (s *Store) Topics() []Topic { return s.fsm.topics() }

// Topic returns the topic with this name.
func (s *Store) Topic(name string) (Topic, bool) { return s.fsm.topic(name) }

// TopicByID returns the topic with this id.
func (s *Store) TopicByID(id uuid.UUID) (Topic, bool) { return s.fsm.topicByID(id) }

// Watch returns a channel closed at the next applied change (or snapshot
// restore). Call it again for the one after. Take the channel before reading
// the state, so that a change landing between the read and the wait is not
// missed. Close does not close it (a loop re-arming on a closed channel
// would spin): waiters select on their own shutdown signal too.
func (s *Store) Watch() <-chan struct{} { return s.fsm.watch() }
