package broker

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/metric"

	"github.com/strata-broker/strata/metadata"
	"github.com/strata-broker/strata/storage"
)

// partitions is the replica manager: the partition logs this broker hosts,
// kept in step with the committed metadata by reconcile.
//
// Lock order: reconcileMu before mu. mu guards the maps and the topicState
// pointers; a topicState's fields are immutable once published (configs
// change by publishing a new topicState), so readers copy the pointer
// under RLock and use it without locks.
type partitions struct {
	s           *Server
	reconcileMu sync.Mutex
	mu          sync.RWMutex
	byName      map[string]*topicState
	byID        map[uuid.UUID]*topicState
}

type topicState struct {
	name     string
	id       uuid.UUID
	internal bool
	configs  map[string]string
	cfg      topicConfig
	parts    []*partition
	attrs    metric.MeasurementOption // topic=<name>, built once for hot-path metrics

	warnedTieredCompact bool // retention loop only
}

type partition struct {
	topic       string
	topicID     uuid.UUID
	index       int32
	log         *storage.Log
	leaderEpoch int32
}

func newPartitions(s *Server) *partitions {
	return &partitions{s: s, byName: map[string]*topicState{}, byID: map[uuid.UUID]*topicState{}}
}

func (ps *partitions) topic(name string) (*topicState, bool) {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	t, ok := ps.byName[name]
	return t, ok
}

func (ps *partitions) topicByID(id uuid.UUID) (*topicState, bool) {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	t, ok := ps.byID[id]
	return t, ok
}

func (ps *partitions) all() []*topicState {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	out := make([]*topicState, 0, len(ps.byName))
	for _, t := range ps.byName {
		out = append(out, t)
	}
	return out
}

func (ps *partitions) get(topic string, p int32) (*topicState, *partition, error) {
	t, ok := ps.topic(topic)
	if !ok || p < 0 || int(p) >= len(t.parts) {
		return t, nil, fmt.Errorf("%s-%d: %w", topic, p, errUnknownTopic)
	}
	return t, t.parts[p], nil
}

func partitionDir(root, topic string, p int32) string {
	return filepath.Join(root, "logs", topic+"-"+strconv.Itoa(int(p)))
}

// reconcile brings the local logs in line with the committed metadata:
// opens logs for new topics and partitions (running recovery), applies
// config changes, and deletes the logs of deleted topics.
func (ps *partitions) reconcile() error {
	ps.reconcileMu.Lock()
	defer ps.reconcileMu.Unlock()
	s := ps.s
	want := s.meta.Topics()
	seen := make(map[uuid.UUID]bool, len(want))
	var errs []error
	for _, mt := range want {
		seen[mt.ID] = true
		old, _ := ps.topicByID(mt.ID)
		if old != nil && len(old.parts) == len(mt.Partitions) && mapsEqual(old.configs, mt.Configs) {
			continue
		}
		nt := &topicState{name: mt.Name, id: mt.ID, internal: mt.Internal, configs: mt.Configs, cfg: s.topicConfig(mt.Configs), attrs: topicAttrs(mt.Name)}
		if old != nil {
			nt.parts = append(nt.parts, old.parts...)
			for _, p := range old.parts {
				p.log.SetConfig(nt.cfg.storage)
				s.tier.AddPartition(mt.Name, mt.ID, p.index, p.log, nt.cfg.tier)
			}
		}
		for _, mp := range mt.Partitions[len(nt.parts):] {
			p, err := ps.open(mt, mp, nt.cfg.storage)
			if err != nil {
				errs = append(errs, err)
				break
			}
			nt.parts = append(nt.parts, p)
		}
		ps.mu.Lock()
		if prev, ok := ps.byName[mt.Name]; ok && prev.id != mt.ID {
			// A topic re-created under the same name: the old one's logs
			// were deleted below or in an earlier pass.
			delete(ps.byID, prev.id)
		}
		ps.byName[mt.Name] = nt
		ps.byID[mt.ID] = nt
		ps.mu.Unlock()
	}
	var gone []*topicState
	ps.mu.Lock()
	for id, t := range ps.byID {
		if !seen[id] {
			delete(ps.byID, id)
			if ps.byName[t.name] == t {
				delete(ps.byName, t.name)
			}
			gone = append(gone, t)
		}
	}
	ps.mu.Unlock()
	for _, t := range gone {
		for _, p := range t.parts {
			s.tier.RemovePartition(t.id, p.index)
			if err := p.log.Delete(); err != nil {
				errs = append(errs, fmt.Errorf("delete log %s-%d: %w", t.name, p.index, err))
			}
		}
		s.deleteRemoteTopic(t.id, int32(len(t.parts)))
		s.log.Info("deleted topic logs", "topic", t.name, "topic_id", t.id.String(), "partitions", len(t.parts))
	}
	return errors.Join(errs...)
}

// open opens (recovering) one partition log. A directory left by an older
// topic of the same name (its topic id differs) is removed first.
func (ps *partitions) open(mt metadata.Topic, mp metadata.Partition, cfg storage.Config) (*partition, error) {
	s := ps.s
	dir := partitionDir(s.cfg.DataDir, mt.Name, mp.Index)
	idFile := filepath.Join(dir, "partition.metadata")
	want := []byte("version: 0\ntopic_id: " + mt.ID.String() + "\n")
	if got, err := os.ReadFile(idFile); err == nil && !bytes.Equal(got, want) {
		s.log.Warn("removing stale log of an earlier topic with the same name", "dir", dir)
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("remove stale log %s: %w", dir, err)
		}
	}
	l, err := storage.Open(dir, cfg, storage.Options{Logger: s.log.With("topic", mt.Name, "partition", mp.Index)})
	if err != nil {
		return nil, fmt.Errorf("open log %s-%d: %w", mt.Name, mp.Index, err)
	}
	if _, err := os.Stat(idFile); err != nil {
		if err := writeFileSync(idFile, want); err != nil {
			l.Close()
			return nil, err
		}
	}
	ps.adoptRemote(mt, mp.Index, l)
	ps.s.tier.AddPartition(mt.Name, mt.ID, mp.Index, l, ps.s.topicConfig(mt.Configs).tier)
	return &partition{topic: mt.Name, topicID: mt.ID, index: mp.Index, log: l, leaderEpoch: mp.LeaderEpoch}, nil
}

func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (ps *partitions) closeAll() error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var errs []error
	for _, t := range ps.byID {
		for _, p := range t.parts {
			errs = append(errs, p.log.Close())
		}
	}
	return errors.Join(errs...)
}

func (ps *partitions) enforceRetention() {
	for _, t := range ps.all() {
		for _, p := range t.parts {
			if n, err := p.log.EnforceRetention(); err != nil {
				ps.s.log.Error("retention", "topic", t.name, "partition", p.index, "err", err)
			} else if n > 0 {
				ps.s.log.Info("deleted segments past retention", "topic", t.name, "partition", p.index, "segments", n)
			}
			ps.compact(t, p)
		}
	}
}

// compact runs the log cleaner on a partition of a topic whose
// cleanup.policy includes compact, when its dirty ratio (or
// max.compaction.lag.ms) says so. Tiered topics are left alone until
// compaction of remote segments exists: rewriting a segment the bucket
// already holds would make the two copies differ.
func (ps *partitions) compact(t *topicState, p *partition) {
	if t.cfg.compact == nil {
		return
	}
	if t.cfg.tier.RemoteEnabled {
		// See topics.go: compacted topics are created untiered. One made
		// compacted later keeps its tiering and is not compacted yet.
		if !t.warnedTieredCompact {
			t.warnedTieredCompact = true
			ps.s.log.Warn("topic is tiered and cleanup.policy includes compact: not compacted until compaction of remote segments exists", "topic", t.name)
		}
		return
	}
	opts := *t.cfg.compact
	opts.Now = time.Now()
	res, err := p.log.Compact(opts)
	switch {
	case err != nil:
		ps.s.log.Error("log compaction", "topic", t.name, "partition", p.index, "err", err)
	case res.Cleaned:
		ps.s.log.Info("log compacted", "topic", t.name, "partition", p.index,
			"dirty_ratio", res.DirtyRatio, "segments_replaced", res.SegmentsReplaced, "segments_written", res.SegmentsWritten,
			"bytes_before", res.BytesBefore, "bytes_after", res.BytesAfter, "records_removed", res.RecordsRemoved,
			"cleaned_to", res.CleanedTo)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// adoptRemote lines a freshly opened log up with the remote manifest: a log
// whose data dir was wiped restarts at the remote end (the bucket still
// serves everything below it), and a crash between a manifest commit and
// the local remote-end checkpoint is finished here.
func (ps *partitions) adoptRemote(mt metadata.Topic, index int32, l *storage.Log) {
	man := manifestStore{ps.s.meta}.Manifest(mt.ID, index)
	if len(man.Segments) == 0 {
		return
	}
	end := man.End()
	logStart := max(man.LogStartOffset, man.Segments[0].BaseOffset)
	if l.LogEndOffset() < end {
		if err := l.ResetEmpty(end, logStart); err != nil {
			ps.s.log.Error("local log is behind the remote tier and not empty; serving local data only", "topic", mt.Name, "partition", index, "local_end", l.LogEndOffset(), "remote_end", end, "err", err)
			return
		}
		ps.s.log.Info("local log restarted at the remote end", "topic", mt.Name, "partition", index, "log_start_offset", logStart, "remote_end", end)
	}
	if l.RemoteEnd() < end {
		l.SetRemoteEnd(end)
	}
}

// deleteRemoteTopic removes a deleted topic's objects in the background,
// retrying until the object store lets it; the server's shutdown stops it
// (the orphan sweep finds what is left).
func (s *Server) deleteRemoteTopic(id uuid.UUID, partitions int32) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		backoff := time.Second
		for {
			err := s.tier.DeleteTopic(s.ctx, id, partitions)
			if err == nil || s.ctx.Err() != nil {
				return
			}
			s.log.Warn("deleting remote objects of a deleted topic failed; retrying", "topic_id", id.String(), "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			backoff = min(2*backoff, time.Minute)
		}
	}()
}
