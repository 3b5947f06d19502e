package tiering

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/strata-broker/strata/proto"
	"github.com/strata-broker/strata/storage"
)

// replMans adds SegmentReplacer to memManifests, with the same pure rules
// (Manifest.WithReplaced) and a fault hook.
type replMans struct {
	*memManifests
	beforeReplace func([]SegmentReplacement) error // error: fail without committing
	afterReplace  func([]SegmentReplacement) error // error: fail after committing
	replaces      atomic.Int32
}

func (s *replMans) ReplaceSegments(ctx context.Context, id uuid.UUID, p int32, reps []SegmentReplacement) error {
	if s.beforeReplace != nil {
		if err := s.beforeReplace(reps); err != nil {
			return err
		}
	}
	s.mu.Lock()
	tp := topicPartition{id, p}
	next, _, err := s.m[tp].WithReplaced(reps)
	if err == nil {
		if err := next.Validate(); err != nil {
			panic(err)
		}
		s.m[tp] = next
		s.replaces.Add(1)
	}
	s.mu.Unlock()
	if err == nil && s.afterReplace != nil {
		return s.afterReplace(reps)
	}
	return err
}

// kvw is one record written: its offset, key, value (nil: tombstone).
type kvw struct {
	off      int64
	key, val string
	tomb     bool
}

// kvLog writes keyed records and remembers them.
type kvLog struct {
	recs []kvw
}

// write appends one batch of records for keys (a value "" with tomb
// writes a tombstone), then waits until it is durable.
func (k *kvLog) write(t testing.TB, l *storage.Log, ts int64, recs ...kvw) {
	t.Helper()
	rs := make([]proto.Record, len(recs))
	for i, r := range recs {
		rs[i] = proto.Record{TimestampDelta: int64(i), Key: []byte(r.key)}
		if !r.tomb {
			rs[i].Value = []byte(r.val)
		}
	}
	raw := proto.AppendBatch(nil, proto.BatchSpec{FirstTimestamp: ts, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, rs)
	bs, err := proto.ValidateProduceBatches(raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	info, err := l.Append(bs, 3, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WaitDurable(context.Background(), l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		r.off = info.FirstOffset + int64(i)
		k.recs = append(k.recs, r)
	}
}

// fill writes n batches of 4 records over nkeys keys, every 5th record a
// tombstone, values naming their offsets.
func (k *kvLog) fill(t testing.TB, l *storage.Log, ts int64, n, nkeys int) {
	t.Helper()
	for range n {
		var recs []kvw
		for j := range 4 {
			x := len(k.recs) + j
			r := kvw{key: fmt.Sprintf("key-%d", (x*7)%nkeys), val: fmt.Sprintf("value-%d-%s", x, "padpadpadpadpadpad")}
			if x%5 == 3 {
				r.tomb, r.val = true, ""
			}
			recs = append(recs, r)
		}
		k.write(t, l, ts, recs...)
	}
}

// table is the materialized view of recs below end: key -> (offset, value)
// of its latest record, deleted keys absent.
func table(recs []kvw, end int64) map[string]kvw {
	out := map[string]kvw{}
	for _, r := range recs {
		if r.off >= end {
			break
		}
		if r.tomb {
			delete(out, r.key)
		} else {
			out[r.key] = r
		}
	}
	return out
}

// remoteRecords reads every record of the manifest's segments straight
// from their objects, checking each segment's batches stay inside it and
// its last batch ends at its LastOffset.
func (e *env) remoteRecords(man Manifest) []kvw {
	e.t.Helper()
	var out []kvw
	for _, s := range man.Segments {
		data := e.getObject(KeyFor("c1", e.topicID, 0, s, KindLog))
		if int64(len(data)) != s.Size {
			e.t.Fatalf("segment %s: %d bytes, manifest says %d", s.ID, len(data), s.Size)
		}
		last := int64(-1)
		err := proto.SplitBatches(data, true, func(b proto.Batch) error {
			if b.BaseOffset < s.BaseOffset || b.LastOffset() > s.LastOffset || b.BaseOffset <= last {
				return fmt.Errorf("batch [%d, %d] in segment [%d, %d] after %d", b.BaseOffset, b.LastOffset(), s.BaseOffset, s.LastOffset, last)
			}
			last = b.LastOffset()
			return proto.ForEachRecord(b, func(r proto.Record) error {
				out = append(out, kvw{off: b.BaseOffset + int64(r.OffsetDelta), key: string(r.Key), val: string(r.Value), tomb: r.Value == nil})
				return nil
			})
		})
		if err != nil {
			e.t.Fatalf("segment %s: %v", s.ID, err)
		}
		if last != s.LastOffset {
			e.t.Fatalf("segment %s [%d, %d] ends at %d", s.ID, s.BaseOffset, s.LastOffset, last)
		}
	}
	return out
}

func (e *env) getObject(key string) []byte {
	e.t.Helper()
	rc, err := e.store.Get(context.Background(), key, 0, -1)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		e.t.Fatal(err)
	}
	return buf.Bytes()
}

// expectCompactedRemote checks records read from the remote tier against
// what was written below end: each one is exactly the record written at
// its offset; of each key only the latest is left, tombstones only when
// keepTombstones; the table they make is the written one.
func expectCompactedRemote(t testing.TB, got []kvw, written []kvw, end int64, keepTombstones bool) {
	t.Helper()
	latest := map[string]int64{}
	for _, r := range written[:end] {
		latest[r.key] = r.off
	}
	var want []kvw
	for _, r := range written[:end] {
		if latest[r.key] == r.off && (!r.tomb || keepTombstones) {
			want = append(want, r)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("remote records after compaction:\n got %d: %v\nwant %d: %v", len(got), got, len(want), want)
	}
}

func newCompactEnv(t *testing.T) (*env, *replMans) {
	e := newEnv(t, withMemStore(), withConfig(func(c *Config) { c.OrphanGrace = time.Hour }))
	rm := &replMans{memManifests: e.mans}
	e.cfg.Manifests = rm
	e.m = e.newManager()
	return e, rm
}

func segBounds(man Manifest) [][2]int64 {
	var out [][2]int64
	for _, s := range man.Segments {
		out = append(out, [2]int64{s.BaseOffset, s.LastOffset})
	}
	return out
}

func TestCompactRemoteKeepsLatestAndOffsets(t *testing.T) {
	e, rm := newCompactEnv(t)
	kl := &kvLog{}
	kl.fill(t, e.log, e.clock.Now().UnixMilli(), 60, 12)
	e.start(remoteOn())
	e.waitUploaded(e.log)
	if _, err := e.log.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	before := e.manifest()
	if len(before.Segments) < 4 {
		t.Fatalf("only %d remote segments", len(before.Segments))
	}
	end := before.End()
	oldKeys := e.expectedKeys(before)
	ctx := context.Background()

	opts := storage.CompactOptions{DeleteRetention: time.Hour, MinCleanableDirtyRatio: 0.5}
	res, err := e.m.CompactRemote(ctx, e.topicID, 0, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Cleaned || res.SegmentsReplaced == 0 || res.RecordsRemoved == 0 || res.TombstonesRemoved != 0 || res.CleanedTo != end || rm.replaces.Load() != 1 {
		t.Fatalf("first pass %+v (%d commits)", res, rm.replaces.Load())
	}
	after := e.manifest()
	if err := after.Validate(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(segBounds(after), segBounds(before)) || after.LogStartOffset != before.LogStartOffset {
		t.Fatalf("segment offsets changed: %v -> %v", segBounds(before), segBounds(after))
	}
	if after.Bytes() >= before.Bytes() {
		t.Fatalf("remote bytes %d -> %d", before.Bytes(), after.Bytes())
	}
	expectCompactedRemote(t, e.remoteRecords(after), kl.recs, end, true)
	// The bucket copy of the manifest follows.
	if cp, err := DecodeManifest(e.getObject(ManifestKey("c1", e.topicID, 0))); err != nil || !slices.Equal(segBounds(cp), segBounds(after)) || cp.Segments[0].ID != after.Segments[0].ID {
		t.Fatalf("manifest copy %+v, %v", cp, err)
	}
	// The old objects stay for readers of the old manifest, until the
	// orphan sweep.
	for _, k := range oldKeys {
		if _, err := e.store.Head(ctx, k); err != nil {
			t.Fatalf("old object %s gone right after the swap: %v", k, err)
		}
	}

	// Nothing is dirty: the next pass does nothing.
	if res, err := e.m.CompactRemote(ctx, e.topicID, 0, opts); err != nil || res.Cleaned {
		t.Fatalf("second pass %+v, %v", res, err)
	}
	// Past the delete horizon, tombstones go.
	e.clock.Advance(time.Hour + time.Second)
	res, err = e.m.CompactRemote(ctx, e.topicID, 0, opts)
	if err != nil || !res.Cleaned || !res.MustClean || res.TombstonesRemoved == 0 {
		t.Fatalf("pass after delete.retention.ms %+v, %v", res, err)
	}
	final := e.manifest()
	if !slices.Equal(segBounds(final), segBounds(before)) {
		t.Fatalf("segment offsets changed: %v -> %v", segBounds(before), segBounds(final))
	}
	expectCompactedRemote(t, e.remoteRecords(final), kl.recs, end, false)

	// Reads through the Manager see the same, from any offset.
	var read []kvw
	for off := final.Segments[0].BaseOffset; off < end; {
		rr, err := e.m.Read(ctx, e.topicID, 0, off, 1<<20, true)
		if err != nil {
			t.Fatal(err)
		}
		data := readAll(t, rr)
		rr.Release()
		next := off
		if err := proto.SplitBatches(data, true, func(b proto.Batch) error {
			next = b.LastOffset() + 1
			return proto.ForEachRecord(b, func(r proto.Record) error {
				if o := b.BaseOffset + int64(r.OffsetDelta); o >= off {
					read = append(read, kvw{off: o, key: string(r.Key), val: string(r.Value), tomb: r.Value == nil})
				}
				return nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		if next <= off {
			t.Fatalf("read at %d: no progress", off)
		}
		off = next
	}
	expectCompactedRemote(t, read, kl.recs, end, false)

	// Once the grace has passed, the sweep deletes the replaced objects
	// and only those.
	e.clock.Advance(time.Hour + time.Second)
	if err := e.m.sweepOrphans(ctx, e.m.part(topicPartition{e.topicID, 0})); err != nil {
		t.Fatal(err)
	}
	got := allKeys(t, e.store)
	want := e.expectedKeys(final) // with the manifest copy
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("objects after the sweep:\n got %v\nwant %v", got, want)
	}
}

// TestCompactRemoteUsesLocalData: records in local segments not yet
// uploaded supersede remote ones; local segments are mapped, not
// rewritten, and stay dirty.
func TestCompactRemoteUsesLocalData(t *testing.T) {
	e, _ := newCompactEnv(t)
	kl := &kvLog{}
	kl.fill(t, e.log, e.clock.Now().UnixMilli(), 40, 10)
	e.start(remoteOn())
	e.waitUploaded(e.log)
	remoteEnd := e.manifest().End()
	// Block further uploads, then overwrite every key locally.
	e.mem.setFailPut(func(key string) error {
		if base, _, kind, ok := parseObjectName(path.Base(key)); ok && kind == KindLog && base >= remoteEnd {
			return errors.New("uploads blocked")
		}
		return nil
	})
	for k := range 10 {
		kl.write(t, e.log, e.clock.Now().UnixMilli(), kvw{key: fmt.Sprintf("key-%d", k), val: "new"})
	}
	for range 10 { // roll: later batches push the overwrites into sealed segments
		kl.write(t, e.log, e.clock.Now().UnixMilli(), kvw{key: "other", val: string(bytes.Repeat([]byte("x"), 500))})
	}
	if e.manifest().End() != remoteEnd {
		t.Fatal("uploads were not blocked")
	}
	res, err := e.m.CompactRemote(context.Background(), e.topicID, 0, storage.CompactOptions{DeleteRetention: time.Hour})
	if err != nil || !res.Cleaned {
		t.Fatalf("pass %+v, %v", res, err)
	}
	if res.CleanedTo != remoteEnd || res.MapEnd <= remoteEnd {
		t.Fatalf("map end %d, cleaned to %d; remote end %d", res.MapEnd, res.CleanedTo, remoteEnd)
	}
	// Every key was overwritten at a later local offset: no record of the
	// remote tier survives (segments keep their last batches, emptied).
	if recs := e.remoteRecords(e.manifest()); len(recs) != 0 {
		t.Fatalf("records survived although overwritten at later local offsets: %v", recs)
	}
	if fd, _, ok := e.log.RemoteCleanerCheckpoint(); !ok || fd != remoteEnd {
		t.Fatalf("checkpoint %d %v, want %d", fd, ok, remoteEnd)
	}
}

// TestCompactRemoteFailedCommit: a commit that fails before or after it
// applied leaves a manifest whose every segment's objects exist, and the
// next pass completes the work.
func TestCompactRemoteFailedCommit(t *testing.T) {
	for _, after := range []bool{false, true} {
		t.Run(fmt.Sprint("after=", after), func(t *testing.T) {
			e, rm := newCompactEnv(t)
			kl := &kvLog{}
			kl.fill(t, e.log, e.clock.Now().UnixMilli(), 40, 8)
			e.start(remoteOn())
			e.waitUploaded(e.log)
			end := e.manifest().End()
			fail := func([]SegmentReplacement) error { return errors.New("quorum unavailable") }
			if after {
				rm.afterReplace = fail
			} else {
				rm.beforeReplace = fail
			}
			ctx := context.Background()
			opts := storage.CompactOptions{DeleteRetention: time.Hour}
			if _, err := e.m.CompactRemote(ctx, e.topicID, 0, opts); err == nil {
				t.Fatal("pass with a failing commit succeeded")
			}
			if _, _, ok := e.log.RemoteCleanerCheckpoint(); ok {
				t.Fatal("checkpoint written by a failed pass")
			}
			man := e.manifest()
			for _, k := range e.expectedKeys(man) {
				if _, err := e.store.Head(ctx, k); err != nil {
					t.Fatalf("manifest references missing object %s", k)
				}
			}
			rm.beforeReplace, rm.afterReplace = nil, nil
			res, err := e.m.CompactRemote(ctx, e.topicID, 0, opts)
			if err != nil || !res.Cleaned {
				t.Fatalf("retry %+v, %v", res, err)
			}
			expectCompactedRemote(t, e.remoteRecords(e.manifest()), kl.recs, end, true)
		})
	}
}

// TestCompactRemoteNoKeyDisappears reads the remote tier over and over
// while passes run: the table the records make is always the written one.
func TestCompactRemoteNoKeyDisappears(t *testing.T) {
	e, _ := newCompactEnv(t)
	kl := &kvLog{}
	kl.fill(t, e.log, e.clock.Now().UnixMilli(), 60, 15)
	e.start(remoteOn())
	e.waitUploaded(e.log)
	end := e.manifest().End()
	want := table(kl.recs, end)
	ctx := context.Background()

	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int32
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			var recs []kvw
			for off := int64(0); off < end; {
				rr, err := e.m.Read(ctx, e.topicID, 0, off, 1<<20, true)
				if err != nil {
					t.Errorf("read %d: %v", off, err)
					return
				}
				data := readAll(t, rr)
				rr.Release()
				next := off
				_ = proto.SplitBatches(data, true, func(b proto.Batch) error {
					next = b.LastOffset() + 1
					return proto.ForEachRecord(b, func(r proto.Record) error {
						if o := b.BaseOffset + int64(r.OffsetDelta); o >= off {
							recs = append(recs, kvw{off: o, key: string(r.Key), val: string(r.Value), tomb: r.Value == nil})
						}
						return nil
					})
				})
				off = next
			}
			if got := table(recs, end); !mapsEqualKV(got, want) {
				t.Errorf("a reader saw the table %v, want %v", got, want)
				return
			}
			reads.Add(1)
		}
	}()
	opts := storage.CompactOptions{DeleteRetention: time.Minute}
	for i := range 3 {
		waitFor(t, "a read", func() bool { return reads.Load() > int32(i) })
		if _, err := e.m.CompactRemote(ctx, e.topicID, 0, opts); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Minute + time.Second)
	}
	n := reads.Load()
	waitFor(t, "reads after the last pass", func() bool { return reads.Load() > n+1 })
	stop.Store(true)
	wg.Wait()
	expectCompactedRemote(t, e.remoteRecords(e.manifest()), kl.recs, end, false)
}

func mapsEqualKV(a, b map[string]kvw) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestCompactRemoteMinLagAndRatio(t *testing.T) {
	e, _ := newCompactEnv(t)
	kl := &kvLog{}
	kl.fill(t, e.log, e.clock.Now().UnixMilli(), 40, 8)
	e.start(remoteOn())
	e.waitUploaded(e.log)
	ctx := context.Background()
	// Every segment is younger than the lag: nothing to do.
	res, err := e.m.CompactRemote(ctx, e.topicID, 0, storage.CompactOptions{MinCompactionLag: time.Hour})
	if err != nil || res.Cleaned {
		t.Fatalf("pass within min.compaction.lag.ms: %+v, %v", res, err)
	}
	// A ratio that cannot be exceeded: nothing to do.
	res, err = e.m.CompactRemote(ctx, e.topicID, 0, storage.CompactOptions{MinCleanableDirtyRatio: 1})
	if err != nil || res.Cleaned || res.DirtyRatio != 1 {
		t.Fatalf("pass below the dirty ratio: %+v, %v", res, err)
	}
	// A partition this Manager does not have (not the leader): nothing.
	res, err = e.m.CompactRemote(ctx, uuid.New(), 0, storage.CompactOptions{})
	if err != nil || res.Cleaned {
		t.Fatalf("unknown partition: %+v, %v", res, err)
	}
	// Without SegmentReplacer the store cannot compact.
	e2 := newEnv(t, withMemStore())
	e2.start(remoteOn())
	if _, err := e2.m.CompactRemote(ctx, e2.topicID, 0, storage.CompactOptions{}); !errors.Is(err, ErrNoReplacer) {
		t.Fatalf("without a replacer: %v", err)
	}
}

func TestManifestWithReplaced(t *testing.T) {
	seg := func(id string, base, last int64) RemoteSegment {
		return RemoteSegment{ID: id, BaseOffset: base, LastOffset: last, Size: 10, IndexSize: 8, TimeIndexSize: 12}
	}
	m := Manifest{LogStartOffset: 0, Segments: []RemoteSegment{seg("a", 0, 9), seg("b", 10, 19), seg("c", 20, 29)}}
	got, n, err := m.WithReplaced([]SegmentReplacement{{"b", seg("b2", 10, 19)}, {"gone", seg("g2", 30, 39)}})
	if err != nil || n != 1 || got.Segments[1].ID != "b2" || m.Segments[1].ID != "b" || got.Validate() != nil {
		t.Fatalf("replace: %+v %d %v (original %+v)", got, n, err, m)
	}
	if _, n, err := got.WithReplaced([]SegmentReplacement{{"b", seg("b2", 10, 19)}}); err != nil || n != 0 {
		t.Fatalf("retry: %d %v", n, err)
	}
	for _, bad := range [][]SegmentReplacement{
		{{"b", seg("b2", 10, 18)}},
		{{"b", seg("b2", 11, 19)}},
		{{"b", seg("c", 10, 19)}},
		{{"b", seg("b", 10, 19)}},
		{{"a", seg("n", 0, 9)}, {"b", seg("n", 10, 19)}},
		{{"a", seg("b", 0, 9)}, {"b", seg("b2", 10, 19)}},
		{{"", seg("n", 0, 9)}},
		{},
	} {
		if _, _, err := m.WithReplaced(bad); err == nil {
			t.Errorf("WithReplaced(%+v) accepted", bad)
		}
	}
}
