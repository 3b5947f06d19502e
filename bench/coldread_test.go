package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestColdRatio(t *testing.T) {
	tests := []struct {
		consume, get, want float64
	}{
		{700, 1000, 0.70},
		{350, 2500, 0.14},
		{100, 0, 0}, // no GET figure: no ratio rather than +Inf
		{0, 1000, 0},
	}
	for _, tt := range tests {
		if got := coldRatio(tt.consume, tt.get); got < tt.want-1e-9 || got > tt.want+1e-9 {
			t.Errorf("coldRatio(%v, %v) = %v, want %v", tt.consume, tt.get, got, tt.want)
		}
	}
}

func sampleCold(consumeMBps, getMBps float64) *ColdReadResult {
	c := &ColdReadResult{
		Store: "versitygw", Partitions: 8, SegmentBytes: 8 << 20, TargetBytes: 512 << 20,
		Produce: ProduceResult{RecordSize: 1024, Acks: "all", Records: 1000, Bytes: 500e6, Elapsed: time.Second},
		RawGet:  GetResult{Objects: 64, Passes: 3, Requests: 384, Bytes: int64(getMBps * 2e6), Elapsed: 2 * time.Second, Concurrency: 8, RangeBytes: 4 << 20},
		Consume: ConsumeResult{RecordSize: 1024, Acks: "all", Expected: 1000, Records: 1000, Bytes: int64(consumeMBps * 1e6), Elapsed: time.Second},
		Write:   StoreActivity{Requests: map[string]int64{"put": 256}, Uploaded: 500e6},
		Read:    StoreActivity{Requests: map[string]int64{"get": 192}, Downloaded: 500e6, CacheHits: 600, CacheMiss: 8},
	}
	c.Produce.finish()
	c.Consume.finish()
	c.RawGet.MBps, _ = rates(c.RawGet.Bytes, 0, c.RawGet.Elapsed)
	c.Ratio = coldRatio(c.Consume.MBps, c.RawGet.MBps)
	return c
}

func TestColdReadMet(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *ColdReadResult)
		met  bool
	}{
		{"above the aim", func(*ColdReadResult) {}, true},
		{"below the aim", func(c *ColdReadResult) { c.Ratio = 0.69 }, false},
		{"incomplete read", func(c *ColdReadResult) { c.Consume.Records = 999 }, false},
		{"fetch errors", func(c *ColdReadResult) { c.Consume.Errors = 1 }, false},
		{"GET errors", func(c *ColdReadResult) { c.RawGet.Errors = 1 }, false},
		{"run error", func(c *ColdReadResult) { c.Errors = []string{"wait for tiering: still local"} }, false},
		{"nothing read", func(c *ColdReadResult) { c.Consume.Records, c.Consume.Expected = 0, 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := sampleCold(800, 1000)
			tt.edit(c)
			if got := c.Met(); got != tt.met {
				t.Errorf("Met() = %v, want %v", got, tt.met)
			}
		})
	}
}

func TestEvaluateAimsColdRead(t *testing.T) {
	r := sampleReport()
	r.ColdRead = sampleCold(600, 1000)
	aims := EvaluateAims(r)
	a := aims[len(aims)-1]
	if a.Aim != "cold read >= 70% of raw GET of the same objects" || a.Value != 600 || a.Limit != 1000 ||
		a.Ratio < 0.6-1e-9 || a.Ratio > 0.6+1e-9 || a.Target != 0.70 || a.Met {
		t.Errorf("cold aim = %+v", a)
	}
	// Without a raw GET figure there is nothing to judge against.
	r.ColdRead.RawGet = GetResult{}
	for _, a := range EvaluateAims(r) {
		if strings.HasPrefix(a.Aim, "cold read") {
			t.Errorf("cold aim evaluated without a raw GET figure: %+v", a)
		}
	}
}

func TestWriteTableColdRead(t *testing.T) {
	r := sampleReport()
	r.ColdRead = sampleCold(800, 1000)
	r.ColdRead.Errors = []string{"stop second broker: did not exit cleanly"}
	r.Aims = EvaluateAims(r)
	var buf bytes.Buffer
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := strings.Join(strings.Fields(buf.String()), " ")
	for _, want := range []string{
		"raw GET (8 in flight, 4MiB ranges, 64 .log objects x 3 passes) 1000.0 2000.0 MB 384 2s - 0",
		"cold consume (one client, restarted broker, empty cache) 800.0 800.0 MB 1000/1000 records 1s 80% 0",
		// 256 puts over 0.5 GB written, 192 gets over 0.8 GB read.
		"written 0.500 512 0 0 0 0 512 0 500.0 MB",
		"read 0.800 0 240 0 0 0 240 0 500.0 MB",
		"read cache hits/misses 600/8",
		"cold read error: stop second broker: did not exit cleanly",
		// A run error keeps the aim from being met even above the ratio.
		"cold read >= 70% of raw GET of the same objects cold consume 1024B from the bucket 800.0 MB/s 1000.0 MB/s 80% (need 70%) not met",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestWriteTableColdOnly(t *testing.T) {
	// -cold-only measures no limits and runs no mode: their sections are
	// left out rather than printed as zeros.
	r := &Report{ColdRead: sampleCold(800, 1000)}
	r.Aims = EvaluateAims(r)
	var buf bytes.Buffer
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, unwanted := range []string{"Machine limits", "Produce (", "Consume (", "loopback TCP"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("cold-only table has %q:\n%s", unwanted, out)
		}
	}
	if !strings.Contains(out, "Cold read (") || !strings.Contains(out, "80% (need 70%)  met") {
		t.Errorf("cold-only table lacks the cold read or its aim:\n%s", out)
	}
}

func TestWriteJSONColdRead(t *testing.T) {
	r := sampleReport()
	r.ColdRead = sampleCold(800, 1000)
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Cold struct {
			Ratio  float64 `json:"ratio"`
			RawGet struct {
				MBps float64 `json:"mb_per_s"`
			} `json:"raw_get"`
			Read struct {
				Requests map[string]int64 `json:"requests"`
			} `json:"read_requests"`
		} `json:"cold_read"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Cold.Ratio != 0.8 || got.Cold.RawGet.MBps != 1000 || got.Cold.Read.Requests["get"] != 192 {
		t.Errorf("cold_read JSON = %+v", got.Cold)
	}
}

func TestSelectLogObjects(t *testing.T) {
	const topic = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	objs := []objectRef{
		{"strata/3f/clu/" + topic + "/0/00000000000000000000-aaaa.log", 100},
		{"strata/3f/clu/" + topic + "/0/00000000000000000000-aaaa.index", 8},
		{"strata/3f/clu/" + topic + "/0/00000000000000000000-aaaa.timeindex", 12},
		{"strata/3f/clu/" + topic + "/0/00000000000000000050-orphan.log", 70}, // a failed upload's leftover
		{"strata/a1/clu/" + topic + "/1/00000000000000000000-bbbb.log", 200},
		{"strata/a1/clu/other-topic/1/00000000000000000000-cccc.log", 300},
		{"strata/clu/manifests/" + topic + "/0.json", 400},
		{"strata/a1/clu/" + topic + "/1/notasegment.log", 5},
	}
	names := func(os []objectRef) string {
		var s []string
		for _, o := range os {
			s = append(s, o.Key[strings.LastIndexByte(o.Key, '/')+1:])
		}
		return strings.Join(s, " ")
	}
	got := selectLogObjects(objs, topic, map[string]bool{"aaaa": true, "bbbb": true})
	if names(got) != "00000000000000000000-aaaa.log 00000000000000000000-bbbb.log" {
		t.Errorf("with manifests: %s", names(got))
	}
	got = selectLogObjects(objs, topic, nil)
	if names(got) != "00000000000000000000-aaaa.log 00000000000000000050-orphan.log 00000000000000000000-bbbb.log" {
		t.Errorf("without manifests: %s", names(got))
	}
	if !isManifestKey("strata/clu/manifests/"+topic+"/0.json", topic) || isManifestKey("strata/clu/manifests/other/0.json", topic) {
		t.Error("isManifestKey")
	}
}

func TestSplitRanges(t *testing.T) {
	got := splitRanges([]objectRef{{"a", 10}, {"b", 4}, {"c", 0}}, 4)
	want := []getRange{{"a", 0, 4}, {"a", 4, 4}, {"a", 8, 2}, {"b", 0, 4}}
	if len(got) != len(want) {
		t.Fatalf("ranges = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("range %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestUUIDString(t *testing.T) {
	id := [16]byte{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	if got := uuidString(id); got != "6ba7b810-9dad-11d1-80b4-00c04fd430c8" {
		t.Errorf("uuidString = %s", got)
	}
}

func TestAllTiered(t *testing.T) {
	tests := []struct {
		name string
		offs []ColdPartition
		want bool
	}{
		{"none", nil, false},
		{"all remote", []ColdPartition{{0, 0, 100, 100}, {1, 0, 90, 90}}, true},
		{"one still local", []ColdPartition{{0, 0, 100, 100}, {1, 0, 60, 90}}, false},
		// A partition the producers never picked has nothing to wait for.
		{"an empty partition", []ColdPartition{{0, 0, 100, 100}, {1, 0, 0, 0}}, true},
		{"all empty", []ColdPartition{{0, 0, 0, 0}, {1, 5, 5, 5}}, false},
	}
	for _, tt := range tests {
		if got := allTiered(tt.offs); got != tt.want {
			t.Errorf("%s: allTiered = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestParseProcStatCPU(t *testing.T) {
	// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
	// majflt cmajflt utime stime ...; the name may hold spaces and ')'.
	stat := "4242 (strata (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 125 0 0 20 0 12 0 1000"
	got, err := parseProcStatCPU(stat)
	if err != nil || got != 3750*time.Millisecond {
		t.Errorf("parseProcStatCPU = %v, %v; want 3.75s", got, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 x 5"} {
		if _, err := parseProcStatCPU(bad); err == nil {
			t.Errorf("parseProcStatCPU(%q) gave no error", bad)
		}
	}
}

func TestParseAdminAddr(t *testing.T) {
	tests := []struct {
		line, want string
		ok         bool
	}{
		{`time=2026-11-25T17:33:08.919Z level=INFO msg="admin listener" addr=127.0.0.1:36177`, "127.0.0.1:36177", true},
		{`time=x level=INFO msg="admin listener" addr=[::1]:9644 extra=1`, "[::1]:9644", true},
		{`time=x level=INFO msg="broker started" addr=127.0.0.1:1`, "", false},
		{`time=x level=INFO msg="admin listener" addr=nonsense`, "", false},
	}
	for _, tt := range tests {
		got, ok := parseAdminAddr(tt.line)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseAdminAddr(%q) = %q, %v; want %q, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func TestAdminSnifferSplitWrites(t *testing.T) {
	// The process's output arrives in arbitrary pieces; the line may be
	// split anywhere.
	out := "time=a level=INFO msg=\"broker starting\"\ntime=b level=INFO msg=\"admin listener\" addr=127.0.0.1:4321\ntime=c msg=after\n"
	for _, step := range []int{1, 7, 64, len(out)} {
		a := newAdminSniffer()
		for i := 0; i < len(out); i += step {
			a.Write([]byte(out[i:min(i+step, len(out))]))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		got, err := a.wait(ctx)
		cancel()
		if err != nil || got != "127.0.0.1:4321" {
			t.Errorf("step %d: wait = %q, %v", step, got, err)
		}
	}
}

func TestRedactArgs(t *testing.T) {
	got := strings.Join(redactArgs([]string{"--set", "s3-secret-key=hunter2", "--set", "s3-access-key=AK", "x=y"}), " ")
	if got != "--set s3-secret-key=*** --set s3-access-key=AK x=y" {
		t.Errorf("redactArgs = %s", got)
	}
}

func TestValidateColdRead(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"cold only", func(c *Config) { c.ColdOnly = true }, true},
		{"cold only with an external broker", func(c *Config) { c.ColdOnly, c.Brokers = true, []string{"127.0.0.1:9092"} }, false},
		// With --brokers the full run leaves the cold read out.
		{"external broker", func(c *Config) { c.Brokers = []string{"127.0.0.1:9092"} }, true},
		{"no bytes", func(c *Config) { c.ColdBytes = 0 }, false},
		{"no GET concurrency", func(c *Config) { c.ColdGetConcurrency = 0 }, false},
		{"disabled, bad settings ignored", func(c *Config) { c.ColdRead, c.ColdBytes = false, 0 }, true},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		tt.edit(&c)
		if err := c.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
