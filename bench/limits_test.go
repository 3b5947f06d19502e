package bench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// The limit measurements are short here: the test checks that each one
// moves real bytes, accounts for them exactly and cleans up after
// itself, not how fast this machine is.
func TestMeasureLimits(t *testing.T) {
	ctx := context.Background()
	const d = 100 * time.Millisecond
	dir := t.TempDir()
	tests := []struct {
		name    string
		measure func() (Throughput, error)
		unit    int64 // Bytes must be a positive multiple of it
	}{
		{"loopback tcp", func() (Throughput, error) { return MeasureLoopbackTCP(ctx, d) }, 1},
		{"sendfile", func() (Throughput, error) { return measureSendfile(ctx, dir, 4*mib, d) }, 4 * mib},
		{"fsync write", func() (Throughput, error) { return MeasureFsyncWrite(ctx, dir, d) }, mib},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.measure()
			if err != nil {
				t.Fatal(err)
			}
			if got.Bytes <= 0 || got.Bytes%tt.unit != 0 || got.Elapsed <= 0 || got.BytesPerSec() <= 0 {
				t.Errorf("got %+v, want a positive multiple of %d bytes over a positive time", got, tt.unit)
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != 0 {
				t.Errorf("left %d files behind in %s", len(ents), dir)
			}
		})
	}
}

func TestThroughputZero(t *testing.T) {
	if (Throughput{Bytes: 10}).BytesPerSec() != 0 {
		t.Error("a throughput with no elapsed time must be 0, not Inf")
	}
}

func TestTailBuffer(t *testing.T) {
	b := newTailBuffer(16)
	b.Write([]byte("first line\n"))
	b.Write([]byte("second\nthird\n"))
	// 24 bytes written into 16 keep "ne\nsecond\nthird\n": String drops
	// the partial line.
	if got := b.String(); got != "second\nthird\n" {
		t.Errorf("String() = %q, want %q", got, "second\nthird\n")
	}
	if got := b.LastLines(1); got != "third" {
		t.Errorf("LastLines(1) = %q, want %q", got, "third")
	}
	if got := b.LastLines(5); got != "second\nthird" {
		t.Errorf("LastLines(5) = %q", got)
	}
	small := newTailBuffer(100)
	small.Write([]byte("a\nb\n"))
	if got := small.String(); got != "a\nb\n" {
		t.Errorf("String() = %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string // substring of the error; "" for valid
	}{
		{"default", func(*Config) {}, ""},
		{"zero duration", func(c *Config) { c.Duration = 0 }, "duration"},
		{"no sizes", func(c *Config) { c.RecordSizes = nil }, "record size"},
		{"negative size", func(c *Config) { c.RecordSizes = []int{1024, -1} }, "record size -1"},
		{"unknown mode", func(c *Config) { c.Modes = []string{"fast"} }, `unknown mode "fast"`},
		{"unknown mode ignored with brokers", func(c *Config) { c.Modes = []string{"fast"}; c.Brokers = []string{"x:1"} }, ""},
		{"bad external mode", func(c *Config) { c.ExternalMode = "x" }, "external mode"},
		{"latency without size", func(c *Config) { c.LatencySize = 0 }, "latency"},
		{"latency skipped", func(c *Config) { c.LatencyRate = 0; c.LatencySize = 0 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
