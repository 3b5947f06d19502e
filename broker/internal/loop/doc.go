// Package loop holds the machinery shared by Strata's single-goroutine
// coordinators (internal/groups and internal/txn).
//
// Each such coordinator keeps its state on one goroutine, the loop. Work
// reaches the loop in two ways: API callers hand it functions over a
// channel of their own, and everything else (fired timers, finished
// appends, background writes) posts to an Events queue. Events is an
// unbounded queue owned by the loop goroutine: Post never blocks, so no
// timer callback or writer can deadlock with the loop, and the loop wakes
// on Signal and runs what Take returns.
//
// Timers are loop-owned: Timers.After arms a Handle whose callback is
// posted to the Events queue when it fires and then runs on the loop, never
// on the clock's goroutine. A Handle stopped with Timers.Stop (or by
// Timers.StopAll when the loop shuts down) never runs its callback, even if
// the underlying timer had already fired and its event is still queued, so
// a Stop racing a firing timer is harmless.
//
// Time itself comes from an injectable Clock (Now and AfterFunc returning a
// Timer); RealClock is wall time and runtime timers. Tests use
// loop/looptest's FakeClock, which fires timers only when the test advances
// it.
package loop
