package bench

import (
	"math"
	"math/bits"
	"time"
)

// The histogram is log-linear: values below 2*histSub are counted
// exactly, larger ones fall into buckets whose width is 1/histSub of
// their magnitude, so any recorded value is off by less than 1% (1/128).
// That is the precision HDR histograms with two significant digits give,
// for 58 KiB per histogram and no allocation per recorded value.
const (
	histSubBits = 7
	histSub     = 1 << histSubBits
	// Highest bucket: shift 56 (bits.Len64 of MaxUint64 minus histSubBits
	// plus one), top 255.
	histBuckets = (64-histSubBits)*histSub + histSub
)

// Histogram counts latencies (or any non-negative integer values). The
// zero value is ready to use. It is not safe for concurrent use: each
// producer owns one and the run merges them afterwards.
type Histogram struct {
	counts [histBuckets]uint64
	total  uint64
	sum    float64
	min    uint64
	max    uint64
}

// bucketOf maps a value to its bucket index.
func bucketOf(v uint64) int {
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(v) - 1 - histSubBits
	return shift*histSub + int(v>>uint(shift))
}

// bucketHigh is the largest value that falls into bucket i.
func bucketHigh(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	shift := uint(i/histSub - 1)
	top := uint64(i%histSub + histSub)
	return (top+1)<<shift - 1
}

// Record counts one value.
func (h *Histogram) Record(v uint64) {
	h.counts[bucketOf(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += float64(v)
}

// RecordDuration counts one duration in nanoseconds; negative durations
// (a clock step) count as zero.
func (h *Histogram) RecordDuration(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.Record(uint64(d))
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Min and Max are exact; zero when empty.
func (h *Histogram) Min() uint64 { return h.min }
func (h *Histogram) Max() uint64 { return h.max }

// Mean is exact up to float rounding; zero when empty.
func (h *Histogram) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}

// Quantile returns the value at quantile q (0 < q <= 1): the smallest
// bucket bound that at least ceil(q*count) values do not exceed. It
// reports the top of the bucket (never below the true value, by less
// than 1% above it) clamped to the exact maximum, so a latency aim met by
// the histogram is met by the raw data too. Zero when empty.
func (h *Histogram) Quantile(q float64) uint64 {
	if h.total == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank < 1 {
		rank = 1
	}
	if rank > h.total {
		rank = h.total
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return max(min(bucketHigh(i), h.max), h.min)
		}
	}
	return h.max
}

// QuantileDuration is Quantile for histograms of nanoseconds.
func (h *Histogram) QuantileDuration(q float64) time.Duration {
	v := h.Quantile(q)
	if v > math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(v)
}
