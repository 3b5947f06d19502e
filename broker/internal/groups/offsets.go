package groups

import (
	"cmp"
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetCommit handles OffsetCommit v0-v9. The response is sent only once
// the commit is durable; on a write error nothing changes in memory and
// every partition carries the error.
//
// Topic existence is not checked here (the coordinator knows no topics):
// the broker answers UNKNOWN_TOPIC_OR_PARTITION itself if it wants to.
func (c *Coordinator) OffsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	resp.Topics = make([]kmsg.OffsetCommitResponseTopic, len(req.Topics))
	for i, t := range req.Topics {
		rt := &resp.Topics[i]
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.OffsetCommitResponseTopicPartition, len(t.Partitions))
		for j, p := range t.Partitions {
			rt.Partitions[j].Partition = p.Partition
		}
	}
	// The loop fills resp's error codes before replying; the caller reads
	// them only after the reply.
	code := await(c, ctx, func(reply func(int16)) { c.offsetCommit(req, resp, reply) },
		func() int16 { return kerr.CoordinatorNotAvailable.Code },
		func() int16 { return kerr.NotCoordinator.Code })
	if code != 0 {
		// Either the whole request failed or the caller gave up; in the
		// latter case the loop may still be writing resp, so build a fresh
		// one rather than touching it.
		out := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		out.Topics = make([]kmsg.OffsetCommitResponseTopic, len(req.Topics))
		for i, t := range req.Topics {
			out.Topics[i].Topic = t.Topic
			out.Topics[i].Partitions = make([]kmsg.OffsetCommitResponseTopicPartition, len(t.Partitions))
			for j, p := range t.Partitions {
				out.Topics[i].Partitions[j] = kmsg.OffsetCommitResponseTopicPartition{Partition: p.Partition, ErrorCode: code}
			}
		}
		return out
	}
	return resp
}

// offsetCommit replies a request-level code (applied to every partition by
// the caller) or 0 with per-partition codes written into resp.
func (c *Coordinator) offsetCommit(req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, reply func(int16)) {
	gen, memberID, inst := req.Generation, req.MemberID, req.InstanceID
	if req.Version == 0 { // no generation or member: a "simple" commit
		gen, memberID = -1, ""
	}
	if req.Version < 7 {
		inst = nil
	}
	g := c.groups[req.Group]
	created := false
	if g == nil {
		if gen >= 0 {
			if req.Version >= 9 {
				reply(kerr.GroupIDNotFound.Code)
			} else {
				reply(kerr.IllegalGeneration.Code)
			}
			return
		}
		// Kafka creates an Empty "simple" group for offsets-only users.
		g, created = c.createGroup(req.Group), true
	}
	if code := g.validateOffsetCommit(memberID, inst, gen); code != 0 {
		if created && g.bare() {
			c.removeGroup(g)
		}
		reply(code)
		return
	}
	if m := g.members[memberID]; m != nil && (g.state == stateStable || g.state == statePreparingRebalance) {
		// Commits keep the session alive, as in Kafka.
		c.scheduleHeartbeat(g, m, ms(m.sessionMs))
	}

	now := c.nowMs()
	expireMs := unknownTimestamp
	if req.Version >= 2 && req.Version <= 4 && req.RetentionTimeMillis >= 0 {
		expireMs = now + req.RetentionTimeMillis
	}
	type pending struct {
		tp  topicPartition
		off committed
	}
	var recs []KV
	var applied []pending
	for i, t := range req.Topics {
		for j, p := range t.Partitions {
			out := &resp.Topics[i].Partitions[j]
			if p.Metadata != nil && len(*p.Metadata) > c.cfg.OffsetMetadataMaxBytes {
				out.ErrorCode = kerr.OffsetMetadataTooLarge.Code
				continue
			}
			off := committed{offset: p.Offset, leaderEpoch: -1, commitMs: now, expireMs: expireMs}
			if p.Metadata != nil {
				off.metadata = *p.Metadata
			}
			if req.Version >= 6 {
				off.leaderEpoch = p.LeaderEpoch
			}
			if req.Version == 1 && p.Timestamp != -1 {
				off.commitMs = p.Timestamp
			}
			tp := topicPartition{t.Topic, p.Partition}
			recs = append(recs, KV{Key: offsetKey(g.id, tp), Value: offsetValue(off)})
			applied = append(applied, pending{tp, off})
		}
	}
	if len(recs) == 0 {
		reply(0)
		return
	}
	for _, a := range applied {
		g.pendingCommits[a.tp]++
	}
	c.append(g.partition, recs, func(err error) {
		for _, a := range applied {
			if g.pendingCommits[a.tp]--; g.pendingCommits[a.tp] <= 0 {
				delete(g.pendingCommits, a.tp)
			}
		}
		if code := c.errorCode(err, "commit offsets", g.id); code != 0 {
			for i := range resp.Topics {
				for j := range resp.Topics[i].Partitions {
					if p := &resp.Topics[i].Partitions[j]; p.ErrorCode == 0 {
						p.ErrorCode = code
					}
				}
			}
			if created && g.bare() && !g.gone {
				c.removeGroup(g)
			}
			reply(0)
			return
		}
		// Applied even if the group is being deleted meanwhile: its
		// tombstones were queued after this record, so log and memory
		// agree either way.
		for _, a := range applied {
			g.offsets[a.tp] = a.off
		}
		reply(0)
	})
}

// OffsetFetch handles OffsetFetch v0-v9 (v8+: several groups). A null topic
// list means every committed partition. Unknown partitions get offset -1.
// With RequireStable (v7+) a partition with a pending transactional commit
// answers UNSTABLE_OFFSET_COMMIT (offset -1), as Kafka does (KIP-447).
func (c *Coordinator) OffsetFetch(ctx context.Context, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	type query struct {
		group  string
		all    bool
		topics []kmsg.OffsetFetchRequestTopic
	}
	var qs []query
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			q := query{group: rg.Group, all: rg.Topics == nil}
			for _, t := range rg.Topics {
				q.topics = append(q.topics, kmsg.OffsetFetchRequestTopic{Topic: t.Topic, Partitions: t.Partitions})
			}
			qs = append(qs, q)
		}
	} else {
		qs = append(qs, query{group: req.Group, all: req.Topics == nil, topics: req.Topics})
	}
	results := await(c, ctx, func(reply func([]fetchedGroup)) {
		out := make([]fetchedGroup, len(qs))
		for i, q := range qs {
			out[i] = c.fetchOffsets(q.group, q.all, q.topics, req.Version >= 7 && req.RequireStable)
		}
		reply(out)
	}, func() []fetchedGroup { return nil }, func() []fetchedGroup { return nil })
	if results == nil { // cancelled or closed
		code := kerr.NotCoordinator.Code
		if ctx.Err() != nil {
			code = kerr.CoordinatorNotAvailable.Code
		}
		results = make([]fetchedGroup, len(qs))
		for i := range results {
			results[i].err = code
		}
	}
	if req.Version >= 8 {
		for i, fg := range results {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group = qs[i].group
			rg.ErrorCode = fg.err
			for _, ft := range fg.topics {
				rt := kmsg.NewOffsetFetchResponseGroupTopic()
				rt.Topic = ft.topic
				for _, fp := range ft.partitions {
					rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					rp.Partition, rp.Offset, rp.LeaderEpoch = fp.partition, fp.offset, fp.leaderEpoch
					rp.Metadata, rp.ErrorCode = fp.metadata, fp.err
					rt.Partitions = append(rt.Partitions, rp)
				}
				rg.Topics = append(rg.Topics, rt)
			}
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	}
	fg := results[0]
	resp.ErrorCode = fg.err
	for _, ft := range fg.topics {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = ft.topic
		for _, fp := range ft.partitions {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = fp.partition, fp.offset, fp.leaderEpoch
			rp.Metadata = fp.metadata
			rp.ErrorCode = fp.err
			if req.Version < 2 {
				rp.ErrorCode = fg.err // v0-v1 have no group-level error
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

type fetchedPartition struct {
	partition   int32
	offset      int64
	leaderEpoch int32
	metadata    *string
	err         int16
}

type fetchedTopic struct {
	topic      string
	partitions []fetchedPartition
}

type fetchedGroup struct {
	err    int16
	topics []fetchedTopic
}

func (c *Coordinator) fetchOffsets(id string, all bool, topics []kmsg.OffsetFetchRequestTopic, requireStable bool) fetchedGroup {
	var fg fetchedGroup
	g := c.groups[id]
	if g != nil && g.state == stateDead {
		g = nil // being deleted: as good as gone
	}
	get := func(tp topicPartition) fetchedPartition {
		fp := fetchedPartition{partition: tp.partition, offset: -1, leaderEpoch: -1}
		var meta string
		if g != nil && requireStable && g.pendingTxn(tp) {
			fp.err = kerr.UnstableOffsetCommit.Code
		} else if g != nil {
			if o, ok := g.offsets[tp]; ok {
				fp.offset, fp.leaderEpoch, meta = o.offset, o.leaderEpoch, o.metadata
			}
		}
		fp.metadata = &meta
		return fp
	}
	if !all {
		for _, t := range topics {
			ft := fetchedTopic{topic: t.Topic, partitions: make([]fetchedPartition, 0, len(t.Partitions))}
			for _, p := range t.Partitions {
				ft.partitions = append(ft.partitions, get(topicPartition{t.Topic, p}))
			}
			fg.topics = append(fg.topics, ft)
		}
		return fg
	}
	if g == nil {
		return fg
	}
	tps := make([]topicPartition, 0, len(g.offsets))
	for tp := range g.offsets {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, func(a, b topicPartition) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})
	for _, tp := range tps {
		if n := len(fg.topics); n == 0 || fg.topics[n-1].topic != tp.topic {
			fg.topics = append(fg.topics, fetchedTopic{topic: tp.topic})
		}
		ft := &fg.topics[len(fg.topics)-1]
		ft.partitions = append(ft.partitions, get(tp))
	}
	return fg
}

// OffsetDelete handles OffsetDelete v0: offsets of an Empty group, or of
// topics a consumer group does not subscribe to, are removed (tombstoned).
func (c *Coordinator) OffsetDelete(ctx context.Context, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	resp.Topics = make([]kmsg.OffsetDeleteResponseTopic, len(req.Topics))
	for i, t := range req.Topics {
		resp.Topics[i].Topic = t.Topic
		resp.Topics[i].Partitions = make([]kmsg.OffsetDeleteResponseTopicPartition, len(t.Partitions))
		for j, p := range t.Partitions {
			resp.Topics[i].Partitions[j].Partition = p.Partition
		}
	}
	code := await(c, ctx, func(reply func(int16)) { c.offsetDelete(req, resp, reply) },
		func() int16 { return kerr.CoordinatorNotAvailable.Code },
		func() int16 { return kerr.NotCoordinator.Code })
	if code != 0 {
		out := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
		out.ErrorCode = code
		out.Topics = []kmsg.OffsetDeleteResponseTopic{} // a group error carries no partitions
		return out
	}
	return resp
}

func (c *Coordinator) offsetDelete(req *kmsg.OffsetDeleteRequest, resp *kmsg.OffsetDeleteResponse, reply func(int16)) {
	if req.Group == "" {
		reply(kerr.InvalidGroupID.Code)
		return
	}
	g := c.groups[req.Group]
	if g == nil || g.state == stateDead {
		reply(kerr.GroupIDNotFound.Code)
		return
	}
	if g.state != stateEmpty && g.protocolType != consumerProtocolType {
		reply(kerr.NonEmptyGroup.Code) // only consumer subscriptions can be checked
		return
	}
	var recs []KV
	var deleted []topicPartition
	var eligible []*kmsg.OffsetDeleteResponseTopicPartition
	for i, t := range req.Topics {
		subscribed := g.state != stateEmpty && g.isSubscribedToTopic(t.Topic)
		for j, p := range t.Partitions {
			out := &resp.Topics[i].Partitions[j]
			if subscribed {
				out.ErrorCode = kerr.GroupSubscribedToTopic.Code
				continue
			}
			eligible = append(eligible, out)
			tp := topicPartition{t.Topic, p.Partition}
			_, has := g.offsets[tp]
			if has || g.pendingCommits[tp] > 0 {
				recs = append(recs, KV{Key: offsetKey(g.id, tp)})
				deleted = append(deleted, tp)
			}
		}
	}
	if len(recs) == 0 {
		reply(0)
		return
	}
	c.append(g.partition, recs, func(err error) {
		if code := c.errorCode(err, "delete offsets", g.id); code != 0 {
			for _, out := range eligible {
				out.ErrorCode = code
			}
			reply(0)
			return
		}
		for _, tp := range deleted {
			delete(g.offsets, tp)
		}
		reply(0)
	})
}

// DeleteGroups handles DeleteGroups v0-v2: Empty groups are tombstoned
// (offsets and metadata) and forgotten once that is durable.
func (c *Coordinator) DeleteGroups(ctx context.Context, req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	ids := slices.Clone(req.Groups)
	codes := await(c, ctx, func(reply func([]int16)) { c.deleteGroups(ids, reply) },
		func() []int16 { return nil }, func() []int16 { return nil })
	for i, id := range ids {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = id
		switch {
		case codes != nil:
			rg.ErrorCode = codes[i]
		case ctx.Err() != nil:
			rg.ErrorCode = kerr.CoordinatorNotAvailable.Code
		default:
			rg.ErrorCode = kerr.NotCoordinator.Code
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

func (c *Coordinator) deleteGroups(ids []string, reply func([]int16)) {
	codes := make([]int16, len(ids))
	waiting := 1 // released after the loop below, so reply fires once
	release := func() {
		if waiting--; waiting == 0 {
			reply(codes)
		}
	}
	for i, id := range ids {
		g := c.groups[id]
		switch {
		case g == nil, g.state == stateDead:
			codes[i] = kerr.GroupIDNotFound.Code
		case g.state != stateEmpty:
			codes[i] = kerr.NonEmptyGroup.Code
		default:
			waiting++
			c.deleteGroup(g, func(code int16) {
				codes[i] = code
				release()
			})
		}
	}
	release()
}

// deleteGroup tombstones an Empty group and its offsets. The group is Dead
// while the write is in flight (joins and commits get retriable errors) and
// returns to Empty if the write fails, so memory never gets ahead of the
// log.
func (c *Coordinator) deleteGroup(g *group, done func(code int16)) {
	var recs []KV
	tps := make(map[topicPartition]bool, len(g.offsets)+len(g.pendingCommits))
	for tp := range g.offsets {
		tps[tp] = true
	}
	for tp := range g.pendingCommits {
		tps[tp] = true
	}
	for tp := range tps {
		recs = append(recs, KV{Key: offsetKey(g.id, tp)})
	}
	recs = append(recs, KV{Key: groupKey(g.id)})
	prevState, prevMs := g.prevState, g.stateMs
	g.transition(stateDead, c.nowMs())
	c.append(g.partition, recs, func(err error) {
		code := c.errorCode(err, "delete group", g.id)
		if g.gone {
			done(code)
			return
		}
		if code != 0 {
			g.state, g.prevState, g.stateMs = stateEmpty, prevState, prevMs
			done(code)
			return
		}
		c.log.Info("deleted group", "group", g.id, "offsets", len(tps))
		c.removeGroup(g)
		done(0)
	})
}

func (c *Coordinator) scheduleRetention() {
	c.after(c.cfg.OffsetsRetentionCheckInterval, func() {
		c.expireOffsets()
		c.scheduleRetention()
	})
}

// expireOffsets is Kafka's periodic offset cleanup: offsets older than the
// retention (counted from when the group became Empty, or from the commit
// for offsets-only groups and topics a Stable consumer group no longer
// subscribes to) are tombstoned, and Empty groups left with nothing are
// deleted.
func (c *Coordinator) expireOffsets() {
	now := c.nowMs()
	retention := c.cfg.OffsetsRetention.Milliseconds()
	for _, g := range c.groups {
		if g.state == stateDead {
			continue
		}
		var base func(committed) int64
		var skip map[string]bool
		switch {
		case g.protocolType == "":
			base = func(o committed) int64 { return o.commitMs }
		case g.state == stateEmpty:
			base = func(o committed) int64 {
				if g.stateMs >= 0 {
					return g.stateMs
				}
				return o.commitMs
			}
		case g.protocolType == consumerProtocolType && g.subscribedKnown && g.state == stateStable:
			base = func(o committed) int64 { return o.commitMs }
			skip = g.subscribed
		}
		var expired []topicPartition
		if base != nil {
			for tp, o := range g.offsets {
				if skip[tp.topic] || g.pendingCommits[tp] > 0 {
					continue
				}
				if o.expireMs >= 0 && now >= o.expireMs || o.expireMs < 0 && now-base(o) >= retention {
					expired = append(expired, tp)
				}
			}
		}
		deletable := g.state == stateEmpty && len(g.members) == 0 && len(g.pendingJoin) == 0 &&
			len(g.pendingCommits) == 0 && len(expired) == len(g.offsets)
		switch {
		case deletable && !g.persisted && len(g.offsets) == 0:
			c.removeGroup(g) // nothing in the log to tombstone
		case deletable:
			c.deleteGroup(g, func(int16) {})
		case len(expired) > 0:
			recs := make([]KV, len(expired))
			for i, tp := range expired {
				recs[i] = KV{Key: offsetKey(g.id, tp)}
			}
			c.append(g.partition, recs, func(err error) {
				if c.errorCode(err, "expire offsets", g.id) != 0 {
					return
				}
				for _, tp := range expired {
					delete(g.offsets, tp)
				}
			})
		}
	}
}
