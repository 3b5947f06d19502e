package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Mode names. A broker started by the bench runs in ModeSafe and then in
// ModePageCache; an external broker (--brokers) is ModeExternal unless
// the operator says which one it is.
const (
	ModeSafe      = "safe"
	ModePageCache = "page-cache"
	ModeExternal  = "external"
)

// Report is everything one run measured. Durations are nanoseconds in
// JSON; the derived rates are filled by finish so the JSON needs no
// post-processing.
type Report struct {
	Started time.Time    `json:"started"`
	Machine Machine      `json:"machine"`
	Config  ReportConfig `json:"config"`
	Limits  Limits       `json:"limits"`
	// LimitsMBps repeats the limits in MB/s (10^6 bytes) for readers of
	// the JSON.
	LimitsMBps map[string]float64 `json:"limits_mb_per_s"`
	Modes      []ModeResult       `json:"modes"`
	// Cluster is the cluster run; nil when it was not run.
	Cluster *ClusterResult `json:"cluster,omitempty"`
	// ColdRead is the cold-read run; nil when it was not run.
	ColdRead *ColdReadResult `json:"cold_read,omitempty"`
	Aims     []AimResult     `json:"aims"`
}

// ReportConfig echoes the settings the figures depend on.
type ReportConfig struct {
	Duration        time.Duration `json:"duration_ns"`
	LimitDuration   time.Duration `json:"limit_duration_ns"`
	RecordSizes     []int         `json:"record_sizes"`
	Partitions      int32         `json:"partitions"`
	Producers       int           `json:"producers"`
	Window          int           `json:"window_bytes"`
	LatencyRate     int           `json:"latency_rate"`
	LatencySize     int           `json:"latency_record_size"`
	LatencyDuration time.Duration `json:"latency_duration_ns"`
	Brokers         string        `json:"brokers,omitempty"`
	BrokerBin       string        `json:"broker_bin,omitempty"`

	ColdBytes          int64 `json:"cold_bytes,omitempty"`
	ColdPartitions     int32 `json:"cold_partitions,omitempty"`
	ColdSegmentBytes   int64 `json:"cold_segment_bytes,omitempty"`
	ColdGetConcurrency int   `json:"cold_get_concurrency,omitempty"`
	ColdGetRangeBytes  int64 `json:"cold_get_range_bytes,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	MemBytes  uint64 `json:"mem_bytes"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	OSArch    string `json:"os_arch"`
	DataFS    string `json:"data_fs"` // filesystem type of the data dir
	// LoadAvg1 and LoadAvg1End are the 1-minute load average when the run
	// started and ended; above the CPU count something else competed.
	LoadAvg1    float64 `json:"load_avg_1m_start"`
	LoadAvg1End float64 `json:"load_avg_1m_end"`
}

// ModeResult is one broker configuration's figures.
type ModeResult struct {
	Mode     string          `json:"mode"`
	Settings []string        `json:"settings,omitempty"` // --set arguments given to the broker
	Addr     string          `json:"addr"`
	Latency  *ProduceResult  `json:"latency,omitempty"` // the rate-limited run
	Produce  []ProduceResult `json:"produce"`
	Consume  []ConsumeResult `json:"consume"`
	Shutdown *ShutdownInfo   `json:"shutdown,omitempty"`
	// CPU shows who was CPU-bound on a small machine: the broker process
	// (zero for an external broker) and the bench itself, over the mode's
	// wall-clock time.
	CPU    CPUUse   `json:"cpu"`
	Errors []string `json:"errors,omitempty"`
}

// CPUUse is CPU time (user + system) spent during one mode.
type CPUUse struct {
	Wall   time.Duration `json:"wall_ns"`
	Broker time.Duration `json:"broker_ns"`
	Bench  time.Duration `json:"bench_ns"`
}

// Latency is a summary of per-record produce latency: from handing the
// record to the client to its promise.
type Latency struct {
	P50  time.Duration `json:"p50_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Max  time.Duration `json:"max_ns"`
	Mean time.Duration `json:"mean_ns"`
}

// ProduceResult is one produce run. Bytes are record values as sent.
type ProduceResult struct {
	Topic      string        `json:"topic"`
	RecordSize int           `json:"record_size"`
	Acks       string        `json:"acks"`
	Producers  int           `json:"producers"`
	TargetRate int           `json:"target_rate,omitempty"`
	Records    int64         `json:"records"`
	Bytes      int64         `json:"bytes"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	Errors     int64         `json:"errors"`
	FirstError string        `json:"first_error,omitempty"`
	Latency    Latency       `json:"latency"`
	MBps       float64       `json:"mb_per_s"`
	RecordsPS  float64       `json:"records_per_s"`
}

// ConsumeResult is reading one produced topic back from its start.
type ConsumeResult struct {
	Topic      string        `json:"topic"`
	RecordSize int           `json:"record_size"`
	Acks       string        `json:"acks"`
	Expected   int64         `json:"expected"`
	Records    int64         `json:"records"`
	Bytes      int64         `json:"bytes"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	Errors     int64         `json:"errors"`
	FirstError string        `json:"first_error,omitempty"`
	MBps       float64       `json:"mb_per_s"`
	RecordsPS  float64       `json:"records_per_s"`
}

func rates(bytes, records int64, d time.Duration) (mbps, rps float64) {
	if d <= 0 {
		return 0, 0
	}
	s := d.Seconds()
	return float64(bytes) / 1e6 / s, float64(records) / s
}

func (r *ProduceResult) finish() { r.MBps, r.RecordsPS = rates(r.Bytes, r.Records, r.Elapsed) }
func (r *ConsumeResult) finish() { r.MBps, r.RecordsPS = rates(r.Bytes, r.Records, r.Elapsed) }

// The aims of the issue. Throughput aims are judged on every 1 KiB row of
// the mode they name: 100-byte records are bound by per-record work, not
// bandwidth, so their ratios are printed but not judged.
const (
	aimRecordSize        = 1024
	aimPageCacheProduce  = 0.50 // of loopback TCP
	aimSafeProduce       = 0.70 // of write+fsync per MiB
	aimPageCacheConsume  = 0.70 // of sendfile
	aimLatencyP99        = 2 * time.Millisecond
	aimLatencyRecordRate = 10000
	aimColdRead          = 0.70 // of raw GET throughput of the same objects
)

// AimResult is one aim checked against one measured figure.
type AimResult struct {
	Aim    string  `json:"aim"`
	Figure string  `json:"figure"`
	Value  float64 `json:"value"` // MB/s, or ms for latency
	Limit  float64 `json:"limit"` // MB/s of the machine limit, or the ms target
	Ratio  float64 `json:"ratio,omitempty"`
	Target float64 `json:"target"` // ratio to reach, or the ms bound
	Unit   string  `json:"unit"`
	Met    bool    `json:"met"`
}

// EvaluateAims checks the aims against the report's figures.
// Rows that did not run (or failed) are absent, so absent aims are a
// sign something did not run, and a row with errors is never met.
func EvaluateAims(r *Report) []AimResult {
	loop := r.Limits.LoopbackTCP.BytesPerSec() / 1e6
	send := r.Limits.Sendfile.BytesPerSec() / 1e6
	fsync := r.Limits.FsyncWrite.BytesPerSec() / 1e6
	var out []AimResult
	ratioAim := func(aim, figure string, value, limit, target float64, ok bool) {
		a := AimResult{Aim: aim, Figure: figure, Value: value, Limit: limit, Target: target, Unit: "MB/s"}
		if limit > 0 {
			a.Ratio = value / limit
		}
		a.Met = ok && limit > 0 && a.Ratio >= target
		out = append(out, a)
	}
	for _, m := range r.Modes {
		for _, p := range m.Produce {
			if p.RecordSize != aimRecordSize {
				continue
			}
			fig := fmt.Sprintf("%s produce %dB acks=%s", m.Mode, p.RecordSize, p.Acks)
			switch m.Mode {
			case ModePageCache:
				ratioAim("page-cache produce >= 50% of loopback TCP", fig, p.MBps, loop, aimPageCacheProduce, p.Errors == 0)
			case ModeSafe:
				ratioAim("safe-default produce >= 70% of fsync-per-MiB write", fig, p.MBps, fsync, aimSafeProduce, p.Errors == 0)
			}
		}
		if m.Mode == ModePageCache {
			for _, c := range m.Consume {
				if c.RecordSize != aimRecordSize {
					continue
				}
				fig := fmt.Sprintf("%s consume %dB (acks=%s topic)", m.Mode, c.RecordSize, c.Acks)
				ratioAim("page-cache consume >= 70% of sendfile", fig, c.MBps, send, aimPageCacheConsume, c.Errors == 0 && c.Records == c.Expected)
			}
		}
		if l := m.Latency; l != nil && l.Acks == "all" && l.TargetRate == aimLatencyRecordRate {
			p99 := ms(l.Latency.P99)
			out = append(out, AimResult{
				Aim:    "acks=all p99 at 10k records/s <= 2 ms",
				Figure: fmt.Sprintf("%s p99 %dB acks=all at %d/s", m.Mode, l.RecordSize, l.TargetRate),
				Value:  p99, Limit: ms(aimLatencyP99), Target: ms(aimLatencyP99), Unit: "ms",
				Met: l.Errors == 0 && l.Records > 0 && l.Latency.P99 <= aimLatencyP99,
			})
		}
	}
	if c := r.ColdRead; c != nil && c.RawGet.MBps > 0 {
		out = append(out, AimResult{
			Aim:    "cold read >= 70% of raw GET of the same objects",
			Figure: fmt.Sprintf("cold consume %dB from the bucket", c.Consume.RecordSize),
			Value:  c.Consume.MBps, Limit: c.RawGet.MBps, Ratio: c.Ratio, Target: aimColdRead, Unit: "MB/s",
			Met: c.Met(),
		})
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report for people: every figure next to the
// machine limit it is compared with, then the aims.
func WriteTable(w io.Writer, r *Report) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "strata-bench %s\n", r.Started.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "machine: %d CPUs, %.1f GiB RAM, kernel %s, %s %s, data dir on %s, load average %.2f at start, %.2f at end\n",
		m.CPUs, float64(m.MemBytes)/(1<<30), m.Kernel, m.GoVersion, m.OSArch, m.DataFS, m.LoadAvg1, m.LoadAvg1End)
	// A cold-only run measured no limits and ran no mode: it prints the
	// cold-read section alone.
	if len(r.Modes) > 0 || r.Limits.LoopbackTCP.Elapsed > 0 {
		writeModes(&b, r)
	}
	if c := r.Cluster; c != nil {
		writeCluster(&b, c)
	}
	if c := r.ColdRead; c != nil {
		writeColdRead(&b, c, m.CPUs)
	}

	var notes []string
	for _, mr := range r.Modes {
		if len(mr.Settings) > 0 {
			notes = append(notes, fmt.Sprintf("%s broker settings: %s", mr.Mode, strings.Join(mr.Settings, " ")))
		}
		if c := mr.CPU; c.Wall > 0 {
			notes = append(notes, fmt.Sprintf("%s CPU over %s wall: broker %s, bench %s (of %s available)", mr.Mode,
				c.Wall.Round(time.Second), c.Broker.Round(100*time.Millisecond), c.Bench.Round(100*time.Millisecond),
				(c.Wall*time.Duration(m.CPUs)).Round(time.Second)))
		}
		if s := mr.Shutdown; s != nil {
			notes = append(notes, fmt.Sprintf("%s broker SIGTERM -> %s in %s", mr.Mode, s.Exit, s.Elapsed.Round(time.Millisecond)))
		}
		for _, p := range append(rowsOf(mr.Latency), mr.Produce...) {
			if p.FirstError != "" {
				notes = append(notes, fmt.Sprintf("%s produce %dB acks=%s first error: %s", mr.Mode, p.RecordSize, p.Acks, p.FirstError))
			}
		}
		for _, c := range mr.Consume {
			if c.FirstError != "" {
				notes = append(notes, fmt.Sprintf("%s consume %s first error: %s", mr.Mode, c.Topic, c.FirstError))
			}
		}
		for _, e := range mr.Errors {
			notes = append(notes, fmt.Sprintf("%s error: %s", mr.Mode, e))
		}
	}
	notes = append(notes, clusterNotes(r.Cluster, m.CPUs)...)
	if c := r.ColdRead; c != nil {
		for _, e := range c.Errors {
			notes = append(notes, "cold read error: "+e)
		}
		if c.Consume.FirstError != "" {
			notes = append(notes, "cold consume first error: "+c.Consume.FirstError)
		}
		if c.Warm.FirstError != "" {
			notes = append(notes, "warm re-read first error: "+c.Warm.FirstError)
		}
	}
	if len(notes) > 0 {
		b.WriteString("\nNotes\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "  %s\n", n)
		}
	}

	b.WriteString("\nAims\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "aim\tfigure\tvalue\tlimit\tratio\tresult")
	if len(r.Aims) == 0 {
		fmt.Fprintln(tw, "(none evaluated: no run produced the figures they need)\t\t\t\t\t")
	}
	for _, a := range r.Aims {
		ratio := "-"
		if a.Unit != "ms" {
			ratio = fmt.Sprintf("%.0f%% (need %.0f%%)", a.Ratio*100, a.Target*100)
		}
		result := "not met"
		if a.Met {
			result = "met"
		}
		prec := 1
		if a.Unit == "ms" {
			prec = 3
		}
		fmt.Fprintf(tw, "%s\t%s\t%.*f %s\t%.*f %s\t%s\t%s\n", a.Aim, a.Figure, prec, a.Value, a.Unit, prec, a.Limit, a.Unit, ratio, result)
	}
	tw.Flush()
	_, err := io.WriteString(w, b.String())
	return err
}

func rowsOf(p *ProduceResult) []ProduceResult {
	if p == nil {
		return nil
	}
	return []ProduceResult{*p}
}

func formatRatio(v, limit float64) string {
	if limit <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*v/limit)
}

// formatLatency keeps three significant figures in the unit that suits
// the value, so a column of latencies reads at a glance.
func formatLatency(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fus", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", ms(d))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

func formatBytes(n int64) string {
	switch {
	case n >= mib && n%mib == 0:
		return fmt.Sprintf("%dMiB", n/mib)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	default:
		return fmt.Sprintf("%dB", n)
	}
}

// writeColdRead prints the cold-read section: what was tiered, raw GET
// against the cold consume, and the object-store requests per GB.
func writeColdRead(b *strings.Builder, c *ColdReadResult, cpus int) {
	fmt.Fprintf(b, "\nCold read (topic only in the bucket; %s)\n", c.Store)
	fmt.Fprintf(b, "  topic: %d partitions, segment.bytes %s, local.retention.bytes 0, segment.ms %d; broker %s\n",
		c.Partitions, formatBytes(c.SegmentBytes), coldSegmentMs, c.BrokerSettings)
	p := c.Produce
	fmt.Fprintf(b, "  produced %d records of %dB (%.1f MB) at %.1f MB/s, acks=all; all in the bucket %s after the last ack\n",
		p.Records, p.RecordSize, float64(p.Bytes)/1e6, p.MBps, c.TierWait.Round(10*time.Millisecond))
	if c.LocalBytes > 0 {
		fmt.Fprintf(b, "  still local when the wait ended: about %.1f MB (not read)\n", float64(c.LocalBytes)/1e6)
	}
	g := c.RawGet
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "read\tMB/s\tbytes\trequests\telapsed\tratio\terrors\t")
	fmt.Fprintf(tw, "raw GET (%d in flight, %s ranges, %d .log objects x %d passes)\t%.1f\t%.1f MB\t%d\t%s\t-\t%d\t\n",
		g.Concurrency, formatBytes(g.RangeBytes), g.Objects, g.Passes, g.MBps, float64(g.Bytes)/1e6, g.Requests, g.Elapsed.Round(time.Millisecond), g.Errors)
	if f := c.RawGetFiles; f.Passes > 0 {
		fmt.Fprintf(tw, "raw GET written to new files on the data disk (as a disk cache must)\t%.1f\t%.1f MB\t%d\t%s\t%s\t%d\t\n",
			f.MBps, float64(f.Bytes)/1e6, f.Requests, f.Elapsed.Round(time.Millisecond), formatRatio(f.MBps, g.MBps), f.Errors)
	}
	k := c.Consume
	fmt.Fprintf(tw, "cold consume (one client, restarted broker, empty cache)\t%.1f\t%.1f MB\t%d/%d records\t%s\t%s\t%d\t\n",
		k.MBps, float64(k.Bytes)/1e6, k.Records, k.Expected, k.Elapsed.Round(time.Millisecond), formatRatio(k.MBps, g.MBps), k.Errors)
	if w := c.Warm; w.Expected > 0 {
		fmt.Fprintf(tw, "warm re-read (same broker, remote cache filled, %d GETs)\t%.1f\t%.1f MB\t%d/%d records\t%s\t%s\t%d\t\n",
			c.WarmR.Requests["get"], w.MBps, float64(w.Bytes)/1e6, w.Records, w.Expected, w.Elapsed.Round(time.Millisecond), formatRatio(w.MBps, g.MBps), w.Errors)
	}
	tw.Flush()
	fmt.Fprintf(b, "  (consume MB/s counts record values, %.1f MB; the %d .log objects hold %.1f MB)\n", float64(k.Bytes)/1e6, c.LogObjects, float64(c.LogBytes)/1e6)
	if cp := c.CPU; cp.GetWall > 0 || cp.ConsumeWall > 0 {
		fmt.Fprintf(b, "  CPU during raw GET (%s wall, %s available): S3 server %s, bench %s\n",
			cp.GetWall.Round(10*time.Millisecond), (cp.GetWall * time.Duration(cpus)).Round(10*time.Millisecond),
			cp.GetStore.Round(10*time.Millisecond), cp.GetBench.Round(10*time.Millisecond))
		if cp.FilesWall > 0 {
			fmt.Fprintf(b, "  CPU during raw GET to files (%s wall with the removals, %s available): S3 server %s, bench %s\n",
				cp.FilesWall.Round(10*time.Millisecond), (cp.FilesWall * time.Duration(cpus)).Round(10*time.Millisecond),
				cp.FilesStore.Round(10*time.Millisecond), cp.FilesBench.Round(10*time.Millisecond))
		}
		fmt.Fprintf(b, "  CPU during cold consume (%s wall, %s available): S3 server %s, broker %s, bench %s\n",
			cp.ConsumeWall.Round(10*time.Millisecond), (cp.ConsumeWall * time.Duration(cpus)).Round(10*time.Millisecond),
			cp.ConsumeStore.Round(10*time.Millisecond), cp.ConsumeBroker.Round(10*time.Millisecond), cp.ConsumeBench.Round(10*time.Millisecond))
		if cp.WarmWall > 0 {
			fmt.Fprintf(b, "  CPU during warm re-read (%s wall, %s available): broker %s, bench %s\n",
				cp.WarmWall.Round(10*time.Millisecond), (cp.WarmWall * time.Duration(cpus)).Round(10*time.Millisecond),
				cp.WarmBroker.Round(10*time.Millisecond), cp.WarmBench.Round(10*time.Millisecond))
		}
	}

	b.WriteString("\nObject-store requests per GB (10^9 bytes of record values; broker /metrics)\n")
	tw = tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "phase\tGB\t")
	for _, op := range storeOps {
		fmt.Fprintf(tw, "%s\t", op)
	}
	fmt.Fprintln(tw, "total\tfailed\tbytes moved\t")
	row := func(name string, a StoreActivity, gb int64, moved int64) {
		fmt.Fprintf(tw, "%s\t%.3f\t", name, float64(gb)/1e9)
		for _, op := range storeOps {
			fmt.Fprintf(tw, "%.0f\t", a.PerGB(op, gb))
		}
		var failed int64
		for _, n := range a.Failed {
			failed += n
		}
		fmt.Fprintf(tw, "%.0f\t%d\t%.1f MB\t\n", a.PerGB("", gb), failed, float64(moved)/1e6)
	}
	row("written", c.Write, c.Produce.Bytes, c.Write.Uploaded)
	row("read", c.Read, c.Consume.Bytes, c.Read.Downloaded)
	tw.Flush()
	fmt.Fprintf(b, "  requests in all: written %s; read %s; read cache hits/misses %d/%d\n",
		formatOps(c.Write), formatOps(c.Read), c.Read.CacheHits, c.Read.CacheMiss)
}

// formatOps lists request counts by op, e.g. "put 195, list 1".
func formatOps(a StoreActivity) string {
	ops := a.opsOf()
	if len(ops) == 0 {
		return "none"
	}
	parts := make([]string, len(ops))
	for i, op := range ops {
		parts[i] = fmt.Sprintf("%s %d", op, a.Requests[op])
		if f := a.Failed[op]; f > 0 {
			parts[i] += fmt.Sprintf(" (%d failed)", f)
		}
	}
	return strings.Join(parts, ", ")
}

// writeModes prints the machine limits and the produce and consume runs
// of the broker modes.
func writeModes(b *strings.Builder, r *Report) {
	c := r.Config
	fmt.Fprintf(b, "load: %s per run, %d producers, %d partitions, window %s per producer, latency run %d records/s of %dB for %s\n\n",
		c.Duration, c.Producers, c.Partitions, formatBytes(int64(c.Window)), c.LatencyRate, c.LatencySize, c.LatencyDuration)

	loop := r.Limits.LoopbackTCP.BytesPerSec() / 1e6
	send := r.Limits.Sendfile.BytesPerSec() / 1e6
	fsync := r.Limits.FsyncWrite.BytesPerSec() / 1e6
	b.WriteString("Machine limits (this run)\n")
	fmt.Fprintf(b, "  %-26s %8.1f MB/s\n", "loopback TCP", loop)
	fmt.Fprintf(b, "  %-26s %8.1f MB/s\n", "sendfile from page cache", send)
	fmt.Fprintf(b, "  %-26s %8.1f MB/s\n", "write + fsync per MiB", fsync)

	b.WriteString("\nProduce (MB/s of record values; latency from Produce to its acknowledgement)\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tsize\tacks\trate\tMB/s\trecords/s\tp50\tp99\tp99.9\tmax\tlimit\tratio\terrors\t")
	for _, mr := range r.Modes {
		limitName, limit := "loopback", loop
		if mr.Mode == ModeSafe {
			limitName, limit = "fsync/MiB", fsync
		}
		rows := mr.Produce
		if mr.Latency != nil {
			rows = append([]ProduceResult{*mr.Latency}, rows...)
		}
		for _, p := range rows {
			rate, lname, ratio := "max", limitName, formatRatio(p.MBps, limit)
			if p.TargetRate > 0 {
				// A fixed-rate run is bounded by its rate, not the machine.
				rate, lname, ratio = fmt.Sprintf("%d/s", p.TargetRate), "-", "-"
			}
			fmt.Fprintf(tw, "%s\t%dB\t%s\t%s\t%.1f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n",
				mr.Mode, p.RecordSize, p.Acks, rate, p.MBps, p.RecordsPS,
				formatLatency(p.Latency.P50), formatLatency(p.Latency.P99), formatLatency(p.Latency.P999), formatLatency(p.Latency.Max),
				lname, ratio, p.Errors)
		}
	}
	tw.Flush()

	b.WriteString("\nConsume (one client, from offset 0 of each produced topic)\n")
	tw = tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tsize\ttopic acks\trecords\tMB/s\trecords/s\tlimit\tratio\terrors\t")
	for _, mr := range r.Modes {
		for _, c := range mr.Consume {
			fmt.Fprintf(tw, "%s\t%dB\t%s\t%d/%d\t%.1f\t%.0f\tsendfile\t%s\t%d\t\n",
				mr.Mode, c.RecordSize, c.Acks, c.Records, c.Expected, c.MBps, c.RecordsPS, formatRatio(c.MBps, send), c.Errors)
		}
	}
	tw.Flush()
}
