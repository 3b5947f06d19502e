package metadata

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/uuid"
)

// Replacing remote segments: compaction of a tiered topic rewrites sealed
// remote segments into new objects (fewer records, the same offsets) and
// swaps them into the manifest in one command, so a reader sees either
// every old segment or every new one, and never a manifest missing the
// offsets of either. The old objects are deleted only after the swap
// committed.
//
// Rules (fsm.replaceRemoteSegments):
//   - each replacement names a segment by id (OldID) and a new segment
//     covering exactly the same offsets [BaseOffset, LastOffset], so the
//     manifest stays sorted and contiguous whatever else it holds;
//   - a replacement whose old segment is not in the manifest is skipped:
//     retention removed it meanwhile, another cleaning replaced it, or this
//     is a retry of a command that committed. The others still apply;
//   - new ids must be fresh: not in the manifest (unless the replacement is
//     skipped) and not repeated within the command; old ids not repeated;
//   - anything else wrong rejects the whole command (ErrInvalidArgument),
//     nothing applied.

// replaceRemoteSegmentsV1 swaps segments of a partition's remote manifest
// for rewritten copies of the same offsets.
type replaceRemoteSegmentsV1 struct {
	TopicID      uuid.UUID              `json:"topic_id"`
	Partition    int32                  `json:"partition"`
	Replacements []remoteReplacementRec `json:"replacements"`
}

type remoteReplacementRec struct {
	OldID   string           `json:"old_id"`
	Segment remoteSegmentRec `json:"segment"`
}

func (*replaceRemoteSegmentsV1) kind() (cmdType, uint16) { return cmdReplaceRemoteSegments, 1 }

func (f *fsm) replaceRemoteSegments(c *replaceRemoteSegmentsV1) (bool, error) {
	op := func() string {
		return fmt.Sprintf("replace %d remote segments of %s", len(c.Replacements), f.partitionName(c.TopicID, c.Partition))
	}
	if err := f.checkPartition(c.TopicID, c.Partition); err != nil {
		return false, fmt.Errorf("%s: %w", op(), err)
	}
	if len(c.Replacements) == 0 {
		return false, fmt.Errorf("%s: no replacement: %w", op(), ErrInvalidArgument)
	}
	olds := make(map[string]bool, len(c.Replacements))
	news := make(map[string]bool, len(c.Replacements))
	for i := range c.Replacements {
		r := &c.Replacements[i]
		seg := &r.Segment
		switch {
		case r.OldID == "":
			return false, fmt.Errorf("%s: empty old segment id: %w", op(), ErrInvalidArgument)
		case olds[r.OldID]:
			return false, fmt.Errorf("%s: segment %q replaced twice: %w", op(), r.OldID, ErrInvalidArgument)
		case news[seg.ID] || seg.ID == r.OldID:
			return false, fmt.Errorf("%s: new segment id %q is not fresh: %w", op(), seg.ID, ErrInvalidArgument)
		}
		if err := validSegment(seg); err != nil {
			return false, fmt.Errorf("%s: segment %q: %w", op(), seg.ID, err)
		}
		olds[r.OldID], news[seg.ID] = true, true
	}
	for id := range news {
		if olds[id] {
			return false, fmt.Errorf("%s: new segment id %q is replaced in the same command: %w", op(), id, ErrInvalidArgument)
		}
	}
	cur := f.st.manifests[partKey{c.TopicID, c.Partition}]
	if cur == nil {
		return false, nil // nothing recorded: every replacement is skipped
	}
	at := make(map[string]int, len(cur.Segments))
	for i, s := range cur.Segments {
		at[s.ID] = i
	}
	var apply []int // indexes into c.Replacements
	for i, r := range c.Replacements {
		j, ok := at[r.OldID]
		if !ok {
			continue
		}
		old, seg := cur.Segments[j], r.Segment
		if _, dup := at[seg.ID]; dup {
			return false, fmt.Errorf("%s: new segment id %q is already in the manifest: %w", op(), seg.ID, ErrInvalidArgument)
		}
		if seg.BaseOffset != old.BaseOffset || seg.LastOffset != old.LastOffset {
			return false, fmt.Errorf("%s: segment %q [%d, %d] would replace %q [%d, %d]: a replacement must cover the same offsets: %w",
				op(), seg.ID, seg.BaseOffset, seg.LastOffset, old.ID, old.BaseOffset, old.LastOffset, ErrInvalidArgument)
		}
		apply = append(apply, i)
	}
	if len(apply) == 0 {
		return false, nil
	}
	nm := *cur
	// A fresh array: records are immutable once published (remoteManifest
	// copies them after the unlock).
	nm.Segments = slices.Clone(cur.Segments)
	for _, i := range apply {
		r := c.Replacements[i]
		nm.Segments[at[r.OldID]] = canonicalSegment(r.Segment)
	}
	f.st.manifests[partKey{c.TopicID, c.Partition}] = &nm
	return true, nil
}

// RemoteSegmentReplacement names a recorded segment and the rewritten
// segment that takes its place (same BaseOffset and LastOffset).
type RemoteSegmentReplacement struct {
	OldID   string
	Segment RemoteSegment
}

// ReplaceRemoteSegments swaps recorded segments of the partition's remote
// manifest for rewritten ones in one committed change; call it only once
// the new segments' objects are durable, and delete the old objects only
// after it returns nil. Each new segment must cover exactly its old one's
// offsets and carry a fresh id, else ErrInvalidArgument and nothing
// changes. A replacement whose old segment is not recorded (removed by
// retention, or already replaced: a retry) is skipped, so retries are
// safe. ErrUnknownTopic when the topic or the partition does not exist.
func (s *Store) ReplaceRemoteSegments(ctx context.Context, topicID uuid.UUID, partition int32, reps []RemoteSegmentReplacement) error {
	c := &replaceRemoteSegmentsV1{TopicID: topicID, Partition: partition, Replacements: make([]remoteReplacementRec, len(reps))}
	for i, r := range reps {
		c.Replacements[i] = remoteReplacementRec{OldID: r.OldID, Segment: remoteSegmentRecord(r.Segment)}
	}
	_, err := s.propose(ctx, fmt.Sprintf("replace %d remote segments of %s-%d", len(reps), topicID, partition), c)
	return err
}
