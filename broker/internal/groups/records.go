package groups

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/internal/loop"
)

// Record layout: Apache Kafka's own __consumer_offsets schema, so Kafka's
// tools (and kmsg) can read what we write. The key's leading int16 says
// what the record is: 0 or 1 an offset commit, 2 group metadata. We write
// key version 1 and value version 3 for commits (value version 1 when the
// commit carries an explicit expiry, as Kafka does), key version 2 and
// value version 3 for group metadata.
const (
	offsetKeyVersion        = 1
	offsetValueVersion      = 3
	offsetValueVersionExpir = 1
	groupKeyVersion         = 2
	groupValueVersion       = 3
)

var errBadRecord = errors.New("malformed __consumer_offsets record")

func offsetKey(group string, tp topicPartition) []byte {
	k := kmsg.OffsetCommitKey{Version: offsetKeyVersion, Group: group, Topic: tp.topic, Partition: tp.partition}
	return k.AppendTo(nil)
}

func offsetValue(o committed) []byte {
	v := kmsg.NewOffsetCommitValue()
	v.Version = offsetValueVersion
	v.Offset = o.offset
	v.LeaderEpoch = o.leaderEpoch
	v.Metadata = o.metadata
	v.CommitTimestamp = o.commitMs
	if o.expireMs >= 0 {
		v.Version = offsetValueVersionExpir
		v.ExpireTimestamp = o.expireMs
	}
	return v.AppendTo(nil)
}

func groupKey(group string) []byte {
	k := kmsg.GroupMetadataKey{Version: groupKeyVersion, Group: group}
	return k.AppendTo(nil)
}

// groupValue encodes the group; assignment overrides the members' current
// assignments (the leader's new one, not yet applied in memory).
func groupValue(g *group, assignment map[string][]byte) []byte {
	v := kmsg.NewGroupMetadataValue()
	v.Version = groupValueVersion
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	v.Protocol = g.protocolPtr()
	if g.leader != "" {
		l := g.leader
		v.Leader = &l
	}
	v.CurrentStateTimestamp = g.stateMs
	for _, m := range g.order {
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID = m.id
		vm.InstanceID = m.instanceID
		vm.ClientID = m.clientID
		vm.ClientHost = m.clientHost
		vm.RebalanceTimeoutMillis = m.rebalanceMs
		vm.SessionTimeoutMillis = m.sessionMs
		vm.Subscription = m.metadata(g.protocol)
		vm.Assignment = m.assignment
		if a, ok := assignment[m.id]; ok {
			vm.Assignment = a
		}
		if vm.Assignment == nil {
			vm.Assignment = []byte{}
		}
		v.Members = append(v.Members, vm)
	}
	return v.AppendTo(nil)
}

// loaded is one decoded record.
type loaded struct {
	group string
	// offset commit (isOffset) or group metadata
	isOffset bool
	tp       topicPartition
	offset   *committed               // nil: tombstone
	meta     *kmsg.GroupMetadataValue // nil: tombstone
}

// decodeRecord parses a __consumer_offsets record. It returns nil, nil for
// record kinds the classic coordinator does not use (e.g. KIP-848 records).
func decodeRecord(key, value []byte) (rec *loaded, err error) {
	defer func() {
		// kmsg is generated code; never let a corrupt record take the
		// broker down at startup.
		if r := recover(); r != nil {
			rec, err = nil, fmt.Errorf("%w: decoder panic: %v", errBadRecord, r)
		}
	}()
	if len(key) < 2 {
		return nil, fmt.Errorf("%w: key of %d bytes", errBadRecord, len(key))
	}
	switch binary.BigEndian.Uint16(key) {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(key); err != nil {
			return nil, fmt.Errorf("%w: offset key: %v", errBadRecord, err)
		}
		rec := &loaded{group: k.Group, isOffset: true, tp: topicPartition{k.Topic, k.Partition}}
		if value == nil {
			return rec, nil
		}
		var v kmsg.OffsetCommitValue
		if err := v.ReadFrom(value); err != nil {
			return nil, fmt.Errorf("%w: offset value for %s: %v", errBadRecord, k.Group, err)
		}
		o := committed{offset: v.Offset, leaderEpoch: -1, metadata: v.Metadata, commitMs: v.CommitTimestamp, expireMs: unknownTimestamp}
		if v.Version >= 3 {
			o.leaderEpoch = v.LeaderEpoch
		}
		if v.Version == 1 {
			o.expireMs = v.ExpireTimestamp
		}
		rec.offset = &o
		return rec, nil
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(key); err != nil {
			return nil, fmt.Errorf("%w: group key: %v", errBadRecord, err)
		}
		rec := &loaded{group: k.Group}
		if value == nil {
			return rec, nil
		}
		v := kmsg.NewGroupMetadataValue()
		if err := v.ReadFrom(value); err != nil {
			return nil, fmt.Errorf("%w: group value for %s: %v", errBadRecord, k.Group, err)
		}
		if v.Version < 2 {
			v.CurrentStateTimestamp = unknownTimestamp
		}
		for i := range v.Members { // value may be a reused read buffer
			v.Members[i].Subscription = bytes.Clone(v.Members[i].Subscription)
			v.Members[i].Assignment = bytes.Clone(v.Members[i].Assignment)
		}
		rec.meta = &v
		return rec, nil
	default:
		return nil, nil
	}
}

// Load replays one record of __consumer_offsets partition p at startup
// (value nil = tombstone), later records overriding earlier ones. Groups
// come back with their members (Stable, members expected to heartbeat
// within their session timeout, as after a Kafka coordinator move) or
// Empty, with their committed offsets. Malformed records are logged and
// skipped.
func (c *Coordinator) Load(p int32, key, value []byte) {
	rec, err := decodeRecord(key, value)
	if err != nil {
		c.log.Warn("skipping __consumer_offsets record", "partition", p, "err", err)
		return
	}
	if rec == nil {
		return
	}
	done := make(chan struct{})
	if !c.exec(context.Background(), func() {
		defer close(done)
		c.load(rec)
	}) {
		return
	}
	select {
	case <-done:
	case <-c.done:
	}
}

func (c *Coordinator) load(rec *loaded) {
	g := c.groups[rec.group]
	if g != nil && g.state == stateDead {
		return // a delete is in flight; its tombstones follow
	}
	if rec.isOffset {
		switch {
		case rec.offset != nil:
			if g == nil {
				g = c.createGroup(rec.group)
			}
			g.offsets[rec.tp] = *rec.offset
		case g != nil:
			delete(g.offsets, rec.tp)
			if g.bare() {
				c.removeGroup(g)
			}
		}
		return
	}
	if rec.meta == nil {
		if g == nil {
			return
		}
		if len(g.offsets) == 0 {
			c.failWaiters(g, kerr.NotCoordinator.Code)
			c.removeGroup(g)
			return
		}
		// Offsets outlive the group's metadata (they have their own
		// tombstones): keep an offsets-only group.
		c.resetMembers(g)
		g.protocolType, g.protocol, g.hasProtocol, g.generation, g.leader = "", "", false, 0, ""
		g.state, g.prevState, g.persisted = stateEmpty, stateDead, false
		g.computeSubscribedTopics()
		return
	}
	v := rec.meta
	if g == nil {
		g = c.createGroup(rec.group)
	}
	c.resetMembers(g)
	if len(v.Members) > 0 && v.Protocol == nil {
		c.log.Warn("group metadata has members but no protocol; loading it empty", "group", rec.group)
		v.Members = nil
	}
	for _, vm := range v.Members {
		rebalance := vm.RebalanceTimeoutMillis
		if rebalance <= 0 {
			rebalance = vm.SessionTimeoutMillis
		}
		m := &member{
			id:           vm.MemberID,
			instanceID:   vm.InstanceID,
			clientID:     vm.ClientID,
			clientHost:   vm.ClientHost,
			rebalanceMs:  rebalance,
			sessionMs:    vm.SessionTimeoutMillis,
			protocolType: v.ProtocolType,
			protocols:    []protocol{{name: *v.Protocol, metadata: vm.Subscription}},
			assignment:   vm.Assignment,
		}
		if m.assignment == nil {
			m.assignment = []byte{}
		}
		g.add(m)
	}
	g.protocolType = v.ProtocolType
	g.generation = v.Generation
	g.protocol, g.hasProtocol = "", false
	if v.Protocol != nil {
		g.protocol, g.hasProtocol = *v.Protocol, true
	}
	g.leader = ""
	if v.Leader != nil && g.members[*v.Leader] != nil {
		g.leader = *v.Leader
	} else if len(g.order) > 0 {
		g.leader = g.order[0].id
	}
	g.prevState, g.state = stateDead, stateEmpty
	if len(g.members) > 0 {
		g.state = stateStable
	}
	g.stateMs = v.CurrentStateTimestamp
	g.persisted = true
	g.computeSubscribedTopics()
	for _, m := range g.order {
		c.scheduleHeartbeat(g, m, ms(m.sessionMs))
	}
}

// resetMembers drops every member (and timer) of g before it is replaced
// by a loaded record.
func (c *Coordinator) resetMembers(g *group) {
	c.failWaiters(g, kerr.NotCoordinator.Code)
	for _, m := range g.order {
		c.stop(m.hb)
	}
	for _, t := range g.pendingJoin {
		c.stop(t)
	}
	c.stop(g.joinTimer)
	c.stop(g.syncTimer)
	g.joinTimer, g.syncTimer = nil, nil
	g.members = make(map[string]*member)
	g.order = nil
	g.static = make(map[string]string)
	g.pendingJoin = make(map[string]*loop.Handle)
	g.pendingSync = make(map[string]struct{})
	g.supported = make(map[string]int)
	g.initialDelay, g.newMemberAdded = false, false
}
