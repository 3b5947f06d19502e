// Package looptest provides FakeClock, a loop.Clock that tests drive by
// hand.
package looptest

import (
	"sort"
	"sync"
	"time"

	"github.com/strata-broker/strata/broker/internal/loop"
)

// FakeClock fires timers only when the test advances it. After each fired
// timer it calls Settle (a coordinator barrier), so timers the coordinator
// arms in reaction are due relative to the right instant.
type FakeClock struct {
	// Settle, if set, is called after each fired timer and at the end of
	// Advance.
	Settle func()

	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	seq    int
}

type fakeTimer struct {
	clk     *FakeClock
	at      time.Time
	seq     int
	f       func()
	stopped bool
}

func (t *fakeTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// NewFakeClock returns a clock at 2024-01-01 00:00 UTC.
func NewFakeClock() *FakeClock {
	return NewFakeClockAt(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
}

// NewFakeClockAt returns a clock at now.
func NewFakeClockAt(now time.Time) *FakeClock {
	return &FakeClock{now: now}
}

// Now returns the clock's current time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arms a timer that fires when Advance reaches Now()+d.
func (c *FakeClock) AfterFunc(d time.Duration, f func()) loop.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{clk: c, at: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves time forward by d, firing due timers in deadline order.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var live []*fakeTimer
		for _, t := range c.timers {
			if !t.stopped {
				live = append(live, t)
			}
		}
		c.timers = live
		sort.Slice(live, func(i, j int) bool {
			if !live[i].at.Equal(live[j].at) {
				return live[i].at.Before(live[j].at)
			}
			return live[i].seq < live[j].seq
		})
		if len(live) == 0 || live[0].at.After(target) {
			c.now = target
			c.mu.Unlock()
			if c.Settle != nil {
				c.Settle()
			}
			return
		}
		t := live[0]
		t.stopped = true
		if t.at.After(c.now) {
			c.now = t.at
		}
		c.mu.Unlock()
		t.f()
		if c.Settle != nil {
			c.Settle()
		}
	}
}

var _ loop.Clock = (*FakeClock)(nil)
