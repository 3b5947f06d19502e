package proto

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// benchBatch is a typical producer batch: 1 KiB values, half random (so
// compression has real work), 16-byte keys.
func benchBatch(c Codec, n int) []byte {
	rng := rand.New(rand.NewPCG(41, 42))
	recs := make([]Record, n)
	for i := range recs {
		v := randBytes(rng, 1024)
		for j := 512; j < 1024; j++ {
			v[j] = byte(j % 7)
		}
		recs[i] = Record{Key: randBytes(rng, 16), Value: v, TimestampDelta: int64(i)}
	}
	return AppendBatch(nil, idempotentSpec(c), recs)
}

func BenchmarkValidateProduceBatches(b *testing.B) {
	for _, c := range []Codec{CodecNone, CodecZstd, CodecLZ4, CodecSnappy, CodecGzip} {
		for _, n := range []int{1, 100} {
			raw := benchBatch(c, n)
			b.Run(fmt.Sprintf("%s/%drecs", c, n), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(n * 1024))
				for b.Loop() {
					if _, err := ValidateProduceBatches(raw, 1<<20); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkForEachRecord(b *testing.B) {
	for _, c := range []Codec{CodecNone, CodecZstd} {
		raw := benchBatch(c, 100)
		batch, _ := ParseBatchHeader(raw)
		b.Run(c.String(), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(100 * 1024)
			n := 0
			for b.Loop() {
				if err := ForEachRecord(batch, func(r Record) error { n += len(r.Value); return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeFetchResponse(b *testing.B) {
	for _, shape := range []struct{ topics, parts int }{{1, 1}, {10, 10}} {
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = 16
		for t := range shape.topics {
			topic := kmsg.NewFetchResponseTopic()
			topic.TopicID[0] = byte(t)
			for p := range shape.parts {
				part := kmsg.NewFetchResponseTopicPartition()
				part.Partition = int32(p)
				part.HighWatermark = 1 << 40
				part.LastStableOffset = 1 << 40
				part.LogStartOffset = 0
				topic.Partitions = append(topic.Partitions, part)
			}
			resp.Topics = append(resp.Topics, topic)
		}
		src := &struct{ pos, n int64 }{0, 1 << 20}
		b.Run(fmt.Sprintf("%dx%d", shape.topics, shape.parts), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				chunks, _ := EncodeFetchResponse(1, resp, func(t, p int) (any, int64) { return src, src.n })
				if len(chunks) != 2*shape.topics*shape.parts+1 {
					b.Fatal(len(chunks))
				}
			}
		})
	}
}

func BenchmarkAppendResponseFetchKmsg(b *testing.B) {
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 16
	topic := kmsg.NewFetchResponseTopic()
	part := kmsg.NewFetchResponseTopicPartition()
	part.RecordBatches = make([]byte, 1<<20)
	topic.Partitions = append(topic.Partitions, part)
	resp.Topics = append(resp.Topics, topic)
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = AppendResponse(buf[:0], 1, resp)
	}
}
