package groups

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/internal/loop/looptest"
)

func TestSimpleCommitAndFetch(t *testing.T) {
	h := newHarness(t)
	const g = "simple"
	resp := h.commit(2, g, "", -1, map[string]map[int32]int64{"t1": {0: 10, 1: 11}, "t2": {0: 20}})
	for tp, code := range commitCodes(resp) {
		if code != 0 {
			t.Fatalf("%s: %d", tp, code)
		}
	}
	for _, v := range []int16{1, 5, 7, 8, 9} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			got, code := h.fetch(v, g, map[string][]int32{"t1": {0, 1, 2}, "zz": {0}})
			want := map[string]int64{"t1/0": 10, "t1/1": 11, "t1/2": -1, "zz/0": -1}
			if code != 0 || !reflect.DeepEqual(got, want) {
				t.Fatalf("got %v (%d), want %v", got, code, want)
			}
			if v < 2 {
				return // null topics (all) exist from v2
			}
			all, _ := h.fetch(v, g, nil)
			if want := map[string]int64{"t1/0": 10, "t1/1": 11, "t2/0": 20}; !reflect.DeepEqual(all, want) {
				t.Fatalf("all offsets %v", all)
			}
		})
	}
	// Metadata and leader epoch come back as committed (v6+ carries epochs).
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version, r.Group = 7, g
	r.RequireStable = true
	r.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t1", Partitions: []int32{0, 9}}}
	fr := h.c.OffsetFetch(h.ctx, r)
	p0, p9 := fr.Topics[0].Partitions[0], fr.Topics[0].Partitions[1]
	if p0.Offset != 10 || *p0.Metadata != "m" || p0.LeaderEpoch != -1 || p0.ErrorCode != 0 {
		t.Fatalf("v2 commit has no epoch: %+v", p0)
	}
	if p9.Offset != -1 || p9.Metadata == nil || *p9.Metadata != "" || p9.LeaderEpoch != -1 {
		t.Fatalf("unknown partition %+v", p9)
	}
	h.commit(8, g, "", -1, map[string]map[int32]int64{"t1": {0: 12}})
	fr = h.c.OffsetFetch(h.ctx, r)
	if p := fr.Topics[0].Partitions[0]; p.Offset != 12 || p.LeaderEpoch != 5 {
		t.Fatalf("v8 commit %+v", p)
	}
	// Unknown groups have no offsets, and no error.
	if got, code := h.fetch(8, "nobody", map[string][]int32{"t1": {0}}); code != 0 || got["t1/0"] != -1 {
		t.Fatalf("unknown group %v %d", got, code)
	}
	// Multiple groups in one v8 request.
	mr := kmsg.NewPtrOffsetFetchRequest()
	mr.Version = 8
	mr.Groups = []kmsg.OffsetFetchRequestGroup{{Group: g}, {Group: "nobody"}}
	mresp := h.c.OffsetFetch(h.ctx, mr)
	if len(mresp.Groups) != 2 || len(mresp.Groups[0].Topics) != 2 || len(mresp.Groups[1].Topics) != 0 {
		t.Fatalf("multi-group fetch %+v", mresp.Groups)
	}
}

func TestCommitFencing(t *testing.T) {
	h := newHarness(t)
	const g = "grp"
	leader, follower := h.stableGroup(g)
	off := map[string]map[int32]int64{"t1": {0: 1}}
	cases := []struct {
		name    string
		version int16
		group   string
		member  string
		gen     int32
		want    int16
	}{
		{"member, current generation", 8, g, follower, 1, 0},
		{"leader, current generation", 9, g, leader, 1, 0},
		{"old generation", 8, g, follower, 0, kerr.IllegalGeneration.Code},
		{"future generation", 8, g, follower, 2, kerr.IllegalGeneration.Code},
		{"unknown member", 8, g, "intruder", 1, kerr.UnknownMemberID.Code},
		{"simple commit to an active group", 8, g, "", -1, kerr.UnknownMemberID.Code},
		{"v0 commit to an active group", 0, g, "", -1, kerr.UnknownMemberID.Code},
		{"generation for unknown group v8", 8, "ghost", "m", 3, kerr.IllegalGeneration.Code},
		{"generation for unknown group v9", 9, "ghost", "m", 3, kerr.GroupIDNotFound.Code},
		{"simple commit to unknown group", 8, "new-simple", "", -1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			codes := commitCodes(h.commit(tc.version, tc.group, tc.member, tc.gen, off))
			if codes["t1/0"] != tc.want {
				t.Fatalf("got %d want %d", codes["t1/0"], tc.want)
			}
		})
	}
	if l := h.list(4, nil, nil); len(l) != 2 {
		t.Fatalf("rejected commits must not create groups: %+v", l)
	}
}

func TestCommitMetadataTooLarge(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.OffsetMetadataMaxBytes = 4 })
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version, r.Group = 8, "g"
	big, small := "too large", "ok"
	r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{
		{Partition: 0, Offset: 1, Metadata: &big, LeaderEpoch: -1},
		{Partition: 1, Offset: 2, Metadata: &small, LeaderEpoch: -1},
	}}}
	codes := commitCodes(h.c.OffsetCommit(h.ctx, r))
	if codes["t/0"] != kerr.OffsetMetadataTooLarge.Code || codes["t/1"] != 0 {
		t.Fatalf("codes %v", codes)
	}
	if got, _ := h.fetch(8, "g", map[string][]int32{"t": {0, 1}}); got["t/0"] != -1 || got["t/1"] != 2 {
		t.Fatalf("fetch %v", got)
	}
}

func TestCommitWriteFailureChangesNothing(t *testing.T) {
	h := newHarness(t)
	const g = "g"
	h.commit(8, g, "", -1, map[string]map[int32]int64{"t": {0: 5}})
	records := h.log.count()
	cases := []struct {
		err  error
		want int16
	}{
		{errors.New("boom"), kerr.UnknownServerError.Code},
		{fmt.Errorf("wrapped: %w", ErrCoordinatorNotAvailable), kerr.CoordinatorNotAvailable.Code},
		{ErrNotCoordinator, kerr.NotCoordinator.Code},
		{kerr.NotLeaderForPartition, kerr.NotCoordinator.Code},
		{kerr.RequestTimedOut, kerr.CoordinatorNotAvailable.Code},
		{kerr.MessageTooLarge, kerr.UnknownServerError.Code},
	}
	for _, tc := range cases {
		t.Run(tc.err.Error(), func(t *testing.T) {
			h.log.setFail(tc.err)
			defer h.log.setFail(nil)
			codes := commitCodes(h.commit(8, g, "", -1, map[string]map[int32]int64{"t": {0: 99, 1: 98}}))
			if codes["t/0"] != tc.want || codes["t/1"] != tc.want {
				t.Fatalf("codes %v, want %d", codes, tc.want)
			}
			if got, _ := h.fetch(8, g, map[string][]int32{"t": {0, 1}}); got["t/0"] != 5 || got["t/1"] != -1 {
				t.Fatalf("offsets changed by a failed commit: %v", got)
			}
			// A failed commit to a new group leaves no group behind.
			h.commit(8, "fresh", "", -1, map[string]map[int32]int64{"t": {0: 1}})
			if d := h.describe("fresh")[0]; d.State != "Dead" {
				t.Fatalf("failed first commit created %+v", d)
			}
		})
	}
	if h.log.count() != records {
		t.Fatal("failed appends reached the log")
	}
}

func TestCommitWaitsForDurability(t *testing.T) {
	h := newHarness(t)
	block := make(chan struct{})
	h.log.mu.Lock()
	h.log.block = block
	h.log.mu.Unlock()
	done := async(func() *kmsg.OffsetCommitResponse {
		return h.commit(8, "g", "", -1, map[string]map[int32]int64{"t": {0: 7}})
	})
	h.waitFor("commit in flight", func() bool { g := h.c.groups["g"]; return g != nil && len(g.pendingCommits) == 1 })
	notYet(t, done)
	if got, _ := h.fetch(8, "g", map[string][]int32{"t": {0}}); got["t/0"] != -1 {
		t.Fatalf("an unacknowledged commit is visible: %v", got)
	}
	close(block)
	if codes := commitCodes(recv(t, done)); codes["t/0"] != 0 {
		t.Fatalf("commit %v", codes)
	}
	if got, _ := h.fetch(8, "g", map[string][]int32{"t": {0}}); got["t/0"] != 7 {
		t.Fatalf("acknowledged commit not visible: %v", got)
	}
}

func TestLoadReplayRestoresState(t *testing.T) {
	h := newHarness(t)
	leader, follower := h.stableGroup("live")
	h.commit(8, "live", follower, 1, map[string]map[int32]int64{"t1": {0: 100, 1: 101}})
	h.commit(2, "simple", "", -1, map[string]map[int32]int64{"t2": {3: 33}})
	h.commit(8, "simple", "", -1, map[string]map[int32]int64{"t2": {3: 34}}) // overrides
	// An empty group with a history survives too.
	ej := h.join(joinReq(3, "emptied", ""))
	h.awaitingJoin("emptied", 1)
	h.clk.Advance(testDelay)
	e := recv(t, ej)
	h.leave(3, "emptied", kmsg.LeaveGroupRequestMember{MemberID: e.MemberID})
	h.commit(8, "deleted", "", -1, map[string]map[int32]int64{"t": {0: 1}})
	if r := h.c.DeleteGroups(h.ctx, &kmsg.DeleteGroupsRequest{Version: 2, Groups: []string{"deleted"}}); r.Groups[0].ErrorCode != 0 {
		t.Fatalf("delete %+v", r.Groups)
	}

	// A new coordinator over the same log (once the empty group's
	// metadata, written after the LeaveGroup response, is in).
	h.sync()
	clk := looptest.NewFakeClockAt(h.clk.Now())
	c2 := New(Config{Partitions: 7, Log: h.log, Clock: clk, MinSessionTimeout: time.Second, MaxSessionTimeout: time.Minute})
	defer c2.Close()
	h.log.replay(c2)
	h2 := &harness{t: t, c: c2, clk: clk, log: h.log, ctx: h.ctx}
	clk.Settle = h2.sync

	if got, _ := h2.fetch(8, "live", nil); !reflect.DeepEqual(got, map[string]int64{"t1/0": 100, "t1/1": 101}) {
		t.Fatalf("live offsets %v", got)
	}
	if got, _ := h2.fetch(8, "simple", nil); !reflect.DeepEqual(got, map[string]int64{"t2/3": 34}) {
		t.Fatalf("simple offsets %v", got)
	}
	if got, _ := h2.fetch(8, "deleted", nil); len(got) != 0 {
		t.Fatalf("deleted group offsets came back: %v", got)
	}
	d := h2.describe("live", "emptied", "deleted")
	if d[0].State != "Stable" || len(d[0].Members) != 2 || string(d[0].Members[0].MemberAssignment) != "A-leader" {
		t.Fatalf("live group %+v", d[0])
	}
	if d[1].State != "Empty" || d[1].ProtocolType != "consumer" || d[2].State != "Dead" {
		t.Fatalf("emptied/deleted %+v %+v", d[1], d[2])
	}
	// Members of the loaded generation carry on heartbeating...
	if code := h2.heartbeat("live", leader, 1); code != 0 {
		t.Fatalf("heartbeat after reload: %d", code)
	}
	// ...and one that does not is expired, starting a rebalance.
	for i := 0; i < 4; i++ {
		clk.Advance(3 * time.Second)
		h2.heartbeat("live", leader, 1)
	}
	if code := h2.heartbeat("live", follower, 1); code != kerr.UnknownMemberID.Code {
		t.Fatalf("silent member after reload: %d", code)
	}
	if gen := h2.generation("emptied"); gen != 2 {
		t.Fatalf("emptied generation %d", gen)
	}
}

func TestDeleteGroups(t *testing.T) {
	h := newHarness(t)
	h.stableGroup("busy")
	h.commit(8, "idle", "", -1, map[string]map[int32]int64{"t": {0: 1, 1: 2}})
	r := h.c.DeleteGroups(h.ctx, &kmsg.DeleteGroupsRequest{Version: 2, Groups: []string{"busy", "idle", "ghost"}})
	want := map[string]int16{"busy": kerr.NonEmptyGroup.Code, "idle": 0, "ghost": kerr.GroupIDNotFound.Code}
	for _, rg := range r.Groups {
		if rg.ErrorCode != want[rg.Group] {
			t.Fatalf("%s: %d want %d", rg.Group, rg.ErrorCode, want[rg.Group])
		}
	}
	if got, _ := h.fetch(8, "idle", nil); len(got) != 0 {
		t.Fatalf("offsets after delete %v", got)
	}
	// Tombstones for both offsets and the group metadata.
	rs := h.log.records()[h.c.PartitionFor("idle")]
	tombs := 0
	for _, kv := range rs {
		if kv.Value == nil {
			tombs++
		}
	}
	if tombs != 3 {
		t.Fatalf("%d tombstones, want 3", tombs)
	}
	if l := h.list(4, nil, nil); len(l) != 1 || l[0].Group != "busy" {
		t.Fatalf("list after delete %+v", l)
	}
}

func TestDeleteGroupWriteFailureKeepsGroup(t *testing.T) {
	h := newHarness(t)
	h.commit(8, "idle", "", -1, map[string]map[int32]int64{"t": {0: 1}})
	h.log.setFail(kerr.NotLeaderForPartition)
	r := h.c.DeleteGroups(h.ctx, &kmsg.DeleteGroupsRequest{Version: 2, Groups: []string{"idle"}})
	if r.Groups[0].ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("delete with failing log %+v", r.Groups)
	}
	h.log.setFail(nil)
	if got, _ := h.fetch(8, "idle", nil); got["t/0"] != 1 {
		t.Fatalf("offsets lost by a failed delete: %v", got)
	}
	if s := h.state("idle"); s != "Empty" {
		t.Fatalf("state %s", s)
	}
}

func TestOffsetDelete(t *testing.T) {
	h := newHarness(t)
	leader, _ := h.stableGroup("consumers") // subscribed to t1
	h.commit(8, "consumers", leader, 1, map[string]map[int32]int64{"t1": {0: 1}, "old": {0: 2}})
	h.commit(8, "simple", "", -1, map[string]map[int32]int64{"t1": {0: 1}})

	del := func(group string, topics map[string][]int32) *kmsg.OffsetDeleteResponse {
		r := kmsg.NewPtrOffsetDeleteRequest()
		r.Group = group
		for tp, ps := range topics {
			rt := kmsg.OffsetDeleteRequestTopic{Topic: tp}
			for _, p := range ps {
				rt.Partitions = append(rt.Partitions, kmsg.OffsetDeleteRequestTopicPartition{Partition: p})
			}
			r.Topics = append(r.Topics, rt)
		}
		return h.c.OffsetDelete(h.ctx, r)
	}
	resp := del("consumers", map[string][]int32{"t1": {0}})
	if resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != kerr.GroupSubscribedToTopic.Code {
		t.Fatalf("subscribed topic %+v", resp)
	}
	resp = del("consumers", map[string][]int32{"old": {0, 1}})
	if resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 || resp.Topics[0].Partitions[1].ErrorCode != 0 {
		t.Fatalf("unsubscribed topic %+v", resp)
	}
	if got, _ := h.fetch(8, "consumers", nil); !reflect.DeepEqual(got, map[string]int64{"t1/0": 1}) {
		t.Fatalf("after offset delete %v", got)
	}
	if resp := del("ghost", map[string][]int32{"t": {0}}); resp.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("unknown group %+v", resp)
	}
	if resp := del("simple", map[string][]int32{"t1": {0}}); resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("empty group %+v", resp)
	}

	// A non-consumer protocol cannot be checked: NON_EMPTY_GROUP.
	j := joinReq(3, "connect", "")
	j.ProtocolType = "connect"
	cj := h.join(j)
	h.awaitingJoin("connect", 1)
	h.clk.Advance(testDelay)
	recv(t, cj)
	if resp := del("connect", map[string][]int32{"t": {0}}); resp.ErrorCode != kerr.NonEmptyGroup.Code {
		t.Fatalf("connect group %+v", resp)
	}
}

func TestListAndDescribe(t *testing.T) {
	h := newHarness(t)
	h.stableGroup("stable")
	h.commit(8, "simple", "", -1, map[string]map[int32]int64{"t": {0: 1}})
	j := h.join(joinReq(3, "joining", ""))
	h.awaitingJoin("joining", 1)

	names := func(gs []kmsg.ListGroupsResponseGroup) []string {
		var out []string
		for _, g := range gs {
			out = append(out, g.Group+":"+g.GroupState+":"+g.ProtocolType)
		}
		return out
	}
	cases := []struct {
		name    string
		version int16
		states  []string
		types   []string
		want    []string
	}{
		{"all", 3, nil, nil, []string{"joining:PreparingRebalance:consumer", "simple:Empty:", "stable:Stable:consumer"}},
		{"states filter, any case", 4, []string{"stable", "EMPTY"}, nil, []string{"simple:Empty:", "stable:Stable:consumer"}},
		{"states filter ignored before v4", 3, []string{"stable"}, nil, []string{"joining:PreparingRebalance:consumer", "simple:Empty:", "stable:Stable:consumer"}},
		{"classic type", 5, nil, []string{"Classic"}, []string{"joining:PreparingRebalance:consumer", "simple:Empty:", "stable:Stable:consumer"}},
		{"consumer type", 5, nil, []string{"consumer"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := h.list(tc.version, tc.states, tc.types)
			if !reflect.DeepEqual(names(got), tc.want) {
				t.Fatalf("got %v want %v", names(got), tc.want)
			}
			if tc.version >= 5 && len(got) > 0 && got[0].GroupType != "classic" {
				t.Fatalf("group type %q", got[0].GroupType)
			}
		})
	}

	d := h.describe("joining", "nope", "simple")
	if d[0].State != "PreparingRebalance" || d[0].Protocol != "" || len(d[0].Members) != 1 || len(d[0].Members[0].ProtocolMetadata) != 0 {
		t.Fatalf("rebalancing group %+v", d[0])
	}
	if d[1].State != "Dead" || d[1].ErrorCode != 0 || d[2].State != "Empty" {
		t.Fatalf("describe %+v", d[1:])
	}
	h.clk.Advance(testDelay)
	recv(t, j)
}

func TestOffsetRetention(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.OffsetsRetention = time.Hour
		c.OffsetsRetentionCheckInterval = time.Minute
	})
	h.commit(8, "simple", "", -1, map[string]map[int32]int64{"t": {0: 1}})
	h.clk.Advance(30 * time.Minute)
	h.commit(8, "simple", "", -1, map[string]map[int32]int64{"t": {1: 2}})
	// A v2 commit with its own retention time.
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version, r.Group, r.RetentionTimeMillis = 2, "short", 60_000
	r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 9, LeaderEpoch: -1}}}}
	h.c.OffsetCommit(h.ctx, r)

	h.clk.Advance(2 * time.Minute)
	if got, _ := h.fetch(8, "short", map[string][]int32{"t": {0}}); got["t/0"] != -1 {
		t.Fatalf("offset past its explicit expiry %v", got)
	}
	if d := h.describe("short")[0]; d.State != "Dead" {
		t.Fatalf("group with nothing left: %+v", d)
	}
	h.clk.Advance(30 * time.Minute)
	if got, _ := h.fetch(8, "simple", nil); !reflect.DeepEqual(got, map[string]int64{"t/1": 2}) {
		t.Fatalf("after the first offset's retention %v", got)
	}
	h.clk.Advance(30 * time.Minute)
	if got, _ := h.fetch(8, "simple", nil); len(got) != 0 {
		t.Fatalf("after all retention %v", got)
	}
	if l := h.list(3, nil, nil); len(l) != 0 {
		t.Fatalf("expired groups still listed: %+v", l)
	}

	// Offsets of a consumer group are kept while it has members.
	h.stableGroup("consumers")
	h.commit(8, "consumers", "", -1, map[string]map[int32]int64{"t": {0: 1}}) // rejected: active group
	leader, follower := "", ""
	h.inspect(func() {
		g := h.c.groups["consumers"]
		leader, follower = g.order[0].id, g.order[1].id
	})
	h.commit(8, "consumers", leader, 1, map[string]map[int32]int64{"t1": {0: 1}})
	for i := 0; i < 30; i++ {
		h.clk.Advance(5 * time.Second)
		h.heartbeat("consumers", leader, 1)
		h.heartbeat("consumers", follower, 1)
	}
	h.clk.Advance(0)
	if got, _ := h.fetch(8, "consumers", nil); got["t1/0"] != 1 {
		t.Fatalf("subscribed offsets of a live group expired: %v", got)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(offsetKey("g", topicPartition{"t", 1}), offsetValue(committed{offset: 5, leaderEpoch: 2, metadata: "m", expireMs: -1}))
	f.Add(offsetKey("g", topicPartition{"t", 1}), offsetValue(committed{offset: 5, expireMs: 9}))
	g := newGroup("g", 0, 1)
	g.add(&member{id: "m", protocols: []protocol{{"range", []byte{1}}}, protocolType: "consumer"})
	g.protocol, g.hasProtocol = "range", true
	f.Add(groupKey("g"), groupValue(g, nil))
	f.Add(groupKey("g"), []byte(nil))
	f.Add([]byte{0, 9}, []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		rec, err := decodeRecord(key, value)
		if err == nil && rec != nil && rec.meta != nil {
			for _, m := range rec.meta.Members {
				_ = m.MemberID
			}
		}
	})
}
