package broker

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-broker/strata/proto"
)

// Transactions v2 (KIP-890 part 2) end to end with franz-go, which uses it
// because the broker finalizes transaction.version 2 (from its first
// transaction: it learns the feature when it initializes its producer id).

// keyCounter counts the requests a client writes, by API key.
type keyCounter struct {
	mu sync.Mutex
	n  map[int16]int
}

func (k *keyCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.n == nil {
		k.n = map[int16]int{}
	}
	k.n[key]++
}

func (k *keyCounter) count(key kmsg.Key) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.n[int16(key)]
}

func TestApiVersionsAdvertisesTransactionVersion(t *testing.T) {
	ts := startServer(t)
	rc := ts.raw(t)
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1"
	resp := rc.do(req).(*kmsg.ApiVersionsResponse)
	if resp.FinalizedFeaturesEpoch < 0 {
		t.Fatalf("finalized features epoch %d: clients would ignore the features", resp.FinalizedFeaturesEpoch)
	}
	var supported, finalized bool
	for _, f := range resp.SupportedFeatures {
		supported = supported || (f.Name == "transaction.version" && f.MinVersion == 0 && f.MaxVersion == 2)
	}
	for _, f := range resp.FinalizedFeatures {
		finalized = finalized || (f.Name == "transaction.version" && f.MaxVersionLevel == 2)
	}
	if !supported || !finalized {
		t.Fatalf("transaction.version 2 not advertised: %+v / %+v", resp.SupportedFeatures, resp.FinalizedFeatures)
	}
	// v5 (KIP-1242): a client that reached the wrong broker is told to
	// rebootstrap.
	v5 := kmsg.NewPtrApiVersionsRequest()
	v5.Version, v5.ClientSoftwareName, v5.ClientSoftwareVersion = 5, "test", "1"
	v5.ClusterID, v5.NodeID = kmsg.StringPtr(ts.meta.ClusterID()), ts.cfg.NodeID
	if r := rc.do(v5).(*kmsg.ApiVersionsResponse); r.ErrorCode != 0 || len(r.FinalizedFeatures) == 0 {
		t.Fatalf("v5 naming this broker: %v, features %+v", kerr.ErrorForCode(r.ErrorCode), r.FinalizedFeatures)
	}
	v5.NodeID = ts.cfg.NodeID + 1
	if r := rc.do(v5).(*kmsg.ApiVersionsResponse); r.ErrorCode != kerr.RebootstrapRequired.Code {
		t.Fatalf("v5 naming another broker: %v, want REBOOTSTRAP_REQUIRED", kerr.ErrorForCode(r.ErrorCode))
	}
	v5.ClusterID = nil
	if r := rc.do(v5).(*kmsg.ApiVersionsResponse); r.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("v5 with a node id only: %v, want INVALID_REQUEST", kerr.ErrorForCode(r.ErrorCode))
	}
	// What transactions v2 needs must be served with it.
	need := map[int16]int16{int16(kmsg.Produce): 12, int16(kmsg.EndTxn): 5, int16(kmsg.AddPartitionsToTxn): 5}
	for _, k := range resp.ApiKeys {
		if v, ok := need[k.ApiKey]; ok && k.MaxVersion >= v {
			delete(need, k.ApiKey)
		}
	}
	if len(need) > 0 {
		t.Fatalf("transactions v2 advertised without %v", need)
	}
}

func TestTransactionsV2CommitAbort(t *testing.T) {
	ts := startTxnServer(t)
	ts.createTopic(t, "tv2", 2)
	var keys keyCounter
	cl := ts.client(t, kgo.TransactionalID("tv2-1"), kgo.WithHooks(&keys))
	ctx := context.Background()
	var epochs []int16
	round := func(end kgo.TransactionEndTry, values ...string) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i, v := range values {
			r := &kgo.Record{Topic: "tv2", Partition: int32(i % 2), Value: []byte(v)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %q: %v", v, err)
			}
		}
		if err := cl.EndTransaction(ctx, end); err != nil {
			t.Fatalf("end transaction: %v", err)
		}
		_, epoch, err := cl.ProducerID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		epochs = append(epochs, epoch)
	}
	round(kgo.TryCommit, "c1", "c2")
	round(kgo.TryAbort, "a1", "a2")
	round(kgo.TryCommit, "c3", "c4")

	// Every EndTxn bumped the epoch, and no partition was added by the
	// client: the broker did it for Produce v12.
	if !slices.Equal(epochs, []int16{1, 2, 3}) {
		t.Fatalf("epochs after each end %v, want 1 2 3 (init gave 0)", epochs)
	}
	if n := keys.count(kmsg.AddPartitionsToTxn); n != 0 {
		t.Fatalf("the client sent %d AddPartitionsToTxn: not using transactions v2", n)
	}
	if n := keys.count(kmsg.EndTxn); n != 3 {
		t.Fatalf("%d EndTxn, want 3", n)
	}
	for p, want := range map[int32][]string{0: {"c1", "c3"}, 1: {"c2", "c4"}} {
		if got := consumePartition(t, ts, "tv2", p, kgo.ReadCommitted(), want[len(want)-1]); !slices.Equal(got, want) {
			t.Fatalf("partition %d read_committed %v, want %v", p, got, want)
		}
	}
	if got, want := consumePartition(t, ts, "tv2", 0, kgo.ReadUncommitted(), "c3"), []string{"c1", "a1", "c3"}; !slices.Equal(got, want) {
		t.Fatalf("read_uncommitted %v, want %v", got, want)
	}
}

// consumePartition is consumeValues for one partition of topic.
func consumePartition(t *testing.T, ts *testServer, topic string, p int32, level kgo.IsolationLevel, last string) []string {
	t.Helper()
	cl := ts.client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().AtStart()}}), kgo.FetchIsolationLevel(level))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []string
	for !slices.Contains(got, last) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("waiting for %q in %s-%d: got %v", last, topic, p, got)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch %s: %v", topic, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got
}

// TestTransactionsV2ZombieFenced: a new producer instance fences the old
// one, and a batch of a finished transaction that arrives late (its
// producer's EndTxn bumped the epoch, and the marker carries it) is
// refused rather than joining the next transaction.
func TestTransactionsV2ZombieFenced(t *testing.T) {
	ts := startTxnServer(t)
	ts.createTopic(t, "tz", 1)
	ctx := context.Background()
	zombie := ts.client(t, kgo.TransactionalID("tz-1"))
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	txnProduce(t, zombie, "tz", "zombie-1")

	fresh := ts.client(t, kgo.TransactionalID("tz-1"))
	if err := fresh.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	txnProduce(t, fresh, "tz", "fresh-1")
	if err := fresh.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("fresh producer commit: %v", err)
	}
	err := zombie.ProduceSync(ctx, &kgo.Record{Topic: "tz", Value: []byte("zombie-2")}).FirstErr()
	if endErr := zombie.EndTransaction(ctx, kgo.TryCommit); err == nil {
		err = endErr
	}
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("zombie producer: got %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}

	// A late batch at the epoch of the committed transaction, as a slow
	// retry of the fresh producer's first transaction would arrive.
	pid, epoch, err := fresh.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	late := proto.AppendBatch(nil, proto.BatchSpec{FirstTimestamp: time.Now().UnixMilli(), ProducerID: pid,
		ProducerEpoch: epoch - 1, BaseSequence: 1, Transactional: true}, []proto.Record{{Value: []byte("late")}})
	req := produceReq(-1, "tz", 0, late)
	req.Version, req.TransactionID = 12, kmsg.StringPtr("tz-1")
	if code := producePart(ts.raw(t).do(req)).ErrorCode; code != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("late batch of the finished transaction: %v, want INVALID_PRODUCER_EPOCH", kerr.ErrorForCode(code))
	}
	// The fresh producer goes on at its bumped epoch.
	if err := fresh.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	txnProduce(t, fresh, "tz", "fresh-2")
	if err := fresh.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("second commit: %v", err)
	}
	if got := consumeValues(t, ts, "tz", kgo.ReadCommitted(), "fresh-2"); !slices.Equal(got, []string{"fresh-1", "fresh-2"}) {
		t.Fatalf("read_committed got %v", got)
	}
}

// TestTransactionsV1AndV2Coexist: a client that keeps transactions v1 (as
// Sarama and librdkafka do; here franz-go capped below Produce v12) works
// next to a v2 one on the same coordinator.
func TestTransactionsV1AndV2Coexist(t *testing.T) {
	ts := startTxnServer(t)
	ts.createTopic(t, "mix", 1)
	ctx := context.Background()
	var v1Keys keyCounter
	capped := kversion.V4_0_0()
	capped.SetMaxKeyVersion(int16(kmsg.Produce), 11)
	v1 := ts.client(t, kgo.TransactionalID("mix-v1"), kgo.WithHooks(&v1Keys), kgo.MaxVersions(capped))
	v2 := ts.client(t, kgo.TransactionalID("mix-v2"))
	for i, cl := range []*kgo.Client{v1, v2, v1, v2} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		v := []string{"v1-a", "v2-a", "v1-b", "v2-b"}[i]
		txnProduce(t, cl, "mix", v)
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatalf("commit %s: %v", v, err)
		}
	}
	if _, epoch, err := v1.ProducerID(ctx); err != nil || epoch != 0 {
		t.Fatalf("v1 producer epoch %d (%v): v1 ends do not bump it", epoch, err)
	}
	if _, epoch, err := v2.ProducerID(ctx); err != nil || epoch != 2 {
		t.Fatalf("v2 producer epoch %d (%v), want 2", epoch, err)
	}
	if n := v1Keys.count(kmsg.AddPartitionsToTxn); n != 2 {
		t.Fatalf("v1 client sent %d AddPartitionsToTxn, want 2", n)
	}
	want := []string{"v1-a", "v2-a", "v1-b", "v2-b"}
	if got := consumeValues(t, ts, "mix", kgo.ReadCommitted(), "v2-b"); !slices.Equal(got, want) {
		t.Fatalf("read_committed %v, want %v", got, want)
	}
}

// transaction.version=1 keeps clients on the older protocol: the feature
// is finalized at 1 and the versions that need v2 are not offered.
func TestTransactionVersionOne(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.TransactionVersion = 1 })
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 4
	resp := ts.raw(t).do(req).(*kmsg.ApiVersionsResponse)
	for _, f := range resp.FinalizedFeatures {
		if f.Name == "transaction.version" && f.MaxVersionLevel != 1 {
			t.Fatalf("finalized transaction.version %d, want 1", f.MaxVersionLevel)
		}
	}
	for _, k := range resp.ApiKeys {
		if (k.ApiKey == 0 && k.MaxVersion > 11) || ((k.ApiKey == 24 || k.ApiKey == 26) && k.MaxVersion > 4) {
			t.Fatalf("API %d offered up to v%d under transaction.version=1", k.ApiKey, k.MaxVersion)
		}
	}
}
