package broker

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/proto"
)

type kgoRecord = kgo.Record

func produceReq(acks int16, topic string, partition int32, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 9
	req.Acks = acks
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = partition
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func batchOf(pid int64, epoch int16, seq int32, vals ...string) []byte {
	recs := make([]proto.Record, len(vals))
	for i, v := range vals {
		recs[i] = proto.Record{OffsetDelta: int32(i), Value: []byte(v)}
	}
	return proto.AppendBatch(nil, proto.BatchSpec{FirstTimestamp: time.Now().UnixMilli(), ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq}, recs)
}

func producePart(resp kmsg.Response) kmsg.ProduceResponseTopicPartition {
	return resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
}

func TestProduceIdempotence(t *testing.T) {
	ts := startServer(t)
	ts.createTopic(t, "idem", 1)
	rc := ts.raw(t)
	b0 := batchOf(7, 0, 0, "a", "b")
	p := producePart(rc.do(produceReq(-1, "idem", 0, b0)))
	if p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("first batch: error %d offset %d", p.ErrorCode, p.BaseOffset)
	}
	b1 := batchOf(7, 0, 2, "c")
	if p = producePart(rc.do(produceReq(-1, "idem", 0, b1))); p.ErrorCode != 0 || p.BaseOffset != 2 {
		t.Fatalf("second batch: error %d offset %d", p.ErrorCode, p.BaseOffset)
	}
	// A retry of the first batch is acknowledged with its original offset
	// and not written again.
	if p = producePart(rc.do(produceReq(-1, "idem", 0, batchOf(7, 0, 0, "a", "b")))); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("duplicate: error %d offset %d, want 0 and offset 0", p.ErrorCode, p.BaseOffset)
	}
	if p = producePart(rc.do(produceReq(-1, "idem", 0, batchOf(7, 0, 9, "gap")))); p.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap: error %d, want OUT_OF_ORDER_SEQUENCE_NUMBER", p.ErrorCode)
	}
	if p = producePart(rc.do(produceReq(-1, "idem", 0, batchOf(7, 1, 0, "new epoch")))); p.ErrorCode != 0 || p.BaseOffset != 3 {
		t.Fatalf("new epoch: error %d offset %d", p.ErrorCode, p.BaseOffset)
	}
	if p = producePart(rc.do(produceReq(-1, "idem", 0, batchOf(7, 0, 3, "stale")))); p.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("stale epoch: error %d, want INVALID_PRODUCER_EPOCH", p.ErrorCode)
	}
	if hw := ts.hw(t, "idem", 0); hw != 4 {
		t.Fatalf("high watermark %d, want 4 (duplicates and rejects write nothing)", hw)
	}
}

func (ts *testServer) hw(t *testing.T, topic string, p int32) int64 {
	t.Helper()
	_, part, err := ts.parts.get(topic, p)
	if err != nil {
		t.Fatal(err)
	}
	return part.log.HighWatermark()
}

func TestProduceRejectsBadBatches(t *testing.T) {
	ts := startServer(t)
	ts.createTopic(t, "bad", 1)
	rc := ts.raw(t)
	good := batchOf(-1, -1, -1, "ok")
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)-1] ^= 0xff
	nonzeroBase := append([]byte(nil), good...)
	proto.SetBaseOffset(nonzeroBase, 5)
	cases := []struct {
		name    string
		topic   string
		part    int32
		records []byte
		want    int16
	}{
		{"crc mismatch", "bad", 0, corrupt, kerr.CorruptMessage.Code},
		{"truncated batch", "bad", 0, good[:len(good)-3], kerr.CorruptMessage.Code},
		{"unknown partition", "bad", 7, good, kerr.UnknownTopicOrPartition.Code},
		{"negative partition", "bad", -1, good, kerr.UnknownTopicOrPartition.Code},
		{"unknown topic", "nope", 0, good, kerr.UnknownTopicOrPartition.Code},
		{"bad topic name", "bad/name", 0, good, kerr.UnknownTopicOrPartition.Code},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := producePart(rc.do(produceReq(-1, tc.topic, tc.part, tc.records)))
			if p.ErrorCode != tc.want {
				t.Fatalf("error %d (%v), want %d", p.ErrorCode, kerr.ErrorForCode(p.ErrorCode), tc.want)
			}
		})
	}
	if hw := ts.hw(t, "bad", 0); hw != 0 {
		t.Fatalf("high watermark %d after rejected batches, want 0", hw)
	}
	p := producePart(rc.do(produceReq(-1, "bad", 0, nonzeroBase)))
	if p.ErrorCode == 0 {
		t.Fatalf("batch with base offset 5 accepted")
	}
}

func TestProduceAcksZero(t *testing.T) {
	ts := startServer(t)
	ts.createTopic(t, "a0", 1)
	rc := ts.raw(t)
	rc.send(produceReq(0, "a0", 0, batchOf(-1, -1, -1, "fire and forget")))
	// The next frame on the connection answers the next request: acks=0
	// got no response of its own.
	corr := rc.send(kmsg.NewPtrApiVersionsRequest())
	got, _, err := rc.readFrame(5 * time.Second)
	if err != nil || got != corr {
		t.Fatalf("next frame: corr %d err %v, want the ApiVersions answer (corr %d)", got, err, corr)
	}
	waitFor(t, "the acks=0 record to become durable", func() bool { return ts.hw(t, "a0", 0) == 1 })
	// acks=0 requests have no response but are requests all the same.
	waitFor(t, "the acks=0 produce counted", func() bool {
		return metricValue(scrape(t, ts), "strata_broker_requests_total", `api="Produce"`) == 1
	})
	// A failed acks=0 produce closes the connection (Kafka's only way to tell).
	rc.send(produceReq(0, "missing", 0, batchOf(-1, -1, -1, "x")))
	if _, _, err := rc.readFrame(5 * time.Second); !errors.Is(err, io.EOF) {
		t.Fatalf("after a failed acks=0 produce: %v, want the connection closed", err)
	}
}

func TestApiVersionsUnknownVersion(t *testing.T) {
	ts := startServer(t)
	rc := ts.raw(t)
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 99
	corr := rc.send(req)
	got, body, err := rc.readFrame(5 * time.Second)
	if err != nil || got != corr {
		t.Fatalf("read: corr %d err %v", got, err)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("decode as v0: %v", err)
	}
	if resp.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("error %d, want UNSUPPORTED_VERSION", resp.ErrorCode)
	}
	found := false
	for _, k := range resp.ApiKeys {
		if k.ApiKey == 18 && k.MaxVersion >= 3 {
			found = true
		}
	}
	if !found {
		t.Fatalf("ApiVersions missing from the fallback list: %+v", resp.ApiKeys)
	}
	// The connection stays usable.
	if r := rc.do(kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse); r.ErrorCode != 0 {
		t.Fatalf("retry at v0: error %d", r.ErrorCode)
	}
}
