package storage

import (
	"os"
	"path/filepath"
	"testing"
)

type tsBatch struct {
	first int64
	ts    []int64 // record timestamps
}

// fillTimestamps appends batches with pseudo-random, not monotonic,
// timestamps and returns what it wrote.
func fillTimestamps(t *testing.T, l *Log, n int) []tsBatch {
	t.Helper()
	var out []tsBatch
	seed := uint32(12345)
	rnd := func(m int) int {
		seed = seed*1664525 + 1013904223
		return int(seed>>8) % m
	}
	for i := range n {
		recs := 1 + rnd(4)
		first := int64(i*50 + rnd(400)) // drifts up, with reorderings
		info := appendSpec(t, l, spec{n: recs, ts: first, pad: 30})
		b := tsBatch{first: info.FirstOffset}
		for j := range recs {
			b.ts = append(b.ts, first+int64(j))
		}
		out = append(out, b)
	}
	return out
}

// expectOffsetForTs is the brute-force answer: the first batch whose max
// timestamp reaches ts, then its first record that does.
func expectOffsetForTs(bs []tsBatch, ts, logStart int64) (int64, int64, bool) {
	for _, b := range bs {
		maxTs := b.ts[len(b.ts)-1]
		if maxTs < ts || b.first+int64(len(b.ts))-1 < logStart {
			continue
		}
		for j, rts := range b.ts {
			if off := b.first + int64(j); rts >= ts && off >= logStart {
				return off, rts, true
			}
		}
	}
	return -1, -1, false
}

func TestOffsetForTimestamp(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, smallConfig())
	bs := fillTimestamps(t, l, 150)
	if l.NumSegments() < 5 {
		t.Fatalf("%d segments", l.NumSegments())
	}
	mustWaitDurable(t, l, l.LogEndOffset())
	check := func(t *testing.T, l *Log) {
		t.Helper()
		ls := l.LogStartOffset()
		for ts := int64(-5); ts < 8000; ts += 13 {
			wantOff, wantTs, wantOK := expectOffsetForTs(bs, ts, ls)
			off, gotTs, epoch, ok := l.OffsetForTimestamp(ts)
			if ok != wantOK || off != wantOff || gotTs != wantTs {
				t.Fatalf("OffsetForTimestamp(%d) = (%d, %d, %v), want (%d, %d, %v)", ts, off, gotTs, ok, wantOff, wantTs, wantOK)
			}
			if ok && epoch != 7 {
				t.Fatalf("OffsetForTimestamp(%d): epoch %d", ts, epoch)
			}
		}
	}
	check(t, l)

	// Max timestamp: the largest, earliest record carrying it.
	var wantOff, wantTs int64 = -1, -1
	for _, b := range bs {
		for j, ts := range b.ts {
			if ts > wantTs {
				wantOff, wantTs = b.first+int64(j), ts
			}
		}
	}
	if off, ts, epoch := l.MaxTimestamp(); off != wantOff || ts != wantTs || epoch != 7 {
		t.Fatalf("MaxTimestamp = (%d, %d, %d), want (%d, %d, 7)", off, ts, epoch, wantOff, wantTs)
	}

	t.Run("reopened with index files", func(t *testing.T) {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		check(t, openTest(t, dir, smallConfig()))
	})
	t.Run("reopened with rebuilt indexes", func(t *testing.T) {
		d2 := t.TempDir()
		copyDir(t, dir, d2)
		removeGlob(t, d2, "*"+timeIndexSuffix)
		os.Remove(filepath.Join(d2, cleanShutdownMrk))
		check(t, openTest(t, d2, smallConfig()))
	})
	t.Run("after delete records", func(t *testing.T) {
		d3 := t.TempDir()
		copyDir(t, dir, d3)
		l3 := openTest(t, d3, smallConfig())
		if _, err := l3.DeleteRecordsBefore(bs[40].first + 1); err != nil {
			t.Fatal(err)
		}
		check(t, l3)
	})
}

func TestTimestampsOnEmptyLog(t *testing.T) {
	l := openTest(t, t.TempDir(), smallConfig())
	if off, ts, epoch := l.MaxTimestamp(); off != -1 || ts != -1 || epoch != -1 {
		t.Fatalf("MaxTimestamp on empty log = (%d, %d, %d)", off, ts, epoch)
	}
	if _, _, _, ok := l.OffsetForTimestamp(0); ok {
		t.Fatal("OffsetForTimestamp found something in an empty log")
	}
}
