package groups

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestTwoMembersJoinLeaderAssignsFollowerReceives(t *testing.T) {
	h := newHarness(t)
	const g = "orders"
	meta1 := subscription("t1", "t2")
	meta2 := []byte{} // empty metadata is valid and must survive as-is

	// v9: the first join with an empty member id only hands out an id.
	r := recv(t, h.join(joinReq(9, g, "", proto{"range", meta1})))
	if r.ErrorCode != kerr.MemberIDRequired.Code || !strings.HasPrefix(r.MemberID, "client-") || r.Generation != -1 {
		t.Fatalf("first join: code %d member %q gen %d", r.ErrorCode, r.MemberID, r.Generation)
	}
	id1 := r.MemberID
	id2 := recv(t, h.join(joinReq(9, g, "", proto{"range", meta2}))).MemberID

	j1 := h.join(joinReq(9, g, id1, proto{"range", meta1}))
	h.awaitingJoin(g, 1)
	j2 := h.join(joinReq(9, g, id2, proto{"range", meta2}))
	h.awaitingJoin(g, 2)

	// The initial delay holds the join open, and is extended once because
	// a member arrived while it ran.
	h.clk.Advance(testDelay)
	notYet(t, j1)
	if s := h.state(g); s != "PreparingRebalance" {
		t.Fatalf("state %s during the initial delay", s)
	}
	h.clk.Advance(testDelay)
	r1, r2 := recv(t, j1), recv(t, j2)
	for _, r := range []*kmsg.JoinGroupResponse{r1, r2} {
		if r.ErrorCode != 0 || r.Generation != 1 || r.LeaderID != id1 || *r.Protocol != "range" || *r.ProtocolType != "consumer" || r.SkipAssignment {
			t.Fatalf("join response %+v", r)
		}
	}
	if len(r2.Members) != 0 {
		t.Fatalf("follower got %d members", len(r2.Members))
	}
	if len(r1.Members) != 2 || r1.Members[0].MemberID != id1 || !bytes.Equal(r1.Members[0].ProtocolMetadata, meta1) ||
		r1.Members[1].MemberID != id2 || len(r1.Members[1].ProtocolMetadata) != 0 {
		t.Fatalf("leader members %+v", r1.Members)
	}

	// The follower's SyncGroup waits for the leader's assignment.
	s2 := h.syncGroup(5, g, id2, 1, nil)
	h.awaitingSync(g, 1)
	notYet(t, s2)
	assign := map[string][]byte{id1: {0, 1, 2, 0xff}, id2: {}}
	s1 := recv(t, h.syncGroup(5, g, id1, 1, assign))
	got2 := recv(t, s2)
	if s1.ErrorCode != 0 || !bytes.Equal(s1.MemberAssignment, assign[id1]) {
		t.Fatalf("leader sync %+v", s1)
	}
	if got2.ErrorCode != 0 || got2.MemberAssignment == nil || len(got2.MemberAssignment) != 0 || *got2.Protocol != "range" {
		t.Fatalf("follower sync %+v", got2)
	}
	if s := h.state(g); s != "Stable" {
		t.Fatalf("state %s", s)
	}
	// A late sync in Stable gets the stored bytes again.
	if again := recv(t, h.syncGroup(3, g, id1, 1, nil)); !bytes.Equal(again.MemberAssignment, assign[id1]) {
		t.Fatalf("resync %+v", again)
	}
	if code := h.heartbeat(g, id2, 1); code != 0 {
		t.Fatalf("heartbeat %d", code)
	}

	// The completed rebalance is in the log as Kafka's GroupMetadataValue.
	rs := h.log.records()[h.c.PartitionFor(g)]
	var v kmsg.GroupMetadataValue
	if err := v.ReadFrom(rs[len(rs)-1].Value); err != nil {
		t.Fatal(err)
	}
	if v.Generation != 1 || *v.Leader != id1 || len(v.Members) != 2 || !bytes.Equal(v.Members[0].Assignment, assign[id1]) ||
		!bytes.Equal(v.Members[0].Subscription, meta1) || v.Members[0].ClientHost != "/127.0.0.1" {
		t.Fatalf("stored metadata %+v", v)
	}

	d := h.describe(g)[0]
	if d.State != "Stable" || d.Protocol != "range" || len(d.Members) != 2 || !bytes.Equal(d.Members[0].MemberAssignment, assign[id1]) ||
		d.Members[0].ClientID != "client" || !bytes.Equal(d.Members[0].ProtocolMetadata, meta1) {
		t.Fatalf("describe %+v", d)
	}
}

func TestThirdMemberTriggersRebalance(t *testing.T) {
	h := newHarness(t)
	const g = "grp"
	leader, follower := h.stableGroup(g)

	// v3: no MEMBER_ID_REQUIRED round trip.
	j3 := h.join(joinReq(3, g, ""))
	h.awaitingJoin(g, 1)
	if s := h.state(g); s != "PreparingRebalance" {
		t.Fatalf("state %s", s)
	}
	for _, id := range []string{leader, follower} {
		if code := h.heartbeat(g, id, 1); code != kerr.RebalanceInProgress.Code {
			t.Fatalf("heartbeat during rebalance: %d", code)
		}
	}
	if code := recv(t, h.syncGroup(5, g, follower, 1, nil)).ErrorCode; code != kerr.RebalanceInProgress.Code {
		t.Fatalf("sync during rebalance: %d", code)
	}
	// Commits are still accepted while preparing.
	if codes := commitCodes(h.commit(8, g, follower, 1, map[string]map[int32]int64{"t1": {0: 5}})); codes["t1/0"] != 0 {
		t.Fatalf("commit during PreparingRebalance: %v", codes)
	}

	j1 := h.join(joinReq(9, g, leader))
	j2 := h.join(joinReq(9, g, follower))
	r1, r2, r3 := recv(t, j1), recv(t, j2), recv(t, j3) // no initial delay: the group was not Empty
	if r1.Generation != 2 || r2.Generation != 2 || r3.Generation != 2 {
		t.Fatalf("generations %d %d %d", r1.Generation, r2.Generation, r3.Generation)
	}
	if r1.LeaderID != leader || len(r1.Members) != 3 || len(r3.Members) != 0 {
		t.Fatalf("leader %s members %d/%d", r1.LeaderID, len(r1.Members), len(r3.Members))
	}
	if code := h.heartbeat(g, follower, 1); code != kerr.IllegalGeneration.Code {
		t.Fatalf("old generation heartbeat: %d", code)
	}
	if code := h.heartbeat(g, r3.MemberID, 2); code != 0 { // CompletingRebalance: heartbeats are fine
		t.Fatalf("heartbeat in CompletingRebalance: %d", code)
	}
	if codes := commitCodes(h.commit(8, g, follower, 2, map[string]map[int32]int64{"t1": {0: 6}})); codes["t1/0"] != kerr.RebalanceInProgress.Code {
		t.Fatalf("commit during CompletingRebalance: %v", codes)
	}
}

func TestSessionExpiryRemovesMember(t *testing.T) {
	h := newHarness(t)
	const g = "grp"
	leader, follower := h.stableGroup(g)

	// Only the leader heartbeats; the follower's session runs out.
	for i := 0; i < 4; i++ {
		h.clk.Advance(3 * time.Second)
		if code := h.heartbeat(g, leader, 1); code != 0 {
			if i < 3 || code != kerr.RebalanceInProgress.Code {
				t.Fatalf("heartbeat %d: %d", i, code)
			}
		}
	}
	if s := h.state(g); s != "PreparingRebalance" {
		t.Fatalf("state %s after expiry", s)
	}
	if code := h.heartbeat(g, follower, 1); code != kerr.UnknownMemberID.Code {
		t.Fatalf("expired member heartbeat: %d", code)
	}
	r := recv(t, h.join(joinReq(9, g, leader)))
	if r.ErrorCode != 0 || r.Generation != 2 || len(r.Members) != 1 {
		t.Fatalf("rejoin %+v", r)
	}
}

func TestRebalanceTimeoutRemovesMembersThatDoNotRejoin(t *testing.T) {
	h := newHarness(t)
	const g = "grp"
	leader, follower := h.stableGroup(g)

	// The leader rejoining forces a rebalance; the follower keeps
	// heartbeating but never rejoins.
	j := h.join(joinReq(9, g, leader))
	h.awaitingJoin(g, 1)
	for i := 0; i < 5; i++ {
		h.clk.Advance(5 * time.Second)
		if code := h.heartbeat(g, follower, 1); code != kerr.RebalanceInProgress.Code {
			t.Fatalf("heartbeat: %d", code)
		}
	}
	notYet(t, j)
	h.clk.Advance(5 * time.Second) // 30 s: the rebalance timeout
	r := recv(t, j)
	if r.ErrorCode != 0 || r.Generation != 2 || len(r.Members) != 1 || r.Members[0].MemberID != leader {
		t.Fatalf("join %+v", r)
	}
	if code := h.heartbeat(g, follower, 2); code != kerr.UnknownMemberID.Code {
		t.Fatalf("removed member heartbeat: %d", code)
	}
}

func TestMembersThatNeverSyncAreRemoved(t *testing.T) {
	h := newHarness(t)
	const g = "grp"
	j := h.join(joinReq(3, g, ""))
	j2 := h.join(joinReq(3, g, ""))
	h.awaitingJoin(g, 2)
	h.clk.Advance(testDelay)
	h.clk.Advance(testDelay)
	r1, r2 := recv(t, j), recv(t, j2)
	leader := r1.LeaderID
	other := r2.MemberID
	if other == leader {
		other = r1.MemberID
	}
	// Both heartbeat but only the leader syncs; the other never does.
	s := h.syncGroup(3, g, leader, 1, map[string][]byte{leader: []byte("x")})
	if r := recv(t, s); r.ErrorCode != 0 {
		t.Fatalf("sync %d", r.ErrorCode)
	}
	for i := 0; i < 6; i++ {
		h.clk.Advance(5 * time.Second)
		h.heartbeat(g, leader, h.generation(g))
		h.heartbeat(g, other, 1)
	}
	if code := h.heartbeat(g, other, 1); code != kerr.UnknownMemberID.Code {
		t.Fatalf("member that never synced: %d", code)
	}
}

func TestStaticMemberRestartKeepsAssignmentWithoutRebalance(t *testing.T) {
	h := newHarness(t)
	const g = "static"
	// Static members skip MEMBER_ID_REQUIRED even on v9.
	j1 := h.join(staticJoinReq(9, g, "", "host-a"))
	h.awaitingJoin(g, 1)
	j2 := h.join(staticJoinReq(9, g, "", "host-b"))
	h.awaitingJoin(g, 2)
	h.clk.Advance(2 * testDelay)
	r1, r2 := recv(t, j1), recv(t, j2)
	if !strings.HasPrefix(r1.MemberID, "host-a-") || r1.LeaderID != r1.MemberID {
		t.Fatalf("static join %+v", r1)
	}
	if len(r1.Members) != 2 || *r1.Members[1].InstanceID != "host-b" {
		t.Fatalf("leader view %+v", r1.Members)
	}
	a, b := r1.MemberID, r2.MemberID
	sb := h.syncGroup(5, g, b, 1, nil)
	h.awaitingSync(g, 1)
	recv(t, h.syncGroup(5, g, a, 1, map[string][]byte{a: []byte("pa"), b: []byte("pb")}))
	recv(t, sb)
	records := h.log.count()

	// host-b restarts: it joins with no member id and gets a new one at
	// once, same generation, and the old leader id so it does not assign.
	r := recv(t, h.join(staticJoinReq(9, g, "", "host-b")))
	if r.ErrorCode != 0 || r.MemberID == b || !strings.HasPrefix(r.MemberID, "host-b-") || r.Generation != 1 || r.LeaderID != a || len(r.Members) != 0 {
		t.Fatalf("static rejoin %+v", r)
	}
	if s := h.state(g); s != "Stable" {
		t.Fatalf("state %s: a static restart must not rebalance", s)
	}
	if h.log.count() != records+1 {
		t.Fatalf("the new member id must be persisted")
	}
	s := recv(t, h.syncGroup(5, g, r.MemberID, 1, nil))
	if s.ErrorCode != 0 || string(s.MemberAssignment) != "pb" {
		t.Fatalf("sync after restart %+v", s)
	}
	// The old incarnation is fenced.
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version, hb.Group, hb.MemberID, hb.Generation = 4, g, b, 1
	inst := "host-b"
	hb.InstanceID = &inst
	if code := h.c.Heartbeat(h.ctx, hb).ErrorCode; code != kerr.FencedInstanceID.Code {
		t.Fatalf("old static member heartbeat: %d", code)
	}
	// A fenced JoinGroup too.
	if code := recv(t, h.join(staticJoinReq(9, g, b, "host-b"))).ErrorCode; code != kerr.FencedInstanceID.Code {
		t.Fatalf("old static member join: %d", code)
	}

	// Administrative removal by instance id alone.
	lr := h.leave(5, g, kmsg.LeaveGroupRequestMember{InstanceID: &inst})
	if lr.ErrorCode != 0 || lr.Members[0].ErrorCode != 0 {
		t.Fatalf("leave by instance id %+v", lr)
	}
	if s := h.state(g); s != "PreparingRebalance" {
		t.Fatalf("state %s after removal", s)
	}
}

func TestStaticRejoinWriteFailureRevertsMemberID(t *testing.T) {
	h := newHarness(t)
	const g = "static"
	j1 := h.join(staticJoinReq(5, g, "", "i1"))
	h.awaitingJoin(g, 1)
	h.clk.Advance(testDelay)
	r1 := recv(t, j1)
	recv(t, h.syncGroup(5, g, r1.MemberID, 1, map[string][]byte{r1.MemberID: []byte("a")}))

	h.log.setFail(kerr.NotLeaderForPartition)
	r := recv(t, h.join(staticJoinReq(5, g, "", "i1")))
	if r.ErrorCode != kerr.NotCoordinator.Code || r.MemberID != "" {
		t.Fatalf("failed static rejoin %+v", r)
	}
	h.log.setFail(nil)
	if code := h.heartbeat(g, r1.MemberID, 1); code != 0 {
		t.Fatalf("original member after revert: %d", code)
	}
}

func TestLeaveGroup(t *testing.T) {
	h := newHarness(t)
	const g = "grp"
	leader, follower := h.stableGroup(g)

	lr := h.leave(5, g,
		kmsg.LeaveGroupRequestMember{MemberID: follower},
		kmsg.LeaveGroupRequestMember{MemberID: "nobody"})
	if lr.ErrorCode != 0 || lr.Members[0].ErrorCode != 0 || lr.Members[1].ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("leave %+v", lr)
	}
	r := recv(t, h.join(joinReq(9, g, leader)))
	if r.Generation != 2 || len(r.Members) != 1 {
		t.Fatalf("rejoin %+v", r)
	}
	recv(t, h.syncGroup(5, g, leader, 2, map[string][]byte{leader: []byte("all")}))

	// v0 reports the member's error at the top level.
	if code := h.leave(0, g, kmsg.LeaveGroupRequestMember{MemberID: "nobody"}).ErrorCode; code != kerr.UnknownMemberID.Code {
		t.Fatalf("v0 leave of unknown member: %d", code)
	}
	if code := h.leave(1, g, kmsg.LeaveGroupRequestMember{MemberID: leader}).ErrorCode; code != 0 {
		t.Fatalf("v1 leave: %d", code)
	}
	if s, gen := h.state(g), h.generation(g); s != "Empty" || gen != 3 {
		t.Fatalf("after last member left: %s gen %d", s, gen)
	}
	// The empty generation is persisted too (after the response, as in Kafka).
	h.sync()
	rs := h.log.records()[h.c.PartitionFor(g)]
	var v kmsg.GroupMetadataValue
	if err := v.ReadFrom(rs[len(rs)-1].Value); err != nil || v.Generation != 3 || len(v.Members) != 0 || v.Protocol != nil {
		t.Fatalf("empty group record %+v (%v)", v, err)
	}
	if code := h.leave(3, "missing", kmsg.LeaveGroupRequestMember{MemberID: "x"}).Members[0].ErrorCode; code != kerr.UnknownMemberID.Code {
		t.Fatalf("leave from unknown group: %d", code)
	}
}

func TestLeavingPendingMemberCompletesJoin(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.InitialRebalanceDelay = 0 })
	const g = "grp"
	leader, _ := h.stableGroup(g)
	pending := recv(t, h.join(joinReq(9, g, ""))).MemberID // MEMBER_ID_REQUIRED: now pending
	j := h.join(joinReq(9, g, leader))
	h.awaitingJoin(g, 1)
	notYet(t, j) // waits for the follower and the pending member
	h.leave(5, g, kmsg.LeaveGroupRequestMember{MemberID: pending})
	notYet(t, j)
	// Pending members expire after their session timeout.
	h.clk.Advance(30 * time.Second)
	if r := recv(t, j); r.ErrorCode != 0 || len(r.Members) != 1 {
		t.Fatalf("join %+v", r)
	}
}

func TestPendingMemberExpires(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.InitialRebalanceDelay = 0 })
	const g = "grp"
	leader, follower := h.stableGroup(g)
	recv(t, h.join(joinReq(9, g, ""))) // pending, never comes back
	j1 := h.join(joinReq(9, g, leader))
	h.awaitingJoin(g, 1) // the leader first: a follower rejoining a Stable group is just answered
	j2 := h.join(joinReq(9, g, follower))
	h.awaitingJoin(g, 2)
	notYet(t, j1)
	h.clk.Advance(testSession * time.Millisecond)
	if r := recv(t, j1); r.ErrorCode != 0 || r.Generation != 2 || len(r.Members) != 2 {
		t.Fatalf("join %+v", r)
	}
	recv(t, j2)
}

func TestJoinValidation(t *testing.T) {
	h := newHarness(t)
	leader, _ := h.stableGroup("busy")
	cases := []struct {
		name string
		req  *kmsg.JoinGroupRequest
		want int16
	}{
		{"empty group id", joinReq(5, "", ""), kerr.InvalidGroupID.Code},
		{"session too short", func() *kmsg.JoinGroupRequest { r := joinReq(5, "x", ""); r.SessionTimeoutMillis = 10; return r }(), kerr.InvalidSessionTimeout.Code},
		{"session too long", func() *kmsg.JoinGroupRequest { r := joinReq(5, "x", ""); r.SessionTimeoutMillis = 3_600_000; return r }(), kerr.InvalidSessionTimeout.Code},
		{"member id for unknown group", joinReq(5, "nope", "m-1"), kerr.UnknownMemberID.Code},
		{"unknown member of a group", joinReq(5, "busy", "m-1"), kerr.UnknownMemberID.Code},
		{"other protocol type", func() *kmsg.JoinGroupRequest { r := joinReq(3, "busy", ""); r.ProtocolType = "connect"; return r }(), kerr.InconsistentGroupProtocol.Code},
		{"no common protocol", joinReq(3, "busy", "", proto{"roundrobin", nil}), kerr.InconsistentGroupProtocol.Code},
		{"empty protocol list", func() *kmsg.JoinGroupRequest { r := joinReq(3, "fresh", ""); r.Protocols = nil; return r }(), kerr.InconsistentGroupProtocol.Code},
		{"instance id of nobody", staticJoinReq(5, "busy", leader, "ghost"), kerr.UnknownMemberID.Code},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := recv(t, h.join(tc.req))
			if r.ErrorCode != tc.want {
				t.Fatalf("got %d, want %d", r.ErrorCode, tc.want)
			}
			if r.Generation != -1 || r.LeaderID != "" || len(r.Members) != 0 {
				t.Fatalf("error response carries group data: %+v", r)
			}
		})
	}
	if l := h.list(3, nil, nil); len(l) != 1 {
		t.Fatalf("failed joins left groups behind: %+v", l)
	}
}

func TestProtocolSelectionByVotes(t *testing.T) {
	h := newHarness(t)
	const g = "votes"
	// All support range and sticky; two prefer sticky; "coop" is not
	// supported by everybody and must never win.
	js := []<-chan *kmsg.JoinGroupResponse{
		h.join(joinReq(3, g, "", proto{"coop", nil}, proto{"range", nil}, proto{"sticky", nil})),
	}
	h.awaitingJoin(g, 1)
	js = append(js, h.join(joinReq(3, g, "", proto{"sticky", nil}, proto{"range", nil})))
	h.awaitingJoin(g, 2)
	js = append(js, h.join(joinReq(3, g, "", proto{"sticky", nil}, proto{"range", nil}, proto{"coop", nil})))
	h.awaitingJoin(g, 3)
	h.clk.Advance(time.Second)
	for _, j := range js {
		if r := recv(t, j); *r.Protocol != "sticky" {
			t.Fatalf("selected %q", *r.Protocol)
		}
	}
}

func TestJoinV0AndRejoinWithSameMetadata(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.InitialRebalanceDelay = 0 })
	const g = "old"
	r := recv(t, h.join(joinReq(0, g, "")))
	if r.ErrorCode != 0 || r.Generation != 1 || r.LeaderID != r.MemberID || *r.Protocol != "range" {
		t.Fatalf("v0 join %+v", r)
	}
	// Joining again with identical metadata in CompletingRebalance just
	// repeats the answer (a lost response).
	again := recv(t, h.join(joinReq(0, g, r.MemberID)))
	if again.Generation != 1 || len(again.Members) != 1 {
		t.Fatalf("repeat join %+v", again)
	}
	if h.generation(g) != 1 {
		t.Fatal("repeat join must not rebalance")
	}
}

func TestSyncGroupValidation(t *testing.T) {
	h := newHarness(t)
	leader, _ := h.stableGroup("g")
	str := func(s string) *string { return &s }
	cases := []struct {
		name string
		mod  func(*kmsg.SyncGroupRequest)
		want int16
	}{
		{"unknown group", func(r *kmsg.SyncGroupRequest) { r.Group = "none" }, kerr.UnknownMemberID.Code},
		{"empty group id", func(r *kmsg.SyncGroupRequest) { r.Group = "" }, kerr.InvalidGroupID.Code},
		{"unknown member", func(r *kmsg.SyncGroupRequest) { r.MemberID = "x" }, kerr.UnknownMemberID.Code},
		{"old generation", func(r *kmsg.SyncGroupRequest) { r.Generation = 0 }, kerr.IllegalGeneration.Code},
		{"wrong protocol type", func(r *kmsg.SyncGroupRequest) { r.ProtocolType = str("connect") }, kerr.InconsistentGroupProtocol.Code},
		{"wrong protocol", func(r *kmsg.SyncGroupRequest) { r.Protocol = str("sticky") }, kerr.InconsistentGroupProtocol.Code},
		{"v5 without protocol", func(r *kmsg.SyncGroupRequest) { r.Protocol = nil }, kerr.InconsistentGroupProtocol.Code},
		{"ok", func(*kmsg.SyncGroupRequest) {}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := kmsg.NewPtrSyncGroupRequest()
			r.Version, r.Group, r.MemberID, r.Generation = 5, "g", leader, 1
			r.ProtocolType, r.Protocol = str("consumer"), str("range")
			tc.mod(r)
			resp := h.c.SyncGroup(h.ctx, r)
			if resp.ErrorCode != tc.want {
				t.Fatalf("got %d want %d", resp.ErrorCode, tc.want)
			}
			if tc.want == 0 && (string(resp.MemberAssignment) != "A-leader" || *resp.ProtocolType != "consumer") {
				t.Fatalf("assignment %+v", resp)
			}
		})
	}
}

func TestAssignmentWriteFailureRestartsRebalance(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.InitialRebalanceDelay = 0 })
	const g = "g"
	r := recv(t, h.join(joinReq(3, g, "")))
	h.log.setFail(errors.New("disk on fire"))
	s := recv(t, h.syncGroup(3, g, r.MemberID, 1, map[string][]byte{r.MemberID: []byte("a")}))
	if s.ErrorCode != kerr.UnknownServerError.Code || len(s.MemberAssignment) != 0 {
		t.Fatalf("sync with failing log %+v", s)
	}
	if st := h.state(g); st != "PreparingRebalance" {
		t.Fatalf("state %s", st)
	}
	h.log.setFail(nil)
	r = recv(t, h.join(joinReq(3, g, r.MemberID)))
	if s := recv(t, h.syncGroup(3, g, r.MemberID, 2, map[string][]byte{r.MemberID: []byte("b")})); s.ErrorCode != 0 || string(s.MemberAssignment) != "b" {
		t.Fatalf("sync after recovery %+v", s)
	}
}

func TestNewMemberThatGoesAwayIsDroppedByJoinTimeout(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.NewMemberJoinTimeout = 5 * time.Second })
	const g = "g"
	leader, follower := h.stableGroup(g)
	ctx, cancel := context.WithCancel(h.ctx)
	gone := async(func() *kmsg.JoinGroupResponse { return h.c.JoinGroup(ctx, joinReq(3, g, "")) })
	h.awaitingJoin(g, 1)
	cancel() // the client disconnected; the coordinator cannot tell
	if r := recv(t, gone); r.ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("cancelled join %d", r.ErrorCode)
	}
	// The others are slow to rejoin; the new member's join times out first.
	for i := 0; i < 5; i++ {
		h.clk.Advance(time.Second)
		h.heartbeat(g, leader, 1)
		h.heartbeat(g, follower, 1)
	}
	h.waitFor("new member dropped", func() bool { return len(h.c.groups[g].members) == 2 })
	j1 := h.join(joinReq(9, g, leader))
	j2 := h.join(joinReq(9, g, follower))
	r1 := recv(t, j1)
	recv(t, j2)
	if len(r1.Members) != 2 || r1.Generation != 2 {
		t.Fatalf("join after defunct member expiry %+v", r1)
	}
}

func TestGroupMaxSize(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxGroupSize = 2 })
	h.stableGroup("g")
	if r := recv(t, h.join(joinReq(3, "g", ""))); r.ErrorCode != kerr.GroupMaxSizeReached.Code {
		t.Fatalf("third member: %d", r.ErrorCode)
	}
}

func TestCloseReleasesParkedCalls(t *testing.T) {
	h := newHarness(t)
	j := h.join(joinReq(3, "g", ""))
	h.awaitingJoin("g", 1)
	h.c.Close()
	if r := recv(t, j); r.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("parked join after Close: %d", r.ErrorCode)
	}
	if code := h.heartbeat("g", "x", 1); code != kerr.NotCoordinator.Code {
		t.Fatalf("heartbeat after Close: %d", code)
	}
	h.c.Close() // idempotent
}

func TestUnload(t *testing.T) {
	h := newHarness(t)
	const g = "g"
	leader, _ := h.stableGroup(g)
	j := h.join(joinReq(9, g, leader))
	h.awaitingJoin(g, 1)
	h.c.Unload(h.c.PartitionFor(g))
	if r := recv(t, j); r.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("parked join after unload: %d", r.ErrorCode)
	}
	if d := h.describe(g)[0]; d.State != "Dead" {
		t.Fatalf("unloaded group still known: %+v", d)
	}
	// Reloading from the log brings it back, Stable with its members.
	h.log.replay(h.c)
	if d := h.describe(g)[0]; d.State != "Stable" || len(d.Members) != 2 {
		t.Fatalf("reloaded %+v", d)
	}
}

func TestLeaderThatDoesNotRejoinIsReplaced(t *testing.T) {
	h := newHarness(t)
	const g = "grp"
	leader, follower := h.stableGroup(g)
	// The follower changes its subscription; the leader never rejoins.
	j := h.join(joinReq(9, g, follower, proto{"range", subscription("t1", "t9")}))
	h.awaitingJoin(g, 1)
	for i := 0; i < 6; i++ {
		h.clk.Advance(5 * time.Second)
		h.heartbeat(g, follower, 1)
	}
	r := recv(t, j)
	if r.ErrorCode != 0 || r.LeaderID != follower || len(r.Members) != 1 || r.Generation != 2 {
		t.Fatalf("join %+v", r)
	}
	if code := h.heartbeat(g, leader, 1); code != kerr.UnknownMemberID.Code {
		t.Fatalf("old leader: %d", code)
	}
}

func TestStaticMembersSurviveMissingARebalance(t *testing.T) {
	h := newHarness(t)
	const g = "static"
	ja := h.join(staticJoinReq(5, g, "", "a"))
	h.awaitingJoin(g, 1)
	jb := h.join(staticJoinReq(5, g, "", "b"))
	h.awaitingJoin(g, 2)
	h.clk.Advance(2 * testDelay)
	ra, rb := recv(t, ja), recv(t, jb)
	sb := h.syncGroup(5, g, rb.MemberID, 1, nil)
	h.awaitingSync(g, 1)
	recv(t, h.syncGroup(5, g, ra.MemberID, 1, map[string][]byte{ra.MemberID: []byte("1"), rb.MemberID: []byte("2")}))
	recv(t, sb)

	// a (the leader) forces a rebalance; b is slow but static: it keeps its
	// place instead of being dropped at the rebalance timeout.
	j := h.join(staticJoinReq(5, g, ra.MemberID, "a"))
	h.awaitingJoin(g, 1)
	for i := 0; i < 6; i++ {
		h.clk.Advance(5 * time.Second)
		h.heartbeat(g, rb.MemberID, 1)
	}
	r := recv(t, j)
	if r.ErrorCode != 0 || r.Generation != 2 || len(r.Members) != 2 {
		t.Fatalf("join %+v", r)
	}
}

func TestRealClock(t *testing.T) {
	c := New(Config{Partitions: 3, Log: newMemLog(), InitialRebalanceDelay: 5 * time.Millisecond})
	defer c.Close()
	ctx := WithClient(context.Background(), "rc", "/h")
	r := c.JoinGroup(ctx, joinReq(9, "g", ""))
	r = c.JoinGroup(ctx, joinReq(9, "g", r.MemberID)) // completes when the delay timer fires
	if r.ErrorCode != 0 || r.Generation != 1 {
		t.Fatalf("join %+v", r)
	}
	s := kmsg.NewPtrSyncGroupRequest()
	s.Version, s.Group, s.MemberID, s.Generation = 3, "g", r.MemberID, 1
	s.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: r.MemberID, MemberAssignment: []byte("x")}}
	if resp := c.SyncGroup(ctx, s); resp.ErrorCode != 0 || string(resp.MemberAssignment) != "x" {
		t.Fatalf("sync %+v", resp)
	}
}
