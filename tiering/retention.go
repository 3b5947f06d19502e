package tiering

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/strata-broker/strata/storage"
)

// Deletion is always driven by the committed manifest: segments leave the
// manifest first (RemoveSegments returned nil), then their objects are
// deleted. A crash in between leaves objects no manifest references, which
// the orphan sweep removes; never a manifest entry without its objects.

func (m *Manager) retentionLoop(ctx context.Context) {
	m.every(ctx, m.tune.retentionInterval, m.retentionPass)
}

func (m *Manager) retentionPass(ctx context.Context) {
	m.forEachPartition(ctx, "remote retention", m.enforceRetention)
}

// every runs pass each interval until ctx ends.
func (m *Manager) every(ctx context.Context, interval time.Duration, pass func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pass(ctx)
		}
	}
}

// forEachPartition runs fn on every partition; a failure is logged and
// left for the next pass (unless the manager or partition is going away).
func (m *Manager) forEachPartition(ctx context.Context, what string, fn func(context.Context, *partState) error) {
	for _, p := range m.partitions() {
		if err := fn(ctx, p); err != nil && ctx.Err() == nil && p.ctx.Err() == nil {
			p.logger.Warn(what+" failed; will retry", "err", err)
		}
	}
}

// enforceRetention applies retention.ms and retention.bytes over both
// tiers: the partition's data is its remote segments followed by its
// sealed local segments not yet uploaded (plus the active segment, which
// counts towards the size but is never deleted). Oldest first, segments go
// while they are past retention.ms (by their largest timestamp) or not
// needed to keep the total within retention.bytes. The new log start is
// the end of the last one to go; remote segments wholly below it leave the
// manifest and the bucket, and the log's DeleteRecordsBefore moves its log
// start and deletes local segments below it (including data that was never
// uploaded, if it expired first).
func (m *Manager) enforceRetention(ctx context.Context, p *partState) error {
	p.commitMu.Lock()
	defer p.commitMu.Unlock()
	log, cfg, removed := p.state()
	if removed || log == nil {
		return nil
	}
	man := m.cfg.Manifests.Manifest(p.tp.id, p.tp.p)
	if !cfg.RemoteEnabled && len(man.Segments) == 0 {
		return nil // the log applies its own retention
	}
	newStart := m.retentionStart(log, cfg, man)
	return m.truncate(ctx, p, p.tp, log, man, newStart)
}

func (m *Manager) retentionStart(log *storage.Log, cfg PartitionConfig, man Manifest) int64 {
	type unit struct{ next, size, maxTs int64 }
	units := make([]unit, 0, len(man.Segments)+8)
	for _, s := range man.Segments {
		units = append(units, unit{s.LastOffset + 1, s.Size, s.MaxTimestamp})
	}
	hasSegs, end := len(man.Segments) > 0, man.End()
	localBytes := log.Size()
	for _, s := range log.SealedSegments() {
		if hasSegs && s.NextOffset <= end {
			localBytes -= s.Size // in both tiers: counted once
			continue
		}
		units = append(units, unit{s.NextOffset, s.Size, s.MaxTimestamp})
	}
	total := man.Bytes() + max(localBytes, 0)
	i := 0
	if cfg.RetentionMs >= 0 {
		limit := m.now().UnixMilli() - cfg.RetentionMs
		for i < len(units) && units[i].maxTs < limit {
			total -= units[i].size
			i++
		}
	}
	if cfg.RetentionBytes >= 0 {
		diff := total - cfg.RetentionBytes
		for i < len(units) && diff >= units[i].size {
			diff -= units[i].size
			i++
		}
	}
	if i == 0 {
		return -1
	}
	return units[i-1].next
}

// truncate makes newStart the partition's log start in both tiers: remote
// segments wholly below it (and below the log's own log start, which the
// broker may have raised) leave the manifest, then the bucket; then the
// local log follows. p and log may be nil (a partition this Manager does
// not have). Callers hold p.commitMu when p is not nil.
func (m *Manager) truncate(ctx context.Context, p *partState, tp topicPartition, log *storage.Log, man Manifest, newStart int64) error {
	if log != nil {
		// The log may be behind (a crash after the manifest changed) or
		// ahead (the broker raised it) of the manifest: both tiers end up at
		// the higher of the two.
		newStart = max(newStart, log.LogStartOffset(), min(man.LogStartOffset, log.HighWatermark()))
	}
	var gone []RemoteSegment
	for _, s := range man.Segments {
		if s.LastOffset >= newStart {
			break
		}
		gone = append(gone, s)
	}
	if len(gone) > 0 || (len(man.Segments) > 0 && newStart > man.LogStartOffset) {
		ids := make([]string, len(gone))
		for i, s := range gone {
			ids[i] = s.ID
		}
		if p != nil {
			p.mu.Lock()
			p.copyDirty = true
			p.mu.Unlock()
		}
		if err := m.cfg.Manifests.RemoveSegments(ctx, tp.id, tp.p, ids, newStart); err != nil {
			return fmt.Errorf("remove %d remote segments below %d: %w", len(ids), newStart, err)
		}
		logger := m.logger.With("topic_id", tp.id, "partition", tp.p)
		if p != nil {
			logger = p.logger
		}
		if len(gone) > 0 {
			logger.Info("remote segments removed", "segments", len(gone), "log_start", newStart)
		}
		var clean func()
		if p != nil {
			clean = func() {
				p.mu.Lock()
				p.copyDirty = false
				p.mu.Unlock()
			}
		}
		if err := m.writeManifestCopyTP(ctx, tp, clean); err != nil {
			logger.Warn("manifest copy not written; will retry", "err", err)
		}
		keys := make([]string, 0, len(gone)*len(allKinds))
		for _, s := range gone {
			for _, k := range s.Kinds() {
				keys = append(keys, KeyFor(m.cfg.ClusterID, tp.id, tp.p, s, k))
			}
		}
		if err := m.deleteKeys(ctx, keys); err != nil {
			// Not referenced any more: the orphan sweep finishes the job.
			logger.Warn("deleting removed segments' objects failed; the orphan sweep will", "err", err)
		}
		m.forget(ids)
	}
	if log != nil && newStart > log.LogStartOffset() {
		if _, err := log.DeleteRecordsBefore(newStart); err != nil {
			return fmt.Errorf("local log start to %d: %w", newStart, err)
		}
	}
	return nil
}

// forget drops cached chunks and indexes of removed segments.
func (m *Manager) forget(ids []string) {
	if len(ids) == 0 {
		return
	}
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
		m.idx.remove(id)
		m.txns.remove(id)
	}
	m.cache.purge(func(segID string) bool { return set[segID] })
}

func (m *Manager) deleteKeys(ctx context.Context, keys []string) error {
	const batch = 1000 // S3 DeleteObjects takes at most 1000 keys
	var errs []error
	for len(keys) > 0 {
		n := min(len(keys), batch)
		dctx, cancel := context.WithTimeout(ctx, m.tune.minTimeout)
		err := m.cfg.Store.Delete(dctx, keys[:n]...)
		cancel()
		if err != nil {
			errs = append(errs, err)
		}
		keys = keys[n:]
	}
	return errors.Join(errs...)
}

// DeleteRecordsBefore is the remote side of DeleteRecords: the log start
// becomes offset in the manifest, remote segments wholly below it are
// removed from the manifest and then deleted, and, when this Manager has
// the partition, its log's start follows (log.DeleteRecordsBefore). offset
// -1 means the log's high watermark. An offset at or below the current log
// start changes nothing.
func (m *Manager) DeleteRecordsBefore(ctx context.Context, topicID uuid.UUID, partition int32, offset int64) error {
	tp := topicPartition{topicID, partition}
	var log *storage.Log
	p := m.part(tp)
	if p != nil {
		p.commitMu.Lock()
		defer p.commitMu.Unlock()
		log, _, _ = p.state()
	}
	if offset == -1 && log != nil {
		offset = log.HighWatermark()
	}
	if offset < 0 {
		return fmt.Errorf("delete records %s-%d before %d: %w", topicID, partition, offset, storage.ErrOffsetOutOfRange)
	}
	if log != nil && offset > log.HighWatermark() {
		return fmt.Errorf("delete records %s-%d before %d (high watermark %d): %w", topicID, partition, offset, log.HighWatermark(), storage.ErrOffsetOutOfRange)
	}
	man := m.cfg.Manifests.Manifest(topicID, partition)
	if err := m.truncate(ctx, p, tp, log, man, offset); err != nil {
		return fmt.Errorf("delete records %s-%d before %d: %w", topicID, partition, offset, err)
	}
	return nil
}

// DeleteTopic removes every remote trace of partitions [0, partitions) of
// the topic: it stops their uploads (waiting for one in flight), empties
// their manifests, then deletes every object under their key prefixes
// (committed segments, orphans, uploads cut short) and the manifest
// copies. It returns the errors of the partitions it could not finish;
// calling it again finishes them.
func (m *Manager) DeleteTopic(ctx context.Context, topicID uuid.UUID, partitions int32) error {
	var errs []error
	for part := int32(0); part < partitions; part++ {
		tp := topicPartition{topicID, part}
		p := m.removePartition(tp)
		if p != nil {
			p.mu.Lock()
			done := p.jobDone
			p.mu.Unlock()
			if done != nil {
				select {
				case <-done:
				case <-ctx.Done():
					return errors.Join(append(errs, fmt.Errorf("delete topic %s: %w", topicID, ctx.Err()))...)
				}
			}
			p.commitMu.Lock() // let a retention pass or a sweep finish
		}
		if err := m.deletePartitionRemote(ctx, tp); err != nil {
			errs = append(errs, fmt.Errorf("delete topic %s partition %d: %w", topicID, part, err))
		}
		if p != nil {
			p.commitMu.Unlock()
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) deletePartitionRemote(ctx context.Context, tp topicPartition) error {
	man := m.cfg.Manifests.Manifest(tp.id, tp.p)
	ids := make([]string, len(man.Segments))
	for i, s := range man.Segments {
		ids[i] = s.ID
	}
	if len(ids) > 0 {
		if err := m.cfg.Manifests.RemoveSegments(ctx, tp.id, tp.p, ids, man.End()); err != nil {
			return fmt.Errorf("remove segments: %w", err)
		}
	}
	m.forget(ids)
	var keys []string
	prefix := PartitionPrefix(m.cfg.ClusterID, tp.id, tp.p)
	if err := m.cfg.Store.List(ctx, prefix, func(o ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	keys = append(keys, ManifestKey(m.cfg.ClusterID, tp.id, tp.p))
	if err := m.deleteKeys(ctx, keys); err != nil {
		return fmt.Errorf("delete objects: %w", err)
	}
	if len(keys) > 1 {
		m.logger.Info("remote partition deleted", "topic_id", tp.id, "partition", tp.p, "objects", len(keys)-1)
	}
	return nil
}

func (m *Manager) sweepLoop(ctx context.Context) {
	m.every(ctx, m.tune.sweepInterval, m.sweepPass)
}

func (m *Manager) sweepPass(ctx context.Context) {
	m.forEachPartition(ctx, "orphan sweep", m.sweepOrphans)
}

// sweepOrphans deletes the partition's segment objects that the committed
// manifest does not reference, that no upload of this Manager has in
// flight, and that are older than OrphanGrace (an upload on another broker
// may still commit them). Orphans come from uploads that failed or crashed
// before their commit, and from deletions cut short after one.
//
// The listing is taken before the manifest is read: an object committed
// after the listing is then seen as committed.
func (m *Manager) sweepOrphans(ctx context.Context, p *partState) error {
	type object struct {
		key, id string
		mod     time.Time
	}
	prefix := PartitionPrefix(m.cfg.ClusterID, p.tp.id, p.tp.p)
	var objs []object
	err := m.cfg.Store.List(ctx, prefix, func(o ObjectInfo) error {
		name := o.Key[len(prefix):]
		if strings.Contains(name, "/") {
			return nil
		}
		if _, id, _, ok := parseObjectName(name); ok {
			objs = append(objs, object{o.Key, id, o.LastModified})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	if len(objs) == 0 {
		return nil
	}
	p.commitMu.Lock()
	_, _, removed := p.state()
	cutoff := m.now().Add(-m.cfg.OrphanGrace)
	p.mu.Lock()
	pendingID := ""
	if p.pending != nil {
		pendingID = p.pending.seg.ID
	}
	var retired []string // replaced by compaction less than OrphanGrace ago
	for id, at := range p.retired {
		if at.Before(cutoff) {
			delete(p.retired, id)
		} else {
			retired = append(retired, id)
		}
	}
	p.mu.Unlock()
	man := m.cfg.Manifests.Manifest(p.tp.id, p.tp.p)
	p.commitMu.Unlock()
	if removed {
		return nil
	}
	live := make(map[string]bool, len(man.Segments)+1+len(retired))
	for _, s := range man.Segments {
		live[s.ID] = true
	}
	live[pendingID] = true
	for _, id := range retired {
		live[id] = true
	}
	var del []string
	for _, o := range objs {
		if !live[o.id] && o.mod.Before(cutoff) {
			del = append(del, o.key)
		}
	}
	if len(del) == 0 {
		return nil
	}
	if err := m.deleteKeys(ctx, del); err != nil {
		return fmt.Errorf("delete %d orphans: %w", len(del), err)
	}
	p.logger.Info("orphaned objects deleted", "objects", len(del))
	return nil
}
