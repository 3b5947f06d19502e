package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Every fuzz target checks two things: no panic, and that an error is always
// one of the package's own (so the broker can map it to a Kafka code).

func checkOwnError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if _, ok := ErrorCode(err); !ok {
		t.Fatalf("error not mapped to a Kafka code: %v", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c'}, int32(10))
	f.Add([]byte{0, 0, 0, 0}, int32(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, int32(100))
	f.Add([]byte{0, 0, 0x10, 0, 1}, int32(1<<20))
	f.Fuzz(func(t *testing.T, in []byte, max int32) {
		max &= 1<<24 - 1 // keep allocations small; sizes above it are rejected early
		got, err := ReadFrame(bytes.NewReader(in), max, nil)
		if err != nil {
			if !errors.Is(err, ErrFrameTooLarge) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(got) > int(max) || !bytes.Equal(got, in[4:4+len(got)]) {
			t.Fatalf("frame of %d bytes does not match the input", len(got))
		}
	})
}

// parseSeeds are valid request frames of several API keys and header
// layouts.
func parseSeeds() [][]byte {
	id := "fuzz"
	batch := AppendBatch(nil, idempotentSpec(CodecNone), []Record{{Key: []byte("k"), Value: []byte("v")}})
	var seeds [][]byte
	add := func(r kmsg.Request, v int16) {
		r.SetVersion(v)
		seeds = append(seeds, frameOf(r, 1, &id))
	}
	for _, v := range []int16{3, 9, 11} {
		r := kmsg.NewPtrProduceRequest()
		r.Acks = -1
		r.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch}}}}
		add(r, v)
	}
	for _, v := range []int16{4, 12, 13, 17} {
		r := kmsg.NewPtrFetchRequest()
		r.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, FetchOffset: 5}}}}
		r.Topics[0].TopicID[0] = 9
		add(r, v)
	}
	for _, v := range []int16{0, 3, 4} {
		r := kmsg.NewPtrApiVersionsRequest()
		r.ClientSoftwareName = "x"
		add(r, v)
	}
	for _, v := range []int16{1, 9, 12} {
		r := kmsg.NewPtrMetadataRequest()
		r.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("t")}}
		add(r, v)
	}
	for _, v := range []int16{0, 5, 9} {
		r := kmsg.NewPtrJoinGroupRequest()
		r.Group = "g"
		r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 1, 2}}}
		add(r, v)
	}
	add(kmsg.NewPtrListOffsetsRequest(), 7)
	add(kmsg.NewPtrOffsetCommitRequest(), 8)
	add(kmsg.NewPtrCreateTopicsRequest(), 5)
	return seeds
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range parseSeeds() {
		f.Add(s)
	}
	f.Add([]byte{0, 18, 0, 99, 0, 0, 0, 1, 0, 1, 'x'})
	f.Fuzz(func(t *testing.T, frame []byte) {
		hdr, req, err := ParseRequest(frame)
		checkOwnError(t, err)
		if err != nil {
			if req != nil {
				t.Fatal("request with error")
			}
			return
		}
		if req.Key() != hdr.APIKey || req.GetVersion() != hdr.APIVersion {
			t.Fatalf("header %+v, request key %d v%d", hdr, req.Key(), req.GetVersion())
		}
		_ = req.AppendTo(nil) // whatever decoded must encode
	})
}

// batchSeeds are valid produce batches for every codec, plus a two-batch
// payload.
func batchSeeds() [][]byte {
	rng := rand.New(rand.NewPCG(31, 32))
	var seeds [][]byte
	for _, c := range allCodecs {
		seeds = append(seeds, AppendBatch(nil, idempotentSpec(c), testRecords(rng, 3, 20)))
	}
	two := AppendBatch(nil, BatchSpec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, []Record{{Value: []byte("a")}})
	seeds = append(seeds, append(bytes.Clone(two), two...))
	return seeds
}

// With fixCRC the first batch's length and CRC are made consistent before
// validation, so mutations get past the CRC into record decoding.
func FuzzValidateProduceBatches(f *testing.F) {
	for _, s := range batchSeeds() {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, in []byte, fixCRC bool) {
		if fixCRC && len(in) >= BatchHeaderSize {
			binary.BigEndian.PutUint32(in[offBatchLength:], uint32(len(in)-logOverhead))
			binary.BigEndian.PutUint32(in[offCRC:], CRC32C(in[offAttributes:]))
		}
		batches, err := ValidateProduceBatches(in, 1<<20)
		checkOwnError(t, err)
		if err != nil {
			return
		}
		// Whatever validates must also iterate, and cover the input.
		total := 0
		for _, b := range batches {
			total += len(b.Raw)
			n := int32(0)
			if err := ForEachRecord(b, func(Record) error { n++; return nil }); err != nil || n != b.NumRecords {
				t.Fatalf("validated batch: %d/%d records, %v", n, b.NumRecords, err)
			}
		}
		if total != len(in) {
			t.Fatalf("batches cover %d of %d bytes", total, len(in))
		}
	})
}

// FuzzForEachRecord feeds arbitrary bytes as the records of a batch (the
// header is fixed, so the fuzzer spends its time in record decoding and
// decompression).
func FuzzForEachRecord(f *testing.F) {
	for _, s := range batchSeeds()[:len(allCodecs)] {
		b, _ := ParseBatchHeader(s)
		f.Add(s[BatchHeaderSize:], uint8(b.Codec()), b.NumRecords)
	}
	f.Fuzz(func(t *testing.T, records []byte, codec uint8, n int32) {
		raw := make([]byte, BatchHeaderSize, BatchHeaderSize+len(records))
		raw[offMagic] = 2
		binary.BigEndian.PutUint16(raw[offAttributes:], uint16(codec&attrCodecMask))
		binary.BigEndian.PutUint32(raw[offNumRecords:], uint32(n))
		raw = append(raw, records...)
		binary.BigEndian.PutUint32(raw[offBatchLength:], uint32(len(raw)-logOverhead))
		b, err := ParseBatchHeader(raw)
		if err != nil {
			t.Fatal(err)
		}
		seen := int32(0)
		err = ForEachRecord(b, func(r Record) error {
			seen++
			for _, h := range r.Headers {
				_ = len(h.Key) + len(h.Value)
			}
			return nil
		})
		checkOwnError(t, err)
		if err == nil && seen != n {
			t.Fatalf("%d records for a count of %d", seen, n)
		}
	})
}

// FuzzDecompress covers the codecs on their own, including the bounded
// read loop.
func FuzzDecompress(f *testing.F) {
	for _, c := range allCodecs {
		z, _ := Compress(c, nil, []byte("hello hello hello hello"))
		f.Add(z, uint8(c))
	}
	f.Fuzz(func(t *testing.T, data []byte, codec uint8) {
		c := Codec(codec % 5)
		out, err := DecompressLimit(c, nil, data, 1<<20)
		checkOwnError(t, err)
		if err == nil && len(out) > 1<<20 {
			t.Fatalf("%d bytes past the limit", len(out))
		}
	})
}
