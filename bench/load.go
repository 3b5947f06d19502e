package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// produceSpec is one produce run against one topic.
type produceSpec struct {
	Topic      string
	RecordSize int
	AcksAll    bool // acks=all with the idempotent producer; else acks=1 without it
	Producers  int  // concurrent clients, each with its own connection
	Duration   time.Duration
	// Rate caps the records per second over all producers; 0 produces as
	// fast as the producers' windows allow.
	Rate int
	// Window bounds each producer's records awaiting their promise, so a
	// saturated run measures the broker rather than a client queue that
	// grows without end.
	Window int
	// Linger is the client's ProducerLinger; negative keeps its default.
	Linger time.Duration
	// Records, when positive, stops the run after that many records over
	// all producers (Duration still bounds it).
	Records int64
}

// slot is one reusable record with its send time. It is also the
// record's Context, which is how the promise finds the send time again
// without a map or an allocation per record (kgo truncates the record
// Timestamp to milliseconds, too coarse for latency). kgo only asks the
// context for Done, and the embedded Background never ends.
type slot struct {
	context.Context
	rec   kgo.Record
	start time.Time
}

// producerStats is written by one client's promise goroutine and read
// after Flush; the mutex makes that hand-over explicit.
type producerStats struct {
	mu       sync.Mutex
	hist     Histogram
	records  int64
	bytes    int64
	errors   int64
	firstErr error
	lastAck  time.Time
}

func producerOpts(seeds []string, spec produceSpec) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DefaultProduceTopic(spec.Topic),
		// Payloads are random, so compression would only cost CPU; the
		// figures are then plain wire bytes.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.MaxBufferedRecords(spec.Window),
	}
	if spec.AcksAll {
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	} else {
		// acks=1 cannot be idempotent; allow the 5 requests in flight an
		// idempotent producer gets, as the Java client's default does.
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
			kgo.MaxProduceRequestsInflightPerBroker(5))
	}
	if spec.Linger >= 0 {
		opts = append(opts, kgo.ProducerLinger(spec.Linger))
	}
	return opts
}

// runProduce produces spec.RecordSize-byte records for spec.Duration and
// waits for every promise. Throughput counts acknowledged records over
// the time from the first send to the last acknowledgement, so the drain
// after the deadline is included rather than left out.
func runProduce(ctx context.Context, seeds []string, spec produceSpec) (ProduceResult, error) {
	value := make([]byte, spec.RecordSize)
	if _, err := rand.Read(value); err != nil {
		return ProduceResult{}, err
	}
	clients := make([]*kgo.Client, spec.Producers)
	defer func() {
		for _, cl := range clients {
			if cl != nil {
				cl.Close()
			}
		}
	}()
	for i := range clients {
		cl, err := kgo.NewClient(producerOpts(seeds, spec)...)
		if err != nil {
			return ProduceResult{}, err
		}
		clients[i] = cl
	}
	// Connect and load metadata before the clock starts.
	for _, cl := range clients {
		if err := cl.Ping(ctx); err != nil {
			return ProduceResult{}, fmt.Errorf("ping: %w", err)
		}
	}

	stats := make([]*producerStats, spec.Producers)
	var wg sync.WaitGroup
	start := time.Now()
	stopAt := start.Add(spec.Duration)
	perProducerRate := 0.0
	if spec.Rate > 0 {
		perProducerRate = float64(spec.Rate) / float64(spec.Producers)
	}
	var budget *atomic.Int64
	if spec.Records > 0 {
		budget = new(atomic.Int64)
		budget.Store(spec.Records)
	}
	for i, cl := range clients {
		st := &producerStats{}
		stats[i] = st
		wg.Go(func() {
			produceLoop(ctx, cl, spec.Topic, value, spec.Window, start, stopAt, perProducerRate, budget, st)
		})
	}
	wg.Wait()

	res := ProduceResult{
		Topic:      spec.Topic,
		RecordSize: spec.RecordSize,
		Acks:       acksName(spec.AcksAll),
		Producers:  spec.Producers,
		TargetRate: spec.Rate,
	}
	var lastAck time.Time
	var hist Histogram
	for _, st := range stats {
		st.mu.Lock()
		hist.Merge(&st.hist)
		res.Records += st.records
		res.Bytes += st.bytes
		res.Errors += st.errors
		if st.firstErr != nil && res.FirstError == "" {
			res.FirstError = st.firstErr.Error()
		}
		if st.lastAck.After(lastAck) {
			lastAck = st.lastAck
		}
		st.mu.Unlock()
	}
	if !lastAck.IsZero() {
		res.Elapsed = lastAck.Sub(start)
	}
	res.Latency = summarize(&hist)
	res.finish()
	return res, ctx.Err()
}

// produceLoop is one producer: it takes a free slot (waiting when the
// window is full), stamps it and hands it to the client, until stopAt;
// then it flushes. With rate > 0 it sends each record at its scheduled
// time, catching up in a burst after a late wake-up rather than drifting.
// A non-nil budget is shared by all producers: each record takes one, and
// the loop ends when none is left.
func produceLoop(ctx context.Context, cl *kgo.Client, topic string, value []byte, window int, start, stopAt time.Time, rate float64, budget *atomic.Int64, st *producerStats) {
	free := make(chan *slot, window)
	for range window {
		s := &slot{Context: context.Background()}
		free <- s
	}
	promise := func(r *kgo.Record, err error) {
		now := time.Now()
		s := r.Context.(*slot)
		st.mu.Lock()
		if err != nil {
			st.errors++
			if st.firstErr == nil {
				st.firstErr = err
			}
		} else {
			st.hist.RecordDuration(now.Sub(s.start))
			st.records++
			st.bytes += int64(len(r.Value))
			st.lastAck = now
		}
		st.mu.Unlock()
		free <- s
	}
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Second) / rate)
	}
	next := start
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(stopAt) {
			break
		}
		if interval > 0 {
			if wait := next.Sub(now); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
				}
				continue
			}
			next = next.Add(interval)
		}
		var s *slot
		select {
		case s = <-free:
		case <-ctx.Done():
			continue
		}
		if budget != nil && budget.Add(-1) < 0 {
			break
		}
		s.rec = kgo.Record{Topic: topic, Value: value, Context: s}
		s.start = time.Now()
		cl.Produce(ctx, &s.rec, promise)
	}
	// Flush waits for every promise; on cancellation it returns early and
	// Close (deferred by the caller) fails what is left.
	_ = cl.Flush(ctx)
}

// runConsume reads the topic from its start to the end offsets it has
// when the run begins, with one consumer client.
func runConsume(ctx context.Context, seeds []string, topic string, timeout time.Duration) (ConsumeResult, error) {
	res := ConsumeResult{Topic: topic}
	adm, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return res, err
	}
	defer adm.Close()
	ac := kadm.NewClient(adm)
	starts, err := ac.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return res, fmt.Errorf("list start offsets: %w", err)
	}
	ends, err := ac.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return res, fmt.Errorf("list end offsets: %w", err)
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok {
			want += o.Offset - s.Offset
		}
	})
	res.Expected = want

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return res, err
	}
	defer cl.Close()
	if err := cl.Ping(ctx); err != nil {
		return res, fmt.Errorf("ping: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var last time.Time
	for res.Records < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachError(func(t string, p int32, err error) {
			res.Errors++
			if res.FirstError == "" {
				res.FirstError = fmt.Sprintf("%s[%d]: %v", t, p, err)
			}
		})
		n := int64(0)
		fs.EachRecord(func(r *kgo.Record) {
			n++
			res.Bytes += int64(len(r.Value) + len(r.Key))
		})
		if n > 0 {
			res.Records += n
			last = time.Now()
		}
	}
	if !last.IsZero() {
		res.Elapsed = last.Sub(start)
	}
	res.finish()
	if res.Records < want {
		return res, fmt.Errorf("consumed %d of %d records before the %s timeout", res.Records, want, timeout)
	}
	return res, nil
}

// createTopic creates topic with partitions partitions and replication
// factor 1, retrying what Kafka calls retriable (a broker that has just
// started may not have its metadata ready yet).
func createTopic(ctx context.Context, seeds []string, topic string, partitions int32) error {
	return createTopicWith(ctx, seeds, topic, partitions, 1, nil)
}

// createTopicWith is createTopic with replication factor rf and topic
// configs.
func createTopicWith(ctx context.Context, seeds []string, topic string, partitions int32, rf int16, configs map[string]string) error {
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = topic, partitions, rf
	return createTopicReq(ctx, seeds, t, configs)
}

// createTopicReq sends one CreateTopics request for t with configs until
// it succeeds or fails with an error Kafka does not call retriable. A
// topic that already exists counts as created: topic names are unique
// per run, so it is this run's, created by an attempt whose answer was
// lost.
func createTopicReq(ctx context.Context, seeds []string, t kmsg.CreateTopicsRequestTopic, configs map[string]string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		t.Configs = append(t.Configs, c)
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Topics = []kmsg.CreateTopicsRequestTopic{t}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req.TimeoutMillis = 15000
	for {
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			if len(resp.Topics) != 1 {
				err = fmt.Errorf("%d topics in the answer", len(resp.Topics))
			} else if rt := resp.Topics[0]; rt.ErrorCode != 0 {
				err = kerr.ErrorForCode(rt.ErrorCode)
				if rt.ErrorMessage != nil {
					err = fmt.Errorf("%w: %s", err, *rt.ErrorMessage)
				}
			}
		}
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			return nil
		}
		if !kerr.IsRetriable(err) || ctx.Err() != nil {
			return fmt.Errorf("create topic %s: %w", t.Topic, err)
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// deleteTopics is best effort: it only tidies up an external broker.
func deleteTopics(ctx context.Context, seeds []string, topics ...string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	resps, err := kadm.NewClient(cl).DeleteTopics(ctx, topics...)
	if err != nil {
		return err
	}
	return resps.Error()
}

func acksName(all bool) string {
	if all {
		return "all"
	}
	return "1"
}

func summarize(h *Histogram) Latency {
	return Latency{
		P50:  h.QuantileDuration(0.50),
		P99:  h.QuantileDuration(0.99),
		P999: h.QuantileDuration(0.999),
		Max:  time.Duration(h.Max()),
		Mean: time.Duration(h.Mean()),
	}
}
