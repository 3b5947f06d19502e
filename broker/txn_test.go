package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/proto"
)

func startTxnServer(t *testing.T) *testServer {
	return startServer(t, func(c *Config) { c.TransactionStateLogNumPartitions = 3 })
}

// consumeValues reads topic from the start with the isolation level until
// the record with value last arrives, and returns every value seen by
// then, in order per partition (partition 0 only is used by these tests).
func consumeValues(t *testing.T, ts *testServer, topic string, level kgo.IsolationLevel, last string) []string {
	t.Helper()
	cl := ts.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []string
	for !slices.Contains(got, last) {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("waiting for %q in %s: got %v", last, topic, got)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch %s: %v", topic, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got
}

func txnProduce(t *testing.T, cl *kgo.Client, topic string, values ...string) {
	t.Helper()
	for _, v := range values {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce %q: %v", v, err)
		}
	}
}

func TestTransactionsCommitAndAbort(t *testing.T) {
	ts := startTxnServer(t)
	ts.createTopic(t, "tx", 1)
	cl := ts.client(t, kgo.TransactionalID("tx-1"))
	ctx := context.Background()
	round := func(end kgo.TransactionEndTry, values ...string) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		txnProduce(t, cl, "tx", values...)
		if err := cl.EndTransaction(ctx, end); err != nil {
			t.Fatalf("end transaction: %v", err)
		}
	}
	round(kgo.TryCommit, "c1", "c2")
	round(kgo.TryAbort, "a1", "a2")
	round(kgo.TryCommit, "c3")

	if got, want := consumeValues(t, ts, "tx", kgo.ReadCommitted(), "c3"), []string{"c1", "c2", "c3"}; !slices.Equal(got, want) {
		t.Fatalf("read_committed got %v, want %v", got, want)
	}
	if got, want := consumeValues(t, ts, "tx", kgo.ReadUncommitted(), "c3"), []string{"c1", "c2", "a1", "a2", "c3"}; !slices.Equal(got, want) {
		t.Fatalf("read_uncommitted got %v, want %v", got, want)
	}

	// The coordinator reports the transaction, completed once its markers
	// are written (EndTxn answers before that).
	adm := kadm.NewClient(ts.client(t))
	waitFor(t, "transaction tx-1 CompleteCommit", func() bool {
		described, err := adm.DescribeTransactions(ctx, "tx-1")
		if err != nil {
			t.Fatal(err)
		}
		d, ok := described["tx-1"]
		if !ok || d.Err != nil {
			t.Fatalf("describe transactions: %+v", described)
		}
		return d.State == "CompleteCommit"
	})
	listed, err := adm.ListTransactions(ctx, nil, []string{"CompleteCommit"})
	if err != nil || len(listed) != 1 {
		t.Fatalf("list transactions: %+v %v", listed, err)
	}
}

func TestTransactionsZombieFenced(t *testing.T) {
	ts := startTxnServer(t)
	ts.createTopic(t, "zt", 1)
	ctx := context.Background()
	zombie := ts.client(t, kgo.TransactionalID("zt-1"))
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	txnProduce(t, zombie, "zt", "zombie-1")

	// A new producer with the same transactional id aborts the zombie's
	// transaction and fences it.
	fresh := ts.client(t, kgo.TransactionalID("zt-1"))
	if err := fresh.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	txnProduce(t, fresh, "zt", "fresh-1")
	if err := fresh.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("fresh producer commit: %v", err)
	}

	err := zombie.ProduceSync(ctx, &kgo.Record{Topic: "zt", Value: []byte("zombie-2")}).FirstErr()
	if endErr := zombie.EndTransaction(ctx, kgo.TryCommit); err == nil {
		err = endErr
	}
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("zombie producer: got %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	got := consumeValues(t, ts, "zt", kgo.ReadCommitted(), "fresh-1")
	if !slices.Equal(got, []string{"fresh-1"}) {
		t.Fatalf("read_committed got %v, want only the fresh producer's record", got)
	}
}

func TestTransactionsConsumeTransformProduce(t *testing.T) {
	ts := startTxnServer(t)
	ts.createTopic(t, "in", 1)
	ts.createTopic(t, "out", 1)
	plain := ts.client(t)
	const n = 20
	for i := range n {
		ts.produce(t, plain, "in", 0, fmt.Sprintf("v%02d", i))
	}
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(ts.addr),
		kgo.TransactionalID("ctp-1"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumerGroup("ctp"),
		kgo.ConsumeTopics("in"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.FetchMaxPartitionBytes(200), // several transactions
	)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done, rounds := 0, 0
	for done < n {
		fs := sess.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("timed out after %d of %d records", done, n)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		var recs []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, &kgo.Record{Topic: "out", Value: []byte(strings.ToUpper(string(r.Value)))})
		})
		if len(recs) == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		if err := sess.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil || !committed {
			t.Fatalf("end: committed %v, %v", committed, err)
		}
		done += len(recs)
		rounds++
	}
	if done != n {
		t.Fatalf("transformed %d records, want %d", done, n)
	}
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("V%02d", i))
	}
	if got := consumeValues(t, ts, "out", kgo.ReadCommitted(), want[n-1]); !slices.Equal(got, want) {
		t.Fatalf("output got %v, want %v", got, want)
	}
	offs, err := kadm.NewClient(plain).FetchOffsets(ctx, "ctp")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("in", 0); !ok || o.Err != nil || o.At != n {
		t.Fatalf("committed offset of in/0: %+v, want %d", o, n)
	}
	t.Logf("%d records in %d transactions", n, rounds)
}

// offsetFetchStable is OffsetFetch v7 with RequireStable for one partition.
func offsetFetchStable(t *testing.T, cl *kgo.Client, group, topic string) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version, req.Group, req.RequireStable = 7, group, true
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: topic, Partitions: []int32{0}}}
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != 0 {
		t.Fatalf("offset fetch: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	p := resp.Topics[0].Partitions[0]
	return p.Offset, p.ErrorCode
}

func TestTransactionalOffsetsStableAndDurable(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *Config) { c.TransactionStateLogNumPartitions = 3; c.DataDir = dir }
	ts := startServer(t, cfg)
	ts.createTopic(t, "in", 1)
	ts.createTopic(t, "out", 1)
	ctx := context.Background()
	cl := ts.client(t, kgo.TransactionalID("raw-1"))

	// commitOffset commits in/0 = off in a transaction producing value.
	commitOffset := func(value string, off int64, end kgo.TransactionEndTry) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		txnProduce(t, cl, "out", value)
		id, epoch, err := cl.ProducerID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		add := kmsg.NewPtrAddOffsetsToTxnRequest()
		add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = "raw-1", id, epoch, "grp"
		if resp, err := add.RequestWith(ctx, cl); err != nil || resp.ErrorCode != 0 {
			t.Fatalf("add offsets to txn: %v %v", err, resp)
		}
		commit := kmsg.NewPtrTxnOffsetCommitRequest()
		commit.Version = 3
		commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch, commit.Generation = "raw-1", "grp", id, epoch, -1
		commit.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "in", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: off, LeaderEpoch: -1}}}}
		resp, err := commit.RequestWith(ctx, cl)
		if err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("txn offset commit: %v %+v", err, resp)
		}
		// Pending until the marker: stable fetches are refused (KIP-447).
		if _, code := offsetFetchStable(t, cl, "grp", "in"); code != kerr.UnstableOffsetCommit.Code {
			t.Fatalf("require stable with a pending commit: code %d", code)
		}
		if err := cl.EndTransaction(ctx, end); err != nil {
			t.Fatal(err)
		}
	}
	stable := func(c *kgo.Client, want int64) {
		t.Helper()
		waitFor(t, fmt.Sprintf("stable offset %d", want), func() bool {
			off, code := offsetFetchStable(t, c, "grp", "in")
			if code != 0 && code != kerr.UnstableOffsetCommit.Code {
				t.Fatalf("offset fetch: %v", kerr.ErrorForCode(code))
			}
			return code == 0 && off == want
		})
	}
	commitOffset("committed", 5, kgo.TryCommit)
	stable(cl, 5)
	commitOffset("aborted", 9, kgo.TryAbort)
	stable(cl, 5)

	// After a restart the log replay decides the offsets the same way,
	// and the transactional id keeps its producer id.
	id, _, _ := cl.ProducerID(ctx)
	cl.Close()
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	ts2 := startServer(t, cfg)
	cl2 := ts2.client(t, kgo.TransactionalID("raw-1"))
	stable(cl2, 5)
	if got := consumeValues(t, ts2, "out", kgo.ReadCommitted(), "committed"); !slices.Equal(got, []string{"committed"}) {
		t.Fatalf("read_committed after restart: %v", got)
	}
	if err := cl2.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	txnProduce(t, cl2, "out", "after-restart")
	if err := cl2.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	id2, epoch2, _ := cl2.ProducerID(ctx)
	if id2 != id || epoch2 < 1 {
		t.Fatalf("after restart producer %d epoch %d, want producer %d with a bumped epoch", id2, epoch2, id)
	}
}

// TestProduceTransactionalBatchChecks: a transactional batch is written
// only inside its producer's ongoing transaction, for a partition the
// transaction added; the producer's plain batches are refused meanwhile.
func TestProduceTransactionalBatchChecks(t *testing.T) {
	ts := startTxnServer(t)
	ts.createTopic(t, "tp", 1)
	rc := ts.raw(t)
	init := kmsg.NewPtrInitProducerIDRequest()
	init.Version, init.TransactionalID, init.TransactionTimeoutMillis = 4, kmsg.StringPtr("p-1"), 60000
	ir := rc.do(init).(*kmsg.InitProducerIDResponse)
	if ir.ErrorCode != 0 {
		t.Fatalf("init producer id: %v", kerr.ErrorForCode(ir.ErrorCode))
	}
	pid, epoch := ir.ProducerID, ir.ProducerEpoch
	txnBatch := func(seq int32, epoch int16, v string) []byte {
		return proto.AppendBatch(nil, proto.BatchSpec{FirstTimestamp: time.Now().UnixMilli(), ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, Transactional: true},
			[]proto.Record{{Value: []byte(v)}})
	}
	produce := func(records []byte) int16 {
		req := produceReq(-1, "tp", 0, records)
		req.TransactionID = kmsg.StringPtr("p-1")
		return producePart(rc.do(req)).ErrorCode
	}
	if code := produce(txnBatch(0, epoch, "early")); code != kerr.InvalidTxnState.Code {
		t.Fatalf("before AddPartitionsToTxn: %d, want INVALID_TXN_STATE", code)
	}
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.Version, add.TransactionalID, add.ProducerID, add.ProducerEpoch = 3, "p-1", pid, epoch
	add.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "tp", Partitions: []int32{0}}}
	if code := rc.do(add).(*kmsg.AddPartitionsToTxnResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("add partitions: %v", kerr.ErrorForCode(code))
	}
	if code := produce(txnBatch(0, epoch+1, "future")); code != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("wrong epoch: %d, want INVALID_PRODUCER_EPOCH", code)
	}
	if code := produce(txnBatch(0, epoch, "in")); code != 0 {
		t.Fatalf("in the transaction: %v", kerr.ErrorForCode(code))
	}
	if code := produce(batchOf(pid, epoch, 1, "plain")); code != kerr.InvalidTxnState.Code {
		t.Fatalf("plain batch inside the transaction: %d, want INVALID_TXN_STATE", code)
	}
	if hw := ts.hw(t, "tp", 0); hw != 1 {
		t.Fatalf("high watermark %d, want 1 (only the transactional batch)", hw)
	}
}
