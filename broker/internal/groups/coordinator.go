package groups

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

// Log is the persistence seam, implemented by the broker on top of the
// __consumer_offsets partition logs.
type Log interface {
	// Append writes the records (Value nil = tombstone) to __consumer_offsets
	// partition p and returns once they are durable. All records of one call
	// are written or none. It must return promptly once ctx is cancelled
	// (Close waits for it).
	Append(ctx context.Context, p int32, recs []KV) error
	// AppendTxn is Append for TxnOffsetCommit: the records go in one
	// transactional batch of the producer (id, epoch), so a replay can
	// tell them apart until the transaction's marker decides them.
	AppendTxn(ctx context.Context, p int32, producerID int64, epoch int16, recs []KV) error
}

// KV is one __consumer_offsets record.
type KV struct{ Key, Value []byte }

// Sentinel errors a Log may return (wrapped) so the coordinator answers with
// the right Kafka code. Errors carrying a *kerr.Error are mapped as Apache
// Kafka maps append errors; anything else becomes UNKNOWN_SERVER_ERROR.
var (
	// ErrNotCoordinator: this broker no longer leads the partition
	// (NOT_COORDINATOR; the client looks the coordinator up again).
	ErrNotCoordinator = errors.New("not the coordinator for this group")
	// ErrCoordinatorNotAvailable: the partition cannot take writes right
	// now (COORDINATOR_NOT_AVAILABLE; the client retries).
	ErrCoordinatorNotAvailable = errors.New("group coordinator not available")
)

// Kafka's defaults for the settings whose zero value means "default".
const (
	defaultMinSessionTimeout      = 6 * time.Second    // group.min.session.timeout.ms
	defaultMaxSessionTimeout      = 30 * time.Minute   // group.max.session.timeout.ms
	defaultOffsetMetadataMaxBytes = 4096               // offset.metadata.max.bytes
	defaultOffsetsRetention       = 7 * 24 * time.Hour // offsets.retention.minutes
	defaultRetentionCheckInterval = 10 * time.Minute   // offsets.retention.check.interval.ms
	defaultNewMemberJoinTimeout   = 5 * time.Minute    // group.classic.new.member.join.timeout.ms
)

const (
	maxAppendBatchBytes  = 512 << 10  // queued records combined into one Log.Append
	requestQueueLen      = 256        // API calls waiting for the loop
	unknownTimestamp     = int64(-1)  // "no timestamp" in Kafka's records
	consumerProtocolType = "consumer" // the Java consumer's protocol type
	classicGroupType     = "classic"  // ListGroups v5 group type
)

// Config configures a Coordinator.
type Config struct {
	Partitions int32 // offsets.topic.num.partitions; must be >= 1
	Log        Log
	Logger     *slog.Logger     // nil: discard
	Now        func() time.Time // timestamps; nil: Clock.Now, else time.Now

	// Bounds for JoinGroup session timeouts; zero means Kafka's default
	// (6 s, 30 min).
	MinSessionTimeout, MaxSessionTimeout time.Duration
	// group.initial.rebalance.delay.ms: how long a group rebalancing out of
	// Empty waits for more members. Zero means no delay (the broker's
	// configuration supplies Kafka's 3 s default).
	InitialRebalanceDelay time.Duration

	// Extensions beyond the shared contract; zero values give Kafka's
	// defaults.
	Clock                         loop.Clock    // timers; nil: runtime timers
	MaxGroupSize                  int           // group.max.size; 0: unlimited
	OffsetMetadataMaxBytes        int           // offset.metadata.max.bytes (4096)
	OffsetsRetention              time.Duration // offsets.retention.minutes (7 days)
	OffsetsRetentionCheckInterval time.Duration // offsets.retention.check.interval.ms (10 min)
	NewMemberJoinTimeout          time.Duration // how long a new member may wait in JoinGroup (5 min)
}

// Coordinator is the classic consumer-group coordinator. See doc.go.
type Coordinator struct {
	cfg   Config
	clock loop.Clock
	now   func() time.Time
	log   *slog.Logger

	reqs      chan func()  // work for the loop from API callers
	ev        *loop.Events // work for the loop from timers and writers
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{} // closed once the loop has stopped
	wg        sync.WaitGroup
	closeOnce sync.Once

	// Everything below is owned by the loop goroutine.
	groups   map[string]*group
	writers  map[int32]*writer
	timers   *loop.Timers
	inflight int           // appends queued and not yet completed
	watchers loop.Watchers // test hook: conditions checked after every event
}

// New starts a coordinator. It panics on a configuration that is a
// programming error (no Log, no partitions).
func New(cfg Config) *Coordinator {
	if cfg.Log == nil {
		panic("groups: Config.Log is nil")
	}
	if cfg.Partitions < 1 {
		panic(fmt.Sprintf("groups: Config.Partitions must be >= 1, got %d", cfg.Partitions))
	}
	if cfg.MinSessionTimeout == 0 {
		cfg.MinSessionTimeout = defaultMinSessionTimeout
	}
	if cfg.MaxSessionTimeout == 0 {
		cfg.MaxSessionTimeout = defaultMaxSessionTimeout
	}
	if cfg.OffsetMetadataMaxBytes == 0 {
		cfg.OffsetMetadataMaxBytes = defaultOffsetMetadataMaxBytes
	}
	if cfg.OffsetsRetention == 0 {
		cfg.OffsetsRetention = defaultOffsetsRetention
	}
	if cfg.OffsetsRetentionCheckInterval == 0 {
		cfg.OffsetsRetentionCheckInterval = defaultRetentionCheckInterval
	}
	if cfg.NewMemberJoinTimeout == 0 {
		cfg.NewMemberJoinTimeout = defaultNewMemberJoinTimeout
	}
	c := &Coordinator{
		cfg:     cfg,
		log:     cfg.Logger,
		reqs:    make(chan func(), requestQueueLen),
		ev:      loop.NewEvents(),
		done:    make(chan struct{}),
		groups:  make(map[string]*group),
		writers: make(map[int32]*writer),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.now = cfg.Now
	c.clock = cfg.Clock
	switch {
	case c.clock == nil && c.now == nil:
		c.now = time.Now
		c.clock = loop.RealClock{NowFunc: time.Now}
	case c.clock == nil:
		c.clock = loop.RealClock{NowFunc: c.now}
	case c.now == nil:
		c.now = c.clock.Now
	}
	c.timers = loop.NewTimers(c.clock, c.ev)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(1)
	go c.run()
	return c
}

// Close stops the loop, every timer and every writer, and waits for them.
// Callers still blocked in JoinGroup/SyncGroup/OffsetCommit return
// NOT_COORDINATOR. Idempotent.
func (c *Coordinator) Close() {
	c.closeOnce.Do(func() {
		c.cancel()
		c.wg.Wait()
	})
}

// PartitionFor returns the __consumer_offsets partition that owns group:
// Kafka's Utils.abs(groupId.hashCode()) % partitions, with Java's
// String.hashCode over UTF-16 code units and Utils.abs mapping MinInt32 to 0.
func (c *Coordinator) PartitionFor(group string) int32 {
	return coordkey.Partition(group, c.cfg.Partitions)
}

// clientInfo is what Kafka's RequestContext adds to JoinGroup and
// DescribeGroups: the request header's client id and the peer address.
type clientInfo struct{ id, host string }

type clientInfoKey struct{}

// WithClient attaches the request header's client id and the client's host
// (Kafka shows it as "/1.2.3.4") to ctx. JoinGroup uses them to build member
// ids (clientId-UUID) and DescribeGroups reports them.
func WithClient(ctx context.Context, clientID, clientHost string) context.Context {
	return context.WithValue(ctx, clientInfoKey{}, clientInfo{id: clientID, host: clientHost})
}

func clientFrom(ctx context.Context) clientInfo {
	ci, _ := ctx.Value(clientInfoKey{}).(clientInfo)
	return ci
}

// Unload drops every group of __consumer_offsets partition p from memory,
// as Kafka does when it stops leading the partition: blocked JoinGroup and
// SyncGroup calls of those groups return NOT_COORDINATOR. The log is not
// touched; Load rebuilds the groups on the new leader.
func (c *Coordinator) Unload(p int32) {
	done := make(chan struct{})
	if !c.exec(context.Background(), func() {
		defer close(done)
		for _, g := range c.groups {
			if g.partition == p {
				c.failWaiters(g, kerr.NotCoordinator.Code)
				c.removeGroup(g)
			}
		}
	}) {
		return
	}
	select {
	case <-done:
	case <-c.done:
	}
}

// run is the loop goroutine: the only one that touches group state.
func (c *Coordinator) run() {
	defer c.wg.Done()
	defer close(c.done)
	c.scheduleRetention()
	for {
		select {
		case <-c.ctx.Done():
			c.shutdown()
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

func (c *Coordinator) shutdown() {
	c.timers.StopAll()
	for _, g := range c.groups {
		g.gone = true
	}
}

// exec hands f to the loop. It returns false if the coordinator is closed or
// ctx ends first; f may then never run.
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

// await runs f on the loop and waits for the reply f gives, at once or
// later (a JoinGroup parked until the rebalance completes). reply never
// blocks and only the first call counts, so the loop cannot be stuck on a
// caller that went away. canceled/closed are returned if ctx ends or the
// coordinator closes first.
func await[T any](c *Coordinator, ctx context.Context, f func(reply func(T)), canceled, closed func() T) T {
	ch := make(chan T, 1)
	reply := func(v T) {
		select {
		case ch <- v:
		default:
		}
	}
	if !c.exec(ctx, func() { f(reply) }) {
		if ctx.Err() != nil {
			return canceled()
		}
		return closed()
	}
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		return canceled()
	case <-c.done:
		select {
		case v := <-ch:
			return v
		default:
			return closed()
		}
	}
}

// after arms a loop-owned timer: f runs on the loop after d, and not at all
// once stopped, so a Stop racing a firing timer is harmless.
func (c *Coordinator) after(d time.Duration, f func()) *loop.Handle {
	return c.timers.After(d, f)
}

// groupAfter is after for timers that belong to g: they do nothing once g
// has been deleted or unloaded.
func (c *Coordinator) groupAfter(g *group, d time.Duration, f func()) *loop.Handle {
	return c.after(d, func() {
		if !g.gone {
			f()
		}
	})
}

func (c *Coordinator) stop(lt *loop.Handle) { c.timers.Stop(lt) }

// writer serializes appends to one __consumer_offsets partition: records
// reach the log in the order the loop queued them, and completions come back
// in that order, so in-memory state is applied in log order.
type writer struct {
	p    int32
	mu   sync.Mutex
	q    []appendOp
	wake chan struct{} // capacity 1
}

type appendOp struct {
	recs  []KV
	txn   bool // a transactional batch of (pid, epoch): never combined
	pid   int64
	epoch int16
	done  func(error) // runs on the loop
}

// append queues recs for partition p; done runs on the loop once Append
// returned.
func (c *Coordinator) append(p int32, recs []KV, done func(error)) {
	c.queue(p, appendOp{recs: recs, done: done})
}

func (c *Coordinator) queue(p int32, op appendOp) {
	done := op.done
	w := c.writers[p]
	if w == nil {
		w = &writer{p: p, wake: make(chan struct{}, 1)}
		c.writers[p] = w
		c.wg.Add(1)
		go c.runWriter(w)
	}
	c.inflight++
	w.mu.Lock()
	op.done = func(err error) {
		c.inflight--
		done(err)
	}
	w.q = append(w.q, op)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (c *Coordinator) runWriter(w *writer) {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-w.wake:
		}
		for {
			w.mu.Lock()
			ops := w.q
			w.q = nil
			w.mu.Unlock()
			if len(ops) == 0 {
				break
			}
			for len(ops) > 0 {
				// Combine queued operations into one append (one fsync);
				// they then succeed or fail together.
				n, size := 1, recsSize(ops[0].recs)
				for !ops[0].txn && n < len(ops) && !ops[n].txn && size+recsSize(ops[n].recs) <= maxAppendBatchBytes {
					size += recsSize(ops[n].recs)
					n++
				}
				recs := ops[0].recs
				if n > 1 {
					recs = nil
					for _, op := range ops[:n] {
						recs = append(recs, op.recs...)
					}
				}
				var err error
				if ops[0].txn {
					err = c.cfg.Log.AppendTxn(c.ctx, w.p, ops[0].pid, ops[0].epoch, recs)
				} else {
					err = c.cfg.Log.Append(c.ctx, w.p, recs)
				}
				if err != nil {
					err = fmt.Errorf("append %d records to __consumer_offsets-%d: %w", len(recs), w.p, err)
				}
				batch := ops[:n]
				ops = ops[n:]
				c.ev.Post(func() {
					for _, op := range batch {
						op.done(err)
					}
				})
			}
		}
	}
}

func recsSize(recs []KV) int {
	n := 0
	for _, r := range recs {
		n += len(r.Key) + len(r.Value)
	}
	return n
}

// errorCode is the one place an append error becomes a Kafka error code,
// following Apache Kafka's mapping of append errors for the group
// coordinator. Unknown errors become UNKNOWN_SERVER_ERROR and are logged.
func (c *Coordinator) errorCode(err error, op string, group string) int16 {
	if err == nil {
		return 0
	}
	c.log.Warn("group coordinator write failed", "op", op, "group", group, "err", err)
	code, known := loop.AppendErrorCode(err, ErrNotCoordinator, ErrCoordinatorNotAvailable)
	if !known {
		c.log.Error("unmapped group coordinator write error", "op", op, "group", group, "err", err)
	}
	return code
}
