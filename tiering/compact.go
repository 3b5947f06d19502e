package tiering

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/strata-broker/strata/storage"
)

// Compaction of remote segments: a compacted topic may be tiered (Apache
// Kafka refuses it). A pass runs on the partition's leader (the only
// broker whose Manager has the partition) and treats the remote segments
// followed by the local sealed segments past the remote end as one log:
//
//  1. Plan. The remote cleaner checkpoint (storage.Log's
//     RemoteCleanerCheckpoint, a file in the partition directory) is the
//     first dirty offset: everything below it was deduplicated against
//     everything below it by an earlier pass. A pass is due when the dirty
//     bytes (remote segments at or past the checkpoint, plus the local
//     segments not yet uploaded) exceed min.cleanable.dirty.ratio of the
//     whole, or a dirty remote segment is older than max.compaction.lag.ms
//     (by its max timestamp), or a kept tombstone's delete horizon has
//     passed. Nothing from the first segment (remote or local) holding a
//     record younger than min.compaction.lag.ms on is touched.
//  2. Map. The key -> latest offset map (storage.SegmentCleaner, the local
//     cleaner's map and rules) is built from the dirty range: remote
//     segments streamed from the store, then local sealed segments (only
//     below the high watermark) past the remote end. It is bounded by
//     CompactOptions.MaxOffsetMapBytes; when it fills, the pass cleans with
//     what it has and the next pass continues from there.
//  3. Rewrite. Every remote segment that starts below the map's end is
//     streamed through the cleaner into a temporary file; one that changes
//     is put under a fresh upload id (.log, rebuilt .index and .timeindex,
//     and copies of its optional objects: the transaction index and the
//     producer snapshot stay valid because control and transactional
//     batches are kept whole and each producer's last batch survives). A
//     rewritten segment keeps its BaseOffset, LastOffset, epochs and max
//     timestamp (retention by time behaves as before): offsets never change
//     and a segment's last batch always stays, possibly empty, so readers'
//     assumptions about contiguity hold whatever was removed inside. There
//     is no merging: a segment is replaced by exactly one segment.
//  4. Commit. The replacements are committed with one manifest change
//     (SegmentReplacer.ReplaceSegments) per group, groups in offset order;
//     a group closes after compactGroupMax segments or a quarter of
//     OrphanGrace, so its objects are committed long before another
//     broker's orphan sweep could take them for orphans (the commit is
//     refused, and the objects left to the sweep, if the group's first put
//     is older than OrphanGrace/2 by then). A failed group ends the pass:
//     a later group never commits before an earlier one, so a tombstone is
//     never removed while an older value of its key that the same pass
//     removes is still visible. Each swap is atomic: a reader sees the old
//     segment or the new one, both holding the latest value of every key.
//  5. Retire. The old objects are no longer referenced; the orphan sweep
//     deletes them (never sooner than its next pass). A reader that read
//     the old manifest keeps reading the old objects meanwhile.
//
// The checkpoint moves to the map's end, or to the remote end if the map
// reached past it (local segments are mapped but not rewritten here: the
// local cleaner does that, and they count as dirty until a pass rewrites
// them as remote segments), only after every group committed.
//
// Cost: a pass downloads the dirty remote segments twice (map, rewrite)
// and every other remote segment below the map's end once, holding one
// segment in a temporary file at a time; it is scheduled by the dirty
// ratio as Kafka's cleaner is.

// SegmentReplacement names a committed segment and the rewritten segment
// (same BaseOffset and LastOffset, fresh ID) that takes its place.
type SegmentReplacement struct {
	OldID   string
	Segment RemoteSegment
}

// SegmentReplacer is what compaction needs of the ManifestStore beyond the
// interface: ReplaceSegments commits replacements in one change, with the
// rules of Manifest.WithReplaced (the broker implements it on the metadata
// quorum). Once it returns nil the change is committed; an error may or may
// not have committed it, and a retry is harmless.
type SegmentReplacer interface {
	ReplaceSegments(ctx context.Context, topicID uuid.UUID, partition int32, reps []SegmentReplacement) error
}

// ErrNoReplacer: the Manager's ManifestStore does not implement
// SegmentReplacer, so remote segments cannot be compacted.
var ErrNoReplacer = errors.New("tiering: manifest store cannot replace segments")

// WithReplaced returns m with the replacements applied, and how many
// applied; m is not modified. A replacement whose old segment is not in m
// is skipped (removed by retention, already replaced: a retry). The new
// segment must be well formed, cover exactly its old segment's offsets,
// and have an id not in m and not repeated; old ids must not repeat.
// Anything else is ErrBadManifest and nothing applies.
func (m Manifest) WithReplaced(reps []SegmentReplacement) (Manifest, int, error) {
	if len(reps) == 0 {
		return m, 0, fmt.Errorf("replace segments: none given: %w", ErrBadManifest)
	}
	at := make(map[string]int, len(m.Segments))
	for i, s := range m.Segments {
		at[s.ID] = i
	}
	olds, news := make(map[string]bool, len(reps)), make(map[string]bool, len(reps))
	for _, r := range reps {
		if r.OldID == "" || olds[r.OldID] || news[r.Segment.ID] || r.Segment.ID == r.OldID {
			return m, 0, fmt.Errorf("replace segment %q by %q: ids not fresh: %w", r.OldID, r.Segment.ID, ErrBadManifest)
		}
		if err := r.Segment.validate(); err != nil {
			return m, 0, err
		}
		olds[r.OldID], news[r.Segment.ID] = true, true
	}
	out := m.Clone()
	n := 0
	for _, r := range reps {
		if olds[r.Segment.ID] {
			return m, 0, fmt.Errorf("replace segment %q by %q, which is replaced too: %w", r.OldID, r.Segment.ID, ErrBadManifest)
		}
		i, ok := at[r.OldID]
		if !ok {
			continue
		}
		old := m.Segments[i]
		if _, dup := at[r.Segment.ID]; dup {
			return m, 0, fmt.Errorf("replace segment %q by %q: id already in the manifest: %w", r.OldID, r.Segment.ID, ErrBadManifest)
		}
		if r.Segment.BaseOffset != old.BaseOffset || r.Segment.LastOffset != old.LastOffset {
			return m, 0, fmt.Errorf("replace segment %q [%d, %d] by %q [%d, %d]: %w", old.ID, old.BaseOffset, old.LastOffset,
				r.Segment.ID, r.Segment.BaseOffset, r.Segment.LastOffset, ErrNotContiguous)
		}
		s := r.Segment
		s.Epochs = slices.Clone(s.Epochs)
		out.Segments[i] = s
		n++
	}
	if n == 0 {
		return m, 0, nil
	}
	return out, n, nil
}

// RemoteCompactResult reports what a remote compaction pass did.
type RemoteCompactResult struct {
	// Cleaned is false when no pass was due (or the Manager does not lead
	// the partition); the fields after MustClean are then zero.
	Cleaned    bool
	DirtyRatio float64
	MustClean  bool
	// FirstDirty is the checkpoint before the pass, CleanedTo after it.
	FirstDirty, CleanedTo int64
	MapEnd                int64 // the offset map covered [FirstDirty, MapEnd)
	// SegmentsRead remote segments were rewritten through the cleaner;
	// SegmentsReplaced of them changed and were swapped in.
	SegmentsRead, SegmentsReplaced                    int
	BytesBefore, BytesAfter                           int64 // of the replaced segments
	RecordsRemoved, TombstonesRemoved, InvalidRecords int64
}

// compactGroupMax bounds the replacements of one manifest change (one Raft
// entry of a few hundred bytes each).
const compactGroupMax = 128

// compacting holds the partitions with a pass running (*partState), so two
// never overlap.
var compacting sync.Map

// StartCompactRemote starts a remote compaction pass of the partition in
// the background if this Manager has it (it leads it) with remote storage
// on and no pass runs for it already; the outcome is logged. It reports
// whether a pass started. The pass ends with the partition (RemovePartition)
// or the Manager.
func (m *Manager) StartCompactRemote(topicID uuid.UUID, partition int32, opts storage.CompactOptions) bool {
	p := m.part(topicPartition{topicID, partition})
	if p == nil {
		return false
	}
	if _, busy := compacting.Load(p); busy {
		return false
	}
	return m.spawn(func() {
		res, err := m.CompactRemote(p.ctx, topicID, partition, opts)
		switch {
		case err != nil && p.ctx.Err() == nil:
			p.logger.Warn("remote compaction failed; will retry", "err", err)
		case res.Cleaned:
			p.logger.Info("remote segments compacted", "dirty_ratio", res.DirtyRatio, "first_dirty", res.FirstDirty,
				"cleaned_to", res.CleanedTo, "segments_read", res.SegmentsRead, "segments_replaced", res.SegmentsReplaced,
				"bytes_before", res.BytesBefore, "bytes_after", res.BytesAfter, "records_removed", res.RecordsRemoved,
				"tombstones_removed", res.TombstonesRemoved)
		}
	})
}

// CompactRemote runs one remote compaction pass of the partition if one is
// due (see the top of this file), and waits for it. It does nothing when
// this Manager does not have the partition, remote storage is off for it,
// or a pass already runs.
func (m *Manager) CompactRemote(ctx context.Context, topicID uuid.UUID, partition int32, opts storage.CompactOptions) (RemoteCompactResult, error) {
	p := m.part(topicPartition{topicID, partition})
	if p == nil {
		return RemoteCompactResult{}, nil
	}
	if _, busy := compacting.LoadOrStore(p, true); busy {
		return RemoteCompactResult{}, nil
	}
	defer compacting.Delete(p)
	log, cfg, removed := p.state()
	if removed || log == nil || !cfg.RemoteEnabled {
		return RemoteCompactResult{}, nil
	}
	repl, ok := m.cfg.Manifests.(SegmentReplacer)
	if !ok {
		return RemoteCompactResult{}, ErrNoReplacer
	}
	if opts.Now.IsZero() {
		opts.Now = m.now()
	}
	pc := &passCtx{m: m, p: p, log: log, repl: repl, opts: opts}
	return pc.run(ctx)
}

// passCtx is the state of one remote compaction pass.
type passCtx struct {
	m    *Manager
	p    *partState
	log  *storage.Log
	repl SegmentReplacer
	opts storage.CompactOptions
	sc   *storage.SegmentCleaner
	res  RemoteCompactResult

	// The group being built: replacements whose objects are put, not yet
	// committed, and when its first object was put.
	group    []SegmentReplacement
	oldSizes map[string]int64 // .log bytes of the group's old segments
	groupAt  time.Time
}

// remotePlan is what a pass may touch.
type remotePlan struct {
	remote     []RemoteSegment         // cleanable remote segments, a prefix of the manifest
	local      []storage.SealedSegment // local sealed segments past the remote end, mapped only
	remoteEnd  int64
	firstDirty int64
	horizon    int64 // earliest delete horizon of a kept tombstone (checkpoint)
	dirty      int64
	clean      int64
}

func (pc *passCtx) plan() (*remotePlan, bool) {
	man := pc.m.cfg.Manifests.Manifest(pc.p.tp.id, pc.p.tp.p)
	if len(man.Segments) == 0 {
		return nil, false
	}
	nowMs := pc.opts.Now.UnixMilli()
	lagMs := pc.opts.MinCompactionLag.Milliseconds()
	young := func(maxTs int64) bool { return lagMs > 0 && maxTs > nowMs-lagMs }
	pl := &remotePlan{remoteEnd: man.End()}
	for _, s := range man.Segments {
		if young(s.MaxTimestamp) {
			break
		}
		pl.remote = append(pl.remote, s)
	}
	if len(pl.remote) == len(man.Segments) {
		for _, s := range pc.log.SealedSegments() {
			if s.NextOffset <= pl.remoteEnd {
				continue
			}
			if young(s.MaxTimestamp) || (len(pl.local) == 0 && s.BaseOffset > pl.remoteEnd) {
				break // too young, or a gap after the remote tier
			}
			pl.local = append(pl.local, s)
		}
	}
	if len(pl.remote) == 0 {
		return nil, false
	}
	start := pl.remote[0].BaseOffset
	fd, horizon, ok := pc.log.RemoteCleanerCheckpoint()
	switch {
	case !ok || fd > pc.log.LogEndOffset():
		// None yet (a new leader), or one the data no longer reaches.
		fd, horizon = start, math.MaxInt64
	case fd < start:
		fd = start // retention removed segments: what is left is dirty
	}
	pl.firstDirty, pl.horizon = fd, horizon
	maxLag := pc.opts.MaxCompactionLag.Milliseconds()
	for _, s := range pl.remote {
		if s.LastOffset < fd {
			pl.clean += s.Size
			continue
		}
		pl.dirty += s.Size
		if maxLag > 0 && s.MaxTimestamp >= 0 && nowMs-s.MaxTimestamp > maxLag {
			pc.res.MustClean = true
		}
	}
	for _, s := range pl.local {
		if s.NextOffset > fd {
			pl.dirty += s.Size
		}
	}
	if t := pl.clean + pl.dirty; t > 0 {
		pc.res.DirtyRatio = float64(pl.dirty) / float64(t)
	}
	if horizon <= nowMs {
		pc.res.MustClean = true // a kept tombstone may go now
	}
	pc.res.FirstDirty, pc.res.CleanedTo = fd, fd
	// With nothing dirty a pass is due only for tombstones whose horizon
	// passed: its map is empty and it removes just those.
	return pl, pc.res.MustClean || (pl.dirty > 0 && pc.res.DirtyRatio > pc.opts.MinCleanableDirtyRatio)
}

func (pc *passCtx) run(ctx context.Context) (RemoteCompactResult, error) {
	pl, due := pc.plan()
	if !due {
		return pc.res, nil
	}
	pc.res.Cleaned = true
	pc.sc = pc.log.NewSegmentCleaner(pc.opts)
	end, err := pc.buildMap(ctx, pl)
	if err != nil {
		return pc.res, err
	}
	pc.res.MapEnd = end
	for _, s := range pl.remote {
		if s.BaseOffset >= end {
			break
		}
		if err := pc.rewrite(ctx, s); err != nil {
			return pc.res, err
		}
		if len(pc.group) >= compactGroupMax || (len(pc.group) > 0 && pc.m.now().Sub(pc.groupAt) > pc.m.cfg.OrphanGrace/4) {
			if err := pc.commit(ctx); err != nil {
				return pc.res, err
			}
		}
	}
	if err := pc.commit(ctx); err != nil {
		return pc.res, err
	}
	// Local segments were mapped, not rewritten: they stay dirty.
	ckpt := max(pl.firstDirty, min(end, pl.remoteEnd))
	if err := pc.log.WriteRemoteCleanerCheckpoint(ckpt, pc.sc.NextHorizon()); err != nil {
		return pc.res, fmt.Errorf("remote cleaner checkpoint: %w", err)
	}
	pc.res.CleanedTo = ckpt
	return pc.res, nil
}

// buildMap maps the dirty range and returns where the map ends.
func (pc *passCtx) buildMap(ctx context.Context, pl *remotePlan) (int64, error) {
	fd := pl.firstDirty
	for _, s := range pl.remote {
		if s.LastOffset < fd {
			continue
		}
		var end int64
		var full bool
		err := pc.stream(ctx, s, func(r io.Reader) error {
			var err error
			end, full, err = pc.sc.AddToMap(r, s.Size, fd)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("offset map from remote segment %s [%d, %d]: %w", s.ID, s.BaseOffset, s.LastOffset, err)
		}
		if full {
			return end, nil
		}
	}
	end := pl.remoteEnd
	for _, s := range pl.local {
		files, err := pc.log.OpenSegment(s.BaseOffset)
		if errors.Is(err, storage.ErrOffsetOutOfRange) {
			return end, nil // deleted or truncated meanwhile: map what we have
		}
		if err != nil {
			return 0, fmt.Errorf("offset map from local segment %d: %w", s.BaseOffset, err)
		}
		me, full, err := pc.sc.AddToMap(io.NewSectionReader(files.Log, 0, files.Size), files.Size, max(fd, pl.remoteEnd))
		files.Release()
		if err != nil {
			return 0, fmt.Errorf("offset map from local segment %d: %w", s.BaseOffset, err)
		}
		if full {
			return me, nil
		}
		end = s.NextOffset
	}
	return end, nil
}

// stream reads a remote segment's .log object from the start.
func (pc *passCtx) stream(ctx context.Context, s RemoteSegment, fn func(io.Reader) error) error {
	key := KeyFor(pc.m.cfg.ClusterID, pc.p.tp.id, pc.p.tp.p, s, KindLog)
	gctx, cancel := context.WithTimeout(ctx, pc.m.timeoutFor(s.Size))
	defer cancel()
	rc, err := pc.m.cfg.Store.Get(gctx, key, 0, s.Size)
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	return fn(rc)
}

// rewrite cleans one remote segment and, if it changed, puts the new
// objects and adds the replacement to the group.
func (pc *passCtx) rewrite(ctx context.Context, s RemoteSegment) error {
	m := pc.m
	tmp, err := os.CreateTemp(m.cfg.CacheDir, "compact-*"+chunkSuffix)
	if err != nil {
		return fmt.Errorf("temporary file: %w", err)
	}
	// Unlinked at once where the OS allows, so a crash leaves nothing (and
	// NewManager removes *.chunk files anyway).
	os.Remove(tmp.Name())
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	var cs storage.CleanedSegment
	err = pc.stream(ctx, s, func(r io.Reader) error {
		var err error
		cs, err = pc.sc.Clean(r, s.Size, s.BaseOffset, tmp)
		return err
	})
	if err != nil {
		if errors.Is(err, storage.ErrCorrupt) {
			err = fmt.Errorf("%w: %w", ErrCorruptRemote, err)
		}
		return fmt.Errorf("clean remote segment %s [%d, %d]: %w", s.ID, s.BaseOffset, s.LastOffset, err)
	}
	pc.res.SegmentsRead++
	pc.res.RecordsRemoved += cs.RecordsRemoved
	pc.res.TombstonesRemoved += cs.TombstonesRemoved
	pc.res.InvalidRecords += cs.InvalidRecords
	if !cs.Changed {
		return nil
	}
	ns := s
	ns.ID = uuid.NewString()
	ns.Epochs = slices.Clone(s.Epochs)
	ns.Size, ns.IndexSize, ns.TimeIndexSize = cs.Size, int64(len(cs.Index)), int64(len(cs.TimeIndex))
	if err := ns.validate(); err != nil {
		return fmt.Errorf("cleaned segment %d: %w", s.BaseOffset, err)
	}
	if len(pc.group) == 0 {
		pc.groupAt = m.now()
	}
	tp := pc.p.tp
	for _, kind := range ns.Kinds() {
		var body io.ReaderAt
		var size int64
		switch kind {
		case KindLog:
			body, size = tmp, cs.Size
		case KindIndex:
			body, size = bytes.NewReader(cs.Index), int64(len(cs.Index))
		case KindTimeIndex:
			body, size = bytes.NewReader(cs.TimeIndex), int64(len(cs.TimeIndex))
		default:
			// Optional objects (transaction index, producer snapshot) stay
			// valid as they are: copied under the new id.
			key := KeyFor(m.cfg.ClusterID, tp.id, tp.p, s, kind)
			b, err := pc.getObject(ctx, key)
			if err != nil {
				return err
			}
			if want := optionalSize(s, kind); int64(len(b)) != want {
				return fmt.Errorf("get %s: %d bytes, manifest says %d: %w", key, len(b), want, ErrCorruptRemote)
			}
			body, size = bytes.NewReader(b), int64(len(b))
		}
		key := KeyFor(m.cfg.ClusterID, tp.id, tp.p, ns, kind)
		if err := m.put(ctx, key, body, size); err != nil {
			return fmt.Errorf("upload %s: %w", key, err)
		}
		m.met.uploadBytes.Add(ctx, size)
	}
	pc.group = append(pc.group, SegmentReplacement{OldID: s.ID, Segment: ns})
	if pc.oldSizes == nil {
		pc.oldSizes = make(map[string]int64)
	}
	pc.oldSizes[s.ID] = s.Size
	return nil
}

// optionalSize is the manifest's size of an optional object.
func optionalSize(s RemoteSegment, kind ObjectKind) int64 {
	switch kind {
	case KindTxnIndex:
		return s.TxnIndexSize
	case KindProducerSnapshot:
		return s.ProducerSnapshotSize
	}
	return -1
}

func (pc *passCtx) getObject(ctx context.Context, key string) ([]byte, error) {
	gctx, cancel := context.WithTimeout(ctx, pc.m.tune.minTimeout)
	defer cancel()
	rc, err := pc.m.cfg.Store.Get(gctx, key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return b, nil
}

// commit swaps the group's segments into the manifest in one change.
func (pc *passCtx) commit(ctx context.Context) error {
	if len(pc.group) == 0 {
		return nil
	}
	m, p := pc.m, pc.p
	group, sizes := pc.group, pc.oldSizes
	pc.group, pc.oldSizes = nil, nil
	p.commitMu.Lock()
	defer p.commitMu.Unlock()
	if _, _, removed := p.state(); removed || ctx.Err() != nil {
		return fmt.Errorf("remote compaction stopped: %w", orErr(ctx.Err(), context.Canceled))
	}
	if age := m.now().Sub(pc.groupAt); age > m.cfg.OrphanGrace/2 {
		// Another broker's sweep may have taken these objects for
		// orphans: committing them could reference missing objects.
		return fmt.Errorf("remote compaction: %d rewritten segments took %v to put, over half the orphan grace %v; left to the orphan sweep",
			len(group), age, m.cfg.OrphanGrace)
	}
	man := m.cfg.Manifests.Manifest(p.tp.id, p.tp.p)
	next, n, err := man.WithReplaced(group)
	if err != nil {
		return fmt.Errorf("remote compaction: %w", err)
	}
	if n == 0 {
		return nil // every old segment left the manifest meanwhile (retention)
	}
	p.mu.Lock()
	p.copyDirty = true
	p.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, m.cfg.OrphanGrace/4)
	err = pc.repl.ReplaceSegments(cctx, p.tp.id, p.tp.p, group)
	cancel()
	if err != nil {
		// Maybe committed, maybe not: either way every offset is covered
		// by objects that exist; unreferenced ones go with the sweep.
		return fmt.Errorf("commit %d rewritten segments: %w", len(group), err)
	}
	pc.res.SegmentsReplaced += n
	old := make([]string, 0, n)
	for _, r := range group {
		if next.Contains(r.Segment.ID) {
			old = append(old, r.OldID)
			pc.res.BytesBefore += sizes[r.OldID]
			pc.res.BytesAfter += r.Segment.Size
		}
	}
	p.logger.Debug("rewritten remote segments committed", "segments", n)
	if err := m.writeManifestCopy(ctx, p); err != nil {
		p.logger.Warn("manifest copy not written; will retry", "err", err)
	}
	// Readers that hold the old manifest download the old objects, which
	// the orphan sweep keeps for OrphanGrace from now: only the cache is
	// freed now.
	now := m.now()
	p.mu.Lock()
	if p.retired == nil {
		p.retired = make(map[string]time.Time, len(old))
	}
	for _, id := range old {
		p.retired[id] = now
	}
	p.mu.Unlock()
	m.forget(old)
	return nil
}

// orErr returns err, or def when err is nil.
func orErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}
