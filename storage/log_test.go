package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-broker/strata/proto"
)

// fillLog appends batches of 1..5 records until the log spans several
// segments; it returns the last offset + 1.
func fillLog(t testing.TB, l *Log, batches int) int64 {
	t.Helper()
	for i := range batches {
		appendNumbered(t, l, 1+i%5, int64(1000+i*10), 20)
	}
	return l.LogEndOffset()
}

func TestAppendReadEveryOffset(t *testing.T) {
	for _, interval := range []int32{0, 200, 4096} {
		t.Run(fmt.Sprintf("index interval %d", interval), func(t *testing.T) {
			cfg := smallConfig()
			cfg.IndexIntervalBytes = interval
			testAppendReadEveryOffset(t, cfg)
		})
	}
}

func testAppendReadEveryOffset(t *testing.T, cfg Config) {
	dir := t.TempDir()
	l := openTest(t, dir, cfg)
	leo := fillLog(t, l, 120)
	if l.NumSegments() < 5 {
		t.Fatalf("want several segments, have %d", l.NumSegments())
	}
	mustWaitDurable(t, l, leo)
	if hw := l.HighWatermark(); hw != leo {
		t.Fatalf("high watermark %d, want %d", hw, leo)
	}
	check := func(l *Log) {
		t.Helper()
		for off := int64(0); off < leo; off++ {
			rr, err := l.Read(off, leo, 1, true)
			if err != nil {
				t.Fatalf("read %d: %v", off, err)
			}
			rs := readRecords(t, &rr)
			rr.Release()
			if len(rs) == 0 || rs[0].off > off || rs[len(rs)-1].off < off {
				t.Fatalf("read %d: batch does not hold it: %+v", off, rs)
			}
		}
		if got := readAll(t, l, 0); int64(len(got)) != leo {
			t.Fatalf("read %d records, want %d", len(got), leo)
		}
		// One read spanning every segment returns the whole log.
		rr, err := l.Read(0, leo, 1<<30, false)
		if err != nil {
			t.Fatal(err)
		}
		defer rr.Release()
		if rr.Len != l.Size() || len(rr.Ranges) != l.NumSegments() {
			t.Fatalf("full read: %d bytes in %d ranges, log is %d bytes in %d segments", rr.Len, len(rr.Ranges), l.Size(), l.NumSegments())
		}
	}
	check(l)

	// Reopen after a clean close: sealed segments load their index files.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(listDir(t, dir, indexSuffix)); n != len(segmentFiles(t, dir)) {
		t.Fatalf("%d index files for %d segments", n, len(segmentFiles(t, dir)))
	}
	l2 := openTest(t, dir, cfg)
	if l2.LogEndOffset() != leo || l2.HighWatermark() != leo {
		t.Fatalf("reopened: LEO %d HW %d, want %d", l2.LogEndOffset(), l2.HighWatermark(), leo)
	}
	check(l2)
	info := appendNumbered(t, l2, 3, 5000, 0)
	if info.FirstOffset != leo || info.LastOffset != leo+2 {
		t.Fatalf("append after reopen: %+v, want first %d", info, leo)
	}
}

func TestReadBounds(t *testing.T) {
	l := openTest(t, t.TempDir(), smallConfig())
	// Five batches of 4 records each: offsets 0-3, 4-7, ..., 16-19.
	var sizes []int64
	for range 5 {
		before := l.Size()
		appendNumbered(t, l, 4, 100, 0)
		sizes = append(sizes, l.Size()-before)
	}
	leo := l.LogEndOffset()
	mustWaitDurable(t, l, leo)
	two := sizes[1] + sizes[2]

	tests := []struct {
		name        string
		offset      int64
		maxOffset   int64
		maxBytes    int32
		minOneBatch bool
		wantFirst   int64 // first record offset, -1 for empty
		wantLast    int64
		wantErr     error
	}{
		{"whole log", 0, leo, 1 << 20, false, 0, 19, nil},
		{"mid batch starts at its batch", 6, leo, 1 << 20, false, 4, 19, nil},
		{"exactly two batches", 4, leo, int32(two), false, 4, 11, nil},
		{"just under two batches", 4, leo, int32(two - 1), false, 4, 7, nil},
		{"too small without minOneBatch", 4, leo, int32(sizes[1] - 1), false, -1, -1, nil},
		{"too small with minOneBatch", 4, leo, 1, true, 4, 7, nil},
		{"zero bytes with minOneBatch", 0, leo, 0, true, 0, 3, nil},
		{"maxOffset at a batch boundary", 0, 12, 1 << 20, false, 0, 11, nil},
		{"maxOffset inside a batch excludes it", 0, 10, 1 << 20, false, 0, 7, nil},
		{"maxOffset at the offset", 8, 8, 1 << 20, true, -1, -1, nil},
		{"maxOffset past LEO is LEO", 16, leo + 100, 1 << 20, false, 16, 19, nil},
		{"at LEO is empty", leo, leo, 1 << 20, true, -1, -1, nil},
		{"past LEO", leo + 1, leo + 5, 1 << 20, true, 0, 0, ErrOffsetOutOfRange},
		{"negative", -1, leo, 1 << 20, true, 0, 0, ErrOffsetOutOfRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rr, err := l.Read(tc.offset, tc.maxOffset, tc.maxBytes, tc.minOneBatch)
			if tc.wantErr != nil {
				expectErr(t, err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rr.Release()
			rs := readRecords(t, &rr)
			if tc.wantFirst < 0 {
				if len(rs) != 0 || rr.Len != 0 {
					t.Fatalf("want empty, got %d records", len(rs))
				}
				return
			}
			if len(rs) == 0 || rs[0].off != tc.wantFirst || rs[len(rs)-1].off != tc.wantLast {
				t.Fatalf("got records %v..., want %d..%d", rs, tc.wantFirst, tc.wantLast)
			}
		})
	}
}

func TestReadAcrossSegmentsHonoursMaxBytes(t *testing.T) {
	l := openTest(t, t.TempDir(), smallConfig())
	leo := fillLog(t, l, 80)
	for _, maxBytes := range []int32{100, 700, 2000, 2100, 5000} {
		rr, err := l.Read(0, leo, maxBytes, true)
		if err != nil {
			t.Fatal(err)
		}
		if rr.Len > int64(maxBytes) {
			t.Fatalf("maxBytes %d: read %d bytes", maxBytes, rr.Len)
		}
		rs := readRecords(t, &rr)
		rr.Release()
		if len(rs) == 0 || rs[0].off != 0 {
			t.Fatalf("maxBytes %d: read %d records", maxBytes, len(rs))
		}
	}
}

func TestLogStartAndErrors(t *testing.T) {
	l := openTest(t, t.TempDir(), smallConfig())
	fillLog(t, l, 40)
	mustWaitDurable(t, l, l.LogEndOffset())
	if _, err := l.DeleteRecordsBefore(10); err != nil {
		t.Fatal(err)
	}
	_, err := l.Read(9, l.LogEndOffset(), 100, true)
	expectErr(t, err, ErrOffsetOutOfRange)
	rr, err := l.Read(10, l.LogEndOffset(), 100, true)
	if err != nil {
		t.Fatal(err)
	}
	rr.Release()

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	_, err = l.Append(split(t, build(spec{})), 0, -1)
	expectErr(t, err, ErrClosed)
	_, err = l.Read(10, 20, 100, true)
	expectErr(t, err, ErrClosed)
	expectErr(t, l.Sync(), ErrClosed)
	expectErr(t, l.WaitDurable(context.Background(), l.LogEndOffset()+1), ErrClosed)
	if err := l.WaitDurable(context.Background(), 5); err != nil {
		t.Fatalf("wait for durable data after close: %v", err)
	}
	select {
	case <-l.Changed():
	default:
		t.Fatal("Changed not closed after Close")
	}
	_, err = l.EnforceRetention()
	expectErr(t, err, ErrClosed)
}

func TestLogAppendTime(t *testing.T) {
	clk := newFakeClock()
	l := openTest(t, t.TempDir(), smallConfig(), Options{Now: clk.Now})
	info, err := l.Append(split(t, build(spec{n: 3, ts: 5})), 2, clk.Ms())
	if err != nil {
		t.Fatal(err)
	}
	if info.LogAppendTime != clk.Ms() {
		t.Fatalf("log append time %d, want %d", info.LogAppendTime, clk.Ms())
	}
	mustWaitDurable(t, l, info.LastOffset+1)
	rr, err := l.Read(0, 3, 1000, true)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	for _, r := range readRecords(t, &rr) { // CRC checked inside
		if r.ts != clk.Ms() || r.epoch != 2 {
			t.Fatalf("record %+v: want timestamp %d epoch 2", r, clk.Ms())
		}
	}
	if _, ts, _ := l.MaxTimestamp(); ts != clk.Ms() {
		t.Fatalf("max timestamp %d", ts)
	}
}

func TestBatchLargerThanSegmentGetsItsOwnSegment(t *testing.T) {
	l := openTest(t, t.TempDir(), smallConfig())
	appendNumbered(t, l, 2, 0, 0)
	big := appendNumbered(t, l, 3, 0, 3000) // > segment.bytes
	appendNumbered(t, l, 1, 0, 0)
	if n := l.NumSegments(); n != 3 {
		t.Fatalf("%d segments, want 3 (the big batch alone)", n)
	}
	l.segMu.RLock()
	base := l.segs[1].base
	l.segMu.RUnlock()
	if base != big.FirstOffset {
		t.Fatalf("second segment starts at %d, want %d", base, big.FirstOffset)
	}
	readAll(t, l, 0)
}

func TestAppendContiguousAndScatteredBatches(t *testing.T) {
	l := openTest(t, t.TempDir(), smallConfig())
	// Contiguous: three batches in one buffer, written with one pwrite.
	raw := append(append(build(spec{n: 2, val: func(i int) string { return valueAt(int64(i)) }}),
		build(spec{n: 1, val: func(int) string { return valueAt(2) }})...),
		build(spec{n: 2, val: func(i int) string { return valueAt(3 + int64(i)) }})...)
	bs := split(t, raw)
	if got := len(l.coalesce(bs)); got != 1 {
		t.Fatalf("contiguous batches coalesced into %d buffers", got)
	}
	if _, err := l.Append(bs, 1, -1); err != nil {
		t.Fatal(err)
	}
	// Scattered: separate buffers, written with one pwritev.
	var scattered []proto.Batch
	for i := range 3 {
		scattered = append(scattered, split(t, build(spec{n: 1, val: func(int) string { return valueAt(5 + int64(i)) }}))...)
	}
	if got := len(l.coalesce(scattered)); got != 3 {
		t.Fatalf("scattered batches coalesced into %d buffers", got)
	}
	if info, err := l.Append(scattered, 1, -1); err != nil || info.FirstOffset != 5 || info.LastOffset != 7 {
		t.Fatalf("append: %+v %v", info, err)
	}
	if got := readAll(t, l, 0); len(got) != 8 {
		t.Fatalf("read %d records", len(got))
	}
}

func TestDeleteRemovesDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p-0")
	l := openTest(t, dir, smallConfig())
	fillLog(t, l, 10)
	if err := l.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dir still there: %v", err)
	}
}

func TestChangedAndHighWatermark(t *testing.T) {
	for _, relaxed := range []bool{false, true} {
		t.Run(map[bool]string{false: "safe", true: "relaxed"}[relaxed], func(t *testing.T) {
			cfg := smallConfig()
			if relaxed {
				cfg.FlushMessages = 1000
			}
			l := openTest(t, t.TempDir(), cfg)
			ch := l.Changed()
			info := appendNumbered(t, l, 3, 0, 0)
			select {
			case <-ch:
			case <-time.After(10 * time.Second):
				t.Fatal("Changed not closed after append")
			}
			if relaxed && l.HighWatermark() != info.LastOffset+1 {
				t.Fatalf("relaxed HW %d, want LEO %d", l.HighWatermark(), info.LastOffset+1)
			}
			mustWaitDurable(t, l, info.LastOffset+1)
			if hw := l.HighWatermark(); hw != info.LastOffset+1 {
				t.Fatalf("HW %d after durable, want %d", hw, info.LastOffset+1)
			}
		})
	}
}

func TestSetConfigSwitchesFlushMode(t *testing.T) {
	l := openTest(t, t.TempDir(), smallConfig())
	cfg := smallConfig()
	cfg.FlushMessages = 100
	l.SetConfig(cfg)
	info := appendNumbered(t, l, 2, 0, 0)
	if l.HighWatermark() != info.LastOffset+1 {
		t.Fatalf("relaxed HW %d", l.HighWatermark())
	}
	// WaitDurable returns at once when relaxed, whatever the end.
	if err := l.WaitDurable(context.Background(), 1<<40); err != nil {
		t.Fatal(err)
	}
	l.SetConfig(smallConfig())
	info = appendNumbered(t, l, 2, 0, 0)
	mustWaitDurable(t, l, info.LastOffset+1)
	if l.HighWatermark() != info.LastOffset+1 {
		t.Fatalf("safe HW %d", l.HighWatermark())
	}
}
