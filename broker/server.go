package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/strata-broker/strata/broker/internal/acl"
	"github.com/strata-broker/strata/broker/internal/groups"
	"github.com/strata-broker/strata/broker/internal/quota"
	"github.com/strata-broker/strata/broker/internal/sasl"
	"github.com/strata-broker/strata/broker/internal/txn"
	"github.com/strata-broker/strata/metadata"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/objstore"
)

// Server is one Strata broker process: the Kafka listener, the partitions
// it leads, the group coordinator and its view of the metadata quorum.
type Server struct {
	cfg Config
	log *slog.Logger

	lockFile  *os.File
	meta      *metadata.Store
	listeners []*listener  // as configured; [0] is registered in metadata and is Addr()
	tls       *tlsMaterial // keystore/truststore; nil when nothing uses TLS
	parts     *partitions
	fetchers  *fetchers // replica fetchers, one per leader this broker follows
	gl        groupLoads
	isrPoke   chan struct{}
	// incarnation identifies this process in the controller's broker
	// registry (KRaft's incarnation id); new at every start.
	incarnation    uuid.UUID
	interBrokerTLS *tls.Config // client side of an SSL inter-broker listener; nil for PLAINTEXT
	controllerOnly bool        // process-roles=controller: metadata quorum only
	groups         *groups.Coordinator
	sessions       *fetchSessions
	pids           *producerIDs
	offsets        *offsetsTopic
	txns           *txn.Coordinator // transaction coordinator over txnLog
	txnLog         *txnTopic
	tier           *tiering.Manager // remote tier; never nil once New returns
	authz          *acl.Authorizer  // nil: no authorizer configured, everything allowed
	quotas         *quota.Manager   // client quotas; never nil once New returns
	saslCfg        *sasl.Config     // mechanisms and credential lookups for SASL listeners
	secMetrics     *securityMetrics
	connLimits     *connLimits
	clock          func() time.Time // nil = time.Now; tests move time

	secMu          sync.Mutex // guards secVersion, secLoaded (refreshSecurity)
	secVersion     uint64
	secLoaded      bool
	objectStoreURL string

	ctx    context.Context // server lifetime; cancelled at shutdown
	cancel context.CancelFunc
	wg     sync.WaitGroup // background loops and connections

	connsMu sync.Mutex // guards conns
	conns   map[*clientConn]struct{}

	fetchWaiters   atomic.Int64 // long-polling fetches (Kafka's fetch purgatory size)
	produceWaiters atomic.Int64 // produce requests waiting for fsync or the ISR (Kafka's produce purgatory size)
	ready          atomic.Bool  // quorum joined, partitions loaded: /readyz
	metrics        *brokerMetrics
	adminLn        net.Listener
	adminSrv       *http.Server

	closeOnce sync.Once
	closeErr  error
}

// New opens the data directory, the metadata quorum and every partition
// log (running crash recovery), and binds the Kafka listener. Serving
// starts with Run.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, conns: make(map[*clientConn]struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	m, err := newBrokerMetrics(cfg)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("metrics: %w", err)
	}
	s.metrics = m

	if err := s.openDataDir(); err != nil {
		s.cancel()
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.closeResources()
		}
	}()

	if err := s.openTLS(); err != nil {
		return nil, err
	}

	var raftTLS *tls.Config
	if cfg.ControllerTLS && cfg.ControllerAddr != "" {
		if raftTLS, err = s.controllerTLS(); err != nil {
			return nil, err
		}
	}
	mc, err := s.metadataConfig()
	if err != nil {
		return nil, err
	}
	mc.Dir = filepath.Join(cfg.DataDir, "meta")
	mc.TLS = raftTLS
	mc.Logger = s.log.With("component", "metadata")
	meta, err := metadata.Open(mc)
	if err != nil {
		return nil, fmt.Errorf("open metadata quorum: %w", err)
	}
	s.meta = meta
	readyCtx, cancel := context.WithTimeout(s.ctx, 60*time.Second)
	defer cancel()
	if err := meta.WaitReady(readyCtx); err != nil {
		return nil, fmt.Errorf("wait for metadata quorum: %w", err)
	}

	if !mc.Roles.IsBroker() {
		// A controller-only node: a voter of the metadata quorum (the
		// active controller when it leads), no Kafka listeners, no logs.
		s.controllerOnly = true
		if err := s.serveAdmin(); err != nil {
			return nil, err
		}
		ok = true
		s.log.Info("controller started", "node_id", cfg.NodeID, "controller_listen", cfg.ControllerAddr, "cluster_id", meta.ClusterID(), "data_dir", cfg.DataDir)
		return s, nil
	}
	if err := s.openListeners(); err != nil {
		return nil, err
	}
	if err := s.openInterBroker(); err != nil {
		return nil, err
	}
	first := s.listeners[0]
	if err := s.register(readyCtx); err != nil {
		return nil, err
	}

	if err := s.openTier(readyCtx); err != nil {
		return nil, err
	}
	if err := s.openSecurity(readyCtx); err != nil {
		return nil, err
	}
	s.sessions = newFetchSessions(int(cfg.FetchMaxSessions))
	s.parts = newPartitions(s)
	s.fetchers = newFetchers(s)
	s.isrPoke = make(chan struct{}, 1)
	s.pids = &producerIDs{meta: meta}
	s.offsets = &offsetsTopic{s: s}
	s.groups = groups.New(groups.Config{
		Partitions:            cfg.OffsetsTopicNumPartitions,
		Log:                   s.offsets,
		Logger:                s.log.With("component", "groups"),
		MinSessionTimeout:     time.Duration(cfg.GroupMinSessionTimeoutMs) * time.Millisecond,
		MaxSessionTimeout:     time.Duration(cfg.GroupMaxSessionTimeoutMs) * time.Millisecond,
		InitialRebalanceDelay: time.Duration(cfg.GroupInitialRebalanceDelayMs) * time.Millisecond,
		OffsetsRetention:      time.Duration(cfg.OffsetsRetentionMinutes) * time.Minute,
	})
	s.txnLog = &txnTopic{s: s}
	s.txns = txn.New(txn.Config{
		Partitions:            s.txnStatePartitions(),
		OffsetsPartitions:     cfg.OffsetsTopicNumPartitions,
		Log:                   s.txnLog,
		ProducerIDs:           s.pids,
		Markers:               s.txnLog,
		Logger:                s.log.With("component", "txn"),
		IDExpiration:          time.Duration(cfg.TransactionalIDExpirationMs) * time.Millisecond,
		MaxTimeout:            time.Duration(cfg.TransactionMaxTimeoutMs) * time.Millisecond,
		AbortTimedOutInterval: time.Duration(cfg.TransactionAbortCheckIntervalMs) * time.Millisecond,
	})
	// Leaderships come with being unfenced: wait for it, so the first
	// clients find this broker leading what it should.
	if err := s.awaitUnfenced(readyCtx); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go s.heartbeatLoop()
	// Opens the logs this broker hosts and takes its roles; leading a
	// partition of __consumer_offsets or __transaction_state loads it into
	// its coordinator in the background.
	if err := s.parts.reconcile(); err != nil {
		return nil, fmt.Errorf("open partition logs: %w", err)
	}
	if err := s.awaitGroupsLoaded(readyCtx); err != nil {
		return nil, err
	}
	if err := s.serveAdmin(); err != nil {
		return nil, err
	}
	ok = true
	s.log.Info("broker started", "node_id", cfg.NodeID, "listen", first.ln.Addr().String(),
		"advertised", first.advertised(),
		"cluster_id", meta.ClusterID(), "data_dir", cfg.DataDir)
	return s, nil
}

// serveAdmin registers the gauges, starts the admin listener and marks the
// node ready (/readyz): the last step of New.
func (s *Server) serveAdmin() error {
	if err := s.registerGauges(); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := s.startAdmin(); err != nil {
		return err
	}
	s.ready.Store(true)
	return nil
}

// openDataDir creates the data directory and takes an exclusive lock on
// it, so two brokers never write the same logs.
func (s *Server) openDataDir() error {
	dir := s.cfg.DataDir
	for _, d := range []string{dir, filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return &ConfigError{Key: "data-dir", Msg: fmt.Sprintf("cannot use %s: %v", dir, err)}
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return &ConfigError{Key: "data-dir", Msg: fmt.Sprintf("cannot use %s: %v", dir, err)}
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return &ConfigError{Key: "data-dir", Msg: fmt.Sprintf("%s is in use by another process: %v", dir, err)}
	}
	s.lockFile = f
	return nil
}

// openTier opens the object store and the tiering manager. The embedded
// default is a directory next to the logs, so a single node tiers out of
// the box; production points object-store at a bucket.
func (s *Server) openTier(ctx context.Context) error {
	cfg := s.cfg
	url := cfg.ObjectStore
	if url == "" {
		abs, err := filepath.Abs(filepath.Join(cfg.DataDir, "objects"))
		if err != nil {
			return &ConfigError{Key: "data-dir", Msg: err.Error()}
		}
		url = "file://" + abs
	}
	store, err := tiering.Open(ctx, url, tiering.S3Options{
		Endpoint: cfg.S3Endpoint, Region: cfg.S3Region, PathStyle: cfg.S3PathStyle,
		AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey,
	})
	if err != nil {
		return &ConfigError{Key: "object-store", Msg: err.Error()}
	}
	// Tracing outermost, so the span covers the whole call and its context
	// reaches the backend (s3store sends it on as traceparent).
	store = objstore.InstrumentTracing(objstore.Instrument(store, s.metrics.meter), s.metrics.tracer)
	cacheDir := cfg.RemoteCacheDir
	if cacheDir == "" {
		cacheDir = filepath.Join(cfg.DataDir, "remote-cache")
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return &ConfigError{Key: "remote-cache-dir", Msg: err.Error()}
	}
	tier, err := tiering.NewManager(tiering.Config{
		ClusterID:         s.meta.ClusterID(),
		Store:             store,
		Manifests:         manifestStore{s.meta},
		CacheDir:          cacheDir,
		CacheBytes:        cfg.RemoteCacheBytes,
		UploadConcurrency: int(cfg.RemoteCopyThreads),
		UploadBytesPerSec: cfg.RemoteCopyMaxBytesPerSec,
		OrphanGrace:       time.Duration(cfg.RemoteOrphanGraceMs) * time.Millisecond,
		Logger:            s.log,
		Meter:             s.metrics.meter,
	})
	if err != nil {
		return fmt.Errorf("tiering: %w", err)
	}
	s.tier = tier
	s.objectStoreURL = url
	s.log.Info("object store opened", "url", url, "cache_dir", cacheDir, "cache_bytes", cfg.RemoteCacheBytes)
	return nil
}

// Addr is the bound address of the first Kafka listener; nil on a
// controller-only node.
func (s *Server) Addr() net.Addr {
	if len(s.listeners) == 0 {
		return nil
	}
	return s.listeners[0].ln.Addr()
}

// ClusterID is the id of the cluster this broker belongs to.
func (s *Server) ClusterID() string { return s.meta.ClusterID() }

// Run serves Kafka clients until ctx is cancelled, then shuts down:
// it stops accepting, lets in-flight requests finish (bounded by
// ShutdownTimeout), syncs and closes every log.
func (s *Server) Run(ctx context.Context) error {
	if s.controllerOnly {
		select {
		case <-ctx.Done():
		case <-s.ctx.Done():
		}
		return s.Close()
	}
	s.wg.Add(4 + len(s.listeners))
	go func() {
		defer s.wg.Done()
		s.tier.Run(s.ctx)
	}()
	for _, l := range s.listeners {
		go s.acceptLoop(l)
	}
	go s.reconcileLoop()
	go s.retentionLoop()
	go s.isrLoop()
	select {
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	return s.Close()
}

// Close stops the server; it is idempotent and safe to call without Run.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.log.Info("broker shutting down")
		s.controlledShutdown()
		s.cancel()
		s.ready.Store(false)
		for _, l := range s.listeners {
			l.ln.Close()
		}
		if s.adminSrv != nil {
			s.adminSrv.Close()
		}
		s.connsMu.Lock()
		for c := range s.conns {
			c.shutdown()
		}
		s.connsMu.Unlock()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(s.cfg.ShutdownTimeout):
			s.log.Warn("shutdown timeout: closing logs with requests still in flight")
		}
		s.closeErr = s.closeResources()
		s.log.Info("broker stopped")
	})
	return s.closeErr
}

func (s *Server) closeResources() error {
	var errs []error
	s.cancel()
	s.ready.Store(false)
	if s.adminSrv != nil {
		s.adminSrv.Close()
	}
	if s.txns != nil {
		s.txns.Close() // first: its marker writes reach the group coordinator
	}
	if s.groups != nil {
		s.groups.Close()
	}
	s.closeSecurity()
	for _, l := range s.listeners {
		l.ln.Close()
	}
	if s.parts != nil {
		errs = append(errs, s.parts.closeAll())
	}
	if s.meta != nil {
		errs = append(errs, s.meta.Close())
	}
	if s.metrics != nil {
		errs = append(errs, s.metrics.shutdown(s.cfg.ShutdownTimeout))
	}
	if s.lockFile != nil {
		s.lockFile.Close()
	}
	return errors.Join(errs...)
}

// reconcileLoop opens and deletes partition logs as committed metadata
// changes. Handlers that change metadata also reconcile synchronously, so
// this loop matters for changes made elsewhere (other controllers later).
func (s *Server) reconcileLoop() {
	defer s.wg.Done()
	for {
		ch := s.meta.Watch()
		select {
		case <-s.ctx.Done():
			return
		case <-ch:
		}
		if err := s.parts.reconcile(); err != nil && s.ctx.Err() == nil {
			s.log.Error("reconcile partitions with metadata", "err", err)
		}
		s.refreshSecurity()
	}
}

func (s *Server) retentionLoop() {
	defer s.wg.Done()
	interval := time.Duration(s.cfg.LogRetentionCheckIntervalMs) * time.Millisecond
	// segment.ms rolling and small retention settings need a finer tick
	// than Kafka's 5-minute default to be useful in tests and demos.
	tick := time.NewTicker(min(interval, 10*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
			s.parts.enforceRetention()
		}
	}
}
