package tiering

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"golang.org/x/time/rate"

	"github.com/strata-broker/strata/proto"
	"github.com/strata-broker/strata/storage"
)

// expectedKeys: the objects of every manifest segment plus the
// manifest copy, sorted.
func (e *env) expectedKeys(man Manifest) []string {
	keys := []string{ManifestKey("c1", e.topicID, 0)}
	for _, s := range man.Segments {
		for _, k := range s.Kinds() {
			keys = append(keys, KeyFor("c1", e.topicID, 0, s, k))
		}
	}
	sort.Strings(keys)
	return keys
}

func TestUploadKeysAndContiguousManifest(t *testing.T) {
	e := newEnv(t)
	produce(t, e.log, 60, 5, 1000, 20)
	sealed := e.log.SealedSegments()
	if len(sealed) < 4 {
		t.Fatalf("only %d sealed segments", len(sealed))
	}
	e.start(remoteOn())
	e.waitUploaded(e.log)

	man := e.manifest()
	if err := man.Validate(); err != nil {
		t.Fatal(err)
	}
	sealed = e.log.SealedSegments()
	if len(man.Segments) != len(sealed) {
		t.Fatalf("%d remote segments for %d sealed", len(man.Segments), len(sealed))
	}
	ctx := context.Background()
	for i, s := range sealed {
		r := man.Segments[i]
		if r.BaseOffset != s.BaseOffset || r.LastOffset != s.NextOffset-1 || r.Size != s.Size || r.MaxTimestamp != s.MaxTimestamp {
			t.Fatalf("segment %d: remote %+v, local %+v", i, r, s)
		}
		if len(r.Epochs) != 1 || r.Epochs[0] != (EpochEntry{Epoch: 3, StartOffset: s.BaseOffset}) {
			t.Fatalf("segment %d epochs %+v", i, r.Epochs)
		}
		files, err := e.log.OpenSegment(s.BaseOffset)
		if err != nil {
			t.Fatal(err)
		}
		local := map[ObjectKind][]byte{KindIndex: files.Index, KindTimeIndex: files.TimeIndex}
		local[KindLog] = make([]byte, files.Size)
		if _, err := files.Log.ReadAt(local[KindLog], 0); err != nil {
			t.Fatal(err)
		}
		files.Release()
		for _, k := range segmentKinds {
			rc, err := e.store.Get(ctx, KeyFor("c1", e.topicID, 0, r, k), 0, -1)
			if err != nil {
				t.Fatalf("segment %d %s: %v", i, k, err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, local[k]) {
				t.Fatalf("segment %d %s: object differs from the local file", i, k)
			}
		}
	}
	if got, want := allKeys(t, e.store), e.expectedKeys(man); !slices.Equal(got, want) {
		t.Fatalf("bucket holds\n%v\nwant\n%v", got, want)
	}
	rc, err := e.store.Get(ctx, ManifestKey("c1", e.topicID, 0), 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	copyMan, err := DecodeManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if copyMan.End() != man.End() || len(copyMan.Segments) != len(man.Segments) {
		t.Fatalf("bucket manifest %+v, committed %+v", copyMan, man)
	}
	if e.log.RemoteEnd() != man.End() {
		t.Fatalf("remote end %d, manifest end %d", e.log.RemoteEnd(), man.End())
	}
	if _, err := e.log.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	if got := e.log.LocalLogStartOffset(); got != man.End() {
		t.Fatalf("local log start %d after local retention, manifest end %d", got, man.End())
	}
	if rb, rs, lagS, lagB := e.m.Stats(e.topicID, 0); rb != man.Bytes() || rs != len(man.Segments) || lagS != 0 || lagB != 0 {
		t.Fatalf("Stats = %d %d %d %d", rb, rs, lagS, lagB)
	}

	// More data: the manifest keeps growing at its end.
	produce(t, e.log, 30, 5, 2000, 20)
	e.waitUploaded(e.log)
	man2 := e.manifest()
	if err := man2.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(man2.Segments) <= len(man.Segments) || man2.Segments[len(man.Segments)-1].ID != man.Segments[len(man.Segments)-1].ID {
		t.Fatalf("manifest did not grow at its end")
	}
}

func TestLocalSegmentsGoOnlyAfterCommit(t *testing.T) {
	e := newEnv(t)
	var allow atomic.Bool
	var attempts atomic.Int32
	violation := make(chan string, 1)
	e.mans.setHooks(func(seg RemoteSegment) error {
		attempts.Add(1)
		if l := e.log.LocalLogStartOffset(); l > seg.BaseOffset {
			select {
			case violation <- "local copy gone before the commit":
			default:
			}
		}
		if !allow.Load() {
			return errors.New("quorum unavailable")
		}
		return nil
	}, nil)
	produce(t, e.log, 40, 5, 1000, 20)
	nSealed := len(e.log.SealedSegments())
	e.start(remoteOn())
	waitFor(t, "commit attempts", func() bool { return attempts.Load() >= 3 })
	for range 3 {
		if _, err := e.log.EnforceRetention(); err != nil {
			t.Fatal(err)
		}
		if got := e.log.LocalLogStartOffset(); got != 0 {
			t.Fatalf("local data deleted before any commit: local log start %d", got)
		}
	}
	if _, _, lagS, lagB := e.m.Stats(e.topicID, 0); lagS != nSealed || lagB <= 0 {
		t.Fatalf("upload lag %d segments %d bytes, want %d segments", lagS, lagB, nSealed)
	}
	allow.Store(true)
	e.waitUploaded(e.log)
	if _, err := e.log.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	man := e.manifest()
	if got := e.log.LocalLogStartOffset(); got != man.End() {
		t.Fatalf("local log start %d, manifest end %d", got, man.End())
	}
	select {
	case v := <-violation:
		t.Fatal(v)
	default:
	}
	// Retries reused their upload id: no orphan even before a sweep.
	if got, want := allKeys(t, e.store), e.expectedKeys(man); !slices.Equal(got, want) {
		t.Fatalf("bucket holds\n%v\nwant\n%v", got, want)
	}
}

func TestUploadRetriesStoreFailuresWithoutLeaks(t *testing.T) {
	e := newEnv(t, withMemStore())
	var n atomic.Int32
	e.mem.setFailPut(func(key string) error {
		if c := n.Add(1); c < 60 && c%3 != 0 {
			return errors.New("503 SlowDown")
		}
		return nil
	})
	produce(t, e.log, 50, 5, 1000, 20)
	local, _ := readLocal(t, e.log)
	e.start(remoteOn())
	e.waitUploaded(e.log)
	if _, err := e.log.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	e.m.sweepPass(context.Background())
	man := e.manifest()
	if got, want := allKeys(t, e.store), e.expectedKeys(man); !slices.Equal(got, want) {
		t.Fatalf("bucket holds\n%v\nwant\n%v", got, want)
	}
	// Everything still reads back from the remote tier.
	got := readRange(t, e.m, e.topicID, 0, man.End())
	if !bytes.Equal(got, local[:len(got)]) || len(got) == 0 {
		t.Fatalf("remote bytes differ from what was produced (%d of %d bytes)", len(got), len(local))
	}
}

// readRange reads [from, end) from the remote tier by consecutive reads.
func readRange(t testing.TB, m *Manager, id [16]byte, from, end int64) []byte {
	t.Helper()
	var out []byte
	for off := from; off < end; {
		rr, err := m.Read(context.Background(), id, 0, off, 1<<20, true)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		b := readAll(t, rr)
		rr.Release()
		if len(b) == 0 {
			t.Fatalf("read %d: empty", off)
		}
		var last int64
		if err := proto.SplitBatches(b, true, func(bt proto.Batch) error {
			last = bt.BaseOffset + int64(bt.LastOffsetDelta)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
		off = last + 1
	}
	return out
}

func TestCrashBetweenUploadAndCommit(t *testing.T) {
	e := newEnv(t, withMemStore())
	var mu sync.Mutex
	var tried []string
	e.mans.setHooks(func(seg RemoteSegment) error {
		mu.Lock()
		defer mu.Unlock()
		tried = append(tried, seg.ID)
		return errors.New("crash")
	}, nil)
	produce(t, e.log, 30, 5, 1000, 20)
	stopA := e.run(e.m)
	e.m.AddPartition("t", e.topicID, 0, e.log, remoteOn())
	waitFor(t, "an upload waiting for its commit", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(tried) > 0
	})
	stopA() // the broker dies between the upload and the commit
	mu.Lock()
	orphanID := tried[0]
	mu.Unlock()
	var orphans []string
	for _, k := range allKeys(t, e.store) {
		if k != ManifestKey("c1", e.topicID, 0) {
			orphans = append(orphans, k)
		}
	}
	if len(orphans) != 3 {
		t.Fatalf("after the crash the bucket holds %v", orphans)
	}

	e.mans.setHooks(nil, nil)
	b := e.newManager()
	e.run(b)
	b.AddPartition("t", e.topicID, 0, e.log, remoteOn())
	e.waitUploaded(e.log)
	man := e.manifest()
	if man.Contains(orphanID) {
		t.Fatal("the crashed upload's id was committed")
	}
	ctx := context.Background()
	b.sweepPass(ctx) // too young to be sure: kept
	for _, k := range orphans {
		if _, err := e.store.Head(ctx, k); err != nil {
			t.Fatalf("young orphan %s deleted: %v", k, err)
		}
	}
	e.clock.Advance(11 * time.Minute)
	b.sweepPass(ctx)
	if got, want := allKeys(t, e.store), e.expectedKeys(man); !slices.Equal(got, want) {
		t.Fatalf("bucket holds\n%v\nwant\n%v", got, want)
	}
}

func TestSweepSparesUploadInFlight(t *testing.T) {
	e := newEnv(t, withMemStore())
	release := make(chan struct{})
	blocked := make(chan struct{}, 1)
	e.mem.setFailPut(func(key string) error {
		if strings.HasSuffix(key, ".timeindex") {
			select {
			case blocked <- struct{}{}:
				<-release // the .log and .index objects are in, not committed
			default:
			}
		}
		return nil
	})
	produce(t, e.log, 12, 5, 1000, 20)
	e.start(remoteOn())
	<-blocked
	e.clock.Advance(time.Hour) // every object is "old"
	e.m.sweepPass(context.Background())
	close(release)
	e.waitUploaded(e.log)
	man := e.manifest()
	for _, s := range man.Segments {
		for _, k := range s.Kinds() {
			if _, err := e.store.Head(context.Background(), KeyFor("c1", e.topicID, 0, s, k)); err != nil {
				t.Fatalf("sweep deleted an object of an upload in flight: %v", err)
			}
		}
	}
}

func TestAmbiguousCommitIsRetriedIdempotently(t *testing.T) {
	e := newEnv(t, withMemStore())
	var fails atomic.Int32
	e.mans.setHooks(nil, func(seg RemoteSegment) error {
		if fails.Add(1) <= 3 {
			return errors.New("timeout after apply")
		}
		return nil
	})
	produce(t, e.log, 30, 5, 1000, 20)
	e.start(remoteOn())
	e.waitUploaded(e.log)
	man := e.manifest()
	if int(e.mans.adds.Load()) != len(man.Segments) {
		t.Fatalf("%d commits for %d segments", e.mans.adds.Load(), len(man.Segments))
	}
	e.clock.Advance(time.Hour)
	e.m.sweepPass(context.Background())
	if got, want := allKeys(t, e.store), e.expectedKeys(man); !slices.Equal(got, want) {
		t.Fatalf("bucket holds\n%v\nwant\n%v", got, want)
	}
}

// A new leader whose local segments are rolled at other offsets than the
// previous leader's continues the manifest from its end, cutting a local
// segment.
func TestUploadCutsSegmentStraddlingRemoteEnd(t *testing.T) {
	e := newEnv(t)
	l2 := e.openLog(t.TempDir(), 5000)
	for i := range 80 {
		leo := e.log.LogEndOffset()
		rs := make([]proto.Record, 1+i%4)
		for j := range rs {
			rs[j] = proto.Record{TimestampDelta: int64(j), Value: bytes.Repeat([]byte{byte(leo)}, 60)}
		}
		raw := proto.AppendBatch(nil, proto.BatchSpec{FirstTimestamp: int64(1000 + i), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, rs)
		for _, l := range []*storage.Log{e.log, l2} {
			bs, err := proto.ValidateProduceBatches(slices.Clone(raw), 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Append(bs, 3, -1); err != nil {
				t.Fatal(err)
			}
			if err := l.WaitDurable(context.Background(), l.LogEndOffset()); err != nil {
				t.Fatal(err)
			}
		}
	}
	stopA := e.run(e.m)
	e.m.AddPartition("t", e.topicID, 0, e.log, remoteOn())
	e.waitUploaded(e.log)
	stopA()
	endA := e.manifest().End()
	// The new leader's log goes on until its segment holding endA is sealed.
	for {
		sealed := l2.SealedSegments()
		if len(sealed) > 0 && sealed[len(sealed)-1].NextOffset > endA {
			break
		}
		produce(t, l2, 1, 3, 5000, 60)
	}
	want, _ := readLocal(t, l2)
	bases := map[int64]bool{}
	for _, s := range l2.SealedSegments() {
		bases[s.BaseOffset] = true
	}
	if bases[endA] {
		t.Skipf("remote end %d happens to be a segment boundary of the other log", endA)
	}

	b := e.newManager()
	e.run(b)
	b.AddPartition("t", e.topicID, 0, l2, remoteOn())
	e.waitUploaded(l2)
	man := e.manifest()
	if err := man.Validate(); err != nil {
		t.Fatal(err)
	}
	var cut *RemoteSegment
	for i := range man.Segments {
		if man.Segments[i].BaseOffset == endA {
			cut = &man.Segments[i]
		}
	}
	if cut == nil || bases[cut.BaseOffset] {
		t.Fatalf("no segment cut at %d: %+v", endA, man.Segments)
	}
	got := readRange(t, b, e.topicID, 0, man.End())
	if !bytes.Equal(got, want[:len(got)]) {
		t.Fatal("remote bytes differ from the local log's")
	}
	// Every offset of the cut segment reads from it.
	for off := cut.BaseOffset; off <= cut.LastOffset; off++ {
		rr, err := b.Read(context.Background(), e.topicID, 0, off, 1, true)
		if err != nil {
			t.Fatal(err)
		}
		data := readAll(t, rr)
		rr.Release()
		var bt proto.Batch
		if bt, err = proto.ParseBatchHeader(data); err != nil || bt.BaseOffset > off || bt.BaseOffset+int64(bt.LastOffsetDelta) < off {
			t.Fatalf("offset %d: batch %d+%d, %v", off, bt.BaseOffset, bt.LastOffsetDelta, err)
		}
	}
}

func TestBackoff(t *testing.T) {
	m := &Manager{tune: defaultTuning()}
	prevMax := time.Duration(0)
	for f := 1; f <= 64; f++ {
		want := min(m.tune.backoffBase<<min(f-1, 20), m.tune.backoffMax)
		for range 20 {
			d := m.backoff(f)
			if d < want/2 || d > want {
				t.Fatalf("failure %d: backoff %v outside [%v, %v]", f, d, want/2, want)
			}
		}
		if want < prevMax {
			t.Fatalf("backoff shrank at failure %d", f)
		}
		prevMax = want
	}
	if m.backoff(1000) > 30*time.Second {
		t.Fatal("backoff above its cap")
	}
}

func TestThrottledReaderAt(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 5000)
	r := &throttledReaderAt{ctx: context.Background(), r: bytes.NewReader(data), lim: rate.NewLimiter(rate.Inf, 1000)}
	got := make([]byte, len(data)-7)
	if n, err := r.ReadAt(got, 7); n != len(got) || err != nil {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if !bytes.Equal(got, data[7:]) {
		t.Fatal("throttled read changed the bytes")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow := &throttledReaderAt{ctx: ctx, r: bytes.NewReader(data), lim: rate.NewLimiter(1, 10)}
	if _, err := slow.ReadAt(got, 0); err == nil {
		t.Fatal("a cancelled throttled read succeeded")
	}
}

func TestUploadRateLimitAndMetrics(t *testing.T) {
	reader := metric.NewManualReader()
	provider := metric.NewMeterProvider(metric.WithReader(reader))
	defer provider.Shutdown(context.Background())
	e := newEnv(t, withConfig(func(c *Config) {
		c.Meter = provider.Meter("test")
		c.UploadBytesPerSec = 50 << 20 // exercised, not measured
		c.UploadConcurrency = 1
	}))
	produce(t, e.log, 30, 5, 1000, 20)
	e.start(remoteOn())
	e.waitUploaded(e.log)
	man := e.manifest()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			switch d := mt.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					got[mt.Name] += p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					got[mt.Name] += p.Value
				}
			}
		}
	}
	var objBytes int64
	for _, s := range man.Segments {
		objBytes += s.Size + s.IndexSize + s.TimeIndexSize
	}
	if got[MetricUploadBytes] < objBytes {
		t.Errorf("%s = %d, want >= %d", MetricUploadBytes, got[MetricUploadBytes], objBytes)
	}
	if _, ok := got[MetricUploadLagSegments]; !ok {
		t.Errorf("%s not reported: %v", MetricUploadLagSegments, got)
	}
	if got[MetricUploadLagSegments] != 0 || got[MetricUploadLagBytes] != 0 {
		t.Errorf("lag after upload: %v", got)
	}
}
