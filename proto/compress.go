package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Codec is a record batch compression codec (attribute bits 0-2).
type Codec int8

// Codecs, numbered as on the wire.
const (
	CodecNone   Codec = 0
	CodecGzip   Codec = 1
	CodecSnappy Codec = 2
	CodecLZ4    Codec = 3
	CodecZstd   Codec = 4
)

func (c Codec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecGzip:
		return "gzip"
	case CodecSnappy:
		return "snappy"
	case CodecLZ4:
		return "lz4"
	case CodecZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", int8(c))
}

// DefaultDecompressLimit bounds what Decompress produces. Kafka has no such
// limit, but a few hundred bytes of zstd can claim gigabytes; 64 MiB is far
// above any sane batch (Kafka's default max.message.bytes is 1 MiB).
const DefaultDecompressLimit = 64 << 20

// zstdMaxWindow is the largest zstd window accepted: 2^27, zstd's own default
// decoder limit and therefore what the Java broker (zstd-jni) accepts too.
const zstdMaxWindow = 1 << 27

// Compress appends the compressed form of src to dst.
//
// Snappy output uses the xerial framing the Java client writes (every client
// reads it); lz4 output is a standard LZ4 frame with 64 KiB independent
// blocks, as the Java client writes.
func Compress(c Codec, dst, src []byte) ([]byte, error) {
	switch c {
	case CodecNone:
		return append(dst, src...), nil
	case CodecGzip:
		return compressStream(&gzipWriters, c, dst, src)
	case CodecSnappy:
		return appendXerial(dst, src), nil
	case CodecLZ4:
		return compressStream(&lz4Writers, c, dst, src)
	case CodecZstd:
		return zstdEncoder().EncodeAll(src, dst), nil
	}
	return dst, fmt.Errorf("compress %s: %w", c, ErrUnsupportedCodec)
}

// streamWriter is what the gzip and lz4 writers have in common.
type streamWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

func compressStream(pool *sync.Pool, c Codec, dst, src []byte) ([]byte, error) {
	w := pool.Get().(streamWriter)
	aw := appendWriter{b: dst}
	w.Reset(&aw)
	_, err := w.Write(src)
	if err == nil {
		err = w.Close()
	}
	w.Reset(io.Discard) // the pool must not pin dst
	pool.Put(w)
	if err != nil {
		return dst, fmt.Errorf("compress %s: %w", c, err)
	}
	return aw.b, nil
}

// Decompress returns the decompressed form of src in a new slice, producing
// at most DefaultDecompressLimit bytes. Bad or oversized input gives
// ErrCorrupt; an unknown codec ErrUnsupportedCodec.
func Decompress(c Codec, src []byte) ([]byte, error) {
	return DecompressLimit(c, nil, src, DefaultDecompressLimit)
}

// DecompressLimit appends the decompressed form of src to dst, failing with
// ErrCorrupt when the output would exceed limit bytes. The limit is enforced
// while decoding, so a decompression bomb costs at most limit bytes of
// memory (for zstd, max(limit, 128 MiB): see decodeZstd).
func DecompressLimit(c Codec, dst, src []byte, limit int) (out []byte, err error) {
	// The codecs are third-party decoders fed by strangers; a panic in one
	// becomes ErrCorrupt. Pooled state in use at that moment is dropped, not
	// returned (the Puts below are not deferred for that reason).
	defer func() {
		if r := recover(); r != nil {
			out, err = dst, fmt.Errorf("decompress %s: decoder panic: %v: %w", c, r, ErrCorrupt)
		}
	}()
	out, err = decompress(c, dst, src, limit)
	if err != nil {
		if errors.Is(err, ErrUnsupportedCodec) {
			return dst, err
		}
		return dst, fmt.Errorf("decompress %s: %v: %w", c, err, ErrCorrupt)
	}
	return out, nil
}

var errLimit = errors.New("output exceeds limit")

func decompress(c Codec, dst, src []byte, limit int) ([]byte, error) {
	switch c {
	case CodecNone:
		if len(src) > limit {
			return dst, errLimit
		}
		return append(dst, src...), nil
	case CodecGzip:
		d := gzipReaders.Get().(*gzipReader)
		d.src.Reset(src)
		out, err := dst, d.zr.Reset(&d.src)
		if err == nil {
			out, err = readAllLimit(&d.zr, dst, limit, len(src)*4)
		}
		d.src.Reset(nil) // the pool must not pin the caller's buffer
		gzipReaders.Put(d)
		return out, err
	case CodecSnappy:
		return decodeSnappy(dst, src, limit)
	case CodecLZ4:
		d := lz4Readers.Get().(*lz4Reader)
		d.src.Reset(src)
		d.zr.Reset(&d.src)
		out, err := readAllLimit(d.zr, dst, limit, len(src)*4)
		d.zr.Reset(nil) // hands its block buffer back to lz4's pool
		d.src.Reset(nil)
		lz4Readers.Put(d)
		return out, err
	case CodecZstd:
		return decodeZstd(dst, src, limit)
	}
	return dst, fmt.Errorf("decompress %s: %w", c, ErrUnsupportedCodec)
}

// readAllLimit appends everything r produces to dst, growing dst as data
// arrives (starting from a guess of hint bytes) and failing once more than
// limit bytes were produced.
func readAllLimit(r io.Reader, dst []byte, limit, hint int) ([]byte, error) {
	start := len(dst)
	stop := start + limit + 1 // one past the limit detects overflow
	if want := start + min(max(hint, 512), limit+1); cap(dst) < want {
		grown := make([]byte, len(dst), want)
		copy(grown, dst)
		dst = grown
	}
	for {
		if len(dst) == cap(dst) {
			if len(dst) >= stop {
				return dst[:start], errLimit
			}
			grown := make([]byte, len(dst), min(2*cap(dst), stop))
			copy(grown, dst)
			dst = grown
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), stop)])
		dst = dst[:len(dst)+n]
		if len(dst) >= stop {
			return dst[:start], errLimit
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst[:start], err
		}
	}
}

// appendWriter is an io.Writer appending to a slice, so compressors can
// write straight into the caller's dst.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// Snappy. Kafka's Java client wraps snappy in xerial's stream framing:
// 8-byte magic, int32 version, int32 compatible version, then blocks of
// int32 compressed length + raw snappy block. Other clients (sarama,
// franz-go, librdkafka) may send one raw snappy block. Both are accepted.

var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const (
	xerialHeaderLen = 16
	xerialBlockSize = 32 << 10 // xerial's default block size
)

func appendXerial(dst, src []byte) []byte {
	dst = append(dst, xerialMagic...)
	dst = binary.BigEndian.AppendUint32(dst, 1) // version
	dst = binary.BigEndian.AppendUint32(dst, 1) // minimum compatible version
	for len(src) > 0 {
		blk := src[:min(len(src), xerialBlockSize)]
		src = src[len(blk):]
		at := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		need := snappy.MaxEncodedLen(len(blk))
		dst = growLen(dst, need)
		enc := snappy.Encode(dst[at+4:at+4+need], blk)
		dst = dst[:at+4+len(enc)]
		binary.BigEndian.PutUint32(dst[at:], uint32(len(enc)))
	}
	return dst
}

// growLen makes room for n more bytes after len(b) without changing len.
func growLen(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	grown := make([]byte, len(b)+n, 2*cap(b)+n)
	copy(grown, b)
	return grown
}

func decodeSnappy(dst, src []byte, limit int) ([]byte, error) {
	if !bytes.HasPrefix(src, xerialMagic) {
		return snappyBlock(dst, src, limit)
	}
	if len(src) < xerialHeaderLen {
		return dst, errors.New("short xerial header")
	}
	start := len(dst)
	src = src[xerialHeaderLen:]
	for len(src) > 0 {
		if len(src) < 4 {
			return dst[:start], errors.New("short xerial block length")
		}
		n := binary.BigEndian.Uint32(src)
		src = src[4:]
		if uint64(n) > uint64(len(src)) {
			return dst[:start], errors.New("xerial block past end")
		}
		var err error
		dst, err = snappyBlock(dst, src[:n], limit-(len(dst)-start))
		if err != nil {
			return dst[:start], err
		}
		src = src[n:]
	}
	return dst, nil
}

// snappyBlock appends one decoded raw block; its decoded length is declared
// up front, so the limit is checked before anything is allocated.
func snappyBlock(dst, src []byte, limit int) ([]byte, error) {
	n, err := snappy.DecodedLen(src)
	if err != nil {
		return dst, err
	}
	if n > limit {
		return dst, errLimit
	}
	at := len(dst)
	dst = growLen(dst, n)
	out, err := snappy.Decode(dst[at:], src)
	if err != nil {
		return dst[:at], err
	}
	if len(out) != n {
		return dst[:at], errors.New("snappy length mismatch")
	}
	return dst, nil
}

// Pools. Compression state is expensive to build (gzip and zstd tables, lz4
// block buffers) and cheap to reset, so none of it is made per call.

type gzipReader struct {
	src bytes.Reader
	zr  gzip.Reader
}

type lz4Reader struct {
	src bytes.Reader
	zr  *lz4.Reader
}

// zstdReader is a pooled decoder and the memory bound it is configured
// with; reconfiguring allocates, and the bound rarely changes.
type zstdReader struct {
	zr    *zstd.Decoder
	bound uint64
}

var (
	gzipReaders = sync.Pool{New: func() any { return new(gzipReader) }}
	lz4Readers  = sync.Pool{New: func() any { return &lz4Reader{zr: lz4.NewReader(nil)} }}
	zstdReaders sync.Pool

	gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}
	lz4Writers  = sync.Pool{New: func() any {
		w := lz4.NewWriter(nil)
		if err := w.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ConcurrencyOption(1)); err != nil {
			panic(fmt.Sprintf("proto: lz4 writer options: %v", err)) // constant options
		}
		return w
	}}
)

// decodeZstd decodes whole frames with DecodeAll. Unlike the streaming
// reader it needs no window buffer (the output is the history), so a frame
// header announcing a 128 MiB window costs nothing; the streaming reader
// would allocate, and keep in the pool, the whole window.
//
// The decoder couples its window limit to its output limit, and Java
// clients at zstd's ultra levels declare windows up to 2^27 whatever the
// content size. So the decoder runs with max(limit, zstdMaxWindow), which
// bounds memory during decoding (to within one 128 KiB block), and the
// exact limit is checked on the result.
//
// Pooled decoders run with concurrency 1: synchronous, no goroutines to leak
// when the pool drops one.
func decodeZstd(dst, src []byte, limit int) ([]byte, error) {
	bound := uint64(max(limit, zstdMaxWindow))
	d, ok := zstdReaders.Get().(*zstdReader)
	if !ok {
		zr, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(zstdMaxWindow),
			zstd.WithDecoderMaxMemory(bound),
		)
		if err != nil {
			return dst, err
		}
		d = &zstdReader{zr: zr, bound: bound}
	}
	if d.bound != bound {
		if err := d.zr.ResetWithOptions(nil, zstd.WithDecoderMaxMemory(bound)); err != nil {
			return dst, err
		}
		d.bound = bound
	}
	start := len(dst)
	out, err := d.zr.DecodeAll(src, dst)
	zstdReaders.Put(d) // not deferred: see DecompressLimit
	switch {
	case errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return dst[:start], errLimit
	case err != nil:
		return dst[:start], err
	case len(out)-start > limit:
		return dst[:start], errLimit
	}
	return out, nil
}

// zstdEncoder is shared: EncodeAll is safe for concurrent use (up to
// GOMAXPROCS encoders) and runs on the calling goroutine. Zero frames are on
// so that empty input still yields a valid frame, not zero bytes.
var zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
	enc, err := zstd.NewWriter(nil, zstd.WithZeroFrames(true))
	if err != nil {
		panic(fmt.Sprintf("proto: zstd encoder: %v", err)) // constant options
	}
	return enc
})
