package groups

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/strata-broker/strata/broker/internal/loop/looptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memLog is an in-memory __consumer_offsets with failure injection.
type memLog struct {
	mu    sync.Mutex
	parts map[int32][]KV
	fail  error
	block chan struct{} // non-nil: Append waits for it to close
	calls int
	txn   map[int32]map[int]int64 // partition -> record index -> producer id (AppendTxn)
}

func newMemLog() *memLog { return &memLog{parts: make(map[int32][]KV)} }

func (l *memLog) Append(ctx context.Context, p int32, recs []KV) error {
	l.mu.Lock()
	block := l.block
	l.calls++
	l.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	for _, r := range recs {
		l.parts[p] = append(l.parts[p], KV{Key: bytes.Clone(r.Key), Value: bytes.Clone(r.Value)})
	}
	return nil
}

// AppendTxn records transactional writes like Append and remembers which
// producer wrote them, for replay.
func (l *memLog) AppendTxn(ctx context.Context, p int32, pid int64, epoch int16, recs []KV) error {
	if err := l.Append(ctx, p, recs); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.txn == nil {
		l.txn = make(map[int32]map[int]int64)
	}
	if l.txn[p] == nil {
		l.txn[p] = make(map[int]int64)
	}
	for i := range recs {
		l.txn[p][len(l.parts[p])-len(recs)+i] = pid
	}
	return nil
}

func (l *memLog) setFail(err error) {
	l.mu.Lock()
	l.fail = err
	l.mu.Unlock()
}

func (l *memLog) records() map[int32][]KV {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[int32][]KV, len(l.parts))
	for p, rs := range l.parts {
		out[p] = append([]KV(nil), rs...)
	}
	return out
}

func (l *memLog) count() int {
	n := 0
	for _, rs := range l.records() {
		n += len(rs)
	}
	return n
}

// replay loads every record into c, partition by partition in log order.
func (l *memLog) replay(c *Coordinator) {
	for p, rs := range l.records() {
		for _, r := range rs {
			c.Load(p, r.Key, r.Value)
		}
	}
}

// harness drives one coordinator with a fake clock and an in-memory log.
type harness struct {
	t   *testing.T
	c   *Coordinator
	clk *looptest.FakeClock
	log *memLog
	ctx context.Context
}

const (
	testSession   = 10_000 // ms
	testRebalance = 30_000 // ms
	testDelay     = 100 * time.Millisecond
)

func newHarness(t *testing.T, mod ...func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, clk: looptest.NewFakeClock(), log: newMemLog()}
	cfg := Config{
		Partitions:            7,
		Log:                   h.log,
		Clock:                 h.clk,
		MinSessionTimeout:     time.Second,
		MaxSessionTimeout:     time.Minute,
		InitialRebalanceDelay: testDelay,
	}
	for _, f := range mod {
		f(&cfg)
	}
	h.c = New(cfg)
	h.clk.Settle = h.sync
	t.Cleanup(h.c.Close)
	h.ctx = WithClient(context.Background(), "client", "/127.0.0.1")
	return h
}

// sync returns once the loop has handled everything queued so far and
// every append it started has completed.
func (h *harness) sync() {
	h.waitFor("appends to complete", func() bool { return h.c.inflight == 0 })
}

// inspect runs f on the loop goroutine.
func (h *harness) inspect(f func()) {
	done := make(chan struct{})
	if !h.c.exec(context.Background(), func() { f(); close(done) }) {
		return
	}
	select {
	case <-done:
	case <-h.c.done:
	}
}

// waitFor blocks until cond (evaluated on the loop) holds.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	var ch <-chan struct{}
	h.inspect(func() {
		ch = h.c.watchers.Add(cond)
	})
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		var dump string
		h.inspect(func() {
			for id, g := range h.c.groups {
				dump += fmt.Sprintf("\n%s: %s gen %d leader %s pending %d", id, g.state, g.generation, g.leader, len(g.pendingJoin))
				for _, m := range g.order {
					dump += fmt.Sprintf("\n  %s join=%v sync=%v new=%v", m.id, m.join != nil, m.sync != nil, m.isNew)
				}
			}
		})
		h.t.Fatalf("timed out waiting for %s; groups:%s", what, dump)
	}
}

// awaitingJoin waits until n members of group are parked in JoinGroup.
func (h *harness) awaitingJoin(group string, n int) {
	h.t.Helper()
	h.waitFor("members awaiting join", func() bool {
		g := h.c.groups[group]
		return g != nil && g.numAwaitingJoin() == n
	})
}

func (h *harness) awaitingSync(group string, n int) {
	h.t.Helper()
	h.waitFor("members awaiting sync", func() bool {
		g := h.c.groups[group]
		if g == nil {
			return false
		}
		k := 0
		for _, m := range g.order {
			if m.sync != nil {
				k++
			}
		}
		return k == n
	})
}

func (h *harness) state(group string) string {
	var s string
	h.inspect(func() {
		if g := h.c.groups[group]; g != nil {
			s = g.state.String()
		} else {
			s = "none"
		}
	})
	return s
}

func (h *harness) generation(group string) int32 {
	var gen int32 = -1
	h.inspect(func() {
		if g := h.c.groups[group]; g != nil {
			gen = g.generation
		}
	})
	return gen
}

// async runs f on its own goroutine and returns its result channel.
func async[T any](f func() T) <-chan T {
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	return ch
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a response")
		panic("unreachable")
	}
}

func notYet[T any](t *testing.T, ch <-chan T) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("call returned early: %+v", v)
	default:
	}
}

// subscription builds consumer-protocol member metadata.
func subscription(topics ...string) []byte {
	m := kmsg.ConsumerMemberMetadata{Version: 3, Topics: topics, UserData: []byte("user-data")}
	return m.AppendTo(nil)
}

type proto struct {
	name string
	meta []byte
}

func joinReq(version int16, group, member string, protos ...proto) *kmsg.JoinGroupRequest {
	r := kmsg.NewPtrJoinGroupRequest()
	r.Version = version
	r.Group = group
	r.MemberID = member
	r.SessionTimeoutMillis = testSession
	r.RebalanceTimeoutMillis = testRebalance
	r.ProtocolType = consumerProtocolType
	if len(protos) == 0 {
		protos = []proto{{"range", subscription("t1")}}
	}
	for _, p := range protos {
		r.Protocols = append(r.Protocols, kmsg.JoinGroupRequestProtocol{Name: p.name, Metadata: p.meta})
	}
	return r
}

func staticJoinReq(version int16, group, member, instance string, protos ...proto) *kmsg.JoinGroupRequest {
	r := joinReq(version, group, member, protos...)
	r.InstanceID = &instance
	return r
}

func (h *harness) join(r *kmsg.JoinGroupRequest) <-chan *kmsg.JoinGroupResponse {
	return async(func() *kmsg.JoinGroupResponse { return h.c.JoinGroup(h.ctx, r) })
}

func (h *harness) syncGroup(version int16, group, member string, gen int32, assign map[string][]byte) <-chan *kmsg.SyncGroupResponse {
	r := kmsg.NewPtrSyncGroupRequest()
	r.Version = version
	r.Group, r.MemberID, r.Generation = group, member, gen
	if version >= 5 {
		pt, pn := consumerProtocolType, "range"
		r.ProtocolType, r.Protocol = &pt, &pn
	}
	for id, a := range assign {
		r.GroupAssignment = append(r.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: a})
	}
	return async(func() *kmsg.SyncGroupResponse { return h.c.SyncGroup(h.ctx, r) })
}

func (h *harness) heartbeat(group, member string, gen int32) int16 {
	r := kmsg.NewPtrHeartbeatRequest()
	r.Version = 4
	r.Group, r.MemberID, r.Generation = group, member, gen
	return h.c.Heartbeat(h.ctx, r).ErrorCode
}

func (h *harness) commit(version int16, group, member string, gen int32, offsets map[string]map[int32]int64) *kmsg.OffsetCommitResponse {
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version = version
	r.Group, r.MemberID, r.Generation = group, member, gen
	for topic, ps := range offsets {
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = topic
		for p, o := range ps {
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset = p, o
			meta := "m"
			rp.Metadata = &meta
			rp.LeaderEpoch = 5
			rt.Partitions = append(rt.Partitions, rp)
		}
		r.Topics = append(r.Topics, rt)
	}
	return h.c.OffsetCommit(h.ctx, r)
}

// commitCodes flattens a commit response to "topic/partition" -> code.
func commitCodes(resp *kmsg.OffsetCommitResponse) map[string]int16 {
	out := make(map[string]int16)
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out[tpName(t.Topic, p.Partition)] = p.ErrorCode
		}
	}
	return out
}

func tpName(topic string, p int32) string {
	return fmt.Sprintf("%s/%d", topic, p)
}

// fetch returns "topic/partition" -> offset for group (nil topics = all).
func (h *harness) fetch(version int16, group string, topics map[string][]int32) (map[string]int64, int16) {
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version = version
	if version >= 8 {
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = group
		if topics != nil {
			rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{}
			for t, ps := range topics {
				rg.Topics = append(rg.Topics, kmsg.OffsetFetchRequestGroupTopic{Topic: t, Partitions: ps})
			}
		}
		r.Groups = append(r.Groups, rg)
	} else {
		r.Group = group
		if topics != nil {
			r.Topics = []kmsg.OffsetFetchRequestTopic{}
			for t, ps := range topics {
				r.Topics = append(r.Topics, kmsg.OffsetFetchRequestTopic{Topic: t, Partitions: ps})
			}
		}
	}
	resp := h.c.OffsetFetch(h.ctx, r)
	out := make(map[string]int64)
	if version >= 8 {
		for _, t := range resp.Groups[0].Topics {
			for _, p := range t.Partitions {
				out[tpName(t.Topic, p.Partition)] = p.Offset
			}
		}
		return out, resp.Groups[0].ErrorCode
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out[tpName(t.Topic, p.Partition)] = p.Offset
		}
	}
	return out, resp.ErrorCode
}

func (h *harness) describe(groups ...string) []kmsg.DescribeGroupsResponseGroup {
	r := kmsg.NewPtrDescribeGroupsRequest()
	r.Version = 5
	r.Groups = groups
	return h.c.DescribeGroups(h.ctx, r).Groups
}

func (h *harness) list(version int16, states, types []string) []kmsg.ListGroupsResponseGroup {
	r := kmsg.NewPtrListGroupsRequest()
	r.Version = version
	r.StatesFilter, r.TypesFilter = states, types
	return h.c.ListGroups(h.ctx, r).Groups
}

func (h *harness) leave(version int16, group string, members ...kmsg.LeaveGroupRequestMember) *kmsg.LeaveGroupResponse {
	r := kmsg.NewPtrLeaveGroupRequest()
	r.Version = version
	r.Group = group
	if version < 3 {
		r.MemberID = members[0].MemberID
	} else {
		r.Members = members
	}
	return h.c.LeaveGroup(h.ctx, r)
}

// stableGroup builds a Stable two-member consumer group through the v9
// two-step join. It returns the leader's and the follower's member ids.
func (h *harness) stableGroup(group string) (leader, follower string) {
	t := h.t
	t.Helper()
	first := recv(t, h.join(joinReq(9, group, "")))
	second := recv(t, h.join(joinReq(9, group, "")))
	if first.ErrorCode != 79 || second.ErrorCode != 79 {
		t.Fatalf("want MEMBER_ID_REQUIRED twice, got %d, %d", first.ErrorCode, second.ErrorCode)
	}
	j1 := h.join(joinReq(9, group, first.MemberID))
	h.awaitingJoin(group, 1)
	j2 := h.join(joinReq(9, group, second.MemberID))
	h.waitFor("both members joined", func() bool {
		g := h.c.groups[group]
		return g.state != statePreparingRebalance || g.numAwaitingJoin() == 2
	})
	h.clk.Advance(testDelay) // extended once: a member arrived during the delay
	h.clk.Advance(testDelay)
	r1, r2 := recv(t, j1), recv(t, j2)
	if r1.ErrorCode != 0 || r2.ErrorCode != 0 {
		t.Fatalf("join errors %d %d", r1.ErrorCode, r2.ErrorCode)
	}
	leader, follower = r1.LeaderID, r2.MemberID
	if leader == r2.MemberID {
		follower = r1.MemberID
	}
	s2 := h.syncGroup(5, group, follower, r1.Generation, nil)
	h.awaitingSync(group, 1)
	s1 := h.syncGroup(5, group, leader, r1.Generation, map[string][]byte{leader: []byte("A-leader"), follower: []byte("A-follower")})
	if a, b := recv(t, s1), recv(t, s2); a.ErrorCode != 0 || b.ErrorCode != 0 {
		t.Fatalf("sync errors %d %d", a.ErrorCode, b.ErrorCode)
	}
	if s := h.state(group); s != "Stable" {
		t.Fatalf("state %s, want Stable", s)
	}
	return leader, follower
}
