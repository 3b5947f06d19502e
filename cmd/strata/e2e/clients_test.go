package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// groupClient is one Kafka client library as the scenario drives it.
type groupClient interface {
	// createTopic creates topic with partitions through the library's own
	// admin API.
	createTopic(ctx context.Context, t *testing.T, topic string, partitions int32)
	// produce writes rs with acks=all and codec, returning once all are
	// acknowledged, in order within each partition.
	produce(ctx context.Context, t *testing.T, topic, codec string, rs []rec)
	// join starts a group member that consumes topic into col and commits
	// what it consumed; stop leaves the group and waits for the member.
	join(ctx context.Context, t *testing.T, name, group, topic string, col *collector) (stop func())
}

// recordMaker is implemented by clients that cannot write any record
// (kcat writes lines of text); others get makeRecords.
type recordMaker interface {
	makeRecords(name string, n int, partitions int32, seed uint64) []rec
}

// runGroupScenario is what every client must get right: produce with each
// codec, consume it back byte-identical in a group, commit, then a second
// member joins, takes partitions over and resumes at the commits. It
// returns every record produced.
func runGroupScenario(t *testing.T, b *brokerProc, c groupClient, topic string) []rec {
	const partitions = 3
	ctx := testContext(t, 3*time.Minute)
	adm := b.Admin()
	c.createTopic(ctx, t, topic, partitions)
	mk := makeRecords
	if m, ok := c.(recordMaker); ok {
		mk = m.makeRecords
	}

	var phase1 []rec
	for i, codec := range codecs {
		rs := mk(topic+"-"+codec, 25, partitions, uint64(i))
		c.produce(ctx, t, topic, codec, rs)
		phase1 = append(phase1, rs...)
	}
	ends := endOffsets(ctx, t, adm, topic)
	if want := countPerPartition(phase1); fmt.Sprint(ends) != fmt.Sprint(want) {
		t.Fatalf("end offsets after producing %v, want %v", ends, want)
	}

	group := topic + "-group"
	col := &collector{}
	stopA := c.join(ctx, t, "A", group, topic, col)
	col.waitCount(ctx, t, "member A to read everything", len(phase1))
	samePerPartition(t, "member A", phase1, recsOf(col.since(0)))
	waitCommitted(ctx, t, adm, group, topic, ends)
	waitBalanced(ctx, t, adm, group, topic, 1, partitions)
	if t.Failed() {
		t.FailNow()
	}

	mark := col.len()
	stopB := c.join(ctx, t, "B", group, topic, col)
	view := waitBalanced(ctx, t, adm, group, topic, 2, partitions)
	phase2 := mk(topic+"-phase2", 30, partitions, 99)
	c.produce(ctx, t, topic, "none", phase2)
	col.waitCount(ctx, t, "the two members to read phase 2", mark+len(phase2))
	stopB()
	stopA()
	checkTakeover(t, col.since(mark), phase2, view, ends)
	return append(phase1, phase2...)
}

// onceStop makes a member's stop function idempotent and registers it at
// cleanup, so a failing test still leaves nothing running.
func onceStop(t *testing.T, stop func()) func() {
	var once sync.Once
	f := func() { once.Do(stop) }
	t.Cleanup(f)
	return f
}

// kgoClient drives franz-go.
type kgoClient struct{ b *brokerProc }

func (c kgoClient) createTopic(ctx context.Context, t *testing.T, topic string, partitions int32) {
	createTopic(ctx, t, c.b.Admin(), topic, partitions, nil)
}

func (c kgoClient) produce(ctx context.Context, t *testing.T, topic, codec string, rs []rec) {
	t.Helper()
	cl := c.b.Client(
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgoCodec(codec)),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent by default
	)
	krs := make([]*kgo.Record, len(rs))
	for i, r := range rs {
		krs[i] = toKgo(topic, r)
	}
	last := map[int32]int64{}
	for _, res := range cl.ProduceSync(ctx, krs...) {
		if res.Err != nil {
			t.Fatalf("kgo produce (%s): %v", codec, res.Err)
		}
		p, off := res.Record.Partition, res.Record.Offset
		if prev, ok := last[p]; ok && off != prev+1 {
			t.Fatalf("kgo produce (%s): partition %d offsets %d then %d", codec, p, prev, off)
		}
		last[p] = off
	}
}

func (c kgoClient) join(ctx context.Context, t *testing.T, name, group, topic string, col *collector) func() {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.b.Addr),
		kgo.ClientID("e2e-kgo-"+name),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(250*time.Millisecond),
		kgo.HeartbeatInterval(250*time.Millisecond),
		kgo.SessionTimeout(10*time.Second),
	)
	if err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			fs := cl.PollFetches(mctx)
			if fs.IsClientClosed() || mctx.Err() != nil {
				return
			}
			fs.EachError(func(topic string, p int32, err error) {
				t.Logf("kgo member %s: fetch %s/%d: %v", name, topic, p, err)
			})
			fs.EachRecord(func(r *kgo.Record) { col.add(name, r.Offset, fromKgo(r)) })
			if err := cl.CommitUncommittedOffsets(mctx); err != nil && mctx.Err() == nil {
				t.Logf("kgo member %s: commit: %v", name, err)
			}
		}
	}()
	return onceStop(t, func() {
		cancel()
		<-done
		cl.Close() // leaves the group
	})
}

func TestFranzGo(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	runGroupScenario(t, b, kgoClient{b}, "franz")
}
