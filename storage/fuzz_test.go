package storage

import (
	"os"
	"path/filepath"
	"testing"
)

func FuzzDecodeProducerSnapshot(f *testing.F) {
	ps := newProducerState()
	ps.m[1] = &producerEntry{epoch: 2, n: 1, batches: [producerWindow]batchMeta{{0, 4, 10, 14, 99}}}
	f.Add(ps.encode())
	f.Add([]byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeProducerSnapshot(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to something that decodes the same.
		again, err := decodeProducerSnapshot((&producerState{m: m}).encode())
		if err != nil || len(again) != len(m) {
			t.Fatalf("re-decode: %d entries, %v", len(again), err)
		}
		for pid, e := range m {
			if *again[pid] != *e {
				t.Fatalf("producer %d: %+v != %+v", pid, again[pid], e)
			}
		}
	})
}

func FuzzDecodeCheckpoints(f *testing.F) {
	f.Add([]byte("0\n2\n1 0\n3 10\n"))
	f.Add([]byte("0\n42\n"))
	// One directory for all inputs: a temp dir per input made the target
	// slow enough to stall the fuzzer on a busy machine.
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		if es, err := decodeEpochCheckpoint(b); err == nil {
			for i := 1; i < len(es); i++ {
				if es[i].epoch <= es[i-1].epoch || es[i].start < es[i-1].start {
					t.Fatalf("decoded a non-monotonic history %v", es)
				}
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "cp"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if off, ok, err := readOffsetCheckpoint(dir, "cp"); err == nil && (!ok || off < 0) {
			t.Fatalf("offset checkpoint decoded to %d %v", off, ok)
		}
	})
}

func FuzzDecodeIndexes(f *testing.F) {
	f.Add(encodeOffsetIndex([]offsetEntry{{1, 100}, {5, 300}}), encodeTimeIndex([]timeEntry{{10, 0}, {20, 3}}), int64(1000))
	f.Fuzz(func(t *testing.T, ib, tb []byte, size int64) {
		if idx, err := decodeOffsetIndex(ib, size); err == nil {
			for i, e := range idx {
				if int64(e.pos)+batchHeaderSize > size || (i > 0 && e.rel <= idx[i-1].rel) {
					t.Fatalf("accepted bad entry %d: %+v", i, e)
				}
			}
		}
		if tidx, err := decodeTimeIndex(tb, size); err == nil {
			for i := 1; i < len(tidx); i++ {
				if tidx[i].ts <= tidx[i-1].ts {
					t.Fatalf("accepted non-increasing timestamps %v", tidx)
				}
			}
		}
	})
}

// FuzzRecoverSegment opens a log whose active segment is a valid prefix
// followed by arbitrary bytes: Open must succeed, keep the prefix, and
// leave only CRC-valid, dense batches.
func FuzzRecoverSegment(f *testing.F) {
	valid := append(build(spec{n: 2}), build(spec{n: 1})...)
	f.Add([]byte{})
	f.Add(make([]byte, 100))
	f.Add(build(spec{n: 3})[:40])
	f.Add(append([]byte{0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 49}, make([]byte, 49)...))
	f.Fuzz(func(t *testing.T, tail []byte) {
		dir := t.TempDir()
		data := append([]byte(nil), valid...)
		// Stamp offsets as Append would: 0-1, then 2.
		data[len(split(t, valid)[0].Raw)+7] = 2
		data = append(data, tail...)
		if err := os.WriteFile(filepath.Join(dir, segmentName(0)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Open(dir, smallConfig(), Options{})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer l.Close()
		if l.LogEndOffset() < 3 {
			t.Fatalf("lost the valid prefix: LEO %d", l.LogEndOffset())
		}
		rr, err := l.Read(0, l.LogEndOffset(), 1<<20, true)
		if err != nil {
			t.Fatal(err)
		}
		defer rr.Release()
		for i, r := range readRecords(t, &rr) {
			if r.off != int64(i) {
				t.Fatalf("record %d at offset %d", i, r.off)
			}
		}
	})
}
