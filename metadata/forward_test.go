package metadata

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/google/uuid"
)

func frameBody(t testing.TB, frame []byte) []byte {
	t.Helper()
	body, err := readFrame(bytes.NewReader(frame))
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func TestForwardRequestRoundTrip(t *testing.T) {
	cmd, err := encodeCommand(&allocateProducerIDsV1{Count: 5})
	if err != nil {
		t.Fatal(err)
	}
	tests := []*fwdRequest{
		{Kind: fwdPropose, Op: "allocate", Command: cmd},
		{Kind: fwdAddNonvoter, Op: "join", ID: 10, Addr: "broker-10:9093"},
		{Kind: fwdAddVoter, ID: 0, Addr: "[::1]:9093"},
		{Kind: fwdRemoveServer, ID: 3},
		{Kind: fwdDescribeQuorum},
		{Kind: fwdReplicaState},
	}
	for _, req := range tests {
		t.Run(req.Kind.String(), func(t *testing.T) {
			frame, err := encodeRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeRequest(frameBody(t, frame))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, req) {
				t.Errorf("decoded %+v, want %+v", got, req)
			}
		})
	}
}

func TestForwardRequestRejects(t *testing.T) {
	good, _ := encodeRequest(&fwdRequest{Kind: fwdRemoveServer, ID: 1})
	body := frameBody(t, good)
	tests := map[string][]byte{
		"empty":          {},
		"version only":   {fwdVersion},
		"newer version":  append([]byte{fwdVersion + 1}, body[1:]...),
		"unknown kind":   append([]byte{fwdVersion, 99}, body[2:]...),
		"unknown field":  append([]byte{fwdVersion, byte(fwdRemoveServer)}, `{"id":1,"x":2}`...),
		"trailing data":  append([]byte{fwdVersion, byte(fwdRemoveServer)}, `{"id":1}{}`...),
		"negative id":    append([]byte{fwdVersion, byte(fwdRemoveServer)}, `{"id":-1}`...),
		"no command":     append([]byte{fwdVersion, byte(fwdPropose)}, `{}`...),
		"bad address":    append([]byte{fwdVersion, byte(fwdAddVoter)}, `{"id":1,"addr":"nope"}`...),
		"not json":       append([]byte{fwdVersion, byte(fwdReplicaState)}, `]`...),
		"null body kind": append([]byte{fwdVersion, 0}, `{}`...),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if req, err := decodeRequest(b); !errors.Is(err, errBadForward) {
				t.Errorf("decodeRequest = %+v, %v; want errBadForward", req, err)
			}
		})
	}
	// An oversized frame is refused before it is read.
	huge := []byte{0xff, 0xff, 0xff, 0xff}
	if _, err := readFrame(bytes.NewReader(huge)); !errors.Is(err, errBadForward) {
		t.Errorf("oversized frame: %v", err)
	}
}

func TestForwardResponseRoundTrip(t *testing.T) {
	acls := []aclRec{{ResourceType: 2, ResourceName: "orders", PatternType: 3, Principal: "User:alice", Host: "*", Operation: 3, Permission: 3}}
	tests := []struct {
		name string
		kind fwdKind
		in   fwdResponse
	}{
		{"producer ids", fwdPropose, fwdResponse{result: applyResult{producerID: 4000}}},
		{"cluster id", fwdPropose, fwdResponse{result: applyResult{clusterID: "abc"}}},
		{"removed acls", fwdPropose, fwdResponse{result: applyResult{removedACLs: acls}}},
		{"partition", fwdPropose, fwdResponse{result: applyResult{partition: partitionRec{Index: 2, Replicas: []int32{1, 2}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 4, PartitionEpoch: 9}}}},
		{"rejected", fwdPropose, fwdResponse{status: fwdFailed, err: fmt.Errorf("create topic %q: %w", "t", ErrTopicExists)}},
		{"not leader", fwdPropose, fwdResponse{status: fwdNotLeader, leaderID: 2, leaderAddr: "h2:9093"}},
		{"no leader", fwdAddVoter, fwdResponse{status: fwdNotLeader, leaderID: -1}},
		{"membership", fwdRemoveServer, fwdResponse{}},
		{"quorum", fwdDescribeQuorum, fwdResponse{quorum: &QuorumInfo{LeaderID: 1, LeaderEpoch: 3, HighWatermark: 40,
			Voters:    []ReplicaState{{ID: 1, Addr: "a:1", LogEndOffset: 40, LastFetchTimestamp: 5, LastCaughtUpTimestamp: 5}},
			Observers: []ReplicaState{{ID: 9, Addr: "b:1", LogEndOffset: -1, LastFetchTimestamp: -1, LastCaughtUpTimestamp: -1}}}}},
		{"replica", fwdReplicaState, fwdResponse{replica: &replicaReport{NodeID: 2, LastIndex: 39, LastContactMs: -1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frame, err := encodeResponse(tc.kind, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeResponse(frameBody(t, frame), tc.kind)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.in
			if want.err != nil {
				if got.err == nil || got.err.Error() != want.err.Error() {
					t.Errorf("error %v, want %v", got.err, want.err)
				}
				got.err, want.err = nil, nil
				got.result.err = nil
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decoded %+v, want %+v", got, want)
			}
		})
	}
	// An answer to another kind of request is refused.
	frame, _ := encodeResponse(fwdDescribeQuorum, fwdResponse{quorum: &QuorumInfo{}})
	if _, err := decodeResponse(frameBody(t, frame), fwdPropose); !errors.Is(err, errBadForward) {
		t.Errorf("answer of the wrong kind: %v", err)
	}
}

func TestForwardElectionsRoundTrip(t *testing.T) {
	id := uuid.MustParse("11111111-2222-4333-8444-555555555555")
	in := []ElectionResult{
		{TopicPartition: TopicPartition{TopicID: id, Partition: 0}},
		{TopicPartition: TopicPartition{TopicID: id, Partition: 1}, Err: fmt.Errorf("p1: %w", ErrElectionNotNeeded)},
	}
	frame, err := encodeResponse(fwdPropose, fwdResponse{result: applyResult{elections: in}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeResponse(frameBody(t, frame), fwdPropose)
	if err != nil {
		t.Fatal(err)
	}
	es := got.result.elections
	if len(es) != 2 || es[0].TopicPartition != in[0].TopicPartition || es[0].Err != nil ||
		es[1].TopicPartition != in[1].TopicPartition || !errors.Is(es[1].Err, ErrElectionNotNeeded) || es[1].Err.Error() != in[1].Err.Error() {
		t.Errorf("elections came back as %+v", es)
	}
}

// Every sentinel in the table survives the trip, errors.Is included, and
// codes are unique.
func TestWireErrorCodes(t *testing.T) {
	codes := map[uint16]bool{}
	for _, e := range wireErrorCodes {
		if codes[e.code] || e.code == 0 {
			t.Fatalf("code %d reused or zero", e.code)
		}
		codes[e.code] = true
		in := fmt.Errorf("op on x: %w", e.err)
		frame, err := encodeResponse(fwdPropose, fwdResponse{status: fwdFailed, err: in})
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeResponse(frameBody(t, frame), fwdPropose)
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(got.err, e.err) || got.err.Error() != in.Error() {
			t.Errorf("%v came back as %v", in, got.err)
		}
	}
	// An error without a sentinel keeps its message.
	frame, _ := encodeResponse(fwdPropose, fwdResponse{status: fwdFailed, err: errors.New("disk on fire")})
	got, _ := decodeResponse(frameBody(t, frame), fwdPropose)
	if got.err == nil || got.err.Error() != "disk on fire" {
		t.Errorf("plain error came back as %v", got.err)
	}
}

// wireResult must carry every value applyResult can return, or a forwarded
// write would silently lose it.
func TestWireResultCoversApplyResult(t *testing.T) {
	ar := reflect.TypeFor[applyResult]()
	wr := reflect.TypeFor[wireResult]()
	if ar.NumField()-1 != wr.NumField() {
		var names []string
		for i := range ar.NumField() {
			names = append(names, ar.Field(i).Name)
		}
		t.Fatalf("applyResult has fields %v; wireResult (forward.go) has %d: add the new ones to wireResult, encodeResponse and decodeResponse", names, wr.NumField())
	}
}

func FuzzDecodeForward(f *testing.F) {
	cmd, _ := encodeCommand(&createTopicV1{Topic: topicRec{Name: "t"}})
	for _, req := range []*fwdRequest{
		{Kind: fwdPropose, Op: "x", Command: cmd},
		{Kind: fwdAddNonvoter, ID: 4, Addr: "h:1"},
		{Kind: fwdDescribeQuorum},
	} {
		frame, _ := encodeRequest(req)
		f.Add(frame[4:])
	}
	for _, r := range []struct {
		k fwdKind
		r fwdResponse
	}{
		{fwdPropose, fwdResponse{result: applyResult{producerID: 7}}},
		{fwdPropose, fwdResponse{status: fwdFailed, err: ErrUnknownTopic}},
		{fwdDescribeQuorum, fwdResponse{quorum: &QuorumInfo{Voters: []ReplicaState{{ID: 1}}}}},
		{fwdReplicaState, fwdResponse{replica: &replicaReport{NodeID: 1}}},
	} {
		frame, _ := encodeResponse(r.k, r.r)
		f.Add(frame[4:])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if req, err := decodeRequest(body); err == nil {
			// What decodes re-encodes to something that decodes the same.
			frame, err := encodeRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			again, err := decodeRequest(frame[4:])
			if err != nil || !reflect.DeepEqual(again, req) {
				t.Fatalf("re-decoded %+v, %v; want %+v", again, err, req)
			}
		}
		for k := fwdPropose; k <= fwdReplicaState; k++ {
			_, _ = decodeResponse(body, k)
		}
		_, _ = readFrame(bytes.NewReader(body))
	})
}
