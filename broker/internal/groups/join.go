package groups

import (
	"bytes"
	"context"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// joinResult is a JoinGroup answer before it is shaped for a version.
type joinResult struct {
	err          int16
	memberID     string
	generation   int32
	protocolType *string
	protocol     *string
	leader       string
	members      []kmsg.JoinGroupResponseMember
}

func joinError(memberID string, code int16) joinResult {
	return joinResult{err: code, memberID: memberID, generation: -1}
}

func (r joinResult) response(version int16) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Version = version
	resp.ErrorCode = r.err
	resp.Generation = r.generation
	resp.ProtocolType = r.protocolType
	resp.Protocol = r.protocol
	resp.LeaderID = r.leader
	resp.MemberID = r.memberID
	resp.Members = r.members
	if resp.Members == nil {
		resp.Members = []kmsg.JoinGroupResponseMember{}
	}
	// SkipAssignment (v9) stays false: a static leader rejoining a Stable
	// group is told the old leader id instead, as for v8 and below.
	return resp
}

// syncResult is a SyncGroup answer before it is shaped for a version.
type syncResult struct {
	err          int16
	protocolType *string
	protocol     *string
	assignment   []byte
}

// joinRequest is a JoinGroup request normalised across versions, holding
// copies of everything the group keeps.
type joinRequest struct {
	version      int16
	memberID     string
	instanceID   *string
	client       clientInfo
	sessionMs    int32
	rebalanceMs  int32
	protocolType string
	protocols    []protocol
}

// JoinGroup handles JoinGroup v0-v9. It blocks until the join phase of the
// rebalance completes (or ctx ends: COORDINATOR_NOT_AVAILABLE; or the
// coordinator closes: NOT_COORDINATOR). Client id and host come from
// WithClient.
func (c *Coordinator) JoinGroup(ctx context.Context, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	j := joinRequest{
		version:      req.Version,
		memberID:     req.MemberID,
		client:       clientFrom(ctx),
		sessionMs:    req.SessionTimeoutMillis,
		rebalanceMs:  req.RebalanceTimeoutMillis,
		protocolType: req.ProtocolType,
	}
	if req.Version == 0 { // v0 has no rebalance timeout: Kafka uses the session timeout
		j.rebalanceMs = req.SessionTimeoutMillis
	}
	if req.Version >= 5 && req.InstanceID != nil {
		id := *req.InstanceID
		j.instanceID = &id
	}
	seen := make(map[string]bool, len(req.Protocols))
	for _, p := range req.Protocols {
		if seen[p.Name] { // Kafka keys protocols by name; keep the first
			continue
		}
		seen[p.Name] = true
		j.protocols = append(j.protocols, protocol{name: p.Name, metadata: bytes.Clone(p.Metadata)})
	}
	r := await(c, ctx, func(reply func(joinResult)) { c.joinGroup(req.Group, j, reply) },
		func() joinResult { return joinError(req.MemberID, kerr.CoordinatorNotAvailable.Code) },
		func() joinResult { return joinError(req.MemberID, kerr.NotCoordinator.Code) })
	return r.response(req.Version)
}

func (c *Coordinator) joinGroup(id string, j joinRequest, reply func(joinResult)) {
	if id == "" {
		reply(joinError(j.memberID, kerr.InvalidGroupID.Code))
		return
	}
	session := ms(j.sessionMs)
	if session < c.cfg.MinSessionTimeout || session > c.cfg.MaxSessionTimeout {
		reply(joinError(j.memberID, kerr.InvalidSessionTimeout.Code))
		return
	}
	g := c.groups[id]
	if g == nil {
		if j.memberID != "" {
			reply(joinError(j.memberID, kerr.UnknownMemberID.Code))
			return
		}
		g = c.createGroup(id)
		defer func() {
			if g.bare() { // the join failed: do not leave an empty shell behind
				c.removeGroup(g)
			}
		}()
	}
	if !c.acceptJoiningMember(g, j.memberID) {
		if m := g.members[j.memberID]; m != nil {
			c.removeMemberAndUpdate(g, m, "group is full")
		}
		reply(joinError("", kerr.GroupMaxSizeReached.Code))
		return
	}
	if j.memberID == "" {
		c.joinNewMember(g, j, reply)
	} else {
		c.joinExistingMember(g, j, reply)
	}
}

func (c *Coordinator) acceptJoiningMember(g *group, memberID string) bool {
	max := c.cfg.MaxGroupSize
	if max <= 0 {
		return true
	}
	switch g.state {
	case statePreparingRebalance:
		// Counting members awaiting the join (not the group size) lets the
		// last rejoiners be turned away if the limit was lowered.
		m := g.members[memberID]
		return (m != nil && m.join != nil) || g.numAwaitingJoin() < max
	case stateCompletingRebalance, stateStable:
		return g.members[memberID] != nil || len(g.members) < max
	default:
		return true
	}
}

func (c *Coordinator) joinNewMember(g *group, j joinRequest, reply func(joinResult)) {
	if g.state == stateDead {
		// Being deleted: a transient state; the client retries.
		reply(joinError("", kerr.CoordinatorNotAvailable.Code))
		return
	}
	if !g.supportsProtocols(j.protocolType, j.protocols) {
		reply(joinError("", kerr.InconsistentGroupProtocol.Code))
		return
	}
	if j.instanceID != nil {
		newID := *j.instanceID + "-" + uuid.NewString()
		if old, ok := g.static[*j.instanceID]; ok {
			c.rejoinStaticMember(g, j, old, newID, reply)
		} else {
			c.addMember(g, j, newID, reply)
		}
		return
	}
	newID := j.client.id + "-" + uuid.NewString()
	if j.version >= 4 {
		// KIP-394: hand out the id and wait for the member to come back
		// with it; until then it blocks the join phase like a member.
		g.pendingJoin[newID] = c.groupAfter(g, ms(j.sessionMs), func() { c.expirePendingMember(g, newID) })
		reply(joinResult{err: kerr.MemberIDRequired.Code, memberID: newID, generation: -1})
		return
	}
	c.addMember(g, j, newID, reply)
}

func (c *Coordinator) joinExistingMember(g *group, j joinRequest, reply func(joinResult)) {
	id := j.memberID
	if g.state == stateDead {
		reply(joinError(id, kerr.CoordinatorNotAvailable.Code))
		return
	}
	if !g.supportsProtocols(j.protocolType, j.protocols) {
		reply(joinError(id, kerr.InconsistentGroupProtocol.Code))
		return
	}
	if t, ok := g.pendingJoin[id]; ok && j.instanceID == nil {
		c.stop(t)
		c.addMember(g, j, id, reply)
		return
	}
	if code := g.validateMember(id, j.instanceID); code != 0 {
		reply(joinError(id, code))
		return
	}
	m := g.members[id]
	switch g.state {
	case statePreparingRebalance:
		c.updateMemberAndRebalance(g, m, j, reply, "member rejoining")
	case stateCompletingRebalance:
		if m.matches(j.protocols) {
			// Same metadata: the member probably lost our response.
			reply(c.currentJoinResult(g, m, g.leader == id))
		} else {
			c.updateMemberAndRebalance(g, m, j, reply, "member metadata changed")
		}
	case stateStable:
		switch {
		case g.leader == id:
			// A rejoining leader forces a rebalance: that is how it asks for
			// one after metadata changes that do not alter subscriptions.
			c.updateMemberAndRebalance(g, m, j, reply, "leader rejoining")
		case !m.matches(j.protocols):
			c.updateMemberAndRebalance(g, m, j, reply, "member metadata changed")
		default:
			reply(c.currentJoinResult(g, m, false))
		}
	default:
		reply(joinError(id, kerr.UnknownMemberID.Code))
	}
}

func (c *Coordinator) currentJoinResult(g *group, m *member, withMembers bool) joinResult {
	r := joinResult{
		memberID:     m.id,
		generation:   g.generation,
		protocolType: g.protocolTypePtr(),
		protocol:     g.protocolPtr(),
		leader:       g.leader,
	}
	if withMembers {
		r.members = g.currentMembers()
	}
	return r
}

func (g *group) protocolTypePtr() *string {
	if g.protocolType == "" {
		return nil
	}
	s := g.protocolType
	return &s
}

func (g *group) protocolPtr() *string {
	if !g.hasProtocol {
		return nil
	}
	s := g.protocol
	return &s
}

func (c *Coordinator) addMember(g *group, j joinRequest, id string, reply func(joinResult)) {
	m := &member{
		id:           id,
		instanceID:   j.instanceID,
		clientID:     j.client.id,
		clientHost:   j.client.host,
		rebalanceMs:  j.rebalanceMs,
		sessionMs:    j.sessionMs,
		protocolType: j.protocolType,
		protocols:    j.protocols,
		isNew:        true,
	}
	c.setJoin(m, reply)
	if g.state == statePreparingRebalance && g.initialDelay {
		g.newMemberAdded = true
	}
	g.add(m)
	// A new member cannot heartbeat and we cannot see it disconnect while
	// it waits; bound the wait so defunct joiners do not pile up.
	c.scheduleHeartbeat(g, m, c.cfg.NewMemberJoinTimeout)
	c.maybePrepareRebalanceOrCompleteJoin(g, "new member "+id+" joined")
}

func (c *Coordinator) updateMemberAndRebalance(g *group, m *member, j joinRequest, reply func(joinResult), reason string) {
	c.setJoin(m, reply)
	g.updateMember(m, j.protocols, j.rebalanceMs, j.sessionMs)
	c.maybePrepareRebalanceOrCompleteJoin(g, reason+" ("+m.id+")")
}

// rejoinStaticMember handles a static member coming back with an unknown
// member id (a restart): it takes over the old member's place and
// assignment under a new id. In a Stable group whose protocol would not
// change, no rebalance happens: the group is persisted and the member gets
// the current generation back.
func (c *Coordinator) rejoinStaticMember(g *group, j joinRequest, oldID, newID string, reply func(joinResult)) {
	inst := *j.instanceID
	currentLeader := g.leader
	m := c.replaceStatic(g, inst, oldID, newID)
	c.scheduleHeartbeat(g, m, ms(m.sessionMs))
	oldProtocols, oldRebalance, oldSession := m.protocols, m.rebalanceMs, m.sessionMs
	c.setJoin(m, reply)
	g.updateMember(m, j.protocols, j.rebalanceMs, j.sessionMs)

	switch g.state {
	case stateStable:
		if !g.hasProtocol || g.protocol != g.selectProtocol() {
			c.maybePrepareRebalanceOrCompleteJoin(g, "static member "+inst+" rejoined with a protocol change")
			return
		}
		seq := m.joinSeq
		assignments := make(map[string][]byte, len(g.order))
		for _, o := range g.order {
			assignments[o.id] = o.assignment
		}
		c.storeGroup(g, assignments, func(code int16) {
			if g.gone || m.join == nil || m.joinSeq != seq || g.members[newID] != m {
				return // a rebalance or a newer rejoin already answered it
			}
			if code != 0 {
				// Not persisted: put the old member id back.
				w := m.join
				m.join = nil
				g.updateMember(m, oldProtocols, oldRebalance, oldSession)
				c.replaceStatic(g, inst, newID, oldID)
				c.scheduleHeartbeat(g, m, ms(m.sessionMs))
				w(joinResult{
					err:          code,
					generation:   g.generation,
					protocolType: g.protocolTypePtr(),
					protocol:     g.protocolPtr(),
					leader:       currentLeader,
				})
				return
			}
			// The previous leader id is returned on purpose: the rejoined
			// member must not think it leads (and reassign) a Stable group.
			c.answerJoin(m, joinResult{
				memberID:     newID,
				generation:   g.generation,
				protocolType: g.protocolTypePtr(),
				protocol:     g.protocolPtr(),
				leader:       currentLeader,
			})
		})
	case stateCompletingRebalance:
		// The leader may already be assigning to the old id.
		c.prepareRebalance(g, "static member "+inst+" rejoined during CompletingRebalance")
	case statePreparingRebalance:
		c.maybeCompleteJoinPhase(g)
	}
}

// replaceStatic moves a static member to a new member id, fencing anything
// the old id still has parked.
func (c *Coordinator) replaceStatic(g *group, inst, oldID, newID string) *member {
	m := g.members[oldID]
	c.answerJoin(m, joinError(oldID, kerr.FencedInstanceID.Code))
	c.answerSync(m, syncResult{err: kerr.FencedInstanceID.Code})
	delete(g.members, oldID)
	m.id = newID
	g.members[newID] = m
	if g.leader == oldID {
		g.leader = newID
	}
	g.static[inst] = newID
	if _, ok := g.pendingSync[oldID]; ok {
		delete(g.pendingSync, oldID)
		g.pendingSync[newID] = struct{}{}
	}
	return m
}

// setJoin parks a member's JoinGroup. A join it replaces (the client
// retried) is answered so its caller does not hang.
func (c *Coordinator) setJoin(m *member, reply func(joinResult)) {
	if old := m.join; old != nil {
		m.join = nil
		old(joinError(m.id, kerr.RebalanceInProgress.Code))
	}
	m.join = reply
	m.joinSeq++
}

func (c *Coordinator) answerJoin(m *member, r joinResult) bool {
	w := m.join
	if w == nil {
		return false
	}
	m.join = nil
	w(r)
	return true
}

func (c *Coordinator) setSync(m *member, reply func(syncResult)) {
	if old := m.sync; old != nil {
		m.sync = nil
		old(syncResult{err: kerr.RebalanceInProgress.Code})
	}
	m.sync = reply
}

func (c *Coordinator) answerSync(m *member, r syncResult) bool {
	w := m.sync
	if w == nil {
		return false
	}
	m.sync = nil
	w(r)
	return true
}

func (c *Coordinator) maybePrepareRebalanceOrCompleteJoin(g *group, reason string) {
	if g.canRebalance() {
		c.prepareRebalance(g, reason)
	} else {
		c.maybeCompleteJoinPhase(g)
	}
}

func (c *Coordinator) prepareRebalance(g *group, reason string) {
	if g.state == stateCompletingRebalance {
		// Members waiting in SyncGroup must rejoin.
		c.resetAndPropagateAssignmentError(g, kerr.RebalanceInProgress.Code)
	}
	clear(g.pendingSync)
	c.stop(g.syncTimer)
	g.syncTimer = nil
	c.stop(g.joinTimer)
	g.joinTimer = nil

	initial := g.state == stateEmpty && c.cfg.InitialRebalanceDelay > 0
	g.transition(statePreparingRebalance, c.nowMs())
	c.log.Info("preparing to rebalance group", "group", g.id, "generation", g.generation, "reason", reason)
	if initial {
		// A new group: give other members time to show up before the first
		// generation, extended (up to the rebalance timeout) while they do.
		delay := c.cfg.InitialRebalanceDelay
		remaining := max(ms(g.rebalanceTimeoutMs())-delay, 0)
		g.initialDelay, g.newMemberAdded = true, false
		g.joinTimer = c.groupAfter(g, delay, func() { c.initialDelayExpired(g, delay, remaining) })
		return
	}
	if g.hasAllMembersJoined() {
		c.completeJoinPhase(g)
		return
	}
	c.scheduleJoinTimeout(g)
}

func (c *Coordinator) scheduleJoinTimeout(g *group) {
	g.joinTimer = c.groupAfter(g, ms(g.rebalanceTimeoutMs()), func() {
		g.joinTimer = nil
		c.completeJoinPhase(g)
	})
}

func (c *Coordinator) initialDelayExpired(g *group, delay, remaining time.Duration) {
	g.joinTimer = nil
	if g.newMemberAdded && remaining != 0 {
		g.newMemberAdded = false
		next := min(c.cfg.InitialRebalanceDelay, remaining)
		left := max(remaining-delay, 0)
		g.joinTimer = c.groupAfter(g, next, func() { c.initialDelayExpired(g, next, left) })
		return
	}
	g.initialDelay = false
	c.completeJoinPhase(g)
}

// maybeCompleteJoinPhase ends the join phase early once every member (and
// every MEMBER_ID_REQUIRED joiner) is in, except during an initial delay.
func (c *Coordinator) maybeCompleteJoinPhase(g *group) {
	if g.state != statePreparingRebalance || g.initialDelay || !g.hasAllMembersJoined() {
		return
	}
	c.completeJoinPhase(g)
}

// completeJoinPhase drops dynamic members that did not rejoin, starts the
// next generation and answers every parked JoinGroup; the leader gets all
// members' metadata.
func (c *Coordinator) completeJoinPhase(g *group) {
	if g.state != statePreparingRebalance {
		return
	}
	c.stop(g.joinTimer)
	g.joinTimer = nil
	g.initialDelay = false
	for _, m := range slices.Clone(g.order) {
		if m.join == nil && m.instanceID == nil {
			c.log.Info("removing member that did not rejoin in time", "group", g.id, "member", m.id)
			c.removeMember(g, m)
		}
	}
	if !g.maybeElectNewJoinedLeader() && len(g.members) > 0 {
		// Only static members that have not rejoined are left: wait for
		// them (or for their sessions to expire).
		c.log.Warn("group could not complete rebalance because no members rejoined", "group", g.id)
		c.scheduleJoinTimeout(g)
		return
	}
	g.initNextGeneration(c.nowMs())
	if g.state == stateEmpty {
		c.log.Info("group is now empty", "group", g.id, "generation", g.generation)
		c.storeGroup(g, nil, func(code int16) {})
		return
	}
	c.log.Info("stabilized group", "group", g.id, "generation", g.generation,
		"members", len(g.members), "protocol", g.protocol)
	for _, m := range g.order {
		c.answerJoin(m, c.currentJoinResult(g, m, m.id == g.leader))
		c.scheduleHeartbeat(g, m, ms(m.sessionMs))
		m.isNew = false
		g.pendingSync[m.id] = struct{}{}
	}
	gen := g.generation
	g.syncTimer = c.groupAfter(g, ms(g.rebalanceTimeoutMs()), func() {
		g.syncTimer = nil
		c.expirePendingSync(g, gen)
	})
}

// expirePendingSync removes members that never sent SyncGroup for the
// generation and rebalances.
func (c *Coordinator) expirePendingSync(g *group, generation int32) {
	if generation != g.generation || len(g.pendingSync) == 0 {
		return
	}
	if g.state != stateCompletingRebalance && g.state != stateStable {
		return
	}
	for _, m := range slices.Clone(g.order) {
		if _, ok := g.pendingSync[m.id]; ok {
			c.log.Info("removing member that did not sync in time", "group", g.id, "member", m.id)
			c.removeMember(g, m)
		}
	}
	clear(g.pendingSync)
	c.prepareRebalance(g, "members failed to sync")
}

func (c *Coordinator) resetAndPropagateAssignmentError(g *group, code int16) {
	for _, m := range g.order {
		m.assignment = []byte{}
	}
	c.propagateAssignment(g, code)
}

func (c *Coordinator) propagateAssignment(g *group, code int16) {
	var ptype, proto *string
	if code == 0 {
		ptype, proto = g.protocolTypePtr(), g.protocolPtr()
	}
	for _, m := range g.order {
		if c.answerSync(m, syncResult{err: code, protocolType: ptype, protocol: proto, assignment: m.assignment}) {
			// Expiry is ignored while a member waits in SyncGroup; start
			// expecting heartbeats again now.
			c.scheduleHeartbeat(g, m, ms(m.sessionMs))
		}
	}
}

func (c *Coordinator) scheduleHeartbeat(g *group, m *member, d time.Duration) {
	c.stop(m.hb)
	m.hb = c.groupAfter(g, d, func() {
		m.hb = nil
		c.expireHeartbeat(g, m)
	})
}

func (c *Coordinator) expireHeartbeat(g *group, m *member) {
	if g.state == stateDead || g.members[m.id] != m {
		return
	}
	if !m.isNew && (m.join != nil || m.sync != nil) {
		return // waiting on a rebalance counts as alive
	}
	c.log.Info("member session expired", "group", g.id, "member", m.id)
	c.removeMemberAndUpdate(g, m, "session timeout of "+m.id)
}

func (c *Coordinator) expirePendingMember(g *group, id string) {
	if _, ok := g.pendingJoin[id]; !ok {
		return
	}
	delete(g.pendingJoin, id)
	c.log.Info("pending member did not rejoin in time", "group", g.id, "member", id)
	c.maybeCompleteJoinPhase(g)
}

// removeMember drops m and its timer. Parked calls must be answered by the
// caller first.
func (c *Coordinator) removeMember(g *group, m *member) {
	c.stop(m.hb)
	m.hb = nil
	g.remove(m.id)
}

func (c *Coordinator) removeMemberAndUpdate(g *group, m *member, reason string) {
	// A parked JoinGroup learns it must start over.
	c.answerJoin(m, joinError("", kerr.UnknownMemberID.Code))
	c.answerSync(m, syncResult{err: kerr.UnknownMemberID.Code})
	c.removeMember(g, m)
	switch g.state {
	case stateStable, stateCompletingRebalance:
		c.maybePrepareRebalanceOrCompleteJoin(g, reason)
	case statePreparingRebalance:
		c.maybeCompleteJoinPhase(g)
	}
}

// SyncGroup handles SyncGroup v0-v5. The leader's call carries the
// assignment; every member's call blocks until it is persisted.
func (c *Coordinator) SyncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	r := await(c, ctx, func(reply func(syncResult)) { c.syncGroup(req, reply) },
		func() syncResult { return syncResult{err: kerr.CoordinatorNotAvailable.Code} },
		func() syncResult { return syncResult{err: kerr.NotCoordinator.Code} })
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	resp.ErrorCode = r.err
	resp.ProtocolType = r.protocolType
	resp.Protocol = r.protocol
	resp.MemberAssignment = r.assignment
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
	return resp
}

func (c *Coordinator) syncGroup(req *kmsg.SyncGroupRequest, reply func(syncResult)) {
	fail := func(code int16) { reply(syncResult{err: code}) }
	if req.Group == "" {
		fail(kerr.InvalidGroupID.Code)
		return
	}
	if req.Version >= 5 && (req.ProtocolType == nil || req.Protocol == nil) {
		fail(kerr.InconsistentGroupProtocol.Code) // mandatory from v5
		return
	}
	g := c.groups[req.Group]
	switch {
	case g == nil, g.state == stateEmpty:
		fail(kerr.UnknownMemberID.Code)
		return
	case g.state == stateDead:
		fail(kerr.CoordinatorNotAvailable.Code)
		return
	}
	var inst *string
	if req.Version >= 3 {
		inst = req.InstanceID
	}
	if code := g.validateMember(req.MemberID, inst); code != 0 {
		fail(code)
		return
	}
	if req.Generation != g.generation {
		fail(kerr.IllegalGeneration.Code)
		return
	}
	if inconsistent(req.ProtocolType, g.protocolTypePtr()) || inconsistent(req.Protocol, g.protocolPtr()) {
		fail(kerr.InconsistentGroupProtocol.Code)
		return
	}
	m := g.members[req.MemberID]
	switch g.state {
	case statePreparingRebalance:
		fail(kerr.RebalanceInProgress.Code)
	case stateCompletingRebalance:
		c.setSync(m, reply)
		c.removePendingSync(g, m.id)
		if g.leader != m.id {
			return
		}
		assignment := make(map[string][]byte, len(g.members))
		for _, a := range req.GroupAssignment {
			if g.members[a.MemberID] != nil {
				b := bytes.Clone(a.MemberAssignment)
				if b == nil {
					b = []byte{}
				}
				assignment[a.MemberID] = b
			}
		}
		for _, o := range g.order {
			if _, ok := assignment[o.id]; !ok {
				c.log.Warn("leader sent no assignment for member; using an empty one", "group", g.id, "member", o.id)
				assignment[o.id] = []byte{}
			}
		}
		gen := g.generation
		c.storeGroup(g, assignment, func(code int16) {
			// Members may have come or gone while the write was in flight.
			if g.gone || g.state != stateCompletingRebalance || g.generation != gen {
				return
			}
			if code != 0 {
				c.resetAndPropagateAssignmentError(g, code)
				c.maybePrepareRebalanceOrCompleteJoin(g, "failed to store the assignment")
				return
			}
			for _, o := range g.order {
				o.assignment = assignment[o.id]
			}
			c.propagateAssignment(g, 0)
			g.transition(stateStable, c.nowMs())
		})
	case stateStable:
		c.removePendingSync(g, m.id)
		reply(syncResult{protocolType: g.protocolTypePtr(), protocol: g.protocolPtr(), assignment: m.assignment})
		c.scheduleHeartbeat(g, m, ms(m.sessionMs))
	}
}

func inconsistent(req, group *string) bool {
	return req != nil && group != nil && *req != *group
}

func (c *Coordinator) removePendingSync(g *group, id string) {
	delete(g.pendingSync, id)
	if len(g.pendingSync) == 0 || (g.state != stateCompletingRebalance && g.state != stateStable) {
		c.stop(g.syncTimer)
		g.syncTimer = nil
	}
}

// Heartbeat handles Heartbeat v0-v4.
func (c *Coordinator) Heartbeat(ctx context.Context, req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	code := await(c, ctx, func(reply func(int16)) { reply(c.heartbeat(req)) },
		func() int16 { return kerr.CoordinatorNotAvailable.Code },
		func() int16 { return kerr.NotCoordinator.Code })
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	resp.ErrorCode = code
	return resp
}

func (c *Coordinator) heartbeat(req *kmsg.HeartbeatRequest) int16 {
	if req.Group == "" {
		return kerr.InvalidGroupID.Code
	}
	g := c.groups[req.Group]
	if g == nil {
		return kerr.UnknownMemberID.Code
	}
	if g.state == stateDead {
		return kerr.CoordinatorNotAvailable.Code
	}
	var inst *string
	if req.Version >= 3 {
		inst = req.InstanceID
	}
	if code := g.validateMember(req.MemberID, inst); code != 0 {
		return code
	}
	if req.Generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	m := g.members[req.MemberID]
	switch g.state {
	case statePreparingRebalance:
		c.scheduleHeartbeat(g, m, ms(m.sessionMs))
		return kerr.RebalanceInProgress.Code
	case stateCompletingRebalance, stateStable:
		// Heartbeats may start right after the JoinGroup response.
		c.scheduleHeartbeat(g, m, ms(m.sessionMs))
		return 0
	default:
		return kerr.UnknownMemberID.Code
	}
}

// LeaveGroup handles LeaveGroup v0-v5 (v3+: a batch of members, static ones
// removable by instance id alone).
func (c *Coordinator) LeaveGroup(ctx context.Context, req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	leaving := req.Members
	if req.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	results := make([]kmsg.LeaveGroupResponseMember, len(leaving))
	for i, l := range leaving {
		results[i] = kmsg.LeaveGroupResponseMember{MemberID: l.MemberID, InstanceID: l.InstanceID}
	}
	top := await(c, ctx, func(reply func(int16)) { reply(c.leaveGroup(req.Group, leaving, results)) },
		func() int16 { return kerr.CoordinatorNotAvailable.Code },
		func() int16 { return kerr.NotCoordinator.Code })
	resp.ErrorCode = top
	if top != 0 {
		results = nil
	}
	if req.Version >= 3 {
		resp.Members = results
		if resp.Members == nil {
			resp.Members = []kmsg.LeaveGroupResponseMember{}
		}
	} else if top == 0 && len(results) > 0 {
		resp.ErrorCode = results[0].ErrorCode
	}
	return resp
}

// leaveGroup fills results (one per leaving member) and returns the
// request-level error. results belongs to the loop until it returns.
func (c *Coordinator) leaveGroup(id string, leaving []kmsg.LeaveGroupRequestMember, results []kmsg.LeaveGroupResponseMember) int16 {
	if id == "" {
		return kerr.InvalidGroupID.Code
	}
	g := c.groups[id]
	if g == nil {
		for i := range results {
			results[i].ErrorCode = kerr.UnknownMemberID.Code
		}
		return 0
	}
	if g.state == stateDead {
		return kerr.CoordinatorNotAvailable.Code
	}
	left := 0
	for i, l := range leaving {
		var code int16
		switch {
		case l.MemberID == "":
			// Administrative removal by instance id (kafka-consumer-groups).
			if l.InstanceID == nil || g.static[*l.InstanceID] == "" {
				code = kerr.UnknownMemberID.Code
			} else {
				c.removeLeaving(g, g.members[g.static[*l.InstanceID]])
			}
		case g.pendingJoin[l.MemberID] != nil:
			c.stop(g.pendingJoin[l.MemberID])
			delete(g.pendingJoin, l.MemberID)
		default:
			if code = g.validateMember(l.MemberID, l.InstanceID); code == 0 {
				c.removeLeaving(g, g.members[l.MemberID])
			}
		}
		results[i].ErrorCode = code
		if code == 0 {
			left++
		}
	}
	if left > 0 {
		switch g.state {
		case stateStable, stateCompletingRebalance:
			c.maybePrepareRebalanceOrCompleteJoin(g, "members left the group")
		case statePreparingRebalance:
			c.maybeCompleteJoinPhase(g)
		}
	}
	return 0
}

func (c *Coordinator) removeLeaving(g *group, m *member) {
	c.log.Info("member left the group", "group", g.id, "member", m.id)
	c.answerJoin(m, joinError("", kerr.UnknownMemberID.Code))
	c.answerSync(m, syncResult{err: kerr.UnknownMemberID.Code})
	c.removeMember(g, m)
}

// failWaiters answers every parked call of g with code.
func (c *Coordinator) failWaiters(g *group, code int16) {
	for _, m := range g.order {
		c.answerJoin(m, joinError(m.id, code))
		c.answerSync(m, syncResult{err: code})
	}
}

func (c *Coordinator) createGroup(id string) *group {
	g := newGroup(id, c.PartitionFor(id), c.nowMs())
	c.groups[id] = g
	return g
}

// removeGroup forgets g: its timers stop and late callbacks see g.gone.
func (c *Coordinator) removeGroup(g *group) {
	for _, m := range g.order {
		c.stop(m.hb)
		m.hb = nil
	}
	for _, t := range g.pendingJoin {
		c.stop(t)
	}
	c.stop(g.joinTimer)
	c.stop(g.syncTimer)
	g.joinTimer, g.syncTimer = nil, nil
	g.gone = true
	if c.groups[g.id] == g {
		delete(c.groups, g.id)
	}
}

// storeGroup persists the group's metadata (and the given assignments) as
// Kafka's GroupMetadataValue; done gets the Kafka error code.
func (c *Coordinator) storeGroup(g *group, assignment map[string][]byte, done func(code int16)) {
	rec := KV{Key: groupKey(g.id), Value: groupValue(g, assignment)}
	c.append(g.partition, []KV{rec}, func(err error) {
		code := c.errorCode(err, "store group", g.id)
		if code == 0 {
			g.persisted = true
		}
		done(code)
	})
}

func (c *Coordinator) nowMs() int64 { return c.now().UnixMilli() }

func ms(v int32) time.Duration { return time.Duration(v) * time.Millisecond }
