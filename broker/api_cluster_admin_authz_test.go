package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAuthzClusterAdminAPIs: DescribeQuorum and ListPartitionReassignments
// need DESCRIBE on the cluster, ElectLeaders and AlterPartitionReassignments
// ALTER, as in Kafka; a denial is CLUSTER_AUTHORIZATION_FAILED at the top
// level and in every partition the request names, and changes nothing.
func TestAuthzClusterAdminAPIs(t *testing.T) {
	ts := startAuthzServer(t)
	ts.adminTopic(t, "data", 1)
	rc := ts.rawAs(t, alice)

	describeQuorum := func() *kmsg.DescribeQuorumResponse {
		return rc.do(describeQuorumReq(2, "__cluster_metadata", 0)).(*kmsg.DescribeQuorumResponse)
	}
	listReassignments := func() *kmsg.ListPartitionReassignmentsResponse {
		return rc.do(kmsg.NewPtrListPartitionReassignmentsRequest()).(*kmsg.ListPartitionReassignmentsResponse)
	}
	elect := func() *kmsg.ElectLeadersResponse {
		return rc.do(electReq(2, 0, map[string][]int32{"data": {0}, "ghost": {0}})).(*kmsg.ElectLeadersResponse)
	}
	alter := func() *kmsg.AlterPartitionAssignmentsResponse {
		req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
		req.Version, req.TimeoutMillis = 1, 5000
		for _, name := range []string{"data", "ghost"} {
			rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
			rt.Topic = name
			rt.Partitions = []kmsg.AlterPartitionAssignmentsRequestTopicPartition{{Partition: 0, Replicas: []int32{ts.cfg.NodeID + 41}}}
			req.Topics = append(req.Topics, rt)
		}
		return rc.do(req).(*kmsg.AlterPartitionAssignmentsResponse)
	}
	checkElectDenied := func(r *kmsg.ElectLeadersResponse) {
		t.Helper()
		if r.ErrorCode != codeClusterAuthz || len(r.Topics) != 2 {
			t.Fatalf("ElectLeaders: error %d, topics %+v", r.ErrorCode, r.Topics)
		}
		for _, rt := range r.Topics {
			if len(rt.Partitions) != 1 || rt.Partitions[0].ErrorCode != codeClusterAuthz {
				t.Errorf("ElectLeaders %s: %+v", rt.Topic, rt.Partitions)
			}
		}
	}
	checkAlterDenied := func(r *kmsg.AlterPartitionAssignmentsResponse) {
		t.Helper()
		if r.ErrorCode != codeClusterAuthz || len(r.Topics) != 2 {
			t.Fatalf("AlterPartitionReassignments: error %d, topics %+v", r.ErrorCode, r.Topics)
		}
		for _, rt := range r.Topics {
			if len(rt.Partitions) != 1 || rt.Partitions[0].ErrorCode != codeClusterAuthz {
				t.Errorf("AlterPartitionReassignments %s: %+v", rt.Topic, rt.Partitions)
			}
		}
	}

	// Nothing granted.
	if r := describeQuorum(); r.ErrorCode != codeClusterAuthz || len(r.Topics) != 0 || len(r.Nodes) != 0 {
		t.Errorf("DescribeQuorum: error %d, %d topics, %d nodes", r.ErrorCode, len(r.Topics), len(r.Nodes))
	}
	if r := listReassignments(); r.ErrorCode != codeClusterAuthz || len(r.Topics) != 0 {
		t.Errorf("ListPartitionReassignments: error %d, topics %+v", r.ErrorCode, r.Topics)
	}
	beforeAlter := denials(t, ts, alice, "CLUSTER", "ALTER")
	checkElectDenied(elect())
	checkAlterDenied(alter())
	if got := denials(t, ts, alice, "CLUSTER", "ALTER"); got != beforeAlter+2 {
		t.Errorf("ALTER CLUSTER denials %v, want %v", got, beforeAlter+2)
	}

	// DESCRIBE is enough to look, not to change.
	ts.grant(t, alice, clusterRes, literal, clusterResourceName, kmsg.ACLOperationDescribe)
	if r := describeQuorum(); r.ErrorCode != 0 || r.Topics[0].Partitions[0].LeaderID != ts.cfg.NodeID {
		t.Errorf("DescribeQuorum with DESCRIBE: error %d, %+v", r.ErrorCode, r.Topics)
	}
	if r := listReassignments(); r.ErrorCode != 0 {
		t.Errorf("ListPartitionReassignments with DESCRIBE: error %d", r.ErrorCode)
	}
	checkElectDenied(elect())
	checkAlterDenied(alter())

	ts.grant(t, alice, clusterRes, literal, clusterResourceName, kmsg.ACLOperationAlter)
	er := elect()
	if er.ErrorCode != 0 {
		t.Fatalf("ElectLeaders with ALTER: error %d", er.ErrorCode)
	}
	for _, rt := range er.Topics {
		want := kerr.ElectionNotNeeded.Code
		if rt.Topic == "ghost" {
			want = kerr.UnknownTopicOrPartition.Code
		}
		if rt.Partitions[0].ErrorCode != want {
			t.Errorf("ElectLeaders with ALTER, %s: error %d, want %d", rt.Topic, rt.Partitions[0].ErrorCode, want)
		}
	}
	ar := alter()
	if ar.ErrorCode != 0 || !ar.AllowReplicationFactorChange {
		t.Fatalf("AlterPartitionReassignments with ALTER: error %d, allow rf change %v", ar.ErrorCode, ar.AllowReplicationFactorChange)
	}
	for _, rt := range ar.Topics {
		want := kerr.InvalidReplicaAssignment.Code
		if rt.Topic == "ghost" {
			want = kerr.UnknownTopicOrPartition.Code
		}
		if rt.Partitions[0].ErrorCode != want {
			t.Errorf("AlterPartitionReassignments with ALTER, %s: error %d, want %d", rt.Topic, rt.Partitions[0].ErrorCode, want)
		}
	}
}
