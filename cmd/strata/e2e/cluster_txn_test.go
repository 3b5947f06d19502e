package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestClusterTransactions runs a transactional producer against three
// brokers with an RF=3 topic whose partitions have different leaders, so
// the leaders verify its batches with a transaction coordinator on
// another broker and the coordinator sends its markers to other brokers.
// Transactions are committed and aborted, then one is committed after its
// coordinator was killed (the new coordinator finishes it). A
// read_committed consumer must see exactly the committed records, in
// order, once each; the aborted ones are in the logs but never read.
func TestClusterTransactions(t *testing.T) {
	const (
		topic      = "txn-cluster"
		partitions = 3
		txnID      = "cluster-txn"
	)
	c := startCluster(t, 3, "--set", "transaction.state.log.num.partitions=3")
	ctx := testContext(t, 150*time.Second)
	adm := c.Admin()
	createReplicatedTopic(ctx, t, adm, topic, partitions, 3, nil)
	c.waitFullISR(ctx, 30*time.Second, topic)
	view, err := c.partitionFromAny(ctx, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	leaders := map[int32]bool{view.Leader: true}
	for p := int32(1); p < partitions; p++ {
		v, err := c.partitionFromAny(ctx, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		leaders[v.Leader] = true
	}
	if len(leaders) < 2 {
		t.Fatalf("every partition of %s is led by the same broker (%v): the test needs leaders on different brokers", topic, leaders)
	}

	prod := c.Client(
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(60*time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.DefaultProduceTopic(topic),
	)
	want := make([][]string, partitions)
	var aborted []string
	// txnRound produces n records to every partition in one transaction,
	// running between (if not nil) after the records are acknowledged and
	// before the transaction ends.
	txnRound := func(name string, commit bool, between func()) {
		t.Helper()
		if err := prod.BeginTransaction(); err != nil {
			t.Fatalf("%s: begin: %v", name, err)
		}
		var vals [partitions][]string
		var recs []*kgo.Record
		for p := range int32(partitions) {
			for i := range 4 {
				v := fmt.Sprintf("%s/p%d/%d", name, p, i)
				vals[p] = append(vals[p], v)
				recs = append(recs, &kgo.Record{Partition: p, Value: []byte(v)})
			}
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("%s: produce: %v", name, err)
		}
		if between != nil {
			between()
		}
		end := kgo.TryAbort
		if commit {
			end = kgo.TryCommit
		}
		if err := prod.EndTransaction(ctx, end); err != nil {
			t.Fatalf("%s: end (commit %v): %v", name, commit, err)
		}
		for p := range partitions {
			if commit {
				want[p] = append(want[p], vals[p]...)
			} else {
				aborted = append(aborted, vals[p]...)
			}
		}
	}
	for round := range 6 {
		txnRound(fmt.Sprintf("r%d", round), round%3 != 1, nil)
	}

	// Kill the transaction's coordinator while the transaction is open:
	// its successor loads the transaction and commits it.
	coord := c.txnCoordinator(ctx, txnID)
	t.Logf("transaction coordinator of %q: node %d; partition leaders %v", txnID, coord, leaders)
	victim := c.Node(coord)
	txnRound("after-kill", true, func() {
		victim.Kill()
	})
	victim.restartIn(c)
	txnRound("final", true, nil)

	got := readCommitted(ctx, t, c, topic, partitions, want)
	for p := range partitions {
		if !slices.Equal(got[p], want[p]) {
			t.Errorf("partition %d: read_committed got %d records %v\nwant %d %v", p, len(got[p]), got[p], len(want[p]), want[p])
		}
		for _, v := range got[p] {
			if slices.Contains(aborted, v) {
				t.Errorf("partition %d: read_committed returned aborted record %q", p, v)
			}
		}
	}
	c.checkNoSplitBrain()
}

// txnCoordinator is the node a live broker names as the transaction
// coordinator of id.
func (c *testCluster) txnCoordinator(ctx context.Context, id string) int32 {
	c.t.Helper()
	var coord int32
	waitUpTo(ctx, c.t, 30*time.Second, "the transaction coordinator of "+id, func() (bool, string) {
		for _, nd := range c.live() {
			req := kmsg.NewPtrFindCoordinatorRequest()
			req.Version, req.CoordinatorType, req.CoordinatorKeys = 4, 1, []string{id}
			kr, err := nd.request(ctx, req)
			if err != nil {
				continue
			}
			resp := kr.(*kmsg.FindCoordinatorResponse)
			if len(resp.Coordinators) == 1 && resp.Coordinators[0].ErrorCode == 0 {
				coord = resp.Coordinators[0].NodeID
				return true, ""
			} else if len(resp.Coordinators) == 1 {
				return false, kerr.ErrorForCode(resp.Coordinators[0].ErrorCode).Error()
			}
		}
		return false, "no live node answered"
	})
	return coord
}

// readCommitted reads topic from the start at read_committed until every
// partition has at least as many records as want says, or fails the test.
func readCommitted(ctx context.Context, t *testing.T, c *testCluster, topic string, partitions int, want [][]string) [][]string {
	t.Helper()
	cl := c.Client(
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	got := make([][]string, partitions)
	done := func() bool {
		for p := range partitions {
			if len(got[p]) < len(want[p]) {
				return false
			}
		}
		return true
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for !done() {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			counts, wantCounts := make([]int, partitions), make([]int, partitions)
			for p := range partitions {
				counts[p], wantCounts[p] = len(got[p]), len(want[p])
			}
			t.Fatalf("read_committed consumer got %v records per partition, want %v (markers missing?)", counts, wantCounts)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Logf("fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got[r.Partition] = append(got[r.Partition], string(r.Value)) })
	}
	// Anything past what was committed would be a bug too: one more poll
	// picks up what the broker had ready.
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	defer pcancel()
	cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { got[r.Partition] = append(got[r.Partition], string(r.Value)) })
	return got
}
