package metadata

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
)

// seg builds a segment record whose sizes derive from its offsets.
func seg(id string, base, last int64, epochs ...remoteEpochRec) remoteSegmentRec {
	n := last - base + 1
	return remoteSegmentRec{
		ID: id, BaseOffset: base, LastOffset: last, Size: n * 100, MaxTimestamp: 1_700_000_000_000 + last,
		Epochs: epochs, IndexSize: n, TimeIndexSize: n * 2,
	}
}

// pub is seg in the public form, as RemoteManifest returns it.
func pub(id string, base, last int64, epochs ...RemoteEpoch) RemoteSegment {
	r := seg(id, base, last)
	return RemoteSegment{
		ID: r.ID, BaseOffset: r.BaseOffset, LastOffset: r.LastOffset, Size: r.Size, MaxTimestamp: r.MaxTimestamp,
		Epochs: epochs, IndexSize: r.IndexSize, TimeIndexSize: r.TimeIndexSize,
	}
}

func addSeg(id uuid.UUID, p int32, s remoteSegmentRec) *addRemoteSegmentV1 {
	return &addRemoteSegmentV1{TopicID: id, Partition: p, Segment: s}
}

func removeSegs(id uuid.UUID, p int32, logStart int64, ids ...string) *removeRemoteSegmentsV1 {
	return &removeRemoteSegmentsV1{TopicID: id, Partition: p, IDs: ids, LogStartOffset: logStart}
}

// wantManifest checks the manifest of one partition.
func wantManifest(id uuid.UUID, p int32, want RemoteManifest) func(*testing.T, *fsm, applyResult) {
	return func(t *testing.T, f *fsm, _ applyResult) {
		t.Helper()
		if got := f.remoteManifest(id, p); !reflect.DeepEqual(got, want) {
			t.Errorf("manifest of %s-%d\n got: %+v\nwant: %+v", id, p, got, want)
		}
	}
}

func TestFSMRemoteManifests(t *testing.T) {
	twoParts := topicCmd("t", idA, part(0, 1), part(1, 1))
	// base: partition 0 holds [0, 99] and [100, 199].
	base := []command{twoParts, addSeg(idA, 0, seg("a", 0, 99)), addSeg(idA, 0, seg("b", 100, 199))}
	three := append(base[:len(base):len(base)], addSeg(idA, 0, seg("c", 200, 299)))
	ab := RemoteManifest{Segments: []RemoteSegment{pub("a", 0, 99), pub("b", 100, 199)}}

	runFSMCases(t, []fsmCase{
		// AddRemoteSegment.
		{
			name:    "first segment",
			setup:   []command{twoParts},
			cmd:     addSeg(idA, 0, seg("a", 0, 99, remoteEpochRec{Epoch: 1, StartOffset: 0}, remoteEpochRec{Epoch: 2, StartOffset: 40})),
			changed: true,
			check: wantManifest(idA, 0, RemoteManifest{Segments: []RemoteSegment{
				pub("a", 0, 99, RemoteEpoch{Epoch: 1, StartOffset: 0}, RemoteEpoch{Epoch: 2, StartOffset: 40}),
			}}),
		},
		{
			name:    "first segment may start above offset 0",
			setup:   []command{twoParts},
			cmd:     addSeg(idA, 1, seg("a", 5000, 5000)),
			changed: true,
			check:   wantManifest(idA, 1, RemoteManifest{Segments: []RemoteSegment{pub("a", 5000, 5000)}}),
		},
		{
			name:    "contiguous segment",
			setup:   base,
			cmd:     addSeg(idA, 0, seg("c", 200, 299)),
			changed: true,
			check:   wantManifest(idA, 0, RemoteManifest{Segments: []RemoteSegment{pub("a", 0, 99), pub("b", 100, 199), pub("c", 200, 299)}}),
		},
		{
			name:  "retry of the last segment is a no-op",
			setup: base,
			cmd:   addSeg(idA, 0, seg("b", 100, 199)),
			check: wantManifest(idA, 0, ab),
		},
		{
			name:  "retry of an earlier segment is a no-op",
			setup: base,
			cmd:   addSeg(idA, 0, seg("a", 0, 99)),
			check: wantManifest(idA, 0, ab),
		},
		{
			name:  "known id with other content is a no-op",
			setup: base,
			cmd:   addSeg(idA, 0, seg("a", 200, 250)),
			check: wantManifest(idA, 0, ab),
		},
		{
			name:    "same id on another partition is another segment",
			setup:   base,
			cmd:     addSeg(idA, 1, seg("a", 0, 9)),
			changed: true,
			check: func(t *testing.T, f *fsm, res applyResult) {
				wantManifest(idA, 0, ab)(t, f, res)
				wantManifest(idA, 1, RemoteManifest{Segments: []RemoteSegment{pub("a", 0, 9)}})(t, f, res)
			},
		},
		{name: "gap after the last segment", setup: base, cmd: addSeg(idA, 0, seg("c", 201, 299)), wantErr: ErrInvalidArgument},
		{name: "overlap with the last segment", setup: base, cmd: addSeg(idA, 0, seg("c", 199, 299)), wantErr: ErrInvalidArgument},
		{name: "segment before the first one", setup: base, cmd: addSeg(idA, 0, seg("z", 0, 99)), wantErr: ErrInvalidArgument},
		{name: "last offset below base offset", setup: base, cmd: addSeg(idA, 0, remoteSegmentRec{ID: "c", BaseOffset: 200, LastOffset: 199}), wantErr: ErrInvalidArgument},
		{name: "last offset below base offset on an empty manifest", setup: []command{twoParts}, cmd: addSeg(idA, 0, remoteSegmentRec{ID: "a", BaseOffset: 10, LastOffset: 9}), wantErr: ErrInvalidArgument},
		{name: "empty id", setup: base, cmd: addSeg(idA, 0, seg("", 200, 299)), wantErr: ErrInvalidArgument},
		{name: "negative base offset", setup: []command{twoParts}, cmd: addSeg(idA, 0, seg("a", -1, 9)), wantErr: ErrInvalidArgument},
		{name: "negative size", setup: []command{twoParts}, cmd: addSeg(idA, 0, remoteSegmentRec{ID: "a", LastOffset: 9, Size: -1}), wantErr: ErrInvalidArgument},
		{name: "negative index size", setup: []command{twoParts}, cmd: addSeg(idA, 0, remoteSegmentRec{ID: "a", LastOffset: 9, TimeIndexSize: -1}), wantErr: ErrInvalidArgument},
		{name: "last offset leaves no next offset", setup: []command{twoParts}, cmd: addSeg(idA, 0, seg("a", 0, math.MaxInt64)), wantErr: ErrInvalidArgument},
		{name: "add to unknown topic", cmd: addSeg(idA, 0, seg("a", 0, 9)), wantErr: ErrUnknownTopic},
		{name: "add to partition past the last", setup: []command{twoParts}, cmd: addSeg(idA, 2, seg("a", 0, 9)), wantErr: ErrUnknownTopic},
		{name: "add to negative partition", setup: []command{twoParts}, cmd: addSeg(idA, -1, seg("a", 0, 9)), wantErr: ErrUnknownTopic},
		{
			name:    "add to a partition created later",
			setup:   []command{twoParts, &createPartitionsV1{TopicID: idA, Partitions: []partitionRec{part(2, 1)}}},
			cmd:     addSeg(idA, 2, seg("a", 0, 9)),
			changed: true,
			check:   wantManifest(idA, 2, RemoteManifest{Segments: []RemoteSegment{pub("a", 0, 9)}}),
		},
		{
			name:    "emptied manifest continues at its log start",
			setup:   append(base[:len(base):len(base)], removeSegs(idA, 0, 0, "a", "b")),
			cmd:     addSeg(idA, 0, seg("c", 200, 299)),
			changed: true,
			check:   wantManifest(idA, 0, RemoteManifest{LogStartOffset: 200, Segments: []RemoteSegment{pub("c", 200, 299)}}),
		},
		{
			name:    "empty manifest accepts a segment above its log start",
			setup:   []command{twoParts, removeSegs(idA, 0, 500)},
			cmd:     addSeg(idA, 0, seg("a", 700, 799)),
			changed: true,
			check:   wantManifest(idA, 0, RemoteManifest{LogStartOffset: 500, Segments: []RemoteSegment{pub("a", 700, 799)}}),
		},
		{
			name:    "empty manifest accepts a segment straddling its log start",
			setup:   []command{twoParts, removeSegs(idA, 0, 500)},
			cmd:     addSeg(idA, 0, seg("a", 450, 599)),
			changed: true,
			check:   wantManifest(idA, 0, RemoteManifest{LogStartOffset: 500, Segments: []RemoteSegment{pub("a", 450, 599)}}),
		},
		{
			name:    "empty manifest refuses a segment below its log start",
			setup:   append(base[:len(base):len(base)], removeSegs(idA, 0, 0, "a", "b")),
			cmd:     addSeg(idA, 0, seg("again", 100, 199)),
			wantErr: ErrInvalidArgument,
		},
		{
			name:    "re-adding a removed segment is refused",
			setup:   append(base[:len(base):len(base)], removeSegs(idA, 0, 0, "a", "b")),
			cmd:     addSeg(idA, 0, seg("b", 100, 199)),
			wantErr: ErrInvalidArgument,
		},

		// RemoveRemoteSegments.
		{
			name:    "remove the oldest segment",
			setup:   three,
			cmd:     removeSegs(idA, 0, 0, "a"),
			changed: true,
			// The log start follows the removed data even if the caller
			// asked for less.
			check: wantManifest(idA, 0, RemoteManifest{LogStartOffset: 100, Segments: []RemoteSegment{pub("b", 100, 199), pub("c", 200, 299)}}),
		},
		{
			name:    "remove a prefix in any order",
			setup:   three,
			cmd:     removeSegs(idA, 0, 150, "b", "a", "a"),
			changed: true,
			check:   wantManifest(idA, 0, RemoteManifest{LogStartOffset: 200, Segments: []RemoteSegment{pub("c", 200, 299)}}),
		},
		{
			name:    "log start beyond the removed segments",
			setup:   three,
			cmd:     removeSegs(idA, 0, 250, "a", "b"),
			changed: true,
			check:   wantManifest(idA, 0, RemoteManifest{LogStartOffset: 250, Segments: []RemoteSegment{pub("c", 200, 299)}}),
		},
		{
			name:    "remove everything",
			setup:   three,
			cmd:     removeSegs(idA, 0, 0, "a", "b", "c"),
			changed: true,
			check:   wantManifest(idA, 0, RemoteManifest{LogStartOffset: 300}),
		},
		{
			name:    "raise the log start only",
			setup:   base,
			cmd:     removeSegs(idA, 0, 50),
			changed: true,
			check:   wantManifest(idA, 0, RemoteManifest{LogStartOffset: 50, Segments: ab.Segments}),
		},
		{
			name:    "log start of a partition with no segments yet",
			setup:   []command{twoParts},
			cmd:     removeSegs(idA, 1, 42),
			changed: true,
			check:   wantManifest(idA, 1, RemoteManifest{LogStartOffset: 42}),
		},
		{
			name:  "log start never goes down",
			setup: append(base[:len(base):len(base)], removeSegs(idA, 0, 50)),
			cmd:   removeSegs(idA, 0, 10),
			check: wantManifest(idA, 0, RemoteManifest{LogStartOffset: 50, Segments: ab.Segments}),
		},
		{
			name:  "negative log start changes nothing",
			setup: base,
			cmd:   removeSegs(idA, 0, -1),
			check: wantManifest(idA, 0, ab),
		},
		{
			name:  "unknown ids are ignored",
			setup: base,
			cmd:   removeSegs(idA, 0, 0, "x", "y"),
			check: wantManifest(idA, 0, ab),
		},
		{
			name:  "retry of a committed removal",
			setup: append(base[:len(base):len(base)], removeSegs(idA, 0, 100, "a")),
			cmd:   removeSegs(idA, 0, 100, "a"),
			check: wantManifest(idA, 0, RemoteManifest{LogStartOffset: 100, Segments: []RemoteSegment{pub("b", 100, 199)}}),
		},
		{
			name:    "unknown ids next to a prefix",
			setup:   three,
			cmd:     removeSegs(idA, 0, 0, "gone", "a"),
			changed: true,
			check:   wantManifest(idA, 0, RemoteManifest{LogStartOffset: 100, Segments: []RemoteSegment{pub("b", 100, 199), pub("c", 200, 299)}}),
		},
		{
			name:  "nothing recorded and nothing to raise",
			setup: []command{twoParts},
			cmd:   removeSegs(idA, 0, 0, "a"),
			check: func(t *testing.T, f *fsm, _ applyResult) {
				if len(f.st.manifests) != 0 {
					t.Errorf("a no-op removal created manifests: %v", f.st.manifests)
				}
			},
		},
		{name: "remove from the middle", setup: three, cmd: removeSegs(idA, 0, 0, "b"), wantErr: ErrInvalidArgument},
		{name: "remove the newest only", setup: three, cmd: removeSegs(idA, 0, 0, "c"), wantErr: ErrInvalidArgument},
		{name: "remove with a hole", setup: three, cmd: removeSegs(idA, 0, 0, "a", "c"), wantErr: ErrInvalidArgument},
		{name: "remove from unknown topic", cmd: removeSegs(idA, 0, 0, "a"), wantErr: ErrUnknownTopic},
		{name: "remove from partition past the last", setup: base, cmd: removeSegs(idA, 2, 10), wantErr: ErrUnknownTopic},

		// DeleteTopic.
		{
			name: "delete topic drops its manifests only",
			setup: append(base[:len(base):len(base)],
				removeSegs(idA, 1, 7),
				topicCmd("other", idB),
				addSeg(idB, 0, seg("o", 0, 9))),
			cmd:     &deleteTopicV1{ID: idA},
			changed: true,
			check: func(t *testing.T, f *fsm, res applyResult) {
				wantManifest(idA, 0, RemoteManifest{})(t, f, res)
				wantManifest(idA, 1, RemoteManifest{})(t, f, res)
				wantManifest(idB, 0, RemoteManifest{Segments: []RemoteSegment{pub("o", 0, 9)}})(t, f, res)
				if n := len(f.st.manifests); n != 1 {
					t.Errorf("%d manifests left, want 1", n)
				}
			},
		},
		{
			name:    "re-created topic starts with no manifest",
			setup:   append(base[:len(base):len(base)], &deleteTopicV1{ID: idA}),
			cmd:     topicCmd("t", idB),
			changed: true,
			check:   wantManifest(idB, 0, RemoteManifest{}),
		},
		{
			name:    "add to a deleted topic",
			setup:   append(base[:len(base):len(base)], &deleteTopicV1{ID: idA}),
			cmd:     addSeg(idA, 0, seg("c", 200, 299)),
			wantErr: ErrUnknownTopic,
		},
	})
}

func TestRemoteManifestErrorsNameThePartition(t *testing.T) {
	f := newFSM()
	applyCmd(t, f, topicCmd("orders", idA, part(0, 1), part(1, 1), part(2, 1)))
	applyCmd(t, f, addSeg(idA, 2, seg("a", 0, 99)))
	applyCmd(t, f, addSeg(idA, 2, seg("b", 100, 199)))
	for _, tc := range []struct {
		cmd  command
		want []string
	}{
		{addSeg(idA, 2, seg("c", 250, 299)), []string{`"c"`, "orders-2", "[250, 299]", "start at 200"}},
		{removeSegs(idA, 2, 0, "b"), []string{"orders-2", `"b"`, `"a"`, "hole"}},
		{addSeg(idA, 3, seg("c", 200, 299)), []string{"orders", "no partition 3"}},
	} {
		err := applyCmd(t, f, tc.cmd).err
		if err == nil {
			t.Fatalf("%+v accepted", tc.cmd)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not mention %s", err, w)
			}
		}
	}
}

func TestRemoteManifestReadsReturnCopies(t *testing.T) {
	f := newFSM()
	applyCmd(t, f, topicCmd("t", idA))
	s := seg("a", 0, 9, remoteEpochRec{Epoch: 1, StartOffset: 0})
	cmd := addSeg(idA, 0, s)
	applyCmd(t, f, cmd)
	// The command's own slices are not retained either.
	cmd.Segment.Epochs[0].Epoch = 77

	got := f.remoteManifest(idA, 0)
	got.Segments[0].ID = "changed"
	got.Segments[0].Epochs[0].Epoch = 99
	got.LogStartOffset = 5

	want := RemoteManifest{Segments: []RemoteSegment{pub("a", 0, 9, RemoteEpoch{Epoch: 1, StartOffset: 0})}}
	if again := f.remoteManifest(idA, 0); !reflect.DeepEqual(again, want) {
		t.Errorf("state changed through a returned copy\n got: %+v\nwant: %+v", again, want)
	}
	if m := f.remoteManifest(idB, 0); !reflect.DeepEqual(m, RemoteManifest{}) {
		t.Errorf("manifest of an unknown topic = %+v, want the zero value", m)
	}
}

// snapshotV1Doc is a format 1 snapshot exactly as binaries without remote
// manifests wrote it (see TestSnapshotFormat).
const snapshotV1Doc = `{"format":1,"cluster_id":"c","brokers":[{"id":1,"host":"h","port":9092,"rack":""}],` +
	`"topics":[{"name":"t","id":"0a1b2c3d-0000-4000-8000-00000000000a","internal":false,"configs":null,` +
	`"partitions":[{"index":0,"replicas":[1],"isr":[1],"leader":1,"leader_epoch":0,"partition_epoch":0}]}],` +
	`"next_producer_id":10}` + "\n"

func TestRestoreFormat1Snapshot(t *testing.T) {
	f := newFSM()
	if err := f.Restore(readCloser([]byte(snapshotV1Doc))); err != nil {
		t.Fatalf("a format 1 snapshot no longer restores: %v", err)
	}
	if _, ok := f.topic("t"); !ok || f.clusterID() != "c" || f.nextProducerID() != 10 {
		t.Fatalf("format 1 snapshot restored wrongly: %+v", f.st)
	}
	if len(f.st.manifests) != 0 {
		t.Errorf("manifests out of nowhere: %v", f.st.manifests)
	}
	// Until a manifest exists the snapshot stays in format 1, byte for byte,
	// so voters not yet upgraded can still install it.
	if got := string(snapshotState(t, f)); got != snapshotV1Doc {
		t.Errorf("re-snapshot without manifests\n got: %s\nwant: %s", got, snapshotV1Doc)
	}
	if res := applyCmd(t, f, addSeg(idA, 0, seg("a", 0, 9))); res.err != nil {
		t.Fatalf("add after a format 1 restore: %v", res.err)
	}
	if got := string(snapshotState(t, f)); !strings.HasPrefix(got, `{"format":2,`) {
		t.Errorf("snapshot with a manifest is not format 2: %s", got)
	}
}

func TestSnapshotFormat2(t *testing.T) {
	// Pins the format 2 document: changing it needs a new format number.
	f := newFSM()
	applyCmd(t, f, &initClusterV1{ClusterID: "c"})
	applyCmd(t, f, topicCmd("t", idA, part(0, 1), part(1, 1)))
	applyCmd(t, f, topicCmd("u", idB))
	applyCmd(t, f, addSeg(idB, 0, remoteSegmentRec{ID: "x", BaseOffset: 0, LastOffset: 9, Size: 1000, MaxTimestamp: 5,
		Epochs: []remoteEpochRec{{Epoch: 2, StartOffset: 3}}, IndexSize: 8, TimeIndexSize: 12}))
	applyCmd(t, f, removeSegs(idA, 1, 7))
	applyCmd(t, f, addSeg(idA, 1, remoteSegmentRec{ID: "y", BaseOffset: 7, LastOffset: 7}))
	want := `{"format":2,"cluster_id":"c","brokers":null,` +
		`"topics":[{"name":"t","id":"0a1b2c3d-0000-4000-8000-00000000000a","internal":false,"configs":null,` +
		`"partitions":[{"index":0,"replicas":[1],"isr":[1],"leader":1,"leader_epoch":0,"partition_epoch":0},` +
		`{"index":1,"replicas":[1],"isr":[1],"leader":1,"leader_epoch":0,"partition_epoch":0}]},` +
		`{"name":"u","id":"0a1b2c3d-0000-4000-8000-00000000000b","internal":false,"configs":null,` +
		`"partitions":[{"index":0,"replicas":[1],"isr":[1],"leader":1,"leader_epoch":0,"partition_epoch":0}]}],` +
		`"next_producer_id":0,"remote_manifests":[` +
		`{"topic_id":"0a1b2c3d-0000-4000-8000-00000000000a","partition":1,"log_start_offset":7,` +
		`"segments":[{"id":"y","base_offset":7,"last_offset":7,"size":0,"max_timestamp":0,"epochs":null,"index_size":0,"time_index_size":0}]},` +
		`{"topic_id":"0a1b2c3d-0000-4000-8000-00000000000b","partition":0,"log_start_offset":0,` +
		`"segments":[{"id":"x","base_offset":0,"last_offset":9,"size":1000,"max_timestamp":5,"epochs":[{"epoch":2,"start_offset":3}],"index_size":8,"time_index_size":12}]}]}` + "\n"
	if got := string(snapshotState(t, f)); got != want {
		t.Errorf("snapshot\n got: %s\nwant: %s", got, want)
	}
}

func TestRestoreCanonicalManifests(t *testing.T) {
	doc := `{"format":2,"topics":[{"name":"t","id":"0a1b2c3d-0000-4000-8000-00000000000a",` +
		`"partitions":[{"index":0,"replicas":[1],"leader":-1},{"index":1,"replicas":[1],"leader":-1}]}],` +
		`"remote_manifests":[` +
		`{"topic_id":"0a1b2c3d-0000-4000-8000-00000000000a","partition":0,"log_start_offset":0,"segments":[]},` +
		`{"topic_id":"0a1b2c3d-0000-4000-8000-00000000000a","partition":1,"log_start_offset":3,"segments":[` +
		`{"id":"a","base_offset":3,"last_offset":4,"epochs":[]}]}]}`
	f := newFSM()
	if err := f.Restore(readCloser([]byte(doc))); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.st.manifests[partKey{idA, 0}]; ok {
		t.Error("an empty manifest entry was kept")
	}
	m := f.st.manifests[partKey{idA, 1}]
	if m == nil || len(m.Segments) != 1 || m.Segments[0].Epochs != nil {
		t.Errorf("manifest not in canonical form: %+v", m)
	}
}

func TestRestoreRejectsBadManifests(t *testing.T) {
	const topic = `"topics":[{"name":"t","id":"0a1b2c3d-0000-4000-8000-00000000000a",` +
		`"partitions":[{"index":0,"replicas":[1],"leader":-1},{"index":1,"replicas":[1],"leader":-1}]}]`
	manifests := func(ms ...string) string {
		return `{"format":2,` + topic + `,"remote_manifests":[` + strings.Join(ms, ",") + `]}`
	}
	m := func(tail string) string {
		return `{"topic_id":"0a1b2c3d-0000-4000-8000-00000000000a",` + tail + `}`
	}
	ok := m(`"partition":0,"segments":[{"id":"a","base_offset":0,"last_offset":9}]`)
	// The helpers build a valid document when given valid entries.
	if err := newFSM().Restore(readCloser([]byte(manifests(ok)))); err != nil {
		t.Fatalf("valid document refused: %v", err)
	}
	tests := []struct {
		name string
		data string
	}{
		{"manifests in format 1", `{"format":1,` + topic + `,"remote_manifests":[` + ok + `]}`},
		{"null manifest", manifests("null")},
		{"unknown topic", manifests(`{"topic_id":"0a1b2c3d-0000-4000-8000-00000000000b","partition":0,"log_start_offset":1}`)},
		{"partition past the last", manifests(m(`"partition":2,"log_start_offset":1`))},
		{"negative partition", manifests(m(`"partition":-1,"log_start_offset":1`))},
		{"listed twice", manifests(ok, ok)},
		{"negative log start", manifests(m(`"partition":0,"log_start_offset":-1`))},
		{"unknown field", manifests(m(`"partition":0,"log_start_offset":1,"extra":1`))},
		{"empty segment id", manifests(m(`"partition":0,"segments":[{"id":"","base_offset":0,"last_offset":9}]`))},
		{"last below base", manifests(m(`"partition":0,"segments":[{"id":"a","base_offset":5,"last_offset":4}]`))},
		{"negative size", manifests(m(`"partition":0,"segments":[{"id":"a","base_offset":0,"last_offset":4,"size":-1}]`))},
		{"gap", manifests(m(`"partition":0,"segments":[{"id":"a","base_offset":0,"last_offset":4},{"id":"b","base_offset":6,"last_offset":9}]`))},
		{"overlap", manifests(m(`"partition":0,"segments":[{"id":"a","base_offset":0,"last_offset":4},{"id":"b","base_offset":4,"last_offset":9}]`))},
		{"duplicate segment id", manifests(m(`"partition":0,"segments":[{"id":"a","base_offset":0,"last_offset":4},{"id":"a","base_offset":5,"last_offset":9}]`))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFSM()
			applyCmd(t, f, &initClusterV1{ClusterID: "keep"})
			if err := f.Restore(readCloser([]byte(tc.data))); !errors.Is(err, errUnsupportedSnapshot) {
				t.Fatalf("Restore = %v, want errUnsupportedSnapshot", err)
			}
			if f.clusterID() != "keep" {
				t.Error("a failed Restore changed the state")
			}
		})
	}
}

func TestStoreRemoteManifests(t *testing.T) {
	ctx := waitCtx(t)
	cfg := Config{NodeID: 1, Dir: t.TempDir(), tune: func(rc *raft.Config) {
		// Snapshots happen only when the test asks, and then leave almost
		// no log behind, so the second restart must read the snapshot.
		rc.TrailingLogs = 1
		rc.SnapshotThreshold = 1 << 30
	}}
	s := openReady(t, cfg)
	if err := s.CreateTopic(ctx, testTopic("tiered", 2)); err != nil {
		t.Fatal(err)
	}
	tp, _ := s.Topic("tiered")
	id := tp.ID

	a := pub("a", 0, 99, RemoteEpoch{Epoch: 0, StartOffset: 0}, RemoteEpoch{Epoch: 1, StartOffset: 60})
	b := pub("b", 100, 199)
	c := pub("c", 200, 299, RemoteEpoch{Epoch: 2, StartOffset: 200})
	watch := s.Watch()
	for _, sg := range []RemoteSegment{a, b, c} {
		if err := s.AddRemoteSegment(ctx, id, 0, sg); err != nil {
			t.Fatalf("AddRemoteSegment(%s): %v", sg.ID, err)
		}
	}
	select {
	case <-watch:
	default:
		t.Error("Watch did not fire on AddRemoteSegment")
	}
	if err := s.AddRemoteSegment(ctx, id, 0, b); err != nil {
		t.Errorf("retry of a recorded segment: %v", err)
	}
	if err := s.AddRemoteSegment(ctx, id, 0, pub("d", 301, 399)); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("segment after a gap: %v, want ErrInvalidArgument", err)
	}
	if err := s.AddRemoteSegment(ctx, uuid.New(), 0, pub("x", 0, 9)); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("segment of an unknown topic: %v, want ErrUnknownTopic", err)
	}
	if err := s.AddRemoteSegment(ctx, id, 2, pub("x", 0, 9)); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("segment of an unknown partition: %v, want ErrUnknownTopic", err)
	}
	if err := s.RemoveRemoteSegments(ctx, id, 0, []string{"b"}, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("removing from the middle: %v, want ErrInvalidArgument", err)
	}
	if err := s.RemoveRemoteSegments(ctx, id, 0, []string{"a"}, 150); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveRemoteSegments(ctx, id, 1, nil, 33); err != nil {
		t.Fatal(err)
	}
	want0 := RemoteManifest{LogStartOffset: 150, Segments: []RemoteSegment{b, c}}
	want1 := RemoteManifest{LogStartOffset: 33}
	check := func(when string) {
		t.Helper()
		if got := s.RemoteManifest(id, 0); !reflect.DeepEqual(got, want0) {
			t.Errorf("%s: manifest of partition 0\n got: %+v\nwant: %+v", when, got, want0)
		}
		if got := s.RemoteManifest(id, 1); !reflect.DeepEqual(got, want1) {
			t.Errorf("%s: manifest of partition 1\n got: %+v\nwant: %+v", when, got, want1)
		}
	}
	check("before restart")
	mustClose(t, s)

	// Restart from the log.
	s = openReady(t, cfg)
	check("after a restart from the log")
	if err := s.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	d := pub("d", 300, 399)
	if err := s.AddRemoteSegment(ctx, id, 0, d); err != nil { // the log tail
		t.Fatal(err)
	}
	want0.Segments = append(want0.Segments, d)
	if first, err := s.bolt.FirstIndex(); err != nil || first <= 2 {
		t.Fatalf("log starts at %d (%v): the snapshot did not compact it", first, err)
	}
	mustClose(t, s)

	// Restart from the snapshot plus the tail.
	s = openReady(t, cfg)
	check("after a restart from a snapshot")
	if err := s.AddRemoteSegment(ctx, id, 0, pub("e", 400, 499)); err != nil {
		t.Errorf("next segment after restart: %v", err)
	}
	if err := s.DeleteTopic(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := s.RemoteManifest(id, 0); !reflect.DeepEqual(got, RemoteManifest{}) {
		t.Errorf("manifest after DeleteTopic = %+v, want none", got)
	}
	if err := s.RemoveRemoteSegments(ctx, id, 0, []string{"b"}, 0); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("remove after DeleteTopic: %v, want ErrUnknownTopic", err)
	}
	mustClose(t, s)
}

// The transaction index and producer snapshot sizes came after the first
// manifests: entries and snapshots without them must decode as before, and
// a segment without them must encode byte for byte as before.
func TestRemoteSegmentTxnSizesRoundTrip(t *testing.T) {
	old := `{"topic_id":"0a1b2c3d-0000-4000-8000-00000000000a","partition":0,"segment":` +
		`{"id":"a","base_offset":0,"last_offset":9,"size":1000,"max_timestamp":5,"epochs":null,"index_size":8,"time_index_size":12}}`
	plain := addSeg(idA, 0, remoteSegmentRec{ID: "a", LastOffset: 9, Size: 1000, MaxTimestamp: 5, IndexSize: 8, TimeIndexSize: 12})
	data, err := encodeCommand(plain)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(data[4:]); got != old {
		t.Errorf("segment without the new sizes encodes differently\n got: %s\nwant: %s", got, old)
	}
	c, err := decodeCommand(envelope(uint16(cmdAddRemoteSegment), 1, old))
	if err != nil || !reflect.DeepEqual(c, plain) {
		t.Fatalf("old entry decodes to %+v, %v", c, err)
	}

	withTxn := addSeg(idA, 0, remoteSegmentRec{ID: "a", LastOffset: 9, Size: 1000, TxnIndexSize: 68, ProducerSnapshotSize: 52})
	data, err = encodeCommand(withTxn)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := decodeCommand(data); err != nil || !reflect.DeepEqual(c, withTxn) {
		t.Fatalf("round trip: %+v, %v", c, err)
	}

	// Applied, snapshotted and restored, the sizes survive.
	f := newFSM()
	applyCmd(t, f, &initClusterV1{ClusterID: "c"})
	applyCmd(t, f, topicCmd("t", idA))
	if res := applyCmd(t, f, withTxn); res.err != nil {
		t.Fatal(res.err)
	}
	if res := applyCmd(t, f, addSeg(idA, 0, remoteSegmentRec{ID: "b", BaseOffset: 10, LastOffset: 19, TxnIndexSize: -34})); !errors.Is(res.err, ErrInvalidArgument) {
		t.Errorf("negative txn index size: %v", res.err)
	}
	want := RemoteManifest{Segments: []RemoteSegment{{ID: "a", LastOffset: 9, Size: 1000, TxnIndexSize: 68, ProducerSnapshotSize: 52}}}
	if got := f.remoteManifest(idA, 0); !reflect.DeepEqual(got, want) {
		t.Fatalf("manifest %+v, want %+v", got, want)
	}
	snap := snapshotState(t, f)
	if !strings.Contains(string(snap), `"txn_index_size":68,"producer_snapshot_size":52`) {
		t.Errorf("snapshot lacks the sizes: %s", snap)
	}
	g := newFSM()
	if err := g.Restore(readCloser(snap)); err != nil {
		t.Fatal(err)
	}
	if got := g.remoteManifest(idA, 0); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored manifest %+v, want %+v", got, want)
	}
	if err := newFSM().Restore(readCloser([]byte(strings.Replace(string(snap), `"producer_snapshot_size":52`, `"producer_snapshot_size":-1`, 1)))); !errors.Is(err, errUnsupportedSnapshot) {
		t.Errorf("negative snapshot size restored: %v", err)
	}
}
