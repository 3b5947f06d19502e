package tiering

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/strata-broker/strata/storage"
)

// errGap: the oldest local segment that is not in the remote tier starts
// past the remote end while the offsets between are still live. Uploading
// it would leave a hole; the partition waits (its local data stays) and
// the condition is logged.
var errGap = errors.New("tiering: local log does not continue the remote tier")

// pendingUpload is an upload whose objects are (being) put but whose
// manifest commit has not succeeded. A retry reuses its id and skips the
// objects already put; the orphan sweep leaves its objects alone.
type pendingUpload struct {
	seg      RemoteSegment
	srcBase  int64 // base offset of the local segment it comes from
	cut      cutAt
	cutPos   int64 // byte position in the local file where seg starts
	index    []byte
	tindex   []byte
	txnidx   []byte // empty: nothing aborted in the uploaded range
	snap     []byte // nil: no producer snapshot to upload
	put      [len(allKinds)]bool
	srcBytes int64
	putAt    time.Time // when the objects marked in put were put
}

// uploadLoop hands partitions with sealed segments to upload jobs, at most
// UploadConcurrency at a time and one per partition (a partition's
// segments must be committed in order). It wakes on a timer, when a job
// ends and when a partition is added.
func (m *Manager) uploadLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
		}
		wait := m.tune.scanInterval
		if next := m.dispatch(); !next.IsZero() {
			wait = max(min(wait, time.Until(next)), time.Millisecond)
		}
		t.Reset(wait)
	}
}

// dispatch starts jobs for partitions with work and free slots. It returns
// the earliest time a partition in backoff may run again (zero if none).
func (m *Manager) dispatch() (earliest time.Time) {
	now := time.Now()
	for _, p := range m.partitions() { // map order: no partition is always first
		p.mu.Lock()
		if p.removed || p.busy || p.log == nil || !p.cfg.RemoteEnabled {
			p.mu.Unlock()
			continue
		}
		if now.Before(p.retryAt) {
			if earliest.IsZero() || p.retryAt.Before(earliest) {
				earliest = p.retryAt
			}
			p.mu.Unlock()
			continue
		}
		log, dirty, pending := p.log, p.copyDirty, p.pending != nil
		p.mu.Unlock()
		if !dirty && !pending && !hasUploadWork(log) {
			continue
		}
		select {
		case m.sem <- struct{}{}:
		default:
			return earliest // all slots taken; a job ending wakes the loop
		}
		done := make(chan struct{})
		p.mu.Lock()
		p.busy, p.jobDone = true, done
		p.mu.Unlock()
		if !m.spawn(func() { m.uploadJob(p, done) }) {
			m.endJob(p, done)
			return earliest
		}
	}
	return earliest
}

// hasUploadWork: an uploadable segment ends past what the log knows is
// remote.
func hasUploadWork(log *storage.Log) bool {
	sealed := uploadable(log)
	return len(sealed) > 0 && sealed[len(sealed)-1].NextOffset > log.RemoteEnd()
}

// uploadable is the sealed segments wholly below the last stable offset, as
// Kafka uploads only below it: a segment holding part of a transaction not
// yet decided waits. So everything remote is stable: read_committed reads
// of it need no LSO bound, and every transaction begun in a remote segment
// ended at a marker below the LSO, so the transaction indexes of the
// segments from a fetch offset on (remote, then local) list every abort
// that overlaps it.
func uploadable(log *storage.Log) []storage.SealedSegment {
	sealed := log.SealedSegments()
	lso := log.LastStableOffset()
	n := len(sealed)
	for n > 0 && sealed[n-1].NextOffset > lso {
		n--
	}
	return sealed[:n]
}

func (m *Manager) endJob(p *partState, done chan struct{}) {
	<-m.sem
	p.mu.Lock()
	p.busy, p.jobDone = false, nil
	p.mu.Unlock()
	close(done)
}

// uploadJob moves the partition one step on (one segment) and schedules
// the next attempt: at once after progress, at the next scan when there was
// nothing to do, after a backoff after a failure. Failures never give up: the local copy stays until a later
// attempt commits the upload.
func (m *Manager) uploadJob(p *partState, done chan struct{}) {
	defer m.wake()
	defer m.endJob(p, done)
	progressed, err := m.uploadStep(p)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		p.failures, p.retryAt = 0, time.Time{}
		if !progressed {
			// Nothing to do yet (waiting for retention, say): look again
			// at the next scan rather than spin.
			p.retryAt = time.Now().Add(m.tune.scanInterval)
		}
		return
	}
	if p.ctx.Err() != nil {
		return // removed or stopping: not a failure
	}
	if progressed {
		p.failures = 0
	}
	p.failures++
	d := m.backoff(p.failures)
	p.retryAt = time.Now().Add(d)
	p.logger.Warn("upload failed; will retry", "attempt", p.failures, "retry_in", d, "err", err)
}

// backoff is exponential from backoffBase, capped at backoffMax, with
// jitter over its upper half so partitions failing together (the store is
// down) do not retry in lockstep.
func (m *Manager) backoff(failures int) time.Duration {
	d := m.tune.backoffMax
	if failures < 30 {
		if b := m.tune.backoffBase << (failures - 1); b > 0 && b < d {
			d = b
		}
	}
	return d/2 + rand.N(d/2+1)
}

// uploadStep: refresh a stale bucket copy of the manifest, tell the log
// what is already remote, then upload the next segment after the manifest's
// end, if any.
func (m *Manager) uploadStep(p *partState) (progressed bool, err error) {
	ctx := p.ctx
	log, cfg, removed := p.state()
	if removed || log == nil || !cfg.RemoteEnabled {
		return false, nil
	}
	p.mu.Lock()
	dirty := p.copyDirty
	p.mu.Unlock()
	if dirty {
		p.commitMu.Lock()
		err := m.writeManifestCopy(ctx, p)
		p.commitMu.Unlock()
		if err != nil {
			return false, err
		}
	}

	man := m.cfg.Manifests.Manifest(p.tp.id, p.tp.p)
	sealed := uploadable(log)
	hasSegs, end := len(man.Segments) > 0, man.End()
	i := 0
	if hasSegs {
		// Segments uploaded before (a restart, a lost response): only the
		// log needs telling.
		remoteEnd := int64(-1)
		for i < len(sealed) && sealed[i].NextOffset <= end {
			remoteEnd = sealed[i].NextOffset
			i++
		}
		if remoteEnd > log.RemoteEnd() {
			log.SetRemoteEnd(remoteEnd)
		}
	}
	// Wholly below the log start: deleted data, nothing to keep.
	logStart := log.LogStartOffset()
	for i < len(sealed) && sealed[i].NextOffset <= logStart {
		i++
	}
	if i == len(sealed) {
		p.mu.Lock()
		p.pending = nil
		p.mu.Unlock()
		return false, nil
	}
	cand := sealed[i]
	c := cutAt{offset: cand.BaseOffset}
	if hasSegs {
		if cand.BaseOffset > end {
			if end <= logStart {
				// Every remote segment is below the log start: retention
				// removes them, and the remote tier restarts with cand.
				return false, nil
			}
			return false, fmt.Errorf("segment %d: remote end %d: %w", cand.BaseOffset, end, errGap)
		}
		// Usually end == base. A segment straddling the remote end (the
		// previous leader rolled at other offsets) is uploaded from there,
		// which must be a batch boundary.
		c = cutAt{offset: end, exact: true}
	} else if ls := max(logStart, man.LogStartOffset); ls > cand.BaseOffset {
		// The first segment of an empty manifest straddles the log start
		// (delete records, retention): upload it from the batch holding
		// the log start, not the deleted batches before.
		c = cutAt{offset: ls}
	}
	return m.uploadSegment(ctx, p, log, cand, c)
}

// cutAt says where in a local segment an upload starts: at the batch
// holding offset, which must start exactly there when exact.
type cutAt struct {
	offset int64
	exact  bool
}

// uploadSegment puts the segment's objects under a fresh upload id (or
// the pending one of an earlier attempt), commits it to the manifest,
// refreshes the bucket copy and only then lets the log drop it locally.
func (m *Manager) uploadSegment(ctx context.Context, p *partState, log *storage.Log, cand storage.SealedSegment, cut cutAt) (bool, error) {
	files, err := log.OpenSegment(cand.BaseOffset)
	if err != nil {
		if errors.Is(err, storage.ErrOffsetOutOfRange) {
			return false, nil // deleted meanwhile (delete records); replan next time
		}
		return false, fmt.Errorf("open segment %d: %w", cand.BaseOffset, err)
	}
	defer files.Release()

	p.mu.Lock()
	pu := p.pending
	if pu != nil && (pu.srcBase != cand.BaseOffset || pu.cut != cut || pu.srcBytes != files.Size) {
		pu = nil // planned for another segment: its objects are orphans now
	}
	p.mu.Unlock()
	if pu == nil {
		if pu, err = planUpload(files, cand, cut); err != nil {
			return false, err
		}
	}
	if now := m.now(); pu.putAt.IsZero() || now.Sub(pu.putAt) > m.cfg.OrphanGrace/2 {
		// After a long outage another broker's sweep may have taken our
		// objects for orphans: put them again rather than commit a segment
		// whose objects might be gone.
		pu.put = [len(allKinds)]bool{}
		pu.putAt = now
	}
	p.mu.Lock()
	p.pending = pu
	p.mu.Unlock()

	seg := pu.seg
	for k, kind := range allKinds {
		if pu.put[k] {
			continue
		}
		var body io.ReaderAt
		var size int64
		switch kind {
		case KindLog:
			body, size = io.NewSectionReader(files.Log, pu.cutPos, seg.Size), seg.Size
		case KindIndex:
			body, size = bytes.NewReader(pu.index), int64(len(pu.index))
		case KindTimeIndex:
			body, size = bytes.NewReader(pu.tindex), int64(len(pu.tindex))
		case KindTxnIndex:
			body, size = bytes.NewReader(pu.txnidx), int64(len(pu.txnidx))
		case KindProducerSnapshot:
			body, size = bytes.NewReader(pu.snap), int64(len(pu.snap))
		}
		if size == 0 && kind != KindLog && kind != KindIndex && kind != KindTimeIndex {
			pu.put[k] = true // optional and absent: the manifest says size 0
			continue
		}
		key := KeyFor(m.cfg.ClusterID, p.tp.id, p.tp.p, seg, kind)
		if err := m.put(ctx, key, body, size); err != nil {
			return false, fmt.Errorf("upload %s: %w", key, err)
		}
		pu.put[k] = true
		m.met.uploadBytes.Add(ctx, size)
	}

	p.commitMu.Lock()
	defer p.commitMu.Unlock()
	if _, _, removed := p.state(); removed {
		return false, nil
	}
	man := m.cfg.Manifests.Manifest(p.tp.id, p.tp.p)
	if !man.Contains(seg.ID) {
		_, fitErr := man.WithSegment(seg)
		if fitErr != nil || seg.LastOffset < log.LogStartOffset() {
			// The manifest or the log start moved while we uploaded
			// (retention, delete records): replan from scratch.
			p.mu.Lock()
			p.pending = nil
			p.mu.Unlock()
			return false, nil
		}
		p.mu.Lock()
		p.copyDirty = true
		p.mu.Unlock()
		if err := m.cfg.Manifests.AddSegment(ctx, p.tp.id, p.tp.p, seg); err != nil {
			// Maybe committed, maybe not: the retry reuses the id, and
			// AddSegment is idempotent by id.
			return false, fmt.Errorf("commit segment %s [%d, %d]: %w", seg.ID, seg.BaseOffset, seg.LastOffset, err)
		}
	}
	p.mu.Lock()
	p.pending = nil
	p.mu.Unlock()
	p.logger.Info("segment uploaded", "base", seg.BaseOffset, "last", seg.LastOffset, "bytes", seg.Size, "id", seg.ID)
	if err := m.writeManifestCopy(ctx, p); err != nil {
		return true, err
	}
	log.SetRemoteEnd(seg.LastOffset + 1)
	return true, nil
}

// planUpload describes the remote segment made from the local one, from
// the cut on.
func planUpload(files *storage.SegmentFiles, cand storage.SealedSegment, cut cutAt) (*pendingUpload, error) {
	pu := &pendingUpload{srcBase: cand.BaseOffset, cut: cut, srcBytes: files.Size, index: files.Index, tindex: files.TimeIndex,
		txnidx: files.TxnIndex, snap: files.ProducerSnapshot}
	base := cand.BaseOffset
	if cut.offset > cand.BaseOffset {
		pos, batchBase, err := batchAt(files, cand.BaseOffset, cut.offset)
		if err != nil {
			return nil, err
		}
		if cut.exact && batchBase != cut.offset {
			return nil, fmt.Errorf("segment %d: offset %d is inside the batch at %d: %w", cand.BaseOffset, cut.offset, batchBase, errGap)
		}
		if pos > 0 {
			rel := batchBase - cand.BaseOffset
			base, pu.cutPos = batchBase, pos
			pu.index = cutOffsetIndex(files.Index, rel, pos)
			pu.tindex = cutTimeIndex(files.TimeIndex, rel)
			pu.txnidx = cutTxnIndex(files.TxnIndex, batchBase)
		}
	}
	pu.seg = RemoteSegment{
		ID:            uuid.NewString(),
		BaseOffset:    base,
		LastOffset:    cand.NextOffset - 1,
		Size:          files.Size - pu.cutPos,
		MaxTimestamp:  cand.MaxTimestamp,
		Epochs:        epochsFrom(cand.Epochs, base),
		IndexSize:     int64(len(pu.index)),
		TimeIndexSize: int64(len(pu.tindex)),
		// The snapshot is the state at the local segment's end, which is
		// the remote segment's end too.
		TxnIndexSize:         int64(len(pu.txnidx)),
		ProducerSnapshotSize: int64(len(pu.snap)),
	}
	if err := pu.seg.validate(); err != nil {
		return nil, fmt.Errorf("plan upload of segment %d: %w", cand.BaseOffset, err)
	}
	return pu, nil
}

// batchAt finds the batch holding offset target in a local segment (from
// its offset index, then batch headers): its byte position and base offset.
func batchAt(files *storage.SegmentFiles, base, target int64) (pos, batchBase int64, err error) {
	rel := target - base
	for i := 0; i+offsetEntrySize <= len(files.Index); i += offsetEntrySize {
		if int64(binary.BigEndian.Uint32(files.Index[i:])) > rel {
			break
		}
		pos = int64(binary.BigEndian.Uint32(files.Index[i+4:]))
	}
	var hb [batchHeadPrefix]byte
	for pos < files.Size {
		if _, err := files.Log.ReadAt(hb[:], pos); err != nil {
			return 0, 0, fmt.Errorf("segment %d: header at %d: %w", base, pos, err)
		}
		h := parseHead(hb[:])
		switch {
		case h.size < batchHeaderSize:
			return 0, 0, fmt.Errorf("segment %d: bad batch length at byte %d: %w", base, pos, storage.ErrCorrupt)
		case h.last >= target:
			return pos, h.base, nil
		}
		pos += h.size
	}
	return 0, 0, fmt.Errorf("segment %d: no batch holds offset %d: %w", base, target, errGap)
}

// cutOffsetIndex keeps the entries at or after byte pos, rebased to the
// cut (rel offsets and positions relative to it).
func cutOffsetIndex(idx []byte, rel, pos int64) []byte {
	var out []byte
	for i := 0; i+offsetEntrySize <= len(idx); i += offsetEntrySize {
		r, p := int64(binary.BigEndian.Uint32(idx[i:])), int64(binary.BigEndian.Uint32(idx[i+4:]))
		if p < pos || r < rel {
			continue
		}
		out = binary.BigEndian.AppendUint32(out, uint32(r-rel))
		out = binary.BigEndian.AppendUint32(out, uint32(p-pos))
	}
	return out
}

func cutTimeIndex(tidx []byte, rel int64) []byte {
	var out []byte
	for i := 0; i+timeEntrySize <= len(tidx); i += timeEntrySize {
		r := int64(binary.BigEndian.Uint32(tidx[i+8:]))
		if r < rel {
			continue
		}
		out = append(out, tidx[i:i+8]...)
		out = binary.BigEndian.AppendUint32(out, uint32(r-rel))
	}
	return out
}

// cutTxnIndex keeps the entries whose abort marker is at or after base:
// the aborts before it are indexed with the part of the segment that is
// not uploaded (the previous remote segment covers it). Entries are Kafka's
// 34 bytes, the marker offset at byte 18.
func cutTxnIndex(idx []byte, base int64) []byte {
	var out []byte
	for i := 0; i+storage.TxnIndexEntrySize <= len(idx); i += storage.TxnIndexEntrySize {
		if int64(binary.BigEndian.Uint64(idx[i+18:])) >= base {
			out = append(out, idx[i:i+storage.TxnIndexEntrySize]...)
		}
	}
	return out
}

// epochsFrom: the epoch in force at cut (starting there), then the later ones.
func epochsFrom(es []storage.EpochEntry, cut int64) []EpochEntry {
	var out []EpochEntry
	for _, e := range es {
		if e.StartOffset <= cut {
			out = append(out[:0], EpochEntry{Epoch: e.Epoch, StartOffset: cut})
			continue
		}
		out = append(out, EpochEntry{Epoch: e.Epoch, StartOffset: e.StartOffset})
	}
	return out
}

// put stores one object with a size-scaled timeout, throttled by
// UploadBytesPerSec.
func (m *Manager) put(ctx context.Context, key string, body io.ReaderAt, size int64) error {
	ctx, cancel := context.WithTimeout(ctx, m.timeoutFor(size))
	defer cancel()
	if m.limiter != nil {
		body = &throttledReaderAt{ctx: ctx, r: body, lim: m.limiter}
	}
	return m.cfg.Store.Put(ctx, key, body, size)
}

// writeManifestCopy rewrites the bucket copy of the partition's manifest
// from the committed one. Callers hold p.commitMu, so copies are written in
// commit order.
func (m *Manager) writeManifestCopy(ctx context.Context, p *partState) error {
	return m.writeManifestCopyTP(ctx, p.tp, func() {
		p.mu.Lock()
		p.copyDirty = false
		p.mu.Unlock()
	})
}

func (m *Manager) writeManifestCopyTP(ctx context.Context, tp topicPartition, ok func()) error {
	man := m.cfg.Manifests.Manifest(tp.id, tp.p)
	b, err := EncodeManifest(man)
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	key := ManifestKey(m.cfg.ClusterID, tp.id, tp.p)
	if err := m.put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("write manifest copy %s: %w", key, err)
	}
	if ok != nil {
		ok()
	}
	return nil
}

// throttledReaderAt takes tokens from the upload limiter before every read
// the store makes, so concurrent multipart readers share the rate.
type throttledReaderAt struct {
	ctx context.Context
	r   io.ReaderAt
	lim *rate.Limiter
}

func (t *throttledReaderAt) ReadAt(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n := min(len(p)-done, t.lim.Burst())
		if err := t.lim.WaitN(t.ctx, n); err != nil {
			return done, err
		}
		k, err := t.r.ReadAt(p[done:done+n], off+int64(done))
		done += k
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// Batch headers: what the tiering code reads of one.
const (
	batchHeadPrefix = 27 // through lastOffsetDelta
	batchHeaderSize = 61
)

type batchHead struct {
	base, last, size int64
}

func parseHead(b []byte) batchHead {
	base := int64(binary.BigEndian.Uint64(b[0:]))
	length := int64(int32(binary.BigEndian.Uint32(b[8:])))
	delta := int64(int32(binary.BigEndian.Uint32(b[23:])))
	return batchHead{base: base, last: base + delta, size: 12 + length}
}
