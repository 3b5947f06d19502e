package proto

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Chunk is one piece of an encoded Fetch response: either encoded bytes
// (Bytes) or a records source the caller writes itself (Records, e.g. a file
// range sent with sendfile). Exactly one of Bytes and Records is set; N is
// the chunk's length in bytes either way.
type Chunk struct {
	Bytes   []byte
	Records any
	N       int64
}

// EncodeFetchResponse encodes a whole Fetch response frame (size prefix,
// response header, body) exactly as AppendResponse would with kmsg's
// encoder at resp.Version, except for the records: each partition's
// RecordBatches field is ignored and records(topicIndex, partitionIndex)
// supplies (src, n) instead (src must be non-nil when n > 0). The encoder writes the field's length prefix
// for n bytes (int32, or compact uvarint(n+1) from v12) and emits
// Chunk{Records: src, N: n} where the bytes go. n == 0 gives an empty, never
// null, field and no records chunk. A nil records function uses each
// partition's RecordBatches inline (nil as empty).
//
// Consecutive encoded bytes are merged into one chunk, so a response is a
// few large writes. total is the frame size including its 4-byte prefix.
//
// Versions 4 through 18 (kmsg's maximum) are what Strata serves; the field
// gates mirror kmsg's, so older versions encode correctly too.
func EncodeFetchResponse(correlationID int32, resp *kmsg.FetchResponse, records func(t, p int) (any, int64)) (chunks []Chunk, total int64) {
	e := fetchEncoder{
		version:  resp.Version,
		flexible: resp.Version >= 12,
	}
	nparts := 0
	for i := range resp.Topics {
		nparts += len(resp.Topics[i].Partitions)
	}
	// 80 bytes covers a partition without aborted transactions or tags.
	e.buf = make([]byte, 0, 64+len(resp.Topics)*48+nparts*80)
	e.chunks = make([]Chunk, 0, 2*nparts+1)

	e.buf = append(e.buf, 0, 0, 0, 0)
	e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(correlationID))
	if e.flexible {
		e.buf = append(e.buf, 0) // response header v1: no tags
	}
	e.body(resp, records)
	e.flushBytes()

	// buf no longer moves: point the bytes chunks into it. They partition
	// buf in order, and each recorded only its end offset in N.
	chunks = e.chunks
	from := 0
	for i := range chunks {
		c := &chunks[i]
		if c.Records == nil {
			to := int(c.N)
			c.Bytes = e.buf[from:to:to]
			c.N = int64(to - from)
			from = to
		}
		total += c.N
	}
	binary.BigEndian.PutUint32(e.buf, uint32(total-4))
	return chunks, total
}

type fetchEncoder struct {
	version  int16
	flexible bool
	buf      []byte
	chunks   []Chunk // bytes chunks hold their end offset in buf in N until the end
	flushed  int     // buf bytes already covered by chunks
	scratch  []byte  // for sized tagged fields
}

func (e *fetchEncoder) flushBytes() {
	if len(e.buf) > e.flushed {
		e.chunks = append(e.chunks, Chunk{N: int64(len(e.buf))})
		e.flushed = len(e.buf)
	}
}

func (e *fetchEncoder) body(resp *kmsg.FetchResponse, records func(t, p int) (any, int64)) {
	v := e.version
	be := binary.BigEndian
	if v >= 1 {
		e.buf = be.AppendUint32(e.buf, uint32(resp.ThrottleMillis))
	}
	if v >= 7 {
		e.buf = be.AppendUint16(e.buf, uint16(resp.ErrorCode))
		e.buf = be.AppendUint32(e.buf, uint32(resp.SessionID))
	}
	e.buf = appendArrayLen(e.buf, len(resp.Topics), e.flexible)
	for ti := range resp.Topics {
		t := &resp.Topics[ti]
		if v <= 12 {
			e.buf = appendString(e.buf, t.Topic, e.flexible)
		} else {
			e.buf = append(e.buf, t.TopicID[:]...)
		}
		e.buf = appendArrayLen(e.buf, len(t.Partitions), e.flexible)
		for pi := range t.Partitions {
			e.partition(&t.Partitions[pi], ti, pi, records)
		}
		if e.flexible {
			e.buf = appendTagsWithCount(e.buf, &t.UnknownTags)
		}
	}
	if e.flexible {
		n := len(resp.Brokers)
		count := resp.UnknownTags.Len()
		if n > 0 {
			count++
		}
		e.buf = binary.AppendUvarint(e.buf, uint64(count))
		if n > 0 {
			s := e.scratch[:0]
			s = appendArrayLen(s, n, true)
			for i := range resp.Brokers {
				b := &resp.Brokers[i]
				s = be.AppendUint32(s, uint32(b.NodeID))
				s = appendString(s, b.Host, true)
				s = be.AppendUint32(s, uint32(b.Port))
				s = appendNullableString(s, b.Rack, true)
				s = appendTagsWithCount(s, &b.UnknownTags)
			}
			e.scratch = s
			e.buf = appendTagged(e.buf, 0, s)
		}
		e.buf = appendTagsEach(e.buf, &resp.UnknownTags)
	}
}

func (e *fetchEncoder) partition(p *kmsg.FetchResponseTopicPartition, ti, pi int, records func(t, p int) (any, int64)) {
	v := e.version
	be := binary.BigEndian
	e.buf = be.AppendUint32(e.buf, uint32(p.Partition))
	e.buf = be.AppendUint16(e.buf, uint16(p.ErrorCode))
	e.buf = be.AppendUint64(e.buf, uint64(p.HighWatermark))
	if v >= 4 {
		e.buf = be.AppendUint64(e.buf, uint64(p.LastStableOffset))
	}
	if v >= 5 {
		e.buf = be.AppendUint64(e.buf, uint64(p.LogStartOffset))
	}
	if v >= 4 {
		txns := p.AbortedTransactions
		e.buf = appendNullableArrayLen(e.buf, len(txns), txns == nil, e.flexible)
		for i := range txns {
			e.buf = be.AppendUint64(e.buf, uint64(txns[i].ProducerID))
			e.buf = be.AppendUint64(e.buf, uint64(txns[i].FirstOffset))
			if e.flexible {
				e.buf = appendTagsWithCount(e.buf, &txns[i].UnknownTags)
			}
		}
	}
	if v >= 11 {
		e.buf = be.AppendUint32(e.buf, uint32(p.PreferredReadReplica))
	}

	var (
		src    any
		n      int64
		inline []byte
	)
	if records != nil {
		src, n = records(ti, pi)
	} else {
		inline = p.RecordBatches
		n = int64(len(inline))
	}
	if e.flexible {
		e.buf = binary.AppendUvarint(e.buf, uint64(n)+1)
	} else {
		e.buf = be.AppendUint32(e.buf, uint32(n))
	}
	switch {
	case records == nil:
		e.buf = append(e.buf, inline...)
	case n > 0:
		if src == nil {
			// A nil source would read as a bytes chunk; storage bug.
			panic("proto: EncodeFetchResponse: nil records source for a non-empty field")
		}
		e.flushBytes()
		e.chunks = append(e.chunks, Chunk{Records: src, N: n})
	}

	if !e.flexible {
		return
	}
	// Tagged fields, in kmsg's order: known tags whose value differs from
	// the default, then unknown tags.
	de, cl, sn := &p.DivergingEpoch, &p.CurrentLeader, &p.SnapshotID
	hasDE := de.Epoch != -1 || de.EndOffset != -1 || de.UnknownTags.Len() > 0
	hasCL := cl.LeaderID != -1 || cl.LeaderEpoch != -1 || cl.UnknownTags.Len() > 0
	hasSN := sn.EndOffset != -1 || sn.Epoch != -1 || sn.UnknownTags.Len() > 0
	count := p.UnknownTags.Len()
	for _, has := range [...]bool{hasDE, hasCL, hasSN} {
		if has {
			count++
		}
	}
	e.buf = binary.AppendUvarint(e.buf, uint64(count))
	if hasDE {
		s := be.AppendUint32(e.scratch[:0], uint32(de.Epoch))
		s = be.AppendUint64(s, uint64(de.EndOffset))
		s = appendTagsWithCount(s, &de.UnknownTags)
		e.scratch = s
		e.buf = appendTagged(e.buf, 0, s)
	}
	if hasCL {
		s := be.AppendUint32(e.scratch[:0], uint32(cl.LeaderID))
		s = be.AppendUint32(s, uint32(cl.LeaderEpoch))
		s = appendTagsWithCount(s, &cl.UnknownTags)
		e.scratch = s
		e.buf = appendTagged(e.buf, 1, s)
	}
	if hasSN {
		s := be.AppendUint64(e.scratch[:0], uint64(sn.EndOffset))
		s = be.AppendUint32(s, uint32(sn.Epoch))
		s = appendTagsWithCount(s, &sn.UnknownTags)
		e.scratch = s
		e.buf = appendTagged(e.buf, 2, s)
	}
	e.buf = appendTagsEach(e.buf, &p.UnknownTags)
}

// Kafka wire primitives (kmsg keeps its own unexported).

func appendArrayLen(dst []byte, n int, flexible bool) []byte {
	if flexible {
		return binary.AppendUvarint(dst, uint64(n)+1)
	}
	return binary.BigEndian.AppendUint32(dst, uint32(n))
}

func appendNullableArrayLen(dst []byte, n int, isNil, flexible bool) []byte {
	if isNil {
		if flexible {
			return append(dst, 0)
		}
		return binary.BigEndian.AppendUint32(dst, 0xffffffff)
	}
	return appendArrayLen(dst, n, flexible)
}

func appendString(dst []byte, s string, flexible bool) []byte {
	if flexible {
		dst = binary.AppendUvarint(dst, uint64(len(s))+1)
	} else {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	}
	return append(dst, s...)
}

func appendNullableString(dst []byte, s *string, flexible bool) []byte {
	if s == nil {
		if flexible {
			return append(dst, 0)
		}
		return binary.BigEndian.AppendUint16(dst, 0xffff)
	}
	return appendString(dst, *s, flexible)
}

// appendTagged appends one tagged field: tag, size, value.
func appendTagged(dst []byte, tag uint32, val []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(tag))
	dst = binary.AppendUvarint(dst, uint64(len(val)))
	return append(dst, val...)
}

// appendTagsWithCount appends a tag section holding only unknown tags.
func appendTagsWithCount(dst []byte, t *kmsg.Tags) []byte {
	if t.Len() == 0 {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(t.Len()))
	return appendTagsEach(dst, t)
}

// appendTagsEach appends unknown tags (kmsg orders them by tag).
func appendTagsEach(dst []byte, t *kmsg.Tags) []byte {
	if t.Len() == 0 {
		return dst
	}
	t.Each(func(tag uint32, val []byte) {
		dst = appendTagged(dst, tag, val)
	})
	return dst
}
