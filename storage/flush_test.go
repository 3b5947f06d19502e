package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestGroupCommit(t *testing.T) {
	t.Run("burst", func(t *testing.T) {
		l := openTest(t, t.TempDir(), DefaultConfig())
		const n = 64
		before := l.fsyncRounds.Load()
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				info, err := l.Append(split(t, build(spec{n: 2, pad: 100})), 1, -1)
				if err == nil {
					err = l.WaitDurable(context.Background(), info.LastOffset+1)
				}
				errs <- err
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		rounds := l.fsyncRounds.Load() - before
		t.Logf("%d durable appends, %d fsync rounds", n, rounds)
		if rounds > n/4 {
			t.Fatalf("%d fsync rounds for %d concurrent appends: commits are not grouped", rounds, n)
		}
		if l.HighWatermark() != 2*n {
			t.Fatalf("HW %d", l.HighWatermark())
		}
	})
	t.Run("sustained", func(t *testing.T) {
		l := openTest(t, t.TempDir(), DefaultConfig())
		const producers, each = 16, 25
		before := l.fsyncRounds.Load()
		var wg sync.WaitGroup
		for range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					info, err := l.Append(split(t, build(spec{n: 1, pad: 500})), 1, -1)
					if err == nil {
						err = l.WaitDurable(context.Background(), info.LastOffset+1)
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		rounds := l.fsyncRounds.Load() - before
		t.Logf("%d durable appends, %d fsync rounds", producers*each, rounds)
		// Every round serves the producers that appended while the previous
		// one ran; with 16 producers far fewer rounds than appends.
		if rounds >= producers*each/2 {
			t.Fatalf("%d fsync rounds for %d appends", rounds, producers*each)
		}
	})
}

func TestRelaxedFlush(t *testing.T) {
	t.Run("by messages", func(t *testing.T) {
		cfg := smallConfig()
		cfg.FlushMessages = 10
		l := openTest(t, t.TempDir(), cfg)
		durable := l.durableChan()
		appendNumbered(t, l, 4, 0, 0)
		appendNumbered(t, l, 4, 0, 0)
		appendNumbered(t, l, 4, 0, 0) // 12 >= 10: flush
		select {
		case <-durable:
		case <-time.After(10 * time.Second):
			t.Fatal("no flush after flush.messages records")
		}
		l.fmu.Lock()
		d := l.durable
		l.fmu.Unlock()
		if d < 12 {
			t.Fatalf("durable %d", d)
		}
	})
	t.Run("by time", func(t *testing.T) {
		cfg := smallConfig()
		cfg.FlushMessages = 1 << 40
		cfg.FlushMs = 5
		l := openTest(t, t.TempDir(), cfg)
		durable := l.durableChan()
		info := appendNumbered(t, l, 1, 0, 0)
		if l.HighWatermark() != info.LastOffset+1 {
			t.Fatalf("relaxed HW %d", l.HighWatermark())
		}
		select {
		case <-durable:
		case <-time.After(10 * time.Second):
			t.Fatal("no flush after flush.ms")
		}
	})
}

func TestWaitDurableHonoursContext(t *testing.T) {
	l := openTest(t, t.TempDir(), DefaultConfig())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.WaitDurable(ctx, 1000) }() // never appended
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("got %v", err)
	}
}

func TestSyncAndCloseRace(t *testing.T) {
	l, err := Open(t.TempDir(), smallConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	fillLog(t, l, 20)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if err := l.Sync(); err != nil {
					return
				}
			}
		}()
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

// failingSyncer fails every data sync, like a disk that went bad.
type failingSyncer struct{ osSyncer }

var errDiskGone = errors.New("injected fdatasync failure")

func (failingSyncer) syncData(*os.File) error { return errDiskGone }

func TestFsyncFailureIsSticky(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, smallConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ok := appendNumbered(t, l, 2, 0, 0)
	mustWaitDurable(t, l, ok.LastOffset+1)
	l.flushMu.Lock()
	l.fsys = failingSyncer{}
	l.flushMu.Unlock()

	info := appendNumbered(t, l, 2, 0, 0)
	expectErr(t, l.WaitDurable(context.Background(), info.LastOffset+1), errDiskGone)
	if hw := l.HighWatermark(); hw != ok.LastOffset+1 {
		t.Fatalf("HW moved to %d over data that is not durable", hw)
	}
	_, err = l.Append(split(t, build(spec{})), 0, -1)
	expectErr(t, err, errDiskGone)
	expectErr(t, l.Sync(), errDiskGone)
	expectErr(t, l.Close(), errDiskGone)
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownMrk)); !os.IsNotExist(err) {
		t.Fatalf("clean shutdown marker written after a failed fsync: %v", err)
	}
	// Reopening recovers; what reached the file is checked and kept.
	l2 := openTest(t, dir, smallConfig())
	if got := readAll(t, l2, 0); len(got) != 4 {
		t.Fatalf("read %d records after reopen", len(got))
	}
}
