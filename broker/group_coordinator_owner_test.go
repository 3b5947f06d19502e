package broker

import (
	"slices"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Group APIs are answered only by the group's coordinator, the leader of
// its __consumer_offsets partition. These tests take one partition away
// from a single broker the way a leader change or a load would look to
// it, and check that every group API answers NOT_COORDINATOR or
// COORDINATOR_LOAD_IN_PROGRESS in the field Kafka uses, without touching
// the group.

// groupIn returns the first group id prefix+N whose __consumer_offsets
// partition satisfies match.
func groupIn(ts *testServer, prefix string, match func(p int32) bool) string {
	for i := 0; ; i++ {
		g := prefix + strconv.Itoa(i)
		if match(ts.groups.PartitionFor(g)) {
			return g
		}
	}
}

// ledElsewhere makes this broker see __consumer_offsets partition idx led
// by another broker, as after a leader change it applied, until undone.
func ledElsewhere(t *testing.T, ts *testServer, idx int32) (undo func()) {
	t.Helper()
	topic, ok := ts.parts.topic(offsetsTopicName)
	if !ok || topic.parts[idx] == nil {
		t.Fatalf("%s-%d is not hosted here", offsetsTopicName, idx)
	}
	p := topic.parts[idx]
	orig := p.state()
	moved := *orig
	moved.leader = ts.cfg.NodeID + 1
	// Newer than metadata's epoch, so a reconcile (a topic created
	// meanwhile) takes metadata's view for a stale one and keeps this.
	moved.leaderEpoch = orig.leaderEpoch + 100
	p.st.Store(&moved)
	return func() { p.st.Store(orig) }
}

// stillLoading marks __consumer_offsets partition idx as not loaded yet,
// as right after this broker became its leader, until undone.
func stillLoading(t *testing.T, ts *testServer, idx int32) (undo func()) {
	t.Helper()
	ts.gl.mu.Lock()
	defer ts.gl.mu.Unlock()
	st := ts.gl.state[idx]
	if st == nil || !st.loaded {
		t.Fatalf("%s-%d is not loaded", offsetsTopicName, idx)
	}
	st.loaded = false
	return func() {
		ts.gl.mu.Lock()
		st.loaded = true
		ts.gl.mu.Unlock()
	}
}

// joinAndSync makes a new member join group and completes the rebalance.
func joinAndSync(t *testing.T, rc *rawConn, group string) (member string, generation int32) {
	t.Helper()
	join := kmsg.NewPtrJoinGroupRequest()
	join.Version, join.Group, join.ProtocolType = 5, group, "consumer"
	join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 60000, 60000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{1}}}
	r := rc.do(join).(*kmsg.JoinGroupResponse)
	if r.ErrorCode == kerr.MemberIDRequired.Code {
		join.MemberID = r.MemberID
		r = rc.do(join).(*kmsg.JoinGroupResponse)
	}
	if r.ErrorCode != 0 {
		t.Fatalf("JoinGroup %s: error %d", group, r.ErrorCode)
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Version, sync.Group, sync.MemberID, sync.Generation = 3, group, r.MemberID, r.Generation
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: r.MemberID, MemberAssignment: []byte{2}}}
	if sr := rc.do(sync).(*kmsg.SyncGroupResponse); sr.ErrorCode != 0 {
		t.Fatalf("SyncGroup %s: error %d", group, sr.ErrorCode)
	}
	return r.MemberID, r.Generation
}

// memberCommitReq commits offset for t-0 and ghost-0 as a member.
func memberCommitReq(group, member string, generation int32, offset int64) *kmsg.OffsetCommitRequest {
	req := commitReq(group, map[string]int64{"t": offset, "ghost": offset})
	req.MemberID, req.Generation = member, generation
	return req
}

func txnCommitReq(version int16, group string) *kmsg.TxnOffsetCommitRequest {
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.Version, req.TransactionalID, req.Group = version, "tx", group
	req.ProducerID, req.ProducerEpoch, req.Generation = 1, 0, -1
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Offset = 7
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func txnCommitCodes(resp kmsg.Response) []int16 {
	var out []int16
	for _, t := range resp.(*kmsg.TxnOffsetCommitResponse).Topics {
		for _, p := range t.Partitions {
			out = append(out, p.ErrorCode)
		}
	}
	return out
}

// fetchedOffset is the committed offset of t-0 for group (v7).
func fetchedOffset(t *testing.T, rc *rawConn, group string) int64 {
	t.Helper()
	r := rc.do(offsetFetchReq(7, group, "t")).(*kmsg.OffsetFetchResponse)
	if r.ErrorCode != 0 || len(r.Topics) != 1 {
		t.Fatalf("OffsetFetch %s: error %d topics %+v", group, r.ErrorCode, r.Topics)
	}
	return r.Topics[0].Partitions[0].Offset
}

func listedGroups(rc *rawConn) (int16, []string) {
	req := kmsg.NewPtrListGroupsRequest()
	req.Version = 4
	resp := rc.do(req).(*kmsg.ListGroupsResponse)
	var out []string
	for _, g := range resp.Groups {
		out = append(out, g.Group)
	}
	slices.Sort(out)
	return resp.ErrorCode, out
}

func TestGroupAPIsOnlyAtCoordinator(t *testing.T) {
	ts := startServer(t)
	ts.createTopic(t, "t", 1)
	rc := ts.raw(t)

	// g shares its partition with the empty group id, which the
	// coordinator refuses for some APIs before ownership is looked at;
	// other lives on another partition.
	emptyIdx := ts.groups.PartitionFor("")
	g := groupIn(ts, "g-", func(p int32) bool { return p == emptyIdx })
	other := groupIn(ts, "o-", func(p int32) bool { return p != emptyIdx })
	idx := ts.groups.PartitionFor(g)

	// The first commit creates __consumer_offsets.
	for _, group := range []string{g, other} {
		if got := commitCodes(rc.do(commitReq(group, map[string]int64{"t": 5}))); got["t"] != 0 {
			t.Fatalf("commit for %s: %v", group, got)
		}
	}
	member, gen := joinAndSync(t, rc, g)

	for _, sc := range []struct {
		name  string
		code  int16
		enter func() (undo func())
	}{
		{"led elsewhere", kerr.NotCoordinator.Code, func() func() { return ledElsewhere(t, ts, idx) }},
		{"loading", kerr.CoordinatorLoadInProgress.Code, func() func() { return stillLoading(t, ts, idx) }},
	} {
		loading := sc.code == kerr.CoordinatorLoadInProgress.Code
		t.Run(sc.name, func(t *testing.T) {
			undo := sc.enter()
			defer undo()

			t.Run("JoinGroup", func(t *testing.T) {
				join := kmsg.NewPtrJoinGroupRequest()
				join.Version, join.Group, join.ProtocolType, join.MemberID = 5, g, "consumer", "m-1"
				join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 60000, 60000
				join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
				r := rc.do(join).(*kmsg.JoinGroupResponse)
				if r.ErrorCode != sc.code || r.MemberID != "m-1" || r.Generation != -1 || len(r.Members) != 0 {
					t.Errorf("error %d member %q generation %d members %d, want %d for m-1", r.ErrorCode, r.MemberID, r.Generation, len(r.Members), sc.code)
				}
				join.Group = ""
				if r := rc.do(join).(*kmsg.JoinGroupResponse); r.ErrorCode != kerr.InvalidGroupID.Code {
					t.Errorf("empty group id: error %d, want INVALID_GROUP_ID", r.ErrorCode)
				}
			})

			t.Run("SyncGroup", func(t *testing.T) {
				// While loading, the rebalance in flight is lost: rejoin.
				want := sc.code
				if loading {
					want = kerr.RebalanceInProgress.Code
				}
				sync := kmsg.NewPtrSyncGroupRequest()
				sync.Version, sync.Group, sync.MemberID, sync.Generation = 3, g, member, gen
				if r := rc.do(sync).(*kmsg.SyncGroupResponse); r.ErrorCode != want || len(r.MemberAssignment) != 0 {
					t.Errorf("error %d assignment %v, want %d", r.ErrorCode, r.MemberAssignment, want)
				}
			})

			t.Run("Heartbeat", func(t *testing.T) {
				want := sc.code
				if loading {
					want = 0 // answered blindly, as Kafka does
				}
				hb := kmsg.NewPtrHeartbeatRequest()
				hb.Version, hb.Group, hb.MemberID, hb.Generation = 3, g, member, gen
				if r := rc.do(hb).(*kmsg.HeartbeatResponse); r.ErrorCode != want {
					t.Errorf("error %d, want %d", r.ErrorCode, want)
				}
				hb.Group = ""
				if r := rc.do(hb).(*kmsg.HeartbeatResponse); r.ErrorCode != kerr.InvalidGroupID.Code {
					t.Errorf("empty group id: error %d, want INVALID_GROUP_ID", r.ErrorCode)
				}
			})

			t.Run("LeaveGroup", func(t *testing.T) {
				leave := kmsg.NewPtrLeaveGroupRequest()
				leave.Version, leave.Group = 3, g
				leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: member}}
				if r := rc.do(leave).(*kmsg.LeaveGroupResponse); r.ErrorCode != sc.code || len(r.Members) != 0 {
					t.Errorf("error %d members %+v, want %d and no members", r.ErrorCode, r.Members, sc.code)
				}
				leave.Version, leave.Members, leave.MemberID = 1, nil, member
				if r := rc.do(leave).(*kmsg.LeaveGroupResponse); r.ErrorCode != sc.code {
					t.Errorf("v1: error %d, want %d", r.ErrorCode, sc.code)
				}
				leave.Group = ""
				if r := rc.do(leave).(*kmsg.LeaveGroupResponse); r.ErrorCode != kerr.InvalidGroupID.Code {
					t.Errorf("empty group id: error %d, want INVALID_GROUP_ID", r.ErrorCode)
				}
			})

			t.Run("OffsetCommit", func(t *testing.T) {
				// Unknown topics keep their own error; the rest get the
				// coordinator's.
				got := commitCodes(rc.do(memberCommitReq(g, member, gen, 9)))
				if got["t"] != sc.code || got["ghost"] != kerr.UnknownTopicOrPartition.Code {
					t.Errorf("codes %v, want t=%d ghost=UNKNOWN_TOPIC_OR_PARTITION", got, sc.code)
				}
				// The empty group id is a valid one for commits.
				if got := commitCodes(rc.do(commitReq("", map[string]int64{"t": 1}))); got["t"] != sc.code {
					t.Errorf("empty group id: codes %v, want %d", got, sc.code)
				}
			})

			t.Run("OffsetFetch", func(t *testing.T) {
				if r := rc.do(offsetFetchReq(7, g, "t")).(*kmsg.OffsetFetchResponse); r.ErrorCode != sc.code || len(r.Topics) != 0 {
					t.Errorf("v7: error %d topics %+v, want %d and no topics", r.ErrorCode, r.Topics, sc.code)
				}
				// v0-v1 have no group error: every partition carries it.
				r := rc.do(offsetFetchReq(1, g, "t")).(*kmsg.OffsetFetchResponse)
				if len(r.Topics) != 1 || r.Topics[0].Partitions[0].ErrorCode != sc.code || r.Topics[0].Partitions[0].Offset != -1 {
					t.Errorf("v1: %+v, want t-0 with %d", r.Topics, sc.code)
				}
				batch := kmsg.NewPtrOffsetFetchRequest()
				batch.Version = 8
				batch.Groups = []kmsg.OffsetFetchRequestGroup{{Group: g}, {Group: other}}
				groups := rc.do(batch).(*kmsg.OffsetFetchResponse).Groups
				if len(groups) != 2 || groups[0].Group != g || groups[0].ErrorCode != sc.code || len(groups[0].Topics) != 0 {
					t.Fatalf("v8: %+v, want %s with %d first", groups, g, sc.code)
				}
				if o := groups[1]; o.Group != other || o.ErrorCode != 0 || len(o.Topics) != 1 || o.Topics[0].Partitions[0].Offset != 5 {
					t.Errorf("v8: %+v, want %s's offset 5", o, other)
				}
			})

			t.Run("DescribeGroups", func(t *testing.T) {
				dg := kmsg.NewPtrDescribeGroupsRequest()
				dg.Version, dg.Groups, dg.IncludeAuthorizedOperations = 5, []string{g, other}, true
				groups := rc.do(dg).(*kmsg.DescribeGroupsResponse).Groups
				if len(groups) != 2 {
					t.Fatalf("groups %+v", groups)
				}
				if r := groups[0]; r.Group != g || r.ErrorCode != sc.code || r.State != "" || len(r.Members) != 0 || r.AuthorizedOperations != opsNotRequested {
					t.Errorf("%+v, want %d with nothing else", r, sc.code)
				}
				if r := groups[1]; r.Group != other || r.ErrorCode != 0 || r.State != "Empty" {
					t.Errorf("%+v, want %s Empty", r, other)
				}
			})

			t.Run("DeleteGroups", func(t *testing.T) {
				del := kmsg.NewPtrDeleteGroupsRequest()
				del.Version, del.Groups = 2, []string{g, ""}
				groups := rc.do(del).(*kmsg.DeleteGroupsResponse).Groups
				if len(groups) != 2 || groups[0].Group != g || groups[0].ErrorCode != sc.code || groups[1].Group != "" || groups[1].ErrorCode != sc.code {
					t.Errorf("%+v, want %d for both", groups, sc.code)
				}
			})

			t.Run("OffsetDelete", func(t *testing.T) {
				od := kmsg.NewPtrOffsetDeleteRequest()
				od.Group = g
				od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
				if r := rc.do(od).(*kmsg.OffsetDeleteResponse); r.ErrorCode != sc.code || len(r.Topics) != 0 {
					t.Errorf("error %d topics %+v, want %d and no topics", r.ErrorCode, r.Topics, sc.code)
				}
				od.Group = ""
				if r := rc.do(od).(*kmsg.OffsetDeleteResponse); r.ErrorCode != kerr.InvalidGroupID.Code {
					t.Errorf("empty group id: error %d, want INVALID_GROUP_ID", r.ErrorCode)
				}
			})

			t.Run("TxnOffsetCommit", func(t *testing.T) {
				if got := txnCommitCodes(rc.do(txnCommitReq(3, g))); !slices.Equal(got, []int16{sc.code}) {
					t.Errorf("v3: codes %v, want [%d]", got, sc.code)
				}
				// Clients before v2 do not know COORDINATOR_LOAD_IN_PROGRESS.
				want := sc.code
				if loading {
					want = kerr.CoordinatorNotAvailable.Code
				}
				if got := txnCommitCodes(rc.do(txnCommitReq(1, g))); !slices.Equal(got, []int16{want}) {
					t.Errorf("v1: codes %v, want [%d]", got, want)
				}
				if got := txnCommitCodes(rc.do(txnCommitReq(3, ""))); !slices.Equal(got, []int16{kerr.InvalidGroupID.Code}) {
					t.Errorf("empty group id: codes %v, want INVALID_GROUP_ID", got)
				}
			})

			t.Run("ListGroups", func(t *testing.T) {
				code, groups := listedGroups(rc)
				switch {
				case loading && (code != sc.code || len(groups) != 0):
					t.Errorf("error %d groups %v, want %d and no groups", code, groups, sc.code)
				case !loading && (code != 0 || !slices.Equal(groups, []string{other})):
					t.Errorf("error %d groups %v, want only %s", code, groups, other)
				}
			})
		})
	}

	// Nothing above reached the coordinator: the member is still there,
	// nothing was committed, left or deleted.
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version, hb.Group, hb.MemberID, hb.Generation = 3, g, member, gen
	if r := rc.do(hb).(*kmsg.HeartbeatResponse); r.ErrorCode != 0 {
		t.Errorf("Heartbeat at the coordinator again: error %d", r.ErrorCode)
	}
	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Version, dg.Groups = 5, []string{g}
	if r := rc.do(dg).(*kmsg.DescribeGroupsResponse).Groups[0]; r.ErrorCode != 0 || r.State != "Stable" || len(r.Members) != 1 || r.Members[0].MemberID != member {
		t.Errorf("DescribeGroups %s: %+v, want Stable with %s", g, r, member)
	}
	if got := fetchedOffset(t, rc, g); got != 5 {
		t.Errorf("committed offset of %s: %d, want 5", g, got)
	}
	if code, groups := listedGroups(rc); code != 0 || !slices.Equal(groups, []string{g, other}) {
		t.Errorf("ListGroups: error %d groups %v", code, groups)
	}
	if got := commitCodes(rc.do(memberCommitReq(g, member, gen, 9))); got["t"] != 0 {
		t.Errorf("commit at the coordinator again: %v", got)
	}
}

// Authorization comes first, as in Kafka: a principal refused the group
// learns nothing about where it lives, and refused topics keep their code.
func TestGroupCoordinatorCheckAfterAuthz(t *testing.T) {
	ts := startAuthzServer(t)
	ts.adminTopic(t, "t", 1)
	adm := ts.rawAs(t, admin)
	const g = "team"
	if got := commitCodes(adm.do(commitReq(g, map[string]int64{"t": 5}))); got["t"] != 0 {
		t.Fatalf("admin commit: %v", got)
	}
	defer ledElsewhere(t, ts, ts.groups.PartitionFor(g))()
	rc := ts.rawAs(t, alice)

	join := kmsg.NewPtrJoinGroupRequest()
	join.Version, join.Group, join.ProtocolType = 5, g, "consumer"
	join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 60000, 60000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	if r := rc.do(join).(*kmsg.JoinGroupResponse); r.ErrorCode != codeGroupAuthz {
		t.Errorf("JoinGroup: error %d, want GROUP_AUTHORIZATION_FAILED", r.ErrorCode)
	}
	if got := commitCodes(rc.do(commitReq(g, map[string]int64{"t": 1}))); got["t"] != codeGroupAuthz {
		t.Errorf("OffsetCommit: %v, want GROUP_AUTHORIZATION_FAILED", got)
	}
	if r := rc.do(offsetFetchReq(7, g, "t")).(*kmsg.OffsetFetchResponse); r.ErrorCode != codeGroupAuthz {
		t.Errorf("OffsetFetch: error %d, want GROUP_AUTHORIZATION_FAILED", r.ErrorCode)
	}
	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Version, dg.Groups = 5, []string{g}
	if r := rc.do(dg).(*kmsg.DescribeGroupsResponse).Groups[0]; r.ErrorCode != codeGroupAuthz {
		t.Errorf("DescribeGroups: error %d, want GROUP_AUTHORIZATION_FAILED", r.ErrorCode)
	}
	if got := txnCommitCodes(rc.do(txnCommitReq(3, g))); !slices.Equal(got, []int16{codeTxnAuthz}) {
		t.Errorf("TxnOffsetCommit: %v, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", got)
	}

	ts.grant(t, alice, groupRes, literal, g, kmsg.ACLOperationRead, kmsg.ACLOperationDescribe)
	// Only refused topics: the coordinator is never asked.
	if got := commitCodes(rc.do(commitReq(g, map[string]int64{"t": 1}))); got["t"] != codeTopicAuthz {
		t.Errorf("OffsetCommit without READ on t: %v, want TOPIC_AUTHORIZATION_FAILED", got)
	}
	ts.grant(t, alice, topicRes, literal, "t", kmsg.ACLOperationRead)
	if got := commitCodes(rc.do(commitReq(g, map[string]int64{"t": 1}))); got["t"] != kerr.NotCoordinator.Code {
		t.Errorf("OffsetCommit with every ACL: %v, want NOT_COORDINATOR", got)
	}
	if r := rc.do(join).(*kmsg.JoinGroupResponse); r.ErrorCode != kerr.NotCoordinator.Code {
		t.Errorf("JoinGroup with READ: error %d, want NOT_COORDINATOR", r.ErrorCode)
	}
}
