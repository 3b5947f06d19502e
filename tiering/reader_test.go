package tiering

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/strata-broker/strata/proto"
	"github.com/strata-broker/strata/storage"
	"github.com/strata-broker/strata/tiering/filestore"
)

// produceVaried writes batches of varied sizes (1-4 records, values 0-120
// bytes), so chunks, index entries and maxBytes cut batches in many places.
func produceVaried(t testing.TB, l *storage.Log, n int, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 1))
	for range n {
		produce(t, l, 1, 1+r.IntN(4), 1000+int64(r.IntN(100)), r.IntN(120))
	}
}

// tieredVaried uploads varied data, keeps a copy of the local bytes and
// drops the local segments.
func (e *env) tieredVaried(n int) (local []byte, batches []batchPos, man Manifest) {
	e.t.Helper()
	produceVaried(e.t, e.log, n, 7)
	local, batches = readLocal(e.t, e.log)
	e.start(remoteOn())
	e.waitUploaded(e.log)
	if _, err := e.log.EnforceRetention(); err != nil {
		e.t.Fatal(err)
	}
	man = e.manifest()
	if e.log.LocalLogStartOffset() != man.End() {
		e.t.Fatalf("local log start %d, remote end %d", e.log.LocalLogStartOffset(), man.End())
	}
	return local, batches, man
}

func batchHolding(bps []batchPos, off int64) batchPos {
	for _, b := range bps {
		if b.last >= off {
			return b
		}
	}
	panic("offset past the data")
}

func TestReadEveryOffsetMatchesLocal(t *testing.T) {
	e := newEnv(t)
	local, bps, man := e.tieredVaried(150)
	ctx := context.Background()
	if _, err := e.log.Read(0, e.log.HighWatermark(), 100, true); !errors.Is(err, storage.ErrOffsetTiered) {
		t.Fatalf("local read of a tiered offset: %v", err)
	}
	for off := man.LogStartOffset; off < man.End(); off++ {
		b := batchHolding(bps, off)
		for _, maxBytes := range []int32{1, 300, 2000, 1 << 20} {
			rr, err := e.m.Read(ctx, e.topicID, 0, off, maxBytes, true)
			if err != nil {
				t.Fatalf("offset %d max %d: %v", off, maxBytes, err)
			}
			got := readAll(t, rr)
			rr.Release()
			if len(got) == 0 || !bytes.Equal(got, local[b.pos:b.pos+int64(len(got))]) {
				t.Fatalf("offset %d max %d: %d bytes differ from the local log's at %d", off, maxBytes, len(got), b.pos)
			}
			nb := 0
			if err := proto.SplitBatches(got, true, func(proto.Batch) error { nb++; return nil }); err != nil {
				t.Fatalf("offset %d max %d: not whole batches: %v", off, maxBytes, err)
			}
			if len(got) > int(maxBytes) && nb != 1 {
				t.Fatalf("offset %d max %d: %d bytes in %d batches", off, maxBytes, len(got), nb)
			}
		}
		rr, err := e.m.Read(ctx, e.topicID, 0, off, 1, false)
		if err != nil || rr.Len != 0 {
			t.Fatalf("offset %d, 1 byte without minOne: %d bytes, %v", off, rr.Len, err)
		}
	}
	if _, err := e.m.Read(ctx, e.topicID, 0, man.End(), 100, true); !errors.Is(err, storage.ErrOffsetOutOfRange) {
		t.Fatalf("read at the remote end: %v", err)
	}
	// Sequential reads reproduce the remote part of the log byte for byte.
	got := readRange(t, e.m, e.topicID, man.LogStartOffset, man.End())
	if want := local[:batchHolding(bps, man.End()).pos]; !bytes.Equal(got, want) {
		t.Fatalf("sequential remote read: %d bytes, local %d, differ", len(got), len(want))
	}
}

func fileStoreRoot(e *env) string { return e.store.(*filestore.Store).Root() }

func TestReadCorruptOrMissingObject(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(t *testing.T, path string, seg RemoteSegment)
		kind    ObjectKind
		wantErr error
	}{
		{"flipped payload byte", func(t *testing.T, path string, seg RemoteSegment) {
			b, _ := os.ReadFile(path)
			b[len(b)/2] ^= 0x40
			os.WriteFile(path, b, 0o644)
		}, KindLog, ErrCorruptRemote},
		{"truncated object", func(t *testing.T, path string, seg RemoteSegment) {
			os.Truncate(path, seg.Size/3)
		}, KindLog, ErrCorruptRemote},
		{"missing object", func(t *testing.T, path string, seg RemoteSegment) {
			os.Remove(path)
		}, KindLog, ErrNotFound},
		{"index out of order", func(t *testing.T, path string, seg RemoteSegment) {
			b, _ := os.ReadFile(path)
			copy(b[0:8], b[8:16])
			os.WriteFile(path, b, 0o644)
		}, KindIndex, ErrCorruptRemote},
		{"index of another size", func(t *testing.T, path string, seg RemoteSegment) {
			os.Truncate(path, seg.IndexSize-8)
		}, KindIndex, ErrCorruptRemote},
		{"missing index", func(t *testing.T, path string, seg RemoteSegment) {
			os.Remove(path)
		}, KindIndex, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			_, _, man := e.tieredVaried(60)
			seg := man.Segments[1]
			if seg.IndexSize < 16 {
				t.Fatalf("segment index too small for the test: %d", seg.IndexSize)
			}
			path := filepath.Join(fileStoreRoot(e), filepath.FromSlash(KeyFor("c1", e.topicID, 0, seg, tt.kind)))
			tt.damage(t, path, seg)
			ctx := context.Background()
			// Every offset of the damaged segment (whatever chunk): an error
			// or bytes that passed the checks of an undamaged chunk.
			sawErr := false
			for off := seg.BaseOffset; off <= seg.LastOffset; off++ {
				rr, err := e.m.Read(ctx, e.topicID, 0, off, 1<<20, true)
				if err != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("offset %d: %v, want %v", off, err, tt.wantErr)
					}
					sawErr = true
					continue
				}
				if err := proto.SplitBatches(readAll(t, rr), true, func(proto.Batch) error { return nil }); err != nil {
					t.Fatalf("offset %d: bad bytes delivered: %v", off, err)
				}
				rr.Release()
			}
			if !sawErr {
				t.Fatal("damage went unnoticed")
			}
			// Nothing of the damaged chunk was cached.
			e.m.cache.mu.Lock()
			for k, ce := range e.m.cache.entries {
				if k.segID != seg.ID {
					continue
				}
				b := make([]byte, ce.size)
				ce.f.ReadAt(b, 0)
				if err := proto.SplitBatches(b, true, func(proto.Batch) error { return nil }); err != nil {
					t.Errorf("corrupt chunk cached: %v", err)
				}
			}
			e.m.cache.mu.Unlock()
			// Other segments still read.
			rr, err := e.m.Read(ctx, e.topicID, 0, man.Segments[2].BaseOffset, 1000, true)
			if err != nil {
				t.Fatalf("undamaged segment: %v", err)
			}
			rr.Release()
		})
	}
}

func TestReadOfSegmentDeletedMeanwhileIsOutOfRange(t *testing.T) {
	e := newEnv(t, withMemStore())
	_, _, man := e.tieredVaried(60)
	// A reader found the segment in the manifest, then retention removed it.
	err := e.m.readError(topicPartition{e.topicID, 0}, RemoteSegment{ID: "gone"}, 5, errors.Join(ErrNotFound))
	if !errors.Is(err, storage.ErrOffsetOutOfRange) {
		t.Fatalf("missing object of a removed segment: %v", err)
	}
	err = e.m.readError(topicPartition{e.topicID, 0}, man.Segments[0], 5, errors.Join(ErrNotFound))
	if !errors.Is(err, ErrNotFound) || errors.Is(err, storage.ErrOffsetOutOfRange) {
		t.Fatalf("missing object of a committed segment: %v", err)
	}
}

func TestCacheBoundUnderManyReads(t *testing.T) {
	const limit = 6 << 10
	e := newEnv(t, withConfig(func(c *Config) { c.CacheBytes = limit }))
	_, _, man := e.tieredVaried(200)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 2))
			for range 150 {
				off := man.LogStartOffset + r.Int64N(man.End()-man.LogStartOffset)
				rr, err := e.m.Read(context.Background(), e.topicID, 0, off, int32(r.IntN(3000)), true)
				if err != nil {
					t.Error(err)
					return
				}
				if rr.Len == 0 {
					t.Errorf("offset %d: empty", off)
				}
				rr.Release()
			}
		}()
	}
	wg.Wait()
	waitFor(t, "cache trimmed", func() bool {
		_, onDisk := cacheFiles(t, e.cfg.CacheDir)
		return e.m.cache.size() <= limit && onDisk <= limit
	})
}

func TestEvictionKeepsFilesOfResultsInUse(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.CacheBytes = 2 << 10 }))
	local, bps, man := e.tieredVaried(100)
	ctx := context.Background()
	rr, err := e.m.Read(ctx, e.topicID, 0, 0, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	// Push it out of the cache.
	for off := man.End() / 2; off < man.End(); off += 5 {
		r2, err := e.m.Read(ctx, e.topicID, 0, off, 100, true)
		if err != nil {
			t.Fatal(err)
		}
		r2.Release()
	}
	waitFor(t, "eviction", func() bool { return !cached(e.m, chunkKey{man.Segments[0].ID, 0}) })
	got := readAll(t, rr)
	if b := batchHolding(bps, 0); !bytes.Equal(got, local[b.pos:b.pos+int64(len(got))]) {
		t.Fatal("evicted file read back different bytes")
	}
}

func collectInt(t testing.TB, r *metric.ManualReader, name string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if mt.Name != name {
				continue
			}
			switch d := mt.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					n += p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					n += p.Value
				}
			}
		}
	}
	return n
}

func TestConcurrentReadersShareOneGet(t *testing.T) {
	reader := metric.NewManualReader()
	provider := metric.NewMeterProvider(metric.WithReader(reader))
	defer provider.Shutdown(context.Background())
	e := newEnv(t, withMemStore(), withConfig(func(c *Config) { c.Meter = provider.Meter("test") }))
	local, bps, man := e.tieredVaried(60)
	seg := man.Segments[1]
	logKey := KeyFor("c1", e.topicID, 0, seg, KindLog)
	gate := make(chan struct{})
	e.mem.setGate(func(key string) chan struct{} {
		if key == logKey {
			return gate
		}
		return nil
	})
	const readers = 10
	off := seg.BaseOffset + 1
	results := make(chan []byte, readers)
	var wg sync.WaitGroup
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rr, err := e.m.Read(context.Background(), e.topicID, 0, off, 500, true)
			if err != nil {
				t.Error(err)
				results <- nil
				return
			}
			results <- readAll(t, rr)
			rr.Release()
		}()
	}
	waitFor(t, "all readers waiting", func() bool { return collectInt(t, reader, MetricCacheMisses) == readers })
	close(gate)
	wg.Wait()
	close(results)
	b := batchHolding(bps, off)
	for got := range results {
		if !bytes.Equal(got, local[b.pos:b.pos+int64(len(got))]) {
			t.Fatal("reader got other bytes")
		}
	}
	if n := e.mem.getCount(logKey, 0); n != 1 {
		t.Fatalf("%d GETs of the chunk for %d concurrent readers", n, readers)
	}
	if hits := collectInt(t, reader, MetricCacheHits); hits != 0 {
		t.Fatalf("%d hits", hits)
	}
	if collectInt(t, reader, MetricDownloadBytes) <= 0 || collectInt(t, reader, MetricCacheBytes) <= 0 {
		t.Fatal("download and cache metrics not reported")
	}
}

func TestCancelledReadFinishesDownloadIntoCache(t *testing.T) {
	e := newEnv(t, withMemStore())
	_, _, man := e.tieredVaried(60)
	seg := man.Segments[0]
	logKey := KeyFor("c1", e.topicID, 0, seg, KindLog)
	gate := make(chan struct{})
	e.mem.setGate(func(key string) chan struct{} {
		if key == logKey {
			return gate
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := e.m.Read(ctx, e.topicID, 0, 0, 500, true)
		errc <- err
	}()
	waitFor(t, "download started", func() bool { return e.mem.getting.Load() == 1 })
	cancel() // the fetch's max wait expired
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v", err)
	}
	close(gate)
	waitFor(t, "chunk cached", func() bool { return cached(e.m, chunkKey{seg.ID, 0}) })
	rr, err := e.m.Read(context.Background(), e.topicID, 0, 0, 500, true)
	if err != nil || rr.Len == 0 {
		t.Fatalf("retry: %v", err)
	}
	rr.Release()
	if n := e.mem.getCount(logKey, 0); n != 1 {
		t.Fatalf("%d GETs; the retry should have hit the cache", n)
	}
}

func TestSequentialReadsPrefetch(t *testing.T) {
	e := newEnv(t, withMemStore())
	e.m.tune.chunkBytes = 256
	_, _, man := e.tieredVaried(100)
	seg := man.Segments[0]
	ctx := context.Background()
	idx, err := e.m.segmentIndex(ctx, topicPartition{e.topicID, 0}, seg, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.chunks) < 3 {
		t.Fatalf("segment has %d chunks", len(idx.chunks))
	}
	// A random reader does not trigger read-ahead.
	rr, err := e.m.Read(ctx, e.topicID, 0, man.Segments[3].BaseOffset, 100, true)
	if err != nil {
		t.Fatal(err)
	}
	rr.Release()
	// A consumer reading on from where it was does.
	var next int64
	for i := range 2 {
		rr, err := e.m.Read(ctx, e.topicID, 0, next, 100, true)
		if err != nil {
			t.Fatal(err)
		}
		var last int64
		proto.SplitBatches(readAll(t, rr), false, func(b proto.Batch) error {
			last = b.BaseOffset + int64(b.LastOffsetDelta)
			return nil
		})
		rr.Release()
		next = last + 1
		if i == 0 && cached(e.m, chunkKey{seg.ID, idx.chunks[1].pos}) {
			t.Fatal("prefetched after the first read")
		}
	}
	for _, c := range idx.chunks[1:3] {
		waitFor(t, "prefetch", func() bool { return cached(e.m, chunkKey{seg.ID, c.pos}) })
	}
}

func TestReadAfterRunReturns(t *testing.T) {
	e := newEnv(t)
	_, _, man := e.tieredVaried(30)
	e.stop()
	if _, err := e.m.Read(context.Background(), e.topicID, 0, man.LogStartOffset, 100, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after Run: %v", err)
	}
	if n, _ := cacheFiles(t, e.cfg.CacheDir); n != 0 {
		t.Fatalf("%d cache files left after Run", n)
	}
}

func TestCacheDirCleanedAtStart(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "not-ours.txt")
	os.WriteFile(keep, []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "abc-0-1.chunk"), []byte("stale"), 0o644)
	newEnv(t, withConfig(func(c *Config) { c.CacheDir = dir }))
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, de := range ents {
		names = append(names, de.Name())
	}
	if strings.Join(names, ",") != "not-ours.txt" {
		t.Fatalf("cache dir after start: %v", names)
	}
}

func cached(m *Manager, k chunkKey) bool {
	m.cache.mu.Lock()
	defer m.cache.mu.Unlock()
	return m.cache.entries[k] != nil
}

// A broker whose data directory was lost restarts the log at the remote
// end and serves every tiered record again; new segments continue the
// manifest.
func TestWipedDataDirServesRemoteTier(t *testing.T) {
	e := newEnv(t)
	local, bps, man := e.tieredVaried(80)
	e.stop()

	fresh := e.openLog(t.TempDir(), 2048)
	if err := fresh.ResetEmpty(man.End(), man.LogStartOffset); err != nil {
		t.Fatal(err)
	}
	e.cfg.CacheDir = t.TempDir()
	b := e.newManager()
	e.run(b)
	b.AddPartition("t", e.topicID, 0, fresh, remoteOn())
	got := readRange(t, b, e.topicID, man.LogStartOffset, man.End())
	if want := local[:batchHolding(bps, man.End()).pos]; !bytes.Equal(got, want) {
		t.Fatalf("after the wipe: %d remote bytes, %d before, differ", len(got), len(want))
	}
	produceVaried(t, fresh, 40, 9)
	e.waitUploaded(fresh)
	man2 := e.manifest()
	if err := man2.Validate(); err != nil {
		t.Fatal(err)
	}
	if man2.Segments[len(man.Segments)-1].ID != man.Segments[len(man.Segments)-1].ID || man2.End() <= man.End() {
		t.Fatal("the manifest did not continue at its end")
	}
}
