package metadata

import (
	"bytes"
	"errors"
	"maps"
	"reflect"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
)

var (
	idA = uuid.MustParse("0a1b2c3d-0000-4000-8000-00000000000a")
	idB = uuid.MustParse("0a1b2c3d-0000-4000-8000-00000000000b")
	idC = uuid.MustParse("0a1b2c3d-0000-4000-8000-00000000000c")
)

// applyCmd runs c through the full entry path: envelope encode, Apply.
func applyCmd(t testing.TB, f *fsm, c command) applyResult {
	t.Helper()
	data, err := encodeCommand(c)
	if err != nil {
		t.Fatalf("encode %T: %v", c, err)
	}
	res, ok := f.Apply(&raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: data}).(applyResult)
	if !ok {
		t.Fatalf("Apply(%T) did not return an applyResult", c)
	}
	return res
}

func part(index int32, replicas ...int32) partitionRec {
	return partitionRec{Index: index, Replicas: replicas, ISR: replicas, Leader: replicas[0]}
}

func topicCmd(name string, id uuid.UUID, parts ...partitionRec) *createTopicV1 {
	if len(parts) == 0 {
		parts = []partitionRec{part(0, 1)}
	}
	return &createTopicV1{Topic: topicRec{Name: name, ID: id, Partitions: parts}}
}

// fsmCase applies setup, then cmd, and checks the outcome. A rejected
// command must leave the state exactly as it was.
type fsmCase struct {
	name    string
	setup   []command
	cmd     command
	wantErr error // nil: success
	changed bool  // whether Watch must fire
	check   func(t *testing.T, f *fsm, res applyResult)
}

func TestFSMCommands(t *testing.T) {
	runFSMCases(t, []fsmCase{
		{
			name:    "init cluster",
			cmd:     &initClusterV1{ClusterID: "abc"},
			changed: true,
			check: func(t *testing.T, f *fsm, res applyResult) {
				if f.clusterID() != "abc" || res.clusterID != "abc" {
					t.Errorf("cluster id %q (response %q), want abc", f.clusterID(), res.clusterID)
				}
			},
		},
		{
			name:  "second init cluster keeps the first id",
			setup: []command{&initClusterV1{ClusterID: "first"}},
			cmd:   &initClusterV1{ClusterID: "second"},
			check: func(t *testing.T, f *fsm, res applyResult) {
				if f.clusterID() != "first" || res.clusterID != "first" {
					t.Errorf("cluster id %q (response %q), want first", f.clusterID(), res.clusterID)
				}
			},
		},
		{name: "init cluster with empty id", cmd: &initClusterV1{}, wantErr: ErrInvalidArgument},
		{
			name:    "register broker",
			cmd:     &registerBrokerV1{Broker: brokerRec{ID: 1, Host: "h1", Port: 9092, Rack: "r1"}},
			changed: true,
			check: func(t *testing.T, f *fsm, _ applyResult) {
				want := []Broker{{ID: 1, Host: "h1", Port: 9092, Rack: "r1"}}
				if got := f.brokers(); !reflect.DeepEqual(got, want) {
					t.Errorf("brokers %+v, want %+v", got, want)
				}
			},
		},
		{
			name:    "re-register broker with a new endpoint",
			setup:   []command{&registerBrokerV1{Broker: brokerRec{ID: 1, Host: "h1", Port: 9092}}},
			cmd:     &registerBrokerV1{Broker: brokerRec{ID: 1, Host: "h2", Port: 9093}},
			changed: true,
			check: func(t *testing.T, f *fsm, _ applyResult) {
				if got := f.brokers(); len(got) != 1 || got[0].Host != "h2" || got[0].Port != 9093 {
					t.Errorf("brokers %+v, want one at h2:9093", got)
				}
			},
		},
		{
			name:  "identical re-registration changes nothing",
			setup: []command{&registerBrokerV1{Broker: brokerRec{ID: 1, Host: "h1", Port: 9092}}},
			cmd:   &registerBrokerV1{Broker: brokerRec{ID: 1, Host: "h1", Port: 9092}},
		},
		{name: "broker with negative id", cmd: &registerBrokerV1{Broker: brokerRec{ID: -1, Host: "h"}}, wantErr: ErrInvalidArgument},
		{name: "broker with port out of range", cmd: &registerBrokerV1{Broker: brokerRec{ID: 1, Host: "h", Port: 70000}}, wantErr: ErrInvalidArgument},
		{
			name: "create topic",
			cmd: &createTopicV1{Topic: topicRec{
				Name: "orders", ID: idA, Configs: map[string]string{"retention.ms": "1000"},
				Partitions: []partitionRec{
					{Index: 0, Replicas: []int32{1, 2}, ISR: []int32{2, 1}, Leader: 2, LeaderEpoch: 7, PartitionEpoch: 9},
					{Index: 1, Replicas: []int32{2, 1}, ISR: []int32{}, Leader: -1},
				},
			}},
			changed: true,
			check: func(t *testing.T, f *fsm, _ applyResult) {
				want := Topic{
					Name: "orders", ID: idA, Configs: map[string]string{"retention.ms": "1000"},
					Partitions: []Partition{
						// Epochs start at 0 whatever the command said.
						{Index: 0, Replicas: []int32{1, 2}, ISR: []int32{2, 1}, Leader: 2},
						{Index: 1, Replicas: []int32{2, 1}, Leader: -1},
					},
				}
				got, ok := f.topic("orders")
				if !ok || !reflect.DeepEqual(got, want) {
					t.Errorf("topic(orders) = %+v, %v; want %+v", got, ok, want)
				}
				if byID, ok := f.topicByID(idA); !ok || !reflect.DeepEqual(byID, want) {
					t.Errorf("topicByID = %+v, %v; want %+v", byID, ok, want)
				}
			},
		},
		{
			name:    "internal topic",
			cmd:     &createTopicV1{Topic: topicRec{Name: "__consumer_offsets", ID: idA, Internal: true, Partitions: []partitionRec{part(0, 1)}}},
			changed: true,
			check: func(t *testing.T, f *fsm, _ applyResult) {
				if got, _ := f.topic("__consumer_offsets"); !got.Internal {
					t.Error("topic lost its internal flag")
				}
			},
		},
		{name: "duplicate topic name", setup: []command{topicCmd("t", idA)}, cmd: topicCmd("t", idB), wantErr: ErrTopicExists},
		{name: "duplicate topic id", setup: []command{topicCmd("t", idA)}, cmd: topicCmd("u", idA), wantErr: ErrTopicExists},
		{name: "colliding topic name", setup: []command{topicCmd("a.b", idA)}, cmd: topicCmd("a_b", idB), wantErr: ErrInvalidTopic},
		{name: "invalid topic name", cmd: topicCmd("bad name", idA), wantErr: ErrInvalidTopic},
		{name: "zero topic id", cmd: topicCmd("t", uuid.Nil), wantErr: ErrInvalidTopic},
		{name: "reserved topic id", cmd: topicCmd("t", reservedTopicID), wantErr: ErrInvalidTopic},
		{name: "topic without partitions", cmd: &createTopicV1{Topic: topicRec{Name: "t", ID: idA}}, wantErr: ErrInvalidPartitions},
		{name: "partition index gap", cmd: topicCmd("t", idA, part(0, 1), part(2, 1)), wantErr: ErrInvalidPartitions},
		{name: "partition without replicas", cmd: topicCmd("t", idA, partitionRec{Index: 0, Leader: -1}), wantErr: ErrInvalidPartitions},
		{name: "duplicate replica", cmd: topicCmd("t", idA, part(0, 1, 1)), wantErr: ErrInvalidPartitions},
		{name: "negative replica", cmd: topicCmd("t", idA, part(0, -2)), wantErr: ErrInvalidPartitions},
		{
			name:    "isr member outside the replicas",
			cmd:     topicCmd("t", idA, partitionRec{Index: 0, Replicas: []int32{1}, ISR: []int32{1, 2}, Leader: 1}),
			wantErr: ErrInvalidPartitions,
		},
		{
			name:    "leader outside the isr",
			cmd:     topicCmd("t", idA, partitionRec{Index: 0, Replicas: []int32{1, 2}, ISR: []int32{1}, Leader: 2}),
			wantErr: ErrInvalidPartitions,
		},
		{
			name:    "empty config name",
			cmd:     &createTopicV1{Topic: topicRec{Name: "t", ID: idA, Configs: map[string]string{"": "x"}, Partitions: []partitionRec{part(0, 1)}}},
			wantErr: ErrInvalidArgument,
		},
		{
			name:    "delete topic frees its name",
			setup:   []command{topicCmd("t", idA), &deleteTopicV1{ID: idA}},
			cmd:     topicCmd("t", idB),
			changed: true,
			check: func(t *testing.T, f *fsm, _ applyResult) {
				if _, ok := f.topicByID(idA); ok {
					t.Error("deleted topic still found by id")
				}
				if got, ok := f.topic("t"); !ok || got.ID != idB {
					t.Errorf("topic(t) = %v, %v; want the re-created one", got.ID, ok)
				}
			},
		},
		{name: "delete unknown topic", cmd: &deleteTopicV1{ID: idA}, wantErr: ErrUnknownTopic},
		{
			name:    "create partitions",
			setup:   []command{topicCmd("t", idA)},
			cmd:     &createPartitionsV1{TopicID: idA, Partitions: []partitionRec{part(1, 2), part(2, 1)}},
			changed: true,
			check: func(t *testing.T, f *fsm, _ applyResult) {
				got, _ := f.topic("t")
				if n := len(got.Partitions); n != 3 {
					t.Fatalf("%d partitions, want 3", n)
				}
				if p := got.Partitions[2]; p.Index != 2 || p.Leader != 1 {
					t.Errorf("partition 2 = %+v", p)
				}
			},
		},
		{name: "create partitions on unknown topic", cmd: &createPartitionsV1{TopicID: idA, Partitions: []partitionRec{part(0, 1)}}, wantErr: ErrUnknownTopic},
		{name: "create no partitions", setup: []command{topicCmd("t", idA)}, cmd: &createPartitionsV1{TopicID: idA}, wantErr: ErrInvalidPartitions},
		{
			name:    "create partitions with a wrong index",
			setup:   []command{topicCmd("t", idA)},
			cmd:     &createPartitionsV1{TopicID: idA, Partitions: []partitionRec{part(0, 1)}},
			wantErr: ErrInvalidPartitions,
		},
		{
			name: "alter configs",
			setup: []command{&createTopicV1{Topic: topicRec{Name: "t", ID: idA, Partitions: []partitionRec{part(0, 1)},
				Configs: map[string]string{"cleanup.policy": "compact", "retention.ms": "1"}}}},
			cmd:     &alterTopicConfigsV1{TopicID: idA, Set: map[string]string{"retention.ms": "2", "segment.ms": "3"}, Delete: []string{"cleanup.policy", "absent"}},
			changed: true,
			check: func(t *testing.T, f *fsm, _ applyResult) {
				got, _ := f.topic("t")
				want := map[string]string{"retention.ms": "2", "segment.ms": "3"}
				if !maps.Equal(got.Configs, want) {
					t.Errorf("configs %v, want %v", got.Configs, want)
				}
			},
		},
		{
			name:    "delete the last config",
			setup:   []command{&createTopicV1{Topic: topicRec{Name: "t", ID: idA, Partitions: []partitionRec{part(0, 1)}, Configs: map[string]string{"a": "1"}}}},
			cmd:     &alterTopicConfigsV1{TopicID: idA, Delete: []string{"a"}},
			changed: true,
			check: func(t *testing.T, f *fsm, _ applyResult) {
				if got, _ := f.topic("t"); got.Configs != nil {
					t.Errorf("configs %v, want none", got.Configs)
				}
			},
		},
		{
			name:  "alter configs to the same values changes nothing",
			setup: []command{&createTopicV1{Topic: topicRec{Name: "t", ID: idA, Partitions: []partitionRec{part(0, 1)}, Configs: map[string]string{"a": "1"}}}},
			cmd:   &alterTopicConfigsV1{TopicID: idA, Set: map[string]string{"a": "1"}},
		},
		{name: "alter configs of unknown topic", cmd: &alterTopicConfigsV1{TopicID: idA}, wantErr: ErrUnknownTopic},
		{
			name:    "config both set and deleted",
			setup:   []command{topicCmd("t", idA)},
			cmd:     &alterTopicConfigsV1{TopicID: idA, Set: map[string]string{"a": "1"}, Delete: []string{"a"}},
			wantErr: ErrInvalidArgument,
		},
		{
			name:    "first producer id block",
			cmd:     &allocateProducerIDsV1{Count: 1000},
			changed: true,
			check: func(t *testing.T, f *fsm, res applyResult) {
				if res.producerID != 0 || f.nextProducerID() != 1000 {
					t.Errorf("first %d next %d, want 0 and 1000", res.producerID, f.nextProducerID())
				}
			},
		},
		{
			name:    "producer id blocks do not overlap",
			setup:   []command{&allocateProducerIDsV1{Count: 1000}, &allocateProducerIDsV1{Count: 1}},
			cmd:     &allocateProducerIDsV1{Count: 1000},
			changed: true,
			check: func(t *testing.T, f *fsm, res applyResult) {
				if res.producerID != 1001 || f.nextProducerID() != 2001 {
					t.Errorf("first %d next %d, want 1001 and 2001", res.producerID, f.nextProducerID())
				}
			},
		},
		{name: "zero producer ids", cmd: &allocateProducerIDsV1{Count: 0}, wantErr: ErrInvalidArgument},
		{
			name:    "producer id space exhausted",
			setup:   []command{&allocateProducerIDsV1{Count: 1 << 62}, &allocateProducerIDsV1{Count: 1<<62 - 1}},
			cmd:     &allocateProducerIDsV1{Count: 1},
			wantErr: ErrInvalidArgument,
		},
	})
}

func runFSMCases(t *testing.T, tests []fsmCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFSM()
			for _, c := range tc.setup {
				if res := applyCmd(t, f, c); res.err != nil {
					t.Fatalf("setup %T: %v", c, res.err)
				}
			}
			before := snapshotState(t, f)
			watch := f.watch()
			res := applyCmd(t, f, tc.cmd)
			switch {
			case tc.wantErr == nil && res.err != nil:
				t.Fatalf("unexpected error: %v", res.err)
			case tc.wantErr != nil && !errors.Is(res.err, tc.wantErr):
				t.Fatalf("error %v, want %v", res.err, tc.wantErr)
			}
			if tc.wantErr != nil {
				if after := snapshotState(t, f); !bytes.Equal(before, after) {
					t.Errorf("a rejected command changed the state:\n%s\n%s", before, after)
				}
			}
			select {
			case <-watch:
				if !tc.changed {
					t.Error("watch fired for a command that changed nothing")
				}
			default:
				if tc.changed {
					t.Error("watch did not fire")
				}
			}
			if tc.check != nil {
				tc.check(t, f, res)
			}
		})
	}
}

// snapshotState serializes f's state the way a snapshot would.
func snapshotState(t testing.TB, f *fsm) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	return sink.Bytes()
}

type memSink struct {
	bytes.Buffer
	closed, canceled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.canceled = true; return nil }

// sampleCommands builds a state touching every field.
func sampleCommands() []command {
	return append([]command{
		&initClusterV1{ClusterID: "MkU3OEVBNTcwNTJENDM2Qk"},
		&registerBrokerV1{Broker: brokerRec{ID: 1, Host: "b1", Port: 9092, Rack: "az1"}},
		&registerBrokerV1{Broker: brokerRec{ID: 2, Host: "b2", Port: 9092}},
		&createTopicV1{Topic: topicRec{Name: "orders", ID: idA, Configs: map[string]string{"retention.ms": "60000"},
			Partitions: []partitionRec{part(0, 1, 2), {Index: 1, Replicas: []int32{2, 1}, Leader: -1}}}},
		&createTopicV1{Topic: topicRec{Name: "__consumer_offsets", ID: idB, Internal: true, Partitions: []partitionRec{part(0, 1)}}},
		&createTopicV1{Topic: topicRec{Name: "gone", ID: idC, Partitions: []partitionRec{part(0, 2)}}},
		&addRemoteSegmentV1{TopicID: idC, Partition: 0, Segment: seg("g0", 0, 9)},
		&deleteTopicV1{ID: idC},
		&createPartitionsV1{TopicID: idA, Partitions: []partitionRec{part(2, 1)}},
		&alterTopicConfigsV1{TopicID: idA, Set: map[string]string{"cleanup.policy": "compact"}},
		&alterTopicConfigsV1{TopicID: idB, Set: map[string]string{"a": "1"}, Delete: []string{"x"}},
		&alterTopicConfigsV1{TopicID: idB, Delete: []string{"a"}},
		&allocateProducerIDsV1{Count: 1000},
		&allocateProducerIDsV1{Count: 1000},
		// Remote manifests: one with segments and a raised log start, one
		// emptied (only its log start is left), one with a log start only.
		&addRemoteSegmentV1{TopicID: idA, Partition: 0, Segment: seg("s0", 0, 99, remoteEpochRec{Epoch: 0, StartOffset: 0}, remoteEpochRec{Epoch: 3, StartOffset: 50})},
		&addRemoteSegmentV1{TopicID: idA, Partition: 0, Segment: seg("s1", 100, 199)},
		&addRemoteSegmentV1{TopicID: idA, Partition: 0, Segment: seg("s2", 200, 299, remoteEpochRec{Epoch: 4, StartOffset: 250})},
		&removeRemoteSegmentsV1{TopicID: idA, Partition: 0, IDs: []string{"s0"}, LogStartOffset: 150},
		&addRemoteSegmentV1{TopicID: idA, Partition: 2, Segment: seg("t0", 1000, 1999)},
		&removeRemoteSegmentsV1{TopicID: idA, Partition: 2, IDs: []string{"t0"}},
		&removeRemoteSegmentsV1{TopicID: idB, Partition: 0, LogStartOffset: 42},
	}, append(sampleSecurityCommands(), sampleClusterCommands()...)...)
}

func TestSnapshotRoundTrip(t *testing.T) {
	f := newFSM()
	for _, c := range sampleCommands() {
		if res := applyCmd(t, f, c); res.err != nil {
			t.Fatalf("%T: %v", c, res.err)
		}
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	want := f.st.clone()

	// Applies after Snapshot (Raft runs them concurrently with Persist) must
	// not leak into the snapshot.
	applyCmd(t, f, &alterTopicConfigsV1{TopicID: idA, Set: map[string]string{"cleanup.policy": "delete"}})
	applyCmd(t, f, &createPartitionsV1{TopicID: idA, Partitions: []partitionRec{part(3, 1)}})
	applyCmd(t, f, &deleteTopicV1{ID: idB})
	applyCmd(t, f, &addRemoteSegmentV1{TopicID: idA, Partition: 0, Segment: seg("late", 300, 399)})
	applyCmd(t, f, &removeRemoteSegmentsV1{TopicID: idA, Partition: 0, IDs: []string{"s1"}})

	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if !sink.closed || sink.canceled {
		t.Fatalf("sink closed=%v canceled=%v, want closed only", sink.closed, sink.canceled)
	}

	g := newFSM()
	applyCmd(t, g, topicCmd("stale", uuid.New())) // Restore must discard this
	watch := g.watch()
	if err := g.Restore(readCloser(sink.Bytes())); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g.st, want) {
		t.Errorf("restored state differs\n got: %+v\nwant: %+v", g.st, want)
	}
	select {
	case <-watch:
	default:
		t.Error("Restore did not fire the watch")
	}
	// The restored FSM keeps working from where the snapshot left off.
	if res := applyCmd(t, g, &allocateProducerIDsV1{Count: 5}); res.producerID != 2000 {
		t.Errorf("next block after restore starts at %d, want 2000", res.producerID)
	}
	if res := applyCmd(t, g, topicCmd("orders", uuid.New())); !errors.Is(res.err, ErrTopicExists) {
		t.Errorf("re-creating a restored topic: %v, want ErrTopicExists", res.err)
	}
	// So do the manifests: retries are still no-ops, the end is still 300.
	if res := applyCmd(t, g, &addRemoteSegmentV1{TopicID: idA, Partition: 0, Segment: seg("s2", 200, 299)}); res.err != nil {
		t.Errorf("retry of a restored segment: %v", res.err)
	}
	if res := applyCmd(t, g, &addRemoteSegmentV1{TopicID: idA, Partition: 0, Segment: seg("s3", 300, 399)}); res.err != nil {
		t.Errorf("next segment after restore: %v", res.err)
	}
	if m := g.remoteManifest(idA, 2); m.LogStartOffset != 2000 || m.Segments != nil {
		t.Errorf("emptied manifest after restore = %+v, want log start 2000 and no segments", m)
	}
	if m := g.remoteManifest(idB, 0); m.LogStartOffset != 42 {
		t.Errorf("log-start-only manifest after restore = %+v, want log start 42", m)
	}
}

func TestSnapshotFormat(t *testing.T) {
	// Pins the snapshot document: changing it needs a new format number.
	f := newFSM()
	applyCmd(t, f, &initClusterV1{ClusterID: "c"})
	applyCmd(t, f, &registerBrokerV1{Broker: brokerRec{ID: 1, Host: "h", Port: 9092}})
	applyCmd(t, f, topicCmd("t", idA))
	applyCmd(t, f, &allocateProducerIDsV1{Count: 10})
	want := `{"format":1,"cluster_id":"c","brokers":[{"id":1,"host":"h","port":9092,"rack":""}],` +
		`"topics":[{"name":"t","id":"0a1b2c3d-0000-4000-8000-00000000000a","internal":false,"configs":null,` +
		`"partitions":[{"index":0,"replicas":[1],"isr":[1],"leader":1,"leader_epoch":0,"partition_epoch":0}]}],` +
		`"next_producer_id":10}` + "\n"
	if got := string(snapshotState(t, f)); got != want {
		t.Errorf("snapshot\n got: %s\nwant: %s", got, want)
	}
}

func TestRestoreRejects(t *testing.T) {
	valid := func() string {
		f := newFSM()
		applyCmd(t, f, topicCmd("t", idA))
		return string(snapshotState(t, f))
	}()
	tests := []struct {
		name string
		data string
	}{
		{"empty", ""},
		{"not json", "garbage"},
		{"null", "null"},
		{"newer format", `{"format":4}`},
		{"unknown field", `{"format":1,"surprise":true}`},
		{"trailing data", valid + "{}"},
		{"duplicate topic", `{"format":1,"topics":[` +
			`{"name":"t","id":"0a1b2c3d-0000-4000-8000-00000000000a","partitions":[{"index":0,"replicas":[1],"leader":-1}]},` +
			`{"name":"t","id":"0a1b2c3d-0000-4000-8000-00000000000b","partitions":[{"index":0,"replicas":[1],"leader":-1}]}]}`},
		{"bad partition index", `{"format":1,"topics":[{"name":"t","id":"0a1b2c3d-0000-4000-8000-00000000000a","partitions":[{"index":1,"replicas":[1],"leader":-1}]}]}`},
		{"duplicate broker", `{"format":1,"brokers":[{"id":1},{"id":1}]}`},
		{"negative producer id", `{"format":1,"next_producer_id":-1}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFSM()
			applyCmd(t, f, &initClusterV1{ClusterID: "keep"})
			if err := f.Restore(readCloser([]byte(tc.data))); err == nil {
				t.Fatal("Restore accepted it")
			}
			if f.clusterID() != "keep" {
				t.Error("a failed Restore changed the state")
			}
		})
	}
}

func TestReadsReturnCopies(t *testing.T) {
	f := newFSM()
	applyCmd(t, f, &createTopicV1{Topic: topicRec{Name: "t", ID: idA, Configs: map[string]string{"a": "1"}, Partitions: []partitionRec{part(0, 1, 2)}}})
	applyCmd(t, f, &registerBrokerV1{Broker: brokerRec{ID: 1, Host: "h"}})

	got, _ := f.topic("t")
	got.Configs["a"] = "changed"
	got.Partitions[0].Replicas[0] = 99
	got.Partitions[0].ISR[0] = 99
	all := f.topics()
	all[0].Partitions[0].Leader = 99
	f.brokers()[0].Host = "changed"

	again, _ := f.topic("t")
	if again.Configs["a"] != "1" || again.Partitions[0].Replicas[0] != 1 || again.Partitions[0].ISR[0] != 1 || again.Partitions[0].Leader != 1 {
		t.Errorf("state changed through a returned copy: %+v", again)
	}
	if f.brokers()[0].Host != "h" {
		t.Error("broker changed through a returned copy")
	}
}

func TestReadsAreSorted(t *testing.T) {
	f := newFSM()
	for i, name := range []string{"c", "a", "b"} {
		applyCmd(t, f, topicCmd(name, uuid.UUID{0: byte(i + 1)}))
		applyCmd(t, f, &registerBrokerV1{Broker: brokerRec{ID: int32(3 - i)}})
	}
	var names []string
	for _, tp := range f.topics() {
		names = append(names, tp.Name)
	}
	if !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Errorf("topics in order %v", names)
	}
	var ids []int32
	for _, b := range f.brokers() {
		ids = append(ids, b.ID)
	}
	if !slices.Equal(ids, []int32{1, 2, 3}) {
		t.Errorf("brokers in order %v", ids)
	}
}

func TestApplyIgnoresNonCommandEntries(t *testing.T) {
	f := newFSM()
	if res := f.Apply(&raft.Log{Type: raft.LogNoop}); res != nil {
		t.Errorf("Apply(noop) = %v", res)
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	full := newFSM()
	for _, c := range sampleCommands() {
		applyCmd(f, full, c)
	}
	f.Add(snapshotState(f, full))
	f.Add(snapshotState(f, newFSM()))
	f.Add([]byte(`{"format":1,"topics":[null]}`))
	f.Add([]byte(`{"format":3,"acls":[{}],"scram_credentials":[null],"client_quotas":[{"entity":{},"values":{}}]}`))
	f.Add([]byte(`{"format":3,"client_quotas":[{"entity":{"ip":{"set":true,"name":"::ffff:10.0.0.1"}},"values":{"connection_creation_rate":-0}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decodeSnapshot(data)
		if err != nil {
			return
		}
		// Whatever decodes must survive a round trip unchanged.
		enc := &memSink{}
		if err := (&fsmSnapshot{st: st}).Persist(enc); err != nil {
			t.Fatal(err)
		}
		st2, err := decodeSnapshot(enc.Bytes())
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(st, st2) {
			t.Fatalf("round trip changed the state:\n%+v\n%+v", st, st2)
		}
	})
}
