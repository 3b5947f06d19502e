package proto

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	return b
}

// randLen favours small values but crosses the one-byte compact-length
// boundary (127) often.
func randLen(rng *rand.Rand) int {
	switch rng.IntN(4) {
	case 0:
		return 0
	case 1:
		return rng.IntN(8)
	case 2:
		return 120 + rng.IntN(20)
	}
	return rng.IntN(400)
}

func randTags(rng *rand.Rand) kmsg.Tags {
	var t kmsg.Tags
	if rng.IntN(4) == 0 {
		for range 1 + rng.IntN(3) {
			t.Set(uint32(10+rng.IntN(300)), randBytes(rng, rng.IntN(5)))
		}
	}
	return t
}

// randFetchResponse fills every field kmsg encodes, each either at its
// default (so tagged fields are skipped) or random.
func randFetchResponse(rng *rand.Rand, version int16) *kmsg.FetchResponse {
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = version
	resp.ThrottleMillis = rng.Int32()
	resp.ErrorCode = int16(rng.IntN(100))
	resp.SessionID = rng.Int32()
	resp.UnknownTags = randTags(rng)
	for range rng.IntN(4) {
		t := kmsg.NewFetchResponseTopic()
		t.Topic = string(bytes.Repeat([]byte("t"), randLen(rng)))
		copy(t.TopicID[:], randBytes(rng, 16))
		t.UnknownTags = randTags(rng)
		for range rng.IntN(5) {
			p := kmsg.NewFetchResponseTopicPartition()
			p.Partition = rng.Int32()
			p.ErrorCode = int16(rng.IntN(120))
			p.HighWatermark = rng.Int64()
			p.LastStableOffset = rng.Int64()
			p.LogStartOffset = rng.Int64()
			p.PreferredReadReplica = rng.Int32N(5) - 1
			if rng.IntN(2) == 0 {
				p.DivergingEpoch.Epoch = rng.Int32()
				p.DivergingEpoch.EndOffset = rng.Int64()
				p.DivergingEpoch.UnknownTags = randTags(rng)
			}
			if rng.IntN(2) == 0 {
				p.CurrentLeader.LeaderID = rng.Int32N(10)
				p.CurrentLeader.LeaderEpoch = rng.Int32()
				p.CurrentLeader.UnknownTags = randTags(rng)
			}
			if rng.IntN(3) == 0 {
				p.SnapshotID.EndOffset = rng.Int64()
				p.SnapshotID.Epoch = rng.Int32()
			}
			switch rng.IntN(3) {
			case 0: // nil: null array
			case 1:
				p.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
			default:
				for range 1 + rng.IntN(3) {
					p.AbortedTransactions = append(p.AbortedTransactions, kmsg.FetchResponseTopicPartitionAbortedTransaction{
						ProducerID: rng.Int64(), FirstOffset: rng.Int64(), UnknownTags: randTags(rng),
					})
				}
			}
			p.RecordBatches = randBytes(rng, randLen(rng)) // never nil: kmsg would write null
			p.UnknownTags = randTags(rng)
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	for range rng.IntN(3) {
		b := kmsg.NewFetchResponseBroker()
		b.NodeID = rng.Int32N(10)
		b.Host = string(bytes.Repeat([]byte("h"), randLen(rng)))
		b.Port = rng.Int32N(65536)
		if rng.IntN(2) == 0 {
			b.Rack = kmsg.StringPtr("rack-" + fmt.Sprint(rng.IntN(3)))
		}
		b.UnknownTags = randTags(rng)
		resp.Brokers = append(resp.Brokers, b)
	}
	return resp
}

// splice concatenates chunks, taking records chunks' bytes from their
// []byte sources.
func splice(t *testing.T, chunks []Chunk) []byte {
	t.Helper()
	var out []byte
	for i, c := range chunks {
		switch {
		case c.Records != nil:
			src := c.Records.([]byte)
			if int64(len(src)) != c.N {
				t.Fatalf("chunk %d: N %d for %d bytes", i, c.N, len(src))
			}
			out = append(out, src...)
		default:
			if int64(len(c.Bytes)) != c.N {
				t.Fatalf("chunk %d: N %d for %d bytes", i, c.N, len(c.Bytes))
			}
			if i > 0 && chunks[i-1].Records == nil {
				t.Fatalf("chunks %d and %d are both bytes: not merged", i-1, i)
			}
			out = append(out, c.Bytes...)
		}
	}
	return out
}

func TestEncodeFetchResponseMatchesKmsg(t *testing.T) {
	for v := int16(0); v <= (&kmsg.FetchResponse{}).MaxVersion(); v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(v), 2024))
			for iter := range 300 {
				resp := randFetchResponse(rng, v)
				corr := rng.Int32()
				want := AppendResponse(nil, corr, resp)

				recordChunks := 0
				chunks, total := EncodeFetchResponse(corr, resp, func(ti, pi int) (any, int64) {
					b := resp.Topics[ti].Partitions[pi].RecordBatches
					if len(b) > 0 {
						recordChunks++
					}
					return b, int64(len(b))
				})
				got := splice(t, chunks)
				if total != int64(len(want)) {
					t.Fatalf("iter %d: total %d, want %d", iter, total, len(want))
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("iter %d: differs from kmsg at byte %d of %d", iter, firstDiff(got, want), len(want))
				}
				n := 0
				for _, c := range chunks {
					if c.Records != nil {
						n++
					}
				}
				if n != recordChunks || len(chunks) > 2*recordChunks+1 {
					t.Fatalf("iter %d: %d chunks, %d records chunks, want %d", iter, len(chunks), n, recordChunks)
				}

				// A nil records function inlines RecordBatches.
				inline, total := EncodeFetchResponse(corr, resp, nil)
				if len(inline) != 1 || total != int64(len(want)) || !bytes.Equal(inline[0].Bytes, want) {
					t.Fatalf("iter %d: inline encoding differs", iter)
				}
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// An empty records field must be a zero-length array, never null (librdkafka
// rejects null), whether the source says n == 0 or RecordBatches is nil.
func TestEncodeFetchResponseEmptyRecordsNotNull(t *testing.T) {
	for _, v := range []int16{4, 11, 12, 13, 16, 17} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			resp := kmsg.NewPtrFetchResponse()
			resp.Version = v
			topic := kmsg.NewFetchResponseTopic()
			topic.Topic = "t"
			topic.TopicID = [16]byte{1, 2, 3}
			for i := range 2 {
				p := kmsg.NewFetchResponseTopicPartition()
				p.Partition = int32(i)
				p.HighWatermark = 10
				topic.Partitions = append(topic.Partitions, p) // RecordBatches nil
			}
			resp.Topics = append(resp.Topics, topic)

			for name, records := range map[string]func(int, int) (any, int64){
				"n==0":   func(int, int) (any, int64) { return nil, 0 },
				"inline": nil,
			} {
				chunks, total := EncodeFetchResponse(5, resp, records)
				if len(chunks) != 1 || chunks[0].Records != nil {
					t.Fatalf("%s: %d chunks, want one bytes chunk", name, len(chunks))
				}
				frame := chunks[0].Bytes
				if int64(len(frame)) != total {
					t.Fatalf("%s: total %d for %d bytes", name, total, len(frame))
				}
				body := frame[8:]
				if v >= 12 {
					body = body[1:]
				}
				back := kmsg.NewPtrFetchResponse()
				back.Version = v
				if err := back.ReadFrom(body); err != nil {
					t.Fatalf("%s: kmsg cannot read it: %v", name, err)
				}
				for _, p := range back.Topics[0].Partitions {
					if p.RecordBatches == nil || len(p.RecordBatches) != 0 {
						t.Fatalf("%s: partition %d records %v, want empty non-null", name, p.Partition, p.RecordBatches)
					}
				}
				// Byte-for-byte what kmsg writes for a non-nil empty field.
				want := resp
				for i := range want.Topics[0].Partitions {
					want.Topics[0].Partitions[i].RecordBatches = []byte{}
				}
				if w := AppendResponse(nil, 5, want); !bytes.Equal(frame, w) {
					t.Fatalf("%s: differs from kmsg with empty records", name)
				}
				for i := range want.Topics[0].Partitions {
					want.Topics[0].Partitions[i].RecordBatches = nil
				}
			}
		})
	}
}

// Real batches spliced into a response decode with kmsg, and the records
// chunk carries the caller's source untouched.
func TestEncodeFetchResponseSplicedBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var log []byte
	for i := range 3 {
		spec := idempotentSpec(CodecLZ4)
		spec.BaseOffset = int64(i * 10)
		log = AppendBatch(log, spec, testRecords(rng, 10, 100))
	}
	type fileRange struct{ pos, n int64 }
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 16
	topic := kmsg.NewFetchResponseTopic()
	p := kmsg.NewFetchResponseTopicPartition()
	p.HighWatermark = 30
	topic.Partitions = append(topic.Partitions, p)
	resp.Topics = append(resp.Topics, topic)

	chunks, total := EncodeFetchResponse(1, resp, func(int, int) (any, int64) {
		return fileRange{0, int64(len(log))}, int64(len(log))
	})
	if len(chunks) != 3 {
		t.Fatalf("%d chunks, want bytes, records, bytes", len(chunks))
	}
	if fr, ok := chunks[1].Records.(fileRange); !ok || fr.n != int64(len(log)) {
		t.Fatalf("records chunk %#v", chunks[1])
	}
	var frame []byte
	frame = append(frame, chunks[0].Bytes...)
	frame = append(frame, log...)
	frame = append(frame, chunks[2].Bytes...)
	if int64(len(frame)) != total {
		t.Fatalf("total %d, frame %d", total, len(frame))
	}
	back := kmsg.NewPtrFetchResponse()
	back.Version = 16
	if err := back.ReadFrom(frame[9:]); err != nil {
		t.Fatal(err)
	}
	got := back.Topics[0].Partitions[0].RecordBatches
	if !bytes.Equal(got, log) {
		t.Fatal("records differ")
	}
	n := 0
	if err := SplitBatches(got, true, func(Batch) error { n++; return nil }); err != nil || n != 3 {
		t.Fatalf("split: %d batches, %v", n, err)
	}
}
