package tiering

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/strata-broker/strata/proto"
	"github.com/strata-broker/strata/storage"
)

// watchDeletes fails the test if an object is deleted while its segment is
// still in the committed manifest.
func (e *env) watchDeletes() func() []string {
	var mu sync.Mutex
	var bad []string
	e.mem.mu.Lock()
	e.mem.onDel = func(keys []string) {
		man := e.manifest()
		for _, k := range keys {
			i := strings.LastIndexByte(k, '/')
			if _, id, _, ok := parseObjectName(k[i+1:]); ok && man.Contains(id) {
				mu.Lock()
				bad = append(bad, k)
				mu.Unlock()
			}
		}
	}
	e.mem.mu.Unlock()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return bad
	}
}

// tiered produces data in three age groups (3 h, 1 h and 0 h old), uploads
// it and drops the local copies.
func (e *env) tiered(cfg PartitionConfig) Manifest {
	e.t.Helper()
	now := e.clock.Now().UnixMilli()
	for _, age := range []int64{3, 1, 0} {
		produce(e.t, e.log, 20, 5, now-age*3600_000, 20)
	}
	e.start(cfg)
	e.waitUploaded(e.log)
	if _, err := e.log.EnforceRetention(); err != nil {
		e.t.Fatal(err)
	}
	return e.manifest()
}

func TestRemoteRetentionByTime(t *testing.T) {
	e := newEnv(t, withMemStore())
	cfg := remoteOn()
	man0 := e.tiered(cfg)
	badDeletes := e.watchDeletes()

	cfg.RetentionMs = 2 * 3600_000
	e.m.AddPartition("t", e.topicID, 0, e.log, cfg)
	e.m.retentionPass(context.Background())

	limit := e.clock.Now().UnixMilli() - cfg.RetentionMs
	k := 0
	for k < len(man0.Segments) && man0.Segments[k].MaxTimestamp < limit {
		k++
	}
	if k == 0 || k == len(man0.Segments) {
		t.Fatalf("test data: %d of %d segments expired", k, len(man0.Segments))
	}
	man := e.manifest()
	newStart := man0.Segments[k-1].LastOffset + 1
	if len(man.Segments) != len(man0.Segments)-k || man.Segments[0].ID != man0.Segments[k].ID || man.LogStartOffset != newStart {
		t.Fatalf("after retention: %d segments from %d, log start %d; want %d from %d", len(man.Segments), man.Segments[0].BaseOffset, man.LogStartOffset, len(man0.Segments)-k, newStart)
	}
	if got := e.log.LogStartOffset(); got != newStart {
		t.Fatalf("log start %d, want %d", got, newStart)
	}
	if got, want := allKeys(t, e.store), e.expectedKeys(man); !slices.Equal(got, want) {
		t.Fatalf("bucket holds\n%v\nwant\n%v", got, want)
	}
	if bad := badDeletes(); len(bad) > 0 {
		t.Fatalf("objects deleted before their manifest removal: %v", bad)
	}
	if _, err := e.m.Read(context.Background(), e.topicID, 0, newStart-1, 1000, true); !errors.Is(err, storage.ErrOffsetOutOfRange) {
		t.Fatalf("read below the new log start: %v", err)
	}
	if _, err := e.m.Read(context.Background(), e.topicID, 0, newStart, 1000, true); err != nil {
		t.Fatalf("read at the new log start: %v", err)
	}
	// Nothing more expires: another pass changes nothing.
	removes := e.mans.removes.Load()
	e.m.retentionPass(context.Background())
	if e.mans.removes.Load() != removes {
		t.Fatal("an idle retention pass changed the manifest")
	}
}

func TestRemoteRetentionByBytes(t *testing.T) {
	e := newEnv(t, withMemStore())
	cfg := remoteOn()
	man0 := e.tiered(cfg)
	badDeletes := e.watchDeletes()
	localOnly := e.log.Size() // only the active segment is left locally
	total0 := man0.Bytes() + localOnly

	cfg.RetentionBytes = total0 / 2
	e.m.AddPartition("t", e.topicID, 0, e.log, cfg)
	e.m.retentionPass(context.Background())

	man := e.manifest()
	total := man.Bytes() + e.log.Size()
	if len(man.Segments) >= len(man0.Segments) {
		t.Fatal("nothing deleted")
	}
	if total < cfg.RetentionBytes {
		t.Fatalf("deleted down to %d bytes, below retention.bytes %d", total, cfg.RetentionBytes)
	}
	if total-man.Segments[0].Size >= cfg.RetentionBytes {
		t.Fatalf("%d bytes left: the oldest segment (%d) could go too", total, man.Segments[0].Size)
	}
	if e.log.LogStartOffset() != man.Segments[0].BaseOffset || man.LogStartOffset != man.Segments[0].BaseOffset {
		t.Fatalf("log start: local %d, manifest %d, first segment %d", e.log.LogStartOffset(), man.LogStartOffset, man.Segments[0].BaseOffset)
	}
	if got, want := allKeys(t, e.store), e.expectedKeys(man); !slices.Equal(got, want) {
		t.Fatalf("bucket holds\n%v\nwant\n%v", got, want)
	}
	if bad := badDeletes(); len(bad) > 0 {
		t.Fatalf("objects deleted before their manifest removal: %v", bad)
	}
}

// Total retention also covers data that never made it to the remote tier.
func TestRetentionCoversLocalOnlyData(t *testing.T) {
	e := newEnv(t, withMemStore())
	e.mans.setHooks(func(RemoteSegment) error { return errors.New("quorum unavailable") }, nil)
	old := e.clock.Now().UnixMilli() - 5*3600_000
	produce(t, e.log, 30, 5, old, 20)
	produce(t, e.log, 30, 5, e.clock.Now().UnixMilli(), 20)
	cfg := remoteOn()
	cfg.RetentionMs = 3600_000
	e.start(cfg)
	e.m.retentionPass(context.Background())
	start := e.log.LogStartOffset()
	if start == 0 {
		t.Fatal("expired local-only data kept")
	}
	e.mans.setHooks(nil, nil)
	e.waitUploaded(e.log)
	e.m.retentionPass(context.Background()) // records the log start remotely
	man := e.manifest()
	if err := man.Validate(); err != nil {
		t.Fatal(err)
	}
	if man.Segments[0].BaseOffset > start || man.Segments[0].LastOffset < start || man.LogStartOffset != start {
		t.Fatalf("remote tier starts at %d (log start %d) for local log start %d", man.Segments[0].BaseOffset, man.LogStartOffset, start)
	}
}

func TestDeleteRecordsBefore(t *testing.T) {
	e := newEnv(t, withMemStore())
	man0 := e.tiered(remoteOn())
	badDeletes := e.watchDeletes()
	off := man0.Segments[2].BaseOffset + 3
	ctx := context.Background()
	if err := e.m.DeleteRecordsBefore(ctx, e.topicID, 0, off); err != nil {
		t.Fatal(err)
	}
	man := e.manifest()
	if man.LogStartOffset != off || man.Segments[0].ID != man0.Segments[2].ID || e.log.LogStartOffset() != off {
		t.Fatalf("manifest log start %d first %d, log start %d; want %d", man.LogStartOffset, man.Segments[0].BaseOffset, e.log.LogStartOffset(), off)
	}
	if got, want := allKeys(t, e.store), e.expectedKeys(man); !slices.Equal(got, want) {
		t.Fatalf("bucket holds\n%v\nwant\n%v", got, want)
	}
	if _, err := e.m.Read(ctx, e.topicID, 0, off-1, 100, true); !errors.Is(err, storage.ErrOffsetOutOfRange) {
		t.Fatalf("read below: %v", err)
	}
	rr, err := e.m.Read(ctx, e.topicID, 0, off, 100, true)
	if err != nil || rr.Len == 0 {
		t.Fatalf("read at the new start: %v", err)
	}
	rr.Release()
	// Lower or equal offsets change nothing; past the high watermark fails.
	if err := e.m.DeleteRecordsBefore(ctx, e.topicID, 0, off-5); err != nil {
		t.Fatal(err)
	}
	if err := e.m.DeleteRecordsBefore(ctx, e.topicID, 0, e.log.HighWatermark()+1); !errors.Is(err, storage.ErrOffsetOutOfRange) {
		t.Fatalf("past the high watermark: %v", err)
	}
	if bad := badDeletes(); len(bad) > 0 {
		t.Fatalf("objects deleted before their manifest removal: %v", bad)
	}
}

func TestDeleteTopic(t *testing.T) {
	e := newEnv(t)
	e.tiered(remoteOn())
	l1 := e.openLog(t.TempDir(), 2048)
	produce(t, l1, 30, 5, 1000, 20)
	e.m.AddPartition("t", e.topicID, 1, l1, remoteOn())
	waitFor(t, "partition 1 uploads", func() bool {
		s := l1.SealedSegments()
		return l1.RemoteEnd() >= s[len(s)-1].NextOffset
	})
	// Another topic's objects stay.
	other := uuid.New()
	ctx := context.Background()
	if err := e.store.Put(ctx, ManifestKey("c1", other, 0), strings.NewReader("{}"), 2); err != nil {
		t.Fatal(err)
	}
	// An orphan (an upload that never committed) goes too.
	orphan := KeyFor("c1", e.topicID, 0, RemoteSegment{ID: uuid.NewString(), BaseOffset: 5}, KindLog)
	if err := e.store.Put(ctx, orphan, strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	// Something cached.
	rr, err := e.m.Read(ctx, e.topicID, 0, 0, 100, true)
	if err != nil {
		t.Fatal(err)
	}
	rr.Release()
	if e.m.cache.size() == 0 {
		t.Fatal("nothing cached")
	}

	if err := e.m.DeleteTopic(ctx, e.topicID, 2); err != nil {
		t.Fatal(err)
	}
	if got := allKeys(t, e.store); !slices.Equal(got, []string{ManifestKey("c1", other, 0)}) {
		t.Fatalf("after DeleteTopic the bucket holds %v", got)
	}
	for p := int32(0); p < 2; p++ {
		if man := e.mans.Manifest(e.topicID, p); len(man.Segments) != 0 {
			t.Fatalf("partition %d manifest still has %d segments", p, len(man.Segments))
		}
	}
	if e.m.cache.size() != 0 {
		t.Fatal("deleted topic's chunks still cached")
	}
	// Uploads stopped: more sealed data is not uploaded.
	produce(t, e.log, 20, 5, 1000, 20)
	e.m.dispatch()
	if keys := allKeys(t, e.store); len(keys) != 1 {
		t.Fatalf("uploads after DeleteTopic: %v", keys)
	}
}

func TestOrphanSweepKeepsForeignAndCommitted(t *testing.T) {
	e := newEnv(t, withMemStore())
	man := e.tiered(remoteOn())
	ctx := context.Background()
	prefix := PartitionPrefix("c1", e.topicID, 0)
	foreign := []string{prefix + "README", prefix + "sub/00000000000000000000-x.log"}
	for _, k := range foreign {
		if err := e.store.Put(ctx, k, strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	orphan := KeyFor("c1", e.topicID, 0, RemoteSegment{ID: "dead", BaseOffset: 0}, KindIndex)
	if err := e.store.Put(ctx, orphan, strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	e.m.sweepPass(ctx)
	want := append(e.expectedKeys(man), foreign...)
	slices.Sort(want)
	if got := allKeys(t, e.store); !slices.Equal(got, want) {
		t.Fatalf("bucket holds\n%v\nwant\n%v", got, want)
	}
}

// After delete records empties the manifest with a log start inside a
// local segment not yet uploaded, that segment is uploaded from the batch
// at the log start, which a manifest store as strict as the metadata FSM
// (first segment at or above the log start) accepts.
func TestUploadAfterDeleteRecordsInsideLocalSegment(t *testing.T) {
	e := newEnv(t, withMemStore())
	produce(t, e.log, 30, 5, 1000, 20)
	e.start(remoteOn())
	e.waitUploaded(e.log)
	var blocked atomic.Bool
	blocked.Store(true)
	e.mans.setHooks(func(seg RemoteSegment) error {
		if blocked.Load() {
			return errors.New("quorum unavailable")
		}
		if man := e.manifest(); len(man.Segments) == 0 && seg.BaseOffset < man.LogStartOffset {
			return errors.New("base offset below the remote log start")
		}
		return nil
	}, nil)
	end0 := e.manifest().End()
	produce(t, e.log, 30, 5, 1000, 20)
	_, bps := readLocal(t, e.log)
	var off int64 = -1
	for i, b := range bps {
		if b.base > end0 && bps[i-1].base >= end0 {
			off = b.base // the second batch of the first segment not uploaded
			break
		}
	}
	ctx := context.Background()
	if err := e.m.DeleteRecordsBefore(ctx, e.topicID, 0, off); err != nil {
		t.Fatal(err)
	}
	if man := e.manifest(); len(man.Segments) != 0 || man.LogStartOffset != off || e.log.LogStartOffset() != off {
		t.Fatalf("after delete records: %d segments, remote log start %d, local %d; want none, %d", len(man.Segments), man.LogStartOffset, e.log.LogStartOffset(), off)
	}
	blocked.Store(false)
	e.waitUploaded(e.log)
	man := e.manifest()
	if man.Segments[0].BaseOffset != off {
		t.Fatalf("first remote segment starts at %d, want %d", man.Segments[0].BaseOffset, off)
	}
	rr, err := e.m.Read(ctx, e.topicID, 0, off, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	if b, err := proto.ParseBatchHeader(readAll(t, rr)); err != nil || b.BaseOffset != off {
		t.Fatalf("read at the log start: batch %d, %v", b.BaseOffset, err)
	}
}
