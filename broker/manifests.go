package broker

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/strata-broker/strata/metadata"
	"github.com/strata-broker/strata/tiering"
)

// manifestStore keeps the tiering manifests in the metadata quorum, so a
// remote segment is durably recorded (Raft log and snapshots) before its
// local copy may go. It only translates types: the FSM enforces the same
// contiguity and prefix rules as tiering.Manifest.
type manifestStore struct{ meta *metadata.Store }

var _ tiering.ManifestStore = manifestStore{}

func (m manifestStore) Manifest(topicID uuid.UUID, partition int32) tiering.Manifest {
	rm := m.meta.RemoteManifest(topicID, partition)
	out := tiering.Manifest{LogStartOffset: rm.LogStartOffset, Segments: make([]tiering.RemoteSegment, 0, len(rm.Segments))}
	for _, s := range rm.Segments {
		seg := tiering.RemoteSegment{ID: s.ID, BaseOffset: s.BaseOffset, LastOffset: s.LastOffset, Size: s.Size,
			MaxTimestamp: s.MaxTimestamp, IndexSize: s.IndexSize, TimeIndexSize: s.TimeIndexSize,
			TxnIndexSize: s.TxnIndexSize, ProducerSnapshotSize: s.ProducerSnapshotSize}
		for _, e := range s.Epochs {
			seg.Epochs = append(seg.Epochs, tiering.EpochEntry{Epoch: e.Epoch, StartOffset: e.StartOffset})
		}
		out.Segments = append(out.Segments, seg)
	}
	return out
}

func (m manifestStore) AddSegment(ctx context.Context, topicID uuid.UUID, partition int32, seg tiering.RemoteSegment) error {
	rs := metadata.RemoteSegment{ID: seg.ID, BaseOffset: seg.BaseOffset, LastOffset: seg.LastOffset, Size: seg.Size,
		MaxTimestamp: seg.MaxTimestamp, IndexSize: seg.IndexSize, TimeIndexSize: seg.TimeIndexSize,
		TxnIndexSize: seg.TxnIndexSize, ProducerSnapshotSize: seg.ProducerSnapshotSize}
	for _, e := range seg.Epochs {
		rs.Epochs = append(rs.Epochs, metadata.RemoteEpoch{Epoch: e.Epoch, StartOffset: e.StartOffset})
	}
	return m.meta.AddRemoteSegment(ctx, topicID, partition, rs)
}

func (m manifestStore) RemoveSegments(ctx context.Context, topicID uuid.UUID, partition int32, ids []string, logStart int64) error {
	err := m.meta.RemoveRemoteSegments(ctx, topicID, partition, ids, logStart)
	if errors.Is(err, metadata.ErrUnknownTopic) {
		// The topic is gone and its manifests with it: nothing is left to
		// remove, which is what the caller wanted.
		return nil
	}
	return err
}
