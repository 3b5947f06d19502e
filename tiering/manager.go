package tiering

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"golang.org/x/time/rate"

	"github.com/strata-broker/strata/storage"
)

// Manager errors.
var (
	// ErrCorruptRemote: a remote object's bytes fail their checks (batch
	// CRC, framing, offsets, sizes against the manifest). Nothing of it is
	// cached or returned.
	ErrCorruptRemote = errors.New("tiering: corrupt remote segment")
	// ErrClosed: the Manager's Run has returned.
	ErrClosed = errors.New("tiering: manager closed")
)

// Config configures a Manager. Store, Manifests, ClusterID and CacheDir are
// required.
type Config struct {
	ClusterID string // first element of every key; no '/'
	Store     ObjectStore
	Manifests ManifestStore
	// CacheDir holds downloaded chunks of remote segments. Files this
	// package names (*.chunk) are removed at NewManager; nothing else there
	// is touched.
	CacheDir   string
	CacheBytes int64 // bound of the chunk cache; <= 0: 1 GiB
	// UploadConcurrency bounds segment uploads in flight across all
	// partitions (<= 0: 4). UploadBytesPerSec bounds their combined rate
	// (<= 0: unlimited).
	UploadConcurrency int
	UploadBytesPerSec int64
	Logger            *slog.Logger
	Meter             metric.Meter // nil: no metrics
	Now               func() time.Time
	// OrphanGrace is how old an object that no manifest references must be
	// before the orphan sweep deletes it (<= 0: 10 minutes). It must exceed
	// the longest time between an upload's first Put and its manifest commit
	// on another broker (this one knows its own uploads in flight).
	OrphanGrace time.Duration
}

// tuning holds the knobs tests turn; NewManager sets the production values.
type tuning struct {
	scanInterval      time.Duration // how often partitions are checked for sealed segments
	retentionInterval time.Duration
	sweepInterval     time.Duration
	backoffBase       time.Duration
	backoffMax        time.Duration
	chunkBytes        int64 // target size of a download chunk
	readAhead         int   // chunks prefetched after a sequential read
	prefetchMax       int   // prefetches in flight
	downloadTimeout   time.Duration
	indexEntries      int // remote offset indexes kept in memory
	txnEntries        int // aborted transaction entries kept in memory
	minTimeout        time.Duration
}

func defaultTuning() tuning {
	return tuning{
		scanInterval:      time.Second,
		retentionInterval: 30 * time.Second,
		sweepInterval:     5 * time.Minute,
		backoffBase:       200 * time.Millisecond,
		backoffMax:        30 * time.Second,
		chunkBytes:        4 << 20,
		readAhead:         2,
		prefetchMax:       16,
		downloadTimeout:   2 * time.Minute,
		indexEntries:      4096,
		txnEntries:        1 << 20, // 32 bytes each
		minTimeout:        2 * time.Minute,
	}
}

// tuneForGrace sweeps at least twice per grace period, so a short grace
// (an operator's choice, or a test's) is honoured within 1.5 graces.
func tuneForGrace(t tuning, grace time.Duration) tuning {
	t.sweepInterval = min(t.sweepInterval, max(grace/2, time.Second))
	return t
}

// PartitionConfig is the tiering part of a topic's configuration.
// RetentionMs/RetentionBytes (-1 unlimited) span both tiers and are applied
// here. LocalRetention* are applied by the storage log itself
// (storage.Config) and are kept for reference only.
type PartitionConfig struct {
	RemoteEnabled                                                      bool
	RetentionMs, RetentionBytes, LocalRetentionMs, LocalRetentionBytes int64
}

type topicPartition struct {
	id uuid.UUID
	p  int32
}

// partState is the Manager's state for one partition it uploads.
type partState struct {
	tp     topicPartition
	topic  string
	logger *slog.Logger
	ctx    context.Context // ends at RemovePartition or when Run returns
	cancel context.CancelFunc

	// commitMu serializes the changes of this partition's manifest and the
	// deletions that follow them: an upload's commit, retention, delete
	// records, delete topic. Held across store and manifest calls.
	commitMu sync.Mutex

	mu        sync.Mutex // guards the fields below
	log       *storage.Log
	cfg       PartitionConfig
	removed   bool
	busy      bool          // an upload job runs
	jobDone   chan struct{} // closed when the running job ends
	retryAt   time.Time     // after a failure: no job before
	failures  int
	pending   *pendingUpload // objects put, not yet committed
	copyDirty bool           // the bucket copy of the manifest is stale
	// retired: upload ids that remote compaction replaced, and when. The
	// orphan sweep keeps their objects for OrphanGrace after that, for
	// readers still holding the manifest from before the swap.
	retired map[string]time.Time
}

func (p *partState) state() (*storage.Log, PartitionConfig, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log, p.cfg, p.removed
}

// Manager moves sealed segments of the partitions it is given to the
// object store, applies remote retention, sweeps orphans and serves reads
// of the remote tier through an on-disk cache. One per broker.
type Manager struct {
	cfg    Config
	tune   tuning
	logger *slog.Logger
	now    func() time.Time

	limiter *rate.Limiter // nil: unlimited
	sem     chan struct{} // upload slots
	kick    chan struct{} // wakes the upload scheduler

	mu    sync.Mutex // guards parts
	parts map[topicPartition]*partState

	// Lifecycle: every goroutine is started by spawn and waited for by Run.
	lifeMu   sync.Mutex // guards closed and wg.Add
	closed   bool
	wg       sync.WaitGroup
	bgCtx    context.Context // ends when Run returns; parent of detached work
	bgCancel context.CancelFunc
	ran      atomic.Bool

	cache    *diskCache
	idx      *indexCache
	txns     *txnIndexCache
	flights  flightGroup
	prefetch chan struct{} // prefetch slots
	readers  sync.Map      // topicPartition -> *readState

	met metrics
}

// NewManager checks cfg and prepares the cache directory. Nothing runs
// until Run.
func NewManager(cfg Config) (*Manager, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("tiering: Config.Store is required")
	case cfg.Manifests == nil:
		return nil, errors.New("tiering: Config.Manifests is required")
	case cfg.ClusterID == "" || strings.ContainsAny(cfg.ClusterID, "/\\\x00") || cfg.ClusterID == "." || cfg.ClusterID == "..":
		return nil, fmt.Errorf("tiering: invalid Config.ClusterID %q", cfg.ClusterID)
	case cfg.CacheDir == "":
		return nil, errors.New("tiering: Config.CacheDir is required")
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = 1 << 30
	}
	if cfg.UploadConcurrency <= 0 {
		cfg.UploadConcurrency = 4
	}
	if cfg.OrphanGrace <= 0 {
		cfg.OrphanGrace = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Meter == nil {
		cfg.Meter = noop.NewMeterProvider().Meter("tiering")
	}
	if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("tiering: cache dir: %w", err)
	}
	m := &Manager{
		cfg:    cfg,
		tune:   tuneForGrace(defaultTuning(), cfg.OrphanGrace),
		logger: cfg.Logger.With("component", "tiering"),
		now:    cfg.Now,
		sem:    make(chan struct{}, cfg.UploadConcurrency),
		kick:   make(chan struct{}, 1),
		parts:  make(map[topicPartition]*partState),
	}
	if cfg.UploadBytesPerSec > 0 {
		// The burst is what one ReadAt of the store may take at once; reads
		// are split to fit it.
		burst := int(min(max(cfg.UploadBytesPerSec/4, 64<<10), 4<<20))
		m.limiter = rate.NewLimiter(rate.Limit(cfg.UploadBytesPerSec), burst)
	}
	m.bgCtx, m.bgCancel = context.WithCancel(context.Background())
	cache, err := newDiskCache(cfg.CacheDir, cfg.CacheBytes, m.logger)
	if err != nil {
		m.bgCancel()
		return nil, err
	}
	m.cache = cache
	m.idx = newIndexCache(m.tune.indexEntries)
	m.txns = newTxnIndexCache(m.tune.txnEntries)
	m.prefetch = make(chan struct{}, m.tune.prefetchMax)
	if err := m.met.init(cfg.Meter, m); err != nil {
		m.bgCancel()
		return nil, err
	}
	return m, nil
}

// Run runs the upload scheduler, remote retention, the orphan sweep and
// cache trimming until ctx ends, then stops everything the Manager started
// (uploads, detached downloads, prefetches) and returns once they have. A
// Manager runs once; after Run returns, Read gives ErrClosed.
func (m *Manager) Run(ctx context.Context) {
	if !m.ran.CompareAndSwap(false, true) {
		return
	}
	var loops sync.WaitGroup
	for _, loop := range []func(context.Context){m.uploadLoop, m.retentionLoop, m.sweepLoop, m.cache.trimLoop} {
		loops.Add(1)
		go func() {
			defer loops.Done()
			loop(ctx)
		}()
	}
	<-ctx.Done()
	loops.Wait()
	m.lifeMu.Lock()
	m.closed = true
	m.lifeMu.Unlock()
	m.bgCancel()
	m.wg.Wait()
	m.cache.close()
	m.met.close()
}

// spawn runs fn on a goroutine Run waits for; false once Run has finished.
func (m *Manager) spawn(fn func()) bool {
	m.lifeMu.Lock()
	if m.closed {
		m.lifeMu.Unlock()
		return false
	}
	m.wg.Add(1)
	m.lifeMu.Unlock()
	go func() {
		defer m.wg.Done()
		fn()
	}()
	return true
}

func (m *Manager) isClosed() bool {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	return m.closed
}

// AddPartition registers a partition this broker leads, or updates its log
// and configuration. With RemoteEnabled its sealed segments are uploaded;
// remote retention and the orphan sweep run for it either way.
func (m *Manager) AddPartition(topic string, topicID uuid.UUID, partition int32, log *storage.Log, cfg PartitionConfig) {
	tp := topicPartition{topicID, partition}
	m.mu.Lock()
	p := m.parts[tp]
	if p == nil {
		ctx, cancel := context.WithCancel(m.bgCtx)
		p = &partState{
			tp: tp, topic: topic, ctx: ctx, cancel: cancel,
			logger: m.logger.With("topic", topic, "partition", partition),
		}
		m.parts[tp] = p
	}
	m.mu.Unlock()
	p.mu.Lock()
	if p.log != log {
		// Another log (reopened): what was staged for the old one does not
		// apply.
		p.pending, p.failures, p.retryAt = nil, 0, time.Time{}
	}
	p.log, p.cfg = log, cfg
	p.mu.Unlock()
	m.wake()
}

// RemovePartition stops uploading the partition (leadership moved, topic
// deleted, broker stopping). An upload in flight is cancelled; objects it
// put without committing are left to the orphan sweep.
func (m *Manager) RemovePartition(topicID uuid.UUID, partition int32) {
	m.removePartition(topicPartition{topicID, partition})
}

func (m *Manager) removePartition(tp topicPartition) *partState {
	m.mu.Lock()
	p := m.parts[tp]
	delete(m.parts, tp)
	m.mu.Unlock()
	m.readers.Delete(tp)
	if p == nil {
		return nil
	}
	p.mu.Lock()
	p.removed = true
	p.mu.Unlock()
	p.cancel()
	return p
}

func (m *Manager) part(tp topicPartition) *partState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.parts[tp]
}

func (m *Manager) partitions() []*partState {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*partState, 0, len(m.parts))
	for _, p := range m.parts {
		out = append(out, p)
	}
	return out
}

// Stats reports the partition's remote tier (from the committed manifest)
// and its upload lag: sealed local segments past the manifest's end (zero
// when this Manager does not have the partition).
func (m *Manager) Stats(topicID uuid.UUID, partition int32) (remoteBytes int64, remoteSegments int, uploadLagSegments int, uploadLagBytes int64) {
	man := m.cfg.Manifests.Manifest(topicID, partition)
	remoteBytes, remoteSegments = man.Bytes(), len(man.Segments)
	if p := m.part(topicPartition{topicID, partition}); p != nil {
		if log, cfg, removed := p.state(); log != nil && cfg.RemoteEnabled && !removed {
			uploadLagSegments, uploadLagBytes = uploadLag(log, man)
		}
	}
	return remoteBytes, remoteSegments, uploadLagSegments, uploadLagBytes
}

func uploadLag(log *storage.Log, man Manifest) (segs int, bytes int64) {
	end := man.End()
	for _, s := range log.SealedSegments() {
		if len(man.Segments) == 0 || s.NextOffset > end {
			segs++
			bytes += s.Size
		}
	}
	return segs, bytes
}

func (m *Manager) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// timeoutFor bounds one object transfer of n bytes: generous, since the
// store retries internally, but finite so a hung connection cannot stall
// a partition forever.
func (m *Manager) timeoutFor(n int64) time.Duration {
	bps := int64(1 << 20)
	if m.cfg.UploadBytesPerSec > 0 {
		bps = min(bps, m.cfg.UploadBytesPerSec)
	}
	return m.tune.minTimeout + time.Duration(2*n/bps)*time.Second
}
