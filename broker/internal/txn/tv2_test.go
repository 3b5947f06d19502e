package txn

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Transactions v2 (KIP-890 part 2): the partition leader adds partitions
// with AddPartitionsToTxn v5 on the producer's behalf (Produce v12), and
// every EndTxn v5 bumps the epoch.

// implicitAdd is what a partition leader sends for a Produce v12 batch.
func (h *harness) implicitAdd(id string, pid int64, epoch int16, tps ...TopicPartition) int16 {
	h.t.Helper()
	r := kmsg.NewPtrAddPartitionsToTxnRequest()
	r.Version = 5
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch = id, pid, epoch
	for _, tp := range tps {
		rt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
		rt.Topic, rt.Partitions = tp.Topic, []int32{tp.Partition}
		tx.Topics = append(tx.Topics, rt)
	}
	r.Transactions = append(r.Transactions, tx)
	resp := h.c.AddPartitionsToTxn(h.ctx, r)
	code := resp.Transactions[0].Topics[0].Partitions[0].ErrorCode
	for _, t := range resp.Transactions[0].Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != code {
				h.t.Fatalf("partitions answered differently: %+v", resp.Transactions)
			}
		}
	}
	return code
}

func TestTV2EpochBumpsAtEveryEnd(t *testing.T) {
	h := newHarness(t)
	const id = "tx"
	pid, e := h.mustInit(id)
	for i, commit := range []bool{true, false, true} {
		if code := h.implicitAdd(id, pid, e, tp("a", 0), tp("b", 1)); code != 0 {
			t.Fatalf("round %d: implicit add: %d", i, code)
		}
		if s := h.state(id); s != "Ongoing" {
			t.Fatalf("round %d: state %s after the implicit add", i, s)
		}
		r := h.end(5, id, pid, e, commit)
		if r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != e+1 {
			t.Fatalf("round %d: end %+v, want epoch %d", i, r, e+1)
		}
		h.sync()
		calls := h.markers.all()
		last := calls[len(calls)-1]
		if len(calls) != i+1 || last.epoch != e+1 || last.commit != commit ||
			!reflect.DeepEqual(last.parts, []TopicPartition{tp("a", 0), tp("b", 1)}) {
			t.Fatalf("round %d: markers must carry the bumped epoch: %+v", i, calls)
		}
		want := "CompleteAbort"
		if commit {
			want = "CompleteCommit"
		}
		if s := h.state(id); s != want {
			t.Fatalf("round %d: state %s want %s", i, s, want)
		}
		hist := h.log.history(t, id)
		if m := hist[len(hist)-1]; !m.tv2 || m.epoch != e+1 || m.producerID != pid {
			t.Fatalf("round %d: complete record %+v", i, m)
		}
		e = r.ProducerEpoch
	}
	// The record of the implicit add says transactions v2 too, so a
	// coordinator that takes over knows which rules apply.
	if code := h.implicitAdd(id, pid, e, tp("a", 0)); code != 0 {
		t.Fatal(code)
	}
	hist := h.log.history(t, id)
	if m := hist[len(hist)-1]; m.state != StateOngoing || !m.tv2 {
		t.Fatalf("ongoing record %+v", m)
	}
	h.restart()
	if r := h.end(5, id, pid, e, true); r.ErrorCode != 0 || r.ProducerEpoch != e+1 {
		t.Fatalf("end after failover: %+v", r)
	}
}

func TestTV2OldEpochIsFenced(t *testing.T) {
	h := newHarness(t)
	const id = "tx"
	pid, e := h.mustInit(id)
	h.implicitAdd(id, pid, e, tp("a", 0))
	if r := h.end(5, id, pid, e, true); r.ErrorCode != 0 {
		t.Fatal(r.ErrorCode)
	}
	h.sync()
	// A zombie still at the old epoch can neither add (its produce is
	// refused) nor start a transaction with AddOffsetsToTxn.
	if code := h.implicitAdd(id, pid, e, tp("a", 0)); code != kerr.ProducerFenced.Code {
		t.Fatalf("zombie implicit add: %d", code)
	}
	if code := h.addOffsets(3, id, pid, e, "g"); code != kerr.ProducerFenced.Code {
		t.Fatalf("zombie add offsets: %d", code)
	}
	// Once the live producer has moved on, the old epoch is no longer a
	// retry of the last EndTxn: fenced.
	if code := h.implicitAdd(id, pid, e+1, tp("a", 0)); code != 0 {
		t.Fatal(code)
	}
	if r := h.end(5, id, pid, e, true); r.ErrorCode != kerr.ProducerFenced.Code {
		t.Fatalf("stale end during the next transaction: %+v", r)
	}
	// A retry of an EndTxn whose answer was lost gets the same answer.
	if r := h.end(5, id, pid, e+1, false); r.ErrorCode != 0 || r.ProducerEpoch != e+2 {
		t.Fatalf("abort: %+v", r)
	}
	h.sync()
	if r := h.end(5, id, pid, e+1, false); r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != e+2 {
		t.Fatalf("retried abort: %+v", r)
	}
	// A commit at the epoch an abort bumped cannot tell the producer's own
	// abort from a timeout's: fenced, as Kafka answers (KAFKA-20785).
	if r := h.end(5, id, pid, e+1, true); r.ErrorCode != kerr.ProducerFenced.Code {
		t.Fatalf("commit retry of an abort: %+v", r)
	}
	// A new producer instance fences everyone (InitProducerId bumps too).
	r := h.init(5, id, -1, -1)
	if r.ErrorCode != 0 || r.ProducerEpoch != e+3 {
		t.Fatalf("init: %+v", r)
	}
	if code := h.implicitAdd(id, pid, e+2, tp("a", 0)); code != kerr.ProducerFenced.Code {
		t.Fatalf("add after a new init: %d", code)
	}
	if hist := h.log.history(t, id); hist[len(hist)-1].tv2 {
		t.Fatalf("an init record carries no client transaction version: %+v", hist[len(hist)-1])
	}
}

func TestTV2NextTransactionWaitsForMarkers(t *testing.T) {
	h := newHarness(t)
	const id = "tx"
	pid, e := h.mustInit(id)
	h.implicitAdd(id, pid, e, tp("a", 0))
	release := make(chan struct{})
	h.markers.setBlock(release)
	if r := h.end(5, id, pid, e, true); r.ErrorCode != 0 || r.ProducerEpoch != e+1 {
		t.Fatalf("end: %+v", r)
	}
	// The producer already has the next epoch; everything of its next
	// transaction waits until the markers are written, so no batch of it
	// can land before the previous transaction's marker.
	during := []struct {
		name string
		call func() int16
		want int16
	}{
		{"implicit add", func() int16 { return h.implicitAdd(id, pid, e+1, tp("a", 0)) }, kerr.ConcurrentTransactions.Code},
		{"add offsets", func() int16 { return h.addOffsets(3, id, pid, e+1, "g") }, kerr.ConcurrentTransactions.Code},
		{"empty abort", func() int16 { return h.end(5, id, pid, e+1, false).ErrorCode }, kerr.ConcurrentTransactions.Code},
		{"retried commit", func() int16 { return h.end(5, id, pid, e, true).ErrorCode }, kerr.ConcurrentTransactions.Code},
		{"zombie", func() int16 { return h.implicitAdd(id, pid, e, tp("a", 0)) }, kerr.ProducerFenced.Code},
	}
	for _, tc := range during {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.call(); got != tc.want {
				t.Fatalf("got %d want %d", got, tc.want)
			}
		})
	}
	h.markers.setBlock(nil)
	close(release)
	h.sync()
	if code := h.implicitAdd(id, pid, e+1, tp("a", 0)); code != 0 {
		t.Fatalf("implicit add after completion: %d", code)
	}
}

func TestTV2EmptyAbortBumpsWithoutMarkers(t *testing.T) {
	h := newHarness(t)
	const id = "tx"
	pid, e := h.mustInit(id)
	// A v2 producer whose produces all failed aborts a transaction the
	// coordinator never saw: it succeeds and bumps the epoch.
	r := h.end(5, id, pid, e, false)
	if r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != e+1 {
		t.Fatalf("empty abort: %+v", r)
	}
	h.sync()
	if s := h.state(id); s != "CompleteAbort" {
		t.Fatalf("state %s", s)
	}
	if calls := h.markers.all(); len(calls) != 0 {
		t.Fatalf("an empty abort writes no markers: %+v", calls)
	}
	// Transactions v1 keeps Kafka's answer for an EndTxn with nothing in
	// the transaction.
	if r := h.end(4, id, pid, e+1, false); r.ErrorCode != 0 {
		t.Fatalf("v1 abort of a completed abort is idempotent: %+v", r)
	}
	if r := h.end(4, id, pid, e+1, true); r.ErrorCode != kerr.InvalidTxnState.Code {
		t.Fatalf("v1 commit after abort: %+v", r)
	}
	if r := h.end(5, id, pid, e, false); r.ErrorCode != 0 || r.ProducerEpoch != e+1 {
		t.Fatalf("retried empty abort: %+v", r)
	}
}

func TestTV2EpochOverflowRotatesProducerID(t *testing.T) {
	h := newHarness(t)
	const id = "tx"
	const old = int64(77)
	e := int16(math.MaxInt16 - 2)
	h.seed(id, meta{producerID: old, epoch: e, state: StateCompleteCommit})
	if code := h.implicitAdd(id, old, e, tp("a", 0)); code != 0 {
		t.Fatal(code)
	}
	r := h.end(5, id, old, e, true)
	if r.ErrorCode != 0 || r.ProducerID == old || r.ProducerID < 0 || r.ProducerEpoch != 0 {
		t.Fatalf("end at the last epoch must hand out a new producer id: %+v", r)
	}
	newID := r.ProducerID
	h.sync()
	calls := h.markers.all()
	if len(calls) != 1 || calls[0].pid != old || calls[0].epoch != e+1 {
		t.Fatalf("markers are written for the old id with the bumped epoch: %+v", calls)
	}
	hist := h.log.history(t, id)
	if m := hist[len(hist)-2]; m.state != StatePrepareCommit || m.producerID != old || m.nextProducerID != newID {
		t.Fatalf("prepare record %+v", m)
	}
	if m := hist[len(hist)-1]; m.state != StateCompleteCommit || m.producerID != newID || m.epoch != 0 || m.prevProducerID != old {
		t.Fatalf("complete record %+v", m)
	}
	// A retry with the old id and epoch gets the new id again, also after
	// a failover (the previous id is in the record).
	h.restart()
	if r := h.end(5, id, old, e, true); r.ErrorCode != 0 || r.ProducerID != newID || r.ProducerEpoch != 0 {
		t.Fatalf("retry: %+v", r)
	}
	if code := h.implicitAdd(id, old, e+1, tp("a", 0)); code != kerr.InvalidProducerIDMapping.Code {
		t.Fatalf("old id after rotation: %d", code)
	}
	if code := h.implicitAdd(id, newID, 0, tp("a", 0)); code != 0 {
		t.Fatalf("new id: %d", code)
	}
}

func TestTV2TimeoutAbortFencesInFlightCommit(t *testing.T) {
	h := newHarness(t)
	const id = "tx"
	pid, e := h.mustInit(id) // timeout 60 s
	h.implicitAdd(id, pid, e, tp("a", 0))
	h.clk.Advance(70 * time.Second) // checked every 10 s
	if s := h.state(id); s != "CompleteAbort" {
		t.Fatalf("state %s after the timeout", s)
	}
	calls := h.markers.all()
	if len(calls) != 1 || calls[0].commit || calls[0].epoch != e+1 {
		t.Fatalf("markers %+v", calls)
	}
	// The commit the producer sent meanwhile is fenced (recoverable), not
	// INVALID_TXN_STATE (fatal to clients).
	if r := h.end(5, id, pid, e, true); r.ErrorCode != kerr.ProducerFenced.Code {
		t.Fatalf("commit after the timeout abort: %+v", r)
	}
	if code := h.implicitAdd(id, pid, e, tp("a", 0)); code != kerr.ProducerFenced.Code {
		t.Fatalf("produce after the timeout abort: %d", code)
	}
}
