package proto

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Framing and request errors.
var (
	// ErrFrameTooLarge means a frame's size prefix is negative or larger than
	// the caller's limit. The stream cannot be resynchronised: close the
	// connection.
	ErrFrameTooLarge = errors.New("proto: frame size out of range")
	// ErrBadFrame means a frame or request is malformed in a way other than
	// running short (a bad length, a decoder failure).
	ErrBadFrame = errors.New("proto: malformed frame")
	// ErrTruncated means a request ended before its header or body did.
	ErrTruncated = errors.New("proto: truncated request")
	// ErrUnknownAPIKey means the request's API key is not one kmsg knows.
	ErrUnknownAPIKey = errors.New("proto: unknown api key")
	// ErrUnsupportedVersion means the request's version is outside what kmsg
	// can decode for its key.
	ErrUnsupportedVersion = errors.New("proto: unsupported api version")
)

// Record batch errors.
var (
	// ErrCorrupt (CORRUPT_MESSAGE) means the bytes are damaged: bad lengths,
	// a CRC mismatch, or compressed data that does not decompress. Kafka
	// clients treat it as retriable, which fits transport damage.
	ErrCorrupt = errors.New("proto: corrupt record batch")
	// ErrInvalidRecord (INVALID_RECORD) means the batch is intact but breaks
	// a rule: wrong magic, non-zero base offset, record count mismatch, a
	// malformed record, a control batch from a client. Retrying cannot help.
	ErrInvalidRecord = errors.New("proto: invalid record")
	// ErrUnsupportedCodec (UNSUPPORTED_COMPRESSION_TYPE) means the batch's
	// compression codec id is not one of none, gzip, snappy, lz4, zstd.
	ErrUnsupportedCodec = errors.New("proto: unsupported compression codec")
	// ErrBatchTooLarge (MESSAGE_TOO_LARGE) means a batch is larger than the
	// caller's limit.
	ErrBatchTooLarge = errors.New("proto: record batch too large")
)

// ErrorCode maps an error wrapping one of this package's sentinels to its
// Kafka error code. nil maps to (0, true). ok is false for errors proto does
// not own; the caller decides those (usually UNKNOWN_SERVER_ERROR, logged).
//
// The framing errors (ErrFrameTooLarge, ErrBadFrame, ErrTruncated,
// ErrUnknownAPIKey) map to INVALID_REQUEST, although Kafka closes the
// connection for them rather than answering.
func ErrorCode(err error) (code int16, ok bool) {
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, ErrCorrupt):
		return kerr.CorruptMessage.Code, true
	case errors.Is(err, ErrInvalidRecord):
		return kerr.InvalidRecord.Code, true
	case errors.Is(err, ErrUnsupportedCodec):
		return kerr.UnsupportedCompressionType.Code, true
	case errors.Is(err, ErrBatchTooLarge):
		return kerr.MessageTooLarge.Code, true
	case errors.Is(err, ErrUnsupportedVersion):
		return kerr.UnsupportedVersion.Code, true
	case errors.Is(err, ErrUnknownAPIKey),
		errors.Is(err, ErrTruncated),
		errors.Is(err, ErrBadFrame),
		errors.Is(err, ErrFrameTooLarge):
		return kerr.InvalidRequest.Code, true
	}
	return 0, false
}
