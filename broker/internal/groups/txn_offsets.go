package groups

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TxnOffsetCommit handles TxnOffsetCommit v0-v4 (KIP-98, KIP-447): the
// offsets are written to __consumer_offsets in a transactional batch of the
// producer and kept pending, invisible to OffsetFetch, until CompleteTxn
// learns the transaction's outcome from its marker. The response is sent
// once the records are durable. The transaction coordinator has already
// checked, through AddOffsetsToTxn, that the producer's transaction covers
// this group; topic existence and ACLs are the broker's business.
func (c *Coordinator) TxnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) *kmsg.TxnOffsetCommitResponse {
	fill := func(code int16) *kmsg.TxnOffsetCommitResponse {
		resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		for _, t := range req.Topics {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	if req.ProducerID < 0 || req.ProducerEpoch < 0 {
		return fill(kerr.InvalidProducerIDMapping.Code)
	}
	code := await(c, ctx, func(reply func(int16)) { c.txnOffsetCommit(req, reply) },
		func() int16 { return kerr.CoordinatorNotAvailable.Code },
		func() int16 { return kerr.NotCoordinator.Code })
	return fill(code)
}

func (c *Coordinator) txnOffsetCommit(req *kmsg.TxnOffsetCommitRequest, reply func(int16)) {
	gen, memberID, inst := int32(-1), "", (*string)(nil)
	if req.Version >= 3 {
		gen, memberID, inst = req.Generation, req.MemberID, req.InstanceID
	}
	g := c.groups[req.Group]
	created := false
	if g == nil {
		if gen >= 0 {
			reply(kerr.IllegalGeneration.Code)
			return
		}
		g, created = c.createGroup(req.Group), true
	}
	if g.state == stateDead {
		reply(kerr.CoordinatorNotAvailable.Code)
		return
	}
	if code := g.validateOffsetCommit(memberID, inst, gen); code != 0 {
		if created && g.bare() {
			c.removeGroup(g)
		}
		reply(code)
		return
	}
	now := c.nowMs()
	var recs []KV
	pend := make(map[topicPartition]committed)
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			if p.Metadata != nil && len(*p.Metadata) > c.cfg.OffsetMetadataMaxBytes {
				// Unlike Kafka, which commits the other partitions, the
				// whole request fails: one transactional batch holds all.
				if created && g.bare() {
					c.removeGroup(g)
				}
				reply(kerr.OffsetMetadataTooLarge.Code)
				return
			}
			off := committed{offset: p.Offset, leaderEpoch: -1, commitMs: now, expireMs: unknownTimestamp}
			if p.Metadata != nil {
				off.metadata = *p.Metadata
			}
			if req.Version >= 2 {
				off.leaderEpoch = p.LeaderEpoch
			}
			tp := topicPartition{t.Topic, p.Partition}
			recs = append(recs, KV{Key: offsetKey(g.id, tp), Value: offsetValue(off)})
			pend[tp] = off
		}
	}
	if len(recs) == 0 {
		reply(0)
		return
	}
	pid := req.ProducerID
	c.queue(g.partition, appendOp{recs: recs, txn: true, pid: pid, epoch: req.ProducerEpoch, done: func(err error) {
		if code := c.errorCode(err, "commit transactional offsets", g.id); code != 0 {
			if created && g.bare() && !g.gone {
				c.removeGroup(g)
			}
			reply(code)
			return
		}
		g.addTxnOffsets(pid, pend)
		reply(0)
	}})
}

func (g *group) addTxnOffsets(pid int64, offs map[topicPartition]committed) {
	if g.txnOffsets == nil {
		g.txnOffsets = make(map[int64]map[topicPartition]committed)
	}
	m := g.txnOffsets[pid]
	if m == nil {
		m = make(map[topicPartition]committed, len(offs))
		g.txnOffsets[pid] = m
	}
	for tp, o := range offs {
		m[tp] = o
	}
}

// pendingTxn reports whether a transaction has an undecided offset for tp
// (OffsetFetch RequireStable answers UNSTABLE_OFFSET_COMMIT then).
func (g *group) pendingTxn(tp topicPartition) bool {
	for _, m := range g.txnOffsets {
		if _, ok := m[tp]; ok {
			return true
		}
	}
	return false
}

// CompleteTxn applies a transaction marker written to __consumer_offsets
// partition p: the pending offsets of the producer in that partition's
// groups become committed (commit) or are dropped (abort). The broker calls
// it once the marker is durable, and while replaying the log at startup.
func (c *Coordinator) CompleteTxn(ctx context.Context, p int32, producerID int64, commit bool) error {
	ok := await(c, ctx, func(reply func(bool)) {
		for _, g := range c.groups {
			if g.partition != p || g.txnOffsets == nil {
				continue
			}
			m, found := g.txnOffsets[producerID]
			if !found {
				continue
			}
			delete(g.txnOffsets, producerID)
			if commit && g.state != stateDead {
				for tp, o := range m {
					g.offsets[tp] = o
				}
			}
			if g.bare() {
				c.removeGroup(g)
			}
		}
		reply(true)
	}, func() bool { return false }, func() bool { return false })
	if !ok {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return ErrNotCoordinator
	}
	return nil
}

// LoadTxnOffset replays one record of a transactional batch of producerID
// from __consumer_offsets partition p: an offset commit stays pending until
// the marker that follows it is replayed through CompleteTxn. Other record
// kinds are loaded as Load does.
func (c *Coordinator) LoadTxnOffset(p int32, producerID int64, key, value []byte) {
	rec, err := decodeRecord(key, value)
	if err != nil {
		c.log.Warn("skipping __consumer_offsets record", "partition", p, "err", err)
		return
	}
	if rec == nil {
		return
	}
	c.onLoop(func() {
		if !rec.isOffset || rec.offset == nil {
			c.load(rec)
			return
		}
		g := c.groups[rec.group]
		if g != nil && g.state == stateDead {
			return
		}
		if g == nil {
			g = c.createGroup(rec.group)
		}
		g.addTxnOffsets(producerID, map[topicPartition]committed{rec.tp: *rec.offset})
	})
}

// onLoop runs f on the loop and waits for it (or for Close).
func (c *Coordinator) onLoop(f func()) {
	done := make(chan struct{})
	if !c.exec(context.Background(), func() {
		defer close(done)
		f()
	}) {
		return
	}
	select {
	case <-done:
	case <-c.done:
	}
}
