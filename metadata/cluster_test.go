package metadata

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// inc is broker id's incarnation number gen (gen 0 is the first start).
func inc(id int32, gen byte) uuid.UUID {
	return uuid.UUID{0: 0xa0 + gen, 6: 0x40, 8: 0x80, 15: byte(id)}
}

func reg(id int32, gen byte, rack string) *registerBrokerV2 {
	return &registerBrokerV2{ID: id, IncarnationID: inc(id, gen), Rack: rack, Endpoints: []endpointRec{
		{Listener: "PLAINTEXT", Host: fmt.Sprintf("b%d", id), Port: 9092, SecurityProtocol: "PLAINTEXT"},
		{Listener: "REPLICATION", Host: fmt.Sprintf("b%d", id), Port: 9094, SecurityProtocol: "SSL"},
	}}
}

func fence(id int32, gen byte) *fenceBrokerV1 {
	return &fenceBrokerV1{ID: id, IncarnationID: inc(id, gen)}
}
func unfence(id int32, gen byte) *unfenceBrokerV1 {
	return &unfenceBrokerV1{ID: id, IncarnationID: inc(id, gen)}
}
func shutdown(id int32, gen byte) *controlledShutdownV1 {
	return &controlledShutdownV1{ID: id, IncarnationID: inc(id, gen)}
}

// prt builds a partition record with an explicit ISR and leader.
func prt(index int32, replicas, isr []int32, leader int32) partitionRec {
	return partitionRec{Index: index, Replicas: replicas, ISR: isr, Leader: leader}
}

// clusterBase registers and unfences brokers 1-3 (racks r1-r3) and creates
// topic "t" (idA): t-0 [1,2,3] led by 1, t-1 [2,1] led by 2, t-2 [1].
func clusterBase(extra ...command) []command {
	cmds := []command{}
	for id := int32(1); id <= 3; id++ {
		cmds = append(cmds, reg(id, 0, fmt.Sprintf("r%d", id)), unfence(id, 0))
	}
	cmds = append(cmds, &createTopicV1{Topic: topicRec{Name: "t", ID: idA, Partitions: []partitionRec{
		prt(0, []int32{1, 2, 3}, []int32{1, 2, 3}, 1),
		prt(1, []int32{2, 1}, []int32{2, 1}, 2),
		prt(2, []int32{1}, []int32{1}, 1),
	}}})
	return append(cmds, extra...)
}

// topicU is topic "u" (idB): u-0 [1,2] with ISR [1], led by 1.
func topicU(configs map[string]string) *createTopicV1 {
	return &createTopicV1{Topic: topicRec{Name: "u", ID: idB, Configs: configs, Partitions: []partitionRec{prt(0, []int32{1, 2}, []int32{1}, 1)}}}
}

// P is the expected public form of a partition.
func P(index int32, replicas, isr []int32, leader, leaderEpoch, partitionEpoch int32) Partition {
	return Partition{Index: index, Replicas: replicas, ISR: isr, Leader: leader, LeaderEpoch: leaderEpoch, PartitionEpoch: partitionEpoch}
}

// wantParts checks partitions of one topic.
func wantParts(id uuid.UUID, want ...Partition) func(*testing.T, *fsm, applyResult) {
	return func(t *testing.T, f *fsm, _ applyResult) {
		t.Helper()
		for _, w := range want {
			got, ok := f.partition(id, w.Index)
			if !ok || !reflect.DeepEqual(got, w) {
				t.Errorf("partition %d = %+v (%v), want %+v", w.Index, got, ok, w)
			}
		}
	}
}

func wantBroker(id int32, check func(Broker) bool, what string) func(*testing.T, *fsm, applyResult) {
	return func(t *testing.T, f *fsm, _ applyResult) {
		t.Helper()
		b, ok := f.broker(id)
		if !ok || !check(b) {
			t.Errorf("broker %d = %+v (%v), want %s", id, b, ok, what)
		}
	}
}

func checks(fs ...func(*testing.T, *fsm, applyResult)) func(*testing.T, *fsm, applyResult) {
	return func(t *testing.T, f *fsm, res applyResult) {
		t.Helper()
		for _, c := range fs {
			c(t, f, res)
		}
	}
}

// sampleClusterCommands follow sampleCommands' state (brokers 1 and 2
// registered with v1, topics orders and __consumer_offsets) and touch every
// cluster field: V2 registrations, fencing, a completed and an ongoing
// reassignment, a controlled shutdown. Broker 1 stays live.
func sampleClusterCommands() []command {
	return []command{
		reg(3, 0, "az2"),
		unfence(3, 0),
		reg(4, 0, ""),
		&reassignPartitionV1{TopicID: idA, Partition: 0, Target: []int32{1, 3}},
		&reassignPartitionV1{TopicID: idB, Partition: 0, Target: []int32{1, 3}},
		&alterPartitionV1{TopicID: idB, Partition: 0, LeaderID: 1, LeaderEpoch: 0, PartitionEpoch: 1, NewISR: []int32{1, 3}},
		&electLeadersV1{Election: int8(ElectPreferred), Partitions: []topicPartitionRec{{TopicID: idA, Partition: 0}}},
		&fenceBrokerV1{ID: 2, Unclean: true},
		shutdown(4, 0),
	}
}

func TestClusterCommandEncoding(t *testing.T) {
	// Pins the log format of the cluster commands.
	id := "0a1b2c3d-0000-4000-8000-00000000000a"
	i1 := inc(1, 0).String()
	tests := []struct {
		cmd  command
		want string
	}{
		{reg(1, 0, "r1"), `00020002{"id":1,"incarnation_id":"` + i1 + `","endpoints":[` +
			`{"listener":"PLAINTEXT","host":"b1","port":9092,"security_protocol":"PLAINTEXT"},` +
			`{"listener":"REPLICATION","host":"b1","port":9094,"security_protocol":"SSL"}],"rack":"r1"}`},
		{&fenceBrokerV1{ID: 1, IncarnationID: inc(1, 0), Unclean: true}, `000e0001{"id":1,"incarnation_id":"` + i1 + `","unclean":true}`},
		{unfence(1, 0), `000f0001{"id":1,"incarnation_id":"` + i1 + `","unclean":false}`},
		{shutdown(1, 0), `00100001{"id":1,"incarnation_id":"` + i1 + `"}`},
		{&alterPartitionV1{TopicID: idA, Partition: 2, LeaderID: 1, BrokerIncarnationID: inc(1, 0), LeaderEpoch: 3, PartitionEpoch: 7, NewISR: []int32{1, 2}},
			`00110001{"topic_id":"` + id + `","partition":2,"leader_id":1,"broker_incarnation_id":"` + i1 + `","leader_epoch":3,"partition_epoch":7,"new_isr":[1,2]}`},
		{&electLeadersV1{Election: 1, Partitions: []topicPartitionRec{{TopicID: idA, Partition: 0}}},
			`00120001{"election":1,"all":false,"partitions":[{"topic_id":"` + id + `","partition":0}]}`},
		{&reassignPartitionV1{TopicID: idA, Partition: 1, Target: []int32{3, 4}},
			`00130001{"topic_id":"` + id + `","partition":1,"target":[3,4],"cancel":false}`},
	}
	for _, tc := range tests {
		t.Run(reflect.TypeOf(tc.cmd).Elem().Name(), func(t *testing.T) {
			data, err := encodeCommand(tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(data[:4]) + string(data[4:]); got != tc.want {
				t.Errorf("encoding\n got: %s\nwant: %s", got, tc.want)
			}
			back, err := decodeCommand(data)
			if err != nil || !reflect.DeepEqual(back, tc.cmd) {
				t.Errorf("decode = %+v, %v", back, err)
			}
		})
	}
}

func TestDecodeClusterCommandRejects(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"register v1 with v2 fields", envelope(uint16(cmdRegisterBroker), 1, `{"broker":{"id":1},"endpoints":[]}`), errMalformedCommand},
		{"register v2 with v1 shape", envelope(uint16(cmdRegisterBroker), 2, `{"broker":{"id":1}}`), errMalformedCommand},
		{"register v3", envelope(uint16(cmdRegisterBroker), 3, `{}`), errUnsupportedVersion},
		{"fence with unknown field", envelope(uint16(cmdFenceBroker), 1, `{"id":1,"epoch":3}`), errMalformedCommand},
		{"fence v2", envelope(uint16(cmdFenceBroker), 2, `{}`), errUnsupportedVersion},
		{"bad incarnation", envelope(uint16(cmdUnfenceBroker), 1, `{"id":1,"incarnation_id":"nope"}`), errMalformedCommand},
		{"alter partition isr of strings", envelope(uint16(cmdAlterPartition), 1, `{"new_isr":["1"]}`), errMalformedCommand},
		{"elect leaders trailing", envelope(uint16(cmdElectLeaders), 1, `{"election":0}[]`), errMalformedCommand},
		{"reassign unknown field", envelope(uint16(cmdReassignPartition), 1, `{"targets":[1]}`), errMalformedCommand},
		{"shutdown overflow id", envelope(uint16(cmdControlledShutdown), 1, `{"id":4294967296}`), errMalformedCommand},
		{"next free type", envelope(21, 1, `{}`), errUnknownCommand},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := decodeCommand(tc.data); !errors.Is(err, tc.want) {
				t.Fatalf("decodeCommand = %+v, %v; want %v", c, err, tc.want)
			}
		})
	}
}

func TestFSMBrokerRegistration(t *testing.T) {
	fencedAt := func(gen byte) func(Broker) bool {
		return func(b Broker) bool {
			return b.Fenced && !b.InControlledShutdown && b.IncarnationID == inc(b.ID, gen) && b.Host == "b1" && b.Port == 9092 &&
				len(b.Endpoints) == 2 && b.Endpoints[1] == (Endpoint{"REPLICATION", "b1", 9094, "SSL"}) && b.Rack == "r1"
		}
	}
	badEps := func(eps ...endpointRec) *registerBrokerV2 {
		c := reg(1, 0, "")
		c.Endpoints = eps
		return c
	}
	runFSMCases(t, []fsmCase{
		{name: "v2 registration starts fenced", cmd: reg(1, 0, "r1"), changed: true, check: wantBroker(1, fencedAt(0), "fenced gen 0")},
		{name: "retry is a no-op", setup: []command{reg(1, 0, "r1")}, cmd: reg(1, 0, "r1")},
		{
			name: "same incarnation with a new rack keeps the fencing state", setup: []command{reg(1, 0, "r1"), unfence(1, 0)},
			cmd: reg(1, 0, "r9"), changed: true,
			check: wantBroker(1, func(b Broker) bool { return !b.Fenced && b.Rack == "r9" }, "unfenced in r9"),
		},
		{
			name: "new incarnation replaces and fences, moving leadership away", setup: clusterBase(),
			cmd: reg(1, 1, "r1"), changed: true,
			check: checks(wantBroker(1, fencedAt(1), "fenced gen 1"), wantParts(idA,
				P(0, []int32{1, 2, 3}, []int32{2, 3}, 2, 1, 1),
				P(1, []int32{2, 1}, []int32{2}, 2, 0, 1),
				P(2, []int32{1}, []int32{1}, -1, 1, 1))),
		},
		{
			name: "v1 registration stays unfenced with one PLAINTEXT endpoint",
			cmd:  &registerBrokerV1{Broker: brokerRec{ID: 7, Host: "h", Port: 9092}}, changed: true,
			check: wantBroker(7, func(b Broker) bool {
				return !b.Fenced && b.Endpoints == nil && b.IncarnationID == uuid.Nil &&
					reflect.DeepEqual(b.AllEndpoints(), []Endpoint{{"PLAINTEXT", "h", 9092, "PLAINTEXT"}})
			}, "a v1 broker"),
		},
		{
			name: "v2 over v1 fences the v1 broker's partitions too", setup: []command{
				&registerBrokerV1{Broker: brokerRec{ID: 1}}, &registerBrokerV1{Broker: brokerRec{ID: 2}},
				&createTopicV1{Topic: topicRec{Name: "t", ID: idA, Partitions: []partitionRec{part(0, 1, 2)}}},
			},
			cmd: reg(1, 0, "r1"), changed: true,
			check: wantParts(idA, P(0, []int32{1, 2}, []int32{2}, 2, 1, 1)),
		},
		{name: "no incarnation", cmd: &registerBrokerV2{ID: 1, Endpoints: reg(1, 0, "").Endpoints}, wantErr: ErrInvalidArgument},
		{name: "negative id", cmd: reg(-1, 0, ""), wantErr: ErrInvalidArgument},
		{name: "no endpoints", cmd: badEps(), wantErr: ErrInvalidArgument},
		{name: "listener twice", cmd: badEps(endpointRec{"A", "h", 1, "SSL"}, endpointRec{"A", "h", 2, "SSL"}), wantErr: ErrInvalidArgument},
		{name: "unnamed listener", cmd: badEps(endpointRec{"", "h", 1, "SSL"}), wantErr: ErrInvalidArgument},
		{name: "port out of range", cmd: badEps(endpointRec{"A", "h", 65536, "SSL"}), wantErr: ErrInvalidArgument},
		{name: "unknown security protocol", cmd: badEps(endpointRec{"A", "h", 1, "TLS"}), wantErr: ErrInvalidArgument},
		{
			name: "a topic led by a fenced broker is refused", setup: []command{reg(5, 0, "")},
			cmd: topicCmd("t", idA, part(0, 5)), wantErr: ErrInvalidPartitions,
		},
		{
			name: "partitions led by a fenced broker are refused", setup: clusterBase(fence(3, 0)),
			cmd: &createPartitionsV1{TopicID: idA, Partitions: []partitionRec{part(3, 3)}}, wantErr: ErrInvalidPartitions,
		},
	})
}

func TestFSMFencing(t *testing.T) {
	uncleanOn := map[string]string{uncleanConfig: "true"}
	uncleanOff := map[string]string{uncleanConfig: "false"}
	runFSMCases(t, []fsmCase{
		{
			name: "fencing the leader elects from the ISR and shrinks ISRs", setup: clusterBase(),
			cmd: fence(1, 0), changed: true,
			check: checks(wantBroker(1, func(b Broker) bool { return b.Fenced }, "fenced"), wantParts(idA,
				P(0, []int32{1, 2, 3}, []int32{2, 3}, 2, 1, 1),
				P(1, []int32{2, 1}, []int32{2}, 2, 0, 1),
				P(2, []int32{1}, []int32{1}, -1, 1, 1))),
		},
		{
			name: "fencing a follower only shrinks ISRs", setup: clusterBase(),
			cmd: fence(3, 0), changed: true,
			check: wantParts(idA, P(0, []int32{1, 2, 3}, []int32{1, 2}, 1, 0, 1), P(1, []int32{2, 1}, []int32{2, 1}, 2, 0, 0)),
		},
		{
			name: "new leader skips fenced ISR members", setup: clusterBase(&createTopicV1{Topic: topicRec{Name: "w", ID: idC,
				Partitions: []partitionRec{prt(0, []int32{1, 2, 3}, []int32{1, 3, 2}, 1)}}}, fence(2, 0)),
			cmd: fence(1, 0), changed: true,
			check: wantParts(idC, P(0, []int32{1, 2, 3}, []int32{3}, 3, 1, 2)),
		},
		{name: "last ISR member: leaderless, ISR kept", setup: clusterBase(topicU(nil)), cmd: fence(1, 0), changed: true,
			check: wantParts(idB, P(0, []int32{1, 2}, []int32{1}, -1, 1, 1))},
		{name: "unclean by topic config", setup: clusterBase(topicU(uncleanOn)), cmd: fence(1, 0), changed: true,
			check: wantParts(idB, P(0, []int32{1, 2}, []int32{2}, 2, 1, 1))},
		{name: "unclean by cluster default", setup: clusterBase(topicU(nil)), cmd: &fenceBrokerV1{ID: 1, IncarnationID: inc(1, 0), Unclean: true}, changed: true,
			check: wantParts(idB, P(0, []int32{1, 2}, []int32{2}, 2, 1, 1))},
		{name: "topic config overrides the default", setup: clusterBase(topicU(uncleanOff)), cmd: &fenceBrokerV1{ID: 1, IncarnationID: inc(1, 0), Unclean: true}, changed: true,
			check: wantParts(idB, P(0, []int32{1, 2}, []int32{1}, -1, 1, 1))},
		{name: "unclean needs a live replica", setup: clusterBase(topicU(uncleanOn), fence(2, 0)), cmd: fence(1, 0), changed: true,
			check: wantParts(idB, P(0, []int32{1, 2}, []int32{1}, -1, 1, 1))},
		{name: "fencing a fenced broker is a no-op", setup: clusterBase(fence(1, 0)), cmd: fence(1, 0)},
		{name: "fence with a stale incarnation", setup: clusterBase(reg(1, 1, "r1")), cmd: fence(1, 0), wantErr: ErrStaleBrokerIncarnation},
		{name: "fence an unknown broker", setup: clusterBase(), cmd: fence(9, 0), wantErr: ErrUnknownBroker},
		{
			name: "unfencing gives leaderless partitions their ISR leader back", setup: clusterBase(fence(1, 0)),
			cmd: unfence(1, 0), changed: true,
			check: checks(wantBroker(1, func(b Broker) bool { return !b.Fenced }, "unfenced"), wantParts(idA,
				P(0, []int32{1, 2, 3}, []int32{2, 3}, 2, 1, 1), // 1 rejoins the ISR through AlterPartition
				P(2, []int32{1}, []int32{1}, 1, 2, 2))),
		},
		{
			name: "unclean unfencing elects a replica outside the ISR", setup: clusterBase(topicU(nil), fence(2, 0), fence(1, 0)),
			cmd: &unfenceBrokerV1{ID: 2, IncarnationID: inc(2, 0), Unclean: true}, changed: true,
			check: wantParts(idB, P(0, []int32{1, 2}, []int32{2}, 2, 2, 2)),
		},
		{
			name: "clean unfencing leaves a replica outside the ISR alone", setup: clusterBase(topicU(nil), fence(2, 0), fence(1, 0)),
			cmd: unfence(2, 0), changed: true,
			check: wantParts(idB, P(0, []int32{1, 2}, []int32{1}, -1, 1, 1)),
		},
		{name: "unfence with a stale incarnation", setup: clusterBase(reg(2, 1, "r2")), cmd: unfence(2, 0), wantErr: ErrStaleBrokerIncarnation},
		{name: "unfence an unknown broker", cmd: unfence(2, 0), wantErr: ErrUnknownBroker},
		{name: "unfence an unfenced broker is a no-op", setup: clusterBase(), cmd: unfence(2, 0)},
		{name: "unfence during controlled shutdown", setup: clusterBase(shutdown(2, 0)), cmd: unfence(2, 0), wantErr: ErrInvalidArgument},
	})
}

func TestFSMControlledShutdown(t *testing.T) {
	runFSMCases(t, []fsmCase{
		{
			name: "moves leadership and ISR membership away, then fences", setup: clusterBase(),
			cmd: shutdown(1, 0), changed: true,
			check: checks(wantBroker(1, func(b Broker) bool { return b.Fenced && b.InControlledShutdown }, "fenced, shutting down"), wantParts(idA,
				P(0, []int32{1, 2, 3}, []int32{2, 3}, 2, 1, 1),
				P(1, []int32{2, 1}, []int32{2}, 2, 0, 1),
				P(2, []int32{1}, []int32{1}, -1, 1, 1))),
		},
		{name: "never unclean", setup: clusterBase(topicU(map[string]string{uncleanConfig: "true"})), cmd: shutdown(1, 0), changed: true,
			check: wantParts(idB, P(0, []int32{1, 2}, []int32{1}, -1, 1, 1))},
		{name: "repeated is a no-op", setup: clusterBase(shutdown(1, 0)), cmd: shutdown(1, 0)},
		{name: "stale incarnation", setup: clusterBase(reg(1, 1, "r1")), cmd: shutdown(1, 0), wantErr: ErrStaleBrokerIncarnation},
		{name: "unknown broker", cmd: shutdown(1, 0), wantErr: ErrUnknownBroker},
		{
			name: "a new incarnation starts over", setup: clusterBase(shutdown(1, 0)), cmd: reg(1, 1, "r1"), changed: true,
			check: wantBroker(1, func(b Broker) bool { return b.Fenced && !b.InControlledShutdown }, "fenced, not shutting down"),
		},
	})
}

func alter(p int32, leader, leaderEpoch, partitionEpoch int32, isr ...int32) *alterPartitionV1 {
	return &alterPartitionV1{TopicID: idA, Partition: p, LeaderID: leader, LeaderEpoch: leaderEpoch, PartitionEpoch: partitionEpoch, NewISR: isr}
}

func TestFSMAlterPartition(t *testing.T) {
	withInc := func(c *alterPartitionV1, gen byte) *alterPartitionV1 {
		c.BrokerIncarnationID = inc(c.LeaderID, gen)
		return c
	}
	runFSMCases(t, []fsmCase{
		{name: "shrink", setup: clusterBase(), cmd: alter(0, 1, 0, 0, 1, 2), changed: true,
			check: checks(wantParts(idA, P(0, []int32{1, 2, 3}, []int32{1, 2}, 1, 0, 1)), func(t *testing.T, _ *fsm, res applyResult) {
				if res.partition.PartitionEpoch != 1 || !slices.Equal(res.partition.ISR, []int32{1, 2}) {
					t.Errorf("result partition %+v", res.partition)
				}
			})},
		{name: "expand", setup: clusterBase(alter(0, 1, 0, 0, 1)), cmd: alter(0, 1, 0, 1, 3, 1), changed: true,
			check: wantParts(idA, P(0, []int32{1, 2, 3}, []int32{3, 1}, 1, 0, 2))},
		{name: "with the current incarnation", setup: clusterBase(), cmd: withInc(alter(0, 1, 0, 0, 1), 0), changed: true},
		{name: "same ISR changes nothing", setup: clusterBase(), cmd: alter(0, 1, 0, 0, 1, 2, 3)},
		{name: "stale leader epoch", setup: clusterBase(fence(1, 0), unfence(1, 0)), cmd: alter(2, 1, 0, 2, 1), wantErr: ErrFencedLeaderEpoch},
		{name: "future leader epoch", setup: clusterBase(), cmd: alter(0, 1, 1, 0, 1), wantErr: ErrFencedLeaderEpoch},
		{name: "stale partition epoch", setup: clusterBase(fence(3, 0)), cmd: alter(0, 1, 0, 0, 1), wantErr: ErrStalePartitionEpoch},
		{name: "not the leader", setup: clusterBase(), cmd: alter(0, 2, 0, 0, 2), wantErr: ErrInvalidArgument},
		{name: "stale incarnation", setup: clusterBase(), cmd: withInc(alter(0, 1, 0, 0, 1), 1), wantErr: ErrStaleBrokerIncarnation},
		{name: "not a replica", setup: clusterBase(&registerBrokerV1{Broker: brokerRec{ID: 4}}), cmd: alter(1, 2, 0, 0, 2, 4), wantErr: ErrIneligibleReplica},
		{name: "fenced replica", setup: clusterBase(fence(3, 0)), cmd: alter(0, 1, 0, 1, 1, 3), wantErr: ErrIneligibleReplica},
		{name: "ineligible is an invalid argument", setup: clusterBase(fence(3, 0)), cmd: alter(0, 1, 0, 1, 1, 3), wantErr: ErrInvalidArgument},
		{name: "leader left out", setup: clusterBase(), cmd: alter(0, 1, 0, 0, 2, 3), wantErr: ErrInvalidArgument},
		{name: "empty ISR", setup: clusterBase(), cmd: alter(0, 1, 0, 0), wantErr: ErrInvalidArgument},
		{name: "duplicate member", setup: clusterBase(), cmd: alter(0, 1, 0, 0, 1, 2, 2), wantErr: ErrInvalidArgument},
		{name: "leaderless partition", setup: clusterBase(fence(1, 0)), cmd: alter(2, -1, 1, 1, 1), wantErr: ErrInvalidArgument},
		{name: "unknown partition", setup: clusterBase(), cmd: alter(7, 1, 0, 0, 1), wantErr: ErrUnknownTopic},
		{name: "unknown topic", setup: clusterBase(), cmd: &alterPartitionV1{TopicID: idC, LeaderID: 1, NewISR: []int32{1}}, wantErr: ErrUnknownTopic},
	})
}

func elect(typ ElectionType, parts ...int32) *electLeadersV1 {
	c := &electLeadersV1{Election: int8(typ)}
	for _, p := range parts {
		c.Partitions = append(c.Partitions, topicPartitionRec{TopicID: idA, Partition: p})
	}
	return c
}

func wantElections(want ...error) func(*testing.T, *fsm, applyResult) {
	return func(t *testing.T, _ *fsm, res applyResult) {
		t.Helper()
		if len(res.elections) != len(want) {
			t.Fatalf("%d election results %+v, want %d", len(res.elections), res.elections, len(want))
		}
		for i, w := range want {
			if got := res.elections[i].Err; (w == nil) != (got == nil) || (w != nil && !errors.Is(got, w)) {
				t.Errorf("result %d (%s-%d): %v, want %v", i, res.elections[i].TopicID, res.elections[i].Partition, got, w)
			}
		}
	}
}

func TestFSMElectLeaders(t *testing.T) {
	// After fence+unfence of 1, t-0 is led by 2 and 1 is out of its ISR;
	// the AlterPartition brings 1 back in sync.
	moved := clusterBase(fence(1, 0), unfence(1, 0))
	back := append(slices.Clone(moved), alter(0, 2, 1, 1, 2, 3, 1))
	runFSMCases(t, []fsmCase{
		{name: "preferred", setup: back, cmd: elect(ElectPreferred, 0), changed: true,
			check: checks(wantElections(nil), wantParts(idA, P(0, []int32{1, 2, 3}, []int32{2, 3, 1}, 1, 2, 3)))},
		{name: "preferred not in the ISR", setup: moved, cmd: elect(ElectPreferred, 0), check: wantElections(ErrPreferredLeaderNotAvailable)},
		{name: "preferred fenced", setup: append(slices.Clone(back), fence(1, 0)), cmd: elect(ElectPreferred, 0), check: wantElections(ErrPreferredLeaderNotAvailable)},
		{name: "preferred already leads", setup: clusterBase(), cmd: elect(ElectPreferred, 0), check: wantElections(ErrElectionNotNeeded)},
		{name: "unclean with a leader", setup: clusterBase(), cmd: elect(ElectUnclean, 0), check: wantElections(ErrElectionNotNeeded)},
		{name: "unclean takes a replica outside the ISR", setup: clusterBase(topicU(nil), fence(1, 0)),
			cmd: &electLeadersV1{Election: int8(ElectUnclean), Partitions: []topicPartitionRec{{TopicID: idB}}}, changed: true,
			check: checks(wantElections(nil), wantParts(idB, P(0, []int32{1, 2}, []int32{2}, 2, 2, 2)))},
		{name: "unclean without a live replica", setup: clusterBase(fence(1, 0)), cmd: elect(ElectUnclean, 2), check: wantElections(ErrEligibleLeadersNotAvailable)},
		{name: "per-partition results in order", setup: back, cmd: elect(ElectPreferred, 1, 9, 0), changed: true,
			check: wantElections(ErrElectionNotNeeded, ErrUnknownTopic, nil)},
		{name: "all partitions lists only those tried", setup: moved, cmd: &electLeadersV1{Election: int8(ElectPreferred), All: true},
			check: checks(wantElections(ErrPreferredLeaderNotAvailable), func(t *testing.T, _ *fsm, res applyResult) {
				if res.elections[0].TopicPartition != (TopicPartition{TopicID: idA, Partition: 0}) {
					t.Errorf("result for %+v, want t-0", res.elections[0].TopicPartition)
				}
			})},
		{name: "unknown election type", setup: clusterBase(), cmd: elect(2, 0), wantErr: ErrInvalidArgument},
		{name: "all and a list", setup: clusterBase(), cmd: &electLeadersV1{All: true, Partitions: []topicPartitionRec{{TopicID: idA}}}, wantErr: ErrInvalidArgument},
	})
}

func reassign(p int32, target ...int32) *reassignPartitionV1 {
	return &reassignPartitionV1{TopicID: idA, Partition: p, Target: target, Cancel: target == nil}
}

func wantReassignments(want ...Reassignment) func(*testing.T, *fsm, applyResult) {
	return func(t *testing.T, f *fsm, _ applyResult) {
		t.Helper()
		got := f.reassignments()
		if len(want) == 0 && len(got) == 0 {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("reassignments %+v, want %+v", got, want)
		}
	}
}

func TestFSMReassignPartition(t *testing.T) {
	b4 := []command{reg(4, 0, "r1"), unfence(4, 0)}
	base := clusterBase(b4...)
	started := clusterBase(append(slices.Clone(b4), reassign(1, 2, 4))...)
	ongoing := Reassignment{TopicPartition: TopicPartition{TopicID: idA, Partition: 1}, Replicas: []int32{2, 4, 1}, AddingReplicas: []int32{4}, RemovingReplicas: []int32{1}}
	runFSMCases(t, []fsmCase{
		{name: "start", setup: base, cmd: reassign(1, 2, 4), changed: true,
			check: checks(wantReassignments(ongoing), func(t *testing.T, f *fsm, _ applyResult) {
				want := P(1, []int32{2, 4, 1}, []int32{2, 1}, 2, 0, 1)
				want.AddingReplicas, want.RemovingReplicas = []int32{4}, []int32{1}
				wantParts(idA, want)(t, f, applyResult{})
				if tp, _ := f.topic("t"); !reflect.DeepEqual(tp.Partitions[1], want) {
					t.Errorf("topic read shows %+v", tp.Partitions[1])
				}
			})},
		{name: "completes when the adding replicas are in sync", setup: started, cmd: alter(1, 2, 0, 1, 2, 1, 4), changed: true,
			check: checks(wantReassignments(), wantParts(idA, P(1, []int32{2, 4}, []int32{2, 4}, 2, 0, 2)))},
		{name: "not complete while an adding replica lags", setup: clusterBase(append(slices.Clone(b4), reassign(1, 3, 4))...),
			cmd: alter(1, 2, 0, 1, 2, 1, 4), changed: true,
			check: wantReassignments(Reassignment{TopicPartition: TopicPartition{TopicID: idA, Partition: 1}, Replicas: []int32{3, 4, 2, 1},
				AddingReplicas: []int32{3, 4}, RemovingReplicas: []int32{2, 1}})},
		{name: "completion moves leadership off a removed leader", setup: clusterBase(append(slices.Clone(b4), reassign(1, 1, 4))...),
			cmd: alter(1, 2, 0, 1, 2, 1, 4), changed: true,
			check: checks(wantReassignments(), wantParts(idA, P(1, []int32{1, 4}, []int32{1, 4}, 1, 1, 2)))},
		{name: "removal only completes at once", setup: base, cmd: reassign(0, 1, 2), changed: true,
			check: checks(wantReassignments(), wantParts(idA, P(0, []int32{1, 2}, []int32{1, 2}, 1, 0, 1)))},
		{name: "reorder only", setup: base, cmd: reassign(1, 1, 2), changed: true,
			check: checks(wantReassignments(), wantParts(idA, P(1, []int32{1, 2}, []int32{2, 1}, 2, 0, 1)))},
		{name: "same target again", setup: started, cmd: reassign(1, 2, 4)},
		{name: "target equal to the replicas", setup: base, cmd: reassign(1, 2, 1)},
		{name: "replace an ongoing one", setup: started, cmd: reassign(1, 2, 3), changed: true,
			check: wantReassignments(Reassignment{TopicPartition: TopicPartition{TopicID: idA, Partition: 1}, Replicas: []int32{2, 3, 1},
				AddingReplicas: []int32{3}, RemovingReplicas: []int32{1}})},
		{name: "cancel", setup: started, cmd: reassign(1), changed: true,
			check: checks(wantReassignments(), wantParts(idA, P(1, []int32{2, 1}, []int32{2, 1}, 2, 0, 2)))},
		{name: "cancel after the new replica joined the ISR leaves it", setup: clusterBase(append(slices.Clone(b4), reassign(1, 3, 4), alter(1, 2, 0, 1, 2, 4))...),
			cmd: reassign(1), changed: true,
			check: checks(wantReassignments(), wantParts(idA, P(1, []int32{2, 1}, []int32{2}, 2, 0, 3)))},
		{name: "cancel without a reassignment", setup: base, cmd: reassign(1), wantErr: ErrNoReassignmentInProgress},
		{name: "cancel with a target", setup: started, cmd: &reassignPartitionV1{TopicID: idA, Partition: 1, Target: []int32{2}, Cancel: true}, wantErr: ErrInvalidArgument},
		{name: "unregistered broker", setup: base, cmd: reassign(1, 2, 9), wantErr: ErrInvalidReplicaAssignment},
		{name: "broker twice", setup: base, cmd: reassign(1, 2, 2), wantErr: ErrInvalidReplicaAssignment},
		{name: "empty target", setup: base, cmd: &reassignPartitionV1{TopicID: idA, Partition: 1, Target: []int32{}}, wantErr: ErrInvalidReplicaAssignment},
		{name: "unknown partition", setup: base, cmd: reassign(5, 1), wantErr: ErrUnknownTopic},
		{name: "deleting the topic drops it", setup: started, cmd: &deleteTopicV1{ID: idA}, changed: true, check: wantReassignments()},
		{name: "fencing an adding replica keeps it going", setup: started, cmd: fence(4, 0), changed: true, check: wantReassignments(ongoing)},
	})
}

// TestClusterInvariants applies long random sequences of cluster commands,
// valid and invalid, and checks after every one what clients and replicas
// rely on.
func TestClusterInvariants(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			runInvariantSequence(t, seed, 1500)
		})
	}
}

type epochKey struct {
	tp    partKey
	epoch int32
}

func runInvariantSequence(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	f := newFSM()
	const brokers = 5
	gens := map[int32]byte{}
	for id := int32(1); id <= brokers; id++ {
		applyCmd(t, f, reg(id, 0, fmt.Sprintf("r%d", id%3)))
		applyCmd(t, f, unfence(id, 0))
	}
	topics := []uuid.UUID{idA, idB, idC}
	for i, id := range topics {
		placed, err := PlaceReplicas(f.brokers(), 4, 3, i)
		if err != nil {
			t.Fatal(err)
		}
		var parts []partitionRec
		for p, r := range placed {
			parts = append(parts, prt(int32(p), r, r, r[0]))
		}
		if res := applyCmd(t, f, &createTopicV1{Topic: topicRec{Name: fmt.Sprintf("t%d", i), ID: id, Partitions: parts}}); res.err != nil {
			t.Fatal(res.err)
		}
	}
	leaders := map[epochKey]int32{}
	prev := map[partKey]partitionRec{}
	observe := func(step int, c command) {
		for id, tr := range f.st.topics {
			for i, p := range tr.Partitions {
				key := partKey{id, int32(i)}
				ctx := fmt.Sprintf("step %d (%T %+v): %s-%d %+v", step, c, c, tr.Name, i, p)
				checkPartitionInvariants(t, f.st, key, p, ctx)
				if old, ok := prev[key]; ok {
					leaderChanged := old.Leader != p.Leader
					changed := leaderChanged || !slices.Equal(old.ISR, p.ISR) || !slices.Equal(old.Replicas, p.Replicas)
					switch {
					case p.LeaderEpoch < old.LeaderEpoch || p.PartitionEpoch < old.PartitionEpoch:
						t.Fatalf("%s: an epoch went down from %+v", ctx, old)
					case leaderChanged && p.LeaderEpoch <= old.LeaderEpoch:
						t.Fatalf("%s: leader changed without a new leader epoch (was %+v)", ctx, old)
					case changed && p.PartitionEpoch <= old.PartitionEpoch:
						t.Fatalf("%s: changed without a new partition epoch (was %+v)", ctx, old)
					case !changed && (p.PartitionEpoch != old.PartitionEpoch || p.LeaderEpoch != old.LeaderEpoch):
						t.Fatalf("%s: epochs moved without a change (was %+v)", ctx, old)
					}
				}
				prev[key] = p
				ek := epochKey{key, p.LeaderEpoch}
				if l, ok := leaders[ek]; ok && l != p.Leader {
					t.Fatalf("%s: leader epoch %d named leader %d before, now %d", ctx, p.LeaderEpoch, l, p.Leader)
				}
				leaders[ek] = p.Leader
			}
		}
	}
	observe(0, nil)
	pick := func(s []int32) int32 { return s[rng.IntN(len(s))] }
	randomPartition := func() (uuid.UUID, int32, partitionRec) {
		id := topics[rng.IntN(len(topics))]
		tr := f.st.topics[id]
		p := int32(rng.IntN(len(tr.Partitions)))
		return id, p, tr.Partitions[p]
	}
	ok := map[string]int{} // accepted commands by type
	defer func() {
		// The sequence must exercise every command, not only rejections.
		for _, c := range []command{&registerBrokerV2{}, &fenceBrokerV1{}, &unfenceBrokerV1{}, &controlledShutdownV1{},
			&alterPartitionV1{}, &electLeadersV1{}, &reassignPartitionV1{}} {
			if name := reflect.TypeOf(c).Elem().Name(); ok[name] == 0 && !t.Failed() {
				t.Errorf("no %s was accepted in %d steps (%v)", name, steps, ok)
			}
		}
		if !t.Failed() && len(f.st.reassigns) == 0 && ok["reassignPartitionV1"] < 5 {
			t.Errorf("few reassignments: %v", ok)
		}
	}()
	for step := 1; step <= steps; step++ {
		id := int32(1 + rng.IntN(brokers))
		gen := gens[id]
		if rng.IntN(8) == 0 && gen > 0 {
			gen-- // a stale incarnation now and then
		}
		var c command
		switch rng.IntN(10) {
		case 0:
			gens[id]++
			c = reg(id, gens[id], fmt.Sprintf("r%d", id%3))
		case 1, 2:
			c = &fenceBrokerV1{ID: id, IncarnationID: inc(id, gen), Unclean: rng.IntN(2) == 0}
		case 3, 4:
			c = &unfenceBrokerV1{ID: id, IncarnationID: inc(id, gen), Unclean: rng.IntN(2) == 0}
		case 5:
			if rng.IntN(3) == 0 {
				c = shutdown(id, gen)
			} else {
				tid, _, _ := randomPartition()
				c = &alterTopicConfigsV1{TopicID: tid, Set: map[string]string{uncleanConfig: fmt.Sprint(rng.IntN(2) == 0)}}
			}
		case 6, 7:
			tid, pi, p := randomPartition()
			isr := []int32{}
			for _, r := range p.Replicas {
				if r == p.Leader || rng.IntN(3) > 0 {
					isr = append(isr, r)
				}
			}
			rng.Shuffle(len(isr), func(i, j int) { isr[i], isr[j] = isr[j], isr[i] })
			ac := &alterPartitionV1{TopicID: tid, Partition: pi, LeaderID: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: isr}
			switch rng.IntN(6) {
			case 0:
				ac.LeaderEpoch--
			case 1:
				ac.PartitionEpoch--
			case 2:
				ac.LeaderID = pick(p.Replicas)
			}
			c = ac
		case 8:
			tid, pi, _ := randomPartition()
			c = &electLeadersV1{Election: int8(rng.IntN(2)), Partitions: []topicPartitionRec{{TopicID: tid, Partition: pi}}}
			if rng.IntN(4) == 0 {
				c = &electLeadersV1{Election: int8(rng.IntN(2)), All: true}
			}
		case 9:
			tid, pi, _ := randomPartition()
			rc := &reassignPartitionV1{TopicID: tid, Partition: pi}
			if rng.IntN(3) == 0 {
				rc.Cancel = true
			} else {
				all := []int32{1, 2, 3, 4, 5}
				rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
				rc.Target = all[:1+rng.IntN(3)]
			}
			c = rc
		}
		if res := applyCmd(t, f, c); res.err == nil {
			ok[reflect.TypeOf(c).Elem().Name()]++
		}
		observe(step, c)
		if step%100 == 0 {
			data := snapshotState(t, f)
			st, err := decodeSnapshot(data)
			if err != nil {
				t.Fatalf("step %d: snapshot does not restore: %v\n%s", step, err, data)
			}
			if !reflect.DeepEqual(st, f.st) {
				t.Fatalf("step %d: snapshot round trip differs", step)
			}
		}
	}
}

func checkPartitionInvariants(t *testing.T, st *state, key partKey, p partitionRec, ctx string) {
	t.Helper()
	for i, r := range p.Replicas {
		if slices.Contains(p.Replicas[:i], r) {
			t.Fatalf("%s: replica %d twice", ctx, r)
		}
	}
	if len(p.ISR) == 0 {
		t.Fatalf("%s: empty ISR", ctx)
	}
	for i, r := range p.ISR {
		if !slices.Contains(p.Replicas, r) || slices.Contains(p.ISR[:i], r) {
			t.Fatalf("%s: ISR member %d not a replica or twice", ctx, r)
		}
	}
	if p.Leader != noLeader {
		if !slices.Contains(p.ISR, p.Leader) {
			t.Fatalf("%s: leader not in the ISR", ctx)
		}
		if !st.live(p.Leader) {
			t.Fatalf("%s: leader %d is fenced or shutting down (%+v)", ctx, p.Leader, st.brokers[p.Leader])
		}
	}
	if r := st.reassigns[key]; r != nil {
		for _, a := range r.Adding {
			if !slices.Contains(p.Replicas, a) || slices.Contains(r.Removing, a) {
				t.Fatalf("%s: bad adding replica %d in %+v", ctx, a, r)
			}
		}
		for _, a := range r.Removing {
			if !slices.Contains(p.Replicas, a) {
				t.Fatalf("%s: bad removing replica %d in %+v", ctx, a, r)
			}
		}
		if len(r.Removing) >= len(p.Replicas) || len(r.Adding)+len(r.Removing) == 0 {
			t.Fatalf("%s: reassignment %+v leaves no target", ctx, r)
		}
	}
}

func TestClusterSnapshotRoundTrip(t *testing.T) {
	f := newFSM()
	for _, c := range sampleCommands() {
		if res := applyCmd(t, f, c); res.err != nil {
			t.Fatalf("%T %+v: %v", c, c, res.err)
		}
	}
	data := snapshotState(t, f)
	if !strings.HasPrefix(string(data), `{"format":4,`) || !strings.Contains(string(data), `"brokers":null`) {
		t.Fatalf("snapshot is not format 4 with brokers only as registrations:\n%s", data)
	}
	g := newFSM()
	if err := g.Restore(readCloser(data)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g.st, f.st) {
		t.Errorf("restored state differs\n got: %+v\nwant: %+v", g.st, f.st)
	}
	// The restored state goes on: the ongoing reassignment of orders-0
	// (adding 3) completes once 3 is in sync.
	p, _ := g.partition(idA, 0)
	if !slices.Equal(p.AddingReplicas, []int32{3}) || !slices.Equal(p.RemovingReplicas, []int32{2}) {
		t.Fatalf("restored orders-0 = %+v", p)
	}
	res := applyCmd(t, g, &alterPartitionV1{TopicID: idA, Partition: 0, LeaderID: 1, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: []int32{1, 3}})
	if res.err != nil || len(g.reassignments()) != 0 {
		t.Errorf("completing the restored reassignment: %v, left %+v", res.err, g.reassignments())
	}
	if b, _ := g.broker(4); !b.InControlledShutdown || !b.Fenced {
		t.Errorf("restored broker 4 = %+v", b)
	}
	if b, _ := g.broker(2); !b.Fenced || b.IncarnationID != uuid.Nil || b.Endpoints != nil {
		t.Errorf("restored fenced v1 broker 2 = %+v", b)
	}
}

func TestSnapshotFormatFollowsClusterState(t *testing.T) {
	f := newFSM()
	applyCmd(t, f, &registerBrokerV1{Broker: brokerRec{ID: 1, Host: "h", Port: 9092}})
	applyCmd(t, f, topicCmd("t", idA))
	if got := string(snapshotState(t, f)); !strings.HasPrefix(got, `{"format":1,`) {
		t.Fatalf("v1 brokers only: %s", got)
	}
	applyCmd(t, f, reg(2, 0, ""))
	got := string(snapshotState(t, f))
	want := `{"format":4,"cluster_id":"","brokers":null,"topics":[{"name":"t","id":"0a1b2c3d-0000-4000-8000-00000000000a","internal":false,"configs":null,` +
		`"partitions":[{"index":0,"replicas":[1],"isr":[1],"leader":1,"leader_epoch":0,"partition_epoch":0}]}],"next_producer_id":0,"remote_manifests":null,` +
		`"acls":null,"scram_credentials":null,"client_quotas":null,"broker_registrations":[` +
		`{"id":1,"incarnation_id":"00000000-0000-0000-0000-000000000000","endpoints":[{"listener":"PLAINTEXT","host":"h","port":9092,"security_protocol":"PLAINTEXT"}],"rack":"","fenced":false,"in_controlled_shutdown":false},` +
		`{"id":2,"incarnation_id":"` + inc(2, 0).String() + `","endpoints":[{"listener":"PLAINTEXT","host":"b2","port":9092,"security_protocol":"PLAINTEXT"},` +
		`{"listener":"REPLICATION","host":"b2","port":9094,"security_protocol":"SSL"}],"rack":"","fenced":true,"in_controlled_shutdown":false}],"reassignments":null}` + "\n"
	if got != want {
		t.Errorf("format 4 snapshot\n got: %s\nwant: %s", got, want)
	}
	// Back to v1-only brokers: back to format 1.
	applyCmd(t, f, &registerBrokerV1{Broker: brokerRec{ID: 2}})
	if got := string(snapshotState(t, f)); !strings.HasPrefix(got, `{"format":1,`) {
		t.Errorf("after re-registering with v1: %s", got)
	}
}

func TestRestoreRejectsBadClusterState(t *testing.T) {
	const topic = `"topics":[{"name":"t","id":"0a1b2c3d-0000-4000-8000-00000000000a","partitions":[{"index":0,"replicas":[1,2],"isr":[1,2],"leader":1}]}]`
	b := func(id int, inc string, extra string) string {
		return fmt.Sprintf(`{"id":%d,"incarnation_id":"%s","endpoints":[{"listener":"A","host":"h","port":1,"security_protocol":"SSL"}]%s}`, id, inc, extra)
	}
	i1 := inc(1, 0).String()
	tests := []struct {
		name, data string
	}{
		{"format 4 with nothing that needs it", `{"format":4}`},
		{"format 4 with legacy brokers", `{"format":4,"brokers":[{"id":1}],"broker_registrations":[` + b(2, i1, "") + `]}`},
		{"registration twice", `{"format":4,"broker_registrations":[` + b(1, i1, "") + `,` + b(1, i1, "") + `]}`},
		{"null registration", `{"format":4,"broker_registrations":[null]}`},
		{"registration without endpoints", `{"format":4,"broker_registrations":[{"id":1,"incarnation_id":"` + i1 + `"}]}`},
		{"non-legacy broker without incarnation", `{"format":4,"broker_registrations":[` + b(1, uuid.Nil.String(), "") + `]}`},
		{"shutting down but not fenced", `{"format":4,"broker_registrations":[` + b(1, i1, `,"in_controlled_shutdown":true`) + `]}`},
		{"fenced leader", `{"format":4,` + topic + `,"broker_registrations":[` + b(1, i1, `,"fenced":true`) + `]}`},
		{"reassignment of an unknown partition", `{"format":4,` + topic + `,"broker_registrations":[` + b(1, i1, "") + `],` +
			`"reassignments":[{"topic_id":"0a1b2c3d-0000-4000-8000-00000000000a","partition":1,"adding":[2]}]}`},
		{"reassignment adding a non-replica", `{"format":4,` + topic + `,"reassignments":[{"topic_id":"0a1b2c3d-0000-4000-8000-00000000000a","partition":0,"adding":[3]}]}`},
		{"reassignment removing everything", `{"format":4,` + topic + `,"reassignments":[{"topic_id":"0a1b2c3d-0000-4000-8000-00000000000a","partition":0,"removing":[1,2]}]}`},
		{"empty reassignment", `{"format":4,` + topic + `,"reassignments":[{"topic_id":"0a1b2c3d-0000-4000-8000-00000000000a","partition":0}]}`},
		{"format 5", `{"format":5}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if st, err := decodeSnapshot([]byte(tc.data)); err == nil {
				t.Fatalf("accepted: %+v", st)
			}
		})
	}
	// The same documents, fixed, restore: the checks above are the only
	// reason for the refusals.
	ok := `{"format":4,` + topic + `,"broker_registrations":[` + b(1, i1, "") + `],` +
		`"reassignments":[{"topic_id":"0a1b2c3d-0000-4000-8000-00000000000a","partition":0,"adding":[2],"removing":[1]}]}`
	if _, err := decodeSnapshot([]byte(ok)); err != nil {
		t.Fatalf("valid format 4 refused: %v", err)
	}
}

func TestClusterReadsReturnCopies(t *testing.T) {
	f := newFSM()
	for _, c := range clusterBase(reg(4, 0, ""), unfence(4, 0), reassign(1, 2, 4)) {
		applyCmd(t, f, c)
	}
	b, _ := f.broker(1)
	b.Endpoints[0].Host = "changed"
	p, _ := f.partition(idA, 1)
	p.AddingReplicas[0], p.Replicas[0] = 99, 99
	f.reassignments()[0].Replicas[0] = 99
	if b, _ := f.broker(1); b.Endpoints[0].Host != "b1" {
		t.Error("broker changed through a returned copy")
	}
	if p, _ := f.partition(idA, 1); p.AddingReplicas[0] != 4 || p.Replicas[0] != 2 {
		t.Errorf("partition changed through a returned copy: %+v", p)
	}
}

func TestStoreCluster(t *testing.T) {
	ctx := waitCtx(t)
	dir := t.TempDir()
	s := openReady(t, Config{NodeID: 1, Dir: dir})
	for id := int32(1); id <= 3; id++ {
		r := BrokerRegistration{ID: id, IncarnationID: inc(id, 0), Rack: fmt.Sprintf("r%d", id),
			Endpoints: []Endpoint{{Listener: "PLAINTEXT", Host: "127.0.0.1", Port: 9092 + id, SecurityProtocol: "PLAINTEXT"}}}
		if err := s.RegisterBrokerV2(ctx, r); err != nil {
			t.Fatal(err)
		}
		if b, ok := s.Broker(id); !ok || !b.Fenced || b.Port != 9092+id {
			t.Fatalf("broker %d after registration: %+v", id, b)
		}
		if err := s.UnfenceBroker(ctx, id, inc(id, 0), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RegisterBrokerV2(ctx, BrokerRegistration{ID: 9, IncarnationID: inc(9, 0)}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("registration without endpoints: %v", err)
	}
	placed, err := PlaceReplicas(s.Brokers(), 2, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	topic := Topic{Name: "orders"}
	for i, r := range placed {
		topic.Partitions = append(topic.Partitions, Partition{Index: int32(i), Replicas: r, Leader: r[0]})
	}
	if err := s.CreateTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	tp, _ := s.Topic("orders")
	p0 := tp.Partitions[0]
	leader, follower := p0.Leader, p0.Replicas[1]

	got, err := s.AlterPartition(ctx, AlterPartitionRequest{TopicPartition: TopicPartition{TopicID: tp.ID}, LeaderID: leader,
		BrokerIncarnationID: inc(leader, 0), LeaderEpoch: 0, PartitionEpoch: 0, NewISR: []int32{leader}})
	if err != nil || got.PartitionEpoch != 1 || !slices.Equal(got.ISR, []int32{leader}) {
		t.Fatalf("AlterPartition = %+v, %v", got, err)
	}
	if _, err := s.AlterPartition(ctx, AlterPartitionRequest{TopicPartition: TopicPartition{TopicID: tp.ID}, LeaderID: leader,
		LeaderEpoch: 0, PartitionEpoch: 0, NewISR: []int32{leader, follower}}); !errors.Is(err, ErrStalePartitionEpoch) {
		t.Fatalf("stale AlterPartition: %v", err)
	}

	// Move partition 0 to the broker that is not a replica yet.
	var spare int32
	for id := int32(1); id <= 3; id++ {
		if !slices.Contains(p0.Replicas, id) {
			spare = id
		}
	}
	tp0 := TopicPartition{TopicID: tp.ID, Partition: 0}
	if err := s.ReassignPartition(ctx, tp0, []int32{leader, spare}); err != nil {
		t.Fatal(err)
	}
	if rs := s.Reassignments(); len(rs) != 1 || !slices.Equal(rs[0].AddingReplicas, []int32{spare}) {
		t.Fatalf("Reassignments = %+v", rs)
	}
	got, err = s.AlterPartition(ctx, AlterPartitionRequest{TopicPartition: tp0, LeaderID: leader, LeaderEpoch: 0, PartitionEpoch: 2, NewISR: []int32{leader, spare}})
	if err != nil || !slices.Equal(got.Replicas, []int32{leader, spare}) || len(s.Reassignments()) != 0 {
		t.Fatalf("completing AlterPartition = %+v, %v; reassignments %+v", got, err, s.Reassignments())
	}
	if err := s.ReassignPartition(ctx, tp0, nil); !errors.Is(err, ErrNoReassignmentInProgress) {
		t.Fatalf("cancel without a reassignment: %v", err)
	}

	if err := s.ControlledShutdown(ctx, leader, inc(leader, 0)); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Partition(tp.ID, 0); p.Leader != spare || p.LeaderEpoch != 1 {
		t.Fatalf("after controlled shutdown of %d: %+v", leader, p)
	}
	if err := s.FenceBroker(ctx, leader, inc(leader, 7), false); !errors.Is(err, ErrStaleBrokerIncarnation) {
		t.Fatalf("fence with a stale incarnation: %v", err)
	}
	// The old leader comes back as a new process, catches up, and takes
	// its preferred leadership back.
	if err := s.RegisterBrokerV2(ctx, BrokerRegistration{ID: leader, IncarnationID: inc(leader, 1),
		Endpoints: []Endpoint{{Listener: "PLAINTEXT", Host: "127.0.0.1", Port: 1, SecurityProtocol: "PLAINTEXT"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.UnfenceBroker(ctx, leader, inc(leader, 1), false); err != nil {
		t.Fatal(err)
	}
	p, _ := s.Partition(tp.ID, 0)
	if _, err := s.AlterPartition(ctx, AlterPartitionRequest{TopicPartition: tp0, LeaderID: spare, LeaderEpoch: p.LeaderEpoch,
		PartitionEpoch: p.PartitionEpoch, NewISR: []int32{spare, leader}}); err != nil {
		t.Fatal(err)
	}
	res, err := s.ElectLeaders(ctx, ElectPreferred, nil)
	if err != nil || len(res) != 1 || res[0].TopicPartition != tp0 || res[0].Err != nil {
		t.Fatalf("ElectLeaders = %+v, %v", res, err)
	}
	if _, ok := s.Partition(tp.ID, 5); ok {
		t.Error("Partition found a partition that does not exist")
	}
	want := s.Topics()
	wantBrokers := s.Brokers()

	// All of it survives a restart (log replay of the new commands).
	mustClose(t, s)
	s = openReady(t, Config{NodeID: 1, Dir: dir})
	if got := s.Topics(); !reflect.DeepEqual(got, want) {
		t.Errorf("topics after restart\n got: %+v\nwant: %+v", got, want)
	}
	if got := s.Brokers(); !reflect.DeepEqual(got, wantBrokers) {
		t.Errorf("brokers after restart\n got: %+v\nwant: %+v", got, wantBrokers)
	}
	mustClose(t, s)
}
