package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Config is one bench run. DefaultConfig gives the `make bench` run.
type Config struct {
	// Brokers, when set, are the seeds of an already running broker; the
	// bench then runs one mode, ExternalMode, and starts nothing.
	Brokers      []string
	ExternalMode string
	// BrokerBin is started (built first with `go build ./cmd/strata` when
	// it is missing and BuildBroker is set) once per mode in Modes.
	BrokerBin   string
	BuildBroker bool
	Modes       []string
	// DataRoot holds the broker data dirs and the limit measurements'
	// files, so the fsync limit is measured on the broker's filesystem.
	DataRoot string

	Duration        time.Duration // each throughput run
	RecordSizes     []int
	Partitions      int32
	Producers       int
	WindowBytes     int // records awaiting acknowledgement per producer, in bytes
	LatencyRate     int // records/s of the acks=all latency run; 0 skips it
	LatencySize     int
	LatencyDuration time.Duration
	LimitDuration   time.Duration // each machine limit measurement
	ConsumeTimeout  time.Duration // per topic
	ReadyTimeout    time.Duration

	// ColdRead adds the cold-read run (a broker of its own tiering to a
	// versitygw S3 server; see runColdRead) after the modes; ColdOnly runs
	// it alone, without the machine limits and the modes.
	ColdRead           bool
	ColdOnly           bool
	ColdBytes          int64 // record bytes produced and read back
	ColdPartitions     int32
	ColdSegmentBytes   int64
	ColdGetConcurrency int   // raw GETs in flight
	ColdGetRangeBytes  int64 // bytes per raw GET
	ColdTierTimeout    time.Duration
	Versitygw          string // binary; "" = PATH, then $(go env GOPATH)/bin

	// Cluster adds the cluster run (three brokers of its own: RF=1 against
	// RF=3 with acks=all, then leader failovers; see runCluster) after the
	// modes; ClusterOnly runs it alone (with ColdOnly too: those two).
	Cluster     bool
	ClusterOnly bool
	// ClusterDuration is each produce run on the cluster.
	ClusterDuration time.Duration
	// ClusterLatencyRate is the records/s of the fixed-rate run on each
	// replication factor; 0 skips it.
	ClusterLatencyRate int
	// ClusterFailovers is how many times the partition leader is killed.
	ClusterFailovers int
	// ClusterSessionTimeout and ClusterHeartbeat are the brokers'
	// broker.session.timeout.ms and broker.heartbeat.interval.ms.
	ClusterSessionTimeout time.Duration
	ClusterHeartbeat      time.Duration

	Logger *slog.Logger
}

// modeSettings are the broker settings of each mode the bench starts.
// Page-cache mode relaxes flush.messages as far as it goes, as an
// operator who wants Kafka's usual page-cache durability would.
var modeSettings = map[string][]string{
	ModeSafe:      nil,
	ModePageCache: {"log.flush.interval.messages=9223372036854775807"},
}

// DefaultConfig is sized to finish in about four minutes on a 2-core
// machine: 3 limits x 3 s, then per mode a 10 s latency run and four 10 s
// produce runs, each followed by reading its topic back, then the cluster
// run (about 75 s) and the cold read (under 90 s).
func DefaultConfig() Config {
	return Config{
		BrokerBin:       "bin/strata",
		BuildBroker:     true,
		Modes:           []string{ModeSafe, ModePageCache},
		ExternalMode:    ModeExternal,
		DataRoot:        os.TempDir(),
		Duration:        10 * time.Second,
		RecordSizes:     []int{1024, 100},
		Partitions:      8,
		Producers:       4,
		WindowBytes:     8 * mib,
		LatencyRate:     aimLatencyRecordRate,
		LatencySize:     1024,
		LatencyDuration: 10 * time.Second,
		LimitDuration:   3 * time.Second,
		ConsumeTimeout:  60 * time.Second,
		ReadyTimeout:    60 * time.Second,

		ColdRead:         true,
		ColdBytes:        512 * mib,
		ColdPartitions:   8,
		ColdSegmentBytes: 8 * mib,
		// The broker reads up to one ~4 MiB chunk per partition of a
		// fetch at once, plus read-ahead: 8 ranged GETs of that size in
		// flight is the same kind of load.
		ColdGetConcurrency: 8,
		ColdGetRangeBytes:  4 * mib,
		ColdTierTimeout:    60 * time.Second,

		// About 75 s here: four 6 s runs, three failovers of a few
		// seconds each plus the killed broker's restart. A session timeout
		// of 3 s (Kafka's default is 9 s) keeps a failover to seconds.
		Cluster:               true,
		ClusterDuration:       6 * time.Second,
		ClusterLatencyRate:    aimLatencyRecordRate,
		ClusterFailovers:      3,
		ClusterSessionTimeout: 3 * time.Second,
		ClusterHeartbeat:      500 * time.Millisecond,
	}
}

// Validate reports the first unusable setting.
func (c *Config) Validate() error {
	switch {
	case c.Duration <= 0:
		return errors.New("duration must be positive")
	case len(c.RecordSizes) == 0:
		return errors.New("need at least one record size")
	case c.Partitions <= 0:
		return errors.New("partitions must be positive")
	case c.Producers <= 0:
		return errors.New("producers must be positive")
	case c.WindowBytes <= 0:
		return errors.New("window must be positive")
	case c.LatencyRate < 0:
		return errors.New("latency rate must not be negative")
	case c.LatencyRate > 0 && (c.LatencySize <= 0 || c.LatencyDuration <= 0):
		return errors.New("latency run needs a positive record size and duration")
	case c.LimitDuration <= 0:
		return errors.New("limit duration must be positive")
	}
	for _, s := range c.RecordSizes {
		if s <= 0 {
			return fmt.Errorf("record size %d must be positive", s)
		}
	}
	if c.ColdRead || c.ColdOnly {
		switch {
		case len(c.Brokers) > 0 && c.ColdOnly:
			return errors.New("the cold-read run starts brokers of its own; it cannot use --brokers")
		case c.ColdBytes < coldRecordSize:
			return fmt.Errorf("cold-read bytes must be at least %d", coldRecordSize)
		case c.ColdPartitions <= 0:
			return errors.New("cold-read partitions must be positive")
		case c.ColdSegmentBytes < 14:
			return errors.New("cold-read segment bytes must be at least 14")
		case c.ColdGetConcurrency <= 0:
			return errors.New("cold-read GET concurrency must be positive")
		case c.ColdGetRangeBytes <= 0:
			return errors.New("cold-read GET range must be positive")
		case c.ColdTierTimeout <= 0:
			return errors.New("cold-read tiering timeout must be positive")
		}
	}
	if c.Cluster || c.ClusterOnly {
		switch {
		case len(c.Brokers) > 0 && c.ClusterOnly:
			return errors.New("the cluster run starts brokers of its own; it cannot use --brokers")
		case c.ClusterDuration <= 0:
			return errors.New("cluster run duration must be positive")
		case c.ClusterLatencyRate < 0:
			return errors.New("cluster latency rate must not be negative")
		case c.ClusterFailovers < 0:
			return errors.New("cluster failovers must not be negative")
		case c.ClusterHeartbeat < time.Millisecond || c.ClusterSessionTimeout <= c.ClusterHeartbeat:
			return errors.New("cluster heartbeat must be at least 1ms and below the session timeout")
		}
	}
	if len(c.Brokers) == 0 && !c.ColdOnly && !c.ClusterOnly {
		if len(c.Modes) == 0 {
			return errors.New("need at least one mode")
		}
		for _, m := range c.Modes {
			if _, ok := modeSettings[m]; !ok {
				return fmt.Errorf("unknown mode %q (want %s or %s)", m, ModeSafe, ModePageCache)
			}
		}
	}
	switch c.ExternalMode {
	case ModeSafe, ModePageCache, ModeExternal:
	default:
		return fmt.Errorf("unknown external mode %q (want %s, %s or %s)", c.ExternalMode, ModeSafe, ModePageCache, ModeExternal)
	}
	return nil
}

// Run measures the machine limits, then loads the broker in each mode,
// then (unless disabled) runs the cluster and the cold read, and returns
// the report with the aims evaluated. With ColdOnly or ClusterOnly it runs
// only those. A failing mode is
// recorded in the report and the run goes on with the next one; only
// failures that leave nothing to report are returned as errors.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Report{
		Started: time.Now(),
		Machine: describeMachine(cfg.DataRoot),
		Config: ReportConfig{
			Duration: cfg.Duration, LimitDuration: cfg.LimitDuration, RecordSizes: cfg.RecordSizes,
			Partitions: cfg.Partitions, Producers: cfg.Producers, Window: cfg.WindowBytes,
			LatencyRate: cfg.LatencyRate, LatencySize: cfg.LatencySize, LatencyDuration: cfg.LatencyDuration,
			Brokers: strings.Join(cfg.Brokers, ","),
		},
	}
	// The cold-read and cluster runs need brokers of their own; with
	// --brokers they are left out unless asked for alone (which Validate
	// refuses). Asking for one alone leaves the other out too.
	only := cfg.ColdOnly || cfg.ClusterOnly
	cold := cfg.ColdOnly || (!only && cfg.ColdRead && len(cfg.Brokers) == 0)
	cluster := cfg.ClusterOnly || (!only && cfg.Cluster && len(cfg.Brokers) == 0)
	if cold {
		// Find the S3 server before anything runs: a full run should not
		// spend minutes and then fail for want of it.
		bin, err := findVersitygw(cfg.Versitygw)
		if err != nil {
			return nil, fmt.Errorf("cold read: %w (or run with -cold-read=false)", err)
		}
		cfg.Versitygw = bin
		r.Config.ColdBytes, r.Config.ColdPartitions, r.Config.ColdSegmentBytes = cfg.ColdBytes, cfg.ColdPartitions, cfg.ColdSegmentBytes
		r.Config.ColdGetConcurrency, r.Config.ColdGetRangeBytes = cfg.ColdGetConcurrency, cfg.ColdGetRangeBytes
	}
	if len(cfg.Brokers) == 0 {
		r.Config.BrokerBin = cfg.BrokerBin
		// Build before measuring, so the compiler does not compete with
		// the limit measurements.
		if err := ensureBrokerBinary(ctx, log, cfg.BrokerBin, cfg.BuildBroker); err != nil {
			return nil, err
		}
	}

	runID := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffff)
	if !only {
		if err := runLimitsAndModes(ctx, log, cfg, r, runID); err != nil {
			return nil, err
		}
	}
	if cluster && ctx.Err() == nil {
		r.Cluster = runCluster(ctx, log, cfg, runID)
	}
	if cold && ctx.Err() == nil {
		r.ColdRead = runColdRead(ctx, log, cfg, runID)
	}
	r.Machine.LoadAvg1End = endLoadAvg()
	r.Aims = EvaluateAims(r)
	return r, ctx.Err()
}

// runLimitsAndModes measures the machine limits and then loads the
// external broker, or a broker of its own in each mode, into r.
func runLimitsAndModes(ctx context.Context, log *slog.Logger, cfg Config, r *Report, runID string) error {
	log.Info("measuring machine limits", "dir", cfg.DataRoot, "each", cfg.LimitDuration)
	lim, err := MeasureLimits(ctx, cfg.DataRoot, cfg.LimitDuration)
	if err != nil {
		return err
	}
	r.Limits = lim
	r.LimitsMBps = map[string]float64{
		"loopback_tcp": lim.LoopbackTCP.BytesPerSec() / 1e6,
		"sendfile":     lim.Sendfile.BytesPerSec() / 1e6,
		"fsync_write":  lim.FsyncWrite.BytesPerSec() / 1e6,
	}
	log.Info("machine limits", "loopback_tcp_MBps", r.LimitsMBps["loopback_tcp"],
		"sendfile_MBps", r.LimitsMBps["sendfile"], "fsync_write_MBps", r.LimitsMBps["fsync_write"])

	if len(cfg.Brokers) > 0 {
		r.Modes = append(r.Modes, runMode(ctx, log, cfg, cfg.ExternalMode, cfg.Brokers, runID, true))
		return nil
	}
	for _, mode := range cfg.Modes {
		if ctx.Err() != nil {
			break
		}
		r.Modes = append(r.Modes, runOwnBroker(ctx, log, cfg, mode, runID))
	}
	return nil
}

// runOwnBroker starts a fresh broker for mode, loads it and stops it.
func runOwnBroker(ctx context.Context, log *slog.Logger, cfg Config, mode, runID string) ModeResult {
	settings := modeSettings[mode]
	p, err := startBroker(ctx, log, cfg.BrokerBin, cfg.DataRoot, settings, cfg.ReadyTimeout)
	if err != nil {
		return ModeResult{Mode: mode, Settings: settings, Errors: []string{err.Error()}}
	}
	mr := runMode(ctx, log, cfg, mode, []string{p.addr}, runID, false)
	mr.Settings = settings
	info, err := p.stop(log, 15*time.Second)
	mr.Shutdown = &info
	mr.CPU.Broker = p.cpu()
	if err != nil {
		mr.Errors = append(mr.Errors, err.Error())
	}
	if !info.Clean && err == nil {
		mr.Errors = append(mr.Errors, "broker did not exit cleanly on SIGTERM: "+info.Exit+"\nbroker output (last lines):\n"+p.stderr.LastLines(brokerOutputLines))
	}
	return mr
}

// runMode is the load on one broker: the rate-limited latency run first,
// on a quiet broker, then for each record size and acks setting a
// saturating produce run followed by reading that topic back while it is
// still in the page cache.
func runMode(ctx context.Context, log *slog.Logger, cfg Config, mode string, seeds []string, runID string, tidy bool) (mr ModeResult) {
	mr = ModeResult{Mode: mode, Addr: strings.Join(seeds, ",")}
	wallStart, cpuStart := time.Now(), selfCPU()
	defer func() {
		mr.CPU.Wall = time.Since(wallStart)
		mr.CPU.Bench = selfCPU() - cpuStart
	}()
	var topics []string
	defer func() {
		if tidy && len(topics) > 0 {
			if err := deleteTopics(context.WithoutCancel(ctx), seeds, topics...); err != nil {
				log.Warn("deleting bench topics", "err", err)
			}
		}
	}()
	newTopic := func(name string) (string, error) {
		t := fmt.Sprintf("strata-bench-%s-%s-%s", runID, mode, name)
		if err := createTopic(ctx, seeds, t, cfg.Partitions); err != nil {
			return "", err
		}
		topics = append(topics, t)
		return t, nil
	}
	fail := func(what string, err error) {
		log.Error(what, "mode", mode, "err", err)
		mr.Errors = append(mr.Errors, fmt.Sprintf("%s: %v", what, err))
	}

	if cfg.LatencyRate > 0 {
		topic, err := newTopic("latency")
		if err != nil {
			fail("latency run", err)
		} else {
			log.Info("latency run", "mode", mode, "rate", cfg.LatencyRate, "size", cfg.LatencySize, "for", cfg.LatencyDuration)
			res, err := runProduce(ctx, seeds, produceSpec{
				Topic: topic, RecordSize: cfg.LatencySize, AcksAll: true, Producers: 1,
				Duration: cfg.LatencyDuration, Rate: cfg.LatencyRate,
				// At a fixed rate the window only has to cover the
				// records in flight; a second's worth never binds.
				Window: max(cfg.LatencyRate, 64),
				// kgo lingers 10 ms by default; a latency aim of 2 ms
				// needs records sent as soon as the previous request
				// returns, as Kafka's Java client did with linger.ms=0.
				Linger: 0,
			})
			if err != nil {
				fail("latency run", err)
			}
			mr.Latency = &res
			logProduce(log, mode, res)
		}
	}
	for _, size := range cfg.RecordSizes {
		for _, acksAll := range []bool{false, true} {
			if ctx.Err() != nil {
				return mr
			}
			name := fmt.Sprintf("%db-acks%s", size, acksName(acksAll))
			topic, err := newTopic(name)
			if err != nil {
				fail("produce "+name, err)
				continue
			}
			log.Info("produce run", "mode", mode, "size", size, "acks", acksName(acksAll), "for", cfg.Duration)
			res, err := runProduce(ctx, seeds, produceSpec{
				Topic: topic, RecordSize: size, AcksAll: acksAll, Producers: cfg.Producers,
				Duration: cfg.Duration, Window: windowRecords(cfg, size), Linger: -1,
			})
			if err != nil {
				fail("produce "+name, err)
			}
			mr.Produce = append(mr.Produce, res)
			logProduce(log, mode, res)

			log.Info("consume run", "mode", mode, "topic", topic)
			cres, err := runConsume(ctx, seeds, topic, cfg.ConsumeTimeout)
			cres.RecordSize, cres.Acks = size, acksName(acksAll)
			if err != nil {
				fail("consume "+name, err)
			}
			mr.Consume = append(mr.Consume, cres)
			log.Info("consumed", "mode", mode, "topic", topic, "records", cres.Records, "MBps", fmt.Sprintf("%.1f", cres.MBps))
		}
	}
	return mr
}

func logProduce(log *slog.Logger, mode string, r ProduceResult) {
	log.Info("produced", "mode", mode, "size", r.RecordSize, "acks", r.Acks,
		"records", r.Records, "MBps", fmt.Sprintf("%.1f", r.MBps), "records_per_s", fmt.Sprintf("%.0f", r.RecordsPS),
		"p50", r.Latency.P50, "p99", r.Latency.P99, "p999", r.Latency.P999, "errors", r.Errors)
}

// describeMachine gathers what the README's recorded run must state.
func describeMachine(dataRoot string) Machine {
	m := Machine{
		CPUs:      runtime.NumCPU(),
		GoVersion: runtime.Version(),
		OSArch:    runtime.GOOS + "/" + runtime.GOARCH,
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err == nil {
		m.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err == nil {
		m.MemBytes = uint64(si.Totalram) * uint64(si.Unit)
		m.LoadAvg1 = loadAvg(si)
	}
	m.DataFS = filesystemOf(dataRoot)
	return m
}

// selfCPU is the CPU time this process has used so far.
func selfCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg is the 1-minute load average: other work on the machine
// lowers every figure, so a report says how busy the machine was.
func loadAvg(si unix.Sysinfo_t) float64 {
	return float64(si.Loads[0]) / (1 << unix.SI_LOAD_SHIFT)
}

// endLoadAvg reads the load average again at the end of a run.
func endLoadAvg() float64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return loadAvg(si)
}

// filesystemOf names the filesystem type holding dir, by statfs magic.
func filesystemOf(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	var st unix.Statfs_t
	if err := unix.Statfs(abs, &st); err != nil {
		return abs + " (unknown fs)"
	}
	names := map[int64]string{
		unix.EXT4_SUPER_MAGIC:      "ext4",
		unix.XFS_SUPER_MAGIC:       "xfs",
		unix.BTRFS_SUPER_MAGIC:     "btrfs",
		unix.TMPFS_MAGIC:           "tmpfs",
		unix.OVERLAYFS_SUPER_MAGIC: "overlayfs",
		unix.F2FS_SUPER_MAGIC:      "f2fs",
		unix.NFS_SUPER_MAGIC:       "nfs",
	}
	name, ok := names[int64(st.Type)]
	if !ok {
		name = fmt.Sprintf("fs type %#x", st.Type)
	}
	return abs + " (" + name + ")"
}
