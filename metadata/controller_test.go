package metadata

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

func brokersIn(racks map[string][]int32) []Broker {
	var out []Broker
	for rack, ids := range racks {
		for _, id := range ids {
			out = append(out, Broker{ID: id, Rack: rack, IncarnationID: inc(id, 0)})
		}
	}
	return out
}

func TestPlaceReplicasAcrossRacks(t *testing.T) {
	// 3 racks x 2 brokers, RF 3: one replica per rack in every partition,
	// and leaders spread evenly over the six brokers.
	brokers := brokersIn(map[string][]int32{"a": {1, 2}, "b": {3, 4}, "c": {5, 6}})
	rackOf := map[int32]string{1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}
	for _, start := range []int{0, 1, 5, 17, -3} {
		t.Run(fmt.Sprint("start ", start), func(t *testing.T) {
			got, err := PlaceReplicas(brokers, 12, 3, start)
			if err != nil {
				t.Fatal(err)
			}
			leaders := map[int32]int{}
			replicas := map[int32]int{}
			for p, rs := range got {
				racks := map[string]bool{}
				for _, r := range rs {
					racks[rackOf[r]] = true
					replicas[r]++
				}
				if len(rs) != 3 || len(racks) != 3 {
					t.Errorf("partition %d: %v is not one replica per rack", p, rs)
				}
				leaders[rs[0]]++
			}
			for id := int32(1); id <= 6; id++ {
				if leaders[id] != 2 || replicas[id] != 6 {
					t.Errorf("broker %d leads %d and holds %d replicas, want 2 and 6 (leaders %v)", id, leaders[id], replicas[id], leaders)
				}
			}
			again, _ := PlaceReplicas(brokers, 12, 3, start)
			if !reflect.DeepEqual(again, got) {
				t.Error("placement is not deterministic")
			}
		})
	}
}

func TestPlaceReplicas(t *testing.T) {
	tests := []struct {
		name     string
		brokers  []Broker
		parts    int
		rf       int
		wantErr  error
		validate func(t *testing.T, got [][]int32)
	}{
		{
			name: "no racks spreads over brokers", brokers: brokersIn(map[string][]int32{"": {1, 2, 3, 4}}), parts: 8, rf: 2,
			validate: func(t *testing.T, got [][]int32) {
				leaders, followers := map[int32]int{}, map[[2]int32]int{}
				for _, rs := range got {
					if rs[0] == rs[1] {
						t.Fatalf("replica twice in %v", rs)
					}
					leaders[rs[0]]++
					followers[[2]int32{rs[0], rs[1]}]++
				}
				for id := int32(1); id <= 4; id++ {
					if leaders[id] != 2 {
						t.Errorf("leaders %v, want 2 each", leaders)
					}
				}
				for pair, n := range followers {
					if n > 1 {
						t.Errorf("pair %v used %d times: followers do not rotate (%v)", pair, n, got)
					}
				}
			},
		},
		{
			name: "uneven racks still use every rack first", brokers: brokersIn(map[string][]int32{"a": {1, 2, 3, 4}, "b": {5}, "c": {6}}), parts: 6, rf: 3,
			validate: func(t *testing.T, got [][]int32) {
				for _, rs := range got {
					if !slices.Contains(rs, 5) || !slices.Contains(rs, 6) {
						t.Errorf("%v leaves out rack b or c", rs)
					}
				}
			},
		},
		{
			name:    "fenced and shutting-down brokers are skipped",
			brokers: []Broker{{ID: 1}, {ID: 2, Fenced: true}, {ID: 3}, {ID: 4, Fenced: true, InControlledShutdown: true}},
			parts:   4, rf: 2,
			validate: func(t *testing.T, got [][]int32) {
				for _, rs := range got {
					if slices.Contains(rs, 2) || slices.Contains(rs, 4) {
						t.Errorf("%v uses a fenced broker", rs)
					}
				}
			},
		},
		{name: "RF above live brokers", brokers: []Broker{{ID: 1}, {ID: 2}, {ID: 3, Fenced: true}}, parts: 1, rf: 3, wantErr: ErrInvalidReplicationFactor},
		{name: "no brokers", parts: 1, rf: 1, wantErr: ErrInvalidReplicationFactor},
		{name: "RF zero", brokers: []Broker{{ID: 1}}, parts: 1, rf: 0, wantErr: ErrInvalidReplicationFactor},
		{name: "no partitions", brokers: []Broker{{ID: 1}}, parts: 0, rf: 1, wantErr: ErrInvalidPartitions},
		{
			name: "single broker", brokers: []Broker{{ID: 7}}, parts: 3, rf: 1,
			validate: func(t *testing.T, got [][]int32) {
				if !reflect.DeepEqual(got, [][]int32{{7}, {7}, {7}}) {
					t.Errorf("got %v", got)
				}
			},
		},
		{
			name: "RF equal to brokers uses all", brokers: brokersIn(map[string][]int32{"a": {1, 2}, "b": {3}}), parts: 3, rf: 3,
			validate: func(t *testing.T, got [][]int32) {
				for _, rs := range got {
					if s := slices.Sorted(slices.Values(rs)); !slices.Equal(s, []int32{1, 2, 3}) {
						t.Errorf("%v is not all three brokers", rs)
					}
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PlaceReplicas(tc.brokers, tc.parts, tc.rf, 0)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.parts {
				t.Fatalf("%d partitions placed, want %d", len(got), tc.parts)
			}
			tc.validate(t, got)
		})
	}
}

func TestHeartbeatTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const session = 9 * time.Second
	live := func(id int32, gen byte) Broker { return Broker{ID: id, IncarnationID: inc(id, gen)} }
	brokers := []Broker{live(1, 0), live(2, 0), live(3, 0), {ID: 4, Fenced: true, IncarnationID: inc(4, 0)}, {ID: 5}}

	h := NewHeartbeatTracker(t0)
	if got := h.Expired(t0.Add(session), session, brokers); got != nil {
		t.Errorf("within the grace period: %v expired", got)
	}
	h.Touch(1, inc(1, 0), t0.Add(5*time.Second))
	h.Touch(2, inc(2, 1), t0.Add(5*time.Second)) // another incarnation: does not count
	h.Touch(3, inc(3, 0), t0.Add(8*time.Second))
	h.Touch(3, inc(3, 0), t0.Add(2*time.Second)) // late, reordered: ignored
	at := t0.Add(session + time.Second)
	if got := h.Expired(at, session, brokers); !slices.Equal(got, []int32{2}) {
		t.Errorf("Expired = %v, want [2] (the fenced broker 4 and the v1 broker 5 never expire)", got)
	}
	if got := h.Expired(t0.Add(15*time.Second), session, brokers); !slices.Equal(got, []int32{1, 2}) {
		t.Errorf("Expired later = %v, want [1 2]", got)
	}
	if !h.HasSession(3, inc(3, 0), at, session) || h.HasSession(2, inc(2, 0), at, session) || !h.HasSession(2, inc(2, 1), at, session) {
		t.Error("HasSession disagrees with the heartbeats")
	}
	h.Forget(3)
	if h.HasSession(3, inc(3, 0), at, session) {
		t.Error("a forgotten broker still has a session")
	}

	// A new active controller gives everybody a fresh session.
	t1 := t0.Add(time.Hour)
	h.Reset(t1)
	if got := h.Expired(t1.Add(session), session, brokers); got != nil {
		t.Errorf("after Reset: %v expired during the grace period", got)
	}
	if got := h.Expired(t1.Add(session+1), session, brokers); !slices.Equal(got, []int32{1, 2, 3}) {
		t.Errorf("after the grace period: %v", got)
	}
	if h.HasSession(1, uuid.Nil, t1.Add(session+1), session) {
		t.Error("session past the grace period")
	}
}

// TestElectionRules pins the pure election rules on their own, without
// the FSM around them.
func TestElectionRules(t *testing.T) {
	live := func(ids ...int32) liveFunc { return func(id int32) bool { return slices.Contains(ids, id) } }
	p := prt(0, []int32{1, 2, 3}, []int32{1, 3}, 1)
	tests := []struct {
		name string
		got  partitionRec
		want partitionRec
	}{
		{"leader leaves: next ISR member in replica order", removeBroker(p, 1, live(2, 3), false), prt(0, []int32{1, 2, 3}, []int32{3}, 3)},
		{"follower leaves", removeBroker(p, 3, live(1, 2), false), prt(0, []int32{1, 2, 3}, []int32{1}, 1)},
		{"non-member leaves", removeBroker(p, 2, live(1, 3), false), p},
		{"last member stays in the ISR", removeBroker(prt(0, []int32{1, 2}, []int32{1}, 1), 1, live(2), false), prt(0, []int32{1, 2}, []int32{1}, -1)},
		{"unclean picks a live replica", removeBroker(prt(0, []int32{1, 2, 3}, []int32{1}, 1), 1, live(3), true), prt(0, []int32{1, 2, 3}, []int32{3}, 3)},
		{"unfenced ISR member leads", addBroker(prt(0, []int32{1, 2}, []int32{2}, -1), 2, live(2), false), prt(0, []int32{1, 2}, []int32{2}, 2)},
		{"unfenced non-member waits", addBroker(prt(0, []int32{1, 2}, []int32{1}, -1), 2, live(2), false), prt(0, []int32{1, 2}, []int32{1}, -1)},
		{"unfenced non-member leads uncleanly", addBroker(prt(0, []int32{1, 2}, []int32{1}, -1), 2, live(2), true), prt(0, []int32{1, 2}, []int32{2}, 2)},
		{"a partition with a leader is left alone", addBroker(p, 2, live(1, 2, 3), true), p},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Errorf("got %+v, want %+v", tc.got, tc.want)
			}
		})
	}
	if _, changed := bumpEpochs(p, removeBroker(p, 2, live(1, 3), false)); changed {
		t.Error("an unchanged partition got new epochs")
	}
	np, changed := bumpEpochs(p, removeBroker(p, 1, live(3), false))
	if !changed || np.LeaderEpoch != 1 || np.PartitionEpoch != 1 {
		t.Errorf("leader change bumped to %+v", np)
	}
	if p.ISR[0] != 1 || len(p.ISR) != 2 {
		t.Errorf("the input partition was modified: %+v", p)
	}
}

func TestUncleanAllowed(t *testing.T) {
	tests := []struct {
		cfg  map[string]string
		def  bool
		want bool
	}{
		{nil, false, false},
		{nil, true, true},
		{map[string]string{uncleanConfig: "true"}, false, true},
		{map[string]string{uncleanConfig: " TRUE "}, false, true},
		{map[string]string{uncleanConfig: "false"}, true, false},
		{map[string]string{uncleanConfig: "maybe"}, true, true},
	}
	for _, tc := range tests {
		if got := uncleanAllowed(tc.cfg, tc.def); got != tc.want {
			t.Errorf("uncleanAllowed(%v, %v) = %v", tc.cfg, tc.def, got)
		}
	}
}
