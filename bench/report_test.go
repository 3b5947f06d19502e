package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// sampleReport has machine limits of 1000 MB/s loopback, 2000 MB/s
// sendfile and 100 MB/s write+fsync, and figures chosen on both sides of
// each aim.
func sampleReport() *Report {
	sec := time.Second
	prod := func(size int, acks string, mbps float64, errs int64) ProduceResult {
		p := ProduceResult{RecordSize: size, Acks: acks, Producers: 4, Bytes: int64(mbps * 1e6), Records: int64(mbps * 1e6 / float64(size)), Elapsed: sec, Errors: errs,
			Latency: Latency{P50: 800 * time.Microsecond, P99: 3 * time.Millisecond, P999: 12 * time.Millisecond, Max: 40 * time.Millisecond}}
		p.finish()
		return p
	}
	cons := func(size int, acks string, mbps float64) ConsumeResult {
		c := ConsumeResult{RecordSize: size, Acks: acks, Bytes: int64(mbps * 1e6), Records: 1000, Expected: 1000, Elapsed: sec}
		c.finish()
		return c
	}
	lat := func(p99 time.Duration) *ProduceResult {
		p := ProduceResult{RecordSize: 1024, Acks: "all", Producers: 1, TargetRate: 10000, Records: 100000, Bytes: 102400000, Elapsed: 10 * sec,
			Latency: Latency{P50: 500 * time.Microsecond, P99: p99, P999: 2 * p99, Max: 3 * p99}}
		p.finish()
		return &p
	}
	r := &Report{
		Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Machine: Machine{CPUs: 2, MemBytes: 8 << 30, Kernel: "6.1.0", GoVersion: "go1.26", OSArch: "linux/amd64", DataFS: "/tmp (ext4)", LoadAvg1: 0.5, LoadAvg1End: 1.75},
		Config:  ReportConfig{Duration: 10 * sec, Producers: 4, Partitions: 8, Window: 8 << 20, LatencyRate: 10000, LatencySize: 1024, LatencyDuration: 10 * sec},
		Limits: Limits{
			LoopbackTCP: Throughput{Bytes: 1000e6, Elapsed: sec},
			Sendfile:    Throughput{Bytes: 2000e6, Elapsed: sec},
			FsyncWrite:  Throughput{Bytes: 100e6, Elapsed: sec},
		},
		Modes: []ModeResult{
			{
				Mode:    ModeSafe,
				Latency: lat(1500 * time.Microsecond),
				Produce: []ProduceResult{prod(1024, "1", 80, 0), prod(1024, "all", 60, 0), prod(100, "1", 10, 0)},
				Consume: []ConsumeResult{cons(1024, "1", 900)},
			},
			{
				Mode:     ModePageCache,
				Settings: []string{"log.flush.interval.messages=9223372036854775807"},
				Latency:  lat(3 * time.Millisecond),
				Produce:  []ProduceResult{prod(1024, "1", 600, 0), prod(1024, "all", 700, 5), prod(100, "1", 50, 0)},
				Consume:  []ConsumeResult{cons(1024, "1", 1500), cons(1024, "all", 1300), cons(100, "1", 200)},
				Shutdown: &ShutdownInfo{Elapsed: 300 * time.Millisecond, Clean: true, Exit: "exit 0"},
				CPU:      CPUUse{Wall: 60 * sec, Broker: 50 * sec, Bench: 65 * sec},
			},
		},
	}
	r.Aims = EvaluateAims(r)
	return r
}

func TestEvaluateAims(t *testing.T) {
	r := sampleReport()
	type key struct{ aim, figure string }
	got := map[key]AimResult{}
	for _, a := range r.Aims {
		got[key{a.Aim, a.Figure}] = a
	}
	tests := []struct {
		aim, figure string
		ratio       float64 // 0 for latency aims
		met         bool
	}{
		{"safe-default produce >= 70% of fsync-per-MiB write", "safe produce 1024B acks=1", 0.80, true},
		{"safe-default produce >= 70% of fsync-per-MiB write", "safe produce 1024B acks=all", 0.60, false},
		{"page-cache produce >= 50% of loopback TCP", "page-cache produce 1024B acks=1", 0.60, true},
		// Above the ratio but with failed records: never met.
		{"page-cache produce >= 50% of loopback TCP", "page-cache produce 1024B acks=all", 0.70, false},
		{"page-cache consume >= 70% of sendfile", "page-cache consume 1024B (acks=1 topic)", 0.75, true},
		{"page-cache consume >= 70% of sendfile", "page-cache consume 1024B (acks=all topic)", 0.65, false},
		{"acks=all p99 at 10k records/s <= 2 ms", "safe p99 1024B acks=all at 10000/s", 0, true},
		{"acks=all p99 at 10k records/s <= 2 ms", "page-cache p99 1024B acks=all at 10000/s", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.figure, func(t *testing.T) {
			a, ok := got[key{tt.aim, tt.figure}]
			if !ok {
				t.Fatalf("aim %q for %q not evaluated; have %+v", tt.aim, tt.figure, r.Aims)
			}
			if a.Met != tt.met {
				t.Errorf("met = %v, want %v (%+v)", a.Met, tt.met, a)
			}
			if tt.ratio != 0 && (a.Ratio < tt.ratio-1e-9 || a.Ratio > tt.ratio+1e-9) {
				t.Errorf("ratio = %v, want %v", a.Ratio, tt.ratio)
			}
		})
	}
	// 100-byte rows are shown but not judged, and consume in safe mode has
	// no aim.
	if len(r.Aims) != len(tests) {
		t.Errorf("%d aims evaluated, want %d: %+v", len(r.Aims), len(tests), r.Aims)
	}
}

func TestEvaluateAimsWithoutLimits(t *testing.T) {
	// A failed limit measurement must not turn into a met aim.
	r := sampleReport()
	r.Limits = Limits{}
	for _, a := range EvaluateAims(r) {
		if a.Unit == "MB/s" && a.Met {
			t.Errorf("%s met without a measured limit", a.Figure)
		}
	}
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTable(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"machine: 2 CPUs, 8.0 GiB RAM, kernel 6.1.0, go1.26 linux/amd64, data dir on /tmp (ext4), load average 0.50 at start, 1.75 at end",
		"loopback TCP 1000.0 MB/s",
		"sendfile from page cache 2000.0 MB/s",
		"write + fsync per MiB 100.0 MB/s",
		"page-cache broker settings: log.flush.interval.messages=9223372036854775807",
		"page-cache broker SIGTERM -> exit 0 in 300ms",
		"page-cache CPU over 1m0s wall: broker 50s, bench 1m5s (of 2m0s available)",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Each produce row carries its limit and ratio: safe rows against
	// fsync, page-cache rows against loopback.
	rows := map[string][]string{
		"safe 1024B 1 max":       {"80.0", "fsync/MiB", "80%"},
		"page-cache 1024B 1 max": {"600.0", "loopback", "60%"},
		"safe 1024B all 10000/s": {"10.2", "1.50ms", "-"},
	}
	consumeRows := map[string][]string{
		"page-cache 100B 1": {"200.0", "sendfile", "10%"},
		"safe 1024B 1":      {"900.0", "sendfile", "45%"},
	}
	produceOut, consumeOut, _ := strings.Cut(out, "\nConsume")
	checkRows(t, produceOut, rows)
	checkRows(t, consumeOut, consumeRows)
	if !strings.Contains(out, "1500.0 MB/s  2000.0 MB/s  75% (need 70%)  met") {
		t.Errorf("aims table lacks the consume aim line:\n%s", out)
	}
	if n := strings.Count(out, " not met"); n != 4 {
		t.Errorf("%d aims not met in the table, want 4:\n%s", n, out)
	}
	if n := strings.Count(out, " met\n") - strings.Count(out, " not met\n"); n != 4 {
		t.Errorf("%d aims met in the table, want 4:\n%s", n, out)
	}
}

func TestWriteTableEmpty(t *testing.T) {
	// A run whose broker never came up still prints its limits, its error
	// and says that no aim could be judged.
	r := &Report{Modes: []ModeResult{{Mode: ModeSafe, Errors: []string{"broker 127.0.0.1:1 not ready"}}}}
	var buf bytes.Buffer
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"safe error: broker 127.0.0.1:1 not ready", "(none evaluated"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestWriteJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Limits struct {
			FsyncWrite struct {
				Bytes int64 `json:"bytes"`
			} `json:"fsync_write"`
		} `json:"limits"`
		Modes []struct {
			Mode    string `json:"mode"`
			Produce []struct {
				MBps    float64 `json:"mb_per_s"`
				Latency struct {
					P99 int64 `json:"p99_ns"`
				} `json:"latency"`
			} `json:"produce"`
		} `json:"modes"`
		Aims []struct {
			Met bool `json:"met"`
		} `json:"aims"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	if got.Limits.FsyncWrite.Bytes != 100e6 || len(got.Modes) != 2 || got.Modes[1].Mode != ModePageCache ||
		got.Modes[0].Produce[0].MBps != 80 || got.Modes[0].Produce[0].Latency.P99 != int64(3*time.Millisecond) || len(got.Aims) != 8 {
		t.Errorf("unexpected JSON: %+v", got)
	}
}

func TestFormatLatency(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "-"},
		{850 * time.Microsecond, "850us"},
		{1500 * time.Microsecond, "1.50ms"},
		{2500 * time.Millisecond, "2.50s"},
	}
	for _, tt := range tests {
		if got := formatLatency(tt.d); got != tt.want {
			t.Errorf("formatLatency(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// checkRows checks that out has, for each prefix of rows, a line whose
// leading fields are that prefix and which has each of its columns.
func checkRows(t *testing.T, out string, rows map[string][]string) {
	t.Helper()
	for prefix, cols := range rows {
		line := findLine(out, strings.Fields(prefix))
		if line == "" {
			t.Errorf("no row starting %q:\n%s", prefix, out)
			continue
		}
		for _, c := range cols {
			if !strings.Contains(line, " "+c+" ") && !strings.HasSuffix(line, " "+c) {
				t.Errorf("row %q lacks %q", line, c)
			}
		}
	}
}

// findLine returns the first line whose leading fields are prefix.
func findLine(out string, prefix []string) string {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= len(prefix) && strings.Join(f[:len(prefix)], " ") == strings.Join(prefix, " ") {
			return strings.Join(f, " ")
		}
	}
	return ""
}
