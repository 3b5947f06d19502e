package txn

import (
	"context"
	"fmt"
	"slices"
)

// sendMarkers writes the markers of t's prepared transaction, retrying
// after RetryBackoff until they are all written, then completes it.
func (c *Coordinator) sendMarkers(t *txn) {
	if t.markers || t.gone || !t.cur.state.preparing() {
		return
	}
	t.markers = true
	ps := c.parts[t.partition]
	m := t.cur
	commit := m.state == StatePrepareCommit
	parts := slices.Clone(m.parts)
	c.async(func() error {
		if len(parts) == 0 {
			return nil
		}
		return c.cfg.Markers.WriteMarkers(ps.ctx, m.producerID, m.epoch, commit, ps.epoch, parts)
	}, func(err error) {
		if t.gone {
			return
		}
		if err != nil {
			c.log.Warn("writing transaction markers failed; retrying", "transactional_id", t.id,
				"producer_id", m.producerID, "epoch", m.epoch, "commit", commit, "err", err)
			c.after(c.cfg.RetryBackoff, func() {
				t.markers = false
				c.sendMarkers(t)
			})
			return
		}
		c.complete(t)
	})
}

// complete writes CompleteCommit/CompleteAbort once the markers are
// written; a failed write is retried (the markers are not rewritten).
func (c *Coordinator) complete(t *txn) {
	if t.gone {
		return
	}
	next := t.cur
	next.state = StateCompleteAbort
	if t.cur.state == StatePrepareCommit {
		next.state = StateCompleteCommit
	}
	next.parts = nil
	next.updateMs = c.now()
	if next.nextProducerID != noProducerID {
		// Transactions v2 epoch exhaustion: the producer moves to the new
		// id, as the EndTxn response already told it.
		next.prevProducerID, next.producerID, next.epoch = next.producerID, next.nextProducerID, 0
		next.nextProducerID = noProducerID
	}
	c.write(t, next, "complete transaction", func(code int16) {
		if code == 0 || t.gone {
			t.markers = false
			return
		}
		c.after(c.cfg.RetryBackoff, func() { c.complete(t) })
	})
}

// abortTimedOut aborts every ongoing transaction older than its timeout,
// bumping the epoch so the producer is fenced (Kafka's
// abortTimedOutTransactions).
func (c *Coordinator) abortTimedOut() {
	now := c.now()
	for _, t := range c.txns {
		m := &t.cur
		if t.pending || m.state != StateOngoing || m.startMs+int64(m.timeoutMs) >= now {
			continue
		}
		if ps := c.parts[t.partition]; ps == nil || ps.loading {
			continue
		}
		c.log.Info("aborting timed-out transaction", "transactional_id", t.id, "producer_id", m.producerID, "epoch", m.epoch)
		c.fenceAbort(t, func(int16) {})
	}
}

// expireIDs removes transactional ids whose producer has not used them for
// transactional.id.expiration.ms, writing a tombstone.
func (c *Coordinator) expireIDs() {
	now := c.now()
	for _, t := range c.txns {
		m := &t.cur
		if t.pending || !m.state.completed() || m.updateMs+c.cfg.IDExpiration.Milliseconds() > now {
			continue
		}
		if ps := c.parts[t.partition]; ps == nil || ps.loading {
			continue
		}
		next := *m
		next.state, next.updateMs = StateDead, now
		c.write(t, next, "expire transactional id", func(int16) {})
	}
}

// LoadPartition makes this coordinator serve __transaction_state partition
// p, as its leader at coordinatorEpoch: it replays the partition, and
// transactions found prepared get their markers written and complete (a
// coordinator failover). Requests for the partition's ids answer
// COORDINATOR_LOAD_IN_PROGRESS meanwhile. Loading again replaces the
// earlier state. Malformed records are logged and skipped.
func (c *Coordinator) LoadPartition(ctx context.Context, p int32, coordinatorEpoch int32) error {
	if p < 0 || p >= c.cfg.Partitions {
		return fmt.Errorf("load __transaction_state-%d: partition out of range [0, %d)", p, c.cfg.Partitions)
	}
	var ps *partState
	if !c.onLoop(ctx, func() {
		c.unload(p)
		pctx, cancel := context.WithCancel(c.ctx)
		ps = &partState{epoch: coordinatorEpoch, loading: true, ctx: pctx, cancel: cancel}
		c.parts[p] = ps
	}) {
		return fmt.Errorf("load __transaction_state-%d: %w", p, ErrNotCoordinator)
	}
	loaded := make(map[string]*meta)
	err := c.cfg.Log.Replay(ctx, p, func(key, value []byte) {
		id, m, ok, err := decodeRecord(key, value)
		switch {
		case err != nil:
			c.log.Warn("skipping __transaction_state record", "partition", p, "err", err)
		case !ok:
		case m == nil || m.state == StateDead:
			delete(loaded, id)
		default:
			loaded[id] = m
		}
	})
	if err != nil {
		c.onLoop(context.Background(), func() {
			if c.parts[p] == ps {
				c.unload(p)
			}
		})
		return fmt.Errorf("load __transaction_state-%d: %w", p, err)
	}
	if !c.onLoop(context.Background(), func() {
		if c.parts[p] != ps {
			return // unloaded or reloaded meanwhile
		}
		for id, m := range loaded {
			if m.state == StatePrepareEpochFence {
				// Never written by Kafka or us; treat as still ongoing so
				// the timeout aborts it.
				m.state = StateOngoing
			}
			t := &txn{id: id, partition: p, cur: *m}
			if old := c.txns[id]; old != nil {
				old.gone = true
			}
			c.txns[id] = t
		}
		ps.loading = false
		for _, t := range c.txns {
			if t.partition == p {
				c.sendMarkers(t)
			}
		}
	}) {
		return fmt.Errorf("load __transaction_state-%d: %w", p, ErrNotCoordinator)
	}
	return nil
}

// Unload stops serving partition p (this broker no longer leads it):
// its transactions leave memory, in-flight writes and marker sends are
// cancelled and their callers get NOT_COORDINATOR. The log is untouched.
func (c *Coordinator) Unload(p int32) {
	c.onLoop(context.Background(), func() { c.unload(p) })
}

func (c *Coordinator) unload(p int32) {
	ps := c.parts[p]
	if ps == nil {
		return
	}
	ps.cancel()
	delete(c.parts, p)
	for id, t := range c.txns {
		if t.partition == p {
			t.gone = true
			delete(c.txns, id)
		}
	}
}

// onLoop runs f on the loop and waits for it; false if the coordinator
// closed (or ctx ended) first.
func (c *Coordinator) onLoop(ctx context.Context, f func()) bool {
	done := make(chan struct{})
	if !c.exec(ctx, func() { f(); close(done) }) {
		return false
	}
	select {
	case <-done:
		return true
	case <-c.done:
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
}
