package e2e

// Exactly-once on one broker, as pipelines use it: a franz-go
// consume-transform-produce loop (GroupTransactSession) across kill -9 and
// restarts, Sarama's transactional producer with its offsets in the
// transaction, and a transaction the coordinator aborts when it times out,
// fencing its producer.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// txnArgs keep the internal topics small: their partitions are created
// and loaded at startup, and again after every restart.
var txnArgs = []string{
	"--set", "transaction.state.log.num.partitions=3",
	"--set", "offsets.topic.num.partitions=3",
}

// valueReader reads a topic from the start at one isolation level and
// keeps every value it has read, across calls.
type valueReader struct {
	t     *testing.T
	topic string
	cl    *kgo.Client
	got   []string
}

func newValueReader(b *brokerProc, topic string, level kgo.IsolationLevel) *valueReader {
	cl := b.Client(
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(level),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	return &valueReader{t: b.t, topic: topic, cl: cl}
}

// until polls until done holds for the values read so far, failing the
// test after d.
func (r *valueReader) until(ctx context.Context, d time.Duration, what string, done func(got []string) bool) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for !done(r.got) {
		fs := r.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			r.t.Fatalf("reading %s: timed out waiting for %s; read %d values", r.topic, what, len(r.got))
		}
		fs.EachRecord(func(rec *kgo.Record) { r.got = append(r.got, string(rec.Value)) })
	}
}

// settle polls for a moment more, so values the broker would still hand
// out (duplicates, aborted records) show up in got too.
func (r *valueReader) settle(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	for ctx.Err() == nil {
		r.cl.PollFetches(ctx).EachRecord(func(rec *kgo.Record) { r.got = append(r.got, string(rec.Value)) })
	}
}

// untilValue is until the value last has been read.
func (r *valueReader) untilValue(ctx context.Context, last string) []string {
	r.t.Helper()
	r.until(ctx, 15*time.Second, strconv.Quote(last), func(got []string) bool { return slices.Contains(got, last) })
	return r.got
}

// TestEOSGroupTransactSessionAcrossKills: a consume-transform-produce loop
// with franz-go's GroupTransactSession copies an input topic to an output
// topic in transactions that carry the group's offsets, while the broker
// is killed with SIGKILL twice in mid-stream and restarted. The loop acts
// as an application would: when the session reports an error it is
// closed and a new one opened with the same transactional id, which fences
// the old producer; once, the application itself "crashes" with a
// transaction open, whose records the next session's InitProducerId must
// abort. Under read_committed the output then holds every input record
// exactly once.
func TestEOSGroupTransactSessionAcrossKills(t *testing.T) {
	const (
		in         = "eos-in"
		out        = "eos-out"
		group      = "eos-group"
		partitions = 3
		n          = 1500
	)
	b := startBroker(t, txnArgs...)
	ctx := testContext(t, 90*time.Second)
	adm := b.Admin()
	createTopic(ctx, t, adm, in, partitions, nil)
	createTopic(ctx, t, adm, out, partitions, nil)

	input := make([]*kgo.Record, n)
	for i := range input {
		input[i] = &kgo.Record{Topic: in, Partition: int32(i % partitions), Value: []byte("v" + strconv.Itoa(i))}
	}
	if err := b.Client(kgo.RecordPartitioner(kgo.ManualPartitioner())).ProduceSync(ctx, input...).FirstErr(); err != nil {
		t.Fatalf("produce input: %v", err)
	}

	start := time.Now()
	newSession := func() (*kgo.GroupTransactSession, error) {
		return kgo.NewGroupTransactSession(
			kgo.SeedBrokers(b.Addr),
			kgo.ClientID("e2e-eos"),
			kgo.TransactionalID("eos-etl"),
			kgo.TransactionTimeout(10*time.Second),
			kgo.ConsumerGroup(group),
			// A new session takes the old one's place at once (static
			// membership) instead of waiting out its session.
			kgo.InstanceID("eos-etl-0"),
			kgo.SessionTimeout(6*time.Second),
			kgo.ConsumeTopics(in),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.RequireStableFetchOffsets(),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.FetchMaxWait(200*time.Millisecond),
			kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
			kgo.UnknownTopicRetries(-1), // a restarting broker may not know the topic for a moment
			// After a restart the client refreshes metadata before
			// fetching again; the default 5 s floor would idle the loop.
			kgo.MetadataMinAge(100*time.Millisecond),
		)
	}
	var (
		committed atomic.Int64 // records in transactions End reported committed
		sessions  atomic.Int64
		stop      = make(chan struct{})
		crash     = make(chan struct{}, 1)
		loopDone  = make(chan struct{})
		loopErr   error
	)
	// run is one session's life: poll, transform, end, until an error
	// the session cannot continue after, or stop.
	run := func(s *kgo.GroupTransactSession) error {
		for {
			select {
			case <-stop:
				return nil
			default:
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			fs := s.PollRecords(pctx, 50) // small transactions: many of them are open when the broker dies
			cancel()
			if fs.IsClientClosed() {
				return errors.New("client closed")
			}
			if fs.NumRecords() == 0 {
				continue // nothing, or fetch errors while the broker is away: the client retries
			}
			if err := s.Begin(); err != nil {
				return fmt.Errorf("begin: %w", err)
			}
			var failed atomic.Bool
			fs.EachRecord(func(r *kgo.Record) {
				o := &kgo.Record{Topic: out, Partition: r.Partition, Value: []byte("out-" + string(r.Value))}
				s.Produce(ctx, o, func(_ *kgo.Record, err error) {
					if err != nil {
						failed.Store(true)
					}
				})
			})
			end := kgo.TryCommit
			if err := s.Client().Flush(ctx); err != nil || failed.Load() {
				end = kgo.TryAbort
			}
			select {
			case <-crash:
				// The application dies with its transaction open; the
				// next session's InitProducerId must abort it.
				return errors.New("application crash with a transaction open")
			default:
			}
			ok, err := s.End(ctx, end)
			if err != nil {
				return fmt.Errorf("end: %w", err)
			}
			if ok {
				committed.Add(int64(fs.NumRecords()))
			}
		}
	}
	go func() {
		defer close(loopDone)
		for ctx.Err() == nil {
			s, err := newSession()
			if err != nil {
				loopErr = err
				return
			}
			sessions.Add(1)
			// Take the transactional id at once, as Java's
			// initTransactions does: that aborts what an earlier session
			// left open. Otherwise the group's stable offset fetch would
			// wait for that transaction to time out, as it does in Kafka.
			if _, _, err = s.Client().ProducerID(ctx); err == nil {
				err = run(s)
			}
			s.Close()
			if err == nil {
				return
			}
			t.Logf("%v: session %d: %v; starting a new one", time.Since(start).Round(time.Millisecond), sessions.Load(), err)
			// An application's restart backoff, so a broker that is away
			// is not hammered with new sessions.
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-loopDone
	})

	// Kill the broker twice while transactions are flowing.
	for round, at := range []int64{n / 4, n / 2} {
		waitFor(ctx, t, fmt.Sprintf("%d records committed by the loop", at), func() (bool, string) {
			return committed.Load() >= at, fmt.Sprintf("%d committed", committed.Load())
		})
		b.Kill()
		t.Logf("%v: kill %d after %d records committed", time.Since(start).Round(time.Millisecond), round+1, committed.Load())
		b.Restart()
		t.Logf("%v: restarted", time.Since(start).Round(time.Millisecond))
		if round == 0 {
			crash <- struct{}{}
		}
	}

	want := make([]string, n)
	for i := range want {
		want[i] = "out-v" + strconv.Itoa(i)
	}
	r := newValueReader(b, out, kgo.ReadCommitted())
	r.until(ctx, 60*time.Second, fmt.Sprintf("all %d output records", n), func(got []string) bool {
		seen := map[string]bool{}
		for _, v := range got {
			seen[v] = true
		}
		return len(seen) >= n
	})
	t.Logf("%v: read all output", time.Since(start).Round(time.Millisecond))
	close(stop)
	<-loopDone
	if loopErr != nil {
		t.Fatalf("transform loop: %v", loopErr)
	}
	r.settle(ctx)

	counts := map[string]int{}
	for _, v := range r.got {
		counts[v]++
	}
	problems := 0
	for v, c := range counts {
		if c != 1 || !strings.HasPrefix(v, "out-v") {
			if problems++; problems <= 20 {
				t.Errorf("output %q read %d times under read_committed", v, c)
			}
		}
	}
	for _, v := range want {
		if counts[v] == 0 {
			t.Errorf("output %q missing", v)
		}
	}
	if len(r.got) != n {
		t.Errorf("read_committed read %d output records, want exactly %d (%d problems)", len(r.got), n, problems)
	}
	// The group's offsets were committed with the transactions: all the
	// input is consumed.
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(partitions) {
		if o, ok := offs.Lookup(in, p); !ok || o.Err != nil || o.At != n/partitions {
			t.Errorf("group offset of %s-%d: %+v (found %v), want %d", in, p, o, ok, n/partitions)
		}
	}
	t.Logf("%d sessions, %d records reported committed by End", sessions.Load(), committed.Load())
}

// TestEOSSaramaCommitAndAbort: Sarama's transactional producer commits
// and aborts transactions that also carry a group's offsets
// (AddOffsetsToTxn). A franz-go read_committed consumer sees only the
// committed records, a read_uncommitted one sees the aborted ones too, and
// the group's offset moves only with the committed transactions.
func TestEOSSaramaCommitAndAbort(t *testing.T) {
	const (
		topic = "sarama-txn"
		input = "sarama-txn-in"
		group = "sarama-txn-group"
	)
	b := startBroker(t, txnArgs...)
	ctx := testContext(t, 60*time.Second)
	sc := saramaClient{b}
	sc.createTopic(ctx, t, topic, 1)
	sc.createTopic(ctx, t, input, 1)

	cfg := sc.config("e2e-sarama-txn")
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Transaction.ID = "sarama-txn-id"
	cfg.Producer.Transaction.Timeout = 30 * time.Second
	cfg.Net.MaxOpenRequests = 1 // required by Sarama's idempotent producer
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer([]string{b.Addr}, cfg)
	if err != nil {
		t.Fatalf("sarama transactional producer: %v", err)
	}
	defer p.Close()
	if !p.IsTransactional() {
		t.Fatal("sarama producer is not transactional")
	}

	adm := b.Admin()
	groupOffset := func() int64 {
		t.Helper()
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatalf("fetch offsets of %s: %v", group, err)
		}
		if o, ok := offs.Lookup(input, 0); ok && o.Err == nil {
			return o.At
		}
		return -1
	}
	// txn sends values in one transaction with the group's offset of input
	// at offset, then commits or aborts.
	txn := func(commit bool, offset int64, values ...string) {
		t.Helper()
		if err := p.BeginTxn(); err != nil {
			t.Fatalf("begin: %v", err)
		}
		for _, v := range values {
			if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.StringEncoder(v)}); err != nil {
				t.Fatalf("send %q: %v", v, err)
			}
		}
		offsets := map[string][]*sarama.PartitionOffsetMetadata{input: {{Partition: 0, Offset: offset, LeaderEpoch: -1}}}
		if err := p.AddOffsetsToTxn(offsets, group); err != nil {
			t.Fatalf("add offsets: %v", err)
		}
		end, name := p.AbortTxn, "abort"
		if commit {
			end, name = p.CommitTxn, "commit"
		}
		if err := end(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// The offsets are applied when the coordinator writes its markers,
	// after EndTxn has answered.
	expectGroupOffset := func(want int64) {
		t.Helper()
		waitUpTo(ctx, t, 10*time.Second, fmt.Sprintf("group offset %d", want), func() (bool, string) {
			got := groupOffset()
			return got == want, fmt.Sprintf("group offset %d", got)
		})
	}

	txn(true, 2, "c1", "c2")
	expectGroupOffset(2)
	txn(false, 4, "a1", "a2")
	// A later commit shows the abort was applied: its offset never was.
	txn(true, 5, "c3")
	expectGroupOffset(5)
	txn(false, 9, "a3")
	txn(true, 6, "c4")
	expectGroupOffset(6)

	committed := newValueReader(b, topic, kgo.ReadCommitted()).untilValue(ctx, "c4")
	if want := []string{"c1", "c2", "c3", "c4"}; !slices.Equal(committed, want) {
		t.Errorf("read_committed got %v, want %v", committed, want)
	}
	uncommitted := newValueReader(b, topic, kgo.ReadUncommitted()).untilValue(ctx, "c4")
	if want := []string{"c1", "c2", "a1", "a2", "c3", "a3", "c4"}; !slices.Equal(uncommitted, want) {
		t.Errorf("read_uncommitted got %v, want %v", uncommitted, want)
	}
}

// TestEOSTransactionTimeout: a transactional producer that begins a
// transaction, produces and then stalls past its transaction.timeout.ms
// holds read_committed consumers back (DescribeProducers names the
// transaction's first offset) until the coordinator aborts the
// transaction on its own. Then read_committed reads past it without its
// records, and the stalled producer, now a zombie with an old epoch, is
// fenced on its next produce or EndTxn.
func TestEOSTransactionTimeout(t *testing.T) {
	const (
		topic = "txn-timeout"
		txnID = "stalled"
	)
	// The coordinator looks for timed-out transactions every 10 s by
	// default (Kafka's); half a second keeps the test short.
	b := startBroker(t, append(slices.Clone(txnArgs), "--set", "transaction.abort.timed.out.transaction.cleanup.interval.ms=500")...)
	ctx := testContext(t, 45*time.Second)
	adm := b.Admin()
	createTopic(ctx, t, adm, topic, 1, nil)

	zombie := b.Client(
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(time.Second),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	res := zombie.ProduceSync(ctx, &kgo.Record{Value: []byte("stalled-1")}, &kgo.Record{Value: []byte("stalled-2")})
	if err := res.FirstErr(); err != nil {
		t.Fatalf("transactional produce: %v", err)
	}
	first := res[0].Record.Offset
	pid, epoch, err := zombie.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A plain record after the transaction's: read_committed may only
	// return it once the transaction is decided.
	if err := b.Client(kgo.DefaultProduceTopic(topic)).ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// While the transaction hangs, DescribeProducers shows where it
	// started and the last stable offset is stuck there.
	described, err := adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatalf("describe producers: %v", err)
	}
	dp := described[topic].Partitions[0]
	if dp.Err != nil {
		t.Fatalf("describe producers %s-0: %v", topic, dp.Err)
	}
	if got := dp.ActiveProducers[pid]; got.ProducerEpoch != epoch || got.CurrentTxnStartOffset != first || got.LastSequence != 1 {
		t.Errorf("producer %d (epoch %d) of the open transaction at %d: %+v", pid, epoch, first, got)
	}
	lso := func() int64 {
		t.Helper()
		listed, err := adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := listed.Lookup(topic, 0)
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		return o.Offset
	}
	if got := lso(); got != first {
		t.Errorf("last stable offset %d while the transaction is open, want its first offset %d", got, first)
	}

	// The coordinator aborts it by itself.
	waitUpTo(ctx, t, 30*time.Second, "the coordinator to abort the timed-out transaction", func() (bool, string) {
		d, err := adm.DescribeTransactions(ctx, txnID)
		if err != nil {
			return false, err.Error()
		}
		st, ok := d[txnID]
		if !ok || st.Err != nil {
			return false, fmt.Sprintf("%+v", d)
		}
		return st.State == "CompleteAbort" || st.State == "Empty", "state " + st.State
	})
	got := newValueReader(b, topic, kgo.ReadCommitted()).untilValue(ctx, "after")
	if !slices.Equal(got, []string{"after"}) {
		t.Errorf("read_committed got %v, want only the record after the aborted transaction", got)
	}
	if end := endOffsets(ctx, t, adm, topic)[0]; lso() != end {
		t.Errorf("last stable offset %d after the abort, want the end %d", lso(), end)
	}
	described, err = adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := described[topic].Partitions[0].ActiveProducers[pid]; got.CurrentTxnStartOffset != -1 || got.ProducerEpoch <= epoch {
		t.Errorf("producer %d after the abort: %+v, want no open transaction and an epoch above %d", pid, got, epoch)
	}

	// The zombie does not know: its next produce or its EndTxn is fenced.
	err = zombie.ProduceSync(ctx, &kgo.Record{Value: []byte("zombie")}).FirstErr()
	if endErr := zombie.EndTransaction(ctx, kgo.TryCommit); err == nil {
		err = endErr
	}
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("zombie producer: got %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	r := newValueReader(b, topic, kgo.ReadUncommitted())
	r.untilValue(ctx, "after")
	r.settle(ctx)
	if slices.Contains(r.got, "zombie") {
		t.Errorf("the zombie's record was written: %v", r.got)
	}
}
