package metadata

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
)

func replaceSegs(id uuid.UUID, p int32, pairs ...any) *replaceRemoteSegmentsV1 {
	c := &replaceRemoteSegmentsV1{TopicID: id, Partition: p}
	for i := 0; i+1 < len(pairs); i += 2 {
		c.Replacements = append(c.Replacements, remoteReplacementRec{OldID: pairs[i].(string), Segment: pairs[i+1].(remoteSegmentRec)})
	}
	return c
}

// smaller is seg with the sizes a compacted copy would have.
func smaller(id string, base, last int64) remoteSegmentRec {
	s := seg(id, base, last)
	s.Size, s.IndexSize, s.TimeIndexSize = s.Size/3, 8, 12
	return s
}

func pubOf(s remoteSegmentRec) RemoteSegment {
	out := RemoteSegment{ID: s.ID, BaseOffset: s.BaseOffset, LastOffset: s.LastOffset, Size: s.Size, MaxTimestamp: s.MaxTimestamp,
		IndexSize: s.IndexSize, TimeIndexSize: s.TimeIndexSize, TxnIndexSize: s.TxnIndexSize, ProducerSnapshotSize: s.ProducerSnapshotSize}
	for _, e := range s.Epochs {
		out.Epochs = append(out.Epochs, RemoteEpoch{Epoch: e.Epoch, StartOffset: e.StartOffset})
	}
	return out
}

func TestFSMReplaceRemoteSegments(t *testing.T) {
	twoParts := topicCmd("t", idA, part(0, 1), part(1, 1))
	base := []command{twoParts, addSeg(idA, 0, seg("a", 0, 99, remoteEpochRec{Epoch: 1, StartOffset: 0})), addSeg(idA, 0, seg("b", 100, 199)), addSeg(idA, 0, seg("c", 200, 299))}
	a2 := smaller("a2", 0, 99)
	a2.Epochs = []remoteEpochRec{{Epoch: 1, StartOffset: 0}}
	b2, c2 := smaller("b2", 100, 199), smaller("c2", 200, 299)
	b2.TxnIndexSize, b2.ProducerSnapshotSize = 34, 70

	runFSMCases(t, []fsmCase{
		{
			name:    "one segment in the middle",
			setup:   base,
			cmd:     replaceSegs(idA, 0, "b", b2),
			changed: true,
			check: wantManifest(idA, 0, RemoteManifest{Segments: []RemoteSegment{
				pubOf(seg("a", 0, 99, remoteEpochRec{Epoch: 1, StartOffset: 0})), pubOf(b2), pubOf(seg("c", 200, 299)),
			}}),
		},
		{
			name:    "several at once",
			setup:   base,
			cmd:     replaceSegs(idA, 0, "c", c2, "a", a2),
			changed: true,
			check:   wantManifest(idA, 0, RemoteManifest{Segments: []RemoteSegment{pubOf(a2), pubOf(seg("b", 100, 199)), pubOf(c2)}}),
		},
		{
			name:    "a removed segment is skipped, the others apply",
			setup:   append(base[:len(base):len(base)], removeSegs(idA, 0, 0, "a")),
			cmd:     replaceSegs(idA, 0, "a", a2, "b", b2),
			changed: true,
			check: wantManifest(idA, 0, RemoteManifest{LogStartOffset: 100, Segments: []RemoteSegment{
				pubOf(b2), pubOf(seg("c", 200, 299)),
			}}),
		},
		{
			name:  "a retry changes nothing",
			setup: append(base[:len(base):len(base)], replaceSegs(idA, 0, "b", b2)),
			cmd:   replaceSegs(idA, 0, "b", b2),
		},
		{
			name:  "a replaced segment can be replaced again",
			setup: append(base[:len(base):len(base)], replaceSegs(idA, 0, "b", b2)),
			cmd:   replaceSegs(idA, 0, "b2", smaller("b3", 100, 199)),
			check: wantManifest(idA, 0, RemoteManifest{Segments: []RemoteSegment{
				pubOf(seg("a", 0, 99, remoteEpochRec{Epoch: 1, StartOffset: 0})), pubOf(smaller("b3", 100, 199)), pubOf(seg("c", 200, 299)),
			}}),
			changed: true,
		},
		{
			name:  "no manifest: nothing to replace",
			setup: []command{twoParts},
			cmd:   replaceSegs(idA, 1, "a", a2),
		},
		{name: "other offsets", setup: base, cmd: replaceSegs(idA, 0, "b", smaller("b2", 100, 198)), wantErr: ErrInvalidArgument},
		{name: "other base", setup: base, cmd: replaceSegs(idA, 0, "b", smaller("b2", 101, 199)), wantErr: ErrInvalidArgument},
		{
			name: "one bad replacement rejects all", setup: base,
			cmd: replaceSegs(idA, 0, "a", a2, "b", smaller("b2", 100, 250)), wantErr: ErrInvalidArgument,
		},
		{name: "new id already recorded", setup: base, cmd: replaceSegs(idA, 0, "b", smaller("c", 100, 199)), wantErr: ErrInvalidArgument},
		{name: "new id twice", setup: base, cmd: replaceSegs(idA, 0, "a", smaller("n", 0, 99), "b", smaller("n", 100, 199)), wantErr: ErrInvalidArgument},
		{name: "old id twice", setup: base, cmd: replaceSegs(idA, 0, "b", b2, "b", smaller("b3", 100, 199)), wantErr: ErrInvalidArgument},
		{name: "new id is an old one", setup: base, cmd: replaceSegs(idA, 0, "a", smaller("b", 0, 99), "b", b2), wantErr: ErrInvalidArgument},
		{name: "same id", setup: base, cmd: replaceSegs(idA, 0, "b", smaller("b", 100, 199)), wantErr: ErrInvalidArgument},
		{name: "empty old id", setup: base, cmd: replaceSegs(idA, 0, "", b2), wantErr: ErrInvalidArgument},
		{name: "empty new id", setup: base, cmd: replaceSegs(idA, 0, "b", smaller("", 100, 199)), wantErr: ErrInvalidArgument},
		{name: "negative size", setup: base, cmd: replaceSegs(idA, 0, "b", func() remoteSegmentRec { s := b2; s.Size = -1; return s }()), wantErr: ErrInvalidArgument},
		{name: "no replacement", setup: base, cmd: replaceSegs(idA, 0), wantErr: ErrInvalidArgument},
		{name: "unknown topic", setup: base, cmd: replaceSegs(idB, 0, "b", b2), wantErr: ErrUnknownTopic},
		{name: "unknown partition", setup: base, cmd: replaceSegs(idA, 2, "b", b2), wantErr: ErrUnknownTopic},
	})
}

func TestReplaceRemoteSegmentsCommand(t *testing.T) {
	c := replaceSegs(idA, 2, "u1", remoteSegmentRec{ID: "u9", BaseOffset: 100, LastOffset: 199, Size: 1000,
		MaxTimestamp: 1700000000000, Epochs: []remoteEpochRec{{Epoch: 3, StartOffset: 150}}, IndexSize: 8, TimeIndexSize: 12, TxnIndexSize: 34})
	data, err := encodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	// Pins the log format (see TestCommandEncoding).
	want := `00140001{"topic_id":"0a1b2c3d-0000-4000-8000-00000000000a","partition":2,"replacements":[{"old_id":"u1","segment":{"id":"u9",` +
		`"base_offset":100,"last_offset":199,"size":1000,"max_timestamp":1700000000000,"epochs":[{"epoch":3,"start_offset":150}],` +
		`"index_size":8,"time_index_size":12,"txn_index_size":34}}]}`
	if got := hex.EncodeToString(data[:4]) + string(data[4:]); got != want {
		t.Errorf("encoding\n got: %s\nwant: %s", got, want)
	}
	got, err := decodeCommand(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("round trip\n got: %+v\nwant: %+v", got, c)
	}
	if s := cmdReplaceRemoteSegments.String(); s != "ReplaceRemoteSegments" {
		t.Errorf("String() = %q", s)
	}
	for _, bad := range [][]byte{
		envelope(uint16(cmdReplaceRemoteSegments), 1, `{"topic_id":"0a1b2c3d-0000-4000-8000-00000000000a","partition":2,"replacements":[],"merge":true}`),
		envelope(uint16(cmdReplaceRemoteSegments), 1, `{"replacements":[{"old_id":"a","segment":{"id":"b","extra":1}}]}`),
	} {
		if _, err := decodeCommand(bad); !errors.Is(err, errMalformedCommand) {
			t.Errorf("decode %s: %v, want errMalformedCommand", bad[4:], err)
		}
	}
	if _, err := decodeCommand(envelope(uint16(cmdReplaceRemoteSegments), 2, `{}`)); !errors.Is(err, errUnsupportedVersion) {
		t.Errorf("version 2: %v, want errUnsupportedVersion", err)
	}
}

// TestReplaceRemoteSegmentsSnapshot: a manifest changed by replacements
// survives a snapshot and restore exactly, and the restored FSM applies
// further replacements.
func TestReplaceRemoteSegmentsSnapshot(t *testing.T) {
	f := newFSM()
	cmds := append(sampleCommands(),
		addSeg(idA, 1, seg("r0", 0, 49)),
		addSeg(idA, 1, seg("r1", 50, 99)),
		replaceSegs(idA, 1, "r0", smaller("r0x", 0, 49), "r1", smaller("r1x", 50, 99)),
		replaceSegs(idA, 0, "s2", smaller("s2x", 200, 299)),
	)
	for _, c := range cmds {
		if res := applyCmd(t, f, c); res.err != nil {
			t.Fatalf("%T: %v", c, res.err)
		}
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	want := f.st.clone()
	applyCmd(t, f, replaceSegs(idA, 1, "r0x", smaller("late", 0, 49))) // not in the snapshot
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := newFSM()
	if err := g.Restore(readCloser(sink.Bytes())); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g.st, want) {
		t.Fatalf("restored state differs\n got: %+v\nwant: %+v", g.st, want)
	}
	if m := g.remoteManifest(idA, 1); len(m.Segments) != 2 || m.Segments[0].ID != "r0x" || m.Segments[1].ID != "r1x" {
		t.Fatalf("restored manifest %+v", m)
	}
	if res := applyCmd(t, g, replaceSegs(idA, 1, "r1x", smaller("r1y", 50, 99))); res.err != nil {
		t.Fatal(res.err)
	}
	// Replaying the same entries gives the same state (determinism).
	h := newFSM()
	for _, c := range cmds {
		applyCmd(t, h, c)
	}
	if !bytes.Equal(snapshotState(t, h), snapshotState(t, func() *fsm {
		k := newFSM()
		if err := k.Restore(readCloser(sink.Bytes())); err != nil {
			t.Fatal(err)
		}
		return k
	}())) {
		t.Error("replay and restore disagree")
	}
}

func TestStoreReplaceRemoteSegments(t *testing.T) {
	ctx := waitCtx(t)
	cfg := Config{NodeID: 1, Dir: t.TempDir(), tune: func(rc *raft.Config) { rc.SnapshotThreshold = 1 << 30 }}
	s := openReady(t, cfg)
	if err := s.CreateTopic(ctx, testTopic("compacted", 1)); err != nil {
		t.Fatal(err)
	}
	tp, _ := s.Topic("compacted")
	for _, sg := range []RemoteSegment{pub("a", 0, 99), pub("b", 100, 199)} {
		if err := s.AddRemoteSegment(ctx, tp.ID, 0, sg); err != nil {
			t.Fatal(err)
		}
	}
	a2 := pubOf(smaller("a2", 0, 99))
	watch := s.Watch()
	if err := s.ReplaceRemoteSegments(ctx, tp.ID, 0, []RemoteSegmentReplacement{{OldID: "a", Segment: a2}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-watch:
	default:
		t.Error("Watch did not fire")
	}
	if err := s.ReplaceRemoteSegments(ctx, tp.ID, 0, []RemoteSegmentReplacement{{OldID: "a", Segment: a2}}); err != nil {
		t.Errorf("retry: %v", err)
	}
	if err := s.ReplaceRemoteSegments(ctx, tp.ID, 0, []RemoteSegmentReplacement{{OldID: "b", Segment: pub("b2", 100, 150)}}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("other offsets: %v, want ErrInvalidArgument", err)
	}
	want := RemoteManifest{Segments: []RemoteSegment{a2, pub("b", 100, 199)}}
	if got := s.RemoteManifest(tp.ID, 0); !reflect.DeepEqual(got, want) {
		t.Errorf("manifest\n got: %+v\nwant: %+v", got, want)
	}
	mustClose(t, s)
	s = openReady(t, cfg)
	if got := s.RemoteManifest(tp.ID, 0); !reflect.DeepEqual(got, want) {
		t.Errorf("manifest after a restart\n got: %+v\nwant: %+v", got, want)
	}
	mustClose(t, s)
}
