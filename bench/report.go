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
	Aims       []AimResult        `json:"aims"`
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
	c := r.Config
	fmt.Fprintf(&b, "load: %s per run, %d producers, %d partitions, window %s per producer, latency run %d records/s of %dB for %s\n\n",
		c.Duration, c.Producers, c.Partitions, formatBytes(int64(c.Window)), c.LatencyRate, c.LatencySize, c.LatencyDuration)

	loop := r.Limits.LoopbackTCP.BytesPerSec() / 1e6
	send := r.Limits.Sendfile.BytesPerSec() / 1e6
	fsync := r.Limits.FsyncWrite.BytesPerSec() / 1e6
	b.WriteString("Machine limits (this run)\n")
	fmt.Fprintf(&b, "  %-26s %8.1f MB/s\n", "loopback TCP", loop)
	fmt.Fprintf(&b, "  %-26s %8.1f MB/s\n", "sendfile from page cache", send)
	fmt.Fprintf(&b, "  %-26s %8.1f MB/s\n", "write + fsync per MiB", fsync)

	b.WriteString("\nProduce (MB/s of record values; latency from Produce to its acknowledgement)\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
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
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tsize\ttopic acks\trecords\tMB/s\trecords/s\tlimit\tratio\terrors\t")
	for _, mr := range r.Modes {
		for _, c := range mr.Consume {
			fmt.Fprintf(tw, "%s\t%dB\t%s\t%d/%d\t%.1f\t%.0f\tsendfile\t%s\t%d\t\n",
				mr.Mode, c.RecordSize, c.Acks, c.Records, c.Expected, c.MBps, c.RecordsPS, formatRatio(c.MBps, send), c.Errors)
		}
	}
	tw.Flush()

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
	if len(notes) > 0 {
		b.WriteString("\nNotes\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "  %s\n", n)
		}
	}

	b.WriteString("\nAims\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
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
