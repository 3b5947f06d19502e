package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// saramaClient drives IBM/sarama, which picks request versions from
// config.Version rather than only from ApiVersions.
type saramaClient struct{ b *brokerProc }

func (c saramaClient) config(clientID string) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.ClientID = clientID
	cfg.Net.DialTimeout = 5 * time.Second
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	return cfg
}

func (c saramaClient) createTopic(ctx context.Context, t *testing.T, topic string, partitions int32) {
	t.Helper()
	adm, err := sarama.NewClusterAdmin([]string{c.b.Addr}, c.config("e2e-sarama-admin"))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if err := adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("sarama CreateTopic: %v", err)
	}
}

var saramaCodecs = map[string]sarama.CompressionCodec{
	"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy,
	"lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD,
}

func (c saramaClient) produce(ctx context.Context, t *testing.T, topic, codec string, rs []rec) {
	t.Helper()
	cfg := c.config("e2e-sarama-producer")
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1 // required by Sarama's idempotent producer
	cfg.Producer.Retry.Max = 5
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Compression = saramaCodecs[codec]
	p, err := sarama.NewSyncProducer([]string{c.b.Addr}, cfg)
	if err != nil {
		t.Fatalf("sarama producer: %v", err)
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, len(rs))
	for i, r := range rs {
		m := &sarama.ProducerMessage{Topic: topic, Partition: r.Partition, Value: sarama.ByteEncoder(r.Value)}
		if r.Key != nil {
			m.Key = sarama.ByteEncoder(r.Key)
		}
		for _, h := range r.Headers {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
		}
		msgs[i] = m
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatalf("sarama produce (%s): %v", codec, err)
	}
	last := map[int32]int64{}
	for _, m := range msgs {
		if prev, ok := last[m.Partition]; ok && m.Offset != prev+1 {
			t.Fatalf("sarama produce (%s): partition %d offsets %d then %d", codec, m.Partition, prev, m.Offset)
		}
		last[m.Partition] = m.Offset
	}
}

type saramaHandler struct {
	name string
	col  *collector
}

func (h saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			r := rec{Partition: m.Partition, Key: m.Key, Value: m.Value}
			for _, hd := range m.Headers {
				r.Headers = append(r.Headers, header{Key: string(hd.Key), Value: hd.Value})
			}
			h.col.add(h.name, m.Offset, r)
			sess.MarkMessage(m, "")
		case <-sess.Context().Done():
			return nil
		}
	}
}

func (c saramaClient) join(ctx context.Context, t *testing.T, name, group, topic string, col *collector) func() {
	cfg := c.config("e2e-sarama-" + name)
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = true
	cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRoundRobin()}
	cfg.Consumer.Group.Heartbeat.Interval = 250 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = 10 * time.Second
	cfg.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	cfg.Consumer.MaxWaitTime = 250 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	cg, err := sarama.NewConsumerGroup([]string{c.b.Addr}, group, cfg)
	if err != nil {
		t.Fatalf("sarama consumer group: %v", err)
	}
	mctx, cancel := context.WithCancel(ctx)
	var done = make(chan struct{})
	go func() {
		defer close(done)
		for {
			err := cg.Consume(mctx, []string{topic}, saramaHandler{name: name, col: col})
			if mctx.Err() != nil || errors.Is(err, sarama.ErrClosedConsumerGroup) {
				return
			}
			if err != nil {
				t.Logf("sarama member %s: %v", name, err)
				select {
				case <-mctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
	}()
	errsDone := make(chan struct{})
	go func() {
		defer close(errsDone)
		for err := range cg.Errors() {
			t.Logf("sarama member %s: %v", name, err)
		}
	}()
	return onceStop(t, func() {
		cancel()
		<-done
		if err := cg.Close(); err != nil {
			t.Logf("sarama member %s: close: %v", name, err)
		}
		<-errsDone
	})
}

func TestSarama(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	runGroupScenario(t, b, saramaClient{b}, "sarama")
}
