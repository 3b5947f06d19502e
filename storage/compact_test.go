package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-broker/strata/proto"
)

// kvRec is one record as written or read back.
type kvRec struct {
	off      int64
	ts       int64
	key, val []byte // nil val: tombstone; nil key: keyless
	hdr      string // the value of header "h" ("" when absent)
}

func (r kvRec) String() string {
	return fmt.Sprintf("%d:%q=%q@%d", r.off, r.key, r.val, r.ts)
}

func sameRec(a, b kvRec) bool {
	return a.off == b.off && a.ts == b.ts && bytes.Equal(a.key, b.key) && (a.val == nil) == (b.val == nil) &&
		bytes.Equal(a.val, b.val) && a.hdr == b.hdr
}

// kvModel is what was written: recs[i] has offset i.
type kvModel struct {
	codec proto.Codec
	recs  []kvRec
}

type kv struct{ key, val []byte }

func key(s string) []byte { return []byte(s) }

// add appends one batch of kvs (first timestamp ts, record i at ts+i).
func (m *kvModel) add(t testing.TB, l *Log, ts int64, kvs ...kv) AppendInfo {
	t.Helper()
	return m.addSpec(t, l, proto.BatchSpec{FirstTimestamp: ts, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Codec: m.codec}, kvs...)
}

func (m *kvModel) addSpec(t testing.TB, l *Log, spec proto.BatchSpec, kvs ...kv) AppendInfo {
	t.Helper()
	recs := make([]proto.Record, len(kvs))
	for i, x := range kvs {
		recs[i] = proto.Record{TimestampDelta: int64(i), Key: x.key, Value: x.val}
		if x.key != nil {
			recs[i].Headers = []proto.Header{{Key: "h", Value: x.key}}
		}
	}
	info, err := l.Append(split(t, proto.AppendBatch(nil, spec, recs)), 3, -1)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if info.Duplicate {
		return info
	}
	if info.FirstOffset != int64(len(m.recs)) {
		t.Fatalf("append at %d, model has %d records", info.FirstOffset, len(m.recs))
	}
	for i, x := range kvs {
		r := kvRec{off: info.FirstOffset + int64(i), ts: spec.FirstTimestamp + int64(i), key: x.key, val: x.val}
		if x.key != nil {
			r.hdr = string(x.key)
		}
		m.recs = append(m.recs, r)
	}
	return info
}

// dumpLog reads every record from the log start to the log end through
// Read, checking CRCs and that offsets strictly increase.
func dumpLog(t testing.TB, l *Log) []kvRec {
	t.Helper()
	var out []kvRec
	for off := l.LogStartOffset(); off < l.LogEndOffset(); {
		rr, err := l.Read(off, l.LogEndOffset(), 1<<20, true)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		var buf bytes.Buffer
		if _, err := rr.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		rr.Release()
		next := off
		err = proto.SplitBatches(buf.Bytes(), true, func(b proto.Batch) error {
			next = b.LastOffset() + 1
			return proto.ForEachRecord(b, func(r proto.Record) error {
				o := b.BaseOffset + int64(r.OffsetDelta)
				if o < off {
					return nil
				}
				kr := kvRec{off: o, ts: b.FirstTimestamp + r.TimestampDelta, key: bytes.Clone(r.Key), val: bytes.Clone(r.Value)}
				for _, h := range r.Headers {
					if h.Key == "h" {
						kr.hdr = string(h.Value)
					}
				}
				out = append(out, kr)
				return nil
			})
		})
		if err != nil {
			t.Fatalf("read back at %d: %v", off, err)
		}
		if next <= off {
			t.Fatalf("read %d: no progress (log end %d)", off, l.LogEndOffset())
		}
		off = next
	}
	for i := 1; i < len(out); i++ {
		if out[i].off <= out[i-1].off {
			t.Fatalf("offsets not increasing: %v then %v", out[i-1], out[i])
		}
	}
	return out
}

// expectCompacted checks the log against the model: every record read is
// exactly the one written at its offset; below end only the latest record
// of each key (among offsets below end) is there, tombstones only when
// keepTombstones, keyless records never; from end on everything is.
func expectCompacted(t testing.TB, l *Log, m *kvModel, end int64, keepTombstones bool) []kvRec {
	t.Helper()
	latest := map[string]int64{}
	for _, r := range m.recs[:end] {
		if r.key != nil {
			latest[string(r.key)] = r.off
		}
	}
	var want []kvRec
	for _, r := range m.recs {
		if r.off >= end || (r.key != nil && latest[string(r.key)] == r.off && (r.val != nil || keepTombstones)) {
			want = append(want, r)
		}
	}
	got := dumpLog(t, l)
	for i := 0; i < len(got) || i < len(want); i++ {
		switch {
		case i >= len(got):
			t.Fatalf("record %v missing after compaction", want[i])
		case i >= len(want):
			t.Fatalf("unexpected record %v", got[i])
		case !sameRec(got[i], want[i]):
			t.Fatalf("record %d: got %v, want %v", i, got[i], want[i])
		}
	}
	if leo := l.LogEndOffset(); leo != int64(len(m.recs)) {
		t.Fatalf("log end offset %d, want %d", leo, len(m.recs))
	}
	return got
}

// fillKV writes n batches of 3 records over nkeys keys, every 7th record
// a tombstone, then rolls so everything is sealed and durable.
func fillKV(t testing.TB, l *Log, m *kvModel, clock *fakeClock, n, nkeys int) {
	t.Helper()
	for i := range n {
		var kvs []kv
		for j := range 3 {
			x := i*3 + j
			k := key(fmt.Sprintf("key-%d", (x*7)%nkeys))
			v := []byte(fmt.Sprintf("value-%d-%s", x, strings.Repeat("p", x%13)))
			if x%7 == 3 {
				v = nil
			}
			kvs = append(kvs, kv{k, v})
		}
		m.add(t, l, clock.Ms(), kvs...)
	}
	sealAll(t, l)
}

// sealAll rolls the active segment and makes everything durable, so every
// segment but the (empty) active one is cleanable.
func sealAll(t testing.TB, l *Log) {
	t.Helper()
	l.mu.Lock()
	err := l.roll()
	l.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
}

func compactCfg() Config {
	c := smallConfig()
	c.SegmentBytes = 1024
	return c
}

func mustCompact(t testing.TB, l *Log, opts CompactOptions) CompactResult {
	t.Helper()
	res, err := l.Compact(opts)
	if err != nil {
		t.Fatalf("compact: %v", err)
	}
	return res
}

func TestCompactKeepsLatestPerKey(t *testing.T) {
	for _, codec := range []proto.Codec{proto.CodecNone, proto.CodecGzip, proto.CodecSnappy, proto.CodecLZ4, proto.CodecZstd} {
		t.Run(codec.String(), func(t *testing.T) {
			dir := t.TempDir()
			clock := newFakeClock()
			l := openTest(t, dir, compactCfg(), Options{Now: clock.Now})
			m := &kvModel{codec: codec}
			fillKV(t, l, m, clock, 120, 25)
			segsBefore := l.NumSegments()
			if segsBefore < 5 {
				t.Fatalf("only %d segments", segsBefore)
			}
			end := l.LogEndOffset()
			opts := CompactOptions{Now: clock.Now(), DeleteRetention: time.Hour}
			res := mustCompact(t, l, opts)
			if !res.Cleaned || res.CleanedTo != end || res.RecordsRemoved == 0 || res.TombstonesRemoved != 0 {
				t.Fatalf("result %+v", res)
			}
			expectCompacted(t, l, m, end, true)
			checkCodecs(t, dir, codec)

			// Reading from any offset returns the first surviving record at
			// or after it.
			got := dumpLog(t, l)
			for off := int64(0); off < end; off++ {
				first := firstFrom(t, l, off, end)
				var want *kvRec
				for i := range got {
					if got[i].off >= off {
						want = &got[i]
						break
					}
				}
				if (first == nil) != (want == nil) || (first != nil && first.off != want.off) {
					t.Fatalf("read %d: first record %v, want %v", off, first, want)
				}
			}

			// Nothing new is dirty: a second Compact has nothing to do.
			if res := mustCompact(t, l, opts); res.Cleaned {
				t.Fatalf("second compaction ran: %+v", res)
			}
			// Once the delete horizon has passed, tombstones go.
			clock.Advance(time.Hour + time.Second)
			opts.Now = clock.Now()
			res = mustCompact(t, l, opts)
			if !res.Cleaned || !res.MustClean || res.TombstonesRemoved == 0 {
				t.Fatalf("after delete.retention.ms: %+v", res)
			}
			expectCompacted(t, l, m, end, false)
			// Segments shrunk by the first cleaning were merged by the second.
			if l.NumSegments() >= segsBefore {
				t.Fatalf("segments %d -> %d: small cleaned segments were not merged", segsBefore, l.NumSegments())
			}

			// All of it survives a restart, and appends continue at the
			// same offset.
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l2 := openTest(t, dir, compactCfg(), Options{Now: clock.Now})
			expectCompacted(t, l2, m, end, false)
			m.add(t, l2, clock.Ms(), kv{key("key-1"), []byte("after")})
			expectCompacted(t, l2, m, end, false)
		})
	}
}

// firstFrom reads as a consumer fetching one batch at a time from off
// would, and returns the first record at or after off (empty batches left
// by compaction are stepped over).
func firstFrom(t testing.TB, l *Log, off, end int64) *kvRec {
	t.Helper()
	for off < end {
		rr, err := l.Read(off, end, 1, true)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		var buf bytes.Buffer
		if _, err := rr.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		rr.Release()
		bs := split(t, buf.Bytes())
		if len(bs) != 1 || bs[0].LastOffset() < off {
			t.Fatalf("read %d: %d batches, want one ending at or after it", off, len(bs))
		}
		var first *kvRec
		err = proto.ForEachRecord(bs[0], func(r proto.Record) error {
			if o := bs[0].BaseOffset + int64(r.OffsetDelta); o >= off && first == nil {
				first = &kvRec{off: o}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if first != nil {
			return first
		}
		off = bs[0].LastOffset() + 1
	}
	return nil
}

// readKV decodes a ReadResult.
func readKV(t testing.TB, rr *ReadResult) []kvRec {
	t.Helper()
	var buf bytes.Buffer
	if _, err := rr.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	var out []kvRec
	err := proto.SplitBatches(buf.Bytes(), true, func(b proto.Batch) error {
		return proto.ForEachRecord(b, func(r proto.Record) error {
			out = append(out, kvRec{off: b.BaseOffset + int64(r.OffsetDelta), key: bytes.Clone(r.Key), val: bytes.Clone(r.Value)})
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkCodecs asserts that every batch with records in the segment files
// still uses codec.
func checkCodecs(t testing.TB, dir string, codec proto.Codec) {
	t.Helper()
	for _, p := range segmentFiles(t, dir) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		err = proto.SplitBatches(data, true, func(b proto.Batch) error {
			if b.NumRecords > 0 && b.Codec() != codec {
				return fmt.Errorf("batch %d has codec %v, want %v", b.BaseOffset, b.Codec(), codec)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestCompactRespectsLimits(t *testing.T) {
	t.Run("active segment and high watermark", func(t *testing.T) {
		clock := newFakeClock()
		l := openTest(t, t.TempDir(), compactCfg(), Options{Now: clock.Now})
		m := &kvModel{}
		fillKV(t, l, m, clock, 60, 5)
		end := l.LogEndOffset()
		// Overwrites in the active segment are not cleaned and hide nothing.
		for range 5 {
			m.add(t, l, clock.Ms(), kv{key("key-0"), []byte("new")})
		}
		mustCompact(t, l, CompactOptions{Now: clock.Now(), DeleteRetention: time.Hour})
		expectCompacted(t, l, m, end, true)
	})
	t.Run("min compaction lag", func(t *testing.T) {
		clock := newFakeClock()
		l := openTest(t, t.TempDir(), compactCfg(), Options{Now: clock.Now})
		m := &kvModel{}
		fillKV(t, l, m, clock, 40, 5)
		old := l.LogEndOffset()
		clock.Advance(time.Hour)
		fillKV(t, l, m, clock, 40, 5)
		// The second half is 10 minutes old, the first 70: a 30 minute lag
		// cleans the first half only.
		clock.Advance(10 * time.Minute)
		res := mustCompact(t, l, CompactOptions{Now: clock.Now(), MinCompactionLag: 30 * time.Minute, DeleteRetention: time.Hour})
		if res.CleanedTo != old {
			t.Fatalf("cleaned to %d, want %d (%+v)", res.CleanedTo, old, res)
		}
		expectCompacted(t, l, m, old, true)
	})
	t.Run("keyless, control and transactional batches", func(t *testing.T) {
		clock := newFakeClock()
		l := openTest(t, t.TempDir(), compactCfg(), Options{Now: clock.Now})
		m := &kvModel{}
		m.add(t, l, clock.Ms(), kv{nil, []byte("no key")}, kv{key("a"), []byte("1")})
		m.addSpec(t, l, proto.BatchSpec{FirstTimestamp: clock.Ms(), ProducerID: 9, ProducerEpoch: 0, BaseSequence: 0, Transactional: true},
			kv{key("a"), []byte("txn")})
		m.addSpec(t, l, proto.BatchSpec{FirstTimestamp: clock.Ms(), ProducerID: 9, ProducerEpoch: 0, BaseSequence: -1, Transactional: true, Control: true},
			kv{key("\x00\x00\x00\x01"), key("\x00\x00\x00\x00\x00\x00")})
		m.add(t, l, clock.Ms(), kv{key("a"), []byte("2")})
		sealAll(t, l)
		res := mustCompact(t, l, CompactOptions{Now: clock.Now()})
		if res.InvalidRecords != 1 || res.RecordsRemoved != 1 {
			t.Fatalf("result %+v", res)
		}
		got := dumpLog(t, l)
		var offs []int64
		for _, r := range got {
			offs = append(offs, r.off)
		}
		// Keyless record 0 and the superseded "a"=1 go; the transactional
		// record and the marker stay (for now: transactions are issue 5).
		if fmt.Sprint(offs) != "[2 3 4]" {
			t.Fatalf("surviving offsets %v", offs)
		}
	})
}

func TestCompactDirtyRatio(t *testing.T) {
	clock := newFakeClock()
	l := openTest(t, t.TempDir(), compactCfg(), Options{Now: clock.Now})
	m := &kvModel{}
	opts := CompactOptions{Now: clock.Now(), MinCleanableDirtyRatio: 0.5, DeleteRetention: time.Hour}
	if r, fd, must := l.CleanableDirtyRatio(opts); r != 0 || fd != 0 || must {
		t.Fatalf("empty log: ratio %v first dirty %d must %v", r, fd, must)
	}
	fillKV(t, l, m, clock, 60, 10)
	if r, fd, _ := l.CleanableDirtyRatio(opts); r != 1 || fd != 0 {
		t.Fatalf("nothing cleaned yet: ratio %v first dirty %d", r, fd)
	}
	mustCompact(t, l, opts)
	cleanEnd := l.LogEndOffset()
	if r, fd, must := l.CleanableDirtyRatio(opts); r != 0 || fd != cleanEnd || must {
		t.Fatalf("after cleaning: ratio %v first dirty %d must %v", r, fd, must)
	}
	cleanBytes := l.Size()

	// A little new dirt: below the minimum ratio, Compact does nothing.
	fillKV(t, l, m, clock, 5, 10)
	dirty := l.Size() - cleanBytes
	want := float64(dirty) / float64(dirty+cleanBytes)
	r, fd, must := l.CleanableDirtyRatio(opts)
	if r != want || fd != cleanEnd || must {
		t.Fatalf("ratio %v first dirty %d must %v, want %v %d false", r, fd, must, want, cleanEnd)
	}
	if res := mustCompact(t, l, opts); res.Cleaned || res.DirtyRatio != want {
		t.Fatalf("compacted below min.cleanable.dirty.ratio: %+v", res)
	}
	expectCompacted(t, l, m, cleanEnd, true)

	// max.compaction.lag.ms makes it due anyway.
	clock.Advance(2 * time.Hour)
	opts.Now, opts.MaxCompactionLag = clock.Now(), time.Hour
	if _, _, must := l.CleanableDirtyRatio(opts); !must {
		t.Fatal("dirty segment older than max.compaction.lag.ms is not due")
	}
	res := mustCompact(t, l, opts)
	if !res.Cleaned || !res.MustClean {
		t.Fatalf("result %+v", res)
	}
	expectCompacted(t, l, m, l.LogEndOffset(), true)

	// Enough dirt: above the ratio, it cleans.
	opts.MaxCompactionLag = 0
	fillKV(t, l, m, clock, 200, 10)
	if r, _, _ := l.CleanableDirtyRatio(opts); r <= 0.5 {
		t.Fatalf("ratio %v", r)
	}
	if res := mustCompact(t, l, opts); !res.Cleaned {
		t.Fatalf("not cleaned: %+v", res)
	}
	expectCompacted(t, l, m, l.LogEndOffset(), true)
}

func TestCompactOffsetMapBound(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	l := openTest(t, dir, compactCfg(), Options{Now: clock.Now})
	m := &kvModel{}
	fillKV(t, l, m, clock, 150, 200)
	end := l.LogEndOffset()
	// 64 slots hold 57 keys: the 200 keys need several passes.
	res := mustCompact(t, l, CompactOptions{Now: clock.Now(), MaxOffsetMapBytes: 64 * mapSlotBytes * 3 / 2, DeleteRetention: time.Hour})
	if res.Passes < 4 || res.CleanedTo != end {
		t.Fatalf("result %+v", res)
	}
	expectCompacted(t, l, m, end, true)

	// A map that cannot hold one batch is an error, not a silent no-op.
	fillKV(t, l, m, clock, 10, 200)
	l2 := l
	_, err := l2.Compact(CompactOptions{Now: clock.Now(), MaxOffsetMapBytes: 1, DeleteRetention: time.Hour})
	if err == nil {
		// 16 slots hold 14 keys, a batch has 3: it works with the minimum.
		expectCompacted(t, l, m, l.LogEndOffset(), true)
	} else if !errors.Is(err, ErrOffsetMapTooSmall) {
		t.Fatal(err)
	}
}

func TestOffsetMap(t *testing.T) {
	m := newOffsetMap(1 << 20)
	for i := range 5000 {
		m.put([]byte(fmt.Sprint("k", i%3000)), int64(i))
	}
	if m.count != 3000 {
		t.Fatalf("count %d", m.count)
	}
	for i := range 3000 {
		want := int64(i)
		if i < 2000 {
			want += 3000
		}
		if got := m.get([]byte(fmt.Sprint("k", i))); got != want {
			t.Fatalf("k%d: %d, want %d", i, got, want)
		}
	}
	if m.get([]byte("absent")) != -1 {
		t.Fatal("absent key found")
	}
	if int64(m.maxSlots)*mapSlotBytes*3/2 > 1<<20 {
		t.Fatalf("%d slots exceed the bound", m.maxSlots)
	}
	m.reset()
	if m.get([]byte("k1")) != -1 || m.count != 0 {
		t.Fatal("reset kept entries")
	}
}

func TestCompactKeepsProducerState(t *testing.T) {
	for _, reopen := range []bool{false, true} {
		t.Run(fmt.Sprint("reopen=", reopen), func(t *testing.T) {
			clock := newFakeClock()
			dir := t.TempDir()
			l := openTest(t, dir, compactCfg(), Options{Now: clock.Now})
			m := &kvModel{}
			spec := func(seq int32) proto.BatchSpec {
				return proto.BatchSpec{FirstTimestamp: clock.Ms(), ProducerID: 42, ProducerEpoch: 1, BaseSequence: seq}
			}
			m.addSpec(t, l, spec(0), kv{key("p"), []byte("0")}, kv{key("q"), []byte("0")})
			orig := m.addSpec(t, l, spec(2), kv{key("p"), []byte("1")}, kv{key("q"), []byte("1")})
			// Everything the producer wrote is overwritten by others.
			fillKV(t, l, m, clock, 30, 5)
			m.add(t, l, clock.Ms(), kv{key("p"), []byte("later")}, kv{key("q"), []byte("later")})
			sealAll(t, l)
			mustCompact(t, l, CompactOptions{Now: clock.Now()})
			expectCompacted(t, l, m, l.LogEndOffset(), true)
			if reopen {
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				// Without snapshots producer state comes from the log alone.
				removeGlob(t, dir, "*"+snapshotSuffix)
				l = openTest(t, dir, compactCfg(), Options{Now: clock.Now})
			}
			dup := m.addSpec(t, l, spec(2), kv{key("p"), []byte("1")}, kv{key("q"), []byte("1")})
			if !dup.Duplicate || dup.FirstOffset != orig.FirstOffset || dup.LastOffset != orig.LastOffset {
				t.Fatalf("retry after compaction: %+v, want a duplicate of %+v", dup, orig)
			}
			m.addSpec(t, l, spec(4), kv{key("p"), []byte("2")})
			_, err := l.Append(split(t, proto.AppendBatch(nil, spec(9), []proto.Record{{Key: key("p")}})), 3, -1)
			expectErr(t, err, ErrOutOfOrderSequence)
		})
	}
}

var compactCrashSteps = []string{compactStepCleaned, compactStepSwap, compactStepDeleted, compactStepRenamed}

// TestCompactInterrupted stops Compact at each step of a segment swap (the
// goroutine exits there, as if the process died), abandons the log and
// checks that it reopens either as before or as after the swap: the
// written value of every surviving offset, the latest of every key, the
// same log end, no leftover files.
func TestCompactInterrupted(t *testing.T) {
	for _, step := range compactCrashSteps {
		for _, nth := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s-%d", step, nth), func(t *testing.T) {
				clock := newFakeClock()
				dir := t.TempDir()
				l, err := Open(dir, compactCfg(), Options{Now: clock.Now})
				if err != nil {
					t.Fatal(err)
				}
				m := &kvModel{codec: proto.CodecSnappy}
				fillKV(t, l, m, clock, 100, 20)
				end := l.LogEndOffset()
				seen := 0
				l.testHook = func(s string) {
					if s == step {
						if seen++; seen == nth {
							runtime.Goexit()
						}
					}
				}
				done := make(chan struct{})
				go func() {
					defer close(done)
					_, _ = l.Compact(CompactOptions{Now: clock.Now(), DeleteRetention: time.Hour})
					t.Error("Compact did not stop at " + step)
				}()
				<-done
				l.crashForTest()

				l2 := openTest(t, dir, compactCfg(), Options{Now: clock.Now})
				for _, suf := range []string{cleanedSuffix, swapSuffix} {
					if left := listDir(t, dir, suf); len(left) > 0 {
						t.Fatalf("left over after recovery: %v", left)
					}
				}
				checkWritten(t, l2, m)
				// Compaction finishes the job from there.
				mustCompact(t, l2, CompactOptions{Now: clock.Now(), DeleteRetention: time.Hour})
				expectCompacted(t, l2, m, end, true)
			})
		}
	}
}

// checkWritten asserts the weaker property any state of compaction has:
// every record read is the one written at its offset, the latest record of
// every key is there, and the log end is unchanged.
func checkWritten(t testing.TB, l *Log, m *kvModel) {
	t.Helper()
	got := dumpLog(t, l)
	have := map[int64]bool{}
	for _, r := range got {
		if r.off >= int64(len(m.recs)) || !sameRec(r, m.recs[r.off]) {
			t.Fatalf("read %v, not what was written", r)
		}
		have[r.off] = true
	}
	latest := map[string]int64{}
	for _, r := range m.recs {
		if r.key != nil {
			latest[string(r.key)] = r.off
		}
	}
	for k, off := range latest {
		if !have[off] && m.recs[off].val != nil {
			t.Fatalf("latest record of %q (offset %d) is gone", k, off)
		}
	}
	if l.LogEndOffset() != int64(len(m.recs)) {
		t.Fatalf("log end %d, want %d", l.LogEndOffset(), len(m.recs))
	}
}

// TestCompactConcurrent runs compaction while a producer appends and
// readers read (run with -race): readers only ever see records as written
// at their offsets, and a read holding a replaced segment still reads it.
func TestCompactConcurrent(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	l := openTest(t, dir, compactCfg(), Options{Now: clock.Now})
	m := &kvModel{codec: proto.CodecLZ4}
	fillKV(t, l, m, clock, 40, 10)

	// A read taken before compaction keeps its (replaced) files.
	held, err := l.Read(0, l.LogEndOffset(), 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	heldRecs := readKV(t, &held)

	var (
		mu      sync.Mutex // guards m.recs for readers
		stop    atomic.Bool
		wg      sync.WaitGroup
		written = func(off int64) (kvRec, bool) {
			mu.Lock()
			defer mu.Unlock()
			if off >= int64(len(m.recs)) {
				return kvRec{}, false
			}
			return m.recs[off], true
		}
	)
	wg.Add(1)
	go func() { // producer
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			mu.Lock()
			m.add(t, l, clock.Ms(), kv{key(fmt.Sprint("key-", i%10)), []byte(fmt.Sprint("c-", i))})
			mu.Unlock()
			if i%50 == 0 {
				if err := l.Sync(); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	for range 3 {
		wg.Add(1)
		go func() { // readers
			defer wg.Done()
			for !stop.Load() {
				hw := l.HighWatermark()
				for off := l.LogStartOffset(); off < hw; {
					rr, err := l.Read(off, hw, 4096, true)
					if err != nil {
						t.Error(err)
						return
					}
					recs := readKV(t, &rr)
					rr.Release()
					if len(recs) == 0 {
						break // only empty batches up to hw
					}
					for _, r := range recs {
						w, ok := written(r.off)
						if !ok || !bytes.Equal(w.key, r.key) || !bytes.Equal(w.val, r.val) {
							t.Errorf("read %v at offset %d, wrote %v", r, r.off, w)
							return
						}
					}
					off = recs[len(recs)-1].off + 1
				}
			}
		}()
	}
	for range 20 {
		if _, err := l.Compact(CompactOptions{Now: clock.Now(), DeleteRetention: time.Hour}); err != nil {
			t.Error(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if t.Failed() {
		return
	}
	var buf bytes.Buffer
	if _, err := held.WriteTo(&buf); err != nil {
		t.Fatalf("held read after compaction: %v", err)
	}
	if again := readKV(t, &held); len(again) != len(heldRecs) {
		t.Fatalf("held read changed: %d records, had %d", len(again), len(heldRecs))
	}
	checkWritten(t, l, m)
}

// FuzzCompact writes a random sequence of keys, values and tombstones
// over several segments and compacts: the latest record of every key
// survives with its offset, every surviving record is exactly what was
// written at its offset, and nothing else remains below the cleaned end.
func FuzzCompact(f *testing.F) {
	f.Add([]byte("aabbaacc\x00ddaa"), uint8(3), uint8(0))
	f.Add([]byte("the quick brown fox jumps over the lazy dog"), uint8(1), uint8(4))
	f.Add(bytes.Repeat([]byte{1, 2, 3, 0, 4}, 40), uint8(7), uint8(2))
	f.Fuzz(func(t *testing.T, ops []byte, perBatch, codec uint8) {
		if len(ops) > 400 {
			ops = ops[:400]
		}
		clock := newFakeClock()
		l := openTest(t, t.TempDir(), compactCfg(), Options{Now: clock.Now})
		m := &kvModel{codec: proto.Codec(codec % 5)}
		n := int(perBatch%8) + 1
		for i := 0; i < len(ops); i += n {
			var kvs []kv
			for j, op := range ops[i:min(i+n, len(ops))] {
				k := key(fmt.Sprint("k", op%16))
				v := []byte(fmt.Sprint("v", i+j, strings.Repeat("x", int(op)%40)))
				if op%5 == 0 {
					v = nil
				}
				kvs = append(kvs, kv{k, v})
			}
			m.add(t, l, clock.Ms(), kvs...)
		}
		if len(m.recs) == 0 {
			return
		}
		sealAll(t, l)
		end := l.LogEndOffset()
		mustCompact(t, l, CompactOptions{Now: clock.Now(), DeleteRetention: time.Minute, MaxOffsetMapBytes: 1 << 10})
		expectCompacted(t, l, m, end, true)
		clock.Advance(2 * time.Minute)
		mustCompact(t, l, CompactOptions{Now: clock.Now(), DeleteRetention: time.Minute})
		expectCompacted(t, l, m, end, false)
	})
}

// TestCompactRecoveryIgnoresOthers checks that the recovery hooks leave a
// directory without compaction files as it was.
func TestCompactRecoveryIgnoresOthers(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "partition.metadata"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := openTest(t, dir, compactCfg())
	appendNumbered(t, l, 3, 0, 0)
	if _, err := os.Stat(filepath.Join(dir, "partition.metadata")); err != nil {
		t.Fatal(err)
	}
}
