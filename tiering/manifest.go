package tiering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/google/uuid"

	"github.com/strata-broker/strata/storage"
)

// Manifest errors.
var (
	// ErrNotContiguous: a manifest change would leave a hole or an overlap
	// in the offsets the remote tier covers (AddSegment not at the end,
	// RemoveSegments not removing a prefix).
	ErrNotContiguous = errors.New("tiering: manifest change is not contiguous")
	// ErrBadManifest: a manifest (or its JSON copy) breaks its invariants.
	ErrBadManifest = errors.New("tiering: malformed manifest")
)

// EpochEntry says leader epoch Epoch wrote its first offset of the segment
// at StartOffset.
type EpochEntry struct {
	Epoch       int32 `json:"epoch"`
	StartOffset int64 `json:"startOffset"`
}

// RemoteSegment is one uploaded segment as the manifest records it. The
// object keys derive from ID and BaseOffset (see KeyFor), so a segment
// uploaded twice (a retry after a crash) gets fresh keys and the older
// copy is an orphan, never confused with the committed one.
type RemoteSegment struct {
	ID           string `json:"id"` // unique upload id (a uuid string)
	BaseOffset   int64  `json:"baseOffset"`
	LastOffset   int64  `json:"lastOffset"` // the segment covers [BaseOffset, LastOffset]
	Size         int64  `json:"size"`       // bytes of the .log object
	MaxTimestamp int64  `json:"maxTimestamp"`
	// Epochs: the epoch in force at BaseOffset first, then those starting
	// inside the segment.
	Epochs        []EpochEntry `json:"epochs,omitempty"`
	IndexSize     int64        `json:"indexSize"`
	TimeIndexSize int64        `json:"timeIndexSize"`
	// TxnIndexSize is the size of the .txnindex object (Kafka's aborted
	// transaction entries whose abort marker is in the segment), 0 when
	// nothing was aborted there: then there is no object to fetch.
	// ProducerSnapshotSize is the size of the .snapshot object (producer
	// state as of the segment's end, storage's snapshot format), 0 when
	// none was uploaded. Both are omitted when zero, so manifest copies
	// written before they existed decode unchanged.
	TxnIndexSize         int64 `json:"txnIndexSize,omitempty"`
	ProducerSnapshotSize int64 `json:"producerSnapshotSize,omitempty"`
}

// Manifest is the committed list of a partition's remote segments: sorted by
// BaseOffset, each starting where the previous one ends. LogStartOffset is
// the partition's log start as far as the remote tier knows it (it only
// rises); offsets below it are gone even if a segment still covers them.
// LogStartOffset -1 with no segments means nothing is known yet.
type Manifest struct {
	LogStartOffset int64           `json:"logStartOffset"`
	Segments       []RemoteSegment `json:"segments"`
}

// ManifestStore persists manifests durably. The broker implements it on
// the metadata quorum (the manifests live in the Raft FSM and its
// snapshots), using Manifest.WithSegment and Manifest.WithoutSegments so
// both sides agree on the rules.
type ManifestStore interface {
	// Manifest returns the committed manifest (a copy the caller may keep).
	// An unknown partition gives the zero Manifest.
	Manifest(topicID uuid.UUID, partition int32) Manifest
	// AddSegment appends seg (Manifest.WithSegment): idempotent by ID,
	// ErrNotContiguous unless seg starts at the end. Once it returns nil the
	// segment is committed; an error may or may not have committed it.
	AddSegment(ctx context.Context, topicID uuid.UUID, partition int32, seg RemoteSegment) error
	// RemoveSegments drops the segments with these ids (a prefix) and
	// raises the log start to logStart (Manifest.WithoutSegments).
	RemoveSegments(ctx context.Context, topicID uuid.UUID, partition int32, ids []string, logStart int64) error
}

// End is the offset after the last remote segment (LastOffset+1), or
// LogStartOffset when there is none (-1 when that is unknown too).
func (m Manifest) End() int64 {
	if n := len(m.Segments); n > 0 {
		return m.Segments[n-1].LastOffset + 1
	}
	return m.LogStartOffset
}

// Bytes is the total size of the .log objects.
func (m Manifest) Bytes() int64 {
	var n int64
	for _, s := range m.Segments {
		n += s.Size
	}
	return n
}

// Find returns the index of the segment to read for offset: the one
// covering it, or the first segment when offset lies between the log start
// and the first segment's base (offsets missing there read as the next
// existing one, as in a local log). ok is false below the log start, past
// the end, or with no segments.
func (m Manifest) Find(offset int64) (i int, ok bool) {
	n := len(m.Segments)
	if n == 0 || offset < m.LogStartOffset || offset > m.Segments[n-1].LastOffset {
		return 0, false
	}
	i = sort.Search(n, func(i int) bool { return m.Segments[i].LastOffset >= offset })
	return i, true
}

// Clone returns a deep copy.
func (m Manifest) Clone() Manifest {
	c := Manifest{LogStartOffset: m.LogStartOffset}
	if m.Segments != nil {
		c.Segments = make([]RemoteSegment, len(m.Segments))
		for i, s := range m.Segments {
			s.Epochs = append([]EpochEntry(nil), s.Epochs...)
			c.Segments[i] = s
		}
	}
	return c
}

// Contains reports whether a segment with this upload id is in m.
func (m Manifest) Contains(id string) bool {
	for i := range m.Segments {
		if m.Segments[i].ID == id {
			return true
		}
	}
	return false
}

// WithSegment returns m with seg appended; m is not modified. A segment
// whose ID is already there returns m unchanged (AddSegment is idempotent,
// so a retry after an ambiguous failure is safe). Otherwise seg must be
// well formed and start at End, or, when m has no segments, hold at least
// one offset at or above the log start (its first batch may hold offsets
// below it: delete records cut it). The log start does not change.
func (m Manifest) WithSegment(seg RemoteSegment) (Manifest, error) {
	if m.Contains(seg.ID) {
		return m, nil
	}
	if err := seg.validate(); err != nil {
		return m, err
	}
	if n := len(m.Segments); n > 0 {
		if seg.BaseOffset != m.End() {
			return m, fmt.Errorf("add segment %s [%d, %d] at manifest end %d: %w", seg.ID, seg.BaseOffset, seg.LastOffset, m.End(), ErrNotContiguous)
		}
	} else if seg.LastOffset < m.LogStartOffset {
		return m, fmt.Errorf("add segment %s [%d, %d] below log start %d: %w", seg.ID, seg.BaseOffset, seg.LastOffset, m.LogStartOffset, ErrNotContiguous)
	}
	out := m.Clone()
	seg.Epochs = append([]EpochEntry(nil), seg.Epochs...)
	out.Segments = append(out.Segments, seg)
	return out, nil
}

// WithoutSegments returns m without the segments whose ids are listed
// (they must be its oldest segments: removal leaves no hole) and with the
// log start raised to logStart (never lowered). Unknown ids are ignored,
// so a retried removal is harmless. m is not modified.
func (m Manifest) WithoutSegments(ids []string, logStart int64) (Manifest, error) {
	drop := make(map[string]bool, len(ids))
	for _, id := range ids {
		drop[id] = true
	}
	k := 0
	for k < len(m.Segments) && drop[m.Segments[k].ID] {
		k++
	}
	for _, s := range m.Segments[k:] {
		if drop[s.ID] {
			return m, fmt.Errorf("remove segment %s [%d, %d]: not among the oldest: %w", s.ID, s.BaseOffset, s.LastOffset, ErrNotContiguous)
		}
	}
	out := m.Clone()
	out.Segments = out.Segments[k:]
	if len(out.Segments) == 0 {
		out.Segments = nil
	}
	if k > 0 {
		// Offsets of removed segments are gone even if the caller did not
		// say so.
		logStart = max(logStart, m.Segments[k-1].LastOffset+1)
	}
	out.LogStartOffset = max(out.LogStartOffset, logStart)
	return out, nil
}

// Validate checks the invariants: segments well formed, sorted, contiguous,
// ids unique, the log start not past the end.
func (m Manifest) Validate() error {
	ids := make(map[string]bool, len(m.Segments))
	for i, s := range m.Segments {
		if err := s.validate(); err != nil {
			return err
		}
		if ids[s.ID] {
			return fmt.Errorf("manifest: duplicate segment id %s: %w", s.ID, ErrBadManifest)
		}
		ids[s.ID] = true
		if i > 0 && s.BaseOffset != m.Segments[i-1].LastOffset+1 {
			return fmt.Errorf("manifest: segment %s starts at %d after %d: %w", s.ID, s.BaseOffset, m.Segments[i-1].LastOffset, ErrBadManifest)
		}
	}
	if m.LogStartOffset < -1 || (len(m.Segments) > 0 && m.LogStartOffset > m.End()) {
		return fmt.Errorf("manifest: log start %d, end %d: %w", m.LogStartOffset, m.End(), ErrBadManifest)
	}
	return nil
}

func (s RemoteSegment) validate() error {
	bad := func(why string) error {
		return fmt.Errorf("remote segment %q [%d, %d]: %s: %w", s.ID, s.BaseOffset, s.LastOffset, why, ErrBadManifest)
	}
	switch {
	case s.ID == "" || len(s.ID) > 64 || !isKeySafe(s.ID):
		return bad("bad id")
	case s.BaseOffset < 0 || s.LastOffset < s.BaseOffset:
		return bad("bad offsets")
	case s.Size < 0 || s.Size > 1<<40 || s.IndexSize < 0 || s.TimeIndexSize < 0 || s.TxnIndexSize < 0 || s.ProducerSnapshotSize < 0:
		return bad("bad sizes")
	case s.IndexSize%offsetEntrySize != 0 || s.TimeIndexSize%timeEntrySize != 0 || s.TxnIndexSize%storage.TxnIndexEntrySize != 0:
		return bad("index sizes not whole entries")
	}
	for i, e := range s.Epochs {
		if e.StartOffset < s.BaseOffset || e.StartOffset > s.LastOffset || (i > 0 && (e.StartOffset <= s.Epochs[i-1].StartOffset || e.Epoch <= s.Epochs[i-1].Epoch)) {
			return bad("bad epochs")
		}
	}
	return nil
}

// isKeySafe: ids go into object keys and cache file names.
func isKeySafe(id string) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// EncodeManifest is the JSON written to the bucket next to the segments, so
// a cluster can be rebuilt from its bucket alone.
func EncodeManifest(m Manifest) ([]byte, error) {
	if m.Segments == nil {
		m.Segments = []RemoteSegment{}
	}
	return json.Marshal(m)
}

// DecodeManifest parses and validates a bucket copy of a manifest.
func DecodeManifest(b []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("manifest: %v: %w", err, ErrBadManifest)
	}
	if len(m.Segments) == 0 {
		m.Segments = nil
	}
	for i := range m.Segments {
		if len(m.Segments[i].Epochs) == 0 {
			m.Segments[i].Epochs = nil
		}
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}
