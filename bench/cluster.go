package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Cluster-run constants. The failover producer writes small records at a
// steady pace: the figure is how long writes stop, not how many get
// through, and a light load keeps the two CPUs for the brokers.
const (
	clusterNodes = 3
	clusterRF    = 3
	clusterMinIR = 2 // min.insync.replicas: RF=3 keeps taking acks=all writes with one broker down
	// failoverInterval paces the failover producer (500 records/s), so the
	// first record produced after a kill leaves within 2 ms of it.
	failoverInterval   = 2 * time.Millisecond
	failoverRecordSize = 100
	// failoverRetryBackoff and failoverMetadataMinAge make the client
	// notice a new leader within tens of milliseconds of the cluster
	// publishing it, so the figure is the broker's and not the client's
	// back-off (kgo's defaults back off up to 1 s and refresh metadata at
	// most every 5 s).
	failoverRetryBackoff   = 20 * time.Millisecond
	failoverMetadataMinAge = 20 * time.Millisecond
	failoverMetadataMaxAge = 500 * time.Millisecond
	// failoverPoll is how often the bench asks for the partition's leader
	// while a failover is under way.
	failoverPoll = 20 * time.Millisecond
	// failoverAckGrace is how long after the session timeout a write may
	// take to be acknowledged before the failover counts as failed.
	failoverAckGrace = 20 * time.Second
	// clusterISRTimeout bounds waiting for a topic's replicas to be in
	// sync, after its creation or after a killed broker's restart.
	clusterISRTimeout = 30 * time.Second
	clusterStopGrace  = 15 * time.Second
	// clusterDrainTimeout is how long a produce run may take past its
	// duration to have its records acknowledged.
	clusterDrainTimeout = 30 * time.Second
)

// ClusterResult is the cluster run: three brokers on this machine, the
// same acks=all load on a replication-factor-1 topic and on an RF=3 one,
// and leader failovers of an RF=3 partition under a steady producer.
type ClusterResult struct {
	Nodes      int   `json:"nodes"`
	Partitions int32 `json:"partitions"`
	// SessionTimeout and Heartbeat are broker.session.timeout.ms and
	// broker.heartbeat.interval.ms: the controller fences a broker (and
	// moves its leaderships) once it has not heartbeated for
	// SessionTimeout, so a failover cannot take less.
	SessionTimeout time.Duration `json:"broker_session_timeout_ns"`
	Heartbeat      time.Duration `json:"broker_heartbeat_interval_ns"`
	MinISR         int           `json:"min_insync_replicas"`
	Settings       []string      `json:"settings"` // --set arguments of every node

	// Runs are the produce runs, each kind (fixed rate, then as fast as
	// the producers go) on RF=1 and then on RF=3.
	Runs []ClusterRun `json:"runs"`

	FailoverRate       int              `json:"failover_records_per_s"`
	FailoverRecordSize int              `json:"failover_record_size"`
	Failovers          []FailoverResult `json:"failovers"`
	// FailoverTally is the failover producer's records over all rounds,
	// checked against the end offsets of the rounds' partitions.
	FailoverTally *FailoverTally `json:"failover_tally,omitempty"`

	CPU       CPUUse         `json:"cpu"` // Broker sums every broker process, killed ones included
	Shutdowns []ShutdownInfo `json:"shutdowns,omitempty"`
	Elapsed   time.Duration  `json:"elapsed_ns"`
	Errors    []string       `json:"errors,omitempty"`
}

// ClusterRun is one produce run on the cluster.
type ClusterRun struct {
	RF int16 `json:"replication_factor"`
	// FirstWrite is from the topic's creation to one acks=all record
	// acknowledged on each partition, before the run (and not in it): the
	// first writes to a new replicated topic wait for its followers.
	FirstWrite time.Duration `json:"first_write_ns"`
	Produce    ProduceResult `json:"produce"`
}

// FailoverResult is one failover round: kill -9 of the leader of that
// round's single-partition topic.
type FailoverResult struct {
	Killed int32 `json:"killed"`
	// KilledController says the killed broker was also the active
	// controller (the Raft leader): the quorum had to elect another one
	// before anything could be fenced.
	KilledController bool  `json:"killed_controller"`
	NewLeader        int32 `json:"new_leader"`
	NewLeaderEpoch   int32 `json:"new_leader_epoch"`
	// FirstAck is from sending SIGKILL to the acknowledgement of the
	// first record produced after the broker was gone, which only the new
	// leader can have given.
	FirstAck time.Duration `json:"kill_to_first_ack_ns"`
	// MetadataLeader is from SIGKILL to the first Metadata answer naming
	// another leader (polled every 20 ms); 0 when no poll saw it within a
	// second of the first ack.
	MetadataLeader time.Duration `json:"kill_to_metadata_leader_ns"`
	// Rejoin is from the restart of the killed broker to its return to
	// the partition's ISR.
	Rejoin time.Duration `json:"restart_to_isr_ns"`
	Failed int64         `json:"failed_records"` // records that failed from the kill to the rejoin
	Error  string        `json:"error,omitempty"`
}

// FailoverTally checks that no acknowledged write was lost: the failover
// topics' partitions (one per round) must hold at least the records
// acknowledged, and at most the failed ones more (an idempotent producer
// writes no duplicates; a record that failed in the client may still have
// been written).
type FailoverTally struct {
	Acked    int64  `json:"acked"`
	Failed   int64  `json:"failed"`
	FirstErr string `json:"first_error,omitempty"`
	// Partitions is how many partitions EndOffset sums (one per round's
	// topic); the producer writes each from offset 0.
	Partitions int   `json:"partitions"`
	EndOffset  int64 `json:"end_offset"`
}

// Lost is how many acknowledged records the partitions are short of; a
// positive value means the cluster lost acknowledged writes.
func (t FailoverTally) Lost() int64 { return max(0, t.Acked-t.EndOffset) }

// Extra is how many more records the partitions hold than were
// acknowledged; more than Failed means duplicates.
func (t FailoverTally) Extra() int64 { return max(0, t.EndOffset-t.Acked) }

// clusterNode is one member: its spec, reused to restart it on the same
// data dir and ports, and its current process (nil while it is down).
type clusterNode struct {
	id   int32
	spec brokerSpec
	proc *brokerProcess
}

// benchCluster is three bin/strata processes forming one cluster, each
// a broker and a voter of the metadata quorum.
type benchCluster struct {
	log   *slog.Logger
	root  string
	nodes []*clusterNode
	seeds []string
	// brokerCPU sums the CPU time of broker processes that have exited.
	brokerCPU time.Duration
}

// kafkaSessionTimeout is Kafka's default broker.session.timeout.ms.
const kafkaSessionTimeout = 9 * time.Second

// stablePortFloor is the lowest port stablePort picks: clear of the
// well-known and the commonly configured ones.
const stablePortFloor = 20000

// ephemeralPortLow is the first port of the kernel's ephemeral range
// (ports given to outgoing connections and to listeners on port 0), or
// Linux's default when it cannot be read.
func ephemeralPortLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	low, _, err := parsePortRange(string(b))
	if err != nil {
		return 32768
	}
	return low
}

// parsePortRange parses ip_local_port_range: two numbers, low and high.
func parsePortRange(s string) (low, high int, err error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("port range %q: want two numbers", s)
	}
	if low, err = strconv.Atoi(f[0]); err == nil {
		high, err = strconv.Atoi(f[1])
	}
	if err != nil || low < 1 || high > 65535 || low > high {
		return 0, 0, fmt.Errorf("port range %q: not low <= high within 1-65535", s)
	}
	return low, high, nil
}

// stablePort returns a loopback port that is free now, below low (the
// start of the ephemeral range) and not in taken, and adds it to taken;
// when there is no room below low, it falls back to a port the kernel
// picks.
func stablePort(low int, taken map[int]bool) (int, error) {
	if low-stablePortFloor < 1000 {
		return freePort()
	}
	for range 100 {
		p := stablePortFloor + mrand.IntN(low-stablePortFloor)
		if taken[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // in use: try another
		}
		ln.Close()
		taken[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("no free port found in %d-%d", stablePortFloor, low-1)
}

// clusterVoters formats --controller-voters: id@host:port,...
func clusterVoters(ids []int32, addrs []string) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%d@%s", id, addrs[i])
	}
	return strings.Join(parts, ",")
}

// clusterSettings are the --set arguments of every node.
func clusterSettings(session, heartbeat time.Duration) []string {
	return []string{
		"broker.session.timeout.ms=" + strconv.FormatInt(session.Milliseconds(), 10),
		"broker.heartbeat.interval.ms=" + strconv.FormatInt(heartbeat.Milliseconds(), 10),
		"default.replication.factor=" + strconv.Itoa(clusterRF),
		"min.insync.replicas=" + strconv.Itoa(clusterMinIR),
	}
}

// startCluster starts the nodes at once (each waits for the quorum to
// form) and returns when every broker is registered and unfenced.
func startCluster(ctx context.Context, log *slog.Logger, cfg Config, sets []string) (*benchCluster, error) {
	root, err := os.MkdirTemp(cfg.DataRoot, "strata-bench-cluster-*")
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	c := &benchCluster{log: log, root: root}
	ids := make([]int32, clusterNodes)
	ctrl := make([]string, clusterNodes)
	// A killed node restarts on its ports: they are taken below the
	// ephemeral range, where no outgoing connection (the other nodes
	// dialling the dead one's Raft port included) can be given one of
	// them meanwhile and make the restart fail with "address already in
	// use".
	low, taken := ephemeralPortLow(), map[int]bool{}
	for i := range ids {
		ids[i] = int32(i + 1)
		kp, err := stablePort(low, taken)
		if err == nil {
			var cp int
			cp, err = stablePort(low, taken)
			ctrl[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(cp))
			c.seeds = append(c.seeds, net.JoinHostPort("127.0.0.1", strconv.Itoa(kp)))
		}
		if err != nil {
			os.RemoveAll(root)
			return nil, fmt.Errorf("free port: %w", err)
		}
	}
	voters := clusterVoters(ids, ctrl)
	for i, id := range ids {
		dir := filepath.Join(root, "node-"+strconv.Itoa(int(id)))
		if err := os.Mkdir(dir, 0o755); err != nil {
			os.RemoveAll(root)
			return nil, fmt.Errorf("data dir: %w", err)
		}
		c.nodes = append(c.nodes, &clusterNode{id: id, spec: brokerSpec{
			Bin: cfg.BrokerBin, DataDir: dir, NodeID: id, Addr: c.seeds[i], Ready: cfg.ReadyTimeout,
			Flags: []string{"--controller-listen", ctrl[i], "--controller-voters", voters},
			Sets:  sets,
		}})
	}
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Go(func() { n.proc, errs[i] = startBrokerSpec(ctx, log, n.spec) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.stop()
		return nil, err
	}
	if err := c.waitBrokers(ctx, cfg.ReadyTimeout); err != nil {
		err = fmt.Errorf("%w\n%s", err, c.logs())
		c.stop()
		return nil, err
	}
	return c, nil
}

// waitBrokers polls Metadata until it lists every node: Kafka leaves
// fenced brokers out, so this is every broker registered and unfenced.
func (c *benchCluster) waitBrokers(ctx context.Context, timeout time.Duration) error {
	adm, err := newPollClient(c.seeds)
	if err != nil {
		return err
	}
	defer adm.Close()
	var seen int
	err = pollUntil(ctx, timeout, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		md, err := requestMetadata(ctx, adm, -1)
		if err != nil {
			return false, nil
		}
		seen = len(md.Brokers)
		return seen == len(c.nodes), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %d brokers in Metadata (last saw %d): %w", len(c.nodes), seen, err)
	}
	return nil
}

// stop stops every running node at once (a node stopping alone waits for
// the others' quorum) and removes the data dirs. It returns how each
// ended and an error per node that did not stop cleanly.
func (c *benchCluster) stop() ([]ShutdownInfo, []error) {
	infos := make([]ShutdownInfo, len(c.nodes))
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		if n.proc == nil {
			continue
		}
		wg.Go(func() {
			info, err := n.proc.stop(c.log, clusterStopGrace)
			infos[i] = info
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("node %d: %w\nbroker output (last lines):\n%s", n.id, err, n.proc.stderr.LastLines(brokerOutputLines))
			case !info.Clean:
				errs[i] = fmt.Errorf("node %d did not exit cleanly on SIGTERM: %s\nbroker output (last lines):\n%s", n.id, info.Exit, n.proc.stderr.LastLines(brokerOutputLines))
			}
		})
	}
	wg.Wait()
	var out []ShutdownInfo
	var failed []error
	for i, n := range c.nodes {
		if n.proc == nil {
			continue
		}
		c.brokerCPU += n.proc.cpu()
		n.proc = nil
		out = append(out, infos[i])
		if errs[i] != nil {
			failed = append(failed, errs[i])
		}
	}
	os.RemoveAll(c.root)
	return out, failed
}

// node returns the member with id, or nil.
func (c *benchCluster) node(id int32) *clusterNode {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// running lists the ids of the nodes whose process runs.
func (c *benchCluster) running() []int32 {
	var ids []int32
	for _, n := range c.nodes {
		if n.proc != nil {
			ids = append(ids, n.id)
		}
	}
	return ids
}

// logs quotes the last lines of every running node's output, for an
// error that the cluster, not the bench, is the likely cause of.
func (c *benchCluster) logs() string {
	var b strings.Builder
	for _, n := range c.nodes {
		if n.proc == nil {
			fmt.Fprintf(&b, "node %d: not running\n", n.id)
			continue
		}
		fmt.Fprintf(&b, "node %d output (last lines):\n%s\n", n.id, n.proc.stderr.LastLines(brokerOutputLines))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// runCluster is the cluster run; errors are recorded in the result, which
// is always returned.
func runCluster(ctx context.Context, log *slog.Logger, cfg Config, runID string) (res *ClusterResult) {
	started, cpuStart := time.Now(), selfCPU()
	sets := clusterSettings(cfg.ClusterSessionTimeout, cfg.ClusterHeartbeat)
	res = &ClusterResult{
		Nodes: clusterNodes, Partitions: cfg.Partitions, MinISR: clusterMinIR, Settings: sets,
		SessionTimeout: cfg.ClusterSessionTimeout, Heartbeat: cfg.ClusterHeartbeat,
		FailoverRate: int(time.Second / failoverInterval), FailoverRecordSize: failoverRecordSize,
	}
	fail := func(what string, err error) {
		log.Error("cluster", "step", what, "err", err)
		res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", what, err))
	}
	log.Info("cluster: starting brokers", "nodes", clusterNodes, "settings", sets)
	c, err := startCluster(ctx, log, cfg, sets)
	if err != nil {
		fail("start cluster", err)
		res.Elapsed = time.Since(started)
		return res
	}
	defer func() {
		infos, errs := c.stop()
		res.Shutdowns = infos
		for _, err := range errs {
			fail("stop", err)
		}
		res.Elapsed = time.Since(started)
		res.CPU = CPUUse{Wall: res.Elapsed, Broker: c.brokerCPU, Bench: selfCPU() - cpuStart}
	}()
	log.Info("cluster: ready", "brokers", strings.Join(c.seeds, ","))

	adm, err := newPollClient(c.seeds)
	if err != nil {
		fail("client", err)
		return res
	}
	defer adm.Close()
	// newTopic creates a topic and writes to each partition once, so a
	// run starts on replicas that are already fetching; it returns how
	// long that first write took after the creation.
	newTopic := func(name string, partitions int32, rf int16) (string, time.Duration, error) {
		t := fmt.Sprintf("strata-bench-%s-cluster-%s", runID, name)
		// The brokers' min.insync.replicas (2) would refuse every acks=all
		// write to an RF=1 topic, as Kafka does: such a topic takes 1.
		configs := map[string]string{"min.insync.replicas": strconv.Itoa(min(int(rf), clusterMinIR))}
		if err := createTopicWith(ctx, c.seeds, t, partitions, rf, configs); err != nil {
			return "", 0, err
		}
		start := time.Now()
		if err := waitInSync(ctx, adm, c.running(), t, partitions, int(rf), clusterISRTimeout); err != nil {
			return "", 0, err
		}
		inSync := time.Since(start)
		err := warmTopic(ctx, c.seeds, t, partitions)
		log.Info("cluster: topic ready", "topic", t, "in_sync_after", inSync, "first_write_after", time.Since(start))
		return t, time.Since(start), err
	}

	// Each kind of run on RF=1 and then on RF=3, so that the two rows
	// compared are measured next to each other in time.
	size := cfg.RecordSizes[0]
	type run struct {
		name string
		spec produceSpec
	}
	var runs []run
	if cfg.ClusterLatencyRate > 0 {
		runs = append(runs, run{name: "latency", spec: produceSpec{
			RecordSize: size, AcksAll: true, Producers: 1, Duration: cfg.ClusterDuration,
			Rate: cfg.ClusterLatencyRate, Window: max(cfg.ClusterLatencyRate, 64), Linger: 0,
		}})
	}
	runs = append(runs, run{name: fmt.Sprintf("%db", size), spec: produceSpec{
		RecordSize: size, AcksAll: true, Producers: cfg.Producers, Duration: cfg.ClusterDuration,
		Window: windowRecords(cfg, size), Linger: -1,
	}})
	for _, r := range runs {
		for _, rf := range []int16{1, clusterRF} {
			if ctx.Err() != nil {
				return res
			}
			name := fmt.Sprintf("%s-rf%d", r.name, rf)
			topic, firstWrite, err := newTopic(name, cfg.Partitions, rf)
			if err != nil {
				fail("produce "+name, err)
				continue
			}
			spec := r.spec
			spec.Topic = topic
			log.Info("cluster: produce run", "rf", rf, "size", spec.RecordSize, "rate", spec.Rate, "for", spec.Duration)
			// Bounded, so that a cluster that stops acknowledging ends the
			// run with its logs instead of hanging the bench.
			runCtx, cancel := context.WithTimeout(ctx, spec.Duration+clusterDrainTimeout)
			p, err := runProduce(runCtx, c.seeds, spec)
			cancel()
			if err != nil {
				fail("produce "+name, fmt.Errorf("%w\n%s", err, c.logs()))
			}
			res.Runs = append(res.Runs, ClusterRun{RF: rf, FirstWrite: firstWrite, Produce: p})
			logProduce(log, fmt.Sprintf("cluster-rf%d", rf), p)
		}
	}

	if cfg.ClusterFailovers > 0 && ctx.Err() == nil {
		runFailovers(ctx, log, cfg, c, adm, runID, res, fail)
	}
	return res
}

// warmTopic writes one acks=all record to each partition of topic and
// waits for them all.
func warmTopic(ctx context.Context, seeds []string, topic string, partitions int32) error {
	cl, err := kgo.NewClient(append(producerOpts(seeds, produceSpec{Topic: topic, AcksAll: true, Window: 64, Linger: 0}),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, clusterISRTimeout)
	defer cancel()
	recs := make([]*kgo.Record, partitions)
	for i := range recs {
		recs[i] = &kgo.Record{Partition: int32(i), Value: []byte("warm-up")}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("first write to %s: %w", topic, err)
	}
	return nil
}

// windowRecords is how many records of size bytes a saturating producer
// keeps awaiting acknowledgement.
func windowRecords(cfg Config, size int) int { return max(64, cfg.WindowBytes/size) }

// failoverWatch is the failover producer's tally, written by its promise
// goroutine. While armed it waits for the first acknowledgement of a
// record produced after a moment: the leader's death, or the switch to a
// new topic.
type failoverWatch struct {
	mu       sync.Mutex
	acked    int64
	failed   int64
	firstErr error
	// after arms the watch: the first record produced later that is
	// acknowledged sets firstAck. The zero time disarms.
	after    time.Time
	firstAck time.Time
	ackedCh  chan struct{} // closed at firstAck
}

func (w *failoverWatch) promise(r *kgo.Record, err error) {
	now := time.Now()
	s := r.Context.(*slot)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.failed++
		if w.firstErr == nil {
			w.firstErr = err
		}
		return
	}
	w.acked++
	if !w.after.IsZero() && s.start.After(w.after) && w.firstAck.IsZero() {
		w.firstAck = now
		close(w.ackedCh)
	}
}

// arm starts waiting for a new first acknowledgement; nothing counts
// until start is called.
func (w *failoverWatch) arm() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.after, w.firstAck = time.Time{}, time.Time{}
	w.ackedCh = make(chan struct{})
	return w.ackedCh
}

// start counts records produced after after.
func (w *failoverWatch) start(after time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.after = after
}

func (w *failoverWatch) snapshot() (acked, failed int64, firstAck time.Time, firstErr error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked, w.failed, w.firstAck, w.firstErr
}

// failoverWriter is the steady producer of the failover rounds: one
// record every failoverInterval to the current round's topic.
type failoverWriter struct {
	cl    *kgo.Client
	w     *failoverWatch
	value []byte
	topic atomic.Pointer[string]
	stop  chan struct{}
	done  sync.WaitGroup
}

func (fw *failoverWriter) run(ctx context.Context) {
	fw.done.Go(func() {
		t := time.NewTicker(failoverInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-fw.stop:
				return
			case <-ctx.Done():
				return
			}
			topic := fw.topic.Load()
			if topic == nil {
				continue
			}
			s := &slot{Context: context.Background()}
			s.rec = kgo.Record{Topic: *topic, Value: fw.value, Context: s}
			s.start = time.Now()
			fw.cl.Produce(ctx, &s.rec, fw.w.promise)
		}
	})
}

// switchTo moves the writer to topic and waits for a record produced
// there to be acknowledged: the client has the topic's metadata and the
// replicas are fetching, so a kill is timed from a steady state.
func (fw *failoverWriter) switchTo(ctx context.Context, topic string, timeout time.Duration) error {
	acked := fw.w.arm()
	fw.topic.Store(&topic)
	fw.w.start(time.Now())
	select {
	case <-acked:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("no write to %s acknowledged within %s", topic, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// failoverVictim picks the broker a round kills: every second round the
// active controller (which also makes the quorum elect a new one), the
// other rounds a broker that is not the controller, in turn. ok is false
// when controller is not a node of the cluster.
func failoverVictim(round int, controller int32, ids []int32) (victim int32, ok bool) {
	if !slices.Contains(ids, controller) {
		return 0, false
	}
	if round%2 == 1 {
		return controller, true
	}
	var others []int32
	for _, id := range ids {
		if id != controller {
			others = append(others, id)
		}
	}
	return others[(round/2)%len(others)], true
}

// assignLeaderFirst is a replica list led by victim: Kafka makes the
// first replica of a new partition its leader.
func assignLeaderFirst(victim int32, ids []int32) []int32 {
	out := []int32{victim}
	for _, id := range ids {
		if id != victim {
			out = append(out, id)
		}
	}
	return out
}

// runFailovers runs cfg.ClusterFailovers rounds, each on a new
// single-partition RF=3 topic whose leader is the broker that round
// kills, while a producer writes to it; it times each kill to the first
// acknowledged write on the new leader and restarts the killed broker
// before the next round.
func runFailovers(ctx context.Context, log *slog.Logger, cfg Config, c *benchCluster, adm *kgo.Client, runID string, res *ClusterResult, fail func(string, error)) {
	value := make([]byte, failoverRecordSize)
	if _, err := rand.Read(value); err != nil {
		fail("failover", err)
		return
	}
	opts := append(producerOpts(c.seeds, produceSpec{AcksAll: true, Window: 1 << 20, Linger: 0}),
		kgo.RetryBackoffFn(func(int) time.Duration { return failoverRetryBackoff }),
		kgo.MetadataMinAge(failoverMetadataMinAge), kgo.MetadataMaxAge(failoverMetadataMaxAge),
		// Fail a record rather than hang the bench when the cluster
		// never recovers; a failover normally takes seconds.
		kgo.RecordDeliveryTimeout(cfg.ClusterSessionTimeout+failoverAckGrace))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		fail("failover producer", err)
		return
	}
	defer cl.Close()
	fw := &failoverWriter{cl: cl, w: &failoverWatch{}, value: value, stop: make(chan struct{})}
	fw.run(ctx)

	log.Info("cluster: failovers", "rounds", cfg.ClusterFailovers, "session_timeout", cfg.ClusterSessionTimeout)
	var topics []string
	for i := range cfg.ClusterFailovers {
		if ctx.Err() != nil {
			break
		}
		topic := fmt.Sprintf("strata-bench-%s-cluster-failover-%d", runID, i+1)
		fr := failoverRound(ctx, log, cfg, c, adm, fw, i, topic)
		if fr.Error != "" && !fr.created {
			fail(fmt.Sprintf("failover %d", i+1), errors.New(fr.Error))
			break
		}
		topics = append(topics, topic)
		res.Failovers = append(res.Failovers, fr.FailoverResult)
		if fr.Error != "" {
			fail(fmt.Sprintf("failover %d", i+1), errors.New(fr.Error))
			break
		}
		log.Info("cluster: failover", "round", i+1, "killed", fr.Killed, "controller", fr.KilledController,
			"new_leader", fr.NewLeader, "kill_to_first_ack", fr.FirstAck, "kill_to_metadata", fr.MetadataLeader,
			"rejoin", fr.Rejoin, "failed", fr.Failed)
	}
	close(fw.stop)
	fw.done.Wait()
	flushCtx, cancel := context.WithTimeout(ctx, cfg.ClusterSessionTimeout+failoverAckGrace)
	err = cl.Flush(flushCtx)
	cancel()
	if err != nil {
		fail("failover producer flush", err)
	}
	if len(topics) == 0 {
		return
	}
	acked, failed, _, firstErr := fw.w.snapshot()
	tally := &FailoverTally{Acked: acked, Failed: failed}
	if firstErr != nil {
		tally.FirstErr = firstErr.Error()
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		fail("failover end offsets", err)
		return
	}
	ends.Each(func(o kadm.ListedOffset) {
		tally.EndOffset += o.Offset
		tally.Partitions++
	})
	res.FailoverTally = tally
	if tally.Lost() > 0 {
		fail("failover", errors.New("failover producer: "+tally.describe()))
	}
}

// roundResult is a FailoverResult and whether its topic was created
// (and so is written to and counted in the tally).
type roundResult struct {
	FailoverResult
	created bool
}

// failoverRound is one round: a new topic led by the round's victim, the
// writer moved to it, the kill, the first acknowledged write after it,
// and the restart of the killed broker.
func failoverRound(ctx context.Context, log *slog.Logger, cfg Config, c *benchCluster, adm *kgo.Client, fw *failoverWriter, round int, topic string) (fr roundResult) {
	errf := func(format string, args ...any) roundResult {
		fr.Error = fmt.Sprintf(format, args...) + "\n" + c.logs()
		return fr
	}
	ids := make([]int32, len(c.nodes))
	for i, n := range c.nodes {
		ids[i] = n.id
	}
	md, err := requestMetadata(ctx, adm, -1)
	if err != nil {
		return errf("metadata: %v", err)
	}
	victimID, ok := failoverVictim(round, md.Controller, ids)
	if !ok {
		return errf("Metadata names controller %d, not a node of the cluster", md.Controller)
	}
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = topic, -1, -1
	a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	a.Partition, a.Replicas = 0, assignLeaderFirst(victimID, ids)
	t.ReplicaAssignment = []kmsg.CreateTopicsRequestTopicReplicaAssignment{a}
	if err := createTopicReq(ctx, c.seeds, t, nil); err != nil {
		return errf("%v", err)
	}
	fr.created = true
	if err := waitInSync(ctx, adm, c.running(), topic, 1, clusterRF, clusterISRTimeout); err != nil {
		return errf("%v", err)
	}
	if err := fw.switchTo(ctx, topic, clusterISRTimeout); err != nil {
		return errf("%v", err)
	}
	// The leader and controller are read again just before the kill:
	// either may have moved since the topic was created.
	md, err = requestMetadata(ctx, adm, -1, topic)
	if err != nil {
		return errf("metadata: %v", err)
	}
	p, _ := md.partition(topic, 0)
	fr.Killed, fr.KilledController = p.Leader, p.Leader == md.Controller
	victim := c.node(p.Leader)
	if victim == nil || victim.proc == nil {
		return errf("leader %d of %s is not a running node of the bench's cluster", p.Leader, topic)
	}
	_, failedBefore, _, _ := fw.w.snapshot()

	acked := fw.w.arm()
	// Poll the leader from the kill on, to tell the cluster's part of the
	// failover (fencing, election) from the client's.
	metaSeen := make(chan time.Time, 1)
	pollCtx, stopPoll := context.WithCancel(ctx)
	var poller sync.WaitGroup
	defer func() {
		stopPoll()
		poller.Wait()
	}()
	poller.Go(func() {
		_ = pollUntil(pollCtx, time.Hour, failoverPoll, func(ctx context.Context) (bool, error) {
			m, err := requestMetadata(ctx, adm, -1, topic)
			if err != nil {
				return false, nil
			}
			if q, ok := m.partition(topic, 0); ok && q.Leader >= 0 && q.Leader != fr.Killed {
				metaSeen <- time.Now()
				return true, nil
			}
			return false, nil
		})
	})

	log.Info("cluster: killing the partition leader", "node", victim.id, "controller", fr.KilledController, "topic", topic)
	killedAt, err := victim.proc.kill()
	if err != nil {
		return errf("kill node %d: %v", victim.id, err)
	}
	// Reaped: a record produced from now on cannot be acknowledged by it.
	fw.w.start(time.Now())
	c.brokerCPU += victim.proc.cpu()
	victim.proc = nil

	timeout := cfg.ClusterSessionTimeout + failoverAckGrace
	select {
	case <-acked:
	case <-time.After(timeout):
		return errf("no write produced after the kill of node %d was acknowledged within %s", victim.id, timeout)
	case <-ctx.Done():
		return errf("%v", ctx.Err())
	}
	_, _, firstAck, _ := fw.w.snapshot()
	fr.FirstAck = firstAck.Sub(killedAt)
	// The poll may lag the producer by a period or so; give it a moment
	// rather than report nothing.
	select {
	case at := <-metaSeen:
		fr.MetadataLeader = at.Sub(killedAt)
	case <-time.After(time.Second):
	}
	stopPoll()

	// Which broker acknowledged: the killed one is gone, so it is the one
	// Metadata now names; check it is another replica.
	var after partitionView
	err = pollUntil(ctx, 5*time.Second, failoverPoll, func(ctx context.Context) (bool, error) {
		m, err := requestMetadata(ctx, adm, -1, topic)
		if err != nil {
			return false, nil
		}
		q, ok := m.partition(topic, 0)
		after = q
		return ok && q.Leader >= 0 && q.Leader != fr.Killed, nil
	})
	if err != nil {
		return errf("a write was acknowledged %s after the kill, but Metadata still names leader %d (epoch %d, isr %v): %v",
			fr.FirstAck, after.Leader, after.Epoch, after.ISR, err)
	}
	fr.NewLeader, fr.NewLeaderEpoch = after.Leader, after.Epoch

	restartAt := time.Now()
	log.Info("cluster: restarting the killed broker", "node", victim.id)
	proc, err := startBrokerSpec(ctx, log, victim.spec)
	if err != nil {
		return errf("restart node %d: %v", victim.id, err)
	}
	victim.proc = proc
	// Back in the ISR: the next round starts with three live brokers.
	err = pollUntil(ctx, clusterISRTimeout, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		m, err := requestMetadata(ctx, adm, -1, topic)
		if err != nil {
			return false, nil
		}
		q, ok := m.partition(topic, 0)
		after = q
		return ok && slices.Contains(q.ISR, victim.id), nil
	})
	if err != nil {
		return errf("node %d restarted but did not rejoin the ISR (last: leader %d, isr %v): %v", victim.id, after.Leader, after.ISR, err)
	}
	fr.Rejoin = time.Since(restartAt)
	_, failedAfter, _, _ := fw.w.snapshot()
	fr.Failed = failedAfter - failedBefore
	return fr
}

// writeCluster prints the cluster section: RF=1 and RF=3 side by side,
// how they compare, and the failovers.
func writeCluster(b *strings.Builder, c *ClusterResult) {
	fmt.Fprintf(b, "\nCluster (%d brokers on this machine, each also a metadata quorum voter; acks=all, idempotent producer; min.insync.replicas=%d; %d partitions per topic)\n",
		c.Nodes, c.MinISR, c.Partitions)
	if len(c.Runs) > 0 {
		tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "RF\tsize\trate\tproducers\tMB/s\trecords/s\tp50\tp99\tp99.9\tmax\terrors\t")
		for _, r := range c.Runs {
			p := r.Produce
			fmt.Fprintf(tw, "%d\t%dB\t%s\t%d\t%.1f\t%.0f\t%s\t%s\t%s\t%s\t%d\t\n",
				r.RF, p.RecordSize, formatRate(p.TargetRate), p.Producers, p.MBps, p.RecordsPS,
				formatLatency(p.Latency.P50), formatLatency(p.Latency.P99), formatLatency(p.Latency.P999), formatLatency(p.Latency.Max), p.Errors)
		}
		tw.Flush()
		for _, line := range compareRF(c.Runs) {
			fmt.Fprintf(b, "  %s\n", line)
		}
	}
	if len(c.Failovers) > 0 {
		fmt.Fprintf(b, "\nLeader failover (kill -9 of the leader of a 1-partition RF=%d topic while one producer writes %d records/s of %dB, acks=all)\n",
			clusterRF, c.FailoverRate, c.FailoverRecordSize)
		tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "round\tkilled\twas controller\tnew leader\tkill -> leader in metadata\tkill -> first ack\trestart -> in ISR\tfailed records\terror\t")
		for i, f := range c.Failovers {
			// A failed round shows what it measured before it failed.
			killed, leader, failed, errCol := "-", "-", "-", "-"
			if f.Killed > 0 {
				killed = strconv.Itoa(int(f.Killed))
			}
			if f.NewLeader > 0 {
				leader = strconv.Itoa(int(f.NewLeader))
			}
			if f.Error == "" {
				failed = strconv.FormatInt(f.Failed, 10)
			} else {
				errCol = "see notes"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", i+1, killed, yesNo(f.KilledController), leader,
				formatLatency(f.MetadataLeader), formatLatency(f.FirstAck), formatLatency(f.Rejoin), failed, errCol)
		}
		tw.Flush()
	}
	which := "Kafka's default"
	if c.SessionTimeout != kafkaSessionTimeout {
		which = "Kafka's default is 9000; lowered here so that a failover takes seconds"
	}
	fmt.Fprintf(b, "  broker.session.timeout.ms=%d (%s), broker.heartbeat.interval.ms=%d:\n",
		c.SessionTimeout.Milliseconds(), which, c.Heartbeat.Milliseconds())
	b.WriteString("  the controller moves a dead broker's leaderships once it fences it for missed heartbeats, so a failover takes at least about the session timeout\n")
	if t := c.FailoverTally; t != nil {
		fmt.Fprintf(b, "  failover producer: %s\n", t.describe())
	}
}

// clusterNotes are the Notes lines of the cluster run.
func clusterNotes(c *ClusterResult, cpus int) []string {
	if c == nil {
		return nil
	}
	notes := []string{"cluster broker settings: " + strings.Join(c.Settings, " ")}
	if u := c.CPU; u.Wall > 0 {
		notes = append(notes, fmt.Sprintf("cluster CPU over %s wall: brokers %s, bench %s (of %s available)",
			u.Wall.Round(time.Second), u.Broker.Round(100*time.Millisecond), u.Bench.Round(100*time.Millisecond),
			(u.Wall*time.Duration(cpus)).Round(time.Second)))
	}
	var first []string
	for _, r := range c.Runs {
		if r.FirstWrite > 0 {
			first = append(first, fmt.Sprintf("RF=%d %s %s", r.RF, formatRate(r.Produce.TargetRate), formatLatency(r.FirstWrite)))
		}
	}
	if len(first) > 0 {
		notes = append(notes, "cluster topics, from creation to a first acks=all write acknowledged on every partition (before each run, not in its figures): "+strings.Join(first, ", "))
	}
	for i, s := range c.Shutdowns {
		notes = append(notes, fmt.Sprintf("cluster broker %d of %d SIGTERM -> %s in %s", i+1, len(c.Shutdowns), s.Exit, s.Elapsed.Round(time.Millisecond)))
	}
	for _, r := range c.Runs {
		if p := r.Produce; p.FirstError != "" {
			notes = append(notes, fmt.Sprintf("cluster produce RF=%d %dB %s first error: %s", r.RF, p.RecordSize, formatRate(p.TargetRate), p.FirstError))
		}
	}
	if t := c.FailoverTally; t != nil && t.FirstErr != "" {
		notes = append(notes, "cluster failover producer first error: "+t.FirstErr)
	}
	for _, e := range c.Errors {
		notes = append(notes, "cluster error: "+e)
	}
	return notes
}

// describe says what the failover producer's tally shows.
func (t FailoverTally) describe() string {
	s := fmt.Sprintf("%d records acknowledged, %d failed; the end offsets of its %d partitions add up to %d", t.Acked, t.Failed, t.Partitions, t.EndOffset)
	if t.Partitions == 1 {
		s = fmt.Sprintf("%d records acknowledged, %d failed; its partition ends at offset %d", t.Acked, t.Failed, t.EndOffset)
	}
	switch {
	case t.Lost() > 0:
		return s + fmt.Sprintf(": %d ACKNOWLEDGED RECORDS LOST", t.Lost())
	case t.Extra() > t.Failed:
		return s + fmt.Sprintf(": no acknowledged record lost, but %d more records than acknowledged or failed (duplicates)", t.Extra()-t.Failed)
	default:
		return s + ": no acknowledged record lost"
	}
}

// compareRF sets each RF=3 run against the RF=1 run of the same kind
// (record size and rate): at a fixed rate only latency tells them apart;
// unbounded, throughput too.
func compareRF(runs []ClusterRun) []string {
	var out []string
	for _, r3 := range runs {
		if r3.RF == 1 {
			continue
		}
		for _, r1 := range runs {
			a, b := r1.Produce, r3.Produce
			if r1.RF != 1 || a.RecordSize != b.RecordSize || a.TargetRate != b.TargetRate {
				continue
			}
			line := fmt.Sprintf("RF=%d against RF=1, %dB at %s:", r3.RF, b.RecordSize, formatRate(b.TargetRate))
			if b.TargetRate == 0 {
				line += " throughput " + formatRatio(b.MBps, a.MBps) + ","
			}
			line += " p99 " + formatTimes(b.Latency.P99, a.Latency.P99)
			out = append(out, line)
			break
		}
	}
	return out
}

// formatTimes is how many times a is b, e.g. "2.3x", or "-".
func formatTimes(a, b time.Duration) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fx", float64(a)/float64(b))
}

// formatRate is a produce run's rate: records/s, or "max".
func formatRate(rate int) string {
	if rate > 0 {
		return fmt.Sprintf("%d/s", rate)
	}
	return "max"
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}
