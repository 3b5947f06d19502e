package loop

import "time"

// Clock is a coordinator's only source of time: timestamps and every
// timeout. Tests drive it by hand (see looptest.FakeClock).
type Clock interface {
	Now() time.Time
	// AfterFunc calls f once, on any goroutine, after d. f must not block;
	// loop-owned timers' callbacks only post an event.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call. *time.Timer satisfies it.
type Timer interface {
	// Stop prevents the call if it has not started yet. A call that is
	// already under way is harmless: the loop ignores fired timers it has
	// cancelled.
	Stop() bool
}

// RealClock is wall time (or NowFunc, if set) and runtime timers.
type RealClock struct {
	NowFunc func() time.Time // nil: time.Now
}

// Now returns NowFunc(), or time.Now() if NowFunc is nil.
func (r RealClock) Now() time.Time {
	if r.NowFunc != nil {
		return r.NowFunc()
	}
	return time.Now()
}

// AfterFunc is time.AfterFunc.
func (RealClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

var _ Clock = RealClock{}
