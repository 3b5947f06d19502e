package quota

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// window is the measurement configuration every sensor shares: the rate is
// taken over up to samples windows of width nanoseconds each.
type window struct {
	samples int
	width   int64 // nanoseconds
}

// span is the longest interval a rate is measured over.
func (w window) span() int64 { return int64(w.samples) * w.width }

// sample is one window of a sensor: the usage recorded while it was the
// current window.
type sample struct {
	start     int64 // when the window opened (first record after the previous closed)
	lastEvent int64 // last record that landed in it
	value     float64
}

// sensor is the usage of one quota entity (Kafka's quota sensor): a rate
// sampled over windows that open at the first record after the previous
// window closed, not on a fixed grid, exactly as Kafka's SampledStat does,
// so the throttle times clients see match an Apache Kafka broker's.
//
// One extra sample is kept beyond the configured count: a sample that
// started before the measured span but still had events inside it keeps
// counting until its last event ages out.
type sensor struct {
	mu      sync.Mutex
	bound   float64  // quota per second; guarded by mu (Update changes it)
	samples []sample // len grows to samples+1, never reallocated (cap preset)
	cur     int

	// lastUsed is the time of the last record (nanoseconds on the manager's
	// clock); read without mu by the idle sweep.
	lastUsed atomic.Int64

	// held is the last sweep generation in which a cached client pointed
	// at the sensor; guarded by the manager's mu (write-locked in sweep).
	held uint64
}

func newSensor(w window, bound float64, now int64) *sensor {
	s := &sensor{bound: bound, samples: make([]sample, 0, w.samples+1)}
	s.lastUsed.Store(now)
	return s
}

// add records v at now. Caller holds s.mu.
func (s *sensor) add(w window, v float64, now int64) {
	if len(s.samples) == 0 {
		s.samples = append(s.samples, sample{start: now, lastEvent: now})
		s.cur = 0
	}
	cur := &s.samples[s.cur]
	if now-cur.start >= w.width {
		s.cur = (s.cur + 1) % (w.samples + 1)
		if s.cur == len(s.samples) {
			s.samples = append(s.samples, sample{})
		}
		cur = &s.samples[s.cur]
		*cur = sample{start: now}
	}
	cur.value += v
	cur.lastEvent = now
	s.lastUsed.Store(now)
}

// measure returns the usage inside the measured span at now and the span
// (nanoseconds) itself; their ratio is the rate. Caller holds s.mu.
//
// Samples whose last event is a full span old are cleared first. The span
// runs from the start of the oldest remaining sample to now, but never
// counts fewer than samples-1 whole windows: a client that just started (or
// came back after a pause) is treated as if it had been idle before, so a
// single burst is measured against the whole span instead of the few
// milliseconds since its first byte.
func (s *sensor) measure(w window, now int64) (total float64, span int64) {
	expire := w.span()
	oldest := now
	for i := range s.samples {
		smp := &s.samples[i]
		if now-smp.lastEvent >= expire {
			*smp = sample{start: now, lastEvent: now}
		}
		total += smp.value
		oldest = min(oldest, smp.start)
	}
	span = max(now-oldest, 0)
	if full, want := span/w.width, int64(w.samples-1); full < want {
		span += (want - full) * w.width
	}
	return total, span
}

// throttle returns how long the entity must wait for its rate to fall back
// to the bound if it records nothing more: with observed rate O over span W
// and bound T, the X that solves O*W/(W+X) = T, i.e. (O-T)/T*W. It is
// rounded to whole milliseconds as Kafka does (a violation worth less than
// half a millisecond is no throttle) and capped at limit. Caller holds s.mu.
func (s *sensor) throttle(w window, now int64, limit time.Duration) time.Duration {
	total, span := s.measure(w, now)
	rate := total / (float64(span) / float64(time.Second))
	if !(rate > s.bound) {
		return 0
	}
	// bound 0 gives +Inf, which the cap turns into the longest throttle.
	ms := math.Round((rate - s.bound) / s.bound * float64(span) / float64(time.Millisecond))
	if limitMs := float64(limit / time.Millisecond); !(ms < limitMs) {
		return limit.Truncate(time.Millisecond)
	}
	return time.Duration(ms) * time.Millisecond
}
