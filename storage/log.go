package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-broker/strata/proto"
)

// Sentinel errors. Every error returned by this package that callers act on
// wraps one of them (plus the partition directory and the ids involved).
var (
	// ErrOffsetOutOfRange: the offset is below the log start offset or past
	// the log end offset (OFFSET_OUT_OF_RANGE).
	ErrOffsetOutOfRange = errors.New("storage: offset out of range")
	// ErrOutOfOrderSequence: an idempotent batch does not follow the last
	// sequence of its producer (OUT_OF_ORDER_SEQUENCE_NUMBER).
	ErrOutOfOrderSequence = errors.New("storage: out of order sequence number")
	// ErrInvalidProducerEpoch: an idempotent batch carries an epoch older
	// than the producer's current one (INVALID_PRODUCER_EPOCH).
	ErrInvalidProducerEpoch = errors.New("storage: invalid producer epoch")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("storage: log closed")
	// ErrCorrupt: bytes on disk or handed to Append are not what they must
	// be (CORRUPT_MESSAGE). Recovery truncates corrupt tails instead of
	// returning it.
	ErrCorrupt = errors.New("storage: corrupt data")
)

// Config is a partition log's configuration, named after Kafka's topic
// configs. Start from DefaultConfig: fields that are zero or negative where
// Kafka has no meaning for it take the default (see normalize), but
// RetentionBytes and RetentionMs are taken as given (-1 is unlimited, 0
// deletes every sealed segment below the high watermark).
//
// With RemoteEnabled the log is the local tail of a tiered partition:
// EnforceRetention then applies local.retention.* to segments the remote
// tier already holds (below RemoteEnd) and leaves retention.* to the
// tiering manager, which sees both tiers (see EnforceRetention).
type Config struct {
	SegmentBytes       int64 // segment.bytes (default 1 GiB, capped at 2 GiB-1)
	SegmentMs          int64 // segment.ms (default 7 days)
	RetentionBytes     int64 // retention.bytes, -1 unlimited
	RetentionMs        int64 // retention.ms, -1 unlimited
	FlushMessages      int64 // flush.messages: <=1 => every append is fsynced before it is durable (group commit); larger relaxes
	FlushMs            int64 // flush.ms: used when relaxed (0: after every append; <0: never)
	IndexIntervalBytes int32 // index.interval.bytes (4096; 0 indexes every batch)
	SegmentIndexBytes  int32 // segment.index.bytes (10 MiB)

	RemoteEnabled       bool  // remote.storage.enable
	LocalRetentionBytes int64 // local.retention.bytes: -2 same as RetentionBytes, -1 unlimited
	LocalRetentionMs    int64 // local.retention.ms: -2 same as RetentionMs, -1 unlimited
}

// DefaultConfig returns Kafka's topic defaults, except flush.messages, which
// is 1 (safe: acknowledged means fsynced) where Kafka's is unlimited.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:       1 << 30,
		SegmentMs:          7 * 24 * 3600 * 1000,
		RetentionBytes:     -1,
		RetentionMs:        7 * 24 * 3600 * 1000,
		FlushMessages:      1,
		FlushMs:            math.MaxInt64,
		IndexIntervalBytes: 4096,
		SegmentIndexBytes:  10 << 20,

		LocalRetentionBytes: -2,
		LocalRetentionMs:    -2,
	}
}

// normalize replaces values Kafka would reject with defaults, so a Log
// never divides by zero or rolls on every append because of a zero field.
func (c Config) normalize() Config {
	d := DefaultConfig()
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = d.SegmentBytes
	}
	// Positions in the offset index are uint32 and Kafka's segment.bytes is
	// an int: keep a segment addressable.
	if c.SegmentBytes > math.MaxInt32 {
		c.SegmentBytes = math.MaxInt32
	}
	if c.SegmentMs <= 0 {
		c.SegmentMs = d.SegmentMs
	}
	if c.IndexIntervalBytes < 0 { // 0 is Kafka's "index every batch"
		c.IndexIntervalBytes = d.IndexIntervalBytes
	}
	if c.SegmentIndexBytes < offsetEntrySize*2 {
		c.SegmentIndexBytes = d.SegmentIndexBytes
	}
	// Kafka rejects anything below -2 for local.retention.*; -2 defers to
	// the total retention, the safe reading of a nonsense value.
	if c.LocalRetentionBytes < -2 {
		c.LocalRetentionBytes = -2
	}
	if c.LocalRetentionMs < -2 {
		c.LocalRetentionMs = -2
	}
	return c
}

// localRetentionBytes is local.retention.bytes with -2 resolved.
func (c *Config) localRetentionBytes() int64 {
	if c.LocalRetentionBytes == -2 {
		return c.RetentionBytes
	}
	return c.LocalRetentionBytes
}

// localRetentionMs is local.retention.ms with -2 resolved.
func (c *Config) localRetentionMs() int64 {
	if c.LocalRetentionMs == -2 {
		return c.RetentionMs
	}
	return c.LocalRetentionMs
}

// relaxed reports whether durability is delegated to the flush policy
// (flush.messages > 1) instead of an fsync per acknowledged append.
func (c *Config) relaxed() bool { return c.FlushMessages > 1 }

// flushInterval is flush.ms as a duration for the flusher's timer, 0 when
// there is none (flush.ms 0 is handled by Append poking the flusher).
func (c *Config) flushInterval() time.Duration {
	if c.FlushMs <= 0 || c.FlushMs >= math.MaxInt64/int64(time.Millisecond) {
		return 0
	}
	return time.Duration(c.FlushMs) * time.Millisecond
}

// Options are the injected dependencies of a Log.
type Options struct {
	Logger *slog.Logger
	// Now is the clock for segment.ms, retention.ms and LogAppendTime
	// bookkeeping; time.Now when nil.
	Now func() time.Time
	// Replicated opens the log in replicated high watermark mode (see
	// SetReplicated), with the high watermark restored from its checkpoint
	// instead of set to the log end.
	Replicated bool
}

// File names inside a partition directory.
const (
	logSuffix        = ".log"
	indexSuffix      = ".index"
	timeIndexSuffix  = ".timeindex"
	snapshotSuffix   = ".snapshot"
	tmpSuffix        = ".tmp"
	epochFile        = "leader-epoch-checkpoint"
	logStartFile     = "log-start-offset"
	remoteEndFile    = "remote-end"
	recoveryFile     = "recovery-point"
	hwFile           = "high-watermark"
	truncateFile     = "truncate-to"
	cleanShutdownMrk = ".clean-shutdown"
	cleanerFile      = "cleaner-offset-checkpoint" // first dirty offset (compact.go)
	cleanedSuffix    = ".cleaned"                  // a segment being written by the cleaner
	swapSuffix       = ".swap"                     // a cleaned segment committed, replacing others
)

// Log is one partition's log. See doc.go for the concurrency model; the
// fields are grouped by the lock that guards them.
type Log struct {
	dir    string
	logger *slog.Logger
	now    func() time.Time
	cfg    atomic.Pointer[Config]
	dirf   *os.File // the partition directory, for fsyncs of its entries
	closed atomic.Bool

	// mu serializes every writer: Append, roll, retention,
	// DeleteRecordsBefore, SetConfig's side effects, Close.
	mu       sync.Mutex
	prod     producerState // producer ids, idempotence (mu only)
	bufs     [][]byte      // Append's scratch iovecs (mu only)
	closeErr error         // result of the first Close (mu only)

	// segMu guards everything readers look at. Writers hold mu and take
	// segMu for writing only to publish; readers take it for reading.
	segMu        sync.RWMutex
	segs         []*segment // ascending base offset; the last one is active
	leo          int64      // log end offset: next offset to assign
	logStart     int64      // global: may lie below the first local segment when older data is remote
	remoteEnd    int64      // every offset below is recorded in the remote tier; 0 = nothing
	epochs       epochCache
	appended     chan struct{} // closed when leo advances; nil until asked for (Appended)
	dirGen       uint64        // bumped when a file the log depends on is created
	pendingSnaps []snapshotJob // producer snapshots taken at roll, written by the flusher
	// unstable: the transactions that hold the last stable offset back
	// (written with mu held too; txn.go).
	unstable []txnRange

	// flushMu serializes fsync rounds (the flusher, Sync, Close).
	flushMu      sync.Mutex
	fsys         syncer // fsyncs of segment data and the directory (flushMu)
	dirSynced    uint64 // dirGen covered by the last directory fsync (flushMu)
	recoveryPt   int64  // last recovery point written (flushMu)
	fsyncRounds  atomic.Int64
	flushReq     chan struct{} // capacity 1: "there is something to flush"
	stop         chan struct{}
	flusherDone  chan struct{}
	unflushedMsg atomic.Int64 // records appended since the last flush (relaxed mode)

	// fmu guards the durable frontier and the wakeups derived from it.
	fmu       sync.Mutex
	durable   int64         // every offset below is fsynced
	durableCh chan struct{} // closed and replaced when durable advances
	changed   chan struct{} // closed when hw advances; nil until asked for
	fclosed   bool
	failErr   error        // sticky: an fsync or write failed, nothing is durable any more
	hw        atomic.Int64 // written under fmu
	// replicated: the high watermark moves only by AdvanceHighWatermark and
	// SetHighWatermark (replica.go); hwTarget is what the leader last said
	// its replicas hold, which the flusher reaches as fsyncs complete.
	replicated bool
	hwTarget   int64

	// hwCkptMu serializes writes of the high watermark checkpoint (the
	// flusher, TruncateTo, Close) so an older value never overwrites a newer
	// one; it guards the two fields after it.
	hwCkptMu sync.Mutex
	hwCkpt   int64        // value in the checkpoint file, -1 when there is none
	hwCkptAt atomic.Int64 // when it was written (ms, Options.Now); read without the lock to decide on a flusher poke

	// Compaction (compact.go): cleanMu serializes Compact and is taken
	// before mu.
	cleanMu     sync.Mutex
	cleanerCkpt atomic.Int64 // first dirty offset, as checkpointed
	nextHorizon atomic.Int64 // earliest delete horizon (ms) of a tombstone the cleaner kept; MaxInt64: none known

	repl     []proto.Batch     // AppendReplicated's scratch (mu only)
	testHook func(step string) // set by crash tests before TruncateTo
}

// closedChan is handed out by Changed after Close.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (l *Log) config() *Config { return l.cfg.Load() }

func (l *Log) nowMs() int64 { return l.now().UnixMilli() }

func (l *Log) path(name string) string { return filepath.Join(l.dir, name) }

// active returns the active segment. Callers hold mu or segMu.
func (l *Log) active() *segment { return l.segs[len(l.segs)-1] }

// LogStartOffset is the first offset a consumer may read, in either tier:
// with remote storage it may lie below LocalLogStartOffset.
func (l *Log) LogStartOffset() int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return l.logStart
}

// LogEndOffset is the next offset Append will assign.
func (l *Log) LogEndOffset() int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return l.leo
}

// HighWatermark is the end of what consumers may read: the durable end in
// safe mode, the log end offset when relaxed. It never goes backwards.
func (l *Log) HighWatermark() int64 { return l.hw.Load() }

// Appended returns a channel closed at the next append (the log end
// moves; or at Close): what a leader's follower fetches long-poll on, since
// their own fetches are what moves the high watermark. Check LogEndOffset
// after taking the channel to avoid missing an append.
func (l *Log) Appended() <-chan struct{} {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	if l.closed.Load() {
		return closedChan
	}
	if l.appended == nil {
		l.appended = make(chan struct{})
	}
	return l.appended
}

// Changed returns a channel closed at the next HighWatermark advance (or at
// Close). Call it again for the one after; check HighWatermark after taking
// the channel to avoid missing an advance.
func (l *Log) Changed() <-chan struct{} {
	l.fmu.Lock()
	defer l.fmu.Unlock()
	if l.fclosed {
		return closedChan
	}
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return l.changed
}

// advanceHWLocked raises the high watermark and wakes Changed waiters.
// Callers hold fmu.
func (l *Log) advanceHWLocked(to int64) {
	if to <= l.hw.Load() {
		return
	}
	l.hw.Store(to)
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// SetConfig applies a new configuration to the next operations. Switching
// to relaxed flushing raises the high watermark to the log end at once;
// switching back keeps it (it never regresses) and durability catches up.
func (l *Log) SetConfig(cfg Config) {
	c := cfg.normalize()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg.Store(&c)
	if c.relaxed() {
		l.segMu.RLock()
		leo := l.leo
		l.segMu.RUnlock()
		l.fmu.Lock()
		l.advanceHWAutoLocked(leo)
		l.fmu.Unlock()
	}
	l.requestFlush() // also makes the flusher re-read flush.ms
}

// Size is the total size of the log's segment files in bytes.
func (l *Log) Size() int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	return n
}

// NumSegments is the number of local segments, the active one included.
func (l *Log) NumSegments() int {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return len(l.segs)
}

// Close flushes and closes the log; it is idempotent. After a successful
// Close the next Open trusts the persisted indexes of sealed segments.
// Segment files still referenced by ReadResults stay open until released.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return l.closeErr
	}
	l.closed.Store(true)
	l.segMu.Lock()
	if l.appended != nil {
		close(l.appended)
		l.appended = nil
	}
	l.segMu.Unlock()
	close(l.stop)
	<-l.flusherDone

	err := l.flush()
	if err == nil {
		err = l.persistForCleanShutdown()
	}
	if err == nil {
		err = writeFileAtomic(l.dirf, l.dir, cleanShutdownMrk, nil)
	}
	if err != nil {
		l.logger.Error("unclean close of partition log; the next open recovers it", "dir", l.dir, "err", err)
	}

	l.segMu.Lock()
	segs := l.segs
	l.segs = nil
	l.segMu.Unlock()
	for _, s := range segs {
		s.release()
	}

	l.fmu.Lock()
	l.fclosed = true
	close(l.durableCh)
	l.durableCh = closedChan
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	l.fmu.Unlock()

	// A concurrent Sync may still be inside flush; it returns early once it
	// sees no segments, but only after taking flushMu.
	l.flushMu.Lock()
	if cerr := l.dirf.Close(); err == nil && cerr != nil {
		err = cerr
	}
	l.flushMu.Unlock()
	if err != nil {
		err = fmt.Errorf("close log %s: %w", l.dir, err)
	}
	l.closeErr = err
	return err
}

// persistForCleanShutdown writes what a clean open relies on: the active
// segment's indexes, a producer snapshot at the log end, the checkpoints.
// Callers hold mu after the final flush.
func (l *Log) persistForCleanShutdown() error {
	act := l.active()
	if err := l.writeIndexFiles(act); err != nil {
		return err
	}
	if err := writeFileAtomic(l.dirf, l.dir, snapshotName(l.leo), l.prod.encode()); err != nil {
		return err
	}
	if err := l.writeEpochCheckpoint(); err != nil {
		return err
	}
	if err := writeFileAtomic(l.dirf, l.dir, logStartFile, encodeOffsetCheckpoint(l.logStart)); err != nil {
		return err
	}
	if err := l.checkpointHW(true); err != nil {
		return err
	}
	l.deleteOldSnapshots()
	return writeFileAtomic(l.dirf, l.dir, recoveryFile, encodeOffsetCheckpoint(act.base))
}

// Delete closes the log and removes its directory.
func (l *Log) Delete() error {
	cerr := l.Close()
	if err := os.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("delete log %s: %w", l.dir, err)
	}
	if cerr != nil {
		// The data is gone anyway; an fsync failure of deleted files is moot.
		l.logger.Warn("close before delete failed", "dir", l.dir, "err", cerr)
	}
	return nil
}

// fail records a failure after which nothing can be promised durable: an
// fsync error may have dropped dirty pages (the kernel forgets them), and a
// failed write that could not be undone leaves bytes we did not account for.
// Every later Append, WaitDurable and Sync returns it.
func (l *Log) fail(err error) {
	l.fmu.Lock()
	defer l.fmu.Unlock()
	if l.failErr == nil {
		l.failErr = err
		l.logger.Error("partition log failed; it must be reopened", "dir", l.dir, "err", err)
		if !l.fclosed {
			close(l.durableCh) // wake waiters to see the failure
			l.durableCh = make(chan struct{})
		}
	}
}

func (l *Log) failure() error {
	l.fmu.Lock()
	defer l.fmu.Unlock()
	return l.failErr
}
