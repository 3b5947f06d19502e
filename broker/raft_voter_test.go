package broker

import (
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// addBrokerOnly starts node id with process-roles=broker: it follows tc's
// quorum as an observer (a Raft non-voter) from its own Raft address. It
// returns the node's index in tc; tc's cleanup stops it.
func (tc *testCluster) addBrokerOnly(id int32) int {
	tc.t.Helper()
	cfg := tc.cfgs[0] // the same tuning and voter list
	cfg.NodeID = id
	cfg.ProcessRoles = "broker"
	cfg.DataDir = tc.t.TempDir()
	cfg.Listen = freeLoopbackAddr(tc.t)
	cfg.ControllerAddr = freeLoopbackAddr(tc.t)
	cfg.ControllerAdvertisedAddr = cfg.ControllerAddr
	tc.cfgs = append(tc.cfgs, cfg)
	tc.nodes = append(tc.nodes, nil)
	i := len(tc.nodes) - 1
	if err := tc.start(i); err != nil {
		tc.t.Fatal(err)
	}
	return i
}

func addVoterReq(id int32, addr string) *kmsg.AddRaftVoterRequest {
	req := kmsg.NewPtrAddRaftVoterRequest()
	req.Version, req.VoterID, req.TimeoutMillis = 1, id, 10000
	if addr != "" {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			panic(err)
		}
		p, _ := strconv.Atoi(port)
		l := kmsg.NewAddRaftVoterRequestListener()
		l.Name, l.Host, l.Port = "CONTROLLER", host, uint16(p)
		req.Listeners = append(req.Listeners, l)
	}
	return req
}

func removeVoterReq(id int32) *kmsg.RemoveRaftVoterRequest {
	req := kmsg.NewPtrRemoveRaftVoterRequest()
	req.VoterID = id
	return req
}

func addVoter(rc *rawConn, req *kmsg.AddRaftVoterRequest) *kmsg.AddRaftVoterResponse {
	rc.t.Helper()
	return rc.do(req).(*kmsg.AddRaftVoterResponse)
}

func removeVoter(rc *rawConn, id int32) *kmsg.RemoveRaftVoterResponse {
	rc.t.Helper()
	return rc.do(removeVoterReq(id)).(*kmsg.RemoveRaftVoterResponse)
}

// quorum is DescribeQuorum v2's answer, checked for a partition-level
// success.
func quorum(t *testing.T, rc *rawConn) *kmsg.DescribeQuorumResponse {
	t.Helper()
	resp := rc.do(describeQuorumReq(2, "__cluster_metadata", 0)).(*kmsg.DescribeQuorumResponse)
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("DescribeQuorum: error %d, topics %+v", resp.ErrorCode, resp.Topics)
	}
	return resp
}

func replicaIDs(rs []kmsg.DescribeQuorumResponseTopicPartitionReplicaState) []int32 {
	out := []int32{}
	for _, r := range rs {
		out = append(out, r.ReplicaID)
	}
	return out
}

// pollUntil retries cond, which may issue requests, until it holds.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wantCode(t *testing.T, what string, got int16, msg *string, want *kerr.Error) {
	t.Helper()
	if got != want.Code {
		m := ""
		if msg != nil {
			m = *msg
		}
		t.Errorf("%s: %v (%s), want %s", what, kerr.ErrorForCode(got), m, want.Message)
	}
}

// TestRaftVoterAddRemove: a broker-only node follows the quorum as an
// observer, AddRaftVoter promotes it and RemoveRaftVoter takes it out, as
// DescribeQuorum shows from any node; the requests are refused as Kafka
// refuses them when they cannot apply.
func TestRaftVoterAddRemove(t *testing.T) {
	tc := startTestCluster(t, 2, func(c *Config) { c.ControlledShutdownEnable = false })
	const newID = 3
	bi := tc.addBrokerOnly(newID)
	raftAddr := tc.cfgs[bi].ControllerAddr
	rc := dialRaw(t, tc.nodes[0].addr)
	// The broker-only node answers too: it forwards to the quorum leader.
	viaNew := dialRaw(t, tc.nodes[bi].addr)

	var hw int64
	pollUntil(t, "the new node to show as a caught-up observer", func() bool {
		p := quorum(t, rc).Topics[0].Partitions[0]
		hw = p.HighWatermark
		return slices.ContainsFunc(p.Observers, func(o kmsg.DescribeQuorumResponseTopicPartitionReplicaState) bool {
			return o.ReplicaID == newID && o.LogEndOffset >= p.HighWatermark
		})
	})
	if hw < 1 {
		t.Fatalf("high watermark %d", hw)
	}

	// Refusals, none of which changes the quorum.
	r := addVoter(viaNew, addVoterReq(1, tc.cfgs[0].ControllerAddr))
	wantCode(t, "add a voter again", r.ErrorCode, r.ErrorMessage, kerr.DuplicateVoter)
	r = addVoter(viaNew, addVoterReq(9, "127.0.0.1:1"))
	wantCode(t, "add a node that does not follow the quorum", r.ErrorCode, r.ErrorMessage, kerr.RequestTimedOut)
	r = addVoter(viaNew, addVoterReq(newID, freeLoopbackAddr(t)))
	wantCode(t, "add the observer under another address", r.ErrorCode, r.ErrorMessage, kerr.InvalidRequest)
	r = addVoter(viaNew, addVoterReq(newID, ""))
	wantCode(t, "add without a listener", r.ErrorCode, r.ErrorMessage, kerr.InvalidRequest)
	req := addVoterReq(newID, raftAddr)
	req.ClusterID = kmsg.StringPtr("another-cluster")
	r = addVoter(viaNew, req)
	wantCode(t, "add with another cluster id", r.ErrorCode, r.ErrorMessage, kerr.InconsistentClusterID)
	rr := removeVoter(rc, newID)
	wantCode(t, "remove an observer", rr.ErrorCode, rr.ErrorMessage, kerr.VoterNotFound)
	if p := quorum(t, rc).Topics[0].Partitions[0]; !slices.Equal(replicaIDs(p.CurrentVoters), []int32{1, 2}) ||
		!slices.Equal(replicaIDs(p.Observers), []int32{newID}) {
		t.Fatalf("after refusals: voters %v observers %v", replicaIDs(p.CurrentVoters), replicaIDs(p.Observers))
	}

	// Promote it, through itself, with the cluster id as Kafka's tools
	// send it.
	req = addVoterReq(newID, raftAddr)
	req.ClusterID = kmsg.StringPtr(tc.nodes[0].srv.meta.ClusterID())
	if r := addVoter(viaNew, req); r.ErrorCode != 0 {
		t.Fatalf("AddRaftVoter: %v (%s)", kerr.ErrorForCode(r.ErrorCode), *r.ErrorMessage)
	}
	// Committed when answered: every node describes the new voter set.
	for i, n := range tc.nodes {
		resp := quorum(t, dialRaw(t, n.addr))
		p := resp.Topics[0].Partitions[0]
		if !slices.Equal(replicaIDs(p.CurrentVoters), []int32{1, 2, newID}) || len(p.Observers) != 0 {
			t.Fatalf("node %d after AddRaftVoter: voters %v observers %v", i+1, replicaIDs(p.CurrentVoters), replicaIDs(p.Observers))
		}
		var nodes []int32
		for _, nd := range resp.Nodes {
			nodes = append(nodes, nd.NodeID)
			if len(nd.Listeners) == 0 {
				t.Errorf("node %d describes voter %d without listeners", i+1, nd.NodeID)
			}
		}
		if !slices.Equal(nodes, []int32{1, 2, newID}) {
			t.Errorf("node %d: nodes %v", i+1, nodes)
		}
	}
	r = addVoter(rc, addVoterReq(newID, raftAddr))
	wantCode(t, "add the new voter again", r.ErrorCode, r.ErrorMessage, kerr.DuplicateVoter)

	// And remove it again.
	if rr := removeVoter(rc, newID); rr.ErrorCode != 0 {
		t.Fatalf("RemoveRaftVoter: %v (%s)", kerr.ErrorForCode(rr.ErrorCode), *rr.ErrorMessage)
	}
	for _, i := range []int{0, 1} {
		p := quorum(t, dialRaw(t, tc.nodes[i].addr)).Topics[0].Partitions[0]
		if !slices.Equal(replicaIDs(p.CurrentVoters), []int32{1, 2}) || len(p.Observers) != 0 {
			t.Fatalf("node %d after RemoveRaftVoter: voters %v observers %v", i+1, replicaIDs(p.CurrentVoters), replicaIDs(p.Observers))
		}
	}
	rr = removeVoter(rc, newID)
	wantCode(t, "remove the removed voter", rr.ErrorCode, rr.ErrorMessage, kerr.VoterNotFound)
	// Out of the quorum the node no longer hears the metadata log.
	tc.stop(bi)
}

// TestRaftVoterAuthz: both APIs need ALTER on the cluster, as in Kafka;
// DESCRIBE is not enough. A denial changes nothing. Past the check, a
// single node refuses what would break its one-voter quorum.
func TestRaftVoterAuthz(t *testing.T) {
	ts := startAuthzServer(t)
	rc := ts.rawAs(t, alice)
	self := ts.cfg.NodeID
	selfAddr := "127.0.0.1:1" // the in-process quorum has no Raft address

	check := func(stage string, wantAdd, wantRemove *kerr.Error) {
		t.Helper()
		r := addVoter(rc, addVoterReq(self+1, selfAddr))
		wantCode(t, stage+": AddRaftVoter", r.ErrorCode, r.ErrorMessage, wantAdd)
		rr := removeVoter(rc, self)
		wantCode(t, stage+": RemoveRaftVoter", rr.ErrorCode, rr.ErrorMessage, wantRemove)
	}
	before := denials(t, ts, alice, "CLUSTER", "ALTER")
	check("nothing granted", kerr.ClusterAuthorizationFailed, kerr.ClusterAuthorizationFailed)
	if got := denials(t, ts, alice, "CLUSTER", "ALTER"); got != before+2 {
		t.Errorf("ALTER CLUSTER denials %v, want %v", got, before+2)
	}
	ts.grant(t, alice, clusterRes, literal, clusterResourceName, kmsg.ACLOperationDescribe)
	check("DESCRIBE", kerr.ClusterAuthorizationFailed, kerr.ClusterAuthorizationFailed)

	ts.grant(t, alice, clusterRes, literal, clusterResourceName, kmsg.ACLOperationAlter)
	check("ALTER", kerr.RequestTimedOut, kerr.InvalidRequest)
	r := addVoter(rc, addVoterReq(self, selfAddr))
	wantCode(t, "add this node", r.ErrorCode, r.ErrorMessage, kerr.DuplicateVoter)
	rr := removeVoter(rc, self+7)
	wantCode(t, "remove an unknown node", rr.ErrorCode, rr.ErrorMessage, kerr.VoterNotFound)

	p := quorum(t, ts.rawAs(t, admin)).Topics[0].Partitions[0]
	if !slices.Equal(replicaIDs(p.CurrentVoters), []int32{self}) || len(p.Observers) != 0 {
		t.Errorf("voters %v observers %v, want this node alone", replicaIDs(p.CurrentVoters), replicaIDs(p.Observers))
	}
}
