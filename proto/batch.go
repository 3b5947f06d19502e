package proto

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Record batch v2 layout (all big-endian):
//
//	 0 baseOffset int64
//	 8 batchLength int32      bytes after this field
//	12 partitionLeaderEpoch int32
//	16 magic int8            = 2
//	17 crc uint32            CRC32C of bytes 21..end
//	21 attributes int16
//	23 lastOffsetDelta int32
//	27 firstTimestamp int64
//	35 maxTimestamp int64
//	43 producerId int64
//	51 producerEpoch int16
//	53 baseSequence int32
//	57 numRecords int32
//	61 records
const (
	offBaseOffset    = 0
	offBatchLength   = 8
	offLeaderEpoch   = 12
	offMagic         = 16
	offCRC           = 17
	offAttributes    = 21
	offLastOffDelta  = 23
	offFirstTS       = 27
	offMaxTS         = 35
	offProducerID    = 43
	offProducerEpoch = 51
	offBaseSequence  = 53
	offNumRecords    = 57

	// BatchHeaderSize is the fixed part of a v2 batch, up to the records.
	BatchHeaderSize = 61
	// logOverhead is baseOffset + batchLength: the bytes not counted in
	// batchLength.
	logOverhead = 12
)

// Attribute bits.
const (
	attrCodecMask     = 0x07
	attrLogAppendTime = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
)

// Batch is a parsed v2 record batch header. Raw aliases the buffer it was
// parsed from.
type Batch struct {
	Raw []byte // whole batch (baseOffset .. end), aliasing the source buffer

	BaseOffset           int64
	BatchLength          int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	FirstTimestamp       int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// Codec is the batch's compression codec (not necessarily a known one).
func (b *Batch) Codec() Codec { return Codec(b.Attributes & attrCodecMask) }

// IsTransactional reports attribute bit 4.
func (b *Batch) IsTransactional() bool { return b.Attributes&attrTransactional != 0 }

// IsControl reports attribute bit 5 (commit/abort markers and the like).
func (b *Batch) IsControl() bool { return b.Attributes&attrControl != 0 }

// LogAppendTime reports attribute bit 3: MaxTimestamp is the broker's append
// time rather than the producer's.
func (b *Batch) LogAppendTime() bool { return b.Attributes&attrLogAppendTime != 0 }

// LastOffset is BaseOffset + LastOffsetDelta.
func (b *Batch) LastOffset() int64 { return b.BaseOffset + int64(b.LastOffsetDelta) }

// LastSequence is the sequence number of the last record. Sequences wrap
// from MaxInt32 to 0, as in Kafka; a batch without sequences (-1) stays -1.
func (b *Batch) LastSequence() int32 {
	if b.BaseSequence < 0 {
		return b.BaseSequence
	}
	if b.BaseSequence > math.MaxInt32-b.LastOffsetDelta {
		return b.LastOffsetDelta - (math.MaxInt32 - b.BaseSequence) - 1
	}
	return b.BaseSequence + b.LastOffsetDelta
}

// ParseBatchHeader reads the fixed 61-byte header of the batch starting at
// b[0]. It checks nothing beyond the header being present; Raw is set to
// b[:12+BatchLength] when b is that long, else to b.
func ParseBatchHeader(b []byte) (Batch, error) {
	if len(b) < BatchHeaderSize {
		return Batch{}, fmt.Errorf("batch header: %d bytes: %w", len(b), ErrCorrupt)
	}
	be := binary.BigEndian
	h := Batch{
		BaseOffset:           int64(be.Uint64(b[offBaseOffset:])),
		BatchLength:          int32(be.Uint32(b[offBatchLength:])),
		PartitionLeaderEpoch: int32(be.Uint32(b[offLeaderEpoch:])),
		Magic:                int8(b[offMagic]),
		CRC:                  be.Uint32(b[offCRC:]),
		Attributes:           int16(be.Uint16(b[offAttributes:])),
		LastOffsetDelta:      int32(be.Uint32(b[offLastOffDelta:])),
		FirstTimestamp:       int64(be.Uint64(b[offFirstTS:])),
		MaxTimestamp:         int64(be.Uint64(b[offMaxTS:])),
		ProducerID:           int64(be.Uint64(b[offProducerID:])),
		ProducerEpoch:        int16(be.Uint16(b[offProducerEpoch:])),
		BaseSequence:         int32(be.Uint32(b[offBaseSequence:])),
		NumRecords:           int32(be.Uint32(b[offNumRecords:])),
	}
	h.Raw = b
	if end := logOverhead + int64(h.BatchLength); h.BatchLength >= 0 && end <= int64(len(b)) {
		h.Raw = b[:end]
	}
	return h, nil
}

// nextBatch splits the batch at the front of data, checking its framing:
// header present, batchLength covering at least the header and not running
// past data, magic 2, and the CRC when checkCRC. at is the batch's position,
// for error messages.
func nextBatch(data []byte, at int, checkCRC bool) (Batch, error) {
	if len(data) < logOverhead {
		return Batch{}, fmt.Errorf("batch at byte %d: %d trailing bytes: %w", at, len(data), ErrCorrupt)
	}
	length := int32(binary.BigEndian.Uint32(data[offBatchLength:]))
	if length < BatchHeaderSize-logOverhead {
		return Batch{}, fmt.Errorf("batch at byte %d: batch length %d: %w", at, length, ErrCorrupt)
	}
	if int64(length) > int64(len(data)-logOverhead) {
		return Batch{}, fmt.Errorf("batch at byte %d: batch length %d past end (%d bytes): %w", at, length, len(data), ErrCorrupt)
	}
	b, _ := ParseBatchHeader(data[:logOverhead+int(length)])
	if b.Magic != 2 {
		return b, fmt.Errorf("batch at byte %d: magic %d: %w", at, b.Magic, ErrCorrupt)
	}
	if checkCRC {
		if got := CRC32C(b.Raw[offAttributes:]); got != b.CRC {
			return b, fmt.Errorf("batch at byte %d: crc %08x, computed %08x: %w", at, b.CRC, got, ErrCorrupt)
		}
	}
	return b, nil
}

// SplitBatches walks stored batches (any base offsets) in data, checking
// framing, magic 2 and, when checkCRC, the CRC, and calls fn for each batch
// in order. It stops at the first bad batch and returns an ErrCorrupt error
// naming its byte position; the batches passed to fn before it are good, so a
// recovering log can truncate after them. An error from fn is returned as is.
func SplitBatches(data []byte, checkCRC bool, fn func(Batch) error) error {
	at := 0
	for len(data) > 0 {
		b, err := nextBatch(data, at, checkCRC)
		if err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
		data = data[len(b.Raw):]
		at += len(b.Raw)
	}
	return nil
}

// ValidateProduceBatches splits a Produce partition's records field and
// fully validates every batch before anything is written: framing, magic 2,
// base offset 0, CRC32C, codec, NumRecords >= 1 and LastOffsetDelta ==
// NumRecords-1, no control batches (only the broker writes those), size <=
// maxBatchBytes (<= 0 means no limit), and every record decoded (after
// decompression) with offset deltas 0..NumRecords-1 and no bytes left over.
// The returned batches alias records.
//
// Errors: ErrCorrupt (damaged framing, CRC, undecompressable data),
// ErrInvalidRecord (rule broken, malformed records, no batch at all),
// ErrUnsupportedCodec, ErrBatchTooLarge.
//
// Kafka requires exactly one batch per partition from Produce v3; this
// accepts several, which no client relies on either way. Whether zstd is
// allowed at the request's version (Produce v7+) is for the caller to check.
func ValidateProduceBatches(records []byte, maxBatchBytes int32) ([]Batch, error) {
	if len(records) == 0 {
		return nil, fmt.Errorf("validate produce: no record batch: %w", ErrInvalidRecord)
	}
	limit := DefaultDecompressLimit
	if int64(maxBatchBytes) > int64(limit) {
		limit = int(maxBatchBytes)
	}
	var out []Batch
	at := 0
	for len(records) > 0 {
		b, err := validateOne(records, at, maxBatchBytes, limit)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = make([]Batch, 0, 1)
		}
		out = append(out, b)
		records = records[len(b.Raw):]
		at += len(b.Raw)
	}
	return out, nil
}

func validateOne(data []byte, at int, maxBatchBytes int32, limit int) (Batch, error) {
	// Size first so that a client sending an oversized batch learns that,
	// rather than some consequence of a partial read.
	if len(data) >= logOverhead && maxBatchBytes > 0 {
		length := int64(int32(binary.BigEndian.Uint32(data[offBatchLength:])))
		if size := length + logOverhead; size > int64(maxBatchBytes) && length <= int64(len(data)-logOverhead) {
			return Batch{}, fmt.Errorf("batch at byte %d: %d bytes, max %d: %w", at, size, maxBatchBytes, ErrBatchTooLarge)
		}
	}
	if len(data) >= BatchHeaderSize && int8(data[offMagic]) != 2 {
		// Kafka answers INVALID_RECORD for old message formats on Produce v3+.
		return Batch{}, fmt.Errorf("batch at byte %d: magic %d: %w", at, int8(data[offMagic]), ErrInvalidRecord)
	}
	b, err := nextBatch(data, at, true)
	if err != nil {
		return Batch{}, err
	}
	switch {
	case b.BaseOffset != 0:
		return Batch{}, fmt.Errorf("batch at byte %d: base offset %d, want 0: %w", at, b.BaseOffset, ErrInvalidRecord)
	case b.Codec() > CodecZstd:
		return Batch{}, fmt.Errorf("batch at byte %d: codec %d: %w", at, b.Codec(), ErrUnsupportedCodec)
	case b.IsControl():
		return Batch{}, fmt.Errorf("batch at byte %d: control batch from a client: %w", at, ErrInvalidRecord)
	case b.NumRecords < 1:
		return Batch{}, fmt.Errorf("batch at byte %d: %d records: %w", at, b.NumRecords, ErrInvalidRecord)
	case b.LastOffsetDelta != b.NumRecords-1:
		return Batch{}, fmt.Errorf("batch at byte %d: last offset delta %d with %d records: %w",
			at, b.LastOffsetDelta, b.NumRecords, ErrInvalidRecord)
	}
	if err := walkRecords(b, nil, true, limit); err != nil {
		return Batch{}, fmt.Errorf("batch at byte %d: %w", at, err)
	}
	return b, nil
}

// SetBaseOffset rewrites the base offset of the batch in raw. The field is
// outside the CRC.
func SetBaseOffset(raw []byte, off int64) {
	binary.BigEndian.PutUint64(raw[offBaseOffset:], uint64(off))
}

// SetPartitionLeaderEpoch rewrites the partition leader epoch of the batch
// in raw. The field is outside the CRC (clients send 0 or -1; the leader
// stamps its own).
func SetPartitionLeaderEpoch(raw []byte, epoch int32) {
	binary.BigEndian.PutUint32(raw[offLeaderEpoch:], uint32(epoch))
}

// SetLogAppendTime marks the batch in raw as using log append time (attribute
// bit 3), sets its max timestamp to ts and recomputes the CRC. The first
// timestamp and record deltas are left alone, as Kafka does; consumers use
// the max timestamp for every record of such a batch.
func SetLogAppendTime(raw []byte, ts int64) {
	be := binary.BigEndian
	attrs := be.Uint16(raw[offAttributes:]) | attrLogAppendTime
	be.PutUint16(raw[offAttributes:], attrs)
	be.PutUint64(raw[offMaxTS:], uint64(ts))
	be.PutUint32(raw[offCRC:], CRC32C(raw[offAttributes:]))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C is the Castagnoli CRC used by record batches v2.
func CRC32C(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
