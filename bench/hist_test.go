package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketBounds(t *testing.T) {
	// Every value must land in a bucket whose upper bound is at least the
	// value and less than 1% above it, and buckets must be contiguous.
	values := []uint64{0, 1, 127, 128, 255, 256, 257, 511, 512, 1000, 1 << 20, 123456789, 1<<40 + 12345, math.MaxInt64, math.MaxUint64}
	for _, v := range values {
		i := bucketOf(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d, out of range", v, i)
		}
		hi := bucketHigh(i)
		if hi < v {
			t.Errorf("bucketHigh(bucketOf(%d)) = %d, below the value", v, hi)
		}
		if v > 0 && float64(hi-v)/float64(v) >= 1.0/histSub {
			t.Errorf("bucket of %d ends at %d, %.3f%% above", v, hi, 100*float64(hi-v)/float64(v))
		}
	}
	for i := 1; i < histBuckets; i++ {
		if lo := bucketHigh(i-1) + 1; bucketOf(lo) != i {
			t.Fatalf("value %d after bucket %d goes to bucket %d, want %d", lo, i-1, bucketOf(lo), i)
		}
	}
	if bucketOf(math.MaxUint64) != histBuckets-1 {
		t.Errorf("max value in bucket %d, want the last one %d", bucketOf(math.MaxUint64), histBuckets-1)
	}
}

func TestQuantiles(t *testing.T) {
	tests := []struct {
		name   string
		values []uint64
		q      float64
		want   uint64
	}{
		{"empty", nil, 0.5, 0},
		{"single", []uint64{42}, 0.99, 42},
		{"exact small values p50", seq(1, 100), 0.50, 50},
		{"exact small values p99", seq(1, 100), 0.99, 99},
		{"exact small values p100", seq(1, 100), 1, 100},
		{"q zero is min", []uint64{7, 9, 11}, 0, 7},
		// One slow record among 1000 is the p99.9 but not the p99.
		{"tail p99", append(repeat(1000, 999), 5_000_000), 0.99, 1000},
		{"tail p99.9", append(repeat(1000, 999), 5_000_000), 0.999, 1000},
		{"tail max", append(repeat(1000, 999), 5_000_000), 1, 5_000_000},
		{"tail p99.9 of 1000 with 2 slow", append(repeat(1000, 998), 5_000_000, 5_000_000), 0.999, 5_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tt.values {
				h.Record(v)
			}
			got := h.Quantile(tt.q)
			// Large values are reported at their bucket's top, within 1%.
			if got < tt.want || float64(got-tt.want) > float64(tt.want)/histSub {
				t.Errorf("Quantile(%v) = %d, want %d (within 1%% above)", tt.q, got, tt.want)
			}
		})
	}
}

func TestQuantilesMatchSorted(t *testing.T) {
	// Against exact order statistics of a wide, skewed sample: the
	// histogram's answer is never below the true value and less than 1%
	// above it, and never above the maximum.
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]uint64, 100_000)
	for i := range vals {
		v := uint64(r.ExpFloat64() * float64(300*time.Microsecond))
		vals[i] = v
		h.Record(v)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
		want := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := h.Quantile(q)
		if got < want || float64(got-want) > float64(want)/histSub || got > h.Max() {
			t.Errorf("q=%v: got %d, exact %d", q, got, want)
		}
	}
	if h.Count() != uint64(len(vals)) || h.Min() != vals[0] || h.Max() != vals[len(vals)-1] {
		t.Errorf("count/min/max = %d/%d/%d, want %d/%d/%d", h.Count(), h.Min(), h.Max(), len(vals), vals[0], vals[len(vals)-1])
	}
}

func TestMerge(t *testing.T) {
	var a, b, all Histogram
	for i := uint64(1); i <= 1000; i++ {
		all.Record(i * 1000)
		if i%2 == 0 {
			a.Record(i * 1000)
		} else {
			b.Record(i * 1000)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{}) // merging an empty one changes nothing (min stays)
	for _, q := range []float64{0.5, 0.99, 0.999} {
		if m.Quantile(q) != all.Quantile(q) {
			t.Errorf("merged q=%v = %d, single %d", q, m.Quantile(q), all.Quantile(q))
		}
	}
	if m.Count() != 1000 || m.Min() != 1000 || m.Max() != 1_000_000 || m.Mean() != all.Mean() {
		t.Errorf("merged count/min/max/mean = %d/%d/%d/%v", m.Count(), m.Min(), m.Max(), m.Mean())
	}
}

func TestRecordDurationClampsNegative(t *testing.T) {
	var h Histogram
	h.RecordDuration(-time.Second)
	h.RecordDuration(2 * time.Millisecond)
	if h.Min() != 0 || h.QuantileDuration(1) != 2*time.Millisecond {
		t.Errorf("min %d, max quantile %v", h.Min(), h.QuantileDuration(1))
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	var h Histogram
	if n := testing.AllocsPerRun(1000, func() { h.RecordDuration(1234567) }); n != 0 {
		t.Errorf("Record allocates %v times", n)
	}
}

func seq(from, to uint64) []uint64 {
	var s []uint64
	for v := from; v <= to; v++ {
		s = append(s, v)
	}
	return s
}

func repeat(v uint64, n int) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func BenchmarkRecord(b *testing.B) {
	var h Histogram
	for i := 0; b.Loop(); i++ {
		h.Record(uint64(i) * 977)
	}
}
