package groups

import "time"

// Clock is the coordinator's only source of time: timestamps written to
// __consumer_offsets and every timeout (session, rebalance, initial delay,
// pending sync, offset retention). Tests drive it by hand.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f once, on any goroutine, after d. f must not block;
	// the coordinator's callbacks only enqueue an event.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call. *time.Timer satisfies it.
type Timer interface {
	// Stop prevents the call if it has not started yet. A call that is
	// already under way is harmless: the coordinator ignores fired timers
	// it has cancelled.
	Stop() bool
}

// realClock is the default: wall time (or Config.Now) and runtime timers.
type realClock struct{ now func() time.Time }

func (r realClock) Now() time.Time { return r.now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

var _ Clock = realClock{}
