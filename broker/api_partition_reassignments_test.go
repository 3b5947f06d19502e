package broker

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/metadata"
)

// TestReassignmentsSingleNode covers what a single broker can be asked:
// the only valid target is the broker itself, which completes at once.
func TestReassignmentsSingleNode(t *testing.T) {
	ts := startServer(t)
	ts.createTopic(t, "moves", 2)
	self := ts.cfg.NodeID
	adm := kadm.NewClient(ts.client(t))
	ctx := context.Background()

	tests := []struct {
		name    string
		topic   string
		p       int32
		target  []int32
		want    error
		noRFchg bool
	}{
		{name: "same broker", topic: "moves", p: 0, target: []int32{self}},
		{name: "same broker, no rf change", topic: "moves", p: 1, target: []int32{self}, noRFchg: true},
		{name: "unknown broker", topic: "moves", p: 0, target: []int32{self + 41}, want: kerr.InvalidReplicaAssignment},
		{name: "adds an unknown broker", topic: "moves", p: 0, target: []int32{self, self + 41}, want: kerr.InvalidReplicaAssignment},
		{name: "broker twice", topic: "moves", p: 0, target: []int32{self, self}, want: kerr.InvalidReplicaAssignment},
		{name: "empty target", topic: "moves", p: 0, target: []int32{}, want: kerr.InvalidReplicaAssignment},
		{name: "cancel with none in progress", topic: "moves", p: 0, target: nil, want: kerr.NoReassignmentInProgress},
		{name: "unknown partition", topic: "moves", p: 9, target: []int32{self}, want: kerr.UnknownTopicOrPartition},
		{name: "unknown topic", topic: "ghost", p: 0, target: []int32{self}, want: kerr.UnknownTopicOrPartition},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var req kadm.AlterPartitionAssignmentsReq
			req.Assign(tc.topic, tc.p, tc.target)
			actx := ctx
			if tc.noRFchg {
				actx = kadm.ForbidAlterRf(ctx)
			}
			res, err := adm.AlterPartitionAssignments(actx, req)
			if err != nil {
				t.Fatal(err)
			}
			r, ok := res[tc.topic][tc.p]
			if !ok {
				t.Fatalf("no result for %s-%d: %+v", tc.topic, tc.p, res)
			}
			if !errors.Is(r.Err, tc.want) || (r.Err == nil) != (tc.want == nil) {
				t.Errorf("error %v (%q), want %v", r.Err, r.ErrMessage, tc.want)
			}
			if tc.want != nil && r.ErrMessage == "" {
				t.Errorf("%v without a message", r.Err)
			}
		})
	}
	topic, _ := ts.meta.Topic("moves")
	for _, p := range topic.Partitions {
		if !slices.Equal(p.Replicas, []int32{self}) || p.Leader != self {
			t.Errorf("partition %d: replicas %v leader %d after the requests", p.Index, p.Replicas, p.Leader)
		}
	}
	listed, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{"moves": {0: {}, 1: {}}, "ghost": {0: {}}})
	if err != nil || len(listed) != 0 {
		t.Errorf("list: %+v %v, want nothing in progress", listed, err)
	}
	rc := ts.raw(t)
	if resp := rc.do(kmsg.NewPtrListPartitionReassignmentsRequest()).(*kmsg.ListPartitionReassignmentsResponse); resp.ErrorCode != 0 || len(resp.Topics) != 0 {
		t.Errorf("list all: error %d, topics %+v", resp.ErrorCode, resp.Topics)
	}
}

// TestReassignmentInProgress registers a second broker that never catches
// up, so a reassignment onto it stays in progress: List shows it, the
// preferred leader it names is not available, and cancelling restores the
// replicas.
func TestReassignmentInProgress(t *testing.T) {
	ts := startServer(t)
	ts.createTopic(t, "moves", 1)
	self, other := ts.cfg.NodeID, ts.cfg.NodeID+1
	ctx := context.Background()
	if err := ts.meta.RegisterBroker(ctx, metadata.Broker{ID: other, Host: "127.0.0.1", Port: 1}); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(ts.client(t))
	assign := func(actx context.Context, target []int32) kadm.AlterPartitionAssignmentsResponse {
		t.Helper()
		var req kadm.AlterPartitionAssignmentsReq
		req.Assign("moves", 0, target)
		res, err := adm.AlterPartitionAssignments(actx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res["moves"][0]
	}

	if r := assign(kadm.ForbidAlterRf(ctx), []int32{other, self}); !errors.Is(r.Err, kerr.InvalidReplicationFactor) {
		t.Errorf("rf 1 -> 2 with rf changes forbidden: %v, want INVALID_REPLICATION_FACTOR", r.Err)
	}
	if r := assign(ctx, []int32{other, self}); r.Err != nil {
		t.Fatalf("reassign to [%d %d]: %v (%s)", other, self, r.Err, r.ErrMessage)
	}

	want := kadm.ListPartitionReassignmentsResponse{Topic: "moves", Partition: 0, Replicas: []int32{other, self}, AddingReplicas: []int32{other}, RemovingReplicas: []int32{}}
	listed, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{"moves": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	got := listed["moves"][0]
	if !slices.Equal(got.Replicas, want.Replicas) || !slices.Equal(got.AddingReplicas, want.AddingReplicas) || len(got.RemovingReplicas) != 0 {
		t.Errorf("listed %+v, want %+v", got, want)
	}
	rc := ts.raw(t)
	all := rc.do(kmsg.NewPtrListPartitionReassignmentsRequest()).(*kmsg.ListPartitionReassignmentsResponse)
	if len(all.Topics) != 1 || all.Topics[0].Topic != "moves" || len(all.Topics[0].Partitions) != 1 {
		t.Errorf("list all: %+v", all.Topics)
	}

	// The new preferred replica is not in the ISR yet.
	set := kadm.TopicsSet{}
	set.Add("moves", 0)
	res, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, set)
	if err != nil {
		t.Fatal(err)
	}
	if r := res["moves"][0]; !errors.Is(r.Err, kerr.PreferredLeaderNotAvailable) {
		t.Errorf("preferred election: %v, want PREFERRED_LEADER_NOT_AVAILABLE", r.Err)
	}
	if p, _ := ts.meta.Topic("moves"); p.Partitions[0].Leader != self {
		t.Errorf("leader %d, want %d to lead until the reassignment completes", p.Partitions[0].Leader, self)
	}

	if r := assign(ctx, nil); r.Err != nil {
		t.Fatalf("cancel: %v (%s)", r.Err, r.ErrMessage)
	}
	if r := assign(ctx, nil); !errors.Is(r.Err, kerr.NoReassignmentInProgress) {
		t.Errorf("second cancel: %v, want NO_REASSIGNMENT_IN_PROGRESS", r.Err)
	}
	topic, _ := ts.meta.Topic("moves")
	if p := topic.Partitions[0]; !slices.Equal(p.Replicas, []int32{self}) || p.Leader != self {
		t.Errorf("after cancel: replicas %v leader %d", p.Replicas, p.Leader)
	}
	if listed, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{"moves": {0: {}}}); err != nil || len(listed) != 0 {
		t.Errorf("list after cancel: %+v %v", listed, err)
	}
}
