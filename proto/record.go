package proto

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// Header is a record header. In ForEachRecord both fields alias the batch
// (or a scratch buffer) and are valid only during the callback.
type Header struct {
	Key   string
	Value []byte
}

// Record is one record of a v2 batch. Key and Value are nil when the wire
// says null (length -1) and empty, non-nil, for zero length.
type Record struct {
	Attributes     int8
	TimestampDelta int64
	OffsetDelta    int32
	Key, Value     []byte
	Headers        []Header
}

// ForEachRecord decodes the records of b (decompressing when needed, up to
// DefaultDecompressLimit bytes) and calls fn for each in order. It checks
// that the batch holds exactly NumRecords well-formed records, but not the
// CRC (see SplitBatches) nor offset deltas (compacted batches have gaps).
//
// fn must not retain the Record, its slices or its header strings: Key,
// Value and Headers alias the batch or a pooled decompression buffer, and
// the Headers slice is reused for the next record. Copy what must outlive
// the call. An error from fn stops the walk and is returned as is.
func ForEachRecord(b Batch, fn func(Record) error) error {
	return walkRecords(b, fn, false, DefaultDecompressLimit)
}

// scratchPool holds decompression buffers for validation and iteration; the
// decompressed bytes never outlive the call that fills them.
var scratchPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 64<<10)
	return &b
}}

// maxPooledScratch keeps one huge batch from pinning its buffer forever.
const maxPooledScratch = 8 << 20

// walkRecords decodes b's records, calling fn (when non-nil) for each. With
// produceRules it also requires offset deltas 0..n-1, which storage relies on
// to keep offsets dense.
func walkRecords(b Batch, fn func(Record) error, produceRules bool, limit int) error {
	if len(b.Raw) < BatchHeaderSize {
		return fmt.Errorf("records: batch of %d bytes: %w", len(b.Raw), ErrCorrupt)
	}
	data := b.Raw[BatchHeaderSize:]
	if c := b.Codec(); c != CodecNone {
		if c > CodecZstd {
			return fmt.Errorf("records: codec %d: %w", c, ErrUnsupportedCodec)
		}
		bufp := scratchPool.Get().(*[]byte)
		defer func() {
			if cap(*bufp) <= maxPooledScratch {
				scratchPool.Put(bufp)
			}
		}()
		out, err := DecompressLimit(c, (*bufp)[:0], data, limit)
		if cap(out) > cap(*bufp) {
			*bufp = out[:0]
		}
		if err != nil {
			return fmt.Errorf("records: %w", err)
		}
		data = out
	}
	n := b.NumRecords
	// Every record takes at least 7 bytes; refuse absurd counts before
	// looping over them.
	if n < 0 || int64(n)*7 > int64(len(data)) {
		return fmt.Errorf("records: %d records in %d bytes: %w", n, len(data), ErrInvalidRecord)
	}
	var rec Record
	for i := int32(0); i < n; i++ {
		var err error
		data, err = parseRecord(data, &rec, fn != nil)
		if err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		if produceRules && rec.OffsetDelta != i {
			return fmt.Errorf("record %d: offset delta %d: %w", i, rec.OffsetDelta, ErrInvalidRecord)
		}
		if fn != nil {
			if err := fn(rec); err != nil {
				return err
			}
		}
	}
	if len(data) != 0 {
		return fmt.Errorf("records: %d bytes after %d records: %w", len(data), n, ErrInvalidRecord)
	}
	return nil
}

// parseRecord decodes the record at the front of data into rec and returns
// the bytes after it. Header strings are only materialised when keepHeaders;
// validation needs the structure checked, not the values.
//
//	length varint, attributes int8, timestampDelta varlong,
//	offsetDelta varint, keyLength varint, key, valueLength varint, value,
//	headerCount varint, then per header: keyLength varint, key,
//	valueLength varint, value.
func parseRecord(data []byte, rec *Record, keepHeaders bool) ([]byte, error) {
	length, n := readVarint(data)
	if n <= 0 {
		return nil, fmt.Errorf("length varint: %w", ErrInvalidRecord)
	}
	if length < 1 || int64(length) > int64(len(data)-n) {
		return nil, fmt.Errorf("length %d with %d bytes left: %w", length, len(data)-n, ErrInvalidRecord)
	}
	p := data[n : n+int(length)]
	rest := data[n+int(length):]

	rec.Attributes = int8(p[0])
	p = p[1:]
	if rec.TimestampDelta, n = readVarlong(p); n <= 0 {
		return nil, fmt.Errorf("timestamp delta: %w", ErrInvalidRecord)
	}
	p = p[n:]
	if rec.OffsetDelta, n = readVarint(p); n <= 0 {
		return nil, fmt.Errorf("offset delta: %w", ErrInvalidRecord)
	}
	p = p[n:]
	var err error
	if rec.Key, p, err = readVarBytes(p); err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	if rec.Value, p, err = readVarBytes(p); err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	count, n := readVarint(p)
	if n <= 0 {
		return nil, fmt.Errorf("header count varint: %w", ErrInvalidRecord)
	}
	p = p[n:]
	// A header takes at least two bytes (two zero-length varints).
	if count < 0 || int64(count)*2 > int64(len(p)) {
		return nil, fmt.Errorf("%d headers in %d bytes: %w", count, len(p), ErrInvalidRecord)
	}
	rec.Headers = rec.Headers[:0]
	for j := int32(0); j < count; j++ {
		klen, n := readVarint(p)
		if n <= 0 || klen < 0 || int64(klen) > int64(len(p)-n) {
			return nil, fmt.Errorf("header %d key length: %w", j, ErrInvalidRecord)
		}
		key := p[n : n+int(klen)]
		p = p[n+int(klen):]
		var val []byte
		if val, p, err = readVarBytes(p); err != nil {
			return nil, fmt.Errorf("header %d value: %w", j, err)
		}
		if keepHeaders {
			rec.Headers = append(rec.Headers, Header{Key: aliasString(key), Value: val})
		}
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%d bytes past the record's fields: %w", len(p), ErrInvalidRecord)
	}
	return rest, nil
}

// aliasString views b as a string without copying; ForEachRecord documents
// that header keys must not be retained.
func aliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// readVarBytes reads a varint length (-1 = null) and that many bytes. The
// result's capacity is clipped so an append by the caller cannot scribble
// over the next field.
func readVarBytes(p []byte) (v, rest []byte, err error) {
	l, n := readVarint(p)
	if n <= 0 {
		return nil, nil, fmt.Errorf("length varint: %w", ErrInvalidRecord)
	}
	p = p[n:]
	switch {
	case l == -1:
		return nil, p, nil
	case l < -1 || int64(l) > int64(len(p)):
		return nil, nil, fmt.Errorf("length %d with %d bytes left: %w", l, len(p), ErrInvalidRecord)
	}
	return p[:l:l], p[l:], nil
}

// readVarint decodes a zig-zag varint that must fit 32 bits (at most 5
// bytes). n <= 0 means short or malformed input.
func readVarint(b []byte) (int32, int) {
	u, n := binary.Uvarint(b)
	if n <= 0 || n > 5 || u > math.MaxUint32 {
		return 0, -1
	}
	x := uint32(u)
	return int32(x>>1) ^ -int32(x&1), n
}

// readVarlong decodes a zig-zag varint of up to 64 bits (at most 10 bytes).
func readVarlong(b []byte) (int64, int) {
	u, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, -1
	}
	return int64(u>>1) ^ -int64(u&1), n
}

func appendVarint(dst []byte, v int32) []byte {
	return binary.AppendUvarint(dst, uint64(uint32(v<<1)^uint32(v>>31)))
}

func appendVarlong(dst []byte, v int64) []byte {
	return binary.AppendUvarint(dst, uint64(v<<1)^uint64(v>>63))
}

func varintLen(v int32) int { return uvarintLen(uint64(uint32(v<<1) ^ uint32(v>>31))) }

func varlongLen(v int64) int { return uvarintLen(uint64(v<<1) ^ uint64(v>>63)) }

func uvarintLen(u uint64) int {
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

func varBytesLen(b []byte) int {
	if b == nil {
		return varintLen(-1)
	}
	return varintLen(int32(len(b))) + len(b)
}

func appendVarBytes(dst, b []byte) []byte {
	if b == nil {
		return appendVarint(dst, -1)
	}
	dst = appendVarint(dst, int32(len(b)))
	return append(dst, b...)
}

// BatchSpec describes a batch for AppendBatch.
type BatchSpec struct {
	BaseOffset     int64
	FirstTimestamp int64
	ProducerID     int64 // -1 when not idempotent
	ProducerEpoch  int16 // -1 when not idempotent
	BaseSequence   int32 // -1 when not idempotent
	Transactional  bool
	Control        bool
	Codec          Codec

	// KeepOffsetDeltas makes AppendBatch write each record's OffsetDelta as
	// given (they must increase; compaction leaves gaps) instead of 0..n-1.
	KeepOffsetDeltas bool
}

// AppendBatch appends a complete v2 batch holding recs to dst: lengths, max
// timestamp (FirstTimestamp + the largest TimestampDelta), last offset delta
// and CRC filled in, records compressed with spec.Codec, partition leader
// epoch -1 (the appending leader stamps it). Record offset deltas are
// 0..n-1 unless spec.KeepOffsetDeltas.
//
// It panics on an unknown codec: specs come from code, not from the wire.
func AppendBatch(dst []byte, spec BatchSpec, recs []Record) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, BatchHeaderSize)...)

	maxDelta := int64(0)
	lastOffsetDelta := int32(len(recs) - 1)
	if spec.KeepOffsetDeltas && len(recs) > 0 {
		lastOffsetDelta = recs[len(recs)-1].OffsetDelta
	}
	for i := range recs {
		maxDelta = max(maxDelta, recs[i].TimestampDelta)
	}

	if spec.Codec == CodecNone {
		dst = appendRecords(dst, recs, spec.KeepOffsetDeltas)
	} else {
		bufp := scratchPool.Get().(*[]byte)
		raw := appendRecords((*bufp)[:0], recs, spec.KeepOffsetDeltas)
		var err error
		dst, err = Compress(spec.Codec, dst, raw)
		*bufp = raw[:0]
		if cap(raw) <= maxPooledScratch {
			scratchPool.Put(bufp)
		}
		if err != nil {
			panic(fmt.Sprintf("proto: AppendBatch: %v", err))
		}
	}

	var attrs uint16 = uint16(spec.Codec) & attrCodecMask
	if spec.Transactional {
		attrs |= attrTransactional
	}
	if spec.Control {
		attrs |= attrControl
	}
	be := binary.BigEndian
	h := dst[start:]
	be.PutUint64(h[offBaseOffset:], uint64(spec.BaseOffset))
	be.PutUint32(h[offBatchLength:], uint32(len(h)-logOverhead))
	be.PutUint32(h[offLeaderEpoch:], math.MaxUint32) // -1
	h[offMagic] = 2
	be.PutUint16(h[offAttributes:], attrs)
	be.PutUint32(h[offLastOffDelta:], uint32(lastOffsetDelta))
	be.PutUint64(h[offFirstTS:], uint64(spec.FirstTimestamp))
	be.PutUint64(h[offMaxTS:], uint64(spec.FirstTimestamp+maxDelta))
	be.PutUint64(h[offProducerID:], uint64(spec.ProducerID))
	be.PutUint16(h[offProducerEpoch:], uint16(spec.ProducerEpoch))
	be.PutUint32(h[offBaseSequence:], uint32(spec.BaseSequence))
	be.PutUint32(h[offNumRecords:], uint32(len(recs)))
	be.PutUint32(h[offCRC:], CRC32C(h[offAttributes:]))
	return dst
}

func appendRecords(dst []byte, recs []Record, keepOffsetDeltas bool) []byte {
	for i := range recs {
		r := &recs[i]
		off := int32(i)
		if keepOffsetDeltas {
			off = r.OffsetDelta
		}
		size := 1 + varlongLen(r.TimestampDelta) + varintLen(off) +
			varBytesLen(r.Key) + varBytesLen(r.Value) + varintLen(int32(len(r.Headers)))
		for _, h := range r.Headers {
			size += varintLen(int32(len(h.Key))) + len(h.Key) + varBytesLen(h.Value)
		}
		dst = appendVarint(dst, int32(size))
		dst = append(dst, byte(r.Attributes))
		dst = appendVarlong(dst, r.TimestampDelta)
		dst = appendVarint(dst, off)
		dst = appendVarBytes(dst, r.Key)
		dst = appendVarBytes(dst, r.Value)
		dst = appendVarint(dst, int32(len(r.Headers)))
		for _, h := range r.Headers {
			dst = appendVarint(dst, int32(len(h.Key)))
			dst = append(dst, h.Key...)
			dst = appendVarBytes(dst, h.Value)
		}
	}
	return dst
}
