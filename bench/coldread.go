package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Cold-read defaults: 512 MiB in 8 MiB segments over 8 partitions is 64
// segments of 2 download chunks each (the broker cuts remote segments into
// ~4 MiB chunks) and runs in well under 90 s here.
const (
	coldRecordSize = 1024
	// coldSegmentMs rolls the active segment of each partition once the
	// producers stop, so that it is uploaded and deleted too and the whole
	// topic ends up in the bucket only.
	coldSegmentMs = 2000
	// coldRetentionCheckMs is the broker's retention tick during the run:
	// local copies go within a second of their upload.
	coldRetentionCheckMs = 1000
	// coldProduceLimit bounds the produce phase (the byte budget normally
	// ends it long before).
	coldProduceLimit = 60 * time.Second
	// coldPoll is how often the bench looks at the broker's offsets while
	// it waits for the uploads.
	coldPoll = 200 * time.Millisecond
	// rawGetMinTime: the raw GET pass over all objects is repeated until
	// this much time has passed, so a fast store is not timed over a
	// fraction of a second.
	rawGetMinTime = 2 * time.Second
	rawGetMaxPass = 20
)

// ColdReadResult is the cold-read run: a topic produced to a broker that
// tiers to a local S3 server, left only in the bucket, read back by a
// restarted broker with an empty remote cache, next to the raw GET
// throughput of the same objects.
type ColdReadResult struct {
	Store          string `json:"store"` // the S3 server
	Topic          string `json:"topic"`
	TopicID        string `json:"topic_id,omitempty"`
	Partitions     int32  `json:"partitions"`
	SegmentBytes   int64  `json:"segment_bytes"`
	TargetBytes    int64  `json:"target_bytes"`
	BrokerSettings string `json:"broker_settings"`

	Produce ProduceResult `json:"produce"`
	// TierWait is from the last acknowledgement to the moment every
	// partition's earliest local offset reached its end: all data uploaded
	// and the local copies deleted.
	TierWait   time.Duration   `json:"tier_wait_ns"`
	Offsets    []ColdPartition `json:"offsets"`
	LocalBytes int64           `json:"local_bytes_left"` // record bytes still local when the wait ended (0 = all in the bucket)

	LogObjects int   `json:"log_objects"`
	LogBytes   int64 `json:"log_object_bytes"`

	RawGet GetResult `json:"raw_get"`
	// RawGetFiles is the same GETs written to new files on the broker's
	// disk, as the remote cache does: not the aim's reference, but the
	// ceiling of a reader that must land the bytes on disk first.
	RawGetFiles GetResult     `json:"raw_get_to_files"`
	Consume     ConsumeResult `json:"consume"`
	// Warm is the same range read again right after, from the same
	// broker, its remote cache now holding the data (when it fits): the
	// broker and client without the object store.
	Warm ConsumeResult `json:"warm_consume"`
	// Ratio is cold consume MB/s (record values) over raw GET MB/s.
	Ratio float64 `json:"ratio"`

	Write StoreActivity `json:"write_requests"` // from topic creation to all data tiered
	Read  StoreActivity `json:"read_requests"`  // during the cold consume
	WarmR StoreActivity `json:"warm_requests"`  // during the warm re-read

	CPU       ColdCPU        `json:"cpu"`
	Shutdowns []ShutdownInfo `json:"shutdowns,omitempty"`
	Elapsed   time.Duration  `json:"elapsed_ns"`
	Errors    []string       `json:"errors,omitempty"`
}

// ColdPartition is one partition's offsets when the wait ended:
// [Start, LocalStart) is in the bucket only; the consume reads that range.
type ColdPartition struct {
	Partition  int32 `json:"partition"`
	Start      int64 `json:"start"`
	LocalStart int64 `json:"local_start"`
	End        int64 `json:"end"`
}

// ColdCPU is CPU time (user + system) of the processes during the raw GET
// pass and during the cold consume: on a small machine the S3 server, the
// broker and the client share the CPUs, and this says who was busy.
type ColdCPU struct {
	GetWall       time.Duration `json:"get_wall_ns"`
	GetStore      time.Duration `json:"get_store_ns"`
	GetBench      time.Duration `json:"get_bench_ns"`
	FilesWall     time.Duration `json:"get_files_wall_ns"` // includes removing the files between passes
	FilesStore    time.Duration `json:"get_files_store_ns"`
	FilesBench    time.Duration `json:"get_files_bench_ns"`
	ConsumeWall   time.Duration `json:"consume_wall_ns"`
	ConsumeStore  time.Duration `json:"consume_store_ns"`
	ConsumeBroker time.Duration `json:"consume_broker_ns"`
	ConsumeBench  time.Duration `json:"consume_bench_ns"`
	WarmWall      time.Duration `json:"warm_wall_ns"`
	WarmBroker    time.Duration `json:"warm_broker_ns"`
	WarmBench     time.Duration `json:"warm_bench_ns"`
}

// Met says whether the cold-read aim holds: the ratio reached, every
// record read, and no error on the way.
func (c *ColdReadResult) Met() bool {
	return len(c.Errors) == 0 && c.Consume.Errors == 0 && c.Consume.Records == c.Consume.Expected &&
		c.Consume.Records > 0 && c.RawGet.Errors == 0 && c.Ratio >= aimColdRead
}

// coldRatio is consume MB/s over raw GET MB/s, or 0 when either is
// missing.
func coldRatio(consumeMBps, getMBps float64) float64 {
	if consumeMBps <= 0 || getMBps <= 0 {
		return 0
	}
	return consumeMBps / getMBps
}

// runColdRead is the cold-read run; errors are recorded in the result,
// which is always returned.
func runColdRead(ctx context.Context, log *slog.Logger, cfg Config, runID string) (res *ColdReadResult) {
	started := time.Now()
	res = &ColdReadResult{Partitions: cfg.ColdPartitions, SegmentBytes: cfg.ColdSegmentBytes, TargetBytes: cfg.ColdBytes}
	defer func() { res.Elapsed = time.Since(started) }()
	fail := func(what string, err error) *ColdReadResult {
		log.Error("cold read", "step", what, "err", err)
		res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", what, err))
		return res
	}

	bin, err := findVersitygw(cfg.Versitygw)
	if err != nil {
		return fail("S3 server", err)
	}
	srv, err := startS3Server(ctx, log, bin, cfg.DataRoot)
	if err != nil {
		return fail("S3 server", err)
	}
	defer srv.stop()
	res.Store = "versitygw (posix backend) at " + srv.endpoint + ", data in " + srv.dir

	dataDir, err := os.MkdirTemp(cfg.DataRoot, "strata-bench-cold-data-*")
	if err != nil {
		return fail("data dir", err)
	}
	defer os.RemoveAll(dataDir)
	cacheDir, err := os.MkdirTemp(cfg.DataRoot, "strata-bench-cold-cache-*")
	if err != nil {
		return fail("cache dir", err)
	}
	defer os.RemoveAll(cacheDir)
	sets := []string{
		"remote-cache-dir=" + cacheDir,
		// Room for the whole topic, so the warm re-read is served from
		// the cache (the default is 1 GiB).
		"remote-cache-bytes=" + strconv.FormatInt(max(1<<30, 2*cfg.ColdBytes), 10),
		"log.retention.check.interval.ms=" + strconv.Itoa(coldRetentionCheckMs),
	}
	res.BrokerSettings = fmt.Sprintf("--object-store s3://%s/%s --s3-endpoint %s --s3-path-style true --s3-region %s (static keys) %s",
		coldBucket, coldPrefix, srv.endpoint, coldRegion, strings.Join(sets, " "))
	spec := brokerSpec{Bin: cfg.BrokerBin, DataDir: dataDir, Flags: srv.brokerFlags(), Sets: sets, Ready: cfg.ReadyTimeout}

	// Phase 1: produce to a broker that tiers, until nothing is local.
	p, err := startBrokerSpec(ctx, log, spec)
	if err != nil {
		return fail("start broker", err)
	}
	running := p
	defer func() {
		if running != nil {
			running.stop(log, 15*time.Second)
		}
	}()
	stopBroker := func(which string) {
		info, err := running.stop(log, 15*time.Second)
		res.Shutdowns = append(res.Shutdowns, info)
		if err != nil {
			fail("stop "+which+" broker", err)
		} else if !info.Clean {
			fail("stop "+which+" broker", fmt.Errorf("did not exit cleanly on SIGTERM: %s\nbroker output (last lines):\n%s", info.Exit, running.stderr.LastLines(brokerOutputLines)))
		}
		running = nil
	}
	seeds := []string{p.addr}
	admin, err := waitAdmin(ctx, p)
	if err != nil {
		return fail("admin listener", err)
	}
	log.Info("cold read: broker admin listener", "addr", admin)
	res.Topic = fmt.Sprintf("strata-bench-%s-cold", runID)
	topicConfigs := map[string]string{
		"remote.storage.enable": "true",
		"segment.bytes":         strconv.FormatInt(cfg.ColdSegmentBytes, 10),
		"segment.ms":            strconv.Itoa(coldSegmentMs),
		// 0, not 1: local retention deletes a segment only while what
		// stays is at least local.retention.bytes (Kafka's rule), so 1
		// would keep each partition's last sealed segment once its
		// active segment is empty.
		"local.retention.bytes": "0",
	}
	if err := createTopicWith(ctx, seeds, res.Topic, cfg.ColdPartitions, 1, topicConfigs); err != nil {
		return fail("create topic", err)
	}
	if res.TopicID, err = topicID(ctx, seeds, res.Topic); err != nil {
		return fail("topic id", err)
	}
	m0, err := scrapeMetrics(ctx, admin)
	if err != nil {
		return fail("metrics", err)
	}
	records := max(cfg.ColdBytes/coldRecordSize, 1)
	log.Info("cold read: producing", "topic", res.Topic, "records", records, "record_size", coldRecordSize,
		"segment_bytes", cfg.ColdSegmentBytes, "partitions", cfg.ColdPartitions)
	res.Produce, err = runProduce(ctx, seeds, produceSpec{
		Topic: res.Topic, RecordSize: coldRecordSize, AcksAll: true, Producers: cfg.Producers,
		Duration: coldProduceLimit, Window: max(64, cfg.WindowBytes/coldRecordSize), Linger: -1, Records: records,
	})
	if err != nil {
		return fail("produce", err)
	}
	if res.Produce.Errors > 0 {
		fail("produce", fmt.Errorf("%d records failed, first: %s", res.Produce.Errors, res.Produce.FirstError))
	}
	logProduce(log, "cold", res.Produce)

	log.Info("cold read: waiting until every partition is in the bucket only", "timeout", cfg.ColdTierTimeout)
	waitStart := time.Now()
	offs, done, err := waitTiered(ctx, seeds, res.Topic, cfg.ColdPartitions, cfg.ColdTierTimeout)
	res.TierWait = time.Since(waitStart)
	res.Offsets = offs
	if err != nil {
		return fail("wait for tiering", err)
	}
	var tiered int64
	for _, o := range offs {
		res.LocalBytes += (o.End - o.LocalStart) * coldRecordSize
		tiered += o.LocalStart - o.Start
	}
	if !done {
		fail("wait for tiering", fmt.Errorf("after %s %d record bytes were still on local disk; the consume reads only the %d tiered records",
			cfg.ColdTierTimeout, res.LocalBytes, tiered))
	}
	if tiered == 0 {
		return fail("wait for tiering", errors.New("nothing was tiered"))
	}
	log.Info("cold read: tiered", "after", res.TierWait.Round(time.Millisecond), "records", tiered)
	m1, err := scrapeMetrics(ctx, admin)
	if err != nil {
		return fail("metrics", err)
	}
	if res.Write, err = storeActivity(m0, m1); err != nil {
		return fail("metrics", err)
	}
	stopBroker("first")

	// Nothing has read the topic, but the cache starts empty by
	// construction, not by assumption.
	if err := emptyDir(cacheDir); err != nil {
		return fail("empty remote cache", err)
	}

	// Phase 2: the raw GET throughput of the committed segment objects,
	// with no broker running.
	client, err := newS3Client(ctx, srv.endpoint, cfg.ColdGetConcurrency)
	if err != nil {
		return fail("S3 client", err)
	}
	all, err := listObjects(ctx, client, coldBucket, coldPrefix+"/")
	if err != nil {
		return fail("list bucket", err)
	}
	ids, err := manifestSegmentIDs(ctx, client, coldBucket, all, res.TopicID)
	if err != nil {
		return fail("read manifests", err)
	}
	if ids == nil {
		log.Warn("cold read: no manifest copy in the bucket; reading every .log object of the topic")
	}
	objs := selectLogObjects(all, res.TopicID, ids)
	res.LogObjects = len(objs)
	for _, o := range objs {
		res.LogBytes += o.Size
	}
	if len(objs) == 0 {
		return fail("list bucket", fmt.Errorf("no segment object of topic id %s among %d objects", res.TopicID, len(all)))
	}
	log.Info("cold read: raw GET", "objects", len(objs), "bytes", res.LogBytes, "concurrency", cfg.ColdGetConcurrency, "range", cfg.ColdGetRangeBytes)
	storeCPU0, benchCPU0, t0 := procCPU(srv.cmd.Process.Pid), selfCPU(), time.Now()
	res.RawGet = rawGet(ctx, client, coldBucket, objs, cfg.ColdGetRangeBytes, cfg.ColdGetConcurrency, rawGetMinTime, "")
	res.CPU.GetWall, res.CPU.GetStore, res.CPU.GetBench = time.Since(t0), procCPU(srv.cmd.Process.Pid)-storeCPU0, selfCPU()-benchCPU0
	if res.RawGet.Errors > 0 {
		fail("raw GET", fmt.Errorf("%d of %d GETs failed, first: %s", res.RawGet.Errors, res.RawGet.Requests, res.RawGet.FirstError))
	}
	log.Info("cold read: raw GET done", "MBps", fmt.Sprintf("%.1f", res.RawGet.MBps), "requests", res.RawGet.Requests)
	// The same GETs landing in files next to the broker's cache.
	filesDir, err := os.MkdirTemp(cfg.DataRoot, "strata-bench-cold-get-*")
	if err != nil {
		return fail("raw GET to files", err)
	}
	storeCPU0, benchCPU0, t0 = procCPU(srv.cmd.Process.Pid), selfCPU(), time.Now()
	res.RawGetFiles = rawGet(ctx, client, coldBucket, objs, cfg.ColdGetRangeBytes, cfg.ColdGetConcurrency, rawGetMinTime/2, filesDir)
	res.CPU.FilesWall, res.CPU.FilesStore, res.CPU.FilesBench = time.Since(t0), procCPU(srv.cmd.Process.Pid)-storeCPU0, selfCPU()-benchCPU0
	os.RemoveAll(filesDir)
	if res.RawGetFiles.Errors > 0 {
		fail("raw GET to files", fmt.Errorf("%d of %d GETs failed, first: %s", res.RawGetFiles.Errors, res.RawGetFiles.Requests, res.RawGetFiles.FirstError))
	}
	log.Info("cold read: raw GET to files done", "MBps", fmt.Sprintf("%.1f", res.RawGetFiles.MBps))

	// Phase 3: a new broker process on the same data dir, its remote
	// cache empty, reads everything back from the bucket.
	if running, err = startBrokerSpec(ctx, log, spec); err != nil {
		return fail("restart broker", err)
	}
	seeds = []string{running.addr}
	if admin, err = waitAdmin(ctx, running); err != nil {
		return fail("admin listener", err)
	}
	log.Info("cold read: restarted broker admin listener", "addr", admin)
	m2, err := scrapeMetrics(ctx, admin)
	if err != nil {
		return fail("metrics", err)
	}
	log.Info("cold read: consuming from the bucket", "records", tiered)
	pid := running.cmd.Process.Pid
	storeCPU0, brokerCPU0, benchCPU0, t0 := procCPU(srv.cmd.Process.Pid), procCPU(pid), selfCPU(), time.Now()
	res.Consume, err = consumeRanges(ctx, seeds, res.Topic, offs, cfg.ConsumeTimeout)
	res.CPU.ConsumeWall = time.Since(t0)
	res.CPU.ConsumeStore = procCPU(srv.cmd.Process.Pid) - storeCPU0
	res.CPU.ConsumeBroker = procCPU(pid) - brokerCPU0
	res.CPU.ConsumeBench = selfCPU() - benchCPU0
	res.Consume.RecordSize, res.Consume.Acks = coldRecordSize, "all"
	if err != nil {
		fail("cold consume", err)
	}
	log.Info("cold read: consumed", "records", res.Consume.Records, "MBps", fmt.Sprintf("%.1f", res.Consume.MBps))
	res.Ratio = coldRatio(res.Consume.MBps, res.RawGet.MBps)
	m3, err := scrapeMetrics(ctx, admin)
	if err != nil {
		return fail("metrics", err)
	}
	if res.Read, err = storeActivity(m2, m3); err != nil {
		return fail("metrics", err)
	}
	log.Info("cold read: reading the same range again (warm cache)")
	brokerCPU0, benchCPU0, t0 = procCPU(pid), selfCPU(), time.Now()
	res.Warm, err = consumeRanges(ctx, seeds, res.Topic, offs, cfg.ConsumeTimeout)
	res.CPU.WarmWall, res.CPU.WarmBroker, res.CPU.WarmBench = time.Since(t0), procCPU(pid)-brokerCPU0, selfCPU()-benchCPU0
	res.Warm.RecordSize, res.Warm.Acks = coldRecordSize, "all"
	if err != nil {
		fail("warm consume", err)
	}
	log.Info("cold read: warm re-read", "records", res.Warm.Records, "MBps", fmt.Sprintf("%.1f", res.Warm.MBps))
	m4, err := scrapeMetrics(ctx, admin)
	if err != nil {
		return fail("metrics", err)
	}
	if res.WarmR, err = storeActivity(m3, m4); err != nil {
		return fail("metrics", err)
	}
	stopBroker("second")
	return res
}

// waitAdmin returns the broker's admin listener address once logged.
func waitAdmin(ctx context.Context, p *brokerProcess) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return p.admin.wait(ctx)
}

// emptyDir removes everything inside dir.
func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(dir + string(os.PathSeparator) + e.Name()); err != nil {
			return err
		}
	}
	return nil
}

// waitTiered polls the earliest-local (-4) and latest (-1) offsets of
// every partition until they are equal everywhere (all data uploaded and
// the local copies gone) or timeout passes; done says which. The offsets
// returned are the last seen, with the log start (-2).
func waitTiered(ctx context.Context, seeds []string, topic string, partitions int32, timeout time.Duration) (offs []ColdPartition, done bool, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return nil, false, err
	}
	defer cl.Close()
	deadline := time.Now().Add(timeout)
	for {
		offs, err = listPartitionOffsets(ctx, cl, topic, partitions)
		if err != nil {
			return nil, false, err
		}
		if allTiered(offs) {
			return offs, true, nil
		}
		if time.Now().After(deadline) {
			return offs, false, nil
		}
		t := time.NewTimer(coldPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return offs, false, ctx.Err()
		case <-t.C:
		}
	}
}

// allTiered is true when no partition has data on local disk and at
// least one has data at all.
func allTiered(offs []ColdPartition) bool {
	some := false
	for _, o := range offs {
		if o.LocalStart != o.End {
			return false
		}
		some = some || o.End > o.Start
	}
	return some
}

// Special ListOffsets timestamps (KIP-405 adds -4, the earliest offset
// still on local disk).
const (
	offsetLatest      = -1
	offsetEarliest    = -2
	offsetEarliestLoc = -4
)

// listPartitionOffsets asks for the log start, earliest local and end
// offsets of each partition.
func listPartitionOffsets(ctx context.Context, cl *kgo.Client, topic string, partitions int32) ([]ColdPartition, error) {
	got := map[int64]map[int32]int64{}
	for _, ts := range []int64{offsetEarliest, offsetEarliestLoc, offsetLatest} {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		for p := range partitions {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p
			rp.Timestamp = ts
			rp.CurrentLeaderEpoch = -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return nil, fmt.Errorf("list offsets %d: %w", ts, err)
		}
		m := map[int32]int64{}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return nil, fmt.Errorf("list offsets %d of %s[%d]: %w", ts, t.Topic, p.Partition, err)
				}
				m[p.Partition] = p.Offset
			}
		}
		got[ts] = m
	}
	out := make([]ColdPartition, 0, partitions)
	for p := range partitions {
		out = append(out, ColdPartition{Partition: p, Start: got[offsetEarliest][p], LocalStart: got[offsetEarliestLoc][p], End: got[offsetLatest][p]})
	}
	return out, nil
}

// consumeRanges reads [Start, LocalStart) of every partition with one
// consumer, as the page-cache consume run does, and stops counting at
// each partition's LocalStart: what it times is reading from the bucket.
func consumeRanges(ctx context.Context, seeds []string, topic string, offs []ColdPartition, timeout time.Duration) (ConsumeResult, error) {
	res := ConsumeResult{Topic: topic}
	starts := map[int32]kgo.Offset{}
	want := map[int32]int64{} // records still expected per partition
	for _, o := range offs {
		if n := o.LocalStart - o.Start; n > 0 {
			starts[o.Partition] = kgo.NewOffset().At(o.Start)
			want[o.Partition] = n
			res.Expected += n
		}
	}
	if len(starts) == 0 {
		return res, errors.New("no tiered records to read")
	}
	limit := map[int32]int64{}
	for _, o := range offs {
		limit[o.Partition] = o.LocalStart
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts}),
	)
	if err != nil {
		return res, err
	}
	defer cl.Close()
	if err := cl.Ping(ctx); err != nil {
		return res, fmt.Errorf("ping: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var last time.Time
	left := len(want)
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachError(func(t string, p int32, err error) {
			res.Errors++
			if res.FirstError == "" {
				res.FirstError = fmt.Sprintf("%s[%d]: %v", t, p, err)
			}
		})
		n := int64(0)
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= limit[r.Partition] {
				return
			}
			n++
			res.Bytes += int64(len(r.Value) + len(r.Key))
			if w := want[r.Partition] - 1; w >= 0 {
				want[r.Partition] = w
				if w == 0 {
					left--
				}
			}
		})
		if n > 0 {
			res.Records += n
			last = time.Now()
		}
	}
	if !last.IsZero() {
		res.Elapsed = last.Sub(start)
	}
	res.finish()
	if res.Records < res.Expected {
		return res, fmt.Errorf("consumed %d of %d records before the %s timeout", res.Records, res.Expected, timeout)
	}
	return res, nil
}

// topicID is the topic's id as the broker's object keys spell it.
func topicID(ctx context.Context, seeds []string, topic string) (string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return "", err
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return "", err
	}
	d, ok := td[topic]
	if !ok || d.Err != nil {
		return "", fmt.Errorf("topic %s not in metadata: %v", topic, d.Err)
	}
	if d.ID == (kadm.TopicID{}) {
		return "", fmt.Errorf("broker gave topic %s no id", topic)
	}
	return uuidString(d.ID), nil
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// procCPU is the CPU time (user + system) process pid has used, from
// /proc; zero when it cannot be read.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	d, _ := parseProcStatCPU(string(b))
	return d
}

// parseProcStatCPU reads utime and stime (fields 14 and 15) of a
// /proc/<pid>/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseProcStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
