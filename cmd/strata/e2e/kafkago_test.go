package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// kafkaGoClient drives segmentio/kafka-go.
type kafkaGoClient struct{ b *brokerProc }

func (c kafkaGoClient) createTopic(ctx context.Context, t *testing.T, topic string, partitions int32) {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(c.b.Addr), Timeout: 10 * time.Second}
	resp, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: topic, NumPartitions: int(partitions), ReplicationFactor: 1},
	}})
	if err != nil {
		t.Fatalf("kafka-go CreateTopics: %v", err)
	}
	if err := resp.Errors[topic]; err != nil {
		t.Fatalf("kafka-go CreateTopics %s: %v", topic, err)
	}
}

var kafkaGoCodecs = map[string]kafka.Compression{
	"none": 0, "gzip": kafka.Gzip, "snappy": kafka.Snappy, "lz4": kafka.Lz4, "zstd": kafka.Zstd,
}

func (c kafkaGoClient) produce(ctx context.Context, t *testing.T, topic, codec string, rs []rec) {
	t.Helper()
	w := &kafka.Writer{
		Addr:  kafka.TCP(c.b.Addr),
		Topic: topic,
		// The Writer ignores Message.Partition but hands the message to
		// the balancer, which puts it where the test wants it.
		Balancer:     kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return m.Partition }),
		Compression:  kafkaGoCodecs[codec],
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 10 * time.Millisecond,
		BatchSize:    len(rs),
		BatchBytes:   8 << 20,
		MaxAttempts:  5,
	}
	defer w.Close()
	msgs := make([]kafka.Message, len(rs))
	for i, r := range rs {
		msgs[i] = kafka.Message{Partition: int(r.Partition), Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			msgs[i].Headers = append(msgs[i].Headers, kafka.Header{Key: h.Key, Value: h.Value})
		}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("kafka-go produce (%s): %v", codec, err)
	}
}

func (c kafkaGoClient) join(ctx context.Context, t *testing.T, name, group, topic string, col *collector) func() {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           []string{c.b.Addr},
		GroupID:           group,
		Topic:             topic,
		MinBytes:          1,
		MaxBytes:          8 << 20,
		MaxWait:           250 * time.Millisecond,
		HeartbeatInterval: 250 * time.Millisecond,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		JoinGroupBackoff:  250 * time.Millisecond,
		StartOffset:       kafka.FirstOffset,
		CommitInterval:    0, // CommitMessages commits synchronously
		ReadBackoffMin:    50 * time.Millisecond,
		ReadBackoffMax:    250 * time.Millisecond,
		ErrorLogger:       kafka.LoggerFunc(func(f string, args ...any) { t.Logf("kafka-go member "+name+": "+f, args...) }),
	})
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := r.FetchMessage(mctx)
			if mctx.Err() != nil {
				return
			}
			if err != nil {
				t.Logf("kafka-go member %s: %v", name, err)
				select {
				case <-mctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			got := rec{Partition: int32(m.Partition), Key: m.Key, Value: m.Value}
			for _, h := range m.Headers {
				got.Headers = append(got.Headers, header{Key: h.Key, Value: h.Value})
			}
			col.add(name, m.Offset, got)
			if err := r.CommitMessages(mctx, m); err != nil && mctx.Err() == nil {
				t.Logf("kafka-go member %s: commit: %v", name, err)
			}
		}
	}()
	return onceStop(t, func() {
		cancel()
		<-done
		if err := r.Close(); err != nil {
			t.Logf("kafka-go member %s: close: %v", name, err)
		}
	})
}

func TestKafkaGo(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	runGroupScenario(t, b, kafkaGoClient{b}, "kafkago")
}
