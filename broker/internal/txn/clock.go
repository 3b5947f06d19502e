package txn

import "time"

// Clock is the coordinator's only source of time: the timestamps written to
// __transaction_state, transaction timeouts, transactional id expiry and
// retry backoff. Tests drive it by hand.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f once, on any goroutine, after d. f must not block;
	// the coordinator's callbacks only enqueue an event.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call. *time.Timer satisfies it.
type Timer interface {
	// Stop prevents the call if it has not started yet. A call already
	// under way is harmless: the loop ignores timers it has cancelled.
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

var _ Clock = realClock{}
