package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
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
}

// partition is a local replica of one partition: its log, and its role
// and replication state (replica.go). topicState.parts holds nil for the
// partitions this broker does not host.
type partition struct {
	topic   string
	topicID uuid.UUID
	index   int32
	log     *storage.Log
	partitionFields
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

// get returns a partition this broker hosts (leader or follower). A
// partition of a known topic that is hosted elsewhere is
// NOT_LEADER_OR_FOLLOWER.
func (ps *partitions) get(topic string, p int32) (*topicState, *partition, error) {
	t, ok := ps.topic(topic)
	if !ok || p < 0 || int(p) >= len(t.parts) {
		return t, nil, fmt.Errorf("%s-%d: %w", topic, p, errUnknownTopic)
	}
	if t.parts[p] == nil {
		return t, nil, fmt.Errorf("%s-%d is not hosted by this broker: %w", topic, p, kerr.NotLeaderForPartition)
	}
	return t, t.parts[p], nil
}

// leader returns a partition this broker leads, else the error a client
// acts on: NOT_LEADER_OR_FOLLOWER (the client refreshes metadata) or, for
// a partition without a leader, LEADER_NOT_AVAILABLE.
func (ps *partitions) leader(topic string, p int32) (*topicState, *partition, error) {
	t, part, err := ps.get(topic, p)
	if err != nil {
		return t, nil, err
	}
	if err := ps.leaderErr(part); err != nil {
		return t, nil, fmt.Errorf("%s-%d: %w", topic, p, err)
	}
	return t, part, nil
}

func (ps *partitions) leaderErr(p *partition) error {
	st := p.state()
	switch {
	case st == nil || st.leader == -1:
		return kerr.LeaderNotAvailable
	case st.leader != ps.s.cfg.NodeID:
		return kerr.NotLeaderForPartition
	}
	return nil
}

func partitionDir(root, topic string, p int32) string {
	return filepath.Join(root, "logs", topic+"-"+strconv.Itoa(int(p)))
}

// reconcile brings the local replicas in line with the committed
// metadata: opens logs (running recovery) for partitions assigned to this
// broker, applies config changes, takes every partition's leadership and
// ISR (applyState), and deletes the logs of deleted topics and of replicas
// moved elsewhere.
func (ps *partitions) reconcile() error {
	ps.reconcileMu.Lock()
	defer ps.reconcileMu.Unlock()
	s := ps.s
	self := s.cfg.NodeID
	want := s.meta.Topics()
	seen := make(map[uuid.UUID]bool, len(want))
	var errs []error
	for _, mt := range want {
		seen[mt.ID] = true
		old, _ := ps.topicByID(mt.ID)
		cfgChanged := old == nil || !mapsEqual(old.configs, mt.Configs)
		t := old
		parts := make([]*partition, len(mt.Partitions))
		if old != nil {
			copy(parts, old.parts)
		}
		dirty := old == nil || len(old.parts) != len(parts) || cfgChanged
		var cfg topicConfig
		if cfgChanged {
			cfg = s.topicConfig(mt.Configs)
		} else {
			cfg = old.cfg
		}
		var moved []*partition
		for i, mp := range mt.Partitions {
			local := slices.Contains(mp.Replicas, self)
			switch {
			case local && parts[i] == nil:
				p, err := ps.open(mt, mp, cfg.storage)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				parts[i] = p
				dirty = true
			case !local && parts[i] != nil:
				moved = append(moved, parts[i])
				parts[i] = nil
				dirty = true
			}
		}
		if dirty {
			t = &topicState{name: mt.Name, id: mt.ID, internal: mt.Internal, configs: mt.Configs, cfg: cfg, parts: parts, attrs: topicAttrs(mt.Name)}
			ps.mu.Lock()
			if prev, ok := ps.byName[mt.Name]; ok && prev.id != mt.ID {
				// A topic re-created under the same name: the old one's logs
				// were deleted below or in an earlier pass.
				delete(ps.byID, prev.id)
			}
			ps.byName[mt.Name] = t
			ps.byID[mt.ID] = t
			ps.mu.Unlock()
		}
		for i, p := range t.parts {
			if p == nil {
				continue
			}
			if cfgChanged && old != nil {
				p.log.SetConfig(t.cfg.storage)
				if p.isLeader(self) {
					s.tier.AddPartition(t.name, t.id, p.index, p.log, t.cfg.tier)
				}
			}
			ps.applyState(t, p, mt.Partitions[i])
		}
		for _, p := range moved {
			ps.stopReplica(t, p)
		}
		if old == nil && mt.Name == offsetsTopicName && s.groups != nil {
			leaders := make([]int32, len(mt.Partitions))
			for i, mp := range mt.Partitions {
				leaders[i] = mp.Leader
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.offsetsTopicAppeared(t, leaders)
			}()
		}
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
			if p == nil {
				continue
			}
			s.fetchers.remove(p)
			if p.isLeader(self) {
				s.coordinatorsLost(t, p)
			}
			s.tier.RemovePartition(t.id, p.index)
			if err := p.log.Delete(); err != nil {
				errs = append(errs, fmt.Errorf("delete log %s-%d: %w", t.name, p.index, err))
			}
		}
		if t.leaderOfAny(self) || s.meta.IsActiveController() {
			s.deleteRemoteTopic(t.id, int32(len(t.parts)))
		}
		s.log.Info("deleted topic logs", "topic", t.name, "topic_id", t.id.String(), "partitions", len(t.parts))
	}
	return errors.Join(errs...)
}

// leaderOfAny reports whether this broker led one of t's partitions.
func (t *topicState) leaderOfAny(self int32) bool {
	for _, p := range t.parts {
		if p != nil && p.isLeader(self) {
			return true
		}
	}
	return false
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
	return &partition{topic: mt.Name, topicID: mt.ID, index: mp.Index, log: l}, nil
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
			if p != nil {
				errs = append(errs, p.log.Close())
			}
		}
	}
	return errors.Join(errs...)
}

func (ps *partitions) enforceRetention() {
	for _, t := range ps.all() {
		for _, p := range t.parts {
			if p == nil {
				continue
			}
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
// max.compaction.lag.ms) says so. On a tiered topic the tiering Manager
// also compacts the remote segments, in the background and only on the
// leader (the Manager has only the partitions this broker leads); the
// local segments are cleaned here as on any topic (a tiered log never
// merges segments, so they stay aligned with the uploads).
func (ps *partitions) compact(t *topicState, p *partition) {
	if t.cfg.compact == nil {
		return
	}
	opts := *t.cfg.compact
	opts.Now = time.Now()
	if t.cfg.tier.RemoteEnabled {
		ps.s.tier.StartCompactRemote(t.id, p.index, opts)
	}
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
		ps.s.restoreProducers(mt.Name, mt.ID, index, l, end)
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

// restoreProducers loads the producer state uploaded with the last remote
// segment into a log just restarted at the remote end (end), so
// idempotent producers and open transactions carry on as if the log had
// never been emptied. Without it (an older upload, an unreachable store)
// the log starts with no producer state, as before snapshots were
// uploaded: logged, not fatal.
func (s *Server) restoreProducers(topic string, id uuid.UUID, index int32, l *storage.Log, end int64) {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	snap, at, err := s.tier.ProducerSnapshot(ctx, id, index)
	switch {
	case err != nil:
		s.log.Warn("cannot restore producer state from the remote tier; idempotent producers of this partition start over", "topic", topic, "partition", index, "err", err)
		return
	case snap == nil:
		return
	case at != end:
		s.log.Warn("remote producer snapshot is not at the remote end; not restored", "topic", topic, "partition", index, "snapshot_offset", at, "remote_end", end)
		return
	}
	if err := l.RestoreProducers(snap); err != nil {
		s.log.Warn("cannot restore producer state from the remote tier", "topic", topic, "partition", index, "err", err)
		return
	}
	s.log.Info("producer state restored from the remote tier", "topic", topic, "partition", index, "offset", at)
}
