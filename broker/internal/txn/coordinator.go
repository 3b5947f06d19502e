package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/broker/internal/loop"

	"github.com/strata-broker/strata/broker/internal/coordkey"
)

// Log is the persistence seam, implemented by the broker on the
// __transaction_state partition logs.
type Log interface {
	// Append writes one record (value nil = tombstone) to partition p and
	// returns once it is durable. It must return promptly once ctx ends:
	// Unload and Close cancel it and wait.
	Append(ctx context.Context, p int32, key, value []byte) error
	// Replay calls fn for every record of partition p in log order, up to
	// the end of the log at the time of the call.
	Replay(ctx context.Context, p int32, fn func(key, value []byte)) error
}

// ProducerIDs hands out producer ids, unique across the cluster (the
// broker backs it with blocks from the metadata quorum). NextID may block;
// it is never called on the coordinator's loop.
type ProducerIDs interface {
	NextID(ctx context.Context) (int64, error)
}

// MarkerWriter writes transaction markers: the broker sends WriteTxnMarkers
// for the partitions to each partition's leader. It returns nil once every
// partition has its marker (a partition that no longer exists counts as
// done). On error the coordinator retries the whole call after
// Config.RetryBackoff, so writing a marker twice must be harmless.
type MarkerWriter interface {
	WriteMarkers(ctx context.Context, producerID int64, epoch int16, commit bool, coordinatorEpoch int32, partitions []TopicPartition) error
}

// Sentinel errors a Log may return (wrapped) so the coordinator answers
// with the right Kafka code. Errors carrying a *kerr.Error are mapped as
// Apache Kafka maps transaction log append errors; anything else becomes
// UNKNOWN_SERVER_ERROR.
var (
	// ErrNotCoordinator: this broker no longer leads the partition.
	ErrNotCoordinator = errors.New("not the transaction coordinator")
	// ErrCoordinatorNotAvailable: the partition cannot take writes now.
	ErrCoordinatorNotAvailable = errors.New("transaction coordinator not available")
)

// Kafka's defaults for settings whose zero value means "default".
const (
	defaultPartitions            = 50                 // transaction.state.log.num.partitions
	defaultOffsetsPartitions     = 50                 // offsets.topic.num.partitions
	defaultMaxTimeout            = 15 * time.Minute   // transaction.max.timeout.ms
	defaultIDExpiration          = 7 * 24 * time.Hour // transactional.id.expiration.ms
	defaultAbortTimedOutInterval = 10 * time.Second   // transaction.abort.timed.out.transaction.cleanup.interval.ms
	defaultRemoveExpiredInterval = time.Hour          // transaction.remove.expired.transaction.cleanup.interval.ms
	defaultRetryBackoff          = 100 * time.Millisecond
	requestQueueLen              = 256
	consumerOffsetsTopic         = "__consumer_offsets"
)

// Config configures a Coordinator. Zero values give Kafka's defaults.
type Config struct {
	Partitions        int32 // transaction.state.log.num.partitions (50)
	OffsetsPartitions int32 // offsets.topic.num.partitions (50), for AddOffsetsToTxn

	Log         Log
	ProducerIDs ProducerIDs
	Markers     MarkerWriter
	Logger      *slog.Logger // nil: discard
	Clock       loop.Clock   // nil: wall clock

	MaxTimeout            time.Duration // transaction.max.timeout.ms (15 min)
	IDExpiration          time.Duration // transactional.id.expiration.ms (7 days)
	AbortTimedOutInterval time.Duration // how often timed-out transactions are looked for (10 s)
	RemoveExpiredInterval time.Duration // how often expired transactional ids are looked for (1 h)
	RetryBackoff          time.Duration // before retrying a failed marker write or completion (100 ms)
}

// Coordinator is the transaction coordinator. See doc.go.
type Coordinator struct {
	cfg   Config
	clock loop.Clock
	log   *slog.Logger

	reqs      chan func()
	ev        *loop.Events
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{} // closed once the loop has stopped
	wg        sync.WaitGroup
	closeOnce sync.Once

	// Owned by the loop goroutine.
	txns     map[string]*txn
	parts    map[int32]*partState
	timers   *loop.Timers
	busy     int           // appends and marker writes in flight
	watchers loop.Watchers // test hook: conditions checked after every event
}

// partState is one __transaction_state partition this coordinator leads.
type partState struct {
	epoch   int32 // the partition leader epoch: the coordinator epoch in markers
	loading bool
	ctx     context.Context // cancelled on Unload: ends appends and marker writes
	cancel  context.CancelFunc
}

// New starts a coordinator that owns no partition yet (see LoadPartition).
// It panics on a configuration that is a programming error.
func New(cfg Config) *Coordinator {
	if cfg.Log == nil || cfg.ProducerIDs == nil || cfg.Markers == nil {
		panic("txn: Config.Log, ProducerIDs and Markers are required")
	}
	if cfg.Partitions < 0 || cfg.OffsetsPartitions < 0 {
		panic(fmt.Sprintf("txn: negative partition count %d/%d", cfg.Partitions, cfg.OffsetsPartitions))
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = defaultPartitions
	}
	if cfg.OffsetsPartitions == 0 {
		cfg.OffsetsPartitions = defaultOffsetsPartitions
	}
	def(&cfg.MaxTimeout, defaultMaxTimeout)
	def(&cfg.IDExpiration, defaultIDExpiration)
	def(&cfg.AbortTimedOutInterval, defaultAbortTimedOutInterval)
	def(&cfg.RemoveExpiredInterval, defaultRemoveExpiredInterval)
	def(&cfg.RetryBackoff, defaultRetryBackoff)
	c := &Coordinator{
		cfg:   cfg,
		clock: cfg.Clock,
		log:   cfg.Logger,
		reqs:  make(chan func(), requestQueueLen),
		ev:    loop.NewEvents(),
		done:  make(chan struct{}),
		txns:  make(map[string]*txn),
		parts: make(map[int32]*partState),
	}
	if c.clock == nil {
		c.clock = loop.RealClock{}
	}
	c.timers = loop.NewTimers(c.clock, c.ev)
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(1)
	go c.run()
	return c
}

// Close stops the loop, timers, appends and marker writes, and waits for
// them. Blocked callers return NOT_COORDINATOR. Idempotent.
func (c *Coordinator) Close() {
	c.closeOnce.Do(func() {
		c.cancel()
		c.wg.Wait()
	})
}

// PartitionFor returns the __transaction_state partition that owns a
// transactional id: Kafka's Utils.abs(id.hashCode()) % partitions.
func (c *Coordinator) PartitionFor(transactionalID string) int32 {
	return coordkey.Partition(transactionalID, c.cfg.Partitions)
}

func (c *Coordinator) now() int64 { return c.clock.Now().UnixMilli() }

func (c *Coordinator) run() {
	defer c.wg.Done()
	defer close(c.done)
	c.every(c.cfg.AbortTimedOutInterval, c.abortTimedOut)
	c.every(c.cfg.RemoveExpiredInterval, c.expireIDs)
	for {
		select {
		case <-c.ctx.Done():
			c.timers.StopAll()
			for _, t := range c.txns {
				t.gone = true
			}
			return
		case <-c.ev.Signal():
			c.drainEvents()
		case f := <-c.reqs:
			// Events queued before this request (fired timers, finished
			// appends) happen before it, which keeps tests deterministic.
			c.drainEvents()
			f()
		}
		c.watchers.Check()
	}
}

func (c *Coordinator) every(d time.Duration, f func()) {
	c.after(d, func() {
		f()
		c.every(d, f)
	})
}

func (c *Coordinator) drainEvents() {
	for {
		fs := c.ev.Take()
		if len(fs) == 0 {
			return
		}
		for _, f := range fs {
			f()
		}
	}
}

// exec hands f to the loop. It returns false if the coordinator is closed
// or ctx ends first; f may then never run.
func (c *Coordinator) exec(ctx context.Context, f func()) bool {
	select {
	case c.reqs <- f:
		return true
	case <-ctx.Done():
		return false
	case <-c.done:
		return false
	}
}

// await runs f on the loop and waits for the reply f gives, at once or once
// an append completes. reply never blocks and only its first call counts.
func await[T any](c *Coordinator, ctx context.Context, f func(reply func(T)), fail func(code int16) T) T {
	ch := make(chan T, 1)
	reply := func(v T) {
		select {
		case ch <- v:
		default:
		}
	}
	if !c.exec(ctx, func() { f(reply) }) {
		if ctx.Err() != nil {
			return fail(kerr.RequestTimedOut.Code)
		}
		return fail(kerr.NotCoordinator.Code)
	}
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		return fail(kerr.RequestTimedOut.Code)
	case <-c.done:
		select {
		case v := <-ch:
			return v
		default:
			return fail(kerr.NotCoordinator.Code)
		}
	}
}

// after arms a loop-owned timer: f runs on the loop after d, and not at all
// once the loop has stopped.
func (c *Coordinator) after(d time.Duration, f func()) *loop.Handle {
	return c.timers.After(d, f)
}

// async runs work off the loop and then done on the loop. busy counts it so
// tests can wait for quiescence; Close waits for the goroutine.
func (c *Coordinator) async(work func() error, done func(error)) {
	c.busy++
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := work()
		c.ev.Post(func() {
			c.busy--
			done(err)
		})
	}()
}

// owner checks that this coordinator serves id right now: the Kafka error
// otherwise (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS), else 0.
func (c *Coordinator) owner(id string) (*partState, int16) {
	ps := c.parts[c.PartitionFor(id)]
	switch {
	case ps == nil:
		return nil, kerr.NotCoordinator.Code
	case ps.loading:
		return nil, kerr.CoordinatorLoadInProgress.Code
	}
	return ps, 0
}

// write makes next durable for t, then applies it and calls done on the
// loop. While it is in flight t is pending. A failed write leaves t as it
// was; done gets the Kafka error code (NOT_COORDINATOR if t was unloaded
// meanwhile).
func (c *Coordinator) write(t *txn, next meta, op string, done func(code int16)) {
	ps := c.parts[t.partition]
	key, value := encodeKey(t.id), encodeValue(next)
	if next.state == StateDead {
		value = nil
	}
	t.pending = true
	c.async(func() error {
		err := c.cfg.Log.Append(ps.ctx, t.partition, key, value)
		if err != nil {
			return fmt.Errorf("%s %q to __transaction_state-%d: %w", op, t.id, t.partition, err)
		}
		return nil
	}, func(err error) {
		t.pending = false
		if t.gone {
			done(kerr.NotCoordinator.Code)
			return
		}
		if err != nil {
			code := c.errorCode(err, op, t.id)
			if t.fresh {
				t.gone = true
				delete(c.txns, t.id)
			}
			done(code)
			return
		}
		t.fresh = false
		t.cur = next
		if next.state == StateDead {
			t.gone = true
			delete(c.txns, t.id)
		}
		done(0)
	})
}

// errorCode is the one place an append error becomes a Kafka error code,
// following Apache Kafka's TransactionStateManager. Unknown errors become
// UNKNOWN_SERVER_ERROR and are logged.
func (c *Coordinator) errorCode(err error, op, id string) int16 {
	c.log.Warn("transaction log write failed", "op", op, "transactional_id", id, "err", err)
	code, known := loop.AppendErrorCode(err, ErrNotCoordinator, ErrCoordinatorNotAvailable)
	if !known {
		c.log.Error("unmapped transaction log write error", "op", op, "transactional_id", id, "err", err)
	}
	return code
}
