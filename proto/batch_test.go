package proto

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kmsgBatch builds the batch a client would, with kmsg's own encoders, as an
// independent reference for AppendBatch.
func kmsgBatch(spec BatchSpec, recs []Record) []byte {
	var raw []byte
	maxDelta := int64(0)
	for i, r := range recs {
		kr := kmsg.Record{
			Attributes:       r.Attributes,
			TimestampDelta64: r.TimestampDelta,
			OffsetDelta:      int32(i),
			Key:              r.Key,
			Value:            r.Value,
		}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		body := kr.AppendTo(nil)
		kr.Length = int32(len(body) - 1) // Length 0 encodes as one byte
		raw = kr.AppendTo(raw)
		maxDelta = max(maxDelta, r.TimestampDelta)
	}
	b := kmsg.RecordBatch{
		FirstOffset:          spec.BaseOffset,
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           int16(spec.Codec),
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       spec.FirstTimestamp,
		MaxTimestamp:         spec.FirstTimestamp + maxDelta,
		ProducerID:           spec.ProducerID,
		ProducerEpoch:        spec.ProducerEpoch,
		FirstSequence:        spec.BaseSequence,
		NumRecords:           int32(len(recs)),
		Records:              raw,
	}
	if spec.Transactional {
		b.Attributes |= attrTransactional
	}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[offBatchLength:], uint32(len(out)-logOverhead))
	binary.BigEndian.PutUint32(out[offCRC:], CRC32C(out[offAttributes:]))
	return out
}

func TestAppendBatchMatchesKmsg(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 17, 200} {
		spec := idempotentSpec(CodecNone)
		spec.BaseOffset = 1234
		spec.Transactional = n%2 == 0
		recs := testRecords(rng, n, 300)
		got := AppendBatch(nil, spec, recs)
		want := kmsgBatch(spec, recs)
		if !bytes.Equal(got, want) {
			t.Fatalf("%d records: differs from kmsg at byte %d", n, firstDiff(got, want))
		}
	}
}

// AppendBatch output for every codec passes produce validation, reads back
// through ForEachRecord, and is accepted by franz-go's consumer-side parser
// (CRC, decompression, record decoding).
func TestBatchRoundTripAllCodecs(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range allCodecs {
		for _, n := range []int{1, 3, 500} {
			t.Run(fmt.Sprintf("%s/%d", c, n), func(t *testing.T) {
				recs := testRecords(rng, n, 200)
				spec := idempotentSpec(c)
				raw := AppendBatch([]byte("prefix"), spec, recs)[len("prefix"):]

				batches, err := ValidateProduceBatches(raw, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				if len(batches) != 1 || !bytes.Equal(batches[0].Raw, raw) || &batches[0].Raw[0] != &raw[0] {
					t.Fatal("batch does not alias the input")
				}
				b := batches[0]
				if b.Codec() != c || b.NumRecords != int32(n) || b.LastOffsetDelta != int32(n-1) ||
					b.ProducerID != 42 || b.ProducerEpoch != 3 || b.BaseSequence != 7 ||
					b.PartitionLeaderEpoch != -1 || b.Magic != 2 || b.BatchLength != int32(len(raw)-12) {
					t.Fatalf("header %+v", b)
				}
				if b.MaxTimestamp != spec.FirstTimestamp+int64(3*(n-1)) {
					t.Fatalf("max timestamp %d", b.MaxTimestamp)
				}
				if b.LastSequence() != 7+int32(n-1) {
					t.Fatalf("last sequence %d", b.LastSequence())
				}

				i := 0
				err = ForEachRecord(b, func(r Record) error {
					w := recs[i]
					if r.OffsetDelta != int32(i) || r.TimestampDelta != w.TimestampDelta ||
						!sameBytes(r.Key, w.Key) || !sameBytes(r.Value, w.Value) || len(r.Headers) != len(w.Headers) {
						return fmt.Errorf("record %d differs: %+v", i, r)
					}
					for j, h := range r.Headers {
						if h.Key != w.Headers[j].Key || !sameBytes(h.Value, w.Headers[j].Value) {
							return fmt.Errorf("record %d header %d differs", i, j)
						}
					}
					i++
					return nil
				})
				if err != nil || i != n {
					t.Fatalf("ForEachRecord: %d records, %v", i, err)
				}

				// franz-go as the consumer.
				kb := SetBaseOffsetCopy(raw, 100)
				fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Offset: 100, Topic: "t"},
					&kmsg.FetchResponseTopicPartition{HighWatermark: int64(100 + n), RecordBatches: kb},
					kgo.DefaultDecompressor(), nil)
				if fp.Err != nil || len(fp.Records) != n {
					t.Fatalf("kgo: %d records, err %v", len(fp.Records), fp.Err)
				}
				for i, r := range fp.Records {
					if r.Offset != int64(100+i) || !bytes.Equal(r.Value, recs[i].Value) || !bytes.Equal(r.Key, recs[i].Key) {
						t.Fatalf("kgo record %d: %+v", i, r)
					}
				}
			})
		}
	}
}

// SetBaseOffsetCopy is SetBaseOffset on a copy, for tests.
func SetBaseOffsetCopy(raw []byte, off int64) []byte {
	c := bytes.Clone(raw)
	SetBaseOffset(c, off)
	return c
}

// sameBytes distinguishes nil (null) from empty.
func sameBytes(a, b []byte) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}

// Batches compressed by franz-go's producer-side compressor (its own snappy
// framing, lz4 and zstd settings) validate.
func TestValidateFranzGoCompressed(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	codecs := map[Codec]kgo.CompressionCodec{
		CodecGzip: kgo.GzipCompression(), CodecSnappy: kgo.SnappyCompression(),
		CodecLZ4: kgo.Lz4Compression(), CodecZstd: kgo.ZstdCompression(),
	}
	for c, kc := range codecs {
		t.Run(c.String(), func(t *testing.T) {
			comp, err := kgo.DefaultCompressor(kc)
			if err != nil {
				t.Fatal(err)
			}
			recs := testRecords(rng, 50, 500)
			plain := AppendBatch(nil, idempotentSpec(CodecNone), recs)
			var buf bytes.Buffer
			z, used := comp.Compress(&buf, plain[BatchHeaderSize:])
			if int8(used) != int8(c) {
				t.Fatalf("kgo used codec %d", used)
			}
			raw := append(bytes.Clone(plain[:BatchHeaderSize]), z...)
			binary.BigEndian.PutUint32(raw[offBatchLength:], uint32(len(raw)-logOverhead))
			binary.BigEndian.PutUint16(raw[offAttributes:], uint16(c))
			binary.BigEndian.PutUint32(raw[offCRC:], CRC32C(raw[offAttributes:]))
			if _, err := ValidateProduceBatches(raw, 1<<20); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// mutate applies f to a copy of raw and fixes the CRC afterwards unless
// keepCRC, so that each case tests one rule rather than the CRC.
func mutate(raw []byte, keepCRC bool, f func(b []byte) []byte) []byte {
	b := f(bytes.Clone(raw))
	if !keepCRC && len(b) >= BatchHeaderSize {
		binary.BigEndian.PutUint32(b[offBatchLength:], uint32(len(b)-logOverhead))
		binary.BigEndian.PutUint32(b[offCRC:], CRC32C(b[offAttributes:]))
	}
	return b
}

func TestValidateProduceBatchesErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	recs := testRecords(rng, 5, 50)
	good := AppendBatch(nil, idempotentSpec(CodecNone), recs)
	zgood := AppendBatch(nil, idempotentSpec(CodecZstd), recs)
	put32 := func(at int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint32(b[at:], v); return b }
	}
	setAttr := func(a uint16) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint16(b[offAttributes:], a); return b }
	}
	// A record body rebuilt with a wrong offset delta.
	badDelta := func() []byte {
		rs := testRecords(rng, 3, 10)
		rs[1].OffsetDelta = 5
		spec := idempotentSpec(CodecNone)
		spec.KeepOffsetDeltas = true
		b := AppendBatch(nil, spec, rs)
		return mutate(b, false, put32(offLastOffDelta, 2))
	}()

	tests := []struct {
		name    string
		in      []byte
		max     int32
		wantErr error
	}{
		{name: "empty", in: nil, wantErr: ErrInvalidRecord},
		{name: "short", in: good[:10], wantErr: ErrCorrupt},
		{name: "truncated", in: good[:len(good)-1], wantErr: ErrCorrupt},
		{name: "header only", in: good[:BatchHeaderSize], wantErr: ErrCorrupt},
		{name: "length below header", in: mutate(good, true, put32(offBatchLength, 20)), wantErr: ErrCorrupt},
		{name: "negative length", in: mutate(good, true, put32(offBatchLength, math.MaxUint32)), wantErr: ErrCorrupt},
		{name: "trailing bytes", in: append(bytes.Clone(good), 1, 2, 3), wantErr: ErrCorrupt},
		{name: "crc", in: mutate(good, true, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), wantErr: ErrCorrupt},
		{name: "magic 1", in: mutate(good, false, func(b []byte) []byte { b[offMagic] = 1; return b }), wantErr: ErrInvalidRecord},
		{name: "base offset", in: mutate(good, true, func(b []byte) []byte { SetBaseOffset(b, 5); return b }), wantErr: ErrInvalidRecord},
		{name: "codec 5", in: mutate(good, false, setAttr(5)), wantErr: ErrUnsupportedCodec},
		{name: "codec 7", in: mutate(good, false, setAttr(7)), wantErr: ErrUnsupportedCodec},
		{name: "control", in: mutate(good, false, setAttr(attrControl)), wantErr: ErrInvalidRecord},
		{name: "last offset delta", in: mutate(good, false, put32(offLastOffDelta, 3)), wantErr: ErrInvalidRecord},
		{name: "zero records", in: mutate(good, false, func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offNumRecords:], 0)
			binary.BigEndian.PutUint32(b[offLastOffDelta:], math.MaxUint32)
			return b[:BatchHeaderSize]
		}), wantErr: ErrInvalidRecord},
		{name: "count above records", in: mutate(good, false, func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offNumRecords:], 6)
			binary.BigEndian.PutUint32(b[offLastOffDelta:], 5)
			return b
		}), wantErr: ErrInvalidRecord},
		{name: "count below records", in: mutate(good, false, func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offNumRecords:], 4)
			binary.BigEndian.PutUint32(b[offLastOffDelta:], 3)
			return b
		}), wantErr: ErrInvalidRecord},
		{name: "huge count", in: mutate(good, false, func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offNumRecords:], math.MaxInt32)
			binary.BigEndian.PutUint32(b[offLastOffDelta:], math.MaxInt32-1)
			return b
		}), wantErr: ErrInvalidRecord},
		{name: "offset delta gap", in: badDelta, wantErr: ErrInvalidRecord},
		{name: "record length past batch", in: mutate(good, false, func(b []byte) []byte {
			b[BatchHeaderSize] = 0x7e // varint 63, far more than the first record
			return b
		}), wantErr: ErrInvalidRecord},
		{name: "too large", in: good, max: int32(len(good) - 1), wantErr: ErrBatchTooLarge},
		{name: "exactly max", in: good, max: int32(len(good))},
		{name: "no limit", in: good, max: 0},
		{name: "zstd garbage", in: mutate(zgood, false, func(b []byte) []byte {
			for i := BatchHeaderSize + 4; i < len(b); i++ {
				b[i] ^= 0x5a
			}
			return b
		}), wantErr: ErrCorrupt},
		{name: "zstd cut short", in: mutate(zgood, false, func(b []byte) []byte { return b[:len(b)-5] }), wantErr: ErrCorrupt},
		{name: "second batch bad", in: append(bytes.Clone(good), mutate(good, true, func(b []byte) []byte { b[30] ^= 1; return b })...), wantErr: ErrCorrupt},
		{name: "two good batches", in: append(bytes.Clone(good), good...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			max := tt.max
			if max == 0 && tt.name != "no limit" {
				max = 1 << 20
			}
			got, err := ValidateProduceBatches(tt.in, max)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				total := 0
				for _, b := range got {
					total += len(b.Raw)
				}
				if total != len(tt.in) {
					t.Fatalf("batches cover %d of %d bytes", total, len(tt.in))
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != nil {
				t.Fatal("batches returned with an error")
			}
		})
	}
}

// Malformed records inside an intact batch: each is INVALID_RECORD.
func TestValidateMalformedRecords(t *testing.T) {
	record := func(fields ...[]byte) []byte {
		body := bytes.Join(fields, nil)
		return append(appendVarint(nil, int32(len(body))), body...)
	}
	v := func(x int32) []byte { return appendVarint(nil, x) }
	vl := func(x int64) []byte { return appendVarlong(nil, x) }
	attr := []byte{0}
	tests := []struct {
		name    string
		records []byte
	}{
		{"zero length", v(0)},
		{"negative length", v(-3)},
		{"bad length varint", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"key length -2", record(attr, vl(0), v(0), v(-2), v(-1), v(0))},
		{"key past end", record(attr, vl(0), v(0), v(50), v(-1), v(0))},
		{"value past end", record(attr, vl(0), v(0), v(-1), v(9), v(0))},
		{"negative header count", record(attr, vl(0), v(0), v(-1), v(-1), v(-1))},
		{"header count past end", record(attr, vl(0), v(0), v(-1), v(-1), v(40))},
		{"negative header key", record(attr, vl(0), v(0), v(-1), v(-1), v(1), v(-1), v(-1))},
		{"header value -2", record(attr, vl(0), v(0), v(-1), v(-1), v(1), v(0), v(-2))},
		{"bytes after headers", record(attr, vl(0), v(0), v(-1), v(-1), v(0), []byte{9})},
		{"missing header count", record(attr, vl(0), v(0), v(-1), v(-1))},
		{"timestamp varlong too long", record(attr, bytes.Repeat([]byte{0xff}, 11), v(0), v(-1), v(-1), v(0))},
		{"offset delta above 32 bits", record(attr, vl(0), []byte{0xff, 0xff, 0xff, 0xff, 0x7f}, v(-1), v(-1), v(0))},
	}
	valid := record(attr, vl(0), v(0), v(-1), v(-1), v(0))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, recs := range [][]byte{tt.records, append(bytes.Clone(valid), tt.records...)} {
				n := int32(1)
				if len(recs) > len(tt.records) {
					n = 2
				}
				raw := rawBatch(recs, n, CodecNone)
				if _, err := ValidateProduceBatches(raw, 1<<20); !errors.Is(err, ErrInvalidRecord) {
					t.Fatalf("err = %v, want ErrInvalidRecord", err)
				}
				b, _ := ParseBatchHeader(raw)
				if err := ForEachRecord(b, func(Record) error { return nil }); !errors.Is(err, ErrInvalidRecord) {
					t.Fatalf("ForEachRecord err = %v", err)
				}
			}
		})
	}
	if _, err := ValidateProduceBatches(rawBatch(valid, 1, CodecNone), 1<<20); err != nil {
		t.Fatalf("control case: %v", err)
	}
}

// rawBatch wraps already-encoded records (compressing them with c) in a
// valid v2 header.
func rawBatch(records []byte, n int32, c Codec) []byte {
	raw := AppendBatch(nil, BatchSpec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, nil)
	z, err := Compress(c, nil, records)
	if err != nil {
		panic(err)
	}
	raw = append(raw, z...)
	binary.BigEndian.PutUint16(raw[offAttributes:], uint16(c))
	binary.BigEndian.PutUint32(raw[offNumRecords:], uint32(n))
	binary.BigEndian.PutUint32(raw[offLastOffDelta:], uint32(n-1))
	binary.BigEndian.PutUint32(raw[offBatchLength:], uint32(len(raw)-logOverhead))
	binary.BigEndian.PutUint32(raw[offCRC:], CRC32C(raw[offAttributes:]))
	return raw
}

func TestSplitBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	var log []byte
	var ends []int
	for i, c := range allCodecs {
		spec := idempotentSpec(c)
		spec.BaseOffset = int64(i * 100)
		log = AppendBatch(log, spec, testRecords(rng, 4, 30))
		SetPartitionLeaderEpoch(log[ends0(ends):], int32(i))
		ends = append(ends, len(log))
	}

	t.Run("whole log", func(t *testing.T) {
		var got []int64
		err := SplitBatches(log, true, func(b Batch) error {
			got = append(got, b.BaseOffset)
			if b.PartitionLeaderEpoch != int32(len(got)-1) {
				return fmt.Errorf("epoch %d", b.PartitionLeaderEpoch)
			}
			return nil
		})
		if err != nil || len(got) != len(allCodecs) || got[4] != 400 {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	t.Run("torn tail", func(t *testing.T) {
		for cut := ends[2] + 1; cut < ends[3]; cut += 7 {
			n := 0
			err := SplitBatches(log[:cut], true, func(b Batch) error { n++; return nil })
			if !errors.Is(err, ErrCorrupt) || n != 3 {
				t.Fatalf("cut at %d: %d batches, %v", cut, n, err)
			}
		}
	})
	t.Run("crc only when asked", func(t *testing.T) {
		bad := bytes.Clone(log)
		bad[ends[0]+40] ^= 0xff
		if err := SplitBatches(bad, true, func(Batch) error { return nil }); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("checked: %v", err)
		}
		if err := SplitBatches(bad, false, func(Batch) error { return nil }); err != nil {
			t.Fatalf("unchecked: %v", err)
		}
	})
	t.Run("callback error", func(t *testing.T) {
		stop := errors.New("stop")
		if err := SplitBatches(log, true, func(Batch) error { return stop }); err != stop {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		if err := SplitBatches(nil, true, func(Batch) error { return errors.New("called") }); err != nil {
			t.Fatal(err)
		}
	})
}

func ends0(ends []int) int {
	if len(ends) == 0 {
		return 0
	}
	return ends[len(ends)-1]
}

func TestSetters(t *testing.T) {
	raw := AppendBatch(nil, idempotentSpec(CodecGzip), testRecords(rand.New(rand.NewPCG(1, 1)), 3, 10))
	SetBaseOffset(raw, 987654321)
	SetPartitionLeaderEpoch(raw, 17)
	if _, err := nextBatch(raw, 0, true); err != nil {
		t.Fatalf("fields outside the CRC broke it: %v", err)
	}
	SetLogAppendTime(raw, 1_800_000_000_000)
	b, err := nextBatch(raw, 0, true)
	if err != nil {
		t.Fatalf("CRC after SetLogAppendTime: %v", err)
	}
	if b.BaseOffset != 987654321 || b.PartitionLeaderEpoch != 17 || !b.LogAppendTime() ||
		b.MaxTimestamp != 1_800_000_000_000 || b.FirstTimestamp != 1_700_000_000_000 || b.Codec() != CodecGzip {
		t.Fatalf("header %+v", b)
	}
	if err := ForEachRecord(b, func(Record) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestBatchAttributes(t *testing.T) {
	tests := []struct {
		spec                BatchSpec
		txn, control, isLAT bool
	}{
		{spec: BatchSpec{Codec: CodecSnappy}},
		{spec: BatchSpec{Transactional: true}, txn: true},
		{spec: BatchSpec{Transactional: true, Control: true}, txn: true, control: true},
	}
	for _, tt := range tests {
		raw := AppendBatch(nil, tt.spec, []Record{{Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 0}}})
		b, _ := ParseBatchHeader(raw)
		if b.IsTransactional() != tt.txn || b.IsControl() != tt.control || b.LogAppendTime() != tt.isLAT || b.Codec() != tt.spec.Codec {
			t.Fatalf("spec %+v: attributes %x", tt.spec, b.Attributes)
		}
	}
}

func TestLastSequence(t *testing.T) {
	tests := []struct {
		base, delta, want int32
	}{
		{0, 0, 0},
		{10, 4, 14},
		{-1, 4, -1},
		{math.MaxInt32, 0, math.MaxInt32},
		{math.MaxInt32, 1, 0},
		{math.MaxInt32 - 2, 5, 2},
	}
	for _, tt := range tests {
		b := Batch{BaseSequence: tt.base, LastOffsetDelta: tt.delta}
		if got := b.LastSequence(); got != tt.want {
			t.Errorf("LastSequence(%d, %d) = %d, want %d", tt.base, tt.delta, got, tt.want)
		}
	}
}

func TestParseBatchHeader(t *testing.T) {
	raw := AppendBatch(nil, idempotentSpec(CodecNone), []Record{{Value: []byte("x")}})
	if _, err := ParseBatchHeader(raw[:BatchHeaderSize-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short header: %v", err)
	}
	b, err := ParseBatchHeader(append(bytes.Clone(raw), "next batch"...))
	if err != nil || len(b.Raw) != len(raw) {
		t.Fatalf("Raw %d bytes, want %d (%v)", len(b.Raw), len(raw), err)
	}
}

func TestKeepOffsetDeltas(t *testing.T) {
	recs := []Record{{OffsetDelta: 0, Value: []byte("a")}, {OffsetDelta: 4, Value: []byte("b")}, {OffsetDelta: 9}}
	raw := AppendBatch(nil, BatchSpec{KeepOffsetDeltas: true, BaseOffset: 100}, recs)
	b, err := nextBatch(raw, 0, true)
	if err != nil || b.LastOffsetDelta != 9 || b.NumRecords != 3 {
		t.Fatalf("header %+v, %v", b, err)
	}
	var deltas []int32
	if err := ForEachRecord(b, func(r Record) error { deltas = append(deltas, r.OffsetDelta); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(deltas) != "[0 4 9]" {
		t.Fatalf("deltas %v", deltas)
	}
}

func TestForEachRecordStopsOnError(t *testing.T) {
	raw := AppendBatch(nil, idempotentSpec(CodecZstd), testRecords(rand.New(rand.NewPCG(2, 2)), 10, 10))
	b, _ := ParseBatchHeader(raw)
	n := 0
	err := ForEachRecord(b, func(Record) error {
		n++
		if n == 3 {
			return context.Canceled
		}
		return nil
	})
	if err != context.Canceled || n != 3 {
		t.Fatalf("n=%d err=%v", n, err)
	}
}

// The hot paths allocate per call, never per record.
func TestNoPerRecordAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector (sync.Pool drops items)")
	}
	rng := rand.New(rand.NewPCG(13, 14))
	for _, c := range []Codec{CodecNone, CodecZstd, CodecLZ4, CodecSnappy, CodecGzip} {
		raw := AppendBatch(nil, idempotentSpec(c), testRecords(rng, 1000, 100))
		b, _ := ParseBatchHeader(raw)
		sum := 0
		fe := testing.AllocsPerRun(20, func() {
			_ = ForEachRecord(b, func(r Record) error { sum += len(r.Value) + len(r.Headers); return nil })
		})
		va := testing.AllocsPerRun(20, func() {
			if _, err := ValidateProduceBatches(raw, 1<<20); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%s: ForEachRecord %.0f allocs, ValidateProduceBatches %.0f allocs for 1000 records", c, fe, va)
		if fe > 10 || va > 10 {
			t.Errorf("%s: ForEachRecord %.0f allocs, ValidateProduceBatches %.0f allocs for 1000 records", c, fe, va)
		}
	}
}
