package storage

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestEpochCache(t *testing.T) {
	var c epochCache
	for _, e := range []epochEntry{{1, 0}, {1, 5}, {0, 7}, {3, 10}, {5, 20}} {
		c.assign(e.epoch, e.start)
	}
	want := epochCache{{1, 0}, {3, 10}, {5, 20}}
	if !slices.Equal(c, want) {
		t.Fatalf("cache %v, want %v", c, want)
	}
	const leo = 30
	for _, tc := range []struct {
		epoch     int32
		wantEpoch int32
		wantEnd   int64
	}{
		{5, 5, leo},  // latest epoch: the log end
		{3, 3, 20},   // known epoch: where the next one starts
		{4, 3, 20},   // unknown epoch between known ones: largest <= it
		{1, 1, 10},   // first epoch
		{2, 1, 10},   // between first and second
		{0, 0, 0},    // below the first: Kafka answers (requested, first start)
		{6, -1, -1},  // newer than any known
		{-1, -1, -1}, // undefined
	} {
		e, end := c.endOffsetFor(tc.epoch, leo)
		if e != tc.wantEpoch || end != tc.wantEnd {
			t.Errorf("endOffsetFor(%d) = (%d, %d), want (%d, %d)", tc.epoch, e, end, tc.wantEpoch, tc.wantEnd)
		}
	}
	if e, end := (epochCache{}).endOffsetFor(3, leo); e != -1 || end != -1 {
		t.Errorf("empty cache: (%d, %d)", e, end)
	}
	for off, want := range map[int64]int32{-1: -1, 0: 1, 9: 1, 10: 3, 19: 3, 20: 5, 99: 5} {
		if got := c.epochFor(off); got != want {
			t.Errorf("epochFor(%d) = %d, want %d", off, got, want)
		}
	}
	// Same start offset: the newer epoch replaces an epoch that wrote nothing.
	d := epochCache{{1, 0}}
	d.assign(2, 0)
	if !slices.Equal(d, epochCache{{2, 0}}) {
		t.Fatalf("replace empty epoch: %v", d)
	}

	head := slices.Clone(c)
	head.truncateFromStart(15)
	if !slices.Equal(head, epochCache{{3, 15}, {5, 20}}) {
		t.Fatalf("truncateFromStart(15): %v", head)
	}
	tail := slices.Clone(c)
	tail.truncateFromEnd(20)
	if !slices.Equal(tail, epochCache{{1, 0}, {3, 10}}) {
		t.Fatalf("truncateFromEnd(20): %v", tail)
	}
	b := encodeEpochCheckpoint(c)
	got, err := decodeEpochCheckpoint(b)
	if err != nil || !slices.Equal(got, c) {
		t.Fatalf("checkpoint round trip: %v %v", got, err)
	}
	if _, err := decodeEpochCheckpoint([]byte("0\n2\n1 0\n")); err == nil {
		t.Fatal("short checkpoint accepted")
	}
}

func TestLeaderEpochsThroughLog(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, smallConfig())
	// Epoch 1 writes 0..9, epoch 3 writes 10..29, epoch 4 writes 30..39.
	epochs := []struct {
		epoch int32
		n     int
	}{{1, 10}, {3, 20}, {4, 10}}
	for _, e := range epochs {
		for range e.n / 2 {
			leo := l.LogEndOffset()
			_, err := l.Append(split(t, build(spec{n: 2, val: func(i int) string { return valueAt(leo + int64(i)) }})), e.epoch, -1)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// A stale leader epoch does not enter the history.
	leo := l.LogEndOffset()
	if _, err := l.Append(split(t, build(spec{n: 1, val: func(int) string { return valueAt(leo) }})), 2, -1); err != nil {
		t.Fatal(err)
	}
	mustWaitDurable(t, l, l.LogEndOffset())
	check := func(t *testing.T, l *Log) {
		t.Helper()
		for _, tc := range []struct {
			off  int64
			want int32
		}{{0, 1}, {9, 1}, {10, 3}, {29, 3}, {30, 4}, {40, 4}} {
			if got := l.EpochForOffset(tc.off); got != tc.want {
				t.Errorf("EpochForOffset(%d) = %d, want %d", tc.off, got, tc.want)
			}
		}
		for _, tc := range []struct {
			epoch, wantEpoch int32
			wantEnd          int64
		}{{1, 1, 10}, {2, 1, 10}, {3, 3, 30}, {4, 4, 41}, {5, -1, -1}, {0, 0, 0}} {
			if e, end := l.EndOffsetForEpoch(tc.epoch); e != tc.wantEpoch || end != tc.wantEnd {
				t.Errorf("EndOffsetForEpoch(%d) = (%d, %d), want (%d, %d)", tc.epoch, e, end, tc.wantEpoch, tc.wantEnd)
			}
		}
		// The batches carry the epoch they were written in.
		rr, err := l.Read(8, 12, 1<<20, true)
		if err != nil {
			t.Fatal(err)
		}
		defer rr.Release()
		for _, r := range readRecords(t, &rr) {
			if want := l.EpochForOffset(r.off); r.epoch != want && r.off != 40 {
				t.Errorf("offset %d stored with epoch %d, want %d", r.off, r.epoch, want)
			}
		}
	}
	check(t, l)

	t.Run("after reopen", func(t *testing.T) {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		check(t, openTest(t, dir, smallConfig()))
	})
	t.Run("checkpoint lost", func(t *testing.T) {
		d2 := t.TempDir()
		copyDir(t, dir, d2)
		os.Remove(filepath.Join(d2, epochFile))
		os.Remove(filepath.Join(d2, cleanShutdownMrk))
		check(t, openTest(t, d2, smallConfig()))
	})
	t.Run("log start trims the history", func(t *testing.T) {
		d3 := t.TempDir()
		copyDir(t, dir, d3)
		l3 := openTest(t, d3, smallConfig())
		if _, err := l3.DeleteRecordsBefore(15); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(l3.epochs, epochCache{{3, 15}, {4, 30}}) {
			t.Fatalf("epochs after delete records: %v", l3.epochs)
		}
		if e, end := l3.EndOffsetForEpoch(1); e != 1 || end != 15 {
			t.Fatalf("EndOffsetForEpoch(1) after trimming = (%d, %d)", e, end)
		}
	})
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
