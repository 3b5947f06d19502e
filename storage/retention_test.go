package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRetentionByTime(t *testing.T) {
	clk := newFakeClock()
	cfg := smallConfig()
	cfg.RetentionMs = int64(time.Hour / time.Millisecond)
	l := openTest(t, t.TempDir(), cfg, Options{Now: clk.Now})
	for range 30 { // old data, several segments
		appendNumbered(t, l, 3, clk.Ms(), 20)
	}
	clk.Advance(90 * time.Minute)
	boundary := l.LogEndOffset()
	for range 30 { // fresh data
		appendNumbered(t, l, 3, clk.Ms(), 20)
	}
	mustWaitDurable(t, l, l.LogEndOffset())
	segsBefore := l.NumSegments()

	n, err := l.EnforceRetention()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || l.NumSegments() != segsBefore-n {
		t.Fatalf("deleted %d of %d segments, %d left", n, segsBefore, l.NumSegments())
	}
	ls := l.LogStartOffset()
	if ls > boundary {
		t.Fatalf("log start %d beyond the first fresh offset %d: fresh data deleted", ls, boundary)
	}
	l.segMu.RLock()
	first := l.segs[0]
	l.segMu.RUnlock()
	if first.base != ls || first.maxTs < clk.Ms()-cfg.RetentionMs {
		t.Fatalf("first segment %d (max ts %d) should be the first one with fresh data; log start %d", first.base, first.maxTs, ls)
	}
	_, err = l.Read(ls-1, l.LogEndOffset(), 100, true)
	expectErr(t, err, ErrOffsetOutOfRange)
	readAll(t, l, ls)

	// Later, everything is old, but the active segment stays.
	clk.Advance(2 * time.Hour)
	if _, err := l.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	if l.NumSegments() != 1 {
		t.Fatalf("%d segments left, want only the active one", l.NumSegments())
	}
	readAll(t, l, l.LogStartOffset())
}

func TestRetentionByBytes(t *testing.T) {
	cfg := smallConfig()
	cfg.RetentionBytes = 5000
	l := openTest(t, t.TempDir(), cfg)
	fillLog(t, l, 100)
	mustWaitDurable(t, l, l.LogEndOffset())
	before := l.Size()
	n, err := l.EnforceRetention()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("nothing deleted from %d bytes", before)
	}
	l.segMu.RLock()
	oldest := l.segs[0].size
	l.segMu.RUnlock()
	// Kafka's rule: delete while what remains stays >= retention.bytes.
	if size := l.Size(); size < cfg.RetentionBytes || size-oldest >= cfg.RetentionBytes {
		t.Fatalf("size %d after retention (oldest segment %d), retention.bytes %d", size, oldest, cfg.RetentionBytes)
	}
	if n2, err := l.EnforceRetention(); err != nil || n2 != 0 {
		t.Fatalf("second pass deleted %d: %v", n2, err)
	}
	readAll(t, l, l.LogStartOffset())
}

func TestSegmentMsRolls(t *testing.T) {
	clk := newFakeClock()
	cfg := smallConfig()
	cfg.SegmentBytes = 1 << 20
	cfg.SegmentMs = 1000
	cfg.RetentionMs = 5000
	l := openTest(t, t.TempDir(), cfg, Options{Now: clk.Now})

	appendNumbered(t, l, 1, clk.Ms(), 0)
	clk.Advance(999 * time.Millisecond)
	appendNumbered(t, l, 1, clk.Ms(), 0)
	if n := l.NumSegments(); n != 1 {
		t.Fatalf("%d segments before segment.ms passed", n)
	}
	clk.Advance(2 * time.Millisecond)
	info := appendNumbered(t, l, 1, clk.Ms(), 0)
	if n := l.NumSegments(); n != 2 {
		t.Fatalf("%d segments after segment.ms passed", n)
	}
	l.segMu.RLock()
	base := l.active().base
	l.segMu.RUnlock()
	if base != info.FirstOffset {
		t.Fatalf("new segment at %d, want %d", base, info.FirstOffset)
	}

	// A quiet partition: retention rolls the old active segment, then
	// deletes it once it is past retention.ms.
	mustWaitDurable(t, l, l.LogEndOffset())
	clk.Advance(10 * time.Second)
	n, err := l.EnforceRetention()
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || l.NumSegments() != 1 || l.LogStartOffset() != l.LogEndOffset() || l.Size() != 0 {
		t.Fatalf("deleted %d; %d segments, log start %d, LEO %d, size %d", n, l.NumSegments(), l.LogStartOffset(), l.LogEndOffset(), l.Size())
	}
	rr, err := l.Read(l.LogEndOffset(), l.LogEndOffset(), 100, true)
	if err != nil || rr.Len != 0 {
		t.Fatalf("read at LEO of an emptied log: %v %d", err, rr.Len)
	}
	next := appendNumbered(t, l, 2, clk.Ms(), 0)
	if next.FirstOffset != 3 {
		t.Fatalf("append after retention at %d", next.FirstOffset)
	}
	readAll(t, l, 3)
}

func TestDeleteRecordsBefore(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, smallConfig())
	fillLog(t, l, 60)
	hw := l.LogEndOffset()
	mustWaitDurable(t, l, hw)
	segs := l.NumSegments()

	_, err := l.DeleteRecordsBefore(hw + 1)
	expectErr(t, err, ErrOffsetOutOfRange)
	_, err = l.DeleteRecordsBefore(-2)
	expectErr(t, err, ErrOffsetOutOfRange)

	mid := hw / 2
	ls, err := l.DeleteRecordsBefore(mid)
	if err != nil || ls != mid {
		t.Fatalf("delete before %d: %d %v", mid, ls, err)
	}
	if l.NumSegments() >= segs {
		t.Fatalf("no segment deleted (%d)", l.NumSegments())
	}
	l.segMu.RLock()
	if first := l.segs[0]; first.base > mid || first.next <= mid {
		t.Errorf("first segment [%d, %d) does not hold the log start %d", first.base, first.next, mid)
	}
	l.segMu.RUnlock()
	if ls, err := l.DeleteRecordsBefore(3); err != nil || ls != mid {
		t.Fatalf("lower offset moved the log start: %d %v", ls, err)
	}
	_, err = l.Read(mid-1, hw, 100, true)
	expectErr(t, err, ErrOffsetOutOfRange)
	rr, err := l.Read(mid, hw, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	rr.Release()

	// The log start offset is checkpointed.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openTest(t, dir, smallConfig())
	if got := l2.LogStartOffset(); got != mid {
		t.Fatalf("log start after reopen %d, want %d", got, mid)
	}
	// -1 means the high watermark: everything goes but the active segment.
	ls, err = l2.DeleteRecordsBefore(-1)
	if err != nil || ls != hw || l2.NumSegments() != 1 {
		t.Fatalf("delete before HW: start %d (want %d), %d segments, %v", ls, hw, l2.NumSegments(), err)
	}
}

func TestReadResultOutlivesSegmentDeletion(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, smallConfig())
	fillLog(t, l, 40)
	hw := l.LogEndOffset()
	mustWaitDurable(t, l, hw)

	rr, err := l.Read(0, hw, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if _, err := rr.WriteTo(&want); err != nil {
		t.Fatal(err)
	}
	first := rr.Ranges[0].File
	firstPath := filepath.Join(dir, segmentName(0))

	if _, err := l.DeleteRecordsBefore(hw); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(firstPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deleted segment still linked: %v", err)
	}
	var got bytes.Buffer
	if _, err := rr.WriteTo(&got); err != nil {
		t.Fatalf("reading a deleted but referenced segment: %v", err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatal("bytes changed after deletion")
	}
	rr.Release()
	rr.Release() // idempotent
	if _, err := first.ReadAt(make([]byte, 1), 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("file still open after the last release: %v", err)
	}

	// Close also waits for readers.
	info := appendNumbered(t, l, 2, 0, 0)
	mustWaitDurable(t, l, info.LastOffset+1)
	rr2, err := l.Read(hw, info.LastOffset+1, 1<<20, true)
	if err != nil || rr2.Len == 0 {
		t.Fatalf("read %d: %v", rr2.Len, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if rs := readRecords(t, &rr2); len(rs) != 2 || rs[0].off != hw {
		t.Fatalf("read after close with a live result: %v", rs)
	}
	rr2.Release()
}
