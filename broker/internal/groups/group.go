package groups

import (
	"bytes"
	"encoding/binary"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/internal/loop"
)

// groupState is Kafka's classic group state; String gives the names Kafka
// puts on the wire (DescribeGroups, ListGroups).
type groupState int8

const (
	stateEmpty groupState = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

var stateNames = [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}

func (s groupState) String() string { return stateNames[s] }

type topicPartition struct {
	topic     string
	partition int32
}

// committed is one committed offset as Kafka keeps it.
type committed struct {
	offset      int64
	leaderEpoch int32 // -1: none
	metadata    string
	commitMs    int64
	expireMs    int64 // -1: none (only OffsetCommit v2-v4 with a retention time set it)
}

type protocol struct {
	name     string
	metadata []byte // opaque, passed to the leader exactly as the member sent it
}

type member struct {
	id           string
	instanceID   *string // static membership (KIP-345)
	clientID     string
	clientHost   string
	rebalanceMs  int32
	sessionMs    int32
	protocolType string
	protocols    []protocol // in the member's order of preference
	assignment   []byte     // opaque, as the leader sent it; never nil once synced

	// join/sync are set while the member's JoinGroup/SyncGroup is parked.
	join    func(joinResult)
	joinSeq uint64 // bumped whenever join is set; lets callbacks spot a newer join
	sync    func(syncResult)

	// isNew: joined but its first JoinGroup has not completed; it may then
	// be expired even while awaiting the join (Kafka's new-member timeout).
	isNew bool
	hb    *loop.Handle // session (or new-member) expiry
}

func (m *member) metadata(name string) []byte {
	for _, p := range m.protocols {
		if p.name == name {
			return p.metadata
		}
	}
	return nil
}

// matches reports whether the member would join with exactly the same
// protocols, in which case a JoinGroup in CompletingRebalance/Stable needs
// no rebalance.
func (m *member) matches(ps []protocol) bool {
	if len(ps) != len(m.protocols) {
		return false
	}
	for i := range ps {
		if ps[i].name != m.protocols[i].name || !bytes.Equal(ps[i].metadata, m.protocols[i].metadata) {
			return false
		}
	}
	return true
}

// vote is the member's most preferred protocol among the candidates.
func (m *member) vote(candidates map[string]bool) string {
	for _, p := range m.protocols {
		if candidates[p.name] {
			return p.name
		}
	}
	return ""
}

type group struct {
	id        string
	partition int32 // __consumer_offsets partition

	state     groupState
	prevState groupState
	stateMs   int64 // when the group entered state; -1 unknown (old records)

	protocolType string // "" until a member joins (or for offsets-only groups)
	protocol     string // selected protocol, valid if hasProtocol
	hasProtocol  bool
	generation   int32
	leader       string // "" none

	members     map[string]*member
	order       []*member // join order: iteration order, leader fallback
	static      map[string]string
	pendingJoin map[string]*loop.Handle // MEMBER_ID_REQUIRED ids not joined yet
	pendingSync map[string]struct{}
	supported   map[string]int // protocol name -> members supporting it

	newMemberAdded bool // a member joined during the initial delay: extend it
	initialDelay   bool // the initial-rebalance delay timer is armed
	joinTimer      *loop.Handle
	syncTimer      *loop.Handle

	subscribed      map[string]bool // topics of the consumer protocol subscriptions
	subscribedKnown bool

	offsets        map[topicPartition]committed
	pendingCommits map[topicPartition]int // appends in flight, for tombstones
	// txnOffsets are TxnOffsetCommit offsets by producer id, written but
	// undecided until the transaction's marker (nil until the first).
	txnOffsets map[int64]map[topicPartition]committed

	persisted bool // a GroupMetadata record exists in the log
	gone      bool // removed from the coordinator; timers and callbacks no-op
}

func newGroup(id string, partition int32, nowMs int64) *group {
	return &group{
		id:             id,
		partition:      partition,
		state:          stateEmpty,
		prevState:      stateDead,
		stateMs:        nowMs,
		members:        make(map[string]*member),
		static:         make(map[string]string),
		pendingJoin:    make(map[string]*loop.Handle),
		pendingSync:    make(map[string]struct{}),
		supported:      make(map[string]int),
		offsets:        make(map[topicPartition]committed),
		pendingCommits: make(map[topicPartition]int),
	}
}

func (g *group) transition(s groupState, nowMs int64) {
	g.prevState = g.state
	g.state = s
	g.stateMs = nowMs
}

// canRebalance: the states PreparingRebalance may be entered from.
func (g *group) canRebalance() bool {
	return g.state == stateStable || g.state == stateCompletingRebalance || g.state == stateEmpty
}

// bare reports a group that holds nothing worth keeping: no members, no
// offsets, nothing in flight, never persisted.
func (g *group) bare() bool {
	return g.state == stateEmpty && len(g.members) == 0 && len(g.pendingJoin) == 0 &&
		len(g.offsets) == 0 && len(g.pendingCommits) == 0 && len(g.txnOffsets) == 0 &&
		!g.persisted && g.generation == 0
}

func (g *group) add(m *member) {
	if m.instanceID != nil {
		g.static[*m.instanceID] = m.id
	}
	if len(g.members) == 0 {
		g.protocolType = m.protocolType
	}
	if g.leader == "" {
		g.leader = m.id
	}
	g.members[m.id] = m
	g.order = append(g.order, m)
	for _, p := range m.protocols {
		g.supported[p.name]++
	}
	delete(g.pendingJoin, m.id)
}

// remove drops a member from the group's bookkeeping. Timers and parked
// calls are the coordinator's business (removeMember).
func (g *group) remove(id string) {
	m := g.members[id]
	if m != nil {
		delete(g.members, id)
		if i := slices.Index(g.order, m); i >= 0 {
			g.order = slices.Delete(g.order, i, i+1)
		}
		for _, p := range m.protocols {
			g.supported[p.name]--
		}
		if m.instanceID != nil && g.static[*m.instanceID] == id {
			delete(g.static, *m.instanceID)
		}
	}
	if g.leader == id {
		g.leader = ""
		if len(g.order) > 0 {
			g.leader = g.order[0].id
		}
	}
	delete(g.pendingJoin, id)
	delete(g.pendingSync, id)
}

func (g *group) updateMember(m *member, ps []protocol, rebalanceMs, sessionMs int32) {
	for _, p := range m.protocols {
		g.supported[p.name]--
	}
	m.protocols = ps
	for _, p := range ps {
		g.supported[p.name]++
	}
	m.rebalanceMs = rebalanceMs
	m.sessionMs = sessionMs
}

func (g *group) numAwaitingJoin() int {
	n := 0
	for _, m := range g.order {
		if m.join != nil {
			n++
		}
	}
	return n
}

func (g *group) hasAllMembersJoined() bool {
	return len(g.pendingJoin) == 0 && g.numAwaitingJoin() == len(g.members)
}

// rebalanceTimeoutMs is the largest rebalance timeout of the members.
func (g *group) rebalanceTimeoutMs() int32 {
	var max int32
	for _, m := range g.order {
		max = maxInt32(max, m.rebalanceMs)
	}
	return max
}

// supportsProtocols: an Empty group takes any non-empty protocol list; else
// the protocol type must match and one of the protocols must be supported
// by every current member.
func (g *group) supportsProtocols(ptype string, ps []protocol) bool {
	if g.state == stateEmpty {
		return ptype != "" && len(ps) > 0
	}
	if g.protocolType != ptype {
		return false
	}
	for _, p := range ps {
		if g.supported[p.name] == len(g.members) {
			return true
		}
	}
	return false
}

// selectProtocol lets every member vote for its most preferred protocol
// among those all members support; the most votes wins. Kafka breaks ties
// by hash order; here the protocol that got its first vote earliest (in
// join order) wins, which is deterministic.
func (g *group) selectProtocol() string {
	candidates := make(map[string]bool)
	for name, n := range g.supported {
		if n == len(g.members) && n > 0 {
			candidates[name] = true
		}
	}
	votes := make(map[string]int)
	var order []string
	for _, m := range g.order {
		v := m.vote(candidates)
		if _, ok := votes[v]; !ok {
			order = append(order, v)
		}
		votes[v]++
	}
	best := ""
	for i, name := range order {
		if i == 0 || votes[name] > votes[best] {
			best = name
		}
	}
	return best
}

// maybeElectNewJoinedLeader keeps the leader if it rejoined, else picks any
// member that did. False means no member rejoined (or there is no leader).
func (g *group) maybeElectNewJoinedLeader() bool {
	if g.leader == "" {
		return false
	}
	if l := g.members[g.leader]; l != nil && l.join != nil {
		return true
	}
	for _, m := range g.order {
		if m.join != nil {
			g.leader = m.id
			return true
		}
	}
	return false
}

func (g *group) initNextGeneration(nowMs int64) {
	g.generation++
	if len(g.members) > 0 {
		g.protocol, g.hasProtocol = g.selectProtocol(), true
		g.computeSubscribedTopics()
		g.transition(stateCompletingRebalance, nowMs)
	} else {
		g.protocol, g.hasProtocol = "", false
		g.computeSubscribedTopics()
		g.transition(stateEmpty, nowMs)
	}
	clear(g.pendingSync)
}

// computeSubscribedTopics parses the members' consumer-protocol
// subscriptions. Like Kafka it reads only the version-0 prefix (topics),
// which every later version starts with, so future versions parse too.
func (g *group) computeSubscribedTopics() {
	g.subscribed, g.subscribedKnown = nil, false
	if g.protocolType != consumerProtocolType {
		return
	}
	if len(g.members) == 0 {
		g.subscribed, g.subscribedKnown = map[string]bool{}, true
		return
	}
	if !g.hasProtocol {
		return
	}
	topics := make(map[string]bool)
	for _, m := range g.order {
		ts, ok := subscriptionTopics(m.metadata(g.protocol))
		if !ok {
			return
		}
		for _, t := range ts {
			topics[t] = true
		}
	}
	g.subscribed, g.subscribedKnown = topics, true
}

func subscriptionTopics(meta []byte) ([]string, bool) {
	if len(meta) < 2 {
		return nil, false
	}
	v0 := bytes.Clone(meta)
	binary.BigEndian.PutUint16(v0, 0)
	var s kmsg.ConsumerMemberMetadata
	if err := s.ReadFrom(v0); err != nil {
		return nil, false
	}
	return s.Topics, true
}

// isSubscribedToTopic: when the subscriptions are unknown (not parsed yet,
// or unparsable), a consumer group is conservatively taken to subscribe to
// everything.
func (g *group) isSubscribedToTopic(topic string) bool {
	if g.subscribedKnown {
		return g.subscribed[topic]
	}
	return g.protocolType == consumerProtocolType
}

// currentMembers is what the leader gets in its JoinGroup response.
func (g *group) currentMembers() []kmsg.JoinGroupResponseMember {
	out := make([]kmsg.JoinGroupResponseMember, 0, len(g.order))
	for _, m := range g.order {
		rm := kmsg.NewJoinGroupResponseMember()
		rm.MemberID = m.id
		rm.InstanceID = m.instanceID
		rm.ProtocolMetadata = m.metadata(g.protocol)
		if rm.ProtocolMetadata == nil {
			rm.ProtocolMetadata = []byte{}
		}
		out = append(out, rm)
	}
	return out
}

// validateMember: a static member's instance id must map to its member id
// (else FENCED_INSTANCE_ID, or UNKNOWN_MEMBER_ID if the instance is
// unknown), and the member must exist.
func (g *group) validateMember(memberID string, instanceID *string) int16 {
	if instanceID != nil {
		existing, ok := g.static[*instanceID]
		if !ok {
			return kerr.UnknownMemberID.Code
		}
		if existing != memberID {
			return kerr.FencedInstanceID.Code
		}
	}
	if g.members[memberID] == nil {
		return kerr.UnknownMemberID.Code
	}
	return 0
}

// validateOffsetCommit follows Kafka: generation -1 commits are accepted
// from anyone while the group is Empty; otherwise the member and generation
// must be current, and commits wait out CompletingRebalance.
func (g *group) validateOffsetCommit(memberID string, instanceID *string, generation int32) int16 {
	if g.state == stateDead {
		return kerr.CoordinatorNotAvailable.Code
	}
	if generation < 0 && g.state == stateEmpty {
		return 0
	}
	if generation >= 0 || memberID != "" || instanceID != nil {
		if code := g.validateMember(memberID, instanceID); code != 0 {
			return code
		}
		if generation != g.generation {
			return kerr.IllegalGeneration.Code
		}
	} else if g.state != stateEmpty {
		return kerr.UnknownMemberID.Code
	}
	if g.state == stateCompletingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	return 0
}

func maxInt32(a, b int32) int32 {
	if a > b {
		return a
	}
	return b
}
