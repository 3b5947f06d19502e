package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCrashLoop kills the broker with SIGKILL at random moments while an
// idempotent acks=all producer writes numbered records, restarting it on
// the same data dir each time. Afterwards every acknowledged record must
// be in the log at the offset it was acknowledged with, each partition in
// produce order, and no record twice.
func TestCrashLoop(t *testing.T) {
	t.Parallel()
	const (
		topic      = "crash"
		partitions = 3
		rounds     = 4
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	b := startBroker(t)
	ctx := testContext(t, 3*time.Minute)
	createTopic(ctx, t, b.Admin(), topic, partitions, nil)

	type pos struct {
		partition int32
		offset    int64
	}
	var (
		mu     sync.Mutex
		acked  = map[int]pos{} // record number -> where it was acknowledged
		failed int             // records the client gave up on: allowed, they were never acknowledged
		nAcked atomic.Int64
	)
	prod := b.Client(
		kgo.ClientID("e2e-crash-producer"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.MaxBufferedRecords(2000),
		kgo.UnknownTopicRetries(-1), // a restarting broker may not know the topic for a moment
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
	)
	var (
		produced atomic.Int64
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load() && ctx.Err() == nil; i++ {
			r := &kgo.Record{Topic: topic, Partition: int32(i % partitions), Value: []byte(strconv.Itoa(i))}
			n := i
			// Produce blocks while MaxBufferedRecords are in flight.
			prod.Produce(ctx, r, func(r *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed++
					return
				}
				acked[n] = pos{r.Partition, r.Offset}
				nAcked.Add(1)
			})
			produced.Store(int64(i + 1))
		}
	}()

	waitAcked := func(n int64) {
		t.Helper()
		waitFor(ctx, t, fmt.Sprintf("%d acknowledged records", n), func() (bool, string) {
			got := nAcked.Load()
			return got >= n, fmt.Sprintf("%d acknowledged", got)
		})
	}
	for round := range rounds {
		// Once the producer is making progress again, kill at a random
		// moment: mid-append, mid-fsync, between requests.
		waitAcked(nAcked.Load() + 1)
		select {
		case <-time.After(time.Duration(rng.IntN(500)) * time.Millisecond):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		b.Kill()
		t.Logf("round %d: killed after %d acks, %d produced", round, nAcked.Load(), produced.Load())
		b.Restart()
	}
	// The producer must get going again after the last restart.
	waitAcked(nAcked.Load() + 200)
	stop.Store(true)
	wg.Wait()
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := prod.Flush(fctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	mu.Lock()
	total := int(produced.Load())
	t.Logf("produced %d, acknowledged %d, failed %d", total, len(acked), failed)
	mu.Unlock()

	// Read everything back.
	ends := endOffsets(ctx, t, b.Admin(), topic)
	offs := map[int32]kgo.Offset{}
	for p := range int32(partitions) {
		offs[p] = kgo.NewOffset().AtStart()
	}
	cons := b.Client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}), kgo.FetchMaxWait(200*time.Millisecond))
	logged := map[int32][]kgo.Record{}
	remaining := func() int64 {
		var n int64
		for p, end := range ends {
			next := int64(0)
			if rs := logged[p]; len(rs) > 0 {
				next = rs[len(rs)-1].Offset + 1
			}
			n += end - next
		}
		return n
	}
	for remaining() > 0 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading back: %d records left: %v", remaining(), ctx.Err())
		}
		fs.EachError(func(_ string, p int32, err error) { t.Errorf("fetch partition %d: %v", p, err) })
		fs.EachRecord(func(r *kgo.Record) { logged[r.Partition] = append(logged[r.Partition], *r) })
	}

	seen := map[int]pos{}
	problems := 0
	report := func(format string, args ...any) {
		t.Helper()
		if problems++; problems <= 20 {
			t.Errorf(format, args...)
		}
	}
	for p, rs := range logged {
		prev := -1
		for i, r := range rs {
			if i > 0 && r.Offset != rs[i-1].Offset+1 {
				report("partition %d: offset %d follows %d (a gap)", p, r.Offset, rs[i-1].Offset)
			}
			n, err := strconv.Atoi(string(r.Value))
			if err != nil || n < 0 || n >= total || int32(n%partitions) != p {
				report("partition %d offset %d: record %q was never produced there", p, r.Offset, r.Value)
				continue
			}
			if first, dup := seen[n]; dup {
				report("record %d twice: at %d/%d and %d/%d", n, first.partition, first.offset, p, r.Offset)
			}
			seen[n] = pos{p, r.Offset}
			if n <= prev {
				report("partition %d: record %d at offset %d after record %d (order lost)", p, n, r.Offset, prev)
			}
			prev = n
		}
	}
	mu.Lock()
	defer mu.Unlock()
	lost := 0
	for n, at := range acked {
		got, ok := seen[n]
		switch {
		case !ok:
			lost++
			if lost <= 10 {
				report("acknowledged record %d (at %d/%d) is missing", n, at.partition, at.offset)
			}
		case got != at:
			report("acknowledged record %d at %d/%d is in the log at %d/%d", n, at.partition, at.offset, got.partition, got.offset)
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged records lost", lost, len(acked))
	}
	if problems > 20 {
		t.Errorf("%d problems in all (first 20 shown)", problems)
	}
}
