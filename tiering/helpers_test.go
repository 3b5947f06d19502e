package tiering

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/strata-broker/strata/proto"
	"github.com/strata-broker/strata/storage"
	"github.com/strata-broker/strata/tiering/filestore"
	"github.com/strata-broker/strata/tiering/objstore"
)

// fakeClock is the Manager's and the logs' Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// memManifests is an in-memory ManifestStore built on the same pure
// functions the broker's implementation uses, with hooks for faults.
type memManifests struct {
	mu sync.Mutex
	m  map[topicPartition]Manifest
	// beforeAdd runs before a commit; an error fails AddSegment without
	// committing. afterAdd runs after it; an error fails AddSegment after
	// committing (an ambiguous failure).
	beforeAdd, afterAdd func(seg RemoteSegment) error
	beforeRemove        func(ids []string) error
	adds, removes       atomic.Int32
}

func newMemManifests() *memManifests { return &memManifests{m: make(map[topicPartition]Manifest)} }

func (s *memManifests) Manifest(id uuid.UUID, p int32) Manifest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[topicPartition{id, p}].Clone()
}

func (s *memManifests) AddSegment(ctx context.Context, id uuid.UUID, p int32, seg RemoteSegment) error {
	s.mu.Lock()
	before, after := s.beforeAdd, s.afterAdd
	s.mu.Unlock()
	if before != nil {
		if err := before(seg); err != nil {
			return err
		}
	}
	s.mu.Lock()
	tp := topicPartition{id, p}
	next, err := s.m[tp].WithSegment(seg)
	if err == nil {
		if err := next.Validate(); err != nil {
			panic(err)
		}
		s.m[tp] = next
		s.adds.Add(1)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if after != nil {
		return after(seg)
	}
	return nil
}

func (s *memManifests) RemoveSegments(ctx context.Context, id uuid.UUID, p int32, ids []string, logStart int64) error {
	s.mu.Lock()
	hook := s.beforeRemove
	s.mu.Unlock()
	if hook != nil {
		if err := hook(ids); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tp := topicPartition{id, p}
	next, err := s.m[tp].WithoutSegments(ids, logStart)
	if err != nil {
		return err
	}
	s.m[tp] = next
	s.removes.Add(1)
	return nil
}

func (s *memManifests) setHooks(before, after func(RemoteSegment) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beforeAdd, s.afterAdd = before, after
}

// memStore is an in-memory ObjectStore with fault injection and counters.
type memStore struct {
	now func() time.Time

	mu      sync.Mutex
	objs    map[string]memObject
	failPut func(key string) error
	failGet func(key string) error
	onDel   func(keys []string)
	gate    func(key string) chan struct{} // Get waits for it to close
	gets    map[string]int
	getting atomic.Int32 // Gets waiting at a gate
	puts    atomic.Int32
}

type memObject struct {
	data []byte
	mod  time.Time
}

var _ ObjectStore = (*memStore)(nil)

func newMemStore(now func() time.Time) *memStore {
	return &memStore{now: now, objs: make(map[string]memObject), gets: make(map[string]int)}
}

func (s *memStore) Put(ctx context.Context, key string, body io.ReaderAt, size int64) error {
	if err := objstore.CheckKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	fail := s.failPut
	s.mu.Unlock()
	if fail != nil {
		if err := fail(key); err != nil {
			return err
		}
	}
	buf := make([]byte, size)
	if size > 0 {
		if n, err := body.ReadAt(buf, 0); int64(n) < size {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objs[key] = memObject{data: buf, mod: s.now()}
	s.puts.Add(1)
	return nil
}

func (s *memStore) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	s.mu.Lock()
	fail, gate := s.failGet, s.gate
	s.gets[fmt.Sprintf("%s@%d", key, off)]++
	s.mu.Unlock()
	if fail != nil {
		if err := fail(key); err != nil {
			return nil, err
		}
	}
	if gate != nil {
		if ch := gate(key); ch != nil {
			s.getting.Add(1)
			select {
			case <-ch:
				s.getting.Add(-1)
			case <-ctx.Done():
				s.getting.Add(-1)
				return nil, ctx.Err()
			}
		}
	}
	s.mu.Lock()
	o, ok := s.objs[key]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	length, err := objstore.CheckRange(key, off, n, int64(len(o.data)))
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(o.data[off : off+length])), nil
}

func (s *memStore) Head(ctx context.Context, key string) (ObjectInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objs[key]
	if !ok {
		return ObjectInfo{}, fmt.Errorf("head %s: %w", key, ErrNotFound)
	}
	return ObjectInfo{Key: key, Size: int64(len(o.data)), LastModified: o.mod}, nil
}

func (s *memStore) Delete(ctx context.Context, keys ...string) error {
	s.mu.Lock()
	hook := s.onDel
	s.mu.Unlock()
	if hook != nil {
		hook(keys)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		delete(s.objs, k)
	}
	return nil
}

func (s *memStore) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	s.mu.Lock()
	var infos []ObjectInfo
	for k, o := range s.objs {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, ObjectInfo{Key: k, Size: int64(len(o.data)), LastModified: o.mod})
		}
	}
	s.mu.Unlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	for _, o := range infos {
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}

// getCount: Gets of key from byte off.
func (s *memStore) getCount(key string, off int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[fmt.Sprintf("%s@%d", key, off)]
}

func (s *memStore) setGate(g func(key string) chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate = g
}

func (s *memStore) setFailPut(f func(string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failPut = f
}

// allKeys lists every object of a store.
func allKeys(t testing.TB, s ObjectStore) []string {
	t.Helper()
	var keys []string
	if err := s.List(context.Background(), "", func(o ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		t.Fatalf("list: %v", err)
	}
	return keys
}

// testTuning makes loops fast and chunks small; retention and the sweep
// run only when a test calls them.
func testTuning(t *tuning) {
	t.scanInterval = 2 * time.Millisecond
	t.retentionInterval = time.Hour
	t.sweepInterval = time.Hour
	t.backoffBase = time.Millisecond
	t.backoffMax = 10 * time.Millisecond
	t.chunkBytes = 1024
	t.minTimeout = 10 * time.Second
}

type env struct {
	t       testing.TB
	clock   *fakeClock
	store   ObjectStore
	mem     *memStore // when the store is in memory
	mans    *memManifests
	m       *Manager
	cfg     Config
	topicID uuid.UUID
	log     *storage.Log
	logDir  string
	stop    func()
}

type envOpt func(*env)

func withMemStore() envOpt {
	return func(e *env) {
		e.mem = newMemStore(e.clock.Now)
		e.store = e.mem
	}
}

func withConfig(f func(*Config)) envOpt { return func(e *env) { f(&e.cfg) } }

// newEnv makes a Manager over a fresh log (small segments, remote enabled,
// local retention 0 so EnforceRetention drops everything uploaded).
func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	e := &env{t: t, clock: newFakeClock(), mans: newMemManifests(), topicID: uuid.New()}
	for _, o := range opts {
		o(e)
	}
	if e.store == nil {
		fs, err := filestore.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		e.store = fs
	}
	e.cfg.ClusterID = "c1"
	e.cfg.Store = e.store
	e.cfg.Manifests = e.mans
	if e.cfg.CacheDir == "" {
		e.cfg.CacheDir = t.TempDir()
	}
	e.cfg.Now = e.clock.Now
	e.cfg.Logger = testLogger(t)
	e.m = e.newManager()
	e.logDir = t.TempDir()
	e.log = e.openLog(e.logDir, 2048)
	return e
}

func (e *env) newManager() *Manager {
	m, err := NewManager(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	testTuning(&m.tune)
	return m
}

func (e *env) openLog(dir string, segBytes int64) *storage.Log {
	cfg := storage.DefaultConfig()
	cfg.SegmentBytes = segBytes
	cfg.IndexIntervalBytes = 200
	cfg.RetentionMs, cfg.RetentionBytes = -1, -1
	cfg.RemoteEnabled = true
	cfg.LocalRetentionBytes, cfg.LocalRetentionMs = 0, -1
	l, err := storage.Open(dir, cfg, storage.Options{Logger: testLogger(e.t), Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { l.Close() })
	return l
}

// run starts Run; the test's cleanup stops it and checks it returned.
func (e *env) run(m *Manager) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				e.t.Error("Run did not return")
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

func (e *env) start(cfg PartitionConfig) {
	e.stop = e.run(e.m)
	e.m.AddPartition("t", e.topicID, 0, e.log, cfg)
}

func remoteOn() PartitionConfig {
	return PartitionConfig{RemoteEnabled: true, RetentionMs: -1, RetentionBytes: -1, LocalRetentionMs: -1, LocalRetentionBytes: 0}
}

func (e *env) manifest() Manifest { return e.mans.Manifest(e.topicID, 0) }

// produce appends n batches of recs records each, values naming their
// offsets, with timestamps ts, ts+1, ...
func produce(t testing.TB, l *storage.Log, n, recs int, ts int64, pad int) {
	t.Helper()
	for range n {
		leo := l.LogEndOffset()
		rs := make([]proto.Record, recs)
		for i := range rs {
			rs[i] = proto.Record{TimestampDelta: int64(i), Key: []byte("k"), Value: []byte(fmt.Sprintf("rec-%d-%s", leo+int64(i), strings.Repeat("x", pad)))}
		}
		raw := proto.AppendBatch(nil, proto.BatchSpec{FirstTimestamp: ts, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, rs)
		bs, err := proto.ValidateProduceBatches(raw, 0)
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

// waitFor polls cond until it holds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitUploaded waits until every sealed segment of the log is in the
// manifest and the log knows it.
func (e *env) waitUploaded(l *storage.Log) {
	e.t.Helper()
	waitFor(e.t, "uploads", func() bool {
		sealed := l.SealedSegments()
		if len(sealed) == 0 {
			return false
		}
		end := sealed[len(sealed)-1].NextOffset
		return e.manifest().End() >= end && l.RemoteEnd() >= end
	})
}

// localBytes reads the whole local log: its bytes and, per batch, the
// byte position and offsets.
type batchPos struct{ pos, base, last int64 }

func readLocal(t testing.TB, l *storage.Log) ([]byte, []batchPos) {
	t.Helper()
	rr, err := l.Read(l.LogStartOffset(), l.HighWatermark(), 1<<30, true)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	var buf bytes.Buffer
	if _, err := rr.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	var bps []batchPos
	at := int64(0)
	if err := proto.SplitBatches(buf.Bytes(), true, func(b proto.Batch) error {
		bps = append(bps, batchPos{at, b.BaseOffset, b.BaseOffset + int64(b.LastOffsetDelta)})
		at += int64(len(b.Raw))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), bps
}

func readAll(t testing.TB, rr *ReadResult) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := rr.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != rr.Len {
		t.Fatalf("result Len %d, bytes %d", rr.Len, buf.Len())
	}
	return buf.Bytes()
}

func cacheFiles(t testing.TB, dir string) (n int, bytes int64) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range ents {
		if strings.HasSuffix(de.Name(), chunkSuffix) {
			fi, err := os.Stat(filepath.Join(dir, de.Name()))
			if err != nil {
				continue
			}
			n++
			bytes += fi.Size()
		}
	}
	return n, bytes
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
