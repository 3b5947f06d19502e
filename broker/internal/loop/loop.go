package loop

import (
	"sync"
	"time"
)

// Events is the loop's unbounded inbox for timers and async work: posting
// never blocks, so no callback can deadlock with the loop.
type Events struct {
	mu     sync.Mutex
	q      []func()
	signal chan struct{} // capacity 1
}

// NewEvents returns an empty queue.
func NewEvents() *Events {
	return &Events{signal: make(chan struct{}, 1)}
}

// Post queues f for the loop and wakes it. It never blocks.
func (e *Events) Post(f func()) {
	e.mu.Lock()
	e.q = append(e.q, f)
	e.mu.Unlock()
	select {
	case e.signal <- struct{}{}:
	default:
	}
}

// Take removes and returns everything queued, in posting order.
func (e *Events) Take() []func() {
	e.mu.Lock()
	q := e.q
	e.q = nil
	e.mu.Unlock()
	return q
}

// Signal receives after a Post; the loop then calls Take until it is empty.
func (e *Events) Signal() <-chan struct{} { return e.signal }

// Handle is a loop-owned timer. Its callback runs on the loop, and not at
// all once stopped, so a Stop racing a firing timer is harmless.
type Handle struct {
	t       Timer
	stopped bool
}

// Timers is the set of a loop's pending timers. All its methods must be
// called on the loop goroutine.
type Timers struct {
	clock Clock
	ev    *Events
	set   map[*Handle]struct{}
}

// NewTimers returns timers driven by clock whose callbacks run through ev.
func NewTimers(clock Clock, ev *Events) *Timers {
	return &Timers{clock: clock, ev: ev, set: make(map[*Handle]struct{})}
}

// After arms a timer that runs f on the loop after d, unless stopped first.
func (ts *Timers) After(d time.Duration, f func()) *Handle {
	lt := &Handle{}
	ts.set[lt] = struct{}{}
	lt.t = ts.clock.AfterFunc(d, func() {
		ts.ev.Post(func() {
			if lt.stopped {
				return
			}
			lt.stopped = true
			delete(ts.set, lt)
			f()
		})
	})
	return lt
}

// Stop cancels lt; its callback will not run. A nil or already stopped (or
// fired) lt is a no-op.
func (ts *Timers) Stop(lt *Handle) {
	if lt == nil || lt.stopped {
		return
	}
	lt.stopped = true
	lt.t.Stop()
	delete(ts.set, lt)
}

// StopAll cancels every pending timer, as the loop does when it stops.
func (ts *Timers) StopAll() {
	for lt := range ts.set {
		lt.stopped = true
		lt.t.Stop()
	}
	clear(ts.set)
}
