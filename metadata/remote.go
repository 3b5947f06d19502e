package metadata

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/google/uuid"
)

// Remote manifests: for each partition, the committed list of segments
// uploaded to object storage and the partition's log start offset on the
// remote side. The tiering layer records a segment here only after its
// objects are durable, and deletes objects only after their removal
// committed here, so a segment is always in at least one durable place.
// This package knows nothing of tiering; the broker adapts between
// tiering.ManifestStore and the Store methods below.
//
// Invariants of a manifest record (checked by the commands and by Restore):
//   - segments are sorted and contiguous: each BaseOffset is the previous
//     segment's LastOffset+1; LastOffset >= BaseOffset >= 0;
//   - segment ids are non-empty and unique within the manifest;
//   - LogStartOffset >= 0 and never decreases; removing segments raises it
//     to at least the LastOffset+1 of the last removed one, so an emptied
//     manifest still remembers where the next upload must start;
//   - only existing partitions have a manifest; DeleteTopic drops them.

// partKey names one partition.
type partKey struct {
	topic     uuid.UUID
	partition int32
}

type remoteEpochRec struct {
	Epoch       int32 `json:"epoch"`
	StartOffset int64 `json:"start_offset"`
}

type remoteSegmentRec struct {
	ID            string           `json:"id"`
	BaseOffset    int64            `json:"base_offset"`
	LastOffset    int64            `json:"last_offset"`
	Size          int64            `json:"size"`
	MaxTimestamp  int64            `json:"max_timestamp"`
	Epochs        []remoteEpochRec `json:"epochs"`
	IndexSize     int64            `json:"index_size"`
	TimeIndexSize int64            `json:"time_index_size"`
	// Added with transactions on the remote tier. Omitted when zero, so a
	// segment without these objects encodes exactly as before (entries and
	// snapshots written by older binaries decode unchanged, and a new
	// binary's entry without them is one an older binary can apply). An
	// older binary meeting a non-zero one fails its strict decoding and
	// stops rather than drop it, as the log format rules require.
	TxnIndexSize         int64 `json:"txn_index_size,omitempty"`
	ProducerSnapshotSize int64 `json:"producer_snapshot_size,omitempty"`
}

// manifestRec is one partition's manifest. It carries its own key so that a
// snapshot entry is self-describing. Canonical form: empty slices are nil.
type manifestRec struct {
	TopicID        uuid.UUID          `json:"topic_id"`
	Partition      int32              `json:"partition"`
	LogStartOffset int64              `json:"log_start_offset"`
	Segments       []remoteSegmentRec `json:"segments"`
}

// end is the offset the next segment must start at.
func (m *manifestRec) end() int64 {
	if len(m.Segments) == 0 {
		return m.LogStartOffset
	}
	return m.Segments[len(m.Segments)-1].LastOffset + 1
}

// partitionName renders "topic-partition" for messages, falling back to the
// topic id when the topic is unknown.
func (f *fsm) partitionName(id uuid.UUID, p int32) string {
	if t, ok := f.st.topics[id]; ok {
		return fmt.Sprintf("%s-%d", t.Name, p)
	}
	return fmt.Sprintf("%s-%d", id, p)
}

// checkPartition reports whether the partition exists.
func (f *fsm) checkPartition(id uuid.UUID, p int32) error {
	t, ok := f.st.topics[id]
	if !ok {
		return fmt.Errorf("topic id %s: %w", id, ErrUnknownTopic)
	}
	if p < 0 || int(p) >= len(t.Partitions) {
		return fmt.Errorf("topic %q has no partition %d (it has %d): %w", t.Name, p, len(t.Partitions), ErrUnknownTopic)
	}
	return nil
}

// addRemoteSegment appends c.Segment to the partition's manifest. A segment
// whose id is already there is a retry and changes nothing, whatever else
// it says. Otherwise it must start exactly at the manifest's end (or, on an
// empty manifest, anywhere at or above the log start offset).
func (f *fsm) addRemoteSegment(c *addRemoteSegmentV1) (bool, error) {
	seg := c.Segment
	op := func() string {
		return fmt.Sprintf("add remote segment %q [%d, %d] to %s", seg.ID, seg.BaseOffset, seg.LastOffset, f.partitionName(c.TopicID, c.Partition))
	}
	if err := f.checkPartition(c.TopicID, c.Partition); err != nil {
		return false, fmt.Errorf("%s: %w", op(), err)
	}
	if err := validSegment(&seg); err != nil {
		return false, fmt.Errorf("%s: %w", op(), err)
	}
	key := partKey{c.TopicID, c.Partition}
	cur := f.st.manifests[key]
	if cur == nil {
		cur = &manifestRec{TopicID: c.TopicID, Partition: c.Partition}
	}
	if slices.ContainsFunc(cur.Segments, func(s remoteSegmentRec) bool { return s.ID == seg.ID }) {
		return false, nil
	}
	if len(cur.Segments) == 0 {
		// A first segment may begin below the log start (DeleteRecords can
		// cut inside a batch); it must hold something at or above it.
		if seg.LastOffset < cur.LogStartOffset {
			return false, fmt.Errorf("%s: segment ends below the remote log start offset %d: %w", op(), cur.LogStartOffset, ErrInvalidArgument)
		}
	} else if end := cur.end(); seg.BaseOffset != end {
		return false, fmt.Errorf("%s: not contiguous with the manifest, whose next segment must start at %d: %w", op(), end, ErrInvalidArgument)
	}
	nm := *cur
	nm.Segments = append(slices.Clip(cur.Segments), canonicalSegment(seg))
	f.st.manifests[key] = &nm
	return true, nil
}

// removeRemoteSegments drops the named segments, which must be the oldest
// ones (dropping any other would leave a hole in the manifest), and raises
// the log start offset to max(current, c.LogStartOffset, end of the last
// dropped segment). Ids not in the manifest are ignored so that a retry of
// a committed removal succeeds.
func (f *fsm) removeRemoteSegments(c *removeRemoteSegmentsV1) (bool, error) {
	op := func() string {
		return fmt.Sprintf("remove %d remote segments of %s", len(c.IDs), f.partitionName(c.TopicID, c.Partition))
	}
	if err := f.checkPartition(c.TopicID, c.Partition); err != nil {
		return false, fmt.Errorf("%s: %w", op(), err)
	}
	key := partKey{c.TopicID, c.Partition}
	cur := f.st.manifests[key]
	if cur == nil {
		cur = &manifestRec{TopicID: c.TopicID, Partition: c.Partition}
	}
	drop := make(map[string]bool, len(c.IDs))
	for _, id := range c.IDs {
		drop[id] = true
	}
	n := 0 // length of the prefix being dropped
	for i, s := range cur.Segments {
		if !drop[s.ID] {
			continue
		}
		if i != n {
			kept := cur.Segments[n]
			return false, fmt.Errorf("%s: segment %q [%d, %d] comes after segment %q [%d, %d], which is kept; removing it would leave a hole: %w",
				op(), s.ID, s.BaseOffset, s.LastOffset, kept.ID, kept.BaseOffset, kept.LastOffset, ErrInvalidArgument)
		}
		n++
	}
	logStart := max(cur.LogStartOffset, c.LogStartOffset)
	if n > 0 {
		logStart = max(logStart, cur.Segments[n-1].LastOffset+1)
	}
	if n == 0 && logStart == cur.LogStartOffset {
		return false, nil
	}
	nm := *cur
	nm.LogStartOffset = logStart
	nm.Segments = nil
	if rest := cur.Segments[n:]; len(rest) > 0 {
		// A fresh array, so the dropped prefix can be collected.
		nm.Segments = slices.Clone(rest)
	}
	f.st.manifests[key] = &nm
	return true, nil
}

// validSegment checks one segment on its own. Epochs are stored as given:
// they describe the data, not the manifest's shape.
func validSegment(s *remoteSegmentRec) error {
	switch {
	case s.ID == "":
		return fmt.Errorf("empty segment id: %w", ErrInvalidArgument)
	case s.BaseOffset < 0:
		return fmt.Errorf("negative base offset: %w", ErrInvalidArgument)
	case s.LastOffset < s.BaseOffset:
		return fmt.Errorf("last offset is below the base offset: %w", ErrInvalidArgument)
	case s.LastOffset == math.MaxInt64:
		return fmt.Errorf("last offset leaves no next offset: %w", ErrInvalidArgument)
	case s.Size < 0 || s.IndexSize < 0 || s.TimeIndexSize < 0 || s.TxnIndexSize < 0 || s.ProducerSnapshotSize < 0:
		return fmt.Errorf("negative size (log %d, index %d, time index %d, txn index %d, producer snapshot %d): %w",
			s.Size, s.IndexSize, s.TimeIndexSize, s.TxnIndexSize, s.ProducerSnapshotSize, ErrInvalidArgument)
	}
	return nil
}

func canonicalSegment(s remoteSegmentRec) remoteSegmentRec {
	if len(s.Epochs) == 0 {
		s.Epochs = nil
	} else {
		s.Epochs = slices.Clone(s.Epochs)
	}
	return s
}

func compareManifests(a, b *manifestRec) int {
	if c := bytes.Compare(a.TopicID[:], b.TopicID[:]); c != 0 {
		return c
	}
	return cmp.Compare(a.Partition, b.Partition)
}

// restoreManifests checks the manifests of a snapshot against the invariants
// and st's topics, and puts them into st in canonical form. An entry equal to
// the zero manifest means the same as no entry and is dropped.
func restoreManifests(st *state, ms []*manifestRec) error {
	for _, m := range ms {
		if m == nil {
			return errors.New("null remote manifest")
		}
		name := fmt.Sprintf("%s-%d", m.TopicID, m.Partition)
		t, ok := st.topics[m.TopicID]
		if !ok {
			return fmt.Errorf("remote manifest of %s: unknown topic", name)
		}
		if m.Partition < 0 || int(m.Partition) >= len(t.Partitions) {
			return fmt.Errorf("remote manifest of %s: topic %q has %d partitions", name, t.Name, len(t.Partitions))
		}
		key := partKey{m.TopicID, m.Partition}
		if _, dup := st.manifests[key]; dup {
			return fmt.Errorf("remote manifest of %s listed twice", name)
		}
		if m.LogStartOffset < 0 {
			return fmt.Errorf("remote manifest of %s: negative log start offset", name)
		}
		ids := make(map[string]bool, len(m.Segments))
		for i := range m.Segments {
			s := &m.Segments[i]
			if err := validSegment(s); err != nil {
				return fmt.Errorf("remote manifest of %s: segment %q: %v", name, s.ID, err)
			}
			if ids[s.ID] {
				return fmt.Errorf("remote manifest of %s: segment %q listed twice", name, s.ID)
			}
			ids[s.ID] = true
			if i > 0 && s.BaseOffset != m.Segments[i-1].LastOffset+1 {
				return fmt.Errorf("remote manifest of %s: segment %q starts at %d, not right after the previous one", name, s.ID, s.BaseOffset)
			}
			*s = canonicalSegment(*s)
		}
		if len(m.Segments) == 0 {
			m.Segments = nil
			if m.LogStartOffset == 0 {
				continue
			}
		}
		st.manifests[key] = m
	}
	return nil
}

// public deep-copies a record into the API type.
func (m *manifestRec) public() RemoteManifest {
	out := RemoteManifest{LogStartOffset: m.LogStartOffset}
	if len(m.Segments) > 0 {
		out.Segments = make([]RemoteSegment, len(m.Segments))
		for i, s := range m.Segments {
			out.Segments[i] = RemoteSegment{
				ID:                   s.ID,
				BaseOffset:           s.BaseOffset,
				LastOffset:           s.LastOffset,
				Size:                 s.Size,
				MaxTimestamp:         s.MaxTimestamp,
				IndexSize:            s.IndexSize,
				TimeIndexSize:        s.TimeIndexSize,
				TxnIndexSize:         s.TxnIndexSize,
				ProducerSnapshotSize: s.ProducerSnapshotSize,
			}
			if len(s.Epochs) > 0 {
				out.Segments[i].Epochs = make([]RemoteEpoch, len(s.Epochs))
				for j, e := range s.Epochs {
					out.Segments[i].Epochs[j] = RemoteEpoch{Epoch: e.Epoch, StartOffset: e.StartOffset}
				}
			}
		}
	}
	return out
}

func remoteSegmentRecord(s RemoteSegment) remoteSegmentRec {
	rec := remoteSegmentRec{
		ID:                   s.ID,
		BaseOffset:           s.BaseOffset,
		LastOffset:           s.LastOffset,
		Size:                 s.Size,
		MaxTimestamp:         s.MaxTimestamp,
		IndexSize:            s.IndexSize,
		TimeIndexSize:        s.TimeIndexSize,
		TxnIndexSize:         s.TxnIndexSize,
		ProducerSnapshotSize: s.ProducerSnapshotSize,
	}
	if len(s.Epochs) > 0 {
		rec.Epochs = make([]remoteEpochRec, len(s.Epochs))
		for i, e := range s.Epochs {
			rec.Epochs[i] = remoteEpochRec{Epoch: e.Epoch, StartOffset: e.StartOffset}
		}
	}
	return rec
}

func (f *fsm) remoteManifest(id uuid.UUID, p int32) RemoteManifest {
	f.mu.RLock()
	m := f.st.manifests[partKey{id, p}]
	f.mu.RUnlock()
	if m == nil {
		return RemoteManifest{}
	}
	// Records are immutable: copying after the unlock is safe and keeps a
	// large manifest from holding up the FSM goroutine.
	return m.public()
}

// RemoteManifest returns the committed remote manifest of a partition as
// this node has applied it: a copy the caller owns, the zero value when
// nothing is recorded (or the partition does not exist).
func (s *Store) RemoteManifest(topicID uuid.UUID, partition int32) RemoteManifest {
	return s.fsm.remoteManifest(topicID, partition)
}

// AddRemoteSegment records an uploaded segment at the end of the
// partition's remote manifest; call it only once the segment's objects are
// durable. It is idempotent by seg.ID: if a segment with that id is already
// recorded, nothing changes and the result is nil, so a retry after an
// ambiguous failure (ErrNotLeader from lost leadership, a ctx error) is
// safe. Otherwise seg must start exactly at the previous segment's
// LastOffset+1 (on an empty manifest: ending at or above its LogStartOffset) and
// satisfy BaseOffset <= LastOffset, else ErrInvalidArgument. ErrUnknownTopic
// when the topic or the partition does not exist.
func (s *Store) AddRemoteSegment(ctx context.Context, topicID uuid.UUID, partition int32, seg RemoteSegment) error {
	_, err := s.propose(ctx, fmt.Sprintf("add remote segment %q to %s-%d", seg.ID, topicID, partition), &addRemoteSegmentV1{
		TopicID:   topicID,
		Partition: partition,
		Segment:   remoteSegmentRecord(seg),
	})
	return err
}

// RemoveRemoteSegments drops the segments with these ids from the
// partition's manifest and raises its LogStartOffset to the largest of its
// current value, logStart and the LastOffset+1 of the last dropped segment
// (a lower logStart leaves it unchanged). The recorded segments among ids
// must be the oldest ones of the manifest, else ErrInvalidArgument (a hole
// in the middle is never allowed); ids not recorded are ignored, so retries
// are safe. Delete the objects only after this returns nil. ErrUnknownTopic
// when the topic or the partition does not exist (deleting a topic drops
// its manifests).
func (s *Store) RemoveRemoteSegments(ctx context.Context, topicID uuid.UUID, partition int32, ids []string, logStart int64) error {
	_, err := s.propose(ctx, fmt.Sprintf("remove %d remote segments of %s-%d", len(ids), topicID, partition), &removeRemoteSegmentsV1{
		TopicID:        topicID,
		Partition:      partition,
		IDs:            slices.Clone(ids),
		LogStartOffset: logStart,
	})
	return err
}
