package storage

import (
	"bytes"
	"errors"
	"io"
	"math"
	"testing"
	"time"

	"github.com/strata-broker/strata/proto"
)

// segCopy is a sealed segment's bytes and offsets, as the remote tier keeps
// a copy of it.
type segCopy struct {
	base, next int64
	data       []byte
}

func copySegments(t testing.TB, l *Log) []segCopy {
	t.Helper()
	var out []segCopy
	for _, s := range l.SealedSegments() {
		f, err := l.OpenSegment(s.BaseOffset)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(io.NewSectionReader(f.Log, 0, f.Size))
		f.Release()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, segCopy{s.BaseOffset, s.NextOffset, b})
	}
	return out
}

// cleanCopies runs one SegmentCleaner pass over copies, as the tiering
// cleaner does: map from every copy, then every copy rewritten.
func cleanCopies(t testing.TB, l *Log, copies []segCopy, opts CompactOptions) ([]segCopy, []CleanedSegment, *SegmentCleaner) {
	t.Helper()
	sc := l.NewSegmentCleaner(opts)
	for _, c := range copies {
		if _, full, err := sc.AddToMap(bytes.NewReader(c.data), int64(len(c.data)), 0); err != nil || full {
			t.Fatalf("map segment %d: full %v, %v", c.base, full, err)
		}
	}
	var out []segCopy
	var res []CleanedSegment
	for _, c := range copies {
		var buf bytes.Buffer
		r, err := sc.Clean(bytes.NewReader(c.data), int64(len(c.data)), c.base, &buf)
		if err != nil {
			t.Fatal(err)
		}
		if int64(buf.Len()) != r.Size {
			t.Fatalf("segment %d: wrote %d bytes, reports %d", c.base, buf.Len(), r.Size)
		}
		if !r.Changed && !bytes.Equal(buf.Bytes(), c.data) {
			t.Fatalf("segment %d: unchanged but rewritten", c.base)
		}
		out = append(out, segCopy{c.base, c.next, buf.Bytes()})
		res = append(res, r)
	}
	return out, res, sc
}

// TestSegmentCleanerMatchesCompact: cleaning copies of the segments with
// SegmentCleaner gives byte for byte what Compact makes of the same
// segments in a tiered log (which never merges), indexes included, in the
// first cleaning and in the one that removes tombstones.
func TestSegmentCleanerMatchesCompact(t *testing.T) {
	for _, codec := range []proto.Codec{proto.CodecNone, proto.CodecZstd} {
		t.Run(codec.String(), func(t *testing.T) {
			clock := newFakeClock()
			cfg := compactCfg()
			cfg.RemoteEnabled = true
			local := openTest(t, t.TempDir(), cfg, Options{Now: clock.Now})
			remote := openTest(t, t.TempDir(), cfg, Options{Now: clock.Now})
			m1, m2 := &kvModel{codec: codec}, &kvModel{codec: codec}
			fillKV(t, local, m1, clock, 90, 20)
			fillKV(t, remote, m2, clock, 90, 20)
			copies := copySegments(t, remote)
			if len(copies) < 4 {
				t.Fatalf("only %d segments", len(copies))
			}
			end := local.LogEndOffset()

			opts := CompactOptions{Now: clock.Now(), DeleteRetention: time.Hour}
			if res := mustCompact(t, local, opts); !res.Cleaned || res.SegmentsWritten != res.SegmentsReplaced {
				t.Fatalf("local compaction %+v", res)
			}
			cleaned, results, sc := cleanCopies(t, remote, copies, opts)
			compareWithLocal(t, local, cleaned, results)
			expectSegments(t, cleaned, m2, end, true)
			if sc.NextHorizon() != clock.Now().Add(time.Hour).UnixMilli() {
				t.Fatalf("next horizon %d, want now + delete.retention.ms", sc.NextHorizon())
			}

			clock.Advance(time.Hour + time.Millisecond)
			opts.Now = clock.Now()
			mustCompact(t, local, opts)
			cleaned2, results2, sc2 := cleanCopies(t, remote, cleaned, opts)
			compareWithLocal(t, local, cleaned2, results2)
			expectSegments(t, cleaned2, m2, end, false)
			var tombs int64
			for _, r := range results2 {
				tombs += r.TombstonesRemoved
			}
			if tombs == 0 || sc2.NextHorizon() != math.MaxInt64 {
				t.Fatalf("tombstones removed %d, next horizon %d", tombs, sc2.NextHorizon())
			}
			// Cleaning again changes nothing.
			_, results3, _ := cleanCopies(t, remote, cleaned2, opts)
			for i, r := range results3 {
				if r.Changed {
					t.Fatalf("segment %d changed by a third cleaning: %+v", cleaned2[i].base, r)
				}
			}
		})
	}
}

// compareWithLocal checks cleaned copies against the local log's cleaned
// segments: same bytes, same index files.
func compareWithLocal(t testing.TB, local *Log, cleaned []segCopy, results []CleanedSegment) {
	t.Helper()
	sealed := local.SealedSegments()
	if len(sealed) != len(cleaned) {
		t.Fatalf("local log has %d segments, cleaned copies %d", len(sealed), len(cleaned))
	}
	for i, s := range sealed {
		f, err := local.OpenSegment(s.BaseOffset)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(io.NewSectionReader(f.Log, 0, f.Size))
		idx, tidx := f.Index, f.TimeIndex
		f.Release()
		if err != nil {
			t.Fatal(err)
		}
		c := cleaned[i]
		if s.BaseOffset != c.base || s.NextOffset != c.next {
			t.Fatalf("segment %d: local [%d, %d), copy [%d, %d)", i, s.BaseOffset, s.NextOffset, c.base, c.next)
		}
		if !bytes.Equal(data, c.data) {
			t.Fatalf("segment %d: cleaned copy (%d bytes) differs from the locally cleaned segment (%d bytes)", c.base, len(c.data), len(data))
		}
		if !bytes.Equal(idx, results[i].Index) || !bytes.Equal(tidx, results[i].TimeIndex) {
			t.Fatalf("segment %d: indexes differ: %x / %x, local %x / %x", c.base, results[i].Index, results[i].TimeIndex, idx, tidx)
		}
		if results[i].MaxTimestamp != s.MaxTimestamp {
			t.Fatalf("segment %d: max timestamp %d, local %d", c.base, results[i].MaxTimestamp, s.MaxTimestamp)
		}
	}
}

// expectSegments checks cleaned copies as expectCompacted checks a log:
// every record is the one written at its offset, only the latest of each
// key is left, and every segment still ends where it did.
func expectSegments(t testing.TB, segs []segCopy, m *kvModel, end int64, keepTombstones bool) {
	t.Helper()
	latest := map[string]int64{}
	for _, r := range m.recs[:end] {
		if r.key != nil {
			latest[string(r.key)] = r.off
		}
	}
	var want, got []kvRec
	for _, r := range m.recs {
		if r.off >= end || (r.key != nil && latest[string(r.key)] == r.off && (r.val != nil || keepTombstones)) {
			want = append(want, r)
		}
	}
	for _, s := range segs {
		last := int64(-1)
		err := proto.SplitBatches(s.data, true, func(b proto.Batch) error {
			last = b.LastOffset()
			return proto.ForEachRecord(b, func(r proto.Record) error {
				kr := kvRec{off: b.BaseOffset + int64(r.OffsetDelta), ts: b.FirstTimestamp + r.TimestampDelta, key: bytes.Clone(r.Key), val: bytes.Clone(r.Value)}
				for _, h := range r.Headers {
					if h.Key == "h" {
						kr.hdr = string(h.Value)
					}
				}
				got = append(got, kr)
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if last != s.next-1 {
			t.Fatalf("segment [%d, %d) now ends at %d", s.base, s.next, last)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d records left, want %d", len(got), len(want))
	}
	for i := range got {
		if !sameRec(got[i], want[i]) {
			t.Fatalf("record %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestSegmentCleanerMapBound(t *testing.T) {
	clock := newFakeClock()
	l := openTest(t, t.TempDir(), compactCfg(), Options{Now: clock.Now})
	m := &kvModel{}
	fillKV(t, l, m, clock, 60, 200)
	copies := copySegments(t, l)

	// 64 slots hold 57 keys: the map fills inside the log, at a batch.
	sc := l.NewSegmentCleaner(CompactOptions{Now: clock.Now(), MaxOffsetMapBytes: 64 * mapSlotBytes * 3 / 2})
	end, full := int64(-1), false
	for _, c := range copies {
		var err error
		if end, full, err = sc.AddToMap(bytes.NewReader(c.data), int64(len(c.data)), 0); err != nil {
			t.Fatal(err)
		}
		if full {
			break
		}
	}
	if !full || end <= 0 || end >= l.LogEndOffset() {
		t.Fatalf("map full %v at %d (log end %d)", full, end, l.LogEndOffset())
	}
	if e, f, err := sc.AddToMap(bytes.NewReader(copies[0].data), int64(len(copies[0].data)), 0); e != end || !f || err != nil {
		t.Fatalf("AddToMap after full: %d %v %v", e, f, err)
	}
	// Records at or past the map's end are all kept.
	var kept []kvRec
	for _, c := range copies {
		var buf bytes.Buffer
		if _, err := sc.Clean(bytes.NewReader(c.data), int64(len(c.data)), c.base, &buf); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, recordsOf(t, buf.Bytes())...)
	}
	expectSegmentRecords(t, kept, m, end)

	// A map that cannot take a single batch is an error.
	sc = l.NewSegmentCleaner(CompactOptions{Now: clock.Now(), MaxOffsetMapBytes: 1})
	var err error
	for _, c := range copies {
		if _, full, err = sc.AddToMap(bytes.NewReader(c.data), int64(len(c.data)), c.base+3); err != nil || full {
			break
		}
	}
	if err != nil && !errors.Is(err, ErrOffsetMapTooSmall) {
		t.Fatal(err)
	}
}

func recordsOf(t testing.TB, data []byte) []kvRec {
	t.Helper()
	var out []kvRec
	err := proto.SplitBatches(data, true, func(b proto.Batch) error {
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

func expectSegmentRecords(t testing.TB, got []kvRec, m *kvModel, end int64) {
	t.Helper()
	latest := map[string]int64{}
	for _, r := range m.recs[:end] {
		if r.key != nil {
			latest[string(r.key)] = r.off
		}
	}
	var want []kvRec
	for _, r := range m.recs {
		if r.off >= end || latest[string(r.key)] == r.off {
			want = append(want, r)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d records left, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].off != want[i].off || !bytes.Equal(got[i].key, want[i].key) || !bytes.Equal(got[i].val, want[i].val) {
			t.Fatalf("record %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestSegmentCleanerRejectsForeignBatches(t *testing.T) {
	clock := newFakeClock()
	l := openTest(t, t.TempDir(), compactCfg(), Options{Now: clock.Now})
	fillKV(t, l, &kvModel{}, clock, 30, 5)
	c := copySegments(t, l)[1]
	sc := l.NewSegmentCleaner(CompactOptions{Now: clock.Now()})
	// Told a base past its first batch: corrupt, nothing silently rebased.
	if _, err := sc.Clean(bytes.NewReader(c.data), int64(len(c.data)), c.base+1, io.Discard); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("clean with a wrong base: %v", err)
	}
	// A flipped byte fails the CRC.
	bad := bytes.Clone(c.data)
	bad[len(bad)-1] ^= 1
	if _, err := sc.Clean(bytes.NewReader(bad), int64(len(bad)), c.base, io.Discard); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("clean of a corrupt segment: %v", err)
	}
	// A short object is an error, not a shorter segment.
	if _, err := sc.Clean(bytes.NewReader(c.data[:len(c.data)-5]), int64(len(c.data)), c.base, io.Discard); err == nil {
		t.Fatal("clean of a truncated segment succeeded")
	}
}

func TestRemoteCleanerCheckpoint(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, compactCfg())
	if _, _, ok := l.RemoteCleanerCheckpoint(); ok {
		t.Fatal("checkpoint in a new log")
	}
	if err := l.WriteRemoteCleanerCheckpoint(1234, math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, dir, compactCfg())
	if off, h, ok := l.RemoteCleanerCheckpoint(); !ok || off != 1234 || h != math.MaxInt64 {
		t.Fatalf("checkpoint after reopen: %d %d %v", off, h, ok)
	}
	removeGlob(t, dir, remoteCleanerFile)
	if err := writeSynced(dir+"/"+remoteCleanerFile, []byte("0\nx\n")); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := l.RemoteCleanerCheckpoint(); ok {
		t.Fatal("malformed checkpoint accepted")
	}
}
