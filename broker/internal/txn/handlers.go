package txn

import (
	"context"
	"errors"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/internal/coordkey"
)

// oldFenced maps PRODUCER_FENCED to INVALID_PRODUCER_EPOCH for request
// versions that predate KIP-588, as Kafka does: clients before it only
// understand the latter.
func oldFenced(code int16, version, firstFencedVersion int16) int16 {
	if code == kerr.ProducerFenced.Code && version < firstFencedVersion {
		return kerr.InvalidProducerEpoch.Code
	}
	return code
}

// idResult is what a loop step answers; needID asks the caller to allocate
// a producer id off the loop and run the step again with it.
type idResult struct {
	code   int16
	pid    int64
	epoch  int16
	needID bool
}

// withID runs step on the loop, allocating a producer id first if the step
// asks for one. Allocation happens off the loop because it may block on the
// metadata quorum; the second run re-checks everything, so a state change
// in between is harmless (the id is then simply unused, as in Kafka).
func (c *Coordinator) withID(ctx context.Context, step func(newID int64, reply func(idResult))) idResult {
	fail := func(code int16) idResult { return idResult{code: code, pid: noProducerID, epoch: noProducerEpoch} }
	newID := noProducerID
	for {
		r := await(c, ctx, func(reply func(idResult)) { step(newID, reply) }, fail)
		if !r.needID {
			return r
		}
		if newID != noProducerID {
			// Cannot happen: a step given an id uses it.
			return fail(kerr.UnknownServerError.Code)
		}
		id, code := c.nextID(ctx)
		if code != 0 {
			return fail(code)
		}
		newID = id
	}
}

func (c *Coordinator) nextID(ctx context.Context) (int64, int16) {
	id, err := c.cfg.ProducerIDs.NextID(ctx)
	if err == nil {
		return id, 0
	}
	c.log.Warn("producer id allocation failed", "err", err)
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return 0, ke.Code
	}
	// Kafka answers this while its producer id block is not ready; clients
	// retry it.
	return 0, kerr.CoordinatorLoadInProgress.Code
}

// InitProducerID handles InitProducerId v0-5. Without a transactional id it
// hands out a fresh producer id with epoch 0. With one it bumps the epoch
// of a completed transactional id (fencing older producers), rotates to a
// new producer id when the epoch is exhausted, aborts an ongoing
// transaction first (answering CONCURRENT_TRANSACTIONS until that is done)
// and checks the producer id/epoch a v3+ client sends (KIP-360).
func (c *Coordinator) InitProducerID(ctx context.Context, req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	answer := func(r idResult) *kmsg.InitProducerIDResponse {
		resp.ErrorCode = oldFenced(r.code, req.Version, 4)
		resp.ProducerID, resp.ProducerEpoch = noProducerID, noProducerEpoch
		if r.code == 0 {
			resp.ProducerID, resp.ProducerEpoch = r.pid, r.epoch
		}
		return resp
	}
	if req.TransactionalID == nil {
		id, code := c.nextID(ctx)
		return answer(idResult{code: code, pid: id})
	}
	id := *req.TransactionalID
	if id == "" {
		return answer(idResult{code: kerr.InvalidRequest.Code})
	}
	timeout := req.TransactionTimeoutMillis
	if timeout <= 0 || int64(timeout) > c.cfg.MaxTimeout.Milliseconds() {
		return answer(idResult{code: kerr.InvalidTransactionTimeout.Code})
	}
	exp := expected{pid: noProducerID, epoch: noProducerEpoch}
	if req.Version >= 3 {
		exp.pid, exp.epoch = req.ProducerID, req.ProducerEpoch
	}
	switch {
	case exp.pid == noProducerID && exp.epoch == noProducerEpoch:
	case exp.pid >= 0 && exp.epoch >= 0:
		exp.set = true
	default:
		return answer(idResult{code: kerr.InvalidRequest.Code})
	}
	return answer(c.withID(ctx, func(newID int64, reply func(idResult)) {
		c.initStep(id, timeout, exp, newID, reply)
	}))
}

// expected is the producer id and epoch a KIP-360 client already has.
type expected struct {
	set   bool
	pid   int64
	epoch int16
}

func (c *Coordinator) initStep(id string, timeoutMs int32, exp expected, newID int64, reply func(idResult)) {
	if _, code := c.owner(id); code != 0 {
		reply(idResult{code: code})
		return
	}
	t := c.txns[id]
	if t == nil {
		if newID == noProducerID {
			reply(idResult{needID: true})
			return
		}
		t = &txn{id: id, partition: c.PartitionFor(id), fresh: true, cur: meta{
			producerID: newID, prevProducerID: noProducerID, nextProducerID: noProducerID,
			epoch: noProducerEpoch, lastEpoch: noProducerEpoch, timeoutMs: timeoutMs,
			state: StateEmpty, startMs: noTimestamp, updateMs: c.now(),
		}}
		c.txns[id] = t
		newID = noProducerID
	}
	m := &t.cur
	if t.pending {
		reply(idResult{code: kerr.ConcurrentTransactions.Code})
		return
	}
	// A producer whose id moved on is a zombie, unless the metadata is
	// brand new or this is a retry of the rotation it triggered itself.
	if exp.set && !(m.epoch == noProducerEpoch || exp.pid == m.producerID ||
		(exp.pid == m.prevProducerID && epochExhausted(exp.epoch))) {
		reply(idResult{code: kerr.ProducerFenced.Code})
		return
	}
	switch {
	case m.state == StateOngoing:
		// Abort it, bumping the epoch to fence the old producer; the new
		// one retries until the abort has completed.
		c.fenceAbort(t, func(code int16) {
			if code == 0 {
				code = kerr.ConcurrentTransactions.Code
			}
			reply(idResult{code: code})
		})
		return
	case !m.state.completed():
		reply(idResult{code: kerr.ConcurrentTransactions.Code})
		return
	}
	next := *m
	if epochExhausted(m.epoch) && (!exp.set || exp.epoch == m.epoch) {
		if newID == noProducerID {
			reply(idResult{needID: true})
			return
		}
		next.prevProducerID, next.producerID, next.epoch = m.producerID, newID, 0
		next.lastEpoch = noProducerEpoch
		if exp.set {
			next.lastEpoch = m.epoch
		}
	} else {
		switch {
		case !exp.set:
			next.epoch, next.lastEpoch = m.epoch+1, noProducerEpoch
		case m.epoch == noProducerEpoch || exp.epoch == m.epoch:
			next.epoch, next.lastEpoch = m.epoch+1, m.epoch
		case exp.epoch == m.lastEpoch:
			// A retry whose response was lost: hand out the same epoch.
		default:
			reply(idResult{code: kerr.ProducerFenced.Code})
			return
		}
	}
	next.timeoutMs = timeoutMs
	next.state, next.parts, next.startMs, next.updateMs = StateEmpty, nil, noTimestamp, c.now()
	next.nextProducerID = noProducerID
	// Like Kafka, the record of an InitProducerId carries no client
	// transaction version: the producer's next EndTxn (or implicit add)
	// says which it uses.
	next.tv2 = false
	c.write(t, next, "init producer id", func(code int16) {
		reply(idResult{code: code, pid: next.producerID, epoch: next.epoch})
	})
}

// fenceAbort aborts t's ongoing transaction on the coordinator's own
// initiative (timeout or a new producer), bumping the epoch so the old
// producer is fenced: Kafka's PrepareEpochFence, which like Kafka we never
// write; the PrepareAbort record carries the bumped epoch. If the write
// fails nothing changed, and the next attempt bumps from the same epoch.
func (c *Coordinator) fenceAbort(t *txn, done func(code int16)) {
	next := t.cur
	if next.epoch < math.MaxInt16 {
		next.epoch++
	}
	next.lastEpoch = noProducerEpoch
	next.state, next.updateMs = StatePrepareAbort, c.now()
	c.prepare(t, next, "abort on fence", done)
}

// prepare writes a PrepareCommit/PrepareAbort and then starts the markers.
func (c *Coordinator) prepare(t *txn, next meta, op string, done func(code int16)) {
	c.write(t, next, op, func(code int16) {
		done(code)
		if code == 0 {
			c.sendMarkers(t)
		}
	})
}

type addResult struct {
	code   int16
	absent []bool // VerifyOnly: which requested partitions are not in the transaction
}

// AddPartitionsToTxn handles v0-3 (one transaction, from a producer) and
// v4+ (batched, from partition leaders; VerifyOnly checks membership
// without adding, KIP-890 part 1). A v5 request that adds is a partition
// leader adding a partition implicitly for a transactions v2 producer
// (Produce v12, KIP-890 part 2): the transaction is then recorded as v2.
// Whether the topics exist is the broker's business: it answers
// UNKNOWN_TOPIC_OR_PARTITION / OPERATION_NOT_ATTEMPTED itself and calls
// this only for valid partitions.
func (c *Coordinator) AddPartitionsToTxn(ctx context.Context, req *kmsg.AddPartitionsToTxnRequest) *kmsg.AddPartitionsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version < 4 {
		var tps []TopicPartition
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				tps = append(tps, TopicPartition{t.Topic, p})
			}
		}
		r := c.addPartitions(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, tps, false, false)
		code := oldFenced(r.code, req.Version, 2)
		for _, t := range req.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	for _, tx := range req.Transactions {
		var tps []TopicPartition
		for _, t := range tx.Topics {
			for _, p := range t.Partitions {
				tps = append(tps, TopicPartition{t.Topic, p})
			}
		}
		tv2 := req.Version >= 5 && !tx.VerifyOnly
		r := c.addPartitions(ctx, tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tps, tx.VerifyOnly, tv2)
		rtx := kmsg.NewAddPartitionsToTxnResponseTransaction()
		rtx.TransactionalID = tx.TransactionalID
		i := 0
		for _, t := range tx.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
				rp.Partition, rp.ErrorCode = p, r.code
				if r.code == 0 && r.absent != nil && r.absent[i] {
					rp.ErrorCode = kerr.InvalidTxnState.Code
				}
				rt.Partitions = append(rt.Partitions, rp)
				i++
			}
			rtx.Topics = append(rtx.Topics, rt)
		}
		resp.Transactions = append(resp.Transactions, rtx)
	}
	return resp
}

// AddOffsetsToTxn adds the group's __consumer_offsets partition to the
// transaction, so its TxnOffsetCommit is committed or aborted with it.
func (c *Coordinator) AddOffsetsToTxn(ctx context.Context, req *kmsg.AddOffsetsToTxnRequest) *kmsg.AddOffsetsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	tp := TopicPartition{consumerOffsetsTopic, coordkey.Partition(req.Group, c.cfg.OffsetsPartitions)}
	r := c.addPartitions(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, []TopicPartition{tp}, false, false)
	resp.ErrorCode = oldFenced(r.code, req.Version, 2)
	return resp
}

// addPartitions adds tps to the transaction (or, verifyOnly, checks them);
// tv2 marks an implicit add for a transactions v2 producer.
func (c *Coordinator) addPartitions(ctx context.Context, id string, pid int64, epoch int16, tps []TopicPartition, verifyOnly, tv2 bool) addResult {
	if id == "" {
		return addResult{code: kerr.InvalidRequest.Code}
	}
	return await(c, ctx, func(reply func(addResult)) {
		c.addStep(id, pid, epoch, tps, verifyOnly, tv2, reply)
	}, func(code int16) addResult { return addResult{code: code} })
}

func (c *Coordinator) addStep(id string, pid int64, epoch int16, tps []TopicPartition, verifyOnly, tv2 bool, reply func(addResult)) {
	if _, code := c.owner(id); code != 0 {
		reply(addResult{code: code})
		return
	}
	t := c.txns[id]
	switch {
	case t == nil || t.cur.producerID != pid:
		reply(addResult{code: kerr.InvalidProducerIDMapping.Code})
		return
	case t.cur.epoch != epoch:
		reply(addResult{code: kerr.ProducerFenced.Code})
		return
	case t.pending || !(t.cur.state.completed() || t.cur.state == StateOngoing):
		// Completing, or being fenced: retriable.
		reply(addResult{code: kerr.ConcurrentTransactions.Code})
		return
	}
	m := &t.cur
	if verifyOnly {
		absent := make([]bool, len(tps))
		for i, tp := range tps {
			absent[i] = m.state != StateOngoing || !m.has(tp)
		}
		reply(addResult{absent: absent})
		return
	}
	if m.state == StateOngoing && m.hasAll(tps) {
		reply(addResult{})
		return
	}
	next := *m
	if m.state.completed() {
		next.startMs = c.now()
		next.parts = nil
		next.tv2 = tv2
	} else if tv2 {
		next.tv2 = true
	}
	next.parts = next.withParts(tps)
	next.state, next.updateMs = StateOngoing, c.now()
	c.write(t, next, "add partitions", func(code int16) { reply(addResult{code: code}) })
}

// EndTxn handles EndTxn v0-5. The Prepare record is written and the client
// answered; markers follow in the background and the Complete record after
// them (Kafka's order). A retry of the outcome already chosen succeeds once
// complete (CONCURRENT_TRANSACTIONS while the markers are in flight); the
// opposite outcome is INVALID_TXN_STATE. From v5 (transactions v2,
// KIP-890) the epoch is bumped at every commit or abort and the response
// carries the producer id and epoch to use next.
func (c *Coordinator) EndTxn(ctx context.Context, req *kmsg.EndTxnRequest) *kmsg.EndTxnResponse {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	resp.ProducerID, resp.ProducerEpoch = noProducerID, noProducerEpoch
	if req.TransactionalID == "" {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	r := c.withID(ctx, func(newID int64, reply func(idResult)) { c.endStep(req, newID, reply) })
	resp.ErrorCode = oldFenced(r.code, req.Version, 2)
	if r.code == 0 {
		resp.ProducerID, resp.ProducerEpoch = r.pid, r.epoch
	}
	return resp
}

// clientView is the producer id and epoch the producer should use next.
func clientView(m *meta) (int64, int16) {
	if m.nextProducerID != noProducerID {
		return m.nextProducerID, 0
	}
	return m.producerID, m.epoch
}

// v2Retry reports whether a transactions v2 EndTxn from pid and epoch
// repeats the one that took m to its prepared or completed state: its
// epoch is the one before the bump, or, after a producer id rotation, the
// previous id's last epoch. Like Kafka's retryOnEpochBump and
// retryOnOverflow it needs only the durable state, so a retry is
// recognised after a coordinator failover too.
func v2Retry(m *meta, pid int64, epoch int16) bool {
	if !m.tv2 || !(m.state.preparing() || m.state == StateCompleteCommit || m.state == StateCompleteAbort) {
		return false
	}
	bumped := int32(epoch) + 1
	if pid == m.producerID && bumped == int32(m.epoch) {
		return true
	}
	return pid == m.prevProducerID && pid != noProducerID && m.epoch == 0 &&
		bumped <= math.MaxInt16 && epochExhausted(int16(bumped))
}

func (c *Coordinator) endStep(req *kmsg.EndTxnRequest, newID int64, reply func(idResult)) {
	id := req.TransactionalID
	if _, code := c.owner(id); code != 0 {
		reply(idResult{code: code})
		return
	}
	t := c.txns[id]
	if t == nil {
		reply(idResult{code: kerr.InvalidProducerIDMapping.Code})
		return
	}
	m := &t.cur
	tv2 := req.Version >= 5
	commit := req.Commit
	prepared, completed := StatePrepareAbort, StateCompleteAbort
	if commit {
		prepared, completed = StatePrepareCommit, StateCompleteCommit
	}
	ok := func() {
		pid, ep := clientView(m)
		reply(idResult{pid: pid, epoch: ep})
	}
	fail := func(code int16) { reply(idResult{code: code}) }

	// Transactions v2: a retry carries the epoch from before the bump.
	if tv2 && v2Retry(m, req.ProducerID, req.ProducerEpoch) {
		switch {
		case t.pending:
			fail(kerr.ConcurrentTransactions.Code)
		case m.state == completed:
			ok()
		case m.state == prepared:
			fail(kerr.ConcurrentTransactions.Code)
		case commit:
			// The coordinator aborted it (timeout) while this commit
			// was on its way: the producer is fenced, which clients
			// recover from, as Kafka answers since KAFKA-20785.
			fail(kerr.ProducerFenced.Code)
		default:
			fail(kerr.InvalidTxnState.Code)
		}
		return
	}
	switch {
	case req.ProducerID != m.producerID:
		fail(kerr.InvalidProducerIDMapping.Code)
		return
	case req.ProducerEpoch != m.epoch:
		fail(kerr.ProducerFenced.Code)
		return
	case t.pending:
		fail(kerr.ConcurrentTransactions.Code)
		return
	}
	switch m.state {
	case StateOngoing:
	case prepared:
		fail(kerr.ConcurrentTransactions.Code)
		return
	case StateCompleteCommit, StateCompleteAbort, StateEmpty:
		switch {
		case m.state == completed && (commit || !tv2):
			ok() // the same outcome again: idempotent
			return
		case tv2 && !commit:
			// KIP-890: a v2 producer may abort a transaction the
			// coordinator never saw (its produce failed); bump the epoch
			// so it starts afresh.
		default:
			fail(kerr.InvalidTxnState.Code)
			return
		}
	case StatePrepareCommit, StatePrepareAbort:
		if tv2 {
			// The epoch the previous EndTxn handed out: this ends the
			// producer's next transaction, which must wait until the
			// previous one's markers are written (Kafka answers so
			// while the completion is pending, KAFKA-18464).
			fail(kerr.ConcurrentTransactions.Code)
			return
		}
		fail(kerr.InvalidTxnState.Code)
		return
	default:
		fail(kerr.ConcurrentTransactions.Code)
		return
	}
	next := *m
	next.state, next.updateMs, next.tv2 = prepared, c.now(), tv2
	next.nextProducerID = noProducerID
	if !commit && m.state.completed() {
		next.parts = nil
	}
	if tv2 {
		next.lastEpoch = m.epoch
		next.epoch = m.epoch + 1
		if epochExhausted(next.epoch) {
			if newID == noProducerID {
				reply(idResult{needID: true})
				return
			}
			next.nextProducerID = newID
		}
	}
	c.prepare(t, next, "end transaction", func(code int16) {
		pid, ep := clientView(&next)
		reply(idResult{code: code, pid: pid, epoch: ep})
	})
}
